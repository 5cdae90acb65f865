"""
Nomad ACLs on the endpoints hecate's preflight probes: the lab simulator with a token vs a
real Nomad with ACLs on (NOMAD_ADDR + NOMAD_TOKEN, e.g. ``nomad agent -dev`` with
``acl { enabled = true }`` and ``nomad acl bootstrap``; skipped without NOMAD_TOKEN).

Sources:
- nomad/job_endpoint.go Job.List: ``Authenticate`` first (an error there is returned as
  ``structs.ErrPermissionDenied``), then ``list-jobs`` in the request's namespace;
- nomad/auth/auth.go Authenticate: a token that resolves to nothing ("we were passed a bogus
  token") is ``ErrPermissionDenied`` (Nomad >= 1.7; older releases answered
  ``ErrTokenNotFound``, "ACL token not found");
- command/agent/http.go errCodeFromHandler: both texts are 403 with the text as the body;
- nomad/status_endpoint.go Status.Leader: "intentionally throwing away any auth error" -
  why /v1/status/leader cannot tell a bad token from a good one.
"""

import uuid

import pytest
import requests

from lab import topology
from lab.sim import SimHandle
from tests.contract.conftest import real_or_skip

SIM_TOKEN = str(uuid.uuid4())


@pytest.fixture(params=["sim", "real"], scope="module")
def nomad_acl(request, tmp_path_factory):
    """``(url, token, is_simulator)`` of a Nomad that enforces ACLs."""
    if request.param == "real":
        env = real_or_skip("NOMAD_ADDR", "NOMAD_TOKEN")
        yield env["NOMAD_ADDR"].rstrip("/"), env["NOMAD_TOKEN"], False
        return
    handle = SimHandle("nomad", str(tmp_path_factory.mktemp("nomad-acl-contract")),
                       dict(topology.nomad_options(), token=SIM_TOKEN, stand_ins=False)).start()
    yield handle.url, SIM_TOKEN, True
    handle.stop()


def jobs(url, token, prefix="bionicgpt-"):
    headers = {"X-Nomad-Token": token} if token else {}
    return requests.get(f"{url}/v1/jobs", params={"prefix": prefix, "namespace": "default"},
                        headers=headers, timeout=30)


def test_job_list_needs_a_valid_token(nomad_acl):
    url, token, _ = nomad_acl
    resp = jobs(url, token)
    assert resp.status_code == 200 and isinstance(resp.json(), list)
    assert resp.headers["X-Nomad-Index"]
    bogus = jobs(url, str(uuid.uuid4()))
    assert bogus.status_code == 403 and bogus.text.strip() in ("Permission denied", "ACL token not found")
    anonymous = jobs(url, None)  # the anonymous policy of a fresh ACL bootstrap grants nothing
    assert anonymous.status_code == 403 and anonymous.text.strip() == "Permission denied"


def test_status_leader_ignores_the_token(nomad_acl):
    url, _, _ = nomad_acl
    resp = requests.get(f"{url}/v1/status/leader", headers={"X-Nomad-Token": str(uuid.uuid4())}, timeout=30)
    assert resp.status_code == 200 and isinstance(resp.json(), str)


def test_the_simulator_answers_a_bogus_token_as_current_nomad(nomad_acl):
    """Nomad >= 1.7 (the simulator's release line) says "Permission denied" on Job.List."""
    url, _, is_simulator = nomad_acl
    if not is_simulator:
        pytest.skip("asserts the simulator's choice among the two real answers")
    assert jobs(url, str(uuid.uuid4())).text.strip() == "Permission denied"
