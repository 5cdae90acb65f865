{#- The lab's pillar (`python -m lab` and the test suite; never the operator's pillar/).
    Same layout as pillar/: the base files, then the overlay of the minion's `hecate_env`
    grain (lab; dev, staging and prod are here for the tests of environment rules), then,
    for the lab, what the lab writes per session into its second pillar root. #}
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
    # with several edges (`python -m lab up --edges 2`): this edge's own Caddy
    - lab_minions.{{ grains.get('id', '') | replace('.', '_') }}
    # a lab's local changes on top (the tests write it to change the lab's pillar)
    - lab_overrides
{%- endif %}
