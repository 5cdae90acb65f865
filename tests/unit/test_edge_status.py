"""
The status rows of the edge's own jobs (hecate_edge_status: ``salt-run hecate.status``'s
``edge_jobs``), from Nomad's answers as the API gives them (job, latest deployment, the
deployment's allocations; field names of nomad/structs/deployment.go).
"""

import hecate_edge_status
import hecate_nomad_client
from tests.unit.test_edge_jobs import shipped_pillar


class FakeNomad:
    """The reads hecate_edge_status makes, answered from dicts."""

    def __init__(self, jobs, deployments=None, allocs=None, fail=None):
        self.jobs, self.deployments, self.allocs, self.fail = jobs, deployments or {}, allocs or {}, fail or {}

    def job(self, job_id, namespace=None):
        if job_id in self.fail:
            raise hecate_nomad_client.NomadError("boom", status=403, text="Permission denied")
        return self.jobs.get(job_id)

    def job_deployment(self, job_id, namespace=None):
        return self.deployments.get(job_id), 7

    def deployment_allocations(self, dep_id, namespace=None):
        return self.allocs.get(dep_id, [])


def authentik_job(version, tag, stable=True):
    image = f"ghcr.io/goauthentik/server:{tag}"
    return {"ID": "hecate-authentik", "Type": "service", "Version": version, "Stable": stable, "Status": "running",
            "Stop": False, "TaskGroups": [
                {"Name": "server", "Tasks": [{"Name": "server", "Config": {"image": image}}]},
                {"Name": "worker", "Tasks": [{"Name": "worker", "Config": {"image": image}}]}]}


def deployment(dep_id, version, status, description, groups):
    return {"ID": dep_id, "JobVersion": version, "Status": status, "StatusDescription": description,
            "TaskGroups": groups}


def state(desired_canaries=0, placed=None, promoted=False):
    return {"DesiredCanaries": desired_canaries, "PlacedCanaries": placed, "Promoted": promoted,
            "DesiredTotal": 1, "HealthyAllocs": 1}


def test_a_job_after_an_upgrade():
    client = FakeNomad({"hecate-authentik": authentik_job(3, "2025.10.4")}, {"hecate-authentik": deployment(
        "0123456789ab", 3, "successful", "Deployment completed successfully",
        {"server": state(), "worker": state()})})
    row = hecate_edge_status.job_row(client, "hecate-authentik")
    assert row["version"] == 3 and row["stable"] is True and row["ok"] is True
    assert row["tags"] == {"server/server": "2025.10.4", "worker/worker": "2025.10.4"}
    assert row["deployment"] == {"id": "01234567", "job_version": 3, "status": "successful",
                                 "description": "Deployment completed successfully"}
    assert row["canaries"] == {}
    assert row["comment"] == ("hecate-authentik version 3 (2025.10.4): deployment 01234567 of version 3 successful "
                              "(Deployment completed successfully)")


def test_canaries_waiting_for_a_promotion_and_a_failed_upgrade():
    waiting = deployment("feedfacecafe", 4, "running", "Deployment is running but requires manual promotion",
                         {"server": state(1, ["c1"]), "worker": state(1, ["c2"])})
    client = FakeNomad({"hecate-authentik": authentik_job(4, "2025.10.5", stable=False)}, {"hecate-authentik": waiting},
                       {"feedfacecafe": [{"ID": "c1", "DeploymentStatus": {"Healthy": True, "Canary": True}},
                                         {"ID": "c2", "DeploymentStatus": {"Healthy": None, "Canary": True}},
                                         {"ID": "old", "DeploymentStatus": {"Healthy": True}}]})
    row = hecate_edge_status.job_row(client, "hecate-authentik")
    assert row["canaries"] == {"server": {"desired": 1, "placed": 1, "healthy": 1, "promoted": False},
                               "worker": {"desired": 1, "placed": 1, "healthy": 0, "promoted": False}}
    assert row["ok"] is False
    assert "canaries group server: 1/1 placed, 1 healthy, not promoted; group worker: 1/1 placed, 0 healthy" \
        in row["comment"]
    assert row["comment"].endswith("the running version is not stable (its deployment has not succeeded)")
    # a failed upgrade that Nomad reverted: the job runs the rollback version (stable again)
    reverted = FakeNomad({"hecate-authentik": authentik_job(6, "2025.10.4")}, {"hecate-authentik": deployment(
        "aaaabbbbcccc", 6, "successful", "Deployment completed successfully", {"server": state()})})
    row = hecate_edge_status.job_row(reverted, "hecate-authentik")
    assert row["ok"] is True and row["tags"]["server/server"] == "2025.10.4" and row["version"] == 6


def test_rows_for_every_job_hecate_deploys():
    pillar = shipped_pillar()
    backup = {"ID": "hecate-backup", "Type": "batch", "Periodic": {"Enabled": True}, "Version": 0, "Stable": False,
              "Status": "running", "Stop": False, "TaskGroups": []}
    client = FakeNomad({"hecate-authentik": authentik_job(1, "2025.10.3"), "hecate-backup": backup},
                       fail={"hecate-caddy"})
    out = hecate_edge_status.job_rows(client, pillar)
    assert [r["name"] for r in out["jobs"]] == ["postgresql", "authentik", "caddy", "backup"]
    by = {r["name"]: r for r in out["jobs"]}
    assert by["postgresql"] == {"job": "hecate-postgresql", "name": "postgresql", "present": False, "ok": False,
                                "comment": "hecate-postgresql: not deployed"}
    assert by["authentik"]["ok"] is True and by["authentik"]["comment"].endswith(": running, no deployment")
    assert by["caddy"]["comment"] == "hecate-caddy: Nomad answered 403: Permission denied"
    assert by["backup"]["ok"] is True and by["backup"]["comment"] == "hecate-backup version 0: periodic, running"
    assert out["ok"] is False


def test_from_edges_takes_the_first_answer():
    good = {"ok": True, "jobs": [{"job": "hecate-caddy", "ok": True}]}
    out = hecate_edge_status.from_edges({"edge-2": good, "edge-1": "Minion did not return. [No response]"})
    assert out == {"ok": True, "jobs": good["jobs"], "from": "edge-2",
                   "errors": ["edge-1: Minion did not return. [No response]"]}
    assert hecate_edge_status.from_edges({}) == {"ok": False, "jobs": [],
                                                 "errors": ["no minion with role hecate-edge answered"]}
