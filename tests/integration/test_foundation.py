"""The foundation: real master and minions with role grains, the hecate runner, tree sync."""

import os


def test_minions_have_their_roles(salt_cli):
    ret = salt_cli.run("grains.item", "roles", "hecate_env", minion_tgt="*")
    assert ret.returncode == 0, ret
    assert ret.data["cloud"] == {"roles": ["hecate-edge"], "hecate_env": "lab"}
    assert ret.data["local"] == {"roles": ["bionicgpt-node"], "hecate_env": "lab"}


def test_grain_targeting_reaches_only_the_role(salt_cli):
    ret = salt_cli.run("-G", "hecate.version", minion_tgt="roles:hecate-edge")
    assert ret.returncode == 0, ret
    assert set(ret.data) == {"cloud"}


def test_minion_pillar_has_env_overlay_and_lab_addresses(cloud_call, caddy):
    ret = cloud_call.run("pillar.get", "hecate:global:environment")
    assert ret.returncode == 0, ret
    # Salt 3008 masks pillar values in output; the module sees the real value.
    ret = cloud_call.run("hecate.connection", "caddy")
    assert ret.data["admin_url"] == caddy.admin_url


def test_secrets_in_connection_are_shown_by_reference(cloud_call, lab_secrets):
    """The lab's minions log in to Vault by AppRole: the secret_id is never shown."""
    ret = cloud_call.run("hecate.connection", "vault")
    assert ret.returncode == 0, ret
    assert lab_secrets["vault_root_token"] not in ret.stdout
    assert lab_secrets["vault_secret_id"] not in ret.stdout
    assert ret.data["token"] is None
    assert ret.data["approle"]["secret_id"] == "XXX-REDACTED-XXX"
    assert ret.data["approle"]["role_id"] == lab_secrets["vault_role_id"]  # not a secret
    ret = cloud_call.run("hecate.connection", "consul")
    assert lab_secrets["consul_token"] not in ret.stdout
    assert ret.data["token"] == "XXX-REDACTED-XXX"


def test_runner_validate_accepts_lab(salt_run_cli):
    ret = salt_run_cli.run("hecate.validate", "env=lab")
    assert ret.returncode == 0, ret
    assert ret.data["result"] is True, ret.data
    # who belongs: the lab's minions, listed in the lab's pillar (hecate:members)
    assert ret.data["members"] == {"hecate-edge": ["cloud"], "bionicgpt-node": ["local"]}, ret.data
    assert ret.data["not_members"] == {}, ret.data


def test_runner_validate_unknown_env_fails_with_key_path(salt_run_cli):
    ret = salt_run_cli.run("hecate.validate", "env=nowhere")
    assert ret.returncode != 0
    assert ret.data["result"] is False
    assert any("nowhere" in err for err in ret.data["errors"]), ret.data


def test_highstate_validates_pillar(cloud_call, agent_vault_secrets):
    ret = cloud_call.run("state.highstate")
    assert ret.returncode == 0, ret
    (state,) = [s for s in ret.data.values() if s["__id__"] == "hecate pillar is valid"]
    assert state["result"] is True and state["__run_num__"] == 0
    assert "is valid" in state["comment"]


def test_tree_sync_on_minions_and_master(salt_cli, salt_run_cli, salt_master):
    """Packaging as a tree: _modules/_states/_runners/_utils served from file_roots."""
    ret = salt_cli.run("saltutil.sync_all", minion_tgt="*")
    assert ret.returncode == 0, ret
    for minion in ("cloud", "local"):
        synced = ret.data[minion]
        assert "modules.hecate" in synced["modules"] or synced["modules"] == [], synced
    ret = salt_run_cli.run("saltutil.sync_all")
    assert ret.returncode == 0, ret
    extmods = salt_master.config["extension_modules"]
    assert os.path.exists(os.path.join(extmods, "runners", "hecate.py"))
    assert os.path.exists(os.path.join(extmods, "utils", "hecate_http.py"))
    ret = salt_run_cli.run("hecate.validate", "env=lab")
    assert ret.returncode == 0 and ret.data["result"] is True, ret
