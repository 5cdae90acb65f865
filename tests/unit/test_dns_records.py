"""The records hecate wants from pillar (hecate_dns_records) and how they differ from a zone."""

import pytest
import salt.exceptions

import hecate_dns_records as rec
import hecate_schema

ZONE = "example.com"
EDGE4, EDGE6 = "203.0.113.10", "2001:db8:10::10"
HECATE = {"managed-by": "hecate", "hecate-env": "lab"}


def pillar(routes=None, **dns):
    dns.setdefault("zones", [{"name": ZONE}])
    dns.setdefault("edge", {"ipv4": [EDGE4], "ipv6": [EDGE6]})
    if routes is None:
        routes = [{"domain": "app.example.com", "backend": "127.0.0.1:1", "service": "app"}]
    return {"hecate": {"global": {"domain": ZONE, "environment": "lab"},
                       "reverse_proxy": {"caddy": {"routes": routes}}, "dns": dns}}


def rrset(name, rtype, values, labels=None, ttl=300, protected=False):
    return {"name": name, "type": rtype, "ttl": ttl, "labels": dict(labels or {}),
            "protection": {"change": protected}, "records": [{"value": v, "comment": ""} for v in values]}


def wanted(p, grains=None):
    got, _ = rec.desired(p, grains or {}, "lab")
    return got[ZONE]


# -- route domains and desired records ------------------------------------------------------------
def test_route_domains_come_from_the_caddy_routes_and_can_be_extended():
    routes = [
        {"domain": "A.example.com."},
        {"domains": ["b.example.com", "*.apps.example.com"]},
        {"domain": "off.example.com", "enabled": False},
        {"domain": "a.example.com"},  # the same domain twice: one entry
    ]
    got = rec.route_domains(pillar(routes), discovered=[("svc.example.com", "consul service svc"),
                                                        ("b.example.com", "consul service b")])
    assert got == [
        ("a.example.com", "hecate:reverse_proxy:caddy:routes:0"),
        ("b.example.com", "hecate:reverse_proxy:caddy:routes:1"),
        ("*.apps.example.com", "hecate:reverse_proxy:caddy:routes:1"),
        ("svc.example.com", "consul service svc"),  # pillar wins for b
    ]


def test_every_route_domain_gets_a_and_aaaa_at_the_edge_wildcards_and_apex_included():
    routes = [{"domain": "app.example.com"}, {"domain": "*.apps.example.com"}, {"domain": "example.com"},
              {"domain": "elsewhere.org"}]
    got, notes = rec.desired(pillar(routes, ttl=600), {}, "lab")
    assert {(k, v.values, v.ttl) for k, v in got[ZONE].items()} == {
        (("app", "A"), (EDGE4,), 600), (("app", "AAAA"), (EDGE6,), 600),
        (("*.apps", "A"), (EDGE4,), 600), (("*.apps", "AAAA"), (EDGE6,), 600),
        (("@", "A"), (EDGE4,), 600), (("@", "AAAA"), (EDGE6,), 600),
    }
    assert notes == ["elsewhere.org (hecate:reverse_proxy:caddy:routes:3) is in none of hecate:dns:zones: "
                     "no record managed"]


def test_extra_records_and_caa_in_normal_form():
    p = pillar(
        caa={"issue": ["letsencrypt.org"], "iodef": "mailto:sec@example.com"},
        records=[
            {"name": "www.example.com", "type": "CNAME", "value": "Example.COM"},
            {"name": "_dmarc.example.com", "type": "TXT", "value": 'v=DMARC1; p="reject"'},
            {"name": "example.com", "type": "MX", "values": ["20 mx2.example.com.", "10 mx1"], "ttl": 3600},
            {"name": "v6.example.com", "type": "AAAA", "value": "2001:0db8:0000::0001"},
        ],
        zones=[{"name": ZONE, "ttl": 900}],
    )
    got = wanted(p)
    assert got[("www", "CNAME")].values == ("example.com.",)
    assert got[("_dmarc", "TXT")].values == ('"v=DMARC1; p=\\"reject\\""',)
    assert got[("@", "MX")].values == ("10 mx1.example.com.", "20 mx2.example.com.")
    assert got[("@", "MX")].ttl == 3600 and got[("www", "CNAME")].ttl == 900
    assert got[("v6", "AAAA")].values == ("2001:db8::1",)
    assert got[("@", "CAA")].values == ('0 iodef "mailto:sec@example.com"', '0 issue "letsencrypt.org"')


def test_txt_values_are_quoted_in_255_byte_strings_and_read_back():
    long = "x" * 300 + 'q"uote\\' + "é" * 200
    formatted = rec.format_txt(long)
    parts = formatted.split('" "')
    assert len(parts) == 3 and formatted.startswith('"') and formatted.endswith('"')
    assert rec.parse_txt(formatted) == long
    assert all(len(rec.parse_txt(f'"{p.strip(chr(34))}"').encode()) <= 255 for p in parts)
    # a value already quoted (several strings) is the same record as its text
    assert rec.normalise("TXT", '"v=spf1 " "-all"', ZONE) == rec.normalise("TXT", "v=spf1 -all", ZONE)


@pytest.mark.parametrize(
    "record, path, message",
    [
        ({"name": "x.other.org", "type": "A", "value": "192.0.2.1"}, "hecate:dns:records:0:name",
         "x.other.org is in none of hecate:dns:zones"),
        ({"name": "x.example.com", "type": "A", "value": "300.1.1.1"}, "hecate:dns:records:0:values:0",
         "invalid A value"),
        ({"name": "example.com", "type": "CNAME", "value": "a.example.org"}, "hecate:dns:records:0:type",
         "a CNAME cannot be at the zone apex"),
        ({"name": "app.example.com", "type": "CNAME", "value": "a.example.org"}, "hecate:dns:records:0",
         "app.example.com: a CNAME cannot share its name with other records"),
        ({"name": "app.example.com", "type": "A", "value": "192.0.2.1"}, "hecate:dns:records:0",
         "app.example.com A is defined twice: by hecate:reverse_proxy:caddy:routes:0 and here"),
        ({"name": "m.example.com", "type": "MX", "value": "mail.example.com"}, "hecate:dns:records:0:values:0",
         "expected '<priority> <host>'"),
    ],
)
def test_bad_records_are_refused_with_their_key_path(record, path, message):
    with pytest.raises(rec.DNSDataError) as err:
        rec.desired(pillar(records=[record]), {}, "lab")
    assert any(p == path and message in m for p, m in err.value.errors), err.value.errors
    assert "nothing was written" in str(err.value)


def test_hecate_validate_reports_dns_errors_with_key_paths():
    p = pillar(records=[{"name": "x.other.org", "type": "A", "value": "192.0.2.1"},
                        {"name": "y.example.com", "type": "SOA", "value": "x"}],
               zones=[{"name": ZONE, "ttl": 10}])
    errors = [e for e in hecate_schema.validate(p) if e.startswith("hecate:dns")]
    assert "hecate:dns:zones:0:ttl: 10 is out of range (minimum 60)" in errors
    assert any(e.startswith("hecate:dns:records:1:type: 'SOA' is not one of") for e in errors), errors


def test_edge_addresses_from_pillar_win_else_public_grains_else_an_error():
    dns = {"edge": {"ipv4": [EDGE4]}}
    assert rec.edge_addresses(dns, {"ipv4": ["198.51.100.7"]}) == ([EDGE4], [], "pillar hecate:dns:edge")
    grains = {"id": "edge-1", "ipv4": ["127.0.0.1", "10.0.0.5", "95.217.1.2"],
              "ipv6": ["::1", "fe80::1%eth0", "2a01:4f9:c010::1"]}
    assert rec.edge_addresses({}, grains) == (["95.217.1.2"], ["2a01:4f9:c010::1"], "grains of minion 'edge-1'")
    with pytest.raises(rec.DNSDataError, match="no public address for the edge.*minion 'edge-1'"):
        rec.edge_addresses({}, {"id": "edge-1", "ipv4": ["127.0.0.1", "192.168.1.2"], "ipv6": ["::1"]})


# -- plan against the live zone -------------------------------------------------------------------
def test_plan_creates_updates_and_deletes_only_what_hecate_owns():
    p = pillar([{"domain": "app.example.com"}, {"domain": "new.example.com"}])
    live = [
        rrset("@", "SOA", ["hydrogen.ns.hetzner.com. dns.hetzner.com. 1 86400 10800 3600000 3600"]),
        rrset("@", "NS", ["hydrogen.ns.hetzner.com."], labels=HECATE),  # even labelled: never touched
        rrset("app", "A", ["198.51.100.1"], labels=HECATE),            # wrong address
        rrset("app", "AAAA", ["2001:0db8:0010:0000:0000:0000:0000:0010"], labels=HECATE, ttl=60),  # same, other TTL
        rrset("gone", "A", [EDGE4], labels=HECATE),                     # route removed from pillar
        rrset("prod", "A", [EDGE4], labels={"managed-by": "hecate", "hecate-env": "prod"}),
        rrset("mail", "A", ["203.0.113.25"]),                           # foreign
        rrset("@", "TXT", ['"site-verification"'], labels={"owner": "marketing"}),
    ]
    ops, conflicts = rec.plan(ZONE, wanted(p), live, "lab")
    assert conflicts == []
    assert [(o.kind, o.name, o.type, o.writes) for o in ops] == [
        ("delete", "gone", "A", ("delete",)),
        ("update", "app", "A", ("set_records",)),
        ("update", "app", "AAAA", ("change_ttl",)),
        ("create", "new", "A", ("create",)),
        ("create", "new", "AAAA", ("create",)),
    ]
    assert rec.changes_of(ops)["app.example.com A"] == {
        "old": {"ttl": 300, "values": ["198.51.100.1"]}, "new": {"ttl": 300, "values": [EDGE4]}}
    assert rec.changes_of(ops)["gone.example.com A"] == {"old": {"ttl": 300, "values": [EDGE4]}, "new": None}


def test_a_converged_zone_plans_nothing_whatever_the_api_spelling():
    p = pillar(records=[{"name": "t.example.com", "type": "TXT", "value": "hello world"}])
    live = [rrset("app", "A", [EDGE4], labels=HECATE), rrset("app", "AAAA", ["2001:db8:10:0::10"], labels=HECATE),
            rrset("t", "TXT", ['"hello " "world"'], labels=dict(HECATE, extra="kept"))]
    assert rec.plan(ZONE, wanted(p), live, "lab") == ([], [])


def test_a_desired_record_colliding_with_a_foreign_one_is_a_conflict_naming_both():
    live = [rrset("app", "A", ["198.51.100.1"], labels={"team": "web"}),
            rrset("other", "CNAME", ["elsewhere.org."])]
    p = pillar([{"domain": "app.example.com"}, {"domain": "other.example.com"}])
    ops, conflicts = rec.plan(ZONE, wanted(p), live, "lab")
    assert [(o.name, o.type) for o in ops] == [("app", "AAAA")]
    assert any("app.example.com A (from hecate:reverse_proxy:caddy:routes:0) collides with an RRSet hecate "
               "does not own: app.example.com A (labels {'team': 'web'}, records ['198.51.100.1'])" in c
               for c in conflicts), conflicts
    assert sum("cannot coexist with other.example.com CNAME" in c for c in conflicts) == 2


def test_labels_are_added_to_a_hecate_rrset_without_the_environment_and_other_labels_kept():
    live = [rrset("app", "A", [EDGE4], labels={"managed-by": "hecate", "note": "x"}),
            rrset("app", "AAAA", [EDGE6], labels=HECATE)]
    ops, _ = rec.plan(ZONE, wanted(pillar()), live, "lab")
    assert [(o.name, o.type, o.writes) for o in ops] == [("app", "A", ("labels",))]
    assert ops[0].new["labels"] == {"managed-by": "hecate", "note": "x", "hecate-env": "lab"}


def test_protected_rrsets_that_must_change_are_conflicts():
    live = [rrset("app", "A", ["198.51.100.1"], labels=HECATE, protected=True),
            rrset("gone", "A", [EDGE4], labels=HECATE, protected=True)]
    ops, conflicts = rec.plan(ZONE, wanted(pillar()), live, "lab")
    assert [(o.name, o.type) for o in ops] == [("app", "AAAA")]
    assert len(conflicts) == 2 and all("protected" in c for c in conflicts)


def test_phases_add_before_caddy_and_prune_after():
    p = pillar([{"domain": "new.example.com"}], records=[{"name": "app.example.com", "type": "CNAME",
                                                          "value": "new.example.com"}])
    live = [rrset("app", "A", [EDGE4], labels=HECATE), rrset("old", "A", [EDGE4], labels=HECATE)]
    ops, _ = rec.plan(ZONE, wanted(p), live, "lab")
    add = [(o.kind, o.name, o.type) for o in rec.select(ops, "add")]
    prune = [(o.kind, o.name, o.type) for o in rec.select(ops, "prune")]
    # the A giving way to the CNAME goes with the creation; the removed route's record waits
    assert ("delete", "app", "A") in add and ("create", "app", "CNAME") in add
    assert prune == [("delete", "old", "A")]
    assert sorted(add + prune) == sorted((o.kind, o.name, o.type) for o in ops)
    with pytest.raises(salt.exceptions.SaltInvocationError):
        rec.select(ops, "later")


def test_single_record_plan_refuses_foreign_and_apex_ns_soa():
    foreign = rrset("mail", "A", ["203.0.113.25"])
    with pytest.raises(salt.exceptions.CommandExecutionError, match="hecate does not own it"):
        rec.plan_record(ZONE, "mail", "A", ["192.0.2.1"], None, foreign, "lab")
    with pytest.raises(salt.exceptions.CommandExecutionError, match="hecate does not own it"):
        rec.plan_record(ZONE, "mail", "A", None, None, foreign, "lab")
    with pytest.raises(salt.exceptions.SaltInvocationError, match="apex NS or SOA"):
        rec.plan_record(ZONE, "@", "NS", ["ns1.example.org."], None, None, "lab")
    ops, _ = rec.plan_record(ZONE, "t", "TXT", "a, b", 600, None, "lab")
    assert ops[0].new == {"ttl": 600, "values": ['"a, b"']}  # text is one value, commas and all


# -- what the zone answers -----------------------------------------------------------------------
@pytest.mark.parametrize(
    "domain, expected",
    [
        ("app.example.com", {"rrset": "app", "values": [EDGE4], "via": "exact"}),
        ("x.apps.example.com", {"rrset": "*.apps", "values": ["192.0.2.7"], "via": "wildcard"}),
        ("alias.example.com", {"rrset": "alias", "values": ["app.example.com."], "via": "cname"}),
        ("apps.example.com", {"values": [], "via": "nodata"}),  # exists (below it: *.apps)
        ("deep.sub.example.com", {"values": [], "via": "nxdomain"}),
        ("x.text.example.com", {"values": [], "via": "nodata"}),  # the wildcard has no A
    ],
)
def test_answer_follows_the_zone_data_with_wildcards(domain, expected):
    live = [rrset("app", "A", [EDGE4]), rrset("*.apps", "A", ["192.0.2.7"]),
            rrset("alias", "CNAME", ["app.example.com."]), rrset("*.text", "TXT", ['"t"'])]
    assert rec.answer(live, ZONE, domain, "A") == expected
