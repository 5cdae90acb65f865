{#- The environment of a minion is its `hecate_env` grain (lab, dev, staging, prod).
    Pillar given on the command line is not visible here, so the orchestration selects
    an environment by targeting minions with that grain; an unknown environment has no
    overlay file and fails to render with an error naming it. #}
{%- set env = grains.get('hecate_env') %}
base:
  '*':
    - hecate
    - bionicgpt
{%- if env %}
    - env.{{ env }}
  'hecate_env:lab':
    - match: grain
    - ignore_missing: True
    # written by `python -m lab up` and the test suite: loopback addresses of the lab
    - lab_runtime
    # a lab's local changes on top (the tests write it to change the lab's pillar)
    - lab_overrides
{%- endif %}
