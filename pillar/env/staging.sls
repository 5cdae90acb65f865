# Overlay for the 'staging' environment (minions with grain hecate_env: staging).
hecate:
  global:
    environment: staging
