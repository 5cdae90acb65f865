"""The shared Vault KV v2 client against the Vault simulator."""

import pytest
import salt.exceptions

import hecate_vault_client as hv
from lab.sim import SimHandle

ROOT = "root-t0ken-for-tests"


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    options = {
        "root_token": ROOT,
        "policies": {"ro": [{"path": "secret/data/app/*", "capabilities": ["read"]}]},
        "approles": {"role-1": {"secret_id": "sid-1", "policies": ["ro"]}},
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
