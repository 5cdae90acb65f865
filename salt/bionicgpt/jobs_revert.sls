{#- Put the BionicGPT jobs back for an orchestration onfail step. With the run in pillar
    (hecate_run:id, which the orchestration passes), each job goes back to the version it
    had before that run (a job the run created is stopped; one it did not touch is left
    alone); without it, each job goes back to its last stable version.

        nomad jobs restored:
          salt.state:
            - tgt: 'G@roles:bionicgpt-node and G@hecate_env:prod'
            - tgt_type: compound
            - sls: bionicgpt.jobs_revert
            - pillar: {hecate_run: {id: <run id>}}
            - onfail:
              - salt: nomad jobs #}
{%- set nomad = pillar.get('bionicgpt', {}).get('nomad', {}) %}
{%- set prefix = nomad.get('job_prefix', 'bionicgpt-') %}
{%- set order = nomad.get('jobs', ['database', 'llm', 'application']) %}
{%- set run_id = (pillar.get('hecate_run') or {}).get('id') %}
{%- for name in order | reverse %}

bionicgpt nomad job {{ name }} restored:
  nomad_job.reverted:
    - name: {{ prefix ~ name }}
    {%- if run_id %}
    - run_id: {{ run_id | json }}
    {%- endif %}
    {%- if nomad.get('namespace') %}
    - namespace: {{ nomad['namespace'] }}
    {%- endif %}
    {%- if nomad.get('region') %}
    - region: {{ nomad['region'] }}
    {%- endif %}
    - timeout: {{ nomad.get('deploy_timeout', 900) }}
{%- endfor %}
