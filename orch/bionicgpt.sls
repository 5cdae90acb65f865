{#- salt-run state.orch orch.bionicgpt pillar='{"env": "prod"}' [test=True]
    salt-run state.orch orch.bionicgpt pillar='{"env": "prod", "ensure": "absent"}' [test=True]

    Deploys one environment of the whole stack in the order docs/orchestration.md describes.
    Minions are targeted by grain (role and hecate_env) and by pillar hecate:members (their
    ids, which the master controls; orch/steps.jinja); every step that changes a system is a
    salt.state step applying idempotent hecate states, so test=True previews every step and
    writes nothing. Lock and record are runner steps (imperative; they don't run under
    test=True). A failure stops the steps that need it, and the onfail steps put back what
    this run changed: the previous Caddy routes, the Nomad jobs' previous versions, the lock.

    With "ensure": "absent" it removes what the deployment made instead, in reverse order
    (orch/teardown.jinja): Caddy routes, DNS records, Authentik objects, Nomad jobs (purged),
    external Consul services; generated secrets only with "purge_secrets": true. Agents and
    WireGuard stay. #}
{%- from "orch/steps.jinja" import state_step, runner_step with context %}
{%- from "orch/teardown.jinja" import check_ensure, teardown with context %}
{%- set env = pillar.get('env') %}
{%- if not env %}
{{ raise('orch.bionicgpt needs an environment: pillar=\'{"env": "<lab|dev|staging|prod>"}\'') }}
{%- endif %}
{{- check_ensure('orch.bionicgpt') }}
{%- set ensure = pillar.get('ensure', 'present') %}
{%- set purge_secrets = pillar.get('purge_secrets', False) %}
{%- set run_id = salt['hecate.new_run_id']() %}
{%- set run = {'hecate_run': {'id': run_id, 'env': env}} %}
{%- set run_kw = {'env': env, 'run_id': run_id} %}
{%- if ensure == 'absent' %}
{%- set steps = [
    ('caddy', 'hecate-edge', ['hecate.caddy_absent']),
    ('dns', 'hecate-edge', ['hecate.dns_absent']),
    ('authentik', 'hecate-edge', ['hecate.authentik_absent', 'bionicgpt.authentik_absent']),
    ('nomad_jobs', 'bionicgpt-node', ['bionicgpt.jobs_absent']),
    ('consul_services', 'hecate-edge', ['hecate.consul_services_absent']),
] %}
{%- if purge_secrets %}
{%- do steps.extend([
    ('secrets_edge', 'hecate-edge', ['hecate.app_credentials_absent']),
    ('secrets_node', 'bionicgpt-node', ['bionicgpt.secrets_absent']),
]) %}
{%- endif %}
{{ teardown(env, run, run_kw, steps) }}
{%- else %}

# 1. The pillar of the environment is valid and the secrets hecate doesn't make exist
#    (on the master; runs under test=True too) ...
validate:
  hecate.validated:
    - env: {{ env }}
    - run_id: {{ run_id | json }}

# ... and every node reaches the APIs it will call, with its credentials.
{{ state_step('preflight', env, run, None, ['hecate.preflight'], ['hecate: validate']) }}

# 2. One run per environment at a time (Consul session lock hecate/locks/<env>).
{{ runner_step('lock', 'hecate.lock', run_kw, ['salt: preflight']) }}

# 3. WireGuard: keys made on each node (public keys into the mine), then the tunnel config
#    (peers from the mine, changed live without dropping the tunnel), then a handshake.
{{ state_step('wireguard_keys', env, run, None, ['wireguard.keys'], ['salt: lock']) }}
{{ state_step('wireguard', env, run, None, ['wireguard'], ['salt: wireguard_keys']) }}
{{ state_step('wireguard_verify', env, run, None, ['wireguard.verify'], ['salt: wireguard']) }}

# 5 (before 4: the agents' configs need the gossip key). Generated secrets in Vault: made once,
#    never rotated implicitly.
{{ state_step('secrets_edge', env, run, 'hecate-edge', ['hecate.secrets'], ['salt: lock']) }}
{{ state_step('secrets_node', env, run, 'bionicgpt-node', ['bionicgpt.secrets'], ['salt: lock']) }}

# 4. Consul agents (server on the cloud node, client on the local node, over the tunnel) and
#    the Nomad agent on the local node.
{{ state_step('consul_agents', env, run, None, ['consul.agent'], ['salt: wireguard_verify', 'salt: secrets_edge']) }}
{{ state_step('nomad_agent', env, run, 'bionicgpt-node', ['nomad.agent'], ['salt: consul_agents', 'salt: secrets_node']) }}

# 6. Authentik: groups, scope mapping, OAuth2 provider (client id/secret into Vault),
#    application, bindings, enrollment; the protected routes' proxy providers, applications,
#    bindings and outpost attachments (before Caddy: a route goes live once Authentik
#    answers for it); the applications with their own OIDC/SAML sign-in.
{{ state_step('authentik', env, run, 'hecate-edge', ['bionicgpt.authentik', 'hecate.route_auth', 'hecate.authentik_apps'], ['salt: consul_agents']) }}

# 7. Nomad: database, llm, application - planned, registered with the plan's modify index,
#    followed until healthy; a failed deployment is reverted by the state itself.
{{ state_step('nomad_jobs', env, run, 'bionicgpt-node', ['bionicgpt.jobs'], ['salt: nomad_agent', 'salt: authentik']) }}

# 8. Consul: external services that Nomad does not run.
{{ state_step('consul_services', env, run, 'hecate-edge', ['hecate.consul_services'], ['salt: consul_agents']) }}

# 9. DNS (only with hecate:dns in pillar; a no-op otherwise): every route domain's A/AAAA
#    RRSet at the edge in Hetzner DNS, created or changed before Caddy asks for its
#    certificate; records of removed routes are deleted after Caddy (dns_prune).
{{ state_step('dns', env, run, 'hecate-edge', ['hecate.dns'], ['salt: lock']) }}

#    Caddy: the whole route set in one write guarded by the ETag it read; the BionicGPT
#    route's upstream is oauth2-proxy's passing instances in Consul.
{{ state_step('caddy', env, run, 'hecate-edge', ['hecate.caddy'], ['salt: nomad_jobs', 'salt: consul_services', 'salt: dns']) }}

# 10. Verify: Consul health of every BionicGPT service, a request through the Caddy route.
{{ state_step('verify', env, run, 'hecate-edge', ['bionicgpt.verify'], ['salt: caddy']) }}

#     DNS, second phase: the records of routes gone from pillar, now that Caddy no longer
#     serves them (a no-op without hecate:dns).
{{ state_step('dns_prune', env, run, 'hecate-edge', ['hecate.dns_prune'], ['salt: verify']) }}

#     Authentik, second phase: the objects of routes no longer protected (provider off the
#     outpost, application, provider), now that Caddy no longer asks the outpost about them,
#     and of applications gone from hecate:authentik:applications.
{{ state_step('authentik_prune', env, run, 'hecate-edge', ['hecate.authentik_prune'], ['salt: verify']) }}

# 11. Record the deployment (only when something changed) and release the lock.
{{ runner_step('record', 'hecate.record', run_kw, ['salt: verify', 'salt: dns_prune', 'salt: authentik_prune'], onchanges=['salt: wireguard', 'salt: secrets_edge', 'salt: secrets_node', 'salt: consul_agents', 'salt: nomad_agent', 'salt: authentik', 'salt: nomad_jobs', 'salt: consul_services', 'salt: dns', 'salt: caddy', 'salt: dns_prune', 'salt: authentik_prune']) }}
{{ runner_step('unlock', 'hecate.unlock', run_kw, ['salt: record']) }}

# -- when a step fails after this run took the lock: put back what it changed, release the lock --
# The Caddy step failed: each edge where it failed puts back what this run wrote there; an
# edge that applied the routes keeps them (edges are independent: one edge's Caddy down does
# not take the routes off the others). The record says which edge has which routes.
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
{{ runner_step('record_failure', 'hecate.record', dict(run_kw, status='failed', step='caddy'), ['salt: lock', 'salt: nomad_jobs', 'salt: consul_services', 'salt: dns'], onfail=['salt: caddy']) }}

# The routes went out to every edge but the check after them failed: every edge goes back.
caddy_rollback_verify:
  salt.function:
    - name: caddy.rollback
    - tgt: {{ salt['hecate.target']('hecate-edge', env=env) | json }}
    - tgt_type: compound
    - kwarg: {run_id: {{ run_id | json }}}
    - require:
      - salt: lock
      - salt: caddy
    - onfail:
      - salt: verify

{{ state_step('nomad_restore', env, run, 'bionicgpt-node', ['bionicgpt.jobs_revert'], ['salt: lock'], onfail=['salt: nomad_jobs', 'salt: consul_services', 'salt: caddy', 'salt: verify']) }}

{{ runner_step('unlock_after_failure', 'hecate.unlock', dict(run_kw, leave_others=True), ['salt: lock'], onfail=['salt: wireguard_keys', 'salt: wireguard', 'salt: wireguard_verify', 'salt: secrets_edge', 'salt: secrets_node', 'salt: consul_agents', 'salt: nomad_agent', 'salt: authentik', 'salt: nomad_jobs', 'salt: consul_services', 'salt: dns', 'salt: caddy', 'salt: verify', 'salt: dns_prune', 'salt: authentik_prune', 'salt: record']) }}
{%- endif %}
