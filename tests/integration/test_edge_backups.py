"""
The edge's backups in the lab (issue 16): the edge deployed by its own states with backups on
(PostgreSQL, the backup job, Authentik as Nomad jobs: the PostgreSQL stand-in keeps the
Authentik simulator's data in its database), then through the real master and the cloud
minion:

- a known row (an Authentik group made through Authentik's API, so a row of its database);
- ``salt-run hecate.backup``: Nomad's periodic force launches the backup job, whose tasks run
  their own scripts (pg_dump of the stand-in's database into a custom-format archive on the
  backups host volume) and whose poststop task records it in Consul KV with the job's own
  token; the runner returns that record;
- the row deleted; ``salt-run hecate.restore`` refused while Authentik runs, previewed with
  ``test=True`` (nothing changes), then with ``stop_authentik=True`` (Authentik stopped, the
  one-off restore job's pg_restore --clean, Authentik started again): the row is back;
- the retention: an archive older than retention_days goes with its record on the next run;
- the upgrade's safety net: a new Authentik release is previewed as "backup before upgrade"
  without writing; a release whose deployment fails is backed up first, auto-reverted by
  Nomad, and its database restored; when the restore cannot be done, the failure says which
  ``salt-run hecate.restore`` to run.
"""

import hashlib
import json
import os
import time
import uuid

import pytest
import requests

from lab import topology
from lab.sim import pg
from tests.orch_helpers import purge_jobs

pytestmark = [pytest.mark.long, pytest.mark.timeout(900)]
JOBS = ("hecate-authentik", "hecate-backup", "hecate-postgresql", "hecate-restore")
DEPLOY = "hecate.edge.secrets,hecate.edge.database,hecate.edge.backup,hecate.edge.authentik"


class Edge:
    def __init__(self, stack, lab_dir):
        self.stack, self.lab_dir = stack, lab_dir
        self.ports = topology.edge_job_ports()
        self.vault_path = f"secret/hecate/edge-{uuid.uuid4().hex[:8]}"
        self.path = os.path.join(stack["pillar_dir"], "lab_overrides.sls")
        self.pillar = topology.edge_jobs_pillar(dict(self.ports, vault_path=self.vault_path))
        volumes = topology.agent_dirs(os.path.join(lab_dir, "agents"), "cloud")["nomad_edge"]["host_volumes"]
        self.backups_dir = volumes["hecate_backups"]["path"]
        self.write()

    def write(self, extra=None, salt_cli=None):
        with open(self.path, "w", encoding="utf-8") as fh:
            json.dump(topology._merge(self.pillar, extra or {}), fh)  # pylint: disable=protected-access
        if salt_cli is not None:  # execution functions answer with the minion's in-memory pillar
            assert salt_cli.run("saltutil.refresh_pillar", "wait=True", minion_tgt="cloud").returncode == 0

    @property
    def nomad(self):
        return self.stack["sims"]["nomad"]

    @property
    def consul(self):
        return self.stack["sims"]["consul"]

    def job(self, job_id):
        resp = requests.get(f"{self.nomad.url}/v1/job/{job_id}", timeout=10, headers=self.nomad.headers)
        return resp.json() if resp.status_code == 200 else None

    def kv(self, key):
        resp = requests.get(f"{self.consul.url}/v1/kv/{key}?raw", timeout=10,
                            headers={"X-Consul-Token": self.consul.token})
        return resp.json() if resp.status_code == 200 else None

    def authentik(self, method, path, **kw):
        mount, rel = self.vault_path.split("/", 1)
        vault = self.stack["sims"]["vault"]
        token = requests.get(f"{vault.url}/v1/{mount}/data/{rel}", headers={"X-Vault-Token": vault.root_token},
                             timeout=10).json()["data"]["data"]["api_token"]
        return requests.request(method, f"http://127.0.0.1:{self.ports['authentik_http']}/api/v3{path}",
                                headers={"Authorization": f"Bearer {token}"}, timeout=10, **kw)

    def group(self, name):
        found = self.authentik("GET", f"/core/groups/?name={name}").json()["results"]
        return found[0] if found else None

    def children(self):
        resp = requests.get(f"{self.nomad.url}/v1/jobs?prefix=hecate-backup/", timeout=10, headers=self.nomad.headers)
        return sorted(j["ID"] for j in resp.json())


@pytest.fixture(scope="module")
def edge(stack, lab_dir, salt_cli):
    sims = stack["sims"]
    purge_jobs(sims)
    handle = Edge(stack, lab_dir)
    handle.write(salt_cli=salt_cli)
    ret = salt_cli.run("state.apply", DEPLOY, minion_tgt="cloud")
    assert ret.returncode == 0, ret
    assert all(s["result"] for s in ret.data.values()), {k: v["comment"] for k, v in ret.data.items()
                                                         if not v["result"]}
    yield handle
    os.unlink(handle.path)
    salt_cli.run("saltutil.refresh_pillar", "wait=True", minion_tgt="cloud")
    for job_id in JOBS + tuple(handle.children()):
        requests.delete(f"{sims['nomad'].url}/v1/job/{job_id}?purge=true", timeout=10, headers=sims["nomad"].headers)
    purge_jobs(sims)


def sha256(path):
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


def test_backup_restore_and_retention(salt_run_cli, salt_cli, edge):
    canary = f"backup-canary-{uuid.uuid4().hex[:6]}"
    made = edge.authentik("POST", "/core/groups/", json={"name": canary})
    assert made.status_code == 201, made.text

    # 1. a backup now: the job's own record, the dump on the host volume
    ret = salt_run_cli.run("hecate.backup", "target=authentik_database", "env=lab")
    assert ret.returncode == 0 and ret.data["result"] is True, ret.data
    record, backup_id = ret.data["record"], ret.data["id"]
    assert ret.data["job"].startswith("hecate-backup/periodic-") and record["id"] == backup_id
    path = os.path.join(edge.backups_dir, record["file"])
    assert record["file"] == f"authentik-{backup_id}.dump" and os.path.exists(path)
    assert record["sha256"] == sha256(path) and record["size"] == os.path.getsize(path)
    assert edge.kv(f"hecate/backups/lab/authentik_database/{backup_id}") == record
    with open(path, "rb") as fh:
        assert fh.read(5) == b"PGDMP"  # pg_dump's custom format
    assert canary.encode() in pg.read_archive(path)["authentik_state"]  # the row is in the dump
    listed = salt_run_cli.run("hecate.backups", "env=lab", "target=authentik_database")
    assert backup_id in [r["id"] for r in listed.data["backups"]]
    on_edge = salt_cli.run("hecate_edge.backups", "target=authentik_database", minion_tgt="cloud")
    assert backup_id in [r["id"] for r in on_edge.data]

    # 2. the row deleted; a restore is refused while Authentik runs
    assert edge.authentik("DELETE", f"/core/groups/{made.json()['pk']}/").status_code == 204
    assert edge.group(canary) is None
    version = edge.job("hecate-authentik")["Version"]
    args = ("hecate.restore", "target=authentik_database", f"backup={backup_id}", "env=lab")
    refused = salt_run_cli.run(*args)
    assert refused.returncode != 0 and refused.data["result"] is False
    assert (f"restore of authentik_database from backup {backup_id} in environment 'lab': refused: Authentik "
            "(job hecate-authentik) is running") in refused.data["comment"]

    # 3. the preview says what it would do and does nothing
    preview = salt_run_cli.run(*args, "stop_authentik=True", "test=True")
    assert preview.returncode == 0 and preview.data["result"] is None, preview.data
    assert [s.split(" ")[0] for s in preview.data["steps"]] == ["stop", "run", "start"]
    assert f"check {record['file']} on volume hecate_backups against sha256 {record['sha256']}" in \
        preview.data["steps"][1]
    assert edge.job("hecate-authentik")["Version"] == version and edge.job("hecate-restore") is None
    on_edge = salt_cli.run("hecate_edge.restore", "target=authentik_database", f"backup={backup_id}", "test=True",
                           "stop_authentik=True", minion_tgt="cloud")
    assert on_edge.data["result"] is None and on_edge.data["steps"] == preview.data["steps"]

    # 4. stop_authentik=True: stopped, restored, started again; the row is back
    done = salt_run_cli.run(*args, "stop_authentik=True")
    assert done.returncode == 0 and done.data["result"] is True, done.data["comment"]
    assert done.data["steps"][0] == "stopped job hecate-authentik"
    assert done.data["steps"][-1].startswith("started job hecate-authentik again")
    assert edge.group(canary) is not None
    job = edge.job("hecate-authentik")
    assert job["Status"] == "running" and job["Stable"] is True and job["Version"] == version + 2
    assert edge.job("hecate-restore") is None

    # 5. retention: the archive made older than retention_days (30) goes with its record
    then = time.time() - 40 * 86400
    os.utime(path, (then, then))
    time.sleep(1.1)  # the next launch gets another id
    again = salt_cli.run("hecate_edge.backup", "target=authentik_database", minion_tgt="cloud")
    assert again.returncode == 0, again
    assert again.data["id"] != backup_id
    assert not os.path.exists(path)
    assert edge.kv(f"hecate/backups/lab/authentik_database/{backup_id}") is None
    ids = [r["id"] for r in salt_run_cli.run("hecate.backups", "env=lab").data["backups"]
           if r["target"] == "authentik_database"]
    assert again.data["id"] in ids and backup_id not in ids


def test_unknown_backups_and_targets_are_named(salt_run_cli):
    ret = salt_run_cli.run("hecate.restore", "target=authentik_database", "backup=20200101T000000Z", "env=lab",
                           "stop_authentik=True")
    assert ret.returncode != 0 and ret.data["result"] is False
    assert ("no backup 20200101T000000Z of authentik_database in environment 'lab' (no record at "
            "hecate/backups/lab/authentik_database/20200101T000000Z") in ret.data["comment"]
    ret = salt_run_cli.run("hecate.backups", "env=lab", "target=postgres")
    assert ret.data["result"] is False and "unknown backup target 'postgres'" in ret.data["comment"]
    ret = salt_run_cli.run("hecate.backup", "target=nginx", "env=lab")
    assert ret.data["result"] is False
    assert "backup of nginx in environment 'lab': 'nginx' is not among hecate:backup:targets" in ret.data["comment"]


def test_an_upgrade_is_backed_up_first_and_a_failed_one_restored(salt_cli, edge):
    version = edge.pillar["hecate"]["authentik"]["version"]
    assert salt_cli.run("hecate_edge.upgrade_check", minion_tgt="cloud").data["upgrade"] is False
    # a release that never starts (the lab has no Authentik simulator of it: its task fails)
    new = "2099.1.0"
    edge.write({"hecate": {"authentik": {"version": new}}}, salt_cli)
    try:
        check = salt_cli.run("hecate_edge.upgrade_check", minion_tgt="cloud").data
        assert check["upgrade"] is True and check["from"] == version and check["to"] == new

        # test=True: the backup it would take, nothing run
        children = edge.children()
        preview = salt_cli.run("state.apply", "hecate.edge.authentik", "test=True", minion_tgt="cloud")
        state = next(v for k, v in preview.data.items() if "backed up before an upgrade" in k)
        assert state["result"] is None
        assert state["changes"] == {"backup before upgrade": {"old": None, "new": (
            f"backup of authentik_database before the upgrade of Authentik from {version} to {new}")}}
        assert edge.children() == children

        # the real run: backed up, the upgrade fails and is auto-reverted, the database restored
        applied = salt_cli.run("state.apply", "hecate.edge.authentik", minion_tgt="cloud")
        assert applied.returncode != 0
        got = {k.split("_|-")[1]: v for k, v in applied.data.items()}
        backed = got["hecate edge authentik database backed up before an upgrade"]
        assert backed["result"] is True, backed
        backup_id = backed["changes"]["backup before upgrade"]["new"]
        assert edge.kv(f"hecate/backups/lab/authentik_database/{backup_id}")["id"] == backup_id
        assert got["hecate edge job authentik"]["result"] is False
        assert "auto-reverted" in got["hecate edge job authentik"]["comment"]
        restored = got["hecate edge authentik database restored after a failed upgrade"]
        assert restored["result"] is True, restored
        assert restored["changes"] == {"restored": {"old": None, "new": backup_id}}
        assert (f"Authentik's upgrade from {version} to {new} failed (job hecate-authentik is back on "
                f"{version}); its database was restored from backup {backup_id}") in restored["comment"]
        job = edge.job("hecate-authentik")
        assert job["Status"] == "running" and job["Stop"] is False
        assert job["TaskGroups"][0]["Tasks"][0]["Config"]["image"].endswith(f":{version}")

        # when the restore cannot be done, the failure says what to run
        edge.nomad.fault(method="POST", path=r"^/v1/job/hecate-restore$", status=500, body="lab: refused", times=1)
        try:
            applied = salt_cli.run("state.apply", "hecate.edge.authentik", minion_tgt="cloud")
        finally:
            edge.nomad.clear_faults()
        got = {k.split("_|-")[1]: v for k, v in applied.data.items()}
        backup_id = got["hecate edge authentik database backed up before an upgrade"]["changes"][
            "backup before upgrade"]["new"]
        restored = got["hecate edge authentik database restored after a failed upgrade"]
        assert restored["result"] is False
        assert ("Restore it with: salt-run hecate.restore target=authentik_database "
                f"backup={backup_id} env=lab stop_authentik=True") in restored["comment"]
        assert edge.job("hecate-authentik")["Stop"] is False  # started again all the same
    finally:
        edge.write(salt_cli=salt_cli)
