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
        assert resp.json() == {"non_field_errors": ["Only one of 'policy', 'group' or 'user' can be set."]}
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
    assert resp.status_code == 400 and "redirect_uris" in resp.json()
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
