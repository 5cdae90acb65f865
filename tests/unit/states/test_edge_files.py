"""coturn_config.managed: the TURN config file, its shared secret from Vault never shown."""

import os

import pytest

import hecate_clients
from tests.unit.states.conftest import converges, fails, load
from tests.unit.states.fakes import FakeResolver, FakeVault, FileBackend

coturn_config = load("states", "coturn_config")
SECRET = {"vault": "secret/hecate/coturn", "key": "static_auth_secret"}
OWNER = ({"file_user": "root", "file_group": "root"} if os.geteuid() == 0 else
         {"file_user": None, "file_group": None})


@pytest.fixture
def vault(monkeypatch):
    fake = FakeVault()
    monkeypatch.setattr(hecate_clients, "resolver", lambda *args, **kwargs: FakeResolver(fake))
    return fake


@pytest.fixture
def opts():
    return {"test": False}


@pytest.fixture
def configure_loader_modules(opts):
    return {coturn_config: {"__opts__": opts, "__pillar__": {}, "__context__": {}, "__salt__": {}}}


def coturn(**extra):
    return dict({"realm": "example.com", "static_auth_secret": SECRET, "file_mode": "0640"}, **OWNER, **extra)


def test_config_file_is_written_once_and_the_secret_never_shown(vault, opts, tmp_path):
    vault.seed("secret/hecate/coturn", {"static_auth_secret": "0123456789abcdef-turn"})
    path = tmp_path / "turnserver.conf"
    preview, applied = converges(coturn_config.managed, opts, FileBackend(path), name=str(path), config=coturn())
    assert "0123456789abcdef-turn" not in repr(preview) + repr(applied)
    assert "static-auth-secret=0123456789abcdef-turn" in path.read_text()
    assert oct(path.stat().st_mode & 0o777) == "0o640"


def test_a_changed_setting_is_named_not_the_secret(vault, opts, tmp_path):
    vault.seed("secret/hecate/coturn", {"static_auth_secret": "0123456789abcdef-turn"})
    path = tmp_path / "turnserver.conf"
    opts["test"] = False
    coturn_config.managed(name=str(path), config=coturn())
    preview, _ = converges(coturn_config.managed, opts, _Rewrites(path), name=str(path),
                           config=coturn(realm="other.example.com"))
    assert preview["changes"]["settings"] == {"realm": {"old": "example.com", "new": "other.example.com"}}


def test_a_secret_the_file_cannot_hold_is_refused(vault, opts, tmp_path):
    vault.seed("secret/hecate/coturn", {"static_auth_secret": "has a space"})
    path = tmp_path / "turnserver.conf"
    assert "whitespace" in fails(coturn_config.managed, opts, FileBackend(path), name=str(path), config=coturn())
    assert not path.exists()


class _Rewrites(FileBackend):
    """The file exists already: only a rewrite counts."""

    def __init__(self, path):
        super().__init__(path)
        self.first = super().writes

    @property
    def writes(self):
        now = super().writes
        return [] if now == self.first else now
