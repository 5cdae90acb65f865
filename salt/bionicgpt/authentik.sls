{#- BionicGPT's single sign-on objects in Authentik, from pillar bionicgpt:authentik.
    Runs on the cloud node (roles: hecate-edge), where the Authentik API is reached:
        salt -C 'G@roles:hecate-edge and G@hecate_env:prod' state.apply bionicgpt.authentik [test=True]
    Order: groups -> scope mapping -> OAuth2 provider (credentials to Vault) ->
    application -> bindings (only the prefixed groups get in) -> self-enrollment -> lab
    test users. Every state writes only what differs; test=True previews exactly that.
    The pillar is read through the renderer's `pillar` (salt['pillar.get'] masks values
    on Salt 3008). -#}
{%- set ak = pillar.get('bionicgpt', {}).get('authentik', {}) %}
{%- set prefix = ak.get('group_prefix', '') %}
{%- set groups = ak.get('groups') or {} %}
{%- set mapping = ak.get('scope_mapping') or {} %}
{%- set provider = ak.get('provider') or {} %}
{%- set app = ak.get('application') or {} %}
{%- set bindings = ak.get('bindings') or {} %}
{%- set enrollment = ak.get('enrollment') or {} %}
{%- set users = ak.get('test_users') or {} %}

bionicgpt authentik pillar is valid:
  hecate.validated: []

{%- for name, spec in groups.items() %}

authentik group {{ name }}:
  authentik_group.present:
    - name: {{ name | yaml_dquote }}
    - prefix: {{ prefix | yaml_dquote }}
    - attributes: {{ (spec or {}).get('attributes', {}) | json }}
{%- if (spec or {}).get('is_superuser') is not none %}
    - is_superuser: {{ spec.get('is_superuser') | json }}
{%- endif %}
{%- if (spec or {}).get('parent') is not none %}
    - parent: {{ spec.get('parent') | yaml_dquote }}
{%- endif %}
    - require:
      - hecate: bionicgpt authentik pillar is valid
{%- endfor %}

{%- if mapping %}

authentik scope mapping:
  authentik_scope_mapping.present:
    - name: {{ mapping['name'] | yaml_dquote }}
    - scope_name: {{ mapping.get('scope_name', 'groups') | yaml_dquote }}
    - group_prefix: {{ prefix | yaml_dquote }}
{%- if mapping.get('superadmin_group') %}
    - superadmin_group: {{ mapping['superadmin_group'] | yaml_dquote }}
{%- endif %}
{%- if mapping.get('claim') %}
    - claim: {{ mapping['claim'] | yaml_dquote }}
{%- endif %}
{%- if mapping.get('description') is not none %}
    - description: {{ mapping.get('description', '') | yaml_dquote }}
{%- endif %}
    - require:
      - hecate: bionicgpt authentik pillar is valid
{%- endif %}

{%- if provider %}

authentik oauth2 provider:
  authentik_oauth2_provider.present:
    - name: {{ provider['name'] | yaml_dquote }}
    - authorization_flow: {{ provider['authorization_flow'] | yaml_dquote }}
    - invalidation_flow: {{ provider['invalidation_flow'] | yaml_dquote }}
    - redirect_uris: {{ provider['redirect_uris'] | json }}
    - credentials: {{ provider['credentials'] | yaml_dquote }}
    - client_type: {{ provider.get('client_type', 'confidential') | yaml_dquote }}
    - scopes: {{ provider.get('scopes', ['openid', 'email', 'profile']) | json }}
    - property_mappings: {{ ((provider.get('property_mappings') or []) + ([mapping['name']] if mapping else [])) | json }}
{%- for key in ('authentication_flow', 'access_code_validity', 'access_token_validity', 'refresh_token_validity', 'sub_mode', 'issuer_mode', 'include_claims_in_id_token', 'signing_key') %}
{%- if provider.get(key) is not none %}
    - {{ key }}: {{ provider[key] | json }}
{%- endif %}
{%- endfor %}
    - require:
      - hecate: bionicgpt authentik pillar is valid
{%- if mapping %}
      - authentik_scope_mapping: authentik scope mapping
{%- endif %}
{%- endif %}

{%- if app %}

authentik application:
  authentik_application.present:
    - name: {{ app['name'] | yaml_dquote }}
    - slug: {{ app['slug'] | yaml_dquote }}
{%- if provider %}
    {#- not "provider": Salt takes a state argument of that name for its own (a module swap,
        reloading every module before the state) #}
    - provider_name: {{ provider['name'] | yaml_dquote }}
{%- endif %}
{%- if app.get('launch_url') %}
    - launch_url: {{ app['launch_url'] | yaml_dquote }}
{%- endif %}
{%- for key in ('description', 'publisher', 'group') %}
{%- if app.get(key) is not none %}
    - {{ key }}: {{ app[key] | yaml_dquote }}
{%- endif %}
{%- endfor %}
{%- if app.get('open_in_new_tab') is not none %}
    - open_in_new_tab: {{ app['open_in_new_tab'] | json }}
{%- endif %}
    - policy_engine_mode: {{ app.get('policy_engine_mode', 'any') | yaml_dquote }}
    - require:
      - hecate: bionicgpt authentik pillar is valid
{%- if provider %}
      - authentik_oauth2_provider: authentik oauth2 provider
{%- endif %}
{%- endif %}

{%- if app and bindings.get('groups') %}

authentik bindings:
  authentik_binding.present:
    - name: {{ ('access to ' ~ app['slug']) | yaml_dquote }}
    - application: {{ app['slug'] | yaml_dquote }}
    - groups: {{ bindings['groups'] | json }}
    - prefix: {{ prefix | yaml_dquote }}
    - exclusive: {{ bindings.get('exclusive', False) | json }}
    - require:
      - authentik_application: authentik application
{%- for name in bindings['groups'] if name in groups %}
      - authentik_group: authentik group {{ name }}
{%- endfor %}
{%- endif %}

{%- if enrollment %}

authentik enrollment:
{%- if enrollment.get('enabled', True) %}
  authentik_enrollment.present:
    - name: {{ enrollment.get('slug', 'bionicgpt-enrollment') | yaml_dquote }}
{%- if enrollment.get('name') %}
    - flow_name: {{ enrollment['name'] | yaml_dquote }}
{%- endif %}
{%- if enrollment.get('title') %}
    - title: {{ enrollment['title'] | yaml_dquote }}
{%- endif %}
    - identification_stage: {{ enrollment.get('identification_stage', 'default-authentication-identification') | yaml_dquote }}
{%- if enrollment.get('group') %}
    - group: {{ enrollment['group'] | yaml_dquote }}
{%- endif %}
{%- if enrollment.get('user_type') %}
    - user_type: {{ enrollment['user_type'] | yaml_dquote }}
{%- endif %}
{%- if enrollment.get('captcha') %}
    - captcha: {{ enrollment['captcha'] | json }}
{%- endif %}
    - require:
      - hecate: bionicgpt authentik pillar is valid
{%- if enrollment.get('group') in groups %}
      - authentik_group: authentik group {{ enrollment['group'] }}
{%- endif %}
{%- else %}
  authentik_enrollment.absent:
    - name: {{ enrollment.get('slug', 'bionicgpt-enrollment') | yaml_dquote }}
    - identification_stage: {{ enrollment.get('identification_stage', 'default-authentication-identification') | yaml_dquote }}
    - require:
      - hecate: bionicgpt authentik pillar is valid
{%- endif %}
{%- endif %}

{%- for username, spec in users.items() %}

authentik test user {{ username }}:
  authentik_user.present:
    - name: {{ username | yaml_dquote }}
{%- if spec.get('name') %}
    - display_name: {{ spec['name'] | yaml_dquote }}
{%- endif %}
{%- if spec.get('email') %}
    - email: {{ spec['email'] | yaml_dquote }}
{%- endif %}
{%- if spec.get('attributes') is not none %}
    - attributes: {{ spec['attributes'] | json }}
{%- endif %}
{%- if spec.get('is_active') is not none %}
    - is_active: {{ spec['is_active'] | json }}
{%- endif %}
    - groups: {{ spec.get('groups', []) | json }}
{%- if spec.get('password') %}
    - password: {{ spec['password'] | json }}
{%- endif %}
    - require:
      - hecate: bionicgpt authentik pillar is valid
{%- for name in spec.get('groups', []) if name in groups %}
      - authentik_group: authentik group {{ name }}
{%- endfor %}
{%- endfor %}
