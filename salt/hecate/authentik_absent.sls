{#- Teardown (ensure: absent) on the cloud node, after the Caddy routes are gone: what hecate
    made in Authentik for this environment's protected routes (provider off the outpost,
    application, provider: marked hecate/<env>/route/...) and for hecate:authentik:applications
    (marked hecate/<env>/app/...), whatever pillar says now. Objects without hecate's mark of
    this environment are never touched.
        salt -G roles:hecate-edge state.apply hecate.authentik_absent [test=True] #}
{%- set hecate = pillar.get('hecate', {}) %}
{%- set env = (hecate.get('global') or {}).get('environment') or grains.get('hecate_env') %}
include:
  - hecate

hecate route auth gone:
  authentik_route_auth.absent:
    - require:
      - hecate: hecate pillar is valid

hecate applications gone:
  authentik_application.pruned:
    - prefix: {{ ('hecate/' ~ env ~ '/app/') | yaml_dquote }}
    - keep: []
    - require:
      - hecate: hecate pillar is valid
