{#- Orchestration step 1 on every node: the APIs this node's states will call answer an
    authenticated read (nothing is written). The cloud node calls Caddy's admin API (its own:
    only when it is the environment's one edge) and
    Authentik, or Nomad when hecate deploys them (and Hetzner DNS when hecate:dns is set); the
    local node calls Nomad; both call Consul and Vault. #}
{%- set roles = grains.get('roles', []) %}
{%- set systems = [] %}
{#- On an edge where hecate deploys Caddy/Authentik as Nomad jobs (hecate:nomad:jobs), they need
    not run yet (a bare edge): Nomad must answer instead, which deploys them. #}
{%- set edge_jobs = ((pillar.get('hecate') or {}).get('nomad') or {}).get('jobs') or [] %}
{#- With several edges, an edge's own Caddy is no precondition of the whole run: an edge whose
    Caddy does not answer fails at the Caddy step, alone, and the others get the routes. #}
{%- set own_caddy = not salt['hecate.several']('hecate-edge') %}
{%- if 'hecate-edge' in roles %}
{%- for system in ('caddy', 'authentik') if system not in edge_jobs and (system != 'caddy' or own_caddy) %}{% do systems.append(system) %}{% endfor %}
{%- if edge_jobs %}{% do systems.append('nomad') %}{% endif %}
{%- endif %}
{%- set dns = (pillar.get('hecate') or {}).get('dns') or {} %}
{%- if 'hecate-edge' in roles and dns and dns.get('enabled', True) is not false %}{% do systems.append('hetzner_dns') %}{% endif %}
{%- if 'bionicgpt-node' in roles and 'nomad' not in systems %}{% do systems.append('nomad') %}{% endif %}
{%- do systems.extend(['consul', 'vault']) %}
include:
  - hecate

hecate apis reachable:
  hecate.reachable:
    - systems: {{ systems | json }}
    - require:
      - hecate: hecate pillar is valid
