"""
Several edges in DNS (hecate:dns:edges) through real Salt loaders: the hetzner_dns state and
execution functions read the health of each edge's Caddy from the Consul simulator (each edge
a Consul node named after its minion id, as the multinode agents are, registered through
/v1/catalog/register with the check status an edge's agent would report) and write a
Hetzner simulator of their own.
"""

import json
import uuid

import pytest
import requests
import yaml
from saltfactories.utils.functional import Loaders

from lab import topology
from lab.sim import SimHandle
from tests.functional.test_dns_states import REPO

ZONE = "edges.example"
TOKEN = "func-hcloud-" + uuid.uuid4().hex
SUFFIX = uuid.uuid4().hex[:6]
EDGE_A, EDGE_B = f"func-edge-a-{SUFFIX}", f"func-edge-b-{SUFFIX}"
SERVICE = f"caddy-func-{SUFFIX}"  # hecate:jobs:caddy:service: its own, in the shared Consul simulator
A4, A6, B4, B6 = "203.0.113.10", "2001:db8:10::10", "203.0.113.20", "2001:db8:20::20"
SLS = "hecate dns records:\n  hetzner_dns.managed:\n    - phase: add\n"


def pillar():
    return {
        "global": {"domain": ZONE, "environment": "func"},
        "members": {"hecate-edge": [EDGE_A, EDGE_B]},
        "jobs": {"caddy": {"service": SERVICE}},
        "reverse_proxy": {"caddy": {"routes": [{"domain": f"app.{ZONE}", "backend": "127.0.0.1:1",
                                                "service": "app"}]}},
        "dns": {
            "zones": [{"name": ZONE}],
            "edges": {EDGE_A: {"ipv4": [A4], "ipv6": [A6]}, EDGE_B: {"ipv4": [B4], "ipv6": [B6]}},
            "token": {"vault": "secret/hecate/hetzner-edges", "key": "dns_api_token"},
        },
    }


@pytest.fixture(scope="module")
def dns_sim(tmp_path_factory):
    handle = SimHandle("hetzner", str(tmp_path_factory.mktemp("edges-dns-sim")), {
        "token": TOKEN, "action_seconds": 0.02, "zones": [{"name": ZONE, "rrsets": []}]}).start()
    yield handle
    handle.stop()


@pytest.fixture(scope="module")
def loaders(salt_factories, tmp_path_factory, dns_sim, vault_sim, consul_sim):
    topology.seed_vault(vault_sim.url, vault_sim.root_token,
                        {("secret", "hecate/hetzner-edges"): {"dns_api_token": TOKEN}})
    roots = tmp_path_factory.mktemp("edges-func")
    (roots / "states").mkdir()
    (roots / "pillar").mkdir()
    (roots / "states" / "dns.sls").write_text(SLS)
    (roots / "pillar" / "top.sls").write_text("base:\n  '*':\n    - edges\n")
    (roots / "pillar" / "edges.sls").write_text(yaml.safe_dump({"hecate": pillar()}))
    overrides = {
        "file_client": "local",
        "module_dirs": [REPO],
        "file_roots": {"base": [str(roots / "states")]},
        "pillar_roots": {"base": [str(roots / "pillar")]},
        "hecate": {"connections": {
            "vault": {"url": vault_sim.url, "token": vault_sim.root_token},
            "hetzner_dns": topology.hetzner_connection(dns_sim.url),
            "consul": {"url": consul_sim.url, "token": consul_sim.token},
        }},
    }
    factory = salt_factories.salt_minion_daemon(f"edges-func-{uuid.uuid4().hex[:6]}", overrides=overrides)
    return Loaders(factory.config.copy(), loaded_base_name=f"{__name__}.loaded")


class Edges:
    """Each edge's Caddy service on its own Consul node, with the status its check reports."""

    def __init__(self, sim):
        self.sim = sim
        self.nodes = set()

    def _put(self, path, body):
        resp = requests.put(self.sim.url + path, data=json.dumps(body),
                            headers={"X-Consul-Token": self.sim.token}, timeout=10)
        assert resp.status_code == 200, resp.text

    def caddy(self, node, status):
        self._put("/v1/catalog/register", {
            "Node": node, "Address": "10.99.0.1",
            "Service": {"ID": f"_nomad-task-{node}", "Service": SERVICE, "Port": 443, "Tags": ["hecate", "caddy"]},
            "Check": {"CheckID": f"_nomad-check-{node}", "Name": f'service: "{SERVICE}" check',
                      "ServiceID": f"_nomad-task-{node}", "Status": status,
                      "Output": "" if status == "passing" else "dial tcp: connect: connection refused"}})
        self.nodes.add(node)

    def gone(self, node):
        self._put("/v1/catalog/deregister", {"Node": node})
        self.nodes.discard(node)


@pytest.fixture
def edges(consul_sim):
    out = Edges(consul_sim)
    yield out
    for node in list(out.nodes):
        out.gone(node)


def managed(loaders, test=False):
    (result,) = list(loaders.modules.state.sls("dns", test=test))
    return result


def app(dns_sim):
    live = dns_sim.state()["zones"][ZONE]
    return ([r["value"] for r in live["app/A"]["records"]], [r["value"] for r in live["app/AAAA"]["records"]])


def writes(dns_sim):
    return [(r["method"], r["path"]) for r in dns_sim.writes()]


def test_records_follow_the_health_of_each_edges_caddy(loaders, dns_sim, edges):
    edges.caddy(EDGE_A, "passing")
    edges.caddy(EDGE_B, "passing")
    first = managed(loaders)
    assert first.result is True, first.comment
    assert sorted(app(dns_sim)[0]) == [A4, B4] and sorted(app(dns_sim)[1]) == [A6, B6]

    # edge B's Caddy fails its check: the preview says exactly what goes and why, writes nothing
    edges.caddy(EDGE_B, "critical")
    dns_sim.clear_requests()
    preview = managed(loaders, test=True)
    assert preview.result is None and writes(dns_sim) == []
    assert preview.changes == {
        f"app.{ZONE} A": {"old": {"ttl": 300, "values": [A4, B4]}, "new": {"ttl": 300, "values": [A4]}},
        f"app.{ZONE} AAAA": {"old": {"ttl": 300, "values": [A6, B6]}, "new": {"ttl": 300, "values": [A6]}},
    }
    assert (f"edge {EDGE_B} ({B4}, {B6}) left out of the route records: its Caddy is not healthy in Consul: "
            f"check 'service: \"{SERVICE}\" check' is critical (dial tcp: connect: connection refused)"
            ) in preview.comment
    applied = managed(loaders)
    assert applied.result is True and applied.changes == preview.changes
    assert app(dns_sim) == ([A4], [A6])
    dns_sim.clear_requests()
    again = managed(loaders)  # same health: no write, the comment still says why B is out
    assert again.result is True and again.changes == {} and writes(dns_sim) == []
    assert f"edge {EDGE_B} ({B4}, {B6}) left out" in again.comment

    # edge B unknown to Consul: still out, named as such, nothing to write
    edges.gone(EDGE_B)
    unknown = managed(loaders)
    assert unknown.result is True and unknown.changes == {} and writes(dns_sim) == []
    assert f"Consul has no instance of service '{SERVICE}' on node {EDGE_B}" in unknown.comment

    # no edge healthy: every listed address, never none
    edges.caddy(EDGE_A, "critical")
    down = managed(loaders)
    assert down.result is True and sorted(down.changes[f"app.{ZONE} A"]["new"]["values"]) == [A4, B4]
    assert f"no edge's Caddy is healthy in Consul (service '{SERVICE}')" in down.comment
    assert sorted(app(dns_sim)[0]) == [A4, B4]

    # B is back: A stays out while critical
    edges.caddy(EDGE_B, "passing")
    back = managed(loaders)
    assert back.result is True and app(dns_sim) == ([B4], [B6])
    assert f"edge {EDGE_A} ({A4}, {A6}) left out" in back.comment
    assert TOKEN not in json.dumps([first.comment, preview.comment, back.comment])


def test_resolution_and_desired_name_the_edges(loaders, dns_sim, edges):
    edges.caddy(EDGE_A, "passing")
    edges.caddy(EDGE_B, "critical")
    assert managed(loaders).result is True
    mod = loaders.modules.hetzner_dns
    entry = mod.resolution()[f"app.{ZONE}"]
    assert entry["points_at_edge"] is True and entry["edge"] == {"A": [A4], "AAAA": [A6]}
    assert entry["edges"]["in_records"] == [EDGE_A]
    assert list(entry["edges"]["left_out"]) == [EDGE_B] and entry["edges"]["all_down"] is False
    assert any(f"edge {EDGE_B}" in note for note in mod.desired()["notes"])
    assert mod.drift()["in_sync"] is True
