"""consul_kv / consul_service states and the hecate_consul module through real loaders."""

import http.server
import threading
import time
import uuid

import pytest
import requests


@pytest.fixture
def key():
    return f"func/{uuid.uuid4().hex[:10]}"


def kv_raw(consul_sim, key):
    resp = requests.get(f"{consul_sim.url}/v1/kv/{key}?raw", headers={"X-Consul-Token": consul_sim.token}, timeout=10)
    return resp.content if resp.status_code == 200 else None


def writes(sim):
    return [w for w in sim.writes()]


@pytest.mark.parametrize("test_mode", [True, False], ids=["test", "apply"])
def test_kv_present(loaders, consul_sim, key, test_mode):
    consul_sim.clear_requests()
    ret = loaders.states.consul_kv.present(name=key, value={"b": 1, "a": ["x"]}, test=test_mode)
    assert ret.changes == {"value": {"old": None, "new": {"b": 1, "a": ["x"]}}}
    if test_mode:
        assert ret.result is None and "would write" in ret.comment
        assert writes(consul_sim) == [] and kv_raw(consul_sim, key) is None
        return
    assert ret.result is True
    assert kv_raw(consul_sim, key) == b'{"a":["x"],"b":1}'
    assert [w["query"] for w in writes(consul_sim)] == ["cas=0"]
    # same data, other key order: nothing to do, nothing written
    consul_sim.clear_requests()
    ret = loaders.states.consul_kv.present(name=key, value={"a": ["x"], "b": 1})
    assert ret.result is True and ret.changes == {}
    assert writes(consul_sim) == []
    # a field-level change shows as such
    ret = loaders.states.consul_kv.present(name=key, value={"a": ["x"], "b": 2}, test=True)
    assert ret.result is None and ret.changes == {"value:b": {"old": 1, "new": 2}}


def test_kv_present_string_flags_and_pinned_index(loaders, consul_sim, key):
    ret = loaders.states.consul_kv.present(name=key, value="on", flags=7)
    assert ret.result is True and ret.changes == {"value": {"old": None, "new": "on"}, "flags": {"old": None, "new": 7}}
    index = loaders.modules.hecate_consul.kv_get(key, meta=True)["ModifyIndex"]
    ret = loaders.states.consul_kv.present(name=key, value="off", modify_index=index + 99)
    assert ret.result is False and f"expected ModifyIndex {index + 99}, found {index}" in ret.comment
    assert kv_raw(consul_sim, key) == b"on"
    ret = loaders.states.consul_kv.present(name=key, value="off", modify_index=index)
    assert ret.result is True and ret.changes == {"value": {"old": "on", "new": "off"}}
    assert loaders.modules.hecate_consul.kv_get(key, meta=True)["Flags"] == 7  # kept


def test_kv_cas_conflict_with_a_concurrent_writer_fails_clearly(loaders, consul_sim, key, monkeypatch):
    import hecate_consul_client  # the module object the loaded states use

    loaders.states.consul_kv.present(name=key, value="v1")
    original = hecate_consul_client.ConsulClient.kv_get

    def read_then_someone_writes(self, k, index=None, wait=None):
        result = original(self, k, index=index, wait=wait)
        if k == key:
            requests.put(f"{consul_sim.url}/v1/kv/{key}", data=b"other", timeout=10,
                         headers={"X-Consul-Token": consul_sim.token})
        return result

    monkeypatch.setattr(hecate_consul_client.ConsulClient, "kv_get", read_then_someone_writes)
    ret = loaders.states.consul_kv.present(name=key, value="v2")
    assert ret.result is False
    assert f"key {key} changed since it was read" in ret.comment and "re-run" in ret.comment
    assert ret.changes == {}
    assert kv_raw(consul_sim, key) == b"other"  # the other writer's value survives


@pytest.mark.parametrize("test_mode", [True, False], ids=["test", "apply"])
def test_kv_absent(loaders, consul_sim, key, test_mode):
    loaders.modules.hecate_consul.kv_put(f"{key}/a", "1")
    loaders.modules.hecate_consul.kv_put(f"{key}/b", "2")
    consul_sim.clear_requests()
    ret = loaders.states.consul_kv.absent(name=f"{key}/a", test=test_mode)
    assert ret.changes == {"deleted": [f"{key}/a"]}
    if test_mode:
        assert ret.result is None and writes(consul_sim) == []
        assert kv_raw(consul_sim, f"{key}/a") == b"1"
        return
    assert ret.result is True and kv_raw(consul_sim, f"{key}/a") is None
    ret = loaders.states.consul_kv.absent(name=f"{key}/", recurse=True)
    assert ret.result is True and ret.changes == {"deleted": [f"{key}/b"]}
    consul_sim.clear_requests()
    ret = loaders.states.consul_kv.absent(name=f"{key}/", recurse=True)
    assert ret.result is True and ret.changes == {} and writes(consul_sim) == []


def test_kv_refuses_secret_references_and_bad_keys(loaders, consul_sim):
    ret = loaders.states.consul_kv.present(name="func/x", value={"vault": "secret/a/b", "key": "k"})
    assert ret.result is False and "cannot be stored in Consul KV" in ret.comment
    ret = loaders.states.consul_kv.present(name="/func/x", value="1")
    assert ret.result is False and "must not start with '/'" in ret.comment


class _Ok(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def live_port():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def _service(port, **extra):
    spec = {
        "service_name": "func-jenkins",
        "address": "127.0.0.1",
        "port": port,
        "tags": ["jenkins", "ci", "external"],
        "meta": {"domain": "jenkins.example"},
        "checks": [{"http": f"http://127.0.0.1:{port}/login", "interval": "1s", "timeout": "5s"}],
    }
    spec.update(extra)
    return spec


@pytest.mark.parametrize("test_mode", [True, False], ids=["test", "apply"])
def test_service_registered(loaders, consul_sim, live_port, test_mode):
    sid = f"func-jenkins-{uuid.uuid4().hex[:6]}"
    consul_sim.clear_requests()
    ret = loaders.states.consul_service.registered(name=sid, test=test_mode, **_service(live_port))
    assert ret.changes["registered"] == {"old": None, "new": sid}
    assert ret.changes["checks"]["new"] == [f"service:{sid}: http every 1s timeout 5s"]
    if test_mode:
        assert ret.result is None and writes(consul_sim) == []
        assert loaders.modules.hecate_consul.services().get(sid) is None
        return
    assert ret.result is True
    assert [w["path"] for w in writes(consul_sim)] == ["/v1/agent/service/register"]
    assert writes(consul_sim)[0]["query"] == "replace-existing-checks=true"
    try:
        # health reflects the real check against the live port
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if loaders.modules.hecate_consul.service_addresses("func-jenkins") == [f"127.0.0.1:{live_port}"]:
                break
            time.sleep(0.2)
        assert loaders.modules.hecate_consul.service_addresses("func-jenkins") == [f"127.0.0.1:{live_port}"]
        # second run: no change, no write
        consul_sim.clear_requests()
        ret = loaders.states.consul_service.registered(name=sid, **_service(live_port))
        assert ret.result is True and ret.changes == {}, ret.changes
        assert writes(consul_sim) == []
        # tag and check changes are seen and applied (the check's target is fingerprinted)
        changed = _service(live_port, tags=["jenkins"], checks=[{"tcp": f"127.0.0.1:{live_port}", "interval": "2s"}])
        ret = loaders.states.consul_service.registered(name=sid, test=True, **changed)
        assert ret.result is None
        assert ret.changes["tags"] == {"added": [], "removed": ["ci", "external"]}
        assert ret.changes["checks"]["new"][0] == f"service:{sid}: tcp every 2s"
        ret = loaders.states.consul_service.registered(name=sid, **changed)
        assert ret.result is True
        checks = loaders.modules.hecate_consul.service_health("func-jenkins", passing=False)[0]["Checks"]
        assert [c["Type"] for c in checks if c["CheckID"] != "serfHealth"] == ["tcp"]
        # someone re-registers it by hand with another URL: the state notices
        requests.put(
            f"{consul_sim.url}/v1/agent/service/register", timeout=10,
            headers={"X-Consul-Token": consul_sim.token},
            json={"ID": sid, "Name": "func-jenkins", "Address": "127.0.0.1", "Port": live_port,
                  "Tags": ["jenkins"], "Meta": {"domain": "jenkins.example"},
                  "Check": {"TCP": "127.0.0.1:1", "Interval": "2s"}},
        )
        ret = loaders.states.consul_service.registered(name=sid, test=True, **changed)
        assert ret.result is None and "checks" in ret.changes
    finally:
        loaders.modules.hecate_consul.service_deregister(sid)


@pytest.mark.parametrize("test_mode", [True, False], ids=["test", "apply"])
def test_service_absent(loaders, consul_sim, live_port, test_mode):
    sid = f"func-old-{uuid.uuid4().hex[:6]}"
    loaders.modules.hecate_consul.service_register(sid, name="func-old", address="127.0.0.1", port=live_port)
    consul_sim.clear_requests()
    ret = loaders.states.consul_service.absent(name=sid, test=test_mode)
    assert ret.changes == {"deregistered": {"old": sid, "new": None}}
    if test_mode:
        assert ret.result is None and writes(consul_sim) == []
        loaders.modules.hecate_consul.service_deregister(sid)
        return
    assert ret.result is True and sid not in loaders.modules.hecate_consul.services()
    consul_sim.clear_requests()
    ret = loaders.states.consul_service.absent(name=sid)
    assert ret.result is True and ret.changes == {} and writes(consul_sim) == []


def test_service_bad_input_is_a_clear_failure(loaders, consul_sim):
    consul_sim.clear_requests()
    ret = loaders.states.consul_service.registered(
        name="func-bad", address="127.0.0.1", checks=[{"http": "http://127.0.0.1:1/", "tcp": "127.0.0.1:1"}]
    )
    assert ret.result is False and "exactly one of http, tcp or ttl" in ret.comment
    ret = loaders.states.consul_service.registered(name="func-bad", address="127.0.0.1", checks=[{"http": "http://x/"}])
    assert ret.result is False and "interval: required for a http check" in ret.comment
    assert writes(consul_sim) == []


def test_unreachable_consul_is_result_false(loaders, consul_sim):
    consul_sim.fault(action="drop")  # every request: connection closed without an answer
    try:
        ret = loaders.states.consul_kv.present(name="func/x", value="1")
    finally:
        consul_sim.clear_faults()
    assert ret.result is False and ret.changes == {}
    assert f"Consul at {consul_sim.url} is unreachable" in ret.comment


def test_lock_functions_through_the_module(loaders, consul_sim):
    mod = loaders.modules.hecate_consul
    key = f"func/locks/{uuid.uuid4().hex[:6]}"
    session = mod.lock_acquire(key, holder="alice", ttl="10s", lock_delay="0s")
    with pytest.raises(Exception, match=f"lock {key} is held by alice since"):
        mod.lock_acquire(key, holder="bob", ttl="10s")
    assert mod.lock_info(key)["holder"] == "alice"
    assert mod.lock_renew(session) is True
    assert mod.lock_release(key, session) is True
    assert mod.lock_info(key)["held"] is False
