# Hecate edge: the single source of truth for the cloud node.
# Secrets are never values here: they are Vault references ({vault: <mount>/<path>, key: <key>})
# that modules resolve at the moment they write them. Environment overlays in env/*.sls
# change what differs per environment.
hecate:
  global:
    domain: cybermonkey.dev
    hetzner_location: nbg1

  # Where the modules reach each API. Minion config (same keys) wins over pillar.
  connections:
    caddy:
      admin_url: http://127.0.0.1:2019
    authentik:
      url: https://hera.cybermonkey.dev
      token: {vault: secret/hecate/authentik, key: api_token}
    vault:
      url: https://vault.cybermonkey.dev:8200
    consul:
      url: http://127.0.0.1:8500
    nomad:
      url: http://127.0.0.1:4646

  # Non-HTTP traffic on the edge (Caddy serves HTTP). States: hecate.nginx, hecate.coturn.
  reverse_proxy:
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
      realm: cybermonkey.dev
      static_auth_secret: {vault: secret/hecate/coturn, key: static_auth_secret}
      ports:
        listening: 3478
        tls_listening: 5349
        relay_min: 49160
        relay_max: 49200
      cert: /etc/coturn/certs/hecate.fullchain.pem
      pkey: /etc/coturn/certs/hecate.privkey.pem   # readable by the turnserver group
      # logs go to syslog (the journal); log_file: /path to write a file instead
