"""
The Nomad simulator's client side: allocations with stand-in HTTP servers, Consul service
registration (recorded here by a small fake Consul agent that checks the documented
fields of PUT /v1/agent/service/register), health checks and driver failures.
"""

import http.server
import json
import os
import threading
import time

import pytest
import requests
from werkzeug.test import Client

from lab.sim import SimHandle
from lab.sim import nomad as nsim

CONSUL_SERVICE_FIELDS = {"ID", "Name", "Tags", "Address", "Port", "Meta", "Check", "Checks", "Weights",
                         "EnableTagOverride", "Kind", "Proxy", "Connect", "TaggedAddresses", "Namespace"}
CONSUL_CHECK_FIELDS = {"CheckID", "Name", "HTTP", "TCP", "Interval", "Timeout", "Method", "Header",
                       "TLSSkipVerify", "Status", "Notes", "DeregisterCriticalServiceAfter", "Args", "TTL"}

JOB = """
job "%(id)s" {
  datacenters = ["dc1"]
  group "web" {
    update {
      min_healthy_time = "10s"
      healthy_deadline = "5m"
    }
    network {
      port "http" {
        to = 8080
      }
    }
    service {
      name = "%(service)s"
      port = "http"
      task = "server"
      tags = ["edge", "v1"]
      meta {
        owner = "hecate"
      }
      check {
        type     = "http"
        path     = "/healthz"
        interval = "10s"
        timeout  = "2s"
      }
    }
    task "server" {
      driver = "docker"
      config {
        image = "nginx:1.27"
        ports = ["http"]
        %(extra)s
      }
    }
  }
}
"""


class FakeConsul:
    """Records agent service (de)registrations; refuses bodies Consul would refuse."""

    def __init__(self):
        self.calls = []
        recorder = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_PUT(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                recorder.calls.append({"path": self.path, "body": json.loads(body) if body else None})
                status, text = 200, b""
                if self.path.startswith("/v1/agent/service/register"):
                    data = json.loads(body)
                    unknown = set(data) - CONSUL_SERVICE_FIELDS
                    unknown |= {k for c in data.get("Checks") or [] for k in c} - CONSUL_CHECK_FIELDS
                    if unknown or not data.get("Name"):
                        status = 400
                        text = f"Request decode failed: json: unknown field {sorted(unknown)}".encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(text)))
                self.end_headers()
                self.wfile.write(text)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self):
        self.server.shutdown()


@pytest.fixture(scope="module")
def consul():
    fake = FakeConsul()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def sim(tmp_path_factory, consul):
    options = {"time_scale": 0.01, "consul_url": consul.url, "refuse_images": ["*:refused"],
               "unhealthy_services": ["sick"]}
    handle = SimHandle("nomad", str(tmp_path_factory.mktemp("nomad")), options).start()
    yield handle
    handle.stop()


def submit(sim, job_id, service="web", extra=""):
    job = requests.post(f"{sim.url}/v1/jobs/parse", timeout=10, json={
        "JobHCL": JOB % {"id": job_id, "service": service, "extra": extra}, "Canonicalize": True}).json()
    reply = requests.post(f"{sim.url}/v1/job/{job_id}", json={"Job": job}, timeout=10)
    assert reply.status_code == 200, reply.text
    return reply.json()


def deployment(sim, job_id, timeout=15):
    deadline = time.monotonic() + timeout
    index = 0
    while time.monotonic() < deadline:
        resp = requests.get(f"{sim.url}/v1/job/{job_id}/deployment?index={index}&wait=2s", timeout=10)
        index = int(resp.headers["X-Nomad-Index"])
        dep = resp.json()
        if dep and dep["Status"] != "running":
            return dep
    raise AssertionError(f"deployment of {job_id} did not finish")


def alloc_port(sim, job_id, label="http"):
    allocs = requests.get(f"{sim.url}/v1/job/{job_id}/allocations", timeout=10).json()
    alloc = requests.get(f"{sim.url}/v1/allocation/{allocs[0]['ID']}", timeout=10).json()
    return alloc, next(p["Value"] for p in alloc["AllocatedResources"]["Shared"]["Ports"] if p["Label"] == label)


def test_running_allocation_registers_in_consul_and_serves_a_stand_in(sim, consul):
    consul.calls.clear()
    submit(sim, "reg")
    assert deployment(sim, "reg")["Status"] == "successful"
    alloc, port = alloc_port(sim, "reg")
    registrations = [c for c in consul.calls if c["path"].startswith("/v1/agent/service/register")]
    assert len(registrations) == 1
    assert registrations[0]["path"] == "/v1/agent/service/register?replace-existing-checks=true"
    body = registrations[0]["body"]
    assert body["Name"] == "web" and body["Address"] == "127.0.0.1" and body["Port"] == port
    assert body["ID"] == f"_nomad-task-{alloc['ID']}-group-web-web-http"
    assert body["Tags"] == ["edge", "v1"]
    assert body["Meta"] == {"external-source": "nomad", "owner": "hecate"}
    (check,) = body["Checks"]
    assert check["HTTP"] == f"http://127.0.0.1:{port}/healthz"
    assert (check["Interval"], check["Timeout"]) == ("10s", "2s")
    assert check["Name"] == 'service: "web" check'
    assert requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
    page = requests.get(f"http://127.0.0.1:{port}/chat", timeout=5)
    assert page.status_code == 200 and "task server" in page.text and "GET /chat" in page.text

    consul.calls.clear()
    requests.delete(f"{sim.url}/v1/job/reg", timeout=10)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not consul.calls:
        time.sleep(0.05)
    assert consul.calls == [{"path": f"/v1/agent/service/deregister/{body['ID']}", "body": None}]
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
    assert sim.state()["errors"] == []


def test_failing_health_check_fails_the_deployment(sim):
    submit(sim, "sick", service="sick")
    dep = deployment(sim, "sick")
    assert dep["Status"] == "failed"
    assert dep["StatusDescription"] == "Failed due to unhealthy allocations"
    alloc, port = alloc_port(sim, "sick")
    assert requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 500
    events = [e["DisplayMessage"] for e in alloc["TaskStates"]["server"]["Events"]]
    assert "Services not healthy by deadline of 5m0s" in events
    assert alloc["DeploymentStatus"]["Healthy"] is False


def test_port_map_with_group_ports_fails_at_task_start(sim):
    submit(sim, "portmap", extra="port_map {\n          http = 8080\n        }")
    dep = deployment(sim, "portmap")
    assert dep["Status"] == "failed"
    alloc, _ = alloc_port(sim, "portmap")
    errors = [e["DriverError"] for e in alloc["TaskStates"]["server"]["Events"] if e["Type"] == "Driver Failure"]
    assert errors and errors[0] == "'port_map' cannot map group network ports, use 'ports' instead"


def test_unsatisfied_constraint_is_a_placement_failure(sim):
    hcl = (JOB % {"id": "far", "service": "far", "extra": ""}).replace(
        'datacenters = ["dc1"]', 'datacenters = ["dc1"]\n  constraint {\n    attribute = "${meta.location}"\n'
                                 '    value = "cloud"\n  }')
    job = requests.post(f"{sim.url}/v1/jobs/parse", json={"JobHCL": hcl, "Canonicalize": True}, timeout=10).json()
    plan = requests.post(f"{sim.url}/v1/job/far/plan", json={"Job": job, "Diff": True}, timeout=10).json()
    assert plan["FailedTGAllocs"]["web"]["ConstraintFiltered"] == {"${meta.location} = cloud": 1}
    reply = requests.post(f"{sim.url}/v1/job/far", json={"Job": job}, timeout=10).json()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        evaluation = requests.get(f"{sim.url}/v1/evaluation/{reply['EvalID']}", timeout=10).json()
        if evaluation["Status"] != "pending":
            break
        time.sleep(0.05)
    assert evaluation["Status"] == "complete" and evaluation["BlockedEval"]
    assert evaluation["FailedTGAllocs"]["web"]["NodesFiltered"] == 1
    assert requests.get(f"{sim.url}/v1/job/far/allocations", timeout=10).json() == []


def test_distinct_hosts_places_no_two_allocations_on_the_one_node(sim):
    """Nomad's DistinctHostsIterator filters a node already running the group ("distinct_hosts")."""
    hcl = (JOB % {"id": "spread", "service": "spread", "extra": ""}).replace(
        'group "web" {', 'group "web" {\n    count = 2\n    constraint {\n      operator = "distinct_hosts"\n'
                         '      value = "true"\n    }')
    job = requests.post(f"{sim.url}/v1/jobs/parse", json={"JobHCL": hcl, "Canonicalize": True}, timeout=10).json()
    assert job["TaskGroups"][0]["Count"] == 2
    plan = requests.post(f"{sim.url}/v1/job/spread/plan", json={"Job": job, "Diff": True}, timeout=10).json()
    assert plan["FailedTGAllocs"]["web"]["ConstraintFiltered"] == {"distinct_hosts": 1}
    # value = false (ParseBool's "0" too) turns it off: both allocations fit the node
    for off in ("false", "0"):
        spread = json.loads(json.dumps(job).replace('"RTarget": "true"', f'"RTarget": "{off}"'))
        plan = requests.post(f"{sim.url}/v1/job/spread/plan", json={"Job": spread, "Diff": True}, timeout=10).json()
        assert not (plan.get("FailedTGAllocs") or {}).get("web"), (off, plan.get("FailedTGAllocs"))


# -- the server side, in-process (werkzeug test client) -----------------------------------------
# Sources (hashicorp/nomad): nomad/job_endpoint_hook_vault.go jobVaultHook.Validate,
# nomad/job_endpoint_hooks.go jobImpliedConstraints and memoryOversubscriptionValidate,
# nomad/structs/structs.go RestartPolicy.Validate and QueryOptions.TimeToBlock,
# command/agent/job_endpoint.go namespaceForJob/jobRevert/jobUpdate/jobPlan,
# nomad/structs/variables.go ValidatePath, nomad/variables_endpoint.go Apply.
SERVER_JOB = """
job "%(id)s" {
  datacenters = ["dc1"]
  group "g" {
    %(group)s
    task "t" {
      driver = "docker"
      config {
        image = "nginx:1.27"
      }
      %(task)s
      resources {
        cpu    = 50
        memory = 64
        %(resources)s
      }
    }
  }
}
"""


def server(**options):
    sim = nsim.NomadSim(dict({"time_scale": 0.01, "stand_ins": False}, **options))
    return sim, Client(sim)


def parsed(client, job_id="j", group="", task="", resources=""):
    resp = client.post("/v1/jobs/parse", json={"JobHCL": SERVER_JOB % {
        "id": job_id, "group": group, "task": task, "resources": resources}, "Canonicalize": True})
    assert resp.status_code == 200, resp.text
    return resp.json


VAULT_TASK = 'vault {\n        role = "bionicgpt"\n      }'


def test_vault_block_needs_vault_enabled_and_adds_the_vault_version_constraint():
    _, client = server()
    job = parsed(client, task=VAULT_TASK)
    checked = client.post("/v1/validate/job", json={"Job": job}).json
    assert checked["ValidationErrors"] == ['Vault "default" not enabled but used in the job']
    resp = client.post("/v1/job/j", json={"Job": job})
    assert resp.status_code == 500
    assert resp.text == '1 error occurred:\n\t* Vault "default" not enabled but used in the job\n\n'
    assert client.get("/v1/agent/self").json["config"]["Vaults"] == [{"Name": "default", "Enabled": None}]

    _, client = server(vault={"enabled": True, "version": "1.21.0"})
    assert client.post("/v1/job/j", json={"Job": job}).status_code == 200
    group = client.get("/v1/job/j").json["TaskGroups"][0]
    assert {"LTarget": "${attr.vault.version}", "RTarget": ">= 0.6.1", "Operand": "semver"} in group["Constraints"]

    # the servers have Vault, the client has not fingerprinted it: nothing can be placed
    _, client = server(vault={"enabled": True})
    plan = client.post("/v1/job/j/plan", json={"Job": job}).json
    assert plan["FailedTGAllocs"]["g"]["ConstraintFiltered"] == {"${attr.vault.version} semver >= 0.6.1": 1}


@pytest.mark.parametrize("restart,errors", [
    ('attempts = 3\n delay = "15s"\n interval = "5m"\n mode = "fail"', []),
    ('attempts = 3\n delay = "15s"\n interval = "5m"\n mode = "bogus"', ['Unsupported restart mode: "bogus"']),
    ('attempts = 0\n delay = "15s"\n interval = "5m"\n mode = "delay"',
     ['Restart policy "delay" with 0 attempts is ambiguous']),
    ('attempts = 0\n interval = "5m"\n mode = "fail"', []),
    ('attempts = 1\n delay = "1s"\n interval = "2s"\n mode = "fail"', ["Interval can not be less than 5s (got 2s)"]),
    ('attempts = 10\n delay = "1m"\n interval = "5m"\n mode = "fail"',
     ["Nomad can't restart the TaskGroup 10 times in an interval of 5m0s with a delay of 1m0s"]),
])
def test_restart_policy_is_validated_like_nomad(restart, errors):
    _, client = server()
    job = parsed(client, group=f"restart {{\n {restart}\n }}")
    checked = client.post("/v1/validate/job", json={"Job": job}).json
    if not errors:
        assert checked["ValidationErrors"] is None
        return
    (outer,) = checked["ValidationErrors"]
    assert outer == "Task group g validation failed: " + nsim.js.multierror(errors)


def test_query_namespace_wins_over_the_jobs():
    sim, client = server(namespaces=["default", "other"])
    job = parsed(client)  # canonicalized: Namespace "default"
    assert client.post("/v1/job/j?namespace=other", json={"Job": job}).status_code == 200
    assert ("other", "j") in sim.jobs and ("default", "j") not in sim.jobs
    assert client.post("/v1/job/j", json={"Job": job, "Namespace": "other"}).status_code == 200
    assert ("default", "j") not in sim.jobs  # the request body's Namespace comes second
    plan = client.post("/v1/job/j/plan?namespace=other", json={"Job": job, "Diff": True}).json
    assert plan["Diff"]["Type"] == "None"


def test_blocking_queries_are_capped_at_300s_with_jitter():
    sim, client = server()
    waits = []
    sim.wait_for_change = lambda index_fn, index, wait: waits.append(wait)
    for wait in ("10m", "0s", None, "2s"):
        query = "/v1/jobs?index=99999" + (f"&wait={wait}" if wait else "")
        assert client.get(query).status_code == 200
    capped, zero, default, short = waits
    for value in (capped, zero, default):
        assert 300 <= value <= 300 + 300 / 16  # MaxBlockingRPCQueryTime / DefaultBlockingRPCQueryTime
    assert 2 <= short <= 2 + 2 / 16


def test_job_request_errors_word_for_word():
    _, client = server()
    job = parsed(client)
    assert client.post("/v1/job/j", json={"Job": {"Name": "j"}}).text == "Job ID hasn't been provided"
    assert client.post("/v1/job/j/plan", json={"Job": {"Name": "j"}}).text == "Job must have a valid ID"
    assert client.post("/v1/job/j", json={"Job": job}).status_code == 200
    resp = client.post("/v1/job/j/revert", json={"JobVersion": 0})
    assert resp.status_code == 400 and resp.text == "JobID must be specified"
    resp = client.post("/v1/job/j/revert", json={"JobID": "other", "JobVersion": 0})
    assert resp.status_code == 400 and resp.text == "Job ID does not match"


@pytest.mark.parametrize("path,problem", [
    ("nomad", ('"nomad" is a reserved top-level directory path, but you may write variables to "nomad/jobs", '
              '"nomad/job-templates", "nomad/sentinel", or below')),
    ("nomad/other/x", ('only paths at "nomad/jobs" or "nomad/job-templates" and below are valid paths under the '
                      'top-level "nomad" directory')),
    ("nomad/job-templates", ('"nomad/job-templates" is a reserved directory path, but you may write variables at '
                            'the level below it, for example, "nomad/job-templates/template-name"')),
    ("nomad/job-templates/a/b", ('"nomad/job-templates" is a reserved directory path, but you may write variables '
                                'at the level below it, for example, "nomad/job-templates/template-name"')),
    ("a.b", 'invalid path "a.b"'),
    ("nomad/jobs/web/task", None),
    ("nomad/job-templates/web", None),
    ("nomad/sentinel/policy", None),
    ("app/nomad", None),
])
def test_variable_paths_reserved_and_invalid(path, problem):
    _, client = server()
    resp = client.put(f"/v1/var/{path}", json={"Items": {"a": "1"}})
    if problem is None:
        assert resp.status_code == 200, resp.text
    else:
        # canonicalizeAndValidate's coded error, wrapped once more by Apply
        assert resp.status_code == 400 and resp.text == f"RPC Error:: 400,{problem}"
    assert client.put(f"/v1/var/{path}?cas=x", json={"Items": {"a": "1"}}).text == (
        'can not parse cas: strconv.ParseUint: parsing "x": invalid syntax')
    assert client.put("/v1/var/", json={"Items": {"a": "1"}}).text == "missing variable path"


def test_memory_max_is_ignored_with_a_warning_unless_oversubscription_is_on():
    warning = ('1 warning:\n\n* Memory oversubscription is not enabled; Task "g.t" memory_max value will be '
               'ignored. Update the Scheduler Configuration to allow oversubscription.')
    for enabled, expected in ((False, warning), (True, "")):
        _, client = server(memory_oversubscription=enabled)
        job = parsed(client, resources="memory_max = 256")
        assert client.post("/v1/validate/job", json={"Job": job}).json["Warnings"] == expected
        assert client.post("/v1/job/j/plan", json={"Job": job}).json["Warnings"] == expected
        assert client.post("/v1/job/j", json={"Job": job}).json["Warnings"] == expected
        config = client.get("/v1/operator/scheduler/configuration").json["SchedulerConfig"]
        assert config["MemoryOversubscriptionEnabled"] is enabled


# -- canary deployments ---------------------------------------------------------------------------
# Sources (hashicorp/nomad at aa026cc, 2.0.x): scheduler/reconciler/reconcile_cluster.go
# (requiresCanaries, computeCanaries, cancelUnneededCanaries, computeStop: a promoted canary
# replaces the allocation of its name, computeUnderProvisionedBy: max_parallel,
# isDeploymentComplete, setDeploymentStatusAndUpdates' descriptions), nomad/structs/deployment.go
# (DeploymentState, RequiresPromotion, HasAutoPromote), nomad/deploymentwatcher/
# deployment_watcher.go (autoPromoteDeployment, shouldFail, the rollback), nomad/state/
# state_store.go UpdateDeploymentPromotion, nomad/deployment_endpoint.go Deployment.Promote,
# command/agent/deployment_endpoint.go deploymentPromote.
CANARY_JOB = """
job "%(id)s" {
  datacenters = ["dc1"]
  group "web" {
    count = %(count)s
    update {
      max_parallel      = 1
      canary            = %(canary)s
      auto_promote      = %(auto_promote)s
      auto_revert       = true
      min_healthy_time  = "10s"
      healthy_deadline  = "5m"
      progress_deadline = "10m"
      %(health)s
    }
    network {
      port "http" {
        %(port)s
      }
    }
    service {
      name = "%(id)s"
      port = "http"
      check {
        type     = "http"
        path     = "/healthz"
        interval = "10s"
        timeout  = "2s"
      }
    }
    task "server" {
      driver = "docker"
      config {
        image = "%(image)s"
        ports = ["http"]
      }
    }
  }
}
"""


def canary_job(sim, job_id, image="nginx:1.27", count=1, canary=1, auto_promote=False, port="to = 8080",
               health=""):
    hcl = CANARY_JOB % {"id": job_id, "image": image, "count": count, "canary": canary, "port": port,
                        "auto_promote": "true" if auto_promote else "false", "health": health}
    resp = requests.post(f"{sim.url}/v1/jobs/parse", json={"JobHCL": hcl, "Canonicalize": True}, timeout=10)
    assert resp.status_code == 200, resp.text
    return resp.json()


def register(sim, job):
    reply = requests.post(f"{sim.url}/v1/job/{job['ID']}", json={"Job": job}, timeout=10)
    assert reply.status_code == 200, reply.text
    return reply.json()


def deployment_of(sim, job_id, version, until, timeout=15):
    """The deployment of ``version`` once ``until(deployment)`` holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [d for d in requests.get(f"{sim.url}/v1/job/{job_id}/deployments", timeout=10).json()
                 if d["JobVersion"] == version]
        if found and until(found[0]):
            return found[0]
        time.sleep(0.05)
    raise AssertionError(f"deployment of {job_id} version {version}: {found}")


def allocations(sim, job_id):
    return requests.get(f"{sim.url}/v1/job/{job_id}/allocations", timeout=10).json()


def promote(sim, dep_id, body=None):
    return requests.post(f"{sim.url}/v1/deployment/promote/{dep_id}", timeout=10,
                         json={"DeploymentID": dep_id, "All": True} if body is None else body)


def test_blue_green_canaries_wait_for_a_promotion_then_replace_the_old_allocation(sim):
    register(sim, canary_job(sim, "bg"))
    deployment_of(sim, "bg", 0, lambda d: d["Status"] == "successful")
    (old,) = allocations(sim, "bg")
    register(sim, canary_job(sim, "bg", image="nginx:1.28"))
    dep = deployment_of(sim, "bg", 1, lambda d: d["TaskGroups"]["web"]["PlacedCanaries"])
    state = dep["TaskGroups"]["web"]
    assert dep["StatusDescription"] == "Deployment is running but requires manual promotion"
    assert (state["DesiredCanaries"], state["DesiredTotal"], state["Promoted"], state["AutoPromote"]) == (1, 1, False,
                                                                                                       False)
    (canary_id,) = state["PlacedCanaries"]
    canary = requests.get(f"{sim.url}/v1/allocation/{canary_id}", timeout=10).json()
    assert canary["DeploymentStatus"]["Canary"] is True and canary["JobVersion"] == 1
    dep = deployment_of(sim, "bg", 1, lambda d: d["TaskGroups"]["web"]["HealthyAllocs"] == 1)
    time.sleep(0.5)
    # healthy canary beside the old allocation, and the deployment waits for its promotion
    dep = deployment_of(sim, "bg", 1, lambda d: True)
    assert dep["Status"] == "running" and dep["TaskGroups"]["web"]["Promoted"] is False
    running = {a["ID"]: a for a in allocations(sim, "bg") if a["DesiredStatus"] == "run"}
    assert set(running) == {old["ID"], canary_id}
    reply = promote(sim, dep["ID"])
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["EvalID"] and body["DeploymentModifyIndex"] == body["Index"] and body["RevertedJobVersion"] is None
    done = deployment_of(sim, "bg", 1, lambda d: d["Status"] != "running")
    assert done["Status"] == "successful" and done["StatusDescription"] == "Deployment completed successfully"
    assert done["TaskGroups"]["web"]["Promoted"] is True
    by_id = {a["ID"]: a for a in allocations(sim, "bg")}
    assert by_id[old["ID"]]["DesiredStatus"] == "stop"
    assert by_id[old["ID"]]["DesiredDescription"] == "alloc not needed due to job update"
    assert by_id[canary_id]["DesiredStatus"] == "run" and by_id[canary_id]["DeploymentStatus"]["Canary"] is False
    job = requests.get(f"{sim.url}/v1/job/bg", timeout=10).json()
    assert (job["Version"], job["Stable"]) == (1, True)
    terminal = promote(sim, dep["ID"])
    assert (terminal.status_code, terminal.text) == (500, "can't promote terminal deployment")


def test_canaries_that_are_not_healthy_cannot_be_promoted(sim):
    register(sim, canary_job(sim, "unh", health='health_check = "manual"'))
    deployment_of(sim, "unh", 0, lambda d: d["TaskGroups"]["web"]["PlacedAllocs"] == 1)
    register(sim, canary_job(sim, "unh", image="nginx:1.28", health='health_check = "manual"'))
    dep = deployment_of(sim, "unh", 1, lambda d: d["TaskGroups"]["web"]["PlacedCanaries"])
    resp = promote(sim, dep["ID"])
    assert (resp.status_code, resp.text) == (
        500, '1 error occurred:\n\t* Task group "web" has 0/1 healthy allocations\n\n')
    dep = deployment_of(sim, "unh", 1, lambda d: True)
    assert dep["Status"] == "running" and dep["TaskGroups"]["web"]["Promoted"] is False
    assert dep["StatusDescription"] == "Deployment is running but requires manual promotion"


def test_auto_promote_promotes_once_the_canaries_are_healthy(sim):
    register(sim, canary_job(sim, "ap", auto_promote=True))
    deployment_of(sim, "ap", 0, lambda d: d["Status"] == "successful")
    register(sim, canary_job(sim, "ap", image="nginx:1.28", auto_promote=True))
    dep = deployment_of(sim, "ap", 1, lambda d: True)
    assert dep["StatusDescription"] == "Deployment is running pending automatic promotion"
    done = deployment_of(sim, "ap", 1, lambda d: d["Status"] != "running")
    assert done["Status"] == "successful" and done["TaskGroups"]["web"]["Promoted"] is True
    running = [a for a in allocations(sim, "ap") if a["DesiredStatus"] == "run"]
    assert [a["JobVersion"] for a in running] == [1]


def test_a_canary_cannot_share_a_static_port_with_the_allocation_it_replaces(sim):
    port = 28000 + int(time.time() * 1000) % 1000
    register(sim, canary_job(sim, "static", port=f"static = {port}"))
    deployment_of(sim, "static", 0, lambda d: d["Status"] == "successful")
    job = canary_job(sim, "static", image="nginx:1.28", port=f"static = {port}")
    plan = requests.post(f"{sim.url}/v1/job/static/plan", json={"Job": job, "Diff": True}, timeout=10).json()
    assert plan["Annotations"]["DesiredTGUpdates"]["web"]["Canary"] == 1
    assert plan["FailedTGAllocs"]["web"]["DimensionExhausted"] == {
        f"network: reserved port collision http={port}": 1}
    # without a canary (rolling) the replacement takes the port over
    rolling = canary_job(sim, "static", image="nginx:1.28", port=f"static = {port}", canary=0)
    plan = requests.post(f"{sim.url}/v1/job/static/plan", json={"Job": rolling, "Diff": True}, timeout=10).json()
    assert plan["FailedTGAllocs"] is None
    assert plan["Annotations"]["DesiredTGUpdates"]["web"]["DestructiveUpdate"] == 1


def test_a_failing_canary_is_stopped_and_auto_revert_keeps_the_old_allocation(sim):
    register(sim, canary_job(sim, "fc"))
    deployment_of(sim, "fc", 0, lambda d: d["Status"] == "successful")
    (old,) = allocations(sim, "fc")
    register(sim, canary_job(sim, "fc", image="nginx:refused"))
    failed = deployment_of(sim, "fc", 1, lambda d: d["Status"] != "running")
    assert failed["Status"] == "failed"
    assert failed["StatusDescription"] == "Failed due to unhealthy allocations - rolling back to job version 0"
    (canary_id,) = failed["TaskGroups"]["web"]["PlacedCanaries"]
    deployment_of(sim, "fc", 2, lambda d: d["Status"] == "successful")
    by_id = {a["ID"]: a for a in allocations(sim, "fc")}
    assert by_id[canary_id]["DesiredStatus"] == "stop"
    assert by_id[canary_id]["DesiredDescription"] == "alloc not needed due to job update"
    # the old allocation ran all along (updated in place to the rollback version)
    assert by_id[old["ID"]]["DesiredStatus"] == "run" and by_id[old["ID"]]["ClientStatus"] == "running"
    assert by_id[old["ID"]]["JobVersion"] == 2


def test_rolling_update_replaces_max_parallel_at_a_time(sim):
    register(sim, canary_job(sim, "roll", count=3, canary=0))
    deployment_of(sim, "roll", 0, lambda d: d["Status"] == "successful")
    register(sim, canary_job(sim, "roll", count=3, canary=0, image="nginx:1.28"))
    most = 0
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        fresh = [a for a in allocations(sim, "roll") if a["JobVersion"] == 1 and a["DesiredStatus"] == "run"
                 and (a["DeploymentStatus"] or {}).get("Healthy") is not True]
        most = max(most, len(fresh))
        dep = deployment_of(sim, "roll", 1, lambda d: True)
        if dep["Status"] != "running":
            break
        time.sleep(0.02)
    assert dep["Status"] == "successful" and dep["TaskGroups"]["web"]["HealthyAllocs"] == 3
    assert most == 1


def test_promote_request_errors():
    _, client = server()
    resp = client.post("/v1/deployment/promote/abc", json={"All": True})
    assert (resp.status_code, resp.text) == (400, "DeploymentID must be specified")
    resp = client.post("/v1/deployment/promote/abc", json={"DeploymentID": "other"})
    assert (resp.status_code, resp.text) == (400, "Deployment ID does not match")
    resp = client.post("/v1/deployment/promote/abc", json={"DeploymentID": "abc"})
    assert (resp.status_code, resp.text) == (500, "deployment not found")
    resp = client.get("/v1/deployment/promote/abc")
    assert resp.status_code == 405


def test_auto_promote_needs_a_canary():
    _, client = server()
    job = parsed(client, group='update {\n      auto_promote = true\n    }')
    checked = client.post("/v1/validate/job", json={"Job": job}).json
    assert checked["ValidationErrors"] == ["Task group g validation failed: 1 error occurred:\n\t* Auto Promote "
                                           "requires a Canary count greater than zero\n\n"]




# -- periodic jobs and batch runs ---------------------------------------------------------------
# Sources (hashicorp/nomad): nomad/periodic_endpoint.go Periodic.Force (dispatch-job or
# submit-job; "job not found", "can't force launch non-periodic job"), nomad/periodic.go
# ForceEval ("can't force run non-tracked job": Add tracks only IsPeriodicActive jobs), deriveJob
# and derivedJobID (<id>/periodic-<unix time>, Name = ID, ParentID), Server.DispatchJob
# (TriggeredBy periodic-job); command/agent/job_endpoint.go JobSpecificRequest (job IDs routed
# by suffix: a child's ID holds a "/"); client/allocrunner getClientStatus and the poststop hook.
PERIODIC_JOB = """
job "%(id)s" {
  datacenters = ["dc1"]
  type        = "batch"
  periodic {
    crons            = ["0 3 * * *"]
    prohibit_overlap = true
  }
  group "g" {
    restart {
      attempts = %(attempts)s
      delay    = "1s"
      mode     = "fail"
    }
    task "main" {
      driver = "docker"
      config {
        image   = "alpine:3.20"
        command = "/bin/sh"
        args    = ["-c", %(main)s]
      }
    }
    task "after" {
      driver = "docker"
      lifecycle {
        hook = "poststop"
      }
      config {
        image   = "alpine:3.20"
        command = "/bin/sh"
        args    = ["-c", %(after)s]
      }
    }
  }
}
"""


def periodic_server(tmp_path, **options):
    runners = [{"image": "alpine:*", "command": "/bin/sh", "run": "sh"}]
    sim = nsim.NomadSim(dict({"time_scale": 0.01, "stand_ins": False, "task_runners": runners,
                              "data_dir": str(tmp_path)}, **options))
    return sim, Client(sim)


def register_periodic(client, job_id="nightly", main="echo main > /alloc/data/order", after="true", attempts=0):
    hcl = PERIODIC_JOB % {"id": job_id, "main": json.dumps(main), "after": json.dumps(after), "attempts": attempts}
    job = client.post("/v1/jobs/parse", json={"JobHCL": hcl, "Canonicalize": True}).json
    reply = client.post(f"/v1/job/{job_id}", json={"Job": job}).json
    assert reply["EvalID"] == ""  # a periodic job is not evaluated at registration
    return job


def wait_dead(client, job_id, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/v1/job/{job_id}").json
        if job["Status"] == "dead":
            return job
        time.sleep(0.05)
    raise AssertionError(f"{job_id} still {job['Status']}")


def test_periodic_force_launches_a_child_job(tmp_path):
    _, client = periodic_server(tmp_path)
    register_periodic(client)
    before = int(time.time())
    resp = client.post("/v1/job/nightly/periodic/force")
    assert resp.status_code == 200, resp.text
    reply = resp.json
    assert set(reply) == {"EvalID", "EvalCreateIndex", "Index"} and reply["Index"] == reply["EvalCreateIndex"]
    assert resp.headers["X-Nomad-Index"] == str(reply["Index"])
    evaluation = client.get(f"/v1/evaluation/{reply['EvalID']}").json
    child_id = evaluation["JobID"]
    assert evaluation["TriggeredBy"] == "periodic-job" and evaluation["Type"] == "batch"
    assert child_id.startswith("nightly/periodic-") and int(child_id.rsplit("-", 1)[1]) >= before
    child = client.get(f"/v1/job/{child_id}").json  # an ID with "/", routed as Nomad routes it
    assert child["ParentID"] == "nightly" and child["Name"] == child_id and child["Periodic"] is None
    job = wait_dead(client, child_id)
    allocs = client.get(f"/v1/job/{child_id}/allocations").json
    (alloc,) = allocs
    assert alloc["ClientStatus"] == "complete" and alloc["ClientDescription"] == "All tasks have completed"
    main = alloc["TaskStates"]["main"]
    assert main["State"] == "dead" and main["Failed"] is False
    assert [e["DisplayMessage"] for e in main["Events"] if e["Type"] == "Terminated"] == ["Exit Code: 0"]
    assert job["Status"] == "dead"
    parent = client.get("/v1/job/nightly").json
    assert parent["Status"] == "running"  # the periodic job itself stays
    summary = client.get("/v1/job/nightly/summary").json
    assert summary["Children"] == {"Pending": 0, "Running": 0, "Dead": 1}
    listed = {j["ID"]: j for j in client.get("/v1/jobs?prefix=nightly").json}
    assert listed[child_id]["ParentID"] == "nightly" and listed["nightly"]["Periodic"] is True


def test_periodic_force_errors_word_for_word(tmp_path):
    _, client = periodic_server(tmp_path)
    resp = client.post("/v1/job/missing/periodic/force")
    assert resp.status_code == 500 and resp.text == "job not found"
    job = parsed(client, job_id="svc")
    client.post("/v1/job/svc", json={"Job": job})
    resp = client.post("/v1/job/svc/periodic/force")
    assert resp.status_code == 500 and resp.text == "can't force launch non-periodic job"
    register_periodic(client, "stopped")
    client.delete("/v1/job/stopped")
    resp = client.post("/v1/job/stopped/periodic/force")
    assert resp.status_code == 500
    assert resp.text == ('force launch for job "stopped" failed: can\'t force run non-tracked job "stopped" '
                         '(default)')


def test_periodic_force_needs_submit_or_dispatch_job(tmp_path):
    reader = "00000000-0000-4000-8000-000000000001"
    dispatcher = "00000000-0000-4000-8000-000000000002"
    acl = {"enabled": True, "tokens": {
        reader: {"name": "reader", "policies": [{"namespace": {"default": {"policy": "read"}}}]},
        dispatcher: {"name": "dispatcher", "policies": [{"namespace": {"default": {
            "capabilities": ["dispatch-job", "read-job", "parse-job"]}}}]},
        "00000000-0000-4000-8000-000000000003": "management"}}
    _, client = periodic_server(tmp_path, acl=acl)
    hcl = PERIODIC_JOB % {"id": "p", "main": '"true"', "after": '"true"', "attempts": 0}
    headers = {"X-Nomad-Token": "00000000-0000-4000-8000-000000000003"}
    job = client.post("/v1/jobs/parse", json={"JobHCL": hcl, "Canonicalize": True}, headers=headers).json
    client.post("/v1/job/p", json={"Job": job}, headers=headers)
    resp = client.post("/v1/job/p/periodic/force", headers={"X-Nomad-Token": reader})
    assert resp.status_code == 403 and resp.text == "Permission denied"
    resp = client.post("/v1/job/p/periodic/force", headers={"X-Nomad-Token": dispatcher})
    assert resp.status_code == 200, resp.text


def test_poststop_runs_after_the_main_task_and_exit_codes_count(tmp_path):
    _, client = periodic_server(tmp_path)
    register_periodic(client, "order", main="sleep 0.2; echo main >> /alloc/data/order",
                      after="echo after >> /alloc/data/order; cat /alloc/data/order > /alloc/data/seen")
    child = client.get(f"/v1/evaluation/{client.post('/v1/job/order/periodic/force').json['EvalID']}").json["JobID"]
    wait_dead(client, child)
    (alloc,) = client.get(f"/v1/job/{child}/allocations").json
    assert alloc["ClientStatus"] == "complete"
    with open(os.path.join(str(tmp_path), "allocs", alloc["ID"], "alloc", "data", "seen"), encoding="utf-8") as fh:
        assert fh.read() == "main\nafter\n"  # the poststop task started once the main task was dead

    # a non-zero exit: restarted per the restart policy, then the task and the allocation fail
    register_periodic(client, "failing", main="echo broken >&2; exit 3", attempts=1)
    child = client.get(f"/v1/evaluation/{client.post('/v1/job/failing/periodic/force').json['EvalID']}").json["JobID"]
    wait_dead(client, child)
    (alloc,) = client.get(f"/v1/job/{child}/allocations").json
    assert alloc["ClientStatus"] == "failed"
    main = alloc["TaskStates"]["main"]
    assert main["Failed"] is True and main["Restarts"] == 1
    kinds = [(e["Type"], e["DisplayMessage"]) for e in main["Events"]]
    assert kinds.count(("Terminated", "Exit Code: 3")) == 2
    assert ("Restarting", "Task restarting in 1s") in kinds
    assert kinds[-1][0] == "Not Restarting"


def test_the_sh_runner_maps_container_paths_and_interpolates_like_nomad(tmp_path):
    from lab.sim import nomad_tasks  # pylint: disable=import-outside-toplevel

    host_rw, host_ro = tmp_path / "rw", tmp_path / "ro"
    host_ro.mkdir()
    (host_ro / "f").write_text("read-only data")
    paths = nomad_tasks.Paths(str(tmp_path / "task"), str(tmp_path / "alloc"),
                              {"/backups": str(host_rw), "/src/ro": str(host_ro)}, read_only={"/src/ro"})
    script = ('echo "${NOMAD_JOB_ID} ${node.unique.name} $HOME" > /backups/out; tar -cf /backups/t.tar -C /src ro; '
              'cp /src/ro/f /backups/copy; echo x > /src/ro/f; ls /backups/../ > /dev/null')
    ctx = {"task": "t", "task_dir": str(tmp_path / "task"), "paths": paths, "config": {
        "command": "/bin/sh", "args": ["-c", script]}, "env": {"NOMAD_JOB_ID": "j/periodic-1", "HOME": "/local"},
        "node_vars": {"node.unique.name": "lab-local"}, "image": "alpine:3.20"}
    nomad_tasks.check("sh", ctx)
    handle = nomad_tasks.start("sh", ctx)
    handle.proc.wait(10)
    assert handle.poll() == 0, handle.exit_message()
    out = (host_rw / "out").read_text().split()
    assert out[:2] == ["j/periodic-1", "lab-local"] and out[2] == str(tmp_path / "task" / "local")
    assert (host_rw / "copy").read_text() == "read-only data"
    assert (host_ro / "f").read_text() == "read-only data"  # a read-only mount is never written
    import tarfile  # pylint: disable=import-outside-toplevel
    with tarfile.open(host_rw / "t.tar") as tar:
        assert sorted(tar.getnames()) == ["ro", "ro/f"]  # the container's names, not the host's
    bad = dict(ctx, config={"command": "/bin/bash", "args": ["-lc", "true"]})
    with pytest.raises(nomad_tasks.RunnerError, match="runs `/bin/sh -c <script>`"):
        nomad_tasks.check("sh", bad)
