{#- Orchestration step "Authentik objects" of orch.hecate, on the edge: groups, scope mapping,
    provider, application, bindings, enrollment (bionicgpt.authentik), the protected routes'
    Authentik side (hecate.route_auth) and the SSO apps (hecate.authentik_apps), once
    Authentik is up.

    Under test=True on an edge where hecate deploys Authentik and Authentik does not answer
    yet (a bare edge: its job is deployed by the same run), each object is previewed as to be
    created once Authentik is up (hecate_edge.pending, same state IDs) instead of failing
    because nothing answers; a real run always applies bionicgpt.authentik. #}
{%- set deploys = 'authentik' in (salt['hecate_edge.settings']('nomad').get('jobs') or []) %}
{%- set pending = opts.get('test') and deploys and not salt['hecate_edge.authentik_status']().get('token') %}
{%- if not pending %}
include:
  - bionicgpt.authentik
  - hecate.route_auth
  - hecate.authentik_apps
{%- else %}
{%- set ak = pillar.get('bionicgpt', {}).get('authentik', {}) %}
{%- set objects = [] %}
{%- for name in (ak.get('groups') or {}) %}{% do objects.append(('authentik group ' ~ name, 'group', name)) %}{% endfor %}
{%- if ak.get('scope_mapping') %}{% do objects.append(('authentik scope mapping', 'scope mapping', ak['scope_mapping']['name'])) %}{% endif %}
{%- if ak.get('provider') %}{% do objects.append(('authentik oauth2 provider', 'OAuth2 provider', ak['provider']['name'])) %}{% endif %}
{%- if ak.get('application') %}{% do objects.append(('authentik application', 'application', ak['application']['slug'])) %}{% endif %}
{%- if ak.get('application') and (ak.get('bindings') or {}).get('groups') %}{% do objects.append(('authentik bindings', 'policy bindings', 'access to ' ~ ak['application']['slug'])) %}{% endif %}
{%- if ak.get('enrollment') and ak['enrollment'].get('enabled', True) %}{% do objects.append(('authentik enrollment', 'enrollment flow', ak['enrollment'].get('slug', 'bionicgpt-enrollment'))) %}{% endif %}
{%- for name in (ak.get('test_users') or {}) %}{% do objects.append(('authentik test user ' ~ name, 'user', name)) %}{% endfor %}
{%- set caddy = ((pillar.get('hecate') or {}).get('reverse_proxy') or {}).get('caddy') or {} %}
{%- for route in caddy.get('routes') or [] %}
{%- if route is mapping and route.get('enabled', True) and (route.get('auth') is mapping or route.get('forward_auth')) %}
{%- set rname = route.get('name') or route.get('service') or route.get('domain') or (route.get('domains') or ['?'])[0] %}
{%- do objects.append(('authentik route auth ' ~ rname, 'proxy provider, application and bindings of protected route', rname)) %}
{%- endif %}
{%- endfor %}
{%- for name in (((pillar.get('hecate') or {}).get('authentik') or {}).get('applications') or {}) %}{% do objects.append(('authentik sso application ' ~ name, 'SSO application', name)) %}{% endfor %}
{%- for id, kind, name in objects %}

{{ id }}:
  hecate_edge.pending:
    - name: {{ name | yaml_dquote }}
    - kind: {{ kind | yaml_dquote }}
{%- endfor %}
{%- if not objects %}

authentik objects (none in pillar):
  test.nop: []
{%- endif %}
{%- endif %}
