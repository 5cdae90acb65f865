"""
Routes from Consul in the lab (issue 14): a team's own job in the lab's Nomad registers a
Consul service tagged ``hecate-route`` with ``meta.hecate_domain``; ``salt-run
hecate.sync_routes`` gives it a Caddy route and a DNS record (previewed first, writing
nothing), a re-run writes nothing at all, ``hecate.route`` shows it end to end, and when
the job stops both go - this time through the Salt reactor of docs/systems/caddy.md
(salt/reactor/hecate_sync_routes.sls, in the test master's config), as a Consul watch on
the edge would trigger it. A Consul service claiming a name held by a record someone else
made never touches that record. Fixtures (stack, overrides) are in conftest.py.
"""

import json
import os
import time

import requests

from tests import caddy_helpers
from tests.orch_helpers import clear, lock_holder, writes

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
JOB = os.path.join(REPO, "tests", "fixtures", "whoami-route-job.nomad.hcl")
DOMAIN = "whoami.cybermonkey.dev"
SERVER = "hecate"


def consul_get(sim, path):
    resp = requests.get(sim.url + path, headers={"X-Consul-Token": sim.token}, timeout=10)
    resp.raise_for_status()
    return resp.json()


def consul_put(sim, path, body=None):
    resp = requests.put(sim.url + path, data=json.dumps(body) if body is not None else None,
                        headers={"X-Consul-Token": sim.token}, timeout=10)
    assert resp.status_code == 200, resp.text


def wait(predicate, what, timeout=90):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def run_job(nomad):
    with open(JOB, encoding="utf-8") as fh:
        hcl = fh.read()
    headers = {"X-Nomad-Token": nomad.token}
    job = requests.post(f"{nomad.url}/v1/jobs/parse", json={"JobHCL": hcl, "Canonicalize": True},
                        headers=headers, timeout=10)
    job.raise_for_status()
    resp = requests.post(f"{nomad.url}/v1/jobs", json={"Job": job.json()}, headers=headers, timeout=10)
    assert resp.status_code == 200, resp.text


def passing(consul):
    return bool(consul_get(consul, "/v1/health/service/whoami?passing=1"))


def sync(salt_run_cli, test=False):
    args = ["hecate.sync_routes", "env=lab"] + (["test=True"] if test else [])
    ret = salt_run_cli.run(*args)
    assert isinstance(ret.data, dict), ret
    return ret


def zone(hetzner):
    return hetzner.state()["zones"]["cybermonkey.dev"]


def foreign(hetzner):
    """The zone's RRSets that are not hecate's (the SOA aside: its serial follows every change)."""
    return {k: v for k, v in zone(hetzner).items() if v["labels"].get("managed-by") != "hecate" and k != "@/SOA"}


def caddy_changes(ret):
    return ret.data["changes"]["cloud"].get("hecate caddy routes")


def no_writes_anywhere(stack, caddy_writes):
    for name, sim in stack["sims"].items():
        assert writes(name, sim) == [], name  # no lock either: nothing changed
    assert caddy_helpers.writes(stack["caddy"]) == caddy_writes


def test_a_nomad_service_tagged_for_hecate_gets_a_route_and_a_record_and_loses_both(salt_run_cli, salt_cli, stack,
                                                                                   overrides):
    sims, caddy = stack["sims"], stack["caddy"]
    overrides({"hecate": {"reverse_proxy": {"caddy": {
        "consul_routes": {"tag": "hecate-route"},
        # routes whose upstreams need nothing running (the BionicGPT route needs its jobs)
        "routes": [{"domain": "static.cybermonkey.dev", "backend": "127.0.0.1:9", "service": "static"}],
        "probe": {"url": f"http://127.0.0.1:{caddy.http_port}"},
    }}}})
    requests.delete(f"{sims['nomad'].url}/v1/job/whoami?purge=true",
                        headers={"X-Nomad-Token": sims["nomad"].token}, timeout=10)
    # a service someone registered by hand claims a name whose record is not hecate's
    consul_put(sims["consul"], "/v1/agent/service/register", {
        "ID": "mailer", "Name": "mailer", "Tags": ["hecate-route"], "Address": "127.0.0.1", "Port": 9,
        "Meta": {"hecate_domain": "mail.cybermonkey.dev"}})
    try:
        first = sync(salt_run_cli)
        assert first.returncode == 0, first
        foreign_before = foreign(sims["hetzner"])
        assert "mail/A" in foreign_before

        # the job starts; Nomad registers its service in Consul, the check passes
        run_job(sims["nomad"])
        wait(lambda: passing(sims["consul"]), "whoami passing in Consul")

        caddy_writes = clear(stack)
        preview = sync(salt_run_cli, test=True)
        assert preview.returncode == 0, preview
        assert preview.data["test"] is True and preview.data["comment"].startswith("would change")
        no_writes_anywhere(stack, caddy_writes)
        route = caddy_changes(preview)["added"]["consul.whoami"]
        assert route["domains"] == [DOMAIN] and len(route["upstreams"]) == 1
        dns_add = preview.data["changes"]["cloud"]["hecate dns records (add)"]
        assert set(dns_add) == {f"{DOMAIN} A", f"{DOMAIN} AAAA"}

        applied = sync(salt_run_cli)
        assert applied.returncode == 0, applied
        assert applied.data["changes"] == preview.data["changes"]
        resp = caddy_helpers.through(caddy, DOMAIN)
        assert resp.status_code == 200 and "task whoami (service whoami" in resp.text
        assert zone(sims["hetzner"])["whoami/A"]["labels"]["managed-by"] == "hecate"
        comments = json.dumps(applied.data["states"])
        assert "mail.cybermonkey.dev A (from Consul service 'mailer') not made" in comments

        caddy_writes = clear(stack)
        again = sync(salt_run_cli)
        assert again.returncode == 0 and again.data["changes"] == {}, again
        assert again.data["comment"] == "the routes are in line on every edge: nothing written"
        no_writes_anywhere(stack, caddy_writes)

        # the route end to end
        ret = salt_run_cli.run("hecate.route", f"domain={DOMAIN}", "env=lab")
        assert ret.returncode == 0, ret
        rows = {r["aspect"]: r for r in ret.data["rows"]}
        assert list(rows) == ["source", "dns", "caddy", "upstream", "forward_auth", "certificate", "request"]
        assert rows["source"]["ok"] is True and rows["source"]["service"] == "whoami"
        assert rows["source"]["meta"] == {"hecate_domain": DOMAIN}
        assert rows["dns"]["ok"] is True and rows["dns"]["A"]["values"] == ["203.0.113.10"]
        assert rows["caddy"]["ok"] is True
        assert rows["caddy"]["edges"]["cloud"]["id"] == "hecate.route.consul.whoami"
        assert rows["caddy"]["edges"]["cloud"]["in_sync"] is True
        assert rows["upstream"]["ok"] is True and rows["upstream"]["instances"][0]["status"] == "passing"
        assert rows["forward_auth"]["ok"] is True and rows["forward_auth"]["enabled"] is False
        assert rows["certificate"]["ok"] is None  # the lab's Caddy listens in plain HTTP
        assert "no TLS listener" in rows["certificate"]["summary"]
        assert rows["request"]["ok"] is True and rows["request"]["status"] == 200 and rows["request"]["ms"] >= 0
        assert ret.data["report"][0] == f"route {DOMAIN}" and len(ret.data["report"]) == 8
        # a domain nobody routes
        ret = salt_run_cli.run("hecate.route", "domain=nobody.cybermonkey.dev", "env=lab")
        assert ret.returncode != 0 and ret.data["rows"][0]["ok"] is False

        # the certificates part of hecate.status: no TLS in the lab, which is no failure
        status = salt_run_cli.run("hecate.status", "env=lab").data
        certs = status["certificates"]
        assert certs["ok"] is True and certs["errors"] == [] and certs["expiring"] == []
        assert certs["domains"][DOMAIN]["cloud"]["skipped"].startswith("no TLS listener")

        # the job stops: Nomad deregisters the service; the route and the record go
        requests.delete(f"{sims['nomad'].url}/v1/job/whoami?purge=true",
                        headers={"X-Nomad-Token": sims["nomad"].token}, timeout=10)
        wait(lambda: not consul_get(sims["consul"], "/v1/health/service/whoami"), "whoami gone from Consul")
        caddy_writes = clear(stack)
        preview = sync(salt_run_cli, test=True)
        assert preview.returncode == 0, preview
        no_writes_anywhere(stack, caddy_writes)
        assert set(caddy_changes(preview)["removed"]) == {"consul.whoami"}
        prune = preview.data["changes"]["cloud"]["hecate dns records (prune)"]
        assert prune == {f"{DOMAIN} A": {"old": {"ttl": 300, "values": ["203.0.113.10"]}, "new": None},
                         f"{DOMAIN} AAAA": {"old": {"ttl": 300, "values": ["2001:db8:10::10"]}, "new": None}}
        # what a Consul watch on the edge runs: the reactor runs hecate.sync_routes
        sent = salt_cli.run("event.send", "hecate/routes/sync", "env=lab", minion_tgt="cloud")
        assert sent.returncode == 0 and sent.data is True, sent
        # the reactor's run deletes the RRSets one after the other: wait for the last of them
        wait(lambda: not {"whoami/A", "whoami/AAAA"} & set(zone(sims["hetzner"])),
             "the reactor's sync to delete the records")
        assert "hecate.route.consul.whoami" not in caddy_helpers.raw_config(caddy).decode()
        wait(lambda: lock_holder(sims["consul"]) is None, "the reactor's sync to release the lock")
        caddy_writes = clear(stack)
        assert sync(salt_run_cli).data["changes"] == {}
        no_writes_anywhere(stack, caddy_writes)
        assert foreign(sims["hetzner"]) == foreign_before
    finally:
        consul_put(sims["consul"], "/v1/agent/service/deregister/mailer")
        requests.delete(f"{sims['nomad'].url}/v1/job/whoami?purge=true",
                        headers={"X-Nomad-Token": sims["nomad"].token}, timeout=10)
