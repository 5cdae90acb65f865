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
