{#- The edge's periodic backup job (hecate-backup) when hecate:backup:enabled, stopped when it
    is turned off. Part of orch.hecate's database step: deployed before Authentik, so that an
    Authentik upgrade backs the database up with the current job (docs/backups.md).
        salt -G roles:hecate-edge state.apply hecate.edge.backup [test=True] #}
{%- from "hecate/edge/macros.jinja" import job_running with context %}
{%- set nomad = salt['hecate_edge.settings']('nomad') %}
{%- set jobs = salt['hecate_edge.jobs']() %}
include:
  - hecate
{%- set backup = jobs | selectattr('name', 'equalto', 'backup') | list %}
{%- if backup %}
{{ job_running('backup', backup[0]['job_id'], nomad) }}
{%- elif nomad['jobs'] %}

hecate edge backup (hecate:backup:enabled is off):
  nomad_job.absent:
    - name: {{ nomad['job_prefix'] }}backup
    {%- if nomad.get('namespace') %}
    - namespace: {{ nomad['namespace'] }}
    {%- endif %}
{%- else %}

hecate edge backup (not deployed by hecate):
  test.nop: []
{%- endif %}
