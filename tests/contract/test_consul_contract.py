"""
Consul HTTP API contract: lab simulator vs a real Consul agent (CONSUL_HTTP_ADDR, e.g.
``consul agent -dev``; CONSUL_HTTP_TOKEN when ACLs are on). The same assertions run
against both; a simulator that drifts from Consul fails here first.
"""

import base64
import http.server
import os
import socket
import threading
import time
import urllib.parse
import uuid

import pytest
import requests
import salt.exceptions

import hecate_consul_client
from tests.contract.conftest import real_or_skip


@pytest.fixture(params=["sim", "real"], scope="module")
def consul(request, consul_sim):
    if request.param == "sim":
        return consul_sim.url, consul_sim.token
    env = real_or_skip("CONSUL_HTTP_ADDR")
    addr = env["CONSUL_HTTP_ADDR"].rstrip("/")
    if "://" not in addr:
        addr = "http://" + addr
    return addr, os.environ.get("CONSUL_HTTP_TOKEN")


def call(consul, method, path, **kw):
    url, token = consul
    headers = kw.pop("headers", {})
    if token:
        headers.setdefault("X-Consul-Token", token)
    return requests.request(method, url + path, headers=headers, timeout=30, **kw)


@pytest.fixture
def prefix():
    return f"hecate-contract/{uuid.uuid4().hex[:12]}"


@pytest.fixture
def session(consul):
    created = []

    def make(**body):
        resp = call(consul, "PUT", "/v1/session/create", json=body)
        assert resp.status_code == 200, resp.text
        created.append(resp.json()["ID"])
        return created[-1]

    yield make
    for sid in created:
        call(consul, "PUT", f"/v1/session/destroy/{sid}")


@pytest.fixture
def services(consul):
    ids = []
    yield ids
    for sid in ids:
        call(consul, "PUT", f"/v1/agent/service/deregister/{sid}")


# -- KV ------------------------------------------------------------------------------------------
def test_missing_key_is_404_with_index(consul, prefix):
    resp = call(consul, "GET", f"/v1/kv/{prefix}/nope")
    assert resp.status_code == 404
    assert resp.content == b""
    assert int(resp.headers["X-Consul-Index"]) >= 1
    assert resp.headers["X-Consul-KnownLeader"] == "true"


def test_put_get_flags_indexes_and_cas(consul, prefix):
    key = f"{prefix}/a"
    assert call(consul, "PUT", f"/v1/kv/{key}?flags=42", data=b"one").json() is True
    resp = call(consul, "GET", f"/v1/kv/{key}")
    (entry,) = resp.json()
    assert base64.b64decode(entry["Value"]) == b"one"
    assert entry["Flags"] == 42 and entry["LockIndex"] == 0 and "Session" not in entry
    assert entry["CreateIndex"] == entry["ModifyIndex"] == int(resp.headers["X-Consul-Index"])
    # cas=0 only creates
    assert call(consul, "PUT", f"/v1/kv/{key}?cas=0", data=b"two").json() is False
    # wrong index: refused; right index: applied
    assert call(consul, "PUT", f"/v1/kv/{key}?cas={entry['ModifyIndex'] + 1000}", data=b"two").json() is False
    assert call(consul, "PUT", f"/v1/kv/{key}?cas={entry['ModifyIndex']}", data=b"two").json() is True
    (after,) = call(consul, "GET", f"/v1/kv/{key}").json()
    assert after["ModifyIndex"] > entry["ModifyIndex"] and after["CreateIndex"] == entry["CreateIndex"]
    assert after["Flags"] == 0  # a PUT without ?flags resets them
    raw = call(consul, "GET", f"/v1/kv/{key}?raw")
    assert raw.status_code == 200 and raw.content == b"two"


def test_empty_value_is_null(consul, prefix):
    assert call(consul, "PUT", f"/v1/kv/{prefix}/empty").json() is True
    assert call(consul, "GET", f"/v1/kv/{prefix}/empty").json()[0]["Value"] is None


def test_recurse_keys_and_separator(consul, prefix):
    for key in ("x/1", "x/2", "y/z/3", "top"):
        call(consul, "PUT", f"/v1/kv/{prefix}/{key}", data=key.encode())
    entries = call(consul, "GET", f"/v1/kv/{prefix}/?recurse").json()
    assert [e["Key"] for e in entries] == [f"{prefix}/{k}" for k in ("top", "x/1", "x/2", "y/z/3")]
    keys = call(consul, "GET", f"/v1/kv/{prefix}/?keys&separator=/").json()
    assert keys == [f"{prefix}/top", f"{prefix}/x/", f"{prefix}/y/"]
    assert call(consul, "GET", f"/v1/kv/{prefix}/none/?recurse").status_code == 404
    assert call(consul, "GET", f"/v1/kv/{prefix}/none/?keys").status_code == 404


def test_delete_cas_and_recurse(consul, prefix):
    call(consul, "PUT", f"/v1/kv/{prefix}/d", data=b"1")
    (entry,) = call(consul, "GET", f"/v1/kv/{prefix}/d").json()
    assert call(consul, "DELETE", f"/v1/kv/{prefix}/d?cas={entry['ModifyIndex'] + 1000}").json() is False
    assert call(consul, "DELETE", f"/v1/kv/{prefix}/d?cas={entry['ModifyIndex']}").json() is True
    assert call(consul, "GET", f"/v1/kv/{prefix}/d").status_code == 404
    call(consul, "PUT", f"/v1/kv/{prefix}/r/1", data=b"1")
    call(consul, "PUT", f"/v1/kv/{prefix}/r/2", data=b"2")
    assert call(consul, "DELETE", f"/v1/kv/{prefix}/r?recurse").json() is True
    assert call(consul, "GET", f"/v1/kv/{prefix}/r?recurse").status_code == 404


def test_conflicting_flags_and_missing_key(consul, prefix):
    resp = call(consul, "PUT", f"/v1/kv/{prefix}/c?cas=0&acquire=x", data=b"1")
    assert resp.status_code == 400 and resp.text.startswith("Conflicting flags")
    resp = call(consul, "PUT", "/v1/kv/", data=b"1")
    assert resp.status_code == 400 and resp.text == "Missing key name"


def _version(consul):
    text = call(consul, "GET", "/v1/agent/self").json()["Config"]["Version"]
    return tuple(int(n) for n in text.split("+")[0].split("-")[0].split(".")[:3])


def test_key_names_refused_as_the_version_does(consul, prefix):
    """
    hashicorp/consul agent/kvs_endpoint.go: ``KVSEndpoint`` runs ``validateKVKey`` on every
    key (unless ``disable_kv_key_validation``) and its plain error becomes a 500.
    1.21.6+/1.22+ (consul#22931, #22939; CVE-2025-11392): leading/trailing spaces and '..'
    segments, also after decoding percent-escapes, are refused; anything else is allowed.
    1.21.5 (consul#22682): a whitelist, quoted in consul#22835. hecate's check_key refuses
    what the newer rule refuses (plus what HTTP would rewrite), and not more.
    """
    version = _version(consul)
    refused = (f" {prefix}/lead", f"{prefix}/trail ", f"{prefix}/a%20b", f"{prefix}/a%2e%2e%2fb")
    allowed = (f"{prefix}/with space", f"{prefix}/con..fig", f"{prefix}/foo:bar")
    for key in refused + allowed:
        resp = call(consul, "PUT", "/v1/kv/" + urllib.parse.quote(key, safe="/"), data=b"1")
        if version < (1, 21, 5):
            assert resp.status_code == 200 and resp.json() is True
        elif version < (1, 21, 6):
            assert resp.status_code == 500 and resp.text.startswith("invalid key name, keys should respect")
        elif key in refused:
            assert resp.status_code == 500, (key, resp.text)
            assert resp.text in ("invalid key name, leading/trailing spaces are not allowed",
                                 "invalid key name, path traversal is not allowed")
            with pytest.raises(salt.exceptions.SaltInvocationError):
                hecate_consul_client.check_key(key)
        else:
            assert resp.status_code == 200 and resp.json() is True, (key, resp.text)
            assert hecate_consul_client.check_key(key) == key


def test_keys_on_the_root_is_a_list(consul):
    """KVSGetKeys: "We do not generate not found for the root, but just provide the empty list"."""
    resp = call(consul, "GET", "/v1/kv/?keys&separator=/")
    assert resp.status_code == 200 and isinstance(resp.json(), list)
    assert int(resp.headers["X-Consul-Index"]) >= 1


def test_blocking_query_returns_on_change(consul, prefix):
    key = f"{prefix}/watch"
    call(consul, "PUT", f"/v1/kv/{key}", data=b"1")
    first = call(consul, "GET", f"/v1/kv/{key}")
    index = int(first.headers["X-Consul-Index"])
    timer = threading.Timer(0.5, lambda: call(consul, "PUT", f"/v1/kv/{key}", data=b"2"))
    timer.start()
    started = time.monotonic()
    resp = call(consul, "GET", f"/v1/kv/{key}?index={index}&wait=20s")
    timer.join()
    assert resp.status_code == 200
    assert int(resp.headers["X-Consul-Index"]) > index
    assert base64.b64decode(resp.json()[0]["Value"]) == b"2"
    assert time.monotonic() - started < 15  # it returned on the write, not at the wait
    # no change: returns at the wait with the same index
    resp = call(consul, "GET", f"/v1/kv/{key}?index={resp.headers['X-Consul-Index']}&wait=1s")
    assert resp.status_code == 200


def test_bad_wait_is_400(consul, prefix):
    resp = call(consul, "GET", f"/v1/kv/{prefix}/x?index=1&wait=forever")
    assert resp.status_code == 400 and resp.text == "Invalid wait time"


# agent/http.go parseWait: ?index is strconv.ParseUint (no sign, no spaces, fits 64 bits) and
# ?wait time.ParseDuration (no spaces); agent/health_endpoint.go getBoolQueryParam: ?passing is
# strconv.ParseBool (1 t T TRUE true True 0 f F FALSE false False; empty means true), else 400.
@pytest.mark.parametrize("index", ["+5", " 5", "-1", "18446744073709551616", "0x10"])
def test_index_is_a_go_uint(consul, prefix, index):
    resp = call(consul, "GET", f"/v1/kv/{prefix}/x", params={"index": index})
    assert resp.status_code == 400 and resp.text == "Invalid index"


@pytest.mark.parametrize(("value", "status"), [("tRuE", 400), ("yes", 400), ("True", 200), ("F", 200),
                                               ("", 200)])
def test_passing_is_a_go_bool(consul, value, status):
    resp = call(consul, "GET", "/v1/health/service/hecate-none", params={"passing": value})
    assert resp.status_code == status
    if status == 400:
        assert resp.text == "Invalid value for ?passing"


def test_conditional_writes_sent_twice(consul, prefix, session):
    """
    Why hecate never resends a conditional write whose answer was lost, but re-reads
    (hecate_http.uncertain_write, hecate_consul_client._put_landed): applied once, the same
    request fails its own condition the second time. hashicorp/consul agent/kvs_endpoint.go
    ``KVSPut`` returns the RPC's bool for cas/acquire/release; agent/consul/state/kvs.go
    ``kvsSetCASTxn`` (cas=0 only if absent, else ModifyIndex must match), ``kvsLockTxn``
    (the holder may acquire again), ``kvsUnlockTxn`` (only the holder releases), and
    ``kvsDeleteCASTxn`` (a missing key counts as deleted). A session create sent twice makes
    two sessions (agent/session_endpoint.go ``SessionCreate``): hecate's lock sessions carry
    a unique Name, which /v1/session/list shows, to find the one a lost answer created.
    """
    key = f"{prefix}/twice"
    assert call(consul, "PUT", f"/v1/kv/{key}?cas=0", data=b"mine").json() is True
    assert call(consul, "PUT", f"/v1/kv/{key}?cas=0", data=b"mine").json() is False  # "already exists"
    (entry,) = call(consul, "GET", f"/v1/kv/{key}").json()
    index = entry["ModifyIndex"]
    assert call(consul, "PUT", f"/v1/kv/{key}?cas={index}", data=b"v2").json() is True
    assert call(consul, "PUT", f"/v1/kv/{key}?cas={index}", data=b"v2").json() is False  # "changed"
    (entry,) = call(consul, "GET", f"/v1/kv/{key}").json()
    assert call(consul, "DELETE", f"/v1/kv/{key}?cas={entry['ModifyIndex']}").json() is True
    assert call(consul, "DELETE", f"/v1/kv/{key}?cas={entry['ModifyIndex']}").json() is True

    name = f"hecate lock {prefix}/lock #{uuid.uuid4().hex[:8]}"
    sid = session(Name=name, TTL="15s", LockDelay="0s")
    assert [s["ID"] for s in call(consul, "GET", "/v1/session/list").json() if s["Name"] == name] == [sid]
    lock = f"{prefix}/lock"
    assert call(consul, "PUT", f"/v1/kv/{lock}?acquire={sid}", data=b"rec").json() is True
    assert call(consul, "PUT", f"/v1/kv/{lock}?acquire={sid}", data=b"rec").json() is True
    assert call(consul, "PUT", f"/v1/kv/{lock}?release={sid}", data=b"done").json() is True
    assert call(consul, "PUT", f"/v1/kv/{lock}?release={sid}", data=b"done").json() is False  # "lost"


# -- sessions and locks ----------------------------------------------------------------------------
def test_lock_acquire_release_and_invalidation(consul, prefix, session):
    key = f"{prefix}/lock"
    one = session(Name="one", LockDelay="15s")
    two = session(Name="two", LockDelay="0s")
    assert call(consul, "PUT", f"/v1/kv/{key}?acquire={one}", data=b"held by one").json() is True
    (entry,) = call(consul, "GET", f"/v1/kv/{key}").json()
    assert entry["Session"] == one and entry["LockIndex"] == 1
    assert call(consul, "PUT", f"/v1/kv/{key}?acquire={two}", data=b"mine").json() is False
    assert call(consul, "PUT", f"/v1/kv/{key}?release={two}").json() is False
    # a plain PUT keeps the holder
    call(consul, "PUT", f"/v1/kv/{key}", data=b"updated")
    assert call(consul, "GET", f"/v1/kv/{key}").json()[0]["Session"] == one
    # destroying the session releases the key and starts its lock-delay (15s)
    assert call(consul, "PUT", f"/v1/session/destroy/{one}").json() is True
    (entry,) = call(consul, "GET", f"/v1/kv/{key}").json()
    assert "Session" not in entry
    assert call(consul, "PUT", f"/v1/kv/{key}?acquire={two}").json() is False
    # release with the right session works; LockIndex counts acquisitions
    key2 = f"{prefix}/lock2"
    assert call(consul, "PUT", f"/v1/kv/{key2}?acquire={two}").json() is True
    assert call(consul, "PUT", f"/v1/kv/{key2}?release={two}").json() is True
    assert call(consul, "PUT", f"/v1/kv/{key2}?acquire={two}").json() is True
    assert call(consul, "GET", f"/v1/kv/{key2}").json()[0]["LockIndex"] == 2


def test_acquire_with_unknown_session_fails(consul, prefix):
    resp = call(consul, "PUT", f"/v1/kv/{prefix}/l?acquire={uuid.uuid4()}")
    assert resp.status_code == 500
    assert "invalid session" in resp.text.lower()


# agent/consul/kvs_endpoint.go kvsPreApply refuses a lock during its lock-delay (false) before
# the raft apply, where state/kvs.go kvsLockTxn checks that the session exists ("invalid
# session"): a key in lock-delay answers false even to an unknown session.
def test_lock_delay_is_checked_before_the_session(consul, prefix, session):
    key = f"{prefix}/delayed"
    holder = session(Name="holder", LockDelay="15s")
    assert call(consul, "PUT", f"/v1/kv/{key}?acquire={holder}").json() is True
    assert call(consul, "PUT", f"/v1/session/destroy/{holder}").json() is True
    resp = call(consul, "PUT", f"/v1/kv/{key}?acquire={uuid.uuid4()}")
    assert resp.status_code == 200 and resp.json() is False


def test_session_info_renew_errors(consul, session):
    sid = session(Name="info", TTL="30s", Behavior="delete")
    (info,) = call(consul, "GET", f"/v1/session/info/{sid}").json()
    assert info["ID"] == sid and info["TTL"] == "30s" and info["Behavior"] == "delete"
    assert info["LockDelay"] == 15 * 10**9
    renewed = call(consul, "PUT", f"/v1/session/renew/{sid}")
    assert renewed.status_code == 200 and renewed.json()[0]["ID"] == sid
    # agent/session_endpoint.go SessionRenew sets no query meta (unlike SessionGet)
    assert "X-Consul-Index" not in renewed.headers
    missing = str(uuid.uuid4())
    assert call(consul, "GET", f"/v1/session/info/{missing}").json() == []
    resp = call(consul, "PUT", f"/v1/session/renew/{missing}")
    assert resp.status_code == 404 and resp.text == f"Session id '{missing}' not found"


# agent/consul/state/session.go: SessionGet answers the sessions table's max index
# (maxIndexTxnSessions), not the session's own ModifyIndex, so a blocking read of one session
# wakes on any session change; deleteSessionTxn caps LockDelay at structs.MaxLockDelay (60s)
# only when it applies the delay: the session keeps (and shows) the LockDelay it was given.
def test_session_info_index_and_uncapped_lock_delay(consul, session):
    first = session(Name="first", LockDelay="120s")
    (info,) = call(consul, "GET", f"/v1/session/info/{first}").json()
    assert info["LockDelay"] == 120 * 10**9
    second = session(Name="second")
    (later,) = call(consul, "GET", f"/v1/session/info/{second}").json()
    resp = call(consul, "GET", f"/v1/session/info/{first}")
    assert int(resp.headers["X-Consul-Index"]) >= later["CreateIndex"] > info["ModifyIndex"]


@pytest.mark.parametrize("ttl", ["0.5s", "90000s"])
def test_session_ttl_out_of_range(consul, ttl):
    resp = call(consul, "PUT", "/v1/session/create", json={"TTL": ttl})
    assert resp.status_code == 500
    assert "Invalid Session TTL" in resp.text


# -- services, health, catalog ---------------------------------------------------------------------
class _Ok(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


@pytest.fixture
def live_http():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/health"
    server.shutdown()
    server.server_close()


def _closed_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait(predicate, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    return predicate()


def test_register_runs_checks_for_real(consul, services, live_http):
    name = f"hc-{uuid.uuid4().hex[:8]}"
    up, down = f"{name}-up", f"{name}-down"
    services.extend([up, down])
    resp = call(consul, "PUT", "/v1/agent/service/register?replace-existing-checks=true", json={
        "ID": up, "Name": name, "Address": "127.0.0.1", "Port": 8080, "Tags": ["a"],
        "Meta": {"domain": "x.example"},
        "Check": {"HTTP": live_http, "Interval": "1s", "Timeout": "2s"},
    })
    assert resp.status_code == 200 and resp.content == b""
    port = _closed_port()
    resp = call(consul, "PUT", "/v1/agent/service/register", json={
        "id": down, "name": name, "address": "127.0.0.1", "port": port, "tags": ["b"],
        "checks": [{"tcp": f"127.0.0.1:{port}", "interval": "1s", "timeout": "1s"}],
    })
    assert resp.status_code == 200
    passing = _wait(
        lambda: [e["Service"]["ID"] for e in call(consul, "GET", f"/v1/health/service/{name}?passing").json()] == [up]
    )
    assert passing
    entries = call(consul, "GET", f"/v1/health/service/{name}").json()
    statuses = {e["Service"]["ID"]: {c["CheckID"]: c["Status"] for c in e["Checks"]} for e in entries}
    assert statuses[up] == {"serfHealth": "passing", f"service:{up}": "passing"}
    assert statuses[down] == {"serfHealth": "passing", f"service:{down}": "critical"}
    checks = call(consul, "GET", "/v1/agent/checks").json()
    mine = checks[f"service:{up}"]
    assert mine["Type"] == "http" and mine["Interval"] == "1s" and mine["Timeout"] == "2s"
    assert mine["Name"] == f"Service '{name}' check" and mine["ServiceName"] == name
    svc = call(consul, "GET", f"/v1/agent/service/{up}").json()
    assert svc["Service"] == name and svc["Port"] == 8080 and svc["Meta"] == {"domain": "x.example"}
    assert svc["Weights"] == {"Passing": 1, "Warning": 1}
    catalog = call(consul, "GET", "/v1/catalog/services").json()
    assert sorted(catalog[name]) == ["a", "b"] and "consul" in catalog
    # re-register without checks, replacing: the check goes away
    call(consul, "PUT", "/v1/agent/service/register?replace-existing-checks", json={"ID": up, "Name": name})
    assert f"service:{up}" not in call(consul, "GET", "/v1/agent/checks").json()


def test_register_rejects_unknown_fields_and_bad_checks(consul):
    resp = call(consul, "PUT", "/v1/agent/service/register", json={"Name": "x", "Bogus": 1})
    assert resp.status_code == 400
    assert resp.text == 'Request decode failed: json: unknown field "Bogus"'
    resp = call(
        consul, "PUT", "/v1/agent/service/register", json={"Name": "x", "Check": {"HTTP": "http://x", "Nope": 1}}
    )
    assert resp.status_code == 400 and resp.text == 'Request decode failed: json: unknown field "Nope"'
    resp = call(consul, "PUT", "/v1/agent/service/register", json={"Port": 1})
    assert resp.status_code == 400 and resp.text == "Missing service name"
    resp = call(consul, "PUT", "/v1/agent/service/register", json={"Name": "x", "Check": {"HTTP": "http://x"}})
    assert resp.status_code == 400
    assert resp.text == "Invalid check: Interval must be > 0 for Script, HTTP, H2PING, TCP, UDP or OSService checks"
    resp = call(consul, "PUT", "/v1/agent/service/register", json={"Name": "x", "Port": "80"})
    assert resp.status_code == 400 and resp.text.startswith("Request decode failed: json: cannot unmarshal string")


def test_deregister_unknown_and_methods(consul):
    resp = call(consul, "PUT", "/v1/agent/service/deregister/hecate-nope")
    assert resp.status_code == 404
    assert resp.text == 'Unknown service ID "hecate-nope". Ensure that the service ID is passed, not the service name.'
    assert call(consul, "GET", "/v1/agent/service/register").status_code == 405
    assert call(consul, "GET", "/v1/session/create").status_code == 405


def test_unknown_service_health_is_empty(consul):
    resp = call(consul, "GET", f"/v1/health/service/hecate-none-{uuid.uuid4().hex[:6]}")
    assert resp.status_code == 200 and resp.json() == []
    assert int(resp.headers["X-Consul-Index"]) >= 1


# -- the audit against hashicorp/consul (issue 18: C7-C10, C12) -------------------------------------
def test_http_details(consul, prefix, session):
    """
    agent/http.go parseWait (?wait= parsed even without ?index=); agent/kvs_endpoint.go KVSGet (a
    raw value is sandboxed) and conflictingFlags (url.Values.Encode, newline);
    agent/session_endpoint.go fixupEmptySessionChecks ("Checks": [] clears the default node check).
    """
    resp = call(consul, "GET", f"/v1/kv/{prefix}/x?wait=bogus")
    assert resp.status_code == 400 and resp.text.strip() == "Invalid wait time"
    call(consul, "PUT", f"/v1/kv/{prefix}/raw", data=b"<b>v</b>")
    resp = call(consul, "GET", f"/v1/kv/{prefix}/raw?raw")
    assert resp.content == b"<b>v</b>" and resp.headers["Content-Security-Policy"] == "sandbox"
    resp = call(consul, "PUT", f"/v1/kv/{prefix}/x?cas=0&acquire=a b")
    assert resp.status_code == 400 and resp.text == "Conflicting flags: acquire=a+b&cas=0\n"
    sid = session(Checks=[])
    info = call(consul, "GET", f"/v1/session/info/{sid}").json()[0]
    assert info["NodeChecks"] in ([], None)
    call(consul, "DELETE", f"/v1/kv/{prefix}?recurse")


def test_agent_service_hash(consul):
    """agent/agent_endpoint.go AgentService: ContentHash (%x) equals X-Consul-ContentHash; empty
    TaggedAddresses are left out (api.AgentService omitempty)."""
    sid = f"hecate-contract-{uuid.uuid4().hex[:8]}"
    try:
        assert call(consul, "PUT", "/v1/agent/service/register", json={"ID": sid, "Name": sid}).status_code == 200
        resp = call(consul, "GET", f"/v1/agent/service/{sid}")
        body = resp.json()
        assert body["ContentHash"] == resp.headers["X-Consul-ContentHash"]
        assert "TaggedAddresses" not in body
    finally:
        call(consul, "PUT", f"/v1/agent/service/deregister/{sid}")


def test_agent_services_and_health_service_by_tag(consul, services):
    """
    agent/agent_endpoint.go AgentServices: the agent's services keyed by ID (hecate_consul
    .agent_services); agent/health_endpoint.go HealthServiceNodes: ``?tag=`` keeps the
    instances that carry the tag (ServiceTags); hecate_consul.health_service(tag=...) sends
    it through py-consul's health.service (consul/api/health.py: one ``tag`` per tag).
    """
    name = f"hc-{uuid.uuid4().hex[:8]}"
    blue, green = f"{name}-blue", f"{name}-green"
    services.extend([blue, green])
    for sid, tags in ((blue, ["blue", "v1"]), (green, ["green", "v1"])):
        resp = call(consul, "PUT", "/v1/agent/service/register", json={"ID": sid, "Name": name, "Tags": tags})
        assert resp.status_code == 200, resp.text

    listed = call(consul, "GET", "/v1/agent/services").json()
    assert (listed[blue]["Service"], listed[blue]["Tags"]) == (name, ["blue", "v1"])

    def ids(tag):
        resp = call(consul, "GET", f"/v1/health/service/{name}", params={"tag": tag})
        assert resp.status_code == 200
        return sorted(e["Service"]["ID"] for e in resp.json())

    assert _wait(lambda: ids("v1") == [blue, green])  # the agent syncs to the catalog on its own
    assert ids("blue") == [blue]
    assert ids("red") == []


def test_catalog_registered_node_and_its_checks_in_the_health_endpoint(consul):
    """
    Another node's service (as each edge's agent registers its Caddy) through the catalog:
    /v1/health/service lists it under that node with its checks; ?passing leaves out a node
    whose check is not passing; a check without status is critical; deregistering the node
    removes it. Refusals: no node, no address.
    """
    node = f"hecate-contract-{uuid.uuid4().hex[:8]}"
    service = f"hecate-contract-caddy-{uuid.uuid4().hex[:6]}"

    def register(status=None, check_name="tcp"):
        check = {"Name": check_name, "ServiceID": service}
        if status:
            check["Status"] = status
        resp = call(consul, "PUT", "/v1/catalog/register", json={
            "Node": node, "Address": "192.0.2.77", "Service": {"Service": service, "Port": 443},
            "Check": check})
        assert resp.status_code == 200 and resp.json() is True, resp.text

    try:
        register("passing")
        every = call(consul, "GET", f"/v1/health/service/{service}").json()
        assert [e["Node"]["Node"] for e in every] == [node]
        assert every[0]["Service"]["ID"] == service  # the ID defaults to the name
        assert [(c["CheckID"], c["Status"]) for c in every[0]["Checks"]] == [("tcp", "passing")]
        assert len(call(consul, "GET", f"/v1/health/service/{service}?passing").json()) == 1
        register("critical")
        assert call(consul, "GET", f"/v1/health/service/{service}?passing").json() == []
        register(check_name="other")  # no status: critical
        statuses = {c["CheckID"]: c["Status"] for c in
                    call(consul, "GET", f"/v1/health/service/{service}").json()[0]["Checks"]}
        assert statuses == {"tcp": "critical", "other": "critical"}
    finally:
        resp = call(consul, "PUT", "/v1/catalog/deregister", json={"Node": node})
        assert resp.status_code == 200, resp.text
    assert call(consul, "GET", f"/v1/health/service/{service}").json() == []
    resp = call(consul, "PUT", "/v1/catalog/register", json={"Address": "192.0.2.77"})
    assert resp.status_code == 500 and "Must provide node" in resp.text
    resp = call(consul, "PUT", "/v1/catalog/register", json={"Node": node})
    assert resp.status_code == 500 and "Must provide address" in resp.text


# agent/http.go wrap: a method the endpoint does not declare is MethodNotAllowedError: 405,
# "method <M> not allowed", and an Allow header of OPTIONS plus the declared methods
# (addAllowHeader joins them with ","); agent/http_register.go declares PUT for
# /v1/session/create and /v1/agent/service/register, GET for /v1/health/service/.
@pytest.mark.parametrize(("method", "path", "allow"), [
    ("GET", "/v1/session/create", "OPTIONS,PUT"),
    ("GET", "/v1/agent/service/register", "OPTIONS,PUT"),
    ("PUT", "/v1/health/service/hecate-none", "OPTIONS,GET"),
])
def test_method_not_allowed_names_the_allowed_methods(consul, method, path, allow):
    resp = call(consul, method, path)
    assert resp.status_code == 405
    assert resp.text == f"method {method} not allowed"
    assert resp.headers["Allow"] == allow
