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
        - domain: hera.cybermonkey.dev
          backend: "hecate-server-1:9000"
          service: authentik

        - domain: cloud.cybermonkey.dev
          backend: "100.65.138.128:11000"
          service: nextcloud

        - domain: observe.cybermonkey.dev
          backend: "100.65.138.128:8069"
          service: grafana

        - domain: jenkins.cybermonkey.dev
          backend: "100.65.138.128:8059"
          service: jenkins

        - domain: s3.cybermonkey.dev
          backend: "100.65.138.128:8123"
          service: minio-console

        - domain: s3api.cybermonkey.dev
          backend: "100.65.138.128:9123"
          service: minio-api

        - domain: persephone.cybermonkey.dev     # in the Caddyfile, not in the old hecate.sls
          backend: "100.69.147.69:8123"
          service: persephone-minio

        - domain: delphi.cybermonkey.dev
          backend: "https://100.88.163.85"
          service: wazuh
          tls_skip_verify: true

        - domain: u.cybermonkey.dev              # in the Caddyfile, not in the old hecate.sls
          backend: "100.65.138.128:8117"
          service: u-page

        - domain: cybermonkey.dev
          backend: "100.65.138.128:8009"
          service: helen
