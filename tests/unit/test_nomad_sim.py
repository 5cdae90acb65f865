"""
The Nomad simulator's client side: allocations with stand-in HTTP servers, Consul service
registration (recorded here by a small fake Consul agent that checks the documented
fields of PUT /v1/agent/service/register), health checks and driver failures.
"""

import http.server
import json
import threading
import time

import pytest
import requests

from lab.sim import SimHandle

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
