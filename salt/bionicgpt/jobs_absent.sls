{#- Teardown (ensure: absent) of the BionicGPT jobs on the local node, in the reverse of their
    registration order (bionicgpt:nomad:jobs): each job stopped and purged (its history and
    allocations go; Nomad deregisters its services from Consul), each after the one that
    depends on it. Only the jobs pillar names (bionicgpt:nomad:job_prefix + jobs); other jobs
    of the cluster are never touched.
        salt -G roles:bionicgpt-node state.apply bionicgpt.jobs_absent [test=True] #}
{%- set nomad = pillar.get('bionicgpt', {}).get('nomad', {}) %}
{%- set prefix = nomad.get('job_prefix', 'bionicgpt-') %}
{%- set order = nomad.get('jobs', ['database', 'llm', 'application']) | reverse | list %}
{%- for name in order %}

bionicgpt nomad job {{ name }} purged:
  nomad_job.absent:
    - name: {{ prefix ~ name }}
    - purge: true
    {%- if nomad.get('namespace') %}
    - namespace: {{ nomad['namespace'] }}
    {%- endif %}
    {%- if nomad.get('region') %}
    - region: {{ nomad['region'] }}
    {%- endif %}
    {%- if not loop.first %}
    - require:
      - nomad_job: bionicgpt nomad job {{ order[loop.index0 - 1] }} purged
    {%- endif %}
{%- endfor %}
