"""WireGuard util: keys, settings, pillar checks, peers, config rendering, dump parsing."""

import base64
import os
import shutil
import stat
import subprocess

import pytest
import salt.exceptions

import hecate_wireguard_config
import hecate_wireguard_keys
import hecate_wireguard_process
import hecate_wireguard_schema

CLOUD_GRAINS = {"id": "cloud", "roles": ["hecate-edge"], "hecate_env": "lab"}
LOCAL_GRAINS = {"id": "local", "roles": ["bionicgpt-node"], "hecate_env": "lab"}


def pillar(tmp_path=None, **over):
    conf = {
        "interface": "wg0",
        "listen_port": 51820,
        "network": "10.88.0.0/24",
        "config_dir": str(tmp_path) if tmp_path else "/etc/wireguard",
        "cloud": {"address": "10.88.0.1", "endpoint": "203.0.113.7:51820"},
        "local": {"address": "10.88.0.2"},
    }
    conf.update(over)
    # the master's say: who is a member of each role (a, b, c: test_peer_problems_...)
    members = {"hecate-edge": ["cloud"], "bionicgpt-node": ["local*", "a", "b", "c"]}
    return {"bionicgpt": {"wireguard": conf}, "hecate": {"members": members}}


def key():
    return hecate_wireguard_keys.public_from_private(hecate_wireguard_keys.new_private_key())


# -- keys ------------------------------------------------------------------------------------


def test_private_key_is_clamped_and_public_key_derives():
    priv = base64.b64decode(hecate_wireguard_keys.new_private_key())
    assert len(priv) == 32 and priv[0] & 7 == 0 and priv[31] & 0x80 == 0 and priv[31] & 0x40
    assert hecate_wireguard_keys.valid_key(hecate_wireguard_keys.public_from_private(base64.b64encode(priv).decode()))


@pytest.mark.skipif(not shutil.which("wg"), reason="wg (wireguard-tools) is not installed")
def test_public_key_matches_wg_pubkey():
    private = subprocess.run(["wg", "genkey"], capture_output=True, text=True, check=True).stdout
    expected = subprocess.run(["wg", "pubkey"], input=private, capture_output=True, text=True, check=True).stdout
    assert hecate_wireguard_keys.public_from_private(private) == expected.strip()
    ours = hecate_wireguard_keys.new_private_key()
    theirs = subprocess.run(["wg", "pubkey"], input=ours, capture_output=True, text=True, check=True).stdout
    assert hecate_wireguard_keys.public_from_private(ours) == theirs.strip()


def test_ensure_key_makes_a_private_file_once(tmp_path):
    key_file = str(tmp_path / "conf" / "wg0.key")
    public, created = hecate_wireguard_keys.ensure_key(key_file)
    assert created and hecate_wireguard_keys.valid_key(public)
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(key_file)).st_mode) == 0o700
    with open(key_file, encoding="ascii") as fh:
        private = fh.read().strip()
    assert private != public and hecate_wireguard_keys.public_from_private(private) == public
    again, created = hecate_wireguard_keys.ensure_key(key_file)
    assert (again, created) == (public, False)
    os.chmod(key_file, 0o644)
    assert hecate_wireguard_keys.key_file_problems(key_file)
    hecate_wireguard_keys.ensure_key(key_file)
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    new, created = hecate_wireguard_keys.ensure_key(key_file, force=True)
    assert created and new != public


def test_garbage_key_file_error_does_not_echo_it(tmp_path):
    key_file = tmp_path / "wg0.key"
    key_file.write_text("not-a-key-but-maybe-a-secret\n")
    with pytest.raises(salt.exceptions.CommandExecutionError) as exc:
        hecate_wireguard_keys.read_public_key(str(key_file))
    assert "not-a-key" not in str(exc.value) and "wg0.key" in str(exc.value)


# -- settings and pillar checks ------------------------------------------------------------------------


def test_settings_by_role(tmp_path):
    cloud = hecate_wireguard_schema.settings(pillar(tmp_path), CLOUD_GRAINS)
    assert (cloud["role"], cloud["address"], cloud["cidr"]) == ("cloud", "10.88.0.1", "10.88.0.1/24")
    assert cloud["key_file"] == str(tmp_path / "wg0.key")
    assert cloud["config_file"] == str(tmp_path / "wg0.conf")
    # the mesh: every member of the environment, of either role
    mesh = ("G@hecate_env:lab and ( ( G@roles:hecate-edge and ( cloud ) ) or "
            "( G@roles:bionicgpt-node and ( local* or a or b or c ) ) )")
    assert hecate_wireguard_schema.peer_target(cloud) == mesh
    assert (
        hecate_wireguard_schema.peer_target(cloud, "bionicgpt-node")
        == "G@roles:bionicgpt-node and G@hecate_env:lab and ( local* or a or b or c )"
    )
    local = hecate_wireguard_schema.settings(pillar(tmp_path, nodes={"local": {"address": "10.88.0.9"}}), LOCAL_GRAINS)
    assert (local["role"], local["address"]) == ("local", "10.88.0.9")
    assert local["address_key"] == "bionicgpt:wireguard:nodes:local:address"
    assert hecate_wireguard_schema.peer_target(local) == mesh
    edges = hecate_wireguard_schema.peer_target(local, "hecate-edge")
    assert edges == "G@roles:hecate-edge and G@hecate_env:lab and ( cloud )"


def test_settings_errors_name_the_key():
    with pytest.raises(salt.exceptions.SaltInvocationError, match="bionicgpt:wireguard is not set"):
        hecate_wireguard_schema.settings({}, CLOUD_GRAINS)
    with pytest.raises(salt.exceptions.SaltInvocationError, match="neither roles"):
        hecate_wireguard_schema.settings(pillar(), {"id": "x", "roles": ["web"]})
    bad = pillar(local={"address": "10.99.0.2"})
    with pytest.raises(salt.exceptions.SaltInvocationError, match="local:address: 10.99.0.2 is outside"):
        hecate_wireguard_schema.settings(bad, LOCAL_GRAINS)


def test_check_pillar_addresses_and_duplicates():
    bad = pillar(
        local={"address": "10.88.0.1"},
        nodes={"n2": {"address": "10.88.0.255"}, "n3": {"address": "nope"}},
        extra_peers=[{"name": "laptop", "public_key": "short", "allowed_ips": ["10.88.0.50/32", "x/y"]}],
    )
    bad["bionicgpt"]["wireguard"]["cloud"]["endpoint"] = "no-port"
    errors = dict(hecate_wireguard_schema.check_pillar(bad))
    assert (
        "10.88.0.1 is already used by bionicgpt:wireguard:cloud:address" in errors["bionicgpt:wireguard:local:address"]
    )
    assert "broadcast" in errors["bionicgpt:wireguard:nodes:n2:address"]
    assert "not an IP address" in errors["bionicgpt:wireguard:nodes:n3:address"]
    assert "host:port" in errors["bionicgpt:wireguard:cloud:endpoint"]
    assert "public key" in errors["bionicgpt:wireguard:extra_peers:0:public_key"]
    assert "x/y" in errors["bionicgpt:wireguard:extra_peers:0:allowed_ips:1"]
    assert hecate_wireguard_schema.check_pillar(pillar()) == []
    assert hecate_wireguard_schema.check_pillar(pillar(network="10.88.0.1/24"))[0][0] == "bionicgpt:wireguard:network"


# -- peers and rendering ----------------------------------------------------------------------------------


def test_hub_peers_use_pillar_addresses_not_claims(tmp_path):
    conf = hecate_wireguard_schema.settings(pillar(tmp_path, nodes={"local2": {"address": "10.88.0.3"}}), CLOUD_GRAINS)
    k1, k2 = key(), key()
    peers, problems = hecate_wireguard_config.peers_from_mine(
        conf, {"local2": k2, "local": k1, "cloud": key(), "nokey": None}
    )
    assert problems == []
    assert [(p["name"], p["allowed_ips"], p["endpoint"]) for p in peers] == [
        ("local", ["10.88.0.2/32"], None),
        ("local2", ["10.88.0.3/32"], None),
    ]


def test_a_claimant_is_never_a_peer_nor_takes_an_address(tmp_path):
    """
    A minion that only claims the role by its grains (not in hecate:members) is no peer,
    even when its id sorts first and the mine holds its key; the member keeps its address.
    """
    data = pillar(tmp_path)
    data["hecate"]["members"]["bionicgpt-node"] = ["local"]
    conf = hecate_wireguard_schema.settings(data, CLOUD_GRAINS)
    real, claimant = key(), key()
    peers, problems = hecate_wireguard_config.peers_from_mine(conf, {"aaa-claimant": claimant, "local": real})
    assert problems == []
    assert [(p["name"], p["public_key"], p["address"]) for p in peers] == [("local", real, "10.88.0.2")]
    # the edge of a minion whose pillar lists nobody: no peer target matches, no peers
    del data["hecate"]["members"]
    conf = hecate_wireguard_schema.settings(data, CLOUD_GRAINS)
    assert hecate_wireguard_schema.peer_target(conf) == "G@hecate_env:lab and not *"
    nodes = hecate_wireguard_schema.peer_target(conf, "bionicgpt-node")
    assert nodes == "G@roles:bionicgpt-node and G@hecate_env:lab and not *"
    assert hecate_wireguard_config.peers_from_mine(conf, {"local": real}) == ([], [])


def test_spoke_peer_has_endpoint_and_keepalive(tmp_path):
    conf = hecate_wireguard_schema.settings(pillar(tmp_path), LOCAL_GRAINS)
    hub = key()
    peers, problems = hecate_wireguard_config.peers_from_mine(conf, {"cloud": hub})
    assert problems == []
    assert peers == [
        {
            "name": "cloud",
            "role": "cloud",
            "public_key": hub,
            "address": "10.88.0.1",
            "allowed_ips": ["10.88.0.1/32"],
            "endpoint": "203.0.113.7:51820",
            "persistent_keepalive": 25,
        }
    ]


def test_peer_problems_duplicates_and_garbage(tmp_path):
    conf = hecate_wireguard_schema.settings(pillar(tmp_path), CLOUD_GRAINS)
    same = key()
    peers, problems = hecate_wireguard_config.peers_from_mine(conf, {"a": key(), "b": key(), "c": "garbage"})
    assert [p["name"] for p in peers] == ["a"]
    assert any("minion b would get tunnel address 10.88.0.2" in p and "already used by minion a" in p for p in problems)
    assert any("minion c published something" in p for p in problems)
    conf = hecate_wireguard_schema.settings(
        pillar(tmp_path, nodes={"b": {"address": "10.88.0.3"}},
               extra_peers=[{"name": "laptop", "public_key": same, "allowed_ips": ["10.88.0.50/32"]}]),
        CLOUD_GRAINS,
    )
    _, problems = hecate_wireguard_config.peers_from_mine(conf, {"a": same})
    assert problems == ["peers a and laptop have the same public key"]


def test_render_config_has_no_secret_and_strips_for_wg(tmp_path):
    conf = hecate_wireguard_schema.settings(pillar(tmp_path, mtu=1380), LOCAL_GRAINS)
    hub = key()
    peers, _ = hecate_wireguard_config.peers_from_mine(conf, {"cloud": hub})
    text = hecate_wireguard_config.render_config(conf, peers)
    key_file = str(tmp_path / "wg0.key")
    assert text.splitlines()[3:] == [
        "[Interface]",
        "Address = 10.88.0.2/24",
        "ListenPort = 51820",
        "MTU = 1380",
        f"PostUp = wg set %i private-key {key_file}",
        "",
        "# cloud",
        "[Peer]",
        f"PublicKey = {hub}",
        "AllowedIPs = 10.88.0.1/32",
        "Endpoint = 203.0.113.7:51820",
        "PersistentKeepalive = 25",
    ]
    assert "PrivateKey" not in text
    stripped = hecate_wireguard_config.strip_config(text)
    assert stripped == (
        f"[Interface]\nListenPort = 51820\n[Peer]\nPublicKey = {hub}\nAllowedIPs = 10.88.0.1/32\n"
        "Endpoint = 203.0.113.7:51820\nPersistentKeepalive = 25\n"
    )
    iface, parsed = hecate_wireguard_config.parse_config(text)
    assert iface["address"] == "10.88.0.2/24" and parsed[hub]["endpoint"] == "203.0.113.7:51820"


def test_parse_dump_drops_private_and_preshared_keys():
    priv, pub, peer = hecate_wireguard_keys.new_private_key(), key(), key()
    psk = base64.b64encode(os.urandom(32)).decode()
    dump = (
        f"{priv}\t{pub}\t51820\toff\n"
        f"{peer}\t{psk}\t198.18.0.2:51820\t10.88.0.2/32,10.88.1.0/24\t1700000000\t1234\t5678\t25\n"
        f"{key()}\t(none)\t(none)\t(none)\t0\t0\t0\toff\n"
    )
    out = hecate_wireguard_process.parse_dump(dump)
    assert priv not in repr(out) and psk not in repr(out)
    assert out["public_key"] == pub and out["listen_port"] == 51820 and out["fwmark"] is None
    assert out["peers"][peer] == {
        "preshared_key": True,
        "endpoint": "198.18.0.2:51820",
        "allowed_ips": ["10.88.0.2/32", "10.88.1.0/24"],
        "latest_handshake": 1700000000,
        "transfer_rx": 1234,
        "transfer_tx": 5678,
        "persistent_keepalive": 25,
    }
    with pytest.raises(salt.exceptions.CommandExecutionError):
        hecate_wireguard_process.parse_dump("a\tb\n")


def test_live_changes(tmp_path):
    conf = hecate_wireguard_schema.settings(pillar(tmp_path), LOCAL_GRAINS)
    hub, other, own = key(), key(), key()
    peers, _ = hecate_wireguard_config.peers_from_mine(conf, {"cloud": hub})
    live = {
        "public_key": own,
        "listen_port": 51820,
        "addresses": ["10.88.0.2/24"],
        "up": True,
        "peers": {
            hub: {"allowed_ips": ["10.88.0.1/32"], "persistent_keepalive": 25, "endpoint": "203.0.113.7:51820"},
        },
    }
    assert hecate_wireguard_process.live_changes(conf, peers, live, own) == {}
    live["peers"][other] = {"allowed_ips": ["10.9.9.9/32"], "persistent_keepalive": None, "endpoint": None}
    live["addresses"] = []
    live["up"] = False
    changes = hecate_wireguard_process.live_changes(conf, peers, live, key())
    assert changes["peers"] == {"added": [], "removed": [other], "changed": []}
    assert changes["addresses"] == {"old": [], "new": ["10.88.0.2/24"]}
    assert changes["link"] == {"old": "down", "new": "up"} and "key" in changes


def test_syncconf_input_keeps_the_private_key(tmp_path):
    """`wg syncconf` clears a key missing from its input: the live sync must pass it (via stdin)."""
    conf = hecate_wireguard_schema.settings(pillar(tmp_path), CLOUD_GRAINS)
    public, _ = hecate_wireguard_keys.ensure_key(conf["key_file"])
    peer = key()
    text = hecate_wireguard_config.render_config(
        conf, hecate_wireguard_config.peers_from_mine(conf, {"local": peer})[0]
    )
    got = hecate_wireguard_process._with_private_key(text, conf["key_file"])  # pylint: disable=protected-access
    lines = got.splitlines()
    assert lines[0] == "[Interface]" and lines[1].startswith("PrivateKey = ")
    assert hecate_wireguard_keys.public_from_private(lines[1].split(" = ", 1)[1]) == public
    assert "PostUp" not in got and "Address" not in got and f"PublicKey = {peer}" in got


# -- several edges and nodes: the mesh -----------------------------------------------------------------
MESH_MEMBERS = {"hecate-edge": ["edge-1", "edge-2"], "bionicgpt-node": ["node-*"]}
MESH_NODES = {
    "edge-1": {"address": "10.88.0.11", "endpoint": "edge-1.example.com:51820"},
    "edge-2": {"address": "10.88.0.12", "endpoint": "edge-2.example.com:51820"},
    "node-1": {"address": "10.88.0.21", "endpoint": "192.168.1.11:51820"},
    "node-2": {"address": "10.88.0.22", "endpoint": "192.168.1.12:51820"},
    "node-3": {"address": "10.88.0.23"},
    "node-4": {"address": "10.88.0.24"},
}


def mesh(tmp_path, mid, **over):
    data = pillar(tmp_path, nodes=dict(MESH_NODES), **over)
    data["hecate"]["members"] = dict(MESH_MEMBERS)
    role = ["hecate-edge"] if mid.startswith("edge") else ["bionicgpt-node"]
    return hecate_wireguard_schema.settings(data, {"id": mid, "roles": role, "hecate_env": "lab"})


def test_the_mesh_every_edge_peers_with_every_member(tmp_path):
    """
    An edge peers with the other edges (dialling them at their own endpoints) and with
    every local node (never dialling one: nodes are behind NAT).
    """
    keys = {mid: key() for mid in MESH_NODES}
    keys["intruder"] = key()  # not listed: never a peer
    peers, problems = hecate_wireguard_config.peers_from_mine(mesh(tmp_path, "edge-1"), keys)
    assert problems == []
    assert [(p["name"], p["role"], p["allowed_ips"], p["endpoint"], p["persistent_keepalive"]) for p in peers] == [
        ("edge-2", "cloud", ["10.88.0.12/32"], "edge-2.example.com:51820", None),
        ("node-1", "local", ["10.88.0.21/32"], None, None),
        ("node-2", "local", ["10.88.0.22/32"], None, None),
        ("node-3", "local", ["10.88.0.23/32"], None, None),
        ("node-4", "local", ["10.88.0.24/32"], None, None),
    ]


def test_the_mesh_a_node_dials_every_edge_and_the_nodes_it_can_reach(tmp_path):
    """
    A local node dials every edge (keepalive: it is behind NAT) and the local nodes with an
    endpoint; a node without an endpoint is a peer of one that has one (it dials it, or is
    dialled), and two nodes without endpoints have no tunnel at all.
    """
    keys = {mid: key() for mid in MESH_NODES}
    view = {}
    for mid in ("node-1", "node-3"):
        peers, problems = hecate_wireguard_config.peers_from_mine(mesh(tmp_path, mid), keys)
        assert problems == []
        view[mid] = [(p["name"], p["endpoint"], p["persistent_keepalive"]) for p in peers]
    assert view["node-1"] == [
        ("edge-1", "edge-1.example.com:51820", 25),
        ("edge-2", "edge-2.example.com:51820", 25),
        ("node-2", "192.168.1.12:51820", 25),
        ("node-3", None, None),  # node-3 dials node-1
        ("node-4", None, None),
    ]
    assert view["node-3"] == [
        ("edge-1", "edge-1.example.com:51820", 25),
        ("edge-2", "edge-2.example.com:51820", 25),
        ("node-1", "192.168.1.11:51820", 25),
        ("node-2", "192.168.1.12:51820", 25),
        # no node-4: neither has an endpoint
    ]


def test_the_mesh_edges_need_their_own_endpoints(tmp_path):
    """Only one edge may take cloud:endpoint; a second one without its own is refused, named."""
    nodes = {k: dict(v) for k, v in MESH_NODES.items()}
    del nodes["edge-1"]["endpoint"], nodes["edge-2"]["endpoint"]
    data = pillar(tmp_path, nodes=nodes)
    data["hecate"]["members"] = dict(MESH_MEMBERS)
    conf = hecate_wireguard_schema.settings(data, {"id": "node-1", "roles": ["bionicgpt-node"], "hecate_env": "lab"})
    peers, problems = hecate_wireguard_config.peers_from_mine(conf, {"edge-1": key(), "edge-2": key()})
    assert [(p["name"], p["endpoint"]) for p in peers] == [("edge-1", "203.0.113.7:51820")]
    assert problems == [
        "edge edge-2 would get endpoint 203.0.113.7:51820 (bionicgpt:wireguard:cloud:endpoint), already the "
        "endpoint of edge edge-1; give each edge its own under bionicgpt:wireguard:nodes:<minion id>:endpoint"
    ]


def test_member_addresses_from_the_listing_and_the_mine(tmp_path):
    """
    The edges' tunnel addresses (what Consul's retry_join lists): ids listed by name count
    without the mine, a glob's matches only from the mine; a not-listed id never.
    """
    conf = mesh(tmp_path, "node-1")
    assert hecate_wireguard_config.member_addresses(conf, "cloud") == {"edge-1": "10.88.0.11", "edge-2": "10.88.0.12"}
    assert hecate_wireguard_config.member_addresses(conf, "local") == {"node-1": "10.88.0.21"}
    assert hecate_wireguard_config.member_addresses(conf, "local", ["node-3", "node-2", "intruder", "edge-1"]) == {
        "node-1": "10.88.0.21", "node-2": "10.88.0.22", "node-3": "10.88.0.23"}
    # the one edge of a small environment takes cloud:address
    conf = hecate_wireguard_schema.settings(pillar(tmp_path), LOCAL_GRAINS)
    assert hecate_wireguard_config.member_addresses(conf, "cloud") == {"cloud": "10.88.0.1"}
