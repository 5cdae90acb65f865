{#- The cloud node's Caddy routes from pillar hecate:reverse_proxy:caddy (docs/systems/caddy.md).
    The orchestration applies it with salt.state (so test=True previews it exactly); on a
    later failure its onfail step calls caddy.rollback on the same minion. #}
include:
  - hecate

hecate caddy routes:
  caddy_routes.managed:
    {#- orch.hecate runs before the services behind some routes exist (BionicGPT's): their
        routes wait; orch.bionicgpt, which deploys those services, requires them #}
    - missing_services: {{ (pillar.get('hecate_run') or {}).get('missing_services', 'fail') | json }}
    - require:
      - hecate: hecate pillar is valid
