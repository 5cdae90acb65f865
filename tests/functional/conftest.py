"""
Functional tests: hecate's modules and states through real Salt loaders (no daemons),
with the minion config pointing at the lab simulators. States run through
``state.single`` (saltfactories' ``Loaders``), exactly as a minion runs them.
"""

import os
import uuid

import pytest
from saltfactories.utils.functional import Loaders

from lab import topology

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def minion_opts(salt_factories, tmp_path_factory, consul_sim, vault_sim, lab_secrets):
    pillar_root = tmp_path_factory.mktemp("pillar")
    (pillar_root / "top.sls").write_text("base: {}\n")
    factory = salt_factories.salt_minion_daemon(
        f"func-{uuid.uuid4().hex[:8]}",
        overrides={
            "file_client": "local",
            "module_dirs": [REPO],
            "file_roots": {"base": [os.path.join(REPO, "salt")]},
            "pillar_roots": {"base": [str(pillar_root)]},
            # the lab's credentials: hecate's Consul token, Vault by AppRole
            "hecate": {
                "connections": {
                    "consul": {"url": consul_sim.url, "token": consul_sim.token},
                    "vault": {"url": vault_sim.url, "approle": topology.vault_approle(lab_secrets)},
                }
            },
        },
    )
    return factory.config.copy()


@pytest.fixture(scope="module")
def loaders(minion_opts):
    return Loaders(minion_opts)


@pytest.fixture(autouse=True)
def reset_loaders_state(loaders):
    try:
        yield
    finally:
        loaders.reset_state()
