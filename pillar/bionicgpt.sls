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
