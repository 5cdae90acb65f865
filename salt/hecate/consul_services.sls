{#- External services (not run by Nomad) in Consul, from pillar hecate:consul:services
    (replaces the hand-run register-external-services.sh). Runs on a minion whose
    hecate:connections:consul reaches the agent the services belong to. #}
{%- set services = ((pillar.get('hecate') or {}).get('consul') or {}).get('services') or {} %}
{%- for sid, svc in services | dictsort %}

consul service {{ sid }}:
{%- if svc.get('ensure', 'present') == 'absent' %}
  consul_service.absent:
    - name: {{ sid | json }}
{%- else %}
  consul_service.registered:
    - name: {{ sid | json }}
    - service_name: {{ svc.get('name', sid) | json }}
    - address: {{ svc.get('address') | json }}
    - port: {{ svc.get('port') | json }}
    - tags: {{ svc.get('tags', []) | json }}
    - meta: {{ svc.get('meta', {}) | json }}
    - checks: {{ svc.get('checks', []) | json }}
    - weights: {{ svc.get('weights') | json }}
    - enable_tag_override: {{ svc.get('enable_tag_override', False) | json }}
{%- endif %}
{%- endfor %}
{%- if not services %}

consul services (none in pillar):
  test.nop: []
{%- endif %}
