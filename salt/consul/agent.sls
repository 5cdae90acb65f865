{#- The Consul agent: server on the cloud node, client on a local node joined to the cloud
    node over the WireGuard tunnel. Config from pillar hecate:consul:agent; the gossip key
    and ACL agent token are Vault references resolved on the minion when the file is
    written (never in this SLS, its rendering or the state's changes). Apply after
    `wireguard` (the agent binds to the tunnel address); top.sls orders it so. #}
{%- set agent = pillar.get('hecate', {}).get('consul', {}).get('agent', {}) %}
{%- set config_dir = agent.get('config_dir', '/etc/consul.d') %}
{%- set install = agent.get('install', True) %}
include:
  - hecate
{%- if install %}
  - consul.repo

consul:
  pkg.installed:
    - require:
      - pkgrepo: hashicorp apt repository
      - hecate: hecate pillar is valid
{%- endif %}

consul agent config:
  hecate_agent.consul_config:
    - name: {{ config_dir }}/consul.json
    - require:
      - hecate: hecate pillar is valid
{%- if install %}
      - pkg: consul
{%- endif %}
{%- if agent.get('service', True) %}

consul service:
  service.running:
    - name: consul
    - enable: True
    - watch:
      - hecate_agent: consul agent config
{%- endif %}
