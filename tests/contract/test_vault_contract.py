"""Vault KV v2 contract: lab simulator vs a real Vault (VAULT_ADDR + VAULT_TOKEN, dev mode)."""

import time
import uuid

import pytest
import requests

from lab import topology
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


# -- the audit of the simulators against Vault/OpenBao (issue 18) -----------------------------------
# Sources: OpenBao internal/vault/policy/acl.go (NewACL: a token's policies merged, capabilities
# OR'd, deny wins; AllowOperation + CheckAllowedFromNonExactPaths: the single most specific rule),
# internal/http/logical.go (a LIST is for the path with a trailing slash); vault/token_store.go
# (create, lookup-self, renew-self); vault-plugin-secrets-kv path_metadata.go, path_data.go
# (KeyMetadata.AddVersion), path_delete.go, path_destroy.go; vault/logical_system.go
# (sys/policies/acl, sys/internal/ui/mounts).
@pytest.fixture
def policy_token(vault, request):
    """``make(rules...)`` -> a token with one policy per rules text; policies removed after."""
    made = []

    def make(*texts, ttl="10m"):
        names = []
        for text in texts:
            name = f"hecate-contract-{uuid.uuid4().hex[:8]}"
            resp = call(vault, "PUT", f"/v1/sys/policies/acl/{name}", json={"policy": text})
            assert resp.status_code == 204, resp.text
            made.append(name)
            names.append(name)
        resp = call(vault, "POST", "/v1/auth/token/create", json={"policies": names, "ttl": ttl})
        assert resp.status_code == 200, resp.text
        return resp.json()["auth"]["client_token"]

    yield make
    for name in made:
        call(vault, "DELETE", f"/v1/sys/policies/acl/{name}")


def as_token(vault, token, method, path, **kw):
    return requests.request(method, vault[0] + path, headers={"X-Vault-Token": token}, timeout=10, **kw)


def test_policies_merge_and_the_most_specific_path_wins(vault, path, policy_token):
    """V1: policy a grants read on app/*, policy b only list on app/x: app/x is not readable."""
    call(vault, "POST", f"/v1/secret/data/{path}/x", json={"data": {"a": "1"}})
    call(vault, "POST", f"/v1/secret/data/{path}/y", json={"data": {"a": "1"}})
    token = policy_token(f'path "secret/data/{path}/*" {{\n  capabilities = ["read"]\n}}\n',
                         f'path "secret/data/{path}/x" {{\n  capabilities = ["list"]\n}}\n')
    resp = as_token(vault, token, "GET", f"/v1/secret/data/{path}/x")
    assert resp.status_code == 403 and "permission denied" in resp.json()["errors"][0]
    assert as_token(vault, token, "GET", f"/v1/secret/data/{path}/y").status_code == 200
    # capabilities of two policies on the same path add up; deny wins over both
    token = policy_token(f'path "secret/data/{path}/x" {{\n  capabilities = ["read"]\n}}\n',
                         f'path "secret/data/{path}/x" {{\n  capabilities = ["update"]\n}}\n')
    assert as_token(vault, token, "GET", f"/v1/secret/data/{path}/x").status_code == 200
    assert as_token(vault, token, "POST", f"/v1/secret/data/{path}/x", json={"data": {"a": "2"}}).status_code == 200
    token = policy_token(f'path "secret/data/{path}/*" {{\n  capabilities = ["read"]\n}}\n',
                         f'path "secret/data/{path}/*" {{\n  capabilities = ["deny"]\n}}\n')
    assert as_token(vault, token, "GET", f"/v1/secret/data/{path}/y").status_code == 403


def test_list_is_checked_on_the_path_with_a_slash(vault, path, policy_token):
    """V1: a rule for "metadata/<p>/" covers LIST metadata/<p> (internal/http/logical.go)."""
    call(vault, "POST", f"/v1/secret/data/{path}/one", json={"data": {"a": "1"}})
    token = policy_token(f'path "secret/metadata/{path}/" {{\n  capabilities = ["list"]\n}}\n')
    resp = as_token(vault, token, "LIST", f"/v1/secret/metadata/{path}")
    assert resp.status_code == 200 and resp.json()["data"]["keys"] == ["one"]
    token = policy_token(f'path "secret/metadata/{path}" {{\n  capabilities = ["list"]\n}}\n')
    assert as_token(vault, token, "LIST", f"/v1/secret/metadata/{path}").status_code == 200  # exact, slash trimmed


def test_segment_wildcards_lose_to_a_later_glob(vault, path, policy_token):
    """V1: CheckAllowedFromNonExactPaths: the rule whose first wildcard comes later wins."""
    call(vault, "POST", f"/v1/secret/data/{path}/a/x", json={"data": {"a": "1"}})
    token = policy_token(f'path "secret/data/{path}/+/x" {{\n  capabilities = ["read"]\n}}\n'
                         f'path "secret/data/{path}/a/*" {{\n  capabilities = ["deny"]\n}}\n')
    assert as_token(vault, token, "GET", f"/v1/secret/data/{path}/a/x").status_code == 403


def test_token_lookup_renew_and_expiry(vault, path, policy_token):
    """V2/V8: lookup-self's fields, renew-self, and a token past its TTL is refused."""
    token = policy_token(f'path "secret/data/{path}" {{\n  capabilities = ["read"]\n}}\n', ttl="2s")
    me = as_token(vault, token, "GET", "/v1/auth/token/lookup-self").json()["data"]
    assert {"accessor", "creation_ttl", "expire_time", "policies", "renewable", "ttl", "path"} <= set(me)
    assert "default" in me["policies"] and me["renewable"] is True and me["creation_ttl"] == 2
    renewed = as_token(vault, token, "POST", "/v1/auth/token/renew-self", json={"increment": "3s"})
    assert renewed.status_code == 200 and renewed.json()["auth"]["lease_duration"] in (2, 3)
    time.sleep(3.5)
    resp = as_token(vault, token, "GET", "/v1/auth/token/lookup-self")
    assert resp.status_code == 403 and "permission denied" in resp.json()["errors"][0]


def test_policies_api_and_ui_mounts(vault, path, policy_token):
    """V3: sys/policies/acl round trip; sys/internal/ui/mounts tells KV v2."""
    name = f"hecate-contract-{uuid.uuid4().hex[:8]}"
    text = f'path "secret/data/{path}" {{\n  capabilities = ["read"]\n}}\n'
    try:
        assert call(vault, "PUT", f"/v1/sys/policies/acl/{name}", json={"policy": text}).status_code == 204
        got = call(vault, "GET", f"/v1/sys/policies/acl/{name}").json()["data"]
        assert got["name"] == name and f"secret/data/{path}" in got["policy"]
        assert name in call(vault, "LIST", "/v1/sys/policies/acl").json()["data"]["keys"]
    finally:
        assert call(vault, "DELETE", f"/v1/sys/policies/acl/{name}").status_code == 204
    assert call(vault, "GET", f"/v1/sys/policies/acl/{name}").status_code == 404
    token = policy_token(text)
    mount = as_token(vault, token, "GET", "/v1/sys/internal/ui/mounts/secret").json()["data"]
    assert mount["type"] == "kv" and mount["options"]["version"] == "2" and mount["path"] == "secret/"


def test_metadata_listing_writes_and_versions(vault, path):
    """V4-V7 and V9."""
    assert call(vault, "POST", f"/v1/secret/metadata/{path}/m", json={"max_versions": 3}).status_code == 204
    call(vault, "POST", f"/v1/secret/data/{path}/x", json={"data": {"a": "1"}})
    keys = call(vault, "LIST", f"/v1/secret/metadata/{path}").json()["data"]["keys"]
    assert keys == ["m", "x"]  # metadata-only keys are listed too
    assert call(vault, "POST", f"/v1/secret/metadata/{path}/y", json={}).status_code == 204
    assert call(vault, "GET", f"/v1/secret/metadata/{path}/y").status_code == 404  # nothing to set: nothing made
    meta = call(vault, "GET", f"/v1/secret/metadata/{path}/x").json()["data"]
    assert meta["oldest_version"] == 0  # set only when versions are trimmed
    for i in range(4):
        call(vault, "POST", f"/v1/secret/data/{path}/m", json={"data": {"a": str(i)}})
    meta = call(vault, "GET", f"/v1/secret/metadata/{path}/m").json()["data"]
    assert len(meta["versions"]) == 3 and meta["oldest_version"] == 2
    resp = call(vault, "POST", f"/v1/secret/delete/{path}/x", json={})
    assert resp.status_code == 400 and resp.json()["errors"] == ["No version number provided"]
    resp = call(vault, "POST", f"/v1/secret/destroy/{path}/x", json={})
    assert resp.status_code == 400 and resp.json()["errors"] == ["no version number provided"]
    resp = call(vault, "POST", f"/v1/secret/data/{path}/x", json={"data": {"a": "2"}, "options": {"cas": "abc"}})
    assert resp.status_code == 400 and resp.json()["errors"] == ["error parsing check-and-set parameter"]


def test_the_lab_policy_is_what_hecate_needs(vault, policy_token):
    """
    lab/topology.py VAULT_POLICY (the policy docs/systems/consul-vault.md gives hecate's
    AppRole): read, CAS-write, soft-delete, metadata and list under secret/hecate/ and
    secret/bionicgpt/; nothing elsewhere.
    """
    token = policy_token(topology.vault_policy_hcl())
    mine = f"hecate/contract-{uuid.uuid4().hex[:8]}"
    try:
        resp = as_token(vault, token, "POST", f"/v1/secret/data/{mine}",
                        json={"data": {"a": "1"}, "options": {"cas": 0}})
        assert resp.status_code == 200, resp.text
        resp = as_token(vault, token, "POST", f"/v1/secret/data/{mine}",
                        json={"data": {"a": "2"}, "options": {"cas": 1}})
        assert resp.status_code == 200, resp.text
        assert as_token(vault, token, "GET", f"/v1/secret/data/{mine}").json()["data"]["data"] == {"a": "2"}
        assert as_token(vault, token, "GET", f"/v1/secret/metadata/{mine}").status_code == 200
        assert as_token(vault, token, "LIST", "/v1/secret/metadata/hecate").status_code == 200
        assert as_token(vault, token, "DELETE", f"/v1/secret/data/{mine}").status_code == 204
        other = f"hecate-contract/{uuid.uuid4().hex[:8]}"
        assert as_token(vault, token, "POST", f"/v1/secret/data/{other}", json={"data": {"a": "1"}}).status_code == 403
        assert as_token(vault, token, "GET", f"/v1/secret/data/{other}").status_code == 403
        assert as_token(vault, token, "LIST", "/v1/secret/metadata").status_code == 403
        assert as_token(vault, token, "POST", f"/v1/secret/destroy/{mine}", json={"versions": [1]}).status_code == 403
        assert as_token(vault, token, "GET", "/v1/sys/policies/acl").status_code == 403
    finally:
        call(vault, "DELETE", f"/v1/secret/metadata/{mine}")


def test_custom_metadata_is_validated(vault, path):
    """V10: path_metadata.go validateCustomMetadata (at most 64 keys, ...): a 400."""
    resp = call(vault, "POST", f"/v1/secret/metadata/{path}",
                json={"custom_metadata": {f"k{i}": "v" for i in range(65)}})
    assert resp.status_code == 400
    assert "custom_metadata validation failed: payload must contain at most 64 keys, provided 65" in \
        resp.json()["errors"][0]
    resp = call(vault, "POST", f"/v1/secret/metadata/{path}", json={"custom_metadata": {"team": "hecate"}})
    assert resp.status_code == 204


def test_health_status_codes_from_the_query(vault):
    """V11: sys/health's ?activecode= sets the status of an active, unsealed node."""
    url, _ = vault
    resp = requests.get(f"{url}/v1/sys/health?activecode=299", timeout=10)
    assert resp.status_code == 299 and resp.json()["sealed"] is False and resp.json()["cluster_id"]


# -- the second audit against the vendor source (vault-audit) ---------------------------------------
# Sources: hashicorp/vault-plugin-secrets-kv path_data.go (validateCheckAndSetOption,
# pathDataPatch), path_config.go (pathConfigWrite/Read: max_versions framework.TypeInt,
# cas_required framework.TypeBool), path_metadata.go (pathMetadataWrite); openbao/openbao
# internal/http/logical.go buildLogicalRequestNoAuth (the body is parsed before the token is
# looked at; PATCH needs Content-Type application/merge-patch+json, else 415) and
# internal/http/json.go parseJSONRequest.
def test_cas_required_on_the_secret(vault, path):
    """pathMetadataWrite sets cas_required (a TypeBool: "false" is false); a write without
    options.cas is then refused by validateCheckAndSetOption."""
    assert call(vault, "POST", f"/v1/secret/metadata/{path}", json={"cas_required": True}).status_code == 204
    assert call(vault, "GET", f"/v1/secret/metadata/{path}").json()["data"]["cas_required"] is True
    resp = call(vault, "POST", f"/v1/secret/data/{path}", json={"data": {"a": "1"}})
    assert resp.status_code == 400 and resp.json()["errors"] == ["check-and-set parameter required for this call"]
    resp = call(vault, "POST", f"/v1/secret/data/{path}", json={"data": {"a": "1"}, "options": {"cas": 0}})
    assert resp.status_code == 200 and resp.json()["data"]["version"] == 1
    assert set(resp.json()["data"]) >= {"version", "created_time", "deletion_time", "destroyed", "custom_metadata"}
    assert call(vault, "POST", f"/v1/secret/metadata/{path}", json={"cas_required": "false"}).status_code == 204
    assert call(vault, "GET", f"/v1/secret/metadata/{path}").json()["data"]["cas_required"] is False
    assert call(vault, "POST", f"/v1/secret/data/{path}", json={"data": {"a": "2"}}).status_code == 200
    resp = call(vault, "POST", f"/v1/secret/metadata/{path}", json={"max_versions": "many"})
    assert resp.status_code == 400 and 'for field "max_versions"' in resp.json()["errors"][0]


def test_cas_required_on_the_mount(vault, path):
    """pathConfigWrite: cas_required on the mount's config applies to every key."""
    try:
        assert call(vault, "POST", "/v1/secret/config", json={"cas_required": "true"}).status_code == 204
        config = call(vault, "GET", "/v1/secret/config").json()["data"]
        assert config["cas_required"] is True and {"max_versions", "delete_version_after"} <= set(config)
        resp = call(vault, "POST", f"/v1/secret/data/{path}", json={"data": {"a": "1"}})
        assert resp.status_code == 400 and resp.json()["errors"] == ["check-and-set parameter required for this call"]
        resp = call(vault, "POST", f"/v1/secret/data/{path}", json={"data": {"a": "1"}, "options": {"cas": 0}})
        assert resp.status_code == 200
        # pathMetadataWrite: false on the secret is stored with a warning; the mount still decides
        resp = call(vault, "POST", f"/v1/secret/metadata/{path}", json={"cas_required": False})
        assert resp.status_code == 200 and "mandated by backend config" in resp.json()["warnings"][0]
        resp = call(vault, "POST", f"/v1/secret/data/{path}", json={"data": {"a": "2"}})
        assert resp.status_code == 400 and resp.json()["errors"] == ["check-and-set parameter required for this call"]
        resp = call(vault, "POST", "/v1/secret/config", json={"cas_required": "maybe"})
        assert resp.status_code == 400 and 'for field "cas_required"' in resp.json()["errors"][0]
    finally:
        assert call(vault, "POST", "/v1/secret/config", json={"cas_required": False}).status_code == 204
    assert call(vault, "GET", "/v1/secret/config").json()["data"]["cas_required"] is False


def test_a_body_that_is_no_json_is_400_before_the_token(vault, path):
    """buildLogicalRequestNoAuth parses the body first (any Content-Type) - a bad body is a 400
    even with a bad token; a JSON body without a Content-Type is accepted."""
    url, _ = vault
    for token in (vault[1], "nope"):
        for where in ("data", "metadata"):
            resp = requests.post(f"{url}/v1/secret/{where}/{path}", data="{nope", timeout=10,
                                 headers={"X-Vault-Token": token, "Content-Type": "application/json"})
            assert resp.status_code == 400 and "JSON input" in resp.json()["errors"][0], resp.text
    resp = requests.post(f"{url}/v1/secret/data/{path}", data='{"data": {"a": "1"}}', timeout=10,
                         headers={"X-Vault-Token": vault[1]})
    assert resp.status_code == 200 and resp.json()["data"]["version"] == 1


def patch(vault, path, body, content_type="application/merge-patch+json"):
    url, token = vault
    return requests.patch(f"{url}/v1/secret/data/{path}", json=body, timeout=10,
                          headers={"X-Vault-Token": token, "Content-Type": content_type})


def test_patch_merges_into_the_current_version(vault, path):
    """pathDataPatch: 415 without the merge-patch Content-Type (logical.go), 404 for a missing
    secret, check-and-set as a write, a JSON merge patch (null removes), 404 with the version's
    metadata when the current version is deleted."""
    resp = patch(vault, path, {"data": {"a": "1"}}, content_type="application/json")
    assert resp.status_code == 415 and resp.json()["errors"][0].startswith(
        "PATCH requires Content-Type of application/merge-patch+json")
    assert patch(vault, path, {"data": {"a": "1"}}).status_code == 404
    call(vault, "POST", f"/v1/secret/data/{path}", json={"data": {"a": "1", "b": "2"}})
    resp = patch(vault, path, {"data": {"b": None, "c": "3"}, "options": {"cas": 0}})
    assert resp.status_code == 400
    assert resp.json()["errors"] == ["check-and-set parameter did not match the current version"]
    resp = patch(vault, path, {"options": {"cas": 1}})
    assert resp.status_code == 400 and resp.json()["errors"] == ["no data provided"]
    resp = patch(vault, path, {"data": {"b": None, "c": "3"}, "options": {"cas": 1}})
    assert resp.status_code == 200 and resp.json()["data"]["version"] == 2
    assert call(vault, "GET", f"/v1/secret/data/{path}").json()["data"]["data"] == {"a": "1", "c": "3"}
    assert call(vault, "DELETE", f"/v1/secret/data/{path}").status_code == 204
    resp = patch(vault, path, {"data": {"a": "9"}})
    assert resp.status_code == 404 and resp.json()["data"]["version"] == 2
    assert resp.json()["data"]["deletion_time"] != ""


def test_list_of_nothing_unknown_mount_and_wrong_method(vault, path):
    """sdk/logical/response_util.go RespondErrorCommon: a LIST with no keys is a 404 with no
    errors (hecate's ``list`` reads it as empty); vault/router.go: a path on no mount is
    ``no handler for route``; the framework refuses an operation a path lacks with a 405."""
    for method, where in (("LIST", f"/v1/secret/metadata/{path}"), ("GET", f"/v1/secret/metadata/{path}?list=true")):
        resp = call(vault, method, where)
        assert resp.status_code == 404 and resp.json() == {"errors": []}
    resp = call(vault, "GET", f"/v1/no-such-mount-{uuid.uuid4().hex[:8]}/data/{path}")
    assert resp.status_code == 404 and "no handler for route" in resp.json()["errors"][0]
    resp = call(vault, "DELETE", "/v1/secret/config")
    assert resp.status_code == 405 and resp.json()["errors"] == ["unsupported operation"]
    # sdk/framework/backend.go HandleRequest: fd.Validate() - "version" is a framework.TypeInt
    resp = call(vault, "GET", f"/v1/secret/data/{path}?version=abc")
    assert resp.status_code == 400 and 'error converting input for field "version"' in resp.json()["errors"][0]


def test_delete_latest_leaves_a_destroyed_version_alone_and_data_must_be_a_map(vault, path):
    """path_data.go pathDataDelete returns early when the latest version is destroyed (no
    deletion_time is set); "data" is a framework.TypeMap, validated before the handler."""
    call(vault, "POST", f"/v1/secret/data/{path}", json={"data": {"a": "1"}})
    assert call(vault, "POST", f"/v1/secret/destroy/{path}", json={"versions": [1]}).status_code == 204
    assert call(vault, "DELETE", f"/v1/secret/data/{path}").status_code == 204
    version = call(vault, "GET", f"/v1/secret/metadata/{path}").json()["data"]["versions"]["1"]
    assert version["destroyed"] is True and version["deletion_time"] == ""
    resp = call(vault, "POST", f"/v1/secret/data/{path}", json={"data": "a=1"})
    assert resp.status_code == 400 and 'error converting input for field "data"' in resp.json()["errors"][0]
