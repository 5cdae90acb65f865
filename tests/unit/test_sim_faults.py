"""
The simulators' fault triggers (lab/sim/base.py): ``after`` keeps a fault dormant until
a matching request, ``until`` retires it at one, ``hits`` counts what it answered, and
an ``action`` runs the simulator's own fault (Vault sealing itself, Consul destroying the
session that holds a lock). The fault tests (tests/integration/test_faults.py) arm every
fault before a run with these, so a fault cannot miss its step by arriving late.
"""

import json

import pytest
from werkzeug.test import Client

from lab.sim.consul import ConsulSim
from lab.sim.vault import VaultSim

TOKEN = {"X-Vault-Token": "root"}


def arm(client, **spec):
    resp = client.post("/_lab/faults", json=spec)
    assert resp.status_code == 200, resp.get_data(as_text=True)


def faults(client):
    return json.loads(client.get("/_lab/faults").get_data())


@pytest.fixture
def vault():
    return Client(VaultSim({"root_token": "root"}))


def test_after_keeps_the_fault_dormant_until_its_trigger(vault):
    arm(vault, method="GET", path=r"^/v1/sys/health$", status=500, body={"errors": ["boom"]},
        after={"method": "GET", "path": r"^/v1/sys/seal-status$"})
    assert vault.get("/v1/sys/health").status_code == 200
    assert faults(vault)[0]["hits"] == 0
    assert vault.get("/v1/sys/seal-status").status_code == 200  # the trigger itself is not faulted here
    assert vault.get("/v1/sys/health").status_code == 500
    assert vault.get("/v1/sys/health").status_code == 500
    assert faults(vault)[0]["hits"] == 2


def test_a_trigger_that_matches_the_fault_is_faulted_too(vault):
    arm(vault, path=r"^/v1/sys/", status=503, body={"errors": ["busy"]},
        after={"path": r"^/v1/sys/seal-status$"})
    assert vault.get("/v1/sys/health").status_code == 200
    assert vault.get("/v1/sys/seal-status").status_code == 503
    assert faults(vault)[0]["hits"] == 1


def test_until_retires_the_fault_and_its_request_passes(vault):
    arm(vault, method="GET", path=r"^/v1/sys/health$", status=500, body={"errors": ["boom"]},
        until={"path": r"^/v1/sys/seal-status$"})
    assert vault.get("/v1/sys/health").status_code == 500
    assert vault.get("/v1/sys/seal-status").status_code == 200
    assert vault.get("/v1/sys/health").status_code == 200
    (fault,) = faults(vault)
    assert fault["hits"] == 1 and fault["ended"] is True


def test_a_later_faults_trigger_is_seen_behind_an_earlier_fault(vault):
    arm(vault, path=r"^/v1/sys/seal-status$", status=500, body={"errors": ["first"]})
    arm(vault, path=r"^/v1/sys/health$", status=502, body={"errors": ["second"]},
        after={"path": r"^/v1/sys/seal-status$"})
    assert vault.get("/v1/sys/seal-status").status_code == 500
    assert vault.get("/v1/sys/health").status_code == 502
    assert [f["hits"] for f in faults(vault)] == [1, 1]


def test_seal_action_seals_vault_at_the_first_matching_request(vault):
    assert vault.get("/v1/secret/data/other", headers=TOKEN).status_code == 404
    arm(vault, path=r"^/v1/secret/data/mine$", action="seal", times=1)
    assert vault.get("/v1/secret/data/other", headers=TOKEN).status_code == 404  # not the step's path
    resp = vault.get("/v1/secret/data/mine", headers=TOKEN)
    assert resp.status_code == 503 and "sealed" in resp.get_data(as_text=True)
    # sealed for everything from then on, like a real seal
    assert vault.get("/v1/secret/data/other", headers=TOKEN).status_code == 503
    assert json.loads(vault.get("/v1/sys/seal-status").get_data())["sealed"] is True
    assert faults(vault)[0]["hits"] == 1


def test_an_unknown_action_is_refused(vault):
    assert vault.post("/_lab/faults", json={"action": "explode"}).status_code == 400
    assert faults(vault) == []


def test_destroy_session_action_releases_the_lock():
    consul = Client(ConsulSim({}))
    sid = json.loads(consul.put("/v1/session/create", json={"Name": "run"}).get_data())["ID"]
    assert consul.put(f"/v1/kv/locks/env?acquire={sid}", data="me").get_data(as_text=True).strip() == "true"
    arm(consul, method="GET", path=r"^/v1/agent/service/[^/]+$", action="destroy_session", key="locks/env",
        times=1)
    consul.get("/v1/agent/service/web")
    (entry,) = json.loads(consul.get("/v1/kv/locks/env").get_data())
    assert not entry.get("Session")
    assert consul.get(f"/v1/session/info/{sid}").get_json() in ([], None)
    assert faults(consul)[0]["hits"] == 1
