"""The shared HTTP client: retries, error text, TLS verification, secrets kept out of messages."""

import os

import pytest
import trustme

import hecate_http
from lab.sim import SimHandle


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    handle = SimHandle("vault", str(tmp_path_factory.mktemp("vault")), {"root_token": "t0ken-x"}).start()
    yield handle
    handle.stop()


@pytest.fixture(autouse=True)
def _clean(sim):
    sim.clear_faults()
    sim.clear_requests()


def client(sim, **kw):
    kw.setdefault("backoff", 0)
    return hecate_http.Client(sim.url, "Vault", headers={"X-Vault-Token": "t0ken-x"}, **kw)


@pytest.mark.parametrize(
    "body,text",
    [
        ({"error": "key already exists"}, "key already exists"),
        ({"errors": ["permission denied"]}, "permission denied"),
        ({"detail": "Token invalid/expired"}, "Token invalid/expired"),
        ({"invalidation_flow": ["This field is required."]}, "invalidation_flow: This field is required."),
        ({"redirect_uris": [{"url": ["Invalid Regex Pattern"]}]}, "redirect_uris.url: Invalid Regex Pattern"),
        ("Job spec is empty\n", "Job spec is empty"),
        (None, ""),
    ],
)
def test_error_text(body, text):
    assert hecate_http.error_text(body) == text


def test_retries_idempotent_request_on_503(sim):
    sim.fault(method="GET", path="/v1/sys/health", status=503, body={"errors": ["busy"]}, times=2)
    resp = client(sim).request("GET", "/v1/sys/health")
    assert resp.status_code == 200
    assert [r["status"] for r in sim.requests()] == [503, 503, 200]


def test_post_is_not_retried_on_5xx(sim):
    sim.fault(method="POST", path="/v1/secret/data/x", status=503, body={"errors": ["busy"]}, times=1)
    with pytest.raises(hecate_http.HTTPError) as err:
        client(sim).request("POST", "/v1/secret/data/x", json={"data": {"a": 1}})
    assert err.value.status == 503
    assert len(sim.requests()) == 1


def test_gives_up_after_retries_with_clear_message(sim):
    sim.fault(method="GET", status=503, body={"errors": ["Vault is sealed"]})
    with pytest.raises(hecate_http.HTTPError) as err:
        client(sim, retries=2).request("GET", "/v1/secret/data/x?token=t0ken-x")
    msg = str(err.value)
    assert msg == "Vault: GET /v1/secret/data/x returned 503: Vault is sealed"
    assert "t0ken-x" not in msg
    assert len(sim.requests()) == 3


def test_dropped_connection_is_retried_for_get(sim):
    sim.fault(method="GET", path="/v1/sys/health", action="drop", times=1)
    assert client(sim).request("GET", "/v1/sys/health").status_code == 200


def test_conditional_write_is_not_resent_after_its_answer_was_lost(sim):
    # a PUT is retried after a lost answer: sent again, it does the same thing...
    sim.fault(method="PUT", path="/v1/secret/data/x", action="apply_then_drop", times=1)
    assert client(sim).request("PUT", "/v1/secret/data/x", json={"data": {"a": 1}}).status_code == 200
    assert [r.get("dropped", False) for r in sim.requests()] == [True, False]
    # ...but a conditional one (If-Match, or idempotent=False for a CAS in the query) is not:
    # applied once, it would fail its own condition when sent again
    for kw in ({"headers": {"If-Match": '"/config/ abc"'}}, {"idempotent": False}):
        sim.clear_requests()
        sim.fault(method="PUT", path="/v1/secret/data/x", action="apply_then_drop", times=1)
        with pytest.raises(hecate_http.Unreachable):
            client(sim).request("PUT", "/v1/secret/data/x", json={"data": {"a": 1}}, **kw)
        assert len(sim.requests()) == 1
    # a connection refused before anything was sent is retried for them too
    dead = hecate_http.Client("http://127.0.0.1:9", "Consul", retries=1, backoff=0)
    with pytest.raises(hecate_http.Unreachable, match="connection refused"):
        dead.request("PUT", "/v1/kv/x?cas=0", idempotent=False)


def test_uncertain_write_decides_by_reading():
    sent = []

    def send():
        sent.append(1)
        raise hecate_http.Unreachable("no answer")

    # landed: done; not there: sent again (up to attempts); an error reading says it may have landed
    assert hecate_http.uncertain_write("w", send, lambda: "found") == "found" and len(sent) == 1
    sent.clear()
    with pytest.raises(hecate_http.Unreachable, match="sent 3 times without an answer and not applied"):
        hecate_http.uncertain_write("w", send, lambda: None)
    assert len(sent) == 3

    def down():
        raise hecate_http.Unreachable("Consul at x is unreachable: connection refused")

    with pytest.raises(hecate_http.Unreachable, match="w was sent but not answered and may have been applied"):
        hecate_http.uncertain_write("w", send, down)


def test_unreachable(sim):
    dead = hecate_http.Client("http://127.0.0.1:9", "Consul", retries=0)
    with pytest.raises(
        hecate_http.Unreachable, match="Consul at http://127.0.0.1:9 is unreachable: connection refused"
    ):
        dead.request("GET", "/v1/status/leader")


def test_timeout_names_the_request_also_after_retries(sim):
    # read timeouts of idempotent requests are retried; when the retries run out the error
    # still says which request timed out (not just "unreachable")
    sim.fault(method="GET", path="/v1/sys/health", delay=1.5, times=3)
    for retries in (0, 2):
        with pytest.raises(hecate_http.Unreachable) as err:
            client(sim, retries=retries, timeout=0.5).request("GET", "/v1/sys/health?token=t0ken-x")
        assert str(err.value) == f"Vault at {sim.url}: GET /v1/sys/health timed out"
        sim.clear_faults()
        sim.fault(method="GET", path="/v1/sys/health", delay=1.5, times=3)


def test_ok_statuses_and_json(sim):
    c = client(sim)
    assert c.json("GET", "/v1/secret/data/none", ok=(200, 404)) == {"errors": []}
    with pytest.raises(hecate_http.HTTPError) as err:
        c.json("GET", "/v1/secret/data/none")
    assert err.value.status == 404
    assert c.stats["GET"] == 2


@pytest.fixture(scope="module")
def tls_sim(tmp_path_factory):
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    d = tmp_path_factory.mktemp("tls")
    paths = {n: str(d / f"{n}.pem") for n in ("cert", "key", "ca")}
    cert.cert_chain_pems[0].write_to_path(paths["cert"])
    for blob in cert.cert_chain_pems[1:]:
        blob.write_to_path(paths["cert"], append=True)
    cert.private_key_pem.write_to_path(paths["key"])
    ca.cert_pem.write_to_path(paths["ca"])
    handle = SimHandle("vault", str(d), {"root_token": "x"},
                       tls=(paths["cert"], paths["key"], paths["ca"])).start()
    yield handle, paths["ca"]
    handle.stop()


def test_tls_verification_is_on_by_default(tls_sim):
    handle, _ = tls_sim
    c = hecate_http.Client(handle.url, "Vault", retries=0)
    with pytest.raises(hecate_http.Unreachable, match="TLS verification failed"):
        c.request("GET", "/v1/sys/health")


def test_tls_ca_bundle(tls_sim):
    handle, ca = tls_sim
    c = hecate_http.Client(handle.url, "Vault", ca_bundle=ca)
    assert c.request("GET", "/v1/sys/health").status_code == 200
    assert os.path.exists(ca)
