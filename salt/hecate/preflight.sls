{#- Orchestration step 1 on every node: the APIs this node's states will call answer an
    authenticated read (nothing is written). The cloud node calls Caddy's admin API and
    Authentik (and Hetzner DNS when hecate:dns is set); the local node calls Nomad; both call Consul and Vault. #}
{%- set roles = grains.get('roles', []) %}
{%- set systems = [] %}
{%- if 'hecate-edge' in roles %}{% do systems.extend(['caddy', 'authentik']) %}{% endif %}
{%- set dns = (pillar.get('hecate') or {}).get('dns') or {} %}
{%- if 'hecate-edge' in roles and dns and dns.get('enabled', True) is not false %}{% do systems.append('hetzner_dns') %}{% endif %}
{%- if 'bionicgpt-node' in roles %}{% do systems.append('nomad') %}{% endif %}
{%- do systems.extend(['consul', 'vault']) %}
include:
  - hecate

hecate apis reachable:
  hecate.reachable:
    - systems: {{ systems | json }}
    - require:
      - hecate: hecate pillar is valid
