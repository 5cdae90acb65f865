{#- salt-run state.orch orch.bionicgpt pillar='{"env": "prod"}' [test=True]
    Deploys the whole stack of one environment in the order of DESIGN.md section 4.
    Minions are targeted by grain: role and environment. #}
{%- set env = pillar.get('env') %}
{%- if not env %}
{{ raise('orch.bionicgpt needs an environment: pillar=\'{"env": "<lab|dev|staging|prod>"}\'') }}
{%- endif %}
{%- set edge = 'G@roles:hecate-edge and G@hecate_env:' ~ env %}
{%- set node = 'G@roles:bionicgpt-node and G@hecate_env:' ~ env %}

# 1. Validate the pillar of the environment before anything writes (runs under test=True too).
validate_pillar:
  hecate.validated:
    - env: {{ env }}
