{#- Orchestration step "Caddy job" of orch.hecate, on the edge: the job hecate-caddy (the stock
    binary, `caddy run --resume` with its bootstrap config), then a wait until its admin API
    answers on loopback. The routes come later (hecate.caddy), through that admin API. A
    no-op when hecate:nomad:jobs does not list caddy.
        salt -G roles:hecate-edge state.apply hecate.edge.caddy [test=True] #}
{%- from "hecate/edge/macros.jinja" import job_running with context %}
{%- set nomad = salt['hecate_edge.settings']('nomad') %}
{%- set jobs = salt['hecate_edge.jobs']() %}
include:
  - hecate
{%- set caddy = jobs | selectattr('name', 'equalto', 'caddy') | list %}
{%- if caddy %}
{{ job_running('caddy', caddy[0]['job_id'], nomad) }}

hecate edge caddy admin api answers:
  hecate_edge.caddy_admin:
    - timeout: {{ nomad['wait_timeout'] }}
    - require:
      - nomad_job: hecate edge job caddy
{%- else %}

hecate edge caddy (not deployed by hecate):
  test.nop: []
{%- endif %}
