"""
Several edges and several nodes (issue 19): `salt-run state.orch orch.bionicgpt` on two
edges and three local nodes - one salt-master and five minions of pytest-salt-factories,
each edge with its own real Caddy, the lab's simulators - as `python -m lab up --edges 2
--nodes 3` has them (lab.topology.minions, several_pillar, lab_minions/<id>.sls).

1. The run deploys everything: both edges' Caddies get the same routes; every member's
   WireGuard config lists its mesh peers and its Consul agent joins the one Consul server
   (edge-1, two edges: one server); the GPU box node-1's Nomad client says gpu = "true" and
   the llm job is constrained to it; the steps that write a shared system ran on one member.
2. A new route, with edge-2's Caddy stopped: the run fails on edge-2 only; edge-1 applied
   the new route and keeps it (the rollback spares it), and the record of the failed run
   says which edge serves which routes.
3. edge-2's Caddy back (with the routes it had): a re-run brings it up to date, and one more
   run changes nothing, writes nothing to either Caddy.

Own simulators, master and minions (not the session's); four orchestration runs on five
minions: a few minutes on an idle machine, marked ``long``.
"""

import contextlib
import json
import os
import re

import pytest
import yaml

import hecate_plan
from lab import caddy as lab_caddy
from lab import topology
from lab.sim import SimHandle
from tests import caddy_helpers
from tests.conftest import _common_overrides, assert_lab_pillar_roots
from tests.orch_helpers import failures, managed_routes, objects, orch, steps

pytestmark = [pytest.mark.long, pytest.mark.timeout(1500)]

MINIONS = topology.minions(edges=2, nodes=3)
EDGES = ("edge-1", "edge-2")
NODES = ("node-1", "node-2", "node-3")
NEW_ROUTE = {"domain": "multi-new.cybermonkey.dev", "service": "multi-new", "backend": "127.0.0.1:9"}


class Several:
    """The lab of several edges and nodes: simulators, Caddies, pillar, master, minions."""

    def __init__(self, workdir, lab_secrets):
        self.workdir, self.lab_secrets = workdir, lab_secrets
        self.sims, self.caddies = {}, {}
        self.pillar_dir = os.path.join(workdir, "pillar")
        self.agents_dir = os.path.join(workdir, "agents")

    def start_services(self, stack):
        opts = self.lab_secrets
        self.sims["vault"] = stack.enter_context(_running(SimHandle(
            "vault", os.path.join(self.workdir, "vault"), topology.vault_options(opts)).start()))
        self.sims["consul"] = stack.enter_context(_running(SimHandle(
            "consul", os.path.join(self.workdir, "consul"), topology.consul_options(opts)).start()))
        self.sims["nomad"] = stack.enter_context(_running(SimHandle("nomad", os.path.join(self.workdir, "nomad"),
            topology.nomad_options(consul_url=self.sims["consul"].url, consul_token=opts["nomad_consul_token"],
                                   lab_secrets=opts, vault_url=self.sims["vault"].url,
                                   vault_token=opts["nomad_vault_token"],
                                   data_dir=os.path.join(self.workdir, "nomad-tasks"),
                                   node_meta=topology.node_meta(MINIONS))).start()))
        self.sims["authentik"] = stack.enter_context(_running(SimHandle(
            "authentik", os.path.join(self.workdir, "authentik"), topology.authentik_options(opts)).start()))
        self.sims["hetzner"] = stack.enter_context(_running(SimHandle(
            "hetzner", os.path.join(self.workdir, "hetzner"), topology.hetzner_options(opts)).start()))
        self.sims["nomad"].token = opts["nomad_management_token"]
        for mid in EDGES:
            caddy = lab_caddy.Caddy(os.path.join(self.workdir, f"caddy-{mid}")).start()
            stack.callback(caddy.stop)
            self.caddies[mid] = caddy
        edges = {mid: {"caddy_admin": c.admin_url, "caddy_http_port": c.http_port,
                       "caddy_state_dir": os.path.join(self.workdir, f"caddy-state-{mid}")}
                 for mid, c in self.caddies.items()}
        self.addresses = {
            "minions": MINIONS, "edges": edges,
            "caddy_admin": edges["edge-1"]["caddy_admin"], "caddy_http_port": edges["edge-1"]["caddy_http_port"],
            "vault": self.sims["vault"].url, "consul": self.sims["consul"].url, "nomad": self.sims["nomad"].url,
            "authentik": self.sims["authentik"].url, "hetzner": self.sims["hetzner"].url,
            "agents_dir": self.agents_dir,
        }
        topology.write_runtime_pillar(self.pillar_dir, self.addresses)
        topology.seed_prerequisites(self.sims["vault"].url, opts["vault_root_token"], opts)

    def start_salt(self, stack, salt_factories):
        overrides = _common_overrides(self.lab_secrets)
        overrides.update({"file_roots": topology.file_roots(),
                          "pillar_roots": topology.pillar_roots(self.pillar_dir),
                          "fileserver_followsymlinks": True})
        assert_lab_pillar_roots(overrides)
        master = salt_factories.salt_master_daemon("multinode-master", overrides=overrides)
        stack.enter_context(master.started())
        for mid, grains in sorted(MINIONS.items()):
            minion = _common_overrides(self.lab_secrets)
            minion["grains"] = dict(grains)
            stack.enter_context(master.salt_minion_daemon(mid, overrides=minion).started())
        self.salt_run_cli = master.salt_run_cli(timeout=600)
        self.salt_cli = master.salt_cli(timeout=300)

    def overrides(self, data):
        """lab_overrides.sls of this lab (the top file includes it after everything else)."""
        with open(os.path.join(self.pillar_dir, "lab_overrides.sls"), "w", encoding="utf-8") as fh:
            json.dump(data, fh)  # JSON is YAML

    def routes(self):
        """The routes of the runtime pillar (the Authentik route to the simulator)."""
        with open(os.path.join(self.pillar_dir, "lab_runtime.sls"), encoding="utf-8") as fh:
            return yaml.safe_load(fh)["hecate"]["reverse_proxy"]["caddy"]["routes"]

    def agent_file(self, mid, *parts):
        with open(os.path.join(self.agents_dir, mid, *parts), encoding="utf-8") as fh:
            return fh.read()

    def history(self):
        ret = self.salt_run_cli.run("hecate.history", "env=lab", "limit=1")
        assert ret.data["result"] is True, ret
        return ret.data["records"][0]


@contextlib.contextmanager
def _running(handle):
    try:
        yield handle
    finally:
        handle.stop()


@pytest.fixture(scope="module")
def several(tmp_path_factory, salt_factories, lab_secrets):
    lab = Several(str(tmp_path_factory.mktemp("multinode")), lab_secrets)
    with contextlib.ExitStack() as stack:
        lab.start_services(stack)
        lab.start_salt(stack, salt_factories)
        yield lab


def _minions_of(step):
    """The minions a salt.state step ran on: those with changes, and those it says it changed nothing on."""
    ran = set((step.get("changes") or {}).get("ret") or {})
    match = re.search(r"No changes made to ([^.]+(?:\.[^ .][^.]*)*)\.$", str(step.get("comment", "")))
    if match:
        ran.update(m.strip() for m in match.group(1).split(","))
    return sorted(ran)


def test_two_edges_three_nodes_deploy_fail_on_one_edge_and_converge(several):
    lab = several
    # -- 1. everything, on every member -------------------------------------------------------------
    applied = orch(lab.salt_run_cli)
    assert applied.returncode == 0, failures(applied)
    run = steps(applied)
    routes = {mid: managed_routes(c) for mid, c in lab.caddies.items()}
    assert routes["edge-1"] and routes["edge-1"] == routes["edge-2"]
    for mid, caddy in lab.caddies.items():
        resp = caddy_helpers.through(caddy, topology.LAB_CHAT_DOMAIN, "/")
        assert resp.status_code == 200 and "oauth2-proxy" in resp.text, mid
    # per-member steps on every member of the role, shared systems from one member
    assert _minions_of(run["caddy"]) == list(EDGES) and _minions_of(run["verify"]) == list(EDGES)
    assert _minions_of(run["consul_agents"]) == sorted(MINIONS)
    assert _minions_of(run["nomad_agent"]) == list(NODES)
    # (the first member by id, picked on the master: hecate.one_member, not Salt's subset probe)
    for step_id, first in (("nomad_jobs", "node-1"), ("secrets_node", "node-1"), ("authentik", "edge-1"),
                           ("secrets_edge", "edge-1"), ("dns", "edge-1")):
        assert _minions_of(run[step_id]) == [first], step_id
    # the mesh: edges peer with everybody, nodes with the edges and the other nodes (LAN endpoints)
    for mid in MINIONS:
        conf = lab.agent_file(mid, "wireguard", "hcwg0.conf")
        peers = sorted(line[2:] for line in conf.splitlines()[4:] if line.startswith("# "))
        assert peers == sorted(set(MINIONS) - {mid}), (mid, conf)
        for edge in set(EDGES) - {mid}:
            assert f"Endpoint = 192.0.2.{10 + int(edge[-1])}:51820" in conf, mid
    # Consul: one server (edge-1: two edges, bootstrap_expect 1), every other agent joins it
    consul = {mid: json.loads(lab.agent_file(mid, "consul.d", "consul.json")) for mid in MINIONS}
    assert consul["edge-1"]["server"] is True and consul["edge-1"]["bootstrap_expect"] == 1
    assert "retry_join" not in consul["edge-1"]
    for mid in set(MINIONS) - {"edge-1"}:
        assert consul[mid]["server"] is False and consul[mid]["retry_join"] == ["10.88.0.11"], mid
    # Nomad: clients on the nodes (servers on the edges), the GPU box says so, the llm job goes there
    for mid in NODES:
        hcl = lab.agent_file(mid, "nomad.d", "nomad.hcl")
        assert "\nserver {" not in hcl and ('gpu' in hcl) is (mid == "node-1"), (mid, hcl)
    llm = lab.salt_cli.run("nomad.job_status", "bionicgpt-llm", minion_tgt="node-2").data
    assert llm["Status"] == "running"
    spec = lab.salt_cli.run("nomad.job", "bionicgpt-llm", minion_tgt="node-2").data
    constraints = [(c["LTarget"], c["RTarget"]) for c in spec["TaskGroups"][0]["Constraints"] or []]
    assert ("${meta.gpu}", "true") in constraints
    record = lab.history()
    assert record["status"] == "deployed"
    versions = record["caddy_routes"]
    assert set(versions) == set(EDGES) and versions["edge-1"]["sha256"] == versions["edge-2"]["sha256"]

    # -- 2. a new route while edge-2's Caddy is down: that edge fails, the other keeps it ---------------
    lab.overrides({"hecate": {"reverse_proxy": {"caddy": {"routes": lab.routes() + [NEW_ROUTE]}}}})
    lab.caddies["edge-2"].stop()
    failed = orch(lab.salt_run_cli)
    assert failed.returncode != 0
    where = {(step_id, who.split(":")[0]) for step_id, who, _ in failures(failed)}
    assert where == {("caddy", "edge-2")}, failures(failed)
    run = steps(failed)
    rollback = run["caddy_rollback"]["changes"]["ret"]
    assert "applied on this edge and stay" in rollback["edge-1"]["comment"], rollback
    assert run["verify"]["result"] is False and run["record"]["result"] is not True
    one = managed_routes(lab.caddies["edge-1"])
    assert "hecate.route.multi-new" in {r["@id"] for r in one}
    record = lab.history()
    run_id = record["run_id"]
    assert record["status"] == "failed" and record["step"] == "caddy"
    assert record["caddy_routes"]["edge-1"]["last_write"]["run"] == run_id
    assert record["caddy_routes"]["edge-1"]["routes"] == len(one)
    assert "unreachable" in record["caddy_routes"]["edge-2"]["error"]
    assert record["caddy_routes"]["edge-2"]["last_write"]["run"] != run_id
    assert lab.salt_run_cli.run("hecate.unlock", "env=lab", "run_id=check").data["comment"] == "lock was not held"

    # -- 3. edge-2 back with the routes it had: a re-run updates it, one more changes nothing -----------
    lab.caddies["edge-2"].start()
    assert managed_routes(lab.caddies["edge-2"]) == routes["edge-2"]
    again = orch(lab.salt_run_cli)
    assert again.returncode == 0, failures(again)
    assert {mid for mid, key in objects(again) if key.startswith("caddy_routes_")} == {"edge-2"}
    assert managed_routes(lab.caddies["edge-2"]) == managed_routes(lab.caddies["edge-1"]) == one
    versions = lab.history()["caddy_routes"]
    assert versions["edge-1"]["sha256"] == versions["edge-2"]["sha256"]
    writes = {mid: caddy_helpers.writes(c) for mid, c in lab.caddies.items()}
    converged = orch(lab.salt_run_cli)
    assert converged.returncode == 0, failures(converged)
    assert hecate_plan.rows(converged.data) == []
    assert {mid: caddy_helpers.writes(c) for mid, c in lab.caddies.items()} == writes
