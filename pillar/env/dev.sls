# Overlay for the 'dev' environment (minions with grain hecate_env: dev).
hecate:
  global:
    environment: dev

# oauth2-proxy may run on a developer's workstation.
bionicgpt:
  authentik:
    provider:
      redirect_uris:
        - https://chat.codemonkey.ai/oauth2/callback
        - http://localhost:4180/oauth2/callback
