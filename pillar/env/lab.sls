# Overlay for the 'lab' environment (minions with grain hecate_env: lab).
hecate:
  global:
    environment: lab
  # The lab installs nothing and starts no service; config directories point at the
  # lab's own directories (lab_runtime.sls, written by `python -m lab up` and the tests).
  consul:
    agent:
      install: false
      service: false
      group: root

bionicgpt:
  wireguard:
    interface: hcwg0                  # not wg0: never touch a real tunnel of the lab machine
    install: false
    service: false
    cloud:
      address: 10.88.0.1
      endpoint: 198.18.0.1:51820      # the cloud side of the netns test's veth pair
    verify: {enabled: false}          # no tunnel runs in the lab (the netns test turns it on)
  nomad:
    agent:
      install: false
      service: false
