{#- Second phase of the routes' Authentik side: delete what hecate made for routes that are no
    longer protected (or gone) in this environment, once Caddy no longer sends their requests
    to the outpost (the orchestration runs it after the Caddy step; see hecate/route_auth.sls).
        salt -G roles:hecate-edge state.apply hecate.route_auth_prune [test=True] #}
include:
  - hecate

hecate route auth removed:
  authentik_route_auth.pruned:
    - require:
      - hecate: hecate pillar is valid
