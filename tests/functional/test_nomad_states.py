"""
nomad_job / nomad_variable states and the bionicgpt.jobs SLS through Salt's functional
loaders, against the Nomad simulator (and the Vault simulator for references).

Writes are counted in the simulator's request log: parse, validate and plan are POSTs
that change nothing, so they are not writes here.
"""

import json
import os
import re
import uuid

import pytest
import requests
import yaml

from lab import topology
from lab.sim import SimHandle
from tests.conftest import REPO

FIXTURES = os.path.join(REPO, "tests", "fixtures")
READ_ONLY_POSTS = re.compile(r"^/v1/(jobs/parse|validate/job|job/[^/]+/plan)$")
SECRET_VALUE = "s3cr3t-Value-For-Tests"


def nomad_writes(sim):
    return [r for r in sim.writes() if not READ_ONLY_POSTS.match(r["path"])]


def registers(sim, job_id):
    return [r for r in sim.writes() if r["method"] in ("POST", "PUT") and r["path"] in
            (f"/v1/job/{job_id}", "/v1/jobs", f"/v1/job/{job_id}/revert")]


@pytest.fixture(scope="module")
def nomad(tmp_path_factory, lab_secrets):
    """
    A simulator of our own (this module injects pillar images the client refuses), with ACLs
    on like the lab's: the minion carries hecate's token (topology.salt_opts), the test's own
    requests the management token (``.headers``).
    """
    handle = SimHandle("nomad", str(tmp_path_factory.mktemp("nomad")),
                       topology.nomad_options(lab_secrets=lab_secrets)).start()
    handle.token = lab_secrets["nomad_management_token"]
    yield handle
    handle.stop()


class RuntimePillar:
    """
    The lab_runtime pillar file of this module's minion: the simulators' addresses plus
    per-test overrides (deep-merged by Salt's pillar compiler, like any pillar layer).
    ``state.single`` passes a ``pillar=`` override on to the state function, so tests
    change pillar here instead; every state run compiles the pillar afresh.
    """

    def __init__(self, path, addresses):
        self.path, self.addresses = path, addresses
        self.set()

    def set(self, overrides=None):
        data = topology.runtime_pillar(self.addresses)
        data.update(overrides or {})
        os.makedirs(self.path, exist_ok=True)
        with open(os.path.join(self.path, "lab_runtime.sls"), "w", encoding="utf-8") as fh:
            yaml.safe_dump(data, fh)


@pytest.fixture(scope="module")
def runtime_pillar(tmp_path_factory, nomad, vault_sim):
    return RuntimePillar(str(tmp_path_factory.mktemp("pillar-runtime")), {"nomad": nomad.url, "vault": vault_sim.url})


@pytest.fixture(autouse=True)
def reset_pillar(runtime_pillar):
    runtime_pillar.set()
    yield
    runtime_pillar.set()


@pytest.fixture(scope="module")
def minion_opts(salt_factories, runtime_pillar, lab_secrets):
    runtime = runtime_pillar.path
    overrides = {
        "file_client": "local",
        "file_roots": topology.file_roots(),
        "pillar_roots": topology.pillar_roots(runtime),
        "fileserver_followsymlinks": True,
        "module_dirs": [REPO],
        "grains": dict(topology.MINIONS["local"]),
    }
    overrides.update(topology.salt_opts(lab_secrets))
    factory = salt_factories.salt_minion_daemon(f"nomad-functional-{uuid.uuid4().hex[:6]}", overrides=overrides)
    return factory.config.copy()


@pytest.fixture(scope="module")
def loaders(minion_opts):
    from saltfactories.utils.functional import Loaders  # pylint: disable=import-outside-toplevel

    return Loaders(minion_opts)


@pytest.fixture(autouse=True)
def reset_loaders_state(loaders):
    try:
        yield
    finally:
        loaders.reset_state()


@pytest.fixture
def job_prefix(nomad):
    """A fresh job name prefix; the test's jobs are purged afterwards (the node is shared)."""
    prefix = f"t{uuid.uuid4().hex[:6]}-"
    yield prefix
    for job in requests.get(f"{nomad.url}/v1/jobs?prefix={prefix}", timeout=10, headers=nomad.headers).json():
        requests.delete(f"{nomad.url}/v1/job/{job['ID']}?purge=true", timeout=10, headers=nomad.headers)


def db_pillar(image=None, auto_revert=True):
    pillar = {"bionicgpt": {"jobs": {"database": {"auto_revert": auto_revert}}}}
    if image:
        pillar["bionicgpt"]["jobs"]["database"]["postgres"] = {"image": image}
    return pillar


def single(ret):
    return ret.raw[next(iter(ret.raw))] if hasattr(ret, "raw") else ret


def run_db(loaders, runtime_pillar, job_id, test=False, pillar=None, **kwargs):
    kwargs.setdefault("timeout", 60)
    runtime_pillar.set(pillar or db_pillar())
    return single(loaders.states.nomad_job.running(
        name=job_id,
        source="salt://bionicgpt/jobs/database.nomad.hcl.j2",
        context={"job_id": job_id},
        test=test,
        **kwargs,
    ))


def current(nomad, job_id):
    return requests.get(f"{nomad.url}/v1/job/{job_id}", timeout=10, headers=nomad.headers).json()


@pytest.mark.parametrize("test_mode", [True, False], ids=["test", "apply"])
def test_running_creates_job_then_converges(loaders, runtime_pillar, nomad, job_prefix, test_mode):
    job_id = job_prefix + "database"
    nomad.clear_requests()
    ret = run_db(loaders, runtime_pillar, job_id, test=test_mode)
    changes = ret["changes"]
    assert changes["diff"] == "Added"
    assert changes["placements"] == {"database": {"create": 1}}
    assert changes["version"] == {"old": None, "new": 0}
    assert changes["fields"]["group database:task postgres:Config:image"]["new"] == "pgvector/pgvector:0.8.0-pg16"
    assert "forces create" in changes["annotations"]["group database:task postgres"]
    if test_mode:
        assert ret["result"] is None, ret
        assert "would be created" in ret["comment"]
        assert "+ group database (1 create)" in ret["comment"]
        assert "+ task postgres: pgvector/pgvector:0.8.0-pg16" in ret["comment"]
        assert nomad_writes(nomad) == []
        assert requests.get(f"{nomad.url}/v1/job/{job_id}", timeout=10, headers=nomad.headers).status_code == 404
        return
    assert ret["result"] is True, ret["comment"]
    assert changes["deployment"]["status"] == "successful"
    assert len(registers(nomad, job_id)) == 1
    job = current(nomad, job_id)
    assert job["Version"] == 0 and job["Stable"] is True
    # the register call carried EnforceIndex with the plan's index (0: must not exist)
    register = registers(nomad, job_id)[0]
    assert register["path"] == f"/v1/job/{job_id}"

    nomad.clear_requests()
    again = run_db(loaders, runtime_pillar, job_id)
    assert again["result"] is True and again["changes"] == {}, again
    assert "up to date (version 0)" in again["comment"]
    assert nomad_writes(nomad) == []


@pytest.mark.parametrize("test_mode", [True, False], ids=["test", "apply"])
def test_image_update_is_predicted_then_applied(loaders, runtime_pillar, nomad, job_prefix, test_mode):
    job_id = job_prefix + "database"
    assert run_db(loaders, runtime_pillar, job_id)["result"] is True
    nomad.clear_requests()
    pillar = db_pillar(image="pgvector/pgvector:0.8.1-pg16")
    preview = run_db(loaders, runtime_pillar, job_id, test=True, pillar=pillar)
    assert preview["result"] is None
    assert preview["changes"]["fields"] == {
        "group database:task postgres:Config:image": {"old": "pgvector/pgvector:0.8.0-pg16",
                                                      "new": "pgvector/pgvector:0.8.1-pg16"}}
    assert "group database:task postgres:Config (forces create/destroy update):" in preview["comment"]
    assert preview["changes"]["placements"] == {"database": {"create/destroy update": 1}}
    assert preview["changes"]["annotations"] == {"group database:task postgres": ["forces create/destroy update"]}
    assert "~ image: 'pgvector/pgvector:0.8.0-pg16' -> 'pgvector/pgvector:0.8.1-pg16'" in preview["comment"]
    assert nomad_writes(nomad) == []
    if test_mode:
        return
    ret = run_db(loaders, runtime_pillar, job_id, pillar=pillar)
    assert ret["result"] is True, ret["comment"]
    for key in ("diff", "fields", "placements", "annotations", "version"):
        assert ret["changes"][key] == preview["changes"][key]
    assert current(nomad, job_id)["Version"] == 1
    nomad.clear_requests()
    assert run_db(loaders, runtime_pillar, job_id, pillar=pillar)["changes"] == {}
    assert nomad_writes(nomad) == []


def test_failed_deployment_nomad_auto_reverts(loaders, runtime_pillar, nomad, job_prefix):
    job_id = job_prefix + "database"
    assert run_db(loaders, runtime_pillar, job_id)["result"] is True
    ret = run_db(loaders, runtime_pillar, job_id, pillar=db_pillar(image="pgvector/pgvector:refused-1"))
    assert ret["result"] is False
    comment = ret["comment"]
    assert "deployment failed: Failed due to unhealthy allocations - rolling back to job version 0" in comment
    assert "task postgres" in comment
    assert "Driver Failure: Failed to pull `pgvector/pgvector:refused-1`" in comment
    assert "Not Restarting: Exceeded allowed attempts 3" in comment
    assert "Nomad auto-reverted to version 0 (now version 2): deployment successful" in comment
    assert ret["changes"]["revert"]["by"] == "nomad auto_revert"
    job = current(nomad, job_id)
    assert job["Version"] == 2 and job["Stable"] is True
    tasks = job["TaskGroups"][0]["Tasks"]
    assert tasks[0]["Config"]["image"] == "pgvector/pgvector:0.8.0-pg16"


@pytest.mark.parametrize("test_mode", [True, False], ids=["test", "apply"])
def test_failed_deployment_reverted_by_the_state(loaders, runtime_pillar, nomad, job_prefix, test_mode):
    job_id = job_prefix + "database"
    assert run_db(loaders, runtime_pillar, job_id, pillar=db_pillar(auto_revert=False))["result"] is True
    bad = db_pillar(image="pgvector/pgvector:refused-2", auto_revert=False)
    nomad.clear_requests()
    if test_mode:
        ret = run_db(loaders, runtime_pillar, job_id, test=True, pillar=bad, revert_on_failure=True)
        assert ret["result"] is None
        assert nomad_writes(nomad) == []
        return
    ret = run_db(loaders, runtime_pillar, job_id, pillar=bad, revert_on_failure=True)
    assert ret["result"] is False
    assert "Failed due to unhealthy allocations" in ret["comment"]
    assert "rolling back" not in ret["comment"]
    assert "Driver Failure: Failed to pull `pgvector/pgvector:refused-2`" in ret["comment"]
    assert "reverted job" in ret["comment"] and "to stable version 0 (now version 2)" in ret["comment"]
    assert ret["changes"]["revert"] == {"to_version": 0, "by": "hecate", "new_version": 2, "status": "successful"}
    job = current(nomad, job_id)
    assert job["Version"] == 2 and job["Stable"] is True
    assert job["TaskGroups"][0]["Tasks"][0]["Config"]["image"] == "pgvector/pgvector:0.8.0-pg16"
    revert_calls = [r for r in nomad.writes() if r["path"] == f"/v1/job/{job_id}/revert"]
    assert len(revert_calls) == 1


def test_failed_version_without_revert_is_not_hidden_and_reverted_state_restores(
    loaders, runtime_pillar, nomad, job_prefix
):
    job_id = job_prefix + "database"
    assert run_db(loaders, runtime_pillar, job_id, pillar=db_pillar(auto_revert=False))["result"] is True
    bad = db_pillar(image="pgvector/pgvector:refused-3", auto_revert=False)
    first = run_db(loaders, runtime_pillar, job_id, pillar=bad)
    assert first["result"] is False and "not reverted" not in first["comment"]
    assert current(nomad, job_id)["Version"] == 1
    # a re-run with the same (bad) spec has no diff but must not claim success
    nomad.clear_requests()
    second = run_db(loaders, runtime_pillar, job_id, pillar=bad)
    assert second["result"] is False and second["changes"] == {}
    assert "its deployment" in second["comment"] and "failed" in second["comment"]
    assert nomad_writes(nomad) == []
    # the onfail path: back to the last stable version
    preview = loaders.states.nomad_job.reverted(name=job_id, test=True).raw
    preview = preview[next(iter(preview))]
    assert preview["result"] is None and preview["changes"]["version"]["old"] == 1
    assert nomad_writes(nomad) == []
    ret = loaders.states.nomad_job.reverted(name=job_id, timeout=60).raw
    ret = ret[next(iter(ret))]
    assert ret["result"] is True, ret["comment"]
    job = current(nomad, job_id)
    assert job["Version"] == 2 and job["Stable"] is True
    again = loaders.states.nomad_job.reverted(name=job_id).raw
    again = again[next(iter(again))]
    assert again["result"] is True and again["changes"] == {}


def test_enforce_index_conflict_registers_nothing(loaders, runtime_pillar, nomad, job_prefix, monkeypatch):
    """Someone registers the job between our plan and our register: Nomad refuses ours."""
    import hecate_nomad_client  # the module object the loader's state uses (_utils on sys.path)

    job_id = job_prefix + "database"
    assert run_db(loaders, runtime_pillar, job_id)["result"] is True
    original = hecate_nomad_client.NomadClient.plan

    def plan_then_race(self, job, *args, **kwargs):
        result = original(self, job, *args, **kwargs)
        other = json.loads(json.dumps(current(nomad, job_id)))
        other["Meta"] = {"changed_by": "someone else"}
        resp = requests.post(f"{nomad.url}/v1/job/{job_id}", json={"Job": other}, timeout=10, headers=nomad.headers)
        assert resp.status_code == 200, resp.text
        return result

    monkeypatch.setattr(hecate_nomad_client.NomadClient, "plan", plan_then_race)
    ret = run_db(loaders, runtime_pillar, job_id, pillar=db_pillar(image="pgvector/pgvector:0.8.1-pg16"))
    assert ret["result"] is False
    assert ret["changes"] == {}
    assert "changed in Nomad after it was planned" in ret["comment"]
    assert "job exists with conflicting job modify index" in ret["comment"]
    job = current(nomad, job_id)
    assert job["Version"] == 1 and job["Meta"] == {"changed_by": "someone else"}
    assert job["TaskGroups"][0]["Tasks"][0]["Config"]["image"] == "pgvector/pgvector:0.8.0-pg16"


def test_hcl_error_names_the_line(loaders, runtime_pillar, nomad):
    hcl = 'job "t-hcl" {\n  datacenters = ["dc1"]\n  group "g" {\n    depends_on = ["x"]\n  }\n}\n'
    nomad.clear_requests()
    ret = loaders.states.nomad_job.running(name="t-hcl", hcl=hcl).raw
    ret = ret[next(iter(ret))]
    assert ret["result"] is False and ret["changes"] == {}
    assert ('input.hcl:4,5-15: Unsupported argument; An argument named "depends_on" is not expected here.'
            in ret["comment"])
    assert nomad_writes(nomad) == []


def test_users_original_job_file_is_rejected_like_nomad_does(loaders, runtime_pillar, nomad):
    with open(os.path.join(FIXTURES, "bionicgpt-user-job.nomad.hcl"), encoding="utf-8") as fh:
        hcl = fh.read()
    line = next(i for i, text in enumerate(hcl.splitlines(), 1) if "depends_on" in text and "=" in text)
    ret = loaders.states.nomad_job.running(name="bionicgpt", hcl=hcl).raw
    ret = ret[next(iter(ret))]
    assert ret["result"] is False
    assert f"input.hcl:{line},5-15: Unsupported argument" in ret["comment"]
    assert 'An argument named "depends_on" is not expected here' in ret["comment"]


def test_state_name_must_match_the_job(loaders, runtime_pillar):
    ret = loaders.states.nomad_job.running(
        name="other", source="salt://bionicgpt/jobs/database.nomad.hcl.j2", context={"job_id": "t-x"}).raw
    ret = ret[next(iter(ret))]
    assert ret["result"] is False and "defines job 't-x'" in ret["comment"]


def test_placement_failure_fails_before_registering(loaders, runtime_pillar, nomad, job_prefix):
    job_id = job_prefix + "database"
    pillar = {"bionicgpt": {"nomad": {"node_location": "elsewhere"}, **db_pillar()["bionicgpt"]}}
    nomad.clear_requests()
    for test_mode in (True, False):
        ret = run_db(loaders, runtime_pillar, job_id, test=test_mode, pillar=pillar)
        assert ret["result"] is False and ret["changes"] == {}
        assert 'constraint "${meta.location} = elsewhere" filtered 1 node(s)' in ret["comment"]
    assert nomad_writes(nomad) == []


@pytest.mark.parametrize("test_mode", [True, False], ids=["test", "apply"])
def test_absent_stops_then_purges(loaders, runtime_pillar, nomad, job_prefix, test_mode):
    job_id = job_prefix + "database"
    assert run_db(loaders, runtime_pillar, job_id)["result"] is True
    nomad.clear_requests()
    ret = loaders.states.nomad_job.absent(name=job_id, test=test_mode).raw
    ret = ret[next(iter(ret))]
    assert ret["changes"] == {"stopped": {"old": False, "new": True}}
    if test_mode:
        assert ret["result"] is None and nomad_writes(nomad) == []
        return
    assert ret["result"] is True
    assert current(nomad, job_id)["Stop"] is True
    again = loaders.states.nomad_job.absent(name=job_id).raw
    again = again[next(iter(again))]
    assert again["result"] is True and again["changes"] == {}
    purged = loaders.states.nomad_job.absent(name=job_id, purge=True).raw
    purged = purged[next(iter(purged))]
    assert purged["changes"]["purged"] == {"old": False, "new": True}
    assert requests.get(f"{nomad.url}/v1/job/{job_id}", timeout=10, headers=nomad.headers).status_code == 404
    # a stopped job comes back with running
    assert run_db(loaders, runtime_pillar, job_id)["result"] is True


@pytest.fixture
def var_secret(vault_sim):
    path = f"hecate/tests/{uuid.uuid4().hex[:8]}"
    resp = requests.post(f"{vault_sim.url}/v1/secret/data/{path}", json={"data": {"api_key": SECRET_VALUE}},
                         headers={"X-Vault-Token": vault_sim.root_token}, timeout=10)
    assert resp.status_code == 200
    return {"vault": f"secret/{path}", "key": "api_key"}


@pytest.mark.parametrize("test_mode", [True, False], ids=["test", "apply"])
def test_variable_present_with_vault_reference(loaders, runtime_pillar, nomad, var_secret, test_mode):
    path = f"nomad/jobs/t-{uuid.uuid4().hex[:6]}"
    items = {"log_level": "info", "api_key": var_secret}
    nomad.clear_requests()
    ret = loaders.states.nomad_variable.present(name=path, items=items, test=test_mode).raw
    ret = ret[next(iter(ret))]
    assert ret["changes"] == {"api_key": {"old": None, "new": "XXX-REDACTED-XXX"},
                              "log_level": {"old": None, "new": "info"}}
    assert SECRET_VALUE not in json.dumps(ret)
    if test_mode:
        assert ret["result"] is None and nomad_writes(nomad) == []
        return
    assert ret["result"] is True
    var = requests.get(f"{nomad.url}/v1/var/{path}", timeout=10, headers=nomad.headers).json()
    assert var["Items"] == {"log_level": "info", "api_key": SECRET_VALUE}
    puts = [r for r in nomad.writes() if r["path"] == f"/v1/var/{path}"]
    assert len(puts) == 1 and puts[0]["query"] == "namespace=default&cas=0"
    nomad.clear_requests()
    again = loaders.states.nomad_variable.present(name=path, items=items).raw
    again = again[next(iter(again))]
    assert again["result"] is True and again["changes"] == {}
    assert nomad_writes(nomad) == []
    changed = loaders.states.nomad_variable.present(name=path, items={"log_level": "debug"}).raw
    changed = changed[next(iter(changed))]
    assert changed["changes"] == {"api_key": {"old": "XXX-REDACTED-XXX", "new": None},
                                  "log_level": {"old": "info", "new": "debug"}}
    assert nomad_writes(nomad)[0]["query"].endswith(f"cas={var['ModifyIndex']}")


def test_variable_cas_conflict_fails_clearly(loaders, runtime_pillar, nomad, monkeypatch):
    import hecate_nomad_client

    path = f"nomad/jobs/t-{uuid.uuid4().hex[:6]}"
    assert requests.put(f"{nomad.url}/v1/var/{path}", json={"Items": {"a": "1"}}, timeout=10,
                        headers=nomad.headers).status_code == 200
    original = hecate_nomad_client.NomadClient.var_get

    def read_then_race(self, var_path, *args, **kwargs):
        found = original(self, var_path, *args, **kwargs)
        requests.put(f"{nomad.url}/v1/var/{var_path}", json={"Items": {"a": "other"}}, timeout=10,
                     headers=nomad.headers)
        return found

    monkeypatch.setattr(hecate_nomad_client.NomadClient, "var_get", read_then_race)
    ret = loaders.states.nomad_variable.present(name=path, items={"a": "2"}).raw
    ret = ret[next(iter(ret))]
    assert ret["result"] is False and ret["changes"] == {}
    assert "check-and-set failed" in ret["comment"] and "nothing was written" in ret["comment"]
    monkeypatch.undo()
    got = requests.get(f"{nomad.url}/v1/var/{path}", timeout=10, headers=nomad.headers).json()
    assert got["Items"] == {"a": "other"}


def test_rendered_templates_parse_and_validate(loaders, runtime_pillar, nomad, job_prefix):
    """The three job files render from the pillar and Nomad accepts them as they are."""
    for name in ("database", "llm", "application"):
        hcl = loaders.modules.nomad.render(f"salt://bionicgpt/jobs/{name}.nomad.hcl.j2",
                                           context={"job_id": job_prefix + name})
        assert "depends_on" not in hcl and "port_map" not in hcl and ":latest" not in hcl
        assert '"${meta.location}"' in hcl
        job = loaders.modules.nomad.parse(hcl)
        assert job["ID"] == job_prefix + name
        checked = loaders.modules.nomad.validate(job=job)
        assert not checked["ValidationErrors"], checked
        assert checked["Warnings"] == ""  # no task-level networks
        for group in job["TaskGroups"]:
            assert group["Networks"][0]["DynamicPorts"]
            for task in group["Tasks"]:
                assert "port_map" not in (task["Config"] or {})
        # secrets are Vault lookups rendered by Nomad, never values
        assert '[[ with secret \\"secret/data/bionicgpt/' in json.dumps(job)


def _group_constraints(loaders, job_prefix, name):
    hcl = loaders.modules.nomad.render(f"salt://bionicgpt/jobs/{name}.nomad.hcl.j2",
                                       context={"job_id": job_prefix + name})
    (group,) = loaders.modules.nomad.parse(hcl)["TaskGroups"]
    return [(c["LTarget"], c["RTarget"]) for c in group.get("Constraints") or []]


def test_llm_runs_on_a_gpu_node_when_there_is_one(loaders, runtime_pillar, job_prefix, request):
    """
    Ollama (with LiteLLM: one group) is constrained to ${meta.gpu} = "true" as soon as one
    local node's Nomad client says so (bionicgpt:nomad:agent:nodes:<id>:client:meta); without
    such a node, or with node_meta: {}, it runs on any local node. Other jobs take node_meta
    when pillar gives it (a database box).
    """
    import hecate_config  # pylint: disable=import-outside-toplevel

    assert _group_constraints(loaders, job_prefix, "llm") == []
    request.addfinalizer(lambda: (runtime_pillar.set(), loaders.reload_all()))  # the next tests' pillar
    gpu = {"bionicgpt": {"nomad": {"agent": {"nodes": {"gpu-1": {"client": {"meta": {"gpu": "true"}}}}}}}}
    runtime_pillar.set(gpu)
    loaders.reload_all()  # the modules take the new pillar
    assert _group_constraints(loaders, job_prefix, "llm") == [("${meta.gpu}", "true")]
    assert _group_constraints(loaders, job_prefix, "database") == []
    runtime_pillar.set(hecate_config.deep_merge(gpu, {"bionicgpt": {"jobs": {
        "llm": {"node_meta": {}}, "database": {"node_meta": {"storage": "ssd"}}}}}))
    loaders.reload_all()  # the modules take the new pillar
    assert _group_constraints(loaders, job_prefix, "llm") == []
    assert _group_constraints(loaders, job_prefix, "database") == [("${meta.storage}", "ssd")]


@pytest.mark.parametrize("test_mode", [True, False], ids=["test", "apply"])
def test_jobs_sls_runs_the_stack_in_order(loaders, runtime_pillar, nomad, job_prefix, test_mode):
    pillar = {"bionicgpt": {"nomad": {"job_prefix": job_prefix}}}
    nomad.clear_requests()
    runtime_pillar.set(pillar)
    ret = loaders.modules.state.sls("bionicgpt.jobs", test=test_mode)
    states = {r.name: r for r in ret}
    assert set(states) == {job_prefix + n for n in ("database", "llm", "application")}
    for state in states.values():
        assert state.result is (None if test_mode else True), state.comment
        assert state.changes["diff"] == "Added"
    if test_mode:
        assert nomad_writes(nomad) == []
        return
    order = [r["path"] for r in nomad.writes() if r["method"] == "POST" and re.fullmatch(r"/v1/job/[^/]+", r["path"])]
    assert order == [f"/v1/job/{job_prefix}{n}" for n in ("database", "llm", "application")]
    app = requests.get(f"{nomad.url}/v1/job/{job_prefix}application/allocations", timeout=10,
                       headers=nomad.headers).json()
    states_by_task = app[0]["TaskStates"]
    assert states_by_task["wait-for-dependencies"]["State"] == "dead"
    assert states_by_task["migrations"]["State"] == "dead"
    assert states_by_task["bionicgpt"]["State"] == "running"
    # the stand-in answers through the allocated port of oauth2-proxy
    alloc = requests.get(f"{nomad.url}/v1/allocation/{app[0]['ID']}", timeout=10, headers=nomad.headers).json()
    port = next(p["Value"] for p in alloc["AllocatedResources"]["Shared"]["Ports"] if p["Label"] == "proxy")
    assert requests.get(f"http://127.0.0.1:{port}/ping", timeout=5).status_code == 200
    assert "task oauth2-proxy" in requests.get(f"http://127.0.0.1:{port}/some/page", timeout=5).text

    nomad.clear_requests()
    again = loaders.modules.state.sls("bionicgpt.jobs")
    for state in again:
        assert state.result is True and state.changes == {}
    assert nomad_writes(nomad) == []
    # and the revert SLS has nothing to do when every job runs a stable version
    reverted = loaders.modules.state.sls("bionicgpt.jobs_revert")
    for state in reverted:
        assert state.result is True and state.changes == {}, state.comment


@pytest.mark.parametrize("test_mode", [True, False], ids=["test", "apply"])
def test_variable_absent(loaders, runtime_pillar, nomad, test_mode):
    path = f"nomad/jobs/t-{uuid.uuid4().hex[:6]}"
    assert requests.put(f"{nomad.url}/v1/var/{path}", json={"Items": {"password": "x1234"}},
                        timeout=10, headers=nomad.headers).status_code == 200
    nomad.clear_requests()
    ret = single(loaders.states.nomad_variable.absent(name=path, test=test_mode))
    assert ret["changes"] == {"deleted": {"old": ["password"], "new": None}}
    assert "x1234" not in json.dumps(ret)
    if test_mode:
        assert ret["result"] is None and nomad_writes(nomad) == []
        return
    assert ret["result"] is True
    (delete,) = nomad_writes(nomad)
    assert delete["method"] == "DELETE" and "cas=" in delete["query"]
    assert requests.get(f"{nomad.url}/v1/var/{path}", timeout=10, headers=nomad.headers).status_code == 404
    again = single(loaders.states.nomad_variable.absent(name=path))
    assert again["result"] is True and again["changes"] == {}


# -- canary deployments: the state follows them, promoting what waits for a manual promotion --------
CANARY_HCL = """
job "%(id)s" {
  datacenters = ["dc1"]
  type        = "service"
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
    }
    network {
      port "http" {
        to = 8080
      }
    }
    service {
      name     = "%(id)s"
      port     = "http"
      provider = "nomad"
      check {
        type     = "http"
        path     = "/healthz"
        interval = "10s"
        timeout  = "2s"
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
        memory = 64
      }
    }
  }
}
"""


def run_canary(loaders, job_id, image, count=1, canary=1, auto_promote=False, test=False, **kwargs):
    hcl = CANARY_HCL % {"id": job_id, "image": image, "count": count, "canary": canary,
                        "auto_promote": "true" if auto_promote else "false"}
    kwargs.setdefault("timeout", 60)
    return single(loaders.states.nomad_job.running(name=job_id, hcl=hcl, test=test, **kwargs))


def deployments_of(nomad, job_id):
    return requests.get(f"{nomad.url}/v1/job/{job_id}/deployments", timeout=10, headers=nomad.headers).json()


def test_blue_green_is_previewed_then_promoted_by_the_state(loaders, nomad, job_prefix):
    job_id = job_prefix + "bluegreen"
    assert run_canary(loaders, job_id, "nginx:1.27")["result"] is True
    nomad.clear_requests()
    preview = run_canary(loaders, job_id, "nginx:1.28", test=True)
    assert preview["result"] is None, preview["comment"]
    assert "~ image: 'nginx:1.27' -> 'nginx:1.28'" in preview["comment"]
    assert ("update group web: blue-green: 1 canary beside the 1 running; once it is healthy after 10s of "
            "passing checks within 5m, hecate promotes them; auto_revert to the last stable version on failure"
            in preview["comment"])
    assert preview["changes"]["placements"] == {"web": {"canary": 1, "ignore": 1}}
    assert nomad_writes(nomad) == []
    ret = run_canary(loaders, job_id, "nginx:1.28")
    assert ret["result"] is True, ret["comment"]
    assert "canaries (group web: 1/1) healthy, promoted by hecate" in ret["comment"]
    assert ret["changes"]["deployment"]["status"] == "successful"
    assert ret["changes"]["deployment"]["promoted_by"] == "hecate"
    promotes = [r for r in nomad.writes() if r["path"].startswith("/v1/deployment/promote/")]
    assert len(promotes) == 1
    dep = next(d for d in deployments_of(nomad, job_id) if d["JobVersion"] == 1)
    assert dep["TaskGroups"]["web"]["Promoted"] is True and dep["Status"] == "successful"
    running = [a for a in requests.get(f"{nomad.url}/v1/job/{job_id}/allocations", timeout=10,
                                       headers=nomad.headers).json() if a["DesiredStatus"] == "run"]
    assert [a["JobVersion"] for a in running] == [1]
    assert run_canary(loaders, job_id, "nginx:1.28")["changes"] == {}


def test_auto_promote_is_left_to_nomad(loaders, nomad, job_prefix):
    job_id = job_prefix + "canary"
    assert run_canary(loaders, job_id, "nginx:1.27", auto_promote=True)["result"] is True
    nomad.clear_requests()
    ret = run_canary(loaders, job_id, "nginx:1.28", auto_promote=True)
    assert ret["result"] is True, ret["comment"]
    assert ret["changes"]["deployment"]["promoted_by"] == "nomad auto_promote"
    assert not [r for r in nomad.writes() if r["path"].startswith("/v1/deployment/promote/")]


def test_promote_false_leaves_the_canaries_waiting(loaders, nomad, job_prefix):
    job_id = job_prefix + "manual"
    assert run_canary(loaders, job_id, "nginx:1.27")["result"] is True
    ret = run_canary(loaders, job_id, "nginx:1.28", promote=False, timeout=5)
    assert ret["result"] is False
    assert "still running" in ret["comment"] and "waiting for a promotion" in ret["comment"]
    dep = next(d for d in deployments_of(nomad, job_id) if d["JobVersion"] == 1)
    assert dep["StatusDescription"] == "Deployment is running but requires manual promotion"
    out = loaders.modules.nomad.promote(job_id=job_id)
    assert out["EvalID"]
    done = loaders.modules.nomad.follow(job_id, timeout=30)
    assert done["status"] == "successful", done


def test_a_failing_canary_is_reported_and_auto_reverted(loaders, nomad, job_prefix):
    job_id = job_prefix + "badcanary"
    assert run_canary(loaders, job_id, "nginx:1.27")["result"] is True
    ret = run_canary(loaders, job_id, "nginx:refused-9")
    assert ret["result"] is False
    comment = ret["comment"]
    assert "deployment failed: Failed due to unhealthy allocations - rolling back to job version 0" in comment
    assert "canaries (group web: 1/1) not promoted" in comment
    assert "Driver Failure: Failed to pull `nginx:refused-9`" in comment
    assert "Nomad auto-reverted to version 0 (now version 2): deployment successful" in comment
    job = current(nomad, job_id)
    assert job["Version"] == 2 and job["Stable"] is True
