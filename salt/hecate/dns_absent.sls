{#- Teardown (ensure: absent), after the Caddy routes are gone: every RRSet hecate owns for
    this environment in the zones of hecate:dns (route domains, extra records, CAA) deleted;
    foreign RRSets and other environments' are never touched (a no-op without hecate:dns).
        salt -G roles:hecate-edge state.apply hecate.dns_absent [test=True] #}
{%- from "hecate/dns.jinja" import dns_records with context %}
include:
  - hecate

{{ dns_records(pillar, 'clear') }}
