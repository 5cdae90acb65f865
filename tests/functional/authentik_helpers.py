"""Shared helpers of the Authentik functional tests (loaders bound to a simulator)."""

import os
import sys
import uuid

from saltfactories.utils.functional import Loaders

# the tests import hecate's utils directly too (as the file_roots tree does)
UTILS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "_utils")
if UTILS not in sys.path:
    sys.path.insert(0, UTILS)

TOKEN_REF = {"vault": "secret/hecate/authentik", "key": "api_token"}


def minion_opts(salt_factories, name, repo, vault_sim, sim, extra=None):
    """Minion opts pointing hecate's Authentik/Vault connections at the simulators."""
    connections = {
        "authentik": {"url": sim.url, "token": TOKEN_REF},
        "vault": {"url": vault_sim.url, "token": vault_sim.root_token},
    }
    overrides = {
        "file_client": "local",
        "module_dirs": [repo],
        "hecate": {"connections": connections},
        "log_level_logfile": "debug",
    }
    overrides.update(extra or {})
    factory = salt_factories.salt_minion_daemon(name, overrides=overrides)
    return factory.config.copy()


def loaders_for(opts):
    return Loaders(opts)


def unique(prefix="t"):
    return f"{prefix}{uuid.uuid4().hex[:10]}"
