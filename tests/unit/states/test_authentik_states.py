"""Authentik state modules: compare, preview and apply against a fake client."""

import pytest

import hecate_clients
from tests.unit.states.conftest import converges, fails, load, unchanged
from tests.unit.states.fakes import FakeAuthentik, FakeResolver, FakeVault

group = load("states", "authentik_group")
application = load("states", "authentik_application")
scope_mapping = load("states", "authentik_scope_mapping")
user = load("states", "authentik_user")
binding = load("states", "authentik_binding")
oauth2_provider = load("states", "authentik_oauth2_provider")
authentik = load("modules", "authentik")
STATES = (group, application, scope_mapping, user, binding, oauth2_provider)


@pytest.fixture
def ak(monkeypatch):
    fake = FakeAuthentik()
    monkeypatch.setattr(hecate_clients, "authentik", lambda *args, **kwargs: fake)
    return fake


@pytest.fixture
def vault(monkeypatch):
    fake = FakeVault()
    monkeypatch.setattr(hecate_clients, "resolver", lambda *args, **kwargs: FakeResolver(fake))
    return fake


@pytest.fixture
def opts():
    return {"test": False}


@pytest.fixture
def configure_loader_modules(ak, vault, opts):  # pylint: disable=unused-argument
    # the absent states call the execution module, loaded with the same fake client
    salt_funcs = {f"authentik.{name}": getattr(authentik, name) for name in dir(authentik)
                  if not name.startswith("_") and callable(getattr(authentik, name))}
    dunders = {"__opts__": opts, "__pillar__": {}, "__context__": {}, "__salt__": salt_funcs}
    return {mod: dict(dunders) for mod in STATES + (authentik,)}


# -- groups --------------------------------------------------------------------------------------
def test_group_is_created_with_its_parent(ak, opts):
    parent = ak.add("group", name="bionicgpt-superadmin")
    preview, _ = converges(group.present, opts, ak, name="bionicgpt-demo", parent="bionicgpt-superadmin",
                           attributes={"tenant": "demo"}, prefix="bionicgpt-")
    assert preview["changes"]["group"] == {"old": None, "new": "bionicgpt-demo"}
    assert preview["changes"]["parents"] == {"old": None, "new": ["bionicgpt-superadmin"]}
    created = ak.find("group", "bionicgpt-demo")
    assert created["parents"] == [parent["pk"]] and created["attributes"] == {"tenant": "demo"}


def test_group_fields_are_patched_field_by_field(ak, opts):
    ak.add("group", name="bionicgpt-demo", attributes={"tenant": "old"}, is_superuser=False, parents=[])
    preview, _ = converges(group.present, opts, ak, name="bionicgpt-demo", attributes={"tenant": "demo"})
    assert preview["changes"] == {"attributes:tenant": {"old": "old", "new": "demo"}}
    assert ak.writes == [("patch", "group", ak.find("group", "bionicgpt-demo")["pk"], ["attributes"])]


def test_group_without_the_prefix_is_refused(ak, opts):
    comment = fails(group.present, opts, ak, name="other", prefix="bionicgpt-")
    assert "does not carry the prefix 'bionicgpt-'" in comment


def test_group_with_a_missing_parent_fails_on_the_real_run(ak, opts):
    opts["test"] = False
    ret = group.present(name="bionicgpt-demo", parent="bionicgpt-nobody")
    assert ret["result"] is False and "parent group 'bionicgpt-nobody' does not exist" in ret["comment"]
    assert not ak.writes


def test_group_absent_goes_through_the_execution_module(ak, opts):
    ak.add("group", name="bionicgpt-old")
    preview, _ = converges(group.absent, opts, ak, name="bionicgpt-old")
    assert preview["changes"] == {"group": {"old": "bionicgpt-old", "new": None}}
    assert ak.find("group", "bionicgpt-old") is None


# -- applications ------------------------------------------------------------------------------
def test_application_gets_its_provider(ak, opts):
    provider = ak.add("provider_oauth2", name="BionicGPT OAuth2")
    preview, _ = converges(application.present, opts, ak, name="BionicGPT", slug="bionicgpt",
                           provider="BionicGPT OAuth2", launch_url="https://chat.example.com")
    assert preview["changes"]["application"] == {"old": None, "new": "bionicgpt"}
    assert ak.get("application", "bionicgpt")["provider"] == provider["pk"]


def test_application_provider_name_is_the_provider(ak, opts):
    """provider_name: Salt takes a state argument named provider for its own (a module swap)."""
    provider = ak.add("provider_oauth2", name="BionicGPT OAuth2")
    converges(application.present, opts, ak, name="BionicGPT", slug="bionicgpt", provider_name="BionicGPT OAuth2")
    assert ak.get("application", "bionicgpt")["provider"] == provider["pk"]
    ret = application.present(name="BionicGPT", slug="bionicgpt", provider="a", provider_name="b")
    assert ret["result"] is False and "provider 'a' and provider_name 'b' differ" in ret["comment"]


def test_application_preview_names_a_provider_that_a_later_state_creates(ak, opts):
    opts["test"] = True
    ret = application.present(name="BionicGPT", slug="bionicgpt", provider="not yet there")
    assert ret["result"] is None and ret["changes"]["provider"] == {"old": None, "new": "not yet there"}
    opts["test"] = False
    ret = application.present(name="BionicGPT", slug="bionicgpt", provider="not yet there")
    assert ret["result"] is False and "provider 'not yet there' does not exist" in ret["comment"]
    assert not ak.writes


def test_application_absent(ak, opts):
    ak.add("application", name="Old", slug="old")
    converges(application.absent, opts, ak, name="old")
    ak.writes.clear()
    unchanged(application.absent, opts, ak, name="never-there")


# -- scope mappings ------------------------------------------------------------------------------
def test_scope_mapping_expression_diff(ak, opts):
    ak.add("scope_mapping", name="Groups", scope_name="groups", expression="return {}")
    preview, _ = converges(scope_mapping.present, opts, ak, name="Groups", group_prefix="bionicgpt-")
    assert preview["changes"]["expression"].startswith("--- live\n+++ desired")
    assert "bionicgpt-superadmin" in ak.find("scope_mapping", "Groups")["expression"]


def test_built_in_scope_mapping_is_never_deleted_not_even_in_a_preview(ak, opts):
    ak.add("scope_mapping", name="authentik default OAuth Mapping: OpenID 'email'",
           managed="goauthentik.io/providers/oauth2/scope-email")
    comment = fails(scope_mapping.absent, opts, ak, name="authentik default OAuth Mapping: OpenID 'email'")
    assert "managed by Authentik" in comment


def test_scope_mapping_absent(ak, opts):
    ak.add("scope_mapping", name="Old mapping", expression="return {}")
    converges(scope_mapping.absent, opts, ak, name="Old mapping")


# -- users ---------------------------------------------------------------------------------------
def test_user_password_is_resolved_only_when_the_user_is_created(ak, vault, opts):
    ak.add("group", name="bionicgpt-superadmin")
    vault.seed("secret/bionicgpt/lab-users", {"henry": "s3cret-value"})
    ref = {"vault": "secret/bionicgpt/lab-users", "key": "henry"}
    preview, applied = converges(user.present, opts, ak, name="henry", email="henry@example.com",
                                 groups=["bionicgpt-superadmin"], password=ref)
    assert preview["changes"]["password"] == {"old": None, "new": "set from vault:secret/bionicgpt/lab-users#henry"}
    assert "s3cret-value" not in repr(preview) + repr(applied)
    assert list(ak.passwords.values()) == ["s3cret-value"]


def test_user_password_must_be_a_reference(ak, opts):
    assert "never a value" in fails(user.present, opts, ak, name="henry", password="plain")


def test_user_exclusive_groups(ak, opts):
    keep = ak.add("group", name="bionicgpt-a")
    drop = ak.add("group", name="bionicgpt-b")
    ak.add("user", username="henry", name="Henry", groups=[keep["pk"], drop["pk"]])
    preview, _ = converges(user.present, opts, ak, name="henry", groups=["bionicgpt-a"], exclusive_groups=True)
    assert preview["changes"] == {"groups": {"added": [], "removed": ["bionicgpt-b"]}}


def test_user_absent(ak, opts):
    ak.add("user", username="henry")
    converges(user.absent, opts, ak, name="henry")


# -- bindings ------------------------------------------------------------------------------------
def test_exclusive_bindings_replace_the_others(ak, opts):
    app = ak.add("application", name="BionicGPT", slug="bionicgpt")
    wanted = ak.add("group", name="bionicgpt-superadmin")
    other = ak.add("group", name="everyone")
    ak.add("policy_binding", target=app["pk"], group=other["pk"], order=0, enabled=True, negate=False)
    preview, _ = converges(binding.present, opts, ak, name="access", application="bionicgpt",
                           groups=["bionicgpt-superadmin"], exclusive=True, prefix="bionicgpt-")
    assert preview["changes"] == {"bindings": {"added": ["group:bionicgpt-superadmin"], "removed": ["group:everyone"]}}
    assert [b["group"] for b in ak.list("policy_binding")] == [wanted["pk"]]


def test_binding_refuses_a_group_without_the_prefix(ak, opts):
    ak.add("application", name="BionicGPT", slug="bionicgpt")
    comment = fails(binding.present, opts, ak, name="access", application="bionicgpt", groups=["admins"],
                    prefix="bionicgpt-")
    assert "do not carry the prefix" in comment


# -- providers -----------------------------------------------------------------------------------
def test_oauth2_provider_absent_goes_through_the_execution_module(ak, opts):
    ak.add("provider_oauth2", name="Old OAuth2", client_secret="never shown")
    preview, applied = converges(oauth2_provider.absent, opts, ak, name="Old OAuth2")
    assert preview["changes"] == {"provider": {"old": "Old OAuth2", "new": None}}
    assert "never shown" not in repr(applied)


def test_a_client_error_is_a_failed_state_not_a_traceback(monkeypatch, ak, opts):
    def broken(*args, **kwargs):
        raise hecate_clients.hecate_authentik_client.AuthentikError("Authentik: token invalid or lacks permission",
                                                                    status=403)

    monkeypatch.setattr(hecate_clients, "authentik", broken)
    assert "token invalid" in fails(group.present, opts, ak, name="bionicgpt-x")
