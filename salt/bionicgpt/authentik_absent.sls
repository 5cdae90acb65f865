{#- Teardown (ensure: absent) of BionicGPT's single sign-on objects in Authentik, on the cloud
    node, after the Caddy routes are gone: the reverse of bionicgpt.authentik - test users,
    self-enrollment (flow, stages, prompts; the identification stage no longer links to it),
    the bindings of the listed groups, the application, the OAuth2 provider, the scope mapping,
    the groups. Exactly the objects pillar bionicgpt:authentik names (those hecate made from
    it); anything else - other groups, even with the group prefix, users who enrolled
    themselves, other applications - is never touched.
        salt -G roles:hecate-edge state.apply bionicgpt.authentik_absent [test=True]
    The client id/secret the provider wrote to Vault stay unless the teardown purges secrets
    (bionicgpt.secrets_absent). -#}
{%- set ak = pillar.get('bionicgpt', {}).get('authentik', {}) %}
{%- set groups = ak.get('groups') or {} %}
{%- set mapping = ak.get('scope_mapping') or {} %}
{%- set provider = ak.get('provider') or {} %}
{%- set app = ak.get('application') or {} %}
{%- set bindings = ak.get('bindings') or {} %}
{%- set enrollment = ak.get('enrollment') or {} %}
{%- set users = ak.get('test_users') or {} %}

bionicgpt authentik pillar is valid:
  hecate.validated: []

{%- for username in users | sort %}

authentik test user {{ username }} removed:
  authentik_user.absent:
    - name: {{ username | yaml_dquote }}
    - require:
      - hecate: bionicgpt authentik pillar is valid
{%- endfor %}

{%- if enrollment %}

authentik enrollment removed:
  authentik_enrollment.absent:
    - name: {{ enrollment.get('slug', 'bionicgpt-enrollment') | yaml_dquote }}
    - identification_stage: {{ enrollment.get('identification_stage', 'default-authentication-identification') | yaml_dquote }}
    - require:
      - hecate: bionicgpt authentik pillar is valid
{%- endif %}

{%- if app and bindings.get('groups') %}

authentik bindings removed:
  authentik_binding.absent:
    - name: {{ ('access to ' ~ app['slug']) | yaml_dquote }}
    - application: {{ app['slug'] | yaml_dquote }}
    - groups: {{ bindings['groups'] | json }}
    - require:
      - hecate: bionicgpt authentik pillar is valid
{%- endif %}

{%- if app %}

authentik application removed:
  authentik_application.absent:
    - name: {{ app['slug'] | yaml_dquote }}
    - require:
      - hecate: bionicgpt authentik pillar is valid
{%- if bindings.get('groups') %}
      - authentik_binding: authentik bindings removed
{%- endif %}
{%- endif %}

{%- if provider %}

authentik oauth2 provider removed:
  authentik_oauth2_provider.absent:
    - name: {{ provider['name'] | yaml_dquote }}
    - require:
      - hecate: bionicgpt authentik pillar is valid
{%- if app %}
      - authentik_application: authentik application removed
{%- endif %}
{%- endif %}

{%- if mapping %}

authentik scope mapping removed:
  authentik_scope_mapping.absent:
    - name: {{ mapping['name'] | yaml_dquote }}
    - require:
      - hecate: bionicgpt authentik pillar is valid
{%- if provider %}
      - authentik_oauth2_provider: authentik oauth2 provider removed
{%- endif %}
{%- endif %}

{%- for name in groups | sort %}

authentik group {{ name }} removed:
  authentik_group.absent:
    - name: {{ name | yaml_dquote }}
    - require:
      - hecate: bionicgpt authentik pillar is valid
{%- for username in users | sort %}
      - authentik_user: authentik test user {{ username }} removed
{%- endfor %}
{%- if enrollment %}
      - authentik_enrollment: authentik enrollment removed
{%- endif %}
{%- if app and bindings.get('groups') %}
      - authentik_binding: authentik bindings removed
{%- endif %}
{%- endfor %}
