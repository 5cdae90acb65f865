"""
Routes from Consul (_utils/hecate_consul_routes.py): reading Consul, the rules a service must
meet, determinism, the plan with pillar routes, the DNS records left out for foreign RRSets,
the run pin, and the pillar schema.
"""

import json
import os
import random
import stat
import time

import pytest
import salt.exceptions

import hecate_caddy_routes
import hecate_consul_routes as cr
import hecate_dns_records
import hecate_schema


def inst(addr, port, passing=True, node="n1", **meta):
    return {"id": f"{addr}:{port}", "node": node, "address": addr, "port": port, "passing": passing, "meta": meta}


def caddy(consul_routes=None, routes=None, **extra):
    block = {"consul_routes": {} if consul_routes is None else consul_routes,
             "routes": routes if routes is not None else [
                 {"domain": "static.example.com", "backend": "10.1.0.1:80", "service": "static"}]}
    block.update(extra)
    return {"hecate": {"reverse_proxy": {"caddy": block}}}


WHOAMI = [inst("10.0.0.2", 8080, hecate_domain="whoami.example.com"),
          inst("10.0.0.1", 8080, hecate_domain="whoami.example.com"),
          inst("10.0.0.3", 8080, passing=False, hecate_domain="whoami.example.com")]


# -- reading Consul ----------------------------------------------------------------------------------
def test_read_consul_keeps_only_tagged_services_their_health_and_hecate_meta():
    catalog = {"whoami": ["hecate-route", "web"], "db": ["postgres"], "consul": []}
    entries = {
        "whoami": [
            {"Node": {"Node": "n2", "Address": "10.0.0.9"},
             "Service": {"ID": "b", "Address": "", "Port": 81, "Meta": {"hecate_domain": "w.example.com",
                                                                          "external-source": "nomad"}},
             "Checks": [{"Status": "passing"}, {"Status": "critical"}]},
            {"Node": {"Node": "n1", "Address": "10.0.0.8"},
             "Service": {"ID": "a", "Address": "10.0.0.1", "Port": 80, "Meta": {"hecate_domain": "w.example.com"}},
             "Checks": [{"Status": "passing"}]},
        ],
    }
    asked = []

    def health(name, tag):
        asked.append((name, tag))
        return entries.get(name, [])

    got = cr.read_consul("hecate-route", lambda: catalog, health)
    assert asked == [("whoami", "hecate-route")]  # one health read per tagged service, no other
    assert got == {"whoami": [
        {"id": "a", "node": "n1", "address": "10.0.0.1", "port": 80, "passing": True,
         "meta": {"hecate_domain": "w.example.com"}},
        # the service has no address of its own: the node's; one failing check fails the instance
        {"id": "b", "node": "n2", "address": "10.0.0.9", "port": 81, "passing": False,
         "meta": {"hecate_domain": "w.example.com"}},
    ]}
    # a service that left between the catalog read and its health read is not there
    assert cr.read_consul("hecate-route", lambda: {"gone": ["hecate-route"]}, lambda n, t: []) == {}


def test_salt_reader_names_the_missing_module():
    with pytest.raises(salt.exceptions.CommandExecutionError, match="Consul module not available"):
        cr.salt_reader({})
    calls = []
    funcs = {"hecate_consul.catalog_services": lambda: {"x": ["t"]},
             "hecate_consul.service_health":
                 lambda name, passing=True, tag=None: calls.append((name, passing, tag)) or []}
    catalog, health = cr.salt_reader(funcs)
    assert catalog() == {"x": ["t"]}
    health("x", "t")
    assert calls == [("x", False, "t")]  # every instance, whatever its health: hecate judges


# -- the rules -------------------------------------------------------------------------------------
def test_a_tagged_service_gets_a_route_to_its_passing_instances():
    found = cr.discover(caddy(), {"whoami": WHOAMI})
    (route,) = found.routes
    assert route.name == "consul.whoami" and route.id == "hecate.route.consul.whoami"
    assert route.domains == ["whoami.example.com"]
    assert hecate_caddy_routes.summary(route.json) == {
        "domains": ["whoami.example.com"], "upstreams": ["10.0.0.1:8080", "10.0.0.2:8080"]}
    # built by the pillar route model: the default policies apply as to a pillar route
    same = hecate_caddy_routes.build_route(
        {"name": "whoami", "domain": "whoami.example.com", "backend": ["10.0.0.1:8080", "10.0.0.2:8080"]},
        "x", caddy()["hecate"]["reverse_proxy"]["caddy"], id_prefix=cr.ID_PREFIX, errors=[])
    assert same.json == route.json
    assert found.dns_domains() == [("whoami.example.com", "Consul service 'whoami'")]
    assert found.skipped == {} and found.lines() == []


def test_the_same_answer_in_any_order_gives_the_same_routes():
    answer = {"whoami": WHOAMI, "other": [inst("10.0.0.7", 80, hecate_domain="b.example.com, a.example.com")]}
    first = cr.discover(caddy(), answer)
    for seed in range(5):
        rnd = random.Random(seed)
        shuffled = {}
        for name in rnd.sample(list(answer), len(answer)):
            shuffled[name] = rnd.sample(answer[name], len(answer[name]))
        again = cr.discover(caddy(), shuffled)
        assert [r.json for r in again.routes] == [r.json for r in first.routes]
        assert again.dns_domains() == first.dns_domains()


@pytest.mark.parametrize("instances,reason", [
    ([inst("10.0.0.1", 80)], "carries the tag but no meta.hecate_domain"),
    ([inst("10.0.0.1", 80, hecate_domain="not a domain")], "'not a domain' is not a valid domain"),
    ([inst("10.0.0.1", 80, hecate_domain="a.example.com,a.example.com")], "lists a domain twice"),
    ([inst("10.0.0.1", 80, hecate_domain="a.example.com", hecate_forwardauth="true")],
     "unknown meta key(s) hecate_forwardauth"),
    ([inst("10.0.0.1", 80, hecate_domain="a.example.com", hecate_forward_auth="perhaps")],
     "meta.hecate_forward_auth is 'perhaps', not true or false"),
    ([inst("10.0.0.1", 80, hecate_domain="a.example.com", hecate_policies="security,nope")],
     "meta.hecate_policies: unknown policy 'nope'"),
    ([inst("10.0.0.1", 80, hecate_domain="a.example.com", hecate_forward_auth="true")],
     "meta.hecate_forward_auth: forward auth needs hecate:reverse_proxy:caddy:forward_auth:outpost"),
    ([inst("10.0.0.1", 80, hecate_domain="a.example.com"), inst("10.0.0.2", 80, hecate_domain="b.example.com")],
     "its tagged instances disagree on their hecate_* meta"),
    ([inst("10.0.0.1", 80, passing=False, hecate_domain="a.example.com")], "no passing instance"),
    ([inst("", 80, hecate_domain="a.example.com"), inst("10.0.0.1", 0, hecate_domain="a.example.com")],
     "no instance with an address and a port"),
    ([inst("10.0.0.1", 80, hecate_domain="static.example.com")],
     "static.example.com is already pillar route 'static' (hecate:reverse_proxy:caddy:routes:0): pillar wins"),
    ([inst("10.0.0.1", 80, hecate_domain="www.example.com")],
     "www.example.com is already the DNS record hecate:dns:records:0: pillar wins"),
])
def test_a_service_with_bad_data_is_skipped_and_the_others_keep_their_routes(instances, reason):
    pillar = caddy()
    pillar["hecate"]["dns"] = {"records": [{"name": "www.example.com", "type": "CNAME", "value": "example.com"}]}
    found = cr.discover(pillar, {"whoami": WHOAMI, "bad": instances})
    assert [r.name for r in found.routes] == ["consul.whoami"]
    assert set(found.skipped) == {"bad"} and reason in found.skipped["bad"], found.skipped
    assert found.lines() == [f"Consul service 'bad' skipped: {found.skipped['bad']}"]
    assert [d for d, _ in found.dns_domains()] == ["whoami.example.com"]


def test_two_services_claiming_one_domain_are_both_skipped():
    answer = {"whoami": WHOAMI, "copy": [inst("10.0.0.9", 80, hecate_domain="whoami.example.com")],
              "ok": [inst("10.0.0.8", 80, hecate_domain="ok.example.com")]}
    found = cr.discover(caddy(), answer)
    assert [r.name for r in found.routes] == ["consul.ok"]
    assert found.skipped == {"copy": "whoami.example.com is claimed by Consul service(s) whoami too",
                             "whoami": "whoami.example.com is claimed by Consul service(s) copy too"}


def test_service_names_that_cannot_name_a_route_or_collide_are_skipped():
    answer = {"My.Service": [inst("10.0.0.1", 80, hecate_domain="a.example.com")],
              "Web": [inst("10.0.0.2", 80, hecate_domain="b.example.com")],
              "web": [inst("10.0.0.3", 80, hecate_domain="c.example.com")]}
    found = cr.discover(caddy(), answer)
    assert found.routes == []
    assert "cannot name a route" in found.skipped["My.Service"]
    assert "its route name consul.web is that of web too" in found.skipped["Web"]


def test_allowed_domains_limit_what_a_service_may_claim():
    pillar = caddy({"allowed_domains": ["apps.example.com", "*.lab.example.com"]})
    answer = {"a": [inst("10.0.0.1", 80, hecate_domain="a.apps.example.com")],
              "b": [inst("10.0.0.2", 80, hecate_domain="apps.example.com")],
              "c": [inst("10.0.0.3", 80, hecate_domain="x.lab.example.com")],
              "d": [inst("10.0.0.4", 80, hecate_domain="bank.example.com")]}
    found = cr.discover(pillar, answer)
    assert [r.name for r in found.routes] == ["consul.a", "consul.b", "consul.c"]
    assert found.skipped == {"d": "meta.hecate_domain: bank.example.com is not in "
                                  "hecate:reverse_proxy:caddy:consul_routes:allowed_domains"}


def test_keep_without_passing_keeps_the_route_to_every_tagged_instance():
    down = [inst("10.0.0.2", 80, passing=False, hecate_domain="a.example.com"),
            inst("10.0.0.1", 80, passing=False, hecate_domain="a.example.com")]
    for keep in (True, ["a"]):
        other = [dict(down[0], meta={"hecate_domain": "b.example.com"})]
        found = cr.discover(caddy({"keep_without_passing": keep}), {"a": down, "b": other})
        names = [r.name for r in found.routes]
        assert "consul.a" in names
        got = found.services["a"]
        assert got.kept and not got.passing and got.upstreams == ("10.0.0.1:80", "10.0.0.2:80")
        assert any("no passing instance; its route is kept" in n for n in found.notes)
    assert found.skipped == {"b": "no passing instance"}  # a list names the services it keeps
    assert cr.discover(caddy({"keep_without_passing": False}), {"a": down}).routes == []


def test_meta_forward_auth_policies_and_several_domains():
    pillar = caddy(forward_auth={"outpost": "10.9.9.9:9000"})
    answer = {"app": [inst("10.0.0.1", 80, hecate_domain="b.example.com, A.example.com.",
                           hecate_forward_auth="TRUE", hecate_policies="none")]}
    found = cr.discover(pillar, answer)
    (route,) = found.routes
    assert route.domains == ["b.example.com", "a.example.com"]
    view = hecate_caddy_routes.describe(route.json)
    assert view["forward_auth"]["outpost"] == ["10.9.9.9:9000"]
    assert "response_headers" not in view and "encode" not in view  # policies: none
    assert found.services["app"].forward_auth is True and found.services["app"].policies == []


def test_disabled_or_absent_consul_routes_discovers_nothing():
    assert cr.for_states(caddy({"enabled": False}), {}, {}) is None
    assert cr.for_states({"hecate": {"reverse_proxy": {"caddy": {}}}}, {}, {}) is None


# -- Caddy: the plan ---------------------------------------------------------------------------------
def test_a_discovered_route_an_unmanaged_route_would_shadow_is_left_out_not_fatal():
    data = caddy()["hecate"]["reverse_proxy"]["caddy"]
    pillar_routes = hecate_caddy_routes.build(data)
    found = cr.discover(caddy(), {"whoami": WHOAMI, "ok": [inst("10.0.0.8", 80, hecate_domain="ok.example.com")]})
    site = {"match": [{"host": ["whoami.example.com"]}], "handle": [{"handler": "static_response"}], "terminal": True}
    compute, notes = cr.planner(pillar_routes, found)
    new, changes = compute([site])
    assert sorted(changes["added"]) == ["consul.ok", "static"]
    assert [r.get("@id") for r in new] == [None, "hecate.route.static", "hecate.route.consul.ok"]
    assert len(notes) == 1 and "Consul route 'consul.whoami' left out" in notes[0]
    # the notes are those of the last computation (apply may compute again after a 412)
    compute([])
    assert notes == []
    # a pillar route shadowed still fails the whole set, as without Consul
    other = dict(site, match=[{"host": ["static.example.com"]}])
    with pytest.raises(hecate_caddy_routes.ShadowedRoutes):
        compute([other])


def test_pillar_routes_first_then_discovered_exact_before_wildcard():
    data = caddy(routes=[{"domain": "*.w.example.com", "backend": "10.1.0.1:80", "service": "wild"},
                         {"domain": "p.example.com", "backend": "10.1.0.2:80", "service": "p"}])
    found = cr.discover(data, {"z": [inst("10.0.0.1", 80, hecate_domain="z.example.com")],
                               "a": [inst("10.0.0.2", 80, hecate_domain="*.a.example.com")]})
    compute, _ = cr.planner(hecate_caddy_routes.build(data["hecate"]["reverse_proxy"]["caddy"]), found)
    new, _ = compute([])
    assert [r["@id"] for r in new] == ["hecate.route.p", "hecate.route.consul.z", "hecate.route.wild",
                                       "hecate.route.consul.a"]


# -- DNS ------------------------------------------------------------------------------------------------
def test_discovered_records_held_by_foreign_rrsets_are_left_out_with_a_note():
    pillar = caddy()
    pillar["hecate"]["global"] = {"environment": "lab"}
    pillar["hecate"]["dns"] = {"zones": [{"name": "example.com"}], "edge": {"ipv4": ["203.0.113.10"]}}
    answer = {"mail": [inst("10.0.0.1", 80, hecate_domain="mail.example.com")],
              "alias": [inst("10.0.0.2", 80, hecate_domain="alias.example.com")],
              "mine": [inst("10.0.0.3", 80, hecate_domain="mine.example.com")],
              "whoami": WHOAMI}
    found = cr.discover(pillar, answer)
    wanted, _ = hecate_dns_records.desired(pillar, {}, "lab", discovered=found.dns_domains())
    live = [
        {"name": "mail", "type": "A", "ttl": 300, "labels": {"owner": "mail-team"},
         "records": [{"value": "203.0.113.25"}]},
        {"name": "alias", "type": "CNAME", "ttl": 300, "labels": {}, "records": [{"value": "elsewhere.example.net."}]},
        {"name": "mine", "type": "A", "ttl": 300, "labels": {"managed-by": "hecate", "hecate-env": "lab"},
         "records": [{"value": "198.51.100.1"}]},
    ]
    reads = []

    def rrsets(zone):
        reads.append(zone)
        return live

    read = cr.memo(rrsets)
    pillar["hecate"]["dns"]["edge"]["ipv6"] = ["2001:db8::10"]
    wanted, _ = hecate_dns_records.desired(pillar, {}, "lab", discovered=found.dns_domains())
    kept, notes = cr.dns_without_clashes(wanted, read, "lab", found.sources())
    assert sorted(kept["example.com"]) == [("mine", "A"), ("mine", "AAAA"), ("static", "A"), ("static", "AAAA"),
                                           ("whoami", "A"), ("whoami", "AAAA")]
    # the foreign A of mail keeps its AAAA out too: a name never points half at the edge
    assert len(notes) == 4 and all("which hecate does not own" in n for n in notes)
    assert ("mail.example.com AAAA (from Consul service 'mail') not made: "
            "the zone already has mail.example.com A") in notes[3]
    ops, conflicts, _ = hecate_dns_records.plan_zones(kept, read, "lab")
    assert conflicts == [] and reads == ["example.com"]  # the zone is read once
    assert {(op.kind, op.name, op.type) for op in ops} == {
        ("update", "mine", "A"), ("create", "mine", "AAAA"), ("create", "static", "A"), ("create", "static", "AAAA"),
        ("create", "whoami", "A"), ("create", "whoami", "AAAA")}


# -- one reading per state run, one per orchestration run ------------------------------------------------
def funcs(answer_by_call):
    calls = []

    def catalog():
        calls.append("catalog")
        return {name: ["hecate-route"] for name in answer_by_call()}

    def health(name, passing=True, tag=None):
        calls.append(name)
        return [{"Node": {"Node": "n"}, "Service": {"ID": i["id"], "Address": i["address"], "Port": i["port"],
                                                    "Meta": i["meta"]}, "Checks": []} for i in answer_by_call()[name]]

    return {"hecate_consul.catalog_services": catalog, "hecate_consul.service_health": health}, calls


def test_a_state_run_reads_consul_once_and_an_orchestration_run_pins_its_answer(tmp_path):
    current = {"whoami": WHOAMI[:2]}
    salt_funcs, calls = funcs(lambda: current)
    opts = {"hecate": {"connections": {"caddy": {"state_dir": str(tmp_path / "state")}}}}
    pillar = caddy()
    context = {}
    first = cr.for_states(pillar, salt_funcs, opts, context)
    second = cr.for_states(pillar, salt_funcs, opts, context)
    assert calls == ["catalog", "whoami"] and [r.json for r in first.routes] == [r.json for r in second.routes]

    # an orchestration run: the first step pins, a later step (another state run) reads the pin
    run = dict(pillar, hecate_run={"id": "20260101T000000Z-abc", "env": "lab"})
    del calls[:]
    cr.for_states(run, salt_funcs, opts, {})
    current = {"whoami": WHOAMI[:1], "new": [inst("10.0.0.9", 80, hecate_domain="new.example.com")]}
    later = cr.for_states(run, salt_funcs, opts, {})
    assert calls == ["catalog", "whoami"]
    assert [r.json for r in later.routes] == [r.json for r in first.routes]
    pin = tmp_path / "state" / "consul-routes" / "20260101T000000Z-abc.json"
    assert stat.S_IMODE(os.stat(pin).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(pin.parent).st_mode) == 0o700
    assert set(json.loads(pin.read_text())["answers"]) == {"hecate-route"}
    # another run reads Consul again
    other = cr.for_states(dict(pillar, hecate_run={"id": "other"}), salt_funcs, opts, {})
    assert [r.name for r in other.routes] == ["consul.new", "consul.whoami"]


def test_a_preview_pins_nothing_and_old_pins_are_pruned(tmp_path):
    salt_funcs, _ = funcs(lambda: {"whoami": WHOAMI})
    opts = {"test": True, "hecate": {"connections": {"caddy": {"state_dir": str(tmp_path)}}}}
    cr.for_states(dict(caddy(), hecate_run={"id": "preview"}), salt_funcs, opts, {})
    assert not (tmp_path / "consul-routes").exists()
    old = tmp_path / "consul-routes" / "old.json"
    old.parent.mkdir()
    old.write_text("{}")
    os.utime(old, (time.time() - 2 * cr.PIN_KEEP_SECONDS,) * 2)
    cr.for_states(dict(caddy(), hecate_run={"id": "real"}), salt_funcs, dict(opts, test=False), {})
    assert sorted(os.listdir(tmp_path / "consul-routes")) == ["real.json"]


# -- pillar ---------------------------------------------------------------------------------------------
def test_schema_accepts_the_block_and_names_unknown_keys():
    def errors(block):
        pillar = {"hecate": {"global": {"domain": "example.com", "environment": "lab"},
                             "reverse_proxy": {"caddy": {"consul_routes": block}}}}
        validator = hecate_schema.jsonschema.Draft202012Validator(hecate_schema.schema())
        return [e for err in validator.iter_errors(pillar) for e in hecate_schema.format_error(err)]

    assert errors({"tag": "hecate-route", "keep_without_passing": ["a"], "allowed_domains": ["example.com"],
                   "enabled": True}) == []
    assert errors({"tags": "x"}) == [
        ("hecate:reverse_proxy:caddy:consul_routes:tags", "unknown key (not in the schema)")]


def test_every_new_schema_property_has_a_description():
    import hecate_route_checks  # pylint: disable=import-outside-toplevel

    for module in (cr, hecate_route_checks):
        for path, fragment in module.PILLAR_SCHEMA.items():
            assert fragment.get("description"), path
            for key, prop in fragment["properties"].items():
                assert prop.get("description"), f"{path}:{key}"
