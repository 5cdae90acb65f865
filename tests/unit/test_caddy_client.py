"""The Caddy admin client against the real Caddy binary, and the snapshot store."""

import gc
import json
import os
import re
import socket
import stat
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
import salt.exceptions

import hecate_caddy_client as cc
import hecate_http
import hecate_preflight
from lab import caddy as lab_caddy
from lab import procs
from tests import caddy_helpers


@pytest.fixture
def admin(caddy):
    caddy_helpers.reset(caddy)
    return cc.CaddyAdmin({"admin_url": caddy.admin_url, "retries": 0})


ROUTE = {
    "@id": "probe.route",
    "match": [{"host": ["probe.test"]}],
    "handle": [{"handler": "static_response", "body": "probe"}],
}


def test_get_returns_value_and_etag(admin, caddy):
    config, etag = admin.get()
    assert config["apps"]["http"]["servers"]["hecate"]["routes"] == []
    # a response header since 2.8.0 (admin.go, makeEtag: "<path> <xxhash>"), a trailer before
    assert re.match(r'^"/config/ [0-9a-f]+"$', etag), etag
    routes, etag2 = admin.get(*cc.server_parts("hecate"), "routes")
    assert routes == [] and etag2.startswith('"/config/apps/http/servers/hecate/routes ')
    assert admin.config(*cc.server_parts("missing")) is None


def test_get_holds_the_routes_the_caller_knows(admin, caddy):
    """
    ``known``: a route of the config equal to one the caller holds is that object (no copy of
    its own), any other is parsed as Caddy sent it; the value and the ETag are those of a
    plain read.
    """
    other = dict(ROUTE, **{"@id": "probe.other"}, match=[{"host": ["other.test"]}])
    _, etag = admin.get()
    path = cc.config_path(*cc.server_parts("hecate"), "routes")
    admin.write("PATCH", path, [ROUTE, other], etag)
    plain, plain_etag = admin.get()
    mine = json.loads(json.dumps(ROUTE))
    changed = dict(other, terminal=True)  # the caller's version of probe.other differs
    config, etag = admin.get(known=[mine, changed])
    assert config == plain and etag == plain_etag
    routes = config["apps"]["http"]["servers"]["hecate"]["routes"]
    assert routes[0] is mine
    assert routes[1] is not changed and routes[1] == other


def test_shared_loads_replaces_only_equal_objects_with_a_known_id():
    known = {"@id": "a", "handle": [{"handler": "x"}]}
    text = json.dumps({"deep": {"list": [{"@id": "a", "handle": [{"handler": "x"}]},
                                         {"@id": "a", "handle": []},
                                         {"@id": ["a"], "handle": [{"handler": "x"}]},
                                         {"@id": "b"}]}})
    value = cc.shared_loads(text, [known, "not a route", {"@id": 1}])
    assert value == json.loads(text)
    items = value["deep"]["list"]
    assert items[0] is known
    assert items[1] is not known and items[2] is not known  # not equal; an @id that is not a string
    assert cc.shared_loads(b'{"@id": "a"}', None) == {"@id": "a"}
    assert cc.shared_loads(b"[1, 2]", [known]) == [1, 2]


def test_traversal_error_is_clear(admin):
    with pytest.raises(hecate_http.HTTPError) as info:
        admin.get("apps", "nope", "deeper")
    assert info.value.status == 400
    assert "invalid traversal path" in str(info.value)


def test_guarded_write_and_412(admin, caddy):
    _, etag = admin.get()
    path = cc.config_path(*cc.server_parts("hecate"), "routes")
    admin.write("POST", path, ROUTE, etag)
    assert admin.config(*cc.server_parts("hecate"), "routes") == [ROUTE]
    before = caddy_helpers.raw_config(caddy)
    with pytest.raises(cc.PreconditionFailed) as info:  # the etag is stale now
        admin.write("PATCH", path, [], etag)
    assert info.value.status == 412
    assert caddy_helpers.raw_config(caddy) == before
    assert caddy_helpers.through(caddy, "probe.test").text == "probe"


def test_routes_by_id(admin):
    _, etag = admin.get()
    admin.write("POST", cc.config_path(*cc.server_parts("hecate"), "routes"), ROUTE, etag)
    assert admin.get_id("probe.route") == ROUTE
    changed = dict(ROUTE, handle=[{"handler": "static_response", "body": "changed"}])
    admin.write("PATCH", "/id/probe.route", changed)
    assert admin.get_id("probe.route")["handle"][0]["body"] == "changed"
    with pytest.raises(hecate_http.HTTPError, match="duplicate ID 'probe.route'"):
        admin.write("POST", cc.config_path(*cc.server_parts("hecate"), "routes"), ROUTE)
    admin.write("DELETE", "/id/probe.route")
    with pytest.raises(hecate_http.HTTPError, match="unknown object ID 'probe.route'") as info:
        admin.get_id("probe.route")
    assert info.value.status == 404
    with pytest.raises(salt.exceptions.SaltInvocationError):
        admin.get_id("a/b")


def test_adapt_and_upstreams(admin):
    result, warnings = admin.adapt("http://a.test:8080 {\n\treverse_proxy 127.0.0.1:9\n}\n")
    server = next(iter(result["apps"]["http"]["servers"].values()))
    assert server["listen"] == [":8080"]
    assert isinstance(warnings, list)
    with pytest.raises(hecate_http.HTTPError, match="adapt"):
        admin.adapt("http://a.test {\n\tbogus_directive\n}\n")
    assert isinstance(admin.upstreams(), list)


def test_refused_config_keeps_the_old_one(admin, caddy):
    before = caddy_helpers.raw_config(caddy)
    bad = dict(ROUTE, handle=[{"handler": "no_such_handler"}])
    _, etag = admin.get()
    with pytest.raises(hecate_http.HTTPError) as info:
        admin.write("POST", cc.config_path(*cc.server_parts("hecate"), "routes"), bad, etag)
    assert info.value.status in (400, 500)
    assert "no_such_handler" in str(info.value)
    assert caddy_helpers.raw_config(caddy) == before


def test_settings_errors_and_unreachable():
    with pytest.raises(salt.exceptions.SaltInvocationError, match="admin_url is not set"):
        cc.CaddyAdmin({"admin_url": None})
    with pytest.raises(salt.exceptions.SaltInvocationError, match="must be an http"):
        cc.CaddyAdmin({"admin_url": "unix//run/caddy.sock"})
    client = cc.CaddyAdmin({"admin_url": "http://127.0.0.1:9", "retries": 0, "origin": "https://ops.example"})
    assert client.http.session.headers["Origin"] == "https://ops.example"
    with pytest.raises(hecate_http.Unreachable, match="unreachable: connection refused"):
        client.get()


# -- the admin endpoint's Host and Origin checks (admin.go: serveHTTP, checkHost, checkOrigin) --------
def test_the_lab_admin_endpoint_checks_host_and_origin_as_production_does(caddy):
    """
    The lab's admin block is production's default (a loopback listener, no origins, no
    enforce_origin): Host is checked, and Origin whenever a request carries one. A client that
    sent a wrong Host or an Origin it should not would fail here as it does in production.
    """
    admin_block = json.loads(caddy_helpers.raw_config(caddy))["admin"]
    assert set(admin_block) == {"listen", "config"}
    url = caddy.admin_url + "/config/"
    assert requests.get(url, timeout=10).status_code == 200
    bad_host = requests.get(url, headers={"Host": "caddy-admin.service.consul:2019"}, timeout=10)
    assert bad_host.status_code == 403
    assert bad_host.json()["error"] == "host not allowed: caddy-admin.service.consul:2019"
    bad_origin = requests.get(url, headers={"Origin": "https://ops.example"}, timeout=10)
    assert bad_origin.status_code == 403
    assert bad_origin.json()["error"] == "client is not allowed to access from origin 'https://ops.example'"
    assert requests.get(url, headers={"Origin": f"http://127.0.0.1:{caddy.admin_port}"}, timeout=10).status_code == 200


def test_client_sends_no_origin_unless_configured(caddy):
    admin = cc.CaddyAdmin({"admin_url": caddy.admin_url, "retries": 0})
    assert "Origin" not in admin.http.session.headers
    admin.get()


def test_admin_url_with_a_name_caddy_does_not_accept(caddy, monkeypatch):
    """The draft's admin_url (a Consul name) resolving to this loopback admin endpoint: 403, named."""
    real = socket.getaddrinfo

    def resolve(host, *args, **kwargs):
        return real("127.0.0.1" if host == "caddy-admin.service.consul" else host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    url = f"http://caddy-admin.service.consul:{caddy.admin_port}"
    with pytest.raises(hecate_http.HTTPError) as info:
        cc.CaddyAdmin({"admin_url": url, "retries": 0}).get()
    assert info.value.status == 403
    text = str(info.value)
    assert text.startswith("Caddy admin API: GET /config/ returned 403: host not allowed: "
                           f"caddy-admin.service.consul:{caddy.admin_port}.")
    assert f"set hecate:connections:caddy:admin_url (now {url}) to that address" in text
    # the preflight step says the same (Caddy's admin API has no token to be invalid)
    with pytest.raises(salt.exceptions.CommandExecutionError) as info:
        hecate_preflight.reach("caddy", {"hecate": {"connections": {"caddy": {"admin_url": url}}}}, {})
    text = str(info.value)
    assert "token" not in text
    assert f"host not allowed: caddy-admin.service.consul:{caddy.admin_port}" in text
    assert f"set hecate:connections:caddy:admin_url (now {url}) to that address" in text


def test_origin_setting_against_caddy_enforcing_origins(tmp_path):
    """admin.enforce_origin on: hecate needs hecate:connections:caddy:origin, and it works when set."""
    port = procs.free_port()
    cfg = lab_caddy.initial_config(port, procs.free_port())
    cfg["admin"].update(enforce_origin=True, origins=[f"http://127.0.0.1:{port}"])
    os.makedirs(tmp_path / "caddy")
    (tmp_path / "caddy" / "caddy.json").write_text(json.dumps(cfg))
    enforcing = lab_caddy.Caddy(str(tmp_path / "caddy"), admin_port=port)
    enforcing.start()
    try:
        with pytest.raises(hecate_http.HTTPError) as info:
            cc.CaddyAdmin({"admin_url": enforcing.admin_url, "retries": 0}).get()
        assert info.value.status == 403
        assert str(info.value) == (
            "Caddy admin API: GET /config/ returned 403: client is not allowed to access from origin ''. "
            "This Caddy enforces origins (admin.enforce_origin): set hecate:connections:caddy:origin to one "
            "of its admin.origins, written scheme://host:port"
        )
        with pytest.raises(hecate_http.HTTPError, match="origin 'https://ops.example'.*now 'https://ops.example'"):
            cc.CaddyAdmin({"admin_url": enforcing.admin_url, "retries": 0, "origin": "https://ops.example"}).get()
        admin = cc.CaddyAdmin({"admin_url": enforcing.admin_url, "retries": 0, "origin": f"http://127.0.0.1:{port}"})
        _, etag = admin.get()
        admin.write("POST", cc.config_path(*cc.server_parts("hecate"), "routes"), ROUTE, etag)
        assert admin.get_id("probe.route") == ROUTE
    finally:
        enforcing.stop()


# -- Caddy before 2.8: the ETag is a trailer -----------------------------------------------------------
class _TrailerEtag(BaseHTTPRequestHandler):
    """GET /config/ as Caddy 2.5.2-2.7 answers it (admin.go v2.7.6, handleConfig): ETag in a trailer."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.server.seen.append(("GET", self.path))
        body = json.dumps({"apps": {"http": {"servers": {"hecate": {"listen": [":443"], "routes": []}}}}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Trailer", "ETag")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.write(b"%x\r\n%s\r\n0\r\n" % (len(body), body))
        self.wfile.write(b'Etag: "/config/ 1a2b3c4d"\r\n\r\n')

    def do_PATCH(self):
        self.server.seen.append(("PATCH", self.path))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_POST = do_PUT = do_PATCH


def test_a_caddy_without_the_etag_header_is_never_written_to():
    import hecate_caddy_apply  # pylint: disable=import-outside-toplevel

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _TrailerEtag)
    httpd.seen = []
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        admin = cc.CaddyAdmin({"admin_url": f"http://127.0.0.1:{httpd.server_address[1]}", "retries": 0})
        for test in (True, False):
            with pytest.raises(hecate_http.HTTPError) as info:
                hecate_caddy_apply.apply(admin, "hecate", lambda live: (["r"], {"added": {"r": {}}}), test=test)
            assert str(info.value) == (
                "Caddy admin API: GET /config/ sent no Etag header; hecate needs Caddy 2.8 or newer (older "
                "releases send it as an HTTP trailer), because it never writes to Caddy without If-Match; "
                "nothing was written"
            )
        assert httpd.seen == [("GET", "/config/"), ("GET", "/config/")]
    finally:
        httpd.shutdown()
        httpd.server_close()


# -- snapshots -------------------------------------------------------------------------------------
def test_snapshot_store_is_private_and_pending_is_a_stack(tmp_path):
    root = tmp_path / "state"
    store = cc.SnapshotStore(str(root), keep=2)
    first = store.save("hecate", ("apps", "http", "servers", "hecate", "routes"), [], [{"a": 1}], {"x": 1})
    assert stat.S_IMODE(os.stat(root).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(root / "snapshots").st_mode) == 0o700
    assert stat.S_IMODE(os.stat(root / "snapshots" / f"{first}.json").st_mode) == 0o600
    record = store.load(first)
    assert record["before"] == [] and record["after"] == [{"a": 1}] and record["config"] == {"x": 1}
    store.push_pending("hecate", first)
    second = store.save("hecate", ("p",), None, 1, {})
    store.push_pending("hecate", second)
    assert store.pending() == {"hecate": [first, second]}
    assert stat.S_IMODE(os.stat(root / "pending").st_mode) == 0o700
    third = store.save("hecate", ("p",), 1, 2, {})
    fourth = store.save("hecate", ("p",), 2, 3, {})
    # keep=2, but snapshots a rollback still needs are never pruned
    assert store.list() == [fourth, third, second, first]
    store.pop_pending("hecate", first)
    store.pop_pending("hecate", second)
    assert store.pending() == {}
    fifth = store.save("hecate", ("p",), 3, 4, {})
    assert store.list() == [fifth, fourth]
    store.clear_pending("hecate")  # nothing pending: fine
    with pytest.raises(salt.exceptions.SaltInvocationError, match="no Caddy config snapshot"):
        store.load("nope")


def test_snapshot_route_ids_are_kept_beside_the_snapshot(tmp_path):
    root = tmp_path / "state"
    store = cc.SnapshotStore(str(root), keep=1)
    routes = [{"@id": "hecate.route.web"}, {"match": []}, "not a route"]
    first = store.save("srv0", ("apps", "http", "servers", "srv0", "routes"), [], routes, {})
    summary = store.written_routes(first)
    assert summary["route_ids"] == ["hecate.route.web", None, None]
    assert (summary["id"], summary["server"]) == (first, "srv0")
    assert stat.S_IMODE(os.stat(root / "snapshots" / f"{first}.routes").st_mode) == 0o600
    # a created server: its routes are inside the written object; a write elsewhere holds none
    created = store.save("new", ("apps", "http", "servers", "new"), None, {"routes": routes[:1]}, {})
    assert store.written_routes(created)["route_ids"] == ["hecate.route.web"]
    assert store.written_routes(store.save("x", ("logging",), None, {}, {}))["route_ids"] is None
    # a snapshot saved before there were .routes files: computed from the snapshot itself
    os.unlink(root / "snapshots" / f"{first}.routes")
    assert store.written_routes(first)["route_ids"] == ["hecate.route.web", None, None]
    # pruned together, and never listed as snapshots
    second = store.save("srv0", ("p",), None, 1, {})
    assert store.list("srv0") == [second]
    assert sorted(os.listdir(root / "snapshots")) == sorted(
        f"{sid}{ext}" for sid in store.list() for ext in (".json", ".routes")
    )


def test_snapshot_store_tightens_an_open_directory(tmp_path):
    root = tmp_path / "open"
    root.mkdir(mode=0o755)
    (root / "snapshots").mkdir(mode=0o755)
    os.chmod(root / "snapshots", 0o755)
    store = cc.SnapshotStore(str(root))
    store.save("s", ("p",), None, 1, {})
    assert stat.S_IMODE(os.stat(root).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(root / "snapshots").st_mode) == 0o700


def test_snapshot_store_unusable_directory(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a dir")
    store = cc.SnapshotStore(str(blocker / "sub"))
    with pytest.raises(salt.exceptions.CommandExecutionError, match="cannot use Caddy state directory"):
        store.save("s", ("p",), None, 1, {})
    with pytest.raises(salt.exceptions.SaltInvocationError):
        cc.SnapshotStore(None)


def test_snapshot_json_round_trip_keeps_exact_values(tmp_path):
    store = cc.SnapshotStore(str(tmp_path / "s"))
    value = [{"@id": "x", "n": 10_000_000_000, "f": 0.5, "u": "ü"}]
    sid = store.save("s", ("p",), value, [], {"k": value})
    assert store.load(sid)["before"] == value
    assert json.loads(json.dumps(store.load(sid)))["config"] == {"k": value}


def test_snapshot_takes_the_write_body_as_its_after(tmp_path):
    store = cc.SnapshotStore(str(tmp_path / "s"))
    value = [{"@id": "x", "n": 10_000_000_000, "u": "ü"}]
    plain = store.save("s", ("p",), [], value, {"k": 1})
    shared = store.save("s", ("p",), [], value, {"k": 1}, after_data=cc.encode(value))
    assert store.load(shared)["after"] == value
    with open(tmp_path / "s" / "snapshots" / f"{plain}.json", "rb") as fh:
        plain_bytes = fh.read()
    with open(tmp_path / "s" / "snapshots" / f"{shared}.json", "rb") as fh:
        shared_bytes = fh.read()
    # the same file as without the shared body, but for the id and time
    for sid, text in ((plain, plain_bytes), (shared, shared_bytes)):
        record = json.loads(text)
        assert text == cc.encode(record) and record["id"] == sid


def test_bulk_pauses_the_collector_and_leaves_cycles_collectable():
    import weakref  # pylint: disable=import-outside-toplevel

    class Node:
        pass

    was = gc.isenabled()
    gc.enable()
    try:
        with cc.bulk():
            assert not gc.isenabled()
            with cc.bulk():  # nested: the inner exit does not enable it
                pass
            assert not gc.isenabled()
            node = Node()
            node.self = node  # a cycle made while paused
            ref = weakref.ref(node)
            del node
        assert gc.isenabled() and gc.get_freeze_count() == 0
        gc.collect()
        assert ref() is None  # moved to the oldest generation, not frozen: still collected
        gc.disable()
        with cc.bulk():
            pass
        assert not gc.isenabled()  # left as the caller had it
    finally:
        (gc.enable if was else gc.disable)()
