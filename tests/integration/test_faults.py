"""
Fault injection at every step of the orchestration (issue 10, item 3).

Each scenario makes one system misbehave at one step of `salt-run state.orch
orch.bionicgpt` - a 5xx, a timeout, a dropped or refused connection, a 409/412-style
conflict, a failing Nomad deployment, a sealed Vault, a lost lock - and checks that:

1. the run fails (non-zero exit) with a message naming the system and the object, and no
   traceback in any comment;
2. the systems end unchanged from before the run, or restored to it by the recovery steps
   (Caddy's managed routes, Nomad job specs, Authentik objects, Vault secret versions,
   Consul's external services) - or, where the failure comes after a verified apply
   (the record step, a lost lock), converged;
3. the lock is released (for a lost lock: the message says it was lost);
4. with the fault cleared, a re-run succeeds, and a run after it changes nothing.

Faults come from the simulators (``SimHandle.fault``: status + body, delay, dropped
connection, ``times``-limited; Vault sealing itself, the lock's Consul session destroyed),
from a proxy in front of Caddy's admin API (a concurrent config change before every guarded
write, dropped connections) and from pillar (a refused image, a route Caddy rejects, a
blocked directory, a tunnel without handshake).

Every fault is armed before the run starts, so none can miss its step by arriving late
(arming one when the master publishes the step's job did: the step could be over before
the test saw the event). A fault meant for one step that shares its requests with earlier
steps waits for a trigger: the first request of that step, or the last of the step before
it (``after``), and one that must be gone before the recovery steps ends at their first
request (``until``); each scenario says which request and why. The test then asserts that
every fault was hit (the simulators count the requests each fault answered, the Caddy
proxy counts what it dropped or raced), so a fault that missed fails the test instead of
letting it pass or fail by luck.

"Drift" (a change made behind hecate's back before the run) gives the failing step
something to write, so "nothing half-applied" and the recovery steps are really exercised.

Most scenarios are ``long`` (`make test-long`); a few fast ones run in the default suite.
"""

import dataclasses
import json
import os
import re
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

import hecate_config
import hecate_consul_client
import hecate_plan
from tests import caddy_helpers, pillar_files
from tests.orch_helpers import JOBS, comments, failures, job, lock_holder, managed_routes, orch, steps

SIM_NAMES = ("vault", "consul", "nomad", "authentik")
# Nomad fields that change with every registration or revert, not with the spec
NOMAD_VOLATILE = {"Version", "Stable", "Status", "StatusDescription", "SubmitTime", "ModifyIndex",
                  "JobModifyIndex", "CreateIndex", "NomadTokenID", "VersionTag"}
CONSUL_INDEX = {"X-Consul-Index": "1"}


# -- the Caddy admin path -------------------------------------------------------------------------------
class CaddyAdminProxy:
    """
    A loopback proxy in front of Caddy's admin API that the cloud minion is pointed at
    (``hecate:connections:caddy:admin_url``). Modes:

    - ``pass``: forward everything;
    - ``race``: before forwarding a guarded write (``If-Match``), change Caddy's config
      directly (``idle_timeout`` of the ``hecate`` server), as a concurrent operator would:
      the real Caddy then answers 412 to every attempt;
    - ``drop``: close every connection without an answer (the admin API is down); with
      ``drop_after`` (a path regex) only from the first request to a matching path on, so
      the requests of earlier steps still get through.
    """

    NOISE_PATH = "/config/apps/http/servers/hecate/idle_timeout"

    def __init__(self, caddy):
        self.target = caddy.admin_url
        self.mode = "pass"
        self.drop_after = None
        self.dropping = False
        self.raced = 0
        self.dropped = 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _any(self):
                proxy.handle(self)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _any  # noqa: N815

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def handle(self, req):
        length = int(req.headers.get("Content-Length") or 0)
        body = req.rfile.read(length) if length else None
        if self.mode == "drop" and not self.dropping:
            self.dropping = self.drop_after is None or re.search(self.drop_after, req.path) is not None
        if self.mode == "drop" and self.dropping:
            self.dropped += 1
            req.close_connection = True
            return
        if self.mode == "race" and req.command != "GET" and req.headers.get("If-Match"):
            self.raced += 1
            requests.post(self.target + self.NOISE_PATH, json=f"{60 + self.raced}s", timeout=10).raise_for_status()
        headers = {k: v for k, v in req.headers.items() if k.lower() not in ("host", "content-length", "connection")}
        resp = requests.request(req.command, self.target + req.path, data=body, headers=headers, timeout=60)
        req.send_response(resp.status_code)
        for key in ("Content-Type", "Etag"):
            if key in resp.headers:
                req.send_header(key, resp.headers[key])
        req.send_header("Content-Length", str(len(resp.content)))
        req.end_headers()
        if req.command != "HEAD":
            req.wfile.write(resp.content)

    def reset(self):
        """Back to ``pass``; remove the concurrent operator's change."""
        self.mode = "pass"
        self.drop_after = None
        self.dropping = False
        self.dropped = 0
        if self.raced:
            requests.delete(self.target + self.NOISE_PATH, timeout=10)
            self.raced = 0

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


# -- scenarios --------------------------------------------------------------------------------------------
@dataclasses.dataclass
class Scenario:
    id: str
    step: str  # the step whose failure the run must report
    message: str  # regex: the failure of ``step`` names the system and the object
    faults: tuple = ()  # (sim, fault spec) armed before the run; each must be hit
    drift: tuple = ()  # changes behind hecate's back before the run (Lab.drift_<name>)
    pillar: dict | Callable | None = None  # pillar overrides (removed before the re-run)
    proxy: bool = False  # point the cloud minion at the Caddy admin proxy
    proxy_mode: str = "pass"
    proxy_after: str | None = None  # drop mode: drop from the first request to this path on
    expect: str = "unchanged"  # "unchanged": every system as before the run; "applied": converged
    fast: bool = False  # run in the default suite

    def param(self):
        marks = () if self.fast else (pytest.mark.long,)
        return pytest.param(self, id=self.id, marks=marks)


def _http_500(text):
    return {"status": 500, "body": text, "mimetype": "text/plain"}


CRITICAL_OLLAMA = [{
    "Node": {"Node": "lab-local", "Address": "127.0.0.1"},
    "Service": {"ID": "ollama-1", "Service": "ollama", "Address": "127.0.0.1", "Port": 11434},
    "Checks": [{"CheckID": "ollama-1-http", "Name": "ollama http", "Status": "critical",
                "Output": "HTTP GET http://127.0.0.1:11434/: connection refused"}],
}]


def _invalid_route(lab):
    """The pillar's routes plus one whose health-check URI Caddy refuses when loading."""
    routes = pillar_files.render("hecate.sls")["hecate"]["reverse_proxy"]["caddy"]["routes"]
    bad = {"domain": "broken.cybermonkey.dev", "service": "broken", "backend": "127.0.0.1:9",
           "health_checks": {"active": {"uri": "/health%zz", "interval": "10s"}}}
    return {"hecate": {"reverse_proxy": {"caddy": {"routes": routes + [bad]}}}}


# the first request of the authentik step (bionicgpt.authentik lists the groups first)
AUTHENTIK_STEP_STARTS = {"method": "GET", "path": r"^/api/v3/core/groups/$"}


def _new_route(lab):
    """The pillar's routes plus a valid new one (its DNS records are the step's first writes)."""
    routes = pillar_files.render("hecate.sls")["hecate"]["reverse_proxy"]["caddy"]["routes"]
    new = {"domain": "fault-new.cybermonkey.dev", "service": "fault-new", "backend": "127.0.0.1:9"}
    return {"hecate": {"reverse_proxy": {"caddy": {"routes": routes + [new]}}}}


SCENARIOS = [
    # preflight: nothing is locked or written yet
    Scenario(
        "preflight-caddy-refused", "preflight",
        r"Caddy admin API at http://127\.0\.0\.1:\d+ is unreachable: connection refused",
        pillar=lambda lab: {"hecate": {"connections": {"caddy": {"admin_url": f"http://127.0.0.1:{lab.closed_port}"}}}},
        fast=True,
    ),
    Scenario(
        "preflight-authentik-503", "preflight", r"Authentik: GET /api/v3/\S* returned 503",
        faults=[("authentik", {"path": r"^/api/v3/", "status": 503, "body": {"detail": "Service Unavailable"},
                               "times": 8})],
    ),
    # lock
    Scenario(
        "lock-consul-500", "lock", r"Consul: create session .*No cluster leader",
        faults=[("consul", dict(_http_500("rpc error making call: No cluster leader"),
                                method="PUT", path=r"^/v1/session/create$", times=8))],
        fast=True,
    ),
    # wireguard*
    Scenario(
        "wireguard_keys-config-dir-blocked", "wireguard_keys", r"hcwg0.*(Not a directory|blocker)",
        pillar=lambda lab: {"bionicgpt": {"wireguard": {"config_dir": lab.blocked_dir}}},
    ),
    Scenario(
        "wireguard_verify-no-handshake", "wireguard_verify", r"tunnel hcwg0",
        pillar={"bionicgpt": {"wireguard": {"verify": {"enabled": True, "timeout": 2}}}},
    ),
    # generated secrets in Vault
    Scenario(
        "secrets_edge-vault-500", "secrets_edge", r"Vault: read secret/hecate/coturn: internal error",
        faults=[("vault", {"method": "GET", "path": r"^/v1/secret/data/hecate/coturn$", "status": 500,
                           "body": {"errors": ["internal error"]}, "times": 8})],
    ),
    # Vault seals itself at the first request for a secret that only this step (on the local
    # node) reads: validate, preflight and secrets_edge read other paths
    Scenario(
        "secrets_node-vault-sealed", "secrets_node", r"Vault.*secret/bionicgpt/\S+.*sealed",
        faults=[("vault", {"path": r"^/v1/secret/(data|metadata)/bionicgpt/(db|litellm|oauth)$", "action": "seal",
                           "times": 1})],
    ),
    Scenario(
        "secrets_node-vault-cas-conflict", "secrets_node",
        r"Vault: secret/bionicgpt/litellm changed while this state ran \(check-and-set on version \d+ failed\); "
        r"nothing was written",
        drift=("vault",),
        faults=[("vault", {"method": "POST", "path": r"^/v1/secret/data/bionicgpt/litellm$", "status": 400,
                           "body": {"errors": ["check-and-set parameter did not match the current version"]},
                           "times": 2})],
    ),
    # Consul agents: Vault goes away while the gossip key is resolved. validate and
    # secrets_edge read the same key, so the drops start after the last read of the step
    # that runs just before (secrets_node's bionicgpt/oauth)
    Scenario(
        "consul_agents-vault-unreachable", "consul_agents", r"Vault.*unreachable",
        faults=[("vault", {"method": "GET", "path": r"^/v1/secret/data/hecate/consul$", "action": "drop",
                           "times": 40,
                           "after": {"method": "GET", "path": r"^/v1/secret/data/bionicgpt/oauth$"}})],
    ),
    # Authentik
    Scenario(
        "authentik-500-on-write", "authentik",
        r"Authentik: PATCH /core/applications/bionicgpt/ returned 500: <h1>Server Error \(500\)</h1>",
        drift=("authentik",),
        faults=[("authentik", {"method": "PATCH", "path": r"^/api/v3/core/applications/bionicgpt/$",
                               "status": 500, "body": "<h1>Server Error (500)</h1>", "mimetype": "text/html",
                               "times": 3})],
    ),
    Scenario(
        "authentik-429-storm", "authentik", r"Authentik: GET /\S+ returned 429: Request was throttled",
        drift=("authentik",),
        # from the step's first request on (preflight only reads /admin/version/)
        faults=[("authentik", {"path": r"^/api/v3/", "status": 429, "headers": {"Retry-After": "1"},
                               "body": {"detail": "Request was throttled. Expected available in 1 second."},
                               "times": 60, "after": AUTHENTIK_STEP_STARTS})],
    ),
    Scenario(
        "authentik-403-token-revoked", "authentik",
        r"Authentik at http://127\.0\.0\.1:\d+: token invalid or lacks permission \(GET /\S+ returned 403: "
        r"Token invalid/expired\)",
        drift=("authentik",),
        faults=[("authentik", {"path": r"^/api/v3/", "status": 403, "body": {"detail": "Token invalid/expired"},
                               "times": 200, "after": AUTHENTIK_STEP_STARTS})],
    ),
    Scenario(
        "authentik-timeout", "authentik", r"Authentik at http://127\.0\.0\.1:\d+: GET /core/groups/ timed out",
        pillar={"hecate": {"connections": {"authentik": {"timeout": 2}}}},
        faults=[("authentik", {"method": "GET", "path": r"^/api/v3/core/groups/$", "delay": 4, "times": 8})],
    ),
    # Nomad jobs
    Scenario(
        "nomad_jobs-register-500", "nomad_jobs", r"Nomad: POST /v1/job/bionicgpt-llm returned 500: rpc error",
        drift=("nomad",),
        faults=[("nomad", dict(_http_500("rpc error: raft apply failed: timed out enqueuing operation"),
                               method="POST", path=r"^/v1/job/bionicgpt-llm$", times=2))],
    ),
    Scenario(
        "nomad_jobs-enforce-index-conflict", "nomad_jobs",
        r"job bionicgpt-llm changed in Nomad after it was planned .*Nothing was registered",
        drift=("nomad",),
        faults=[("nomad", dict(_http_500("Enforcing job modify index 41: job exists with conflicting "
                                         "job modify index: 42"),
                               method="POST", path=r"^/v1/job/bionicgpt-llm$", times=1))],
    ),
    Scenario(
        "nomad_jobs-failed-deployment", "nomad_jobs",
        r"job bionicgpt-llm version \d+: deployment failed(.|\n)*Failed to pull `\S+:refused-1\.55\.8`(.|\n)*"
        r"Nomad auto-reverted to version \d+ \(now version \d+\): deployment successful",
        pillar={"bionicgpt": {"jobs": {"llm": {"litellm": {"image": "ghcr.io/berriai/litellm:refused-1.55.8"}}}}},
    ),
    Scenario(
        "nomad_jobs-blocking-query-dropped", "nomad_jobs",
        r"job bionicgpt-llm was registered as version \d+, but following its deployment failed: "
        r"Nomad at http://127\.0\.0\.1:\d+ is unreachable",
        drift=("nomad",),
        # gone at the recovery step's first look at a job's versions (bionicgpt.jobs_revert),
        # so the revert it makes can be followed; the failing step itself never reads them
        faults=[("nomad", {"method": "GET", "path": r"^/v1/(evaluation|deployment)/", "action": "drop",
                           "times": 40, "until": {"method": "GET", "path": r"^/v1/job/[^/]+/versions$"}})],
    ),
    # Consul external services
    Scenario(
        "consul_services-500", "consul_services", r"Consul: register service wazuh-master: .*500",
        drift=("consul_wazuh",),
        faults=[("consul", dict(_http_500("rpc error making call: leadership lost while committing log"),
                                method="PUT", path=r"^/v1/agent/service/register$", times=8))],
    ),
    Scenario(
        "consul_services-strict-json-400", "consul_services",
        r"Consul: register service jenkins-master: .*Request decode failed",
        drift=("consul_jenkins",),
        faults=[("consul", {"method": "PUT", "path": r"^/v1/agent/service/register$", "status": 400,
                            "body": 'Request decode failed: json: unknown field "Tagz"', "mimetype": "text/plain",
                            "times": 2})],
    ),
    # DNS: Hetzner answers 500 to a create -> nothing written, Caddy not touched
    Scenario(
        "dns-hetzner-500", "dns",
        r"Hetzner DNS API: create fault-new\.cybermonkey\.dev A: server_error: internal error",
        pillar=_new_route,
        faults=[("hetzner", {"method": "POST", "path": r"/rrsets$", "status": 500, "times": 20,
                             "body": {"error": {"code": "server_error", "message": "internal error",
                                                "details": None}}})],
    ),
    # Caddy
    Scenario(
        "caddy-412-retries-exhausted", "caddy",
        r"Caddy config changed between read and write \d+ times in a row \(412 Precondition Failed\); "
        r"nothing was written",
        drift=("caddy",), proxy=True, proxy_mode="race",
    ),
    Scenario(
        "caddy-route-rejected", "caddy",
        r"Caddy refused route hecate\.route\.broken \(route \d+ of server 'hecate'\); nothing was written: "
        r"Caddy admin API: \w+ /config/\S+ returned 500: loading new config",
        pillar=_invalid_route,
    ),
    # the admin API goes down from the Caddy step's first request (it reads /config/;
    # preflight reads /config/apps/http/servers)
    Scenario(
        "caddy-admin-down", "caddy", r"Caddy admin API at http://127\.0\.0\.1:\d+ is unreachable",
        drift=("caddy",), proxy=True, proxy_mode="drop", proxy_after=r"^/config/$",
    ),
    # verify: a service never gets healthy -> Caddy and Nomad put back as the run found them
    Scenario(
        "verify-service-never-healthy", "verify", r"Consul: not healthy after 3s: ollama: ollama http: critical",
        drift=("caddy", "nomad"),
        pillar={"bionicgpt": {"verify": {"timeout": 3}}},
        faults=[("consul", {"method": "GET", "path": r"^/v1/health/service/ollama$", "status": 200,
                            "body": CRITICAL_OLLAMA, "headers": CONSUL_INDEX, "times": 100})],
    ),
    # record: the deployment is applied and verified, only its record fails
    Scenario(
        "record-consul-kv-500", "record", r"Consul: write key hecate/deployments/lab/\S+: .*500",
        drift=("caddy",),
        faults=[("consul", dict(_http_500("rpc error making call: leadership lost while committing log"),
                                method="PUT", path=r"^/v1/kv/hecate/deployments/", times=8))],
        expect="applied",
    ),
    # the lock's session is destroyed in the middle of the run: when the Consul services
    # step reads its first service (nothing before it reads /v1/agent/service/<id>)
    Scenario(
        "lock-lost-mid-run", "unlock", r"lock hecate/locks/lab was lost during run \S+",
        drift=("caddy",),
        faults=[("consul", {"method": "GET", "path": r"^/v1/agent/service/[^/]+$", "action": "destroy_session",
                            "key": "hecate/locks/lab", "times": 1})],
        expect="applied",
    ),
]


def _same_constraints_once(spec):
    """
    A job as Nomad keeps it, with each group's constraints counted once. Job.Revert (how a
    failed run puts a job back) re-registers the stored version through the admission
    controllers (nomad/job_endpoint.go doRegister), and jobImplicitIdentitiesHook appends its
    ``${attr.nomad.version} >= 1.7.0-a`` constraint again to every group with a Vault identity
    (nomad/job_endpoint_hook_implicit_identities.go: no check for one already there): the
    reverted job is the old one plus a duplicate of a constraint it already had.
    """
    for group in spec.get("TaskGroups") or []:
        unique = []
        for con in group.get("Constraints") or []:
            if con not in unique:
                unique.append(con)
        group["Constraints"] = unique or None
    return spec


# -- the lab around a scenario ---------------------------------------------------------------------------
class Lab:
    def __init__(self, stack, proxy, tmp_dir):
        self.sims, self.caddy, self.proxy = stack["sims"], stack["caddy"], proxy
        # bound but never listening: connections are refused, and no other process (say
        # another test worker) can take the port while the module runs
        self._closed = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._closed.bind(("127.0.0.1", 0))
        self.closed_port = self._closed.getsockname()[1]
        blocker = os.path.join(tmp_dir, "blocker")
        with open(blocker, "w", encoding="utf-8") as fh:
            fh.write("a file where the WireGuard directory's parent should be\n")
        self.blocked_dir = os.path.join(blocker, "wireguard")
        self.lock_lost_at = None

    # faults and actions
    def arm(self, faults):
        for name, spec in faults:
            self.sims[name].fault(**spec)

    def clear(self):
        for name in SIM_NAMES:
            self.sims[name].clear_faults()

    def fault_hits(self):
        """``[(sim, fault spec, hits)]`` of every fault armed in the simulators."""
        return [(name, fault, fault.get("hits", 0)) for name in SIM_NAMES for fault in self.sims[name].faults()]

    def unseal_vault(self):
        vault = self.sims["vault"]
        resp = requests.put(f"{vault.url}/v1/sys/unseal", json={"key": vault.options["unseal_key"]}, timeout=10)
        resp.raise_for_status()
        assert resp.json()["sealed"] is False

    def vault_is_sealed(self):
        return requests.get(f"{self.sims['vault'].url}/v1/sys/seal-status", timeout=10).json()["sealed"]

    def lock_lost(self):
        """The run's lock session was destroyed (by a fault): Consul's lock-delay counts from now on."""
        self.lock_lost_at = time.monotonic()

    def wait_out_lock_delay(self):
        """
        Consul keeps a lock whose session was destroyed from being taken again for the
        session's lock-delay (the orchestration's is 15 s); a re-run that comes sooner is
        told so and fails at its lock step. Wait as an operator would.
        """
        if self.lock_lost_at is not None:
            delay = hecate_consul_client.duration_seconds(hecate_consul_client.DEFAULT_LOCK_DELAY) + 1
            time.sleep(max(0.0, self.lock_lost_at + delay - time.monotonic()))
            self.lock_lost_at = None

    def restore(self):
        """Clear every fault (the finalizer of each scenario)."""
        self.clear()
        if self.vault_is_sealed():
            self.unseal_vault()
        self.proxy.reset()

    # drift: a change made behind hecate's back, which the failing step would put right
    def drift_caddy(self):
        route = managed_routes(self.caddy)[0]
        route["match"][0]["host"] = list(route["match"][0]["host"]) + ["drift.invalid"]
        resp = requests.patch(f"{self.caddy.admin_url}/id/{route['@id']}", json=route, timeout=10)
        assert resp.status_code == 200, resp.text

    def drift_nomad(self):
        nomad = self.sims["nomad"]
        spec = job(nomad, "bionicgpt-llm")
        for group in spec["TaskGroups"]:
            for task in group["Tasks"]:
                if task["Name"] == "litellm":
                    task["Resources"]["CPU"] += 7
        spec = {k: v for k, v in spec.items() if k not in NOMAD_VOLATILE}
        resp = requests.post(f"{nomad.url}/v1/job/bionicgpt-llm", json={"Job": spec}, timeout=10, headers=nomad.headers)
        assert resp.status_code == 200, resp.text
        assert caddy_helpers.wait_for(lambda: (job(nomad, "bionicgpt-llm") or {}).get("Stable"), timeout=60)

    def drift_authentik(self):
        sim = self.sims["authentik"]
        resp = requests.patch(f"{sim.url}/api/v3/core/applications/bionicgpt/", json={"policy_engine_mode": "all"},
                              headers={"Authorization": f"Bearer {sim.token}"}, timeout=10)
        assert resp.status_code == 200, resp.text

    def drift_vault(self):
        vault = self.sims["vault"]
        resp = requests.delete(f"{vault.url}/v1/secret/metadata/bionicgpt/litellm",
                               headers={"X-Vault-Token": vault.root_token}, timeout=10)
        assert resp.status_code == 204, resp.text

    def _deregister(self, service_id):
        consul = self.sims["consul"]
        requests.put(f"{consul.url}/v1/agent/service/deregister/{service_id}",
                     headers={"X-Consul-Token": consul.token}, timeout=10).raise_for_status()

    def drift_consul_wazuh(self):
        self._deregister("wazuh-master")

    def drift_consul_jenkins(self):
        self._deregister("jenkins-master")

    # what the systems hold
    def snapshot(self):
        nomad = {}
        for job_id in JOBS:
            spec = job(self.sims["nomad"], job_id)
            nomad[job_id] = spec and _same_constraints_once({k: v for k, v in spec.items() if k not in NOMAD_VOLATILE})
        consul = self.sims["consul"].state()["services"]
        return {
            "caddy routes": managed_routes(self.caddy),
            "nomad jobs": nomad,
            "authentik objects": self.sims["authentik"].state()["objects"],
            "vault versions": self.sims["vault"].state()["mounts"],
            # Nomad's own registrations follow its allocations; hecate's are the external ones
            "consul services": {sid: s for sid, s in consul.items() if not sid.startswith("_nomad-")},
        }


@pytest.fixture(scope="module")
def caddy_proxy(caddy):
    proxy = CaddyAdminProxy(caddy)
    yield proxy
    proxy.stop()


@pytest.fixture(scope="module")
def lab(stack, caddy_proxy, tmp_path_factory):
    the_lab = Lab(stack, caddy_proxy, str(tmp_path_factory.mktemp("faults")))
    yield the_lab
    the_lab._closed.close()  # pylint: disable=protected-access


@pytest.fixture(scope="module")
def converged(salt_run_cli, lab):
    """``ensure()``: the lab converged (one run unless the previous scenario proved it)."""
    state = {"converged": False}

    def ensure():
        if not state["converged"]:
            ret = orch(salt_run_cli)
            assert ret.returncode == 0, _summary(ret)
            state["converged"] = True

    ensure.state = state
    return ensure


def _summary(ret):
    """The failures of a run, for assertion messages."""
    try:
        return json.dumps(failures(ret), indent=1)[:6000]
    except Exception:  # pylint: disable=broad-except
        return str(ret)[-4000:]


@pytest.mark.timeout(1500)
@pytest.mark.parametrize("scenario", [s.param() for s in SCENARIOS])
def test_fault(scenario, salt_run_cli, lab, converged, overrides):
    converged()
    converged.state["converged"] = False  # until this scenario proves it again
    for name in scenario.drift:
        getattr(lab, f"drift_{name}")()
    before = lab.snapshot()

    pillar = scenario.pillar(lab) if callable(scenario.pillar) else scenario.pillar
    if scenario.proxy:
        pillar = hecate_config.deep_merge(pillar or {}, {"hecate": {"connections": {"caddy": {
            "admin_url": lab.proxy.url}}}})
        lab.proxy.mode = scenario.proxy_mode
        lab.proxy.drop_after = scenario.proxy_after
    if pillar:
        overrides(pillar)

    try:
        lab.arm(scenario.faults)
        ret = orch(salt_run_cli)
        hits = lab.fault_hits()
    finally:
        raced, dropped = lab.proxy.raced, lab.proxy.dropped  # restore() resets them
        lab.restore()
    if any(spec.get("action") == "destroy_session" and n for _, spec, n in hits):
        lab.lock_lost()
    after = lab.snapshot()

    # 0. every fault happened: one that missed its step proves nothing either way
    assert len(hits) == len(scenario.faults)
    for name, spec, count in hits:
        assert count >= 1, f"the {name} fault was never hit: {spec}"
    if scenario.proxy_mode == "race":
        assert raced >= 2  # every attempt met a concurrent change
    if scenario.proxy_mode == "drop":
        assert dropped >= 1

    # 1. the run fails, saying which system and object, without a traceback
    assert ret.returncode != 0 and ret.data.get("retcode"), _summary(ret)
    failed = failures(ret)
    mine = [text for step, _, text in failed if step == scenario.step]
    assert any(re.search(scenario.message, text) for text in mine), _summary(ret)
    assert not [c for c in comments(ret) if "Traceback" in c], _summary(ret)
    assert "Traceback (most recent call last)" not in json.dumps(ret.data)

    # 2. the systems as before the run (or restored to it), or converged after a verified apply
    if scenario.expect == "unchanged":
        for system in before:
            assert after[system] == before[system], f"{system} changed by the failed run"
    else:
        assert steps(ret)["verify"]["result"] is True

    # 3. the lock is released
    assert lock_holder(lab.sims["consul"]) is None
    if steps(ret)["lock"]["result"] is True and scenario.step != "unlock":
        # taken by this run: the recovery step released it
        assert steps(ret)["unlock_after_failure"]["result"] is True, _summary(ret)
        assert "released lock held by" in json.dumps(steps(ret)["unlock_after_failure"]["changes"])

    # 4. without the fault a re-run succeeds, and the run after it changes nothing
    overrides.remove()
    lab.wait_out_lock_delay()
    rerun = orch(salt_run_cli)
    assert rerun.returncode == 0, _summary(rerun)
    if scenario.expect == "applied":
        assert hecate_plan.rows(rerun.data) == []
    elif hecate_plan.rows(rerun.data):
        again = orch(salt_run_cli)
        assert again.returncode == 0, _summary(again)
        assert hecate_plan.rows(again.data) == []
    converged.state["converged"] = True


def test_unlock_reports_a_lock_lost_by_the_run(salt_run_cli, stack):
    """The runner on its own: a run whose session was destroyed is told its lock was lost."""
    consul = stack["sims"]["consul"]
    ret = salt_run_cli.run("hecate.lock", "env=lab", "run_id=faults-lost")
    assert ret.returncode == 0, ret
    requests.put(f"{consul.url}/v1/session/destroy/{lock_holder(consul)}",
                 headers={"X-Consul-Token": consul.token}, timeout=10).raise_for_status()
    ret = salt_run_cli.run("hecate.unlock", "env=lab", "run_id=faults-lost")
    assert ret.returncode != 0 and ret.data["result"] is False
    assert re.search(r"lock hecate/locks/lab was lost during run faults-lost: its Consul session expired "
                     r"or was destroyed", ret.data["comment"]), ret.data
    # another run's unlock is not confused by it, and a lock released normally is just "not held"
    ret = salt_run_cli.run("hecate.unlock", "env=lab", "run_id=someone-else")
    assert ret.returncode == 0 and ret.data["comment"] == "lock was not held"
    # the destroyed session's lock-delay (15 s) holds the key back a while: wait it out
    assert salt_run_cli.run("hecate.lock", "env=lab", "run_id=faults-ok", "wait=40").returncode == 0
    assert salt_run_cli.run("hecate.unlock", "env=lab", "run_id=faults-ok").returncode == 0
    ret = salt_run_cli.run("hecate.unlock", "env=lab", "run_id=faults-ok")
    assert ret.returncode == 0 and ret.data["comment"] == "lock was not held"
