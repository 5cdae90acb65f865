# Roles come from the `roles` grain: `state.highstate` gives a new minion its role.
base:
  'roles:hecate-edge':
    - match: grain
    - hecate
  'roles:bionicgpt-node':
    - match: grain
    - hecate
