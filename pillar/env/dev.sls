# Overlay for the 'dev' environment (minions with grain hecate_env: dev).
hecate:
  global:
    environment: dev
