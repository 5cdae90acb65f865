"""
The orchestration end to end (issue 9): `salt-run state.orch orch.bionicgpt` through the
factories master, the cloud and local minions, the real Caddy and the simulators.
Fixtures (stack, overrides) are in conftest.py, helpers in tests/orch_helpers.py.
"""

import json
import os
import re
import threading

import hecate_plan
from tests import caddy_helpers
from tests.orch_helpers import (
    BOOKKEEPING,
    clear,
    job,
    lock_holder,
    managed_routes,
    objects,
    orch,
    purge_jobs,
    steps,
    writes,
)


def test_preview_writes_nothing_predicts_the_apply_and_a_rerun_converges(salt_run_cli, stack):
    sims, caddy = stack["sims"], stack["caddy"]
    # start from a stack that needs deploying: no BionicGPT jobs, no hecate routes
    purge_jobs(sims)
    caddy_helpers.reset(caddy)

    caddy_writes = clear(stack)
    preview = orch(salt_run_cli, test=True)
    assert preview.returncode == 0, preview
    for name, sim in sims.items():
        assert writes(name, sim) == [], name
    assert caddy_helpers.writes(caddy) == caddy_writes
    predicted = objects(preview)
    assert {k for _, k in predicted if k.startswith("nomad_job_")} and \
        {k for _, k in predicted if k.startswith("caddy_routes_")}

    applied = orch(salt_run_cli)
    assert applied.returncode == 0, applied
    assert objects(applied) == predicted
    # the chat domain reaches the stand-in behind oauth2-proxy's Consul service
    resp = caddy_helpers.through(caddy, "chat.codemonkey.ai", "/")
    assert resp.status_code == 200 and "oauth2-proxy" in resp.text

    caddy_writes = clear(stack)
    again = orch(salt_run_cli)
    assert again.returncode == 0, again
    assert hecate_plan.rows(again.data) == []
    for name, sim in sims.items():
        assert writes(name, sim, BOOKKEEPING.get(name, ())) == [], name
    assert caddy_helpers.writes(caddy) == caddy_writes
    assert steps(again)["record"]["comment"].startswith("State was not run because none")


def test_failure_in_the_nomad_step_leaves_caddy_and_nomad_as_before(salt_run_cli, stack, overrides):
    sims, caddy = stack["sims"], stack["caddy"]
    assert orch(salt_run_cli).returncode == 0  # converged start
    routes_before = managed_routes(caddy)
    app_before = job(sims["nomad"], "bionicgpt-application")
    # an oauth2-proxy image the simulated client refuses, and a route Caddy would add
    overrides({
        "bionicgpt": {"jobs": {"application": {"oauth2_proxy": {
            "image": "quay.io/oauth2-proxy/oauth2-proxy:refused-7.6.0"}}}},
        "hecate": {"reverse_proxy": {"caddy": {"routes": [
            {"domain": "extra.cybermonkey.dev", "backend": "127.0.0.1:9", "service": "extra"}]}}},
    })
    failed = orch(salt_run_cli)
    assert failed.returncode != 0
    got = steps(failed)
    assert got["nomad_jobs"]["result"] is False
    assert "refused" in json.dumps(got["nomad_jobs"]["changes"])
    assert got["caddy"]["result"] is False and "requisite failed" in got["caddy"]["comment"]
    assert got["unlock_after_failure"]["result"] is True
    assert managed_routes(caddy) == routes_before
    app_after = job(sims["nomad"], "bionicgpt-application")
    image = lambda j: [t["Config"]["image"] for g in j["TaskGroups"] for t in g["Tasks"]]  # noqa: E731
    assert image(app_after) == image(app_before) and app_after["Stable"] is True
    assert lock_holder(sims["consul"]) is None


def test_two_orchestrations_at_once_one_fails_with_the_lock_holder(salt_master, stack):
    results = []

    def run():
        results.append(orch(salt_master.salt_run_cli(timeout=300)))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    codes = sorted(r.data["retcode"] for r in results)
    assert codes[0] == 0 and codes[1] != 0, [r.stdout[-2000:] for r in results]
    loser = next(r for r in results if r.data["retcode"] != 0)
    assert loser.returncode != 0
    lock_step = steps(loser)["lock"]
    assert lock_step["result"] is False
    assert re.search(r"is held by \S+@\S+ run \S+ since \d{4}-", json.dumps(lock_step)), lock_step
    assert lock_holder(stack["sims"]["consul"]) is None


def test_rollback_returns_to_the_previous_recorded_deployment(salt_run_cli, stack, overrides):
    sims, caddy = stack["sims"], stack["caddy"]
    assert orch(salt_run_cli).returncode == 0
    history = salt_run_cli.run("hecate.history", "env=lab", "limit=1").data["records"]
    first = history[0]["run_id"]
    routes_first = managed_routes(caddy)
    llm_first = job(sims["nomad"], "bionicgpt-llm")

    overrides({
        "bionicgpt": {"jobs": {"llm": {"litellm": {"resources": {"cpu": 1100, "memory": 2048}}}}},
        "hecate": {"reverse_proxy": {"caddy": {"routes": [
            {"domain": "extra.cybermonkey.dev", "backend": "127.0.0.1:9", "service": "extra"}]}}},
    })
    assert orch(salt_run_cli).returncode == 0
    second = salt_run_cli.run("hecate.history", "env=lab", "limit=1").data["records"][0]
    assert second["run_id"] != first and managed_routes(caddy) != routes_first

    ret = salt_run_cli.run("hecate.rollback", "env=lab", f"to={first}")
    assert ret.returncode == 0, ret
    assert managed_routes(caddy) == routes_first
    llm = job(sims["nomad"], "bionicgpt-llm")
    cpu = lambda j: sorted(t["Resources"]["CPU"] for g in j["TaskGroups"] for t in g["Tasks"])  # noqa: E731
    assert cpu(llm) == cpu(llm_first) and llm["Version"] > second["nomad_jobs"]["local"]["bionicgpt-llm"]
    latest = salt_run_cli.run("hecate.history", "env=lab", "limit=1").data["records"][0]
    assert latest["status"] == "rollback" and latest["rolled_back_to"] == first


def test_plan_and_status(salt_run_cli, stack):
    assert orch(salt_run_cli).returncode == 0
    ret = salt_run_cli.run("hecate.plan", "env=lab")
    assert ret.returncode == 0, ret
    assert ret.data["changes"] == [] and ret.data["report"][-1].endswith("Everything is converged.")
    ret = salt_run_cli.run("hecate.status", "env=lab")
    services = ret.data["services"]
    for name in ("bionicgpt-postgres", "ollama", "litellm", "bionicgpt", "bionicgpt-oauth2-proxy"):
        assert services[name]["passing"] is True and services[name]["instances"] == 1, name
    assert ret.data["probe"]["ok"] is True and ret.data["probe"]["status"] == 200
    # the user's external services (Wazuh, Jenkins) are registered too; whatever their
    # health from this sandbox, the overall result and exit code follow it
    assert {"wazuh-registration", "jenkins-master"} <= set(services)
    healthy = all(s["passing"] for s in services.values())
    assert ret.data["result"] is healthy and (ret.returncode == 0) is healthy


def test_unknown_environment_fails_before_anything_runs(salt_run_cli, stack):
    clear(stack)
    ret = orch(salt_run_cli, env="nowhere")
    assert ret.returncode != 0
    got = steps(ret)
    assert "unknown environment 'nowhere'" in got["validate"]["comment"]
    assert got["preflight"]["result"] is False and "requisite failed" in got["preflight"]["comment"]
    assert got["lock"]["result"] is False
    for name, sim in stack["sims"].items():
        assert writes(name, sim) == [], name


def test_highstate_gives_a_new_minion_its_role(salt_master, salt_cli, stack, overrides, lab_secrets):
    """A third minion with a role grain and listed in hecate:members: highstate makes it a local node."""
    from lab import topology  # pylint: disable=import-outside-toplevel

    # the master lists it (by glob) and gives it its tunnel address (every node has its own;
    # pillar, not the minion, says which)
    overrides({
        "hecate": {"members": {"bionicgpt-node": ["local", "new-node*"]}},
        "bionicgpt": {"wireguard": {"nodes": {"new-node-1": {"address": "10.88.0.3"}}}},
    })
    config = {"module_dirs": [topology.REPO], "grains": {"roles": ["bionicgpt-node"], "hecate_env": "lab"}}
    config.update(topology.salt_opts(lab_secrets))
    factory = salt_master.salt_minion_daemon("new-node-1", overrides=config)
    # the hub must have published its key (the orchestration's first WireGuard step does)
    assert salt_cli.run("state.apply", "wireguard.keys", minion_tgt="cloud").returncode == 0
    try:
        with factory.started():
            ret = salt_cli.run("state.highstate", minion_tgt="new-node-1")
            assert ret.returncode == 0, ret
            states = ret.data
            assert states and all(s["result"] is True for s in states.values()), states
            ids = {s["__id__"] for s in states.values()}
            assert "hecate pillar is valid" in ids
            sls = {s["__sls__"] for s in states.values()}
            assert {"wireguard", "consul.agent", "nomad.agent"} <= sls, sls
            again = salt_cli.run("state.highstate", minion_tgt="new-node-1")
            assert all(not s["changes"] for s in again.data.values()), again.data
    finally:
        # A stopped minion whose key stays accepted is still matched by grain targets
        # (from the master's cache): every later call would wait for it to time out.
        salt_master.salt_key_cli().run("-d", "new-node-1", "-y")


def test_a_minion_that_only_claims_a_role_is_left_out(salt_master, salt_cli, salt_run_cli, stack,
                                                       agents_dir, lab_secrets):
    """
    A third minion claims `roles: [bionicgpt-node]`, `hecate_env: lab` by its own grains,
    with an id that sorts before the real node's, and publishes a WireGuard key in the mine.
    hecate:members does not list it: validate and status name it, highstate gives it no role,
    the orchestration never targets it, and the edge's only peer is the real node, at its
    own tunnel address.
    """
    from lab import topology  # pylint: disable=import-outside-toplevel

    config = {"module_dirs": [topology.REPO], "grains": {"roles": ["bionicgpt-node"], "hecate_env": "lab"}}
    config.update(topology.salt_opts(lab_secrets))
    factory = salt_master.salt_minion_daemon("intruder", overrides=config)
    try:
        with factory.started():
            # what it can do by itself: make a key pair and put its public key in the mine
            assert salt_cli.run("wireguard.genkey", minion_tgt="intruder").returncode == 0
            assert salt_cli.run("mine.send", "wireguard_public_key", "mine_function=wireguard.public_key",
                                minion_tgt="intruder").returncode == 0
            claimed = salt_cli.run("wireguard.public_key", minion_tgt="intruder").data
            mine = salt_cli.run("mine.get", "G@roles:bionicgpt-node", "wireguard_public_key", "compound",
                                minion_tgt="cloud").data
            assert mine.get("intruder") == claimed and "local" in mine  # the claim is in the mine

            expected = {"hecate-edge": ["cloud"], "bionicgpt-node": ["local"]}
            for fun in ("hecate.validate", "hecate.status"):
                ret = salt_run_cli.run(fun, "env=lab")
                assert ret.data["members"] == expected, (fun, ret.data)
                assert ret.data["not_members"] == {"intruder": ["bionicgpt-node"]}, (fun, ret.data)
                assert any(w.startswith("minion intruder claims roles bionicgpt-node") for w in ret.data["warnings"])
            assert salt_run_cli.run("hecate.validate", "env=lab").returncode == 0  # it does not block a deploy

            high = salt_cli.run("state.highstate", minion_tgt="intruder")
            assert isinstance(high.data, dict), high
            assert not {s.get("__sls__") for s in high.data.values()} & {
                "hecate",
                "wireguard",
                "consul.agent",
                "nomad.agent",
            }
            assert "No Top file or master_tops data matches found" in json.dumps(high.data), high

            applied = orch(salt_run_cli)
            assert applied.returncode == 0, applied
            got = steps(applied)
            # the validate step names it; no step targets it (nor waits for it)
            assert "not members, left out" in got["validate"]["comment"]
            assert "intruder (bionicgpt-node)" in got["validate"]["comment"]
            for step, data in got.items():
                assert step == "validate" or "intruder" not in json.dumps(data), (step, data)
            assert "local" in json.dumps(got["nomad_agent"]) and "local" in json.dumps(got["wireguard"])

            peers = salt_cli.run("wireguard.peers", minion_tgt="cloud").data
            assert peers["problems"] == []
            assert [(p["name"], p["address"]) for p in peers["peers"]] == [("local", "10.88.0.2")]
            edge_conf = os.path.join(agents_dir, "cloud", "wireguard", "hcwg0.conf")
            with open(edge_conf, encoding="utf-8") as fh:
                text = fh.read()
            assert claimed not in text and "# local" in text and "AllowedIPs = 10.88.0.2/32" in text
            with open(os.path.join(agents_dir, "local", "consul.d", "consul.json"), encoding="utf-8") as fh:
                assert json.load(fh)["retry_join"] == ["10.88.0.1"]  # the edge's address from pillar
    finally:
        salt_master.salt_key_cli().run("-d", "intruder", "-y")


def _lab_routes(stack):
    """The lab's routes: pillar/hecate.sls's, with the Authentik route to the lab's Authentik
    (lab_runtime.sls), so that orch.hecate's request through Caddy to Authentik is answered."""
    import yaml  # pylint: disable=import-outside-toplevel

    with open(os.path.join(stack["pillar_dir"], "lab_runtime.sls"), encoding="utf-8") as fh:
        return yaml.safe_load(fh)["hecate"]["reverse_proxy"]["caddy"]["routes"]


def _hecate_rrsets(hetzner, zone):
    return {k: v for k, v in hetzner.state()["zones"][zone].items() if v["labels"].get("managed-by") == "hecate"}


def _foreign_rrsets(hetzner):
    return {(zone, k): v for zone, rrsets in hetzner.state()["zones"].items() for k, v in rrsets.items()
            if v["labels"].get("managed-by") != "hecate" and not k.startswith("@/SOA")}


def _run_order(ret):
    return {step: val.get("__run_num__") for step, val in steps(ret).items()}


def test_a_new_route_gets_its_dns_record_and_caddy_route_in_one_run_and_loses_both(salt_run_cli, stack, overrides):
    """Issue 14 in the lab: pillar route -> Hetzner DNS record (simulator) + Caddy route, with orch.hecate."""
    sims, caddy = stack["sims"], stack["caddy"]
    hetzner = sims["hetzner"]
    # a converged start; the chat route's upstream is a Consul service that orch.bionicgpt deploys
    if job(sims["nomad"], "bionicgpt-application") is None:
        assert orch(salt_run_cli).returncode == 0
    else:
        assert orch(salt_run_cli, sls="orch.hecate").returncode == 0
    domain, name = "fresh.cybermonkey.dev", "fresh"
    foreign = _foreign_rrsets(hetzner)
    assert ("cybermonkey.dev", "mail/A") in foreign and ("cybermonkey.dev", "@/TXT") in foreign
    overrides({"hecate": {"reverse_proxy": {"caddy": {"routes": _lab_routes(stack) + [
        {"domain": domain, "backend": "127.0.0.1:9", "service": "fresh"}]}}}})

    caddy_writes = clear(stack)
    preview = orch(salt_run_cli, test=True, sls="orch.hecate")
    assert preview.returncode == 0, preview
    for sim_name, sim in sims.items():
        assert writes(sim_name, sim) == [], sim_name
    assert caddy_helpers.writes(caddy) == caddy_writes
    rows = {(r["step"], r["object"]): r for r in hecate_plan.rows(preview.data)}
    dns_rows = [r for (step, _), r in rows.items() if step == "dns"]
    assert len(dns_rows) == 1 and dns_rows[0]["system"] == "Hetzner DNS"
    assert dns_rows[0]["change"] == f"+{domain} A, +{domain} AAAA"
    assert any(step == "caddy" for step, _ in rows)
    predicted = objects(preview)

    applied = orch(salt_run_cli, sls="orch.hecate")
    assert applied.returncode == 0, applied
    assert objects(applied) == predicted
    order = _run_order(applied)
    assert order["dns"] < order["caddy"] < order["dns_prune"]
    records = _hecate_rrsets(hetzner, "cybermonkey.dev")
    assert records[f"{name}/A"]["records"] == [{"value": "203.0.113.10", "comment": ""}]
    assert records[f"{name}/AAAA"]["records"] == [{"value": "2001:db8:10::10", "comment": ""}]
    assert records[f"{name}/A"]["labels"] == {"managed-by": "hecate", "hecate-env": "lab"}
    assert any(domain in json.dumps(r.get("match")) for r in managed_routes(caddy))
    status = salt_run_cli.run("hecate.status", "env=lab").data
    assert status["dns"]["domains"][domain]["points_at_edge"] is True, status["dns"]
    assert status["dns"]["domains"][domain]["A"]["via"] == "exact"

    caddy_writes = clear(stack)
    again = orch(salt_run_cli, sls="orch.hecate")
    assert again.returncode == 0, again
    assert hecate_plan.rows(again.data) == []
    for sim_name, sim in sims.items():
        assert writes(sim_name, sim, BOOKKEEPING.get(sim_name, ())) == [], sim_name
    assert caddy_helpers.writes(caddy) == caddy_writes

    overrides.remove()
    caddy_writes = clear(stack)
    preview = orch(salt_run_cli, test=True, sls="orch.hecate")
    assert preview.returncode == 0, preview
    for sim_name, sim in sims.items():
        assert writes(sim_name, sim) == [], sim_name
    assert caddy_helpers.writes(caddy) == caddy_writes
    rows = hecate_plan.rows(preview.data)
    assert [r["change"] for r in rows if r["step"] == "dns_prune"] == [f"-{domain} A, -{domain} AAAA"]
    assert [r["step"] for r in rows if r["step"] == "dns"] == []
    predicted = objects(preview)

    removed = orch(salt_run_cli, sls="orch.hecate")
    assert removed.returncode == 0, removed
    assert objects(removed) == predicted
    records = _hecate_rrsets(hetzner, "cybermonkey.dev")
    assert f"{name}/A" not in records and f"{name}/AAAA" not in records
    assert not any(domain in json.dumps(r.get("match")) for r in managed_routes(caddy))
    assert _foreign_rrsets(hetzner) == foreign  # never touched, whatever ran
