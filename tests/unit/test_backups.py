"""
_utils/hecate_backups.py against the lab's simulators, without Salt daemons: Vault, Consul
(ACLs on, the backup job's own token) and Nomad running the edge's real job files (rendered
as nomad_job.running renders them, tests/unit/test_edge_jobs.py) - PostgreSQL's stand-in, the
periodic backup job launched by Nomad's periodic force, its shell tasks run by the lab's ``sh``
runner (the scripts of the job file, with the lab's pg_dump/pg_restore), the record it writes
in Consul KV, the one-off restore job, the retention.

Sources: nomad/periodic_endpoint.go Periodic.Force and nomad/periodic.go deriveJob (the child
``<id>/periodic-<unix time>``); Consul's KV API (PUT /v1/kv/:key answers ``true``, DELETE);
PostgreSQL's pg_restore ``--clean``/``--if-exists``/``--single-transaction``.
"""

import copy
import datetime
import hashlib
import json
import os
import time

import pytest
import salt.exceptions

import hecate_backups
import hecate_consul_client
import hecate_edge_jobs
import hecate_nomad_client
from lab import topology
from lab.sim import SimHandle, pg
from tests.unit import test_edge_jobs as edge_jobs

DB_PASSWORD = "lab-db-" + "p" * 20
KNOWN_ROW = b'{"name": "backup-canary", "pk": 42}'


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    secrets = topology.new_lab_secrets()
    root = tmp_path_factory.mktemp("backups")
    vault = SimHandle("vault", str(root / "vault"), topology.vault_options(secrets)).start()
    consul = SimHandle("consul", str(root / "consul"), topology.consul_options(secrets)).start()
    options = topology.nomad_options(consul_url=consul.url, consul_token=secrets["nomad_consul_token"],
                                     lab_secrets=secrets, vault_url=vault.url,
                                     vault_token=secrets["nomad_vault_token"], data_dir=str(root / "nomad"))
    nomad = SimHandle("nomad", str(root / "nomad-sim"), options).start()
    topology.seed_vault(vault.url, secrets["vault_root_token"], {
        ("secret", "hecate/authentik"): {"db_password": DB_PASSWORD},
        ("secret", "hecate/backup"): {"consul_token": secrets["consul_backup_token"]},
    })
    handle = Lab(root, secrets, vault, consul, nomad)
    yield handle
    for sim in (nomad, consul, vault):
        sim.stop()


class Lab:
    def __init__(self, root, secrets, vault, consul, nomad):
        self.root, self.secrets, self.vault_sim, self.consul_sim, self.nomad_sim = root, secrets, vault, consul, nomad
        self.nomad = hecate_nomad_client.NomadClient({"url": nomad.url, "retries": 0}, token=secrets["nomad_token"])
        self.consul = hecate_consul_client.ConsulClient({"url": consul.url}, token=secrets["consul_token"])
        self.pillar = edge_jobs.shipped_pillar("lab")
        self.pillar["hecate"]["connections"]["consul"]["url"] = consul.url
        self.pillar["hecate"]["deployment"] = {"min_healthy_time": "1s", "healthy_deadline": "5m",
                                               "progress_deadline": "10m"}

    def volume(self, name):
        return os.path.join(self.root, "nomad", "volumes", name)

    @property
    def pgdata(self):
        return os.path.join(self.volume("hecate_postgres"), "pgdata")

    def relation(self, name="known_rows"):
        return pg.relation_path(self.pgdata, "authentik", name)

    def register(self, name, pillar=None, hcl=None):
        hcl = hcl or edge_jobs.render(name, pillar or self.pillar)
        job = self.nomad.parse(hcl)
        reply = self.nomad.register(job)
        return job, reply

    def deploy(self, name, pillar=None, hcl=None):
        job, reply = self.register(name, pillar, hcl)
        after = self.nomad.job(job["ID"])
        outcome = hecate_nomad_client.Rollout(self.nomad, job["ID"], timeout=60).follow(
            reply["EvalID"], after["Version"], expect_deployment=True, register_index=reply["JobModifyIndex"])
        assert outcome["status"] == "successful", outcome
        return after

    def render_restore(self, record):
        return edge_jobs.render("restore", self.pillar, context={"restore": record})


@pytest.fixture(scope="module")
def edge(lab):
    """PostgreSQL with a known row, and the backup job, as the edge deploys them."""
    lab.deploy("postgresql")
    with open(lab.relation(), "wb") as fh:
        fh.write(KNOWN_ROW)
    lab.register("backup")
    return lab


def sha256(path):
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


# -- pure functions -------------------------------------------------------------------------------------
def test_launch_ids_and_keys():
    stamp = int(datetime.datetime(2026, 1, 1, 3, 0, tzinfo=datetime.timezone.utc).timestamp())
    assert hecate_backups.launch_id(f"hecate-backup/periodic-{stamp}") == "20260101T030000Z"
    with pytest.raises(hecate_backups.BackupError, match="not a launch of a periodic job"):
        hecate_backups.launch_id("hecate-backup")
    assert hecate_edge_jobs.backup_key("prod", "caddy_data", "20260101T030000Z") == \
        "hecate/backups/prod/caddy_data/20260101T030000Z"
    assert hecate_edge_jobs.backup_file("authentik_database", "20260101T030000Z") == "authentik-20260101T030000Z.dump"
    assert hecate_backups.restore_command("prod", "authentik_database", "20260101T030000Z") == (
        "salt-run hecate.restore target=authentik_database backup=20260101T030000Z env=prod stop_authentik=True")


def test_a_record_that_the_job_did_not_write_is_refused():
    good = {"id": "20260101T030000Z", "target": "authentik_database", "file": "authentik-20260101T030000Z.dump",
            "sha256": "a" * 64, "node": "edge-1", "volume": "hecate_backups"}
    assert hecate_backups.check_record(dict(good), "authentik_database", "20260101T030000Z")
    for field, value in (("file", 'x"; rm -rf /; "'), ("node", "edge 1"), ("sha256", "zz"),
                         ("volume", "$(id)"), ("target", "caddy_data")):
        with pytest.raises(hecate_backups.BackupError, match="not one the backup job wrote"):
            hecate_backups.check_record(dict(good, **{field: value}), "authentik_database", "20260101T030000Z")


def test_upgrade_check_compares_the_running_release_with_pillar():
    pillar = edge_jobs.shipped_pillar("lab")

    class FakeNomad:
        def __init__(self, job):
            self.found = job

        def job(self, job_id):
            return self.found

    job = {"Version": 3, "TaskGroups": [{"Tasks": [{"Name": "server",
                                                    "Config": {"image": "ghcr.io/goauthentik/server:2025.6.1"}}]}]}
    out = hecate_backups.upgrade_check(FakeNomad(job), pillar)
    assert out["upgrade"] is True and out["from"] == "2025.6.1"
    assert out["to"] == pillar["hecate"]["authentik"]["version"]
    pillar["hecate"]["authentik"]["version"] = "2025.6.1"
    assert hecate_backups.upgrade_check(FakeNomad(job), pillar)["upgrade"] is False
    assert hecate_backups.upgrade_check(FakeNomad(None), pillar)["upgrade"] is False
    assert hecate_backups.upgrade_check(FakeNomad(dict(job, Stop=True)), pillar)["upgrade"] is False
    assert hecate_backups.can_back_up(pillar) is None
    pillar["hecate"]["backup"]["targets"] = ["caddy_data"]
    assert "is not deployed" in hecate_backups.can_back_up(pillar)


# -- against the simulators --------------------------------------------------------------------------------
def test_nothing_to_run_is_an_error_naming_the_target(lab):
    pillar = copy.deepcopy(lab.pillar)
    pillar["hecate"]["backup"]["enabled"] = False
    with pytest.raises(hecate_backups.BackupError, match="backup of authentik_database in environment 'lab': "
                                                         "backups are not enabled"):
        hecate_backups.run(lab.nomad, lab.consul, pillar, "authentik_database")
    pillar = copy.deepcopy(lab.pillar)
    pillar["hecate"]["backup"]["targets"] = ["caddy_data"]
    with pytest.raises(hecate_backups.BackupError, match="'authentik_database' is not among hecate:backup:targets"):
        hecate_backups.run(lab.nomad, lab.consul, pillar, "authentik_database")
    pillar = copy.deepcopy(lab.pillar)
    pillar["hecate"]["nomad"]["job_prefix"] = "nowhere-"
    with pytest.raises(hecate_backups.BackupError, match="job nowhere-backup is not registered in Nomad"):
        hecate_backups.run(lab.nomad, lab.consul, pillar, "authentik_database")


def test_a_run_now_writes_the_dump_and_its_record(edge):
    out = hecate_backups.run(edge.nomad, edge.consul, edge.pillar, "authentik_database", timeout=60)
    record = out["record"]
    assert out["job"] == f"hecate-backup/periodic-{out['job'].rsplit('-', 1)[1]}"
    assert record["id"] == out["id"] == hecate_backups.launch_id(out["job"])
    path = os.path.join(edge.volume("hecate_backups"), record["file"])
    assert record["file"] == f"authentik-{out['id']}.dump" and os.path.exists(path)
    assert record["size"] == os.path.getsize(path) and record["sha256"] == sha256(path)
    assert record["format"] == "pg_dump custom" and record["node"] == "lab-local"
    assert record["volume"] == "hecate_backups" and record["env"] == "lab" and record["job"] == out["job"]
    assert record["when"] == datetime.datetime.strptime(out["id"], "%Y%m%dT%H%M%SZ").strftime("%Y-%m-%dT%H:%M:%SZ")
    with open(path, "rb") as fh:
        assert fh.read(5) == b"PGDMP"  # pg_dump's custom format
    # one run, one id for every target
    assert set(out["records"]) == {"caddy_data", "authentik_database", "nginx_configs"}
    assert {r["id"] for r in out["records"].values()} == {out["id"]}
    assert out["records"]["caddy_data"]["file"] == f"caddy-{out['id']}.tar.gz"
    listed = hecate_backups.records(edge.consul, "lab", "authentik_database")
    assert listed[0]["id"] == out["id"] and listed[0]["key"] == f"hecate/backups/lab/authentik_database/{out['id']}"
    # the child job ran to completion, as a batch job does; the periodic job counts it
    child = edge.nomad.job(out["job"])
    assert child["ParentID"] == "hecate-backup" and child["Status"] == "dead" and child["Periodic"] is None
    edge.last = out


def test_the_record_task_needs_its_consul_token(edge):
    """The job records with hecate:backup:consul_token only: another token is refused by Consul's ACLs."""
    topology.seed_vault(edge.vault_sim.url, edge.secrets["vault_root_token"],
                        {("secret", "hecate/backup"): {"consul_token": edge.secrets["consul_agent_token"]}})
    try:
        with pytest.raises(hecate_backups.BackupError) as err:
            hecate_backups.run(edge.nomad, edge.consul, edge.pillar, "authentik_database", timeout=60)
        assert "task record" in str(err.value) and "failed" in str(err.value), str(err.value)
    finally:
        topology.seed_vault(edge.vault_sim.url, edge.secrets["vault_root_token"],
                            {("secret", "hecate/backup"): {"consul_token": edge.secrets["consul_backup_token"]}})


def test_restore_brings_back_the_known_row(edge):
    backup_id = edge.last["id"]
    os.unlink(edge.relation())
    preview = hecate_backups.restore(edge.nomad, edge.consul, edge.pillar, "authentik_database", backup_id,
                                     edge.render_restore, test=True)
    assert preview["result"] is None and not os.path.exists(edge.relation())
    assert len(preview["steps"]) == 1 and "pg_restore --clean --if-exists --single-transaction" in preview["steps"][0]
    assert edge.nomad.job("hecate-restore") is None
    done = hecate_backups.restore(edge.nomad, edge.consul, edge.pillar, "authentik_database", backup_id,
                                  edge.render_restore)
    assert done["result"] is True, done
    with open(edge.relation(), "rb") as fh:
        assert fh.read() == KNOWN_ROW
    assert edge.nomad.job("hecate-restore") is None  # the one-off job is gone


def test_restore_refuses_while_authentik_runs_unless_told_to_stop_it(edge):
    """A stand-in hecate-authentik job (no runner): running, it refuses; stop_authentik=True stops and starts it."""
    hcl = """
job "hecate-authentik" {
  datacenters = ["dc1"]
  group "server" {
    update {
      min_healthy_time = "1s"
    }
    task "server" {
      driver = "docker"
      config {
        image = "lab/authentik-stand-in:1"
      }
    }
  }
}
"""
    before = edge.deploy("authentik", hcl=hcl)
    backup_id = edge.last["id"]
    with open(edge.relation(), "wb") as fh:
        fh.write(b"changed")
    with pytest.raises(hecate_backups.BackupError, match=(
            f"restore of authentik_database from backup {backup_id} in environment 'lab': refused: Authentik "
            r"\(job hecate-authentik\) is running")):
        hecate_backups.restore(edge.nomad, edge.consul, edge.pillar, "authentik_database", backup_id,
                               edge.render_restore)
    preview = hecate_backups.restore(edge.nomad, edge.consul, edge.pillar, "authentik_database", backup_id,
                                     edge.render_restore, stop_authentik=True, test=True)
    assert [s.split(" ")[0] for s in preview["steps"]] == ["stop", "run", "start"]
    assert edge.nomad.job("hecate-authentik")["Version"] == before["Version"]
    done = hecate_backups.restore(edge.nomad, edge.consul, edge.pillar, "authentik_database", backup_id,
                                  edge.render_restore, stop_authentik=True)
    assert done["steps"][0] == "stopped job hecate-authentik"
    assert done["steps"][-1].startswith("started job hecate-authentik again")
    with open(edge.relation(), "rb") as fh:
        assert fh.read() == KNOWN_ROW
    job = edge.nomad.job("hecate-authentik")
    assert job["Stop"] is False and job["Status"] == "running" and job["Version"] == before["Version"] + 2
    edge.nomad.deregister("hecate-authentik", purge=True)


def test_restore_errors_name_the_target_and_the_backup(edge):
    with pytest.raises(hecate_backups.BackupError, match=r"no backup 20200101T000000Z of authentik_database in "
                                                         r"environment 'lab' \(no record at "
                                                         r"hecate/backups/lab/authentik_database/20200101T000000Z"):
        hecate_backups.restore(edge.nomad, edge.consul, edge.pillar, "authentik_database", "20200101T000000Z",
                               edge.render_restore)
    with pytest.raises(hecate_backups.BackupError, match="hecate restores authentik_database only"):
        hecate_backups.restore(edge.nomad, edge.consul, edge.pillar, "caddy_data", edge.last["id"],
                               edge.render_restore)
    with pytest.raises(hecate_backups.BackupError, match="is not a backup id"):
        hecate_backups.restore(edge.nomad, edge.consul, edge.pillar, "authentik_database", "latest",
                               edge.render_restore)


def test_a_changed_archive_is_not_restored(edge):
    backup_id = edge.last["id"]
    path = os.path.join(edge.volume("hecate_backups"), edge.last["record"]["file"])
    with open(path, "rb") as fh:
        original = fh.read()
    with open(edge.relation(), "wb") as fh:
        fh.write(b"current")
    try:
        with open(path, "ab") as fh:
            fh.write(b"tampered")
        with pytest.raises(hecate_backups.BackupError, match="job hecate-restore failed") as err:
            hecate_backups.restore(edge.nomad, edge.consul, edge.pillar, "authentik_database", backup_id,
                                   edge.render_restore)
        assert "Exit Code: 1" in str(err.value)
        with open(edge.relation(), "rb") as fh:
            assert fh.read() == b"current"  # nothing restored
    finally:
        with open(path, "wb") as fh:
            fh.write(original)


def test_retention_removes_old_archives_with_their_records(edge):
    old = edge.last
    path = os.path.join(edge.volume("hecate_backups"), old["record"]["file"])
    then = time.time() - 40 * 86400  # older than retention_days (30)
    os.utime(path, (then, then))
    time.sleep(1.1)  # a new launch second, so a new id
    new = hecate_backups.run(edge.nomad, edge.consul, edge.pillar, "authentik_database", timeout=60)
    assert new["id"] != old["id"]
    assert not os.path.exists(path)
    assert edge.consul.get_json(f"hecate/backups/lab/authentik_database/{old['id']}") is None
    # the other targets' archives of that run are younger: kept
    assert edge.consul.get_json(f"hecate/backups/lab/caddy_data/{old['id']}") is not None
    ids = [r["id"] for r in hecate_backups.records(edge.consul, "lab", "authentik_database")]
    assert new["id"] in ids and old["id"] not in ids


def test_errors_are_command_execution_errors():
    assert issubclass(hecate_backups.BackupError, salt.exceptions.CommandExecutionError)
    assert json.dumps(hecate_edge_jobs.BACKUP_TARGETS)
