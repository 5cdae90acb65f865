{#- Teardown (ensure: absent) on the cloud node: every hecate route of the edge's Caddy server
    (@id hecate.route.*, from pillar and from Consul) and its access loggers removed in one
    write guarded by the ETag it read; routes without a hecate @id stay. The previous routes
    are kept as a snapshot (the orchestration's onfail step runs caddy.rollback for this run).
        salt -G roles:hecate-edge state.apply hecate.caddy_absent [test=True] #}
include:
  - hecate

hecate caddy routes removed:
  caddy_routes.absent:
    - require:
      - hecate: hecate pillar is valid
