"""
salt/bionicgpt/authentik.sls on the real cloud minion (roles: hecate-edge, hecate_env: lab)
against the Authentik simulator, through the real master: preview, apply, re-apply; the
OAuth2 client secret reaches Vault and nowhere else (returns, job cache, logs).
"""

import os

import pytest

SLS = "bionicgpt.authentik"


def _files(root):
    for base, _, files in os.walk(root):
        for name in files:
            yield os.path.join(base, name)


def _grep(root, needle):
    needle = needle.encode()
    hits = []
    for path in _files(root):
        try:
            with open(path, "rb") as fh:
                if needle in fh.read():
                    hits.append(path)
        except OSError:
            continue
    return hits


@pytest.fixture(scope="module")
def applied(salt_cli, authentik_sim):
    """
    The SLS previewed, applied and re-applied once for the module's assertions, from a
    fresh Authentik (earlier modules of the session made some of these objects).
    """
    authentik_sim.reset()
    runs = {}
    authentik_sim.clear_requests()
    runs["preview"] = salt_cli.run("state.apply", SLS, "test=True", minion_tgt="cloud")
    runs["preview_writes"] = authentik_sim.writes()
    runs["apply"] = salt_cli.run("state.apply", SLS, minion_tgt="cloud")
    authentik_sim.clear_requests()
    runs["again"] = salt_cli.run("state.apply", SLS, minion_tgt="cloud")
    runs["again_writes"] = authentik_sim.writes()
    runs["again_requests"] = authentik_sim.requests()
    return runs


def test_preview_changes_nothing_and_lists_every_object(applied):
    ret = applied["preview"]
    assert ret.returncode == 0, ret
    states = ret.data
    assert applied["preview_writes"] == []
    results = {s["__id__"]: s["result"] for s in states.values()}
    assert results["bionicgpt authentik pillar is valid"] is True
    expected = {"authentik group bionicgpt-superadmin", "authentik group bionicgpt-demo-tenant",
                "authentik scope mapping", "authentik oauth2 provider", "authentik application",
                "authentik bindings", "authentik enrollment", "authentik test user henry",
                "authentik test user demo"}
    assert expected <= set(results)
    assert all(results[i] is None for i in expected), results


def test_apply_then_reapply_is_idempotent(applied, authentik_sim):
    ret = applied["apply"]
    assert ret.returncode == 0, ret
    assert all(s["result"] is True for s in ret.data.values()), ret.data
    again = applied["again"]
    assert again.returncode == 0, again
    assert all(s["result"] is True and not s["changes"] for s in again.data.values()), again.data
    assert applied["again_writes"] == []
    assert [r for r in applied["again_requests"] if r.get("unknown_fields") or r.get("unknown_params")] == []
    objects = authentik_sim.state()["objects"]
    app = next(a for a in objects["application"] if a["slug"] == "bionicgpt")
    provider = next(p for p in objects["provider_oauth2"] if p["name"] == "BionicGPT OAuth2")
    assert app["provider"] == provider["pk"]
    assert sorted(u["url"] for u in provider["redirect_uris"]) == [
        "http://localhost:4180/oauth2/callback", "https://chat.codemonkey.ai/oauth2/callback"]
    groups = {g["pk"]: g["name"] for g in objects["group"]}
    bound = sorted(groups[b["group"]] for b in objects["policy_binding"] if b["target"] == app["pk"])
    assert bound == ["bionicgpt-demo-tenant", "bionicgpt-superadmin"]
    users = {u["username"]: u for u in objects["user"]}
    assert [groups[g] for g in users["henry"]["groups"]] == ["bionicgpt-superadmin"]
    assert set(authentik_sim.state()["passwords_set"]) >= {users["henry"]["pk"], users["demo"]["pk"]}


def test_client_secret_only_in_vault(applied, authentik_sim, vault_sim, salt_master, cloud_minion, cloud_call):
    import requests  # pylint: disable=import-outside-toplevel

    provider = next(p for p in authentik_sim.state()["objects"]["provider_oauth2"]
                    if p["name"] == "BionicGPT OAuth2")
    secret = provider["client_secret"]
    resp = requests.get(f"{vault_sim.url}/v1/secret/data/bionicgpt/oauth",
                        headers={"X-Vault-Token": vault_sim.root_token}, timeout=10)
    assert resp.json()["data"]["data"] == {"client_id": provider["client_id"], "client_secret": secret}
    for run in ("preview", "apply", "again"):
        assert secret not in applied[run].stdout
    ret = cloud_call.run("authentik.oauth2_provider_get", "BionicGPT OAuth2")
    assert ret.returncode == 0 and ret.data["client_secret"] == "XXX-REDACTED-XXX"
    assert secret not in ret.stdout
    # job cache and caches of master and minion; debug logs of both
    assert _grep(salt_master.config["cachedir"], secret) == []
    assert _grep(cloud_minion.config["cachedir"], secret) == []
    for log in (salt_master.config["log_file"], cloud_minion.config["log_file"]):
        if os.path.exists(log):
            with open(log, "rb") as fh:
                assert secret.encode() not in fh.read()
    # and the API token neither
    token = authentik_sim.token
    assert _grep(salt_master.config["cachedir"], token) == []
    assert token not in applied["apply"].stdout
