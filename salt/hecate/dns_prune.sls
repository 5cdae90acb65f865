{#- Second DNS phase of the orchestration: delete hecate's records of route domains no longer
    in pillar, once Caddy no longer serves them (see hecate/dns.sls). #}
{%- from "hecate/dns.jinja" import dns_records with context %}
include:
  - hecate

{{ dns_records(pillar, 'prune') }}
