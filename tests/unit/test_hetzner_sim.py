"""
The Hetzner DNS simulator against hcloud's own models and the API reference: every
response has exactly the fields hcloud's domain classes read, every request hcloud builds
is accepted, and what the reference forbids is refused with its error code and status.
"""

import json
import uuid

import hcloud
import pytest
import requests
from hcloud.actions.domain import Action
from hcloud.core.domain import Pagination
from hcloud.zones import Zone, ZoneRecord, ZoneRRSet

from lab.sim import SimHandle

TOKEN = "sim-t0ken-" + uuid.uuid4().hex
ZONE = "shapes.example"


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    handle = SimHandle("hetzner", str(tmp_path_factory.mktemp("hsim")), {"token": TOKEN, "zones": [
        {"name": ZONE, "rrsets": [{"name": "locked", "type": "A", "records": ["192.0.2.1"], "protected": True}]},
        {"name": "second.example", "mode": "secondary"},
    ]}).start()
    yield handle
    handle.stop()


@pytest.fixture(scope="module")
def api(sim):
    return hcloud.Client(token=TOKEN, api_endpoint=sim.url + "/v1", poll_interval=0.01)


def raw(sim, method, path, body=None, token=TOKEN, **params):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    data = body if isinstance(body, (str, bytes)) else (json.dumps(body) if body is not None else None)
    return requests.request(method, f"{sim.url}/v1{path}", data=data, params=params, headers=headers, timeout=10)


def error_of(resp):
    return resp.status_code, resp.json()["error"]["code"]


def test_responses_have_exactly_the_fields_of_hcloud_models(sim, api):
    zone_json = raw(sim, "GET", f"/zones/{ZONE}").json()["zone"]
    assert set(zone_json) == set(Zone.__api_properties__)
    assert set(zone_json["authoritative_nameservers"]) == {"assigned", "delegated", "delegation_last_check",
                                                           "delegation_status"}
    listing = raw(sim, "GET", f"/zones/{ZONE}/rrsets").json()
    assert set(listing) == {"rrsets", "meta"}
    assert set(listing["meta"]["pagination"]) == set(Pagination.__api_properties__)
    for item in listing["rrsets"]:
        assert set(item) == set(ZoneRRSet.__api_properties__)
        assert item["id"] == f"{item['name']}/{item['type']}" and isinstance(item["zone"], int)
        assert set(item["protection"]) == {"change"}
        assert all(set(r) == set(ZoneRecord.__api_properties__) for r in item["records"])
    # a new zone carries SOA and the three Hetzner NS at the apex
    assert {(i["name"], i["type"]) for i in listing["rrsets"]} >= {("@", "SOA"), ("@", "NS")}
    created = raw(sim, "POST", f"/zones/{ZONE}/rrsets",
                  {"name": "shape", "type": "A", "records": [{"value": "192.0.2.5"}]})
    assert created.status_code == 201 and set(created.json()) == {"rrset", "action"}
    action = created.json()["action"]
    assert set(action) == set(Action.__api_properties__) and action["status"] == "running"
    assert action["resources"] == [{"id": zone_json["id"], "type": "zone"}]
    got = raw(sim, "GET", f"/actions/{action['id']}").json()["action"]
    assert got["status"] == "success" and got["progress"] == 100 and got["finished"]
    assert raw(sim, "GET", f"/zones/actions/{action['id']}").json()["action"]["id"] == action["id"]
    # and hcloud reads all of it into its models
    zone = api.zones.get(ZONE)
    assert zone.mode == "primary" and zone.authoritative_nameservers.delegation_status == "valid"
    assert api.zones.get_rrset(zone, "shape", "A").records[0].value == "192.0.2.5"
    api.zones.delete_rrset(api.zones.get_rrset(zone, "shape", "A")).action.wait_until_finished()


def test_every_rrset_call_hcloud_makes_is_accepted(api):
    zone = api.zones.get(ZONE)
    resp = api.zones.create_rrset(zone, name="calls", type="MX", ttl=3600, labels={"k": "v", "example.com/x": ""},
                                  records=[ZoneRecord("10 mx1.shapes.example.", comment="first")])
    resp.action.wait_until_finished()
    rrset = resp.rrset
    api.zones.add_rrset_records(rrset, [ZoneRecord("20 mx2.shapes.example.")], ttl=600).wait_until_finished()
    records = [ZoneRecord("20 mx2.shapes.example.", comment="second")]
    api.zones.update_rrset_records(rrset, records).wait_until_finished()
    api.zones.remove_rrset_records(rrset, [ZoneRecord("10 mx1.shapes.example.")]).wait_until_finished()
    api.zones.change_rrset_ttl(rrset, None).wait_until_finished()
    updated = api.zones.update_rrset(rrset, labels={"k": "w"})
    assert updated.labels == {"k": "w"}
    api.zones.change_rrset_protection(rrset, change=True).wait_until_finished()
    got = api.zones.get_rrset(zone, "calls", "MX")
    assert got.ttl is None and got.protection == {"change": True}
    assert [(r.value, r.comment) for r in got.records] == [("20 mx2.shapes.example.", "second")]
    api.zones.change_rrset_protection(rrset, change=False).wait_until_finished()
    api.zones.set_rrset_records(rrset, [ZoneRecord("5 mx.shapes.example.")]).wait_until_finished()
    api.zones.delete_rrset(rrset).action.wait_until_finished()
    assert [z.name for z in api.zones.get_all(name=ZONE)] == [ZONE]


@pytest.mark.parametrize(
    "body, field",
    [
        ({"name": "x", "type": "A", "records": [{"value": "192.0.2.1"}], "extra": 1}, "extra"),
        ({"name": "x", "type": "A", "ttl": 59, "records": [{"value": "192.0.2.1"}]}, "ttl"),
        ({"name": "x", "type": "A", "labels": {"-bad": "v"}, "records": [{"value": "192.0.2.1"}]}, "labels.-bad"),
        ({"name": "x", "type": "A", "labels": {"hetzner.cloud/x": "v"}, "records": [{"value": "192.0.2.1"}]},
         "labels.hetzner.cloud/x"),
        ({"name": "x", "type": "TXT", "records": [{"value": "unquoted"}]}, "records[0].value"),
        ({"name": "x", "type": "TXT", "records": [{"value": '"' + "a" * 256 + '"'}]}, "records[0].value"),
        ({"name": "x", "type": "A", "records": [{"value": "2001:db8::1"}]}, "records[0].value"),
        ({"name": "x", "type": "CNAME", "records": [{"value": "a.example."}, {"value": "b.example."}]}, "records"),
        ({"name": "X", "type": "A", "records": [{"value": "192.0.2.1"}]}, "name"),
        ({"name": "x.shapes.example", "type": "A", "records": [{"value": "192.0.2.1"}]}, "name"),
        ({"name": "@", "type": "SOA", "records": [{"value": "a. b. 1 2 3 4 5"}]}, "type"),
        ({"name": "x", "type": "A", "records": [{"value": "192.0.2.1", "weight": 1}]}, "records[0]"),
        ({"type": "A", "records": [{"value": "192.0.2.1"}]}, "name"),
    ],
)
def test_invalid_input_names_the_field(sim, body, field):
    resp = raw(sim, "POST", f"/zones/{ZONE}/rrsets", body)
    assert error_of(resp) == (422, "invalid_input"), resp.text
    assert field in [f["name"] for f in resp.json()["error"]["details"]["fields"]]


def test_reference_error_codes(sim):
    assert error_of(raw(sim, "GET", f"/zones/{ZONE}", token=None)) == (401, "unauthorized")
    assert error_of(raw(sim, "GET", f"/zones/{ZONE}", token="nope")) == (401, "unauthorized")
    assert error_of(raw(sim, "GET", "/zones/missing.example")) == (404, "not_found")
    assert error_of(raw(sim, "GET", f"/zones/{ZONE}/rrsets/none/A")) == (404, "not_found")
    assert error_of(raw(sim, "POST", f"/zones/{ZONE}/rrsets", "{not json")) == (400, "json_error")
    assert error_of(raw(sim, "GET", "/zones/second.example/rrsets")) == (422, "incorrect_zone_mode")
    body = {"name": "dup", "type": "A", "records": [{"value": "192.0.2.1"}]}
    assert raw(sim, "POST", f"/zones/{ZONE}/rrsets", body).status_code == 201
    assert error_of(raw(sim, "POST", f"/zones/{ZONE}/rrsets", body)) == (409, "uniqueness_error")
    # CNAME shares its name with nothing
    cname = {"name": "dup", "type": "CNAME", "records": [{"value": "x.example."}]}
    assert error_of(raw(sim, "POST", f"/zones/{ZONE}/rrsets", cname)) == (422, "invalid_input")
    # protection.change: no record change, no deletion; labels may still change
    assert error_of(raw(sim, "POST", f"/zones/{ZONE}/rrsets/locked/A/actions/set_records",
                        {"records": [{"value": "192.0.2.2"}]})) == (423, "protected")
    assert error_of(raw(sim, "DELETE", f"/zones/{ZONE}/rrsets/locked/A")) == (423, "protected")
    assert raw(sim, "PUT", f"/zones/{ZONE}/rrsets/locked/A", {"labels": {"a": "b"}}).status_code == 200
    # the apex SOA and NS stay
    assert error_of(raw(sim, "DELETE", f"/zones/{ZONE}/rrsets/@/SOA")) == (422, "invalid_input")
    assert error_of(raw(sim, "DELETE", f"/zones/{ZONE}/rrsets/@/NS")) == (422, "invalid_input")
    assert error_of(raw(sim, "GET", f"/zones/{ZONE}/rrsets", per_page=51)) == (422, "invalid_input")
    assert error_of(raw(sim, "GET", f"/zones/{ZONE}/rrsets", label_selector="a=(")) == (422, "invalid_input")


def test_rate_limit_headers_and_the_429(tmp_path):
    handle = SimHandle("hetzner", str(tmp_path), {"token": TOKEN, "rate_limit": 3, "zones": [{"name": ZONE}]}).start()
    try:
        first = raw(handle, "GET", "/zones")
        assert first.headers["RateLimit-Limit"] == "3" and first.headers["RateLimit-Remaining"] == "2"
        assert int(first.headers["RateLimit-Reset"]) > 0
        raw(handle, "GET", "/zones")
        raw(handle, "GET", "/zones")
        assert error_of(raw(handle, "GET", "/zones")) == (429, "rate_limit_exceeded")
    finally:
        handle.stop()


def test_pagination_meta_and_link_header(sim):
    for i in range(7):
        raw(sim, "POST", f"/zones/{ZONE}/rrsets", {"name": f"p{i}", "type": "TXT", "records": [{"value": f'"{i}"'}]})
    resp = raw(sim, "GET", f"/zones/{ZONE}/rrsets", per_page=3, page=2, type="TXT")
    meta = resp.json()["meta"]["pagination"]
    assert meta == {"page": 2, "per_page": 3, "previous_page": 1, "next_page": 3, "last_page": 3, "total_entries": 7}
    assert 'rel="prev"' in resp.headers["Link"] and 'rel="next"' in resp.headers["Link"]
    assert [r["name"] for r in resp.json()["rrsets"]] == ["p3", "p4", "p5"]
    desc = raw(sim, "GET", f"/zones/{ZONE}/rrsets", type="TXT", sort="name:desc").json()["rrsets"]
    assert desc[0]["name"] == "p6"


@pytest.mark.parametrize(
    "selector, expected",
    [
        ("team=web", {"a"}),
        ("team==web", {"a"}),
        ("team!=web", {"b", "c"}),
        ("team", {"a", "b"}),
        ("!team", {"c"}),
        ("team in (web,db)", {"a", "b"}),
        ("team notin (web)", {"b", "c"}),
        ("team=db,env=prod", {"b"}),
    ],
)
def test_label_selectors_follow_the_reference(sim, selector, expected):
    prefix = "sel" + uuid.uuid4().hex[:6] + "-"
    for suffix, labels in {"a": {"team": "web"}, "b": {"team": "db", "env": "prod"}, "c": {"env": "prod"}}.items():
        resp = raw(sim, "POST", f"/zones/{ZONE}/rrsets", {"name": prefix + suffix, "type": "A", "labels": labels,
                                                          "records": [{"value": "192.0.2.1"}]})
        assert resp.status_code == 201
    got = raw(sim, "GET", f"/zones/{ZONE}/rrsets", label_selector=selector, type="A").json()["rrsets"]
    assert {r["name"][len(prefix):] for r in got if r["name"].startswith(prefix)} == expected
