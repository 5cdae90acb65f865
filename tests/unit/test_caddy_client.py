"""The Caddy admin client against the real Caddy binary, and the snapshot store."""

import json
import os
import stat

import pytest
import salt.exceptions

import hecate_caddy_client as cc
import hecate_http
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
    assert etag.startswith('"/config/ ') and etag.endswith('"')
    routes, etag2 = admin.get(*cc.server_parts("hecate"), "routes")
    assert routes == [] and etag2.startswith('"/config/apps/http/servers/hecate/routes ')
    assert admin.config(*cc.server_parts("missing")) is None


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
