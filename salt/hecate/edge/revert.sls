{#- Put the edge's jobs back for orch.hecate's onfail step: with the run in pillar
    (hecate_run:id), each job goes back to the version it had before that run (a job the run
    created is stopped; one it did not touch is left alone), as bionicgpt.jobs_revert does. #}
{%- set nomad = salt['hecate_edge.settings']('nomad') %}
{%- set run_id = (pillar.get('hecate_run') or {}).get('id') %}
{%- set jobs = salt['hecate_edge.jobs']() %}
{%- for job in jobs | reverse %}

hecate edge job {{ job['name'] }} restored:
  nomad_job.reverted:
    - name: {{ job['job_id'] }}
    {%- if run_id %}
    - run_id: {{ run_id | json }}
    {%- endif %}
    {%- if nomad.get('namespace') %}
    - namespace: {{ nomad['namespace'] }}
    {%- endif %}
    - timeout: {{ nomad['deploy_timeout'] }}
{%- endfor %}
{%- if not jobs %}

hecate edge jobs (none deployed by hecate):
  test.nop: []
{%- endif %}
