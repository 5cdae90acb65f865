{#- The environment of a minion is its `hecate_env` grain (dev, staging, prod: one overlay
    env/<env>.sls each; add a file to add an environment). Pillar given on the command line
    is not visible here, so the orchestration selects an environment by targeting minions
    with that grain; an unknown environment has no overlay file and fails to render with an
    error naming it. (The lab and the tests have their own pillar tree: lab/pillar/.) #}
{%- set env = grains.get('hecate_env') %}
base:
  '*':
    - hecate
    - bionicgpt
{%- if env %}
    - env.{{ env }}
{%- endif %}
