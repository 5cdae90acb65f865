# BionicGPT behind Hecate: the application on the local node and its SSO on the cloud node.
# Secrets are Vault references (secret/bionicgpt/{db,oauth,azure,litellm,authentik}).
bionicgpt:
  domain: chat.codemonkey.ai

  # -- Nomad jobs on the local node (salt/bionicgpt/jobs.sls; templates in salt/bionicgpt/jobs/)
  nomad:
    datacenters: [dc1]
    namespace: default
    node_location: local          # constraint on the client's meta.location
    job_prefix: bionicgpt-        # jobs bionicgpt-database, bionicgpt-llm, bionicgpt-application
    jobs: [database, llm, application]   # registration order: each waits for the previous deployment
    vault_role: bionicgpt         # Nomad's Vault role for the template blocks (workload identity)
    deploy_timeout: 900           # seconds to follow each deployment
    revert_on_failure: true       # revert to the last stable version when a deployment fails
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
        volume: ollama_models
        models: [nomic-embed-text]
    application:
      auto_revert: true
      app_user: bionic_application
      app_password: {vault: secret/bionicgpt/db, key: app_password}
      oidc_issuer_url: https://hera.cybermonkey.dev/application/o/bionicgpt/
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
      wait:
        image: busybox:1.36.1
        resources: {cpu: 50, memory: 32}
