# BionicGPT behind Hecate: the application on the local node and its SSO on the cloud node.
# Secrets are Vault references (secret/bionicgpt/{db,oauth,azure,litellm,authentik}).
bionicgpt:
  domain: chat.codemonkey.ai

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
        - https://chat.codemonkey.ai/oauth2/callback
      scopes: [openid, email, profile, offline_access]
      access_token_validity: hours=1
      refresh_token_validity: days=7
      # RS256 with Authentik's own key pair: oauth2-proxy verifies ID tokens through JWKS
      signing_key: authentik Self-signed Certificate
      credentials: secret/bionicgpt/oauth
    application:
      name: BionicGPT
      slug: bionicgpt
      launch_url: https://chat.codemonkey.ai
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
