{#- Orchestration step 10, on the cloud node: every BionicGPT service passes its Consul
    checks, and a request through Caddy's route reaches oauth2-proxy. Reads only. #}
{%- set verify = (pillar.get('bionicgpt') or {}).get('verify') or {} %}
{%- set probe = verify.get('probe') or {} %}
include:
  - hecate

bionicgpt services healthy in consul:
  hecate.services_healthy:
    - services: {{ verify.get('services', []) | json }}
    - timeout: {{ verify.get('timeout', 120) }}
    - require:
      - hecate: hecate pillar is valid
{%- if probe.get('url') %}

bionicgpt answers through caddy:
  hecate.http_ok:
    - name: {{ probe['url'] | json }}
    {%- if probe.get('host') %}
    - host: {{ probe['host'] | json }}
    {%- endif %}
    - timeout: {{ verify.get('timeout', 120) }}
    {%- if probe.get('ca_bundle') %}
    - ca_bundle: {{ probe['ca_bundle'] | json }}
    {%- endif %}
    - require:
      - hecate: bionicgpt services healthy in consul
{%- endif %}
