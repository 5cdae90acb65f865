"""The shared Vault KV v2 client against the Vault simulator."""

import pytest
import salt.exceptions

import hecate_secrets
import hecate_vault_client as hv
import hecate_vault_schema
from lab.sim import SimHandle

ROOT = "root-t0ken-for-tests"


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    options = {
        "root_token": ROOT,
        "policies": {"ro": [{"path": "secret/data/app/*", "capabilities": ["read"]}]},
        "approles": {"role-1": {"secret_id": "sid-1", "policies": ["ro"]},
                     # tokens that live one second (the role's token_ttl), renewable up to 3
                     "short": {"secret_id": "sid-2", "policies": ["ro"], "token_ttl": 1, "token_max_ttl": 3}},
    }
    handle = SimHandle("vault", str(tmp_path_factory.mktemp("vault")), options).start()
    yield handle
    handle.stop()


def kv(sim, **settings):
    settings.setdefault("token", ROOT)
    return hv.VaultKV({"url": sim.url, **settings})


def test_read_write_cas(sim):
    client = kv(sim)
    assert client.read("secret", "app/a") == (None, None)
    client.write("secret", "app/a", {"x": "1"}, cas=0)
    with pytest.raises(hv.CASConflict, match="check-and-set"):
        client.write("secret", "app/a", {"x": "2"}, cas=0)
    data, meta = client.read("secret", "app/a")
    assert data == {"x": "1"} and meta["version"] == 1


def test_merge_keeps_other_keys_and_skips_no_op(sim):
    client = kv(sim)
    assert client.merge("secret", "app/m", {"client_id": "id1"}) is True
    assert client.merge("secret", "app/m", {"client_secret": "s1"}) is True
    assert client.merge("secret", "app/m", {"client_secret": "s1"}) is False
    assert client.read_data("secret", "app/m") == {"client_id": "id1", "client_secret": "s1"}
    assert client.metadata("secret", "app/m")["current_version"] == 2


def test_approle_and_policy(sim):
    kv(sim).write("secret", "app/p", {"k": "v"})
    ro = hv.VaultKV({"url": sim.url, "approle": {"role_id": "role-1", "secret_id": "sid-1"}})
    assert ro.read_data("secret", "app/p") == {"k": "v"}
    with pytest.raises(salt.exceptions.CommandExecutionError, match="permission denied"):
        ro.write("secret", "app/p", {"k": "w"})


def test_an_expired_approle_token_logs_in_again(sim):
    """
    A long-lived process outlives its AppRole token (Vault revokes it at its TTL and answers
    403 "permission denied"): the client logs in again, once, and the request succeeds; a
    token that lacks the policy still fails after that one attempt.
    """
    import time  # pylint: disable=import-outside-toplevel

    kv(sim).write("secret", "app/exp", {"k": "v"})
    client = hv.VaultKV({"url": sim.url, "approle": {"role_id": "short", "secret_id": "sid-2"}})
    assert client.read_data("secret", "app/exp") == {"k": "v"}
    first = client.client.token
    time.sleep(1.2)
    sim.clear_requests()
    assert client.read_data("secret", "app/exp") == {"k": "v"}
    assert client.client.token != first
    calls = [(r["path"], r["status"]) for r in sim.requests()]
    assert calls == [("/v1/secret/data/app/exp", 403), ("/v1/auth/approle/login", 200),
                     ("/v1/secret/data/app/exp", 200)]
    sim.clear_requests()
    with pytest.raises(salt.exceptions.CommandExecutionError, match="permission denied"):
        client.write("secret", "app/exp", {"k": "w"})
    assert [(r["path"], r["status"]) for r in sim.requests()] == [
        ("/v1/secret/data/app/exp", 403), ("/v1/auth/approle/login", 200), ("/v1/secret/data/app/exp", 403)]


def test_resolver_is_lazy_and_caches_login(sim):
    kv(sim).write("secret", "app/r", {"api_token": "tok-123456"})
    opts = {"hecate": {"connections": {"vault": {"url": sim.url, "token": ROOT}}}}
    context = {}
    resolve = hv.Resolver(opts, {}, context=context)
    sim.clear_requests()
    assert resolve("plain-literal", "x").reveal() == "plain-literal"
    assert sim.requests() == []  # no Vault needed for a literal
    secret = resolve({"vault": "secret/app/r", "key": "api_token"}, "hecate:connections:authentik:token")
    assert secret.reveal() == "tok-123456" and str(secret) == "XXX-REDACTED-XXX"
    assert hv.from_config(opts, {}, context=context) is resolve.vault()


def test_missing_token_config_is_clear(sim):
    with pytest.raises(salt.exceptions.SaltInvocationError, match="needs a token or approle"):
        hv.VaultKV({"url": sim.url})


def test_token_from_sdb_and_read_for_update(sim):
    calls = []

    def sdb_get(uri):
        calls.append(uri)
        return ROOT if uri == "sdb://osenv/VAULT_TOKEN" else None

    client = hv.VaultKV({"url": sim.url, "token": "sdb://osenv/VAULT_TOKEN"}, sdb_get=sdb_get)
    assert calls == ["sdb://osenv/VAULT_TOKEN"]
    assert client.read_for_update("secret", "app/rfu") == (None, 0)
    client.write("secret", "app/rfu", {"k": "1"}, cas=0)
    client.write("secret", "app/rfu", {"k": "2"}, cas=1)
    assert client.read_for_update("secret", "app/rfu") == ({"k": "2"}, 2)
    client.delete_latest("secret", "app/rfu")
    # deleted latest version: no data, but CAS must be based on the current version
    assert client.read_for_update("secret", "app/rfu") == (None, 2)
    assert client.merge("secret", "app/rfu", {"k": "3"}) is True
    assert client.read("secret", "app/rfu")[1]["version"] == 3
    assert "rfu" in client.list("secret", "app")


def test_generate_and_paths():
    secret = hecate_secrets.generate(24, "hex", prefix="sk-")
    value = secret.reveal()
    assert str(secret) == "XXX-REDACTED-XXX" and value.startswith("sk-") and len(value) == 27
    assert set(value[3:]) <= set("0123456789abcdef")
    assert hecate_secrets.generate(32).reveal() != hecate_secrets.generate(32).reveal()
    assert hv.split_path("secret/bionicgpt/db") == ("secret", "bionicgpt/db")
    with pytest.raises(salt.exceptions.SaltInvocationError, match="<mount>/<path>"):
        hv.split_path("secret")
    with pytest.raises(salt.exceptions.SaltInvocationError, match="unknown alphabet"):
        hecate_secrets.generate(32, "klingon")
    assert hecate_vault_schema.secret_ref({"path": "secret/bionicgpt/db", "key": "password"}) == {
        "vault": "secret/bionicgpt/db", "key": "password"}
