"""
Routes from Consul through real Salt loaders: the Caddy and DNS states in one state run (the
shape of salt/hecate/routes.sls), the real Caddy, the Consul simulator (services registered
as Nomad would, with tags, meta and checks) and a Hetzner DNS simulator of their own (a zone
with a record someone else made).
"""

import copy
import json
import os
import uuid

import pytest
import requests
import yaml
from saltfactories.utils.functional import Loaders

from lab import topology
from lab.sim import SimHandle
from tests import caddy_helpers as ch

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ZONE = "routes.example"
TAG = "hecate-route-func"
TOKEN = "func-hcloud-" + uuid.uuid4().hex
EDGE4, EDGE6 = "203.0.113.10", "2001:db8:10::10"
FOREIGN = {"name": "mail", "type": "A", "ttl": 3600, "labels": {"owner": "mail-team"}, "records": ["203.0.113.25"]}
SLS = """
routes dns add:
  hetzner_dns.managed:
    - phase: add
routes caddy:
  caddy_routes.managed:
    - require:
      - hetzner_dns: routes dns add
routes dns prune:
  hetzner_dns.managed:
    - phase: prune
    - require:
      - caddy_routes: routes caddy
"""


def pillar(**consul_routes):
    return {
        "global": {"domain": ZONE, "environment": "func"},
        "reverse_proxy": {"caddy": {
            "server": "hecate",
            "default_policies": [],
            "routes": [{"domain": f"static.{ZONE}", "backend": "127.0.0.1:9", "service": "static"}],
            "consul_routes": dict({"tag": TAG}, **consul_routes),
        }},
        "dns": {
            "zones": [{"name": ZONE}],
            "edge": {"ipv4": [EDGE4], "ipv6": [EDGE6]},
            "token": {"vault": "secret/hecate/hetzner-routes", "key": "dns_api_token"},
        },
    }


@pytest.fixture(scope="module")
def dns_sim(tmp_path_factory):
    handle = SimHandle("hetzner", str(tmp_path_factory.mktemp("routes-dns-sim")), {
        "token": TOKEN, "action_seconds": 0.02, "zones": [{"name": ZONE, "rrsets": [copy.deepcopy(FOREIGN)]}],
    }).start()
    yield handle
    handle.stop()


@pytest.fixture(scope="module")
def loaders(salt_factories, tmp_path_factory, dns_sim, vault_sim, consul_sim, caddy):
    topology.seed_vault(vault_sim.url, vault_sim.root_token,
                        {("secret", "hecate/hetzner-routes"): {"dns_api_token": TOKEN}})
    roots = tmp_path_factory.mktemp("routes-func")
    (roots / "states").mkdir()
    (roots / "pillar").mkdir()
    (roots / "states" / "routes.sls").write_text(SLS)
    (roots / "pillar" / "top.sls").write_text("base:\n  '*':\n    - routes\n")
    (roots / "pillar" / "routes.sls").write_text(yaml.safe_dump({"hecate": pillar()}))
    overrides = {
        "file_client": "local",
        "module_dirs": [REPO],
        "file_roots": {"base": [str(roots / "states")]},
        "pillar_roots": {"base": [str(roots / "pillar")]},
        "hecate": {"connections": {
            "vault": {"url": vault_sim.url, "token": vault_sim.root_token},
            "hetzner_dns": topology.hetzner_connection(dns_sim.url),
            "consul": {"url": consul_sim.url, "token": consul_sim.token},
            "caddy": {"admin_url": caddy.admin_url, "state_dir": str(roots / "caddy-state")},
        }},
    }
    factory = salt_factories.salt_minion_daemon(f"routes-func-{uuid.uuid4().hex[:6]}", overrides=overrides)
    return Loaders(factory.config.copy(), loaded_base_name=f"{__name__}.loaded")


class Consul:
    """Services registered in the Consul simulator as Nomad registers them (TTL checks here)."""

    def __init__(self, sim):
        self.sim = sim
        self.ids = []

    def _put(self, path, body=None):
        resp = requests.put(self.sim.url + path, data=json.dumps(body) if body is not None else None,
                            headers={"X-Consul-Token": self.sim.token}, timeout=10)
        assert resp.status_code == 200, resp.text

    def register(self, sid, name, port, meta, tags=(TAG,), status="passing"):
        self._put("/v1/agent/service/register", {
            "ID": sid, "Name": name, "Tags": list(tags), "Address": "127.0.0.1", "Port": port, "Meta": meta,
            "Check": {"CheckID": f"check-{sid}", "TTL": "10m", "Status": status}})
        self.ids.append(sid)

    def status(self, sid, status):
        self._put(f"/v1/agent/check/{ {'passing': 'pass', 'critical': 'fail'}[status] }/check-{sid}")

    def deregister(self, sid):
        self._put(f"/v1/agent/service/deregister/{sid}")
        self.ids.remove(sid)

    def clear(self):
        for sid in list(self.ids):
            self.deregister(sid)


@pytest.fixture
def consul(consul_sim):
    out = Consul(consul_sim)
    yield out
    out.clear()


@pytest.fixture(scope="module")
def backends():
    got = {name: ch.Backend(name).start() for name in ("whoami-1", "whoami-2", "other")}
    yield got
    for backend in got.values():
        backend.stop()


@pytest.fixture
def clean(loaders, caddy, dns_sim, consul):
    """Caddy without routes, the zone without hecate's records (what other tests left is gone)."""
    ch.reset(caddy)
    assert run(loaders).failed is False
    dns_sim.clear_requests()
    yield dns_sim


def run(loaders, test=False, **override):
    kwargs = {"test": test}
    if override:
        kwargs["pillar"] = {"hecate": {"reverse_proxy": {"caddy": {"consul_routes": override}}}}
    return loaders.modules.state.sls("routes", **kwargs)


def by_id(ret):
    assert not ret.failed, ret.raw
    return {r.id: r for r in ret}


def zone(dns_sim):
    return dns_sim.state()["zones"][ZONE]


def dns_writes(dns_sim):
    return [(r["method"], r["path"]) for r in dns_sim.writes()]


def catalog_reads(consul_sim):
    return [r for r in consul_sim.requests() if r["path"] == "/v1/catalog/services"]


def test_a_tagged_service_gets_its_route_and_records_preview_apply_rerun(clean, loaders, caddy, consul, consul_sim,
                                                                          backends):
    consul.register("whoami-1", "whoami", backends["whoami-1"].port, {"hecate_domain": f"whoami.{ZONE}"})
    consul.register("whoami-2", "whoami", backends["whoami-2"].port, {"hecate_domain": f"whoami.{ZONE}"})
    consul.register("whoami-3", "whoami", 1, {"hecate_domain": f"whoami.{ZONE}"}, status="critical")
    consul.register("bad", "bad", 2, {"hecate_domain": "not a domain"})
    consul.register("mailer", "mailer", backends["other"].port, {"hecate_domain": f"mail.{ZONE}"})
    consul.register("untagged", "untagged", 3, {"hecate_domain": f"untagged.{ZONE}"}, tags=("web",))
    foreign_before = zone(clean)["mail/A"]

    consul_sim.clear_requests()
    caddy_writes = ch.writes(caddy)
    preview = by_id(run(loaders, test=True))
    assert ch.writes(caddy) == caddy_writes and dns_writes(clean) == []
    assert len(catalog_reads(consul_sim)) == 1  # one reading of Consul for the three states
    upstreams = sorted(b.dial for name, b in backends.items() if name.startswith("whoami"))
    assert preview["routes caddy"].result is None
    assert preview["routes caddy"].changes == {"added": {
        "consul.mailer": {"domains": [f"mail.{ZONE}"], "upstreams": [backends["other"].dial]},
        "consul.whoami": {"domains": [f"whoami.{ZONE}"], "upstreams": upstreams}}}
    comment = preview["routes caddy"].comment
    assert "Consul service 'bad' skipped: meta.hecate_domain: 'not a domain' is not a valid domain" in comment
    assert preview["routes dns add"].changes == {
        f"whoami.{ZONE} A": {"old": None, "new": {"ttl": 300, "values": [EDGE4]}},
        f"whoami.{ZONE} AAAA": {"old": None, "new": {"ttl": 300, "values": [EDGE6]}}}
    assert f"mail.{ZONE} A (from Consul service 'mailer') not made: the zone already has mail.{ZONE} A, " \
           "which hecate does not own" in preview["routes dns add"].comment
    assert preview["routes dns prune"].changes == {}

    applied = by_id(run(loaders))
    for sid in preview:
        assert applied[sid].changes == preview[sid].changes, sid
        assert applied[sid].result is True, applied[sid].comment
    resp = ch.through(caddy, f"whoami.{ZONE}")
    assert resp.status_code == 200 and resp.json()["backend"] in ("whoami-1", "whoami-2")
    live = zone(clean)
    assert live["whoami/A"]["labels"] == {"managed-by": "hecate", "hecate-env": "func"}
    assert live["mail/A"] == foreign_before and "untagged/A" not in live

    caddy_writes = ch.writes(caddy)
    clean.clear_requests()
    again = by_id(run(loaders))
    assert all(r.changes == {} and r.result is True for r in again.values())
    assert "hecate routes of Caddy server 'hecate' are as in pillar and Consul" in again["routes caddy"].comment
    assert ch.writes(caddy) == caddy_writes and dns_writes(clean) == []
    # the same instances answering in another order change nothing either
    consul.deregister("whoami-1")
    consul.register("whoami-1", "whoami", backends["whoami-1"].port, {"hecate_domain": f"whoami.{ZONE}"})
    assert all(r.changes == {} for r in by_id(run(loaders, test=True)).values())


def test_a_service_that_disappears_loses_its_route_and_records(clean, loaders, caddy, consul, backends):
    consul.register("whoami-1", "whoami", backends["whoami-1"].port, {"hecate_domain": f"whoami.{ZONE}"})
    assert not run(loaders).failed
    assert ch.through(caddy, f"whoami.{ZONE}").json()["backend"] == "whoami-1"
    consul.deregister("whoami-1")
    clean.clear_requests()
    caddy_writes = ch.writes(caddy)
    preview = by_id(run(loaders, test=True))
    assert preview["routes caddy"].changes == {"removed": {
        "consul.whoami": {"domains": [f"whoami.{ZONE}"], "upstreams": [backends["whoami-1"].dial]}}}
    assert preview["routes dns add"].changes == {}
    assert "2 hecate RRSet(s) no longer in pillar: deleted by the prune phase" in preview["routes dns add"].comment
    assert preview["routes dns prune"].changes == {
        f"whoami.{ZONE} A": {"old": {"ttl": 300, "values": [EDGE4]}, "new": None},
        f"whoami.{ZONE} AAAA": {"old": {"ttl": 300, "values": [EDGE6]}, "new": None}}
    assert ch.writes(caddy) == caddy_writes and dns_writes(clean) == []
    applied = by_id(run(loaders))
    assert {k: v.changes for k, v in applied.items()} == {k: v.changes for k, v in preview.items()}
    assert sorted(dns_writes(clean)) == [("DELETE", f"/v1/zones/1000/rrsets/whoami/{t}") for t in ("A", "AAAA")]
    assert "whoami/A" not in zone(clean) and zone(clean)["mail/A"]["records"][0]["value"] == "203.0.113.25"
    clean.clear_requests()
    assert all(r.changes == {} for r in by_id(run(loaders)).values()) and dns_writes(clean) == []


def test_no_passing_instance_drops_the_route_unless_pillar_keeps_it(clean, loaders, caddy, consul, backends):
    consul.register("whoami-1", "whoami", backends["whoami-1"].port, {"hecate_domain": f"whoami.{ZONE}"})
    assert not run(loaders).failed
    consul.status("whoami-1", "critical")
    kept = by_id(run(loaders, test=True, keep_without_passing=["whoami"]))
    assert all(r.changes == {} for r in kept.values())
    assert "Consul service 'whoami' has no passing instance; its route is kept" in kept["routes caddy"].comment
    dropped = by_id(run(loaders, test=True))
    assert set(dropped["routes caddy"].changes["removed"]) == {"consul.whoami"}
    assert "Consul service 'whoami' skipped: no passing instance" in dropped["routes caddy"].comment
    consul.status("whoami-1", "passing")
    assert all(r.changes == {} for r in by_id(run(loaders, test=True)).values())


def test_one_reading_of_consul_per_orchestration_run(clean, loaders, consul, consul_sim, backends):
    """Two state runs of one run id (the orchestration's dns and caddy steps) see the same services."""
    consul.register("whoami-1", "whoami", backends["whoami-1"].port, {"hecate_domain": f"whoami.{ZONE}"})
    run_pillar = {"hecate_run": {"id": f"func-{uuid.uuid4().hex[:8]}", "env": "func"}}
    consul_sim.clear_requests()
    first = loaders.modules.state.sls("routes", pillar=run_pillar)
    assert not first.failed
    consul.register("late", "late", backends["other"].port, {"hecate_domain": f"late.{ZONE}"})
    again = by_id(loaders.modules.state.sls("routes", pillar=run_pillar))
    assert all(r.changes == {} for r in again.values())  # the run's services: "late" is not one
    assert len(catalog_reads(consul_sim)) == 1
    assert "consul.late" in by_id(run(loaders, test=True))["routes caddy"].changes["added"]


def test_execution_functions_see_what_the_states_see(clean, loaders, caddy, consul, backends):
    consul.register("whoami-1", "whoami", backends["whoami-1"].port, {"hecate_domain": f"whoami.{ZONE}"})
    consul.register("bad", "bad", 2, {"hecate_domain": f"static.{ZONE}"})
    mod = loaders.modules
    found = loaders.modules.caddy.consul_routes()
    assert found["enabled"] is True and found["tag"] == TAG
    assert found["routes"]["consul.whoami"]["upstreams"] == [backends["whoami-1"].dial]
    assert found["skipped"] == {"bad": f"static.{ZONE} is already pillar route 'static' "
                                       "(hecate:reverse_proxy:caddy:routes:0): pillar wins"}
    assert [r["@id"] for r in mod.caddy.desired_routes()] == ["hecate.route.static", "hecate.route.consul.whoami"]
    drift = mod.caddy.drift()
    assert drift["in_sync"] is False and set(drift["changes"]["added"]) == {"consul.whoami"}
    assert any("Consul service 'bad' skipped" in n for n in drift["notes"])
    dns = mod.hetzner_dns.drift()
    assert set(dns["changes"]) == {f"whoami.{ZONE} A", f"whoami.{ZONE} AAAA"}
    desired = {r["name"]: r["source"] for r in mod.hetzner_dns.desired()["zones"][ZONE]}
    assert desired[f"whoami.{ZONE}"] == "Consul service 'whoami'"
    assert not run(loaders).failed
    assert mod.caddy.drift()["in_sync"] is True and mod.hetzner_dns.drift()["in_sync"] is True
    answer = mod.hetzner_dns.resolution(domain=f"whoami.{ZONE}")
    assert list(answer) == [f"whoami.{ZONE}"]
    assert answer[f"whoami.{ZONE}"]["points_at_edge"] is True
    assert answer[f"whoami.{ZONE}"]["source"] == "Consul service 'whoami'"
    answer = mod.hetzner_dns.resolution(domain=f"nothing.{ZONE}")
    assert answer[f"nothing.{ZONE}"]["source"] == "no route has this domain"
    health = mod.hecate_consul.service_health("whoami", passing=False, tag=TAG)
    assert [e["Service"]["ID"] for e in health] == ["whoami-1"]
    assert mod.hecate_consul.service_health("whoami", passing=False, tag="other-tag") == []
    # the lab's Caddy listens in plain HTTP: no certificate to read, and that is no failure
    certs = mod.caddy.certificates()
    assert certs["ok"] is True and certs["listener"] is None
    assert set(certs["domains"]) == {f"static.{ZONE}", f"whoami.{ZONE}"}
    assert certs["domains"][f"whoami.{ZONE}"]["skipped"].startswith("no TLS listener (127.0.0.1:")


def test_when_consul_cannot_be_read_the_states_fail_and_write_nothing(clean, loaders, caddy, consul, consul_sim,
                                                                      backends):
    consul.register("whoami-1", "whoami", backends["whoami-1"].port, {"hecate_domain": f"whoami.{ZONE}"})
    assert not run(loaders).failed
    caddy_writes = ch.writes(caddy)
    clean.clear_requests()
    consul_sim.fault(method="GET", path="^/v1/catalog/services$", status=403, body="Permission denied")
    try:
        states = by_id(run(loaders))
        alone = loaders.states.caddy_routes.managed("caddy alone")
    finally:
        consul_sim.clear_faults()
    assert states["routes dns add"].result is False
    assert "Consul: list catalog services: permission denied" in states["routes dns add"].comment
    # requisites failed: a Consul that cannot be read is never "every service is gone"
    assert states["routes caddy"].result is False and states["routes dns prune"].result is False
    assert ch.writes(caddy) == caddy_writes and dns_writes(clean) == []
    assert alone.result is False and "permission denied" in alone.comment
    assert ch.writes(caddy) == caddy_writes
