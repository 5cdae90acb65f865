{#- Orchestration step "generated secrets" of orch.hecate, on the edge: when hecate deploys
    Authentik, the secrets hecate:authentik points at (AUTHENTIK_SECRET_KEY, the database
    password, akadmin's bootstrap password, hecate's API token) are generated into Vault if
    they are missing. Each is read once by its consumer (Authentik's first start, PostgreSQL's
    initdb), so a run never regenerates or rotates them: `rotate` naming one fails.
        salt -G roles:hecate-edge state.apply hecate.edge.secrets [test=True] #}
{%- from "hecate/generated_secrets.jinja" import generated_secrets with context %}
{{ generated_secrets(salt['hecate_edge.secrets'](), 'hecate edge') }}

hecate edge secrets are never rotated:
  hecate_edge.secrets_fixed:
    - rotate: {{ (pillar.get('rotate') or []) | json }}
