{#- The edge's records in Hetzner DNS from pillar hecate:dns (docs/systems/dns.md): an A/AAAA
    RRSet per route domain pointing at the edge, the extra records, CAA.

    The orchestration applies this (phase add: creations and changes) before the Caddy
    routes, so a new route's name resolves when Caddy asks for its certificate, and
    hecate.dns_prune (phase prune: records of routes gone from pillar) after them, so a run
    that fails in between never leaves a live route without its record. #}
{%- from "hecate/dns.jinja" import dns_records with context %}
include:
  - hecate

{{ dns_records(pillar, 'add') }}
