"""The embedded environment: simulators, Caddy and a throwaway Salt master with minions."""
