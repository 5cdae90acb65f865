{#- Put every BionicGPT job back on its last stable version (a job whose current version is
    stable, or that does not exist, is left alone). Meant for an orchestration onfail step:

        nomad jobs restored:
          salt.state:
            - tgt: 'G@roles:bionicgpt-node and G@hecate_env:prod'
            - tgt_type: compound
            - sls: bionicgpt.jobs_revert
            - onfail:
              - salt: nomad jobs #}
{%- set nomad = pillar.get('bionicgpt', {}).get('nomad', {}) %}
{%- set prefix = nomad.get('job_prefix', 'bionicgpt-') %}
{%- set order = nomad.get('jobs', ['database', 'llm', 'application']) %}
{%- for name in order | reverse %}

bionicgpt nomad job {{ name }} on its last stable version:
  nomad_job.reverted:
    - name: {{ prefix ~ name }}
    {%- if nomad.get('namespace') %}
    - namespace: {{ nomad['namespace'] }}
    {%- endif %}
    {%- if nomad.get('region') %}
    - region: {{ nomad['region'] }}
    {%- endif %}
    - timeout: {{ nomad.get('deploy_timeout', 900) }}
{%- endfor %}
