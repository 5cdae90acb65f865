{#- Teardown with purge_secrets: true only (otherwise Vault keeps everything): the secrets
    hecate made for BionicGPT - the generated ones of bionicgpt:secrets and the OAuth2 client
    id/secret the provider wrote at bionicgpt:authentik:provider:credentials. Secrets the
    operator stored (references hecate does not generate) are never touched.
        salt -G roles:bionicgpt-node state.apply bionicgpt.secrets_absent [test=True] #}
{%- from "hecate/generated_secrets.jinja" import purged_secrets with context %}
{%- set bg = pillar.get('bionicgpt') or {} %}
{%- set provider = (bg.get('authentik') or {}).get('provider') or {} %}
{%- set keys = [] %}
{%- for name, spec in (bg.get('secrets') or {}) | dictsort %}
{%- do keys.append((spec.path, spec.key)) %}
{%- endfor %}
{%- if provider.get('credentials') %}
{%- do keys.extend([(provider["credentials"], "client_id"), (provider["credentials"], "client_secret")]) %}
{%- endif %}
{{ purged_secrets(keys, 'bionicgpt') }}
