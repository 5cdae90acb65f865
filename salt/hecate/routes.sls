{#- The routes alone, on the edge: DNS records of new and changed route domains, the Caddy
    routes (pillar and Consul), then the records of routes gone - the orchestration's dns,
    caddy and dns_prune steps in one state run, so DNS and Caddy work from one reading of
    Consul. `salt-run hecate.sync_routes env=<env>` applies it (a Consul watch or a Salt
    reactor can run that when services change; docs/systems/caddy.md). A converged run
    writes nothing. #}
{%- from "hecate/dns.jinja" import dns_records with context %}
include:
  - hecate
  - hecate.dns
  - hecate.caddy

extend:
  hecate caddy routes:
    caddy_routes.managed:
      - require:
        - sls: hecate.dns

{{ dns_records(pillar, 'prune', require=['caddy_routes: hecate caddy routes']) }}
