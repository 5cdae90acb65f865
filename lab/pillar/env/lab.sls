# Overlay for the 'lab' environment (minions with grain hecate_env: lab).
hecate:
  global:
    environment: lab
  # The lab installs nothing and starts no service; config directories point at the
  # lab's own directories (lab_runtime.sls, written by `python -m lab up` and the tests).
  # The lab's members (hecate:members: cloud, local) are in lab_runtime.sls too, from the
  # minions lab/topology.py starts.
  consul:
    agent:
      install: false
      service: false
      group: root
  # The edge's Nomad client writes its config into the lab (lab_runtime.sls gives the
  # directories). Which edge jobs hecate deploys is the lab's choice (lab_runtime.sls):
  # `python -m lab up` deploys the edge from zero (Caddy and Authentik as Nomad jobs);
  # the test suite's fast lab starts Caddy and the Authentik simulator itself (jobs: []).
  nomad:
    agent:
      install: false
      service: false
  # DNS in the lab: the Hetzner DNS simulator (lab_runtime.sls points
  # hecate:connections:hetzner_dns at it) holds the zones of the lab's route domains, with
  # records someone else made that hecate must never touch. Addresses from TEST-NET-3 and
  # the IPv6 documentation range: the lab's minions have no public address in their grains.
  dns:
    zones:
      - name: cybermonkey.dev
      - name: codemonkey.ai
    ttl: 300
    edge:
      ipv4: [203.0.113.10]
      ipv6: ["2001:db8:10::10"]
    caa:
      issue: [letsencrypt.org]
    records:
      - name: www.cybermonkey.dev
        type: CNAME
        value: cybermonkey.dev
      - name: _hecate.cybermonkey.dev
        type: TXT
        value: managed by hecate (lab)
    token: {vault: secret/hecate/hetzner, key: dns_api_token}

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
  # Authentik in the lab: oauth2-proxy may also run on the workstation, and two test users
  # exist (passwords generated per lab, in the Vault simulator only).
  authentik:
    provider:
      redirect_uris:
        - https://chat.codemonkey.ai/oauth2/callback
        - http://localhost:4180/oauth2/callback
    test_users:
      henry:
        name: Henry Smith
        email: henry@codemonkey.ai
        groups: [bionicgpt-superadmin]
        password: {vault: secret/bionicgpt/lab-users, key: henry}
      demo:
        name: Demo User
        email: demo@codemonkey.ai
        groups: [bionicgpt-demo-tenant]
        password: {vault: secret/bionicgpt/lab-users, key: demo}
