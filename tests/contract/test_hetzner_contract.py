"""
Hetzner DNS contract: the lab's simulator vs the real Hetzner Cloud API
(HCLOUD_TOKEN = a read & write token of a project, HECATE_TEST_ZONE = a primary zone in it
that the test may write ``hecate-contract-*`` RRSets into; they are deleted afterwards).

Each test is one behaviour hecate_dns_client / hecate_dns_records rely on, with where it
is documented: hcloud-python 2.27 (``hcloud/...``) and the API reference
(https://docs.hetzner.cloud/reference/cloud, sections named below).
"""

import os
import time
import uuid

import hcloud
import pytest
import requests
from hcloud.zones import ZoneRecord

import hecate_dns_records as rec
from lab.sim import SimHandle
from tests.contract.conftest import real_or_skip

SIM_TOKEN = "contract-" + uuid.uuid4().hex
SIM_ZONE = "contract.example"


@pytest.fixture(scope="module")
def hetzner_contract_sim(tmp_path_factory):
    handle = SimHandle("hetzner", str(tmp_path_factory.mktemp("hetzner-contract")),
                       {"token": SIM_TOKEN, "action_seconds": 0.05, "zones": [{"name": SIM_ZONE}]}).start()
    yield handle
    handle.stop()


@pytest.fixture(params=["sim", "real"], scope="module")
def target(request, hetzner_contract_sim):
    """``(endpoint, token, zone)``."""
    if request.param == "sim":
        return hetzner_contract_sim.url + "/v1", SIM_TOKEN, SIM_ZONE
    env = real_or_skip("HCLOUD_TOKEN", "HECATE_TEST_ZONE")
    endpoint = os.environ.get("HCLOUD_ENDPOINT", "https://api.hetzner.cloud/v1")
    return endpoint, env["HCLOUD_TOKEN"], env["HECATE_TEST_ZONE"]


@pytest.fixture(scope="module")
def api(target):
    endpoint, token, _ = target
    return hcloud.Client(token=token, api_endpoint=endpoint, poll_interval=0.5, poll_max_retries=120)


@pytest.fixture(scope="module")
def zone(api, target):
    return api.zones.get(target[2])


@pytest.fixture
def name(api, zone):
    """A fresh RRSet name; whatever the test created under it is deleted afterwards."""
    prefix = f"hecate-contract-{uuid.uuid4().hex[:10]}"
    yield prefix
    for rrset in api.zones.get_rrset_all(zone):
        if rrset.name.startswith(prefix):
            if (rrset.protection or {}).get("change"):
                api.zones.change_rrset_protection(rrset, change=False).wait_until_finished()
            api.zones.delete_rrset(rrset).action.wait_until_finished()


def raw(target, method, path, **kwargs):
    endpoint, token, _ = target
    headers = kwargs.pop("headers", {"Authorization": f"Bearer {token}"})
    return requests.request(method, endpoint + path, headers=headers, timeout=30, **kwargs)


def test_zone_by_name_is_primary_with_apex_soa_and_ns(zone, api):
    # hcloud ZonesClient.get(id_or_name) -> GET /zones/{id_or_name}; reference "Zones: Get a Zone".
    # hecate reads zones by name and refuses secondary ones (records come from AXFR there).
    assert zone.mode == "primary"
    apex = {(r.name, r.type) for r in api.zones.get_rrset_all(zone, name="@")}
    # reference "Zones: Create a Zone": a default SOA and NS records are created; hecate
    # never touches them (hecate_dns_records.is_apex_ns_soa)
    assert {("@", "SOA"), ("@", "NS")} <= apex


def test_create_returns_an_action_that_is_followed_to_success(api, zone, name):
    # hcloud ZonesClient.create_rrset -> {rrset, action}; BoundAction.reload reads
    # GET /actions/{id} (hcloud/actions/client.py); reference "Actions": running -> success|error.
    resp = api.zones.create_rrset(zone, name=name, type="A", ttl=300, labels=rec.labels("contract"),
                                  records=[ZoneRecord("192.0.2.10")])
    assert resp.action.command == "create_rrset" and resp.action.status in ("running", "success")
    deadline = time.monotonic() + 60
    while resp.action.status == "running" and time.monotonic() < deadline:  # as DNSClient.wait polls
        time.sleep(0.5)
        resp.action.reload()
    assert resp.action.status == "success" and resp.action.error is None
    got = api.zones.get_rrset(zone, name, "A")
    assert got.id == f"{name}/A" and got.ttl == 300 and got.labels == rec.labels("contract")
    assert [r.value for r in got.records] == ["192.0.2.10"]
    assert got.protection == {"change": False}


def test_label_selector_selects_hecates_rrsets(api, zone, name):
    # hcloud get_rrset_all(label_selector=...) -> ?label_selector=; reference "Label Selector".
    api.zones.create_rrset(zone, name=name, type="TXT", labels=rec.labels("contract"),
                           records=[ZoneRecord('"owned"')]).action.wait_until_finished()
    api.zones.create_rrset(zone, name=name + "-x", type="TXT", labels={"owner": "someone"},
                           records=[ZoneRecord('"foreign"')]).action.wait_until_finished()
    owned = {r.name for r in api.zones.get_rrset_all(zone, label_selector="managed-by=hecate,hecate-env=contract")}
    assert name in owned and name + "-x" not in owned
    assert name + "-x" in {r.name for r in api.zones.get_rrset_all(zone, label_selector="!managed-by")}


def test_list_is_paginated_with_meta(target, api, zone, name):
    # hcloud core/client._iter_pages follows meta.pagination.next_page; reference "Pagination".
    for i in range(3):
        api.zones.create_rrset(zone, name=f"{name}-{i}", type="A",
                               records=[ZoneRecord("192.0.2.1")]).action.wait_until_finished()
    resp = raw(target, "GET", f"/zones/{zone.id}/rrsets", params={"per_page": 2, "page": 1})
    meta = resp.json()["meta"]["pagination"]
    assert resp.status_code == 200 and meta["per_page"] == 2 and meta["next_page"] == 2
    assert len(resp.json()["rrsets"]) == 2
    assert int(resp.headers["RateLimit-Limit"]) > 0 and "RateLimit-Remaining" in resp.headers  # "Rate Limiting"
    names = {r.name for r in api.zones.get_rrset_all(zone)}
    assert {f"{name}-{i}" for i in range(3)} <= names


def test_set_records_change_ttl_and_labels(api, zone, name):
    # hcloud set_rrset_records / change_rrset_ttl (Actions) and update_rrset (labels, no Action);
    # reference "Zone RRSet Actions: Set Records / Change TTL", "Zone RRSets: Update an RRSet".
    rrset = api.zones.create_rrset(zone, name=name, type="AAAA", ttl=300, labels={"a": "1"},
                                   records=[ZoneRecord("2001:db8::1")])
    rrset.action.wait_until_finished()
    ref = rrset.rrset
    action = api.zones.set_rrset_records(ref, [ZoneRecord("2001:db8::2"), ZoneRecord("2001:db8::3")])
    assert action.command == "set_rrset_records"
    action.wait_until_finished()
    api.zones.change_rrset_ttl(ref, 600).wait_until_finished()
    updated = api.zones.update_rrset(ref, labels={"b": "2"})
    assert updated.labels == {"b": "2"}  # replaced as a whole, not merged
    got = api.zones.get_rrset(zone, name, "AAAA")
    assert got.ttl == 600
    # hecate compares normalised values: what the API returns equals what was sent
    assert sorted(rec.normalise_live("AAAA", r.value, zone.name) for r in got.records) == ["2001:db8::2", "2001:db8::3"]


def test_txt_values_are_quoted_strings(api, zone, name, target):
    # hecate_dns_records.format_txt quotes TXT data (hcloud-go zoneutil.FormatTXTRecord: the
    # API wants one or more quoted strings of at most 255 characters); unquoted is refused.
    value = rec.format_txt("v=spf1 -all " + "x" * 300)
    api.zones.create_rrset(zone, name=name, type="TXT", records=[ZoneRecord(value)]).action.wait_until_finished()
    got = api.zones.get_rrset(zone, name, "TXT")
    assert rec.normalise_live("TXT", got.records[0].value, zone.name) == value
    resp = raw(target, "POST", f"/zones/{zone.id}/rrsets",
               json={"name": name + "-bad", "type": "TXT", "records": [{"value": "not quoted"}]})
    assert resp.status_code in (400, 422) and resp.json()["error"]["code"] == "invalid_input"


def test_error_codes_hecate_maps(api, zone, name, target):
    # hcloud _client._read_response raises APIException(code, message, details); reference "Errors".
    api.zones.create_rrset(zone, name=name, type="A", records=[ZoneRecord("192.0.2.1")]).action.wait_until_finished()
    with pytest.raises(hcloud.APIException) as err:
        api.zones.create_rrset(zone, name=name, type="A", records=[ZoneRecord("192.0.2.2")])
    assert err.value.code == "uniqueness_error"
    with pytest.raises(hcloud.APIException) as err:
        api.zones.get_rrset(zone, name + "-missing", "A")
    assert err.value.code == "not_found"
    with pytest.raises(hcloud.APIException) as err:
        api.zones.get("hecate-contract-missing-" + uuid.uuid4().hex[:6] + ".example")
    assert err.value.code == "not_found"
    resp = raw(target, "GET", f"/zones/{zone.id}", headers={"Authorization": "Bearer not-a-token"})
    assert resp.status_code == 401 and resp.json()["error"]["code"] == "unauthorized"


def test_protection_blocks_changes_and_deletion(api, zone, name):
    # reference "Zone RRSet Actions: Change an RRSet's Protection" (protection.change prevents
    # updates and deletion) and "Errors": protected (423). hecate reports a protected RRSet
    # it must change as a conflict before writing.
    resp = api.zones.create_rrset(zone, name=name, type="A", records=[ZoneRecord("192.0.2.1")])
    resp.action.wait_until_finished()
    api.zones.change_rrset_protection(resp.rrset, change=True).wait_until_finished()
    assert api.zones.get_rrset(zone, name, "A").protection == {"change": True}
    with pytest.raises(hcloud.APIException) as err:
        api.zones.set_rrset_records(resp.rrset, [ZoneRecord("192.0.2.2")])
    assert err.value.code == "protected"
    with pytest.raises(hcloud.APIException) as err:
        api.zones.delete_rrset(resp.rrset)
    assert err.value.code == "protected"


def test_delete_returns_an_action(api, zone, name):
    # hcloud delete_rrset -> DeleteZoneRRSetResponse(action); reference "Delete an RRSet".
    resp = api.zones.create_rrset(zone, name=name, type="CNAME", records=[ZoneRecord(f"{zone.name}.")])
    resp.action.wait_until_finished()
    deleted = api.zones.delete_rrset(resp.rrset)
    assert deleted.action.command == "delete_rrset"
    deleted.action.wait_until_finished()
    with pytest.raises(hcloud.APIException) as err:
        api.zones.get_rrset(zone, name, "CNAME")
    assert err.value.code == "not_found"
