{#- Teardown step "caddy" of orch.hecate (ensure: absent), on the edge: every hecate route of
    Caddy removed while Caddy runs (hecate.caddy_absent: @id hecate.route.*, one write guarded
    by its ETag; other routes stay).

    When hecate deploys Caddy (hecate:nomad:jobs lists caddy) and Nomad no longer has its job
    (an earlier teardown purged it, after removing these routes), there is no Caddy to remove
    routes from: nothing to do. Its host volumes keep what they hold (certificates, and the
    autosave of its last config, without hecate's routes). A job that is registered but whose
    Caddy does not answer fails the step, so the steps after it (the jobs' purge) do not run.
        salt -G roles:hecate-edge state.apply hecate.edge.caddy_routes_absent [test=True] #}
{%- set nomad = salt['hecate_edge.settings']('nomad') %}
{%- set job_id = nomad['job_prefix'] ~ 'caddy' %}
{%- if 'caddy' in nomad['jobs'] and salt['nomad.job'](job_id, namespace=nomad.get('namespace')) is none %}

hecate caddy routes (caddy's job is gone):
  test.show_notification:
    - text: {{ ('no Caddy to remove routes from: its job ' ~ job_id ~ ' is not registered in Nomad (purged by a teardown); its volumes keep their data') | yaml_dquote }}
{%- else %}
include:
  - hecate.caddy_absent
{%- endif %}
