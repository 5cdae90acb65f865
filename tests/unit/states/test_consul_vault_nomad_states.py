"""consul_kv, consul_service, nomad_variable and hecate_secret: compare, preview, apply."""

import json

import pytest

import hecate_clients
import hecate_secrets
from tests.unit.states.conftest import converges, fails, load, unchanged
from tests.unit.states.fakes import FakeConsul, FakeNomad, FakeResolver, FakeVault

consul_kv = load("states", "consul_kv")
consul_service = load("states", "consul_service")
nomad_variable = load("states", "nomad_variable")
hecate_secret = load("states", "hecate_secret")
REDACTED = hecate_secrets.REDACTED


@pytest.fixture
def consul(monkeypatch):
    fake = FakeConsul()
    monkeypatch.setattr(hecate_clients, "consul", lambda *args, **kwargs: fake)
    return fake


@pytest.fixture
def nomad(monkeypatch):
    fake = FakeNomad()
    monkeypatch.setattr(hecate_clients, "nomad", lambda *args, **kwargs: fake)
    return fake


@pytest.fixture
def vault(monkeypatch):
    fake = FakeVault()
    monkeypatch.setattr(hecate_clients, "vault", lambda *args, **kwargs: fake)
    monkeypatch.setattr(hecate_clients, "resolver", lambda *args, **kwargs: FakeResolver(fake))
    return fake


@pytest.fixture
def opts():
    return {"test": False}


@pytest.fixture
def configure_loader_modules(opts):
    dunders = {"__opts__": opts, "__pillar__": {}, "__context__": {}, "__salt__": {}}
    return {mod: dict(dunders) for mod in (consul_kv, consul_service, nomad_variable, hecate_secret)}


# -- consul_kv -----------------------------------------------------------------------------------
def test_kv_value_is_written_with_check_and_set(consul, opts):
    preview, _ = converges(consul_kv.present, opts, consul, name="hecate/config/motd", value={"message": "hi"})
    assert preview["changes"] == {"value": {"old": None, "new": {"message": "hi"}}}
    assert json.loads(consul.kv["hecate/config/motd"]["Value"]) == {"message": "hi"}


def test_kv_structured_value_is_compared_as_data(consul, opts):
    consul.put("hecate/config/motd", {"message": "hi", "level": 1})
    preview, _ = converges(consul_kv.present, opts, consul, name="hecate/config/motd",
                           value={"message": "bye", "level": 1})
    assert preview["changes"] == {"value:message": {"old": "hi", "new": "bye"}}


def test_kv_vault_reference_is_refused(consul, opts):
    comment = fails(consul_kv.present, opts, consul, name="hecate/x", value={"vault": "secret/a", "key": "b"})
    assert "cannot be stored in Consul KV" in comment


def test_kv_modify_index_mismatch_fails(consul, opts):
    consul.put("hecate/x", "a")
    assert "expected ModifyIndex 1" in fails(consul_kv.present, opts, consul, name="hecate/x", value="b",
                                             modify_index=1)


def test_kv_absent_recurse(consul, opts):
    consul.put("hecate/tmp/a", "1")
    consul.put("hecate/tmp/b", "2")
    consul.put("hecate/keep", "3")
    preview, _ = converges(consul_kv.absent, opts, consul, name="hecate/tmp/", recurse=True)
    assert preview["changes"] == {"deleted": ["hecate/tmp/a", "hecate/tmp/b"]}
    assert list(consul.kv) == ["hecate/keep"]


# -- consul_service ------------------------------------------------------------------------------
SERVICE = {"name": "jenkins-master", "address": "10.0.0.5", "port": 8059, "tags": ["ci"],
           "checks": [{"tcp": "10.0.0.5:8059", "interval": "10s"}]}


def test_service_is_registered_and_then_left_alone(consul, opts):
    preview, _ = converges(consul_service.registered, opts, consul, **SERVICE)
    assert preview["changes"]["registered"] == {"old": None, "new": "jenkins-master"}
    assert preview["changes"]["checks"]["new"] == ["service:jenkins-master: tcp every 10s"]


def test_service_check_change_is_seen(consul, opts):
    opts["test"] = False
    consul_service.registered(**SERVICE)
    consul.writes.clear()
    changed = dict(SERVICE, checks=[{"tcp": "10.0.0.5:8059", "interval": "30s"}])
    preview, _ = converges(consul_service.registered, opts, consul, **changed)
    assert list(preview["changes"]) == ["checks"]


def test_service_with_two_check_kinds_is_refused(consul, opts):
    bad = dict(SERVICE, checks=[{"tcp": "10.0.0.5:1", "http": "http://10.0.0.5/", "interval": "10s"}])
    assert "exactly one of http, tcp or ttl" in fails(consul_service.registered, opts, consul, **bad)


def test_service_absent(consul, opts):
    opts["test"] = False
    consul_service.registered(**SERVICE)
    consul.writes.clear()
    converges(consul_service.absent, opts, consul, name="jenkins-master")


def test_service_absent_owned_removes_only_what_hecate_registered(consul, opts):
    opts["test"] = False
    consul_service.registered(**SERVICE)
    consul.service_register({"ID": "backup-agent", "Name": "backup-agent", "Port": 9100})  # someone else's
    consul.writes.clear()
    preview, _ = converges(consul_service.absent, opts, consul, name="jenkins-master", owned=True)
    assert preview["changes"] == {"deregistered": {"old": "jenkins-master", "new": None}}
    consul.writes.clear()
    ret = unchanged(consul_service.absent, opts, consul, name="backup-agent", owned=True)
    assert ret["comment"] == ("Consul service backup-agent was not registered by hecate (no meta hecate-checks): "
                              "left alone")
    assert "backup-agent" in consul.services


# -- nomad_variable ------------------------------------------------------------------------------
def test_variable_secret_items_are_resolved_and_never_shown(nomad, vault, opts):
    vault.seed("secret/bionicgpt/litellm", {"master_key": "sk-very-secret"})
    items = {"log_level": "info", "api_key": {"vault": "secret/bionicgpt/litellm", "key": "master_key"}}
    preview, applied = converges(nomad_variable.present, opts, nomad, name="nomad/jobs/app", items=items)
    assert preview["changes"] == {"api_key": {"old": None, "new": REDACTED},
                                  "log_level": {"old": None, "new": "info"}}
    assert "sk-very-secret" not in repr(preview) + repr(applied)
    assert nomad.variables["nomad/jobs/app"]["Items"] == {"log_level": "info", "api_key": "sk-very-secret"}


def test_variable_holds_exactly_its_items(nomad, vault, opts):  # pylint: disable=unused-argument
    nomad.seed("nomad/jobs/app", {"log_level": "debug", "stale": "x"})
    preview, _ = converges(nomad_variable.present, opts, nomad, name="nomad/jobs/app", items={"log_level": "info"})
    assert preview["changes"] == {"log_level": {"old": "debug", "new": "info"}, "stale": {"old": "x", "new": None}}


def test_variable_absent(nomad, opts):
    nomad.seed("nomad/jobs/old", {"a": "1"})
    preview, _ = converges(nomad_variable.absent, opts, nomad, name="nomad/jobs/old")
    assert preview["changes"] == {"deleted": {"old": ["a"], "new": None}}


# -- hecate_secret -------------------------------------------------------------------------------
def test_generated_secret_is_made_once(vault, opts):
    preview, applied = converges(hecate_secret.generated, opts, vault, name="secret/bionicgpt/db", key="password",
                                 length=24, alphabet="hex")
    assert preview["changes"] == {"secret/bionicgpt/db#password": {"old": None, "new": REDACTED}}
    assert applied["changes"]["version"] == {"old": None, "new": 1}
    value = vault.read_data("secret", "bionicgpt/db")["password"]
    assert len(value) == 24 and value not in repr(applied)


def test_generated_secret_keeps_the_other_keys_and_is_not_regenerated(vault, opts):
    vault.seed("secret/bionicgpt/db", {"user": "bionic", "password": "kept"})
    unchanged(hecate_secret.generated, opts, vault, name="secret/bionicgpt/db", key="password")
    converges(hecate_secret.generated, opts, vault, name="secret/bionicgpt/db", key="other")
    assert vault.read_data("secret", "bionicgpt/db")["password"] == "kept"


def test_present_copies_a_reference(vault, opts):
    vault.seed("secret/hecate/authentik", {"client_secret": "from-authentik"})
    preview, _ = converges(hecate_secret.present, opts, vault, name="secret/bionicgpt/oauth",
                           values={"client_secret": {"vault": "secret/hecate/authentik", "key": "client_secret"}})
    assert preview["changes"] == {"secret/bionicgpt/oauth#client_secret": {"old": None, "new": REDACTED}}
    assert vault.read_data("secret", "bionicgpt/oauth") == {"client_secret": "from-authentik"}


def test_absent_key_writes_a_version_without_it(vault, opts):
    vault.seed("secret/bionicgpt/old", {"password": "x", "user": "u"})
    converges(hecate_secret.absent, opts, vault, name="secret/bionicgpt/old", key="password")
    assert vault.read_data("secret", "bionicgpt/old") == {"user": "u"}


def test_bad_alphabet_is_refused_before_connecting(monkeypatch, vault, opts):
    monkeypatch.setattr(hecate_clients, "vault", lambda *a, **k: pytest.fail("connected"))
    assert "unknown alphabet" in fails(hecate_secret.generated, opts, vault, name="secret/a/b", key="k",
                                       alphabet="klingon")
