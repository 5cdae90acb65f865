"""hecate.lock/unlock/record/history through the real master against the Consul simulator."""

import uuid

import requests


def run(salt_run_cli, *args):
    ret = salt_run_cli.run(*args)
    return ret, ret.data


def test_second_lock_fails_with_holder_and_only_owner_unlocks(salt_run_cli, consul_sim):
    first, second = f"a-{uuid.uuid4().hex[:6]}", f"b-{uuid.uuid4().hex[:6]}"
    ret, data = run(salt_run_cli, "hecate.lock", "env=lab", f"run_id={first}")
    assert ret.returncode == 0 and data["result"] is True, data
    try:
        ret, data = run(salt_run_cli, "hecate.lock", "env=lab", f"run_id={second}")
        assert ret.returncode != 0 and data["result"] is False
        assert f"run {first} since" in data["comment"], data["comment"]
        ret, data = run(salt_run_cli, "hecate.unlock", "env=lab", f"run_id={second}")
        assert ret.returncode != 0 and f"not by run {second}" in data["comment"]
    finally:
        ret, data = run(salt_run_cli, "hecate.unlock", "env=lab", f"run_id={first}")
    assert ret.returncode == 0 and data["result"] is True, data
    ret, data = run(salt_run_cli, "hecate.unlock", "env=lab", f"run_id={first}")
    assert data["comment"] == "lock was not held"


def test_record_and_history(salt_run_cli, consul_sim):
    # far-future ids: history is newest first, and the orchestration tests of the same
    # session record real runs with today's timestamps in the same environment
    run_ids = [f"29991231T23590{i}Z-{uuid.uuid4().hex[:4]}" for i in (1, 2)]
    try:
        for rid in run_ids:
            ret, data = run(salt_run_cli, "hecate.record", "env=lab", f"run_id={rid}", "note=test")
            assert ret.returncode == 0, data
        ret, data = run(salt_run_cli, "hecate.history", "env=lab", "limit=2")
        assert ret.returncode == 0, data
        got = [r["run_id"] for r in data["records"]]
        assert got == sorted(run_ids, reverse=True)
        rec = data["records"][0]
        assert rec["env"] == "lab" and rec["note"] == "test" and len(rec["pillar_sha256"]) == 64
        assert "@" in rec["who"] and rec["when"]
    finally:
        # they would be the "latest deployment" of a rollback in a later test
        for rid in run_ids:
            requests.delete(f"{consul_sim.url}/v1/kv/hecate/deployments/lab/{rid}", timeout=10,
                            headers={"X-Consul-Token": consul_sim.token})
