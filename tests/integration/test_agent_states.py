"""
WireGuard, Consul agent and Nomad agent states on the real cloud and local minions.

Configs land in the lab's per-minion agent directories (pillar lab_runtime), never in
/etc. The lab pillar installs nothing and starts no service; the secrets the configs
reference are seeded into the Vault simulator (fixture ``agent_vault_secrets``).
"""

import base64
import json
import os
import shutil
import stat
import sys

import pytest

UTILS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "_utils")
if UTILS not in sys.path:
    sys.path.insert(0, UTILS)

import hecate_vault_client  # noqa: E402
from lab import topology  # noqa: E402
from tests.unit.test_agents import parse_hcl  # noqa: E402

MINIONS = ("cloud", "local")


def states(ret, minion=None):
    data = ret.data if minion is None else ret.data[minion]
    assert isinstance(data, dict), ret
    return data


def by_id(data):
    return {s["__id__"]: s for s in data.values()}


def files_under(path):
    found = {}
    for root, _, names in os.walk(path):
        for name in names:
            full = os.path.join(root, name)
            found[full] = os.stat(full).st_mtime_ns
    return found


@pytest.fixture(scope="module")
def dirs(agents_dir):
    return {m: os.path.join(agents_dir, m) for m in MINIONS}


@pytest.fixture(scope="module")
def fresh(salt_cli, dirs, agent_vault_secrets):
    """New nodes: no agent directories, nothing in the mine."""
    for path in dirs.values():
        shutil.rmtree(path, ignore_errors=True)
    ret = salt_cli.run("mine.flush", minion_tgt="*")
    assert ret.returncode == 0, ret
    return dirs


@pytest.fixture(scope="module")
def applied(salt_cli, fresh, vault_sim):
    """The orchestration's order: keys on both nodes, then each node's highstate."""
    vault_sim.clear_requests()
    ret = salt_cli.run("state.apply", "wireguard.keys", minion_tgt="*")
    assert ret.returncode == 0, ret
    runs = {}
    for minion in MINIONS:
        ret = salt_cli.run("state.highstate", minion_tgt=minion)
        assert ret.returncode == 0, ret
        runs[minion] = ret
    return runs


def pubkey(salt_cli, minion):
    ret = salt_cli.run("wireguard.public_key", minion_tgt=minion)
    assert ret.returncode == 0, ret
    return ret.data


def read(path):
    with open(path, encoding="utf-8") as fh:
        return fh.read()


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_top_maps_role_grains_to_states(salt_cli):
    ret = salt_cli.run("state.show_top", minion_tgt="*")
    assert ret.returncode == 0, ret
    # the edge's Nomad client (hecate:nomad:agent) runs the edge's own jobs
    assert ret.data["cloud"] == {"base": ["hecate", "wireguard", "consul.agent", "nomad.agent"]}
    assert ret.data["local"] == {"base": ["hecate", "wireguard", "consul.agent", "nomad.agent"]}


def test_preview_of_new_nodes_is_exact_and_writes_nothing(salt_cli, fresh, vault_sim):
    vault_sim.clear_requests()
    for minion in MINIONS:
        ret = salt_cli.run("state.highstate", "test=True", minion_tgt=minion)
        assert ret.returncode == 0, ret
        got = by_id(states(ret))
        assert all(s["result"] in (True, None) for s in got.values()), got
        assert got["wireguard key hcwg0"]["result"] is None
        assert got["wireguard public key hcwg0 in the mine"]["result"] is None
        assert got["consul agent config"]["result"] is None
        assert '"encrypt": "XXX-REDACTED-XXX"' in got["consul agent config"]["changes"]["config"]["diff"]
        assert got["nomad agent config"]["result"] is None
        if minion == "local":
            # the hub has published no key yet: the preview says so instead of failing
            assert "apply wireguard.keys on the cloud node first" in got["wireguard interface hcwg0"]["comment"]
        assert not os.path.exists(fresh[minion]), f"preview wrote into {fresh[minion]}"
    ret = salt_cli.run("mine.get", "*", "wireguard_public_key", minion_tgt="cloud")
    assert ret.data == {}, ret
    assert vault_sim.writes() == []


def test_highstate_gives_each_role_its_configs(salt_cli, applied, dirs, agent_vault_secrets, vault_sim):
    cloud_key, local_key = pubkey(salt_cli, "cloud"), pubkey(salt_cli, "local")
    assert cloud_key and local_key and cloud_key != local_key
    for minion in MINIONS:
        for state in states(applied[minion]).values():
            assert state["result"] is True, state

    # WireGuard: private keys only in 0600 key files; the configs hold none
    for minion, own, peer in (("cloud", cloud_key, local_key), ("local", local_key, cloud_key)):
        wgdir = os.path.join(dirs[minion], "wireguard")
        assert mode(os.path.join(wgdir, "hcwg0.key")) == 0o600 and mode(wgdir) == 0o700
        assert mode(os.path.join(wgdir, "hcwg0.conf")) == 0o600
        private = read(os.path.join(wgdir, "hcwg0.key")).strip()
        assert len(base64.b64decode(private)) == 32
        conf = read(os.path.join(wgdir, "hcwg0.conf"))
        assert private not in conf and own not in conf and peer in conf
    key_file = os.path.join(dirs["cloud"], "wireguard", "hcwg0.key")
    assert read(os.path.join(dirs["cloud"], "wireguard", "hcwg0.conf")).splitlines()[3:] == [
        "[Interface]",
        "Address = 10.88.0.1/24",
        "ListenPort = 51820",
        f"PostUp = wg set %i private-key {key_file}",
        "",
        "# local",
        "[Peer]",
        f"PublicKey = {local_key}",
        "AllowedIPs = 10.88.0.2/32",
    ]
    key_file = os.path.join(dirs["local"], "wireguard", "hcwg0.key")
    assert read(os.path.join(dirs["local"], "wireguard", "hcwg0.conf")).splitlines()[3:] == [
        "[Interface]",
        "Address = 10.88.0.2/24",
        "ListenPort = 51820",
        f"PostUp = wg set %i private-key {key_file}",
        "",
        "# cloud",
        "[Peer]",
        f"PublicKey = {cloud_key}",
        "AllowedIPs = 10.88.0.1/32",
        "Endpoint = 198.18.0.1:51820",
        "PersistentKeepalive = 25",
    ]

    # Consul: server on cloud, client on local joined over the tunnel; secrets resolved
    consul_secrets = agent_vault_secrets["secret/hecate/consul"]
    common = {
        "datacenter": "dc1",
        "client_addr": "127.0.0.1",
        "log_level": "INFO",
        "ports": {"dns": 8600, "http": 8500, "serf_lan": 8301, "serf_wan": 8302, "server": 8300},
        "encrypt": consul_secrets["gossip_key"],
        "acl": {
            "enabled": True,
            "default_policy": "deny",
            "enable_token_persistence": True,
            "tokens": {"agent": consul_secrets["agent_token"]},
        },
    }
    cloud_consul = os.path.join(dirs["cloud"], "consul.d", "consul.json")
    assert json.loads(read(cloud_consul)) == dict(
        common,
        node_name="cloud",
        data_dir=os.path.join(dirs["cloud"], "consul-data"),
        server=True,
        bootstrap_expect=1,
        bind_addr="10.88.0.1",
        advertise_addr="10.88.0.1",
        ui_config={"enabled": True},
    )
    local_consul = os.path.join(dirs["local"], "consul.d", "consul.json")
    assert json.loads(read(local_consul)) == dict(
        common,
        node_name="local",
        data_dir=os.path.join(dirs["local"], "consul-data"),
        server=False,
        bind_addr="10.88.0.2",
        advertise_addr="10.88.0.2",
        retry_join=["10.88.0.1"],
        ui_config={"enabled": False},
    )
    assert mode(cloud_consul) == mode(local_consul) == 0o600  # group root in the lab: root-only

    # Nomad: the edge's client on the cloud node (its own jobs: node class, loopback host
    # network, their host volumes; no server: it finds the local node's through Consul)
    edge_hcl = os.path.join(dirs["cloud"], "nomad.d", "nomad.hcl")
    assert mode(edge_hcl) == 0o600
    edge_volumes = os.path.join(dirs["cloud"], "volumes")
    assert parse_hcl(read(edge_hcl)) == {
        "name": "cloud",
        "datacenter": "dc1",
        "data_dir": os.path.join(dirs["cloud"], "nomad-data"),
        "bind_addr": "0.0.0.0",
        "advertise": [{"http": "10.88.0.1", "rpc": "10.88.0.1", "serf": "10.88.0.1"}],
        "client": [
            {
                "enabled": True,
                "network_interface": "hcwg0",
                "options": {"driver.allowlist": "docker"},
                "meta": [{"location": "cloud", "node_type": "hecate-edge"}],
                "node_class": "hecate-edge",
                "host_network": [{"loopback": {"cidr": "127.0.0.1/32"}}],
                "host_volume": [
                    {name: {"path": os.path.join(edge_volumes, name), "read_only": name == "hecate_nginx_config"}}
                    for name in sorted(topology.EDGE_VOLUMES)
                ],
            }
        ],
        "consul": [
            {
                "address": "127.0.0.1:8500",
                "auto_advertise": True,
                "server_auto_join": True,
                "client_auto_join": True,
                "token": agent_vault_secrets["secret/hecate/nomad"]["consul_token"],
            }
        ],
        "vault": [{"enabled": True, "address": vault_sim.url}],
        "acl": [{"enabled": True}],
        "plugin": [{"docker": {"config": [{"allow_privileged": False, "volumes": [{"enabled": True}]}]}}],
    }
    nomad_hcl = os.path.join(dirs["local"], "nomad.d", "nomad.hcl")
    assert mode(nomad_hcl) == 0o600
    volumes = os.path.join(dirs["local"], "volumes")
    assert parse_hcl(read(nomad_hcl)) == {
        "name": "local",
        "datacenter": "dc1",
        "data_dir": os.path.join(dirs["local"], "nomad-data"),
        "bind_addr": "0.0.0.0",
        "advertise": [{"http": "10.88.0.2", "rpc": "10.88.0.2", "serf": "10.88.0.2"}],
        "server": [{"enabled": True, "bootstrap_expect": 1, "default_scheduler_config": [{
            "scheduler_algorithm": "binpack",
            "memory_oversubscription_enabled": True,
            "preemption_config": [{"system_scheduler_enabled": True, "sysbatch_scheduler_enabled": False,
                                   "batch_scheduler_enabled": False, "service_scheduler_enabled": False}],
        }]}],
        "client": [
            {
                "enabled": True,
                "network_interface": "hcwg0",
                "options": {"driver.allowlist": "docker"},
                "meta": [{"location": "local", "node_type": "bionicgpt"}],
                "reserved": [{"cpu": 500, "memory": 512, "disk": 1024}],
                "host_volume": [
                    {"bionicgpt_postgres": {"path": os.path.join(volumes, "bionicgpt_postgres"), "read_only": False}},
                    {"ollama": {"path": os.path.join(volumes, "ollama"), "read_only": False}},
                ],
            }
        ],
        "consul": [
            {
                "address": "127.0.0.1:8500",
                "auto_advertise": True,
                "server_auto_join": True,
                "client_auto_join": True,
                "token": agent_vault_secrets["secret/bionicgpt/nomad"]["consul_token"],
            }
        ],
        "vault": [
            {"enabled": True, "address": vault_sim.url, "default_identity": [{"aud": ["vault.io"], "ttl": "1h"}]}
        ],
        "acl": [{"enabled": True}],
        "plugin": [{"docker": {"config": [{"allow_privileged": False, "volumes": [{"enabled": True}]}]}}],
    }
    assert os.path.isdir(os.path.join(volumes, "bionicgpt_postgres")) and os.path.isdir(os.path.join(volumes, "ollama"))
    # the states only read Vault
    assert vault_sim.writes() == []


def test_no_secret_in_returns_or_logs(applied, dirs, agent_vault_secrets, cloud_minion, local_minion):
    values = [v for data in agent_vault_secrets.values() for v in data.values()]
    values += [read(os.path.join(dirs[m], "wireguard", "hcwg0.key")).strip() for m in MINIONS]
    outputs = [applied[m].stdout for m in MINIONS]
    for factory in (cloud_minion, local_minion):
        with open(factory.config["log_file"], encoding="utf-8", errors="replace") as fh:
            outputs.append(fh.read())
    assert "XXX-REDACTED-XXX" in applied["cloud"].stdout
    for value in values:
        for text in outputs:
            assert value not in text


def test_rerun_changes_nothing(salt_cli, applied, dirs, vault_sim):
    before = {m: files_under(dirs[m]) for m in MINIONS}
    vault_sim.clear_requests()
    for minion in MINIONS:
        for test in ("test=True", "test=False"):
            ret = salt_cli.run("state.highstate", test, minion_tgt=minion)
            assert ret.returncode == 0, ret
            for state in states(ret).values():
                assert state["result"] is True and state["changes"] == {}, state
    assert {m: files_under(dirs[m]) for m in MINIONS} == before
    assert vault_sim.writes() == []


def test_preview_of_a_pillar_change_matches_the_change(salt_cli, applied, dirs):
    path = os.path.join(dirs["local"], "nomad.d", "nomad.hcl")
    before = read(path)
    override = json.dumps(
        {
            "bionicgpt": {
                "nomad": {
                    "agent": {"client": {"meta": {"rack": "attic"}}, "docker": {"allow_caps": ["chown", "net_raw"]}}
                }
            }
        }
    )
    preview = salt_cli.run("state.apply", "nomad.agent", f"pillar={override}", "test=True", minion_tgt="local")
    got = by_id(states(preview))["nomad agent config"]
    assert got["result"] is None and read(path) == before
    diff = got["changes"]["config"]["diff"]
    assert '+    rack      = "attic"' in diff and '+    allow_caps       = ["chown", "net_raw"]' in diff
    applied_ret = salt_cli.run("state.apply", "nomad.agent", f"pillar={override}", minion_tgt="local")
    done = by_id(states(applied_ret))["nomad agent config"]
    assert done["result"] is True and done["changes"] == got["changes"]
    assert 'rack      = "attic"' in read(path)
    back = salt_cli.run("state.apply", "nomad.agent", minion_tgt="local")
    assert by_id(states(back))["nomad agent config"]["changes"]
    assert read(path) == before


def test_gossip_key_rotation_is_reported_without_values(salt_cli, applied, dirs, vault_sim, agent_vault_secrets):
    kv = hecate_vault_client.VaultKV({"url": vault_sim.url, "token": vault_sim.root_token})
    old = agent_vault_secrets["secret/hecate/consul"]["gossip_key"]
    new = base64.b64encode(os.urandom(32)).decode()
    kv.merge("secret", "hecate/consul", {"gossip_key": new})
    try:
        ret = salt_cli.run("state.apply", "consul.agent", minion_tgt="cloud")
        got = by_id(states(ret))["consul agent config"]
        assert got["result"] is True
        assert got["changes"]["secrets"] == "changed (values not shown)"
        assert old not in ret.stdout and new not in ret.stdout
        assert json.loads(read(os.path.join(dirs["cloud"], "consul.d", "consul.json")))["encrypt"] == new
    finally:
        kv.merge("secret", "hecate/consul", {"gossip_key": old})
        salt_cli.run("state.apply", "consul.agent", minion_tgt="cloud")


def test_preview_before_the_gossip_key_is_generated(salt_cli, applied, dirs, vault_sim):
    """
    A first deployment's preview: the orchestration's secrets step only says it would
    generate the gossip key, so the Consul config preview shows it pending instead of
    failing; a real run without the key still fails, writing nothing.
    """
    kv = hecate_vault_client.VaultKV({"url": vault_sim.url, "token": vault_sim.root_token})
    before = kv.read_data("secret", "hecate/consul")
    path = os.path.join(dirs["cloud"], "consul.d", "consul.json")
    config = read(path)
    kv.write("secret", "hecate/consul", {k: v for k, v in before.items() if k != "gossip_key"})
    try:
        vault_sim.clear_requests()
        ret = salt_cli.run("state.apply", "consul.agent", "test=True", minion_tgt="cloud")
        assert ret.returncode == 0, ret
        got = by_id(states(ret))["consul agent config"]
        assert got["result"] is None, got
        assert "vault:secret/hecate/consul#gossip_key, which the run generates first" in got["comment"]
        assert got["changes"]["secrets"] == "changed (values not shown)"  # as a real run reports it
        assert before["gossip_key"] not in ret.stdout and vault_sim.writes() == []
        ret = salt_cli.run("state.apply", "consul.agent", minion_tgt="cloud")
        got = by_id(states(ret))["consul agent config"]
        assert got["result"] is False and "has no key 'gossip_key'" in got["comment"], got
        assert read(path) == config
    finally:
        kv.write("secret", "hecate/consul", before)


def test_missing_vault_secret_fails_clearly(salt_cli, applied, dirs):
    path = os.path.join(dirs["cloud"], "consul.d", "consul.json")
    before = read(path)
    override = json.dumps(
        {"hecate": {"consul": {"agent": {"gossip_key": {"vault": "secret/hecate/nowhere", "key": "gossip_key"}}}}}
    )
    ret = salt_cli.run("state.apply", "consul.agent", f"pillar={override}", minion_tgt="cloud")
    got = by_id(states(ret))["consul agent config"]
    assert got["result"] is False and got["changes"] == {}
    assert "secret/hecate/nowhere" in got["comment"] and "Traceback" not in got["comment"]
    assert read(path) == before


def test_bad_addressing_fails_before_anything_is_written(salt_cli, applied, dirs):
    before = files_under(dirs["local"])
    override = json.dumps({"bionicgpt": {"wireguard": {"local": {"address": "10.99.0.2"}}}})
    ret = salt_cli.run("state.highstate", f"pillar={override}", minion_tgt="local")
    got = by_id(states(ret))
    validated = got["hecate pillar is valid"]
    assert validated["result"] is False
    assert (
        "bionicgpt:wireguard:local:address: 10.99.0.2 is outside the tunnel network 10.88.0.0/24"
        in validated["comment"]
    )
    assert all(s["result"] is False and not s["changes"] for s in got.values())
    assert files_under(dirs["local"]) == before


def test_module_functions(salt_cli, applied, dirs):
    cloud_key, local_key = pubkey(salt_cli, "cloud"), pubkey(salt_cli, "local")
    ret = salt_cli.run("wireguard.peers", minion_tgt="cloud")
    assert [p["name"] for p in ret.data["peers"]] == ["local"] and ret.data["problems"] == []
    assert ret.data["peers"][0]["public_key"] == local_key
    ret = salt_cli.run("wireguard.render_config", minion_tgt="local")
    assert ret.data == read(os.path.join(dirs["local"], "wireguard", "hcwg0.conf"))
    ret = salt_cli.run("wireguard.genkey", minion_tgt="local")
    assert ret.data == {
        "public_key": local_key,
        "created": False,
        "key_file": os.path.join(dirs["local"], "wireguard", "hcwg0.key"),
    }
    ret = salt_cli.run("wireguard.status", minion_tgt="cloud")
    assert ret.data == {"present": False, "interface": "hcwg0"}
    # no tunnel here (test_wireguard_netns.py has one): verify fails naming the peer and why
    ret = salt_cli.run("wireguard.verify", "timeout=0", minion_tgt="local")
    assert ret.returncode != 0
    assert "WireGuard tunnel hcwg0 is not working: cloud: interface hcwg0 does not exist" in ret.stdout
    ret = salt_cli.run("wireguard.settings", minion_tgt="local")
    # the mesh: every member of the environment (one edge, one node here)
    assert ret.data["peer_target"] == (
        "G@hecate_env:lab and ( ( G@roles:hecate-edge and ( cloud ) ) or ( G@roles:bionicgpt-node and ( local ) ) )")
    ret = salt_cli.run("mine.get", "*", "wireguard_public_key", minion_tgt="local")
    assert ret.data == {"cloud": cloud_key, "local": local_key}


def test_verify_is_a_clear_no_op_where_disabled(salt_cli, applied):
    ret = salt_cli.run("state.apply", "wireguard.verify", minion_tgt="local")
    (state,) = states(ret).values()
    assert state["result"] is True and "verification is disabled" in state["comment"]


def test_verify_fails_clearly_without_a_tunnel(salt_cli, applied):
    override = json.dumps({"bionicgpt": {"wireguard": {"verify": {"enabled": True, "timeout": 2}}}})
    ret = salt_cli.run("state.apply", "wireguard.verify", f"pillar={override}", "test=True", minion_tgt="local")
    (state,) = states(ret).values()
    assert state["result"] is None and "not up yet" in state["comment"]
    ret = salt_cli.run("state.apply", "wireguard.verify", f"pillar={override}", minion_tgt="local")
    (state,) = states(ret).values()
    assert state["result"] is False
    assert "cloud: interface hcwg0 does not exist" in state["comment"]


def test_install_and_service_steps_for_real_hosts(salt_cli, applied):
    """With install/service on (production pillar), the SLS add packages and services."""
    override = json.dumps(
        {
            "bionicgpt": {
                "wireguard": {"install": True, "service": True},
                "nomad": {"agent": {"install": True, "service": True}},
            },
            "hecate": {"consul": {"agent": {"install": True, "service": True}}},
        }
    )
    ret = salt_cli.run("state.show_sls", "wireguard,consul.agent,nomad.agent", f"pillar={override}", minion_tgt="local")
    assert ret.returncode == 0, ret
    sls = ret.data
    assert "installed" in sls["wireguard-tools"]["pkg"]
    unit = sls["wg-quick@hcwg0"]["service"]
    assert "running" in unit and not any("watch" in arg for arg in unit if isinstance(arg, dict))
    repo = sls["hashicorp apt repository"]["pkgrepo"]
    name = next(arg["name"] for arg in repo if isinstance(arg, dict) and "name" in arg)
    assert name.startswith(
        "deb [signed-by=/usr/share/keyrings/hashicorp-archive-keyring.gpg] https://apt.releases.hashicorp.com "
    )
    assert {"aptkey": False} in repo
    assert "installed" in sls["consul"]["pkg"]
    consul_service = sls["consul service"]["service"]
    assert {"watch": [{"hecate_agent": "consul agent config"}]} in consul_service
    nomad_pkgs = sls["nomad packages"]["pkg"]
    assert {"pkgs": ["nomad", "docker.io"]} in nomad_pkgs
    assert {"watch": [{"hecate_agent": "nomad agent config"}]} in sls["nomad service"]["service"]
