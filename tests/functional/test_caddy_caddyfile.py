"""
hecate's Caddy states against a Caddy started the way production's is: from the user's
Caddyfile (tests/fixtures/user-Caddyfile, their file of today). ``caddy adapt`` makes it one
server ``srv0`` on ``:443`` holding the 10 sites as routes without ``@id``, automatic HTTPS on
(the implicit ``:80`` redirect server exists in memory only), and the logging app. The lab
changes only addresses, log files and the certificate issuer (lab/caddy.py,
``caddyfile_config``): HTTPS is real, with certificates from Caddy's ``internal`` CA.

Requests to the user's sites use only paths Caddy answers itself (their Cloudflare-Worker
block): their backends are real addresses and are never contacted.
"""

import json
import os
import shutil

import pytest
import requests
import yaml
from saltfactories.utils.functional import Loaders

from lab import caddy as lab_caddy
from lab import procs
from tests import caddy_helpers as ch

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CADDYFILE = os.path.join(REPO, "tests", "fixtures", "user-Caddyfile")
# srv0's routes: the site blocks, most specific (longest) host first, as the adapter sorts them
USER_SITES = [
    "persephone.cybermonkey.dev", "observe.cybermonkey.dev", "jenkins.cybermonkey.dev", "delphi.cybermonkey.dev",
    "cloud.cybermonkey.dev", "s3api.cybermonkey.dev", "hera.cybermonkey.dev", "s3.cybermonkey.dev",
    "u.cybermonkey.dev", "cybermonkey.dev",
]
WORKER = {"Cf-Worker": "x.workers.dev", "Cf-Connecting-Ip": "192.0.2.1", "Cf-Ray": "abc"}  # answered by Caddy: 404
SRV0_ROUTES = "/config/apps/http/servers/srv0/routes"


@pytest.fixture(scope="module")
def prod_caddy(tmp_path_factory):
    with open(CADDYFILE, encoding="utf-8") as fh:
        caddyfile = fh.read()
    proc = lab_caddy.Caddy(str(tmp_path_factory.mktemp("caddy-from-caddyfile")), caddyfile=caddyfile).start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def backend():
    out = ch.Backend("a").start()
    yield out
    out.stop()


@pytest.fixture(scope="module")
def state_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("caddy-state-caddyfile") / "state")


@pytest.fixture(scope="module")
def roots(tmp_path_factory):
    return tmp_path_factory.mktemp("caddy-caddyfile")


@pytest.fixture(scope="module")
def loaders(salt_factories, prod_caddy, state_dir, roots):
    (roots / "states").mkdir()
    (roots / "pillar").mkdir()
    (roots / "states" / "caddytest.sls").write_text("hecate caddy routes:\n  caddy_routes.managed: []\n")
    (roots / "pillar" / "top.sls").write_text("base:\n  '*':\n    - caddytest\n")
    (roots / "pillar" / "caddytest.sls").write_text(yaml.safe_dump({"hecate": {"reverse_proxy": {"caddy": {}}}}))
    overrides = {
        "file_client": "local",
        "module_dirs": [REPO],
        "file_roots": {"base": [str(roots / "states")]},
        "pillar_roots": {"base": [str(roots / "pillar")]},
        "hecate": {"connections": {"caddy": {"admin_url": prod_caddy.admin_url, "state_dir": state_dir}}},
    }
    factory = salt_factories.salt_minion_daemon("caddy-caddyfile", overrides=overrides)
    return Loaders(factory.config.copy(), loaded_base_name=f"{__name__}.loaded")


@pytest.fixture
def fresh(prod_caddy, state_dir):
    """Caddy back to the adapted Caddyfile (started with --resume); no snapshots."""
    if prod_caddy.proc is None:
        prod_caddy.start()
    ch.reset(prod_caddy)
    shutil.rmtree(state_dir, ignore_errors=True)
    return prod_caddy


def caddy_pillar(backend, **extra):
    pillar = {"routes": [{"domain": "web.test", "service": "web", "backend": backend.dial}]}
    pillar.update(extra)
    return pillar


def managed(loaders, pillar, test=False):
    ret = loaders.modules.state.sls(
        "caddytest", test=test, pillar={"hecate": {"reverse_proxy": {"caddy": pillar}}}
    )
    (result,) = list(ret)
    return result


def drift(loaders, roots, pillar):
    """caddy.drift with ``pillar`` as the minion's pillar (the module reads ``__pillar__``)."""
    (roots / "pillar" / "caddytest.sls").write_text(yaml.safe_dump({"hecate": {"reverse_proxy": {"caddy": pillar}}}))
    loaders.reload_all()
    return loaders.modules.caddy.drift()


def config(caddy):
    return json.loads(ch.raw_config(caddy))


def srv0_site_answers(caddy, host="cloud.cybermonkey.dev", ip="127.0.0.1"):
    status, headers, _ = ch.through_tls(caddy, host, headers=WORKER, ip=ip)
    return status == 404 and headers.get("Server") == "Caddy"


# -- the profile ------------------------------------------------------------------------------------
def test_the_lab_runs_the_adapted_caddyfile(fresh):
    caddy = fresh
    cfg = config(caddy)
    (name,) = cfg["apps"]["http"]["servers"]
    srv0 = cfg["apps"]["http"]["servers"]["srv0"]
    assert name == "srv0" and srv0["listen"] == [f"127.0.0.1:{caddy.https_port}"]  # the Caddyfile's ":443"
    assert "automatic_https" not in srv0 and "tls_connection_policies" not in srv0
    assert [r["match"][0]["host"][0] for r in srv0["routes"]] == USER_SITES
    assert all("@id" not in r and r["terminal"] is True for r in srv0["routes"])
    assert set(cfg["admin"]) == {"listen", "config"}  # production's defaults: no origins, no enforce_origin
    assert cfg["logging"]["logs"]["default"]["writer"]["output"] == "file"
    # HTTPS is on: the sites answer over TLS with certificates of Caddy's internal CA, and the
    # implicit redirect server (not in the config) sends plain HTTP to HTTPS
    for host in ("cloud.cybermonkey.dev", "cybermonkey.dev"):
        assert srv0_site_answers(caddy, host)
    redirect = requests.get(f"http://127.0.0.1:{caddy.http_port}/x", headers={"Host": "cloud.cybermonkey.dev"},
                            allow_redirects=False, timeout=5)
    assert redirect.status_code == 308  # to the default port: Caddy takes the lab's port for its 443
    assert redirect.headers["Location"] == "https://cloud.cybermonkey.dev/x"


# -- CA1: a server of hecate's own next to the Caddyfile's ------------------------------------------
def test_a_second_server_on_srv0s_address_is_refused_before_writing(loaders, roots, fresh, backend):
    """
    Production pillar (server: hecate, listen: [":443"]) against a Caddy started from a Caddyfile.
    Caddy itself refuses the same address (modules/caddyhttp/app.go, App.Validate), and binds a
    wildcard of it next to srv0's (SO_REUSEPORT, listen_unix.go), which then takes the connections
    to every other local address. hecate refuses both before writing, in the preview too.
    """
    caddy = fresh
    same, wildcard = f"127.0.0.1:{caddy.https_port}", f":{caddy.https_port}"
    raw, w0 = ch.raw_config(caddy), ch.writes(caddy)

    # what Caddy does with such a write: the same address is a refused config ...
    put = requests.put(caddy.admin_url + "/config/apps/http/servers/hecate", json={"listen": [same], "routes": []},
                       timeout=10)
    assert put.status_code == 500 and "listener address repeated: tcp/" + same in put.json()["error"]
    assert ch.raw_config(caddy) == raw
    # ... a wildcard of it is accepted: both servers listen, and each connection goes to one of
    # them by its destination address (here 127.0.0.1 to srv0, any other to the new, empty one;
    # with srv0 on ":443" as in production, the new server takes srv0's connections instead)
    put = requests.put(caddy.admin_url + "/config/apps/http/servers/hecate", json={"listen": [wildcard], "routes": []},
                       timeout=10)
    assert put.status_code == 200
    assert srv0_site_answers(caddy, ip="127.0.0.1")
    status, _, body = ch.through_tls(caddy, "cloud.cybermonkey.dev", headers=WORKER, ip="127.0.0.2")
    assert (status, body) == (200, b"")  # the site is not there: Caddy's empty answer of a server without routes
    requests.delete(caddy.admin_url + "/config/apps/http/servers/hecate", timeout=10).raise_for_status()
    raw, w0 = ch.raw_config(caddy), ch.writes(caddy)

    for listen in (same, wildcard):
        pillar = caddy_pillar(backend, server="hecate", listen=[listen])
        comments = []
        for test in (True, False):
            ret = managed(loaders, pillar, test=test)
            assert ret.result is False and ret.changes == {}, ret
            comments.append(ret.comment)
        assert comments[0] == comments[1]  # the preview says what the run does
        assert (
            f"- hecate:reverse_proxy:caddy:listen '{listen}': Caddy server 'srv0' already listens on '{same}'"
            in comments[0]
        )
        assert "hecate would create Caddy server 'hecate' (hecate:reverse_proxy:caddy:server)" in comments[0]
        assert "nothing was written" in comments[0]
        assert "set hecate:reverse_proxy:caddy:server to 'srv0'" in comments[0]
        with pytest.raises(Exception, match="Caddy server 'srv0' already listens on"):
            drift(loaders, roots, pillar)
    assert ch.raw_config(caddy) == raw and ch.writes(caddy) == w0
    assert srv0_site_answers(caddy)


def test_hecate_routes_inside_srv0_leave_the_caddyfile_alone(loaders, fresh, backend):
    """The answer to the refusal above: server: srv0. hecate's routes go into it, served over HTTPS."""
    caddy = fresh
    before = config(caddy)
    w0 = ch.writes(caddy)
    pillar = caddy_pillar(backend, server="srv0")
    preview = managed(loaders, pillar, test=True)
    assert preview.result is None and set(preview.changes) == {"added"}
    applied = managed(loaders, pillar)
    assert applied.result is True, applied.comment
    assert applied.changes == preview.changes
    assert caddy.admin_writes()[w0:] == [("PATCH", SRV0_ROUTES)]  # one guarded write
    after = config(caddy)
    routes = after["apps"]["http"]["servers"]["srv0"]["routes"]
    assert routes[:10] == before["apps"]["http"]["servers"]["srv0"]["routes"]  # the sites, untouched, first
    assert [r.get("@id") for r in routes[10:]] == ["hecate.route.web"]
    for key in ("admin", "logging"):
        assert after[key] == before[key]
    assert after["apps"]["tls"] == before["apps"]["tls"] and after["apps"]["pki"] == before["apps"]["pki"]
    assert {k: v for k, v in after["apps"]["http"]["servers"]["srv0"].items() if k != "routes"} == {
        k: v for k, v in before["apps"]["http"]["servers"]["srv0"].items() if k != "routes"
    }
    # Caddy's automatic HTTPS covers hecate's host too: a certificate of the internal CA ...
    status, _, body = ch.through_tls(caddy, "web.test", "/hello")
    assert status == 200 and json.loads(body)["backend"] == "a"
    # ... and the redirect from plain HTTP
    redirect = requests.get(f"http://127.0.0.1:{caddy.http_port}/hello", headers={"Host": "web.test"},
                            allow_redirects=False, timeout=5)
    assert redirect.status_code == 308 and redirect.headers["Location"] == "https://web.test/hello"
    assert srv0_site_answers(caddy)
    assert managed(loaders, pillar).changes == {} and ch.writes(caddy) == w0 + 1  # converged

    # a pillar route for one of the Caddyfile's sites is refused: srv0's site block would shadow it
    raw = ch.raw_config(caddy)
    pillar["routes"].append({"domain": "cloud.cybermonkey.dev", "service": "nextcloud", "backend": backend.dial})
    ret = managed(loaders, pillar)
    assert ret.result is False
    assert (f"would never serve cloud.cybermonkey.dev: route {USER_SITES.index('cloud.cybermonkey.dev')} of "
            "Caddy server 'srv0' (no @id; host "
            "cloud.cybermonkey.dev), not managed by hecate") in ret.comment
    assert ch.raw_config(caddy) == raw


# -- CA2: the server hecate creates keeps Caddy's automatic HTTPS ------------------------------------
def test_the_server_hecate_creates_serves_https(loaders, fresh, backend):
    caddy = fresh
    port = procs.free_port()
    pillar = caddy_pillar(backend, server="hecate", listen=[f"127.0.0.1:{port}"])
    ret = managed(loaders, pillar)
    assert ret.result is True and ret.changes["server"] == {"old": None, "new": {"listen": pillar["listen"]}}
    server = config(caddy)["apps"]["http"]["servers"]["hecate"]
    assert set(server) == {"listen", "routes"}  # nothing of the lab's: no automatic_https, no TLS policy
    status, _, body = ch.through_tls(caddy, "web.test", "/x", port=port)
    assert status == 200 and json.loads(body)["backend"] == "a"
    assert srv0_site_answers(caddy)
    assert len(loaders.modules.caddy.rollback(server="hecate")["restored"]) == 1
    assert "hecate" not in config(caddy)["apps"]["http"]["servers"]


# -- CA3: Caddy restarted from its Caddyfile -----------------------------------------------------------
def test_a_restart_without_resume_loses_the_routes_and_a_run_restores_them(loaders, roots, fresh, backend):
    caddy = fresh
    pillar = caddy_pillar(backend, server="srv0")
    assert managed(loaders, pillar).result is True
    caddy.restart(resume=False)  # what a Caddy started from its Caddyfile does on every restart
    try:
        assert [r.get("@id") for r in config(caddy)["apps"]["http"]["servers"]["srv0"]["routes"]] == [None] * 10
        w0 = ch.writes(caddy)
        found = drift(loaders, roots, pillar)
        assert found["in_sync"] is False and found["changes"] == {
            "added": {"web": {"domains": ["web.test"], "upstreams": [backend.dial]}}
        }
        (note,) = found["notes"]
        assert "Caddy no longer has 1 route(s) hecate wrote to server 'srv0'" in note and ": web." in note
        assert "restarted without --resume" in note
        ret = managed(loaders, pillar)
        assert ret.result is True and set(ret.changes) == {"added"}
        assert note in ret.comment
        assert caddy.admin_writes()[w0:] == [("PATCH", SRV0_ROUTES)]
        status, _, body = ch.through_tls(caddy, "web.test")
        assert status == 200 and json.loads(body)["backend"] == "a"
        assert drift(loaders, roots, pillar) == {"server": "srv0", "in_sync": True, "changes": {}}
    finally:
        caddy.restart()
