include:
  - consul.agent
