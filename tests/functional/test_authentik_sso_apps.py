"""
The states behind ``hecate:authentik:applications`` (salt/hecate/authentik_apps.sls) through
Salt's loaders against the Authentik simulator of each release: the SAML provider with its
IdP settings in Vault, the application's ownership mark and icon, bindings made exactly the
listed groups (or none), and the pruning of entries gone from pillar.
"""

import uuid

import pytest

import hecate_authentik_client as hak  # noqa: E402  pylint: disable=wrong-import-order
import hecate_secrets  # noqa: E402  pylint: disable=wrong-import-order
import hecate_vault_client  # noqa: E402  pylint: disable=wrong-import-order
from lab import topology
from lab.sim import SimHandle
from tests.functional.authentik_helpers import loaders_for, minion_opts  # puts _utils on sys.path

RELEASES = ("2025.6", "2025.10", "2026.5")
IMPLICIT = "default-provider-authorization-implicit-consent"
INVALIDATION = "default-provider-invalidation-flow"


@pytest.fixture(scope="module", params=RELEASES)
def env(request, salt_factories, repo, vault_sim, authentik_sims, lab_secrets, tmp_path_factory):
    release = request.param
    sim = SimHandle("authentik", str(tmp_path_factory.mktemp(f"sso-apps-{release}")),
                    topology.authentik_options(lab_secrets, version=release)).start()
    opts = minion_opts(salt_factories, f"sso-apps-{release.replace('.', '-')}", repo, vault_sim, sim)
    client = hak.AuthentikClient({"url": sim.url}, hecate_secrets.Secret(topology.authentik_token(lab_secrets)))
    vault = hecate_vault_client.from_config(
        {"hecate": {"connections": {"vault": {"url": vault_sim.url, "token": vault_sim.root_token}}}}, {})
    yield {"release": release, "sim": sim, "loaders": loaders_for(opts), "client": client, "vault": vault}
    sim.stop()


@pytest.fixture(autouse=True)
def _fresh(request):
    if "env" in request.fixturenames:
        request.getfixturevalue("env")["loaders"].reset_state()
    yield


def tag():
    return f"s{uuid.uuid4().hex[:6]}"


def objects(env, kind):
    return env["sim"].state()["objects"][kind]


def test_saml_provider_writes_the_idp_settings_to_vault_and_converges(env):
    t = tag()
    st = env["loaders"].states.authentik_saml_provider
    kwargs = dict(name=f"hecate/lab/app/{t}", application=t, acs_url=f"https://{t}.example.com/saml/acs",
                  audience=f"{t}-sp", sp_binding="post", credentials=f"secret/hecate-test/{t}-saml",
                  name_id_mapping="authentik default SAML Mapping: Email")
    env["sim"].clear_requests()
    preview = st.present(test=True, **kwargs)
    assert preview.result is None and env["sim"].writes() == [], preview.raw
    assert "metadata URL: " + f"{env['sim'].url}/application/saml/{t}/metadata/" in preview.comment
    ret = st.present(**kwargs)
    assert ret.result is True and ret.changes == preview.changes, ret.raw
    prov = next(p for p in objects(env, "provider_saml") if p["name"] == f"hecate/lab/app/{t}")
    assert (prov["acs_url"], prov["audience"], prov["sp_binding"], prov["sign_assertion"]) == (
        f"https://{t}.example.com/saml/acs", f"{t}-sp", "post", True)
    assert prov["signing_kp"] is not None and len(prov["property_mappings"]) == 7  # the managed ones
    stored = env["vault"].read_data("secret", f"hecate-test/{t}-saml")
    assert stored["metadata_url"] == f"{env['sim'].url}/application/saml/{t}/metadata/"
    assert stored["sso_url"] == f"{env['sim'].url}/application/saml/{t}/sso/binding/redirect/"
    assert stored["certificate"].startswith("-----BEGIN CERTIFICATE-----")
    env["sim"].clear_requests()
    again = st.present(**kwargs)
    assert again.result is True and again.changes == {} and env["sim"].writes() == [], again.raw
    # a changed key pair is sent with the sign flags (validate() reads them from the request)
    changed = st.present(**dict(kwargs, signing_key="", sign_assertion=False))
    assert changed.result is True and changed.changes["signing_key"] == {
        "old": "authentik Self-signed Certificate", "new": None}, changed.raw
    back = st.present(**kwargs)
    assert back.result is True and back.changes["signing_key"]["new"] == "authentik Self-signed Certificate"
    assert [r for r in env["sim"].requests() if r.get("unknown_fields") or r.get("unknown_params")] == []


def test_application_owner_mark_icon_and_empty_bindings(env):
    t = tag()
    client, st = env["client"], env["loaders"].states
    group = client.create("group", {"name": f"{t}-g"})
    mark = f"hecate/lab/app/{t}"
    ret = st.authentik_application.present(name="App", slug=t, owner=mark, icon="https://i.example.com/a.svg")
    assert ret.result is True, ret.raw
    app = next(a for a in objects(env, "application") if a["slug"] == t)
    assert app["meta_publisher"] == mark and client.get("application", t)["meta_icon"] == "https://i.example.com/a.svg"
    again = st.authentik_application.present(name="App", slug=t, owner=mark, icon="https://i.example.com/a.svg")
    assert again.result is True and again.changes == {}, again.raw
    # someone else's application with the slug: named, never taken over
    client.create("application", {"name": "Theirs", "slug": f"{t}x"})
    foreign = st.authentik_application.present(name="App", slug=f"{t}x", owner=mark)
    assert foreign.result is False and "Theirs" in foreign.comment and "never takes it over" in foreign.comment
    assert client.get("application", f"{t}x")["meta_publisher"] == ""
    # bindings: the listed groups, then none at all (every signed-in user)
    assert st.authentik_binding.present(name="a", application=t, groups=[group["name"]], exclusive=True).result
    ret = st.authentik_binding.present(name="a", application=t, groups=[], exclusive=True)
    assert ret.result is True and ret.changes["bindings"]["removed"] == [f"group:{t}-g"], ret.raw
    assert not [b for b in objects(env, "policy_binding") if b["target"] == app["pk"]]
    assert st.authentik_binding.present(name="a", application=t, groups=[]).result is False


def test_pruned_removes_only_this_environments_entries_gone_from_pillar(env):
    t = tag()
    client, st = env["client"], env["loaders"].states
    implicit = client.require("flow", IMPLICIT)["pk"]
    invalidation = client.require("flow", INVALIDATION)["pk"]
    for entry, envname in ((f"{t}a", "lab"), (f"{t}b", "lab"), (f"{t}c", "staging")):
        mark = f"hecate/{envname}/app/{entry}"
        prov = client.create("provider_oauth2", {"name": mark, "authorization_flow": implicit,
                                                 "invalidation_flow": invalidation,
                                                 "redirect_uris": [{"matching_mode": "strict",
                                                                    "url": f"https://{entry}.example.com/cb"}]})
        client.create("application", {"name": entry, "slug": entry, "provider": prov["pk"], "meta_publisher": mark})
    client.create("application", {"name": "mine", "slug": f"{t}m", "meta_publisher": "ops"})
    keep = [f"hecate/lab/app/{t}b"]
    preview = st.authentik_application.pruned(name="apps", prefix="hecate/lab/app/", keep=keep, test=True)
    assert preview.result is None, preview.raw
    assert {k for k in preview.changes if t in k} == {f"hecate/lab/app/{t}a"}
    ret = st.authentik_application.pruned(name="apps", prefix="hecate/lab/app/", keep=keep)
    assert ret.result is True, ret.raw
    slugs = {a["slug"] for a in objects(env, "application")}
    assert f"{t}a" not in slugs and {f"{t}b", f"{t}c", f"{t}m"} <= slugs
    assert f"hecate/lab/app/{t}a" not in {p["name"] for p in objects(env, "provider_oauth2")}
    bad = st.authentik_application.pruned(name="apps", prefix="hecate/", keep=[])
    assert bad.result is False and "not one of hecate's marks" in bad.comment
