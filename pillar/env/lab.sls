# Overlay for the 'lab' environment (minions with grain hecate_env: lab).
hecate:
  global:
    environment: lab

# Authentik in the lab: oauth2-proxy may also run on the workstation, and two test users
# exist (passwords generated per lab, in the Vault simulator only).
bionicgpt:
  authentik:
    provider:
      redirect_uris:
        - https://chat.codemonkey.ai/oauth2/callback
        - http://localhost:4180/oauth2/callback
    test_users:
      henry:
        name: Henry Smith
        email: henry@codemonkey.ai
        groups: [bionicgpt-superadmin]
        password: {vault: secret/bionicgpt/lab-users, key: henry}
      demo:
        name: Demo User
        email: demo@codemonkey.ai
        groups: [bionicgpt-demo-tenant]
        password: {vault: secret/bionicgpt/lab-users, key: demo}
