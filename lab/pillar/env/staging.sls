# The lab's copy of pillar/env/staging.sls: no lab minion is in 'staging'; the tests validate
# the rules of that environment (prod refuses plain http, ...) against it.
hecate:
  global:
    environment: staging
  # Who belongs to this environment, per role: minion ids (or globs). Grains are set by the
  # minion itself, so `roles`/`hecate_env` only claim a role; a minion is targeted, gets its
  # role's states and becomes a WireGuard peer only if it is listed here. Put your ids here.
  members:
    hecate-edge: [cloud-staging]
    bionicgpt-node: [local-staging]
