"""
Which edges' addresses the route records carry (hecate_dns_edges, hecate:dns:edges): the
health of each edge's Caddy as Consul's /v1/health/service answers it (entries in the shape
of agent/health_endpoint.go: Node.Node, Checks[].Status), the filtering, and the pillar checks.
"""

import pytest
import salt.exceptions

import hecate_dns_edges as edges_mod
import hecate_dns_records as rec
import hecate_dns_schema
import hecate_schema

ZONE = "example.com"
EDGES = {
    "edge-1": {"ipv4": ["203.0.113.10"], "ipv6": ["2001:db8:10::10"]},
    "edge-2": {"ipv4": ["203.0.113.20"], "ipv6": ["2001:db8:20::20"]},
}
SERVICE = "hecate-caddy"


def entry(node, *statuses, output=""):
    """One /v1/health/service entry: the node's serfHealth plus the service's checks."""
    checks = [{"Node": node, "CheckID": "serfHealth", "Name": "Serf Health Status", "Status": "passing",
               "ServiceID": ""}]
    checks += [{"Node": node, "CheckID": f"_nomad-check-{i}", "Name": "service: \"hecate-caddy\" check",
                "Status": s, "Output": output, "ServiceID": "_nomad-task-x"} for i, s in enumerate(statuses)]
    return {"Node": {"Node": node, "Address": "10.0.0.1"}, "Service": {"Service": SERVICE, "Port": 443},
            "Checks": checks}


def pillar(edges=None, routes=("app",), members=None, **dns):
    dns.setdefault("zones", [{"name": ZONE}])
    if routes is False:
        dns["routes"], routes = False, ()
    dns["edges"] = EDGES if edges is None else edges
    hecate = {"global": {"domain": ZONE, "environment": "lab"},
              "reverse_proxy": {"caddy": {"routes": [{"domain": f"{r}.{ZONE}", "backend": "127.0.0.1:1",
                                                      "service": r} for r in routes]}},
              "dns": dns}
    if members is not None:
        hecate["members"] = {"hecate-edge": members}
    return {"hecate": hecate}


def app_records(health):
    got, notes = rec.desired(pillar(), {}, "lab", edge_health=health)
    return got[ZONE][("app", "A")].values, got[ZONE][("app", "AAAA")].values, notes


def test_health_by_node_lists_what_is_not_passing_per_node():
    health = edges_mod.health_by_node([
        entry("edge-1", "passing"),
        entry("edge-2", "critical", output="dial tcp 203.0.113.20:443: connect: connection refused"),
        entry("edge-3", "warning"),
    ])
    assert health == {
        "edge-1": [],
        "edge-2": ["check 'service: \"hecate-caddy\" check' is critical "
                   "(dial tcp 203.0.113.20:443: connect: connection refused)"],
        "edge-3": ["check 'service: \"hecate-caddy\" check' is warning"],
    }
    # a dead agent: its serfHealth is critical, whatever the service's check says
    dead = entry("edge-1", "passing")
    dead["Checks"][0]["Status"] = "critical"
    assert edges_mod.health_by_node([dead]) == {"edge-1": ["check 'Serf Health Status' is critical"]}
    # two instances on one node: one failing makes the edge unhealthy
    assert edges_mod.health_by_node([entry("edge-1", "passing"), entry("edge-1", "critical")])["edge-1"]


def test_all_healthy_every_address_no_note():
    v4, v6, notes = app_records(edges_mod.health_by_node([entry("edge-1", "passing"), entry("edge-2", "passing")]))
    assert v4 == ("203.0.113.10", "203.0.113.20") and v6 == ("2001:db8:10::10", "2001:db8:20::20")
    assert notes == []


def test_one_critical_edge_is_left_out_and_named_with_why():
    health = edges_mod.health_by_node([entry("edge-1", "passing"), entry("edge-2", "critical", output="refused")])
    v4, v6, notes = app_records(health)
    assert v4 == ("203.0.113.10",) and v6 == ("2001:db8:10::10",)
    assert notes == ["edge edge-2 (203.0.113.20, 2001:db8:20::20) left out of the route records: its Caddy is "
                     "not healthy in Consul: check 'service: \"hecate-caddy\" check' is critical (refused)"]


def test_an_edge_consul_does_not_know_counts_as_unhealthy():
    v4, _, notes = app_records(edges_mod.health_by_node([entry("edge-1", "passing"), entry("stranger", "passing")]))
    assert v4 == ("203.0.113.10",)
    assert notes == ["edge edge-2 (203.0.113.20, 2001:db8:20::20) left out of the route records: its Caddy is "
                     "not healthy in Consul: Consul has no instance of service 'hecate-caddy' on node edge-2"]


def test_no_healthy_edge_keeps_every_address_and_says_so():
    v4, v6, notes = app_records(edges_mod.health_by_node([entry("edge-1", "critical")]))
    assert v4 == ("203.0.113.10", "203.0.113.20") and v6 == ("2001:db8:10::10", "2001:db8:20::20")
    assert len(notes) == 1 and notes[0].startswith(
        "no edge's Caddy is healthy in Consul (service 'hecate-caddy'): the route records keep every edge's "
        "address rather than none (edge-1: check ")
    assert "edge-2: Consul has no instance of service 'hecate-caddy' on node edge-2" in notes[0]
    assert app_records({})[0] == v4  # Consul knows none of them


def test_the_service_name_comes_from_the_caddy_job_settings():
    p = pillar()
    p["hecate"]["jobs"] = {"caddy": {"service": "edge-caddy"}}
    got, notes = rec.desired(p, {}, "lab", edge_health={"edge-1": []})
    assert got[ZONE][("app", "A")].values == ("203.0.113.10",)
    assert "Consul has no instance of service 'edge-caddy' on node edge-2" in notes[0]


def test_hecate_dns_health_service_wins_over_the_job_setting():
    p = pillar(health_service="edge-caddy-check")
    p["hecate"]["jobs"] = {"caddy": {"service": "edge-caddy"}}
    assert edges_mod.service_name(p) == "edge-caddy-check"
    assert edges_mod.service_name(pillar()) == SERVICE
    assert not [e for e in hecate_schema.validate(p) if e.startswith("hecate:dns")]


def test_selection_summary_for_the_status():
    sel = edges_mod.select(EDGES, {"edge-1": [], "edge-2": ["check 'c' is critical"]}, SERVICE)
    assert edges_mod.summary(sel) == {
        "service": SERVICE, "in_records": ["edge-1"], "healthy": ["edge-1"],
        "left_out": {"edge-2": "check 'c' is critical"}, "unhealthy": {"edge-2": "check 'c' is critical"},
        "all_down": False}
    down = edges_mod.summary(edges_mod.select(EDGES, {}, SERVICE))
    assert down["in_records"] == ["edge-1", "edge-2"] and down["left_out"] == {} and down["all_down"] is True
    assert edges_mod.summary(None) is None


def test_flat_edge_is_never_filtered_and_validation_takes_every_edge():
    flat = pillar()
    del flat["hecate"]["dns"]["edges"]
    flat["hecate"]["dns"]["edge"] = {"ipv4": ["198.51.100.1"]}
    assert edges_mod.read(flat, {}) is None  # nothing read from Consul
    got, _ = rec.desired(flat, {}, "lab", edge_health={})
    assert got[ZONE][("app", "A")].values == ("198.51.100.1",)
    got, _ = rec.desired(pillar(), None, "lab", check_only=True)
    assert got[ZONE][("app", "A")].values == ("203.0.113.10", "203.0.113.20")


def test_read_asks_consul_for_every_instance_and_fails_without_writing_when_it_cannot():
    calls = []

    def health(name, passing=True):
        calls.append((name, passing))
        return [entry("edge-1", "passing")]

    assert edges_mod.read(pillar(), {"hecate_consul.service_health": health}) == {"edge-1": []}
    assert calls == [(SERVICE, False)]

    def down(name, passing=True):
        raise salt.exceptions.CommandExecutionError("Consul unreachable: connection refused")

    with pytest.raises(salt.exceptions.CommandExecutionError,
                       match=r"cannot read the health of the edges' Caddy \(Consul service 'hecate-caddy'\).*"
                             r"nothing was written: Consul unreachable"):
        edges_mod.read(pillar(), {"hecate_consul.service_health": down})
    with pytest.raises(salt.exceptions.CommandExecutionError, match="Consul module not available"):
        edges_mod.read(pillar(), {})
    assert edges_mod.read(pillar(routes=False), {}) is None  # hecate:dns:routes false: no route records


@pytest.mark.parametrize("edges,extra,path,message", [
    ({"edge-1": {}}, {}, "hecate:dns:edges:edge-1", "lists no address (ipv4 or ipv6)"),
    ({"edge-1": {"ipv4": ["2001:db8::1"]}}, {}, "hecate:dns:edges:edge-1:ipv4:0", "is not an IPv4 address"),
    ({"edge-1": {"ipv6": ["203.0.113.1"]}}, {}, "hecate:dns:edges:edge-1:ipv6:0", "is not an IPv6 address"),
    (EDGES, {"edge": {"ipv4": ["203.0.113.1"]}}, "hecate:dns:edges", "set either hecate:dns:edge"),
])
def test_bad_edges_are_refused_with_their_key_path(edges, extra, path, message):
    with pytest.raises(rec.DNSDataError) as err:
        rec.desired(pillar(edges=edges, **extra), {}, "lab", edge_health={})
    assert any(p == path and message in m for p, m in err.value.errors), err.value.errors


def test_edges_must_be_members_when_members_are_listed():
    assert hecate_dns_schema.check_pillar(pillar(members=["edge-*"])) == []
    errors = hecate_dns_schema.check_pillar(pillar(members=["edge-1"]))
    assert errors == [("hecate:dns:edges:edge-2", "edge-2 is not a member of role hecate-edge "
                       "(hecate:members:hecate-edge: edge-1): list the edge there or drop it here")]
    assert hecate_dns_schema.check_pillar(pillar()) == []  # no members block: nothing to compare with


def test_the_schema_takes_edges_by_minion_id():
    assert not [e for e in hecate_schema.validate(pillar()) if e.startswith("hecate:dns")]
    errors = [e for e in hecate_schema.validate(pillar(edges={"edge 1": {"ipv4": ["203.0.113.1"]}}))
              if e.startswith("hecate:dns")]
    assert errors, "a minion id with a space is not a key of hecate:dns:edges"
    errors = [e for e in hecate_schema.validate(pillar(edges={"edge-1": {"ipv4": ["203.0.113.1"], "port": 1}}))
              if e.startswith("hecate:dns")]
    assert errors


def test_status_says_which_edges_the_records_carry(monkeypatch):
    from tests.unit.states.conftest import load

    runner = load("runners", "hecate")
    sel = edges_mod.select(EDGES, {"edge-1": [], "edge-2": ["check 'c' is critical"]}, SERVICE)
    entry = {"zone": ZONE, "source": "r", "edge": {"A": ["203.0.113.10"], "AAAA": ["2001:db8:10::10"]},
             "A": {"values": ["203.0.113.10"]}, "AAAA": {"values": ["2001:db8:10::10"]},
             "points_at_edge": True, "edges": edges_mod.summary(sel)}
    monkeypatch.setattr(runner, "_call", lambda *a, **k: {"edge-1": {f"app.{ZONE}": entry}})
    got = runner._dns_status("lab", pillar())  # pylint: disable=protected-access
    assert got["ok"] is True
    assert got["edges"]["text"] == ("route records carry the edges edge-1; left out as unhealthy: "
                                    "edge-2 (check 'c' is critical)")
    down = edges_mod.summary(edges_mod.select(EDGES, {}, SERVICE))
    assert runner._edges_text(down) == (  # pylint: disable=protected-access
        "route records carry the edges edge-1, edge-2 although no edge's Caddy is healthy in Consul "
        "(service 'hecate-caddy'): every address is kept")
