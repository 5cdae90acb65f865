{#- The lab's names (those of the shipped pillar): every host name below is made from them,
    and bionicgpt.sls and the overlays import them from this file, as in pillar/. #}
{%- set domain = 'cybermonkey.dev' %}           {#- hecate:global:domain: your DNS zone #}
{%- set chat_domain = 'chat.codemonkey.ai' %}   {#- bionicgpt:domain; 'chat.' ~ domain if it lives in your zone #}
# The lab's pillar: a copy of the shipped pillar/hecate.sls that the lab and the tests read, so that
# an operator's edits of pillar/ never change them (tests assert these values).
#
# Hecate edge: the single source of truth for the cloud node.
# Secrets are never values here: they are Vault references ({vault: <mount>/<path>, key: <key>})
# that modules resolve at the moment they write them. Environment overlays in env/*.sls
# change what differs per environment.
hecate:
  global:
    domain: {{ domain }}
    hetzner_location: nbg1

  # Where the modules reach each API. Minion config (same keys) wins over pillar.
  connections:
    caddy:
      admin_url: http://127.0.0.1:2019
    # Authentik as hecate deploys it (hecate:nomad:jobs): its server's port on the edge's
    # loopback; the token never leaves the host. (An Authentik run by hand: its https:// URL.)
    authentik:
      url: http://127.0.0.1:9000
      token: {vault: secret/hecate/authentik, key: api_token}
    vault:
      url: https://vault.{{ domain }}:8200
    consul:
      url: http://127.0.0.1:8500
    nomad:
      url: http://127.0.0.1:4646

  # Secrets hecate generates into Vault for the edge (salt/hecate/secrets.sls, on the cloud
  # node): where and how, never values. Generated once, never changed unless a run names them
  # in pillar `rotate`. Operator-provided secrets (the Authentik API token, Consul ACL tokens)
  # are checked by hecate.validate before anything runs.
  secrets:
    consul_gossip_key:
      path: secret/hecate/consul
      key: gossip_key
      length: 32
      alphabet: bytes_base64          # `consul keygen` form: 32 random bytes, base64
      description: Consul gossip encryption key
    coturn_static_auth_secret:
      path: secret/hecate/coturn
      key: static_auth_secret
      length: 48
      alphabet: alnum
      description: coturn REST API static auth secret (TURN credentials)

  # External services (not run by Nomad) registered in Consul by salt/hecate/consul_services.sls
  # (this replaces /srv/scripts/register-external-services.sh). The key is the service ID;
  # `ensure: absent` deregisters one. Checks: exactly one of http/tcp/ttl, interval for http/tcp.
  consul:
    services:
      wazuh-master:
        name: wazuh-registration
        tags: [wazuh, security, external]
        address: 100.88.163.85
        port: 1515
        checks:
          - tcp: 100.88.163.85:1515
            interval: 30s
            timeout: 5s
      jenkins-master:
        name: jenkins-master
        tags: [jenkins, ci, external]
        address: 100.65.138.128
        port: 8059
        meta:
          domain: jenkins.{{ domain }}
        checks:
          - http: http://100.65.138.128:8059/login
            interval: 30s
            timeout: 5s

    # Consul agents: server on the cloud node, client on each local node joined over the
    # WireGuard tunnel. Secrets are Vault references, resolved on the minion when the
    # config file is written.
    agent:
      datacenter: dc1
      data_dir: /opt/consul
      config_dir: /etc/consul.d
      install: true                   # HashiCorp apt repository: consul
      service: true
      user: root
      group: consul                   # the agent's group reads the config (mode 0640)
      client_addr: 127.0.0.1
      ui: true                        # on the server
      bootstrap_expect: 1
      gossip_key: {vault: secret/hecate/consul, key: gossip_key}
      acl:
        enabled: true
        default_policy: deny
        enable_token_persistence: true
        agent_token: {vault: secret/hecate/consul, key: agent_token}
      ports: {http: 8500, dns: 8600, serf_lan: 8301, serf_wan: 8302, server: 8300}
  # Caddy on the cloud node, driven through its Admin API (README "Caddy"). The routes are the
  # user's Caddyfile sites; hecate gives each an @id hecate.route.<service> and leaves routes
  # without a hecate @id alone. Policies `security` and `common` are the Caddyfile's snippets.
  reverse_proxy:
    caddy:
      version: "2.11"
      server: hecate                 # apps.http.servers.<server>
      listen: [":443"]               # used only to create the server when Caddy lacks it
      ports:
        http: 80
        https: 443
        admin: 2019
      forward_auth:
        outpost: "hecate-server-1:9000"   # Authentik's embedded outpost
      default_policies: [security, common]
      routes:
        - domain: hera.{{ domain }}
          backend: "127.0.0.1:9000"          # hecate-authentik's server on the edge's loopback
          service: authentik

        - domain: cloud.{{ domain }}
          backend: "100.65.138.128:11000"
          service: nextcloud

        - domain: observe.{{ domain }}
          backend: "100.65.138.128:8069"
          service: grafana

        - domain: jenkins.{{ domain }}
          backend: "100.65.138.128:8059"
          service: jenkins

        - domain: s3.{{ domain }}
          backend: "100.65.138.128:8123"
          service: minio-console

        - domain: s3api.{{ domain }}
          backend: "100.65.138.128:9123"
          service: minio-api

        - domain: persephone.{{ domain }}     # in the Caddyfile, not in the old hecate.sls
          backend: "100.69.147.69:8123"
          service: persephone-minio

        - domain: delphi.{{ domain }}
          backend: "https://100.88.163.85"
          service: wazuh
          tls_skip_verify: true

        - domain: u.{{ domain }}              # in the Caddyfile, not in the old hecate.sls
          backend: "100.65.138.128:8117"
          service: u-page

        - domain: {{ domain }}
          backend: "100.65.138.128:8009"
          service: helen

        # BionicGPT: oauth2-proxy on the local node signs users in against Authentik; its
        # address comes from Consul (passing instances only) each time the routes apply.
        - domain: {{ chat_domain }}
          upstream: {consul_service: bionicgpt-oauth2-proxy}
          service: bionicgpt

    # Non-HTTP traffic on the edge (Caddy serves HTTP). States: hecate.nginx, hecate.coturn.
    nginx:
      # hecate owns nginx's whole main config: events + one stream block, no http block.
      config_file: /etc/nginx/nginx.conf
      packages: [nginx, libnginx-mod-stream]
      # Each stream: listen_port, protocol (tcp|udp, default tcp), one of
      #   backend: "host:port" | backends: ["host:port", {address, weight, backup}] |
      #   consul_service: name (passing instances via hecate_consul; {name, port} overrides the port)
      # and optional timeouts {connect, proxy}, max_fails, fail_timeout, balance, listen_address.
      tcp_proxies:
        - name: wazuh-agent-tcp       # Wazuh agent registration
          listen_port: 1515
          backend: "100.88.163.85:1515"
          max_fails: 3
          fail_timeout: 30s
          timeouts: {connect: 30s, proxy: 300s}
        - name: wazuh-agent-udp       # Wazuh agent data (the manager answers: keep responses)
          listen_port: 1514
          protocol: udp
          backend: "100.88.163.85:1514"
          timeouts: {proxy: 60s}
        - name: wazuh-api
          listen_port: 55000
          backend: "100.88.163.85:55000"
        - name: jenkins-agent
          listen_port: 50000
          backend: "100.65.138.128:50000"
          max_fails: 3
          fail_timeout: 30s
          timeouts: {proxy: 600s}    # long-lived agent connections

    coturn:
      config_file: /etc/turnserver.conf
      packages: [coturn]
      realm: {{ domain }}
      static_auth_secret: {vault: secret/hecate/coturn, key: static_auth_secret}
      ports:
        listening: 3478
        tls_listening: 5349
        relay_min: 49160
        relay_max: 49200
      cert: /etc/coturn/certs/hecate.fullchain.pem
      pkey: /etc/coturn/certs/hecate.privkey.pem   # readable by the turnserver group
      # logs go to syslog (the journal); log_file: /path to write a file instead

  # -- The edge's own Nomad jobs (docs/systems/edge.md): orch.hecate turns a bare cloud node
  # into a working edge. Authentik (server, worker) with its PostgreSQL (and Redis only for
  # releases before 2025.10) and Caddy run as Nomad jobs on the edge's Nomad client. Secrets
  # are Vault references that Nomad's templates read at run time; hecate generates the
  # missing ones once (never rotated: Authentik reads its bootstrap values only on its first
  # start). `jobs: []` leaves the edge to other means (docker compose) and only configures it.
  authentik:
    version: "2025.10.3"             # image tag; decides whether Redis is deployed
    database:
      name: authentik
      user: authentik
      password: {vault: secret/hecate/authentik, key: db_password}
    secret_key: {vault: secret/hecate/authentik, key: secret_key}
    ports:                           # on the edge's loopback: Caddy and hecate reach it there
      http: 9000
      https: 9443
    bootstrap:                       # read by Authentik on its first start only
      email: admin@{{ domain }}
      password: {vault: secret/hecate/authentik, key: bootstrap_password}
      token: {vault: secret/hecate/authentik, key: api_token}   # = connections:authentik:token

  # Per task group (MHz, MB); disk is the group's ephemeral disk (data lives on host volumes).
  resources:
    reverse_proxy: {cpu: 2000, memory: 2048, disk: 10240}
    authentik: {cpu: 1000, memory: 1024}
    postgresql: {cpu: 500, memory: 1024}
    applications:                    # the user's own jobs; hecate deploys none of them
      helen: {cpu: 500, memory: 256, disk: 1024}

  # How a new version replaces the running one (each job's update block and checks;
  # docs/upgrades.md). Rolling: canary and blue-green run the new version beside the old one,
  # which the edge's jobs cannot (static ports 80/443 and Authentik's loopback ports, one
  # PostgreSQL data directory): hecate.validate refuses them, naming each job.
  deployment:
    strategy: rolling
    health_check_interval: 30
    health_check_timeout: 5
    max_parallel_updates: 1
    auto_rollback: true

  # The periodic job hecate-backup: archives on the edge's hecate_backups host volume, each
  # recorded by the job in Consul KV (hecate/backups/<env>/<target>/<id>) with this token
  # (Consul ACL: key_prefix "hecate/backups/<env>/" write). docs/backups.md: salt-run
  # hecate.backup / hecate.backups / hecate.restore.
  backup:
    enabled: true
    schedule: "0 3 * * *"            # 3 AM daily
    retention_days: 30
    targets: [caddy_data, authentik_database, nginx_configs]
    consul_token: {vault: secret/hecate/backup, key: consul_token}

  nomad:
    jobs: [postgresql, authentik, caddy]
    datacenters: [dc1]
    namespace: default
    node_class: hecate-edge          # the edge's client below
    job_prefix: hecate-              # hecate-postgresql, hecate-authentik, hecate-caddy ...
    vault_role: hecate               # Nomad's Vault role for the templates (workload identity)
    deploy_timeout: 900
    revert_on_failure: true
    wait_timeout: 300                # for Authentik's API / Caddy's admin API after a deployment
    # The edge's Nomad client (state nomad.agent); the servers run on the local node and the
    # client finds them through Consul.
    agent:
      datacenter: dc1
      data_dir: /opt/nomad/data
      config_dir: /etc/nomad.d
      install: true
      service: true
      bind_addr: 0.0.0.0
      server: {enabled: false}
      client:
        enabled: true
        node_class: hecate-edge
        meta: {location: cloud, node_type: hecate-edge}
        driver_allowlist: [docker]
        host_networks:
          loopback: {cidr: 127.0.0.1/32}   # Authentik's ports
      host_volumes:
        hecate_postgres: {path: /opt/hecate/postgres}
        hecate_caddy_data: {path: /opt/hecate/caddy/data}
        hecate_caddy_config: {path: /opt/hecate/caddy/config}
        hecate_backups: {path: /opt/hecate/backups}
        hecate_nginx_config: {path: /etc/nginx, read_only: true}
      consul:
        address: 127.0.0.1:8500
        token: {vault: secret/hecate/nomad, key: consul_token}
      vault:
        enabled: true
      docker:
        allow_privileged: false
        volumes_enabled: true
      acl:
        enabled: true                # as on the local node's server: all agents alike

  # orch.hecate's last check: a request through Caddy to Authentik's health endpoint.
  verify:
    timeout: 120
    probe:
      url: https://hera.{{ domain }}/-/health/live/
