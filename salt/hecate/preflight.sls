{#- Orchestration step 1 on every node: the APIs this node's states will call answer an
    authenticated read (nothing is written). The cloud node calls Caddy's admin API and
    Authentik; the local node calls Nomad; both call Consul and Vault. #}
{%- set roles = grains.get('roles', []) %}
{%- set systems = [] %}
{%- if 'hecate-edge' in roles %}{% do systems.extend(['caddy', 'authentik']) %}{% endif %}
{%- if 'bionicgpt-node' in roles %}{% do systems.append('nomad') %}{% endif %}
{%- do systems.extend(['consul', 'vault']) %}
include:
  - hecate

hecate apis reachable:
  hecate.reachable:
    - systems: {{ systems | json }}
    - require:
      - hecate: hecate pillar is valid
