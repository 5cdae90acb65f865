# BionicGPT behind Hecate: the application on the local node and its SSO on the cloud node.
# Secrets are Vault references (secret/bionicgpt/{db,oauth,azure,litellm,authentik}).
bionicgpt:
  domain: chat.codemonkey.ai

  # Secrets hecate generates into Vault (salt/bionicgpt/secrets.sls, on the local node):
  # only where and how, never values. A value is generated once, when the key is absent,
  # and never changed again unless a run asks for it:
  #   salt -G roles:bionicgpt-node state.apply bionicgpt.secrets pillar='{"rotate": ["db_password"]}'
  # Other states refer to them as {vault: <path>, key: <key>}.
  secrets:
    db_password:
      path: secret/bionicgpt/db
      key: password
      length: 32
      alphabet: alnum
      description: PostgreSQL password of the bionicgpt database role
    oauth2_proxy_cookie_secret:
      path: secret/bionicgpt/oauth
      key: cookie_secret
      length: 32
      alphabet: alnum
      description: oauth2-proxy cookie secret (32 bytes, AES-256)
    litellm_master_key:
      path: secret/bionicgpt/litellm
      key: master_key
      length: 32
      alphabet: alnum
      prefix: sk-
      description: LiteLLM proxy master key (LiteLLM wants the sk- prefix)

  # WireGuard between the cloud node (hub, roles:hecate-edge) and the local node(s)
  # (roles:bionicgpt-node). Each node makes its own key; public keys travel through the
  # Salt mine (mine_functions below). Tunnel addresses must lie inside `network`; more
  # local nodes get their own address under nodes:<minion id>:address.
  wireguard:
    interface: wg0
    listen_port: 51820
    network: 10.88.0.0/24
    config_dir: /etc/wireguard        # wg-quick@<interface> reads <config_dir>/<interface>.conf
    persistent_keepalive: 25          # the local node sits behind NAT
    install: true                     # apt: wireguard-tools
    service: true                     # wg-quick@<interface>, started once, never restarted for a peer change
    cloud:
      address: 10.88.0.1
      endpoint: cloud.cybermonkey.dev:51820   # the cloud node's public host:port
    local:
      address: 10.88.0.2
    nodes: {}
    extra_peers: []
    verify: {enabled: true, within: 180, timeout: 60, ping: true}

  # Nomad on the local node: server + client. Task ports are allocated on the WireGuard
  # interface so Caddy on the cloud node reaches them through the tunnel.
  nomad:
    agent:
      datacenter: dc1
      data_dir: /opt/nomad/data
      config_dir: /etc/nomad.d
      install: true                   # HashiCorp apt repository: nomad; Debian: docker.io
      service: true
      bind_addr: 0.0.0.0
      server: {enabled: true, bootstrap_expect: 1}
      client:
        enabled: true
        meta: {location: local, node_type: bionicgpt}
        driver_allowlist: [docker]
        reserved: {cpu: 500, memory: 512, disk: 1024}
      host_volumes:
        bionicgpt_postgres: {path: /opt/bionicgpt/postgres, read_only: false}
        ollama: {path: /opt/ollama, read_only: false}
      consul:
        address: 127.0.0.1:8500
        token: {vault: secret/bionicgpt/nomad, key: consul_token}
      vault:
        enabled: true                 # address defaults to hecate:connections:vault:url
      docker:
        allow_privileged: false
        volumes_enabled: true
        allow_caps: null              # Nomad's default list; ["NET_RAW"] alone would break PostgreSQL

# Public keys reach the other side through the mine; no minion config change is needed.
mine_functions:
  wireguard_public_key:
    mine_function: wireguard.public_key
