"""
coturn_config.managed through Salt's loaders: the static auth secret comes from the Vault
simulator, lands only in the root-only file, never in returns or logs; and the real
turnserver runs with the rendered file and accepts TURN REST credentials made from it.
"""

import json
import logging
import os
import secrets
import shutil
import socket
import stat

import pytest
import requests
from saltfactories.utils.functional import Loaders

from lab import procs
from tests import edge_support

SECRET_PATH = "hecate/coturn"


@pytest.fixture(scope="module")
def loaders(salt_factories, repo, vault_sim):
    factory = salt_factories.salt_minion_daemon(
        "edge-coturn-functional",
        overrides={
            "module_dirs": [repo],
            "file_client": "local",
            "hecate": {
                "connections": {"vault": {"url": vault_sim.url, "token": vault_sim.root_token}}
            },
        },
    )
    return Loaders(factory.config.copy())


@pytest.fixture
def states(loaders):
    try:
        yield loaders.states
    finally:
        loaders.reset_state()


def vault_write(vault_sim, value):
    resp = requests.post(
        f"{vault_sim.url}/v1/secret/data/{SECRET_PATH}",
        headers={"X-Vault-Token": vault_sim.root_token},
        json={"data": {"static_auth_secret": value}},
        timeout=10,
    )
    assert resp.status_code == 200, resp.text


@pytest.fixture
def secret(vault_sim):
    value = secrets.token_urlsafe(32)
    vault_write(vault_sim, value)
    return value


def coturn_config(root, **extra):
    cfg = {
        "config_file": f"{root}/turnserver.conf",
        "realm": "turn.hecate.test",
        "static_auth_secret": {"vault": f"secret/{SECRET_PATH}", "key": "static_auth_secret"},
        "ports": {"listening": 34780, "tls_listening": 53490, "relay_min": 49160, "relay_max": 49200},
        "file_mode": "0600",
        "file_user": "root",
        "file_group": "root",
        "manage_service": False,
    }
    cfg.update(extra)
    return cfg


def apply(states, cfg, test=False):
    return states.coturn_config.managed(name=cfg["config_file"], config=cfg, test=test)


def test_secret_only_in_the_root_only_file(states, tmp_path, secret, vault_sim, caplog):
    caplog.set_level(logging.DEBUG)
    cfg = coturn_config(tmp_path)
    path = cfg["config_file"]
    returns = []

    preview = apply(states, cfg, test=True)
    returns.append(preview.raw)
    assert preview.result is None, preview
    assert preview.changes["content"] == "file created (contains secrets, not shown)"
    assert preview.changes["settings"]["static-auth-secret"] == {
        "old": "XXX-REDACTED-XXX", "new": "XXX-REDACTED-XXX"
    }
    assert preview.changes["settings"]["min-port"] == {"old": None, "new": "49160"}
    assert os.listdir(tmp_path) == []

    ret = apply(states, cfg)
    returns.append(ret.raw)
    assert ret.result is True, ret
    assert ret.changes == preview.changes
    st = os.stat(path)
    assert stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == 0 and st.st_gid == 0
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    assert f"\nstatic-auth-secret={secret}\n" in text
    assert "\nuse-auth-secret\n" in text and "\nrealm=turn.hecate.test\n" in text
    assert os.listdir(tmp_path) == ["turnserver.conf"]  # no candidate left behind

    again = apply(states, cfg)
    returns.append(again.raw)
    assert again.result is True and again.changes == {}, again

    # rotation in Vault: the file follows, the return says so without the value
    rotated = secrets.token_urlsafe(32)
    vault_write(vault_sim, rotated)
    ret = apply(states, cfg, test=True)
    returns.append(ret.raw)
    assert ret.result is None
    assert ret.changes == {
        "content": "content changed (contains secrets, not shown)",
        "settings": {"static-auth-secret": {"old": "XXX-REDACTED-XXX", "new": "XXX-REDACTED-XXX"}},
    }
    with open(path, encoding="utf-8") as fh:
        assert fh.read() == text  # test=True wrote nothing
    ret = apply(states, cfg)
    returns.append(ret.raw)
    assert ret.result is True
    with open(path, encoding="utf-8") as fh:
        assert f"\nstatic-auth-secret={rotated}\n" in fh.read()

    # a settings change shows the setting, not the file
    cfg["ports"]["relay_max"] = 49300
    ret = apply(states, cfg)
    returns.append(ret.raw)
    assert ret.changes == {
        "content": "content changed (contains secrets, not shown)",
        "settings": {"max-port": {"old": "49200", "new": "49300"}},
    }

    dumped = json.dumps(returns)
    logged = caplog.text
    for value in (secret, rotated):
        assert value not in dumped
        assert value not in logged
    assert "coturn_config" in logged  # the state did log, just not the secret


def test_mode_and_owner_are_enforced(states, tmp_path, secret):
    cfg = coturn_config(tmp_path)
    assert apply(states, cfg).result is True
    os.chmod(cfg["config_file"], 0o644)
    ret = apply(states, cfg)
    assert ret.result is True
    assert ret.changes == {"mode": {"old": "0644", "new": "0600"}}
    assert stat.S_IMODE(os.stat(cfg["config_file"]).st_mode) == 0o600


def test_hand_edited_file_other_secrets_are_not_shown(states, tmp_path, secret):
    cfg = coturn_config(tmp_path)
    with open(cfg["config_file"], "w", encoding="utf-8") as fh:
        fh.write("listening-port=3478\nstatic-auth-secret=yets-EIGHT-Bluk-Ep-Oc-LEFT_BRACKET\n"
                 "cli-password=hunter2hunter2\nuser=alice:wonderland\n")
    ret = apply(states, cfg, test=True)
    dumped = json.dumps(ret.raw)
    for value in ("yets-EIGHT", "hunter2", "wonderland", secret):
        assert value not in dumped
    assert ret.changes["settings"]["other options removed (values not shown)"] == ["cli-password", "user"]
    assert ret.changes["settings"]["listening-port"] == {"old": "3478", "new": "34780"}


def test_vault_errors_fail_clearly(states, tmp_path, vault_sim):
    cfg = coturn_config(tmp_path, static_auth_secret={"vault": "secret/hecate/nowhere", "key": "k"})
    ret = apply(states, cfg)
    assert ret.result is False and ret.changes == {}
    assert "hecate:reverse_proxy:coturn:static_auth_secret" in ret.comment
    assert "Vault secret secret/hecate/nowhere has no key 'k'" in ret.comment
    assert os.listdir(tmp_path) == []


def test_unusable_secret_is_refused_without_showing_it(states, tmp_path, vault_sim):
    vault_write(vault_sim, "two words#")
    ret = apply(states, coturn_config(tmp_path))
    assert ret.result is False
    assert "two words" not in ret.comment
    assert "turnserver.conf cannot hold" in ret.comment
    assert os.listdir(tmp_path) == []


def test_invalid_pillar_names_the_key(states, tmp_path):
    cfg = coturn_config(tmp_path, static_auth_secret="yets-EIGHT-Bluk-Ep-Oc-LEFT_BRACKET")
    cfg["ports"]["relay_min"] = 60000
    ret = apply(states, cfg)
    assert ret.result is False
    assert "hecate:reverse_proxy:coturn:static_auth_secret" in ret.comment
    assert "yets-EIGHT" not in ret.comment


# -- the real coturn ------------------------------------------------------------------------
@pytest.mark.skipif(
    not shutil.which("turnserver"),
    reason="coturn is not installed (make test installs coturn as root)",
)
def test_turnserver_runs_with_the_rendered_config(states, tmp_path, secret):
    import trustme  # pylint: disable=import-outside-toplevel

    ca = trustme.CA()
    cert = ca.issue_cert("turn.hecate.test")
    cert.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "turn.pem"))
    cert.private_key_pem.write_to_path(str(tmp_path / "turn.key"))
    port = procs.free_port(socket.SOCK_DGRAM)
    relay = procs.free_port(socket.SOCK_DGRAM)
    cfg = coturn_config(
        tmp_path / "etc",
        ports={"listening": port, "tls_listening": procs.free_port(), "relay_min": relay,
               "relay_max": relay + 10},
        listening_ips=["127.0.0.1"],
        relay_ips=["127.0.0.1"],
        cert=str(tmp_path / "turn.pem"),
        pkey=str(tmp_path / "turn.key"),
        log_file="stdout",
        pidfile=str(tmp_path / "turnserver.pid"),
    )
    os.makedirs(tmp_path / "etc")
    assert apply(states, cfg).result is True
    proc = procs.Proc(
        "turnserver", ["turnserver", "-c", cfg["config_file"]], str(tmp_path / "turnserver.out")
    )
    client = edge_support.TurnClient(port)
    try:
        ok, mapped = client.binding()
        assert ok and mapped == client.sock.getsockname()[1], proc.output()
        username, password = edge_support.turn_rest_credentials(secret)
        status, relayed = client.allocate(username, password)
        assert status == 200, proc.output()
        assert relay <= relayed <= relay + 10
        # credentials made from another secret are refused
        other = edge_support.TurnClient(port)
        try:
            assert other.allocate(*edge_support.turn_rest_credentials("not-the-secret"))[0] == 401
        finally:
            other.close()
    finally:
        client.close()
        proc.stop()
    output = proc.output()
    assert "Bad configuration format" not in output and "unknown option" not in output.lower()
    assert secret not in output


def test_missing_group_is_a_note_in_preview_and_an_error_for_real(states, tmp_path, secret):
    """On a fresh edge the coturn package (installed first by the SLS) creates the
    turnserver group: the preview cannot fail on it, the real run must."""
    cfg = coturn_config(tmp_path, file_group="hecate-no-such-group", file_mode="0640")
    ret = apply(states, cfg, test=True)
    assert ret.result is None
    assert "group 'hecate-no-such-group' does not exist yet" in ret.comment
    ret = apply(states, cfg)
    assert ret.result is False
    assert ret.comment == "group 'hecate-no-such-group' does not exist"
    assert os.listdir(tmp_path) == []
