"""The shared Consul client (py-consul underneath) against the Consul simulator."""

import http.server
import re
import socket
import threading
import time

import pytest
import salt.exceptions
import trustme

import hecate_consul_client as hc
import hecate_http
from lab.sim import SimHandle

MGMT = "mgmt-token-for-tests"
READ = "read-only-token"


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    options = {
        "session_ttl_min": "1s",
        "check_interval_max": "1s",
        "acl": {"enabled": True, "default_policy": "deny", "tokens": {MGMT: "management", READ: "read"}},
    }
    handle = SimHandle("consul", str(tmp_path_factory.mktemp("consul")), options).start()
    yield handle
    handle.stop()


def client(sim, token=MGMT, **settings):
    return hc.ConsulClient({"url": sim.url, **settings}, token=token)


def test_configured_token_wins_over_environment(sim, monkeypatch):
    monkeypatch.setenv("CONSUL_HTTP_TOKEN", "wrong-token-from-env")
    monkeypatch.setenv("CONSUL_HTTP_ADDR", "127.0.0.1:1")  # ignored too: the URL is configured
    sim.clear_requests()
    assert client(sim).kv_put("unit/token", "x") is True
    # without a configured token the environment is not read either: anonymous -> denied
    with pytest.raises(salt.exceptions.CommandExecutionError, match="permission denied"):
        client(sim, token=None).kv_get("unit/token")
    with pytest.raises(salt.exceptions.CommandExecutionError, match="ACL not found"):
        client(sim, token="nope").kv_get("unit/token")
    # a read-only token can read but not write, and the message says so without the token
    ro = client(sim, token=READ)
    assert ro.kv_get("unit/token")[1]["Value"] == b"x"
    with pytest.raises(salt.exceptions.CommandExecutionError) as err:
        ro.kv_put("unit/token", "y")
    assert "permission denied" in str(err.value) and READ not in str(err.value)


def test_kv_json_and_cas(sim):
    c = client(sim)
    assert c.get_json("unit/rec") is None
    c.put_json("unit/rec", {"b": 2, "a": [1, "x"]}, cas=0)
    assert c.get_json("unit/rec") == {"a": [1, "x"], "b": 2}
    assert c.kv_get("unit/rec")[1]["Value"] == b'{"a":[1,"x"],"b":2}'  # canonical JSON
    with pytest.raises(hc.CASConflict, match="already exists"):
        c.put_json("unit/rec", {"c": 3}, cas=0)
    _, entry = c.kv_get("unit/rec")
    c.kv_put("unit/rec", "other writer")
    with pytest.raises(hc.CASConflict, match=rf"expected ModifyIndex {entry['ModifyIndex']}, now \d+"):
        c.kv_put_cas("unit/rec", "mine", entry["ModifyIndex"])
    assert c.kv_get("unit/rec")[1]["Value"] == b"other writer"
    c.kv_put("unit/tree/a", "1")
    c.kv_put("unit/tree/b/c", "2")
    assert c.kv_keys("unit/tree/", separator="/") == ["unit/tree/a", "unit/tree/b/"]
    assert [e["Key"] for e in c.kv_list("unit/tree/")] == ["unit/tree/a", "unit/tree/b/c"]
    assert c.kv_delete("unit/tree", recurse=True) is True
    assert c.kv_list("unit/tree/") == []


def test_bad_keys_are_refused_before_any_request(sim):
    c = client(sim)
    sim.clear_requests()
    # what Consul 1.21.6+/1.22+ refuses (validateKVKey), what its clients refuse (a leading
    # '/'), and what the HTTP layer would turn into another key (dot and empty segments)
    for key in ("/abs", "a/../b", "", " lead", "trail ", "a%20b", "a%2e%2e%2fb", "a//b", "a/./b", "./a"):
        with pytest.raises(salt.exceptions.SaltInvocationError):
            c.kv_get(key)
        with pytest.raises(salt.exceptions.SaltInvocationError):
            c.kv_put(key, "x")
    assert sim.requests() == []
    # and not more: keys Consul takes are written and read back as they are
    for key in ("unit/keys/with space", "unit/keys/con..fig", "unit/keys/foo:bar;*", "unit/keys/fooçbar",
                "unit/keys/100%", "unit/keys/dir/"):
        assert c.kv_put(key, "x") is True, key
        assert c.kv_get(key)[1]["Key"] == key
    assert "unit/keys/with space" in c.kv_keys("unit/keys/")


def test_two_contenders_exactly_one_wins_and_the_other_learns_the_holder(sim):
    results = {}
    barrier = threading.Barrier(2)

    def contend(who):
        c = client(sim)
        barrier.wait()
        try:
            results[who] = ("won", c.lock_acquire("unit/locks/race", who, ttl="5s", lock_delay="0s"))
        except hc.LockHeld as exc:
            results[who] = ("lost", str(exc))

    threads = [threading.Thread(target=contend, args=(who,)) for who in ("alice", "bob")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    outcomes = sorted(r[0] for r in results.values())
    assert outcomes == ["lost", "won"], results
    winner = next(w for w, r in results.items() if r[0] == "won")
    loser_msg = next(r[1] for r in results.values() if r[0] == "lost")
    assert loser_msg.startswith(f"lock unit/locks/race is held by {winner} since 20")
    c = client(sim)
    info = c.lock_info("unit/locks/race")
    assert info["held"] and info["holder"] == winner
    # the loser's session was cleaned up: only the winner's remains for this lock
    # (each attempt's session is named "hecate lock <key> #<nonce>", see _lock_session)
    names = [s["Name"] for s in c.session_list() if s["Name"].startswith("hecate lock unit/locks/race ")]
    assert len(names) == 1 and re.fullmatch(r"hecate lock unit/locks/race #[0-9a-f]{8}", names[0])
    c.lock_release("unit/locks/race", results[winner][1])


def test_lock_is_released_when_the_holders_session_expires(sim):
    c = client(sim)
    c.lock_acquire("unit/locks/expiry", "crashed-runner", ttl="1s", lock_delay="0s")
    # the holder never renews: Consul invalidates the session after TTL x 2
    with pytest.raises(hc.LockHeld, match="held by crashed-runner"):
        c.lock_acquire("unit/locks/expiry", "next-runner", ttl="5s", lock_delay="0s")
    started = time.monotonic()
    session = c.lock_acquire("unit/locks/expiry", "next-runner", ttl="5s", lock_delay="0s", wait=15)
    assert time.monotonic() - started < 10
    assert c.lock_info("unit/locks/expiry")["holder"] == "next-runner"
    c.lock_release("unit/locks/expiry", session)


def test_lock_delay_after_invalidation_is_reported(sim):
    c = client(sim)
    first = c.lock_acquire("unit/locks/delay", "one", ttl="5s", lock_delay="3s")
    c.session_destroy(first)  # holder vanished: key released, lock-delay 3s starts
    with pytest.raises(salt.exceptions.CommandExecutionError, match="lock-delay"):
        c.lock_acquire("unit/locks/delay", "two", ttl="5s")
    session = c.lock_acquire("unit/locks/delay", "two", ttl="5s", wait=10)
    c.lock_release("unit/locks/delay", session)


def test_release_and_renew_of_a_lost_lock(sim):
    c = client(sim)
    session = c.lock_acquire("unit/locks/lost", "me", ttl="5s", lock_delay="0s")
    c.session_destroy(session)
    with pytest.raises(hc.LockLost):
        c.lock_renew(session)
    with pytest.raises(hc.LockLost, match="not held by session"):
        c.lock_release("unit/locks/lost", session)


def test_lock_keeper_renews_and_releases(sim):
    c = client(sim)
    with hc.Lock(c, "unit/locks/keeper", "long-job", ttl="1s", lock_delay="0s") as lock:
        time.sleep(3.5)  # longer than TTL x 2: only renewals keep it
        assert not lock.lost
        assert c.lock_info("unit/locks/keeper")["holder"] == "long-job"
    info = c.lock_info("unit/locks/keeper")
    assert not info["held"] and info["last_holder"] == "long-job"


def test_key_that_is_not_a_lock_is_not_taken_over(sim):
    c = client(sim)
    c.kv_put("unit/locks/plain", "data")
    with pytest.raises(salt.exceptions.CommandExecutionError, match="not a lock"):
        c.lock_acquire("unit/locks/plain", "me")


class _Ok(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


def _wait(predicate, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return predicate()


def test_service_addresses_follow_real_health(sim):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = sock.getsockname()[1]
    c = client(sim)
    for sid, target in (("web-1", port), ("web-2", dead)):
        c.service_register(hc.service_definition(sid, {
            "name": "unit-web", "address": "127.0.0.1", "port": target,
            "checks": [{"http": f"http://127.0.0.1:{target}/", "interval": "1s", "timeout": "1s"}],
        }))
    try:
        assert _wait(lambda: c.service_addresses("unit-web") == [f"127.0.0.1:{port}"])
        assert c.service_addresses("unit-web", passing=False) == sorted([f"127.0.0.1:{port}", f"127.0.0.1:{dead}"])
        server.shutdown()
        server.server_close()
        assert _wait(lambda: c.service_addresses("unit-web") == [])
        assert "unit-web" in c.catalog_services()
    finally:
        for sid in ("web-1", "web-2"):
            c.service_deregister(sid)
    assert c.service_deregister("web-1") is False
    assert c.health_service("unit-web", passing=False) == []


def test_a_registered_service_is_read_back_by_an_id_with_a_colon(sim):
    # The schema allows ':' in service ids; py-consul quotes the path itself (base.py uri,
    # safe="/:") and Consul decodes it once (agent_endpoint.go AgentService), so an id quoted
    # by hecate too would be looked up as 'x%3Ay' and the service would seem unregistered.
    c = client(sim)
    c.service_register(hc.service_definition("unit:colon", {"name": "unit-colon", "port": 9}))
    try:
        assert c.agent_service("unit:colon")["ID"] == "unit:colon"
    finally:
        c.service_deregister("unit:colon")
    assert c.agent_service("unit:colon") is None


def test_register_errors_are_clear(sim):
    c = client(sim)
    with pytest.raises(salt.exceptions.CommandExecutionError) as err:
        c.service_register({"Name": "x", "ID": "x", "Checks": [{"HTTP": "http://x"}]})
    assert "register service x" in str(err.value) and "Interval must be > 0" in str(err.value)


def test_unreachable_and_bad_settings():
    with pytest.raises(hecate_http.Unreachable, match="unreachable: connection refused"):
        hc.ConsulClient({"url": "http://127.0.0.1:1", "retries": 0}).kv_get("x")
    with pytest.raises(salt.exceptions.SaltInvocationError, match="url is not set"):
        hc.ConsulClient({})
    with pytest.raises(salt.exceptions.SaltInvocationError, match="http"):
        hc.ConsulClient({"url": "consul:8500"})


def test_tls_verification_and_ca_bundle(tmp_path):
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert_path, key_path, ca_path = (str(tmp_path / n) for n in ("c.pem", "k.pem", "ca.pem"))
    cert.cert_chain_pems[0].write_to_path(cert_path)
    cert.private_key_pem.write_to_path(key_path)
    ca.cert_pem.write_to_path(ca_path)
    handle = SimHandle("consul", str(tmp_path / "sim"), {}, tls=(cert_path, key_path, ca_path)).start()
    try:
        with pytest.raises(hecate_http.Unreachable, match="TLS verification failed"):
            hc.ConsulClient({"url": handle.url, "retries": 0}).kv_get("x")
        ok = hc.ConsulClient({"url": handle.url, "ca_bundle": ca_path})
        assert ok.kv_put("tls/x", "1") is True
    finally:
        handle.stop()


def test_from_config_resolves_token_and_caches(sim):
    opts = {"hecate": {"connections": {"consul": {"url": sim.url, "token": MGMT}}}}
    context = {}
    first = hc.from_config(opts, {}, context=context)
    assert hc.from_config(opts, {}, context=context) is first
    assert first.kv_put("unit/cfg", "1")
    pillar_only = {"hecate": {"connections": {"consul": {"url": sim.url}}}}
    with pytest.raises(salt.exceptions.CommandExecutionError, match="permission denied"):
        hc.from_config({}, pillar_only).kv_get("unit/cfg")


def test_every_client_call_carries_the_token(sim):
    """
    Under default deny (as pillar/hecate.sls asks) a request without X-Consul-Token is
    either refused or silently filtered to nothing (health, catalog, listings): every
    public ConsulClient method is run here and the simulator's request log, which records
    each request's token by name, must show hecate's token on every one of them.
    """
    c = client(sim)
    called = set()

    def run(name, *args, **kwargs):
        called.add(name)
        return getattr(c, name)(*args, **kwargs)

    sim.clear_requests()
    run("kv_put", "unit/tok/a", "1")
    run("kv_put_cas", "unit/tok/b", "2", 0)
    run("put_json", "unit/tok/rec", {"a": 1})
    assert run("get_json", "unit/tok/rec") == {"a": 1}
    assert run("kv_get", "unit/tok/a")[1]["Value"] == b"1"
    assert [e["Key"] for e in run("kv_list", "unit/tok/")] == ["unit/tok/a", "unit/tok/b", "unit/tok/rec"]
    assert run("kv_keys", "unit/tok/") == ["unit/tok/a", "unit/tok/b", "unit/tok/rec"]
    run("service_register", hc.service_definition("tok-1", {"name": "unit-tok", "address": "127.0.0.1", "port": 9,
                                                           "checks": [{"ttl": "30s"}]}))
    assert run("agent_service", "tok-1")["Service"] == "unit-tok"  # exists: read needs the token
    assert "tok-1" in run("agent_services")
    assert list(run("agent_checks", "tok-1")) == ["service:tok-1"]
    assert len(run("health_service", "unit-tok", passing=False)) == 1
    assert run("service_addresses", "unit-tok", passing=False) == ["127.0.0.1:9"]
    assert "unit-tok" in run("catalog_services")
    assert run("service_deregister", "tok-1") is True
    session = run("session_create", "unit tok", ttl="10s")
    assert run("session_info", session)["ID"] == session
    assert any(s["ID"] == session for s in run("session_list"))
    run("session_renew", session)
    assert run("session_destroy", session) is True
    lock = run("lock_acquire", "unit/tok/lock", holder="unit test")
    assert run("lock_info", "unit/tok/lock")["holder"] == "unit test"
    run("lock_renew", lock)
    assert run("lock_release", "unit/tok/lock", lock) is True
    assert run("kv_delete", "unit/tok", recurse=True) is True

    public = {n for n in vars(hc.ConsulClient) if not n.startswith("_") and callable(getattr(hc.ConsulClient, n))}
    assert called == public, f"not exercised here: {sorted(public - called)}"
    log = sim.requests()
    assert log and [r for r in log if r.get("token") != "management"] == []
    # the same calls without the token: refused or empty, never what the token sees
    anonymous = client(sim, token=None)
    assert anonymous.catalog_services() == {} and anonymous.agent_services() == {}
    with pytest.raises(salt.exceptions.CommandExecutionError, match="permission denied"):
        anonymous.kv_get("unit/tok/a")


# -- conditional writes whose answer is lost (the sim applies them, then closes the connection)
def _puts(sim, path):
    return [r for r in sim.requests() if r["method"] == "PUT" and r["path"] == path]


def test_cas_write_whose_answer_was_lost_is_decided_by_reading_the_key(sim):
    c = client(sim)
    sim.clear_requests()
    sim.fault(method="PUT", path=r"^/v1/kv/unit/lost/rec$", query=r"cas=", action="apply_then_drop", times=1)
    assert c.put_json("unit/lost/rec", {"v": 1}, cas=0) is True  # not "already exists"
    assert c.get_json("unit/lost/rec") == {"v": 1}
    _, entry = c.kv_get("unit/lost/rec")
    sim.fault(method="PUT", path=r"^/v1/kv/unit/lost/rec$", query=r"cas=", action="apply_then_drop", times=1)
    assert c.kv_put_cas("unit/lost/rec", "v2", entry["ModifyIndex"]) is True  # not "changed since read"
    assert c.kv_get("unit/lost/rec")[1]["Value"] == b"v2"
    # each write was sent once: a read decided, nothing was resent
    assert len(_puts(sim, "/v1/kv/unit/lost/rec")) == 2
    # dropped before it was applied: the read shows the condition still holds, so it is sent again
    _, entry = c.kv_get("unit/lost/rec")
    sim.fault(method="PUT", path=r"^/v1/kv/unit/lost/rec$", action="drop", times=1)
    assert c.kv_put_cas("unit/lost/rec", "v3", entry["ModifyIndex"]) is True
    assert c.kv_get("unit/lost/rec")[1]["Value"] == b"v3"
    # a real conflict stays one: someone else's value is there
    _, entry = c.kv_get("unit/lost/rec")
    c.kv_put("unit/lost/rec", "theirs")
    sim.fault(method="PUT", path=r"^/v1/kv/unit/lost/rec$", query=r"cas=", action="drop", times=1)
    with pytest.raises(hc.CASConflict, match="changed since it was read"):
        c.kv_put_cas("unit/lost/rec", "v4", entry["ModifyIndex"])
    assert c.kv_get("unit/lost/rec")[1]["Value"] == b"theirs"


def test_lock_acquire_and_release_whose_answers_were_lost(sim):
    c = client(sim)
    sim.clear_requests()
    sim.fault(method="PUT", path=r"^/v1/session/create$", action="apply_then_drop", times=1)
    sim.fault(method="PUT", path=r"^/v1/kv/unit/lost/lock$", query=r"acquire=", action="apply_then_drop", times=1)
    session = c.lock_acquire("unit/lost/lock", "me", ttl="5s", lock_delay="0s")
    info = c.lock_info("unit/lost/lock")
    assert info["held"] and info["holder"] == "me" and info["session"] == session
    # the session whose create lost its answer is the one in use: none was left behind
    mine = [s for s in c.session_list() if s["Name"].startswith("hecate lock unit/lost/lock #")]
    assert [s["ID"] for s in mine] == [session]
    assert len(_puts(sim, "/v1/session/create")) == 1
    sim.fault(method="PUT", path=r"^/v1/kv/unit/lost/lock$", query=r"release=", action="apply_then_drop", times=1)
    assert c.lock_release("unit/lost/lock", session) is True  # not LockLost
    info = c.lock_info("unit/lost/lock")
    assert not info["held"] and info["last_holder"] == "me" and info["released"]


def test_lost_answers_while_unreachable_say_the_write_may_have_landed(sim):
    c = client(sim, retries=0)
    sim.fault(method="PUT", path=r"^/v1/kv/unit/lost/down$", action="apply_then_drop", times=1)
    sim.fault(method="GET", path=r"^/v1/kv/unit/lost/down$", action="drop")
    try:
        with pytest.raises(hecate_http.Unreachable, match="was sent but not answered and may have been applied"):
            c.kv_put_cas("unit/lost/down", "x", 0)
    finally:
        sim.clear_faults()
    assert c.kv_get("unit/lost/down")[1]["Value"] == b"x"
