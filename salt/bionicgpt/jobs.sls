{#- The BionicGPT stack as Nomad jobs on the local node (orchestration step 7).

    Each job is rendered from salt://bionicgpt/jobs/<job>.nomad.hcl.j2 with the pillar
    (bionicgpt:nomad, bionicgpt:jobs:<job>), planned, registered with the plan's job modify
    index and followed until its deployment is healthy; jobs are registered in the order of
    bionicgpt:nomad:jobs and each waits for the previous one. On failure the job is reverted to
    its last stable version (Nomad's auto_revert, or hecate's revert_on_failure).

        salt -G roles:bionicgpt-node state.apply bionicgpt.jobs [test=True]

    To put every job back on its last stable version (e.g. an orchestration onfail step):
    bionicgpt.jobs_revert. #}
{%- set nomad = pillar.get('bionicgpt', {}).get('nomad', {}) %}
{%- set prefix = nomad.get('job_prefix', 'bionicgpt-') %}
{%- set order = nomad.get('jobs', ['database', 'llm', 'application']) %}
{%- for name in order %}

bionicgpt nomad job {{ name }}:
  nomad_job.running:
    - name: {{ prefix ~ name }}
    - source: salt://bionicgpt/jobs/{{ name }}.nomad.hcl.j2
    - context:
        job_id: {{ prefix ~ name }}
    {%- if nomad.get('namespace') %}
    - namespace: {{ nomad['namespace'] }}
    {%- endif %}
    {%- if nomad.get('region') %}
    - region: {{ nomad['region'] }}
    {%- endif %}
    - timeout: {{ nomad.get('deploy_timeout', 900) }}
    - revert_on_failure: {{ nomad.get('revert_on_failure', True) }}
    {%- if not loop.first %}
    - require:
      - nomad_job: bionicgpt nomad job {{ order[loop.index0 - 1] }}
    {%- endif %}
{%- endfor %}
