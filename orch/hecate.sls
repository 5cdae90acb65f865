{#- salt-run state.orch orch.hecate pillar='{"env": "prod"}' [test=True]

    The Hecate edge alone, on the cloud node: its generated secrets, Authentik objects (the
    BionicGPT SSO objects and the protected routes' providers and applications, before the
    Caddy routes that ask Authentik about them; those of routes no longer protected deleted
    after the Caddy routes), external Consul services, DNS records (hecate:dns; records of
    removed routes deleted after the Caddy routes), Caddy routes, nginx streams and coturn.
    Same lock, preview and recovery rules as orch.bionicgpt. (Routes whose upstream is a Consul service need that
    service's passing instances: deploy orch.bionicgpt first.) #}
{%- from "orch/steps.jinja" import state_step, runner_step with context %}
{%- set env = pillar.get('env') %}
{%- if not env %}
{{ raise('orch.hecate needs an environment: pillar=\'{"env": "<lab|dev|staging|prod>"}\'') }}
{%- endif %}
{%- set run_id = salt['hecate.new_run_id']() %}
{%- set run = {'hecate_run': {'id': run_id, 'env': env}} %}
{%- set run_kw = {'env': env, 'run_id': run_id} %}

validate:
  hecate.validated:
    - env: {{ env }}

{{ state_step('preflight', env, run, 'hecate-edge', ['hecate.preflight'], ['hecate: validate']) }}
{{ runner_step('lock', 'hecate.lock', run_kw, ['salt: preflight']) }}
{{ state_step('secrets_edge', env, run, 'hecate-edge', ['hecate.secrets'], ['salt: lock']) }}
{{ state_step('authentik', env, run, 'hecate-edge', ['bionicgpt.authentik', 'hecate.route_auth', 'hecate.authentik_apps'], ['salt: lock']) }}
{{ state_step('consul_services', env, run, 'hecate-edge', ['hecate.consul_services'], ['salt: lock']) }}
{{ state_step('dns', env, run, 'hecate-edge', ['hecate.dns'], ['salt: lock']) }}
{{ state_step('caddy', env, run, 'hecate-edge', ['hecate.caddy'], ['salt: authentik', 'salt: consul_services', 'salt: dns']) }}
{{ state_step('dns_prune', env, run, 'hecate-edge', ['hecate.dns_prune'], ['salt: caddy']) }}
{{ state_step('authentik_prune', env, run, 'hecate-edge', ['hecate.authentik_prune'], ['salt: caddy']) }}
{{ state_step('streams', env, run, 'hecate-edge', ['hecate.nginx', 'hecate.coturn'], ['salt: secrets_edge', 'salt: consul_services']) }}
{{ runner_step('record', 'hecate.record', run_kw, ['salt: caddy', 'salt: dns_prune', 'salt: authentik_prune', 'salt: streams'], onchanges=['salt: secrets_edge', 'salt: authentik', 'salt: consul_services', 'salt: dns', 'salt: caddy', 'salt: dns_prune', 'salt: authentik_prune', 'salt: streams']) }}
{{ runner_step('unlock', 'hecate.unlock', run_kw, ['salt: record']) }}

caddy_rollback:
  salt.function:
    - name: caddy.rollback
    - tgt: {{ salt['hecate.target']('hecate-edge', env=env) | json }}
    - tgt_type: compound
    - kwarg: {run_id: {{ run_id | json }}}
    - require:
      - salt: lock
    - onfail:
      - salt: caddy
      - salt: streams

{{ runner_step('unlock_after_failure', 'hecate.unlock', dict(run_kw, leave_others=True), ['salt: lock'], onfail=['salt: secrets_edge', 'salt: authentik', 'salt: consul_services', 'salt: dns', 'salt: caddy', 'salt: dns_prune', 'salt: authentik_prune', 'salt: streams', 'salt: record']) }}
