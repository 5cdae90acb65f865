"""
The edge from zero (issue 13), in the lab: `orch.hecate` turns the bare cloud minion into a
working edge - PostgreSQL, Authentik (server, worker) and Caddy deployed as Nomad jobs, whose
tasks the lab's Nomad runs as the real parts (the real Caddy binary with the job's bootstrap
config, the Authentik simulator bootstrapped from the job's environment, the PostgreSQL
stand-in) - then configures Authentik, the routes and the streams; `orch.bionicgpt` deploys
BionicGPT behind it. Then the faults and Caddy's upgrade.

The session's fast lab (its own Caddy and Authentik simulator, hecate:nomad:jobs: []) stays
as it is: this module points hecate at the job-run ones through lab_overrides.sls, with
fresh Vault paths for what hecate generates, and removes its jobs at the end. Facts relied
on: AUTHENTIK_BOOTSTRAP_TOKEN is "Only read on the first startup" (docs.goauthentik.io
"Automated install"); /-/health/ready/ answers 200 once PostgreSQL answers (".../ops/
monitoring"); `caddy run --resume` prefers the autosave on the /config volume.
"""

import glob
import json
import os
import uuid

import pytest
import requests

import hecate_plan
from lab import topology
from tests import caddy_helpers
from tests.orch_helpers import BOOKKEEPING, clear, lock_holder, orch, purge_jobs, steps, writes

pytestmark = [pytest.mark.long, pytest.mark.timeout(1200)]
EDGE_JOBS = ("hecate-caddy", "hecate-authentik", "hecate-postgresql", "hecate-redis", "hecate-backup")


class Edge:
    """The job-run edge of this module: its ports, pillar, and what runs."""

    def __init__(self, stack, lab_dir):
        self.stack, self.lab_dir = stack, lab_dir
        self.ports = topology.edge_job_ports()
        self.vault_path = f"secret/hecate/edge-{uuid.uuid4().hex[:8]}"
        self.path = os.path.join(stack["pillar_dir"], "lab_overrides.sls")
        self.pillar = topology.edge_jobs_pillar(dict(self.ports, vault_path=self.vault_path,
                                                     state_dir=os.path.join(lab_dir, "edge-caddy-state")))
        self.write()

    def write(self, extra=None):
        with open(self.path, "w", encoding="utf-8") as fh:
            json.dump(topology._merge(self.pillar, extra or {}), fh)  # pylint: disable=protected-access

    @property
    def nomad(self):
        return self.stack["sims"]["nomad"]

    def job(self, job_id):
        resp = requests.get(f"{self.nomad.url}/v1/job/{job_id}", timeout=10, headers=self.nomad.headers)
        return resp.json() if resp.status_code == 200 else None

    def through(self, host, path="/"):
        return requests.get(f"http://127.0.0.1:{self.ports['caddy_http']}{path}", headers={"Host": host},
                            timeout=10, allow_redirects=False)

    def admin(self, path="/config/"):
        return requests.get(f"http://127.0.0.1:{self.ports['caddy_admin']}{path}", timeout=10)

    def routes(self):
        servers = self.admin("/config/apps/http/servers").json()
        return [r for r in servers["hecate"].get("routes") or [] if str(r.get("@id", "")).startswith("hecate.")]

    def caddy_writes(self):
        """Admin API writes the job-run Caddy logged (every allocation so far)."""
        out = []
        for path in glob.glob(os.path.join(self.lab_dir, "nomad-tasks", "allocs", "*", "caddy", "caddy.log")):
            with open(path, encoding="utf-8", errors="replace") as fh:
                for line in fh:
                    if '"admin.api"' in line and "received request" in line:
                        entry = json.loads(line)
                        if entry.get("method") not in ("GET", "HEAD", "OPTIONS"):
                            out.append((entry.get("method"), entry.get("uri")))
        return out

    def authentik_token(self):
        return _vault_read(self.stack["sims"]["vault"], self.vault_path)["api_token"]


def _vault_read(vault_sim, path):
    mount, rel = path.split("/", 1)
    resp = requests.get(f"{vault_sim.url}/v1/{mount}/data/{rel}", headers={"X-Vault-Token": vault_sim.root_token},
                        timeout=10)
    return resp.json()["data"]["data"] if resp.status_code == 200 else {}


def _vault_write(vault_sim, path, data):
    topology.seed_vault(vault_sim.url, vault_sim.root_token, {tuple(path.split("/", 1)): data})


@pytest.fixture(scope="module")
def edge(stack, lab_dir):
    sims = stack["sims"]
    purge_jobs(sims)  # bare: no BionicGPT either
    handle = Edge(stack, lab_dir)
    yield handle
    os.unlink(handle.path)
    for job_id in EDGE_JOBS:
        requests.delete(f"{sims['nomad'].url}/v1/job/{job_id}?purge=true", timeout=10,
                        headers=sims["nomad"].headers)
    purge_jobs(sims)


def _job_changes(ret):
    """``{(minion, job state): changes}`` of the nomad_job states in an orchestration return."""
    out = {}
    for step in steps(ret).values():
        nested = (step.get("changes") or {}).get("ret") or {}
        for minion, states in nested.items():
            if not isinstance(states, dict):
                continue
            for key, sret in states.items():
                if key.startswith("nomad_job_|-") and isinstance(sret, dict) and sret.get("changes"):
                    out[(minion, key)] = {k: sret["changes"].get(k) for k in ("diff", "fields", "placements",
                                                                            "annotations")}
    return out


def _comments(ret, step):
    nested = (steps(ret)[step].get("changes") or {}).get("ret") or {}
    return [s.get("comment", "") for states in nested.values() if isinstance(states, dict)
            for s in states.values() if isinstance(s, dict)]


def test_from_bare_nodes_preview_apply_bionicgpt_and_converged_rerun(salt_run_cli, stack, edge):
    sims = stack["sims"]
    fast_caddy = clear(stack)
    assert edge.job("hecate-authentik") is None and edge.job("hecate-caddy") is None

    # 1. test=True from bare: every job and object previewed, nothing written anywhere
    preview = orch(salt_run_cli, test=True, sls="orch.hecate")
    assert preview.returncode == 0, preview
    for name, sim in sims.items():
        assert writes(name, sim) == [], name
    assert edge.caddy_writes() == [] and caddy_helpers.writes(stack["caddy"]) == fast_caddy
    predicted_jobs = _job_changes(preview)
    assert {k.split("_|-")[2] for _, k in predicted_jobs} == {"hecate-postgresql", "hecate-authentik",
                                                              "hecate-caddy", "hecate-backup"}
    pending = _comments(preview, "authentik")
    assert pending and all("will be created once Authentik is up" in c for c in pending), pending
    caddy_preview = " ".join(_comments(preview, "caddy"))
    assert "Caddy does not run yet" in caddy_preview
    assert "route bionicgpt: not added yet: its Consul service has no passing instance" in caddy_preview
    assert any("a real run waits up to" in c for c in _comments(preview, "edge_authentik"))

    # 2. the real run: the same job diffs, then a working edge
    applied = orch(salt_run_cli, sls="orch.hecate")
    assert applied.returncode == 0, applied
    assert _job_changes(applied) == predicted_jobs
    for job_id in ("hecate-postgresql", "hecate-authentik", "hecate-caddy"):
        job = edge.job(job_id)
        assert job["Stable"] is True and job["Status"] == "running", job_id
    # Authentik bootstrapped from the job's environment: hecate's generated token works
    token = edge.authentik_token()
    assert len(token) == 64
    ak_url = f"http://127.0.0.1:{edge.ports['authentik_http']}"
    me = requests.get(f"{ak_url}/api/v3/core/groups/?name=bionicgpt-superadmin",
                      headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert me.status_code == 200 and me.json()["results"], me.text
    # Caddy from its bootstrap: admin API on loopback, the hecate server with the routes
    assert edge.admin().json()["admin"]["listen"] == f"127.0.0.1:{edge.ports['caddy_admin']}"
    assert "hecate.route.authentik" in {r["@id"] for r in edge.routes()}
    # a request through the job's Caddy to the job's Authentik
    assert edge.through(topology.LAB_AUTHENTIK_DOMAIN, "/-/health/live/").status_code == 200
    assert steps(applied)["verify"]["result"] is True
    # no secret in the return
    assert token not in json.dumps(applied.data)

    # 3. BionicGPT behind the edge that hecate deployed
    bionic = orch(salt_run_cli)
    assert bionic.returncode == 0, bionic
    resp = edge.through(topology.LAB_CHAT_DOMAIN, "/")
    assert resp.status_code == 200 and "oauth2-proxy" in resp.text

    # 4. converged: both re-runs write nothing
    before = len(edge.caddy_writes())
    clear(stack)
    for sls in ("orch.hecate", "orch.bionicgpt"):
        again = orch(salt_run_cli, sls=sls)
        assert again.returncode == 0, again
        assert hecate_plan.rows(again.data) == [], sls
    for name, sim in sims.items():
        assert writes(name, sim, BOOKKEEPING.get(name, ())) == [], name
    assert len(edge.caddy_writes()) == before


def test_caddy_upgrade_keeps_its_routes(salt_run_cli, stack, edge):
    routes = edge.routes()
    version = edge.job("hecate-caddy")["Version"]
    edge.write({"hecate": {"reverse_proxy": {"caddy": {"version": "2.11.2"}}}})
    preview = orch(salt_run_cli, test=True, sls="orch.hecate")
    assert preview.returncode == 0
    fields = [c["fields"] for (_, key), c in _job_changes(preview).items() if "hecate-caddy" in key]
    assert fields == [{"group caddy:task caddy:Config:image": {"old": "caddy:2.11", "new": "caddy:2.11.2"}}]
    applied = orch(salt_run_cli, sls="orch.hecate")
    assert applied.returncode == 0, applied
    job = edge.job("hecate-caddy")
    assert job["Version"] == version + 1 and job["Stable"] is True
    image = job["TaskGroups"][0]["Tasks"][0]["Config"]["image"]
    assert image == "caddy:2.11.2"
    # the new Caddy resumed from the autosave on the config volume: the routes are there
    # without hecate writing them again (the caddy step reports no change)
    assert edge.routes() == routes
    assert not [r for r in hecate_plan.rows(applied.data) if r["step"] == "caddy"]
    assert edge.through(topology.LAB_AUTHENTIK_DOMAIN, "/-/health/live/").status_code == 200
    assert edge.through(topology.LAB_CHAT_DOMAIN, "/").status_code == 200
    # hecate.status shows the edge's jobs: the new release and the deployment that brought it
    status = salt_run_cli.run("hecate.status", "env=lab").data
    rows = {r["job"]: r for r in status["edge_jobs"]["jobs"]}
    caddy = rows["hecate-caddy"]
    assert caddy["version"] == version + 1 and caddy["tags"] == {"caddy/caddy": "2.11.2"}
    assert caddy["deployment"]["job_version"] == version + 1 and caddy["deployment"]["status"] == "successful"
    assert rows["hecate-authentik"]["ok"] is True and rows["hecate-backup"]["ok"] is True
    assert status["edge_jobs"]["ok"] is True, status["edge_jobs"]


def test_authentik_never_healthy_is_reverted_and_the_next_run_succeeds(salt_run_cli, stack, edge):
    """A database password that is not PostgreSQL's: Authentik never becomes ready."""
    stable = edge.job("hecate-authentik")
    wrong = {"hecate": {"authentik": {"database": {"password": {"vault": edge.vault_path, "key": "db_password_2"}}},
                        "deployment": {"healthy_deadline": "8m", "progress_deadline": "20m"}}}
    edge.write(wrong)
    failed = orch(salt_run_cli, sls="orch.hecate")
    assert failed.returncode != 0
    got = steps(failed)
    assert got["edge_authentik"]["result"] is False
    text = json.dumps(got["edge_authentik"])
    assert "hecate-authentik" in text and "auto-reverted" in text, text[:3000]
    assert got["caddy"]["result"] is False and "requisite failed" in got["caddy"]["comment"]
    assert got["unlock_after_failure"]["result"] is True
    assert lock_holder(stack["sims"]["consul"]) is None
    job = edge.job("hecate-authentik")
    assert job["Stable"] is True and job["Version"] > stable["Version"]
    assert job["TaskGroups"][0]["Tasks"][0]["Templates"] == stable["TaskGroups"][0]["Tasks"][0]["Templates"]
    assert edge.through(topology.LAB_AUTHENTIK_DOMAIN, "/-/health/live/").status_code == 200

    edge.write()  # the pillar fixed: the next run succeeds
    again = orch(salt_run_cli, sls="orch.hecate")
    assert again.returncode == 0, again


def test_a_bootstrap_token_authentik_refuses_stops_the_run(salt_run_cli, stack, edge):
    """Vault's token changed after Authentik's first start (deleted and regenerated, say)."""
    sims = stack["sims"]
    old = edge.authentik_token()
    _vault_write(sims["vault"], edge.vault_path, {"api_token": "lab-" + uuid.uuid4().hex})
    try:
        failed = orch(salt_run_cli, sls="orch.hecate")
        assert failed.returncode != 0
        got = steps(failed)
        text = json.dumps(got["edge_authentik"])
        assert "refuses hecate's API token" in text and "read only on Authentik's first start" in text, text[:2000]
        assert got["authentik"]["result"] is False and "requisite failed" in got["authentik"]["comment"]
        assert lock_holder(sims["consul"]) is None
    finally:
        _vault_write(sims["vault"], edge.vault_path, {"api_token": old})
    assert orch(salt_run_cli, sls="orch.hecate").returncode == 0
