{#- Teardown (ensure: absent): the external services of hecate:consul:services deregistered,
    each only if hecate registered it (its meta carries hecate-checks); a service another
    tool registered under the same ID is left alone and named. Services Nomad registered go
    with their jobs (bionicgpt.jobs_absent).
        salt -G roles:hecate-edge state.apply hecate.consul_services_absent [test=True] #}
{%- set services = ((pillar.get('hecate') or {}).get('consul') or {}).get('services') or {} %}
{%- for sid in services | sort %}

consul service {{ sid }} removed:
  consul_service.absent:
    - name: {{ sid | json }}
    - owned: true
{%- endfor %}
{%- if not services %}

consul services (none in pillar):
  test.nop: []
{%- endif %}
