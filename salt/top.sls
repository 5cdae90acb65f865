{#- A minion takes a role's states when it is a member of the role: its `roles` grain claims the
    role (grains are the minion's own say) and pillar hecate:members of its environment (the
    master's say: the minion's pillar is rendered on the master from its hecate_env overlay)
    lists its id, or a glob that matches it - the same rule as the orchestration's targets.
    `state.highstate` gives a new listed minion its role, and a minion that only claims one
    nothing. Only core functions here (pillar.get, match.glob): the top file renders before
    highstate syncs hecate's modules to a new minion.
    Order matters within a role: the tunnel first (Consul binds to the tunnel address),
    then the Consul agent, then Nomad (which registers services in Consul). The edge's Nomad
    client runs the edge's own jobs (Caddy, Authentik): orch.hecate deploys those. #}
{%- macro member(role) -%}
{%- for pattern in salt['pillar.get']('hecate:members:' ~ role, []) -%}
{%- if pattern is string and salt['match.glob'](pattern) %}yes{% endif -%}
{%- endfor -%}
{%- endmacro %}
{%- set edge, node = member('hecate-edge'), member('bionicgpt-node') %}
{%- if not (edge or node) %}
base: {}
{%- else %}
base:
{%- endif %}
{%- if edge %}
  'roles:hecate-edge':
    - match: grain
    - hecate
    - wireguard
    - consul.agent
{%- if salt['pillar.get']('hecate:nomad:agent') %}
    - nomad.agent
{%- endif %}
{%- endif %}
{%- if node %}
  'roles:bionicgpt-node':
    - match: grain
    - hecate
    - wireguard
    - consul.agent
    - nomad.agent
{%- endif %}
