{#- The cloud node's Caddy routes from pillar hecate:reverse_proxy:caddy (docs/systems/caddy.md).
    The orchestration applies it with salt.state (so test=True previews it exactly); on a
    later failure its onfail step calls caddy.rollback on the same minion. #}
include:
  - hecate

hecate caddy routes:
  caddy_routes.managed:
    - require:
      - hecate: hecate pillar is valid
