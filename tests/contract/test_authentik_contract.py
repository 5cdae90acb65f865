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
