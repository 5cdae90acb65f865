"""
The Authentik simulator itself: schema validation with DRF's error shapes, the
documented status codes and bodies, pagination per release, and responses that match
the vendor's response schemas. In-process (werkzeug test client): same code as the
served simulator, no ports.
"""

import importlib.util
import json
import os
import uuid

import pytest
from werkzeug.test import Client

from lab.sim import authentik as aksim

TOKEN = "sim-unit-token"
RELEASES = aksim.RELEASES
VENDOR = "/work/shared/vendor/authentik"


def make(release="2025.10", **options):
    sim = aksim.AuthentikSim(dict({"version": release, "token": TOKEN}, **options))
    return sim, Client(sim)


def auth(token=TOKEN):
    return {"Authorization": f"Bearer {token}"}


def api(client, method, path, body=None, token=TOKEN, **kw):
    headers = auth(token) if token else {}
    resp = client.open(f"/api/v3{path}", method=method, headers=headers,
                       json=body if body is not None else None, **kw)
    return resp.status_code, (resp.json if resp.data else None)


def flow_pk(sim, slug):
    return next(f["pk"] for f in sim.db["flow"].values() if f["slug"] == slug)


def provider_body(sim, name="p1", **extra):
    body = {
        "name": name,
        "authorization_flow": flow_pk(sim, "default-provider-authorization-implicit-consent"),
        "invalidation_flow": flow_pk(sim, "default-provider-invalidation-flow"),
        "redirect_uris": [{"matching_mode": "strict", "url": "https://app.example.com/cb"}],
    }
    body.update(extra)
    return body


@pytest.mark.parametrize("release", RELEASES)
def test_authentication_errors_are_403_with_drf_detail(release):
    sim, client = make(release, tokens={"weak": {"permissions": "none"}, "ro": {"permissions": "read"}})
    assert api(client, "GET", "/core/groups/", token="wrong") == (403, {"detail": "Token invalid/expired"})
    assert api(client, "GET", "/core/groups/", token=None) == (
        403, {"detail": "Authentication credentials were not provided."})
    resp = client.get("/api/v3/core/groups/", headers={"Authorization": "Basic abc"})
    # validate_auth (authentik/api/authentication.py) stopped failing loudly in 2025.12
    detail = ("Unsupported authentication type" if release != "2026.5"
              else "Authentication credentials were not provided.")
    assert resp.status_code == 403 and resp.json == {"detail": detail}
    denied = (403, {"detail": "You do not have permission to perform this action."})
    assert api(client, "GET", "/core/groups/", token="weak") == denied
    assert api(client, "GET", "/core/groups/", token="ro")[0] == 200
    assert api(client, "POST", "/core/groups/", {"name": "x"}, token="ro") == denied
    # the public config endpoint answers without a token, but a bad one is still refused
    assert api(client, "GET", "/root/config/", token=None)[0] == 200
    assert api(client, "GET", "/root/config/", token="wrong")[0] == 403


@pytest.mark.parametrize("release", RELEASES)
def test_required_fields_types_enums_and_nesting(release):
    sim, client = make(release)
    status, body = api(client, "POST", "/providers/oauth2/", {"name": "p"})
    assert status == 400
    assert body == {
        "authorization_flow": ["This field is required."],
        "invalidation_flow": ["This field is required."],
        "redirect_uris": ["This field is required."],
    }
    status, body = api(client, "POST", "/providers/oauth2/", provider_body(sim, client_type="secret"))
    assert (status, body) == (400, {"client_type": ['"secret" is not a valid choice.']})
    status, body = api(client, "POST", "/providers/oauth2/", provider_body(
        sim, redirect_uris=[{"matching_mode": "strict", "url": "https://a/cb"}, {"url": "https://b/cb"}]))
    assert (status, body) == (400, {"redirect_uris": [{}, {"matching_mode": ["This field is required."]}]})
    status, body = api(client, "POST", "/providers/oauth2/", provider_body(
        sim, redirect_uris=[{"matching_mode": "regex", "url": "(unclosed"}]))
    # OAuth2ProviderSerializer.validate_redirect_uris: a field error naming the pattern
    assert (status, body) == (400, {"redirect_uris": ["Invalid Regex Pattern: (unclosed"]})
    status, body = api(client, "POST", "/providers/oauth2/", provider_body(sim, authorization_flow="not-a-uuid"))
    # a relation field: Django's UUIDField.to_python message, passed through by DRF
    assert (status, body) == (400, {"authorization_flow": ["“not-a-uuid” is not a valid UUID."]})
    missing = str(uuid.uuid4())
    status, body = api(client, "POST", "/providers/oauth2/", provider_body(sim, invalidation_flow=missing))
    assert (status, body) == (400, {"invalidation_flow": [f'Invalid pk "{missing}" - object does not exist.']})
    status, body = api(client, "POST", "/core/groups/", {"name": "", "attributes": []})
    assert status == 400
    assert body == {"name": ["This field may not be blank."],
                    "attributes": ['Expected a dictionary of items but got type "list".']}
    status, body = api(client, "POST", "/policies/bindings/", {"target": missing, "order": "first"})
    assert status == 400 and body["order"] == ["A valid integer is required."]
    status, body = api(client, "POST", "/core/applications/", {"name": "A", "slug": "not a slug"})
    assert (status, body) == (
        400,
        {"slug": ["Enter a valid “slug” consisting of letters, numbers, underscores or hyphens."]},
    )
    status, body = api(client, "POST", "/core/groups/", ["not", "a", "dict"])
    assert (status, body) == (400, {"non_field_errors": ["Invalid data. Expected a dictionary, but got list."]})


@pytest.mark.parametrize("release", RELEASES)
def test_policy_binding_needs_exactly_one_of_policy_group_user(release):
    sim, client = make(release)
    _, group = api(client, "POST", "/core/groups/", {"name": "g1"})
    _, app = api(client, "POST", "/core/applications/", {"name": "App", "slug": "app"})
    both = {"target": app["pk"], "order": 0, "group": group["pk"], "user": 1}
    # the 2024.12+ wording: PolicyBindingModel.supported_policy_binding_targets() order
    assert api(client, "POST", "/policies/bindings/", both) == (
        400, {"non_field_errors": ["Only one of 'policy', 'user', 'group' can be set."]})
    assert api(client, "POST", "/policies/bindings/", {"target": app["pk"], "order": 0}) == (
        400, {"non_field_errors": ["One of 'policy', 'user', 'group' must be set."]})
    status, binding = api(client, "POST", "/policies/bindings/",
                          {"target": app["pk"], "order": 0, "group": group["pk"]})
    assert status == 201 and binding["group"] == group["pk"] and binding["group_obj"]["name"] == "g1"
    # deleting the application takes its bindings with it (FK cascade)
    assert api(client, "DELETE", "/core/applications/app/")[0] == 204
    assert api(client, "GET", f"/policies/bindings/{binding['pk']}/")[0] == 404


@pytest.mark.parametrize("release", RELEASES)
def test_not_found_bodies_and_methods(release):
    sim, client = make(release)
    assert api(client, "GET", "/core/applications/nope/") == (
        404, {"detail": "No Application matches the given query."})
    assert api(client, "GET", f"/core/groups/{uuid.uuid4()}/") == (
        404, {"detail": "No Group matches the given query."})
    assert api(client, "GET", "/flows/instances/nope/") == (404, {"detail": "No Flow matches the given query."})
    assert api(client, "GET", "/core/groups/?page=9") == (404, {"detail": "Invalid page."})
    assert api(client, "PUT", "/core/groups/") == (405, {"detail": 'Method "PUT" not allowed.'})
    _, group = api(client, "POST", "/core/groups/", {"name": "g"})
    # GroupViewSet.add_user (authentik/core/api/groups.py): a bare ``raise Http404``
    assert api(client, "POST", f"/core/groups/{group['pk']}/add_user/", {"pk": 999}) == (
        404, {"detail": "Not found."})
    # DRF get_object_or_404 (rest_framework/generics.py): a malformed key is a bare Http404
    assert api(client, "GET", "/core/groups/not-a-uuid/") == (404, {"detail": "Not found."})
    assert api(client, "GET", "/core/users/abc/") == (404, {"detail": "Not found."})
    assert api(client, "GET", "/core/users/999999/") == (404, {"detail": "No User matches the given query."})


@pytest.mark.parametrize("release,default,cap", [("2025.6", 100, None), ("2025.10", 100, None), ("2026.5", 20, 100)])
def test_pagination_page_numbers_and_page_size_per_release(release, default, cap):
    sim, client = make(release)
    for idx in range(249):
        assert api(client, "POST", "/core/groups/", {"name": f"grp-{idx:03d}"})[0] == 201
    total = 250  # plus 'authentik Admins'
    status, body = api(client, "GET", "/core/groups/")
    assert status == 200
    page = body["pagination"]
    assert len(body["results"]) == default
    assert page["count"] == total and page["current"] == 1 and page["previous"] == 0
    assert page["next"] == 2 and page["total_pages"] == -(-total // default)
    assert page["start_index"] == 1 and page["end_index"] == default
    status, body = api(client, "GET", "/core/groups/?page_size=500")
    assert len(body["results"]) == (cap or total)
    if cap is None:
        assert body["pagination"]["next"] == 0  # no cap before 2025.12: one page
    last = body["pagination"]["total_pages"]
    status, body = api(client, "GET", f"/core/groups/?page_size=500&page={last}")
    assert body["pagination"]["next"] == 0 and body["pagination"]["previous"] == last - 1
    assert ("autocomplete" in body) is (release != "2025.6")  # PaginatedGroupList gained it in 2025.10


@pytest.mark.parametrize("release", RELEASES)
def test_oauth2_provider_generates_credentials_and_returns_them(release):
    sim, client = make(release)
    status, prov = api(client, "POST", "/providers/oauth2/", provider_body(sim))
    assert status == 201
    assert len(prov["client_id"]) == 40 and len(prov["client_secret"]) == 128
    assert prov["client_type"] == "confidential" and prov["access_token_validity"] == "hours=1"
    assert prov["redirect_uris"][0]["matching_mode"] == "strict"
    _, again = api(client, "GET", f"/providers/oauth2/{prov['pk']}/")
    assert again["client_secret"] == prov["client_secret"]
    # provider names are unique (Provider.name unique=True)
    status, body = api(client, "POST", "/providers/oauth2/", provider_body(sim))
    assert status == 400 and "name" in body
    # 2025.10 added logout_uri; 2025.6 does not know it (ignored, and logged)
    status, _ = api(client, "PATCH", f"/providers/oauth2/{prov['pk']}/", {"logout_uri": "https://a/logout"})
    assert status == 200
    assert ("unknown_fields" in sim.log[-1]) is (release == "2025.6")


def test_groups_parent_before_2025_12_parents_after():
    old, old_client = make("2025.10")
    new, new_client = make("2026.5")
    _, parent = api(old_client, "POST", "/core/groups/", {"name": "parent"})
    status, child = api(old_client, "POST", "/core/groups/", {"name": "child", "parent": parent["pk"]})
    assert status == 201 and child["parent"] == parent["pk"] and child["parent_name"] == "parent"
    # up to 2025.10 GroupSerializer's own UniqueValidator on name: global, whatever the parent
    for body in ({"name": "child", "parent": parent["pk"]}, {"name": "child"}, {"name": "parent", "parent": None}):
        assert api(old_client, "POST", "/core/groups/", body) == (400, {"name": ["This field must be unique."]})
    # GroupSerializer.validate_parent
    assert api(old_client, "PATCH", f"/core/groups/{parent['pk']}/", {"parent": parent["pk"]}) == (
        400, {"parent": ["Cannot set group as parent of itself."]})
    # 2025.10 ignores `parents` (unknown); 2026.5 ignores `parent`
    api(old_client, "POST", "/core/groups/", {"name": "x", "parents": [parent["pk"]]})
    assert old.log[-1]["unknown_fields"] == ["parents"]
    _, parent2 = api(new_client, "POST", "/core/groups/", {"name": "parent"})
    status, child2 = api(new_client, "POST", "/core/groups/", {"name": "child", "parents": [parent2["pk"]]})
    assert status == 201 and child2["parents"] == [parent2["pk"]] and "parent" not in child2
    assert api(new_client, "POST", "/core/groups/", {"name": "child"}) == (
        400, {"name": ["Group with this name already exists."]})


def test_unknown_fields_are_logged_or_rejected_in_strict_mode():
    lenient, client = make("2025.10")
    status, _ = api(client, "POST", "/core/groups/", {"name": "g", "pk": "x", "colour": "red"})
    assert status == 201
    assert lenient.log[-1]["unknown_fields"] == ["colour", "pk"]
    assert lenient.log[-1]["fields"] == ["colour", "name", "pk"]
    api(client, "GET", "/core/groups/?name=g&flavour=x")
    assert lenient.log[-1]["unknown_params"] == ["flavour"]
    strict, sclient = make("2025.10", strict=True)
    status, body = api(sclient, "POST", "/core/groups/", {"name": "g", "colour": "red"})
    assert status == 400 and "colour" in body and "not in the Authentik 2025.10 schema" in body["colour"][0]
    status, body = api(sclient, "PATCH", f"/core/groups/{next(iter(strict.db['group']))}/",
                       {"num_pk": 5, "name": "renamed"})
    assert status == 400 and body["num_pk"][0].startswith("read-only field 'num_pk'")
    status, body = api(sclient, "GET", "/core/groups/?flavour=x")
    assert status == 400 and "flavour" in body
    # nested unknown fields are found too
    status, body = api(sclient, "POST", "/providers/oauth2/", provider_body(
        strict, redirect_uris=[{"matching_mode": "strict", "url": "https://a/cb", "extra": 1}]))
    assert status == 400 and "redirect_uris" in body


@pytest.mark.parametrize("release", RELEASES)
def test_fresh_install_objects(release):
    sim, client = make(release)
    _, flows = api(client, "GET", "/flows/instances/?page_size=100")
    slugs = {f["slug"] for f in flows["results"]}
    assert {"default-authentication-flow", "default-provider-authorization-implicit-consent",
            "default-provider-invalidation-flow", "default-invalidation-flow"} <= slugs
    for scope in ("openid", "email", "profile", "offline_access"):
        managed = f"goauthentik.io/providers/oauth2/scope-{scope}"
        _, body = api(client, "GET", f"/propertymappings/provider/scope/?managed={managed}")
        assert [m["scope_name"] for m in body["results"]] == [scope]
    _, body = api(client, "GET", "/outposts/instances/?managed__iexact=goauthentik.io/outposts/embedded")
    assert body["results"][0]["name"] == "authentik Embedded Outpost"
    _, body = api(client, "GET", "/core/brands/?default=true")
    assert body["results"][0]["domain"] == "authentik-default"
    _, body = api(client, "GET", "/stages/identification/?name=default-authentication-identification")
    assert body["results"][0]["enrollment_flow"] is None
    _, body = api(client, "GET", "/admin/version/")
    assert body["version_current"].startswith(release + ".")


@pytest.mark.parametrize("release", RELEASES)
def test_responses_match_the_vendor_response_schemas(release):
    """Every list item the simulator returns has the keys the release's schema declares."""
    sim, client = make(release)
    _, group = api(client, "POST", "/core/groups/", {"name": "g"})
    _, prov = api(client, "POST", "/providers/oauth2/", provider_body(sim))
    _, app = api(client, "POST", "/core/applications/", {"name": "A", "slug": "a", "provider": prov["pk"]})
    api(client, "POST", "/policies/bindings/", {"target": app["pk"], "order": 0, "group": group["pk"]})
    api(client, "POST", "/providers/proxy/", {
        "name": "px", "external_host": "https://x.example.com", "mode": "forward_single",
        "authorization_flow": flow_pk(sim, "default-provider-authorization-implicit-consent"),
        "invalidation_flow": flow_pk(sim, "default-provider-invalidation-flow")})
    _, saml = api(client, "POST", "/providers/saml/", {
        "name": "saml", "acs_url": "https://sp.example.com/acs", "sign_assertion": True,
        "signing_kp": next(iter(sim.db["certificate"])),
        "authorization_flow": flow_pk(sim, "default-provider-authorization-implicit-consent"),
        "invalidation_flow": flow_pk(sim, "default-provider-invalidation-flow")})
    api(client, "POST", "/core/applications/", {"name": "S", "slug": "s", "provider": saml["pk"]})
    problems = []
    for res in aksim.RESOURCES:
        # the plain application list is policy-filtered: the app bound to g is hidden from
        # akadmin (not in g); superuser_full_list=true is the unfiltered list
        status, body = api(client, "GET", res.path + ("?superuser_full_list=true" if res.kind == "application" else ""))
        assert status == 200, res.path
        assert body["results"] or res.kind in ("stage_captcha", "prompt", "stage_prompt", "stage_user_write"), res.kind
        for obj in body["results"]:
            problems += [f"{res.kind}: {p}" for p in sim.validator.check_response(
                {"$ref": f"#/components/schemas/{res.schema}"}, obj)]
    assert problems == []


@pytest.mark.skipif(not os.path.isdir(VENDOR), reason="vendor schemas not on this machine")
def test_extracted_schemas_equal_the_vendor_files():
    """lab/sim/authentik_schemas/*.json are the vendor schema, cut down but unchanged."""
    import yaml  # pylint: disable=import-outside-toplevel

    from lab.sim.authentik_schemas import extract  # pylint: disable=import-outside-toplevel

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    for release in RELEASES:
        with open(os.path.join(VENDOR, f"schema-{release}.yml"), encoding="utf-8") as fh:
            doc = yaml.load(fh, Loader=loader)  # noqa: S506
        with open(os.path.join(aksim.SCHEMA_DIR, f"{release}.json"), encoding="utf-8") as fh:
            stored = json.load(fh)
        assert stored == json.loads(json.dumps(extract.extract(doc))), release


# -- DRF partial updates: validate(attrs) sees the sent fields only ------------------------------
@pytest.mark.parametrize("release", RELEASES)
def test_patch_validates_the_sent_fields_not_the_stored_object(release):
    """
    rest_framework/mixins.py ``partial_update`` -> serializer(partial=True): unsent fields
    are skipped (fields.py ``validate_empty_values``) and ``validate(attrs)`` gets only
    what was sent (serializers.py ``run_validation``).
    """
    sim, client = make(release)
    stage = next(s for s in sim.db["stage_identification"].values()
                 if s["name"] == "default-authentication-identification")
    enroll = flow_pk(sim, "default-source-enrollment")
    path = f"/stages/identification/{stage['pk']}/"
    # the stored stage has user_fields, but a PATCH of enrollment_flow alone does not send them
    assert api(client, "PATCH", path, {"enrollment_flow": enroll}) == (400, {"non_field_errors": [
        "When no user fields are selected, at least one source must be selected"]})
    assert stage["enrollment_flow"] is None  # nothing written
    status, body = api(client, "PATCH", path, {"enrollment_flow": enroll, "user_fields": stage["user_fields"],
                                              "sources": stage["sources"]})
    assert status == 200 and body["enrollment_flow"] == enroll
    # a field the serializer does not validate together with others: fine alone
    assert api(client, "PATCH", path, {"show_matched_user": False})[0] == 400  # validate() still runs
    assert api(client, "PATCH", path, {"show_matched_user": False, "user_fields": ["email"]})[0] == 200

    # proxy provider: validate() defaults an unsent mode to "proxy"
    status, prov = api(client, "POST", "/providers/proxy/", {
        "name": "px", "external_host": "https://x.example.com", "mode": "forward_single",
        "authorization_flow": flow_pk(sim, "default-provider-authorization-implicit-consent"),
        "invalidation_flow": flow_pk(sim, "default-provider-invalidation-flow")})
    assert status == 201
    assert api(client, "PATCH", f"/providers/proxy/{prov['pk']}/", {"external_host": "https://y.example.com"}) == (
        400, {"internal_host": ["Internal host cannot be empty when forward auth is disabled."]})
    status, body = api(client, "PATCH", f"/providers/proxy/{prov['pk']}/",
                       {"external_host": "https://y.example.com", "mode": "forward_single"})
    assert status == 200 and body["external_host"] == "https://y.example.com"


@pytest.mark.parametrize("release", RELEASES)
def test_policy_binding_patch_without_target_is_a_server_error(release):
    """PolicyBindingSerializer.validate calls attrs.get("target").supported_policy_binding_targets()."""
    sim, client = make(release)
    _, group = api(client, "POST", "/core/groups/", {"name": "g1"})
    _, app = api(client, "POST", "/core/applications/", {"name": "App", "slug": "app"})
    _, binding = api(client, "POST", "/policies/bindings/",
                     {"target": app["pk"], "order": 0, "group": group["pk"], "enabled": False})
    path = f"/policies/bindings/{binding['pk']}/"
    resp = client.open(f"/api/v3{path}", method="PATCH", headers=auth(), json={"enabled": True, "negate": False})
    assert resp.status_code == 500 and resp.mimetype == "text/html"
    assert "supported_policy_binding_targets" in sim.log[-1]["server_error"]
    assert sim.db["policy_binding"][binding["pk"]]["enabled"] is False  # nothing written
    # target alone is not enough: validate() counts policy/user/group among the SENT fields
    assert api(client, "PATCH", path, {"enabled": True, "target": app["pk"]}) == (
        400, {"non_field_errors": ["One of 'policy', 'user', 'group' must be set."]})
    status, body = api(client, "PATCH", path, {"enabled": True, "negate": False,
                                              "target": app["pk"], "group": group["pk"]})
    assert status == 200 and body["enabled"] is True


@pytest.mark.parametrize("release", RELEASES)
def test_unique_together_fills_unsent_fields_from_the_object(release):
    """rest_framework/validators.py UniqueTogetherValidator.filter_queryset on an update."""
    sim, client = make(release)
    authn = flow_pk(sim, "default-authentication-flow")
    bindings = sorted((b for b in sim.db["flow_binding"].values() if b["target"] == authn),
                      key=lambda b: b["order"])
    first, second = bindings[0], bindings[1]
    # moving the second binding to the first one's stage+order clashes through the instance's target
    status, body = api(client, "PATCH", f"/flows/bindings/{second['pk']}/",
                       {"stage": first["stage"], "order": first["order"]})
    assert (status, body) == (400, {"non_field_errors": ["The fields target, stage, order must make a unique set."]})
    # re-sending the unchanged values is no clash
    assert api(client, "PATCH", f"/flows/bindings/{first['pk']}/",
               {"target": first["target"], "order": first["order"]})[0] == 200


@pytest.mark.parametrize("release", RELEASES)
def test_user_path_and_type_validators(release):
    """UserSerializer.validate_path / validate_type / validate (authentik/core/api/users.py)."""
    sim, client = make(release)
    for path, message in (("/users", "No leading or trailing slashes allowed."),
                          ("users/", "No leading or trailing slashes allowed."),
                          ("users//x", "No empty segments in user path allowed.")):
        assert api(client, "POST", "/core/users/", {"username": "u1", "name": "U", "path": path}) == (
            400, {"path": [message]}), path
    assert api(client, "POST", "/core/users/", {"username": "u1", "name": "U", "path": ""}) == (
        400, {"path": ["This field may not be blank."]})
    assert api(client, "POST", "/core/users/", {"username": "u1", "name": "U",
                                                "type": "internal_service_account"}) == (
        400, {"type": ["Setting a user to internal service account is not allowed."]})
    status, user = api(client, "POST", "/core/users/", {"username": "u1", "name": "U", "path": "users/team-a"})
    assert status == 201 and user["path"] == "users/team-a" and user["type"] == "internal"
    # UserSerializer.username has its own UniqueValidator: DRF's default message
    assert api(client, "POST", "/core/users/", {"username": "u1", "name": "again"}) == (
        400, {"username": ["This field must be unique."]})
    assert api(client, "PATCH", f"/core/users/{user['pk']}/", {"path": "x//y"}) == (
        400, {"path": ["No empty segments in user path allowed."]})
    assert api(client, "PATCH", f"/core/users/{user['pk']}/", {"type": "external"})[0] == 200
    # an internal service account (the outposts' own users) is read-only through the API
    sim.db["user"][user["pk"]]["type"] = "internal_service_account"
    assert api(client, "PATCH", f"/core/users/{user['pk']}/", {"type": "internal"}) == (
        400, {"type": ["Can't change internal service account to other user type."]})
    assert api(client, "PATCH", f"/core/users/{user['pk']}/", {"name": "renamed"}) == (
        400, {"non_field_errors": ["Can't modify internal service account users"]})


@pytest.mark.parametrize("release", RELEASES)
def test_brand_domain_unique_and_one_default(release):
    """BrandSerializer: domain UniqueValidator, validate() allows one default brand (authentik/brands/api.py)."""
    sim, client = make(release)
    default = next(b for b in sim.db["brand"].values() if b["default"])
    assert api(client, "POST", "/core/brands/", {"domain": "authentik-default"}) == (
        400, {"domain": ["This field must be unique."]})
    assert api(client, "POST", "/core/brands/", {"domain": "sso.example.com", "default": True}) == (
        400, {"default": ["Only a single brand can be set as default."]})
    status, brand = api(client, "POST", "/core/brands/", {"domain": "sso.example.com"})
    assert status == 201 and "pk" not in brand and brand["brand_uuid"]
    # the default brand may say default=True about itself
    status, body = api(client, "PATCH", f"/core/brands/{default['pk']}/",
                       {"default": True, "branding_title": "SSO"})
    assert status == 200 and body["branding_title"] == "SSO"


# -- issue 18, Authentik audit (helpers/audit-authentik-caddy.md part 1), items 1-9 ------------
MANAGED_PROXY_SCOPES = {"goauthentik.io/providers/oauth2/scope-openid", "goauthentik.io/providers/oauth2/scope-profile",
                        "goauthentik.io/providers/oauth2/scope-email",
                        "goauthentik.io/providers/oauth2/scope-entitlements",
                        "goauthentik.io/providers/proxy/scope-proxy"}


def proxy_body(sim, name="px", **extra):
    return dict({"name": name, "external_host": "https://x.example.com", "mode": "forward_single",
                 "authorization_flow": flow_pk(sim, "default-provider-authorization-implicit-consent"),
                 "invalidation_flow": flow_pk(sim, "default-provider-invalidation-flow")}, **extra)


@pytest.mark.parametrize("release", RELEASES)
def test_proxy_provider_gets_set_oauth_defaults_on_every_write(release):
    """
    Item 1. ProxyProviderSerializer.create/update call set_oauth_defaults
    (authentik/providers/proxy/api.py, models.py): the managed mappings are ADDED and the
    redirect URIs are the two outpost callbacks; a fresh install has seven managed scope
    mappings (blueprints/system/providers-oauth2.yaml, providers-proxy.yaml).
    """
    sim, client = make(release)
    _, body = api(client, "GET", "/propertymappings/provider/scope/?managed__isnull=false")
    assert {m["scope_name"] for m in body["results"]} == {
        "openid", "email", "profile", "entitlements", "offline_access", "goauthentik.io/api", "ak_proxy"}
    by_managed = {m["managed"]: m["pk"] for m in body["results"]}
    _, mine = api(client, "POST", "/propertymappings/provider/scope/",
                  {"name": "mine", "scope_name": "mine", "expression": "return {}"})
    status, prov = api(client, "POST", "/providers/proxy/", proxy_body(sim, property_mappings=[mine["pk"]]))
    assert status == 201
    forced = {by_managed[m] for m in MANAGED_PROXY_SCOPES}
    assert set(prov["property_mappings"]) == forced | {mine["pk"]}
    assert [u["url"] for u in prov["redirect_uris"]] == [
        "https://x.example.com/outpost.goauthentik.io/callback?X-authentik-auth-callback=true",
        "https://x.example.com?X-authentik-auth-callback=true"]
    assert {u["matching_mode"] for u in prov["redirect_uris"]} == {"strict"}
    # a PATCH that sets [] keeps the managed ones (.add after .set); the URIs follow the host
    status, prov = api(client, "PATCH", f"/providers/proxy/{prov['pk']}/", {
        "property_mappings": [], "mode": "forward_single", "external_host": "https://y.example.com/app"})
    assert status == 200 and set(prov["property_mappings"]) == forced
    assert prov["redirect_uris"][0]["url"] == \
        "https://y.example.com/outpost.goauthentik.io/callback?X-authentik-auth-callback=true"  # urljoin
    # redirect_uris is read-only on a proxy provider: sent ones are ignored (and logged)
    api(client, "PATCH", f"/providers/proxy/{prov['pk']}/", {"mode": "forward_single", "redirect_uris": []})
    assert sim.log[-1]["unknown_fields"] == ["redirect_uris"]
    assert len(api(client, "GET", f"/providers/proxy/{prov['pk']}/")[1]["redirect_uris"]) == 2


@pytest.mark.parametrize("release", RELEASES)
def test_put_without_list_fields_empties_them(release):
    """
    Item 2. DRF fills a field's ``default=list`` on every non-partial write
    (rest_framework/fields.py Field.validate_empty_values): GroupSerializer ``users``
    (+ ``children`` on 2025.10, ``parents`` from 2025.12), UserSerializer ``groups``
    (+ ``roles`` from 2025.12) (authentik/core/api/groups.py, users.py).
    """
    sim, client = make(release)
    _, parent = api(client, "POST", "/core/groups/", {"name": "parent"})
    link = {"parents": [parent["pk"]]} if release == "2026.5" else {"parent": parent["pk"]}
    _, group = api(client, "POST", "/core/groups/", dict({"name": "g", "users": [1]}, **link))
    _, child = api(client, "POST", "/core/groups/",
                   {"name": "child",
                    **({"parents": [group["pk"]]} if release == "2026.5" else {"parent": group["pk"]})})
    assert api(client, "GET", f"/core/groups/{group['pk']}/")[1]["users"] == [1]
    # a PATCH leaves the lists alone
    status, body = api(client, "PATCH", f"/core/groups/{group['pk']}/", {"attributes": {"a": 1}})
    assert status == 200 and body["users"] == [1]
    # a PUT without them empties them
    status, body = api(client, "PUT", f"/core/groups/{group['pk']}/", {"name": "g", **link})
    assert status == 200 and body["users"] == [] and body["users_obj"] == []
    child_now = api(client, "GET", f"/core/groups/{child['pk']}/")[1]
    if release == "2025.10":  # children (a writable reverse FK) defaulted to []: the child is cut loose
        assert child_now["parent"] is None and body["children"] == []
    elif release == "2025.6":  # no children field: the child stays
        assert child_now["parent"] == group["pk"]
    else:  # 2026.5: children is read-only; parents were sent, so they stay
        assert body["parents"] == [parent["pk"]] and child_now["parents"] == [group["pk"]]
        status, body = api(client, "PUT", f"/core/groups/{group['pk']}/", {"name": "g"})
        assert body["parents"] == []
    # 2025.10: a written children list re-parents the listed groups
    if release == "2025.10":
        status, body = api(client, "PATCH", f"/core/groups/{group['pk']}/", {"children": [child["pk"]]})
        assert body["children"] == [child["pk"]]
        assert api(client, "GET", f"/core/groups/{child['pk']}/")[1]["parent"] == group["pk"]
    # users: a PUT without groups takes the user out of every group
    _, user = api(client, "POST", "/core/users/", {"username": "u", "name": "U", "groups": [group["pk"]]})
    assert user["groups"] == [group["pk"]]
    status, body = api(client, "PUT", f"/core/users/{user['pk']}/", {"username": "u", "name": "U2"})
    assert status == 200 and body["groups"] == [] and body["name"] == "U2"
    assert 1 not in api(client, "GET", f"/core/groups/{group['pk']}/")[1]["users"]


def test_application_list_is_policy_filtered_and_cached_per_user_and_page():
    """
    Item 3. ApplicationViewSet.list (authentik/core/api/applications.py): without
    superuser_full_list=true the page is cut to what the token's user may open and
    cached for 24 h under (user, page) - whatever the filters.
    """
    sim, client = make("2025.10", tokens={"henry-token": {"user": "henry"}})
    _, group = api(client, "POST", "/core/groups/", {"name": "bionicgpt-users"})
    _, henry = api(client, "POST", "/core/users/", {"username": "henry", "name": "Henry"})
    for slug in ("a", "b", "c"):
        api(client, "POST", "/core/applications/", {"name": slug.upper(), "slug": slug})
    api(client, "POST", "/policies/bindings/", {"target": api(client, "GET", "/core/applications/c/")[1]["pk"],
                                                "order": 0, "group": group["pk"]})
    # the cache key has no filters: ?slug=b answers with page 1 of the first listing
    first = api(client, "GET", "/core/applications/?slug=a")[1]
    assert [a["slug"] for a in first["results"]] == ["a"]
    second = api(client, "GET", "/core/applications/?slug=b")[1]
    assert [a["slug"] for a in second["results"]] == ["a"] and second["pagination"]["count"] == 1
    # superuser_full_list=true from a superuser is the plain, filtered, uncached list
    full = api(client, "GET", "/core/applications/?slug=b&superuser_full_list=true")[1]
    assert [a["slug"] for a in full["results"]] == ["b"]
    # a search is not cached; c is bound to a group akadmin is not in: hidden, though counted
    found = api(client, "GET", "/core/applications/?search=c")[1]
    assert found["results"] == [] and found["pagination"]["count"] == 1
    # henry (not a superuser) gets the filtered list even with superuser_full_list=true
    listed = api(client, "GET", "/core/applications/?superuser_full_list=true", token="henry-token")[1]
    assert [a["slug"] for a in listed["results"]] == ["a", "b"]
    # an application update does not clear the cache; a group change does
    api(client, "PATCH", "/core/applications/b/", {"name": "B2"})
    assert [a["slug"] for a in api(client, "GET", "/core/applications/?slug=b")[1]["results"]] == ["a"]
    api(client, "POST", f"/core/groups/{group['pk']}/add_user/", {"pk": henry["pk"]})  # m2m: no post_save
    assert "c" not in [a["slug"] for a in api(client, "GET", "/core/applications/", token="henry-token")[1]["results"]]
    api(client, "PATCH", f"/core/groups/{group['pk']}/", {"attributes": {"x": 1}})  # post_save: cleared
    assert [a["slug"] for a in api(client, "GET", "/core/applications/", token="henry-token")[1]["results"]] == [
        "a", "b", "c"]
    assert api(client, "GET", "/core/applications/?for_user=999999") == (400, {"for_user": ["User not found"]})


def test_group_names_unique_per_release():
    """Item 4: see test_groups_parent_before_2025_12_parents_after; 2025.6 like 2025.10."""
    _, client = make("2025.6")
    api(client, "POST", "/core/groups/", {"name": "g"})
    assert api(client, "POST", "/core/groups/", {"name": "g"}) == (400, {"name": ["This field must be unique."]})
    _, client = make("2026.5")
    api(client, "POST", "/core/groups/", {"name": "g"})
    assert api(client, "POST", "/core/groups/", {"name": "g"}) == (
        400, {"name": ["Group with this name already exists."]})


@pytest.mark.parametrize("release", RELEASES)
def test_missing_trailing_slash_and_unknown_urls_are_html_404s(release):
    """
    Item 5. APPEND_SLASH = False (authentik/root/settings.py), a DefaultRouter with
    trailing slashes (authentik/api/v3/urls.py), handler404 = NotFoundView (HTML, before
    authentication).
    """
    sim, client = make(release)
    for method, path in (("GET", "/api/v3/core/groups"), ("POST", "/api/v3/core/groups"),
                         ("GET", "/api/v3/core/groups/x/add_user"), ("GET", "/api/v3/no-such-thing/")):
        resp = client.open(path, method=method, headers=auth(), json={"name": "slashless"})
        assert resp.status_code == 404 and resp.mimetype == "text/html", (method, path)
        assert resp.data.lstrip().startswith(b"<!DOCTYPE html>")
    assert not any(g["name"] == "slashless" for g in sim.db["group"].values())
    assert client.get("/api/v3/core/groups").status_code == 404  # no token: still the 404, not a 403
    # a real endpoint the simulator lacks is a loud lab 501, not a 404 that looks real
    resp = client.get("/api/v3/core/groups/x/used_by/", headers=auth())
    assert resp.status_code == 501 and "does not implement" in resp.json["detail"]


def test_unserved_actions_are_the_ones_the_schema_extraction_skips():
    spec = importlib.util.spec_from_file_location(
        "extract", os.path.join(os.path.dirname(aksim.__file__), "authentik_schemas", "extract.py"))
    extract = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(extract)
    assert tuple(extract.SKIP_SUFFIXES) == aksim.UNSERVED_ACTIONS


@pytest.mark.parametrize("release", RELEASES)
def test_filters_validate_their_values_like_django_filter(release):
    """
    Item 6. DjangoFilterBackend: an invalid FilterSet form is a 400 naming the parameter
    (django_filters/rest_framework/backends.py); documented filters are implemented or
    refused, never silently ignored.
    """
    sim, client = make(release)
    ghost = str(uuid.uuid4())
    cases = [
        ("/core/groups/?members_by_username=ghost", "members_by_username",
         "Select a valid choice. ghost is not one of the available choices."),
        ("/core/users/?groups_by_name=ghost", "groups_by_name",
         "Select a valid choice. ghost is not one of the available choices."),
        # AllValuesMultipleFilter: the choices are the managed values that exist
        ("/propertymappings/provider/scope/?managed=goauthentik.io/nope", "managed",
         "Select a valid choice. goauthentik.io/nope is not one of the available choices."),
        (f"/policies/bindings/?target={ghost}", "target", aksim.CHOICE_MSG),
        (f"/flows/bindings/?target={ghost}", "target", aksim.CHOICE_MSG),
        ("/outposts/instances/?providers_by_pk=99999", "providers_by_pk",
         "Select a valid choice. 99999 is not one of the available choices."),
        ("/flows/instances/?designation=nope", "designation",
         "Select a valid choice. nope is not one of the available choices."),
        ("/core/brands/?brand_uuid=nope", "brand_uuid", "Enter a valid UUID."),
        ("/policies/bindings/?order=first", "order", "Enter a number."),
    ]
    for path, param, message in cases:
        assert api(client, "GET", path) == (400, {param: [message]}), path
    # a flow's flow_uuid is no PolicyBindingModel pk: not a valid binding target filter
    flow = next(iter(sim.db["flow"].values()))
    assert api(client, "GET", f"/policies/bindings/?target={flow['pk']}")[0] == 400
    assert api(client, "GET", f"/policies/bindings/?target={flow['pbm_uuid']}")[0] == 200
    # filters that narrow: brand_uuid, attributes JSON, is_superuser, iexact traversals
    brand = next(iter(sim.db["brand"].values()))
    api(client, "POST", "/core/brands/", {"domain": "other.example.com"})
    assert [b["domain"] for b in api(client, "GET", f"/core/brands/?brand_uuid={brand['pk']}")[1]["results"]] == [
        "authentik-default"]
    api(client, "POST", "/core/groups/", {"name": "tagged", "attributes": {"team": {"name": "a"}}})
    got = api(client, "GET", '/core/groups/?attributes={"team__name": "a"}')[1]["results"]
    assert [g["name"] for g in got] == ["tagged"]
    assert api(client, "GET", "/core/groups/?attributes=[1]") == (400, ["filter: value must be key:value mapping"])
    assert [u["username"] for u in api(client, "GET", "/core/users/?is_superuser=true")[1]["results"]] == ["akadmin"]
    # a BooleanFilter given garbage filters nothing (BooleanWidget -> None)
    assert api(client, "GET", "/core/users/?is_superuser=maybe")[1]["pagination"]["count"] == len(sim.db["user"])
    api(client, "POST", "/providers/proxy/", proxy_body(sim))
    assert len(api(client, "GET", "/providers/proxy/?authorization_flow__slug__iexact="
                                  "DEFAULT-provider-authorization-implicit-consent")[1]["results"]) == 1
    assert api(client, "GET", "/providers/proxy/?application__isnull=false")[1]["results"] == []
    # a filter the table lacks is refused, never ignored
    aksim.FILTERS["group"].pop("is_superuser")
    try:
        status, body = api(client, "GET", "/core/groups/?is_superuser=true")
        assert status == 400 and "not implemented by the simulator" in body["is_superuser"][0]
    finally:
        aksim.FILTERS["group"]["is_superuser"] = aksim._bool("is_superuser")  # pylint: disable=protected-access


def test_every_documented_filter_is_in_the_table():
    """No documented filter of any release falls through to the lab's 'not implemented'."""
    missing = []
    for release in RELEASES:
        sim, _ = make(release)
        for res in aksim.RESOURCES:
            op = sim.operation(res.path, "get")
            for param in op.get("parameters", []):
                name = param["name"]
                if param.get("in") != "query" or name in aksim.PAGE_PARAMS or name in aksim.SWITCHES:
                    continue
                if res.kind == "application" and name in aksim.APP_LIST_PARAMS:
                    continue
                if name not in aksim.FILTERS.get(res.kind, {}):
                    missing.append(f"{release} {res.kind} {name}")
    assert missing == []


@pytest.mark.parametrize("release", RELEASES)
def test_proxy_provider_and_outpost_validators(release):
    """
    Item 7. ProxyProviderSerializer.validate_basic_auth_enabled reads initial_data and
    the hosts are http(s) URLs (authentik/providers/proxy/api.py, models.py);
    OutpostSerializer.validate_providers/validate_name (authentik/outposts/api/outposts.py).
    """
    sim, client = make(release)
    _, prov = api(client, "POST", "/providers/proxy/", proxy_body(sim))
    path = f"/providers/proxy/{prov['pk']}/"
    msg = {"basic_auth_enabled": ["User and password attributes must be set when basic auth is enabled."]}
    assert api(client, "PATCH", path, {"mode": "forward_single", "basic_auth_enabled": True}) == (400, msg)
    attrs = {"basic_auth_user_attribute": "u", "basic_auth_password_attribute": "p"}
    assert api(client, "PATCH", path, dict(attrs, mode="forward_single", basic_auth_enabled=True))[0] == 200
    # stored attributes do not count: initial_data is the request
    assert api(client, "PATCH", path, {"mode": "forward_single", "basic_auth_enabled": True}) == (400, msg)
    assert api(client, "POST", "/providers/proxy/", proxy_body(sim, "p2", external_host="ftp://x.example.com")) == (
        400, {"external_host": ["Enter a valid URL."]})
    body = proxy_body(sim, "p3", external_host="http://grafana:3000")
    assert api(client, "POST", "/providers/proxy/", body)[0] == 201
    _, oauth = api(client, "POST", "/providers/oauth2/", provider_body(sim, "o1"))
    embedded = next(o for o in sim.db["outpost"].values() if o["managed"] == "goauthentik.io/outposts/embedded")
    opath = f"/outposts/instances/{embedded['pk']}/"
    full = {"name": embedded["name"], "type": "proxy", "config": embedded["config"]}
    assert api(client, "PUT", opath, dict(full, providers=[oauth["pk"]])) == (
        400, {"providers": ["Outpost type proxy can't be used with OAuth2Provider providers."]})
    assert api(client, "PUT", opath, dict(full, providers=[]))[0] == 200  # the embedded one may be empty
    assert api(client, "PATCH", opath, {"providers": [oauth["pk"]]})[0] == 200  # no type: Provider passes
    assert api(client, "PATCH", opath, {"name": "renamed"}) == (
        400, {"name": ["Embedded outpost's name cannot be changed"]})
    assert api(client, "POST", "/outposts/instances/", {"name": "o2", "type": "proxy", "providers": [],
                                                        "config": {}}) == (
        400, {"providers": ["This list may not be empty."]})


@pytest.mark.parametrize("release", RELEASES)
def test_unique_messages_name_the_declaring_model(release):
    """
    Item 8. DRF get_unique_error_message (rest_framework/utils/field_mapping.py): the
    verbose_name of the model that declares the field, not capitalised.
    """
    sim, client = make(release)
    api(client, "POST", "/providers/oauth2/", provider_body(sim, "p"))
    assert api(client, "POST", "/providers/proxy/", proxy_body(sim, "p")) == (
        400, {"name": ["provider with this name already exists."]})
    assert api(client, "POST", "/providers/oauth2/", provider_body(sim, "p")) == (
        400, {"name": ["provider with this name already exists."]})
    assert api(client, "POST", "/stages/password/", {"name": "default-authentication-identification",
                                                     "backends": ["authentik.core.auth.InbuiltBackend"]}) == (
        400, {"name": ["stage with this name already exists."]})
    assert api(client, "POST", "/propertymappings/provider/scope/", {
        "name": "authentik default OAuth Mapping: OpenID 'email'", "scope_name": "x", "expression": "return {}"}) == (
        400, {"name": ["Property Mapping with this name already exists."]})
    assert api(client, "POST", "/propertymappings/provider/scope/", {
        "name": "n", "scope_name": "x", "expression": "return {}",
        "managed": "goauthentik.io/providers/oauth2/scope-email"}) == (
        400, {"managed": ["Property Mapping with this Managed by authentik already exists."]})
    assert len([b for b in sim.db["brand"].values() if b["default"]]) == 1


@pytest.mark.parametrize("release", RELEASES)
def test_flow_references_and_policy_binding_targets(release):
    """
    Item 9. Flow references are FKs to Flow (pk flow_uuid): a pbm_uuid is refused.
    PolicyBindingModelForeignKey (authentik/policies/api/bindings.py) takes either pk and
    represents the subclass's own.
    """
    sim, client = make(release)
    flow = next(f for f in sim.db["flow"].values() if f["slug"] == "default-provider-authorization-implicit-consent")
    status, body = api(client, "POST", "/providers/proxy/", proxy_body(sim, authorization_flow=flow["pbm_uuid"]))
    message = f'Invalid pk "{flow["pbm_uuid"]}" - object does not exist.'
    assert (status, body) == (400, {"authorization_flow": [message]})
    _, group = api(client, "POST", "/core/groups/", {"name": "g"})
    status, binding = api(client, "POST", "/policies/bindings/",
                          {"target": flow["pbm_uuid"], "order": 0, "group": group["pk"]})
    assert status == 201 and binding["target"] == flow["pk"]  # sent the pbm_uuid, got the flow_uuid
    listed = api(client, "GET", f"/policies/bindings/?target={flow['pbm_uuid']}")[1]["results"]
    assert [b["pk"] for b in listed] == [binding["pk"]] and listed[0]["target"] == flow["pk"]
    _, app = api(client, "POST", "/core/applications/", {"name": "A", "slug": "a"})
    status, binding = api(client, "POST", "/policies/bindings/",
                          {"target": app["pk"], "order": 0, "group": group["pk"]})
    assert status == 201 and binding["target"] == app["pk"]


def test_reserved_application_slugs_from_2025_10():
    """ApplicationSerializer.validate_slug (authentik/core/api/applications.py) is new in 2025.10."""
    _, client = make("2025.6")
    assert api(client, "POST", "/core/applications/", {"name": "A", "slug": "authorize"})[0] == 201
    for release in ("2025.10", "2026.5"):
        _, client = make(release)
        assert api(client, "POST", "/core/applications/", {"name": "A", "slug": "authorize"}) == (
            400, {"slug": ["The slug 'authorize' is reserved and cannot be used for applications."]})
