{#- Teardown step "edge_jobs" of orch.hecate (ensure: absent), on the edge, after everything
    that uses them: the edge's own Nomad jobs stopped and purged (history and allocations go;
    Nomad takes their services out of Consul), the reverse of their deployment - backup, Caddy,
    Authentik, Redis, PostgreSQL - each after the one before.

    Only hecate's job ids (hecate:nomad:job_prefix + name) for what hecate:nomad:jobs lists:
    Redis with Authentik (an earlier Authentik release ran it) and the backup job with any of
    them (it may have been enabled before); nothing when the list is empty (the edge runs by
    other means). Other jobs, even with the prefix, are never touched.

    The host volumes keep their data (hecate_postgres: Authentik's database; hecate_caddy_data
    and hecate_caddy_config: certificates and Caddy's autosave; hecate_backups): Nomad does not
    delete a host volume's directory, and hecate does not either. A later deployment starts from
    them (with the same secrets, which the teardown keeps unless purge_secrets).
        salt -G roles:hecate-edge state.apply hecate.edge.jobs_absent [test=True] #}
{%- set nomad = salt['hecate_edge.settings']('nomad') %}
{%- set listed = nomad['jobs'] or [] %}
{%- set owned = [] %}
{%- for name in ['backup', 'caddy', 'authentik', 'redis', 'postgresql'] %}
{%- if (name == 'backup' and listed) or (name == 'redis' and 'authentik' in listed) or name in listed %}
{%- do owned.append(name) %}
{%- endif %}
{%- endfor %}
{%- for name in owned %}

hecate edge job {{ name }} purged:
  nomad_job.absent:
    - name: {{ (nomad['job_prefix'] ~ name) | json }}
    - purge: true
    {%- if nomad.get('namespace') %}
    - namespace: {{ nomad['namespace'] | json }}
    {%- endif %}
    {%- if nomad.get('region') %}
    - region: {{ nomad['region'] | json }}
    {%- endif %}
    {%- if not loop.first %}
    - require:
      - nomad_job: hecate edge job {{ owned[loop.index0 - 1] }} purged
    {%- endif %}
{%- endfor %}
{%- if not owned %}

hecate edge jobs (none deployed by hecate):
  test.nop: []
{%- endif %}
