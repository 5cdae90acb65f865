include:
  - nomad.agent
