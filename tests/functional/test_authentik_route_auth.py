"""
The Authentik side of protected routes (``authentik_route_auth.managed/pruned/absent``, the
``authentik.route_auth_status`` function) through Salt's loaders against the Authentik
simulator of each supported release (strict: a field the release's schema does not know is
a 400), and the Caddy state's hold of a route whose Authentik side is not in place, against
the real Caddy.
"""

import uuid

import pytest
import requests

import hecate_authentik_client as hak  # noqa: E402  pylint: disable=wrong-import-order
import hecate_secrets  # noqa: E402  pylint: disable=wrong-import-order
from lab import topology
from lab.sim import SimHandle
from tests import caddy_helpers as ch
from tests.functional.authentik_helpers import TOKEN_REF, loaders_for, minion_opts  # puts _utils on sys.path

RELEASES = ("2025.6", "2025.10", "2026.5")
ENV = "lab"
ROUTE_STATE = "authentik_route_auth_|-{0}_|-{0}_|-{1}"


class Env:
    def __init__(self, release, sim, loaders, token):
        self.release = release
        self.sim = sim
        self.loaders = loaders
        self.client = hak.AuthentikClient({"url": sim.url}, hecate_secrets.Secret(token))

    def objects(self):
        return self.sim.state()["objects"]

    def managed(self, routes, test=False, env=ENV, **forward_auth):
        return run(self.loaders, "authentik_route_auth.managed", pillar(routes, env=env, **forward_auth), test)

    def pruned(self, routes, test=False, env=ENV):
        return run(self.loaders, "authentik_route_auth.pruned", pillar(routes, env=env), test)

    def absent(self, routes, test=False, env=ENV):
        return run(self.loaders, "authentik_route_auth.absent", pillar(routes, env=env), test)


SLS = {"authentik_route_auth.managed": "routeauth", "authentik_route_auth.pruned": "routeprune",
       "authentik_route_auth.absent": "routeabsent", "caddy_routes.managed": "caddyroutes"}


def run(loaders, fun, data, test=False):
    """One state from its SLS (so that ``data`` is the pillar it sees)."""
    (result,) = list(loaders.modules.state.sls(SLS[fun], pillar=data, test=test))
    return result


@pytest.fixture(scope="module")
def sls_roots(tmp_path_factory):
    root = tmp_path_factory.mktemp("route-auth-sls")
    for fun, sls in SLS.items():
        (root / f"{sls}.sls").write_text(f"hecate {sls}:\n  {fun}: []\n")
    return {"file_roots": {"base": [str(root)]}}


def pillar(routes, env=ENV, caddy_extra=None, **forward_auth):
    caddy = {"forward_auth": dict({"outpost": "127.0.0.1:9"}, **forward_auth), "routes": routes}
    caddy.update(caddy_extra or {})
    return {"hecate": {"global": {"environment": env, "domain": "example.com"},
                       "reverse_proxy": {"caddy": caddy}}}


@pytest.fixture(scope="module", params=RELEASES)
def env(request, salt_factories, repo, vault_sim, authentik_sims, lab_secrets, tmp_path_factory, sls_roots):
    release = request.param
    sim = SimHandle("authentik", str(tmp_path_factory.mktemp(f"route-auth-{release}")),
                    topology.authentik_options(lab_secrets, version=release)).start()
    opts = minion_opts(salt_factories, f"route-auth-{release.replace('.', '-')}", repo, vault_sim, sim,
                       extra=sls_roots)
    yield Env(release, sim, loaders_for(opts), topology.authentik_token(lab_secrets))
    sim.stop()


@pytest.fixture(autouse=True)
def _fresh(request):
    if "env" in request.fixturenames:
        env = request.getfixturevalue("env")
        env.loaders.reset_state()
        env.sim.clear_faults()
    yield


def tag():
    return f"r{uuid.uuid4().hex[:6]}"


def groups(env, *names):
    for name in names:
        env.client.create("group", {"name": name})


def route(route_name, domain, **auth):
    return {"domain": domain, "service": route_name, "backend": "127.0.0.1:9", "auth": auth}


def provider(env, name):
    return next((p for p in env.objects()["provider_proxy"] if p["name"] == name), None)


def app(env, slug):
    return next((a for a in env.objects()["application"] if a["slug"] == slug), None)


def bound(env, slug):
    objects = env.objects()
    names = {g["pk"]: g["name"] for g in objects["group"]}
    target = app(env, slug)["pk"]
    return sorted(names[b["group"]] for b in objects["policy_binding"] if b["target"] == target)


def embedded(env):
    return next(o for o in env.objects()["outpost"] if o.get("managed") == hak.EMBEDDED_OUTPOST)


# -- one route, end to end ---------------------------------------------------------------------------
def test_route_auth_preview_apply_converge(env):
    t = tag()
    groups(env, f"{t}-admins", f"{t}-ops")
    routes = [route(t, f"{t}.example.com", groups=[f"{t}-admins", f"{t}-ops"], skip_paths=["^/health$"],
                    token_validity="hours=8", launch_url=f"https://{t}.example.com/home",
                    meta_description="the app", icon="https://icons.example.com/app.svg", name="The App")]
    before = env.objects()
    env.sim.clear_requests()
    preview = env.managed(routes, test=True)
    assert preview.result is None, preview.raw
    assert env.sim.writes() == [] and env.objects() == before
    changes = preview.changes[t]
    assert changes["provider"] == {"old": None, "new": f"hecate/lab/route/{t}"}
    assert changes["provider:external_host"] == {"old": None, "new": f"https://{t}.example.com"}
    assert changes["provider:skip_path_regex"] == {"old": None, "new": ["^/health$"]}
    assert changes["application"] == {"old": None, "new": t}
    assert changes["bindings"] == {"added": [f"group:{t}-admins", f"group:{t}-ops"], "removed": []}
    assert changes["outpost"] == {"old": [], "new": ["authentik Embedded Outpost"]}
    ret = env.managed(routes)
    assert ret.result is True, ret.raw
    assert ret.changes[t] == changes  # the preview was exactly what happened
    prov = provider(env, f"hecate/lab/route/{t}")
    assert (prov["external_host"], prov["mode"], prov["skip_path_regex"], prov["access_token_validity"]) == (
        f"https://{t}.example.com", "forward_single", "^/health$", "hours=8")
    application = app(env, t)
    assert application["provider"] == prov["pk"]
    assert application["meta_publisher"] == f"hecate/lab/route/{t}"  # the ownership mark
    assert (application["name"], application["meta_launch_url"], application["policy_engine_mode"]) == (
        "The App", f"https://{t}.example.com/home", "any")
    assert application["meta_icon"] == "https://icons.example.com/app.svg"
    assert bound(env, t) == [f"{t}-admins", f"{t}-ops"]
    assert prov["pk"] in embedded(env)["providers"]
    assert embedded(env)["config"]["authentik_host"] == env.sim.url  # was blank: browsers need it
    # the second run reads and writes nothing
    env.sim.clear_requests()
    again = env.managed(routes)
    assert again.result is True and again.changes == {}, again.raw
    assert env.sim.writes() == []
    assert [r for r in env.sim.requests() if r.get("unknown_fields") or r.get("unknown_params")] == []


def test_group_change_adds_before_it_removes(env):
    t = tag()
    groups(env, f"{t}-a", f"{t}-b")
    assert env.managed([route(t, f"{t}.example.com", groups=[f"{t}-a"])]).result is True
    env.sim.clear_requests()
    ret = env.managed([route(t, f"{t}.example.com", groups=[f"{t}-b"])])
    assert ret.result is True, ret.raw
    assert ret.changes == {t: {"bindings": {"added": [f"group:{t}-b"], "removed": [f"group:{t}-a"]}}}
    writes = [(w["method"], w["path"].split("/")[3]) for w in env.sim.writes()]
    # never a moment without a binding: with none, every signed-in user would get in
    assert writes == [("POST", "policies"), ("DELETE", "policies")]
    assert bound(env, t) == [f"{t}-b"]


def test_forward_auth_true_means_any_signed_in_user(env):
    t = tag()
    ret = env.managed([{"domain": f"{t}.example.com", "service": t, "backend": "127.0.0.1:9",
                        "forward_auth": True}])
    assert ret.result is True, ret.raw
    assert bound(env, t) == []  # no binding: Authentik lets every signed-in user in
    assert provider(env, f"hecate/lab/route/{t}")["mode"] == "forward_single"


def test_forward_domain_covers_every_domain_of_the_route(env):
    t = tag()
    spec = {"domains": [f"a.{t}.example.com", f"*.{t}.example.com"], "service": t, "backend": "127.0.0.1:9",
            "auth": {"mode": "forward_domain", "cookie_domain": f"{t}.example.com"}}
    ret = env.managed([spec])
    assert ret.result is True, ret.raw
    prov = provider(env, f"hecate/lab/route/{t}")
    assert (prov["mode"], prov["cookie_domain"], prov["external_host"]) == (
        "forward_domain", f"{t}.example.com", f"https://a.{t}.example.com")


def test_objects_hecate_does_not_own_are_never_taken_over(env):
    t = tag()
    implicit = env.client.require("flow", "default-provider-authorization-implicit-consent")["pk"]
    invalidation = env.client.require("flow", "default-provider-invalidation-flow")["pk"]
    # someone's application already has the slug of route t; someone's provider serves u's host
    env.client.create("application", {"name": "Theirs", "slug": t})
    theirs = env.client.create("provider_proxy", {"name": f"{t} by hand", "external_host": f"https://u{t}.example.com",
                                                  "mode": "forward_single", "authorization_flow": implicit,
                                                  "invalidation_flow": invalidation})
    env.client.outpost_providers(embedded(env)["pk"], add=[theirs["pk"]])
    routes = [route(t, f"{t}.example.com"), route(f"u{t}", f"u{t}.example.com"), route(f"v{t}", f"v{t}.example.com")]
    before = {k: env.objects()[k] for k in ("application", "provider_proxy")}
    ret = env.managed(routes)
    assert ret.result is False
    assert f"route '{t}'" in ret.comment and f"application '{t}' (Theirs)" in ret.comment
    assert "hecate does not own it (publisher '')" in ret.comment and "set auth:slug" in ret.comment
    assert f"proxy provider '{t} by hand' (not hecate's) already serves https://u{t}.example.com" in ret.comment
    # the third route is made all the same; the foreign objects are as they were
    assert app(env, f"v{t}")["meta_publisher"] == f"hecate/lab/route/v{t}"
    assert app(env, t) == next(a for a in before["application"] if a["slug"] == t)
    assert provider(env, f"{t} by hand") == next(p for p in before["provider_proxy"] if p["name"] == f"{t} by hand")
    # auth:slug resolves the clash
    routes[0]["auth"]["slug"] = f"{t}-app"
    ret = env.managed(routes[:1])
    assert ret.result is True and app(env, f"{t}-app")["meta_publisher"] == f"hecate/lab/route/{t}", ret.raw


def test_missing_group_fails_naming_it_and_the_preview_shows_it(env):
    t = tag()
    routes = [route(t, f"{t}.example.com", groups=[f"{t}-nobody"])]
    preview = env.managed(routes, test=True)
    assert preview.result is None and preview.changes[t]["bindings"]["added"] == [f"group:{t}-nobody"]
    env.sim.clear_requests()
    ret = env.managed(routes)
    assert ret.result is False and f"group(s) {t}-nobody do not exist in Authentik" in ret.comment
    # nothing was written for that route: no provider, no application without its bindings
    assert provider(env, f"hecate/lab/route/{t}") is None and app(env, t) is None
    assert [w for w in env.sim.writes() if "/outposts/" not in w["path"]] == []


def test_removing_auth_prunes_only_hecates_objects_of_this_environment(env):
    t = tag()
    here, there = f"p{t}", f"q{t}"  # two environments sharing this Authentik
    groups(env, f"{t}-g")
    routes = [route(t, f"{t}.example.com", groups=[f"{t}-g"]), route(f"k{t}", f"k{t}.example.com")]
    assert env.managed(routes, env=here).result is True
    other = env.managed([route(f"o{t}", f"o{t}.example.com")], env=there)
    assert other.result is True, other.raw
    prov = provider(env, f"hecate/{here}/route/{t}")
    target = app(env, t)["pk"]
    preview = env.pruned(routes[1:], test=True, env=here)
    assert preview.result is None
    assert preview.changes == {t: {"outpost": {"old": ["authentik Embedded Outpost"], "new": []},
                                   "provider": {"old": f"hecate/{here}/route/{t}", "new": None},
                                   "application": {"old": t, "new": None}}}
    ret = env.pruned(routes[1:], env=here)
    assert ret.result is True and ret.changes == preview.changes, ret.raw
    objects = env.objects()
    assert provider(env, f"hecate/{here}/route/{t}") is None and app(env, t) is None
    assert not [b for b in objects["policy_binding"] if b["target"] == target]  # went with the application
    assert prov["pk"] not in embedded(env)["providers"]
    assert app(env, f"k{t}") is not None and app(env, f"o{t}") is not None  # still wanted; another env's
    env.sim.clear_requests()
    again = env.pruned(routes[1:], env=here)
    assert again.result is True and again.changes == {} and env.sim.writes() == []


def test_absent_removes_every_route_of_this_environment_whatever_pillar_says(env):
    t = tag()
    here, there = f"a{t}", f"b{t}"  # two environments sharing this Authentik
    routes = [route(t, f"{t}.example.com"), route(f"k{t}", f"k{t}.example.com")]
    assert env.managed(routes, env=here).result is True
    assert env.managed([route(f"o{t}", f"o{t}.example.com")], env=there).result is True
    env.client.create("application", {"name": "Theirs", "slug": f"x{t}"})  # not hecate's
    env.sim.clear_requests()
    preview = env.absent(routes, test=True, env=here)  # the routes are still in pillar: removed anyway
    assert preview.result is None and sorted(preview.changes) == sorted([t, f"k{t}"]), preview.raw
    assert env.sim.writes() == []
    ret = env.absent(routes, env=here)
    assert ret.result is True and ret.changes == preview.changes, ret.raw
    assert app(env, t) is None and app(env, f"k{t}") is None
    assert provider(env, f"hecate/{here}/route/{t}") is None
    assert app(env, f"o{t}") is not None and app(env, f"x{t}") is not None  # another env's; not hecate's
    env.sim.clear_requests()
    again = env.absent(routes, env=here)
    assert again.result is True and again.changes == {} and env.sim.writes() == []


def test_manage_authentik_false_leaves_authentik_alone(env):
    t = tag()
    env.sim.clear_requests()
    ret = env.managed([{"domain": f"{t}.example.com", "service": t, "backend": "127.0.0.1:9", "forward_auth": True}],
                      manage_authentik=False)
    assert ret.result is True and "managed elsewhere" in ret.comment
    assert env.sim.requests() == []


# -- Caddy: never protected-but-broken ---------------------------------------------------------------
@pytest.fixture(scope="module")
def edge(salt_factories, repo, vault_sim, authentik_sim, caddy, lab_secrets, tmp_path_factory, sls_roots):
    """Loaders with Authentik (the lab's simulator) and the real Caddy, and an echo backend."""
    state_dir = str(tmp_path_factory.mktemp("route-auth-caddy") / "state")
    opts = minion_opts(salt_factories, "route-auth-caddy", repo, vault_sim, authentik_sim, extra={
        **sls_roots,
        "hecate": {"connections": {
            "authentik": {"url": authentik_sim.url, "token": TOKEN_REF},
            "vault": {"url": vault_sim.url, "token": vault_sim.root_token},
            "caddy": {"admin_url": caddy.admin_url, "state_dir": state_dir}}}})
    backend = ch.Backend("protected").start()
    yield {"loaders": loaders_for(opts), "backend": backend, "sim": authentik_sim, "caddy": caddy}
    backend.stop()
    authentik_sim.clear_faults()


def test_caddy_holds_a_route_whose_authentik_side_failed(edge):
    loaders, sim, caddy = edge["loaders"], edge["sim"], edge["caddy"]
    ch.reset(caddy)
    t = tag()
    caddy_extra = {"server": "hecate"}
    spec = {"domain": f"{t}.example.com", "service": t, "backend": edge["backend"].dial, "auth": {}}
    data = pillar([spec], caddy_extra=caddy_extra, outpost=sim.url.split("//")[1])

    def caddy_run(test=False):
        return run(loaders, "caddy_routes.managed", data, test)

    # Authentik unreachable: the new protected route is not added (it would answer 404 for
    # every request), and the state says why
    sim.fault(path=r"^/api/v3/", status=503, body={"detail": "Service Unavailable"})
    try:
        preview = caddy_run(test=True)
        assert preview.result is False and f"route '{t}' not switched to forward auth" in preview.comment
        ret = caddy_run()
        assert ret.result is False, ret.raw
        assert f"route '{t}' not switched to forward auth" in ret.comment and "503" in ret.comment
        ch.through(caddy, f"{t}.example.com", "/")
        assert edge["backend"].seen == []  # Caddy has no route for it: never reached
        live = requests.get(caddy.admin_url + "/config/apps/http/servers/hecate/routes", timeout=5).json()
        assert f"hecate.route.{t}" not in [r.get("@id") for r in live or []]
    finally:
        sim.clear_faults()
    # Authentik reachable but its side not made yet: held too (preview: it would be made first)
    assert caddy_run(test=True).result is None
    ret = caddy_run()
    assert ret.result is False and "Authentik has no proxy provider" in ret.comment
    # made: the route goes live, protected
    made = run(loaders, "authentik_route_auth.managed", data)
    assert made.result is True, made.raw
    ret = caddy_run()
    assert ret.result is True and t in ret.changes["added"], ret.raw
    anonymous = ch.through(caddy, f"{t}.example.com", "/private")
    assert anonymous.status_code == 302 and "/application/o/authorize/" in anonymous.headers["Location"]
    # Authentik down again while the route changes: the protected route stays as it is
    spec["backend"] = "127.0.0.1:9"
    sim.fault(path=r"^/api/v3/", status=503, body={"detail": "Service Unavailable"})
    try:
        ret = caddy_run()
        assert ret.result is False and ret.changes == {}, ret.raw
    finally:
        sim.clear_faults()
    assert ch.through(caddy, f"{t}.example.com", "/private").status_code == 302
