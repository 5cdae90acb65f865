"""
An Authentik upgrade on the edge (issue 16, "Upgrades"; docs/upgrades.md), through Salt's
functional loaders on the cloud minion: the edge's SLS (hecate.edge.secrets, .database,
.authentik) against a Nomad simulator of this module whose tasks run the real parts (the
PostgreSQL stand-in, the Authentik simulator bootstrapped from the job's environment, its
templates rendered from the session's Vault and Consul), as orch.hecate runs them.

- A version bump in pillar: ``test=True`` shows the image change of the server and the worker
  (old tag -> new tag) and how each group will be replaced, result None, nothing written;
  the real run replaces them by that strategy (rolling: the edge's jobs cannot run two
  copies, hecate.validate refuses canary and blue-green for them); ``hecate_edge.job_status``
  (what ``salt-run hecate.status`` shows) names the new version and its deployment.
- A release the registry does not have (this module's Nomad refuses its image, as the lab
  refuses ``*:refused*``): the deployment fails, Nomad auto-reverts to the last stable
  version, the state reports both, and Authentik answers again with the old release.
"""

import json
import os
import uuid

import pytest
import requests
import yaml
from saltfactories.utils.functional import Loaders

from lab import topology
from lab.sim import SimHandle
from tests.conftest import REPO

OLD, NEW = "2025.10.3", "2025.10.4"
MISSING = "2025.10.99"  # a release whose image the registry does not have
IMAGE = "ghcr.io/goauthentik/server"
READ_ONLY_POSTS = ("/v1/jobs/parse", "/v1/validate/job")


@pytest.fixture(scope="module")
def nomad(tmp_path_factory, lab_secrets, consul_sim, vault_sim):
    """This module's Nomad: the lab's options, plus one release the 'registry' lacks."""
    base = str(tmp_path_factory.mktemp("nomad-upgrade"))
    options = topology.nomad_options(consul_url=consul_sim.url, consul_token=lab_secrets["nomad_consul_token"],
                                     lab_secrets=lab_secrets, vault_url=vault_sim.url,
                                     vault_token=lab_secrets["nomad_vault_token"],
                                     data_dir=os.path.join(base, "tasks"),
                                     refuse_images=("*:refused*", f"{IMAGE}:{MISSING}"))
    handle = SimHandle("nomad", os.path.join(base, "sim"), options).start()
    handle.token = lab_secrets["nomad_management_token"]
    yield handle
    for job_id in ("hecate-authentik", "hecate-postgresql"):
        requests.delete(f"{handle.url}/v1/job/{job_id}?purge=true", timeout=10, headers=handle.headers)
    handle.stop()


class RuntimePillar:
    """The minion's lab_runtime pillar: the simulators, the edge's jobs, per-test overrides."""

    def __init__(self, path, addresses, edge):
        self.path, self.addresses, self.edge = path, addresses, edge
        self.set()

    def set(self, overrides=None):
        data = topology._merge(topology.runtime_pillar(self.addresses), self.edge)  # pylint: disable=protected-access
        data = topology._merge(data, overrides or {})  # pylint: disable=protected-access
        os.makedirs(self.path, exist_ok=True)
        with open(os.path.join(self.path, "lab_runtime.sls"), "w", encoding="utf-8") as fh:
            yaml.safe_dump(data, fh)


@pytest.fixture(scope="module")
def edge(tmp_path_factory, nomad, vault_sim, consul_sim):
    """The edge's pillar: PostgreSQL and Authentik as jobs (no Caddy: not what is upgraded here)."""
    ports = topology.edge_job_ports()
    tag = uuid.uuid4().hex[:6]
    vault_path = f"secret/hecate/upgrade-{tag}"
    pillar = topology.edge_jobs_pillar(dict(ports, vault_path=vault_path))
    pillar["hecate"]["nomad"].update(jobs=["postgresql", "authentik"], deploy_timeout=240)
    pillar["hecate"]["authentik"]["version"] = OLD
    # services of their own in the session's Consul; no backup job here
    pillar["hecate"]["authentik"]["service"] = f"hecate-authentik-{tag}"
    pillar["hecate"]["jobs"] = {"postgresql": {"service": f"hecate-postgresql-{tag}"}}
    # the update stanza is what this module tests; the backup an upgrade takes first (and the
    # refusal to upgrade without one) is tests/integration/test_edge_backups.py's
    pillar["hecate"]["backup"] = {"enabled": False, "before_upgrade": False}
    addresses = {"nomad": nomad.url, "vault": vault_sim.url, "consul": consul_sim.url}
    runtime = RuntimePillar(str(tmp_path_factory.mktemp("upgrade-pillar")), addresses, pillar)
    runtime.ports, runtime.vault_path = ports, vault_path
    return runtime


@pytest.fixture(scope="module")
def loaders(salt_factories, edge, lab_secrets):
    overrides = {
        "file_client": "local",
        "file_roots": topology.file_roots(),
        "pillar_roots": topology.pillar_roots(edge.path),
        "fileserver_followsymlinks": True,
        "module_dirs": [REPO],
        "grains": dict(topology.MINIONS["cloud"]),
    }
    overrides.update(topology.salt_opts(lab_secrets))
    factory = salt_factories.salt_minion_daemon(f"edge-upgrade-{uuid.uuid4().hex[:6]}", overrides=overrides)
    return Loaders(factory.config.copy())


@pytest.fixture(autouse=True)
def reset_loaders_state(loaders):
    try:
        yield
    finally:
        loaders.reset_state()


def sls(loaders, name, test=False):
    """``{state id: return}`` of an SLS run."""
    ret = loaders.modules.state.sls(name, test=test)
    return {r.id: r for r in ret}


def job(nomad, job_id):
    resp = requests.get(f"{nomad.url}/v1/job/{job_id}", timeout=10, headers=nomad.headers)
    return resp.json() if resp.status_code == 200 else None


def images(nomad, job_id):
    return {t["Name"]: t["Config"]["image"] for g in job(nomad, job_id)["TaskGroups"] for t in g["Tasks"]}


def authentik_answers(edge):
    return requests.get(f"http://127.0.0.1:{edge.ports['authentik_http']}/-/health/ready/", timeout=5).status_code


def writes(nomad):
    return [r for r in nomad.writes() if r["path"] not in READ_ONLY_POSTS and not r["path"].endswith("/plan")]


@pytest.fixture(scope="module")
def deployed(loaders, edge, nomad):
    """The edge's Authentik at the old release, deployed as orch.hecate's steps do."""
    for name in ("hecate.edge.secrets", "hecate.edge.database", "hecate.edge.authentik"):
        for sid, state in sls(loaders, name).items():
            assert state.result is True, (name, sid, state.comment)
    assert images(nomad, "hecate-authentik") == {"server": f"{IMAGE}:{OLD}", "worker": f"{IMAGE}:{OLD}"}
    assert authentik_answers(edge) == 200
    return True


def test_a_version_bump_is_previewed_then_rolled_out_and_shown_by_the_status(loaders, edge, nomad, deployed):
    before = job(nomad, "hecate-authentik")
    edge.set({"hecate": {"authentik": {"version": NEW}}})

    # test=True: the image change and the strategy, result None, nothing written
    nomad.clear_requests()
    preview = sls(loaders, "hecate.edge.authentik", test=True)
    state = preview["hecate edge job authentik"]
    assert state.result is None, state.comment
    assert state.changes["fields"] == {
        "group server:task server:Config:image": {"old": f"{IMAGE}:{OLD}", "new": f"{IMAGE}:{NEW}"},
        "group worker:task worker:Config:image": {"old": f"{IMAGE}:{OLD}", "new": f"{IMAGE}:{NEW}"}}
    assert state.changes["version"] == {"old": before["Version"], "new": before["Version"] + 1}
    assert f"~ image: '{IMAGE}:{OLD}' -> '{IMAGE}:{NEW}'" in state.comment
    for group in ("server", "worker"):
        assert (f"update group {group}: rolling: 1 at a time (each old allocation stopped as its replacement is "
                f"placed)") in state.comment
    assert "auto_revert to the last stable version on failure" in state.comment
    assert writes(nomad) == []
    assert job(nomad, "hecate-authentik")["Version"] == before["Version"]

    # the real run: the same changes, rolled out, Authentik answers with hecate's token again
    applied = sls(loaders, "hecate.edge.authentik")
    state = applied["hecate edge job authentik"]
    assert state.result is True, state.comment
    for key in ("fields", "version"):
        assert state.changes[key] == preview["hecate edge job authentik"].changes[key]
    assert state.changes["deployment"]["status"] == "successful"
    assert applied["hecate edge authentik answers with hecate's token"].result is True
    assert images(nomad, "hecate-authentik") == {"server": f"{IMAGE}:{NEW}", "worker": f"{IMAGE}:{NEW}"}
    after = job(nomad, "hecate-authentik")
    assert after["Version"] == before["Version"] + 1 and after["Stable"] is True
    # stop-before-start: no task of the new release started before every task of the old one
    # was killed, so the new release's migrations never ran beside the old release
    allocs = requests.get(f"{nomad.url}/v1/job/hecate-authentik/allocations", timeout=10,
                          headers=nomad.headers).json()
    killed = [e["Time"] for a in allocs if a["JobVersion"] == before["Version"]
              for st in a["TaskStates"].values() for e in st["Events"] if e["Type"] == "Killed"]
    started = [e["Time"] for a in allocs if a["JobVersion"] == after["Version"]
               for st in a["TaskStates"].values() for e in st["Events"] if e["Type"] == "Started"]
    assert len(killed) == 2 and len(started) == 2 and max(killed) <= min(started)

    # what hecate.status shows for the edge's jobs
    status = loaders.modules.hecate_edge.job_status()
    assert status["ok"] is True, status
    rows = {r["name"]: r for r in status["jobs"]}
    assert set(rows) == {"postgresql", "authentik"}
    row = rows["authentik"]
    assert row["version"] == after["Version"] and row["tags"] == {"server/server": NEW, "worker/worker": NEW}
    assert row["deployment"]["job_version"] == after["Version"]
    assert row["deployment"]["status"] == "successful" and row["canaries"] == {}
    assert row["comment"].startswith(f"hecate-authentik version {after['Version']} ({NEW}): deployment ")

    # converged
    nomad.clear_requests()
    again = sls(loaders, "hecate.edge.authentik")
    assert again["hecate edge job authentik"].changes == {}
    assert writes(nomad) == []


def test_a_release_that_cannot_be_pulled_is_reverted_and_reported(loaders, edge, nomad, deployed):
    stable = job(nomad, "hecate-authentik")
    running = images(nomad, "hecate-authentik")
    edge.set({"hecate": {"authentik": {"version": MISSING}}})
    ret = sls(loaders, "hecate.edge.authentik")
    state = ret["hecate edge job authentik"]
    assert state.result is False
    comment = state.comment
    assert (f"job hecate-authentik version {stable['Version'] + 1}: deployment failed: Failed due to unhealthy "
            f"allocations - rolling back to job version {stable['Version']}") in comment
    assert f"Driver Failure: Failed to pull `{IMAGE}:{MISSING}`" in comment
    assert (f"Nomad auto-reverted to version {stable['Version']} (now version {stable['Version'] + 2}): "
            "deployment successful") in comment
    assert state.changes["revert"]["by"] == "nomad auto_revert"
    assert state.changes["deployment"]["status"] == "failed"
    # the wait after it does not run on a failed job
    assert ret["hecate edge authentik answers with hecate's token"].result is False
    # back on the release that ran before, stable, and Authentik answers
    assert images(nomad, "hecate-authentik") == running
    reverted = job(nomad, "hecate-authentik")
    assert reverted["Version"] == stable["Version"] + 2 and reverted["Stable"] is True
    assert authentik_answers(edge) == 200
    status = loaders.modules.hecate_edge.job_status()
    row = next(r for r in status["jobs"] if r["name"] == "authentik")
    assert row["ok"] is True and row["version"] == reverted["Version"]
    assert row["deployment"]["status"] == "successful" and row["deployment"]["job_version"] == reverted["Version"]
    assert json.dumps(status).count(MISSING) == 0  # the reverted version runs the old images
