# Roles come from the `roles` grain: `state.highstate` gives a new minion its role.
# Order matters within a role: the tunnel first (Consul binds to the tunnel address),
# then the Consul agent, then Nomad (which registers services in Consul).
base:
  'roles:hecate-edge':
    - match: grain
    - hecate
    - wireguard
    - consul.agent
  'roles:bionicgpt-node':
    - match: grain
    - hecate
    - wireguard
    - consul.agent
    - nomad.agent
