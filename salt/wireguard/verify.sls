{#- The tunnel works: a recent handshake with every peer and a ping over the tunnel.
    Parameters from pillar bionicgpt:wireguard:verify (within, timeout, ping, enabled). #}
{%- set wg = pillar.get('bionicgpt', {}).get('wireguard', {}) %}
{%- set iface = wg.get('interface', 'wg0') %}
wireguard tunnel {{ iface }} is up:
  wireguard.handshake:
    - name: {{ iface }}
