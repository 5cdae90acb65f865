"""Vault KV v2 contract: lab simulator vs a real Vault (VAULT_ADDR + VAULT_TOKEN, dev mode)."""

import uuid

import pytest
import requests

from tests.contract.conftest import real_or_skip


@pytest.fixture(params=["sim", "real"], scope="module")
def vault(request, vault_sim):
    if request.param == "sim":
        return vault_sim.url, vault_sim.root_token
    env = real_or_skip("VAULT_ADDR", "VAULT_TOKEN")
    return env["VAULT_ADDR"].rstrip("/"), env["VAULT_TOKEN"]


def call(vault, method, path, **kw):
    url, token = vault
    return requests.request(method, url + path, headers={"X-Vault-Token": token}, timeout=10, **kw)


@pytest.fixture
def path():
    return f"hecate-contract/{uuid.uuid4().hex}"


def test_missing_secret_is_404_with_empty_errors(vault, path):
    resp = call(vault, "GET", f"/v1/secret/data/{path}")
    assert resp.status_code == 404
    assert resp.json() == {"errors": []}


def test_write_versions_and_cas(vault, path):
    resp = call(vault, "POST", f"/v1/secret/data/{path}", json={"data": {"a": "1"}, "options": {"cas": 0}})
    assert resp.status_code == 200
    assert resp.json()["data"]["version"] == 1
    resp = call(vault, "POST", f"/v1/secret/data/{path}", json={"data": {"a": "2"}, "options": {"cas": 0}})
    assert resp.status_code == 400
    assert "check-and-set parameter did not match the current version" in resp.json()["errors"][0]
    resp = call(vault, "POST", f"/v1/secret/data/{path}", json={"data": {"a": "2"}, "options": {"cas": 1}})
    assert resp.status_code == 200 and resp.json()["data"]["version"] == 2
    body = call(vault, "GET", f"/v1/secret/data/{path}").json()
    assert body["data"]["data"] == {"a": "2"}
    assert body["data"]["metadata"]["version"] == 2
    old = call(vault, "GET", f"/v1/secret/data/{path}?version=1").json()
    assert old["data"]["data"] == {"a": "1"}
    meta = call(vault, "GET", f"/v1/secret/metadata/{path}").json()["data"]
    assert meta["current_version"] == 2 and sorted(meta["versions"]) == ["1", "2"]


def test_soft_delete_keeps_metadata_and_answers_404_with_body(vault, path):
    call(vault, "POST", f"/v1/secret/data/{path}", json={"data": {"a": "1"}})
    assert call(vault, "DELETE", f"/v1/secret/data/{path}").status_code == 204
    resp = call(vault, "GET", f"/v1/secret/data/{path}")
    assert resp.status_code == 404
    body = resp.json()
    assert body["data"]["data"] is None
    assert body["data"]["metadata"]["deletion_time"] != ""
    assert call(vault, "POST", f"/v1/secret/undelete/{path}", json={"versions": [1]}).status_code == 204
    assert call(vault, "GET", f"/v1/secret/data/{path}").json()["data"]["data"] == {"a": "1"}


def test_no_data_is_400(vault, path):
    resp = call(vault, "POST", f"/v1/secret/data/{path}", json={"options": {}})
    assert resp.status_code == 400
    assert resp.json()["errors"] == ["no data provided"]


def test_list_keys(vault, path):
    call(vault, "POST", f"/v1/secret/data/{path}/one", json={"data": {"a": "1"}})
    call(vault, "POST", f"/v1/secret/data/{path}/sub/two", json={"data": {"a": "1"}})
    resp = call(vault, "LIST", f"/v1/secret/metadata/{path}")
    assert resp.status_code == 200
    assert resp.json()["data"]["keys"] == ["one", "sub/"]


def test_bad_token_is_403(vault, path):
    url, _ = vault
    resp = requests.get(f"{url}/v1/secret/data/{path}", headers={"X-Vault-Token": "nope"}, timeout=10)
    assert resp.status_code == 403
    assert "permission denied" in resp.json()["errors"][0]


def test_health_unauthenticated(vault):
    url, _ = vault
    resp = requests.get(f"{url}/v1/sys/health", timeout=10)
    assert resp.status_code == 200
    assert resp.json()["sealed"] is False and resp.json()["initialized"] is True


def test_cas_after_soft_delete_is_the_current_version(vault, path):
    """hecate's check-and-set writes rely on this: a deleted latest version still counts."""
    call(vault, "POST", f"/v1/secret/data/{path}", json={"data": {"a": "1"}})
    call(vault, "POST", f"/v1/secret/data/{path}", json={"data": {"a": "2"}})
    assert call(vault, "DELETE", f"/v1/secret/data/{path}").status_code == 204
    meta = call(vault, "GET", f"/v1/secret/metadata/{path}").json()["data"]
    assert meta["current_version"] == 2
    resp = call(vault, "POST", f"/v1/secret/data/{path}", json={"data": {"a": "3"}, "options": {"cas": 0}})
    assert resp.status_code == 400
    resp = call(vault, "POST", f"/v1/secret/data/{path}", json={"data": {"a": "3"}, "options": {"cas": 2}})
    assert resp.status_code == 200 and resp.json()["data"]["version"] == 3
    deleted = call(vault, "GET", f"/v1/secret/data/{path}?version=2")
    assert deleted.status_code == 404 and deleted.json()["data"]["metadata"]["version"] == 2


# -- AppRole login and lookup-self (issue 18, item 2) ----------------------------------------------
# Sources: builtin/credential/approle/path_login.go pathLoginUpdate ("missing role_id",
# "invalid role or secret ID" for an unknown role or secret_id, "missing secret_id" when the
# role binds one - the default); vault/policy_store.go: every token gets the built-in "default"
# policy, which allows read on auth/token/lookup-self; the AppRole API
# (POST sys/auth/<mount>, auth/<mount>/role/<name>, .../role-id, .../custom-secret-id).
@pytest.fixture(scope="module")
def approle(vault, request, lab_secrets):
    """``(mount, role_id, secret_id)`` of a role whose tokens get a KV policy."""
    url, token = vault
    if url == request.getfixturevalue("vault_sim").url:
        yield "approle", lab_secrets["vault_role_id"], lab_secrets["vault_secret_id"]
        return
    mount, name = f"approle-contract-{uuid.uuid4().hex[:8]}", "hecate-contract"
    role_id, secret_id = str(uuid.uuid4()), str(uuid.uuid4())
    policy = 'path "secret/data/*" { capabilities = ["read"] }\n'
    for method, path, body in (
        ("POST", f"/v1/sys/auth/{mount}", {"type": "approle"}),
        ("PUT", f"/v1/sys/policies/acl/{name}", {"policy": policy}),
        ("POST", f"/v1/auth/{mount}/role/{name}", {"token_policies": [name], "token_ttl": "10m"}),
        ("POST", f"/v1/auth/{mount}/role/{name}/role-id", {"role_id": role_id}),
        ("POST", f"/v1/auth/{mount}/role/{name}/custom-secret-id", {"secret_id": secret_id}),
    ):
        resp = call(vault, method, path, json=body)
        assert resp.status_code in (200, 204), (path, resp.text)
    yield mount, role_id, secret_id
    call(vault, "DELETE", f"/v1/sys/auth/{mount}")
    call(vault, "DELETE", f"/v1/sys/policies/acl/{name}")


def login(vault, mount, **body):
    url, _ = vault
    return requests.post(f"{url}/v1/auth/{mount}/login", json=body, timeout=10)


def test_approle_login_then_lookup_self(vault, approle):
    url, _ = vault
    mount, role_id, secret_id = approle
    resp = login(vault, mount, role_id=role_id, secret_id=secret_id)
    assert resp.status_code == 200, resp.text
    auth = resp.json()["auth"]
    assert auth["client_token"] and auth["renewable"] is True and auth["lease_duration"] > 0
    assert "default" in auth["policies"] and auth["metadata"]["role_name"]
    me = requests.get(f"{url}/v1/auth/token/lookup-self", headers={"X-Vault-Token": auth["client_token"]}, timeout=10)
    assert me.status_code == 200 and "default" in me.json()["data"]["policies"]
    # what hecate's preflight did before: no token at all
    anonymous = requests.get(f"{url}/v1/auth/token/lookup-self", timeout=10)
    assert anonymous.status_code == 403 and anonymous.json()["errors"] == ["permission denied"]


def test_approle_login_errors(vault, approle):
    mount, role_id, _ = approle
    resp = login(vault, mount, secret_id="x")
    assert resp.status_code == 400 and resp.json()["errors"] == ["missing role_id"]
    resp = login(vault, mount, role_id=str(uuid.uuid4()), secret_id="x")
    assert resp.status_code == 400 and resp.json()["errors"] == ["invalid role or secret ID"]
    resp = login(vault, mount, role_id=role_id)
    assert resp.status_code == 400 and resp.json()["errors"] == ["missing secret_id"]
    resp = login(vault, mount, role_id=role_id, secret_id=str(uuid.uuid4()))
    # ErrorResponse + logical.ErrInvalidCredentials: 400 (some releases map it to 403)
    assert resp.status_code in (400, 403) and resp.json()["errors"] == ["invalid role or secret ID"]
