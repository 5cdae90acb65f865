{#- The Nomad agent of this minion's role: on the local node server + client
    (meta.location = local; pillar bionicgpt:nomad:agent), on the edge a client of node class
    hecate-edge (pillar hecate:nomad:agent) that runs the edge's own jobs (Caddy, Authentik,
    PostgreSQL). Host volumes, Consul and Vault integration, docker plugin. A Consul token,
    if any, is a Vault reference resolved on the minion when the file is written. #}
{%- set edge = 'hecate-edge' in (grains.get('roles') or []) %}
{%- set agent = (pillar.get('hecate', {}).get('nomad', {}) if edge else pillar.get('bionicgpt', {}).get('nomad', {})).get('agent', {}) %}
{%- set config_dir = agent.get('config_dir', '/etc/nomad.d') %}
{%- set install = agent.get('install', True) %}
include:
  - hecate
{%- if install %}
  - consul.repo

nomad packages:
  pkg.installed:
    - pkgs: {{ agent.get('packages', ['nomad', 'docker.io']) | json }}
    - require:
      - pkgrepo: hashicorp apt repository
      - hecate: hecate pillar is valid
{%- endif %}
{%- for name, volume in agent.get('host_volumes', {}).items() | sort %}

nomad host volume {{ name }}:
  file.directory:
    - name: {{ volume.path }}
    - makedirs: True
    - mode: '{{ volume.get('mode', '0755') }}'
{%- if volume.get('user') %}
    - user: {{ volume.user }}
{%- endif %}
{%- if volume.get('group') %}
    - group: {{ volume.group }}
{%- endif %}
    - require:
      - hecate: hecate pillar is valid
{%- endfor %}

nomad agent config:
  hecate_agent.nomad_config:
    - name: {{ config_dir }}/nomad.hcl
    - require:
      - hecate: hecate pillar is valid
{%- for name in agent.get('host_volumes', {}) | sort %}
      - file: nomad host volume {{ name }}
{%- endfor %}
{%- if install %}
      - pkg: nomad packages
{%- endif %}
{%- if agent.get('service', True) %}

nomad service:
  service.running:
    - name: nomad
    - enable: True
    - watch:
      - hecate_agent: nomad agent config
{%- endif %}
