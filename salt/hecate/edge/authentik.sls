{#- Orchestration step "Authentik" of orch.hecate, on the edge: the job hecate-authentik
    (server and worker), then a wait until Authentik is ready and accepts hecate's API token
    (the bootstrap token of its first start). Redis left over from a release before 2025.10
    is stopped once Authentik runs without it. A no-op when hecate:nomad:jobs does not list
    authentik.

    An upgrade (hecate:authentik:version differs from the release the job runs) migrates the
    database: it is backed up first (a run of the backup job) and, when the job's deployment
    fails and is reverted, restored from that backup (docs/backups.md).
        salt -G roles:hecate-edge state.apply hecate.edge.authentik [test=True] #}
{%- from "hecate/edge/macros.jinja" import job_running with context %}
{%- set nomad = salt['hecate_edge.settings']('nomad') %}
{%- set jobs = salt['hecate_edge.jobs']() %}
{%- set names = jobs | map(attribute='name') | list %}
include:
  - hecate
{%- if 'authentik' in names %}
{%- set job = jobs | selectattr('name', 'equalto', 'authentik') | first %}

hecate edge authentik database backed up before an upgrade:
  hecate_edge.backed_up_before_upgrade:
    - timeout: {{ nomad['deploy_timeout'] }}
    - require:
      - hecate: hecate pillar is valid
{{ job_running('authentik', job['job_id'], nomad, ['hecate_edge: hecate edge authentik database backed up before an upgrade']) }}

hecate edge authentik database restored after a failed upgrade:
  hecate_edge.restored_after_failed_upgrade:
    - timeout: {{ nomad['deploy_timeout'] }}
    - onfail:
      - nomad_job: hecate edge job authentik

hecate edge authentik answers with hecate's token:
  hecate_edge.authentik_api:
    - timeout: {{ nomad['wait_timeout'] }}
    - require:
      - nomad_job: hecate edge job authentik
{%- if 'redis' not in names %}

hecate edge redis (not used by this Authentik release):
  nomad_job.absent:
    - name: {{ nomad['job_prefix'] }}redis
    {%- if nomad.get('namespace') %}
    - namespace: {{ nomad['namespace'] }}
    {%- endif %}
    - require:
      - hecate_edge: hecate edge authentik answers with hecate's token
{%- endif %}
{%- else %}

hecate edge authentik (not deployed by hecate):
  test.nop: []
{%- endif %}
