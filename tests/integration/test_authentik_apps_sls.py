"""
salt/hecate/authentik_apps.sls on the real cloud minion against the Authentik simulator:
an OIDC application (Grafana) and a SAML one (Wazuh) from hecate:authentik:applications,
previewed, made, re-run without writes; the client secret and the SAML IdP settings in
Vault only; entries removed from pillar pruned by hecate.authentik_prune.
"""

import pytest
import requests

APPS = {
    "grafana": {"protocol": "oidc", "name": "Grafana", "launch_url": "https://observe.cybermonkey.dev",
                "groups": ["bionicgpt-superadmin"], "credentials": "secret/hecate/grafana-oidc",
                "redirect_uris": ["https://observe.cybermonkey.dev/login/generic_oauth"]},
    "wazuh": {"protocol": "saml", "name": "Wazuh", "groups": ["bionicgpt-superadmin"],
              "acs_url": "https://delphi.cybermonkey.dev/_opendistro/_security/saml/acs",
              "audience": "wazuh-saml", "credentials": "secret/hecate/wazuh-saml"},
}
SLS = "hecate.authentik_apps"


def _vault(vault_sim, path):
    resp = requests.get(f"{vault_sim.url}/v1/secret/data/{path}", headers={"X-Vault-Token": vault_sim.root_token},
                        timeout=10)
    return resp.json()["data"]["data"] if resp.status_code == 200 else None


def _apply(salt_cli, sls, *args):
    ret = salt_cli.run("state.apply", sls, *args, minion_tgt="cloud")
    assert isinstance(ret.data, dict), ret
    return ret


@pytest.fixture(scope="module")
def applied(stack, salt_cli):
    """The SLS previewed, applied and re-applied with the two applications in the overrides."""
    import json  # pylint: disable=import-outside-toplevel
    import os  # pylint: disable=import-outside-toplevel

    ak = stack["sims"]["authentik"]
    path = os.path.join(stack["pillar_dir"], "lab_overrides.sls")
    with open(path, "w", encoding="utf-8") as fh:
        json.dump({"hecate": {"authentik": {"applications": APPS}}}, fh)
    runs = {"groups": _apply(salt_cli, "bionicgpt.authentik")}  # the groups the bindings name
    ak.clear_requests()
    runs["preview"] = _apply(salt_cli, SLS, "test=True")
    runs["preview_writes"] = ak.writes()
    runs["apply"] = _apply(salt_cli, SLS)
    ak.clear_requests()
    runs["again"] = _apply(salt_cli, SLS)
    runs["again_writes"] = ak.writes()
    yield runs
    if os.path.exists(path):
        os.unlink(path)
    # the Authentik simulator is the session's: leave it without the applications, as found
    pruned = _apply(salt_cli, "hecate.authentik_prune")
    assert all(s["result"] is True for s in pruned.data.values()), pruned


def test_preview_then_apply_then_nothing(applied):
    preview = applied["preview"].data
    assert applied["preview_writes"] == []
    ids = {s["__id__"]: s for s in preview.values()}
    for name in APPS:
        for suffix in (" provider", "", " access"):
            assert ids[f"authentik app {name}{suffix}"]["result"] is None, ids[f"authentik app {name}{suffix}"]
    assert "metadata URL: " in ids["authentik app wazuh provider"]["comment"]
    for state in applied["apply"].data.values():
        assert state["result"] is True, state
    for state in applied["again"].data.values():
        assert state["result"] is True and state["changes"] == {}, state
    assert applied["again_writes"] == []


def test_objects_carry_the_mark_and_only_the_listed_groups_get_in(applied, authentik_sim):
    objects = authentik_sim.state()["objects"]
    groups = {g["pk"]: g["name"] for g in objects["group"]}
    for name, kind in (("grafana", "provider_oauth2"), ("wazuh", "provider_saml")):
        mark = f"hecate/lab/app/{name}"
        prov = next(p for p in objects[kind] if p["name"] == mark)
        app = next(a for a in objects["application"] if a["slug"] == name)
        assert app["provider"] == prov["pk"] and app["meta_publisher"] == mark
        assert app["policy_engine_mode"] == "any"
        assert [groups[b["group"]] for b in objects["policy_binding"] if b["target"] == app["pk"]] == [
            "bionicgpt-superadmin"]


def test_credentials_only_in_vault(applied, authentik_sim, vault_sim):
    objects = authentik_sim.state()["objects"]
    prov = next(p for p in objects["provider_oauth2"] if p["name"] == "hecate/lab/app/grafana")
    assert _vault(vault_sim, "hecate/grafana-oidc") == {"client_id": prov["client_id"],
                                                        "client_secret": prov["client_secret"]}
    for run in ("preview", "apply", "again"):
        assert prov["client_secret"] not in applied[run].stdout
    saml = _vault(vault_sim, "hecate/wazuh-saml")
    assert saml["metadata_url"] == f"{authentik_sim.url}/application/saml/wazuh/metadata/"
    assert saml["certificate"].startswith("-----BEGIN CERTIFICATE-----")
    metadata = requests.get(saml["metadata_url"], timeout=10)
    assert metadata.status_code == 200 and saml["certificate"].splitlines()[1] in metadata.text


def test_entries_removed_from_pillar_are_pruned(applied, stack, salt_cli, authentik_sim):
    import json  # pylint: disable=import-outside-toplevel
    import os  # pylint: disable=import-outside-toplevel

    path = os.path.join(stack["pillar_dir"], "lab_overrides.sls")
    with open(path, "w", encoding="utf-8") as fh:
        json.dump({"hecate": {"authentik": {"applications": {"grafana": APPS["grafana"]}}}}, fh)
    ret = _apply(salt_cli, "hecate.authentik_prune")
    pruned = next(s for s in ret.data.values() if s["__id__"] == "hecate applications removed")
    assert pruned["result"] is True and set(pruned["changes"]) == {"hecate/lab/app/wazuh"}, pruned
    objects = authentik_sim.state()["objects"]
    assert "wazuh" not in {a["slug"] for a in objects["application"]}
    assert "hecate/lab/app/wazuh" not in {p["name"] for p in objects["provider_saml"]}
    assert "grafana" in {a["slug"] for a in objects["application"]}
