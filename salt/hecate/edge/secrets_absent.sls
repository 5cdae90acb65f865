{#- Teardown of orch.hecate with purge_secrets: true only (otherwise Vault keeps everything):
    the secrets hecate.edge.secrets generated for the edge's Authentik (AUTHENTIK_SECRET_KEY,
    the database password, akadmin's bootstrap password, hecate's API token), each key removed
    by a new version of its secret (check-and-set). Secrets the operator stored and the agents'
    generated secrets (hecate:secrets) are never touched.

    Their consumers read them once (PostgreSQL's initdb, Authentik's first start) and keep
    them in the data on the host volumes, which the teardown leaves: purge them only with
    that data (or never deploy on it again) - a deployment on the old database with new values
    cannot log in to it.
        salt -G roles:hecate-edge state.apply hecate.edge.secrets_absent [test=True] #}
{%- from "hecate/generated_secrets.jinja" import purged_secrets with context %}
{%- set keys = [] %}
{%- for name, spec in salt['hecate_edge.secrets']() | dictsort %}
{%- do keys.append((spec.path, spec.key)) %}
{%- endfor %}
{{ purged_secrets(keys, 'hecate edge') }}
