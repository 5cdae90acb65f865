{#- The WireGuard tunnel between the cloud node (hub, roles:hecate-edge) and the local
    node(s) (roles:bionicgpt-node), from pillar bionicgpt:wireguard and the peers' public
    keys in the mine. A peer change is applied live with `wg syncconf` by
    wireguard.configured: the service below is only started, never restarted for it. #}
{%- set wg = pillar.get('bionicgpt', {}).get('wireguard', {}) %}
{%- set iface = wg.get('interface', 'wg0') %}
include:
  - hecate
  - wireguard.keys
{%- if wg.get('install', True) %}

wireguard-tools:
  pkg.installed:
    - require:
      - hecate: hecate pillar is valid
{%- endif %}

wireguard interface {{ iface }}:
  wireguard.configured:
    - name: {{ iface }}
    - require:
      - wireguard: wireguard public key {{ iface }} in the mine
{%- if wg.get('install', True) %}
      - pkg: wireguard-tools
{%- endif %}
{%- if wg.get('service', True) %}

wg-quick@{{ iface }}:
  service.running:
    - enable: True
    - require:
      - wireguard: wireguard interface {{ iface }}
{%- endif %}
