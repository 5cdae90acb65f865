# Overlay for the 'prod' environment (minions with grain hecate_env: prod).
hecate:
  global:
    environment: prod
