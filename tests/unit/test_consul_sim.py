"""
The Consul simulator itself, in-process (werkzeug test client): KV key-name checks per
Consul version, ``?keys`` on the root, Go's path cleaning, and the fault that applies a
write and drops its answer.

Sources (hashicorp/consul): agent/kvs_endpoint.go ``KVSEndpoint``/``KVSGetKeys`` and
``validateKVKey`` (1.21.6+/1.22+, consul#22931/#22939; 1.21.5: consul#22682 with the
whitelist quoted in consul#22835).
"""

import urllib.parse

import pytest
from werkzeug.test import Client

from lab.sim import consul as csim

SPACES = "invalid key name, leading/trailing spaces are not allowed"
TRAVERSAL = "invalid key name, path traversal is not allowed"
WHITELIST = 'invalid key name, keys should respect the "^[a-zA-Z0-9,_./\\\\-?&=]+$" format'


def make(**options):
    return Client(csim.ConsulSim(options))


def put(client, key, data=b"v", **query):
    path = "/v1/kv/" + urllib.parse.quote(key, safe="/") + ("?" + urllib.parse.urlencode(query) if query else "")
    return client.put(path, data=data)


@pytest.mark.parametrize("key,problem", [
    (" lead", SPACES),
    ("trail ", SPACES),
    ("a%20b", SPACES),  # a percent-escape that decodes to a space
    ("a%2e%2e%2fb", TRAVERSAL),  # ... to a traversal
    ("x/%2E%2E/y", TRAVERSAL),
    ("ok/with space", None),
    ("con..fig", None),
    ("foo:bar;baz*", None),
    ("fooçbar", None),
    ("100%", None),  # not a valid escape: left as it is
    ("dir/", None),
])
def test_key_names_as_consul_1_22_checks_them(key, problem):
    client = make()
    resp = put(client, key)
    if problem is None:
        assert resp.status_code == 200 and resp.json is True, resp.text
        assert client.get("/v1/kv/" + urllib.parse.quote(key, safe="/")).status_code == 200
    else:
        assert resp.status_code == 500 and resp.text == problem
        # every method checks it, before ACLs
        assert client.get("/v1/kv/" + urllib.parse.quote(key, safe="/")).text == problem
        assert client.delete("/v1/kv/" + urllib.parse.quote(key, safe="/")).text == problem


def test_key_names_as_consul_1_21_5_checks_them():
    client = make(version="1.21.5")
    for key in ("a b", "foo:bar", "fooçbar", "foo*bar", "con..fig"):
        resp = put(client, key)
        assert resp.status_code == 500 and resp.text == WHITELIST, key
    assert put(client, "hecate/deployments/prod/20261123T120000Z-ab12?x=1&y").status_code == 200


def test_key_names_before_1_21_5_and_with_validation_disabled():
    assert put(make(version="1.21.4"), " lead").json is True
    resp = put(make(disable_kv_key_validation=True), " lead")
    assert resp.json is True
    assert resp.headers["X-Consul-KV-Warning"] == (
        f"KV key validation bypassed: {SPACES}. Consider enabling key validation for security.")


def test_unclean_paths_are_redirected_like_go_servemux():
    client = make()
    resp = client.put("/v1/kv/a//b?cas=0", data=b"v")
    assert resp.status_code == 301 and resp.headers["Location"] == "/v1/kv/a/b?cas=0"
    assert client.get("/v1/kv/a//b").status_code == 301


def test_keys_on_the_root_is_an_empty_list_not_404():
    client = make()
    resp = client.get("/v1/kv/?keys")
    assert resp.status_code == 200 and resp.json == [] and int(resp.headers["X-Consul-Index"]) >= 1
    assert client.get("/v1/kv/nothing/?keys").status_code == 404
    assert client.get("/v1/kv/?recurse").status_code == 404  # KVSGet has no such exception
    put(client, "a/b")
    put(client, "c")
    assert client.get("/v1/kv/?keys&separator=/").json == ["a/", "c"]
    assert client.get("/v1/kv/?keys&seperator=/").json == ["a/", "c"]  # Consul's old spelling


def test_apply_then_drop_applies_and_sends_nothing():
    sim = csim.ConsulSim({})
    client = Client(sim)
    sim.faults.append({"method": "PUT", "path": "^/v1/kv/x$", "query": "cas=", "action": "apply_then_drop",
                       "times": 1})
    with pytest.raises(ConnectionError):
        put(client, "x", cas=0)
    assert sim.kv["x"]["Value"] == b"v"
    assert sim.log[-1]["dropped"] is True and sim.log[-1]["status"] == 200
    assert put(client, "x", cas=0).json is False  # sent again: the false conflict hecate avoids


# -- other nodes through the catalog (agent/consul/catalog_endpoint.go Register/Deregister,
#    agent/health_endpoint.go HealthServiceNodes) -----------------------------------------
def register(client, node, status="passing", headers=None, **extra):
    body = {"Node": node, "Address": "192.0.2.9",
            "Service": {"Service": "hecate-caddy", "Port": 443, "Tags": ["hecate"]},
            "Check": {"Name": "caddy tcp", "ServiceID": "hecate-caddy", "Status": status}}
    body.update(extra)
    return client.put("/v1/catalog/register", json=body, headers=headers or {})


def test_catalog_registered_nodes_answer_the_health_endpoint_as_consul_does():
    client = make()
    assert register(client, "edge-1").json is True
    assert register(client, "edge-2", status="critical").json is True
    every = client.get("/v1/health/service/hecate-caddy").json
    assert [(e["Node"]["Node"], [c["Status"] for c in e["Checks"]]) for e in every] == [
        ("edge-1", ["passing"]), ("edge-2", ["critical"])]
    assert every[0]["Service"]["ID"] == "hecate-caddy" and every[0]["Checks"][0]["CheckID"] == "caddy tcp"
    passing = client.get("/v1/health/service/hecate-caddy?passing").json
    assert [e["Node"]["Node"] for e in passing] == ["edge-1"]
    assert "hecate-caddy" in client.get("/v1/catalog/services").json
    assert {n["Node"] for n in client.get("/v1/catalog/nodes").json} == {"lab-consul", "edge-1", "edge-2"}
    # a node-level check counts for every service of the node; no status means critical
    register(client, "edge-1", Service=None, Check={"Name": "node alive"})
    assert client.get("/v1/health/service/hecate-caddy?passing").json == []
    # deregistering the service takes its checks; the node's go with the node
    assert client.put("/v1/catalog/deregister", json={"Node": "edge-2", "ServiceID": "hecate-caddy"}).json is True
    assert [e["Node"]["Node"] for e in client.get("/v1/health/service/hecate-caddy").json] == ["edge-1"]
    assert client.put("/v1/catalog/deregister", json={"Node": "edge-1"}).json is True
    assert client.get("/v1/health/service/hecate-caddy").json == []


def test_catalog_register_refuses_what_consul_refuses():
    client = make()
    resp = client.put("/v1/catalog/register", json={"Address": "192.0.2.9"})
    assert (resp.status_code, resp.text) == (500, "Must provide node")
    resp = client.put("/v1/catalog/register", json={"Node": "edge-1"})
    assert (resp.status_code, resp.text) == (500, "Must provide address if SkipNodeUpdate is not set")
    resp = register(client, "edge-1", Check={"Name": "x", "ServiceID": "nope"})
    assert (resp.status_code, resp.text) == (500, "Unknown service ID 'nope' for check ID 'x'")
    resp = register(client, "edge-1", Check={"Name": "x", "Node": "edge-9", "ServiceID": "hecate-caddy"})
    assert resp.status_code == 500 and "doesn't match register request node 'edge-1'" in resp.text
    resp = client.put("/v1/catalog/register", json={"Node": "edge-1", "Address": "a", "Bogus": 1})
    assert resp.status_code == 400 and resp.text.startswith("Request decode failed")
    assert client.get("/v1/catalog/nodes").json[-1]["Node"] == "lab-consul"  # nothing registered


def test_catalog_register_needs_node_and_service_write():
    client = make(acl={"enabled": True, "default_policy": "deny", "tokens": {
        "svc": {"name": "svc", "rules": {"service_prefix": {"": "write"}}},
        "all": {"name": "all", "rules": {"service_prefix": {"": "write"}, "node_prefix": {"": "write"}}},
        "reader": "read"}})
    resp = register(client, "edge-1", headers={"X-Consul-Token": "svc"})
    assert resp.status_code == 403 and "node:write" in resp.text
    assert register(client, "edge-1", headers={"X-Consul-Token": "all"}).json is True
    # the read token sees the node; the anonymous token (deny) sees nothing
    assert len(client.get("/v1/health/service/hecate-caddy", headers={"X-Consul-Token": "reader"}).json) == 1
    assert client.get("/v1/health/service/hecate-caddy").json == []
