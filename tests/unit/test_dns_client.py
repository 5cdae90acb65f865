"""The Hetzner DNS client (hecate_dns_client, on hcloud) against the Hetzner simulator."""

import uuid

import hcloud
import pytest
import requests
import salt.exceptions

import hecate_dns_client as hdc
import hecate_dns_records as rec
import hecate_http
import hecate_secrets
from lab import procs
from lab.sim import SimHandle

TOKEN = "hcloud-t0ken-" + uuid.uuid4().hex
ZONE = "example.com"
MANY = 120  # more than two pages of 50
HECATE = {"managed-by": "hecate", "hecate-env": "lab"}


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    filler = [{"name": f"host{i:03d}", "type": "A", "records": [f"198.51.100.{i % 250 + 1}"]} for i in range(MANY)]
    options = {"token": TOKEN, "action_seconds": 0.05, "zones": [
        {"name": ZONE, "rrsets": [{"name": "mail", "type": "A", "records": ["203.0.113.25"]}]},
        {"name": "paged.example", "rrsets": filler},
        {"name": "secondary.example", "mode": "secondary"},
    ]}
    handle = SimHandle("hetzner", str(tmp_path_factory.mktemp("hetzner")), options).start()
    yield handle
    handle.stop()


@pytest.fixture(autouse=True)
def clean(sim):
    sim.clear_faults()
    sim.clear_action_faults()
    sim.clear_requests()
    yield
    sim.clear_faults()
    sim.clear_action_faults()


def settings(sim, **extra):
    base = {"api_endpoint": sim.url + "/v1", "timeout": 10, "retries": 2, "backoff": 0.05,
            "action_timeout": 5, "poll_interval": 0.02}
    base.update(extra)
    return base


def client(sim, token=TOKEN, **extra):
    return hdc.DNSClient(settings(sim, **extra), lambda: hecate_secrets.Secret(token))


def name():
    return "t" + uuid.uuid4().hex[:8]


def test_hcloud_internals_hecate_relies_on_still_exist():
    """hecate sets these on hcloud's ClientBase (2.27); an upgrade that renames them must fail here."""
    base = hcloud.Client(token="x")._client  # pylint: disable=protected-access
    for attr in ("_session", "_retry_max_retries", "_retry_interval_func", "_retry_policy"):
        assert hasattr(base, attr), attr
    assert base._retry_policy(hcloud.APIException("rate_limit_exceeded", "m", None))  # pylint: disable=protected-access


def test_the_session_is_hecates_tls_and_no_environment(sim, tmp_path, monkeypatch):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/nonexistent/ca.pem")
    c = client(sim)
    c.zone(ZONE)
    session = c._client._client._session  # pylint: disable=protected-access
    assert session.trust_env is False and session.verify is True
    ca = tmp_path / "ca.pem"
    ca.write_text("not used")
    c = client(sim, ca_bundle=str(ca))
    c.zone(ZONE)
    assert c._client._client._session.verify == str(ca)  # pylint: disable=protected-access
    with pytest.raises(salt.exceptions.SaltInvocationError, match="ca_bundle: /nope does not exist"):
        client(sim, ca_bundle="/nope").zone(ZONE)


def test_listing_reads_every_page_once_and_filters_by_label(sim):
    c = client(sim)
    got = c.rrsets("paged.example")
    assert len(got) == MANY + 2  # the filler plus SOA and NS
    pages = [r["query"] for r in sim.requests() if r["path"].endswith("/rrsets")]
    assert pages == ["page=1&per_page=50", "page=2&per_page=50", "page=3&per_page=50"]
    n = name()
    c.create(ZONE, n, "A", 300, HECATE, ["192.0.2.1"])
    owned = c.rrsets(ZONE, label_selector="managed-by=hecate")
    assert [r["name"] for r in owned] == [n] and owned[0]["labels"] == HECATE
    assert c.rrsets(ZONE, label_selector="managed-by=hecate,hecate-env in (prod,staging)") == []
    assert [r["name"] for r in c.rrsets(ZONE, label_selector="!managed-by") if r["type"] == "A"] == ["mail"]
    c.delete(ZONE, n, "A")


def test_writes_wait_for_their_actions(sim):
    c, n = client(sim), name()
    c.create(ZONE, n, "TXT", 300, HECATE, ['"one"'])
    c.set_records(ZONE, n, "TXT", ['"two"', '"three"'])
    c.change_ttl(ZONE, n, "TXT", 900)
    c.set_labels(ZONE, n, "TXT", dict(HECATE, note="x"))
    got = c.rrset(ZONE, n, "TXT")
    assert got["ttl"] == 900 and sorted(r["value"] for r in got["records"]) == ['"three"', '"two"']
    assert got["labels"]["note"] == "x"
    c.delete(ZONE, n, "TXT")
    assert c.rrset(ZONE, n, "TXT") is None
    assert [cmd for _, cmd in c.writes] == ["create_rrset", "set_rrset_records", "change_rrset_ttl", None,
                                            "delete_rrset"]
    # every action was read until it finished (it runs 50 ms in the simulator)
    assert sum(1 for r in sim.requests() if r["path"].startswith("/v1/actions/")) >= 4


def test_rate_limit_exceeded_is_retried_then_succeeds(sim):
    sim.fault(method="POST", path=r"/rrsets$", status=429, times=1,
              body={"error": {"code": "rate_limit_exceeded", "message": "limit of 3600 requests per hour reached",
                              "details": {}}})
    c, n = client(sim), name()
    c.create(ZONE, n, "A", 300, HECATE, ["192.0.2.1"])
    posts = [r["status"] for r in sim.requests() if r["method"] == "POST"]
    assert posts == [429, 201]
    assert c.rrset(ZONE, n, "A")["records"] == [{"value": "192.0.2.1", "comment": ""}]
    c.delete(ZONE, n, "A")


def test_rate_limit_that_lasts_fails_with_the_code(sim):
    sim.fault(method="GET", path=r"/rrsets$", status=429, times=10,
              body={"error": {"code": "rate_limit_exceeded", "message": "limit reached", "details": {}}})
    with pytest.raises(salt.exceptions.CommandExecutionError,
                       match=r"Hetzner DNS API: list RRSets of zone example.com: rate_limit_exceeded: limit reached"):
        client(sim, retries=1).rrsets(ZONE)


def test_an_action_that_fails_names_its_error(sim):
    n = name()
    sim.action_fault(command="create_rrset", outcome="error", times=1,
                     error={"code": "dns_update_failed", "message": "the zone could not be published"})
    with pytest.raises(hdc.ActionFailed) as err:
        client(sim).create(ZONE, n, "A", 300, HECATE, ["192.0.2.1"])
    text = str(err.value)
    assert f"create {n}.example.com A: action create_rrset #" in text
    assert "failed: dns_update_failed: the zone could not be published" in text


def test_an_action_that_never_finishes_times_out_naming_it(sim):
    c = client(sim, action_timeout=0.3)
    n = name()
    c.create(ZONE, n, "A", 300, HECATE, ["192.0.2.1"])
    sim.action_fault(command="set_rrset_records", outcome="stuck", times=1)
    with pytest.raises(hdc.ActionFailed, match=rf"set the records of {n}.example.com A: action set_rrset_records "
                                               r"#\d+ did not finish within 0.3s \(still running"):
        c.set_records(ZONE, n, "A", ["192.0.2.2"])
    c.delete(ZONE, n, "A")


def test_api_errors_carry_code_message_and_fields(sim):
    c = client(sim)
    with pytest.raises(salt.exceptions.CommandExecutionError, match="uniqueness_error: rrset mail/A already exists"):
        c.create(ZONE, "mail", "A", 300, HECATE, ["192.0.2.1"])
    with pytest.raises(salt.exceptions.CommandExecutionError,
                       match=r"invalid_input: .*\[fields: records\[0\]\.value \('not-quoted' must be one or more"):
        c.create(ZONE, name(), "TXT", 300, HECATE, ["not-quoted"])
    with pytest.raises(salt.exceptions.CommandExecutionError, match="zone nowhere.example does not exist"):
        c.zone("nowhere.example")
    with pytest.raises(salt.exceptions.CommandExecutionError, match="zone secondary.example is in secondary mode"):
        c.zone("secondary.example")


def test_a_wrong_token_is_named_as_such_and_never_shown(sim):
    wrong = "wrong-" + uuid.uuid4().hex
    with pytest.raises(salt.exceptions.CommandExecutionError) as err:
        client(sim, token=wrong).zone(ZONE)
    assert "unauthorized" in str(err.value) and "hecate:connections:hetzner_dns:token" in str(err.value)
    assert wrong not in str(err.value) and TOKEN not in str(err.value)


def test_a_missing_token_and_an_unreachable_api_are_clear():
    with pytest.raises(salt.exceptions.SaltInvocationError, match="hetzner_dns:token .* is not set"):
        hdc.DNSClient({"api_endpoint": "http://127.0.0.1:9/v1"}, lambda: None).zone(ZONE)
    port = procs.free_port()
    c = hdc.DNSClient({"api_endpoint": f"http://127.0.0.1:{port}/v1", "retries": 0},
                      lambda: hecate_secrets.Secret(TOKEN))
    with pytest.raises(hecate_http.Unreachable, match=rf"Hetzner DNS API at http://127.0.0.1:{port}: read zone "
                                                      r"example.com: unreachable \(connection refused\)"):
        c.zone(ZONE)


def test_apply_puts_back_what_it_changed_when_a_later_write_fails(sim):
    c = client(sim)
    keep, fails, gone = name(), name(), name()
    c.create(ZONE, keep, "A", 300, HECATE, ["192.0.2.1"])
    c.create(ZONE, gone, "A", 300, HECATE, ["192.0.2.9"])
    before = {r["name"]: r for r in c.rrsets(ZONE)}
    wanted = {(keep, "A"): rec.Desired(ZONE, keep, "A", 600, ("192.0.2.2",), ("test",)),
              (fails, "A"): rec.Desired(ZONE, fails, "A", 300, ("192.0.2.3",), ("test",))}
    live = [r for r in before.values() if r["name"] in (keep, gone)]
    ops, conflicts = rec.plan(ZONE, wanted, live, "lab")
    assert conflicts == [] and [o.kind for o in ops] == ["delete", "update", "create"]
    sim.action_fault(command="create_rrset", rrset=f"{fails}/A", outcome="error", times=1)
    with pytest.raises(hdc.ApplyFailed, match="were put back as they were") as err:
        hdc.apply(c, ops, "lab")
    assert err.value.left == []
    after = {r["name"]: r for r in c.rrsets(ZONE)}
    for n in (keep, gone):
        assert (after[n]["ttl"], after[n]["records"], after[n]["labels"]) == \
            (before[n]["ttl"], before[n]["records"], before[n]["labels"])
    assert fails not in after
    for n in (keep, gone):
        c.delete(ZONE, n, "A")


def test_from_config_resolves_the_token_only_when_it_is_used(monkeypatch, sim):
    calls = []
    monkeypatch.setattr(hdc.hecate_vault_client.Resolver, "__call__",
                        lambda self, value, where="": calls.append((value, where)) or hecate_secrets.Secret(TOKEN))
    ref = {"vault": "secret/hecate/hetzner", "key": "dns_api_token"}
    pillar = {"hecate": {"dns": {"token": ref},
                         "connections": {"hetzner_dns": {"api_endpoint": sim.url + "/v1"}}}}
    c = hdc.from_config({}, pillar, context={})
    assert calls == []
    c.zone(ZONE)
    assert calls == [(ref, "hecate:dns:token")]
    assert requests.get(sim.url + "/v1/zones", timeout=5).status_code == 401  # the simulator checks it
