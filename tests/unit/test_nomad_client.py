"""The Nomad client (hecate_nomad_client) against the Nomad simulator, and its pure helpers."""

import time

import pytest
import salt.exceptions

import hecate_nomad_client as hn
import hecate_nomad_schema
import hecate_secrets
from lab.sim import SimHandle

TOKEN = "5a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"  # Nomad secrets are UUIDs
HCL = """
job "%s" {
  datacenters = ["dc1"]
  group "g" {
    network {
      port "http" {
        to = 80
      }
    }
    service {
      name = "web"
      port = "http"
      check {
        type     = "http"
        path     = "/health"
        interval = "10s"
        timeout  = "2s"
      }
    }
    task "t" {
      driver = "docker"
      config {
        image = "%s"
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


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    # consul_version: the client has fingerprinted a Consul, which Nomad requires of groups with
    # Consul services (nomad/job_endpoint_hooks.go jobImpliedConstraints)
    options = {"token": TOKEN, "time_scale": 0.01, "refuse_images": ["*:refused"], "consul_version": "1.22.0"}
    handle = SimHandle("nomad", str(tmp_path_factory.mktemp("nomad")), options).start()
    yield handle
    handle.stop()


@pytest.fixture
def client(sim):
    return hn.NomadClient({"url": sim.url}, hecate_secrets.Secret(TOKEN))


def test_tls_verification_is_on_by_default_and_token_in_header_only(sim, client, tmp_path):
    assert client.http.session.verify is True
    bundle = tmp_path / "ca.pem"  # the bundle must exist (a missing one is a clear error)
    bundle.write_text("")
    with_bundle = hn.NomadClient({"url": sim.url, "ca_bundle": str(bundle)})
    assert with_bundle.http.session.verify == str(bundle)
    assert client.http.session.headers["X-Nomad-Token"] == TOKEN
    sim.clear_requests()
    client.leader()
    assert all(TOKEN not in r["query"] for r in sim.requests())


def test_acl_errors_do_not_leak_the_token(sim):
    """
    Nomad 1.7+ (nomad/auth/auth.go Authenticate, command/agent/http.go ResolveToken): an
    unknown token is 403 "Permission denied"; a secret that is not a UUID is tried as a
    workload identity, which /v1/jobs/parse (resolved by the agent) answers with a 500.
    """
    unknown = "0b7a1e52-0c4e-4a53-9d83-7f1f4f0e9a61"
    with pytest.raises(hn.NomadError) as exc:
        hn.NomadClient({"url": sim.url}, unknown).parse(HCL % ("x", "a:1"))
    assert exc.value.status == 403 and exc.value.text == "Permission denied"
    assert unknown not in str(exc.value)
    with pytest.raises(hn.NomadError) as exc:
        hn.NomadClient({"url": sim.url}, "wrong-token").parse(HCL % ("x", "a:1"))
    assert exc.value.status == 500 and exc.value.text.startswith("ACL token not found or invalid workload identity")
    assert "wrong-token" not in str(exc.value)


def test_parse_error_keeps_nomads_text(client):
    with pytest.raises(hn.NomadError) as exc:
        client.parse('job "x" {\n  oops = 1\n}\n')
    assert exc.value.status == 400
    assert exc.value.text.startswith("Failed to parse job: input.hcl:2,3-7: Unsupported argument")


def test_register_enforce_index_conflict_and_follow(client):
    job = client.parse(HCL % ("c1", "nginx:1.27"))
    plan = client.plan(job)
    assert plan["JobModifyIndex"] == 0
    reply = client.register(job, modify_index=0)
    with pytest.raises(hn.EnforceIndexConflict, match="job already exists"):
        client.register(job, modify_index=0)
    rollout = hn.Rollout(client, "c1", timeout=30)
    outcome = rollout.follow(reply["EvalID"], 0, expect_deployment=True, register_index=reply["JobModifyIndex"])
    assert outcome["status"] == "successful", outcome
    assert client.job("c1")["Stable"] is True
    # unchanged spec: a new evaluation but no deployment, and none is waited for
    again = client.register(job, modify_index=client.job("c1")["JobModifyIndex"])
    started = time.monotonic()
    outcome = rollout.follow(again["EvalID"], 0, expect_deployment=False)
    assert outcome["status"] == "no-deployment" and time.monotonic() - started < 5


def test_failed_deployment_reports_task_events(client):
    job = client.parse(HCL % ("c2", "nginx:1.27"))
    first = client.register(job, modify_index=0)
    assert hn.Rollout(client, "c2", timeout=30).follow(first["EvalID"], 0, expect_deployment=True)["status"] \
        == "successful"
    bad = client.parse(HCL % ("c2", "nginx:refused"))
    plan = client.plan(bad)
    assert hn.plan_changes(plan)["placements"] == {"g": {"create/destroy update": 1}}
    reply = client.register(bad, modify_index=plan["JobModifyIndex"])
    outcome = hn.Rollout(client, "c2", timeout=30).follow(reply["EvalID"], 1, expect_deployment=True)
    assert outcome["status"] == "failed"
    assert outcome["description"] == "Failed due to unhealthy allocations"
    (failure,) = outcome["failures"]
    events = failure["tasks"]["t"]["events"]
    assert any(e.startswith("Driver Failure: Failed to pull `nginx:refused`") for e in events)
    assert events[-1] == "Alloc Unhealthy: Unhealthy because of failed task"
    assert any(e.startswith("Not Restarting: Exceeded allowed attempts 2 in interval 30m0s") for e in events)
    text = "\n".join(hn.describe_failures(outcome["failures"]))
    assert "task t (dead, failed, 2 restarts)" in text


def test_blocking_query_returns_the_index(client):
    _, index = client.get("/v1/jobs")
    started = time.monotonic()
    _, again = client.get("/v1/jobs", index=index + 1000, wait=1)
    assert index <= again < index + 1000 and time.monotonic() - started >= 0.9


def test_variables_cas(client):
    assert client.var_get("app/v") is None
    created = client.var_put("app/v", {"a": "1"}, cas=0)
    with pytest.raises(hn.VariableConflict) as exc:
        client.var_put("app/v", {"a": "2"}, cas=0)
    assert exc.value.current["ModifyIndex"] == created["ModifyIndex"]
    assert "Items" not in exc.value.current
    client.var_put("app/v", {"a": "2"}, cas=created["ModifyIndex"])
    assert client.var_get("app/v")["Items"] == {"a": "2"}
    assert [v["Path"] for v in client.var_list("app/")] == ["app/v"]


def test_missing_url_is_a_clear_error():
    with pytest.raises(salt.exceptions.SaltInvocationError, match="hecate:connections:nomad:url"):
        hn.NomadClient({"url": None})


def test_resolve_items():
    resolved = hn.resolve_items({"a": 1, "b": True, "c": "x", "d": "sdb://v/k"},
                                lambda value, where: hecate_secrets.Secret("s"))
    assert resolved["a"] == "1" and resolved["b"] == "true" and resolved["c"] == "x"
    assert isinstance(resolved["d"], hecate_secrets.Secret)
    with pytest.raises(salt.exceptions.SaltInvocationError, match="items:e"):
        hn.resolve_items({"e": [1]}, None)


@pytest.mark.parametrize("image,env,ok", [
    ("pgvector/pgvector:0.8.0-pg16", "prod", True),
    ("pgvector/pgvector", "prod", False),
    ("pgvector/pgvector:latest", "staging", False),
    ("pgvector/pgvector:latest", "lab", True),
    ("registry:5000/pgvector", "prod", False),
    ("registry:5000/pgvector:1.0", "prod", True),
    ("busybox@sha256:abc", "prod", True),
])
def test_check_pillar_refuses_unpinned_images(image, env, ok):
    pillar = {"bionicgpt": {"jobs": {"database": {"postgres": {"image": image}}}}}
    errors = hecate_nomad_schema.check_pillar(pillar, env)
    assert (errors == []) is ok
    if not ok:
        assert errors[0][0] == "bionicgpt:jobs:database:postgres:image"


def test_plan_lines_and_changes_for_an_edit():
    plan = {
        "JobModifyIndex": 7,
        "Diff": {"Type": "Edited", "ID": "j", "TaskGroups": [{
            "Type": "Edited", "Name": "g", "Fields": None, "Objects": None, "Updates": None,
            "Tasks": [{"Type": "Edited", "Name": "t", "Fields": None, "Annotations": ["forces create/destroy update"],
                       "Objects": [{"Type": "Edited", "Name": "Config", "Objects": None, "Fields": [
                           {"Type": "Edited", "Name": "image", "Old": "a:1", "New": "a:2"}]}]}]}]},
        "Annotations": {"DesiredTGUpdates": {"g": {"DestructiveUpdate": 1, "Ignore": 0}}},
        "FailedTGAllocs": None,
    }
    changes = hn.plan_changes(plan)
    assert changes == {"diff": "Edited",
                       "fields": {"group g:task t:Config:image": {"old": "a:1", "new": "a:2"}},
                       "placements": {"g": {"create/destroy update": 1}},
                       "annotations": {"group g:task t": ["forces create/destroy update"]}}
    lines = hn.plan_lines(plan)
    assert "  group g:task t:Config (forces create/destroy update):" in lines
    assert "    ~ image: 'a:1' -> 'a:2'" in lines
    assert "  group g: 1 create/destroy update" in lines


def test_placement_failures_text():
    lines = hn.placement_failures({"g": {"NodesEvaluated": 1, "ConstraintFiltered": {"${meta.location} = x": 1},
                                         "DimensionExhausted": {"memory": 1}}})
    assert lines == ['group g: cannot place: constraint "${meta.location} = x" filtered 1 node(s); '
                     "resources exhausted on 1 node(s): memory"]


def test_variable_cas_writes_whose_answers_were_lost(sim, client):
    sim.clear_requests()
    sim.fault(method="PUT", path=r"^/v1/var/app/lost$", action="apply_then_drop", times=1)
    created = client.var_put("app/lost", {"a": "1"}, cas=0)  # not a 409 "conflict" with itself
    assert created["Items"] == {"a": "1"} and created["ModifyIndex"] > 0
    sim.fault(method="PUT", path=r"^/v1/var/app/lost$", action="apply_then_drop", times=1)
    updated = client.var_put("app/lost", {"a": "2"}, cas=created["ModifyIndex"])
    assert updated["Items"] == {"a": "2"} and updated["ModifyIndex"] > created["ModifyIndex"]
    puts = [r for r in sim.requests() if r["method"] == "PUT" and r["path"] == "/v1/var/app/lost"]
    assert len(puts) == 2  # decided by a read, never resent
    # someone else changed it while our answer was lost: a real conflict, reported as one
    client.var_put("app/lost", {"a": "theirs"})
    sim.fault(method="PUT", path=r"^/v1/var/app/lost$", action="drop", times=1)
    with pytest.raises(hn.VariableConflict):
        client.var_put("app/lost", {"a": "3"}, cas=updated["ModifyIndex"])
    current = client.var_get("app/lost")
    sim.fault(method="DELETE", path=r"^/v1/var/app/lost$", action="apply_then_drop", times=1)
    assert client.var_delete("app/lost", cas=current["ModifyIndex"]) is True
    assert client.var_get("app/lost") is None


def _group(count=1, **update):
    upd = {"MaxParallel": 1, "HealthCheck": "checks", "MinHealthyTime": 10 * 10**9, "HealthyDeadline": 300 * 10**9,
           "AutoRevert": True, "Canary": 0, "AutoPromote": False}
    upd.update(update)
    return {"Name": "server", "Count": count, "Update": upd}


@pytest.mark.parametrize("group,kind,text", [
    (_group(), "rolling", "rolling: 1 at a time (each old allocation stopped as its replacement is placed); healthy "
                          "after 10s of passing checks within 5m; auto_revert to the last stable version on failure"),
    (_group(MaxParallel=2, AutoRevert=False, HealthCheck="task_states"), "rolling",
     "rolling: 2 at a time (each old allocation stopped as its replacement is placed); healthy after 10s of passing "
     "task_states within 5m; no auto_revert"),
    (_group(Canary=1), "blue-green", "blue-green: 1 canary beside the 1 running; once it is healthy after 10s of "
                                     "passing checks within 5m, hecate promotes them; auto_revert to the last stable "
                                     "version on failure"),
    (_group(count=3, Canary=1, AutoPromote=True), "canary",
     "canary: 1 canary beside the 3 running; once it is healthy after 10s of passing checks within 5m, Nomad "
     "promotes them (auto_promote), then the rest 1 at a time; auto_revert to the last stable version on failure"),
    ({"Name": "b", "Count": 1, "Update": None}, "none",
     "no update block: every allocation is replaced at once, no deployment"),
])
def test_update_strategy_describes_the_update_block(group, kind, text):
    assert hn.update_strategy(group) == {"kind": kind, "text": text}


def test_canaries_awaiting_promotion():
    dep = {"Status": "running", "TaskGroups": {
        "server": {"DesiredCanaries": 1, "PlacedCanaries": ["a"], "Promoted": False, "HealthyAllocs": 0},
        "worker": {"DesiredCanaries": 0, "PlacedCanaries": None, "Promoted": False, "HealthyAllocs": 0}}}
    assert list(hn.awaiting_promotion(dep)) == ["server"]
    assert hn.canaries_healthy(dep) is False
    assert hn.canary_summary(dep) == "group server: 1/1 placed, 0 healthy, not promoted"
    dep["TaskGroups"]["server"]["HealthyAllocs"] = 1
    assert hn.canaries_healthy(dep) is True
    dep["TaskGroups"]["server"]["Promoted"] = True
    assert hn.awaiting_promotion(dep) == {} and hn.canaries_healthy(dep) is False
    assert hn.awaiting_promotion(dict(dep, Status="failed")) == {}
