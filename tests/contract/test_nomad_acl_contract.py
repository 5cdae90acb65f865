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

The real server's token (NOMAD_TOKEN) must be a management token: the tests create a policy and
a token of their own (PUT /v1/acl/policy, POST /v1/acl/token), as the simulator lets them.
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


def test_all_namespaces_needs_list_jobs_somewhere(nomad_acl, hecate_token):
    """
    nomad/job_endpoint.go Job.List checks AllowNsOp on the request's namespace even for "*";
    acl/acl.go AllowNamespaceOperation lets "*" through only when anyNamespaceAllowsOp: a
    token that may list jobs nowhere (the anonymous one) is refused, not answered [].
    """
    url, _, _ = nomad_acl
    secret, _ = hecate_token
    resp = requests.get(f"{url}/v1/jobs", params={"namespace": "*", "prefix": "hecate-contract-"}, timeout=30)
    assert (resp.status_code, resp.text.strip()) == (403, "Permission denied")
    resp = requests.get(f"{url}/v1/jobs", params={"namespace": "*", "prefix": "hecate-contract-"},
                        headers={"X-Nomad-Token": secret}, timeout=30)
    assert resp.status_code == 200 and isinstance(resp.json(), list)


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


# -- every endpoint hecate calls, and the policy hecate's token needs (issue 18) --------------------
# Sources (hashicorp/nomad at aa026cc):
# - nomad/auth/auth.go Authenticate: no token is the anonymous token; an unknown UUID is
#   ErrPermissionDenied; a secret that is not a UUID is ErrTokenInvalid, then tried as a workload
#   identity (Encrypter.VerifyClaim: go-jose "compact JWS format must have three parts");
# - every RPC answers an authentication error with structs.ErrPermissionDenied; the endpoints the
#   agent resolves itself (command/agent/http.go ResolveToken: /v1/agent/self, /v1/jobs/parse)
#   wrap it as "ACL token not found or invalid workload identity: <err>", which errCodeFromHandler
#   turns into 403 "Permission denied" only when the text ends so - else a 500;
# - acl/policy.go: namespace capabilities, variables paths, host_volume policies;
#   nomad/job_endpoint.go: Job.Validate read-job, Job.Plan submit-job|plan-job, doRegister
#   submit-job|register-job then host volumes (mount-readwrite), Job.Revert submit-job|revert-job,
#   Job.Deregister submit-job|purge-job|deregister-job; nomad/variables_endpoint.go Apply
#   (write/destroy on the body's namespace and path), Read (read), List (filtered by list).
JOB_WITH_VOLUME = """
job "%(id)s" {
  type = "service"
  group "db" {
    volume "data" {
      type      = "host"
      source    = "%(volume)s"
      read_only = false
    }
    task "db" {
      driver = "docker"
      config {
        image = "busybox:1.36.1"
      }
      volume_mount {
        volume      = "data"
        destination = "/data"
      }
      resources {
        cpu    = 50
        memory = 32
      }
    }
  }
}
"""


def call(url, token, method, path, **kw):
    headers = {"X-Nomad-Token": token} if token else {}
    return requests.request(method, url + path, headers=headers, timeout=30, **kw)


@pytest.fixture(scope="module")
def hecate_token(nomad_acl):
    """A token with exactly the lab's policy for hecate (lab/topology.py NOMAD_POLICY)."""
    url, token, _ = nomad_acl
    name = f"hecate-contract-{uuid.uuid4().hex[:8]}"
    resp = call(url, token, "PUT", f"/v1/acl/policy/{name}",
                json={"Name": name, "Description": "hecate (contract test)", "Rules": topology.nomad_policy_hcl()})
    assert resp.status_code == 200, resp.text
    resp = call(url, token, "POST", "/v1/acl/token", json={"Name": name, "Type": "client", "Policies": [name]})
    assert resp.status_code == 200, resp.text
    created = resp.json()
    yield created["SecretID"], created["AccessorID"]
    call(url, token, "DELETE", f"/v1/acl/token/{created['AccessorID']}")
    call(url, token, "DELETE", f"/v1/acl/policy/{name}")


def parsed_job(url, token, job_id, volume="bionicgpt_postgres"):
    resp = call(url, token, "POST", "/v1/jobs/parse",
                json={"JobHCL": JOB_WITH_VOLUME % {"id": job_id, "volume": volume}, "Canonicalize": True})
    assert resp.status_code == 200, resp.text
    return resp.json()


READS = [("GET", "/v1/jobs"), ("GET", "/v1/job/hecate-contract-x"), ("GET", "/v1/job/hecate-contract-x/versions"),
         ("GET", "/v1/job/hecate-contract-x/allocations"), ("GET", "/v1/job/hecate-contract-x/deployment"),
         ("GET", "/v1/job/hecate-contract-x/deployments"), ("GET", f"/v1/evaluation/{uuid.uuid4()}"),
         ("GET", f"/v1/allocation/{uuid.uuid4()}"), ("GET", f"/v1/deployment/{uuid.uuid4()}"),
         ("GET", "/v1/vars"), ("GET", "/v1/var/nomad/jobs/x"), ("GET", "/v1/nodes"),
         ("GET", "/v1/operator/scheduler/configuration"), ("DELETE", "/v1/job/hecate-contract-x"),
         ("DELETE", "/v1/var/nomad/jobs/x")]


def test_an_unknown_token_is_permission_denied_everywhere(nomad_acl):
    url, token, _ = nomad_acl
    job = parsed_job(url, token, "hecate-contract-x")
    bodies = [("POST", "/v1/validate/job", {"Job": job}), ("POST", "/v1/job/hecate-contract-x/plan", {"Job": job}),
              ("POST", "/v1/job/hecate-contract-x", {"Job": job}),
              ("PUT", "/v1/var/nomad/jobs/x", {"Items": {"a": "1"}}),
              ("POST", "/v1/job/hecate-contract-x/revert", {"JobID": "hecate-contract-x", "JobVersion": 0}),
              ("POST", "/v1/jobs/parse", {"JobHCL": 'job "x" {}'}), ("GET", "/v1/agent/self", None)]
    unknown = str(uuid.uuid4())
    for method, path, *body in READS + bodies:
        kw = {"json": body[0]} if body and body[0] is not None else {}
        resp = call(url, unknown, method, path, **kw)
        assert (resp.status_code, resp.text.strip()) == (403, "Permission denied"), (method, path, resp.text)
    # not a UUID: tried as a workload identity; the RPCs still say "Permission denied", the
    # endpoints the agent resolves itself fail with go-jose's parse error (a 500)
    for method, path in READS[:3]:
        assert call(url, "not-a-uuid", method, path).text.strip() == "Permission denied"
    for method, path, body in (("GET", "/v1/agent/self", None), ("POST", "/v1/jobs/parse", {"JobHCL": 'job "x" {}'})):
        resp = call(url, "not-a-uuid", method, path, **({"json": body} if body else {}))
        assert resp.status_code == 500, (path, resp.text)
        assert resp.text.startswith("ACL token not found or invalid workload identity: "), resp.text
    assert call(url, None, "GET", "/v1/status/leader").status_code == 200  # no ACL check at all


def test_hecates_policy_covers_what_hecate_does(nomad_acl, hecate_token):
    """The calls hecate_nomad_client makes, with the token operators give hecate."""
    url, management, _ = nomad_acl
    secret, accessor = hecate_token
    job_id = f"hecate-contract-{uuid.uuid4().hex[:8]}"
    var = f"nomad/jobs/{job_id}"
    try:
        assert call(url, secret, "GET", "/v1/jobs", params={"prefix": "hecate-contract"}).status_code == 200
        job = parsed_job(url, secret, job_id)
        checked = call(url, secret, "POST", "/v1/validate/job", json={"Job": job})
        assert checked.status_code == 200 and checked.json()["DriverConfigValidated"] is True, checked.text
        assert call(url, secret, "POST", f"/v1/job/{job_id}/plan", json={"Job": job, "Diff": True}).status_code == 200
        reply = call(url, secret, "POST", f"/v1/job/{job_id}", json={"Job": job, "EnforceIndex": True,
                                                                     "JobModifyIndex": 0})
        assert reply.status_code == 200, reply.text
        current = call(url, secret, "GET", f"/v1/job/{job_id}").json()
        assert current["NomadTokenID"] == accessor  # doRegister stamps the caller's accessor
        for path in (f"/v1/job/{job_id}/versions", f"/v1/job/{job_id}/allocations",
                     f"/v1/job/{job_id}/deployments", f"/v1/job/{job_id}/deployment",
                     f"/v1/evaluation/{reply.json()['EvalID']}"):
            assert call(url, secret, "GET", path).status_code == 200, path
        changed = parsed_job(url, secret, job_id)
        changed["TaskGroups"][0]["Tasks"][0]["Config"]["image"] = "busybox:1.37.0"
        assert call(url, secret, "POST", f"/v1/job/{job_id}", json={"Job": changed}).status_code == 200
        resp = call(url, secret, "POST", f"/v1/job/{job_id}/revert",
                    json={"JobID": job_id, "JobVersion": 0, "EnforcePriorVersion": 1})
        assert resp.status_code == 200, resp.text
        resp = call(url, secret, "PUT", f"/v1/var/{var}?cas=0", json={"Items": {"a": "1"}})
        assert resp.status_code == 200, resp.text
        assert call(url, secret, "GET", f"/v1/var/{var}").json()["Items"] == {"a": "1"}
        assert [v["Path"] for v in call(url, secret, "GET", "/v1/vars", params={"prefix": var}).json()] == [var]
        assert call(url, secret, "DELETE", f"/v1/var/{var}").status_code == 204
        assert call(url, secret, "DELETE", f"/v1/job/{job_id}").status_code == 200
        assert call(url, secret, "DELETE", f"/v1/job/{job_id}?purge=true").status_code == 200
    finally:
        call(url, management, "DELETE", f"/v1/job/{job_id}?purge=true")
        call(url, management, "DELETE", f"/v1/var/{var}")


def test_hecates_policy_grants_nothing_more(nomad_acl, hecate_token):
    url, management, _ = nomad_acl
    secret, _ = hecate_token
    job_id = f"hecate-contract-{uuid.uuid4().hex[:8]}"
    try:
        for path in ("/v1/agent/self", "/v1/nodes", "/v1/operator/scheduler/configuration"):
            resp = call(url, secret, "GET", path)
            assert (resp.status_code, resp.text.strip()) == (403, "Permission denied"), path
        # a host volume the policy does not name: planning is allowed, registering is not
        job = parsed_job(url, secret, job_id, volume="hecate-contract-other")
        assert call(url, secret, "POST", f"/v1/job/{job_id}/plan", json={"Job": job}).status_code == 200
        resp = call(url, secret, "POST", f"/v1/job/{job_id}", json={"Job": job})
        assert (resp.status_code, resp.text.strip()) == (403, "Permission denied")
        # variables outside nomad/jobs/: no write, no read, and listings leave them out
        other = f"hecate-contract/{uuid.uuid4().hex[:8]}"
        assert call(url, management, "PUT", f"/v1/var/{other}", json={"Items": {"a": "1"}}).status_code == 200
        assert call(url, secret, "GET", f"/v1/var/{other}").status_code == 403
        assert call(url, secret, "PUT", f"/v1/var/{other}", json={"Items": {"a": "2"}}).status_code == 403
        assert call(url, secret, "DELETE", f"/v1/var/{other}").status_code == 403
        listed = call(url, secret, "GET", "/v1/vars", params={"prefix": other})
        assert listed.status_code == 200 and listed.json() == []
        call(url, management, "DELETE", f"/v1/var/{other}")
        # another namespace: nothing
        resp = call(url, secret, "GET", "/v1/jobs", params={"namespace": "hecate-contract-elsewhere"})
        assert (resp.status_code, resp.text.strip()) == (403, "Permission denied")
    finally:
        call(url, management, "DELETE", f"/v1/job/{job_id}?purge=true")


def test_the_same_spec_from_another_token_is_a_new_version(nomad_acl, hecate_token):
    """
    nomad/structs/structs.go Job.SpecChanged compares NomadTokenID (the registering token's
    accessor, stamped by doRegister) while the plan's diff filters it (nomad/structs/diff.go):
    hecate, which registers only when the plan's diff is not "None", stays converged; a plain
    re-registration by another token makes a new version (hashicorp/nomad#26810; #28519, after
    2.0.x, ignores the field - a real server with it keeps version 0).
    """
    url, management, is_simulator = nomad_acl
    secret, _ = hecate_token
    job_id = f"hecate-contract-{uuid.uuid4().hex[:8]}"
    try:
        job = parsed_job(url, management, job_id)
        assert call(url, management, "POST", f"/v1/job/{job_id}", json={"Job": job}).status_code == 200
        plan = call(url, secret, "POST", f"/v1/job/{job_id}/plan", json={"Job": job, "Diff": True}).json()
        assert plan["Diff"]["Type"] == "None"
        assert call(url, secret, "POST", f"/v1/job/{job_id}", json={"Job": job}).status_code == 200
        version = call(url, management, "GET", f"/v1/job/{job_id}").json()["Version"]
        assert version == 1 if is_simulator else version in (0, 1)
    finally:
        call(url, management, "DELETE", f"/v1/job/{job_id}?purge=true")
