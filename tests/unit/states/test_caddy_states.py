"""caddy_routes.managed and caddy_route: the route set and ad-hoc routes against a fake admin API."""

import pytest

import hecate_clients
from tests.unit.states.conftest import converges, fails, load, unchanged
from tests.unit.states.fakes import FakeCaddyAdmin

caddy_routes = load("states", "caddy_routes")
caddy_route = load("states", "caddy_route")

FOREIGN = {"@id": "ops.maintenance", "match": [{"host": ["ops.example.com"]}],
           "handle": [{"handler": "static_response", "body": "ops"}]}


def pillar(*routes):
    return {"hecate": {"reverse_proxy": {"caddy": {"server": "hecate", "routes": list(routes)}}}}


def route(name, domain, backend="10.0.0.1:80"):
    return {"service": name, "domain": domain, "backend": backend, "policies": []}


@pytest.fixture
def admin(monkeypatch):
    fake = FakeCaddyAdmin({"apps": {"http": {"servers": {"hecate": {"listen": [":443"], "routes": [FOREIGN]}}}}})
    monkeypatch.setattr(hecate_clients, "caddy", lambda *args, **kwargs: fake)
    return fake


@pytest.fixture
def opts(tmp_path):
    return {"test": False, "hecate": {"connections": {"caddy": {"state_dir": str(tmp_path / "caddy")}}}}


@pytest.fixture
def the_pillar():
    return pillar(route("chat", "chat.example.com"), route("grafana", "grafana.example.com"))


@pytest.fixture
def configure_loader_modules(opts, the_pillar):
    dunders = {"__opts__": opts, "__pillar__": the_pillar, "__context__": {}, "__salt__": {}}
    return {caddy_routes: dict(dunders), caddy_route: dict(dunders)}


def _ids(admin):
    return [r.get("@id") for r in admin.config["apps"]["http"]["servers"]["hecate"]["routes"]]


def test_route_set_is_written_in_one_guarded_write_and_foreign_routes_stay(admin, opts):
    preview, applied = converges(caddy_routes.managed, opts, admin, name="routes")
    assert sorted(preview["changes"]["added"]) == ["chat", "grafana"]
    assert [w[0] for w in admin.writes] == ["PATCH"]
    # no route of hecate's yet and no catch-all: the hecate block goes after the others
    assert _ids(admin) == ["ops.maintenance", "hecate.route.chat", "hecate.route.grafana"]
    assert "snapshot" in applied["comment"]


def test_route_change_is_a_field_level_diff(admin, opts, the_pillar):
    opts["test"] = False
    caddy_routes.managed(name="routes")
    admin.writes.clear()
    the_pillar["hecate"]["reverse_proxy"]["caddy"]["routes"][1]["backend"] = "10.0.0.2:80"
    preview, _ = converges(caddy_routes.managed, opts, admin, name="routes")
    assert list(preview["changes"]) == ["changed"] and list(preview["changes"]["changed"]) == ["grafana"]


def test_bad_route_data_fails_before_anything_is_read(admin, opts, the_pillar):
    the_pillar["hecate"]["reverse_proxy"]["caddy"]["routes"].append({"service": "x", "domain": "not a domain"})
    comment = fails(caddy_routes.managed, opts, admin, name="routes")
    assert "hecate:reverse_proxy:caddy:routes:2" in comment


def test_a_412_is_retried_on_fresh_data(monkeypatch, admin, opts):
    """Someone changes Caddy between our read and our write: read again, write once."""
    real_write = admin.write
    attempts = []

    def interfering(method, path, value=None, etag=None, data=None):
        attempts.append(etag)
        if len(attempts) == 1:
            admin.version += 1  # another writer got in between our read and our write
        return real_write(method, path, value, etag, data=data)

    monkeypatch.setattr(admin, "write", interfering)
    opts["test"] = False
    ret = caddy_routes.managed(name="routes")
    assert ret["result"] is True and "after 1 retries" in ret["comment"], ret
    assert len(attempts) == 2 and attempts[0] != attempts[1] and len(admin.writes) == 1


def test_ad_hoc_route_present_and_absent(admin, opts):
    preview, _ = converges(caddy_route.present, opts, admin, name="status", domain="status.example.com",
                           backend="10.0.0.9:8080", policies=[])
    assert "hecate.adhoc.status" in _ids(admin) and "ops.maintenance" in _ids(admin)
    admin.writes.clear()
    converges(caddy_route.absent, opts, admin, name="status")
    admin.writes.clear()
    unchanged(caddy_route.absent, opts, admin, name="status")


def test_absent_removes_every_hecate_route_in_one_write_and_leaves_the_others(admin, opts, tmp_path):
    opts["test"] = False
    caddy_routes.managed(name="routes")
    caddy_route.present(name="status", domain="status.example.com", backend="10.0.0.9:8080", policies=[])
    admin.writes.clear()
    preview, applied = converges(caddy_routes.absent, opts, admin, name="gone")
    assert sorted(preview["changes"]["removed"]) == ["chat", "grafana"]
    assert "would remove the hecate routes of Caddy server 'hecate' (2 removed)" in preview["comment"]
    assert [w[0] for w in admin.writes] == ["PATCH"]  # one guarded write
    # routes without a hecate @id and the ad-hoc routes of caddy_route.present stay
    assert _ids(admin) == ["ops.maintenance", "hecate.adhoc.status"]
    assert "caddy.rollback restores them" in applied["comment"]
    # the snapshot of that write is what caddy.rollback puts back
    store = caddy_routes.hecate_caddy_client.SnapshotStore(str(tmp_path / "caddy"))
    newest = store.load(store.list("hecate")[0])
    assert [r.get("@id") for r in newest["after"]] == ["ops.maintenance", "hecate.adhoc.status"]
    assert [r.get("@id") for r in newest["before"]] == [
        "ops.maintenance", "hecate.route.chat", "hecate.route.grafana", "hecate.adhoc.status"]


def test_absent_on_a_server_that_does_not_exist_has_nothing_to_remove(admin, opts):
    admin.config["apps"]["http"]["servers"] = {"srv0": {"listen": [":443"], "routes": [FOREIGN]}}
    ret = unchanged(caddy_routes.absent, opts, admin, name="gone")
    assert ret["comment"] == "Caddy server 'hecate' has no hecate route"
