{#- Teardown step "authentik" of orch.hecate (ensure: absent), on the edge, after the Caddy
    routes: the Authentik objects hecate owns, removed while Authentik still runs (its job is
    purged by a later step) - the protected routes' providers (off the outpost), applications
    and bindings and the SSO apps (hecate.authentik_absent: marked hecate/<env>/...), and the
    BionicGPT sign-in objects that pillar bionicgpt:authentik names (bionicgpt.authentik_absent).
    Objects without hecate's mark, or that pillar does not name, are never touched.

    When hecate deploys Authentik (hecate:nomad:jobs lists authentik) and Nomad no longer has
    its job (an earlier teardown removed these objects, then purged it), there is nothing to
    remove: its database stays on the hecate_postgres host volume without them. A job that is
    registered but whose Authentik does not answer fails the step, so the jobs are not purged
    with hecate's objects still in the database.
        salt -G roles:hecate-edge state.apply hecate.edge.authentik_objects_absent [test=True] #}
{%- set nomad = salt['hecate_edge.settings']('nomad') %}
{%- set job_id = nomad['job_prefix'] ~ 'authentik' %}
{%- if 'authentik' in nomad['jobs'] and salt['nomad.job'](job_id, namespace=nomad.get('namespace')) is none %}

hecate authentik objects (authentik's job is gone):
  test.show_notification:
    - text: {{ ('no Authentik to remove objects from: its job ' ~ job_id ~ ' is not registered in Nomad (purged by a teardown); its database stays on its volume') | yaml_dquote }}
{%- else %}
include:
  - hecate.authentik_absent
  - bionicgpt.authentik_absent
{%- endif %}
