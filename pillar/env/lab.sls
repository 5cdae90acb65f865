# Overlay for the 'lab' environment (minions with grain hecate_env: lab).
hecate:
  global:
    environment: lab
