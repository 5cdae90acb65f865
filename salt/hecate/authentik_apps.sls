{#- Applications that sign their users in with Authentik themselves (OIDC or SAML), from pillar
    hecate:authentik:applications (docs/systems/authentik.md, "Applications with their own
    single sign-on"): per entry a provider and an application marked hecate/<env>/app/<name>,
    the group bindings (only those groups get in), and in Vault at `credentials` what the
    application reads (OAuth2 client id and secret; SAML metadata URL, entity id, SSO URL,
    certificate). Runs on the cloud node in the orchestration's authentik step; entries
    removed from pillar are deleted by hecate.authentik_prune.
        salt -G roles:hecate-edge state.apply hecate.authentik_apps [test=True] #}
{%- set hecate = pillar.get('hecate', {}) %}
{%- set apps = (hecate.get('authentik') or {}).get('applications') or {} %}
{%- set env = (hecate.get('global') or {}).get('environment') or grains.get('hecate_env') %}
include:
  - hecate
{%- for name, app in apps | dictsort %}
{%- set mark = 'hecate/' ~ env ~ '/app/' ~ name %}
{%- set slug = app.get('slug') or name %}
{%- set kind = 'saml' if app.get('protocol') == 'saml' else 'oauth2' %}

authentik app {{ name }} provider:
{%- if kind == 'oauth2' %}
  authentik_oauth2_provider.present:
    - name: {{ mark | yaml_dquote }}
    - authorization_flow: {{ app.get('flow', 'default-provider-authorization-implicit-consent') | yaml_dquote }}
    - invalidation_flow: {{ app.get('invalidation_flow', 'default-provider-invalidation-flow') | yaml_dquote }}
    - redirect_uris: {{ app.get('redirect_uris', []) | json }}
{%- if app.get('credentials') %}
    - credentials: {{ app['credentials'] | yaml_dquote }}
{%- endif %}
    - client_type: {{ app.get('client_type', 'confidential') | yaml_dquote }}
    - scopes: {{ app.get('scopes', ['openid', 'email', 'profile']) | json }}
    - property_mappings: {{ app.get('property_mappings', []) | json }}
{%- for key in ('access_code_validity', 'access_token_validity', 'refresh_token_validity', 'sub_mode', 'issuer_mode', 'include_claims_in_id_token', 'signing_key') %}
{%- if app.get(key) is not none %}
    - {{ key }}: {{ app[key] | json }}
{%- endif %}
{%- endfor %}
{%- else %}
  authentik_saml_provider.present:
    - name: {{ mark | yaml_dquote }}
    - application: {{ slug | yaml_dquote }}
    - acs_url: {{ app.get('acs_url') | yaml_dquote }}
    - authorization_flow: {{ app.get('flow', 'default-provider-authorization-implicit-consent') | yaml_dquote }}
    - invalidation_flow: {{ app.get('invalidation_flow', 'default-provider-invalidation-flow') | yaml_dquote }}
{%- for key in ('audience', 'issuer', 'sp_binding', 'property_mappings', 'name_id_mapping', 'signing_key', 'sign_assertion', 'sign_response', 'digest_algorithm', 'signature_algorithm', 'credentials') %}
{%- if app.get(key) is not none %}
    - {{ key }}: {{ app[key] | json }}
{%- endif %}
{%- endfor %}
{%- endif %}
    - require:
      - hecate: hecate pillar is valid

authentik app {{ name }}:
  authentik_application.present:
    - name: {{ app.get('name', name) | yaml_dquote }}
    - slug: {{ slug | yaml_dquote }}
    - provider_name: {{ mark | yaml_dquote }}
    - provider_type: {{ kind }}
    - owner: {{ mark | yaml_dquote }}
    - policy_engine_mode: any
{%- if app.get('launch_url') %}
    - launch_url: {{ app['launch_url'] | yaml_dquote }}
{%- endif %}
{%- if app.get('meta_description') is not none %}
    - description: {{ app['meta_description'] | yaml_dquote }}
{%- endif %}
{%- if app.get('icon') %}
    - icon: {{ app['icon'] | yaml_dquote }}
{%- endif %}
    - require:
      - authentik_{{ 'saml' if kind == 'saml' else 'oauth2' }}_provider: authentik app {{ name }} provider

authentik app {{ name }} access:
  authentik_binding.present:
    - name: {{ ('access to ' ~ slug) | yaml_dquote }}
    - application: {{ slug | yaml_dquote }}
    - groups: {{ app.get('groups', []) | json }}
    - exclusive: true
    - require:
      - authentik_application: authentik app {{ name }}
{%- endfor %}
