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
          domain: jenkins.cybermonkey.dev
        checks:
          - http: http://100.65.138.128:8059/login
            interval: 30s
            timeout: 5s
