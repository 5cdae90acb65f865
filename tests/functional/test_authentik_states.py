"""
Authentik states through Salt's loaders against the Authentik simulator of each
supported release (2025.6, 2025.10, 2026.5), with the token resolved from the Vault
simulator the production way.

Every simulator here is strict: a request field or query parameter that the release's
schema does not know is a 400, so a passing state never sends one.
"""

import json
import logging
import uuid

import pytest

import hecate_authentik_client as hak  # noqa: E402  pylint: disable=wrong-import-order
import hecate_secrets  # noqa: E402  pylint: disable=wrong-import-order
import hecate_vault_client  # noqa: E402  pylint: disable=wrong-import-order
from lab import topology
from lab.sim import SimHandle
from tests.functional.authentik_helpers import TOKEN_REF, loaders_for, minion_opts  # puts _utils on sys.path

RELEASES = ("2025.6", "2025.10", "2026.5")
IMPLICIT = "default-provider-authorization-implicit-consent"
INVALIDATION = "default-provider-invalidation-flow"
LAB_PASSWORD = {"vault": "secret/bionicgpt/lab-users", "key": "henry"}


class Env:
    def __init__(self, release, sim, loaders, vault_sim, lab_secrets):
        self.release = release
        self.sim = sim
        self.loaders = loaders
        self.vault_sim = vault_sim
        self.sim_token = topology.authentik_token(lab_secrets)

    @property
    def states(self):
        return self.loaders.states

    def objects(self):
        return self.sim.state()["objects"]

    def vault(self):
        opts = {"hecate": {"connections": {"vault": {"url": self.vault_sim.url,
                                                      "token": self.vault_sim.root_token}}}}
        return hecate_vault_client.from_config(opts, {})


@pytest.fixture(scope="module", params=RELEASES)
def env(request, salt_factories, repo, vault_sim, authentik_sims, lab_secrets, tmp_path_factory):
    release = request.param
    # authentik_sims seeded the API token into Vault; this module gets its own simulator
    sim = SimHandle(
        "authentik", str(tmp_path_factory.mktemp(f"func-authentik-{release}")),
        topology.authentik_options(lab_secrets, version=release),
    ).start()
    opts = minion_opts(salt_factories, f"func-authentik-{release.replace('.', '-')}", repo, vault_sim, sim)
    yield Env(release, sim, loaders_for(opts), vault_sim, lab_secrets)
    sim.stop()


@pytest.fixture(autouse=True)
def _fresh_context(request):
    if "env" in request.fixturenames:
        env = request.getfixturevalue("env")
        env.loaders.reset_state()  # a new __context__: a new client, as a new state run
        env.sim.clear_faults()
        yield
        env.loaders.reset_state()
    else:
        yield


def tag():
    return f"t{uuid.uuid4().hex[:8]}-"


# -- scenarios: (setup, state function, kwargs) per state ------------------------------------------
def _mapping(env, p):
    env.states.authentik_scope_mapping.present(name=f"{p}mapping", group_prefix=p)


def _provider_kwargs(p, **extra):
    kwargs = dict(name=f"{p}provider", authorization_flow=IMPLICIT, invalidation_flow=INVALIDATION,
                  redirect_uris=[f"https://{p}chat.example.com/oauth2/callback",
                                 "http://localhost:4180/oauth2/callback"],
                  property_mappings=[f"{p}mapping"], scopes=["openid", "email", "profile", "offline_access"],
                  access_token_validity="hours=1", refresh_token_validity="days=7",
                  signing_key="authentik Self-signed Certificate",
                  credentials=f"secret/hecate/tests/{p}oauth")
    kwargs.update(extra)
    return kwargs


def scenario(kind, env, p):
    """Prepare prerequisites; return (state function, kwargs)."""
    st = env.states
    if kind == "group":
        return st.authentik_group.present, dict(name=f"{p}superadmin", prefix=p,
                                                attributes={"role": "superadmin", "tenant": "demo"})
    if kind == "scope_mapping":
        return st.authentik_scope_mapping.present, dict(name=f"{p}mapping", group_prefix=p,
                                                        superadmin_group=f"{p}superadmin",
                                                        description="groups")
    if kind == "oauth2_provider":
        _mapping(env, p)
        return st.authentik_oauth2_provider.present, _provider_kwargs(p)
    if kind == "application":
        _mapping(env, p)
        st.authentik_oauth2_provider.present(**_provider_kwargs(p))
        return st.authentik_application.present, dict(name="BionicGPT", slug=f"{p}app",
                                                      provider=f"{p}provider",
                                                      launch_url=f"https://{p}chat.example.com",
                                                      description="AI Chat Platform")
    if kind == "binding":
        st.authentik_group.present(name=f"{p}superadmin", prefix=p)
        st.authentik_group.present(name=f"{p}demo", prefix=p)
        st.authentik_application.present(name="App", slug=f"{p}app")
        return st.authentik_binding.present, dict(name="access", application=f"{p}app",
                                                  groups=[f"{p}superadmin", f"{p}demo"],
                                                  prefix=p, exclusive=True)
    if kind == "enrollment":
        st.authentik_group.present(name=f"{p}new", prefix=p)
        return st.authentik_enrollment.present, dict(
            name=f"{p}enrollment", flow_name="Enrollment", title="Create your account",
            group=f"{p}new", captcha={"public_key": "site-key",
                                     "private_key": {"vault": "secret/hecate/tests/captcha", "key": "private_key"}})
    if kind == "user":
        st.authentik_group.present(name=f"{p}superadmin", prefix=p)
        return st.authentik_user.present, dict(name=f"{p}henry", display_name="Henry Smith",
                                               email="henry@example.com", groups=[f"{p}superadmin"],
                                               password=LAB_PASSWORD)
    raise AssertionError(kind)


KINDS = ("group", "scope_mapping", "oauth2_provider", "application", "binding", "enrollment", "user")


@pytest.fixture(scope="module", autouse=True)
def _captcha_key(vault_sim):
    topology.seed_vault(vault_sim.url, vault_sim.root_token,
                        {("secret", "hecate/tests/captcha"): {"private_key": "captcha-private-" + "k" * 20}})


@pytest.mark.parametrize("testmode", [True, False], ids=["test", "apply"])
@pytest.mark.parametrize("kind", KINDS)
def test_state_preview_is_exact_and_second_run_writes_nothing(env, kind, testmode):
    p = tag()
    func, kwargs = scenario(kind, env, p)
    before = env.objects()
    env.sim.clear_requests()
    preview = func(test=True, **kwargs)
    assert preview.result is None, preview.raw
    assert preview.changes, preview.raw
    assert env.sim.writes() == []
    assert env.objects() == before  # the backend is unchanged in test mode
    if testmode:
        return
    ret = func(**kwargs)
    assert ret.result is True, ret.raw
    assert ret.changes == preview.changes  # the preview was exactly what happened
    assert env.objects() != before
    env.sim.clear_requests()
    again = func(**kwargs)
    assert again.result is True and again.changes == {}, again.raw
    assert env.sim.writes() == []
    unknown = [r for r in env.sim.requests() if r.get("unknown_fields") or r.get("unknown_params")]
    assert unknown == []


def test_250_groups_across_pages_are_all_found(env):
    p = tag()
    direct = hak.AuthentikClient({"url": env.sim.url}, hecate_secrets.Secret(env.sim_token))
    names = [f"{p}{idx:03d}" for idx in range(250)]
    for name in names:
        direct.create("group", {"name": name, "attributes": {"n": name}})
    env.sim.clear_requests()
    # one state run with 250 group states (as salt/bionicgpt/authentik.sls would be)
    sls = "\n".join(
        f"{name}:\n  authentik_group.present:\n    - prefix: {p}\n    - attributes: {{n: {name}}}"
        for name in names
    )
    rets = list(env.loaders.modules.state.template_str(sls))
    assert len(rets) == 250
    for ret in rets:
        assert ret.result is True and ret.changes == {}, ret.raw
    assert env.sim.writes() == []  # no duplicates created
    reads = env.sim.requests()
    total = direct.list("group")
    pages = -(-len(total) // 100)
    assert [r["path"] for r in reads] == ["/api/v3/core/groups/"] * pages  # one listing, every page
    # a new group next to them is one POST
    env.sim.clear_requests()
    ret = env.states.authentik_group.present(name=f"{p}new", prefix=p)
    assert ret.result is True and ret.changes["group"] == {"old": None, "new": f"{p}new"}
    assert [(w["method"], w["path"]) for w in env.sim.writes()] == [("POST", "/api/v3/core/groups/")]
    assert len([g for g in direct.list("group") if g["name"].startswith(p)]) == 251


def test_changing_one_field_is_one_patch_of_that_field(env):
    p = tag()
    _mapping(env, p)
    kwargs = _provider_kwargs(p)
    assert env.states.authentik_oauth2_provider.present(**kwargs).result is True
    # equivalent spellings are no change: hours=1 == minutes=60, URI order, mapping order
    env.sim.clear_requests()
    same = dict(kwargs, access_token_validity="minutes=60", refresh_token_validity="hours=168",
                redirect_uris=list(reversed(kwargs["redirect_uris"])),
                scopes=["profile", "offline_access", "email", "openid"])
    ret = env.states.authentik_oauth2_provider.present(**same)
    assert ret.result is True and ret.changes == {}, ret.raw
    assert env.sim.writes() == []
    # one field
    ret = env.states.authentik_oauth2_provider.present(**dict(kwargs, access_token_validity="hours=2"))
    assert ret.result is True
    assert ret.changes == {"access_token_validity": {"old": "hours=1", "new": "hours=2"}}
    writes = env.sim.writes()
    assert len(writes) == 1 and writes[0]["method"] == "PATCH"
    assert writes[0]["path"].startswith("/api/v3/providers/oauth2/")
    assert writes[0]["fields"] == ["access_token_validity"]
    # a group attribute: one PATCH of attributes only
    env.states.authentik_group.present(name=f"{p}g", attributes={"a": 1, "b": 2})
    env.sim.clear_requests()
    ret = env.states.authentik_group.present(name=f"{p}g", attributes={"a": 1, "b": 3})
    assert ret.changes == {"attributes:b": {"old": 2, "new": 3}}
    assert [(w["method"], w["fields"]) for w in env.sim.writes()] == [("PATCH", ["attributes"])]


def test_client_secret_never_leaves_authentik_except_into_vault(env, caplog):
    p = tag()
    _mapping(env, p)
    kwargs = _provider_kwargs(p)
    with caplog.at_level(logging.DEBUG):
        preview = env.states.authentik_oauth2_provider.present(test=True, **kwargs)
        ret = env.states.authentik_oauth2_provider.present(**kwargs)
        got = env.loaders.modules.authentik.oauth2_provider_get(kwargs["name"])
        listed = env.loaders.modules.authentik.oauth2_provider_list()
    live = next(o for o in env.objects()["provider_oauth2"] if o["name"] == kwargs["name"])
    secret = live["client_secret"]
    assert len(secret) == 128 and len(live["client_id"]) == 40
    for blob in (json.dumps(preview.raw), json.dumps(ret.raw), json.dumps(got), json.dumps(listed), caplog.text):
        assert secret not in blob
    assert got["client_secret"] == "XXX-REDACTED-XXX"
    mount, _, path = kwargs["credentials"].partition("/")
    assert env.vault().read_data(mount, path) == {"client_id": live["client_id"], "client_secret": secret}
    # Vault wiped or stale: the next run stores the live values again, touching nothing in Authentik
    env.vault().write(mount, path, {"client_id": live["client_id"], "client_secret": "stale", "other": "kept"})
    env.sim.clear_requests()
    ret = env.states.authentik_oauth2_provider.present(**kwargs)
    assert ret.result is True
    assert list(ret.changes) == ["credentials"] and secret not in json.dumps(ret.raw)
    assert env.sim.writes() == []
    assert env.vault().read_data(mount, path) == {"client_id": live["client_id"], "client_secret": secret,
                                                  "other": "kept"}


def test_group_parent_on_every_release(env):
    p = tag()
    assert env.states.authentik_group.present(name=f"{p}parent", prefix=p).result is True
    ret = env.states.authentik_group.present(name=f"{p}child", prefix=p, parent=f"{p}parent")
    assert ret.result is True and ret.changes["parents"] == {"old": None, "new": [f"{p}parent"]}
    child = next(g for g in env.objects()["group"] if g["name"] == f"{p}child")
    parent = next(g for g in env.objects()["group"] if g["name"] == f"{p}parent")
    if env.release == "2026.5":
        assert child["parents"] == [parent["pk"]] and "parent" not in child
    else:
        assert child["parent"] == parent["pk"] and "parents" not in child
    env.sim.clear_requests()
    ret = env.states.authentik_group.present(name=f"{p}child", prefix=p, parent=f"{p}parent")
    assert ret.changes == {} and env.sim.writes() == []
    ret = env.states.authentik_group.present(name=f"{p}child", prefix=p, parent="")
    assert ret.changes == {"parents": {"added": [], "removed": [f"{p}parent"]}}


def test_binding_exclusive_removes_other_access(env):
    p = tag()
    func, kwargs = scenario("binding", env, p)
    assert func(**kwargs).result is True
    # someone binds another group by hand
    env.states.authentik_group.present(name="everyone-" + p)
    env.loaders.modules.authentik.policy_binding_create(kwargs["application"], group="everyone-" + p)
    env.loaders.modules.authentik.policy_binding_create(kwargs["application"], user="akadmin")
    ret = func(**kwargs)
    assert ret.result is True
    assert ret.changes == {"bindings": {"added": [], "removed": [f"group:everyone-{p}", "user:akadmin"]}}
    bound = env.loaders.modules.authentik.policy_binding_list(application=kwargs["application"])
    assert sorted(b["group_obj"]["name"] for b in bound) == sorted(kwargs["groups"])
    ret = func(**dict(kwargs, groups=["other-group"]))
    assert ret.result is False and "do not carry the prefix" in ret.comment


def test_binding_disabled_or_negated_by_hand_is_reenabled(env):
    """
    A group binding someone disabled or negated is patched back to enabled, not negated.
    The PATCH carries the binding's target and group: PolicyBindingSerializer.validate
    (authentik/policies/api/bindings.py) sees only the sent fields and crashes without
    ``target`` (500), and wants one of policy/user/group among them (400).
    """
    p = tag()
    func, kwargs = scenario("binding", env, p)
    mod = env.loaders.modules.authentik
    mod.policy_binding_create(kwargs["application"], group=kwargs["groups"][0], enabled=False)
    mod.policy_binding_create(kwargs["application"], group=kwargs["groups"][1], negate=True, order=1)
    env.sim.clear_requests()
    preview = func(test=True, **kwargs)
    assert preview.result is None and env.sim.writes() == []
    assert preview.changes == {
        f"group:{kwargs['groups'][0]}": {"old": "enabled=False negate=False", "new": "enabled=True negate=False"},
        f"group:{kwargs['groups'][1]}": {"old": "enabled=True negate=True", "new": "enabled=True negate=False"},
    }
    env.sim.clear_requests()
    ret = func(**kwargs)
    assert ret.result is True and ret.changes == preview.changes, ret.raw
    writes = env.sim.writes()
    assert [w["method"] for w in writes] == ["PATCH", "PATCH"]
    for write in writes:
        assert write["fields"] == ["enabled", "group", "negate", "target"]
    bound = mod.policy_binding_list(application=kwargs["application"])
    assert sorted((b["group_obj"]["name"], b["enabled"], b["negate"]) for b in bound) == sorted(
        (g, True, False) for g in kwargs["groups"])
    env.sim.clear_requests()
    again = func(**kwargs)
    assert again.result is True and again.changes == {} and env.sim.writes() == []


def test_enrollment_links_identification_stage_and_can_be_switched_off(env):
    p = tag()
    func, kwargs = scenario("enrollment", env, p)
    assert func(**kwargs).result is True
    stage = env.loaders.modules.authentik.identification_stage_get()
    flow = env.loaders.modules.authentik.flow_get(kwargs["name"])
    assert stage["enrollment_flow"] == flow["pk"] and flow["designation"] == "enrollment"
    assert len(flow["stages"]) == 4  # captcha, prompt, user write, user login
    # without captcha: the captcha stage and its binding go
    no_captcha = dict(kwargs, captcha=None)
    ret = func(**no_captcha)
    assert ret.result is True and ret.changes[f"stage:{kwargs['name']}-captcha"]["new"] == "deleted"
    assert len(env.loaders.modules.authentik.flow_get(kwargs["name"])["stages"]) == 3
    ret = env.states.authentik_enrollment.absent(name=kwargs["name"], test=True)
    assert ret.result is None and env.loaders.modules.authentik.flow_get(kwargs["name"])
    ret = env.states.authentik_enrollment.absent(name=kwargs["name"])
    assert ret.result is True
    assert env.loaders.modules.authentik.flow_get(kwargs["name"]) is None
    assert env.loaders.modules.authentik.identification_stage_get()["enrollment_flow"] is None


def test_absent_states(env):
    p = tag()
    for kind in ("group", "user", "application"):
        func, kwargs = scenario(kind, env, p)
        func(**kwargs)
    checks = [
        (env.states.authentik_user.absent, {"name": f"{p}henry"}),
        (env.states.authentik_application.absent, {"name": f"{p}app"}),
        (env.states.authentik_oauth2_provider.absent, {"name": f"{p}provider"}),
        (env.states.authentik_scope_mapping.absent, {"name": f"{p}mapping"}),
        (env.states.authentik_group.absent, {"name": f"{p}superadmin"}),
    ]
    for func, kwargs in checks:
        before = env.objects()
        preview = func(test=True, **kwargs)
        assert preview.result is None and env.objects() == before, preview.raw
        ret = func(**kwargs)
        assert ret.result is True and ret.changes == preview.changes, ret.raw
        again = func(**kwargs)
        assert again.result is True and again.changes == {}
    # built-in mappings are not hecate's to delete
    ret = env.states.authentik_scope_mapping.absent(name="authentik default OAuth Mapping: OpenID 'email'")
    assert ret.result is False and "managed by Authentik" in ret.comment


def test_api_errors_are_clean_failures_naming_the_field(env):
    # refused by hecate on every release: 2025.6 would accept it (validate_slug is 2025.10+)
    env.sim.clear_requests()
    ret = env.states.authentik_application.present(name="Reserved", slug="authorize")
    assert ret.result is False and ret.changes == {}
    assert "slug: The slug 'authorize' is reserved" in ret.comment
    assert env.sim.writes() == []
    with pytest.raises(Exception, match="slug: The slug 'token' is reserved"):
        env.loaders.modules.authentik.application_create("Reserved", "token")
    assert "Traceback" not in ret.comment
    ret = env.states.authentik_oauth2_provider.present(**_provider_kwargs(tag(), property_mappings=["nope"]))
    assert ret.result is False and "scope mapping(s) nope do not exist" in ret.comment
    ret = env.states.authentik_group.present(name="x-group", prefix="bionicgpt-")
    assert ret.result is False and "does not carry the prefix 'bionicgpt-'" in ret.comment
    env.sim.fault(method="GET", path="/api/v3/core/groups/", action="drop")
    ret = env.states.authentik_group.present(name="unreachable")
    assert ret.result is False and "Authentik" in ret.comment and "Traceback" not in ret.comment


def test_module_functions(env):
    mod = env.loaders.modules.authentik
    assert mod.version().startswith(env.release)
    p = tag()
    group = mod.group_create(f"{p}g", attributes={"k": "v"})
    assert group["name"] == f"{p}g"
    assert mod.group_update(f"{p}g", attributes={"k": "w"})["attributes"] == {"k": "w"}
    user = mod.user_create(f"{p}u", "U", email="u@example.com", password=LAB_PASSWORD)
    assert user["username"] == f"{p}u"
    assert mod.add_user(f"{p}g", f"{p}u") is True
    assert [u["username"] for u in mod.user_list(group=f"{p}g")] == [f"{p}u"]
    assert mod.remove_user(f"{p}g", f"{p}u") is True
    assert mod.user_list(group=f"{p}g") == []
    with pytest.raises(Exception, match=f"no group '{p}nope'"):
        mod.user_list(group=f"{p}nope")  # the API's groups_by_name would be a 400
    assert mod.outpost_embedded()["managed"] == "goauthentik.io/outposts/embedded"
    prov = mod.proxy_provider_create(f"{p}proxy", f"https://{p}x.example.com", IMPLICIT, INVALIDATION)
    assert mod.outpost_attach_provider(f"{p}proxy") is True
    assert mod.outpost_attach_provider(f"{p}proxy") is False
    assert prov["pk"] in mod.outpost_embedded()["providers"]
    assert mod.outpost_detach_provider(f"{p}proxy") is True
    assert mod.brand_get()["default"] is True
    assert mod.identification_stage_set_enrollment(flow="default-source-enrollment") is True
    assert mod.identification_stage_set_enrollment(flow="default-source-enrollment") is False
    assert mod.identification_stage_set_enrollment(flow="") is True
    assert mod.group_delete(f"{p}g") is True and mod.group_delete(f"{p}g") is False
    with pytest.raises(Exception, match="never as a value"):
        mod.user_set_password(f"{p}u", "plain-text")


def test_module_users_groups_and_mappings(env):
    mod = env.loaders.modules.authentik
    p = tag()
    mod.group_create(f"{p}a", attributes={"n": 1})
    mod.group_create(f"{p}b")
    assert [g["name"] for g in mod.group_list(name=f"{p}a")] == [f"{p}a"]
    assert {f"{p}a", f"{p}b"} <= {g["name"] for g in mod.group_list()}
    assert mod.group_get(f"{p}a")["attributes"] == {"n": 1} and mod.group_get(f"{p}none") is None
    mod.user_create(f"{p}u", "U", email="u@example.com")
    assert mod.user_get(f"{p}u")["email"] == "u@example.com" and mod.user_get(f"{p}none") is None
    assert [u["username"] for u in mod.user_list(username=f"{p}u")] == [f"{p}u"]
    changed = mod.user_update(f"{p}u", email="u2@example.com", path="users/team-a", is_active=False)
    assert (changed["email"], changed["path"], changed["is_active"]) == ("u2@example.com", "users/team-a", False)
    # Authentik's own path rule (UserSerializer.validate_path), named in the error
    with pytest.raises(Exception, match="path: No empty segments in user path allowed"):
        mod.user_update(f"{p}u", path="users//x")
    with pytest.raises(Exception, match="unknown field"):
        mod.user_update(f"{p}u", colour="red")
    assert mod.user_delete(f"{p}u") is True and mod.user_delete(f"{p}u") is False
    assert mod.user_get(f"{p}u") is None

    mapping = mod.scope_mapping_create(f"{p}m", "groups", 'return {"groups": []}', description="d")
    assert mapping["scope_name"] == "groups"
    assert mod.scope_mapping_get(f"{p}m")["pk"] == mapping["pk"]
    assert [m["scope_name"] for m in mod.scope_mapping_list(
        managed="goauthentik.io/providers/oauth2/scope-email")] == ["email"]
    # the API's managed filter is a 400 for a value no mapping has; the module says "none"
    assert mod.scope_mapping_list(managed="goauthentik.io/providers/oauth2/scope-nope") == []
    assert f"{p}m" in {m["name"] for m in mod.scope_mapping_list()}
    assert mod.scope_mapping_delete(f"{p}m") is True and mod.scope_mapping_delete(f"{p}m") is False
    assert mod.scope_mapping_get(f"{p}m") is None


def test_module_providers_applications_and_bindings(env):
    mod = env.loaders.modules.authentik
    p = tag()
    credentials = f"secret/hecate/tests/{p}oauth"
    prov = mod.oauth2_provider_create(f"{p}oauth", IMPLICIT, INVALIDATION,
                                      [f"https://{p}chat.example.com/cb"], credentials=credentials,
                                      access_token_validity="hours=1")
    assert prov["client_secret"] == "XXX-REDACTED-XXX" and len(prov["client_id"]) == 40
    mount, _, path = credentials.partition("/")
    stored = env.vault().read_data(mount, path)
    assert stored["client_id"] == prov["client_id"] and len(stored["client_secret"]) == 128
    assert mod.store_credentials(f"{p}oauth", credentials) is False  # already there
    env.vault().write(mount, path, {"client_id": prov["client_id"], "client_secret": "stale"})
    assert mod.store_credentials(f"{p}oauth", credentials) is True
    assert env.vault().read_data(mount, path) == stored
    updated = mod.oauth2_provider_update(f"{p}oauth", access_token_validity="hours=2",
                                         redirect_uris=[f"https://{p}chat.example.com/cb2"])
    assert updated["access_token_validity"] == "hours=2"
    assert [u["url"] for u in updated["redirect_uris"]] == [f"https://{p}chat.example.com/cb2"]
    with pytest.raises(Exception, match="generated by Authentik"):
        mod.oauth2_provider_update(f"{p}oauth", client_secret="x")
    with pytest.raises(Exception, match="no built-in scope mapping for groups"):
        mod.oauth2_provider_create(f"{p}oauth-bad", IMPLICIT, INVALIDATION, ["https://x.example.com/cb"],
                                   scopes=["openid", "groups"])

    proxy = mod.proxy_provider_create(f"{p}proxy", f"https://{p}x.example.com", IMPLICIT, INVALIDATION)
    assert proxy["mode"] == "forward_single"
    assert mod.proxy_provider_get(f"{p}proxy")["pk"] == proxy["pk"]
    assert f"{p}proxy" in {x["name"] for x in mod.proxy_provider_list()}
    # a PATCH of one field carries the provider's mode (ProxyProviderSerializer.validate)
    env.sim.clear_requests()
    moved = mod.proxy_provider_update(f"{p}proxy", external_host=f"https://{p}y.example.com")
    assert moved["external_host"] == f"https://{p}y.example.com" and moved["mode"] == "forward_single"
    assert [w["fields"] for w in env.sim.writes()] == [["external_host", "mode"]]
    # Authentik adds its managed scope mappings and sets the redirect URIs on every write
    # (ProxyProvider.set_oauth_defaults): asking for [] again, or the same host, is no change
    managed = {m["managed"] for m in mod.scope_mapping_list() if m["pk"] in moved["property_mappings"]}
    assert managed == {"goauthentik.io/providers/oauth2/scope-openid", "goauthentik.io/providers/oauth2/scope-profile",
                       "goauthentik.io/providers/oauth2/scope-email",
                       "goauthentik.io/providers/oauth2/scope-entitlements",
                       "goauthentik.io/providers/proxy/scope-proxy"}
    assert {u["url"] for u in moved["redirect_uris"]} == {
        f"https://{p}y.example.com/outpost.goauthentik.io/callback?X-authentik-auth-callback=true",
        f"https://{p}y.example.com?X-authentik-auth-callback=true"}
    env.sim.clear_requests()
    same = mod.proxy_provider_update(f"{p}proxy", external_host=f"https://{p}y.example.com", property_mappings=[],
                                     access_token_validity="minutes=1440")
    assert same["pk"] == proxy["pk"] and env.sim.writes() == []
    mod.scope_mapping_create(f"{p}extra", "extra", "return {}")
    env.sim.clear_requests()
    with_extra = mod.proxy_provider_update(f"{p}proxy", property_mappings=[f"{p}extra"])
    assert mod.scope_mapping_get(f"{p}extra")["pk"] in with_extra["property_mappings"]
    assert [w["fields"] for w in env.sim.writes()] == [["mode", "property_mappings"]]
    env.sim.clear_requests()
    mod.proxy_provider_update(f"{p}proxy", property_mappings=[f"{p}extra"])
    assert env.sim.writes() == []
    without = mod.proxy_provider_update(f"{p}proxy", property_mappings=[])
    assert mod.scope_mapping_get(f"{p}extra")["pk"] not in without["property_mappings"]
    with pytest.raises(Exception, match="redirect_uris are set by Authentik"):
        mod.proxy_provider_update(f"{p}proxy", redirect_uris=["https://elsewhere.example.com/cb"])
    assert mod.scope_mapping_delete(f"{p}extra") is True

    app = mod.application_create("Chat", f"{p}app", provider=f"{p}oauth", meta_launch_url="https://a.example.com")
    assert app["provider"] == prov["pk"]
    assert mod.application_get(f"{p}app")["meta_launch_url"] == "https://a.example.com"
    assert f"{p}app" in {a["slug"] for a in mod.application_list()}
    assert mod.application_update(f"{p}app", meta_launch_url="https://b.example.com")["meta_launch_url"] == \
        "https://b.example.com"
    mod.group_create(f"{p}g")
    binding = mod.policy_binding_create(f"{p}app", group=f"{p}g", order=3)
    assert binding["order"] == 3 and binding["group"] == mod.group_get(f"{p}g")["pk"]
    assert mod.policy_binding_delete(binding["pk"]) is True and mod.policy_binding_delete(binding["pk"]) is False
    assert mod.policy_binding_list(application=f"{p}app") == []
    assert mod.application_delete(f"{p}app") is True and mod.application_get(f"{p}app") is None
    assert mod.proxy_provider_delete(f"{p}proxy") is True and mod.proxy_provider_delete(f"{p}proxy") is False
    assert mod.oauth2_provider_delete(f"{p}oauth") is True and mod.oauth2_provider_delete(f"{p}oauth") is False
    assert mod.oauth2_provider_get(f"{p}oauth") is None


def test_module_flows_outposts_and_brands(env):
    mod = env.loaders.modules.authentik
    assert "default-source-enrollment" in {f["slug"] for f in mod.flow_list(designation="enrollment")}
    assert {f["designation"] for f in mod.flow_list(designation="enrollment")} == {"enrollment"}
    assert "authentik Embedded Outpost" in {o["name"] for o in mod.outpost_list()}
    brands = mod.brand_list()
    assert [b["domain"] for b in brands if b["default"]] == ["authentik-default"]
    # brands are keyed by brand_uuid, not pk (BrandSerializer, authentik/brands/api.py)
    env.sim.clear_requests()
    brand = mod.brand_update(branding_title="Hecate SSO", flow_recovery="default-password-change")
    assert brand["branding_title"] == "Hecate SSO"
    assert brand["flow_recovery"] == mod.flow_get("default-password-change")["pk"]
    (write,) = env.sim.writes()
    assert write["path"] == f"/api/v3/core/brands/{brand['brand_uuid']}/"
    assert write["fields"] == ["branding_title", "flow_recovery"]
    assert mod.brand_get()["branding_title"] == "Hecate SSO"
    with pytest.raises(Exception, match="no brand 'nope.example.com'"):
        mod.brand_update("nope.example.com", branding_title="x")
    restored = mod.brand_update(branding_title="authentik", flow_recovery=None)
    assert restored["branding_title"] == "authentik" and restored["flow_recovery"] is None


def test_forbidden_token_is_a_clear_failure(salt_factories, repo, vault_sim, authentik_sims, tmp_path):
    """A token Authentik refuses: result False, 'token invalid or lacks permission', no traceback."""
    sim = authentik_sims("2025.10")
    topology.seed_vault(vault_sim.url, vault_sim.root_token,
                        {("secret", "hecate/tests/revoked"): {"api_token": "revoked-" + "z" * 30}})
    opts = minion_opts(salt_factories, "func-authentik-forbidden", repo, vault_sim, sim)
    opts["hecate"]["connections"]["authentik"]["token"] = {"vault": "secret/hecate/tests/revoked",
                                                           "key": "api_token"}
    loaders = loaders_for(opts)
    ret = loaders.states.authentik_group.present(name="bionicgpt-x", prefix="bionicgpt-")
    assert ret.result is False and ret.changes == {}
    assert "token invalid or lacks permission" in ret.comment
    assert "Token invalid/expired" in ret.comment
    assert "revoked-" not in ret.comment and "Traceback" not in ret.comment
    assert TOKEN_REF  # the production reference shape is what the other tests use

