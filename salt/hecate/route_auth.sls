{#- The Authentik side of the protected Caddy routes (docs/systems/authentik.md, "Routes behind
    Authentik"): for each route with `auth` (or `forward_auth: true`) in
    hecate:reverse_proxy:caddy, a proxy provider for its domain, an application, the group
    bindings and the provider on the outpost. Runs on the cloud node before hecate.caddy
    (the orchestration's authentik step), so a route goes live in Caddy only once Authentik
    can answer for it; objects of routes that lost their protection are removed by
    hecate.authentik_prune, after Caddy:
        salt -G roles:hecate-edge state.apply hecate.route_auth [test=True] #}
include:
  - hecate

hecate route auth:
  authentik_route_auth.managed:
    - require:
      - hecate: hecate pillar is valid
