{%- from 'hecate.sls' import chat_domain with context %}
# The lab's copy of pillar/env/dev.sls: no lab minion is in 'dev'; the tests validate
# the rules of that environment (prod refuses plain http, ...) against it.
hecate:
  global:
    environment: dev
  # Who belongs to this environment, per role: minion ids (or globs). Grains are set by the
  # minion itself, so `roles`/`hecate_env` only claim a role; a minion is targeted, gets its
  # role's states and becomes a WireGuard peer only if it is listed here. Put your ids here.
  members:
    hecate-edge: [cloud-dev]
    bionicgpt-node: [local-dev]

# oauth2-proxy may run on a developer's workstation.
bionicgpt:
  authentik:
    provider:
      redirect_uris:
        - https://{{ chat_domain }}/oauth2/callback
        - http://localhost:4180/oauth2/callback
