"""
The lab's pillar tree (lab/pillar/) and the guard that keeps tests off the operator's pillar/
(tests/conftest.py: an audit hook on ``open`` plus a check of the salt-master's pillar_roots).
"""

import os
import shutil

import pytest
import yaml

from lab import topology
from tests import conftest, pillar_files


def test_the_lab_reads_its_own_pillar_tree(tmp_path):
    roots = topology.pillar_roots(str(tmp_path))
    assert roots == {"base": [topology.PILLAR_DIR, str(tmp_path)]}
    assert os.path.join(topology.REPO, "lab", "pillar") == topology.PILLAR_DIR
    conftest.assert_lab_pillar_roots({"pillar_roots": roots})
    with pytest.raises(AssertionError, match="operator's pillar"):
        conftest.assert_lab_pillar_roots({"pillar_roots": {"base": [topology.OPERATOR_PILLAR_DIR]}})


def test_a_test_cannot_read_the_operators_pillar(operator_pillar_guard, tmp_path):
    """Every route a test could take in-process is refused, and recorded even if swallowed."""
    start = len(operator_pillar_guard.reads)
    top = os.path.join(topology.OPERATOR_PILLAR_DIR, "top.sls")
    try:
        with pytest.raises(PermissionError, match="operator's pillar"), open(top, encoding="utf-8") as fh:
            yaml.safe_load(fh)
        with pytest.raises(PermissionError):
            os.open(top, os.O_RDONLY)
        with pytest.raises(shutil.Error, match="operator's pillar"):  # copytree collects the refusals
            shutil.copytree(topology.OPERATOR_PILLAR_DIR, tmp_path / "copy")
        with pytest.raises(PermissionError):  # through a path that is not spelt like REPO/pillar
            open(os.path.join(topology.REPO, "lab", "..", "pillar", "hecate.sls"), "rb").close()
        assert len(operator_pillar_guard.reads) - start >= 4
        # the lab's tree and other files are not affected
        with open(os.path.join(topology.PILLAR_DIR, "top.sls"), encoding="utf-8") as fh:
            assert "lab_runtime" in fh.read()
    finally:
        del operator_pillar_guard.reads[start:]  # this test's refusals were expected


@pytest.mark.operator_pillar
def test_a_marked_test_may_read_it(operator_pillar_guard):
    assert operator_pillar_guard.allowed is True
    with open(os.path.join(topology.OPERATOR_PILLAR_DIR, "top.sls"), encoding="utf-8") as fh:
        assert fh.read()


def test_the_lab_overlay_and_its_runtime_hooks_are_the_labs():
    """What belongs to the lab only: its overlay (test users, hcwg0, nothing installed) and the
    per-session pillar files its top file includes."""
    lab = pillar_files.compiled("lab")
    users = lab["bionicgpt"]["authentik"]["test_users"]
    assert set(users) == set(topology.LAB_USERS)
    mount, path = topology.LAB_USERS_PATH
    assert all(u["password"] == {"vault": f"{mount}/{path}", "key": name} for name, u in users.items())
    assert lab["bionicgpt"]["wireguard"]["interface"] == "hcwg0"
    with open(os.path.join(topology.PILLAR_DIR, "top.sls"), encoding="utf-8") as fh:
        top = fh.read()
    assert "- lab_runtime" in top and "- lab_overrides" in top
    for env in ("dev", "staging", "prod"):
        assert "test_users" not in pillar_files.compiled(env)["bionicgpt"]["authentik"], env


def test_lab_chat_domain_is_the_lab_pillars():
    """The lab probes the chat route by Host header: the domain of the lab's pillar."""
    assert pillar_files.compiled("lab")["bionicgpt"]["domain"] == topology.LAB_CHAT_DOMAIN


def test_lab_membership_comes_from_the_runtime_pillar():
    """The lab's overlay lists no members; lab_runtime.sls does, from the minions the lab starts."""
    assert "members" not in pillar_files.render("env/lab.sls").get("hecate", {})
    runtime = topology.runtime_pillar({})
    assert runtime["hecate"]["members"] == {"hecate-edge": ["cloud"], "bionicgpt-node": ["local"]}


def test_the_lab_of_several_edges_and_nodes_is_valid_pillar(tmp_path):
    """
    `python -m lab up --edges 2 --nodes 3`: its runtime pillar lists the five members and
    gives each its tunnel address and endpoint, one Consul server and one Nomad server on
    edge-1, the GPU box node-1; each edge gets its own Caddy in lab_minions/<id>.sls. The
    merged pillar passes the schema and hecate.validate's membership checks (no shared
    address or endpoint, servers matching bootstrap_expect, no node pair without a tunnel).
    """
    import salt.utils.dictupdate  # pylint: disable=import-outside-toplevel

    import hecate_agents_schema  # pylint: disable=import-outside-toplevel
    import hecate_members  # pylint: disable=import-outside-toplevel
    import hecate_schema  # pylint: disable=import-outside-toplevel

    assert topology.minions() == topology.MINIONS
    minion_map = topology.minions(edges=2, nodes=3)
    assert sorted(minion_map) == ["edge-1", "edge-2", "node-1", "node-2", "node-3"]
    edges = {mid: {"caddy_admin": f"http://127.0.0.1:{2000 + i}", "caddy_http_port": 8000 + i,
                   "caddy_state_dir": str(tmp_path / mid)} for i, mid in enumerate(("edge-1", "edge-2"))}
    addresses = {"minions": minion_map, "edges": edges, "caddy_admin": edges["edge-1"]["caddy_admin"],
                 "caddy_http_port": 8000}
    topology.write_runtime_pillar(str(tmp_path / "pillar"), addresses)
    with open(tmp_path / "pillar" / "lab_runtime.sls", encoding="utf-8") as fh:
        runtime = yaml.safe_load(fh)
    assert runtime["hecate"]["members"] == {"hecate-edge": ["edge-1", "edge-2"],
                                            "bionicgpt-node": ["node-1", "node-2", "node-3"]}
    resolved = runtime["hecate"]["members"]
    for mid in minion_map:
        pillar = salt.utils.dictupdate.merge(pillar_files.compiled("lab"), runtime, strategy="smart",
                                             merge_lists=False)
        own = tmp_path / "pillar" / "lab_minions" / f"{mid}.sls"
        assert own.exists() is mid.startswith("edge")
        if own.exists():
            pillar = salt.utils.dictupdate.merge(pillar, yaml.safe_load(own.read_text()), strategy="smart",
                                                 merge_lists=False)
            assert pillar["hecate"]["connections"]["caddy"]["admin_url"] == edges[mid]["caddy_admin"]
            port = edges[mid]["caddy_http_port"]
            assert pillar["bionicgpt"]["verify"]["probe"]["url"] == f"http://127.0.0.1:{port}/ping"
        assert hecate_schema.validate(pillar, "lab") == [], mid
        assert hecate_members.address_problems(pillar, resolved) == []
        assert hecate_members.tunnel_warnings(pillar, resolved) == []
        assert hecate_agents_schema.server_problems(pillar, resolved) == []
        assert hecate_agents_schema.server_warnings(pillar, resolved) == []
    nomad = pillar["bionicgpt"]["nomad"]["agent"]
    assert nomad["nodes"] == {"node-1": {"client": {"meta": {"gpu": "true"}}}} and nomad["server"]["enabled"] is False
    assert pillar["hecate"]["consul"]["agent"]["nodes"] == {"edge-2": {"server": False}}
