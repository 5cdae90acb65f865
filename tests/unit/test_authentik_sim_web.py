"""
The browser side of the Authentik simulator (lab/sim/authentik_web.py): the embedded
outpost's forward auth, the authorize endpoint's policy decision, the login flow. In
process (werkzeug test client); the behaviours are cited in that module and checked
against a real server in tests/contract/test_authentik_contract.py.
"""

import hashlib
import urllib.parse
from http.cookies import SimpleCookie

import pytest
from werkzeug.test import Client

from lab.sim import authentik as aksim

TOKEN = "sim-web-token"


class Lab:
    def __init__(self, release="2025.10"):
        self.sim = aksim.AuthentikSim({"version": release, "token": TOKEN})
        self.client = Client(self.sim, use_cookies=False)
        self.flows = {f["slug"]: f["pk"] for f in self.sim.db["flow"].values()}

    def api(self, method, path, body=None):
        resp = self.client.open("/api/v3" + path, method=method, json=body,
                                headers={"Authorization": f"Bearer {TOKEN}"})
        assert resp.status_code < 400, (path, resp.status_code, resp.data)
        return resp.json if resp.data else None

    def user(self, username, password, *groups):
        user = self.api("POST", "/core/users/", {"username": username, "name": username.title(),
                                                 "email": f"{username}@example.com",
                                                 "groups": [g["pk"] for g in groups]})
        self.api("POST", f"/core/users/{user['pk']}/set_password/", {"password": password})
        return user

    def protect(self, host, mode="forward_single", groups=(), engine="any", attach=True, **extra):
        prov = self.api("POST", "/providers/proxy/", dict({
            "name": f"p-{host}", "external_host": f"https://{host}", "mode": mode,
            "authorization_flow": self.flows["default-provider-authorization-implicit-consent"],
            "invalidation_flow": self.flows["default-provider-invalidation-flow"]}, **extra))
        slug = host.replace(".", "-")
        app = self.api("POST", "/core/applications/", {"name": host, "slug": slug, "provider": prov["pk"],
                                                       "policy_engine_mode": engine})
        for idx, group in enumerate(groups):
            self.api("POST", "/policies/bindings/", {"target": app["pk"], "group": group["pk"], "order": idx})
        if attach:
            outpost = next(o for o in self.sim.db["outpost"].values() if o.get("managed"))
            self.api("PATCH", f"/outposts/instances/{outpost['pk']}/", {
                "providers": outpost["providers"] + [prov["pk"]],
                "config": dict(outpost["config"], authentik_host="https://auth.example.com")})
        return prov, app


class Browser:
    """Two cookie jars: the protected site, and Authentik."""

    def __init__(self, lab, host):
        self.lab, self.host = lab, host
        self.jars = {"site": {}, "ak": {}}

    def _open(self, jar, url, **kw):
        headers = dict(kw.pop("headers", {}))
        if self.jars[jar]:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.jars[jar].items())
        resp = self.lab.client.open(url, headers=headers, **kw)
        for value in resp.headers.getlist("Set-Cookie"):
            for key, morsel in SimpleCookie(value).items():
                self.jars[jar][key] = morsel.value
        return resp

    def forward(self, uri="/private?x=1", host=None):
        host = host or self.host
        return self._open("site", "/outpost.goauthentik.io/auth/caddy", headers={
            "Host": host, "X-Forwarded-Host": host, "X-Forwarded-Proto": "https", "X-Forwarded-Uri": uri})

    def site(self, location):
        parts = urllib.parse.urlsplit(location)
        return self._open("site", parts.path + "?" + parts.query, headers={"Host": parts.netloc})

    def ak(self, location, **kw):
        parts = urllib.parse.urlsplit(location)
        return self._open("ak", parts.path + ("?" + parts.query if parts.query else ""), **kw)

    def login(self, username, password, uri="/private?x=1"):
        start = self.forward(uri)
        assert start.status_code == 302
        to_flow = self.ak(start.headers["Location"])
        page = urllib.parse.urlsplit(self.ak(to_flow.headers["Location"]).headers["Location"])
        executor = "/api/v3/flows/executor/default-authentication-flow/?" + urllib.parse.urlencode(
            {"query": page.query})
        self.ak(executor)
        self.ak(executor, method="POST", json={"component": "ak-stage-identification", "uid_field": username})
        done = self.ak(executor, method="POST", json={"component": "ak-stage-password", "password": password})
        return self.ak(done.json["to"])


@pytest.fixture
def lab():
    return Lab()


def test_a_host_without_a_provider_goes_to_the_core_404(lab):
    lab.protect("unattached.example.com", attach=False)
    for host in ("nobody.example.com", "unattached.example.com"):
        resp = Browser(lab, host).forward()
        assert resp.status_code == 404 and resp.mimetype == "text/html"


def test_no_session_redirects_to_authorize_with_a_bound_session_cookie(lab):
    prov, _ = lab.protect("app.example.com")
    browser = Browser(lab, "app.example.com")
    resp = browser.forward("/private?x=1")
    assert resp.status_code == 302
    parts = urllib.parse.urlsplit(resp.headers["Location"])
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "auth.example.com", "/application/o/authorize/")
    query = urllib.parse.parse_qs(parts.query)
    assert query["client_id"] == [prov["client_id"]] and query["response_type"] == ["code"]
    assert query["redirect_uri"] == ["https://app.example.com/outpost.goauthentik.io/callback"
                                     "?X-authentik-auth-callback=true"]
    cookie = "authentik_proxy_" + hashlib.sha256(prov["client_id"].encode()).hexdigest()[:8]
    assert list(browser.jars["site"]) == [cookie]
    assert "Secure" in resp.headers["Set-Cookie"] and "HttpOnly" in resp.headers["Set-Cookie"]


def test_skip_paths_answer_without_a_session(lab):
    lab.protect("app.example.com", skip_path_regex="^/health$\n^/static/")
    browser = Browser(lab, "app.example.com")
    assert browser.forward("/health").status_code == 200
    assert browser.forward("/static/app.js").status_code == 200
    assert browser.forward("/healthz").status_code == 302


def test_allowed_user_gets_identity_headers_and_others_access_denied(lab):
    admins = lab.api("POST", "/core/groups/", {"name": "admins"})
    lab.user("henry", "pw-h", admins)
    lab.user("demo", "pw-d")
    _, app = lab.protect("app.example.com", groups=[admins])
    henry = Browser(lab, "app.example.com")
    authorized = henry.login("henry", "pw-h")
    assert authorized.status_code == 302
    callback = henry.site(authorized.headers["Location"])
    assert callback.status_code == 302 and callback.headers["Location"] == "https://app.example.com/private?x=1"
    ok = henry.forward()
    assert ok.status_code == 200
    assert ok.headers["X-Authentik-Username"] == "henry" and ok.headers["X-Authentik-Groups"] == "admins"
    assert ok.headers["X-Authentik-Email"] == "henry@example.com"
    assert ok.headers["X-Authentik-Meta-App"] == app["slug"]
    demo = Browser(lab, "app.example.com")
    denied = demo.login("demo", "pw-d")
    assert denied.status_code == 200 and b"Access denied" in denied.data  # AccessDeniedResponse: 200
    assert demo.forward().status_code == 302  # no outpost session


def test_policy_engine_mode_all_needs_every_group(lab):
    one = lab.api("POST", "/core/groups/", {"name": "one"})
    two = lab.api("POST", "/core/groups/", {"name": "two"})
    lab.user("henry", "pw-h", one)
    lab.protect("all.example.com", groups=[one, two], engine="all")
    assert Browser(lab, "all.example.com").login("henry", "pw-h").status_code == 200  # denied
    lab.protect("any.example.com", groups=[one, two], engine="any")
    assert Browser(lab, "any.example.com").login("henry", "pw-h").status_code == 302


def test_forward_domain_answers_for_hosts_under_the_cookie_domain(lab):
    lab.user("henry", "pw-h")
    lab.protect("auth.apps.example.com", mode="forward_domain", cookie_domain="apps.example.com")
    other = Browser(lab, "grafana.apps.example.com")
    resp = other.forward()
    assert resp.status_code == 302  # served by the domain provider (longest cookie domain)
    assert "Domain=apps.example.com" in resp.headers["Set-Cookie"]
    assert Browser(lab, "grafana.example.org").forward().status_code == 404


def test_a_callback_whose_state_is_not_this_sessions_is_refused(lab):
    lab.user("henry", "pw-h")
    lab.protect("app.example.com")
    browser = Browser(lab, "app.example.com")
    authorized = browser.login("henry", "pw-h")
    stranger = Browser(lab, "app.example.com")
    assert stranger.site(authorized.headers["Location"]).status_code == 400


def test_login_flow_validates_answers_and_keeps_no_password(lab):
    lab.user("henry", "pw-h")
    browser = Browser(lab, "x")
    executor = "/api/v3/flows/executor/default-authentication-flow/?query=next%3D%2F"
    first = browser.ak(executor)
    assert first.json["component"] == "ak-stage-identification"
    assert first.json["user_fields"] == ["email", "username"]
    bad = browser.ak(executor, method="POST", json={"component": "ak-stage-identification"})
    assert bad.status_code == 400 and bad.json == {"uid_field": ["This field is required."]}
    browser.ak(executor, method="POST", json={"component": "ak-stage-identification", "uid_field": "henry@example.com"})
    wrong = browser.ak(executor, method="POST", json={"component": "ak-stage-password", "password": "nope"})
    assert wrong.json["component"] == "ak-stage-password"
    assert wrong.json["response_errors"] == {"password": [{"string": "Invalid password", "code": "invalid"}]}
    right = browser.ak(executor, method="POST", json={"component": "ak-stage-password", "password": "pw-h"})
    assert right.json == {"component": "xak-flow-redirect", "to": "/",
                          "flow_info": right.json["flow_info"]}
    assert all(isinstance(v, tuple) and b"pw-h" not in v[1] for v in lab.sim.passwords.values())


def test_set_icon_url_exists_until_2026(lab):
    lab.api("POST", "/core/applications/", {"name": "A", "slug": "a"})
    lab.api("POST", "/core/applications/a/set_icon_url/", {"url": "https://i.example.com/a.png"})
    assert lab.api("GET", "/core/applications/a/")["meta_icon"] == "https://i.example.com/a.png"
    new = Lab("2026.5")
    new.api("POST", "/core/applications/", {"name": "A", "slug": "a", "meta_icon": "https://i.example.com/b.png"})
    assert new.api("GET", "/core/applications/a/")["meta_icon"] == "https://i.example.com/b.png"
    resp = new.client.post("/api/v3/core/applications/a/set_icon_url/", json={"url": "x"},
                           headers={"Authorization": f"Bearer {TOKEN}"})
    assert resp.status_code == 404
