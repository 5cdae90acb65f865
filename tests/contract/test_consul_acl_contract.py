"""
Consul ACLs under default deny, as pillar/hecate.sls asks of production: lab simulator vs a
real Consul agent (CONSUL_HTTP_ADDR + CONSUL_HTTP_TOKEN; the cases skip unless that agent
denies anonymous reads, e.g. ``consul agent -dev -hcl 'acl { enabled = true
default_policy = "deny" tokens { initial_management = "..." } }'``).
"""

import uuid

import pytest
import requests
import salt.exceptions

from tests.contract.test_consul_contract import call, consul  # noqa: F401  (the sim/real fixture)


@pytest.fixture
def prefix():
    return f"hecate-contract/{uuid.uuid4().hex[:12]}"


@pytest.fixture
def services(consul):  # noqa: F811
    ids = []
    yield ids
    for sid in ids:
        call(consul, "PUT", f"/v1/agent/service/deregister/{sid}")


# -- ACLs under default deny (issue 18, items 1 and 3) --------------------------------------------
# pillar/hecate.sls asks for `acl { enabled = true, default_policy = "deny" }`. Sources:
# - agent/agent_endpoint.go AgentService: an unknown token is 403 "ACL not found" at once
#   (ResolveTokenAndDefaultMeta), then the service is looked up (404 "unknown service ID"),
#   and only then service:read is checked (403) - so a read without the token "works" until
#   the service exists;
# - agent/acl.go vetServiceUpdateWithAuthorizer (deregister): 404 "Unknown service ID" first,
#   then service:write;
# - agent/consul/kvs_endpoint.go KVS.Get: key:read is checked before the lookup (403 before
#   404); KVS.List/ListKeys and the health/catalog/agent listings filter instead of refusing;
# - acl/errors.go PermissionDeniedByACL: "Permission denied: anonymous token lacks permission
#   'service:read' on "<name>". The anonymous token is used implicitly ...";
# - py-consul (criteo/py-consul) consul/api/agent.py Agent.service_definition: the one agent
#   call hecate used that builds no headers (no prepare_headers), hence no X-Consul-Token.
@pytest.fixture
def deny(consul):  # noqa: F811
    """Skip unless the server enforces ACLs with default deny (the lab's simulator always does)."""
    url, token = consul
    probe = requests.get(f"{url}/v1/kv/hecate-contract/{uuid.uuid4().hex}", timeout=30)
    if probe.status_code != 403:
        pytest.skip(f"this Consul does not deny anonymous reads (answered {probe.status_code})")
    assert token, "a default-deny Consul needs CONSUL_HTTP_TOKEN for these tests"
    return url, token


def test_agent_service_read_is_404_before_the_acl_check(deny, services):
    url, token = deny
    sid = f"hecate-contract-{uuid.uuid4().hex[:8]}"
    # unknown service: 404 even without a token (the check for service:read comes later)
    assert requests.get(f"{url}/v1/agent/service/{sid}", timeout=30).status_code == 404
    # an unknown token is refused before anything else
    resp = requests.get(f"{url}/v1/agent/service/{sid}", headers={"X-Consul-Token": str(uuid.uuid4())}, timeout=30)
    assert resp.status_code == 403 and "ACL not found" in resp.text
    services.append(sid)
    assert call(deny, "PUT", "/v1/agent/service/register", json={"ID": sid, "Name": sid}).status_code == 200
    # it exists: without the token the read is now a 403 naming the permission
    resp = requests.get(f"{url}/v1/agent/service/{sid}", timeout=30)
    assert resp.status_code == 403
    assert resp.text.startswith(f"Permission denied: anonymous token lacks permission 'service:read' on \"{sid}\"")
    assert call(deny, "GET", f"/v1/agent/service/{sid}").json()["ID"] == sid
    # deregister: unknown is 404 without a token, an existing one 403 without it
    assert requests.put(f"{url}/v1/agent/service/deregister/{sid}-nope", timeout=30).status_code == 404
    resp = requests.put(f"{url}/v1/agent/service/deregister/{sid}", timeout=30)
    assert resp.status_code == 403 and "service:write" in resp.text


def test_listings_are_filtered_not_refused(deny, services, prefix):
    url, _ = deny
    sid = f"hecate-contract-{uuid.uuid4().hex[:8]}"
    services.append(sid)
    assert call(deny, "PUT", "/v1/agent/service/register", json={"ID": sid, "Name": sid}).status_code == 200
    call(deny, "PUT", f"/v1/kv/{prefix}/k", data=b"v")
    # what the token sees
    assert sid in call(deny, "GET", "/v1/catalog/services").json()
    assert len(call(deny, "GET", f"/v1/health/service/{sid}").json()) == 1
    # the same reads anonymously: 200 with nothing in them (a silent failure for a client
    # that forgets the token), and a single-key read refused
    for path in ("/v1/catalog/services", f"/v1/health/service/{sid}", "/v1/agent/services"):
        resp = requests.get(url + path, timeout=30)
        assert resp.status_code == 200 and sid not in resp.text, path
    resp = requests.get(f"{url}/v1/kv/{prefix}/k", timeout=30)
    assert resp.status_code == 403 and "lacks permission 'key:read'" in resp.text


def test_status_leader_needs_no_token_so_it_proves_nothing(deny):
    """Why preflight reads a key under hecate/ instead (hecate_preflight.CONSUL_PROBE_KEY)."""
    url, _ = deny
    assert (
        requests.get(f"{url}/v1/status/leader", headers={"X-Consul-Token": str(uuid.uuid4())}, timeout=30).status_code
        == 200
    )
    resp = requests.get(f"{url}/v1/kv/hecate/deployments", headers={"X-Consul-Token": str(uuid.uuid4())}, timeout=30)
    assert resp.status_code == 403 and "ACL not found" in resp.text
    assert call(deny, "GET", "/v1/kv/hecate/deployments").status_code in (200, 404)


# -- the audit against hashicorp/consul (issue 18: C3, C4) ------------------------------------------
# agent/consul/session_endpoint.go Apply (destroy): the token is resolved, then a session that does
# not exist is no error, and only an existing session's node is checked for session:write; Renew: a
# missing session is a 404 before session:write. agent/acl_endpoint.go ACLTokenSelf -> ACL.TokenRead
# by secret: no permission needed to read oneself; a secret the store does not hold is a 404.
def test_sessions_are_looked_up_before_the_acl_check(deny, prefix):
    url, _ = deny
    missing = str(uuid.uuid4())
    resp = requests.put(f"{url}/v1/session/destroy/{missing}", timeout=30)  # anonymous: no session:write
    assert resp.status_code == 200 and resp.json() is True
    resp = requests.put(f"{url}/v1/session/renew/{missing}", timeout=30)
    assert resp.status_code == 404 and resp.text.strip() == f"Session id '{missing}' not found"
    created = call(deny, "PUT", "/v1/session/create", json={"TTL": "30s"}).json()["ID"]
    try:
        resp = requests.put(f"{url}/v1/session/destroy/{created}", timeout=30)
        assert resp.status_code == 403 and resp.text.startswith("Permission denied")
        resp = requests.put(f"{url}/v1/session/destroy/{created}", headers={"X-Consul-Token": str(uuid.uuid4())},
                            timeout=30)
        assert resp.status_code == 403 and "ACL not found" in resp.text
    finally:
        call(deny, "PUT", f"/v1/session/destroy/{created}")


# agent/consul/session_endpoint.go Session.Apply (create): the token is resolved and
# session:write on the session's node checked *before* Behavior and TTL are validated, so a
# token without session:write learns nothing about its body (403, not "Invalid Session TTL").
@pytest.mark.parametrize("body", [{"TTL": "1s"}, {"TTL": "90000s"}, {"Behavior": "bogus"}, {"TTL": "30s"}])
def test_session_create_checks_session_write_before_the_body(deny, body):
    url, _ = deny
    resp = requests.put(f"{url}/v1/session/create", json=body, timeout=30)  # anonymous
    assert resp.status_code == 403, resp.text
    assert resp.text.startswith("Permission denied: anonymous token lacks permission 'session:write' on ")
    resp = requests.put(f"{url}/v1/session/create", json=body, headers={"X-Consul-Token": str(uuid.uuid4())},
                        timeout=30)
    assert resp.status_code == 403 and "ACL not found" in resp.text


# agent/agent_endpoint.go AgentRegisterService: the token is resolved (403 "ACL not found")
# right after the name and address checks, but service:write is vetted
# (vetServiceRegisterWithAuthorizer) only after Weights, Meta and the checks are validated, so
# a token without service:write still gets the 400 of a bad body.
@pytest.mark.parametrize(("extra", "reason"), [
    ({"Weights": {"Passing": 0}}, "Invalid Weights"),
    ({"Meta": {"bad key": "x"}}, "Invalid Service Meta"),
    ({"Check": {"TTL": "10s", "Status": "bogus"}}, "Status for checks must"),
])
def test_register_validates_the_body_before_service_write(deny, extra, reason):
    url, _ = deny
    body = {"ID": f"hecate-contract-{uuid.uuid4().hex[:8]}", "Name": "hecate-contract", **extra}
    resp = requests.put(f"{url}/v1/agent/service/register", json=body, timeout=30)  # anonymous
    assert resp.status_code == 400 and resp.text.startswith(reason), resp.text
    resp = requests.put(f"{url}/v1/agent/service/register", json=body, headers={"X-Consul-Token": str(uuid.uuid4())},
                        timeout=30)
    assert resp.status_code == 403 and "ACL not found" in resp.text
    resp = requests.put(f"{url}/v1/agent/service/register", json={"Name": "hecate-contract"}, timeout=30)
    assert resp.status_code == 403 and "service:write" in resp.text


# agent/http.go parseTokenInternal: "?token, X-Consul-Token and last Authorization: Bearer" -
# the query parameter wins over the header, the header over a bearer token.
def test_token_sources_in_consuls_order(deny, prefix):
    url, token = deny
    bogus = str(uuid.uuid4())
    resp = requests.get(f"{url}/v1/kv/{prefix}/t", params={"token": bogus}, headers={"X-Consul-Token": token},
                        timeout=30)
    assert resp.status_code == 403 and "ACL not found" in resp.text
    resp = requests.get(f"{url}/v1/kv/{prefix}/t", params={"token": token}, headers={"X-Consul-Token": bogus},
                        timeout=30)
    assert resp.status_code == 404
    resp = requests.get(f"{url}/v1/kv/{prefix}/t", headers={"X-Consul-Token": bogus,
                                                           "Authorization": f"Bearer {token}"}, timeout=30)
    assert resp.status_code == 403 and "ACL not found" in resp.text
    resp = requests.get(f"{url}/v1/kv/{prefix}/t", headers={"Authorization": f"Bearer {token} extra"}, timeout=30)
    assert resp.status_code == 404


def test_token_self(deny):
    url, token = deny
    resp = call(deny, "GET", "/v1/acl/token/self")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["SecretID"] == token and body["AccessorID"] and isinstance(body["Policies"], list)
    resp = requests.get(f"{url}/v1/acl/token/self", headers={"X-Consul-Token": str(uuid.uuid4())}, timeout=30)
    # the simulator answers as ACL.TokenRead reads (404); releases that resolve the token first say 403
    assert (resp.status_code, resp.text.strip()) in ((404, "Supplied token does not exist"), (403, "ACL not found"))


@pytest.fixture
def hecate_rules_token(deny, tmp_path_factory):
    """
    ``(url, token)`` of a Consul where a token has exactly topology.CONSUL_HECATE_RULES: on the
    simulator a Consul of its own with that token; on a real Consul a policy and token made
    with the ACL API (PUT /v1/acl/policy, PUT /v1/acl/token), removed afterwards.
    """
    url, token = deny
    from lab import devservers, topology  # pylint: disable=import-outside-toplevel
    from lab.sim import SimHandle  # pylint: disable=import-outside-toplevel

    secret = str(uuid.uuid4())
    if requests.get(f"{url}/_lab/health", timeout=10).status_code == 200:
        options = {"acl": {"enabled": True, "default_policy": "deny",
                           "tokens": {secret: {"name": "hecate", "rules": topology.CONSUL_HECATE_RULES}}}}
        handle = SimHandle("consul", str(tmp_path_factory.mktemp("consul-hecate-rules")), options).start()
        yield handle.url, secret
        handle.stop()
        return
    name = f"hecate-contract-{uuid.uuid4().hex[:8]}"
    headers = {"X-Consul-Token": token}
    policy = requests.put(f"{url}/v1/acl/policy", headers=headers, timeout=30, json={
        "Name": name, "Rules": devservers.consul_rules_hcl(topology.CONSUL_HECATE_RULES)}).json()
    created = requests.put(f"{url}/v1/acl/token", headers=headers, timeout=30, json={
        "SecretID": secret, "Policies": [{"Name": name}]}).json()
    yield url, secret
    requests.delete(f"{url}/v1/acl/token/{created['AccessorID']}", headers=headers, timeout=30)
    requests.delete(f"{url}/v1/acl/policy/{policy['ID']}", headers=headers, timeout=30)


def test_hecates_consul_rules_cover_what_hecate_does(hecate_rules_token):
    """docs/systems/consul-vault.md: records and locks under hecate/, the external services, reads."""
    import hecate_consul_client  # pylint: disable=import-outside-toplevel

    url, secret = hecate_rules_token
    client = hecate_consul_client.ConsulClient({"url": url}, secret)
    key = f"hecate/contract/{uuid.uuid4().hex[:8]}"
    client.put_json(f"{key}/record", {"status": "ok"})
    assert client.get_json(f"{key}/record") == {"status": "ok"}
    session = client.lock_acquire(f"{key}/lock", holder="contract test", ttl="30s")
    client.lock_release(f"{key}/lock", session)
    client.service_register({"ID": "hecate-contract-jenkins", "Name": "jenkins-master", "Port": 8059,
                             "Checks": [{"TTL": "60s"}]})
    try:
        assert "jenkins-master" in client.catalog_services()
        assert client.health_service("jenkins-master", passing=False)
    finally:
        client.service_deregister("hecate-contract-jenkins")
    client.kv_delete(key, recurse=True)
    # and no more: keys elsewhere, services it does not own
    with pytest.raises(salt.exceptions.CommandExecutionError, match="Permission denied"):
        client.put_json(f"hecate-contract/{uuid.uuid4().hex[:8]}", {"a": 1})
    with pytest.raises(salt.exceptions.CommandExecutionError, match="Permission denied"):
        client.service_register({"ID": "hecate-contract-other", "Name": "hecate-contract-other", "Port": 1})


@pytest.fixture
def rules_token(deny, tmp_path_factory):
    """A factory: ``make(rules) -> (url, secret)``, a token with exactly ``rules`` (as
    ``hecate_rules_token``: its own simulator, or a policy and token on a real Consul)."""
    from lab import devservers  # pylint: disable=import-outside-toplevel
    from lab.sim import SimHandle  # pylint: disable=import-outside-toplevel

    url, token = deny
    cleanup = []

    def make(rules):
        secret = str(uuid.uuid4())
        if requests.get(f"{url}/_lab/health", timeout=10).status_code == 200:
            options = {"acl": {"enabled": True, "default_policy": "deny",
                               "tokens": {secret: {"name": "rules", "rules": rules}}}}
            handle = SimHandle("consul", str(tmp_path_factory.mktemp("consul-rules")), options).start()
            cleanup.append(handle.stop)
            return handle.url, secret
        name = f"hecate-contract-{uuid.uuid4().hex[:8]}"
        headers = {"X-Consul-Token": token}
        policy = requests.put(f"{url}/v1/acl/policy", headers=headers, timeout=30, json={
            "Name": name, "Rules": devservers.consul_rules_hcl(rules)}).json()
        created = requests.put(f"{url}/v1/acl/token", headers=headers, timeout=30, json={
            "SecretID": secret, "Policies": [{"Name": name}]}).json()
        cleanup.append(lambda: requests.delete(f"{url}/v1/acl/policy/{policy['ID']}", headers=headers, timeout=30))
        cleanup.append(lambda: requests.delete(f"{url}/v1/acl/token/{created['AccessorID']}", headers=headers,
                                               timeout=30))
        return url, secret

    yield make
    for undo in reversed(cleanup):
        undo()


# agent/consul/kvs_endpoint.go kvsPreApply: DELETE ?recurse (KVDeleteTree) needs KeyWritePrefix;
# acl/policy_authorizer.go KeyWritePrefix allows only when the longest prefix rule over the
# prefix grants write AND no rule (exact or prefix) under the prefix withholds write.
def test_recursive_delete_needs_write_on_everything_under_the_prefix(rules_token, prefix):
    url, secret = rules_token({"key_prefix": {f"{prefix}/": "write", f"{prefix}/ro/": "read"},
                               "key": {f"{prefix}/pinned": "deny"}})
    headers = {"X-Consul-Token": secret}
    assert requests.put(f"{url}/v1/kv/{prefix}/a/b", data=b"x", headers=headers, timeout=30).json() is True
    resp = requests.delete(f"{url}/v1/kv/{prefix}/?recurse", headers=headers, timeout=30)
    assert resp.status_code == 403 and resp.text.startswith("Permission denied"), resp.text
    resp = requests.delete(f"{url}/v1/kv/{prefix}/ro/?recurse", headers=headers, timeout=30)
    assert resp.status_code == 403
    resp = requests.delete(f"{url}/v1/kv/{prefix}/pin?recurse", headers=headers, timeout=30)
    assert resp.status_code == 403
    resp = requests.delete(f"{url}/v1/kv/{prefix}/a/?recurse", headers=headers, timeout=30)
    assert resp.status_code == 200 and resp.json() is True
    assert requests.get(f"{url}/v1/kv/{prefix}/a/b", headers=headers, timeout=30).status_code == 404


# agent/kvs_endpoint.go KVSPut/KVSDelete/KVSGet check the request (missing key, conflicting
# flags, ?flags and ?cas as ParseUint, the value size, ?wait/?index) before the KVS RPC, where
# the token is resolved and key:read/key:write checked: a token without the permission still
# gets the request's 400/413/500.
def test_kv_request_errors_come_before_the_acl_check(deny, prefix):
    url, _ = deny
    bogus = {"X-Consul-Token": str(uuid.uuid4())}
    for headers in ({}, bogus):
        resp = requests.put(f"{url}/v1/kv/{prefix}/x?cas=0&acquire=abc", headers=headers, timeout=30)
        assert resp.status_code == 400 and resp.text.startswith("Conflicting flags: "), resp.text
        resp = requests.put(f"{url}/v1/kv/{prefix}/x?flags=abc", headers=headers, timeout=30)
        assert resp.status_code == 500 and "strconv.ParseUint" in resp.text
        resp = requests.put(f"{url}/v1/kv/{prefix}/x", data=b"x" * (512 * 1024 + 1), headers=headers, timeout=30)
        assert resp.status_code == 413
        resp = requests.delete(f"{url}/v1/kv/{prefix}/x?cas=abc", headers=headers, timeout=30)
        assert resp.status_code == 500 and "strconv.ParseUint" in resp.text
        resp = requests.delete(f"{url}/v1/kv/{prefix}/x?cas=1&recurse", headers=headers, timeout=30)
        assert resp.status_code == 400 and resp.text.startswith("Conflicting flags: ")
        resp = requests.put(f"{url}/v1/kv/", data=b"x", headers=headers, timeout=30)
        assert resp.status_code == 400 and resp.text == "Missing key name"
        resp = requests.get(f"{url}/v1/kv/{prefix}/x?index=1&wait=forever", headers=headers, timeout=30)
        assert resp.status_code == 400 and resp.text == "Invalid wait time"
    # and with a valid request the missing permission is what answers
    assert requests.put(f"{url}/v1/kv/{prefix}/x", data=b"x", timeout=30).status_code == 403
    resp = requests.put(f"{url}/v1/kv/{prefix}/x", data=b"x", headers=bogus, timeout=30)
    assert resp.status_code == 403 and "ACL not found" in resp.text
