"""hecate_secret states and the hecate_vault module through real loaders, against the Vault simulator."""

import string
import uuid

import pytest
import requests

REDACTED = "XXX-REDACTED-XXX"


@pytest.fixture
def path():
    return f"secret/hecate/func-tests/{uuid.uuid4().hex[:10]}"


def vault_data(vault_sim, path):
    mount, _, rel = path.partition("/")
    resp = requests.get(
        f"{vault_sim.url}/v1/{mount}/data/{rel}", headers={"X-Vault-Token": vault_sim.root_token}, timeout=10
    )
    if resp.status_code != 200:
        return None
    return resp.json()["data"]["data"]


def vault_write(vault_sim, path, data):
    mount, _, rel = path.partition("/")
    resp = requests.post(f"{vault_sim.url}/v1/{mount}/data/{rel}", json={"data": data},
                         headers={"X-Vault-Token": vault_sim.root_token}, timeout=10)
    assert resp.status_code == 200, resp.text


def assert_no_value(ret, *values):
    text = repr(ret.full_return) if hasattr(ret, "full_return") else repr(ret)
    for value in values:
        assert value not in text


@pytest.mark.parametrize("test_mode", [True, False], ids=["test", "apply"])
def test_generated(loaders, vault_sim, path, test_mode):
    vault_write(vault_sim, path, {"other": "keep-me-123"})
    vault_sim.clear_requests()
    ret = loaders.states.hecate_secret.generated(name=path, key="password", length=32, test=test_mode)
    assert ret.changes[f"{path}#password"] == {"old": None, "new": REDACTED}
    if test_mode:
        assert ret.result is None
        assert ret.comment == f"would generate {path}#password: random 32 characters (alnum)"
        assert vault_sim.writes() == []
        assert vault_data(vault_sim, path) == {"other": "keep-me-123"}
        return
    assert ret.result is True
    assert ret.comment == f"generated {path}#password: random 32 characters (alnum)"
    data = vault_data(vault_sim, path)
    value = data["password"]
    assert data["other"] == "keep-me-123"
    assert len(value) == 32 and set(value) <= set(string.ascii_letters + string.digits)
    assert_no_value(ret, value)
    assert len(vault_sim.writes()) == 1
    # re-run: unchanged value, no write - also when the requested shape changed
    vault_sim.clear_requests()
    ret = loaders.states.hecate_secret.generated(name=path, key="password", length=48, alphabet="hex")
    assert ret.result is True and ret.changes == {}
    assert ret.comment == f"{path}#password exists; left unchanged"
    assert vault_sim.writes() == []
    assert vault_data(vault_sim, path)["password"] == value


def test_generated_prefix_and_explicit_rotation(loaders, vault_sim, path):
    ret = loaders.states.hecate_secret.generated(name=path, key="master_key", prefix="sk-", length=40)
    first = vault_data(vault_sim, path)["master_key"]
    assert ret.result is True and first.startswith("sk-") and len(first) == 43
    ret = loaders.states.hecate_secret.generated(
        name=path, key="master_key", prefix="sk-", length=40, rotate=True, test=True
    )
    assert ret.result is None and ret.changes[f"{path}#master_key"] == {"old": REDACTED, "new": REDACTED}
    assert ret.comment.startswith(f"would rotate {path}#master_key")
    assert vault_data(vault_sim, path)["master_key"] == first
    ret = loaders.states.hecate_secret.generated(name=path, key="master_key", prefix="sk-", length=40, rotate=True)
    second = vault_data(vault_sim, path)["master_key"]
    assert ret.result is True and second != first and second.startswith("sk-")
    assert ret.changes["version"] == {"old": 1, "new": 2}
    assert_no_value(ret, first, second)


def test_generated_cas_conflict_fails_without_overwriting(loaders, vault_sim, path, monkeypatch):
    import hecate_vault_client  # the module object the loaded states use

    original = hecate_vault_client.VaultKV.write
    vault_write(vault_sim, path, {"other": "x-1"})

    def someone_writes_first(self, mount, rel, data, cas=None):
        vault_write(vault_sim, path, {"other": "x-2", "password": "written-meanwhile-1"})
        return original(self, mount, rel, data, cas=cas)

    monkeypatch.setattr(hecate_vault_client.VaultKV, "write", someone_writes_first)
    ret = loaders.states.hecate_secret.generated(name=path, key="password")
    monkeypatch.undo()
    assert ret.result is False and ret.changes == {}
    assert "changed while this state ran (check-and-set on version 1 failed)" in ret.comment
    assert "re-run" in ret.comment
    assert vault_data(vault_sim, path) == {"other": "x-2", "password": "written-meanwhile-1"}


def test_generated_sees_a_secret_created_meanwhile(loaders, vault_sim, path, monkeypatch):
    import hecate_vault_client

    original = hecate_vault_client.VaultKV.read
    calls = []

    def created_after_first_read(self, mount, rel, version=None):
        result = original(self, mount, rel, version=version)
        if not calls:
            vault_write(vault_sim, path, {"password": "created-meanwhile-1"})
        calls.append(version)
        return result

    monkeypatch.setattr(hecate_vault_client.VaultKV, "read", created_after_first_read)
    ret = loaders.states.hecate_secret.generated(name=path, key="password")
    monkeypatch.undo()
    assert ret.result is True and ret.changes == {}  # seen as existing: never overwritten
    assert vault_data(vault_sim, path) == {"password": "created-meanwhile-1"}


@pytest.mark.parametrize("test_mode", [True, False], ids=["test", "apply"])
def test_present_from_reference(loaders, vault_sim, path, test_mode):
    source = f"{path}-source"
    vault_write(vault_sim, source, {"client_secret": "handed-over-secret-42"})
    vault_write(vault_sim, path, {"client_id": "bionicgpt"})
    vault_sim.clear_requests()
    values = {"client_secret": {"vault": source, "key": "client_secret"}}
    ret = loaders.states.hecate_secret.present(name=path, values=values, test=test_mode)
    assert_no_value(ret, "handed-over-secret-42")
    assert ret.changes[f"{path}#client_secret"] == {"old": None, "new": REDACTED}
    if test_mode:
        assert ret.result is None and ret.comment == f"would write client_secret to {path}"
        assert vault_sim.writes() == []
        return
    assert ret.result is True
    assert vault_data(vault_sim, path) == {"client_id": "bionicgpt", "client_secret": "handed-over-secret-42"}
    vault_sim.clear_requests()
    ret = loaders.states.hecate_secret.present(name=path, values=values)
    assert ret.result is True and ret.changes == {} and vault_sim.writes() == []
    # the source changes (e.g. the provider's secret was regenerated): the copy follows
    vault_write(vault_sim, source, {"client_secret": "regenerated-secret-43"})
    ret = loaders.states.hecate_secret.present(name=path, values=values)
    assert ret.result is True and ret.changes[f"{path}#client_secret"] == {"old": REDACTED, "new": REDACTED}
    assert_no_value(ret, "handed-over-secret-42", "regenerated-secret-43")


def test_present_missing_reference_is_clear(loaders, vault_sim, path):
    ret = loaders.states.hecate_secret.present(name=path, values={"x": {"vault": f"{path}-none", "key": "k"}})
    assert ret.result is False and f"Vault secret {path}-none has no key 'k'" in ret.comment


@pytest.mark.parametrize("test_mode", [True, False], ids=["test", "apply"])
def test_absent_key_and_secret(loaders, vault_sim, path, test_mode):
    vault_write(vault_sim, path, {"a": "aaaa-1", "b": "bbbb-2"})
    vault_sim.clear_requests()
    ret = loaders.states.hecate_secret.absent(name=path, key="a", test=test_mode)
    assert ret.changes == {f"{path}#a": {"old": REDACTED, "new": None}}
    if test_mode:
        assert ret.result is None and vault_sim.writes() == []
        return
    assert vault_data(vault_sim, path) == {"b": "bbbb-2"}
    ret = loaders.states.hecate_secret.absent(name=path)
    assert ret.result is True and vault_data(vault_sim, path) is None
    vault_sim.clear_requests()
    assert loaders.states.hecate_secret.absent(name=path).changes == {}
    assert vault_sim.writes() == []


def test_bad_input_is_a_clear_failure(loaders, vault_sim):
    vault_sim.clear_requests()
    ret = loaders.states.hecate_secret.generated(name="nomount", key="k")
    assert ret.result is False and "name: expected '<mount>/<path>'" in ret.comment
    ret = loaders.states.hecate_secret.generated(name="secret/hecate/func-tests/x", key="k", alphabet="emoji")
    assert ret.result is False and "unknown alphabet 'emoji'" in ret.comment
    ret = loaders.states.hecate_secret.generated(name="secret/hecate/func-tests/x", key="k", length=4)
    assert ret.result is False and "length must be" in ret.comment
    ret = loaders.states.hecate_secret.present(name="secret/hecate/func-tests/x", values="nope")
    assert ret.result is False and "values: expected a mapping" in ret.comment
    assert vault_sim.writes() == []


def test_vault_unavailable_is_result_false(loaders, vault_sim, path):
    vault_sim.fault(method="GET", path="/v1/secret/data/", status=503, body={"errors": ["Vault is sealed"]}, times=10)
    try:
        ret = loaders.states.hecate_secret.generated(name=path, key="k")
    finally:
        vault_sim.clear_faults()
    assert ret.result is False and "Vault is sealed" in ret.comment


def test_module_never_returns_values(loaders, vault_sim, path):
    mod = loaders.modules.hecate_vault
    vault_write(vault_sim, path, {"password": "module-secret-77", "user": "bionic"})
    got = mod.read(path)
    assert got["exists"] is True and got["keys"] == ["password", "user"]
    assert got["data"] == {"password": REDACTED, "user": REDACTED} and got["version"] == 1
    assert "module-secret-77" not in repr(got)
    assert mod.exists(path, key="password") is True and mod.exists(path, key="nope") is False
    assert mod.metadata(path)["current_version"] == 1
    result = mod.generate(path, "token", length=16)
    assert result == {"path": path, "key": "token", "generated": True, "version": 2}
    assert mod.generate(path, "token")["generated"] is False
    assert set(vault_data(vault_sim, path)) == {"password", "user", "token"}
    written = mod.write(path, data={"copy": {"vault": path, "key": "password"}})
    assert written == {"path": path, "version": 3, "keys": ["copy", "password", "token", "user"]}
    assert vault_data(vault_sim, path)["copy"] == "module-secret-77"
    with pytest.raises(Exception, match="check-and-set"):
        mod.write(path, data={"x": "y"}, cas=1)
    assert path.rsplit("/", 1)[1] in mod.list(path.rsplit("/", 1)[0])
    assert mod.delete(path) is True and mod.read(path)["exists"] is False
