{#- Second phase of hecate's Authentik objects: delete what hecate made for routes that are no
    longer protected (or gone) and for entries gone from hecate:authentik:applications, in this
    environment only (objects marked hecate/<env>/...), once Caddy no longer sends those routes'
    requests to the outpost: the orchestration runs it after the Caddy step (see
    hecate/route_auth.sls, hecate/authentik_apps.sls).
        salt -G roles:hecate-edge state.apply hecate.authentik_prune [test=True] #}
{%- set hecate = pillar.get('hecate', {}) %}
{%- set apps = (hecate.get('authentik') or {}).get('applications') or {} %}
{%- set env = (hecate.get('global') or {}).get('environment') or grains.get('hecate_env') %}
{%- set keep = [] %}
{%- for name in apps %}
{%- do keep.append('hecate/' ~ env ~ '/app/' ~ name) %}
{%- endfor %}
{%- set deploys = 'authentik' in (salt['hecate_edge.settings']('nomad').get('jobs') or []) %}
{%- if opts.get('test') and deploys and not salt['hecate_edge.authentik_status']().get('token') %}
{#- a preview on a bare edge: Authentik is deployed by this run, so it holds nothing to delete #}
hecate authentik objects to delete (none, Authentik does not run yet):
  test.nop: []
{%- else %}
include:
  - hecate

hecate route auth removed:
  authentik_route_auth.pruned:
    - require:
      - hecate: hecate pillar is valid

hecate applications removed:
  authentik_application.pruned:
    - prefix: {{ ('hecate/' ~ env ~ '/app/') | yaml_dquote }}
    - keep: {{ keep | sort | json }}
    - require:
      - hecate: hecate pillar is valid
{%- endif %}
