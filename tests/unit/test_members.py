"""
Membership (hecate:members): the targets hecate builds, evaluated by Salt's own compound
matchers on both sides (the master's, from accepted keys and cached grains; the minion's,
from its own id and grains), the master's report, and the schema of the key.
"""

import os

import pytest
import salt.cache
import salt.config
import salt.loader
import salt.utils.minions

import hecate_members as hm
import hecate_schema

LAB = {"hecate-edge": ["cloud"], "bionicgpt-node": ["local", "new-node*"]}
GRAINS = {
    "cloud": {"roles": ["hecate-edge"], "hecate_env": "lab"},
    "local": {"roles": ["bionicgpt-node"], "hecate_env": "lab"},
    "new-node-1": {"roles": ["bionicgpt-node"], "hecate_env": "lab"},
    # claims the local role in the lab by its own grains; nobody listed it
    "intruder": {"roles": ["bionicgpt-node"], "hecate_env": "lab"},
    # a member of another environment
    "local-prod": {"roles": ["bionicgpt-node"], "hecate_env": "prod"},
}


@pytest.fixture(scope="module")
def master_opts(tmp_path_factory):
    """A master's view: accepted keys and the grains cache, as the master keeps them."""
    root = str(tmp_path_factory.mktemp("master"))
    opts = salt.config.master_config(None)
    opts.update({"root_dir": root, "pki_dir": f"{root}/pki", "cachedir": f"{root}/cache",
                 "sock_dir": f"{root}/sock", "minion_data_cache": True})
    os.makedirs(f"{root}/pki/minions")
    cache = salt.cache.factory(opts)
    for mid, grains in GRAINS.items():
        with open(f"{root}/pki/minions/{mid}", "w", encoding="ascii") as fh:
            fh.write("-----BEGIN PUBLIC KEY-----\nx\n-----END PUBLIC KEY-----\n")
        cache.store("grains", mid, dict(grains, id=mid))
    return opts


def on_master(opts, tgt):
    return sorted(salt.utils.minions.CkMinions(opts).check_minions(tgt, "compound")["minions"])


def on_minion(mid, tgt):
    """What the minion ``mid`` decides when a job with this target reaches it."""
    opts = salt.config.minion_config(None)
    opts.update({"id": mid, "grains": dict(GRAINS[mid], id=mid)})
    return salt.loader.matchers(opts)["compound_match.match"](tgt, opts=opts, minion_id=mid)


def test_targets_have_the_grains_and_the_listing(master_opts):
    edge = hm.target("lab", LAB, "hecate-edge")
    node = hm.target("lab", LAB, "bionicgpt-node")
    both = hm.target("lab", LAB)
    assert node == "G@roles:bionicgpt-node and G@hecate_env:lab and ( local or new-node* )"
    assert on_master(master_opts, edge) == ["cloud"]
    assert on_master(master_opts, node) == ["local", "new-node-1"]
    assert on_master(master_opts, both) == ["cloud", "local", "new-node-1"]
    for mid in GRAINS:
        assert on_minion(mid, node) is (mid in ("local", "new-node-1")), mid
        assert on_minion(mid, both) is (mid in ("cloud", "local", "new-node-1")), mid


def test_a_role_nobody_is_listed_for_targets_nobody(master_opts):
    for tgt in (hm.target("lab", {"hecate-edge": ["cloud"]}, "bionicgpt-node"), hm.target("lab", {}),
                hm.target(None, LAB, "hecate-edge")):
        assert on_master(master_opts, tgt) == [], tgt
        assert not any(on_minion(mid, tgt) for mid in GRAINS), tgt
    assert on_master(master_opts, hm.target("lab", {"hecate-edge": ["cloud"]})) == ["cloud"]


def test_the_one_member_is_the_first_the_master_has_grains_for(master_opts):
    """hecate.one_member's choice: sorted first of the cached matches, never an unheard-of key."""
    node = hm.one_known(master_opts, hm.target("lab", LAB, "bionicgpt-node"))
    assert node == f"( {hm.target('lab', LAB, 'bionicgpt-node')} ) and L@local"
    assert on_master(master_opts, node) == ["local"]
    assert [mid for mid in GRAINS if on_minion(mid, node)] == ["local"]
    assert on_master(master_opts, hm.one_known(master_opts, hm.target("lab", LAB, "hecate-edge"))) == ["cloud"]
    assert hm.one_known(master_opts, hm.target("lab", {}, "hecate-edge")) == ""
    # an accepted key the master has no grains for (never connected) and sorts first by id:
    # the one member must not be it
    unheard = os.path.join(master_opts["pki_dir"], "minions", "new-node-0")
    with open(unheard, "w", encoding="ascii") as fh:
        fh.write("-----BEGIN PUBLIC KEY-----\nx\n-----END PUBLIC KEY-----\n")
    try:
        tgt = hm.target("lab", {"bionicgpt-node": ["new-node*"]}, "bionicgpt-node")
        assert on_master(master_opts, hm.one_known(master_opts, tgt)) == ["new-node-1"]
    finally:
        os.unlink(unheard)
    # a master that keeps no grains cache knows nobody: the step falls back to Salt's subset
    assert hm.one_known(dict(master_opts, minion_data_cache=False), hm.target("lab", LAB, "hecate-edge")) == ""


def test_master_reports_claimants_and_listed_minions_without_grains(master_opts):
    claimed, accepted = hm.claims(master_opts, "lab")
    assert claimed == {"hecate-edge": ["cloud"], "bionicgpt-node": ["intruder", "local", "new-node-1"]}
    listing = {"hecate-edge": ["cloud", "local"], "bionicgpt-node": ["local"]}
    report = hm.resolve("lab", listing, claimed, accepted)
    assert report["members"] == {"hecate-edge": ["cloud"], "bionicgpt-node": ["local"]}
    assert report["not_members"] == {"intruder": ["bionicgpt-node"], "new-node-1": ["bionicgpt-node"]}
    text = "\n".join(report["warnings"])
    assert ("minion intruder claims roles bionicgpt-node in hecate_env lab (its own grains) but is "
            "not listed in hecate:members: never targeted, never a WireGuard peer") in text
    assert "hecate:members:hecate-edge: local listed but without the grains roles:hecate-edge" in text
    nobody = hm.resolve("lab", {"hecate-edge": ["edge-9"]}, claimed, accepted)["warnings"]
    assert "hecate:members:bionicgpt-node: lists no minion: the steps for bionicgpt-node target nobody" in nobody
    assert any("no accepted minion with the grains roles:hecate-edge and hecate_env:lab matches edge-9" in w
               for w in nobody)


def test_members_sharing_a_default_tunnel_address_are_an_error():
    pillar = {"bionicgpt": {"wireguard": {"local": {"address": "10.88.0.2"},
                                          "nodes": {"new-node-1": {"address": "10.88.0.3"}}}}}
    assert hm.address_problems(pillar, {"bionicgpt-node": ["local", "new-node-1"]}) == []
    (problem,) = hm.address_problems(pillar, {"bionicgpt-node": ["local", "local-2", "new-node-1"]})
    assert problem[0] == "bionicgpt:wireguard:nodes"
    assert "minions local, local-2 are members of bionicgpt-node without their own tunnel address: " \
           "all would take 10.88.0.2 (bionicgpt:wireguard:local:address)" in problem[1]


def test_schema_of_members():
    def errors(members):
        pillar = {"hecate": {"global": {"domain": "example.com", "environment": "lab"}, "members": members},
                  "bionicgpt": {}}
        return hecate_schema.validate(pillar, "lab")

    assert errors({"hecate-edge": ["edge-1.example.com"], "bionicgpt-node": ["gpu-[12]*"]}) == []
    got = errors({"hecate-edge": ["a b", "x@y", "G@roles:x", "or"], "bionicgpt-node": "local", "web": []})
    assert "hecate:members:hecate-edge:0: 'a b' does not match the expected format" in got
    assert "hecate:members:hecate-edge:1: 'x@y' does not match the expected format" in got
    assert "hecate:members:hecate-edge:2: 'G@roles:x' does not match the expected format" in got
    assert "hecate:members:hecate-edge:3: 'or' is a compound target operator, not a minion id or glob" in got
    assert "hecate:members:bionicgpt-node: expected array, got str" in got
    assert "hecate:members:web: unknown key (not in the schema)" in got
    # malformed patterns never reach a target
    assert hm.members({"hecate": {"members": {"hecate-edge": ["a b", "or", "cloud"]}}})["hecate-edge"] == ["cloud"]
    assert hm.required({"hecate": {}}) and hm.required({"hecate": {"members": {}}}) == []


def test_edges_sharing_the_default_endpoint_are_an_error_and_blind_node_pairs_a_warning():
    """
    Several edges: each needs its own public endpoint (others dial it); local nodes without
    an endpoint have no tunnel between them, which validate warns about.
    """
    pillar = {"bionicgpt": {"wireguard": {
        "cloud": {"address": "10.88.0.1", "endpoint": "cloud.example.com:51820"}, "local": {"address": "10.88.0.2"},
        "nodes": {"edge-2": {"address": "10.88.0.3", "endpoint": "edge-2.example.com:51820"},
                  "edge-3": {"address": "10.88.0.4"}, "node-2": {"address": "10.88.0.5"},
                  "node-3": {"address": "10.88.0.6", "endpoint": "192.168.1.6:51820"}}}}}
    assert hm.address_problems(pillar, {"hecate-edge": ["edge-1", "edge-2"]}) == []
    (problem,) = hm.address_problems(pillar, {"hecate-edge": ["edge-1", "edge-2", "edge-3"]})
    assert problem == ("bionicgpt:wireguard:nodes",
                       "edges edge-1, edge-3 have no endpoint of their own: all would be dialled at "
                       "cloud.example.com:51820 (bionicgpt:wireguard:cloud:endpoint); give each its public "
                       "host:port under bionicgpt:wireguard:nodes:<minion id>:endpoint")
    assert hm.tunnel_warnings(pillar, {"bionicgpt-node": ["node-1", "node-3"]}) == []
    (warning,) = hm.tunnel_warnings(pillar, {"bionicgpt-node": ["node-1", "node-2", "node-3"]})
    assert warning.startswith("bionicgpt:wireguard:nodes: local nodes node-1, node-2 have no endpoint: "
                              "no tunnel between any two of them")
