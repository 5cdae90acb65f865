{%- from 'hecate.sls' import domain, chat_domain with context %}  {#- the lab's names: top of hecate.sls #}
# The lab's pillar: a copy of the shipped pillar/bionicgpt.sls that the lab and the tests read, so that
# an operator's edits of pillar/ never change them (tests assert these values).
#
# BionicGPT behind Hecate: the application on the local node and its SSO on the cloud node.
# Secrets are Vault references (secret/bionicgpt/{db,oauth,azure,litellm,authentik}).
bionicgpt:
  domain: {{ chat_domain }}

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
    db_app_password:
      path: secret/bionicgpt/db
      key: app_password
      length: 32
      alphabet: alnum
      description: PostgreSQL password of BionicGPT's application role (row-level security)
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
      endpoint: cloud.{{ domain }}:51820   # the cloud node's public host:port
    local:
      address: 10.88.0.2
    nodes: {}
    extra_peers: []
    verify: {enabled: true, within: 180, timeout: 60, ping: true}

  # Nomad on the local node: server + client. Task ports are allocated on the WireGuard
  # interface so Caddy on the cloud node reaches them through the tunnel.
  nomad:
    # Nomad jobs on the local node (salt/bionicgpt/jobs.sls; templates in salt/bionicgpt/jobs/)
    datacenters: [dc1]
    namespace: default
    node_location: local          # constraint on the client's meta.location
    job_prefix: bionicgpt-        # jobs bionicgpt-database, bionicgpt-llm, bionicgpt-application
    jobs: [database, llm, application]   # registration order: each waits for the previous deployment
    vault_role: bionicgpt         # Nomad's Vault role for the template blocks (workload identity)
    deploy_timeout: 900           # seconds to follow each deployment
    revert_on_failure: true       # revert to the last stable version when a deployment fails
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
      acl:
        enabled: true                 # every agent alike; once: `nomad acl bootstrap` (docs: agents)

  # -- Nomad jobs on the local node (salt/bionicgpt/jobs.sls; templates in salt/bionicgpt/jobs/)
  jobs:
    # Images are pinned by tag; ':latest' or no tag is refused outside lab/dev (hecate.validate).
    database:
      auto_revert: true
      db_name: bionicgpt
      db_user: bionicgpt
      password: {vault: secret/bionicgpt/db, key: password}
      service: bionicgpt-postgres
      postgres:
        image: pgvector/pgvector:0.8.0-pg16
        resources: {cpu: 1000, memory: 2048}
        port: {to: 5432}
        volume: bionicgpt_postgres     # client host_volume name
    llm:
      auto_revert: true
      master_key: {vault: secret/bionicgpt/litellm, key: master_key}
      embedding_model: nomic-embed-text
      azure:
        model_name: gpt-4
        api_base: {vault: secret/bionicgpt/azure, key: endpoint}
        api_key: {vault: secret/bionicgpt/azure, key: api_key}
        deployment: {vault: secret/bionicgpt/azure, key: chat_deployment}
        api_version: "2024-02-15-preview"
      litellm:
        image: ghcr.io/berriai/litellm:main-v1.55.8
        resources: {cpu: 1000, memory: 2048}
        port: {to: 4000}
        health_path: /health/liveliness
      ollama:
        image: ollama/ollama:0.5.4
        resources: {cpu: 2000, memory: 4096}
        port: {to: 11434}
        health_path: /
        volume: ollama                # client host_volume name (bionicgpt:nomad:agent:host_volumes)
        models: [nomic-embed-text]
    application:
      auto_revert: true
      app_user: bionic_application
      app_password: {vault: secret/bionicgpt/db, key: app_password}
      oidc_issuer_url: https://hera.{{ domain }}/application/o/bionicgpt/
      client_id: {vault: secret/bionicgpt/oauth, key: client_id}
      client_secret: {vault: secret/bionicgpt/oauth, key: client_secret}
      cookie_secret: {vault: secret/bionicgpt/oauth, key: cookie_secret}
      service: bionicgpt
      proxy_service: bionicgpt-oauth2-proxy
      bionicgpt:
        image: ghcr.io/bionic-gpt/bionicgpt:1.8.18
        resources: {cpu: 2000, memory: 4096}
        port: {to: 7703}
      migrations:
        image: ghcr.io/bionic-gpt/bionicgpt-db-migrations:1.8.18
        resources: {cpu: 200, memory: 256}
      oauth2_proxy:
        image: quay.io/oauth2-proxy/oauth2-proxy:v7.6.0
        resources: {cpu: 500, memory: 256}
        port: {to: 4180}
        health_path: /ping
      # Uploaded documents: the pipeline job chunks them through the chunking engine and
      # stores their embeddings (BionicGPT's pipeline-job and unstructured-api containers)
      pipeline_job:
        image: ghcr.io/bionic-gpt/bionicgpt-pipeline-job:1.8.18
        resources: {cpu: 500, memory: 512}
      chunking_engine:
        image: downloads.unstructured.io/unstructured-io/unstructured-api:4ffd8bc
        resources: {cpu: 1000, memory: 2048}
        port: {to: 8000}
        health_path: /healthcheck
      wait:
        image: busybox:1.36.1
        resources: {cpu: 50, memory: 32}

  # Single sign-on in Authentik (cloud node), laid down by salt/bionicgpt/authentik.sls.
  # Only groups named <group_prefix>* reach BionicGPT: the scope mapping emits only them
  # and the application is bound to them alone. The OAuth2 client id/secret Authentik
  # generates are stored in Vault at provider.credentials (keys client_id, client_secret),
  # where the oauth2-proxy job reads them.
  authentik:
    group_prefix: bionicgpt-
    groups:
      bionicgpt-superadmin:
        attributes:
          description: BionicGPT super administrators
          role: superadmin
      bionicgpt-demo-tenant:
        attributes:
          description: Demo tenant for BionicGPT
          role: user
          tenant: demo
    scope_mapping:
      name: BionicGPT Groups Mapping
      scope_name: groups
      superadmin_group: bionicgpt-superadmin
      description: Your BionicGPT groups
    provider:
      name: BionicGPT OAuth2
      client_type: confidential
      authorization_flow: default-provider-authorization-implicit-consent
      invalidation_flow: default-provider-invalidation-flow
      redirect_uris:
        - https://{{ chat_domain }}/oauth2/callback
      scopes: [openid, email, profile, offline_access]
      access_token_validity: hours=1
      refresh_token_validity: days=7
      # RS256 with Authentik's own key pair: oauth2-proxy verifies ID tokens through JWKS
      signing_key: authentik Self-signed Certificate
      credentials: secret/bionicgpt/oauth
    application:
      name: BionicGPT
      slug: bionicgpt
      launch_url: https://{{ chat_domain }}
      description: AI Chat Platform
      policy_engine_mode: any
    bindings:
      groups: [bionicgpt-superadmin, bionicgpt-demo-tenant]
      # remove any other binding on the application: only these groups get in
      exclusive: true
    enrollment:
      # self-service sign-up, linked from the login page (identification stage);
      # new users reach BionicGPT only once an admin puts them in a bionicgpt- group
      enabled: true
      slug: bionicgpt-enrollment
      name: BionicGPT enrollment
      title: Create your account
      identification_stage: default-authentication-identification
      captcha: null

  # After a deployment (orchestration step 10, on the cloud node): these Consul services must
  # pass their checks, and a request through Caddy's route must be answered by oauth2-proxy.
  verify:
    services: [bionicgpt-postgres, ollama, litellm, bionicgpt, bionicgpt-oauth2-proxy]
    timeout: 180
    probe:
      url: https://{{ chat_domain }}/ping      # oauth2-proxy's unauthenticated health path

# Public keys reach the other side through the mine; no minion config change is needed.
mine_functions:
  wireguard_public_key:
    mine_function: wireguard.public_key
