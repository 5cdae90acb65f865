"""
An identity-aware route end to end in the lab, through the real master, the cloud minion,
the real Caddy and the Authentik simulator (which plays the embedded outpost too): one
pillar entry (``auth: {groups: [...]}``) makes the Authentik side and then the Caddy route.

A browser is played by hand (two cookie jars: the site through Caddy, Authentik directly):
anonymous -> the outpost's redirect to Authentik's authorize endpoint -> the login flow ->
back through the outpost's callback -> the backend sees the user's identity headers. The
test users are the lab's (pillar/env/lab.sls), their passwords read from the Vault simulator.
"""

import urllib.parse
from http.cookies import SimpleCookie

import pytest
import requests

from tests import caddy_helpers as ch

DOMAIN = "whoami.cybermonkey.dev"
ROUTE = "whoami"
GROUPS = ["bionicgpt-superadmin", "bionicgpt-ops"]  # henry is in the first; demo in neither
PROVIDER = f"hecate/lab/route/{ROUTE}"
CADDY_STATE = "caddy_routes_|-hecate caddy routes_|-hecate caddy routes_|-managed"
AUTH_STATE = "authentik_route_auth_|-hecate route auth_|-hecate route auth_|-managed"
PRUNE_STATE = "authentik_route_auth_|-hecate route auth removed_|-hecate route auth removed_|-pruned"


class Browser:
    """Follows the sign-in by hand: the site through Caddy (Host header), Authentik directly."""

    def __init__(self, caddy, authentik_url):
        self.caddy, self.ak = caddy, authentik_url.rstrip("/")
        self.jars = {"site": {}, "authentik": {}}

    def _send(self, jar, url, method="GET", headers=None, **kw):
        hdrs = dict(headers or {})
        if self.jars[jar]:
            hdrs["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.jars[jar].items())
        resp = requests.request(method, url, headers=hdrs, allow_redirects=False, timeout=10, **kw)
        for value in resp.raw.headers.getlist("Set-Cookie"):
            for key, morsel in SimpleCookie(value).items():
                self.jars[jar][key] = morsel.value
        return resp

    def site(self, path_and_query, headers=None):
        hdrs = {"Host": DOMAIN}
        hdrs.update(headers or {})
        return self._send("site", f"http://127.0.0.1:{self.caddy.http_port}{path_and_query}", headers=hdrs)

    def authentik(self, path_and_query, method="GET", **kw):
        return self._send("authentik", self.ak + path_and_query, method=method, **kw)

    def follow(self, location, headers=None):
        """A redirect: to the site (any scheme, the route's host) or to Authentik."""
        parts = urllib.parse.urlsplit(location)
        local = parts.path + (f"?{parts.query}" if parts.query else "")
        if parts.netloc == DOMAIN:
            return self.site(local, headers)
        assert not parts.netloc or location.startswith(self.ak), location
        return self.authentik(local)

    def sign_in(self, username, password, path="/private?x=1", headers=None):
        """Anonymous request -> authorize -> login flow -> authorize -> callback -> the site."""
        steps = {"first": self.site(path)}
        assert steps["first"].status_code == 302, steps["first"].text
        authorize = self.follow(steps["first"].headers["Location"])
        assert authorize.status_code == 302 and authorize.headers["Location"].startswith(
            "/flows/-/default/authentication/?next="), authorize.text
        flow = self.authentik(authorize.headers["Location"])
        page = urllib.parse.urlsplit(flow.headers["Location"])
        query = urllib.parse.urlencode({"query": page.query})
        executor = f"/api/v3/flows/executor/default-authentication-flow/?{query}"
        assert self.authentik(executor).json()["component"] == "ak-stage-identification"
        step = self.authentik(executor, "POST", json={"component": "ak-stage-identification", "uid_field": username})
        assert step.json()["component"] == "ak-stage-password", step.text
        done = self.authentik(executor, "POST", json={"component": "ak-stage-password", "password": password})
        assert done.json()["component"] == "xak-flow-redirect", done.text
        steps["authorize"] = self.authentik(done.json()["to"])
        if steps["authorize"].status_code != 302:
            return steps  # access denied by the application's policies
        callback = self.follow(steps["authorize"].headers["Location"])
        assert callback.status_code == 302, callback.text
        steps["site"] = self.follow(callback.headers["Location"], headers)
        return steps


def _vault_passwords(vault_sim):
    resp = requests.get(f"{vault_sim.url}/v1/secret/data/bionicgpt/lab-users",
                        headers={"X-Vault-Token": vault_sim.root_token}, timeout=10)
    resp.raise_for_status()
    return resp.json()["data"]["data"]


def _apply(salt_cli, sls, *args):
    ret = salt_cli.run("state.apply", sls, *args, minion_tgt="cloud")
    assert isinstance(ret.data, dict), ret
    return ret.data


@pytest.fixture(scope="module")
def lab(stack, salt_cli, cloud_call, vault_sim):
    """The lab with a protected route; the overrides file written for the module."""
    import json  # pylint: disable=import-outside-toplevel
    import os  # pylint: disable=import-outside-toplevel

    sims, caddy = stack["sims"], stack["caddy"]
    backend = ch.Backend(ROUTE).start()
    path = os.path.join(stack["pillar_dir"], "lab_overrides.sls")

    def route(auth):
        spec = {"domain": DOMAIN, "service": ROUTE, "backend": backend.dial, "policies": []}
        if auth is not None:
            spec["auth"] = auth
        data = {"hecate": {"reverse_proxy": {"caddy": {
                    "forward_auth": {"outpost": sims["authentik"].url.split("//", 1)[1]},
                    "routes": [spec]}}},
                "bionicgpt": {"authentik": {"groups": {"bionicgpt-ops": {"attributes": {"role": "ops"}}}}}}
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(data, fh)

    ch.reset(caddy)
    route({"groups": GROUPS, "skip_paths": ["^/healthz$"]})
    # the lab's groups and test users (passwords set from Vault), as the orchestration's step
    users = _apply(salt_cli, "bionicgpt.authentik")
    assert all(s["result"] for s in users.values()), users
    yield {"route": route, "backend": backend, "caddy": caddy, "sims": sims, "salt": salt_cli,
           "call": cloud_call, "passwords": _vault_passwords(vault_sim)}
    backend.stop()
    if os.path.exists(path):
        os.unlink(path)
    sims["authentik"].clear_faults()


@pytest.fixture(scope="module")
def protected(lab):
    """Preview of both systems, then the Authentik side, then Caddy, then a re-run."""
    ak, caddy, salt_cli = lab["sims"]["authentik"], lab["caddy"], lab["salt"]
    out = {}
    ak.clear_requests()
    w0 = ch.writes(caddy)
    out["preview_auth"] = _apply(salt_cli, "hecate.route_auth", "test=True")
    out["preview_caddy"] = _apply(salt_cli, "hecate.caddy", "test=True")
    out["preview_writes"] = (ak.writes(), ch.writes(caddy) - w0)
    out["auth"] = _apply(salt_cli, "hecate.route_auth")
    out["caddy"] = _apply(salt_cli, "hecate.caddy")
    ak.clear_requests()
    w1 = ch.writes(caddy)
    out["again_auth"] = _apply(salt_cli, "hecate.route_auth")
    out["again_caddy"] = _apply(salt_cli, "hecate.caddy")
    out["again_prune"] = _apply(salt_cli, "hecate.authentik_prune")
    out["again_writes"] = (ak.writes(), ch.writes(caddy) - w1)
    out["status"] = lab["call"].run("authentik.route_auth_status").data
    return out


def test_one_pillar_entry_previews_both_systems_then_makes_them(protected, lab):
    auth = protected["preview_auth"][AUTH_STATE]
    caddy = protected["preview_caddy"][CADDY_STATE]
    assert auth["result"] is None and caddy["result"] is None, (auth, caddy)
    assert set(auth["changes"][ROUTE]) >= {"provider", "application", "bindings", "outpost"}
    assert auth["changes"][ROUTE]["bindings"] == {"added": [f"group:{g}" for g in GROUPS], "removed": []}
    assert caddy["changes"]["added"][ROUTE]["forward_auth"]  # the route, protected
    assert protected["preview_writes"] == ([], 0)  # test=True writes to neither system
    applied = protected["auth"][AUTH_STATE]
    assert applied["result"] is True and applied["changes"][ROUTE] == auth["changes"][ROUTE], applied
    assert protected["caddy"][CADDY_STATE]["result"] is True
    assert protected["caddy"][CADDY_STATE]["changes"] == caddy["changes"]
    assert protected["status"] == {ROUTE: {
        "ready": True, "reason": None, "provider": PROVIDER, "application": ROUTE, "groups": GROUPS,
        "mode": "forward_single", "external_host": f"https://{DOMAIN}"}}


def test_a_rerun_writes_nothing(protected):
    for key, state in (("again_auth", AUTH_STATE), ("again_caddy", CADDY_STATE), ("again_prune", PRUNE_STATE)):
        ret = protected[key][state]
        assert ret["result"] is True and ret["changes"] == {}, ret
    assert protected["again_writes"] == ([], 0)


def test_anonymous_is_sent_to_authentik(protected, lab):
    browser = Browser(lab["caddy"], lab["sims"]["authentik"].url)
    first = browser.site("/private")
    assert first.status_code == 302
    location = urllib.parse.urlsplit(first.headers["Location"])
    query = urllib.parse.parse_qs(location.query)
    assert first.headers["Location"].startswith(lab["sims"]["authentik"].url + "/application/o/authorize/")
    assert query["redirect_uri"] == [f"https://{DOMAIN}/outpost.goauthentik.io/callback?X-authentik-auth-callback=true"]
    assert any(c.startswith("authentik_proxy_") for c in browser.jars["site"])
    assert browser.site("/healthz").status_code == 200  # a skip path: no sign-in
    assert [s["path"] for s in lab["backend"].seen] == ["/healthz"]


def test_henry_reaches_the_backend_with_his_identity(protected, lab):
    browser = Browser(lab["caddy"], lab["sims"]["authentik"].url)
    seen = len(lab["backend"].seen)
    steps = browser.sign_in("henry", lab["passwords"]["henry"], headers={"X-Authentik-Username": "mallory"})
    site = steps["site"]
    assert site.status_code == 200, site.text
    headers = site.json()["headers"]
    assert headers["X-Authentik-Username"] == "henry"  # the client's own header never arrives
    assert headers["X-Authentik-Groups"] == "bionicgpt-superadmin"
    assert headers["X-Authentik-Email"] == "henry@codemonkey.ai"
    assert len(headers["X-Authentik-Uid"]) == 64
    assert headers["X-Authentik-Meta-App"] == ROUTE and headers["X-Authentik-Meta-Provider"] == PROVIDER
    assert site.json()["path"] == "/private?x=1"
    assert len(lab["backend"].seen) == seen + 1


def test_demo_is_refused_and_never_reaches_the_backend(protected, lab):
    browser = Browser(lab["caddy"], lab["sims"]["authentik"].url)
    seen = len(lab["backend"].seen)
    steps = browser.sign_in("demo", lab["passwords"]["demo"])
    denied = steps["authorize"]
    # Authentik's AccessDeniedResponse (authentik/policies/denied.py): a 200 page, no code
    assert denied.status_code == 200 and "Access denied" in denied.text
    assert browser.site("/private").status_code == 302  # still no session at the site
    forged = browser.site("/private", headers={"X-Authentik-Username": "demo"})
    assert forged.status_code == 302
    assert len(lab["backend"].seen) == seen


def test_removing_auth_removes_what_hecate_made_and_the_site_is_public(protected, lab):
    ak, salt_cli = lab["sims"]["authentik"], lab["salt"]
    lab["route"](None)
    assert _apply(salt_cli, "hecate.route_auth")[AUTH_STATE]["changes"] == {}  # nothing to make
    caddy = _apply(salt_cli, "hecate.caddy")[CADDY_STATE]
    assert caddy["result"] is True and ROUTE in caddy["changes"]["changed"], caddy
    pruned = _apply(salt_cli, "hecate.authentik_prune")[PRUNE_STATE]
    assert pruned["result"] is True, pruned
    assert set(pruned["changes"][ROUTE]) == {"outpost", "provider", "application"}
    objects = ak.state()["objects"]
    assert not [p for p in objects["provider_proxy"] if p["name"] == PROVIDER]
    assert not [a for a in objects["application"] if a["slug"] == ROUTE]
    # the backend trusted the outpost's headers: a client's own never reach it on the public route
    public = Browser(lab["caddy"], ak.url).site("/private", headers={"X-Authentik-Username": "henry",
                                                                     "x-authentik-groups": "bionicgpt-superadmin"})
    assert public.status_code == 200 and public.json()["backend"] == ROUTE
    assert not [k for k in public.json()["headers"] if k.lower().startswith("x-authentik")]


def test_authentik_down_never_makes_the_site_protected_but_broken(protected, lab):
    ak, salt_cli = lab["sims"]["authentik"], lab["salt"]
    lab["route"]({"groups": GROUPS})
    ak.fault(path=r"^/api/v3/", status=503, body={"detail": "Service Unavailable"})
    try:
        auth = _apply(salt_cli, "hecate.route_auth")[AUTH_STATE]
        assert auth["result"] is False and "503" in auth["comment"], auth
        caddy = _apply(salt_cli, "hecate.caddy")[CADDY_STATE]
    finally:
        ak.clear_faults()
    assert caddy["result"] is False and f"route '{ROUTE}' not switched to forward auth" in caddy["comment"]
    assert caddy["changes"] == {}
    # the site stays as it was (public) instead of asking an outpost that has no provider for it
    assert Browser(lab["caddy"], ak.url).site("/private").status_code == 200
