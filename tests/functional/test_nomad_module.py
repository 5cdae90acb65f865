"""
nomad execution module functions through Salt's loaders against the Nomad simulator
(and the Vault simulator for variable references): plan, register with EnforceIndex,
follow a rollout, job status and versions, allocations, evaluations, deployments
(blocking queries), revert, stop/purge and variables with check-and-set.
"""

import os
import uuid

import pytest
import requests
from saltfactories.utils.functional import Loaders

from lab import topology
from lab.sim import SimHandle

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

JOB = """
job "{job_id}" {{
  datacenters = ["dc1"]
  type        = "service"
  group "web" {{
    count = 1
    update {{
      max_parallel     = 1
      min_healthy_time = "2s"
      healthy_deadline = "1m"
      progress_deadline = "2m"
      auto_revert      = false
    }}
    task "web" {{
      driver = "docker"
      config {{
        image = "{image}"
      }}
      resources {{
        cpu    = 100
        memory = 64
      }}
    }}
  }}
}}
"""


@pytest.fixture(scope="module")
def nomad(tmp_path_factory):
    handle = SimHandle("nomad", str(tmp_path_factory.mktemp("nomad-module")), topology.nomad_options()).start()
    yield handle
    handle.stop()


@pytest.fixture(scope="module")
def loaders(salt_factories, nomad, vault_sim):
    overrides = {
        "file_client": "local",
        "module_dirs": [REPO],
        "hecate": {"connections": {"nomad": {"url": nomad.url},
                                   "vault": {"url": vault_sim.url, "token": vault_sim.root_token}}},
    }
    opts = salt_factories.salt_minion_daemon(f"nomad-module-{uuid.uuid4().hex[:6]}", overrides=overrides)
    return Loaders(opts.config.copy())


@pytest.fixture(autouse=True)
def _reset(loaders):
    yield
    loaders.reset_state()


@pytest.fixture
def job_id(nomad):
    job_id = f"t{uuid.uuid4().hex[:6]}-web"
    yield job_id
    requests.delete(f"{nomad.url}/v1/job/{job_id}?purge=true", timeout=10)


def image_of(job):
    return job["TaskGroups"][0]["Tasks"][0]["Config"]["image"]


def test_plan_register_follow_and_read_back(loaders, nomad, job_id):
    mod = loaders.modules.nomad
    job = mod.parse(hcl=JOB.format(job_id=job_id, image="nginx:1.27"))
    summary = mod.plan(job=job, summary=True)
    assert summary["JobModifyIndex"] == 0
    assert summary["changes"]["diff"] == "Added"
    assert summary["changes"]["placements"] == {"web": {"create": 1}}
    raw = mod.plan(job=job)
    assert raw["Diff"]["Type"] == "Added" and raw["Annotations"]["DesiredTGUpdates"]["web"]["Place"] == 1
    assert mod.job(job_id) is None and mod.job_status(job_id) is None  # a plan registers nothing

    reg = mod.register(job=job)  # EnforceIndex with the index read first (0: must not exist)
    assert reg["EvalID"] and reg["JobModifyIndex"] > 0
    with pytest.raises(Exception, match="Enforcing job modify index 0"):
        mod.register(job=job, modify_index=0)  # it exists now: the enforced index refuses
    rollout = mod.follow(job_id, eval_id=reg["EvalID"], timeout=60)
    assert rollout["status"] == "successful" and rollout["version"] == 0, rollout

    live = mod.job(job_id)
    assert live["Version"] == 0 and live["Stable"] is True and image_of(live) == "nginx:1.27"
    status = mod.job_status(job_id)
    assert status["Status"] == "running" and status["Version"] == 0 and status["Stop"] is False
    assert status["Allocations"] == {"running": 1}
    assert status["Deployment"]["Status"] == "successful" and status["Deployment"]["JobVersion"] == 0

    (alloc,) = mod.allocations(job_id)
    assert alloc["JobID"] == job_id and alloc["ClientStatus"] == "running"
    full = mod.allocation(alloc["ID"])
    assert full["ID"] == alloc["ID"] and full["Job"]["ID"] == job_id
    assert mod.allocation(str(uuid.uuid4())) is None

    evaluation = mod.evaluation(reg["EvalID"])
    assert evaluation["ID"] == reg["EvalID"] and evaluation["Status"] == "complete"
    blocking = mod.evaluation(reg["EvalID"], index=1, wait=1)
    assert blocking["Index"] >= 1 and blocking["Evaluation"]["ID"] == reg["EvalID"]

    dep = mod.deployment(job_id=job_id)
    assert dep["JobID"] == job_id and dep["Status"] == "successful"
    by_id = mod.deployment(deployment_id=dep["ID"], index=1, wait=1)
    assert by_id["Index"] >= 1 and by_id["Deployment"]["ID"] == dep["ID"]
    with pytest.raises(Exception, match="job_id or deployment_id is required"):
        mod.deployment()


def test_versions_revert_and_stop(loaders, nomad, job_id):
    mod = loaders.modules.nomad
    first = mod.register(hcl=JOB.format(job_id=job_id, image="nginx:1.27"))
    assert mod.follow(job_id, eval_id=first["EvalID"], timeout=60)["status"] == "successful"
    with pytest.raises(Exception, match="no stable version older than 0"):
        mod.revert(job_id)
    second = mod.register(hcl=JOB.format(job_id=job_id, image="nginx:1.28"))
    assert mod.follow(job_id, eval_id=second["EvalID"], timeout=60)["status"] == "successful"
    versions = mod.versions(job_id)
    assert [(v["Version"], v["Stable"]) for v in versions] == [(1, True), (0, True)]
    assert [image_of(v) for v in versions] == ["nginx:1.28", "nginx:1.27"]
    with_diffs = mod.versions(job_id, diffs=True)
    assert [v["Version"] for v in with_diffs["Versions"]] == [1, 0]
    assert with_diffs["Diffs"] and with_diffs["Diffs"][0]["Type"] == "Edited"

    # revert: to the newest stable version older than the current one, guarded by it
    reverted = mod.revert(job_id)
    assert reverted["EvalID"]
    live = mod.job(job_id)
    assert live["Version"] == 2 and image_of(live) == "nginx:1.27"
    with pytest.raises(Exception, match="Current job has version 2; enforcing version 1"):
        mod.revert(job_id, version=1, enforce_prior_version=1)  # the current version is 2 now
    assert mod.follow(job_id, timeout=60)["status"] == "successful"

    stopped = mod.stop(job_id)
    assert stopped["EvalID"]
    assert mod.job(job_id)["Stop"] is True and mod.job_status(job_id)["Stop"] is True
    mod.stop(job_id, purge=True)
    assert mod.job(job_id) is None
    with pytest.raises(Exception, match=f"Nomad job {job_id} does not exist"):
        mod.follow(job_id)


def test_variables_with_cas_and_vault_references(loaders, vault_sim):
    mod = loaders.modules.nomad
    path = f"nomad/jobs/t{uuid.uuid4().hex[:6]}"
    secret_path = f"hecate/tests/{uuid.uuid4().hex[:8]}"
    requests.post(f"{vault_sim.url}/v1/secret/data/{secret_path}", json={"data": {"key": "from-vault"}},
                  headers={"X-Vault-Token": vault_sim.root_token}, timeout=10).raise_for_status()
    meta = mod.var_put(path, {"plain": "1", "secret": {"vault": f"secret/{secret_path}", "key": "key"}}, cas=0)
    assert meta["Path"] == path and "Items" not in meta
    got = mod.var_get(path)
    assert got["Items"] == {"plain": "1", "secret": "from-vault"}
    assert [v["Path"] for v in mod.var_list(prefix=path)] == [path]
    assert "Items" not in mod.var_list(prefix=path)[0]
    with pytest.raises(Exception, match=f"Nomad variable {path}: check-and-set failed \\(expected modify index 0"):
        mod.var_put(path, {"plain": "2"}, cas=0)  # cas=0: must not exist
    index = got["ModifyIndex"]
    mod.var_put(path, {"plain": "2"}, cas=index)
    assert mod.var_get(path)["Items"] == {"plain": "2"}
    stale = f"Nomad variable {path}: check-and-set failed \\(expected modify index {index},"
    with pytest.raises(Exception, match=stale):
        mod.var_delete(path, cas=index)  # stale
    assert mod.var_delete(path) is True
    assert mod.var_get(path) is None and mod.var_list(prefix=path) == []
