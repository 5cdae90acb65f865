"""
Nomad HTTP API contract: the lab simulator vs a real Nomad (``NOMAD_ADDR``, optional
``NOMAD_TOKEN``; e.g. ``nomad agent -dev``). Only API semantics are asserted (status codes,
error texts, index headers, versions, CAS), never scheduling outcomes that depend on the
node (drivers, images).
"""

import os
import re
import time
import uuid

import pytest
import requests

from tests.contract.conftest import real_or_skip

JOB_HCL = """
job "%(id)s" {
  datacenters = ["*"]
  type        = "service"

  group "web" {
    count = 1

    network {
      port "http" {
        to = 8080
      }
    }

    task "web" {
      driver = "docker"

      config {
        image = "%(image)s"
        ports = ["http"]
      }

      resources {
        cpu    = 50
        memory = 32
      }
    }
  }
}
"""


class Nomad:
    def __init__(self, url, token=None):
        self.url = url.rstrip("/")
        self.headers = {"X-Nomad-Token": token} if token else {}

    def call(self, method, path, **kw):
        return requests.request(method, self.url + path, headers=self.headers, timeout=30, **kw)

    def parse(self, hcl, canonicalize=True):
        return self.call("POST", "/v1/jobs/parse", json={"JobHCL": hcl, "Canonicalize": canonicalize})

    def job_spec(self, job_id, image="busybox:1.36.1"):
        resp = self.parse(JOB_HCL % {"id": job_id, "image": image})
        assert resp.status_code == 200, resp.text
        return resp.json()

    def register(self, job, **body):
        return self.call("POST", f"/v1/job/{job['ID']}", json={"Job": job, **body})


@pytest.fixture(params=["sim", "real"], scope="module")
def nomad(request, nomad_sim):
    if request.param == "sim":
        return Nomad(nomad_sim.url, nomad_sim.token)
    env = real_or_skip("NOMAD_ADDR")
    import os  # pylint: disable=import-outside-toplevel

    return Nomad(env["NOMAD_ADDR"], os.environ.get("NOMAD_TOKEN"))


@pytest.fixture
def job_id(nomad):
    name = f"hecate-contract-{uuid.uuid4().hex[:8]}"
    yield name
    nomad.call("DELETE", f"/v1/job/{name}?purge=true")


def test_parse_canonicalizes_defaults(nomad, job_id):
    job = nomad.job_spec(job_id)
    assert job["ID"] == job_id and job["Name"] == job_id
    assert job["Priority"] == 50 and job["Region"] == "global" and job["Namespace"] == "default"
    assert job["Update"]["MaxParallel"] == 1 and job["Update"]["HealthCheck"] == "checks"
    assert job["Update"]["MinHealthyTime"] == 10_000_000_000
    assert job["Update"]["AutoRevert"] is False
    group = job["TaskGroups"][0]
    assert group["Networks"][0]["DynamicPorts"][0]["Label"] == "http"
    assert group["Networks"][0]["DynamicPorts"][0]["To"] == 8080
    assert group["Tasks"][0]["Config"] == {"image": "busybox:1.36.1", "ports": ["http"]}
    raw = nomad.parse(JOB_HCL % {"id": job_id, "image": "x:1"}, canonicalize=False).json()
    assert raw["Priority"] is None and raw["Update"] is None


def test_parse_errors_are_plain_text_400_with_the_line(nomad):
    resp = nomad.call("POST", "/v1/jobs/parse", json={"JobHCL": ""})
    assert resp.status_code == 400 and resp.text.strip() == "Job spec is empty"
    hcl = 'job "x" {\n  group "g" {\n    depends_on = ["db"]\n    task "t" {\n      driver = "docker"\n    }\n  }\n}\n'
    resp = nomad.parse(hcl)
    assert resp.status_code == 400
    assert not resp.headers.get("Content-Type", "").startswith("application/json")
    assert resp.text.startswith("Failed to parse job: input.hcl:3,5-15: Unsupported argument;")
    assert 'An argument named "depends_on" is not expected here.' in resp.text
    resp = nomad.parse('job "x" {\n  group "g" {\n    bogus {\n    }\n  }\n}\n')
    assert resp.status_code == 400
    assert "input.hcl:3,5-10: Unsupported block type;" in resp.text
    assert 'Blocks of type "bogus" are not expected here.' in resp.text


def test_missing_job_and_empty_lists(nomad, job_id):
    resp = nomad.call("GET", f"/v1/job/{job_id}")
    assert resp.status_code == 404 and resp.text.strip() == "job not found"
    resp = nomad.call("GET", f"/v1/job/{job_id}/allocations")
    assert resp.status_code == 200 and resp.json() == []
    resp = nomad.call("GET", f"/v1/job/{job_id}/deployment")
    assert resp.status_code == 200 and resp.json() is None
    assert int(resp.headers["X-Nomad-Index"]) >= 1


def test_validate_reports_errors_with_status_200(nomad, job_id):
    job = nomad.job_spec(job_id)
    job["TaskGroups"][0]["Tasks"][0]["Driver"] = ""
    resp = nomad.call("POST", "/v1/validate/job", json={"Job": job})
    assert resp.status_code == 200
    body = resp.json()
    assert any("Missing task driver" in e for e in body["ValidationErrors"])
    assert "Missing task driver" in body["Error"]


def test_plan_register_enforce_index_and_versions(nomad, job_id):
    job = nomad.job_spec(job_id)
    plan = nomad.call("POST", f"/v1/job/{job_id}/plan", json={"Job": job, "Diff": True}).json()
    assert plan["JobModifyIndex"] == 0 and plan["Diff"]["Type"] == "Added"
    assert plan["Annotations"]["DesiredTGUpdates"]["web"]["Place"] == 1

    resp = nomad.register(job, EnforceIndex=True, JobModifyIndex=5)
    assert resp.status_code == 500
    assert resp.text.strip() == "Enforcing job modify index 5: job does not exist"
    resp = nomad.register(job, EnforceIndex=True, JobModifyIndex=0)
    assert resp.status_code == 200, resp.text
    first = resp.json()
    assert first["EvalID"] and first["JobModifyIndex"] > 0
    resp = nomad.register(job, EnforceIndex=True, JobModifyIndex=0)
    assert resp.status_code == 500 and resp.text.strip() == "Enforcing job modify index 0: job already exists"

    current = nomad.call("GET", f"/v1/job/{job_id}").json()
    assert current["Version"] == 0 and current["JobModifyIndex"] == first["JobModifyIndex"]
    same = nomad.call("POST", f"/v1/job/{job_id}/plan", json={"Job": job, "Diff": True}).json()
    assert same["Diff"]["Type"] == "None" and same["JobModifyIndex"] == current["JobModifyIndex"]

    # unchanged spec: a new evaluation, no new version
    again = nomad.register(job, EnforceIndex=True, JobModifyIndex=current["JobModifyIndex"]).json()
    assert again["EvalID"] and again["EvalID"] != first["EvalID"]
    assert nomad.call("GET", f"/v1/job/{job_id}").json()["Version"] == 0

    changed = nomad.job_spec(job_id, image="busybox:1.37.0")
    stale = current["JobModifyIndex"] - 1
    resp = nomad.register(changed, EnforceIndex=True, JobModifyIndex=stale)
    assert resp.status_code == 500
    assert resp.text.strip() == (f"Enforcing job modify index {stale}: job exists with conflicting job "
                                 f"modify index: {current['JobModifyIndex']}")
    plan = nomad.call("POST", f"/v1/job/{job_id}/plan", json={"Job": changed, "Diff": True}).json()
    assert plan["Diff"]["Type"] == "Edited"
    task = plan["Diff"]["TaskGroups"][0]["Tasks"][0]
    config = next(o for o in task["Objects"] if o["Name"] == "Config")
    assert {"Type": "Edited", "Name": "image", "Old": "busybox:1.36.1", "New": "busybox:1.37.0"}.items() <= \
        config["Fields"][0].items()
    assert task["Annotations"] == ["forces create/destroy update"]
    resp = nomad.register(changed, EnforceIndex=True, JobModifyIndex=plan["JobModifyIndex"])
    assert resp.status_code == 200
    versions = nomad.call("GET", f"/v1/job/{job_id}/versions").json()["Versions"]
    assert [v["Version"] for v in versions] == [1, 0]

    resp = nomad.call("POST", f"/v1/job/{job_id}/revert", json={"JobID": job_id, "JobVersion": 1})
    assert resp.status_code == 500 and resp.text.strip() == "can't revert to current version"
    resp = nomad.call("POST", f"/v1/job/{job_id}/revert",
                      json={"JobID": job_id, "JobVersion": 0, "EnforcePriorVersion": 7})
    assert resp.status_code == 500 and resp.text.strip() == "Current job has version 1; enforcing version 7"
    resp = nomad.call("POST", f"/v1/job/{job_id}/revert",
                      json={"JobID": job_id, "JobVersion": 0, "EnforcePriorVersion": 1})
    assert resp.status_code == 200 and resp.json()["EvalID"]
    reverted = nomad.call("GET", f"/v1/job/{job_id}").json()
    assert reverted["Version"] == 2
    assert reverted["TaskGroups"][0]["Tasks"][0]["Config"]["image"] == "busybox:1.36.1"


def test_register_id_mismatch_is_400(nomad, job_id):
    job = nomad.job_spec(job_id)
    resp = nomad.call("POST", "/v1/job/some-other-name", json={"Job": job})
    assert resp.status_code == 400 and resp.text.strip() == "Job ID does not match name"


def test_evaluation_and_blocking_queries(nomad, job_id):
    reply = nomad.register(nomad.job_spec(job_id)).json()
    resp = nomad.call("GET", f"/v1/evaluation/{reply['EvalID']}")
    assert resp.status_code == 200 and resp.json()["JobID"] == job_id
    assert resp.json()["TriggeredBy"] == "job-register"
    index = int(resp.headers["X-Nomad-Index"])
    assert resp.headers.get("X-Nomad-KnownLeader") == "true"
    assert nomad.call("GET", "/v1/evaluation/00000000-0000-0000-0000-000000000000").status_code == 404
    # a blocking query on an index far ahead returns when the wait is over, index unchanged
    started = time.monotonic()
    resp = nomad.call("GET", f"/v1/jobs?index={index + 100000}&wait=1s")
    assert resp.status_code == 200 and time.monotonic() - started >= 0.9
    assert int(resp.headers["X-Nomad-Index"]) < index + 100000
    assert nomad.call("GET", "/v1/jobs?index=1&wait=never").text.strip() == "Invalid wait time"
    assert nomad.call("GET", "/v1/jobs?index=x").text.strip() == "Invalid index"
    # a write wakes a blocked reader of the same table before its wait ends
    jobs_index = int(nomad.call("GET", "/v1/jobs").headers["X-Nomad-Index"])
    started = time.monotonic()
    nomad.call("DELETE", f"/v1/job/{job_id}")
    resp = nomad.call("GET", f"/v1/jobs?index={jobs_index}&wait=20s")
    assert int(resp.headers["X-Nomad-Index"]) > jobs_index
    assert time.monotonic() - started < 15


def test_stop_then_purge(nomad, job_id):
    nomad.register(nomad.job_spec(job_id))
    resp = nomad.call("DELETE", f"/v1/job/{job_id}")
    assert resp.status_code == 200 and resp.json()["EvalID"]
    stopped = nomad.call("GET", f"/v1/job/{job_id}").json()
    assert stopped["Stop"] is True and stopped["Version"] == 1
    resp = nomad.call("DELETE", f"/v1/job/{job_id}?purge=true")
    assert resp.status_code == 200
    assert nomad.call("GET", f"/v1/job/{job_id}").status_code == 404
    resp = nomad.call("DELETE", f"/v1/job/{job_id}?purge=true")
    assert resp.status_code == 200 and resp.json()["EvalID"] == ""


def test_variables_check_and_set(nomad):
    path = f"hecate-contract/{uuid.uuid4().hex[:8]}"
    try:
        resp = nomad.call("GET", f"/v1/var/{path}")
        assert resp.status_code == 404 and resp.text.strip() == "variable not found"
        resp = nomad.call("PUT", f"/v1/var/{path}", json={"Path": path})
        assert resp.status_code == 400 and resp.text.strip() == "variable missing required Items object"
        resp = nomad.call("PUT", f"/v1/var/{path}?cas=0", json={"Path": path, "Items": {"a": "1"}})
        assert resp.status_code == 200
        created = resp.json()
        assert created["Items"] == {"a": "1"} and created["ModifyIndex"] > 0
        resp = nomad.call("PUT", f"/v1/var/{path}?cas=0", json={"Path": path, "Items": {"a": "2"}})
        assert resp.status_code == 409
        assert resp.json()["ModifyIndex"] == created["ModifyIndex"]
        resp = nomad.call("PUT", f"/v1/var/{path}?cas={created['ModifyIndex']}",
                          json={"Path": path, "Items": {"a": "2"}})
        assert resp.status_code == 200
        updated = resp.json()
        got = nomad.call("GET", f"/v1/var/{path}")
        assert got.json()["Items"] == {"a": "2"}
        assert int(got.headers["X-Nomad-Index"]) >= updated["ModifyIndex"]
        listed = nomad.call("GET", f"/v1/vars?prefix={path}").json()
        assert [v["Path"] for v in listed] == [path] and "Items" not in listed[0]
        resp = nomad.call("DELETE", f"/v1/var/{path}?cas={created['ModifyIndex']}")
        assert resp.status_code == 409
        resp = nomad.call("DELETE", f"/v1/var/{path}?cas={updated['ModifyIndex']}")
        assert resp.status_code == 204
    finally:
        nomad.call("DELETE", f"/v1/var/{path}")


# -- issue 18 items 9-11: what the simulator was too lenient about ---------------------------------
def job_hcl(job_id, group="", task="", resources=""):
    """JOB_HCL with extra group/task/resources lines."""
    return (JOB_HCL % {"id": job_id, "image": "busybox:1.36.1"}).replace(
        '    task "web" {', f'{group}\n    task "web" {{').replace(
        "      resources {", f"{task}\n      resources {{").replace(
        "        memory = 32", f"        memory = 32\n        {resources}")


def parsed(nomad, hcl):
    resp = nomad.parse(hcl)
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_vault_block_needs_vault_on_the_servers(nomad, job_id):
    """
    nomad/job_endpoint_hook_vault.go jobVaultHook.Validate refuses a job with a vault block
    when the servers' Vault cluster is not enabled; nomad/job_endpoint_hooks.go
    jobImpliedConstraints adds ``${attr.vault.version} semver >= 0.6.1`` to the group.
    The agent's config (GET /v1/agent/self, config.Vaults) says which case applies.
    """
    job = parsed(nomad, job_hcl(job_id, task='      vault {\n        role = "hecate"\n      }'))
    vaults = nomad.call("GET", "/v1/agent/self").json()["config"].get("Vaults") or []
    enabled = any(v.get("Name") == "default" and v.get("Enabled") for v in vaults)
    checked = nomad.call("POST", "/v1/validate/job", json={"Job": job}).json()
    resp = nomad.register(job)
    if not enabled:
        assert checked["ValidationErrors"] == ['Vault "default" not enabled but used in the job']
        assert resp.status_code == 500
        assert resp.text == '1 error occurred:\n\t* Vault "default" not enabled but used in the job\n\n'
        return
    assert resp.status_code == 200, resp.text
    group = nomad.call("GET", f"/v1/job/{job_id}").json()["TaskGroups"][0]
    assert {"LTarget": "${attr.vault.version}", "RTarget": ">= 0.6.1", "Operand": "semver"}.items() <= \
        next(c for c in group["Constraints"] if c["LTarget"] == "${attr.vault.version}").items()


@pytest.mark.parametrize("restart,errors", [
    ('attempts = 0\n      delay = "15s"\n      interval = "5m"\n      mode = "delay"',
     ['Restart policy "delay" with 0 attempts is ambiguous']),
    ('attempts = 1\n      delay = "1s"\n      interval = "2s"\n      mode = "fail"',
     ["Interval can not be less than 5s (got 2s)"]),
    ('attempts = 10\n      delay = "1m"\n      interval = "5m"\n      mode = "fail"',
     ["Nomad can't restart the TaskGroup 10 times in an interval of 5m0s with a delay of 1m0s"]),
])
def test_restart_policy_validated_word_for_word(nomad, job_id, restart, errors):
    """nomad/structs/structs.go RestartPolicy.Validate, run by TaskGroup.Validate."""
    job = parsed(nomad, job_hcl(job_id, group=f"    restart {{\n      {restart}\n    }}"))
    checked = nomad.call("POST", "/v1/validate/job", json={"Job": job}).json()
    body = "".join(f"\t* {e}\n" for e in errors)
    count = "1 error occurred" if len(errors) == 1 else f"{len(errors)} errors occurred"
    assert checked["ValidationErrors"] == [f"Task group web validation failed: {count}:\n{body}\n"]


def test_query_namespace_wins_over_the_jobs(nomad, job_id):
    """command/agent/job_endpoint.go namespaceForJob: ?namespace=, then the body, then the job."""
    job = nomad.job_spec(job_id)
    job["Namespace"] = "hecate-contract-no-such-namespace"
    resp = nomad.call("POST", f"/v1/job/{job_id}?namespace=default", json={"Job": job})
    assert resp.status_code == 200, resp.text
    assert nomad.call("GET", f"/v1/job/{job_id}?namespace=default").status_code == 200
    job["Namespace"] = "default"
    resp = nomad.call("POST", f"/v1/job/{job_id}?namespace=hecate-contract-no-such-namespace", json={"Job": job})
    assert resp.status_code == 500
    assert resp.text == (f'1 error occurred:\n\t* job "{job_id}" is in nonexistent namespace '
                         f'"hecate-contract-no-such-namespace"\n\n')


def test_job_request_errors_word_for_word(nomad, job_id):
    """command/agent/job_endpoint.go jobUpdate, jobPlan and jobRevert (CodedError 400)."""
    resp = nomad.call("POST", f"/v1/job/{job_id}", json={"Job": {"Name": job_id}})
    assert resp.status_code == 400 and resp.text == "Job ID hasn't been provided"
    resp = nomad.call("POST", f"/v1/job/{job_id}/plan", json={"Job": {"Name": job_id}})
    assert resp.status_code == 400 and resp.text == "Job must have a valid ID"
    assert nomad.register(nomad.job_spec(job_id)).status_code == 200
    resp = nomad.call("POST", f"/v1/job/{job_id}/revert", json={"JobVersion": 0})
    assert resp.status_code == 400 and resp.text == "JobID must be specified"


@pytest.mark.skipif(not os.environ.get("HECATE_CONTRACT_SLOW"), reason="waits 5 minutes (HECATE_CONTRACT_SLOW=1)")
def test_blocking_query_is_capped_at_300s(nomad):
    """nomad/structs/structs.go MaxBlockingRPCQueryTime (300s) + up to 1/16 jitter (nomad/rpc.go)."""
    index = int(nomad.call("GET", "/v1/jobs").headers["X-Nomad-Index"])
    started = time.monotonic()
    resp = requests.get(f"{nomad.url}/v1/jobs?index={index + 100000}&wait=10m", headers=nomad.headers, timeout=400)
    assert resp.status_code == 200 and 295 <= time.monotonic() - started <= 300 + 300 / 16 + 5


@pytest.mark.parametrize("path,problem", [
    ("nomad", ('"nomad" is a reserved top-level directory path, but you may write variables to "nomad/jobs", '
              '"nomad/job-templates", "nomad/sentinel", or below')),
    ("nomad/hecate-contract", ('only paths at "nomad/jobs" or "nomad/job-templates" and below are valid paths '
                              'under the top-level "nomad" directory')),
    ("nomad/job-templates", ('"nomad/job-templates" is a reserved directory path, but you may write variables '
                            'at the level below it, for example, "nomad/job-templates/template-name"')),
])
def test_reserved_variable_paths(nomad, path, problem):
    """
    nomad/structs/variables.go ValidatePath, via VariableDecrypted.Validate in
    nomad/variables_endpoint.go canonicalizeAndValidate (a 400 RPC error that Apply wraps
    once more: the HTTP layer unwraps one prefix).
    """
    resp = nomad.call("PUT", f"/v1/var/{path}", json={"Items": {"a": "1"}})
    assert resp.status_code == 400 and resp.text == f"RPC Error:: 400,{problem}"


def test_variable_cas_writes_sent_twice(nomad):
    """
    Why hecate re-reads instead of resending a variable CAS write whose answer was lost
    (hecate_nomad_client.var_put): sent again it is a 409 carrying the variable, ours
    (command/agent/variable_endpoint.go variableUpsert/variableDelete; nomad/state
    state_store_variables.go svDeleteCASTxn: a missing variable with cas=N is a conflict).
    """
    path = f"hecate-contract/twice-{uuid.uuid4().hex[:8]}"
    try:
        first = nomad.call("PUT", f"/v1/var/{path}?cas=0", json={"Items": {"a": "1"}})
        assert first.status_code == 200
        again = nomad.call("PUT", f"/v1/var/{path}?cas=0", json={"Items": {"a": "1"}})
        assert again.status_code == 409 and again.json()["Items"] == {"a": "1"}
        index = first.json()["ModifyIndex"]
        assert nomad.call("DELETE", f"/v1/var/{path}?cas={index}").status_code == 204
        assert nomad.call("DELETE", f"/v1/var/{path}?cas={index}").status_code == 409
    finally:
        nomad.call("DELETE", f"/v1/var/{path}")


def test_memory_max_needs_memory_oversubscription(nomad, job_id):
    """
    nomad/job_endpoint_hooks.go memoryOversubscriptionValidate: with the scheduler
    configuration's MemoryOversubscriptionEnabled off (Nomad's default; hecate's agent config
    turns it on with server.default_scheduler_config), memory_max draws this warning and is
    ignored. helper/warning.go MergeMultierrorWarnings formats it.
    """
    config = nomad.call("GET", "/v1/operator/scheduler/configuration").json()["SchedulerConfig"]
    job = parsed(nomad, job_hcl(job_id, resources="memory_max = 128"))
    plan = nomad.call("POST", f"/v1/job/{job_id}/plan", json={"Job": job}).json()
    warning = ('Memory oversubscription is not enabled; Task "web.web" memory_max value will be ignored. '
               'Update the Scheduler Configuration to allow oversubscription.')
    if config["MemoryOversubscriptionEnabled"]:
        assert warning not in plan["Warnings"]
    else:
        assert plan["Warnings"] == f"1 warning:\n\n* {warning}"


# -- the audit of the simulators against hashicorp/nomad (issue 18) -------------------------------
SERVICE_JOB = """
job "%(id)s" {
  group "web" {
    count = %(count)s
    %(update)s
    network {
      port "http" {
        to = 8080
      }
    }
    service {
      name = "%(id)s"
      port = "http"
      task = "web"
    }
    task "web" {
      driver = "docker"
      %(task)s
      config {
        image = "busybox:1.36.1"
        ports = ["http"]
      }
      template {
        data          = "x"
        destination   = "local/x"
        change_mode   = "signal"
        change_signal = "SIGHUP"
      }
      resources {
        cpu    = 50
        memory = 32
      }
    }
  }
}
"""


def service_job(nomad, job_id, count=1, update="", task=""):
    return parsed(nomad, SERVICE_JOB % {"id": job_id, "count": count, "update": update, "task": task})


def test_the_servers_mutate_a_job_and_a_plan_of_it_stays_none(nomad, job_id):
    """
    N1. nomad/structs/structs.go Job.Canonicalize (Datacenters ["*"]), job_endpoint_hook_node_pool_ce.go
    (NodePool "default"), job_endpoint_hooks.go jobImpliedConstraints (the Consul constraint for a
    group with Consul services, ${attr.os.signals} for a template's change_signal), Task.Canonicalize
    (the default workload identity). The plan runs the same admission controllers on what it is
    given, so planning the unmodified parsed job against the stored one is a diff of "None": what
    keeps hecate's nomad_job state converged (it compares through the plan, never the job it reads).
    """
    job = service_job(nomad, job_id)
    assert job["Datacenters"] is None and not job["TaskGroups"][0].get("Constraints")
    assert nomad.register(job).status_code == 200
    stored = nomad.call("GET", f"/v1/job/{job_id}").json()
    assert stored["Datacenters"] == ["*"] and stored["NodePool"] == "default"
    constraints = stored["TaskGroups"][0]["Constraints"]
    assert {"LTarget": "${attr.consul.version}", "RTarget": ">= 1.8.0", "Operand": "semver"}.items() <= \
        next(c for c in constraints if c["LTarget"] == "${attr.consul.version}").items()
    assert {"LTarget": "${attr.os.signals}", "RTarget": "SIGHUP", "Operand": "set_contains"}.items() <= \
        next(c for c in constraints if c["LTarget"] == "${attr.os.signals}").items()
    assert stored["TaskGroups"][0]["Tasks"][0]["Identity"]["Name"] == "default"
    plan = nomad.call("POST", f"/v1/job/{job_id}/plan", json={"Job": job, "Diff": True}).json()
    assert plan["Diff"]["Type"] == "None", plan["Diff"]


def test_warnings_are_merged_and_name_the_group(nomad, job_id):
    """
    N2. nomad/structs/structs.go TaskGroup.Warnings via Job.Warnings ("Group %q has warnings: <multierror>"),
    generateTaskGroupServiceShutdownDelayWarnings (Nomad 2.0.1+); helper/warning.go MergeMultierrorWarnings.
    """
    job = service_job(nomad, job_id, count=2, update="update {\n      max_parallel = 3\n    }")
    warnings = nomad.call("POST", f"/v1/job/{job_id}/plan", json={"Job": job}).json()["Warnings"]
    assert re.match(r"^\d+ warnings?:\n\n\* ", warnings), warnings
    assert ('* Group "web" has warnings: 1 error occurred:\n\t* Update max parallel count is greater than task '
            'group count (3 > 2). A destructive change would result in the simultaneous replacement of all '
            'allocations.') in warnings
    version = nomad.call("GET", "/v1/agent/self").json()["config"]["Version"]["Version"]
    shutdown = 'group "web" references task "web" in a service definition, but the task has no shutdown_delay set'
    if tuple(int(x) for x in re.findall(r"\d+", version)[:3]) >= (2, 0, 1):
        assert f"* {shutdown}" in warnings
        job = service_job(nomad, job_id, task='shutdown_delay = "5s"')
        assert nomad.register(job).json()["Warnings"] == ""


def test_validate_is_driver_config_validated_even_when_invalid(nomad, job_id):
    """N3. nomad/job_endpoint.go Job.Validate sets DriverConfigValidated once the RPC answers."""
    job = nomad.job_spec(job_id)
    job["TaskGroups"][0]["Count"] = -1
    body = nomad.call("POST", "/v1/validate/job", json={"Job": job}).json()
    assert body["DriverConfigValidated"] is True and body["ValidationErrors"]
    job["Type"] = "foo"
    body = nomad.call("POST", "/v1/validate/job", json={"Job": job}).json()
    assert 'Invalid job type: "foo"' in body["ValidationErrors"]


def test_variables_namespace_from_the_body_and_400s(nomad):
    """
    N4. nomad/variables_endpoint.go Variables.Apply: the variable's own Namespace wins over the
    request's; canonicalizeAndValidate's errors are 400 (RPC Error:: 400,...);
    command/agent/variable_endpoint.go parseCAS: an empty ?cas= is no check-and-set.
    """
    path = f"hecate-contract/{uuid.uuid4().hex[:8]}"
    try:
        resp = nomad.call("PUT", f"/v1/var/{path}?namespace=hecate-contract-none&cas=",
                          json={"Namespace": "default", "Items": {"a": "1"}})
        assert resp.status_code == 200, resp.text
        assert resp.json()["Namespace"] == "default"
        assert nomad.call("GET", f"/v1/var/{path}?namespace=default").json()["Items"] == {"a": "1"}
        resp = nomad.call("PUT", "/v1/var/a%20b", json={"Items": {"a": "1"}})
        assert resp.status_code == 400 and 'invalid path "a b"' in resp.text
        resp = nomad.call("PUT", f"/v1/var/{path}", json={"Items": {"a": "x" * 70000}})
        assert resp.status_code == 400 and "variables are limited to 64KiB in total size" in resp.text
    finally:
        nomad.call("DELETE", f"/v1/var/{path}")


def test_a_job_keeps_its_type(nomad, job_id):
    """N5. nomad/job_endpoint.go validateJobUpdate (a plain error: 500)."""
    job = nomad.job_spec(job_id)
    assert nomad.register(job).status_code == 200
    job["Type"] = "batch"
    job["Update"] = None
    resp = nomad.register(job)
    assert resp.status_code == 500 and resp.text.strip() == 'cannot update job from type "service" to "batch"'


def test_status_of_a_job_with_nothing_to_place_is_dead(nomad, job_id):
    """N6. nomad/state/state_store.go getJobStatus: evaluations all terminal, no allocations: dead."""
    job = nomad.job_spec(job_id)
    job["TaskGroups"][0]["Count"] = 0
    reply = nomad.register(job).json()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        evaluation = nomad.call("GET", f"/v1/evaluation/{reply['EvalID']}").json()
        if evaluation["Status"] not in ("pending", "blocked"):
            break
        time.sleep(0.2)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status = nomad.call("GET", f"/v1/job/{job_id}").json()["Status"]
        if status != "pending":
            break
        time.sleep(0.2)
    assert status == "dead"


def test_request_errors_and_bools_as_go_reads_them(nomad, job_id):
    """
    N9/N10/N11. command/agent/http.go decodeBody ("Request body is empty"); jobDelete and
    jobVersions read ?purge=/?diffs= with strconv.ParseBool; Job.Deregister of a missing job is
    no error and index 0; Job.Plan's index is the existing job's modify index (0: new job).
    """
    resp = requests.post(f"{nomad.url}/v1/job/{job_id}", headers=nomad.headers, timeout=30)
    assert resp.status_code == 400 and resp.text.strip() == "Request body is empty"
    resp = nomad.call("DELETE", f"/v1/job/{job_id}?purge=yes")
    assert resp.status_code == 500
    assert resp.text.strip() == ('Failed to parse value of "purge" (yes) as a bool: strconv.ParseBool: '
                                 'parsing "yes": invalid syntax')
    resp = nomad.call("DELETE", f"/v1/job/{job_id}?purge=T")
    assert resp.status_code == 200 and resp.json()["EvalID"] == "" and resp.headers["X-Nomad-Index"] == "0"
    plan = nomad.call("POST", f"/v1/job/{job_id}/plan", json={"Job": nomad.job_spec(job_id)})
    assert plan.headers["X-Nomad-Index"] == "0" and plan.json()["JobModifyIndex"] == 0
    assert nomad.register(nomad.job_spec(job_id)).status_code == 200
    resp = nomad.call("GET", f"/v1/job/{job_id}/versions?diffs=yes")
    assert resp.status_code == 500 and resp.text.startswith('Failed to parse value of "diffs" (yes) as a bool')


def test_missing_allocation_and_deployment_reads(nomad, job_id):
    """
    The reads hecate_nomad_client makes while it follows a deployment (allocation, deployment,
    deployment_allocations, deployments), for objects that do not exist: command/agent/
    alloc_endpoint.go allocGet (404 "alloc not found"), deployment_endpoint.go deploymentQuery
    (404 "deployment not found") and deploymentAllocations (nomad/deployment_endpoint.go
    Deployment.Allocations lists by deployment ID: [] for an unknown one), job_endpoint.go
    jobDeployments ([] for a job without deployments, never null).
    """
    missing = str(uuid.uuid4())
    resp = nomad.call("GET", f"/v1/allocation/{missing}")
    assert resp.status_code == 404 and resp.text.strip() == "alloc not found"
    resp = nomad.call("GET", f"/v1/deployment/{missing}")
    assert resp.status_code == 404 and resp.text.strip() == "deployment not found"
    resp = nomad.call("GET", f"/v1/deployment/allocations/{missing}")
    assert resp.status_code == 200 and resp.json() == []
    resp = nomad.call("GET", f"/v1/job/{job_id}/deployments")
    assert resp.status_code == 200 and resp.json() == []


CANARY_UPDATE = """update {
      canary            = 1
      max_parallel      = 1
      health_check      = "manual"
      auto_revert       = true
      healthy_deadline  = "5m"
      progress_deadline = "10m"
    }"""


def _wait_for(nomad, path, until, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        resp = nomad.call("GET", path)
        if resp.status_code == 200 and until(resp.json()):
            return resp.json()
        time.sleep(0.2)
    raise AssertionError(f"{path}: {resp.status_code} {resp.text[:500]}")


def test_canary_deployment_waits_for_a_promotion(nomad, job_id):
    """
    N12. What hecate's nomad_job state follows in a canary deployment. A destructive change
    of a group with ``update.canary`` places the canary beside the running allocation
    (scheduler/reconciler/reconcile_cluster.go requiresCanaries/computeCanaries; the
    allocation is marked ``DeploymentStatus.Canary`` by scheduler/generic_sched.go); the
    deployment's DeploymentState (nomad/structs/deployment.go: DesiredCanaries,
    PlacedCanaries, Promoted, AutoPromote, DesiredTotal) waits for a promotion, its
    description says so (setDeploymentStatusAndUpdates:
    DeploymentStatusDescriptionRunningNeedsPromotion; RequiresPromotion is computed, not a
    field of the API object). Promoting canaries that are not healthy is refused by
    nomad/state/state_store.go UpdateDeploymentPromotion (a multierror: ``Task group %q has
    %d/%d healthy allocations``, 500). ``health_check = "manual"``: nothing ever marks the
    canary healthy here, so the answer does not depend on the node's docker.
    """
    first = service_job(nomad, job_id, update=CANARY_UPDATE)
    assert nomad.register(first).status_code == 200
    _wait_for(nomad, f"/v1/job/{job_id}/allocations", lambda allocs: len(allocs) == 1)
    second = service_job(nomad, job_id, update=CANARY_UPDATE, task='env {\n        RELEASE = "2"\n      }')
    plan = nomad.call("POST", f"/v1/job/{job_id}/plan", json={"Job": second, "Diff": True}).json()
    assert plan["Annotations"]["DesiredTGUpdates"]["web"]["Canary"] == 1
    assert nomad.register(second).status_code == 200
    dep = _wait_for(nomad, f"/v1/job/{job_id}/deployment",
                    lambda d: d and d["JobVersion"] == 1 and d["TaskGroups"]["web"]["PlacedCanaries"])
    state = dep["TaskGroups"]["web"]
    assert dep["Status"] == "running"
    assert dep["StatusDescription"] == "Deployment is running but requires manual promotion"
    assert (state["DesiredCanaries"], state["DesiredTotal"], state["Promoted"], state["AutoPromote"]) == (1, 1, False,
                                                                                                       False)
    assert "RequiresPromotion" not in dep
    (canary_id,) = state["PlacedCanaries"]
    canary = nomad.call("GET", f"/v1/allocation/{canary_id}").json()
    assert canary["DeploymentStatus"]["Canary"] is True and canary["JobVersion"] == 1
    old = [a for a in nomad.call("GET", f"/v1/job/{job_id}/allocations").json() if a["ID"] != canary_id]
    assert [a["DesiredStatus"] for a in old] == ["run"]  # the canary runs beside it
    resp = nomad.call("POST", f"/v1/deployment/promote/{dep['ID']}", json={"DeploymentID": dep["ID"], "All": True})
    assert resp.status_code == 500
    assert resp.text == '1 error occurred:\n\t* Task group "web" has 0/1 healthy allocations\n\n'


def test_promote_request_errors(nomad):
    """
    N13. command/agent/deployment_endpoint.go deploymentPromote: PUT/POST only, the body's
    DeploymentID (400 "DeploymentID must be specified", 400 "Deployment ID does not match"),
    then nomad/deployment_endpoint.go Deployment.Promote: an unknown deployment is a plain
    error (500 "deployment not found"); a terminal one is structs.ErrDeploymentTerminalNoPromote
    ("can't promote terminal deployment").
    """
    missing = str(uuid.uuid4())
    resp = nomad.call("POST", f"/v1/deployment/promote/{missing}", json={"All": True})
    assert (resp.status_code, resp.text.strip()) == (400, "DeploymentID must be specified")
    resp = nomad.call("POST", f"/v1/deployment/promote/{missing}", json={"DeploymentID": str(uuid.uuid4())})
    assert (resp.status_code, resp.text.strip()) == (400, "Deployment ID does not match")
    resp = nomad.call("PUT", f"/v1/deployment/promote/{missing}", json={"DeploymentID": missing, "All": True})
    assert (resp.status_code, resp.text.strip()) == (500, "deployment not found")


def test_periodic_force_launches_a_child_job(nomad, job_id):
    """
    N12. command/agent/job_endpoint.go periodicForceRequest and nomad/periodic_endpoint.go
    Periodic.Force ("job not found", "can't force launch non-periodic job", the reply's EvalID,
    EvalCreateIndex and Index); nomad/periodic.go deriveJob: the child job is
    <id>/periodic-<unix launch time> with ParentID, Name = ID and no Periodic, evaluated with
    TriggeredBy periodic-job (Server.DispatchJob); its ID, with a "/", is routed by suffix
    (JobSpecificRequest) when escaped. hecate.backup relies on all of it.
    """
    resp = nomad.call("POST", f"/v1/job/{job_id}/periodic/force")
    assert resp.status_code == 500 and resp.text.strip() == "job not found"
    assert nomad.register(nomad.job_spec(job_id)).status_code == 200
    resp = nomad.call("POST", f"/v1/job/{job_id}/periodic/force")
    assert resp.status_code == 500 and resp.text.strip() == "can't force launch non-periodic job"
    nomad.call("DELETE", f"/v1/job/{job_id}?purge=true")
    job = nomad.job_spec(job_id)
    job.update(Type="batch", Update=None, Periodic={"Enabled": True, "Spec": "0 3 * * *", "SpecType": "cron",
                                                    "ProhibitOverlap": True, "TimeZone": "UTC"})
    job["TaskGroups"][0]["Networks"] = None
    job["TaskGroups"][0]["Tasks"][0]["Config"] = {"image": "busybox:1.36.1", "command": "true"}
    reg = nomad.register(job)
    assert reg.status_code == 200 and reg.json()["EvalID"] == "", reg.text
    before = int(time.time())
    resp = nomad.call("POST", f"/v1/job/{job_id}/periodic/force")
    assert resp.status_code == 200, resp.text
    reply = resp.json()
    assert {"EvalID", "EvalCreateIndex", "Index"} <= set(reply) and reply["Index"] == reply["EvalCreateIndex"]
    assert int(resp.headers["X-Nomad-Index"]) == reply["Index"]
    evaluation = nomad.call("GET", f"/v1/evaluation/{reply['EvalID']}").json()
    child_id = evaluation["JobID"]
    try:
        assert evaluation["TriggeredBy"] == "periodic-job"
        assert child_id.startswith(f"{job_id}/periodic-") and int(child_id.rsplit("-", 1)[1]) >= before
        escaped = requests.utils.quote(child_id, safe="")
        child = nomad.call("GET", f"/v1/job/{escaped}").json()
        assert child["ParentID"] == job_id and child["Name"] == child_id and child["Periodic"] is None
        assert nomad.call("GET", f"/v1/job/{escaped}/allocations").status_code == 200
    finally:
        nomad.call("DELETE", f"/v1/job/{requests.utils.quote(child_id, safe='')}?purge=true")


def test_distinct_hosts_places_one_allocation_per_node(nomad, job_id):
    """
    scheduler/feasible.go DistinctHostsIterator: with a ``distinct_hosts`` constraint a node
    already holding an allocation of the group is filtered, recorded in the placement metrics
    as ``ConstraintFiltered["distinct_hosts"]`` (structs.ConstraintDistinctHosts); an empty or
    true value enforces it, a ParseBool false turns it off (hasDistinctHostsConstraint). The
    hecate-caddy job relies on it to run one Caddy per edge. One more allocation than the
    cluster has nodes cannot all be placed.
    """
    nodes = nomad.call("GET", "/v1/nodes").json()
    spread = ('    constraint {\n      operator = "distinct_hosts"\n      value    = "true"\n    }')
    job = service_job(nomad, job_id, count=len(nodes) + 1, update=spread)
    plan = nomad.call("POST", f"/v1/job/{job_id}/plan", json={"Job": job}).json()
    assert "distinct_hosts" in plan["FailedTGAllocs"]["web"]["ConstraintFiltered"], plan["FailedTGAllocs"]


def test_list_pagination_per_page_and_next_token(nomad, job_id):
    """
    command/agent/http.go parsePagination (per_page, next_token; a per_page that is not an
    int32 is a plain-text 400 before ?wait/?index are read) and setNextToken (the
    X-Nomad-NextToken header only when there is a next page); nomad/job_endpoint.go Job.List
    and nomad/variables_endpoint.go Variables.List page with nomad/state/paginator
    NamespaceIDTokenizer: the token is "<namespace>.<id or path>" of the first item of the
    next page, and next_token skips the items whose token sorts before it.
    """
    resp = nomad.call("GET", "/v1/jobs?per_page=two&wait=bogus")
    assert resp.status_code == 400 and resp.text == "Expect a number for `per_page` query string parameter"
    prefix = f"hecate-contract/page-{uuid.uuid4().hex[:8]}"
    paths = [f"{prefix}/{n}" for n in "abc"]
    try:
        for path in paths:
            assert nomad.call("PUT", f"/v1/var/{path}", json={"Items": {"a": "1"}}).status_code == 200
        first = nomad.call("GET", f"/v1/vars?prefix={prefix}&per_page=2")
        assert first.status_code == 200 and [v["Path"] for v in first.json()] == paths[:2]
        assert first.headers["X-Nomad-NextToken"] == f"default.{paths[2]}"
        rest = nomad.call("GET", f"/v1/vars?prefix={prefix}&per_page=2&next_token=default.{paths[2]}")
        assert [v["Path"] for v in rest.json()] == paths[2:] and "X-Nomad-NextToken" not in rest.headers
        whole = nomad.call("GET", f"/v1/vars?prefix={prefix}")
        assert len(whole.json()) == 3 and "X-Nomad-NextToken" not in whole.headers
    finally:
        for path in paths:
            nomad.call("DELETE", f"/v1/var/{path}")
    assert nomad.register(nomad.job_spec(job_id)).status_code == 200
    page = nomad.call("GET", f"/v1/jobs?prefix={job_id}&per_page=1")
    assert [j["ID"] for j in page.json()] == [job_id] and "X-Nomad-NextToken" not in page.headers
    empty = nomad.call("GET", f"/v1/jobs?prefix={job_id}&next_token=default.{job_id}z")
    assert empty.status_code == 200 and empty.json() == []


def test_list_filter_expressions(nomad, job_id):
    """
    ``filter`` on /v1/jobs and /v1/vars (command/agent/http.go parseFilter): go-bexpr evaluated
    by nomad/state/paginator Paginator.next on the state object (the Job, the variable's
    metadata); a malformed expression is the 400 of Job.List / Variables.List
    ("failed to create result paginator: failed to read filter expression: ...", NewPaginator).
    A selector is read by mitchellh/pointerstructure Pointer.Get, which does not promote the
    fields of an embedded struct: a variable's path is ``VariableMetadata.Path`` (the
    VariableEncrypted in the state store), and a field that is not there fails the page.
    """
    assert nomad.register(nomad.job_spec(job_id)).status_code == 200
    ours = nomad.call("GET", "/v1/jobs", params={"prefix": job_id, "filter": f'ID == "{job_id}" and Type == "service"'})
    assert ours.status_code == 200 and [j["ID"] for j in ours.json()] == [job_id]
    # structs.JobListStub: Multiregion is a pointer (null), Meta is omitempty
    assert ours.json()[0]["Multiregion"] is None and "Meta" not in ours.json()[0]
    for expr in ('Type != "service"', f'ID == "{job_id}" and not ("*" in Datacenters)', 'Name matches "^nope"'):
        resp = nomad.call("GET", "/v1/jobs", params={"prefix": job_id, "filter": expr})
        assert resp.status_code == 200 and resp.json() == [], expr
    for path in ("/v1/jobs", "/v1/vars"):
        resp = nomad.call("GET", path, params={"filter": "ID =="})
        assert resp.status_code == 400, path
        assert resp.text.startswith("failed to create result paginator: failed to read filter expression: "), path
    var = f"hecate-contract/filter-{uuid.uuid4().hex[:8]}"
    try:
        assert nomad.call("PUT", f"/v1/var/{var}", json={"Items": {"a": "1"}}).status_code == 200
        found = nomad.call("GET", "/v1/vars", params={"prefix": "hecate-contract/",
                                                      "filter": f'VariableMetadata.Path == "{var}"'})
        assert [v["Path"] for v in found.json()] == [var]
        resp = nomad.call("GET", "/v1/vars", params={"prefix": var, "filter": f'Path == "{var}"'})
        assert resp.status_code == 400 and resp.text == (
            'failed to read result page: error finding value in datum: /Path at part 0: '
            "couldn't find struct field with name \"Path\"")
    finally:
        nomad.call("DELETE", f"/v1/var/{var}")


def test_variables_cannot_target_all_namespaces(nomad):
    """
    nomad/structs/variables.go VariableDecrypted.Validate refuses the "*" namespace first
    (errors.New, missing space and all), through canonicalizeAndValidate's 400 RPC error that
    Variables.Apply wraps once more (one "RPC Error:: 400," left after the HTTP layer).
    """
    path = f"hecate-contract/star-{uuid.uuid4().hex[:8]}"
    for kw in ({"params": {"namespace": "*"}, "json": {"Items": {"a": "1"}}},
               {"json": {"Namespace": "*", "Items": {"a": "1"}}}):
        resp = nomad.call("PUT", f"/v1/var/{path}", **kw)
        assert (resp.status_code, resp.text) == (400, 'RPC Error:: 400,can not target wildcard ("*")namespace'), kw


@pytest.mark.parametrize("query,text", [
    ("stale=maybe&per_page=x", "Expect `true` or `false` for `stale` query string parameter"),
    ("stale=true&per_page=x", "Expect a number for `per_page` query string parameter"),
    ("index=+5", "Invalid index"),
    ("index=5_0", "Invalid index"),
    ("index=18446744073709551616", "Invalid index"),
])
def test_query_options_parsed_in_the_agents_order(nomad, query, text):
    """
    command/agent/http.go parse: parseConsistency (``stale``, strconv.ParseBool), then
    parsePagination, then parseWait (``index`` is strconv.ParseUint: no sign, no
    underscores, 64 bits); each refusal a plain-text 400.
    """
    resp = nomad.call("GET", f"/v1/jobs?{query}")
    assert (resp.status_code, resp.text) == (400, text)
    assert nomad.call("GET", "/v1/jobs?stale=&index=1&wait=1ms").status_code == 200


def test_job_validation_beyond_job_validate(nomad, job_id):
    """
    nomad/job_endpoint_hooks.go jobValidate.Validate: job.Validate()'s errors flattened
    (multierror.Append), then its own checks, lower case: "job priority must be between
    [1, <job_max_priority>]" comes after the Job.Validate errors. nomad/structs/structs.go
    Job.Validate: a periodic or parameterized job must be "batch" or "sysbatch".
    """
    job = nomad.job_spec(job_id)
    job["Priority"], job["Datacenters"] = 101, [""]
    body = nomad.call("POST", "/v1/validate/job", json={"Job": job}).json()
    assert body["ValidationErrors"] == ["Job datacenter must be non-empty string",
                                        "job priority must be between [1, 100]"]
    hcl = (JOB_HCL % {"id": job_id, "image": "busybox:1.36.1"}).replace(
        '  type        = "service"', '  type        = "service"\n  periodic {\n    crons = ["@daily"]\n  }')
    body = nomad.call("POST", "/v1/validate/job", json={"Job": parsed(nomad, hcl)}).json()
    assert 'Periodic can only be used with "batch" or "sysbatch" scheduler' in body["ValidationErrors"]
    hcl = (JOB_HCL % {"id": job_id, "image": "busybox:1.36.1"}).replace(
        '  type        = "service"', '  type        = "service"\n  parameterized {\n  }')
    body = nomad.call("POST", "/v1/validate/job", json={"Job": parsed(nomad, hcl)}).json()
    assert 'Parameterized job can only be used with "batch" or "sysbatch" scheduler' in body["ValidationErrors"]
    # Job.Validate / TaskGroup.Validate: a system job takes no affinity or spread block at all
    job = nomad.job_spec(job_id)
    job["Type"] = "system"
    job["Spreads"] = [{"Attribute": "${node.datacenter}", "Weight": 50}]
    job["TaskGroups"][0]["Affinities"] = [{"LTarget": "${node.class}", "RTarget": "x", "Operand": "=",
                                           "Weight": 50}]
    body = nomad.call("POST", "/v1/validate/job", json={"Job": job}).json()
    assert body["ValidationErrors"][0] == "System jobs may not have a spread block"
    assert ("Task group web validation failed: 1 error occurred:\n\t* System jobs may not have an affinity "
            "block\n\n") in body["ValidationErrors"]


def test_constraints_validated(nomad, job_id):
    """
    nomad/structs/structs.go Constraint.Validate via Job.Validate and TaskGroup.Validate
    ("Constraint <n> validation failed: <multierror>"): an empty operand is both missing and
    unknown; a comparison needs an RTarget; is_set takes none. jobspec2/hcl_conversions.go
    decodeConstraint: a constraint block without an operator parses as "=".
    """
    hcl = (JOB_HCL % {"id": job_id, "image": "busybox:1.36.1"}).replace(
        '  type        = "service"',
        '  type        = "service"\n  constraint {\n    attribute = "${attr.kernel.name}"\n'
        '    value     = "linux"\n  }')
    assert parsed(nomad, hcl)["Constraints"] == [{"LTarget": "${attr.kernel.name}", "RTarget": "linux", "Operand": "="}]
    job = nomad.job_spec(job_id)
    job["Constraints"] = [{"LTarget": "${attr.kernel.name}", "RTarget": "linux", "Operand": ""},
                          {"LTarget": "${attr.kernel.name}", "RTarget": "", "Operand": "="}]
    job["TaskGroups"][0]["Constraints"] = [{"LTarget": "${meta.x}", "RTarget": "y", "Operand": "is_set"}]
    body = nomad.call("POST", "/v1/validate/job", json={"Job": job}).json()
    assert body["ValidationErrors"] == [
        "Constraint 1 validation failed: 2 errors occurred:\n\t* Missing constraint operand\n"
        "\t* Unknown constraint type \"\"\n\n",
        "Constraint 2 validation failed: 1 error occurred:\n\t* Operator \"=\" requires an RTarget\n\n",
        "Task group web validation failed: 1 error occurred:\n\t* Constraint 1 validation failed: 1 error "
        "occurred:\n\t* Operator \"is_set\" does not support an RTarget\n\n\n\n",
    ]
