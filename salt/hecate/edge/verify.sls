{#- Orchestration step "verify" of orch.hecate, on the edge: a request through Caddy to
    Authentik's health endpoint (hecate:verify:probe, e.g.
    https://hera.cybermonkey.dev/-/health/live/), so Caddy's route, its certificate and
    Authentik answer together. Reads only. #}
{%- set verify = (pillar.get('hecate') or {}).get('verify') or {} %}
{%- set probe = verify.get('probe') or {} %}
include:
  - hecate
{%- if probe.get('url') %}

authentik answers through caddy:
  hecate.http_ok:
    - name: {{ probe['url'] | json }}
    {%- if probe.get('host') %}
    - host: {{ probe['host'] | json }}
    {%- endif %}
    - status: [200, 204]
    - timeout: {{ verify.get('timeout', 120) }}
    {%- if probe.get('ca_bundle') %}
    - ca_bundle: {{ probe['ca_bundle'] | json }}
    {%- endif %}
    - require:
      - hecate: hecate pillar is valid
{%- else %}

hecate edge verify (no hecate:verify:probe in pillar):
  test.nop: []
{%- endif %}
