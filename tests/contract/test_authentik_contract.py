"""
Authentik REST API v3 contract: the lab simulator vs a real Authentik
(``AUTHENTIK_URL`` + ``AUTHENTIK_TOKEN``, an API token of a superuser; optional
``AUTHENTIK_CA_BUNDLE``). Objects created here are named ``hecate-contract-<random>``
and deleted again.

The simulator runs lenient here (unknown fields ignored, as the real server does); the
module tests run it strict.
"""

import os
import re
import urllib.parse
import uuid

import pytest
import requests

from lab.sim import SimHandle
from tests.contract.conftest import real_or_skip

SIM_TOKEN = "contract-" + uuid.uuid4().hex


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    handle = SimHandle("authentik", str(tmp_path_factory.mktemp("authentik-contract")),
                       {"token": SIM_TOKEN, "version": os.environ.get("HECATE_AUTHENTIK_VERSION", "2025.10")}).start()
    yield handle
    handle.stop()


class Api:
    def __init__(self, url, token, verify=True):
        self.url = url.rstrip("/") + "/api/v3"
        self.token = token
        self.verify = verify

    def __call__(self, method, path, body=None, token=None, **params):
        return requests.request(
            method, self.url + path, json=body, params=params or None, timeout=20, verify=self.verify,
            headers={"Authorization": f"Bearer {token or self.token}"},
        )


@pytest.fixture(params=["sim", "real"], scope="module")
def api(request, sim):
    if request.param == "sim":
        return Api(sim.url, SIM_TOKEN)
    env = real_or_skip("AUTHENTIK_URL", "AUTHENTIK_TOKEN")
    return Api(env["AUTHENTIK_URL"], env["AUTHENTIK_TOKEN"], os.environ.get("AUTHENTIK_CA_BUNDLE") or True)


@pytest.fixture
def name():
    return f"hecate-contract-{uuid.uuid4().hex[:10]}"


def flow_pk(api, slug):
    resp = api("GET", f"/flows/instances/{slug}/")
    assert resp.status_code == 200, resp.text
    return resp.json()["pk"]


def test_bad_token_is_403_token_invalid(api):
    resp = api("GET", "/core/groups/", token="hecate-contract-not-a-token")
    assert resp.status_code == 403
    assert resp.json() == {"detail": "Token invalid/expired"}


def test_health_endpoints_need_no_token(api):
    """
    docs.goauthentik.io/sys-mgmt/ops/monitoring: /-/health/live/ answers 200 while authentik
    runs, /-/health/ready/ 200 when a PostgreSQL connection can be established (what the
    hecate-authentik job's check and orch.hecate's wait read); no authentication.
    """
    base = api.url[: -len("/api/v3")]
    for path in ("/-/health/live/", "/-/health/ready/"):
        resp = requests.get(base + path, timeout=20, verify=api.verify)
        assert resp.status_code in (200, 204), (path, resp.status_code)  # 204 before 2024.x


def test_a_bootstrap_token_is_an_api_token(tmp_path):
    """
    docs.goauthentik.io/install-config/automated-install: AUTHENTIK_BOOTSTRAP_TOKEN "Create[s] a
    token for the default akadmin user. Only read on the first startup." The simulator as the
    edge job's stand-in: a fresh database takes it, an existing one (its state file) does not.
    """
    state = tmp_path / "db.json"
    first = SimHandle("authentik", str(tmp_path / "first"), {
        "bootstrap": {"token": "boot-1", "password": True, "email": "admin@example.test"},
        "state_file": str(state)}).start()
    try:
        assert Api(first.url, "boot-1")("GET", "/admin/version/").status_code == 200
        users = Api(first.url, "boot-1")("GET", "/core/users/", username="akadmin").json()["results"]
        assert users[0]["email"] == "admin@example.test"
    finally:
        first.stop()
    again = SimHandle("authentik", str(tmp_path / "again"), {
        "bootstrap": {"token": "boot-2"}, "state_file": str(state)}).start()
    try:
        assert Api(again.url, "boot-2")("GET", "/admin/version/").status_code == 403
        assert Api(again.url, "boot-1")("GET", "/admin/version/").status_code == 200
    finally:
        again.stop()


def test_version_endpoint(api):
    resp = api("GET", "/admin/version/")
    assert resp.status_code == 200
    assert re.match(r"^\d{4}\.\d{1,2}\.\d+", resp.json()["version_current"])


def test_pagination_uses_page_numbers(api):
    resp = api("GET", "/flows/instances/", page_size=1)
    assert resp.status_code == 200
    body = resp.json()
    page = body["pagination"]
    assert set(page) >= {"next", "previous", "count", "current", "total_pages", "start_index", "end_index"}
    assert page["current"] == 1 and page["previous"] == 0 and len(body["results"]) == 1
    assert page["next"] == (2 if page["count"] > 1 else 0)  # a page number, not a URL
    last = api("GET", "/flows/instances/", page_size=1, page=page["total_pages"]).json()
    assert last["pagination"]["next"] == 0
    resp = api("GET", "/flows/instances/", page_size=1, page=page["total_pages"] + 1)
    assert resp.status_code == 404 and resp.json() == {"detail": "Invalid page."}



def test_search_terms_and_ordering_as_drf_reads_them(api):
    """
    authentik/root/settings.py REST_FRAMEWORK DEFAULT_FILTER_BACKENDS: DRF's SearchFilter
    and OrderingFilter (rest_framework/filters.py). SearchFilter.get_search_terms splits
    ``search`` on whitespace and commas (search_smart_split) and every term must match one
    of the viewset's search_fields (FlowViewSet: name, slug, designation, title).
    OrderingFilter.get_ordering splits ``ordering`` on commas, drops fields that are no
    valid ordering field (remove_invalid_fields) and falls back to the viewset's default
    ordering (FlowViewSet ``ordering = ["slug", "name"]``) when none is left.
    """
    def slugs(**params):
        resp = api("GET", "/flows/instances/", page_size=100, **params)
        assert resp.status_code == 200, resp.text
        assert resp.json()["pagination"]["total_pages"] == 1
        return [f["slug"] for f in resp.json()["results"]]

    found = slugs(search="default authentication")
    assert "default-authentication-flow" in found
    assert slugs(search="default,authentication") == found
    default = slugs()
    assert default == sorted(default)
    assert slugs(ordering="no_such_field") == default
    assert slugs(ordering="-slug,name") == sorted(default, reverse=True)
    assert slugs(ordering="no_such_field,-slug") == sorted(default, reverse=True)


def test_missing_object_bodies(api, name):
    resp = api("GET", f"/core/applications/{name}/")
    assert resp.status_code == 404
    assert resp.json() == {"detail": "No Application matches the given query."}
    resp = api("GET", f"/core/groups/{uuid.uuid4()}/")
    assert resp.status_code == 404 and resp.json() == {"detail": "No Group matches the given query."}


def test_required_field_is_a_drf_400(api):
    resp = api("POST", "/core/groups/", {})
    assert resp.status_code == 400
    assert resp.json() == {"name": ["This field is required."]}


def test_group_lifecycle_unknown_fields_ignored(api, name):
    resp = api("POST", "/core/groups/", {"name": name, "attributes": {"a": 1}, "hecate_colour": "red"})
    assert resp.status_code == 201, resp.text
    group = resp.json()
    try:
        assert group["name"] == name and group["attributes"] == {"a": 1}
        assert "hecate_colour" not in group
        assert ("parent" in group) != ("parents" in group)  # parent up to 2025.10, parents after
        listed = api("GET", "/core/groups/", name=name, include_users="false").json()["results"]
        assert [g["pk"] for g in listed] == [group["pk"]]
        resp = api("PATCH", f"/core/groups/{group['pk']}/", {"attributes": {"a": 2}})
        assert resp.status_code == 200 and resp.json()["attributes"] == {"a": 2}
        resp = api("POST", f"/core/groups/{group['pk']}/add_user/", {"pk": 2_000_000_000})
        assert resp.status_code == 404
    finally:
        assert api("DELETE", f"/core/groups/{group['pk']}/").status_code == 204
    assert api("GET", f"/core/groups/{group['pk']}/").status_code == 404


def test_policy_binding_needs_exactly_one_of(api, name):
    group = api("POST", "/core/groups/", {"name": name}).json()
    app = api("POST", "/core/applications/", {"name": name, "slug": name}).json()
    try:
        user = api("GET", "/core/users/", page_size=1, include_groups="false").json()["results"][0]
        resp = api("POST", "/policies/bindings/",
                   {"target": app["pk"], "order": 0, "group": group["pk"], "user": user["pk"]})
        assert resp.status_code == 400
        # PolicyBindingSerializer.validate (authentik/policies/api/bindings.py) names
        # target.supported_policy_binding_targets(): policy, user, group
        # (PolicyBindingModel, authentik/policies/models.py), since 2024.12
        assert resp.json() == {"non_field_errors": ["Only one of 'policy', 'user', 'group' can be set."]}
        resp = api("POST", "/policies/bindings/", {"target": app["pk"], "order": 0, "group": group["pk"]})
        assert resp.status_code == 201
        bound = api("GET", "/policies/bindings/", target=app["pk"]).json()["results"]
        assert [b["group"] for b in bound] == [group["pk"]]
        assert api("DELETE", f"/policies/bindings/{bound[0]['pk']}/").status_code == 204
        assert api("GET", "/policies/bindings/", target=app["pk"]).json()["results"] == []
    finally:
        api("DELETE", f"/core/applications/{name}/")
        api("DELETE", f"/core/groups/{group['pk']}/")


def test_oauth2_provider_credentials_and_validation(api, name):
    body = {
        "name": name,
        "authorization_flow": flow_pk(api, "default-provider-authorization-implicit-consent"),
        "redirect_uris": [{"matching_mode": "strict", "url": "https://contract.example.com/cb"}],
    }
    resp = api("POST", "/providers/oauth2/", body)
    assert resp.status_code == 400 and resp.json() == {"invalidation_flow": ["This field is required."]}
    body["invalidation_flow"] = flow_pk(api, "default-provider-invalidation-flow")
    resp = api("POST", "/providers/oauth2/", dict(body, redirect_uris=[{"matching_mode": "regex", "url": "("}]))
    # OAuth2ProviderSerializer.validate_redirect_uris (authentik/providers/oauth2/api/providers.py)
    assert resp.status_code == 400 and resp.json() == {"redirect_uris": ["Invalid Regex Pattern: ("]}
    resp = api("POST", "/providers/oauth2/", body)
    assert resp.status_code == 201, resp.text
    prov = resp.json()
    try:
        assert len(prov["client_id"]) == 40 and len(prov["client_secret"]) == 128
        assert prov["client_type"] == "confidential"
        assert prov["redirect_uris"][0]["matching_mode"] == "strict"
        again = api("GET", f"/providers/oauth2/{prov['pk']}/").json()
        assert again["client_secret"] == prov["client_secret"]
        listed = api("GET", "/providers/oauth2/", name=name).json()["results"]
        assert [p["pk"] for p in listed] == [prov["pk"]]
        # a PATCH of redirect_uris alone: validate_redirect_uris only, the credentials stay
        uris = [{"matching_mode": "regex", "url": r"https://contract\.example\.com/.*"}]
        resp = api("PATCH", f"/providers/oauth2/{prov['pk']}/", {"redirect_uris": uris})
        # from 2025.12 RedirectURISerializer adds redirect_uri_type, default "authorization"
        # (schema-2026.5.yml RedirectURI)
        if release(api) >= (2025, 12):
            uris = [dict(uri, redirect_uri_type="authorization") for uri in uris]
        assert resp.status_code == 200 and resp.json()["redirect_uris"] == uris
        assert resp.json()["client_secret"] == prov["client_secret"]
    finally:
        assert api("DELETE", f"/providers/oauth2/{prov['pk']}/").status_code == 204


def test_fresh_install_objects_hecate_relies_on(api):
    for slug in ("default-provider-authorization-implicit-consent", "default-provider-invalidation-flow",
                 "default-authentication-flow"):
        assert api("GET", f"/flows/instances/{slug}/").status_code == 200, slug
    for scope in ("openid", "email", "profile", "offline_access"):
        managed = f"goauthentik.io/providers/oauth2/scope-{scope}"
        found = api("GET", "/propertymappings/provider/scope/", managed=managed).json()["results"]
        assert [m["scope_name"] for m in found] == [scope]
    outposts = api("GET", "/outposts/instances/", managed__iexact="goauthentik.io/outposts/embedded").json()
    assert len(outposts["results"]) == 1
    embedded = api("GET", f"/outposts/instances/{outposts['results'][0]['pk']}/")  # outpost_providers reads it
    assert embedded.status_code == 200 and isinstance(embedded.json()["providers"], list)
    stages = api("GET", "/stages/identification/", name="default-authentication-identification").json()
    assert len(stages["results"]) == 1 and "enrollment_flow" in stages["results"][0]
    brands = api("GET", "/core/brands/", default="true").json()["results"]
    assert brands and "flow_enrollment" not in brands[0]  # enrollment lives on the identification stage


# -- DRF partial updates (issue 18 items 4-7) --------------------------------------------------------
# A PATCH is ``partial_update`` (rest_framework/mixins.py UpdateModelMixin): the serializer
# runs with partial=True, skips the fields not sent (rest_framework/fields.py
# Field.validate_empty_values) and hands ``validate(attrs)`` the SENT fields only
# (rest_framework/serializers.py Serializer.run_validation); the stored object is not
# merged in. Unique-together validators are the exception: they fill unsent fields from
# the instance (rest_framework/validators.py UniqueTogetherValidator.filter_queryset).
def test_identification_stage_patch_validates_the_sent_fields(api, name):
    """
    IdentificationStageSerializer.validate (authentik/stages/identification/api.py):
    "at least one source when no user fields", read from the sent attrs. Setting the
    enrollment link alone is refused; hecate sends the stage's user_fields and sources
    with it (hecate_authentik_client.AuthentikClient.set_enrollment_flow).
    """
    resp = api("POST", "/stages/identification/", {"name": name, "user_fields": ["username"]})
    assert resp.status_code == 201, resp.text
    stage = resp.json()
    try:
        enroll = flow_pk(api, "default-source-enrollment")
        path = f"/stages/identification/{stage['pk']}/"
        resp = api("PATCH", path, {"enrollment_flow": enroll})
        assert resp.status_code == 400
        assert resp.json() == {"non_field_errors": [
            "When no user fields are selected, at least one source must be selected"]}
        assert api("GET", path).json()["enrollment_flow"] is None
        resp = api("PATCH", path, {"enrollment_flow": enroll, "user_fields": stage["user_fields"],
                                   "sources": stage["sources"]})
        assert resp.status_code == 200 and resp.json()["enrollment_flow"] == enroll
        resp = api("PATCH", path, {"enrollment_flow": None, "user_fields": stage["user_fields"],
                                   "sources": stage["sources"]})
        assert resp.status_code == 200 and resp.json()["enrollment_flow"] is None
    finally:
        assert api("DELETE", f"/stages/identification/{stage['pk']}/").status_code == 204


def test_policy_binding_patch_needs_target_and_the_bound_object(api, name):
    """
    PolicyBindingSerializer.validate (authentik/policies/api/bindings.py) starts with
    ``attrs.get("target").supported_policy_binding_targets()`` (since 2024.12, app
    entitlements): a PATCH without target is an AttributeError, a 500; with target but
    without the bound group it is a 400. hecate re-enables a binding with both
    (hecate_authentik_client.AuthentikClient.patch_policy_binding).
    """
    group = api("POST", "/core/groups/", {"name": name}).json()
    app = api("POST", "/core/applications/", {"name": name, "slug": name}).json()
    try:
        resp = api("POST", "/policies/bindings/", {"target": app["pk"], "order": 0, "group": group["pk"],
                                                   "enabled": False, "negate": True})
        assert resp.status_code == 201, resp.text
        path = f"/policies/bindings/{resp.json()['pk']}/"
        assert api("PATCH", path, {"enabled": True, "negate": False}).status_code == 500
        resp = api("PATCH", path, {"enabled": True, "negate": False, "target": app["pk"]})
        assert resp.status_code == 400
        assert resp.json() == {"non_field_errors": ["One of 'policy', 'user', 'group' must be set."]}
        assert api("GET", path).json()["enabled"] is False  # nothing written by the refused PATCHes
        resp = api("PATCH", path, {"enabled": True, "negate": False, "target": app["pk"], "group": group["pk"]})
        assert resp.status_code == 200, resp.text
        assert (resp.json()["enabled"], resp.json()["negate"]) == (True, False)
    finally:
        api("DELETE", f"/core/applications/{name}/")
        api("DELETE", f"/core/groups/{group['pk']}/")


def test_brand_is_keyed_by_brand_uuid_with_one_default(api, name):
    """
    BrandSerializer (authentik/brands/api.py): fields start with ``brand_uuid`` (no pk);
    ``domain`` has its own UniqueValidator (DRF's message); ``validate`` allows one
    default brand. authentik.brand_update PATCHes /core/brands/<brand_uuid>/.
    """
    domain = f"{name}.example.com"
    resp = api("POST", "/core/brands/", {"domain": domain})
    assert resp.status_code == 201, resp.text
    brand = resp.json()
    try:
        assert "pk" not in brand and brand["brand_uuid"]
        found = api("GET", "/core/brands/", domain=domain).json()["results"]  # how hecate finds a brand
        assert [b["brand_uuid"] for b in found] == [brand["brand_uuid"]]
        resp = api("PATCH", f"/core/brands/{brand['brand_uuid']}/", {"branding_title": name})
        assert resp.status_code == 200 and resp.json()["branding_title"] == name
        resp = api("POST", "/core/brands/", {"domain": domain})
        assert resp.status_code == 400 and resp.json() == {"domain": ["This field must be unique."]}
        resp = api("PATCH", f"/core/brands/{brand['brand_uuid']}/", {"default": True})
        assert resp.status_code == 400
        assert resp.json() == {"default": ["Only a single brand can be set as default."]}
    finally:
        assert api("DELETE", f"/core/brands/{brand['brand_uuid']}/").status_code == 204


def test_proxy_provider_patch_without_mode_is_validated_as_proxy_mode(api, name):
    """
    ProxyProviderSerializer.validate (authentik/providers/proxy/api.py) reads
    ``attrs.get("mode", ProxyMode.PROXY)``: a PATCH of a forward-auth provider without
    ``mode`` is validated as proxy mode and needs an internal host. hecate sends the
    provider's mode (hecate_authentik_client.AuthentikClient.patch_proxy_provider).
    """
    resp = api("POST", "/providers/proxy/", {
        "name": name, "external_host": f"https://{name}.example.com", "mode": "forward_single",
        "authorization_flow": flow_pk(api, "default-provider-authorization-implicit-consent"),
        "invalidation_flow": flow_pk(api, "default-provider-invalidation-flow")})
    assert resp.status_code == 201, resp.text
    prov = resp.json()
    try:
        path = f"/providers/proxy/{prov['pk']}/"
        resp = api("PATCH", path, {"external_host": f"https://{name}2.example.com"})
        assert resp.status_code == 400
        assert resp.json() == {"internal_host": ["Internal host cannot be empty when forward auth is disabled."]}
        resp = api("PATCH", path, {"external_host": f"https://{name}2.example.com", "mode": "forward_single"})
        assert resp.status_code == 200 and resp.json()["external_host"] == f"https://{name}2.example.com"
    finally:
        assert api("DELETE", f"/providers/proxy/{prov['pk']}/").status_code == 204


def test_user_path_type_and_username_validators(api, name):
    """
    UserSerializer (authentik/core/api/users.py): validate_path (no leading/trailing
    slash, no empty segment), validate_type (internal_service_account only by Authentik
    itself), username's own UniqueValidator (DRF's message) - field validators, so a
    PATCH that sends the field is checked and one that does not is not.
    """
    for path, message in (("/users", "No leading or trailing slashes allowed."),
                          ("users/", "No leading or trailing slashes allowed."),
                          ("users//x", "No empty segments in user path allowed.")):
        resp = api("POST", "/core/users/", {"username": name, "name": "Contract", "path": path})
        assert resp.status_code == 400 and resp.json() == {"path": [message]}, path
    resp = api("POST", "/core/users/", {"username": name, "name": "Contract", "type": "internal_service_account"})
    assert resp.status_code == 400
    assert resp.json() == {"type": ["Setting a user to internal service account is not allowed."]}
    resp = api("POST", "/core/users/", {"username": name, "name": "Contract", "path": "users/contract"})
    assert resp.status_code == 201, resp.text
    user = resp.json()
    try:
        assert user["path"] == "users/contract"
        resp = api("POST", "/core/users/", {"username": name, "name": "Again"})
        assert resp.status_code == 400 and resp.json() == {"username": ["This field must be unique."]}
        resp = api("PATCH", f"/core/users/{user['pk']}/", {"path": "a//b"})
        assert resp.status_code == 400 and resp.json() == {"path": ["No empty segments in user path allowed."]}
        resp = api("PATCH", f"/core/users/{user['pk']}/", {"name": "Renamed"})
        assert resp.status_code == 200 and resp.json()["path"] == "users/contract"
    finally:
        assert api("DELETE", f"/core/users/{user['pk']}/").status_code == 204


# -- issue 18, the Authentik audit (helpers/audit-authentik-caddy.md part 1), items 1-9 ------------
PROXY_SCOPES = {"goauthentik.io/providers/oauth2/scope-openid", "goauthentik.io/providers/oauth2/scope-profile",
                "goauthentik.io/providers/oauth2/scope-email", "goauthentik.io/providers/oauth2/scope-entitlements",
                "goauthentik.io/providers/proxy/scope-proxy"}


def release(api):
    parts = api("GET", "/admin/version/").json()["version_current"].split(".")
    return int(parts[0]), int(parts[1])


def proxy_provider(api, name, **extra):
    return dict({"name": name, "external_host": f"https://{name}.example.com", "mode": "forward_single",
                 "authorization_flow": flow_pk(api, "default-provider-authorization-implicit-consent"),
                 "invalidation_flow": flow_pk(api, "default-provider-invalidation-flow")}, **extra)


def test_proxy_provider_gets_the_managed_mappings_and_callback_uris(api, name):
    """
    Item 1. ProxyProviderSerializer.create/update (authentik/providers/proxy/api.py)
    call ProxyProvider.set_oauth_defaults (authentik/providers/proxy/models.py): the
    managed openid/profile/email/entitlements/proxy mappings are ADDED
    (``property_mappings.add``) and redirect_uris become ``_get_callback_url``'s two
    strict ``?X-authentik-auth-callback=true`` URLs. The seven managed scope mappings
    come from blueprints/system/providers-oauth2.yaml and providers-proxy.yaml.
    hecate compares with them (hecate_authentik_client.AuthentikClient.proxy_provider_changes).
    """
    managed = api("GET", "/propertymappings/provider/scope/", managed__isnull="false", page_size=100).json()["results"]
    by_managed = {m["managed"]: m["pk"] for m in managed}
    assert {"openid", "email", "profile", "entitlements", "offline_access", "goauthentik.io/api", "ak_proxy"} <= {
        m["scope_name"] for m in managed}
    resp = api("POST", "/providers/proxy/", proxy_provider(api, name, property_mappings=[]))
    assert resp.status_code == 201, resp.text
    prov = resp.json()
    try:
        forced = {by_managed[m] for m in PROXY_SCOPES}
        assert set(prov["property_mappings"]) == forced
        found = api("GET", "/providers/proxy/", name__iexact=name.upper()).json()["results"]  # hecate's lookup
        assert [p["pk"] for p in found] == [prov["pk"]]
        assert {u["url"] for u in prov["redirect_uris"]} == {
            f"https://{name}.example.com/outpost.goauthentik.io/callback?X-authentik-auth-callback=true",
            f"https://{name}.example.com?X-authentik-auth-callback=true"}
        path = f"/providers/proxy/{prov['pk']}/"
        resp = api("PATCH", path, {"mode": "forward_single", "property_mappings": []})
        assert resp.status_code == 200 and set(resp.json()["property_mappings"]) == forced  # cannot be removed
        assert api("GET", path).json()["redirect_uris"] == prov["redirect_uris"]
    finally:
        assert api("DELETE", f"/providers/proxy/{prov['pk']}/").status_code == 204


def test_put_without_list_fields_empties_them(api, name):
    """
    Item 2. GroupSerializer ``users`` and UserSerializer ``groups`` have ``default=list``
    (authentik/core/api/groups.py Meta.extra_kwargs, users.py): DRF fills the default on
    every non-partial write (rest_framework/fields.py Field.validate_empty_values), so a
    PUT without them clears the relation. hecate only PATCHes.
    """
    user = api("POST", "/core/users/", {"username": name, "name": "Contract"}).json()
    group = api("POST", "/core/groups/", {"name": name, "users": [user["pk"]]}).json()
    try:
        assert api("GET", f"/core/groups/{group['pk']}/").json()["users"] == [user["pk"]]
        assert api("GET", f"/core/users/{user['pk']}/").json()["groups"] == [group["pk"]]
        resp = api("PUT", f"/core/users/{user['pk']}/", {"username": name, "name": "Contract 2"})
        assert resp.status_code == 200 and resp.json()["groups"] == []
        api("PATCH", f"/core/groups/{group['pk']}/", {"users": [user["pk"]]})
        resp = api("PUT", f"/core/groups/{group['pk']}/", {"name": name})
        assert resp.status_code == 200 and resp.json()["users"] == []
    finally:
        api("DELETE", f"/core/groups/{group['pk']}/")
        api("DELETE", f"/core/users/{user['pk']}/")


def test_application_list_without_superuser_full_list_is_cached_ignoring_filters(api, name):
    """
    Item 3. ApplicationViewSet.list (authentik/core/api/applications.py): without
    superuser_full_list=true the page is policy-checked and cached under
    user_app_cache_key(user.pk, page) - a key without the filters - until an application
    is created or a binding/group/user saved (core/signals.py, policies/signals.py).
    hecate reads applications by slug (GET /core/applications/<slug>/) and lists them
    with superuser_full_list=true (hecate_authentik_client.KINDS["application"]).
    """
    apps = []
    try:
        for suffix in ("a", "b"):
            resp = api("POST", "/core/applications/", {"name": f"{name}-{suffix}", "slug": f"{name}-{suffix}"})
            assert resp.status_code == 201, resp.text
            apps.append(resp.json()["slug"])
        first = api("GET", "/core/applications/", slug=apps[0]).json()["results"]
        assert [a["slug"] for a in first] == [apps[0]]
        second = api("GET", "/core/applications/", slug=apps[1]).json()["results"]
        assert [a["slug"] for a in second] == [apps[0]]  # the cached page, not the filter's answer
        full = api("GET", "/core/applications/", slug=apps[1], superuser_full_list="true").json()["results"]
        assert [a["slug"] for a in full] == [apps[1]]
    finally:
        for slug in apps:
            api("DELETE", f"/core/applications/{slug}/")


def test_group_names_are_unique_on_every_release(api, name):
    """
    Item 4. Up to 2025.10 GroupSerializer's own UniqueValidator on name (global, "This
    field must be unique."); from 2025.12 Group.name is unique=True (authentik/core/
    models.py), DRF's model message.
    """
    group = api("POST", "/core/groups/", {"name": name}).json()
    try:
        resp = api("POST", "/core/groups/", {"name": name})
        message = "This field must be unique." if release(api) < (2025, 12) else "Group with this name already exists."
        assert resp.status_code == 400 and resp.json() == {"name": [message]}
    finally:
        api("DELETE", f"/core/groups/{group['pk']}/")


def test_missing_trailing_slash_is_an_html_404(api, name):
    """
    Item 5. APPEND_SLASH = False (authentik/root/settings.py) and DefaultRouter routes
    with a trailing slash (authentik/api/v3/urls.py): no route matches, handler404 =
    NotFoundView (authentik/root/urls.py) renders an HTML page.
    """
    resp = api("GET", "/core/groups")
    assert resp.status_code == 404 and "json" not in resp.headers.get("Content-Type", "")
    resp = api("POST", "/core/groups", {"name": name})
    assert resp.status_code == 404
    assert api("GET", "/core/groups/", name=name).json()["results"] == []


def test_filters_refuse_values_that_are_no_choice(api, name):
    """
    Item 6. DjangoFilterBackend answers an invalid FilterSet with a 400 naming the
    parameter (django_filters/rest_framework/backends.py): ``managed`` is an
    AllValuesMultipleFilter (authentik/core/api/property_mappings.py),
    ``members_by_username`` a ModelMultipleChoiceFilter (authentik/core/api/groups.py).
    hecate looks managed mappings up in its per-run index instead
    (hecate_authentik_client.AuthentikClient.managed_scope_mapping).
    """
    resp = api("GET", "/propertymappings/provider/scope/", managed="goauthentik.io/does-not-exist")
    assert resp.status_code == 400 and list(resp.json()) == ["managed"]
    resp = api("GET", "/core/groups/", members_by_username=name)
    assert resp.status_code == 400 and resp.json() == {
        "members_by_username": [f"Select a valid choice. {name} is not one of the available choices."]}
    default = api("GET", "/core/brands/", default="true").json()["results"][0]
    narrowed = api("GET", "/core/brands/", brand_uuid=default["brand_uuid"]).json()["results"]
    assert [b["brand_uuid"] for b in narrowed] == [default["brand_uuid"]]


def test_proxy_basic_auth_and_outpost_provider_checks(api, name):
    """
    Item 7. ProxyProviderSerializer.validate_basic_auth_enabled reads initial_data
    (authentik/providers/proxy/api.py); OutpostSerializer.validate_providers checks the
    providers against the sent type and wants at least one (authentik/outposts/api/outposts.py).
    """
    resp = api("POST", "/providers/proxy/", proxy_provider(api, name, basic_auth_enabled=True))
    assert resp.status_code == 400 and resp.json()["basic_auth_enabled"] == [
        "User and password attributes must be set when basic auth is enabled."]
    oauth = api("POST", "/providers/oauth2/", {
        "name": name, "authorization_flow": flow_pk(api, "default-provider-authorization-implicit-consent"),
        "invalidation_flow": flow_pk(api, "default-provider-invalidation-flow"),
        "redirect_uris": [{"matching_mode": "strict", "url": "https://contract.example.com/cb"}]}).json()
    created = []
    try:
        resp = api("POST", "/outposts/instances/", {"name": name, "type": "proxy", "providers": [oauth["pk"]],
                                                    "config": {}})
        if resp.status_code == 201:
            created.append(resp.json()["pk"])
        assert resp.status_code == 400
        assert resp.json()["providers"] == ["Outpost type proxy can't be used with OAuth2Provider providers."]
        resp = api("POST", "/outposts/instances/", {"name": name, "type": "proxy", "providers": [], "config": {}})
        if resp.status_code == 201:
            created.append(resp.json()["pk"])
        assert resp.status_code == 400 and resp.json()["providers"] == ["This list may not be empty."]
    finally:
        for pk in created:
            api("DELETE", f"/outposts/instances/{pk}/")
        api("DELETE", f"/providers/oauth2/{oauth['pk']}/")


def test_unique_messages_name_the_declaring_model(api, name):
    """
    Item 8. DRF get_unique_error_message (rest_framework/utils/field_mapping.py) uses the
    verbose_name of the model that declares the field: Provider.name (no verbose_name:
    "provider"), Stage.name ("stage"), PropertyMapping.name ("Property Mapping").
    """
    resp = api("POST", "/providers/proxy/", proxy_provider(api, name))
    assert resp.status_code == 201, resp.text
    prov = resp.json()
    try:
        resp = api("POST", "/providers/oauth2/", {
            "name": name, "authorization_flow": prov["authorization_flow"],
            "invalidation_flow": prov["invalidation_flow"],
            "redirect_uris": [{"matching_mode": "strict", "url": "https://contract.example.com/cb"}]})
        assert resp.status_code == 400 and resp.json() == {"name": ["provider with this name already exists."]}
        resp = api("POST", "/stages/user_login/", {"name": "default-authentication-identification"})
        assert resp.status_code == 400 and resp.json() == {"name": ["stage with this name already exists."]}
        resp = api("POST", "/propertymappings/provider/scope/", {
            "name": "authentik default OAuth Mapping: OpenID 'email'", "scope_name": name, "expression": "return {}"})
        assert resp.status_code == 400
        assert resp.json() == {"name": ["Property Mapping with this name already exists."]}
    finally:
        api("DELETE", f"/providers/proxy/{prov['pk']}/")


def test_flow_pbm_uuid_is_no_flow_and_binding_targets_come_back_as_the_flow_pk(api, name):
    """
    Item 9. Provider flows are FKs to Flow (pk flow_uuid): its policybindingmodel_ptr_id
    is refused. PolicyBindingModelForeignKey (authentik/policies/api/bindings.py) takes
    either and represents the subclass pk (to_representation).
    """
    resp = api("POST", "/flows/instances/", {"name": name, "slug": name, "title": name,
                                             "designation": "stage_configuration"})
    assert resp.status_code == 201, resp.text
    flow = resp.json()
    group = api("POST", "/core/groups/", {"name": name}).json()
    try:
        pbm = flow["policybindingmodel_ptr_id"]
        assert pbm != flow["pk"]
        resp = api("POST", "/providers/proxy/", proxy_provider(api, name, authorization_flow=pbm))
        assert resp.status_code == 400
        assert resp.json() == {"authorization_flow": [f'Invalid pk "{pbm}" - object does not exist.']}
        resp = api("POST", "/policies/bindings/", {"target": pbm, "order": 0, "group": group["pk"]})
        assert resp.status_code == 201 and resp.json()["target"] == flow["pk"]
        listed = api("GET", "/policies/bindings/", target=pbm).json()["results"]
        assert [b["target"] for b in listed] == [flow["pk"]]
    finally:
        api("DELETE", f"/flows/instances/{name}/")
        api("DELETE", f"/core/groups/{group['pk']}/")


# -- the browser side: embedded outpost, authorize, login (lab/sim/authentik_web.py) ---------------
def _base(api):
    return api.url[: -len("/api/v3")]


def _outpost_sees(api, host, timeout=30):
    """The embedded outpost reloads its providers on a websocket message: wait until it serves."""
    import time  # pylint: disable=import-outside-toplevel

    deadline = time.monotonic() + timeout
    while True:
        resp = _forward(api, host)
        if resp.status_code != 404 or time.monotonic() > deadline:
            return resp
        time.sleep(1)


def _forward(api, host, uri="/private?x=1", cookies=None):
    return requests.get(_base(api) + "/outpost.goauthentik.io/auth/caddy", allow_redirects=False, timeout=20,
                        verify=api.verify, cookies=cookies,
                        headers={"X-Forwarded-Host": host, "X-Forwarded-Proto": "https", "X-Forwarded-Uri": uri,
                                 "X-Forwarded-Method": "GET"})


def test_embedded_outpost_without_a_provider_for_the_host_is_the_core_404(api, name):
    """
    internal/web/proxy.go: the server asks the embedded outpost first (ProxyServer.HandleHost,
    internal/outpost/proxyv2/proxyv2.go); with no application for the host it returns false
    and the core answers, where /outpost.goauthentik.io/auth/caddy is no URL: an HTML 404
    (not the standalone outpost's 400 "no app for hostname", handlers.go Handle). This is what
    a Caddy route with forward auth but no Authentik side answers for every request.
    """
    resp = _forward(api, f"{name}.example.com")
    assert resp.status_code == 404
    assert "text/html" in resp.headers.get("Content-Type", "")


def test_forward_auth_without_a_session_redirects_to_authorize_and_login(api, name):
    """
    application/mode_forward.go forwardHandleCaddy -> oauth.go handleAuthStart: 302 to the
    provider's OAuth2 authorize URL (redirect_uri the outpost callback with the
    X-authentik-auth-callback signature), a session cookie authentik_proxy_<sha256(client
    id)[:8]> set (application.go). The authorize view (authentik/policies/views.py
    PolicyAccessView.handle_no_permission) sends an anonymous browser to
    /flows/-/default/authentication/?next=<authorize URL>, which redirects to
    /if/flow/<flow>/ with the same query (flows/views/executor.py ToDefaultFlow); the flow
    executor starts with the identification stage. hecate_route_auth relies on this shape.
    """
    import hashlib  # pylint: disable=import-outside-toplevel

    prov = api("POST", "/providers/proxy/", proxy_provider(api, name, mode="forward_single")).json()
    app = api("POST", "/core/applications/", {"name": name, "slug": name, "provider": prov["pk"]}).json()
    found = api("GET", "/outposts/instances/", managed__iexact="goauthentik.io/outposts/embedded").json()
    outpost = found["results"][0]
    before = outpost["providers"]
    api("PATCH", f"/outposts/instances/{outpost['pk']}/", {"providers": before + [prov["pk"]]})
    try:
        resp = _outpost_sees(api, f"{name}.example.com")
        assert resp.status_code == 302, resp.text
        location = urllib.parse.urlsplit(resp.headers["Location"])
        assert location.path == "/application/o/authorize/"
        query = urllib.parse.parse_qs(location.query)
        assert query["client_id"] == [prov["client_id"]] and query["response_type"] == ["code"]
        assert query["redirect_uri"] == [
            f"https://{name}.example.com/outpost.goauthentik.io/callback?X-authentik-auth-callback=true"]
        cookie = "authentik_proxy_" + hashlib.sha256(prov["client_id"].encode()).hexdigest()[:8]
        assert cookie in resp.cookies
        authorize = requests.get(_base(api) + location.path + "?" + location.query, allow_redirects=False,
                                 timeout=20, verify=api.verify)
        assert authorize.status_code == 302
        assert authorize.headers["Location"].startswith("/flows/-/default/authentication/?next=")
        flow = requests.get(_base(api) + authorize.headers["Location"], allow_redirects=False, timeout=20,
                            verify=api.verify)
        assert flow.status_code == 302 and flow.headers["Location"].startswith("/if/flow/")
        page = urllib.parse.urlsplit(flow.headers["Location"])
        slug = page.path.split("/")[3]
        executor = requests.get(f"{api.url}/flows/executor/{slug}/", params={"query": page.query},
                                timeout=20, verify=api.verify)
        assert executor.status_code == 200 and executor.json()["component"] == "ak-stage-identification"
    finally:
        api("PATCH", f"/outposts/instances/{outpost['pk']}/", {"providers": before})
        api("DELETE", f"/core/applications/{app['slug']}/")
        api("DELETE", f"/providers/proxy/{prov['pk']}/")


def test_set_icon_url_up_to_2025_10(api, name):
    """
    ApplicationViewSet.set_icon_url (authentik/core/api/applications.py; lib/utils/file.py
    set_file_url: ``meta_icon.name = url``, 200 ``{}``); GET shows it through
    ``get_meta_icon`` (core/models.py: a name starting with http is returned as it is).
    From 2026.1 meta_icon is a plain writable field and the action is gone.
    """
    app = api("POST", "/core/applications/", {"name": name, "slug": name}).json()
    try:
        version = api("GET", "/admin/version/").json()["version_current"]
        resp = api("POST", f"/core/applications/{name}/set_icon_url/", {"url": "https://icons.example.com/a.svg"})
        if tuple(int(p) for p in version.split(".")[:2]) >= (2026, 1):
            assert resp.status_code == 404
            return
        assert resp.status_code == 200
        assert api("GET", f"/core/applications/{name}/").json()["meta_icon"] == "https://icons.example.com/a.svg"
    finally:
        api("DELETE", f"/core/applications/{app['slug']}/")


# -- endpoints hecate calls that the tests above did not reach (tests/contract/README.md) ---------
def test_membership_and_password_actions(api, name):
    """
    GroupViewSet.add_user/remove_user (authentik/core/api/groups.py): the user is looked up by
    the body's ``pk`` (404 when there is none), then added/removed (204; removing a non-member is
    no error); UserViewSet.set_password (authentik/core/api/users.py): UserPasswordSetSerializer
    wants ``password`` (a DRF 400), then 204. hecate_authentik_client.AuthentikClient.add_user,
    remove_user, set_password.
    """
    user = api("POST", "/core/users/", {"username": name, "name": "Contract"}).json()
    group = api("POST", "/core/groups/", {"name": name}).json()
    try:
        path = f"/core/groups/{group['pk']}/"
        assert api("POST", path + "add_user/", {"pk": user["pk"]}).status_code == 204
        assert api("GET", path).json()["users"] == [user["pk"]]
        # how hecate finds users: by username, and a group's members by groups_by_pk (UserFilter)
        for params in ({"username": name}, {"groups_by_pk": group["pk"]}):
            found = api("GET", "/core/users/", include_groups="false", **params).json()["results"]
            assert [u["pk"] for u in found] == [user["pk"]], params
        assert api("POST", path + "remove_user/", {"pk": user["pk"]}).status_code == 204
        assert api("GET", path).json()["users"] == []
        assert api("POST", path + "remove_user/", {"pk": user["pk"]}).status_code == 204
        assert api("POST", path + "remove_user/", {"pk": 2_000_000_000}).status_code == 404
        resp = api("POST", f"/core/users/{user['pk']}/set_password/", {})
        assert resp.status_code == 400 and resp.json() == {"password": ["This field is required."]}
        resp = api("POST", f"/core/users/{user['pk']}/set_password/", {"password": uuid.uuid4().hex})
        assert resp.status_code == 204
    finally:
        api("DELETE", f"/core/groups/{group['pk']}/")
        api("DELETE", f"/core/users/{user['pk']}/")


def test_flow_stage_bindings_by_target_and_deleted_with_their_stage(api, name):
    """
    FlowStageBindingViewSet (authentik/flows/api/bindings.py): filterset_fields "__all__", so
    ``?target=<flow pk>`` lists a flow's bindings; FlowStageBinding.stage is a CASCADE foreign key
    (authentik/flows/models.py), so deleting a stage removes its binding - what the
    authentik_enrollment state relies on when it drops the captcha stage.
    """
    resp = api("POST", "/flows/instances/", {"name": name, "slug": name, "title": name, "designation": "enrollment"})
    assert resp.status_code == 201, resp.text
    flow = resp.json()
    stage = api("POST", "/stages/user_login/", {"name": name}).json()
    try:
        resp = api("PATCH", f"/flows/instances/{name}/", {"title": "Renamed"})
        assert resp.status_code == 200 and resp.json()["title"] == "Renamed"
        binding = {"target": flow["pk"], "stage": stage["pk"], "order": 10}
        resp = api("POST", "/flows/bindings/", binding)
        assert resp.status_code == 201, resp.text
        listed = api("GET", "/flows/bindings/", target=flow["pk"]).json()["results"]
        assert [(b["stage"], b["order"]) for b in listed] == [(stage["pk"], 10)]
        assert api("DELETE", f"/flows/bindings/{listed[0]['pk']}/").status_code == 204
        assert api("GET", "/flows/bindings/", target=flow["pk"]).json()["results"] == []
        assert api("POST", "/flows/bindings/", binding).status_code == 201
        assert api("DELETE", f"/stages/user_login/{stage['pk']}/").status_code == 204
        assert api("GET", "/flows/bindings/", target=flow["pk"]).json()["results"] == []
    finally:
        api("DELETE", f"/stages/user_login/{stage['pk']}/")
        assert api("DELETE", f"/flows/instances/{name}/").status_code == 204


def test_saml_provider_signing_key_needs_a_sign_flag(api, name):
    """
    authentik/crypto/apps.py makes "authentik Self-signed Certificate" at startup;
    CertificateKeyPairViewSet.view_certificate (authentik/crypto/api.py) answers {"data": <PEM>}.
    SAMLProviderSerializer.validate (authentik/providers/saml/api/providers.py) reads
    signing_kp and the sign flags from the SENT fields: a key pair without sign_assertion or
    sign_response is refused, on a PATCH too (authentik_saml_provider sends the flags with it).
    The managed SAML mappings come from blueprints/system/providers-saml.yaml.
    """
    (kp,) = api("GET", "/crypto/certificatekeypairs/", name="authentik Self-signed Certificate").json()["results"]
    pem = api("GET", f"/crypto/certificatekeypairs/{kp['pk']}/view_certificate/")
    assert pem.status_code == 200 and pem.json()["data"].startswith("-----BEGIN CERTIFICATE-----")
    mappings = api("GET", "/propertymappings/provider/saml/", page_size=100).json()["results"]
    assert any(str(m.get("managed") or "").startswith("goauthentik.io/providers/saml/") for m in mappings)
    body = {"name": name, "acs_url": f"https://{name}.example.com/saml/acs",
            "authorization_flow": flow_pk(api, "default-provider-authorization-implicit-consent"),
            "invalidation_flow": flow_pk(api, "default-provider-invalidation-flow")}
    refused = {"non_field_errors": ["With a signing keypair selected, at least one of 'Sign assertion' and "
                                    "'Sign Response' must be selected."]}
    resp = api("POST", "/providers/saml/", dict(body, signing_kp=kp["pk"]))
    assert resp.status_code == 400 and resp.json() == refused
    resp = api("POST", "/providers/saml/", dict(body, signing_kp=kp["pk"], sign_assertion=True))
    assert resp.status_code == 201, resp.text
    prov = resp.json()
    try:
        assert [p["pk"] for p in api("GET", "/providers/saml/", name=name).json()["results"]] == [prov["pk"]]
        path = f"/providers/saml/{prov['pk']}/"
        resp = api("PATCH", path, {"signing_kp": kp["pk"], "acs_url": f"https://{name}.example.com/acs2"})
        assert resp.status_code == 400 and resp.json() == refused
        resp = api("PATCH", path, {"signing_kp": kp["pk"], "sign_assertion": True, "sign_response": False,
                                   "acs_url": f"https://{name}.example.com/acs2"})
        assert resp.status_code == 200 and resp.json()["acs_url"] == f"https://{name}.example.com/acs2"
    finally:
        assert api("DELETE", f"/providers/saml/{prov['pk']}/").status_code == 204


def test_enrollment_objects_found_by_name(api, name):
    """
    The objects authentik_enrollment keeps per flow, each found by ``?name=`` and then created,
    PATCHed or deleted: PromptViewSet and PromptStageViewSet (authentik/stages/prompt/api.py;
    a prompt stage's ``fields`` are prompt pks), UserWriteStageViewSet
    (authentik/stages/user_write/api.py; ``create_users_group`` a group pk) and
    UserLoginStageViewSet (authentik/stages/user_login/api.py), CaptchaStageViewSet
    (authentik/stages/captcha/api.py: ``private_key`` is write-only, so hecate sets it on
    create and cannot compare it later).
    """
    group = api("POST", "/core/groups/", {"name": name}).json()
    made = []
    try:
        resp = api("POST", "/stages/prompt/prompts/", {"name": name, "field_key": "username", "label": "Username",
                                                       "type": "username", "required": True, "order": 0})
        assert resp.status_code == 201, resp.text
        prompt = resp.json()
        made.append(f"/stages/prompt/prompts/{prompt['pk']}/")
        assert [p["pk"] for p in api("GET", "/stages/prompt/prompts/", name=name).json()["results"]] == [prompt["pk"]]
        # stage names are unique across every kind of stage (Stage.name): one suffix per stage
        for path, body in (("/stages/prompt/stages/", {"name": f"{name}-prompt", "fields": [prompt["pk"]]}),
                           ("/stages/user_write/", {"name": f"{name}-user-write", "user_type": "internal",
                                                    "user_creation_mode": "always_create"}),
                           ("/stages/user_login/", {"name": f"{name}-user-login"}),
                           ("/stages/captcha/", {"name": f"{name}-captcha", "public_key": "contract-public",
                                                 "private_key": "contract-private"})):
            resp = api("POST", path, body)
            assert resp.status_code == 201, (path, resp.text)
            assert "private_key" not in resp.json()
            made.append(f"{path}{resp.json()['pk']}/")
            found = api("GET", path, name=body["name"]).json()["results"]
            assert [s["pk"] for s in found] == [resp.json()["pk"]], path
        assert api("GET", made[1]).json()["fields"] == [prompt["pk"]]
        resp = api("PATCH", made[1], {"fields": [prompt["pk"]]})
        assert resp.status_code == 200 and resp.json()["fields"] == [prompt["pk"]]
        resp = api("PATCH", made[4], {"public_key": "contract-public-2"})
        assert resp.status_code == 200 and resp.json()["public_key"] == "contract-public-2"
        resp = api("PATCH", made[0], {"label": "User name", "placeholder": "User name"})
        assert resp.status_code == 200 and resp.json()["label"] == "User name"
        resp = api("PATCH", made[2], {"create_users_group": group["pk"]})
        assert resp.status_code == 200 and resp.json()["create_users_group"] == group["pk"]
        for path in reversed(made):
            assert api("DELETE", path).status_code == 204, path
            assert api("GET", path).status_code == 404, path
    finally:
        for path in made:
            api("DELETE", path)
        api("DELETE", f"/core/groups/{group['pk']}/")


def test_scope_mapping_lifecycle(api, name):
    """
    authentik_scope_mapping: ScopeMappingViewSet (authentik/providers/oauth2/api/scopes.py);
    PropertyMappingSerializer.validate_expression (authentik/core/api/property_mappings.py)
    compiles the expression on every write that sends it. A mapping made through the API has
    no ``managed`` value.
    """
    resp = api("POST", "/propertymappings/provider/scope/",
               {"name": name, "scope_name": name, "expression": "return {}"})
    assert resp.status_code == 201, resp.text
    mapping = resp.json()
    path = f"/propertymappings/provider/scope/{mapping['pk']}/"
    try:
        assert mapping["managed"] is None and mapping["scope_name"] == name
        resp = api("PATCH", path, {"expression": "return {'hecate': True}", "description": "contract"})
        assert resp.status_code == 200 and resp.json()["expression"] == "return {'hecate': True}"
        assert api("GET", path).json()["description"] == "contract"
    finally:
        assert api("DELETE", path).status_code == 204
    assert api("GET", path).status_code == 404


def test_application_patch_by_slug_links_a_provider(api, name):
    """
    ApplicationViewSet is looked up by slug (authentik/core/api/applications.py); a PATCH sets
    ``provider``, which the provider shows as ``assigned_application_slug``
    (ProviderSerializer, authentik/core/api/providers.py). The authentik_application state and
    the route-auth code PATCH applications this way.
    """
    prov = api("POST", "/providers/proxy/", proxy_provider(api, name)).json()
    resp = api("POST", "/core/applications/", {"name": name, "slug": name})
    assert resp.status_code == 201, resp.text
    try:
        resp = api("PATCH", f"/core/applications/{name}/",
                   {"provider": prov["pk"], "meta_launch_url": f"https://{name}.example.com/"})
        assert resp.status_code == 200, resp.text
        assert resp.json()["provider"] == prov["pk"]
        assert resp.json()["meta_launch_url"] == f"https://{name}.example.com/"
        got = api("GET", f"/providers/proxy/{prov['pk']}/").json()
        assert got["assigned_application_slug"] == name
    finally:
        assert api("DELETE", f"/core/applications/{name}/").status_code == 204
        api("DELETE", f"/providers/proxy/{prov['pk']}/")
    assert api("GET", f"/core/applications/{name}/").status_code == 404


def test_outpost_providers_and_config_are_validated_field_by_field(api, name):
    """
    authentik/outposts/api/outposts.py OutpostSerializer: ``providers`` is a
    PrimaryKeyRelatedField, so an unknown pk fails in the field itself and
    ``validate_providers`` (the type check) never runs: DRF's 'Invalid pk' message, not a
    type mismatch. ``validate_config`` loads the dict with dacite ``from_dict(OutpostConfig,
    config)`` (authentik/outposts/models.py OutpostConfig: ``authentik_host: str``,
    ``authentik_host_insecure: bool``, ``kubernetes_replicas: int``), so a value of the
    wrong type is a 400 naming dacite's WrongTypeError; unknown keys pass.
    """
    created = []
    try:
        resp = api("POST", "/outposts/instances/", {"name": name, "type": "proxy", "providers": [2147483600],
                                                    "config": {}})
        if resp.status_code == 201:
            created.append(resp.json()["pk"])
        assert resp.status_code == 400
        assert resp.json() == {"providers": ['Invalid pk "2147483600" - object does not exist.']}
        found = api("GET", "/outposts/instances/", managed__iexact="goauthentik.io/outposts/embedded").json()
        outpost = found["results"][0]
        resp = api("PATCH", f"/outposts/instances/{outpost['pk']}/", {"config": {"authentik_host": 5}})
        assert resp.status_code == 400
        assert resp.json() == {"config": [
            'Failed to validate config: wrong value type for field "authentik_host" - should be "str" '
            'instead of value "5" of type "int"']}
        resp = api("PATCH", f"/outposts/instances/{outpost['pk']}/", {"config": {"authentik_host_insecure": "no"}})
        assert resp.status_code == 400
        assert resp.json() == {"config": [
            'Failed to validate config: wrong value type for field "authentik_host_insecure" - should be "bool" '
            'instead of value "no" of type "str"']}
        after = api("GET", f"/outposts/instances/{outpost['pk']}/").json()
        assert after["config"] == outpost["config"]
    finally:
        for pk in created:
            api("DELETE", f"/outposts/instances/{pk}/")


def test_backchannel_providers_are_a_reverse_foreign_key_deleted_with_the_application(api, name):
    """
    authentik/core/models.py Provider.backchannel_application: a ForeignKey to Application,
    related_name "backchannel_providers", on_delete CASCADE. ApplicationSerializer lists
    ``backchannel_providers`` and ``backchannel_providers_obj`` (ProviderSerializer,
    source "backchannel_providers"; authentik/core/api/applications.py); the provider shows
    the application in ``assigned_backchannel_application_slug`` (core/api/providers.py).
    One application per provider: naming it on a second application moves it there.
    Deleting the application deletes its backchannel providers.
    """
    prov = api("POST", "/providers/proxy/", proxy_provider(api, name)).json()
    apps = []
    try:
        for suffix in ("a", "b"):
            resp = api("POST", "/core/applications/", {"name": name, "slug": f"{name}-{suffix}",
                                                       "backchannel_providers": [prov["pk"]]})
            assert resp.status_code == 201, resp.text
            apps.append(resp.json()["slug"])
            assert resp.json()["backchannel_providers"] == [prov["pk"]]
            assert [p["pk"] for p in resp.json()["backchannel_providers_obj"]] == [prov["pk"]]
        first = api("GET", f"/core/applications/{apps[0]}/").json()
        assert first["backchannel_providers"] == [] and first["backchannel_providers_obj"] == []
        got = api("GET", f"/providers/proxy/{prov['pk']}/").json()
        assert got["assigned_backchannel_application_slug"] == apps[1]
        assert got["assigned_backchannel_application_name"] == name
        assert got["assigned_application_slug"] is None
        assert api("DELETE", f"/core/applications/{apps[1]}/").status_code == 204
        apps.pop()
        assert api("GET", f"/providers/proxy/{prov['pk']}/").status_code == 404
    finally:
        for slug in apps:
            api("DELETE", f"/core/applications/{slug}/")
        api("DELETE", f"/providers/proxy/{prov['pk']}/")


def test_mapping_expressions_are_compiled_on_write(api, name):
    """
    PropertyMappingSerializer.validate_expression (authentik/core/api/property_mappings.py)
    compiles the expression wrapped in ``def handler(...)`` (authentik/lib/expression/
    evaluator.py BaseEvaluator.compile / validate): a syntax error is a 400 on
    ``expression``, "Expression Syntax Error: <Python's SyntaxError>" (its wording is the
    server's Python's, so only the prefix is asserted). A bare ``return`` is valid: it is
    the body of a function. A PATCH is checked the same way and changes nothing.
    """
    path = "/propertymappings/provider/scope/"
    resp = api("POST", path, {"name": name, "scope_name": name, "expression": "return {'a': ("})
    if resp.status_code == 201:
        api("DELETE", f"{path}{resp.json()['pk']}/")
    assert resp.status_code == 400 and list(resp.json()) == ["expression"]
    [message] = resp.json()["expression"]
    assert message.startswith("Expression Syntax Error: "), message
    resp = api("POST", path, {"name": name, "scope_name": name, "expression": "return {}"})
    assert resp.status_code == 201, resp.text
    item = f"{path}{resp.json()['pk']}/"
    try:
        resp = api("PATCH", item, {"expression": "if True\n    return {}"})
        assert resp.status_code == 400
        assert resp.json()["expression"][0].startswith("Expression Syntax Error: ")
        assert api("GET", item).json()["expression"] == "return {}"
    finally:
        api("DELETE", item)


def test_delete_cascades_hecate_relies_on(api, name):
    """
    authentik/policies/models.py PolicyBinding.group: ForeignKey on_delete CASCADE (deleting
    a group deletes the bindings that name it, the application stays);
    authentik/core/models.py Application.provider: OneToOneField on_delete SET_DEFAULT,
    default None (deleting the provider leaves the application without one).
    """
    group = api("POST", "/core/groups/", {"name": name}).json()
    prov = api("POST", "/providers/proxy/", proxy_provider(api, name)).json()
    app = api("POST", "/core/applications/", {"name": name, "slug": name, "provider": prov["pk"]}).json()
    try:
        resp = api("POST", "/policies/bindings/", {"target": app["pk"], "order": 0, "group": group["pk"]})
        assert resp.status_code == 201, resp.text
        assert api("DELETE", f"/core/groups/{group['pk']}/").status_code == 204
        assert api("GET", "/policies/bindings/", target=app["pk"]).json()["results"] == []
        assert api("DELETE", f"/providers/proxy/{prov['pk']}/").status_code == 204
        got = api("GET", f"/core/applications/{name}/").json()
        assert got["provider"] is None and got["provider_obj"] is None
    finally:
        api("DELETE", f"/core/applications/{name}/")
        api("DELETE", f"/providers/proxy/{prov['pk']}/")
        api("DELETE", f"/core/groups/{group['pk']}/")


def test_application_search_covers_the_meta_fields(api, name):
    """
    ApplicationViewSet.search_fields (authentik/core/api/applications.py): name, slug,
    meta_launch_url, meta_description, meta_publisher, group.
    """
    resp = api("POST", "/core/applications/", {"name": "contract search", "slug": name,
                                               "meta_publisher": f"{name}-publisher", "group": f"{name}-group"})
    assert resp.status_code == 201, resp.text
    try:
        for term in (f"{name}-publisher", f"{name}-group", f"contract {name}-group"):
            found = api("GET", "/core/applications/", superuser_full_list="true", search=term).json()
            assert [a["slug"] for a in found["results"]] == [name], term
    finally:
        api("DELETE", f"/core/applications/{name}/")
