"""
The route -> Authentik model (hecate_route_auth) and its place in the Caddy route model:
what a route's ``auth`` means, the errors that name the key, the hold of a route whose
Authentik side is not in place.
"""

import copy

import pytest

import hecate_caddy_routes as routes  # noqa: E402  (on sys.path through tests/conftest.py)
import hecate_route_auth as ra  # noqa: E402
import hecate_schema  # noqa: E402

BASE = "hecate:reverse_proxy:caddy"


def data(*specs, **forward_auth):
    return {"forward_auth": dict({"outpost": "127.0.0.1:9000"}, **forward_auth), "routes": list(specs)}


def spec(name="grafana", domain="observe.example.com", **auth):
    return {"domain": domain, "service": name, "backend": "10.0.0.7:3000", "auth": auth}


def errors(caddy):
    with pytest.raises(routes.RouteDataError) as exc:
        routes.route_auths(caddy)
    return {path: msg for path, msg in exc.value.errors}


def test_defaults_of_a_protected_route():
    (auth,) = routes.route_auths(data(spec(groups=["grafana-users"])))
    assert (auth.route, auth.slug, auth.name, auth.mode, auth.external_host, auth.launch_url) == (
        "grafana", "grafana", "grafana", "forward_single", "https://observe.example.com", "https://observe.example.com")
    assert (auth.flow, auth.invalidation_flow, auth.groups, auth.outpost) == (
        ra.DEFAULT_FLOW, ra.DEFAULT_INVALIDATION, ["grafana-users"], None)
    assert auth.provider_name("prod") == "hecate/prod/route/grafana"


def test_forward_auth_true_is_any_signed_in_user_and_unprotected_routes_are_left_out():
    caddy = data({"domain": "a.example.com", "service": "a", "backend": "10.0.0.1:80", "forward_auth": True},
                 {"domain": "b.example.com", "service": "b", "backend": "10.0.0.1:80"},
                 {"domain": "c.example.com", "service": "c", "backend": "10.0.0.1:80", "auth": None})
    (auth,) = routes.route_auths(caddy)
    assert auth.route == "a" and auth.groups == []


def test_consul_routes_count_too():
    caddy = data({"domain": "chat.example.com", "service": "chat", "upstream": {"consul_service": "x"}, "auth": {}})
    assert [a.route for a in routes.route_auths(caddy)] == ["chat"]
    assert routes.build(caddy) == []  # the Caddy model waits for Consul; the Authentik side does not


@pytest.mark.parametrize("route,path,fragment", [
    (spec(domain="a.example.com") | {"domains": ["b.example.com"]}, "auth:mode", "exactly one domain"),
    (spec(domain="*.example.com"), "auth:mode", "without a wildcard"),
    (spec(mode="forward_domain"), "auth:cookie_domain", "required key is missing"),
    (spec(mode="forward_domain", cookie_domain="example.org"), "auth:cookie_domain", "is not under 'example.org'"),
    (spec(cookie_domain="example.com"), "auth:cookie_domain", "only with mode forward_domain"),
    (spec(skip_paths=["(unclosed"]), "auth:skip_paths:0", "invalid regular expression"),
    (spec(token_validity="hours=0"), "auth:token_validity", "longer than zero"),
    (spec(token_validity="fortnights=1"), "auth:token_validity", "not an Authentik duration"),
    (spec(groups=["a", "a"]), "auth:groups", "lists a group twice"),
    (spec(name="authorize"), "auth:slug", "reserved by Authentik"),
    (spec(name="x" * 60), "auth:slug", "at most 50 characters"),
])
def test_bad_auth_names_the_key(route, path, fragment):
    found = errors(data(route))
    assert f"{BASE}:routes:0:{path}" in found, found
    assert fragment in found[f"{BASE}:routes:0:{path}"]


def test_forward_domain_covers_a_wildcard_and_takes_the_first_exact_domain():
    route = {"domains": ["*.apps.example.com", "apps.example.com"], "service": "apps", "backend": "10.0.0.1:80",
             "auth": {"mode": "forward_domain", "cookie_domain": "apps.example.com"}}
    (auth,) = routes.route_auths(data(route))
    assert (auth.external_host, auth.cookie_domain) == ("https://apps.example.com", "apps.example.com")
    route["domains"] = ["*.apps.example.com"]
    assert "required when every domain is a wildcard" in errors(data(route))[f"{BASE}:routes:0:auth:external_host"]


def test_two_routes_cannot_share_an_application_slug():
    found = errors(data(spec("a", "a.example.com", slug="shared"), spec("b", "b.example.com", slug="shared")))
    assert "also the slug of route 'a'" in found[f"{BASE}:routes:1:auth:slug"]


def test_manage_authentik_false_keeps_the_caddy_half_and_refuses_auth():
    plain = {"domains": ["a.example.com", "b.example.com"], "service": "a", "backend": "10.0.0.1:80",
             "forward_auth": True}
    assert routes.route_auths(data(plain, manage_authentik=False)) == []
    (route,) = routes.build(data(plain, manage_authentik=False))
    assert route.auth is None and "rewrite" in str(route.json)  # forward auth, Caddy half only
    found = errors(data(spec(), manage_authentik=False))
    assert "manage_authentik is false" in found[f"{BASE}:routes:0:auth"]


def test_auth_alone_turns_forward_auth_on_in_caddy():
    (route,) = routes.build(data(spec(groups=["g"])))
    handlers = [h for r in route.json["handle"][0]["routes"] for h in r["handle"]]
    auth = [h for h in handlers if h.get("rewrite")]
    assert auth and auth[0]["rewrite"]["uri"] == "/outpost.goauthentik.io/auth/caddy"
    assert route.auth is not None and route.auth.groups == ["g"]


def test_hold_keeps_the_live_route_or_leaves_a_new_one_out():
    built = routes.build(data(spec("a", "a.example.com"), spec("b", "b.example.com"),
                              {"domain": "c.example.com", "service": "c", "backend": "10.0.0.1:80"}))
    live_a = {"@id": "hecate.route.a", "match": [{"host": ["a.example.com"]}], "handle": [], "terminal": True}
    held = routes.hold(built, {"a": "down", "b": "down"}, [live_a])
    assert [r.name for r in held] == ["a", "c"]  # b is new: not added at all
    assert held[0].json is live_a  # a stays exactly as Caddy has it
    assert routes.hold(built, {}, [live_a]) is built


def test_pillar_schema_knows_auth_and_describes_every_new_key():
    schema = hecate_schema.schema()
    route = schema["properties"]["hecate"]["properties"]["reverse_proxy"]["properties"]["caddy"]["properties"][
        "routes"]["items"]
    auth = route["properties"]["auth"]
    assert auth["description"] and all(p.get("description") for p in auth["properties"].values())
    settings = schema["properties"]["hecate"]["properties"]["reverse_proxy"]["properties"]["caddy"]["properties"][
        "forward_auth"]["properties"]
    assert settings["manage_authentik"]["description"] and settings["authentik_host"]["description"]


def test_validate_reports_auth_errors_with_their_path():
    pillar = {"hecate": {"global": {"domain": "example.com", "environment": "dev"},
                         "reverse_proxy": {"caddy": data(spec(mode="sideways", colour="red"))}}}
    found = hecate_schema.validate(copy.deepcopy(pillar), "dev")
    assert any(e.startswith(f"{BASE}:routes:0:auth:colour: unknown key") for e in found), found
    assert any(e.startswith(f"{BASE}:routes:0:auth:mode:") for e in found), found
