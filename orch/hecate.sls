{#- salt-run state.orch orch.hecate pillar='{"env": "prod"}' [test=True]

    The Hecate edge, from a bare cloud node to a working edge (docs/systems/edge.md): the
    tunnel and the agents, then the edge's own Nomad jobs (PostgreSQL, Authentik, Caddy:
    hecate:nomad:jobs; none when the edge runs by other means), then their configuration:
    Authentik objects (the BionicGPT SSO objects, the protected routes'
    providers and applications, the SSO apps; those no longer wanted deleted after the Caddy
    routes), external Consul services, DNS records, Caddy routes, nginx streams and
    coturn, and a request through Caddy to Authentik. Same lock, preview and recovery rules
    as orch.bionicgpt: test=True previews every step (on a bare edge the Authentik objects and
    Caddy routes as to be created once their jobs run) and writes nothing; a failure puts back
    the Caddy routes and the edge jobs' previous versions and releases the lock. (Routes whose
    upstream is a Consul service need that service's passing instances: deploy orch.bionicgpt
    for the BionicGPT route.)

    salt-run state.orch orch.hecate pillar='{"env": "prod", "ensure": "absent"}' [test=True]

    With "ensure": "absent" it removes what it deployed instead, in reverse order
    (orch/teardown.jinja, docs/teardown.md): Caddy routes, DNS records, the Authentik objects
    hecate owns (while Authentik still runs), external Consul services, nginx's and coturn's
    files hecate wrote (nginx and coturn stopped), then the edge's own Nomad jobs, purged (their
    host volumes keep their data); the generated secrets of the edge's jobs only with
    "purge_secrets": true. Agents and WireGuard stay. #}
{%- from "orch/steps.jinja" import state_step, runner_step with context %}
{%- from "orch/teardown.jinja" import check_ensure, teardown with context %}
{%- set env = pillar.get('env') %}
{%- if not env %}
{{ raise('orch.hecate needs an environment: pillar=\'{"env": "<lab|dev|staging|prod>"}\'') }}
{%- endif %}
{{- check_ensure('orch.hecate') }}
{%- set run_id = salt['hecate.new_run_id']() %}
{#- routes to services that orch.bionicgpt deploys wait for them (caddy_routes missing_services) #}
{%- set run = {'hecate_run': {'id': run_id, 'env': env, 'missing_services': 'keep'}} %}
{%- set run_kw = {'env': env, 'run_id': run_id} %}
{%- if pillar.get('ensure', 'present') == 'absent' %}
{#- Caddy's routes first (no route points at what goes next), the Authentik objects while
    Authentik runs (before its job is purged), the edge's jobs last. #}
{%- set steps = [
    ('caddy', 'hecate-edge', ['hecate.edge.caddy_routes_absent']),
    ('dns', 'hecate-edge', ['hecate.dns_absent']),
    ('authentik', 'hecate-edge', ['hecate.edge.authentik_objects_absent']),
    ('consul_services', 'hecate-edge', ['hecate.consul_services_absent']),
    ('streams', 'hecate-edge', ['hecate.nginx_absent', 'hecate.coturn_absent']),
    ('edge_jobs', 'hecate-edge', ['hecate.edge.jobs_absent']),
] %}
{%- if pillar.get('purge_secrets') %}
{%- do steps.append(('secrets_edge', 'hecate-edge', ['hecate.edge.secrets_absent', 'hecate.app_credentials_absent'])) %}
{%- endif %}
{{ teardown(env, run, run_kw, steps) }}
{%- else %}

# 1. The environment's pillar is valid (on the master) ...
validate:
  hecate.validated:
    - env: {{ env }}
    - run_id: {{ run_id | json }}

# ... and the edge reaches the APIs it will call (Nomad instead of Caddy/Authentik when
#     hecate deploys them: on a bare edge they do not run yet).
{{ state_step('preflight', env, run, None, ['hecate.preflight'], ['hecate: validate']) }}
{{ runner_step('lock', 'hecate.lock', run_kw, ['salt: preflight']) }}

# 2. WireGuard between the edge and the nodes (keys, tunnel, handshake).
{{ state_step('wireguard_keys', env, run, None, ['wireguard.keys'], ['salt: lock']) }}
{{ state_step('wireguard', env, run, None, ['wireguard'], ['salt: wireguard_keys']) }}
{{ state_step('wireguard_verify', env, run, None, ['wireguard.verify'], ['salt: wireguard']) }}

# 3. Consul and Nomad agents (the edge's Nomad client runs the edge's jobs). The edge's
#    agent secrets (Consul's gossip key) come first: the agents' configs need them.
{{ state_step('secrets_edge', env, run, 'hecate-edge', ['hecate.secrets'], ['salt: lock']) }}
{{ state_step('consul_agents', env, run, None, ['consul.agent'], ['salt: wireguard_verify', 'salt: secrets_edge']) }}
{{ state_step('nomad_agents', env, run, None, ['nomad.agent'], ['salt: consul_agents']) }}

# 4. The secrets of the edge's jobs (Authentik's secret key, database password, bootstrap
#    password and hecate's API token): generated once, never rotated.
{{ state_step('edge_secrets', env, run, 'hecate-edge', ['hecate.edge.secrets'], ['salt: lock']) }}

# 5. PostgreSQL (and Redis for Authentik before 2025.10) with the backup job (current before
#    an Authentik upgrade backs the database up with it), then Authentik: planned, registered,
#    followed until healthy, reverted on failure (an upgrade: the database backed up first and
#    restored after a failed deployment); then until its API accepts hecate's token.
{{ state_step('edge_database', env, run, 'hecate-edge', ['hecate.edge.database', 'hecate.edge.backup'], ['salt: nomad_agents', 'salt: edge_secrets']) }}
{{ state_step('edge_authentik', env, run, 'hecate-edge', ['hecate.edge.authentik'], ['salt: edge_database']) }}

# 6. Caddy (the stock binary from its bootstrap, --resume), until its admin API answers.
{{ state_step('edge_caddy', env, run, 'hecate-edge', ['hecate.edge.caddy'], ['salt: edge_authentik']) }}

# 7. Authentik objects: groups, scope mapping, provider, application, bindings, enrollment;
#    the protected routes' providers and applications and the SSO apps, before Caddy asks
#    the outpost about them.
{{ state_step('authentik', env, run, 'hecate-edge', ['hecate.edge.authentik_objects'], ['salt: edge_authentik']) }}

# 8. External Consul services; DNS records (hecate:dns) before Caddy asks for certificates.
{{ state_step('consul_services', env, run, 'hecate-edge', ['hecate.consul_services'], ['salt: consul_agents']) }}
{{ state_step('dns', env, run, 'hecate-edge', ['hecate.dns'], ['salt: lock']) }}

# 9. Caddy routes through the admin API, in one guarded write.
{{ state_step('caddy', env, run, 'hecate-edge', ['hecate.caddy'], ['salt: edge_caddy', 'salt: authentik', 'salt: consul_services', 'salt: dns']) }}
{{ state_step('dns_prune', env, run, 'hecate-edge', ['hecate.dns_prune'], ['salt: caddy']) }}
{{ state_step('authentik_prune', env, run, 'hecate-edge', ['hecate.authentik_prune'], ['salt: caddy']) }}

# 10. Streams (nginx) and coturn.
{{ state_step('streams', env, run, 'hecate-edge', ['hecate.nginx', 'hecate.coturn'], ['salt: secrets_edge', 'salt: consul_services']) }}

# 11. Verify: a request through Caddy to Authentik's health endpoint.
{{ state_step('verify', env, run, 'hecate-edge', ['hecate.edge.verify'], ['salt: caddy']) }}

# 12. Record the deployment (only when something changed) and release the lock.
{%- set changing = ['salt: wireguard', 'salt: secrets_edge', 'salt: consul_agents', 'salt: nomad_agents', 'salt: edge_secrets', 'salt: edge_database', 'salt: edge_authentik', 'salt: edge_caddy', 'salt: authentik', 'salt: consul_services', 'salt: dns', 'salt: caddy', 'salt: dns_prune', 'salt: authentik_prune', 'salt: streams'] %}
{{ runner_step('record', 'hecate.record', run_kw, ['salt: verify', 'salt: dns_prune', 'salt: authentik_prune', 'salt: streams'], onchanges=changing) }}
{{ runner_step('unlock', 'hecate.unlock', run_kw, ['salt: record']) }}

# -- when a step fails after this run took the lock: put back what it changed, release the lock --
# The Caddy step failed: each edge where it failed puts back what this run wrote there; an
# edge that applied the routes keeps them. The record says which edge has which routes.
caddy_rollback:
  salt.function:
    - name: caddy.rollback
    - tgt: {{ salt['hecate.target']('hecate-edge', env=env, run_id=run_id) | json }}
    - tgt_type: compound
    - kwarg: {run_id: {{ run_id | json }}, only_failed: true}
    - require:
      - salt: lock
    - onfail:
      - salt: caddy

{#- (only when the Caddy step itself ran and failed: its requisites passed) #}
{{ runner_step('record_failure', 'hecate.record', dict(run_kw, status='failed', step='caddy'), ['salt: lock', 'salt: edge_caddy', 'salt: authentik', 'salt: consul_services', 'salt: dns'], onfail=['salt: caddy']) }}

# The routes went out to every edge but a step after them failed: every edge goes back.
caddy_rollback_after:
  salt.function:
    - name: caddy.rollback
    - tgt: {{ salt['hecate.target']('hecate-edge', env=env) | json }}
    - tgt_type: compound
    - kwarg: {run_id: {{ run_id | json }}}
    - require:
      - salt: lock
      - salt: caddy
    - onfail:
      - salt: streams
      - salt: verify

{{ state_step('edge_jobs_restore', env, run, 'hecate-edge', ['hecate.edge.revert'], ['salt: lock'], onfail=['salt: edge_database', 'salt: edge_authentik', 'salt: edge_caddy', 'salt: authentik', 'salt: consul_services', 'salt: caddy', 'salt: streams', 'salt: verify']) }}

{{ runner_step('unlock_after_failure', 'hecate.unlock', dict(run_kw, leave_others=True), ['salt: lock'], onfail=['salt: wireguard_keys', 'salt: wireguard', 'salt: wireguard_verify', 'salt: secrets_edge', 'salt: consul_agents', 'salt: nomad_agents', 'salt: edge_secrets', 'salt: edge_database', 'salt: edge_authentik', 'salt: edge_caddy', 'salt: authentik', 'salt: consul_services', 'salt: dns', 'salt: caddy', 'salt: dns_prune', 'salt: authentik_prune', 'salt: streams', 'salt: verify', 'salt: record']) }}
{%- endif %}
