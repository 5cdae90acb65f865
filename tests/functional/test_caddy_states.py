"""
caddy_routes / caddy_route states and the caddy module, through Salt's loaders, against
the real Caddy (the session ``caddy`` fixture: automatic HTTPS off on its listener) with
loopback backends and a stand-in for the Authentik outpost.
"""

import json
import os
import shutil
import sys

import pytest
import requests
import salt.exceptions
import yaml
from saltfactories.utils.functional import Loaders

import hecate_caddy_client  # noqa: E402  (on sys.path through tests/conftest.py)
import hecate_caddy_routes  # noqa: E402
from tests import caddy_helpers as ch

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SERVER_ROUTES = "/config/apps/http/servers/hecate/routes"


# -- fixtures --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def backends():
    import trustme  # pylint: disable=import-outside-toplevel

    cert = trustme.CA().issue_cert("127.0.0.1")
    out = {
        "a": ch.Backend("a").start(),
        "b": ch.Backend("b").start(),
        "tls": ch.Backend("tls", cert=cert).start(),
        "outpost": ch.FakeOutpost("outpost").start(),
    }
    yield out
    for backend in out.values():
        backend.stop()


def base_caddy_pillar(backends):
    return {
        "server": "hecate",
        # a stand-in outpost: only the Caddy half here (the Authentik side has its own tests,
        # tests/functional/test_authentik_route_auth.py)
        "forward_auth": {"outpost": backends["outpost"].dial, "manage_authentik": False},
        "routes": [
            {
                "domain": "web.test",
                "service": "web",
                "backend": backends["a"].dial,
                "headers": {"up": {"set": {"X-Hecate-Route": "web"}}, "down": {"delete": ["Server"]}},
            },
            {
                "domains": ["lb.test", "www.lb.test"],
                "service": "lb",
                "backend": [backends["a"].dial, backends["b"].dial],
                "load_balancing": {"policy": "round_robin"},
                "health_checks": {
                    "active": {"uri": "/healthz", "interval": "200ms", "timeout": "1s"},
                    "passive": {"fail_duration": "30s", "max_fails": 3},
                },
            },
            {
                "domain": "secure.test",
                "service": "wazuh",
                "backend": f"https://{backends['tls'].dial}",
                "tls_skip_verify": True,
            },
            {"domain": "app.test", "service": "app", "backend": backends["b"].dial, "forward_auth": True},
        ],
    }


@pytest.fixture(scope="module")
def state_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("caddy-state") / "state")


@pytest.fixture(scope="module")
def minion_opts(salt_factories, caddy, backends, state_dir, tmp_path_factory):
    roots = tmp_path_factory.mktemp("caddy-func")
    (roots / "states").mkdir()
    (roots / "pillar").mkdir()
    (roots / "states" / "caddytest.sls").write_text("hecate caddy routes:\n  caddy_routes.managed: []\n")
    (roots / "pillar" / "top.sls").write_text("base:\n  '*':\n    - caddytest\n")
    (roots / "pillar" / "caddytest.sls").write_text(
        yaml.safe_dump({"hecate": {"reverse_proxy": {"caddy": base_caddy_pillar(backends)}}})
    )
    overrides = {
        "file_client": "local",
        "module_dirs": [REPO],
        "file_roots": {"base": [str(roots / "states")]},
        "pillar_roots": {"base": [str(roots / "pillar")]},
        "hecate": {"connections": {"caddy": {"admin_url": caddy.admin_url, "state_dir": state_dir}}},
    }
    factory = salt_factories.salt_minion_daemon("caddy-functional", overrides=overrides)
    return factory.config.copy()


@pytest.fixture(scope="module")
def loaders(minion_opts):
    return Loaders(minion_opts, loaded_base_name=f"{__name__}.loaded")


@pytest.fixture
def fresh(caddy, state_dir):
    """Caddy back to one empty server; no snapshots."""
    ch.reset(caddy)
    shutil.rmtree(state_dir, ignore_errors=True)
    return caddy


def managed(loaders, caddy_pillar=None, test=False):
    """Run the managed state from an SLS (so a pillar override reaches the state)."""
    kwargs = {"test": test}
    if caddy_pillar is not None:
        kwargs["pillar"] = {"hecate": {"reverse_proxy": {"caddy": caddy_pillar}}}
    ret = loaders.modules.state.sls("caddytest", **kwargs)
    (result,) = list(ret)
    return result


def live_routes(caddy):
    return requests.get(caddy.admin_url + SERVER_ROUTES, timeout=10).json()


def outside_post(caddy, route):
    resp = requests.post(
        caddy.admin_url + SERVER_ROUTES,
        data=json.dumps(route),
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    resp.raise_for_status()


OUTSIDE = {
    "@id": "ops.maintenance",
    "match": [{"host": ["ops.test"]}],
    "handle": [{"handler": "static_response", "body": "ops"}],
}


# -- preview, apply, converge ------------------------------------------------------------------------
def test_preview_apply_converge(loaders, fresh, backends):
    caddy = fresh
    raw0, w0 = ch.raw_config(caddy), ch.writes(caddy)

    preview = managed(loaders, test=True)
    assert preview.result is None
    assert set(preview.changes["added"]) == {"web", "lb", "wazuh", "app"}
    assert preview.changes["added"]["lb"] == {
        "domains": ["lb.test", "www.lb.test"],
        "upstreams": [backends["a"].dial, backends["b"].dial],
    }
    assert "would update" in preview.comment
    assert ch.raw_config(caddy) == raw0  # byte-identical
    assert ch.writes(caddy) == w0

    applied = managed(loaders)
    assert applied.result is True, applied.comment
    assert applied.changes == preview.changes  # the preview was exact
    writes = caddy.admin_writes()[w0:]
    assert writes == [("PATCH", SERVER_ROUTES)]  # ONE write
    assert "snapshot" in applied.comment

    again = managed(loaders)
    assert again.result is True and again.changes == {}
    assert "are as in pillar" in again.comment
    assert ch.writes(caddy) == w0 + 1  # converged re-run: no write
    assert managed(loaders, test=True).changes == {}


def test_routes_proxy_with_policies_and_headers(loaders, fresh, backends):
    caddy = fresh
    assert managed(loaders).result is True

    resp = ch.through(caddy, "web.test", "/hello")
    assert resp.status_code == 200
    body = resp.json()
    assert body["backend"] == "a" and body["path"] == "/hello"
    assert body["headers"]["X-Hecate-Route"] == "web"  # header up
    assert "backend-a" not in resp.headers.get("Server", "")  # header down: deleted
    # common: security headers and compression
    assert resp.headers["X-Frame-Options"] == "SAMEORIGIN"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["Strict-Transport-Security"].startswith("max-age=31536000")
    assert resp.headers["Referrer-Policy"] == "strict-origin-when-cross-origin"
    big = ch.through(caddy, "web.test", "/big", headers={"Accept-Encoding": "gzip"})
    assert big.headers.get("Content-Encoding") == "gzip" and big.text.startswith("hecate ")

    # security: scanner paths and Cloudflare Worker requests get 404 and never reach the backend
    seen = len(backends["a"].seen)
    for path in ("/wp-admin/setup.php", "/.env", "/.git/config", "/db.sql", "/vendor/x.php", "/?rest_route=/wp/v2"):
        assert ch.through(caddy, "web.test", path).status_code == 404, path
    worker = {"Cf-Worker": "x.workers.dev", "Cf-Connecting-Ip": "1.2.3.4", "Cf-Ray": "abc"}
    assert ch.through(caddy, "web.test", "/", headers=worker).status_code == 404
    assert len(backends["a"].seen) == seen
    # Cloudflare's proxy alone (no Worker) is not blocked
    assert ch.through(caddy, "web.test", "/", headers={"Cf-Ray": "abc"}).status_code == 200

    # suspicious user agents: connection closed without a response (Caddyfile's 444)
    for agent in ("sqlmap/1.7", "Mozilla/5.0 (compatible; Googlebot/2.1)", "Go-http-client/1.1"):
        with pytest.raises(requests.exceptions.ConnectionError):
            ch.through(caddy, "web.test", "/", headers={"User-Agent": agent})
    assert ch.through(caddy, "web.test", "/", headers={"User-Agent": "Mozilla/5.0 Firefox/140"}).status_code == 200


def test_load_balancing_and_health_checks(loaders, fresh, backends):
    caddy = fresh
    assert managed(loaders).result is True
    hit = {ch.through(caddy, "lb.test").json()["backend"] for _ in range(6)}
    assert hit == {"a", "b"}  # round robin over both
    assert ch.through(caddy, "www.lb.test").status_code == 200
    dials = {u["address"] for u in loaders.modules.caddy.upstreams()}
    assert {backends["a"].dial, backends["b"].dial} <= dials
    backends["b"].healthy = False
    try:
        assert ch.wait_for(
            lambda: {ch.through(caddy, "lb.test").json()["backend"] for _ in range(6)} == {"a"}, timeout=10
        ), "the active health check did not take b out"
    finally:
        backends["b"].healthy = True


def test_https_backend_with_tls_skip_verify(loaders, fresh, backends):
    caddy = fresh
    assert managed(loaders).result is True
    resp = ch.through(caddy, "secure.test", "/x")
    assert resp.status_code == 200 and resp.json()["backend"] == "tls"
    # the same backend with verification on fails (self-signed): the option really matters
    pillar = base_caddy_pillar(backends)
    pillar["routes"][2]["tls_skip_verify"] = False
    ret = managed(loaders, pillar)
    assert ret.result is True
    assert ret.changes["changed"]["wazuh"] == {"transport:tls:insecure_skip_verify": {"old": True, "new": None}}
    assert ch.through(caddy, "secure.test", "/x").status_code == 502


def test_forward_auth_to_the_outpost(loaders, fresh, backends):
    caddy = fresh
    assert managed(loaders).result is True
    anonymous = ch.through(caddy, "app.test", "/private?x=1")
    assert anonymous.status_code == 302
    assert anonymous.headers["Location"] == "/outpost.goauthentik.io/start?rd=/private?x=1"
    # the outpost's own paths are proxied to it without the check
    start = ch.through(caddy, "app.test", "/outpost.goauthentik.io/start")
    assert start.status_code == 200 and start.json()["outpost"] is True
    # an authenticated request reaches the app with the outpost's identity headers, and a
    # header the client sent itself is replaced
    ok = ch.through(
        caddy, "app.test", "/private", headers={"Cookie": "session=alice", "X-Authentik-Username": "mallory"}
    )
    assert ok.status_code == 200
    body = ok.json()
    assert body["backend"] == "b"
    assert body["headers"]["X-Authentik-Username"] == "alice"
    assert body["headers"]["X-Authentik-Groups"] == "hecate-admins"
    auth_call = [s for s in backends["outpost"].seen if s["path"].startswith("/outpost.goauthentik.io/auth/caddy")][-1]
    assert auth_call["headers"]["X-Forwarded-Uri"] == "/private"
    assert auth_call["headers"]["X-Forwarded-Method"] == "GET"


FORGED = {
    "X-Authentik-Username": "admin",
    "x-authentik-groups": "hecate-admins",  # any spelling: Caddy compares the prefix case-insensitively
    "X-Authentik-Email": "admin@example.com",
    "X-Authentik-Future-Header": "x",  # one a later Authentik may add
    "X-Hecate-Other": "kept",
}
# CGI/FastCGI/PHP backends read these as HTTP_X_AUTHENTIK_UID too (Caddy releases with the fix of
# GHSA-f59h-q822-g45g drop such names on their own; hecate's routes delete them on older ones)
ALIASES = {"X_Authentik_Uid": "0", "X.Authentik.Name": "admin"}


def _identity(headers):
    return {k.lower(): v for k, v in headers.items()
            if k.lower().replace("_", "-").replace(".", "-").startswith("x-authentik")}


def test_client_sent_identity_headers_never_reach_a_backend(loaders, fresh, backends):
    """Public, protected and ad-hoc routes: only the outpost's answer carries X-Authentik-*."""
    caddy = fresh
    assert managed(loaders).result is True
    assert loaders.states.caddy_route.present(name="status", domain="status.test",
                                              backend=backends["a"].dial).result is True
    for host in ("web.test", "status.test"):  # public: a pillar route, an ad-hoc route
        body = ch.through(caddy, host, "/", headers=dict(FORGED, **ALIASES)).json()
        assert _identity(body["headers"]) == {}, host
        assert body["headers"]["X-Hecate-Other"] == "kept"  # other headers pass as before
    # protected: the outpost is asked without them, the backend gets the outpost's alone
    ok = ch.through(caddy, "app.test", "/private", headers=dict(FORGED, Cookie="session=alice", **ALIASES))
    assert ok.status_code == 200
    assert _identity(ok.json()["headers"]) == {"x-authentik-username": "alice", "x-authentik-groups": "hecate-admins"}
    auth_call = [s for s in backends["outpost"].seen if s["path"].startswith("/outpost.goauthentik.io/auth/caddy")][-1]
    assert _identity(auth_call["headers"]) == {}

    # this Caddy drops "_" and "." names on its own; let them in, as older releases do: still never
    # at the backend (X_Control shows that the server lets such names through now)
    server = caddy.admin_url + "/config/apps/http/servers/hecate/"
    for key, value in (("expected_underscore_headers", ["X_Authentik_*", "X_Control"]),
                       ("expected_dot_headers", ["X.Authentik.*"])):
        requests.put(server + key, json=value, timeout=10).raise_for_status()
    body = ch.through(caddy, "web.test", "/", headers=dict(ALIASES, X_Control="1")).json()
    assert {k.lower(): v for k, v in body["headers"].items()}.get("x_control") == "1"  # Go sends X_control
    assert _identity(body["headers"]) == {}


def test_routes_written_without_the_identity_header_deletion_change_once(loaders, fresh, backends):
    """A deployment made before hecate deleted client-sent X-Authentik-* gets one route diff, then converges."""
    caddy = fresh
    assert managed(loaders).result is True
    old = live_routes(caddy)
    for route in old:
        assert route["handle"][0]["routes"][0] == hecate_caddy_routes.STRIP_IDENTITY
        route["handle"][0]["routes"].pop(0)
    requests.patch(caddy.admin_url + SERVER_ROUTES, data=json.dumps(old),
                   headers={"Content-Type": "application/json"}, timeout=10).raise_for_status()
    exposed = _identity(ch.through(caddy, "web.test", "/", headers=FORGED).json()["headers"])
    assert exposed == _identity(FORGED)  # what the old routes let through

    preview = managed(loaders, test=True)
    wanted = {"request_headers_deleted": {"old": None, "new": hecate_caddy_routes.CLIENT_IDENTITY_HEADERS}}
    assert preview.result is None
    assert preview.changes == {"changed": {name: wanted for name in ("web", "lb", "wazuh", "app")}}
    w0 = ch.writes(caddy)
    applied = managed(loaders)
    assert applied.result is True and applied.changes == preview.changes
    assert ch.writes(caddy) == w0 + 1
    assert _identity(ch.through(caddy, "web.test", "/", headers=FORGED).json()["headers"]) == {}
    again = managed(loaders)
    assert again.result is True and again.changes == {} and ch.writes(caddy) == w0 + 1


# -- concurrency ---------------------------------------------------------------------------------------
def _edit_after_reads(monkeypatch, caddy, times):
    """Make an outside change right after each of the first ``times`` reads of the state."""
    client = sys.modules["hecate_caddy_client"]
    original = client.CaddyAdmin.get
    made = []

    def get(self, *parts, **kwargs):
        value = original(self, *parts, **kwargs)
        if not parts and len(made) < times:
            route = dict(OUTSIDE, **{"@id": f"ops.maintenance{len(made)}"})
            route["match"] = [{"host": [f"ops{len(made)}.test"]}]
            outside_post(caddy, route)
            made.append(route["@id"])
        return value

    monkeypatch.setattr(client.CaddyAdmin, "get", get)
    return made


def test_concurrent_edit_hits_412_and_survives(loaders, fresh, monkeypatch):
    caddy = fresh
    w0 = ch.writes(caddy)
    made = _edit_after_reads(monkeypatch, caddy, times=1)
    ret = managed(loaders)
    assert ret.result is True, ret.comment
    assert "after 1 retries" in ret.comment
    assert set(ret.changes["added"]) == {"web", "lb", "wazuh", "app"}
    ids = [r.get("@id") for r in live_routes(caddy)]
    assert ids[0] == made[0]  # the outside edit survived, in place
    assert set(ids[1:]) == {"hecate.route.web", "hecate.route.lb", "hecate.route.wazuh", "hecate.route.app"}
    assert caddy.admin_writes()[w0:] == [
        ("POST", SERVER_ROUTES),  # the outside edit
        ("PATCH", SERVER_ROUTES),  # refused with 412
        ("PATCH", SERVER_ROUTES),  # re-read, re-diffed, applied
    ]
    assert ch.through(caddy, "ops0.test").text == "ops"


def test_concurrent_edits_exhaust_retries_and_fail_clearly(loaders, fresh, monkeypatch):
    caddy = fresh
    made = _edit_after_reads(monkeypatch, caddy, times=100)
    ret = managed(loaders)
    assert ret.result is False
    assert "changed between read and write 4 times" in ret.comment
    assert "nothing was written" in ret.comment
    assert ret.changes == {}
    assert [r.get("@id") for r in live_routes(caddy)] == made  # only the outside edits
    assert loaders.modules.caddy.rollback()["restored"] == []  # nothing of ours to undo


# -- rollback and persistence ------------------------------------------------------------------------
def test_rollback_restores_exactly(loaders, fresh, backends):
    caddy = fresh
    outside_post(caddy, OUTSIDE)
    old = base_caddy_pillar(backends)
    old["routes"] = old["routes"][:1] + [{"domain": "gone.test", "service": "gone", "backend": backends["b"].dial}]
    assert managed(loaders, old).result is True
    before = ch.raw_config(caddy)

    ret = managed(loaders)  # the deployment that will "fail later"
    assert ret.result is True and set(ret.changes["removed"]) == {"gone"}
    assert ch.raw_config(caddy) != before
    w0 = ch.writes(caddy)
    out = loaders.modules.caddy.rollback()
    assert len(out["restored"]) == 1, out
    assert ch.raw_config(caddy) == before  # exactly the previous config
    assert caddy.admin_writes()[w0:] == [("PATCH", SERVER_ROUTES)]
    assert ch.through(caddy, "gone.test").json()["backend"] == "b"
    again = loaders.modules.caddy.rollback()
    assert again["restored"] == [] and "nothing to roll back" in again["comment"]


def test_rollback_after_a_converged_run_does_nothing(loaders, fresh):
    caddy = fresh
    assert managed(loaders).changes
    assert managed(loaders).changes == {}  # this run wrote nothing ...
    raw = ch.raw_config(caddy)
    out = loaders.modules.caddy.rollback()  # ... so a failure after it has nothing to undo
    assert out["restored"] == [] and "nothing to roll back" in out["comment"]
    assert ch.raw_config(caddy) == raw


def test_rollback_after_a_failed_run_does_not_revert_the_previous_deployment(loaders, fresh, backends):
    caddy = fresh
    assert managed(loaders).changes  # deployment 1 succeeds
    pillar = base_caddy_pillar(backends)
    pillar["routes"][0].pop("backend")
    assert managed(loaders, pillar).result is False  # deployment 2 fails before writing
    raw = ch.raw_config(caddy)
    out = loaders.modules.caddy.rollback()  # the orchestration's onfail step
    assert out["restored"] == [] and "nothing to roll back" in out["comment"]
    assert ch.raw_config(caddy) == raw


def _run(loaders, run_id, caddy_pillar=None):
    """The managed state as an orchestration run passes it (pillar hecate_run)."""
    pillar = {"hecate_run": {"id": run_id, "env": "lab"}}
    if caddy_pillar is not None:
        pillar["hecate"] = {"reverse_proxy": {"caddy": caddy_pillar}}
    (result,) = list(loaders.modules.state.sls("caddytest", pillar=pillar))
    return result


def test_rollback_of_a_failed_run_keeps_an_edge_that_applied_it(loaders, fresh, backends, state_dir):
    """
    Several edges: the orchestration's rollback after a failing Caddy step
    (``only_failed=True``) keeps the routes an edge applied in that run - its route state
    succeeded - while a rollback for a later failure (verify, without ``only_failed``) and
    an edge whose route state failed after writing are put back.
    """
    caddy = fresh
    old = base_caddy_pillar(backends)
    old["routes"] = old["routes"][:1]
    assert _run(loaders, "run-1", old).result is True
    before = ch.raw_config(caddy)
    assert _run(loaders, "run-2").changes  # this edge applies run-2 ...
    applied = ch.raw_config(caddy)
    out = loaders.modules.caddy.rollback(run_id="run-2", only_failed=True)  # ... another edge failed
    assert out["restored"] == [] and "applied on this edge and stay" in out["comment"]
    assert out["skipped"][0]["reason"] == "this run's routes were applied here: kept"
    assert ch.raw_config(caddy) == applied
    out = loaders.modules.caddy.rollback(run_id="run-2")  # verify failed: every edge goes back
    assert len(out["restored"]) == 1 and ch.raw_config(caddy) == before
    # an edge whose route state wrote and then failed (no settle mark) is put back
    assert _run(loaders, "run-3").changes
    ((server, (snap,)),) = loaders.modules.caddy.snapshots()["pending"].items()
    store = hecate_caddy_client.SnapshotStore(state_dir)
    store.clear_pending(server)
    store.push_pending(server, snap)  # the same write, as if its state had failed afterwards
    out = loaders.modules.caddy.rollback(run_id="run-3", only_failed=True)
    assert len(out["restored"]) == 1 and ch.raw_config(caddy) == before


def test_routes_version_names_the_routes_an_edge_serves(loaders, fresh, backends):
    """
    caddy.routes_version (the deployment record's per-edge entry): a digest of the hecate
    routes Caddy serves - the same routes give the same digest, others another; routes
    hecate does not manage do not count - and the run that wrote here last; with Caddy
    down, an error instead of the digest, and the last write still.
    """
    caddy = fresh
    assert _run(loaders, "run-a").result is True
    first = loaders.modules.caddy.routes_version()
    assert first["routes"] == len(base_caddy_pillar(backends)["routes"]) and len(first["sha256"]) == 64
    assert first["last_write"]["run"] == "run-a" and first["server"] == "hecate"
    outside_post(caddy, OUTSIDE)
    assert loaders.modules.caddy.routes_version()["sha256"] == first["sha256"]
    fewer = base_caddy_pillar(backends)
    fewer["routes"] = fewer["routes"][:1]
    assert _run(loaders, "run-b", fewer).result is True
    second = loaders.modules.caddy.routes_version()
    assert second["sha256"] != first["sha256"] and second["routes"] == 1
    assert second["last_write"]["run"] == "run-b"
    conns = {"caddy": dict(loaders.opts["hecate"]["connections"]["caddy"], admin_url="http://127.0.0.1:9")}
    down = Loaders(dict(loaders.opts, hecate={"connections": conns}), loaded_base_name=f"{__name__}.down")
    try:
        got = down.modules.caddy.routes_version()
    finally:
        down.reset_state()
    assert "sha256" not in got and "unreachable" in got["error"] and got["last_write"]["run"] == "run-b"


def test_rollback_never_overwrites_a_later_outside_change(loaders, fresh):
    caddy = fresh
    assert managed(loaders).result is True
    outside_post(caddy, OUTSIDE)
    raw = ch.raw_config(caddy)
    with pytest.raises(Exception, match="changed since hecate wrote it"):
        loaders.modules.caddy.rollback()
    assert ch.raw_config(caddy) == raw
    out = loaders.modules.caddy.rollback(force=True)
    assert len(out["restored"]) == 1
    assert live_routes(caddy) == []


def test_applied_routes_survive_a_caddy_restart(loaders, fresh):
    caddy = fresh
    empty = ch.raw_config(caddy)
    assert managed(loaders).result is True
    applied = ch.raw_config(caddy)
    caddy.restart()  # `caddy run --resume`: the autosaved config comes back
    assert ch.raw_config(caddy) == applied
    assert ch.through(caddy, "web.test").json()["backend"] == "a"
    # the snapshot lives on the minion, so a rollback still works after the restart ...
    assert len(loaders.modules.caddy.rollback()["restored"]) == 1
    assert ch.raw_config(caddy) == empty
    caddy.restart()  # ... and what it restored is what Caddy resumes with
    assert ch.raw_config(caddy) == empty
    assert managed(loaders, test=True).changes  # pillar and Caddy differ again


# -- bad data ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "mutate,fragments",
    [
        (lambda p: p["routes"][0].pop("backend"), ["routes:0:backend", "route 'web'", "no upstream"]),
        (
            lambda p: p["routes"][1].update(backend=["127.0.0.1:80", "127.0.0.1:70000"]),
            ["routes:1:backend", "route 'lb'", "bad port"],
        ),
        (
            lambda p: p["routes"][3].update(domain="web.test"),
            ["routes:3:domain", "route 'app'", "duplicate domain 'web.test'"],
        ),
    ],
)
@pytest.mark.parametrize("test_mode", [True, False])
def test_bad_route_data_fails_and_writes_nothing(loaders, fresh, backends, mutate, fragments, test_mode):
    caddy = fresh
    assert managed(loaders).result is True
    raw, w0 = ch.raw_config(caddy), ch.writes(caddy)
    pillar = base_caddy_pillar(backends)
    mutate(pillar)
    ret = managed(loaders, pillar, test=test_mode)
    assert ret.result is False
    assert ret.changes == {}
    for fragment in fragments:
        assert fragment in ret.comment, ret.comment
    assert ch.raw_config(caddy) == raw
    assert ch.writes(caddy) == w0


def test_missing_server_is_a_clear_error(loaders, fresh, backends):
    pillar = base_caddy_pillar(backends)
    pillar["server"] = "elsewhere"
    ret = managed(loaders, pillar)
    assert ret.result is False
    assert "no HTTP server 'elsewhere' (it has: hecate)" in ret.comment


def test_missing_server_is_created_when_listen_is_given(loaders, fresh, backends):
    caddy = fresh
    from lab import procs  # pylint: disable=import-outside-toplevel

    port = procs.free_port()
    pillar = base_caddy_pillar(backends)
    pillar["server"] = "second"
    pillar["listen"] = [f"127.0.0.1:{port}"]
    preview = managed(loaders, pillar, test=True)
    assert preview.result is None and preview.changes["server"] == {"old": None, "new": {"listen": pillar["listen"]}}
    ret = managed(loaders, pillar)
    assert ret.result is True, ret.comment
    server = requests.get(caddy.admin_url + "/config/apps/http/servers/second", timeout=10).json()
    assert server["listen"] == pillar["listen"] and len(server["routes"]) == 4
    # nothing copied from the lab's own server ("automatic_https": {"disable": true}): a server
    # hecate creates keeps Caddy's automatic HTTPS (tests/functional/test_caddy_caddyfile.py)
    assert set(server) == {"listen", "routes"}
    assert managed(loaders, pillar, test=True).changes == {}
    # rollback of a creation removes what was created
    assert len(loaders.modules.caddy.rollback(server="second")["restored"]) == 1
    assert requests.get(caddy.admin_url + "/config/apps/http/servers/second", timeout=10).json() is None
    assert live_routes(caddy) == []  # the other server was not touched


# -- unmanaged and ad-hoc routes ---------------------------------------------------------------------
def test_unmanaged_and_adhoc_routes_are_left_alone(loaders, fresh, backends):
    caddy = fresh
    outside_post(caddy, OUTSIDE)
    adhoc = loaders.states.caddy_route.present(
        name="status", domain="status.test", backend=backends["a"].dial, policies=[]
    )
    assert adhoc.result is True and "added" in adhoc.changes
    assert managed(loaders).result is True
    pillar = base_caddy_pillar(backends)
    pillar["routes"] = pillar["routes"][:2]
    ret = managed(loaders, pillar)
    assert set(ret.changes) == {"removed"} and set(ret.changes["removed"]) == {"wazuh", "app"}
    ids = [r.get("@id") for r in live_routes(caddy)]
    assert ids == ["ops.maintenance", "hecate.adhoc.status", "hecate.route.web", "hecate.route.lb"]
    assert ch.through(caddy, "status.test").json()["backend"] == "a"


# -- routes Caddy would never use: an earlier route hecate does not own takes their requests --------
# Caddy runs a server's routes in order (modules/caddyhttp/server.go, Server.Routes: "Routes are
# executed sequentially"). A matching route with "terminal": true ends the request: routes.go,
# wrapRoute, "make terminal routes terminate" (the next handler becomes emptyHandler), and so does
# one whose handlers answer without calling the next one (routes.go, Route.HandlersRaw: "Not all
# handlers call the next handler in the chain"). The Caddyfile adapter makes every site block a
# terminal route matching its hosts (caddyconfig/httpcaddyfile/httptype.go: "the semantics of a
# site block in the Caddyfile dictate that only the first matching one is evaluated",
# Terminal: true), so the routes of a Caddyfile loaded into the server take its hosts first.
LEGACY_CADDYFILE = 'http://web.test {\n\trespond "from the old Caddyfile" 200\n}\n'
SHADOW_FRAGMENTS = [
    "hecate route 'web' (hecate.route.web, hecate:reverse_proxy:caddy:routes:0)",
    "would never serve web.test: route 0 of Caddy server 'hecate' (no @id; host web.test), not managed "
    "by hecate, comes first and takes every request for it (terminal)",
    "nothing was written",
]


def test_a_route_an_adapted_caddyfile_shadows_fails_naming_both(loaders, fresh, backends, tmp_path):
    """The migration case: the old Caddyfile's site for web.test is in the server first."""
    caddy = fresh
    legacy = ch.adapt(LEGACY_CADDYFILE, str(tmp_path))
    assert legacy == [
        {
            "match": [{"host": ["web.test"]}],
            "handle": [{"handler": "subroute", "routes": [{"handle": [
                {"handler": "static_response", "body": "from the old Caddyfile", "status_code": 200}]}]}],
            "terminal": True,
        }
    ]
    # Appended after it (where hecate put its routes, reporting them "added"), Caddy never
    # gives hecate's route a request:
    (web,) = [r for r in hecate_caddy_routes.build(base_caddy_pillar(backends)) if r.name == "web"]
    ch.put_routes(caddy, legacy + [web.json])
    assert ch.through(caddy, "web.test").text == "from the old Caddyfile"

    ch.put_routes(caddy, legacy)
    raw, w0 = ch.raw_config(caddy), ch.writes(caddy)
    preview = managed(loaders, test=True)
    applied = managed(loaders)
    for ret in (preview, applied):
        assert ret.result is False and ret.changes == {}, ret
        for fragment in SHADOW_FRAGMENTS:
            assert fragment in ret.comment, ret.comment
        for other in ("'lb'", "'wazuh'", "'app'"):  # their hosts are free
            assert other not in ret.comment
    assert preview.comment == applied.comment  # the preview says what the run does
    assert ch.raw_config(caddy) == raw and ch.writes(caddy) == w0
    assert ch.through(caddy, "web.test").text == "from the old Caddyfile"

    # the ad-hoc route state refuses the same
    adhoc = loaders.states.caddy_route.present(name="status", domain="web.test", backend=backends["a"].dial)
    assert (
        adhoc.result is False
        and "Caddy route 'status' (hecate.adhoc.status, caddy_route.present:status)" in adhoc.comment
    )
    assert "route 0 of Caddy server 'hecate'" in adhoc.comment and ch.writes(caddy) == w0

    # once the old site block is gone, the same pillar applies and web.test reaches its backend
    ch.put_routes(caddy, [])
    assert managed(loaders).result is True
    assert ch.through(caddy, "web.test").json()["backend"] == "a"


def test_a_converged_route_shadowed_later_is_reported(loaders, fresh, backends, tmp_path):
    """Someone loads a Caddyfile site before hecate's routes: the next run fails, not "as in pillar"."""
    caddy = fresh
    assert managed(loaders).result is True
    legacy = ch.adapt(LEGACY_CADDYFILE, str(tmp_path))
    ch.put_routes(caddy, legacy + live_routes(caddy))
    assert ch.through(caddy, "web.test").text == "from the old Caddyfile"
    w0 = ch.writes(caddy)
    ret = managed(loaders)
    assert ret.result is False, ret
    for fragment in SHADOW_FRAGMENTS:
        assert fragment in ret.comment, ret.comment
    with pytest.raises(salt.exceptions.CommandExecutionError) as err:  # drift says the same
        loaders.modules.caddy.drift()
    assert str(err.value) == ret.comment
    assert ch.writes(caddy) == w0


NEIGHBOURS_CADDYFILE = (
    'http://other.test {\n\trespond "other site"\n}\n\n'
    'http://web.test/legacy/* {\n\trespond "legacy path"\n}\n'
)
GLOBAL_HEADERS = {"handle": [{"handler": "headers", "response": {"set": {"X-Global": ["1"]}, "deferred": True}}]}


def test_routes_that_only_share_a_host_with_a_narrower_route_are_not_a_conflict(loaders, fresh, backends, tmp_path):
    """
    No false alarm: a Caddyfile site for another host, one for a path of web.test, and a
    route without matcher that only sets headers (it calls the next handler) leave hecate's
    routes reachable; they go after them, and every one of them serves its own requests.
    """
    caddy = fresh
    legacy = [GLOBAL_HEADERS] + ch.adapt(NEIGHBOURS_CADDYFILE, str(tmp_path))
    ch.put_routes(caddy, legacy)
    ret = managed(loaders)
    assert ret.result is True, ret.comment
    assert set(ret.changes["added"]) == {"web", "lb", "wazuh", "app"}
    routes = live_routes(caddy)
    assert routes[: len(legacy)] == legacy  # the middleware route is not a catch-all: hecate's go after
    assert [r.get("@id") for r in routes[len(legacy):]] == [f"hecate.route.{n}" for n in ("web", "lb", "wazuh", "app")]
    got = ch.through(caddy, "web.test")
    assert got.json()["backend"] == "a" and got.headers["X-Global"] == "1"
    assert ch.through(caddy, "web.test", "/legacy/x").text == "legacy path"
    assert ch.through(caddy, "other.test").text == "other site"
    assert managed(loaders).changes == {}


# What hecate's model says takes every request for a domain, checked against what the real Caddy
# does: each case loads the routes, then a probe route for the domain, and sends a request. A case
# the model calls shadowed must be shadowed in Caddy (a false alarm blocks a valid deploy); the two
# cases it leaves alone although Caddy does shadow them are its documented limits (routes in a
# group, host placeholders): it never judges them.
PROBE = "probe answered"


def _terminal(hosts, handler=None, **extra):
    route = {"match": [{"host": hosts}], "handle": [handler or {"handler": "static_response", "body": "u"}],
             "terminal": True}
    route.update(extra)
    return route


HEADERS = {"handler": "headers", "response": {"set": {"X-U": ["1"]}}}
STATIC = {"handler": "static_response", "body": "u"}
SHADOW_CASES = [
    # id, routes before the probe, the domain (and the host requested), Caddy shadows, model says so
    ("caddyfile-site", [_terminal(["web.test"], {"handler": "subroute", "routes": [{"handle": [STATIC]}]})],
     "web.test", "web.test", True, True),
    ("terminal-without-responder", [_terminal(["WEB.Test"], HEADERS)], "web.test", "web.test", True, True),
    ("wildcard-label", [_terminal(["*.test"])], "web.test", "web.test", True, True),
    ("wildcard-is-one-label", [_terminal(["*.test"])], "www.web.test", "www.web.test", False, False),
    ("wildcard-covers-wildcard", [_terminal(["*.web.test"])], "*.web.test", "x.web.test", True, True),
    ("exact-does-not-cover-wildcard", [_terminal(["x.web.test"])], "*.web.test", "y.web.test", False, False),
    ("partial-label-wildcard", [_terminal(["w*.test"])], "web.test", "web.test", False, False),
    ("no-matcher-responder", [{"handle": [STATIC]}], "web.test", "web.test", True, True),
    ("empty-matcher-set", [{"match": [{}], "handle": [HEADERS], "terminal": True}], "web.test", "web.test", True, True),
    ("any-matcher-set", [{"match": [{"host": ["other.test"]}, {"host": ["web.test"]}], "handle": [STATIC],
                          "terminal": True}], "web.test", "web.test", True, True),
    ("path-narrows", [{"match": [{"host": ["web.test"], "path": ["/api/*"]}], "handle": [STATIC], "terminal": True}],
     "web.test", "web.test", False, False),
    ("middleware-only", [{"match": [{"host": ["web.test"]}], "handle": [HEADERS]}],
     "web.test", "web.test", False, False),
    ("reverse-proxy", [{"match": [{"host": ["web.test"]}], "handle": [{"handler": "reverse_proxy",
                                                                      "upstreams": [{"dial": "BACKEND"}]}]}],
     "web.test", "web.test", True, True),
    ("forward-auth-falls-through",
     [{"match": [{"host": ["web.test"]}], "handle": [{"handler": "reverse_proxy", "upstreams": [{"dial": "BACKEND"}],
                                                      "handle_response": [{"match": {"status_code": [2]},
                                                                           "routes": []}]}]}],
     "web.test", "web.test", False, False),
    ("error-handler", [{"match": [{"host": ["web.test"]}], "handle": [{"handler": "error", "status_code": 403}]}],
     "web.test", "web.test", True, True),
    ("file-server", [{"match": [{"host": ["web.test"]}],
                      "handle": [{"handler": "file_server", "root": "/nonexistent-hecate"}]}],
     "web.test", "web.test", True, True),
    ("file-server-pass-thru", [{"match": [{"host": ["web.test"]}],
                                "handle": [{"handler": "file_server", "root": "/nonexistent-hecate",
                                            "pass_thru": True}]}],
     "web.test", "web.test", False, False),
    ("subroute-responds", [{"handle": [{"handler": "subroute", "routes": [{"match": [{"host": ["web.test"]}],
                                                                          "handle": [STATIC]}]}]}],
     "web.test", "web.test", True, True),
    ("group-already-satisfied", [{"group": "g", "match": [{"host": ["web.test"]}], "handle": [HEADERS]},
                                 _terminal(["web.test"], group="g")], "web.test", "web.test", False, False),
    ("group-first-member", [_terminal(["web.test"], group="g")], "web.test", "web.test", True, False),
    ("host-placeholder", [_terminal(["{http.request.host}"])], "web.test", "web.test", True, False),
]


@pytest.mark.parametrize("case", SHADOW_CASES, ids=[c[0] for c in SHADOW_CASES])
def test_the_shadowing_model_agrees_with_caddy(fresh, backends, case):
    caddy = fresh
    _, before, domain, host, caddy_shadows, model_shadows = case
    before = json.loads(json.dumps(before).replace("BACKEND", backends["a"].dial))
    probe = {"match": [{"host": [domain]}], "handle": [{"handler": "static_response", "body": PROBE}], "terminal": True}
    ch.put_routes(caddy, before + [probe])
    answered = ch.through(caddy, host)
    assert (answered.text != PROBE) is caddy_shadows, (answered.status_code, answered.text)
    found = hecate_caddy_routes.shadowed_by(before, domain)
    assert (found is not None) is model_shadows, found
    if found is not None:
        assert found[0] == len(before) - 1 and found[1]  # which route, and why


@pytest.mark.parametrize("test_mode", [True, False])
def test_route_present_and_absent(loaders, fresh, backends, test_mode):
    caddy = fresh
    raw, w0 = ch.raw_config(caddy), ch.writes(caddy)
    args = {"name": "status", "domain": "status.test", "backend": backends["a"].dial}
    ret = loaders.states.caddy_route.present(test=test_mode, **args)
    assert ret.changes["added"]["status"] == {"domains": ["status.test"], "upstreams": [backends["a"].dial]}
    if test_mode:
        assert ret.result is None
        assert ch.raw_config(caddy) == raw and ch.writes(caddy) == w0
        return
    assert ret.result is True
    assert ch.writes(caddy) == w0 + 1
    assert loaders.states.caddy_route.present(**args).changes == {}
    changed = loaders.states.caddy_route.present(**dict(args, backend=backends["b"].dial))
    assert changed.changes == {
        "changed": {"status": {"upstreams": {"added": [backends["b"].dial], "removed": [backends["a"].dial]}}}
    }
    assert ch.through(caddy, "status.test").json()["backend"] == "b"
    w1 = ch.writes(caddy)
    preview = loaders.states.caddy_route.absent(name="status", test=True)
    assert preview.result is None and "removed" in preview.changes and ch.writes(caddy) == w1
    gone = loaders.states.caddy_route.absent(name="status")
    assert gone.result is True and "removed" in gone.changes
    assert loaders.states.caddy_route.absent(name="status").changes == {}
    assert live_routes(caddy) == []


def test_route_present_bad_data(loaders, fresh):
    caddy = fresh
    w0 = ch.writes(caddy)
    ret = loaders.states.caddy_route.present(name="status", domain="status.test", backend="127.0.0.1:99999")
    assert ret.result is False and "route 'status'" in ret.comment and "bad port" in ret.comment
    ret = loaders.states.caddy_route.present(name="status", domain="status.test", backend="127.0.0.1:80", colour="red")
    assert ret.result is False and "unknown argument(s): colour" in ret.comment
    assert ch.writes(caddy) == w0


# -- drift and the module ------------------------------------------------------------------------------
def test_drift_reports_without_writing(loaders, fresh):
    caddy = fresh
    drift = loaders.modules.caddy.drift()
    assert drift["in_sync"] is False and set(drift["changes"]["added"]) == {"web", "lb", "wazuh", "app"}
    assert managed(loaders).result is True
    assert loaders.modules.caddy.drift() == {"server": "hecate", "in_sync": True, "changes": {}}
    # someone edits a managed route by hand
    requests.patch(
        caddy.admin_url + "/id/hecate.route.web/handle/0/routes/4/handle/0/upstreams",
        data=json.dumps([{"dial": "127.0.0.1:1"}]),
        headers={"Content-Type": "application/json"},
        timeout=10,
    ).raise_for_status()
    w0 = ch.writes(caddy)
    drift = loaders.modules.caddy.drift()
    assert drift["in_sync"] is False
    (field,) = drift["changes"]["changed"]["web"]
    assert field == "upstreams"
    assert drift["changes"]["changed"]["web"]["upstreams"]["removed"] == ["127.0.0.1:1"]
    assert ch.writes(caddy) == w0


def test_module_reads_and_route_functions(loaders, fresh):
    caddy = fresh
    mod = loaders.modules.caddy
    assert mod.routes() == []
    got = mod.config("apps/http/servers/hecate", etag=True)
    assert got["value"]["listen"] == [f"127.0.0.1:{caddy.http_port}"]
    mod.route_add(OUTSIDE, etag=got["etag"])
    assert mod.route_get("ops.maintenance") == OUTSIDE
    assert mod.route_replace(
        "ops.maintenance", {"match": [{"host": ["ops.test"]}], "handle": [{"handler": "static_response", "body": "v2"}]}
    )
    assert ch.through(caddy, "ops.test").text == "v2"
    assert mod.route_get("ops.maintenance")["@id"] == "ops.maintenance"
    assert mod.route_delete("ops.maintenance")
    assert mod.routes() == []
    desired = mod.desired_routes()
    assert [r["@id"] for r in desired] == [
        "hecate.route.web",
        "hecate.route.lb",
        "hecate.route.wazuh",
        "hecate.route.app",
    ]
    adapted = mod.adapt("http://x.test:8080 {\n\trespond hi\n}\n")
    assert "apps" in adapted["result"]
    snaps = mod.snapshots()
    assert snaps == {"snapshots": [], "pending": {}}
