"""Consul/Nomad agent configs from pillar, HCL rendering, masked diffs, the shipped pillar's schema."""

import copy
import json

import hcl2
import hcl2.utils
import pytest

import hecate_agents_config
import hecate_agents_schema
import hecate_schema
import hecate_secrets
from tests import pillar_files
from tests.unit.test_wireguard import CLOUD_GRAINS, LOCAL_GRAINS


def parse_hcl(text):
    """HCL as plain data (python-hcl2 keeps quotes on block labels: strip them)."""
    opts = hcl2.utils.SerializationOptions(explicit_blocks=False, strip_string_quotes=True, with_comments=False)

    def unquote(node):
        if isinstance(node, dict):
            return {k.strip('"'): unquote(v) for k, v in node.items()}
        if isinstance(node, list):
            return [unquote(v) for v in node]
        return node

    return unquote(hcl2.loads(text, serialization_options=opts))


def shipped_pillar(env):
    """The lab's hecate.sls + bionicgpt.sls + env/<env>.sls (lab/pillar/, copies of the shipped files)."""
    return pillar_files.compiled(env)


@pytest.mark.parametrize("env", ["lab", "dev", "staging", "prod"])
def test_shipped_pillar_is_valid(env):
    assert hecate_schema.validate(shipped_pillar(env), env) == []


def test_schema_rejects_literal_secrets_and_missing_volumes():
    pillar = shipped_pillar("prod")
    pillar["hecate"]["consul"]["agent"]["gossip_key"] = "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MTIzNDU2Nzg="
    pillar["hecate"]["consul"]["agent"]["acl"]["agent_token"] = "literal-token"
    del pillar["bionicgpt"]["nomad"]["agent"]["host_volumes"]["ollama"]
    pillar["bionicgpt"]["nomad"]["agent"]["colour"] = "blue"
    pillar["bionicgpt"]["wireguard"]["local"]["address"] = "10.88.1.2"
    errors = hecate_schema.validate(pillar, "prod")
    text = "\n".join(errors)
    assert "hecate:consul:agent:gossip_key: secret given as a literal" in text
    assert "hecate:consul:agent:acl:agent_token: secret given as a literal" in text
    assert "bionicgpt:nomad:agent:host_volumes:ollama: required host volume is missing" in text
    assert "bionicgpt:nomad:agent:colour: unknown key (not in the schema)" in errors
    assert "bionicgpt:wireguard:local:address: 10.88.1.2 is outside the tunnel network 10.88.0.0/24" in errors
    assert "c2VjcmV0" not in text and "literal-token" not in text


GOSSIP = {"vault": "secret/hecate/consul", "key": "gossip_key"}
AGENT_TOKEN = {"vault": "secret/hecate/consul", "key": "agent_token"}


def test_consul_server_config_on_cloud():
    cfg = hecate_agents_config.consul_config(shipped_pillar("prod"), CLOUD_GRAINS)
    assert cfg == {
        "datacenter": "dc1",
        "node_name": "cloud",
        "data_dir": "/opt/consul",
        "server": True,
        "bootstrap_expect": 1,
        "bind_addr": "10.88.0.1",
        "advertise_addr": "10.88.0.1",
        "client_addr": "127.0.0.1",
        "log_level": "INFO",
        "ui_config": {"enabled": True},
        "ports": {"dns": 8600, "http": 8500, "serf_lan": 8301, "serf_wan": 8302, "server": 8300},
        "encrypt": GOSSIP,
        "acl": {
            "enabled": True,
            "default_policy": "deny",
            "enable_token_persistence": True,
            "tokens": {"agent": AGENT_TOKEN},
        },
    }


def test_consul_client_joins_cloud_over_the_tunnel():
    pillar = shipped_pillar("prod")
    cfg = hecate_agents_config.consul_config(pillar, LOCAL_GRAINS)
    assert cfg["server"] is False and "bootstrap_expect" not in cfg
    assert cfg["retry_join"] == ["10.88.0.1"]
    assert cfg["bind_addr"] == cfg["advertise_addr"] == "10.88.0.2"
    assert cfg["ui_config"] == {"enabled": False}
    pillar["hecate"]["consul"]["agent"]["ports"]["serf_lan"] = 8311
    pillar["hecate"]["consul"]["agent"]["extra"] = {"dns_config": {"only_passing": True}}
    cfg = hecate_agents_config.consul_config(pillar, LOCAL_GRAINS)
    assert cfg["retry_join"] == ["10.88.0.1:8311"] and cfg["dns_config"] == {"only_passing": True}


def test_nomad_config_renders_valid_hcl():
    pillar = shipped_pillar("prod")
    pillar["hecate"]["connections"]["vault"]["url"] = "https://vault.example.com:8200"
    cfg = hecate_agents_config.nomad_config(pillar, LOCAL_GRAINS)
    assert cfg["client"]["meta"] == {"location": "local", "node_type": "bionicgpt"}
    assert cfg["client"]["network_interface"] == "wg0"
    assert cfg["vault"]["address"] == "https://vault.example.com:8200"
    assert cfg["consul"]["token"] == {"vault": "secret/bionicgpt/nomad", "key": "consul_token"}
    resolved = copy.deepcopy(cfg)
    resolved["consul"]["token"] = 'tok"en\\x'
    text = hecate_agents_config.render_hcl(resolved, "Managed by Salt")
    assert text.startswith("# Managed by Salt\nname       = \"local\"\n")
    parsed = parse_hcl(text)
    client = parsed["client"][0]
    assert client["meta"][0] == {"location": "local", "node_type": "bionicgpt"}
    assert client["options"] == {"driver.allowlist": "docker"}
    volumes = {k: v for hv in client["host_volume"] for k, v in hv.items()}
    assert volumes == {
        "bionicgpt_postgres": {"path": "/opt/bionicgpt/postgres", "read_only": False},
        "ollama": {"path": "/opt/ollama", "read_only": False},
    }
    # memory_max is honoured only with memory oversubscription on (Nomad's
    # memoryOversubscriptionValidate warns and ignores it otherwise): the scheduler config the
    # server bootstraps with turns it on, Nomad's other defaults repeated (the block replaces them)
    assert parsed["server"][0] == {"enabled": True, "bootstrap_expect": 1, "default_scheduler_config": [{
        "scheduler_algorithm": "binpack",
        "memory_oversubscription_enabled": True,
        "preemption_config": [{"system_scheduler_enabled": True, "sysbatch_scheduler_enabled": False,
                               "batch_scheduler_enabled": False, "service_scheduler_enabled": False}],
    }]}
    pillar["bionicgpt"]["nomad"]["agent"] = {"server": {"memory_oversubscription": False}}
    assert "default_scheduler_config" not in hecate_agents_config.nomad_config(pillar, LOCAL_GRAINS)["server"]
    assert parsed["advertise"][0] == {"http": "10.88.0.2", "rpc": "10.88.0.2", "serf": "10.88.0.2"}
    assert parsed["vault"][0]["default_identity"][0] == {"aud": ["vault.io"], "ttl": "1h"}
    docker = parsed["plugin"][0]["docker"]["config"][0]
    assert docker["allow_privileged"] is False and docker["volumes"][0] == {"enabled": True}
    assert "allow_caps" not in docker
    assert parsed["consul"][0]["token"] in ('tok\\"en\\\\x', 'tok"en\\x')  # escaped, one string


def test_nomad_agents_enforce_acls_as_the_lab_does():
    """
    Nomad's ``acl`` block (developer.hashicorp.com/nomad/docs/configuration/acl: ``enabled``
    defaults to false, and servers and clients should agree, since the CLI sends client
    endpoints such as ``alloc exec`` straight to the client) is on for every agent hecate
    writes, the edge's client included; its cache TTLs only when pillar sets them.
    """
    pillar = shipped_pillar("prod")
    pillar["hecate"]["connections"]["vault"]["url"] = "https://vault.example.com:8200"
    for grains in (LOCAL_GRAINS, CLOUD_GRAINS):
        cfg = hecate_agents_config.nomad_config(pillar, grains)
        assert cfg["acl"] == {"enabled": True}, grains
        assert parse_hcl(hecate_agents_config.render_hcl(cfg, "x"))["acl"] == [{"enabled": True}]
    pillar["bionicgpt"]["nomad"]["agent"]["acl"] = {"token_ttl": "60s", "role_ttl": None}
    assert hecate_agents_config.nomad_config(pillar, LOCAL_GRAINS)["acl"] == {"enabled": True, "token_ttl": "60s"}
    assert hecate_schema.validate(pillar, "prod") == []
    pillar["bionicgpt"]["nomad"]["agent"]["acl"] = {"enabled": False}
    assert "acl" not in hecate_agents_config.nomad_config(pillar, LOCAL_GRAINS)
    pillar["bionicgpt"]["nomad"]["agent"]["acl"] = {"policy_ttl": "a minute"}
    assert any(e.startswith("bionicgpt:nomad:agent:acl:policy_ttl: ") for e in hecate_schema.validate(pillar, "prod"))


def test_resolve_secrets_and_masked_diff():
    secrets = {"secret/hecate/consul#gossip_key": "R29zc2lwS2V5R29zc2lwS2V5R29zc2lwS2V5MTI=",
               "secret/hecate/consul#agent_token": "11111111-2222-3333-4444-555555555555"}

    def resolver(value, where):
        return hecate_secrets.Secret(secrets[f"{value['vault']}#{value['key']}"])

    cfg = hecate_agents_config.consul_config(shipped_pillar("prod"), CLOUD_GRAINS)
    resolved, names = hecate_agents_config.resolve_secrets(cfg, resolver, "Consul")
    assert names == {"encrypt", "agent"}
    assert resolved["encrypt"] == secrets["secret/hecate/consul#gossip_key"]
    new = hecate_agents_config.render_json(resolved)
    assert json.loads(new) == resolved
    diff, changed = hecate_agents_config.masked_diff(None, new, "consul.json", names)
    assert changed is False and "XXX-REDACTED-XXX" in diff
    for value in secrets.values():
        assert value not in diff
    rotated = dict(resolved, encrypt="TmV3R29zc2lwS2V5TmV3R29zc2lwS2V5TmV3MTI=", log_level="DEBUG")
    diff, changed = hecate_agents_config.masked_diff(
        new, hecate_agents_config.render_json(rotated), "consul.json", names
    )
    assert changed is True
    assert '-  "log_level": "INFO"' in diff and '+  "log_level": "DEBUG"' in diff
    assert "TmV3" not in diff and "R29zc2lw" not in diff
    hcl = hecate_agents_config.render_hcl({"consul": {"address": "x", "token": "s3cr3t-value"}})
    assert "s3cr3t-value" not in hecate_agents_config.mask(hcl)


def test_nomad_agent_without_vault_is_refused_in_pillar():
    """The job templates' vault blocks need it: Nomad's jobVaultHook refuses them otherwise."""
    pillar = shipped_pillar("prod")
    assert hecate_agents_schema.check_pillar(pillar) == []
    pillar["bionicgpt"]["nomad"]["agent"]["vault"] = {"enabled": False}
    errors = hecate_agents_schema.check_pillar(pillar)
    assert [key for key, _ in errors] == ["bionicgpt:nomad:agent:vault:enabled"]
    assert 'Vault "default" not enabled but used in the job' in errors[0][1]


# -- several edges and nodes ---------------------------------------------------------------------------
EDGES = {"edge-1": "10.88.0.11", "edge-2": "10.88.0.12", "edge-3": "10.88.0.13"}


def grains(mid):
    role = ["hecate-edge"] if mid.startswith("edge") else ["bionicgpt-node"]
    return {"id": mid, "roles": role, "hecate_env": "prod"}


def several(edges=EDGES, **consul):
    pillar = shipped_pillar("prod")
    pillar["bionicgpt"]["wireguard"]["nodes"] = {mid: {"address": addr} for mid, addr in edges.items()}
    pillar["bionicgpt"]["wireguard"]["nodes"]["node-1"] = {"address": "10.88.0.21"}
    pillar["hecate"]["members"] = {"hecate-edge": sorted(edges), "bionicgpt-node": ["node-1"]}
    pillar["hecate"]["consul"]["agent"].update(consul)
    return pillar


def test_consul_servers_on_every_edge_join_each_other_and_clients_join_all():
    """Three edges: three servers (bootstrap_expect 3) joining each other; a node joins all three."""
    pillar = several(bootstrap_expect=3)
    for mid, address in EDGES.items():
        cfg = hecate_agents_config.consul_config(pillar, grains(mid), edges=EDGES)
        assert cfg["server"] is True and cfg["bootstrap_expect"] == 3 and cfg["ui_config"] == {"enabled": True}
        assert cfg["retry_join"] == sorted(addr for other, addr in EDGES.items() if other != mid)
        assert cfg["bind_addr"] == address
    node = hecate_agents_config.consul_config(pillar, grains("node-1"), edges=EDGES)
    assert node["server"] is False and "bootstrap_expect" not in node
    assert node["retry_join"] == ["10.88.0.11", "10.88.0.12", "10.88.0.13"]
    pillar["hecate"]["consul"]["agent"]["ports"]["serf_lan"] = 8311
    node = hecate_agents_config.consul_config(pillar, grains("node-1"), edges=EDGES)
    assert node["retry_join"] == ["10.88.0.11:8311", "10.88.0.12:8311", "10.88.0.13:8311"]


def test_consul_two_edges_one_server():
    """Two edges: one server (Consul wants 1 or 3), the other edge a client of it, like the nodes."""
    edges = {k: EDGES[k] for k in ("edge-1", "edge-2")}
    pillar = several(edges, nodes={"edge-2": {"server": False}})
    one = hecate_agents_config.consul_config(pillar, grains("edge-1"), edges=edges)
    two = hecate_agents_config.consul_config(pillar, grains("edge-2"), edges=edges)
    node = hecate_agents_config.consul_config(pillar, grains("node-1"), edges=edges)
    assert (one["server"], one["bootstrap_expect"], "retry_join" in one) == (True, 1, False)
    assert (two["server"], "bootstrap_expect" in two, two["retry_join"]) == (False, False, ["10.88.0.11"])
    assert two["ui_config"] == {"enabled": False}
    assert node["retry_join"] == ["10.88.0.11"]


def test_nomad_per_node_settings_merge_over_the_role():
    """A node's own entry (gpu meta, a server on an edge) is merged over its role's agent pillar."""
    pillar = several()
    pillar["hecate"]["connections"]["vault"]["url"] = "https://vault.example.com:8200"
    pillar["bionicgpt"]["nomad"]["agent"]["nodes"] = {"node-1": {"client": {"meta": {"gpu": "true"}}}}
    cfg = hecate_agents_config.nomad_config(pillar, grains("node-1"))
    assert cfg["client"]["meta"] == {"gpu": "true", "location": "local", "node_type": "bionicgpt"}
    assert "nodes" not in hecate_agents_schema.nomad_settings(pillar, grains("node-1"))
    other = dict(grains("node-1"), id="node-2")
    assert hecate_agents_config.nomad_config(pillar, other)["client"]["meta"] == {
        "location": "local", "node_type": "bionicgpt"}
    pillar["hecate"]["nomad"]["agent"]["nodes"] = {"edge-1": {"server": {"enabled": True, "bootstrap_expect": 1}}}
    edge = hecate_agents_config.nomad_config(pillar, grains("edge-1"))
    assert edge["server"]["enabled"] is True and edge["server"]["bootstrap_expect"] == 1
    assert "server" not in hecate_agents_config.nomad_config(pillar, grains("edge-2"))
    assert hecate_schema.validate(pillar, "prod") == []


def test_servers_must_match_their_bootstrap_expect():
    """
    hecate.validate (membership_errors) refuses servers that would not form one cluster: three
    edges with bootstrap_expect 1 would elect three leaders; three nodes each running a Nomad
    server with bootstrap_expect 1 likewise. An even number is a warning.
    """
    resolved = {"hecate-edge": sorted(EDGES), "bionicgpt-node": ["node-1", "node-2", "node-3"]}
    pillar = several()
    problems = dict(hecate_agents_schema.server_problems(pillar, resolved))
    assert problems["hecate:consul:agent:bootstrap_expect"].startswith(
        "3 edges run a Consul server (edge-1, edge-2, edge-3) but bootstrap_expect is 1: set it to 3")
    assert problems["bionicgpt:nomad:agent:server:bootstrap_expect"].startswith(
        "3 members run a Nomad server (node-1, node-2, node-3) but they expect 1")
    # fixed: three Consul servers; the Nomad server on one edge only
    pillar["hecate"]["consul"]["agent"]["bootstrap_expect"] = 3
    pillar["bionicgpt"]["nomad"]["agent"]["server"]["enabled"] = False
    pillar["hecate"]["nomad"]["agent"]["nodes"] = {"edge-1": {"server": {"enabled": True}}}
    assert hecate_agents_schema.server_problems(pillar, resolved) == []
    assert hecate_agents_schema.server_warnings(pillar, resolved) == []
    # two edges both servers: allowed when bootstrap_expect says 2, but a warning
    two = {"hecate-edge": ["edge-1", "edge-2"], "bionicgpt-node": ["node-1"]}
    pillar["hecate"]["consul"]["agent"]["bootstrap_expect"] = 2
    assert hecate_agents_schema.server_problems(pillar, two) == []
    (warning,) = hecate_agents_schema.server_warnings(pillar, two)
    assert warning.startswith("2 Consul servers (edge-1, edge-2): an even number survives no more failures than 1")
    # a local node is never a Consul server; every edge a client leaves none
    pillar["hecate"]["consul"]["agent"]["nodes"] = {"node-1": {"server": True}, "edge-1": {"server": False},
                                                   "edge-2": {"server": False}}
    problems = dict(hecate_agents_schema.server_problems(pillar, two))
    assert problems["hecate:consul:agent:nodes:node-1:server"] == (
        "node-1 is a local node: Consul servers run on the edges")
    assert problems["hecate:consul:agent:nodes"] == "no edge runs a Consul server (every edge has server: false)"
