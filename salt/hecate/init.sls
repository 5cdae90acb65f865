# Every hecate minion first checks that its pillar is valid for its environment.
hecate pillar is valid:
  hecate.validated: []
