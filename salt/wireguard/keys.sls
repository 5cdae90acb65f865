{#- WireGuard keys: each node makes its own key pair (the private key never leaves it) and
    publishes its public key through the Salt mine. The orchestration applies this on
    every node before `wireguard`, so that each side finds the other's key. #}
{%- set wg = pillar.get('bionicgpt', {}).get('wireguard', {}) %}
{%- set iface = wg.get('interface', 'wg0') %}
include:
  - hecate

wireguard key {{ iface }}:
  wireguard.key_present:
    - name: {{ iface }}
    - require:
      - hecate: hecate pillar is valid

wireguard public key {{ iface }} in the mine:
  wireguard.mine_published:
    - name: {{ iface }}
    - require:
      - wireguard: wireguard key {{ iface }}
