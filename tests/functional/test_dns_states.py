"""
The hetzner_dns states and execution module through real Salt loaders, against a Hetzner
simulator of their own (zone func.example with records someone else made), the API token
read from the Vault simulator as in production.
"""

import copy
import json
import os
import uuid

import pytest
import yaml
from saltfactories.utils.functional import Loaders

from lab import topology
from lab.sim import SimHandle

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ZONE = "func.example"
TOKEN = "func-hcloud-" + uuid.uuid4().hex
EDGE4, EDGE6 = "203.0.113.10", "2001:db8:10::10"
FOREIGN = [
    {"name": "@", "type": "TXT", "ttl": 3600, "records": ['"site-verification=func"']},
    {"name": "mail", "type": "A", "ttl": 3600, "labels": {"owner": "mail-team"}, "records": ["203.0.113.25"]},
    {"name": "prod", "type": "A", "ttl": 300, "labels": {"managed-by": "hecate", "hecate-env": "prod"},
     "records": ["198.51.100.1"]},
]


def dns_pillar(routes=("app", "*.apps", "@"), records=None):
    return {
        "global": {"domain": ZONE, "environment": "func"},
        "reverse_proxy": {"caddy": {"routes": [
            {"domain": ZONE if r == "@" else f"{r}.{ZONE}", "backend": "127.0.0.1:1", "service": f"s{i}"}
            for i, r in enumerate(routes)]}},
        "dns": {
            "zones": [{"name": ZONE}],
            "ttl": 300,
            "edge": {"ipv4": [EDGE4], "ipv6": [EDGE6]},
            "caa": {"issue": ["letsencrypt.org"]},
            "records": records if records is not None else [
                {"name": f"www.{ZONE}", "type": "CNAME", "value": ZONE},
                {"name": f"_dmarc.{ZONE}", "type": "TXT", "value": "v=DMARC1; p=reject"},
            ],
            "token": {"vault": "secret/hecate/hetzner-func", "key": "dns_api_token"},
        },
    }


@pytest.fixture(scope="module")
def dns_sim(tmp_path_factory):
    handle = SimHandle("hetzner", str(tmp_path_factory.mktemp("dns-sim")), {
        "token": TOKEN, "action_seconds": 0.02,
        "zones": [{"name": ZONE, "rrsets": copy.deepcopy(FOREIGN)}],
    }).start()
    yield handle
    handle.stop()


@pytest.fixture(scope="module")
def minion_opts(salt_factories, tmp_path_factory, dns_sim, vault_sim):
    topology.seed_vault(vault_sim.url, vault_sim.root_token,
                        {("secret", "hecate/hetzner-func"): {"dns_api_token": TOKEN}})
    roots = tmp_path_factory.mktemp("dns-func")
    (roots / "states").mkdir()
    (roots / "pillar").mkdir()
    for phase in ("all", "add", "prune"):
        (roots / "states" / f"dns_{phase}.sls").write_text(
            f"hecate dns records:\n  hetzner_dns.managed:\n    - phase: {phase}\n")
    (roots / "states" / "dns_clear.sls").write_text("hecate dns records:\n  hetzner_dns.cleared: []\n")
    (roots / "pillar" / "top.sls").write_text("base:\n  '*':\n    - dnstest\n")
    (roots / "pillar" / "dnstest.sls").write_text(yaml.safe_dump({"hecate": dns_pillar()}))
    overrides = {
        "file_client": "local",
        "module_dirs": [REPO],
        "file_roots": {"base": [str(roots / "states")]},
        "pillar_roots": {"base": [str(roots / "pillar")]},
        "hecate": {"connections": {
            "vault": {"url": vault_sim.url, "token": vault_sim.root_token},
            "hetzner_dns": topology.hetzner_connection(dns_sim.url),
        }},
    }
    factory = salt_factories.salt_minion_daemon(f"dns-func-{uuid.uuid4().hex[:6]}", overrides=overrides)
    return factory.config.copy()


@pytest.fixture(scope="module")
def loaders(minion_opts):
    return Loaders(minion_opts, loaded_base_name=f"{__name__}.loaded")


def managed(loaders, pillar=None, test=False, phase="all"):
    kwargs = {"test": test}
    if pillar is not None:
        kwargs["pillar"] = {"hecate": pillar}
    ret = loaders.modules.state.sls(f"dns_{phase}", **kwargs)  # phase "clear": hetzner_dns.cleared
    (result,) = list(ret)
    return result


def zone(dns_sim):
    return dns_sim.state()["zones"][ZONE]


def foreign(dns_sim):
    return {k: v for k, v in zone(dns_sim).items() if v["labels"].get("hecate-env") != "func"
            and not k.startswith("@/SOA")}


def writes(dns_sim):
    return [(r["method"], r["path"]) for r in dns_sim.writes()]


@pytest.fixture
def clean(dns_sim, loaders):
    """Start from a zone without func's records (what other tests left is deleted)."""
    nothing = dns_pillar(routes=(), records=[])
    nothing["dns"]["caa"] = None
    assert managed(loaders, nothing).result is True
    dns_sim.clear_requests()
    dns_sim.clear_faults()
    dns_sim.clear_action_faults()
    yield dns_sim
    dns_sim.clear_action_faults()


def test_preview_writes_nothing_apply_matches_it_rerun_writes_nothing(clean, loaders):
    before_foreign = foreign(clean)
    preview = managed(loaders, test=True)
    assert preview.result is None and "nothing written" in preview.comment
    assert writes(clean) == []
    assert preview.changes == {
        f"app.{ZONE} A": {"old": None, "new": {"ttl": 300, "values": [EDGE4]}},
        f"app.{ZONE} AAAA": {"old": None, "new": {"ttl": 300, "values": [EDGE6]}},
        f"*.apps.{ZONE} A": {"old": None, "new": {"ttl": 300, "values": [EDGE4]}},
        f"*.apps.{ZONE} AAAA": {"old": None, "new": {"ttl": 300, "values": [EDGE6]}},
        f"{ZONE} A": {"old": None, "new": {"ttl": 300, "values": [EDGE4]}},
        f"{ZONE} AAAA": {"old": None, "new": {"ttl": 300, "values": [EDGE6]}},
        f"{ZONE} CAA": {"old": None, "new": {"ttl": 300, "values": ['0 issue "letsencrypt.org"']}},
        f"www.{ZONE} CNAME": {"old": None, "new": {"ttl": 300, "values": [f"{ZONE}."]}},
        f"_dmarc.{ZONE} TXT": {"old": None, "new": {"ttl": 300, "values": ['"v=DMARC1; p=reject"']}},
    }
    applied = managed(loaders)
    assert applied.result is True and applied.changes == preview.changes
    assert "9 created" in applied.comment
    live = zone(clean)
    assert live["*.apps/A"]["records"] == [{"value": EDGE4, "comment": ""}]
    assert live["app/AAAA"]["labels"] == {"managed-by": "hecate", "hecate-env": "func"}
    assert len([w for w in writes(clean) if w[0] == "POST"]) == 9
    clean.clear_requests()
    again = managed(loaders)
    assert again.result is True and again.changes == {}
    assert "hecate RRSets of func.example are as in pillar" in again.comment
    assert writes(clean) == []
    assert foreign(clean) == before_foreign  # the TXT, mail's A and prod's A untouched
    assert TOKEN not in json.dumps([preview.changes, preview.comment, applied.comment, again.comment])


def test_a_removed_route_loses_its_records_in_the_prune_phase(clean, loaders):
    assert managed(loaders).result is True
    fewer = dns_pillar(routes=("*.apps", "@"))
    clean.clear_requests()
    add = managed(loaders, fewer, phase="add")
    assert add.result is True and add.changes == {}
    assert "2 hecate RRSet(s) no longer in pillar: deleted by the prune phase" in add.comment
    assert writes(clean) == []
    preview = managed(loaders, fewer, phase="prune", test=True)
    assert preview.result is None and preview.changes == {
        f"app.{ZONE} A": {"old": {"ttl": 300, "values": [EDGE4]}, "new": None},
        f"app.{ZONE} AAAA": {"old": {"ttl": 300, "values": [EDGE6]}, "new": None},
    }
    prune = managed(loaders, fewer, phase="prune")
    assert prune.result is True and prune.changes == preview.changes
    assert sorted(writes(clean)) == [("DELETE", f"/v1/zones/1000/rrsets/app/{t}") for t in ("A", "AAAA")]
    assert "app/A" not in zone(clean) and "mail/A" in zone(clean)


def test_cleared_deletes_every_record_of_this_environment_and_nothing_else(clean, loaders):
    assert managed(loaders).result is True
    before_foreign = foreign(clean)  # the TXT, mail's A (someone else's), prod's A (hecate, env prod)
    clean.clear_requests()
    preview = managed(loaders, phase="clear", test=True)  # pillar still wants them all
    assert preview.result is None and writes(clean) == []
    assert sorted(preview.changes) == sorted([
        f"app.{ZONE} A", f"app.{ZONE} AAAA", f"*.apps.{ZONE} A", f"*.apps.{ZONE} AAAA", f"{ZONE} A",
        f"{ZONE} AAAA", f"{ZONE} CAA", f"www.{ZONE} CNAME", f"_dmarc.{ZONE} TXT"])
    assert all(change["new"] is None for change in preview.changes.values())
    cleared = managed(loaders, phase="clear")
    assert cleared.result is True and cleared.changes == preview.changes
    assert "deleted the hecate RRSets of environment 'func' in func.example (9 deleted)" in cleared.comment
    assert {k for k, v in zone(clean).items() if v["labels"].get("hecate-env") == "func"} == set()
    assert foreign(clean) == before_foreign
    clean.clear_requests()
    again = managed(loaders, phase="clear")
    assert again.result is True and again.changes == {} and writes(clean) == []
    assert again.comment == "func.example hold(s) no hecate RRSet of environment 'func'"


def test_a_changed_edge_address_and_ttl_are_updated_in_place(clean, loaders):
    assert managed(loaders).result is True
    moved = dns_pillar()
    moved["dns"]["edge"]["ipv4"] = ["203.0.113.99"]
    moved["dns"]["zones"] = [{"name": ZONE, "ttl": 900}]
    clean.clear_requests()
    ret = managed(loaders, moved)
    assert ret.result is True
    assert ret.changes[f"app.{ZONE} A"] == {"old": {"ttl": 300, "values": [EDGE4]},
                                           "new": {"ttl": 900, "values": ["203.0.113.99"]}}
    assert ret.changes[f"app.{ZONE} AAAA"] == {"old": {"ttl": 300, "values": [EDGE6]},
                                              "new": {"ttl": 900, "values": [EDGE6]}}
    paths = [p for _, p in writes(clean)]
    assert "/v1/zones/1000/rrsets/app/A/actions/set_records" in paths
    assert "/v1/zones/1000/rrsets/app/AAAA/actions/change_ttl" in paths
    assert "/v1/zones/1000/rrsets/app/AAAA/actions/set_records" not in paths


def test_a_record_colliding_with_a_foreign_one_fails_before_writing(clean, loaders):
    colliding = dns_pillar(routes=("app", "mail"))
    ret = managed(loaders, colliding, test=True)
    assert ret.result is False and ret.changes == {}
    assert f"mail.{ZONE} A (from hecate:reverse_proxy:caddy:routes:1) collides with an RRSet hecate does not own: " \
           f"mail.{ZONE} A (labels {{'owner': 'mail-team'}}, records ['203.0.113.25'])" in ret.comment
    ret = managed(loaders, colliding)
    assert ret.result is False and "nothing was written" in ret.comment
    assert writes(clean) == []
    # another environment's hecate record is not this one's either
    ret = managed(loaders, dns_pillar(routes=("prod",)), test=True)
    assert ret.result is False and "labels {'managed-by': 'hecate', 'hecate-env': 'prod'}" in ret.comment


def test_a_failed_write_puts_back_what_the_run_changed(clean, loaders):
    assert managed(loaders, dns_pillar(routes=("app",), records=[])).result is True
    before = zone(clean)
    bigger = dns_pillar(routes=("*.apps",), records=[])
    bigger["dns"]["edge"]["ipv4"] = ["203.0.113.77"]
    clean.action_fault(command="create_rrset", rrset="*.apps/AAAA", outcome="error", times=1,
                       error={"code": "publish_failed", "message": "zone could not be published"})
    ret = managed(loaders, bigger)
    assert ret.result is False and ret.changes == {}
    assert "action create_rrset" in ret.comment and "publish_failed: zone could not be published" in ret.comment
    assert "were put back as they were" in ret.comment
    after = zone(clean)
    assert {k: (v["ttl"], v["records"], v["labels"]) for k, v in after.items() if k != "@/SOA"} == \
        {k: (v["ttl"], v["records"], v["labels"]) for k, v in before.items() if k != "@/SOA"}


def test_without_hecate_dns_nothing_is_managed(loaders, clean):
    pillar = dns_pillar()
    pillar["dns"]["enabled"] = False
    ret = managed(loaders, pillar)
    assert ret.result is True and ret.changes == {} and "not configured" in ret.comment
    assert writes(clean) == []


def test_execution_functions(clean, loaders):
    mod = loaders.modules.hetzner_dns
    assert managed(loaders).result is True
    rows = {r["rrset"]: r for r in mod.records(ZONE)}
    assert rows["mail/A"]["owner"] == "foreign" and rows["prod/A"]["owner"] == "hecate:prod"
    assert rows["app/A"]["owner"] == "hecate" and rows["app/A"]["values"] == [EDGE4]
    assert {r["rrset"] for r in mod.records(ZONE, owned=True)} >= {"app/A", "prod/A"}
    assert mod.drift() == {"in_sync": True, "changes": {}, "conflicts": [], "notes": []}
    # one record, by hand
    assert mod.present(f"extra.{ZONE}", "A", "192.0.2.1,192.0.2.2", ttl=600) == {
        f"extra.{ZONE} A": {"old": None, "new": {"ttl": 600, "values": ["192.0.2.1", "192.0.2.2"]}}}
    assert mod.present(f"extra.{ZONE}", "A", ["192.0.2.2", "192.0.2.1"], ttl=600) == {}
    drift = mod.drift()  # pillar does not have it: the managed state would delete it
    assert drift["in_sync"] is False
    assert drift["changes"][f"extra.{ZONE} A"]["action"] == "delete"
    assert mod.absent(f"extra.{ZONE}", "A")[f"extra.{ZONE} A"]["new"] is None
    assert mod.absent(f"extra.{ZONE}", "A") == {}
    with pytest.raises(Exception, match="hecate does not own it"):
        mod.present(f"mail.{ZONE}", "A", "192.0.2.1")
    with pytest.raises(Exception, match="hecate does not own it"):
        mod.absent(f"mail.{ZONE}", "A")
    with pytest.raises(Exception, match="apex NS or SOA"):
        mod.absent(ZONE, "NS")
    # what the zone answers for every route domain (a wildcard route's own name included)
    answers = mod.resolution()
    assert answers[f"app.{ZONE}"]["points_at_edge"] is True
    assert answers[f"app.{ZONE}"]["A"] == {"rrset": "app", "values": [EDGE4], "via": "exact"}
    assert answers[f"*.apps.{ZONE}"]["points_at_edge"] is True
    assert answers[ZONE]["AAAA"]["values"] == [EDGE6]
    desired = mod.desired()
    assert {r["name"] for r in desired["zones"][ZONE]} >= {f"app.{ZONE}", f"*.apps.{ZONE}", ZONE}


def test_state_present_and_absent(clean, loaders):
    states = loaders.states.hetzner_dns
    ret = states.present(f"one.{ZONE}", type="TXT", values=["hello"], test=True)
    assert ret.result is None
    assert ret.changes == {f"one.{ZONE} TXT": {"old": None, "new": {"ttl": 300, "values": ['"hello"']}}}
    assert writes(clean) == []
    assert states.present(f"one.{ZONE}", type="TXT", values=["hello"]).result is True
    assert states.present(f"one.{ZONE}", type="TXT", values=["hello"]).changes == {}
    ret = states.present(f"mail.{ZONE}", type="A", values=["192.0.2.1"])
    assert ret.result is False and "hecate does not own it" in ret.comment
    assert states.absent(f"one.{ZONE}", type="TXT").changes[f"one.{ZONE} TXT"]["new"] is None
    assert states.absent(f"one.{ZONE}", type="TXT").changes == {}
