"""
hecate_agent (the Consul agent's config file, its secrets from Vault), hecate.validated
(the pillar check every orchestration starts with) and hecate.target (the execution
function the top file and orchestration target with), with the loader dunders.
"""

import json
import types

import pytest
import salt.exceptions

import hecate_secrets
import hecate_vault_client
from tests.unit.states.conftest import converges, fails, load
from tests.unit.states.fakes import FakeVault, FileBackend

hecate_agent = load("states", "hecate_agent")
hecate_checks = load("states", "hecate")
modules = types.SimpleNamespace(hecate=load("modules", "hecate"))

GOSSIP = {"vault": "secret/hecate/consul", "key": "gossip_key"}
PILLAR = {
    "hecate": {
        "global": {"domain": "example.com", "environment": "prod"},
        "members": {"hecate-edge": ["edge-1"], "bionicgpt-node": ["gpu-*"]},
        "consul": {"agent": {"gossip_key": GOSSIP, "group": "root"}},
    },
    "bionicgpt": {
        "wireguard": {"network": "10.88.0.0/24", "cloud": {"address": "10.88.0.1", "endpoint": "203.0.113.1:51820"},
                      "local": {"address": "10.88.0.2"}},
    },
}
GRAINS = {"id": "edge-1", "roles": ["hecate-edge"], "hecate_env": "prod"}


@pytest.fixture
def vault(monkeypatch):
    fake = FakeVault()
    monkeypatch.setattr(hecate_vault_client.Resolver, "vault", lambda self: fake)
    return fake


@pytest.fixture
def opts():
    return {"test": False}


@pytest.fixture
def configure_loader_modules(opts):
    # the mine (the edges' WireGuard keys: which edges the Consul agents join) knows this edge only
    mine = {"mine.get": lambda tgt, fun, tgt_type="glob": {"edge-1": None}}
    dunders = {"__opts__": opts, "__pillar__": PILLAR, "__grains__": GRAINS, "__context__": {}, "__salt__": mine}
    return {hecate_agent: dict(dunders), hecate_checks: dict(dunders), modules.hecate: dict(dunders)}


def test_consul_config_is_written_with_the_gossip_key_never_shown(vault, opts, tmp_path):
    vault.seed("secret/hecate/consul", {"gossip_key": "c2VjcmV0LWdvc3NpcC1rZXktMzItYnl0ZXMtbG9uZyE="})
    path = tmp_path / "consul.d" / "consul.json"
    preview, applied = converges(hecate_agent.consul_config, opts, FileBackend(path), name=str(path))
    assert set(preview["changes"]) == {"config_dir", "config"}
    assert "c2VjcmV0" not in json.dumps(preview) + json.dumps(applied)
    assert hecate_secrets.REDACTED in preview["changes"]["config"]["diff"]
    config = json.loads(path.read_text())
    assert config["encrypt"] == "c2VjcmV0LWdvc3NpcC1rZXktMzItYnl0ZXMtbG9uZyE="
    assert config["server"] is True and config["bind_addr"] == "10.88.0.1"
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def test_consul_config_preview_shows_a_generated_key_as_pending(vault, opts, tmp_path):
    """The orchestration's secrets step makes the gossip key later in the same run."""
    pillar = dict(PILLAR, hecate=dict(PILLAR["hecate"], secrets={
        "consul_gossip": {"path": "secret/hecate/consul", "key": "gossip_key", "alphabet": "bytes_base64"}}))
    hecate_agent.__pillar__ = pillar
    opts["test"] = True
    ret = hecate_agent.consul_config(name=str(tmp_path / "consul.json"))
    assert ret["result"] is None and "which the run generates first" in ret["comment"]
    opts["test"] = False
    ret = hecate_agent.consul_config(name=str(tmp_path / "consul.json"))
    assert ret["result"] is False and "has no key 'gossip_key'" in ret["comment"]
    assert not (tmp_path / "consul.json").exists() and not vault.writes


def test_a_missing_secret_fails_without_writing(vault, opts, tmp_path):  # pylint: disable=unused-argument
    path = tmp_path / "consul.json"
    comment = fails(hecate_agent.consul_config, opts, FileBackend(path), name=str(path))
    assert "secret/hecate/consul has no key 'gossip_key'" in comment and not path.exists()


def test_validated_names_every_error_by_key_path(opts):
    hecate_checks.__pillar__ = {"hecate": {"global": {"domain": "example.com", "environment": "prod"},
                                           "reverse_proxy": {"caddy": {"routes": [{"domain": "x"}]}}}}
    hecate_checks.__grains__ = {"hecate_env": "prod"}
    for test in (True, False):
        opts["test"] = test
        ret = hecate_checks.validated(name="pillar")
        assert ret["result"] is False and ret["changes"] == {}
        assert "hecate:reverse_proxy:caddy:routes:0" in ret["comment"]


def test_target_is_the_role_and_env_grains_and_the_members_listed_in_pillar():
    assert modules.hecate.target("bionicgpt-node") == (
        "G@roles:bionicgpt-node and G@hecate_env:prod and ( gpu-* )"
    )
    both = modules.hecate.target()
    assert "G@roles:hecate-edge" in both and "edge-1" in both and "gpu-*" in both
    with pytest.raises(salt.exceptions.SaltInvocationError, match="role must be one of"):
        modules.hecate.target("web")
    with pytest.raises(salt.exceptions.SaltInvocationError, match="known on the master only"):
        modules.hecate.target("hecate-edge", env="dev")

