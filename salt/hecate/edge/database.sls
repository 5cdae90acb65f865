{#- Orchestration step "PostgreSQL" of orch.hecate, on the edge: Authentik's PostgreSQL (job
    hecate-postgresql) and, for Authentik releases before 2025.10, Redis (hecate-redis).
    A no-op when hecate:nomad:jobs does not list them.
        salt -G roles:hecate-edge state.apply hecate.edge.database [test=True] #}
{%- from "hecate/edge/macros.jinja" import job_running with context %}
{%- set nomad = salt['hecate_edge.settings']('nomad') %}
{%- set jobs = salt['hecate_edge.jobs']() %}
include:
  - hecate
{%- set ns = namespace(any=False) %}
{%- for job in jobs if job['name'] in ('postgresql', 'redis') %}
{%- set ns.any = True %}
{{ job_running(job['name'], job['job_id'], nomad) }}
{%- endfor %}
{%- if not ns.any %}

hecate edge database (not deployed by hecate):
  test.nop: []
{%- endif %}
