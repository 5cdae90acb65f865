{#- hecate.coturn: coturn (STUN/TURN) on the edge, from pillar hecate:reverse_proxy:coturn.
    Standalone:   salt -G 'roles:hecate-edge' state.apply hecate.coturn [test=True]
    The static auth secret is read from Vault on the minion and written only into the config
    file (root:turnserver 0640 by default); coturn is restarted when the file changes (it
    cannot reload its configuration). #}
{%- set coturn = pillar.get('hecate', {}).get('reverse_proxy', {}).get('coturn', {}) %}
{%- set packages = coturn.get('packages', []) %}
{%- set manage_service = coturn.get('manage_service', True) %}
{%- if packages %}

hecate coturn packages:
  pkg.installed:
    - pkgs: {{ packages | json }}
    - install_recommends: False
{%- endif %}

hecate coturn config:
  coturn_config.managed:
    - name: {{ coturn.get('config_file', '/etc/turnserver.conf') | json }}
{%- if packages %}
    - require:
      - pkg: hecate coturn packages
{%- endif %}
{%- if manage_service %}

hecate coturn service:
  service.running:
    - name: {{ coturn.get('service', 'coturn') | json }}
    - enable: True
    - watch:
      - coturn_config: hecate coturn config
{%- endif %}
