"""The Caddy route model, diff and pillar checks (pure functions, no Caddy)."""

import copy
import json

import pytest
import salt.exceptions

import hecate_caddy_apply
import hecate_caddy_routes as m
import hecate_caddy_schema
import hecate_consul_routes
import hecate_http
import hecate_schema
from tests import pillar_files


def user_pillar():
    """The user's routes, in the lab's hecate.sls (lab/pillar/, a copy of the shipped one)."""
    pillar = pillar_files.render("hecate.sls")
    pillar["hecate"]["global"]["environment"] = "lab"
    return pillar


def caddy(pillar):
    return pillar["hecate"]["reverse_proxy"]["caddy"]


# -- parsing -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text,expected",
    [
        ("10.0.0.5:8080", ("http", "10.0.0.5:8080")),
        ("hecate-server-1:9000", ("http", "hecate-server-1:9000")),
        ("https://100.88.163.85", ("https", "100.88.163.85:443")),
        ("https://100.88.163.85/", ("https", "100.88.163.85:443")),
        ("http://backend.internal", ("http", "backend.internal:80")),
        ("https://a.example:8443", ("https", "a.example:8443")),
        ("[::1]:8080", ("http", "[::1]:8080")),
    ],
)
def test_parse_upstream(text, expected):
    assert m.parse_upstream(text) == expected


@pytest.mark.parametrize(
    "text,fragment",
    [
        ("10.0.0.5", "no port"),
        ("10.0.0.5:0", "bad port"),
        ("10.0.0.5:65536", "bad port"),
        ("10.0.0.5:http", "bad port"),
        ("ftp://x:21", "scheme must be http or https"),
        ("https://x/path", "cannot carry a path"),
        ("::1:80", "brackets"),
        ("", "not an upstream"),
    ],
)
def test_parse_upstream_errors(text, fragment):
    with pytest.raises(ValueError, match=fragment):
        m.parse_upstream(text)


def test_durations_normalise_like_caddy():
    assert m.parse_duration("10s") == 10_000_000_000
    assert m.parse_duration("1m30s") == 90_000_000_000
    assert m.parse_duration("500ms") == 500_000_000
    assert m.parse_duration("1d") == 86_400_000_000_000
    assert m.parse_duration(10_000_000_000) == 10_000_000_000
    with pytest.raises(ValueError):
        m.parse_duration("ten seconds")
    # "10s" in pillar and adapt's nanoseconds in Caddy are the same value
    assert m.normalise({"health_checks": {"active": {"interval": "10s"}}}) == m.normalise(
        {"health_checks": {"active": {"interval": 10_000_000_000}}}
    )
    # only under duration keys
    assert m.normalise({"uri": "10s"}) == {"uri": "10s"}


# -- building --------------------------------------------------------------------------------------
def test_user_routes_build_with_ids_and_policies():
    routes = m.build(caddy(user_pillar()))
    names = [r.name for r in routes]
    assert names[0] == "authentik" and "wazuh" in names and "helen" in names
    assert len(names) == 10
    for route in routes:
        assert route.json["@id"] == "hecate.route." + route.name
        assert route.json["terminal"] is True
        assert route.json["match"] == [{"host": route.domains}]
    wazuh = next(r for r in routes if r.name == "wazuh").json
    proxy = wazuh["handle"][0]["routes"][-1]["handle"][0]
    assert proxy["upstreams"] == [{"dial": "100.88.163.85:443"}]
    assert proxy["transport"] == {"protocol": "http", "tls": {"insecure_skip_verify": True}}
    sub = wazuh["handle"][0]["routes"]
    # client-sent identity headers go; security: 404 block, abort; common: headers + gzip; the proxy
    assert sub[0] == m.STRIP_IDENTITY
    assert sub[1]["handle"] == [{"handler": "static_response", "status_code": 404}]
    assert sub[2]["handle"] == [{"handler": "static_response", "abort": True}]
    assert [h["handler"] for h in sub[3]["handle"]] == ["headers", "encode"]
    assert sub[3]["handle"][0]["response"]["set"]["X-Frame-Options"] == ["SAMEORIGIN"]


def test_security_policy_matchers_are_any_of():
    """The Caddyfile ANDed path with path_regexp and header with header_regexp; hecate ORs them."""
    sub = m.policy_routes(m.BUILTIN_POLICIES["security"], "p", [])
    block, abort = sub[0]["match"], sub[1]["match"]
    assert {"path_regexp"} in [set(ms) for ms in block]
    assert {"path"} in [set(ms) for ms in block]
    assert {"query": {"rest_route": ["*"]}} in block
    # the three Cloudflare headers together mark a Worker request (one matcher set)
    assert {"header": {"Cf-Worker": ["*"], "Cf-Connecting-Ip": ["*"], "Cf-Ray": ["*"]}} in block
    assert [set(ms) for ms in abort] == [{"header_regexp"}, {"header"}]


def test_policy_overrides_and_custom_policies():
    data = {
        "policies": {
            "common": {"response_headers": {"X-Frame-Options": "DENY", "Server": None}},
            "internal-only": {"block": [{"remote_ip": ["0.0.0.0/0"]}], "block_status": 403},
        },
        "routes": [
            {
                "domain": "a.example.com",
                "backend": "10.0.0.1:80",
                "service": "a",
                "policies": ["common", "internal-only"],
            },
            {"domain": "b.example.com", "backend": "10.0.0.2:80", "service": "b", "policies": []},
        ],
    }
    a, b = m.build(data)
    sub = a.json["handle"][0]["routes"][1:]
    response = sub[0]["handle"][0]["response"]
    assert response["set"]["X-Frame-Options"] == ["DENY"]  # overridden
    assert response["set"]["X-Content-Type-Options"] == ["nosniff"]  # merged per header
    assert response["delete"] == ["Server"]
    assert [h["handler"] for h in sub[0]["handle"]] == ["headers", "encode"]  # other keys kept
    assert sub[1] == {
        "match": [{"remote_ip": {"ranges": ["0.0.0.0/0"]}}],
        "handle": [{"handler": "static_response", "status_code": 403}],
    }
    assert len(b.json["handle"][0]["routes"]) == 2  # only the identity headers' deletion and the proxy


def test_full_route_features():
    data = {
        # the Caddy half only (Authentik managed elsewhere): two domains need no forward_domain
        "forward_auth": {"outpost": "127.0.0.1:9000", "manage_authentik": False},
        "routes": [
            {
                "domains": ["app.example.com", "www.app.example.com"],
                "name": "app",
                "backend": ["10.0.0.1:8080", "10.0.0.2:8080"],
                "headers": {"up": {"set": {"X-Real-IP": "{http.request.remote.host}"}}, "down": {"delete": ["Server"]}},
                "health_checks": {
                    "active": {"uri": "/healthz", "interval": "10s", "timeout": "2s"},
                    "passive": {"fail_duration": "30s", "max_fails": 3},
                },
                "load_balancing": {"policy": "round_robin", "try_duration": "5s"},
                "forward_auth": True,
                "policies": [],
            }
        ],
    }
    (route,) = m.build(data)
    sub = route.json["handle"][0]["routes"]
    assert sub[0] == m.STRIP_IDENTITY  # before the outpost is asked
    outpost, auth, proxy = sub[1], sub[2]["handle"][0], sub[3]["handle"][0]
    assert outpost["match"] == [{"path": ["/outpost.goauthentik.io/*"]}]
    assert auth["rewrite"] == {"method": "GET", "uri": "/outpost.goauthentik.io/auth/caddy"}
    assert auth["handle_response"][0]["match"] == {"status_code": [2]}
    copied = {
        name
        for r in auth["handle_response"][0]["routes"]
        for h in r["handle"]
        for name in (h.get("request") or {}).get("set", {})
    }
    assert copied == set(m.AUTHENTIK_HEADERS)
    assert proxy["load_balancing"] == {"selection_policy": {"policy": "round_robin"}, "try_duration": "5s"}
    assert proxy["health_checks"]["passive"] == {"fail_duration": "30s", "max_fails": 3}
    assert proxy["headers"] == {
        "request": {"set": {"X-Real-IP": ["{http.request.remote.host}"]}},
        "response": {"delete": ["Server"]},
    }


def test_wildcard_routes_go_last():
    data = {
        "routes": [
            {"domain": "*.example.com", "backend": "10.0.0.1:80", "service": "catchall"},
            {"domain": "a.example.com", "backend": "10.0.0.2:80", "service": "a"},
        ]
    }
    assert [r.name for r in m.build(data)] == ["a", "catchall"]


def test_disabled_route_is_not_built():
    data = {"routes": [{"domain": "a.example.com", "backend": "10.0.0.2:80", "service": "a", "enabled": False}]}
    assert m.build(data) == []


@pytest.mark.parametrize(
    "routes,fragments",
    [
        ([{"domain": "a.example.com", "service": "a"}], ["routes:0:backend", "route 'a'", "no upstream"]),
        (
            [{"domain": "a.example.com", "service": "a", "backend": "10.0.0.1:99999"}],
            ["routes:0:backend", "route 'a'", "bad port"],
        ),
        (
            [
                {"domain": "a.example.com", "service": "a", "backend": "10.0.0.1:80"},
                {"domain": "A.example.com", "service": "b", "backend": "10.0.0.2:80"},
            ],
            ["routes:1:domain", "route 'b'", "duplicate domain 'a.example.com'", "route 'a'"],
        ),
        (
            [
                {"domain": "a.example.com", "service": "a", "backend": "10.0.0.1:80"},
                {"domain": "b.example.com", "service": "a", "backend": "10.0.0.2:80"},
            ],
            ["routes:1:name", "name used twice"],
        ),
        (
            [{"domain": "a.example.com", "service": "a", "backend": "10.0.0.1:80", "tls_skip_verify": True}],
            ["only applies to an https"],
        ),
        (
            [{"domain": "a.example.com", "service": "a", "backend": "10.0.0.1:80", "forward_auth": True}],
            ["forward_auth:outpost"],
        ),
        (
            [{"domain": "a.example.com", "service": "a", "backend": "10.0.0.1:80", "policies": ["nope"]}],
            ["unknown policy 'nope'"],
        ),
        ([{"domain": "not a domain", "service": "a", "backend": "10.0.0.1:80"}], ["is not a valid domain"]),
        (
            [{"domain": "a.example.com", "service": "a", "backend": ["http://x:1", "https://y:2"]}],
            ["mixes http and https"],
        ),
        (
            [
                {
                    "domain": "a.example.com",
                    "service": "a",
                    "backend": "10.0.0.1:80",
                    "health_checks": {"active": {"uri": "/h", "interval": "soon"}},
                }
            ],
            ["health_checks:active:interval", "not a duration"],
        ),
        ([{"domain": "a.example.com", "service": "Bad Name", "backend": "10.0.0.1:80"}], ["not a valid route name"]),
    ],
)
def test_bad_route_data_names_the_route(routes, fragments):
    with pytest.raises(m.RouteDataError) as info:
        m.build({"routes": routes})
    text = str(info.value)
    assert "nothing was written" in text
    for fragment in fragments:
        assert fragment in text, text


def test_bad_regexp_in_policy():
    data = {
        "policies": {"x": {"block": [{"path_regexp": "(?=lookahead)"}]}},
        "routes": [{"domain": "a.example.com", "service": "a", "backend": "10.0.0.1:80", "policies": ["x"]}],
    }
    with pytest.raises(m.RouteDataError, match=r"policies:x:block:0:path_regexp.*RE2"):
        m.build(data)


# -- Consul upstreams ------------------------------------------------------------------------------
CONSUL_ROUTE = {
    "routes": [{"domain": "chat.example.com", "service": "chat", "upstream": {"consul_service": "oauth2-proxy"}}]
}


def test_consul_upstream_resolved_sorted_through_salt():
    calls = []

    def service_addresses(name, passing=False):
        calls.append((name, passing))
        return ["10.0.0.9:4180", "10.0.0.3:4180"]

    (route,) = m.build(
        CONSUL_ROUTE, resolve_service=m.consul_resolver({"hecate_consul.service_addresses": service_addresses})
    )
    proxy = route.json["handle"][0]["routes"][-1]["handle"][0]
    assert proxy["upstreams"] == [{"dial": "10.0.0.3:4180"}, {"dial": "10.0.0.9:4180"}]
    assert calls == [("oauth2-proxy", True)]


def test_consul_module_missing_fails_the_route():
    with pytest.raises(m.RouteDataError) as info:
        m.build(CONSUL_ROUTE, resolve_service=m.consul_resolver({}))
    assert "route 'chat'" in str(info.value)
    assert "Consul module not available" in str(info.value)


def test_consul_service_without_instances_fails_naming_it():
    resolver = m.consul_resolver({"hecate_consul.service_addresses": lambda name, passing=False: []})
    with pytest.raises(m.RouteDataError, match="Consul service 'oauth2-proxy' has no passing instances"):
        m.build(CONSUL_ROUTE, resolve_service=resolver)


def test_consul_errors_and_bad_addresses_name_the_route():
    def boom(name, passing=False):
        raise salt.exceptions.CommandExecutionError("Consul at http://127.0.0.1:8500 is unreachable")

    with pytest.raises(m.RouteDataError, match="route 'chat'.*unreachable"):
        m.build(CONSUL_ROUTE, resolve_service=m.consul_resolver({"hecate_consul.service_addresses": boom}))
    bad = m.consul_resolver({"hecate_consul.service_addresses": lambda name, passing=False: ["10.0.0.1:0"]})
    with pytest.raises(m.RouteDataError, match="gave a bad address"):
        m.build(CONSUL_ROUTE, resolve_service=bad)


def test_check_pillar_does_not_need_consul():
    assert hecate_caddy_schema.check_pillar({"hecate": {"reverse_proxy": {"caddy": CONSUL_ROUTE}}}, "lab") == []


# -- plans -----------------------------------------------------------------------------------------
def _two():
    return m.build(
        {
            "routes": [
                {"domain": "a.example.com", "service": "a", "backend": "10.0.0.1:80"},
                {"domain": "b.example.com", "service": "b", "backend": "10.0.0.2:80"},
            ]
        }
    )


UNMANAGED_FIRST = {
    "@id": "someone.else",
    "match": [{"host": ["x.example.com"]}],
    "handle": [{"handler": "static_response"}],
}
UNMANAGED_LAST = {"handle": [{"handler": "static_response", "status_code": 404}]}


def test_plan_keeps_unmanaged_routes_and_converges():
    desired = _two()
    live = [UNMANAGED_FIRST, UNMANAGED_LAST]
    new, changes = m.plan_set(live, desired)
    assert new[0] == UNMANAGED_FIRST and new[-1] == UNMANAGED_LAST
    # before the catch-all, which would otherwise hide the new routes
    assert [r.get("@id") for r in new] == ["someone.else", "hecate.route.a", "hecate.route.b", None]
    assert set(changes["added"]) == {"a", "b"}
    assert changes["added"]["a"] == {"domains": ["a.example.com"], "upstreams": ["10.0.0.1:80"]}
    again, none = m.plan_set(new, desired)
    assert none == {} and again == new


def test_plan_managed_block_stays_where_it_was():
    desired = _two()
    live = [UNMANAGED_FIRST, desired[0].json, UNMANAGED_LAST]
    new, changes = m.plan_set(live, desired)
    assert [r.get("@id") for r in new] == ["someone.else", "hecate.route.a", "hecate.route.b", None]
    assert changes == {"added": {"b": {"domains": ["b.example.com"], "upstreams": ["10.0.0.2:80"]}}}


def test_plan_changed_and_removed_are_readable():
    old = m.build(
        {
            "routes": [
                {"domain": "a.example.com", "service": "a", "backend": "10.0.0.1:80"},
                {"domain": "gone.example.com", "service": "gone", "backend": "10.0.0.3:80"},
            ]
        }
    )
    live = [r.json for r in old]
    new_desired = m.build(
        {"routes": [{"domain": "a.example.com", "service": "a", "backend": ["10.0.0.1:80", "10.0.0.7:80"]}]}
    )
    _, changes = m.plan_set(live, new_desired)
    assert changes["removed"] == {"gone": {"domains": ["gone.example.com"], "upstreams": ["10.0.0.3:80"]}}
    assert changes["changed"] == {"a": {"upstreams": {"added": ["10.0.0.7:80"], "removed": []}}}


def test_plan_equivalent_durations_are_not_a_change():
    spec = {
        "domain": "a.example.com",
        "service": "a",
        "backend": "10.0.0.1:80",
        "health_checks": {"active": {"uri": "/h", "interval": "10s"}},
    }
    (route,) = m.build({"routes": [spec]})
    live = copy.deepcopy(route.json)
    live["handle"][0]["routes"][-1]["handle"][0]["health_checks"]["active"]["interval"] = 10_000_000_000
    new, changes = m.plan_set([live], [route])
    assert changes == {} and new == [live]


def test_plan_hand_edit_shows_up_as_a_change():
    (route,) = m.build({"routes": [{"domain": "a.example.com", "service": "a", "backend": "10.0.0.1:80"}]})
    live = copy.deepcopy(route.json)
    live["handle"][0]["routes"][3]["handle"][0]["response"]["set"]["X-Frame-Options"] = ["ALLOW"]
    _, changes = m.plan_set([live], [route])
    assert changes == {
        "changed": {"a": {"response_headers:set:X-Frame-Options": {"added": ["SAMEORIGIN"], "removed": ["ALLOW"]}}}
    }


def test_every_route_deletes_client_sent_identity_headers_first():
    """Pillar, protected, ad-hoc and Consul-discovered routes: only the outpost may send X-Authentik-*."""
    data = {
        "forward_auth": {"outpost": "127.0.0.1:9000", "manage_authentik": False},
        "routes": [
            {"domain": "a.example.com", "service": "a", "backend": "10.0.0.1:80"},
            {"domain": "p.example.com", "service": "p", "backend": "10.0.0.2:80", "forward_auth": True},
            {"domain": "n.example.com", "service": "n", "backend": "10.0.0.3:80", "policies": []},
        ],
    }
    adhoc = m.build_route({"name": "h", "domain": "h.example.com", "backend": "10.0.0.4:80"}, "x", {},
                          id_prefix=m.ADHOC_PREFIX, errors=[])
    consul = hecate_consul_routes.discover(
        {"hecate": {"reverse_proxy": {"caddy": {"consul_routes": {}}}}},
        {"whoami": [{"id": "i", "node": "n1", "address": "10.0.0.5", "port": 80, "passing": True,
                     "meta": {"hecate_domain": "whoami.example.com"}}]},
    ).routes
    assert len(consul) == 1
    for route in m.build(data) + [adhoc] + consul:
        first = route.json["handle"][0]["routes"][0]
        delete = ["X-Authentik*", "X_Authentik*", "X.Authentik*"]
        assert first == {"handle": [{"handler": "headers", "request": {"delete": delete}}]}
    # the pattern covers every header the outpost sets (Caddy compares prefixes case-insensitively)
    assert all(h.lower().startswith("x-authentik") for h in m.AUTHENTIK_HEADERS)


def test_routes_written_before_the_identity_headers_were_deleted_change_once():
    (route,) = m.build({"routes": [{"domain": "a.example.com", "service": "a", "backend": "10.0.0.1:80"}]})
    old = copy.deepcopy(route.json)
    old["handle"][0]["routes"].pop(0)  # as an earlier hecate wrote it
    new, changes = m.plan_set([old], [route])
    assert changes == {"changed": {"a": {"request_headers_deleted": {"old": None,
                                                                     "new": m.CLIENT_IDENTITY_HEADERS}}}}
    assert m.plan_set(new, [route]) == (new, {})


def test_plan_reorder_only():
    a, b = _two()
    _, changes = m.plan_set([b.json, a.json], [a, b])
    assert changes == {"order": {"old": ["b", "a"], "new": ["a", "b"]}}


def test_plan_present_and_absent_touch_one_route():
    errors = []
    route = m.build_route(
        {"name": "adhoc", "domain": "h.example.com", "backend": "10.0.0.1:80"},
        "x",
        {},
        id_prefix=m.ADHOC_PREFIX,
        errors=errors,
    )
    assert not errors and route.id == "hecate.adhoc.adhoc"
    live = [UNMANAGED_FIRST] + [r.json for r in _two()]
    new, changes = m.plan_present(live, route)
    assert new[:3] == live and new[3] == route.json and "added" in changes
    assert m.plan_present(new, route) == (new, {})
    newer, changes = m.plan_present(new, route, index=0)
    assert changes == {} and newer == new
    gone, changes = m.plan_absent(new, route.id, "adhoc")
    assert gone == live and changes["removed"]["adhoc"]["domains"] == ["h.example.com"]
    assert m.plan_absent(gone, route.id, "adhoc") == (gone, {})
    # the set plan does not see ad-hoc routes as its own
    _, changes = m.plan_set(new, _two())
    assert changes == {}


# -- routes Caddy would never use (checked against the real Caddy in tests/functional) --------------
SITE = {"match": [{"host": ["a.example.com"]}], "handle": [{"handler": "subroute", "routes": []}], "terminal": True}


@pytest.mark.parametrize(
    "pattern,domain,covers",
    [
        ("a.example.com", "a.example.com", True),
        ("A.Example.COM", "a.example.com", True),  # Caddy lowercases (MatchHost.Provision)
        ("*.example.com", "a.example.com", True),
        ("*.example.com", "example.com", False),  # same label count (MatchHost.MatchWithError)
        ("*.example.com", "x.a.example.com", False),
        ("*.*.com", "a.example.com", True),
        ("*.example.com", "*.example.com", True),
        ("a.example.com", "*.example.com", False),  # one host does not take every host of *.
        ("*.a.example.com", "*.example.com", False),
        ("a*.example.com", "a.example.com", False),  # * is a whole label or a literal
        ("{http.request.host}", "a.example.com", False),  # placeholders are never judged
        ("*", "localhost", True),
        ("", "a.example.com", False),
        (None, "a.example.com", False),
        ("*.example.com", None, False),  # None: any host
    ],
)
def test_host_covers(pattern, domain, covers):
    assert m.host_covers(pattern, domain) is covers


def test_what_takes_every_request():
    host = "a.example.com"
    assert m.takes_every_request(SITE, host) == "terminal"
    assert m.takes_every_request(dict(SITE, terminal=False), host) is None  # its subroute is empty
    assert m.takes_every_request(dict(SITE, group="g"), host) is None
    narrowed = dict(SITE, match=[{"host": [host], "path": ["/api/*"]}])
    assert m.takes_every_request(narrowed, host) is None
    assert m.takes_every_request(dict(SITE, match=[{"path": ["/x"]}, {}]), host) == "terminal"
    proxy = {"handler": "reverse_proxy", "upstreams": [{"dial": "10.0.0.9:80"}]}
    assert m.takes_every_request({"handle": [{"handler": "headers"}, proxy]}, host) == "its reverse_proxy answers"
    auth = dict(proxy, handle_response=[{"match": {"status_code": [2]}, "routes": []}])
    assert m.takes_every_request({"handle": [auth]}, host) is None
    assert m.takes_every_request({"handle": [{"handler": "static_response", "status_code": 103}]}, host) is None
    assert m.takes_every_request({"handle": [{"handler": "static_response", "status_code": "{x}"}]}, host) is None
    inner = {"handler": "subroute", "routes": [{"match": [{"host": [host]}], "handle": [{"handler": "error"}]}]}
    assert m.takes_every_request({"handle": [inner]}, host) == "its subroute's route 0: its error handler answers"
    assert m.takes_every_request({"handle": [dict(inner, errors={"routes": []})]}, host) is None
    assert m.shadowed_by([{"match": [{"host": ["b.example.com"]}], "terminal": True}, SITE], host) == (1, "terminal")
    assert m.shadowed_by([], host) is None


def test_plan_refuses_a_route_an_earlier_unmanaged_route_takes():
    desired = _two()
    with pytest.raises(m.ShadowedRoutes) as err:
        m.plan_set([SITE], desired)
    ((ours, domain, index, other, why),) = err.value.found
    assert (ours.name, domain, index, other, why) == ("a", "a.example.com", 0, SITE, "terminal")
    text = str(err.value.on("hecate"))
    assert (
        "hecate route 'a' (hecate.route.a, hecate:reverse_proxy:caddy:routes:0) would never serve a.example.com" in text
    )
    assert "route 0 of Caddy server 'hecate' (no @id; host a.example.com), not managed by hecate" in text
    assert "'b'" not in text and "nothing was written" in text
    # converged or not: a route already in place behind it is refused the same way
    with pytest.raises(m.ShadowedRoutes):
        m.plan_set([SITE] + [r.json for r in desired], desired)


def test_plan_names_every_shadowed_domain_with_the_live_index():
    desired = m.build({"routes": [
        {"domains": ["a.example.com", "www.a.example.com"], "service": "a", "backend": "10.0.0.1:80"},
        {"domain": "*.b.example.com", "service": "b", "backend": "10.0.0.2:80"},
    ]})
    other = {"@id": "ops.b", "match": [{"host": ["*.b.example.com"]}], "handle": [{"handler": "static_response"}]}
    live = [{"@id": "ops.free", "match": [{"host": ["c.example.com"]}], "terminal": True}, other, SITE,
            desired[0].json]
    with pytest.raises(m.ShadowedRoutes) as err:
        m.plan_set(live, desired)
    got = [(o.name, d, i, why) for o, d, i, _, why in err.value.found]
    assert got == [("a", "a.example.com", 2, "terminal"), ("b", "*.b.example.com", 1, "its static_response answers")]
    assert "(@id ops.b; host *.b.example.com)" in str(err.value)


def test_plan_places_hecate_routes_before_a_catch_all_only():
    """A catch-all ends every request whatever its host; a route without matcher that calls the
    next handler (headers) is none, and hecate's routes go after it, through its middleware."""
    desired = _two()
    middleware = {"handle": [{"handler": "headers", "response": {"set": {"X-A": ["1"]}}}]}
    fallback = {"handle": [{"handler": "static_response", "status_code": 404}]}
    other = {"match": [{"host": ["c.example.com"]}], "handle": [{"handler": "static_response"}], "terminal": True}
    new, _ = m.plan_set([middleware, other, fallback], desired)
    assert new == [middleware, other, desired[0].json, desired[1].json, fallback]
    new, _ = m.plan_set([middleware, other], desired)
    assert new == [middleware, other, desired[0].json, desired[1].json]
    grouped = dict(fallback, group="g")  # it may end every request: hecate's go before it too
    new, _ = m.plan_set([grouped], desired)
    assert new == [desired[0].json, desired[1].json, grouped]


def test_adhoc_route_is_refused_behind_a_pillar_route_for_its_domain():
    errors = []
    route = m.build_route({"name": "adhoc", "domain": "a.example.com", "backend": "10.0.0.1:80"}, "x", {},
                          id_prefix=m.ADHOC_PREFIX, errors=errors)
    live = [r.json for r in _two()]
    with pytest.raises(m.ShadowedRoutes) as err:
        m.plan_present(live, route)
    text = str(err.value)
    assert "Caddy route 'adhoc' (hecate.adhoc.adhoc, x) would never serve a.example.com" in text
    assert "(@id hecate.route.a; host a.example.com), a pillar route of caddy_routes.managed" in text
    # an update in place is checked too
    with pytest.raises(m.ShadowedRoutes):
        m.plan_present(live + [route.json], route)


# -- schema --------------------------------------------------------------------------------------
def test_schema_accepts_the_shipped_pillar():
    assert hecate_schema.validate(user_pillar(), "lab") == []


def test_schema_errors_name_key_paths():
    pillar = user_pillar()
    routes = caddy(pillar)["routes"]
    routes[3]["bogus"] = 1
    routes[2]["backend"] = "1.2.3.4:0"
    del routes[4]["backend"]
    caddy(pillar)["ports"]["https"] = 70000
    errors = hecate_schema.validate(pillar, "lab")
    assert "hecate:reverse_proxy:caddy:routes:3:bogus: unknown key (not in the schema)" in errors
    assert any(
        e.startswith("hecate:reverse_proxy:caddy:routes:2:backend: route 'grafana'") and "bad port" in e for e in errors
    )
    assert any(e.startswith("hecate:reverse_proxy:caddy:routes:4:backend: route 'minio-console'") for e in errors)
    assert any(e.startswith("hecate:reverse_proxy:caddy:ports:https:") for e in errors)


@pytest.mark.parametrize(
    "data,fragment",
    [
        ({"routes": {"a": 1}}, "hecate:reverse_proxy:caddy:routes: expected a list"),
        ({"policies": ["x"], "routes": []}, "hecate:reverse_proxy:caddy:policies: expected a mapping"),
        (
            {"routes": [{"domain": "a.example.com", "backend": "10.0.0.1:80", "service": "a", "health_checks": ["x"]}]},
            "routes:0: malformed route",
        ),
        ({"routes": ["just a string"]}, "routes:0: a route must be a mapping"),
    ],
)
def test_malformed_data_is_an_error_not_a_traceback(data, fragment):
    with pytest.raises(m.RouteDataError, match=fragment):
        m.build(data)


def test_policy_errors_are_reported_once():
    data = {
        "policies": {"x": {"abort": [{"header_regexp": {"User-Agent": "(?!x)"}}]}},
        "routes": [
            {"domain": f"r{i}.example.com", "service": f"r{i}", "backend": "10.0.0.1:80", "policies": ["x"]}
            for i in range(3)
        ],
    }
    with pytest.raises(m.RouteDataError) as info:
        m.build(data)
    assert info.value.errors == [
        ("hecate:reverse_proxy:caddy:policies:x:abort:0:header_regexp:User-Agent", info.value.errors[0][1])
    ]


# -- Caddy refusing a route ----------------------------------------------------------------------
def test_a_refused_route_is_named_by_its_id_or_hosts():
    routes = [
        {"@id": "hecate.route.chat", "match": [{"host": ["chat.example.com"]}]},
        {"match": [{"host": ["a.example.com", "b.example.com"]}]},
    ]
    text = ("Caddy admin API: PATCH /config/apps/http/servers/hecate/routes returned 500: loading new config: "
            "setting up route handlers: route {}: loading handler modules: position 0: bad")
    err = hecate_caddy_apply._refused(
        hecate_http.HTTPError(text.format(0), status=500, body={"error": "x"}), "hecate", routes
    )
    assert str(err).startswith("Caddy refused route hecate.route.chat (route 0 of server 'hecate'); "
                               "nothing was written: Caddy admin API: PATCH ")
    assert err.status == 500 and err.body == {"error": "x"}
    err = hecate_caddy_apply._refused(hecate_http.HTTPError(text.format(1), status=500), "hecate", routes)
    assert str(err).startswith("Caddy refused route the route for a.example.com, b.example.com (route 1 ")
    # no route index in the error, or one we did not send: Caddy's own error unchanged
    for other in ("Caddy admin API: PATCH /x returned 500: something else", text.format(7)):
        original = hecate_http.HTTPError(other, status=500)
        assert hecate_caddy_apply._refused(original, "hecate", routes) is original


# -- the listener addresses of a server hecate creates -----------------------------------------------
@pytest.mark.parametrize(
    "addr,expected",
    [
        (":443", ("tcp", None, "", 443, 443)),
        ("tcp/:443", ("tcp", None, "", 443, 443)),
        ("0.0.0.0:443", ("tcp", None, "", 443, 443)),
        ("[::]:443", ("tcp", None, "", 443, 443)),
        ("127.0.0.1:8443", ("tcp", "4", "127.0.0.1", 8443, 8443)),
        ("[::1]:443", ("tcp", "6", "::1", 443, 443)),
        ("tcp4/:80", ("tcp", "4", "", 80, 80)),
        ("udp/:443", ("udp", None, "", 443, 443)),
        ("Example.com:2000-2010", ("tcp", None, "example.com", 2000, 2010)),
        ("unix//run/caddy.sock", ("unix", None, "/run/caddy.sock", None, None)),
        ("{env.LISTEN}", None),
        (":https", None),
        ("fd/3", None),
        ("443", None),
    ],
)
def test_parse_listener(addr, expected):
    assert hecate_caddy_apply.parse_listener(addr) == expected


def _servers(**listen):
    return {"apps": {"http": {"servers": {name: {"listen": addrs, "routes": []} for name, addrs in listen.items()}}}}


@pytest.mark.parametrize(
    "theirs,ours,taken",
    [
        ([":443"], [":443"], True),  # the production case: Caddyfile srv0 and pillar listen [":443"]
        ([":443"], ["tcp/:443"], True),
        ([":443"], ["0.0.0.0:443"], True),  # a wildcard is a wildcard (Caddy accepts it, the kernel splits)
        ([":443"], ["203.0.113.5:443"], True),  # a specific address inside srv0's wildcard
        (["203.0.113.5:443"], [":443"], True),
        (["203.0.113.5:443"], ["203.0.113.6:443"], False),
        ([":443"], [":8443"], False),
        ([":8000-8010"], [":8005"], True),
        (["udp/:443"], [":443"], False),  # HTTP/3's UDP is not the TCP listener
        (["tcp4/:443"], ["[::1]:443"], False),
        (["tcp6/:443"], ["[::1]:443"], True),
        (["unix//run/a.sock"], ["unix//run/a.sock"], True),
        (["{env.LISTEN}"], [":443"], False),  # a placeholder: hecate cannot judge it
    ],
)
def test_listener_conflicts(theirs, ours, taken):
    found = hecate_caddy_apply.listener_conflicts(_servers(srv0=theirs), "hecate", ours)
    assert found == ([(ours[0], "srv0", theirs[0])] if taken else [])


def test_the_server_itself_and_other_servers_are_told_apart():
    config = _servers(srv0=[":443"], srv1=[":80"], hecate=[":443"])
    assert hecate_caddy_apply.listener_conflicts(config, "hecate", [":443", ":80", ":8443"]) == [
        (":443", "srv0", ":443"), (":80", "srv1", ":80")
    ]
    taken = hecate_caddy_apply.listener_conflicts(config, "hecate", [":443"])
    err = hecate_caddy_apply.ListenerTaken("hecate", taken, "hecate:reverse_proxy:caddy")
    text = str(err)
    assert "- hecate:reverse_proxy:caddy:listen ':443': Caddy server 'srv0' already listens on ':443'" in text
    assert "set hecate:reverse_proxy:caddy:server to 'srv0'" in text and "nothing was written" in text


class _Admin:
    """The admin client as apply() uses it: one config, every write recorded."""

    def __init__(self, config):
        self.config, self.writes = config, []

    def get(self):
        return copy.deepcopy(self.config), '"/config/ 1"'

    def write(self, *args, data=None):
        assert data is None or json.loads(data) == args[2]  # the encoded body is the value
        self.writes.append(args)


@pytest.mark.parametrize("test", [True, False])
def test_apply_refuses_to_create_a_server_on_a_taken_address(test):
    admin = _Admin(_servers(srv0=[":443"]))
    with pytest.raises(hecate_caddy_apply.ListenerTaken, match="Caddy server 'srv0' already listens on ':443'"):
        hecate_caddy_apply.apply(admin, "hecate", lambda live: ([], {"added": {}}), test=test, listen=[":443"])
    assert admin.writes == []
    hecate_caddy_apply.apply(admin, "hecate", lambda live: (["r"], {"added": {"r": {}}}), test=False, listen=[":8443"])
    ((method, path, value, etag),) = admin.writes
    assert (method, path, etag) == ("PUT", "/config/apps/http/servers/hecate", '"/config/ 1"')
    assert value == {"listen": [":8443"], "routes": ["r"]}  # nothing else: Caddy's automatic HTTPS stays on


class _SharingAdmin(_Admin):
    """:class:`_Admin` that parses its config as the real client does, holding ``known`` objects."""

    def get(self, known=None):
        import hecate_caddy_client  # pylint: disable=import-outside-toplevel

        return hecate_caddy_client.shared_loads(json.dumps(self.config), known), '"/config/ 1"'


def _server_with(routes):
    return {"apps": {"http": {"servers": {"hecate": {"listen": [":443"], "routes": routes}}}}}


def test_apply_with_known_routes_plans_and_writes_as_without(tmp_path):
    """
    ``known`` only saves memory: converged, the live routes ARE the built ones (the plan finds
    them unchanged by identity) and nothing is written; with one route changed, the changes,
    the write and the snapshot are those of a run without it.
    """
    import hecate_caddy_client  # pylint: disable=import-outside-toplevel

    desired = m.build({"routes": [{"domain": "a.test", "backend": "127.0.0.1:1"},
                                  {"domain": "b.test", "backend": "127.0.0.1:2"}]})
    foreign = {"@id": "ops.x", "match": [{"host": ["x.test"]}], "handle": [{"handler": "static_response"}]}
    seen = []

    def plan(live):
        seen.append(live)
        return m.plan_set(live, desired)

    admin = _SharingAdmin(_server_with([foreign] + [json.loads(json.dumps(r.json)) for r in desired]))
    out = hecate_caddy_apply.apply(admin, "hecate", plan, test=False, known=[r.json for r in desired])
    assert out["changes"] == {} and admin.writes == []
    assert [r is d.json for r, d in zip(seen[0][1:], desired)] == [True, True] and seen[0][0] == foreign

    live = [foreign, json.loads(json.dumps(desired[0].json)), dict(desired[1].json, terminal=False)]
    runs = []
    for known in (None, [r.json for r in desired]):
        admin = _SharingAdmin(_server_with(copy.deepcopy(live)))
        store = hecate_caddy_client.SnapshotStore(str(tmp_path / f"state{len(runs)}"))
        preview = hecate_caddy_apply.apply(admin, "hecate", plan, test=True, store=store, known=known)
        out = hecate_caddy_apply.apply(admin, "hecate", plan, test=False, store=store, known=known)
        snap = store.load(out["snapshot"])
        runs.append((preview["changes"], out["changes"], admin.writes, snap["before"], snap["after"], snap["config"]))
    assert runs[0] == runs[1]
    assert runs[1][0] == runs[1][1] and list(runs[1][1]) == ["changed"]
    assert runs[1][3] == live and runs[1][5] == _server_with(live)


# -- routes hecate wrote that Caddy lost ------------------------------------------------------------
def test_lost_routes_note(tmp_path):
    import hecate_caddy_client  # pylint: disable=import-outside-toplevel

    store = hecate_caddy_client.SnapshotStore(str(tmp_path / "state"))
    ours = [{"@id": "hecate.route.web"}, {"@id": "hecate.adhoc.status"}]
    assert hecate_caddy_apply.lost_routes_note(store, "srv0", []) is None  # never written: a first deployment
    store.save("srv0", ("apps", "http", "servers", "srv0", "routes"), [], [{"match": []}] + ours, {})
    assert hecate_caddy_apply.lost_routes_note(store, "srv0", [{"match": []}] + ours) is None
    note = hecate_caddy_apply.lost_routes_note(store, "srv0", [{"match": []}])
    assert note.startswith("Caddy no longer has 2 route(s) hecate wrote to server 'srv0' at ")
    assert ": web, status. Caddy was restarted without --resume" in note
    assert hecate_caddy_apply.lost_routes_note(None, "srv0", []) is None
    # a server hecate created: the routes are inside the created object
    store.save("hecate", ("apps", "http", "servers", "hecate"), None, {"listen": [":443"], "routes": ours[:1]}, {})
    assert "1 route(s) hecate wrote to server 'hecate'" in hecate_caddy_apply.lost_routes_note(store, "hecate", [])


@pytest.mark.parametrize("route", [
    {"domain": "a.example.com", "backend": ["10.0.0.1:80", {"x": 1}]},
    {"domain": "a.example.com", "backend": "10.0.0.1:80", "headers": "not a mapping"},
    {"domain": ["a.example.com"], "backend": "10.0.0.1:80", "health_checks": {"active": "x"}},
    {"domains": 5, "backend": "10.0.0.1:80"},
])
def test_check_pillar_reports_malformed_routes_by_key_path(route):
    errors = hecate_caddy_schema.check_pillar({"hecate": {"reverse_proxy": {"caddy": {"routes": [route]}}}}, "lab")
    assert errors and all(path.startswith("hecate:reverse_proxy:caddy:routes:0") for path, _ in errors), errors


def test_check_pillar_lets_a_bug_surface(monkeypatch):
    """Only bad data becomes "errors"; a bug in the model is not turned into "no errors"."""
    def broken(*args, **kwargs):
        raise RuntimeError("bug")

    monkeypatch.setattr(m, "build", broken)
    with pytest.raises(RuntimeError):
        hecate_caddy_schema.check_pillar({"hecate": {"reverse_proxy": {"caddy": {"routes": []}}}}, "lab")
