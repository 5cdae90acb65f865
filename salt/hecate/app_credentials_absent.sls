{#- Teardown with purge_secrets: true only: what hecate wrote to Vault for the applications of
    hecate:authentik:applications (`credentials`: OAuth2 client_id/client_secret; SAML
    metadata_url, entity_id, sso_url, certificate). The edge's generated secrets (hecate:secrets:
    the Consul gossip key, the coturn secret) stay: the agents and streams that use them stay.
        salt -G roles:hecate-edge state.apply hecate.app_credentials_absent [test=True] #}
{%- from "hecate/generated_secrets.jinja" import purged_secrets with context %}
{%- set apps = ((pillar.get('hecate') or {}).get('authentik') or {}).get('applications') or {} %}
{%- set keys = [] %}
{%- for name, app in apps | dictsort if app.get('credentials') %}
{%- set fields = ['metadata_url', 'entity_id', 'sso_url', 'certificate'] if app.get('protocol') == 'saml' else ['client_id', 'client_secret'] %}
{%- for field in fields %}
{%- do keys.append((app['credentials'], field)) %}
{%- endfor %}
{%- endfor %}
{{ purged_secrets(keys, 'hecate application') }}
