"""
Fixtures of the tests that drive the whole orchestration (test_orchestration.py,
test_faults.py); the helpers that read its return are in tests/orch_helpers.py.
"""

import json
import os

import pytest


@pytest.fixture(scope="module")
def sims(vault_sim, consul_sim, nomad_sim, authentik_sim, hetzner_sim):
    return {"vault": vault_sim, "consul": consul_sim, "nomad": nomad_sim, "authentik": authentik_sim,
            "hetzner": hetzner_sim}


@pytest.fixture(scope="module")
def stack(salt_run_cli, cloud_minion, local_minion, sims, caddy, runtime_pillar_dir):
    """The lab as `python -m lab up` has it (operator-provided secrets seeded in Vault)."""
    return {"sims": sims, "caddy": caddy, "pillar_dir": runtime_pillar_dir}


@pytest.fixture
def overrides(stack):
    """Write the lab's pillar overrides (lab_overrides.sls); removed afterwards."""
    path = os.path.join(stack["pillar_dir"], "lab_overrides.sls")

    def write(data):
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(data, fh)  # JSON is YAML

    def remove():
        if os.path.exists(path):
            os.unlink(path)

    write.remove = remove
    yield write
    remove()
