"""
The Authentik simulator itself: schema validation with DRF's error shapes, the
documented status codes and bodies, pagination per release, and responses that match
the vendor's response schemas. In-process (werkzeug test client): same code as the
served simulator, no ports.
"""

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
    assert resp.status_code == 403 and resp.json == {"detail": "Unsupported authentication type"}
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
    assert (status, body) == (400, {"authorization_flow": ["Must be a valid UUID."]})
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
    assert api(client, "POST", f"/core/groups/{group['pk']}/add_user/", {"pk": 999}) == (
        404, {"detail": "No User matches the given query."})


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
    # same name under the same parent is refused; two root groups of one name are not
    status, body = api(old_client, "POST", "/core/groups/", {"name": "child", "parent": parent["pk"]})
    assert (status, body) == (400, {"non_field_errors": ["The fields name, parent must make a unique set."]})
    assert api(old_client, "POST", "/core/groups/", {"name": "dup"})[0] == 201
    assert api(old_client, "POST", "/core/groups/", {"name": "dup"})[0] == 201
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
    problems = []
    for res in aksim.RESOURCES:
        status, body = api(client, "GET", res.path)
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
