"""
Teardown in the lab (issue 16): `salt-run state.orch orch.bionicgpt pillar='{"env": "lab",
"ensure": "absent"}'` through the factories master, the minions, the real Caddy and the
simulators. The environment is deployed with a protected route and an application with its
own sign-in (so every kind of object hecate makes exists), objects hecate does not own are
added next to hecate's, then: the preview writes nothing and announces exactly what the
teardown removes; the teardown removes hecate's objects only (Caddy routes, DNS records,
Authentik objects, Nomad jobs purged, external Consul services), keeps Vault's generated
secrets and is recorded; a second teardown writes nothing. At the end the foreign objects go
and the lab is deployed again, as the session's other tests expect it.
"""

import contextlib
import json
import os
import time

import pytest
import requests

import hecate_plan
from tests import caddy_helpers
from tests.orch_helpers import BOOKKEEPING, clear, job, lock_holder, managed_routes, objects, orch, steps, writes

pytestmark = pytest.mark.long

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
JOB_FILE = os.path.join(REPO, "tests", "fixtures", "whoami-route-job.nomad.hcl")
TEARDOWN_STEPS = ("caddy", "dns", "authentik", "nomad_jobs", "consul_services")
JOBS = ("bionicgpt-database", "bionicgpt-llm", "bionicgpt-application")
JOB_SERVICES = ("bionicgpt-postgres", "ollama", "litellm", "bionicgpt", "bionicgpt-oauth2-proxy")
EXTERNAL = ("wazuh-master", "jenkins-master")  # service IDs (hecate:consul:services)
GROUPS = ("bionicgpt-superadmin", "bionicgpt-demo-tenant")
APP = {"protocol": "oidc", "name": "Grafana", "groups": ["bionicgpt-superadmin"],
       "credentials": "secret/hecate/teardown-grafana",
       "redirect_uris": ["https://observe.cybermonkey.dev/login/generic_oauth"]}
# Not hecate's: a route without an @id and one with someone else's, a group carrying the
# BionicGPT prefix that pillar does not list, an application marked by another environment,
# a user who enrolled, a job with the BionicGPT prefix, a service registered by hand, and an
# RRSet labelled for another environment (the lab's zones hold foreign RRSets already).
FOREIGN_ROUTES = [
    {"match": [{"host": ["ops.example.com"]}], "handle": [{"handler": "static_response", "body": "ops"}]},
    {"@id": "ops.maintenance", "match": [{"host": ["maint.example.com"]}],
     "handle": [{"handler": "static_response", "body": "maintenance"}]},
]
FOREIGN_GROUP = "bionicgpt-team-extra"
FOREIGN_APP = {"name": "Staging wiki", "slug": "staging-wiki", "meta_publisher": "hecate/staging/app/wiki"}
FOREIGN_USER = "alice"
FOREIGN_JOB = "bionicgpt-team-whoami"
FOREIGN_SERVICE = "backup-agent"
FOREIGN_RRSET = {"name": "staging-app", "type": "A", "ttl": 300, "records": [{"value": "198.51.100.7"}],
                 "labels": {"managed-by": "hecate", "hecate-env": "staging"}}


def run(salt_run_cli, test=False, **pillar):
    """``salt-run state.orch orch.bionicgpt pillar='{"env": "lab", ...}' [test=True]``."""
    args = ["state.orch", "orch.bionicgpt", f"pillar={json.dumps(dict({'env': 'lab'}, **pillar))}"]
    ret = salt_run_cli.run(*args, *(["test=True"] if test else []))
    return ret


def teardown(salt_run_cli, test=False, **pillar):
    ret = run(salt_run_cli, test=test, ensure="absent", **pillar)
    assert isinstance(ret.data, dict) and "data" in ret.data, ret
    return ret


# -- reading the systems ---------------------------------------------------------------------------
def ak_objects(sims):
    return sims["authentik"].state()["objects"]


def ak_names(sims, kind, field="name"):
    return {o.get(field) for o in ak_objects(sims).get(kind, [])}


def ak_api(sims, method, path, body=None):
    ak = sims["authentik"]
    resp = requests.request(method, f"{ak.url}/api/v3{path}", json=body, timeout=10,
                            headers={"Authorization": f"Bearer {ak.token}"})
    assert resp.status_code in (200, 201, 204), (path, resp.status_code, resp.text)
    return resp.json() if resp.content else None


def consul(sims, method, path, body=None):
    resp = requests.request(method, sims["consul"].url + path, json=body, timeout=10,
                            headers={"X-Consul-Token": sims["consul"].token})
    assert resp.status_code == 200, (path, resp.text)
    return resp.json() if resp.content else None


def services(sims):
    return consul(sims, "GET", "/v1/agent/services")


def nomad_services(sims, names):
    """The ids of the services Nomad registered in Consul for services named ``names``."""
    return sorted(sid for sid, svc in services(sims).items()
                  if sid.startswith("_nomad-task-") and svc.get("Service") in names)


def rrsets(sims):
    """``{zone: {"name/TYPE": rrset}}`` of the Hetzner simulator."""
    return sims["hetzner"].state()["zones"]


def hecate_rrsets(sims, env="lab"):
    return sorted(f"{zone}:{key}" for zone, sets in rrsets(sims).items() for key, rr in sets.items()
                  if (rr.get("labels") or {}).get("managed-by") == "hecate"
                  and (rr.get("labels") or {}).get("hecate-env") == env)


def vault(sims, path):
    resp = requests.get(f"{sims['vault'].url}/v1/secret/data/{path}", timeout=10,
                        headers={"X-Vault-Token": sims["vault"].root_token})
    return resp.json()["data"]["data"] if resp.status_code == 200 else None


def caddy_routes(caddy):
    config = json.loads(caddy_helpers.raw_config(caddy))
    return config["apps"]["http"]["servers"]["hecate"].get("routes") or []


def wait(predicate, what, timeout=60):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


# -- the foreign objects ---------------------------------------------------------------------------
def add_foreign(sims, caddy):
    for route in FOREIGN_ROUTES:
        resp = requests.post(f"{caddy.admin_url}/config/apps/http/servers/hecate/routes", json=route, timeout=10)
        resp.raise_for_status()
    ak_api(sims, "POST", "/core/groups/", {"name": FOREIGN_GROUP})
    ak_api(sims, "POST", "/core/applications/", FOREIGN_APP)
    ak_api(sims, "POST", "/core/users/", {"username": FOREIGN_USER, "name": "Alice (enrolled herself)"})
    consul(sims, "PUT", "/v1/agent/service/register", {"ID": FOREIGN_SERVICE, "Name": FOREIGN_SERVICE, "Port": 9100})
    nomad = sims["nomad"]
    with open(JOB_FILE, encoding="utf-8") as fh:
        parsed = requests.post(f"{nomad.url}/v1/jobs/parse", json={"JobHCL": fh.read(), "Canonicalize": True},
                               headers=nomad.headers, timeout=10)
    parsed.raise_for_status()
    spec = dict(parsed.json(), ID=FOREIGN_JOB, Name=FOREIGN_JOB)
    resp = requests.post(f"{nomad.url}/v1/jobs", json={"Job": spec}, headers=nomad.headers, timeout=10)
    assert resp.status_code == 200, resp.text
    hetzner = sims["hetzner"]
    resp = requests.post(f"{hetzner.url}/v1/zones/cybermonkey.dev/rrsets", json=FOREIGN_RRSET, timeout=10,
                         headers={"Authorization": f"Bearer {hetzner.token}"})
    assert resp.status_code in (200, 201), resp.text
    # Nomad registers the job's service in Consul by itself: wait for it, so that its write
    # is not taken for one of hecate's
    wait(lambda: nomad_services(sims, ["whoami"]), "the foreign job's service in Consul")


def foreign_present(sims, caddy):
    """Which foreign objects are still there, per system."""
    routes = caddy_routes(caddy)
    return {
        "caddy": [r for r in routes if r in FOREIGN_ROUTES] == FOREIGN_ROUTES,
        "group": FOREIGN_GROUP in ak_names(sims, "group"),
        "application": FOREIGN_APP["slug"] in ak_names(sims, "application", "slug"),
        "user": FOREIGN_USER in ak_names(sims, "user", "username"),
        "job": job(sims["nomad"], FOREIGN_JOB) is not None,
        "service": FOREIGN_SERVICE in services(sims) and bool(nomad_services(sims, ["whoami"])),
        "rrset": "staging-app/A" in rrsets(sims)["cybermonkey.dev"],
        "mail": "mail/A" in rrsets(sims)["cybermonkey.dev"],
    }


def remove_foreign(sims, caddy):
    routes = [r for r in caddy_routes(caddy) if r not in FOREIGN_ROUTES]
    caddy_helpers.put_routes(caddy, routes)
    objs = ak_objects(sims)
    for group in objs.get("group", []):
        if group["name"] == FOREIGN_GROUP:
            ak_api(sims, "DELETE", f"/core/groups/{group['pk']}/")
    if FOREIGN_APP["slug"] in ak_names(sims, "application", "slug"):
        ak_api(sims, "DELETE", f"/core/applications/{FOREIGN_APP['slug']}/")
    for user in objs.get("user", []):
        if user["username"] == FOREIGN_USER:
            ak_api(sims, "DELETE", f"/core/users/{user['pk']}/")
    consul(sims, "PUT", f"/v1/agent/service/deregister/{FOREIGN_SERVICE}")
    nomad = sims["nomad"]
    requests.delete(f"{nomad.url}/v1/job/{FOREIGN_JOB}?purge=true", headers=nomad.headers, timeout=10)
    hetzner = sims["hetzner"]
    requests.delete(f"{hetzner.url}/v1/zones/cybermonkey.dev/rrsets/staging-app/A", timeout=10,
                    headers={"Authorization": f"Bearer {hetzner.token}"})
    wait(lambda: not nomad_services(sims, ["whoami"]), "the foreign job's service to leave Consul")


# -- the scenario ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def scenario(salt_run_cli, stack):
    """
    Deploy with every kind of object, add foreign ones, preview, tear down, tear down again;
    then remove the foreign objects and deploy the lab again.
    """
    sims, caddy = stack["sims"], stack["caddy"]
    overrides = os.path.join(stack["pillar_dir"], "lab_overrides.sls")
    chat = {"domain": "chat.codemonkey.ai", "upstream": {"consul_service": "bionicgpt-oauth2-proxy"},
            "service": "bionicgpt"}
    protected = {"domain": "whoami.cybermonkey.dev", "backend": "127.0.0.1:9", "service": "whoami",
                 "auth": {"groups": ["bionicgpt-superadmin"]}}
    with open(overrides, "w", encoding="utf-8") as fh:
        json.dump({"hecate": {
            "reverse_proxy": {"caddy": {"routes": [chat, protected],
                                        "forward_auth": {"outpost": sims["authentik"].url.split("//", 1)[1]}}},
            "authentik": {"applications": {"grafana": APP}}}}, fh)
    out, done = {}, False
    try:
        deployed = orch(salt_run_cli)
        assert deployed.returncode == 0, deployed
        add_foreign(sims, caddy)
        out["before"] = {
            "routes": [r["@id"] for r in managed_routes(caddy)],
            "rrsets": hecate_rrsets(sims),
            "foreign": foreign_present(sims, caddy),
            "db": vault(sims, "bionicgpt/db"),
            "grafana": vault(sims, "hecate/teardown-grafana"),
            "providers": ak_names(sims, "provider_proxy") | ak_names(sims, "provider_oauth2"),
        }
        caddy_writes = clear(stack)
        out["preview"] = teardown(salt_run_cli, test=True)
        out["preview_writes"] = {name: writes(name, sim) for name, sim in sims.items()}
        out["preview_caddy_writes"] = caddy_helpers.writes(caddy) - caddy_writes
        out["purge_preview"] = teardown(salt_run_cli, test=True, purge_secrets=True)
        out["purge_preview_writes"] = {name: writes(name, sim) for name, sim in sims.items()}
        out["bad"] = run(salt_run_cli, ensure="gone")
        out["bad_writes"] = {name: writes(name, sim) for name, sim in sims.items()}

        out["applied"] = teardown(salt_run_cli)
        wait(lambda: not nomad_services(sims, JOB_SERVICES), "Nomad to take the purged jobs' services out of Consul")
        out["after"] = {
            "routes": managed_routes(caddy),
            "rrsets": hecate_rrsets(sims),
            "foreign": foreign_present(sims, caddy),
            "jobs": {j: job(sims["nomad"], j) for j in JOBS},
            "services": services(sims),
            "db": vault(sims, "bionicgpt/db"),
            "grafana": vault(sims, "hecate/teardown-grafana"),
            "objects": ak_objects(sims),
            "lock": lock_holder(sims["consul"]),
            "history": salt_run_cli.run("hecate.history", "env=lab", "limit=1").data["records"],
        }
        caddy_writes = clear(stack)
        out["again"] = teardown(salt_run_cli)
        out["again_writes"] = {name: writes(name, sim, BOOKKEEPING.get(name, ())) for name, sim in sims.items()}
        out["again_caddy_writes"] = caddy_helpers.writes(caddy) - caddy_writes
        out["rollback"] = salt_run_cli.run("hecate.rollback", "env=lab", f"to={out['after']['history'][0]['run_id']}")

        # the session's other tests expect the lab as deployed: without the foreign objects
        # and the overrides, deployed again from nothing
        remove_foreign(sims, caddy)
        os.unlink(overrides)
        out["redeployed"] = orch(salt_run_cli)
        out["chat"] = caddy_helpers.through(caddy, "chat.codemonkey.ai", "/")
        done = True
    finally:
        if not done:  # a failure above: leave the lab as the other tests expect it anyway
            with contextlib.suppress(Exception):
                remove_foreign(sims, caddy)
            if os.path.exists(overrides):
                os.unlink(overrides)
            orch(salt_run_cli)
    return out


def test_the_preview_announces_every_removal_and_writes_nothing(scenario):
    preview = scenario["preview"]
    assert preview.returncode == 0, preview
    got = steps(preview)
    for step in TEARDOWN_STEPS:
        assert got[step]["result"] is None, (step, got[step])
    assert scenario["preview_writes"] == {name: [] for name in scenario["preview_writes"]}
    assert scenario["preview_caddy_writes"] == 0
    # without purge_secrets there is no secrets step at all; the deploy's steps are not there
    assert "secrets_node" not in got and "wireguard" not in got and "nomad_agent" not in got
    keys = {key for _, key in objects(preview)}
    assert "caddy_routes_|-hecate caddy routes removed_|-hecate caddy routes removed_|-absent" in keys
    assert any(k.startswith("hetzner_dns_|-") and k.endswith("_|-cleared") for k in keys), keys
    for name in ("database", "llm", "application"):
        assert f"nomad_job_|-bionicgpt nomad job {name} purged_|-bionicgpt-{name}_|-absent" in keys
    for sid in EXTERNAL:
        assert f"consul_service_|-consul service {sid} removed_|-{sid}_|-absent" in keys
    for group in GROUPS:
        assert f"authentik_group_|-authentik group {group} removed_|-{group}_|-absent" in keys
    assert "authentik_route_auth_|-hecate route auth gone_|-hecate route auth gone_|-absent" in keys
    assert "authentik_application_|-hecate applications gone_|-hecate applications gone_|-pruned" in keys


def test_the_teardown_removes_what_the_deployment_made(scenario):
    applied, before, after = scenario["applied"], scenario["before"], scenario["after"]
    assert applied.returncode == 0, applied
    assert objects(applied) == objects(scenario["preview"])  # exactly what the preview said
    assert before["routes"] == ["hecate.route.bionicgpt", "hecate.route.whoami"]
    assert after["routes"] == []
    assert before["rrsets"] and after["rrsets"] == []
    assert all(after["jobs"][j] is None for j in JOBS), after["jobs"]  # purged, not just stopped
    assert not set(EXTERNAL) & set(after["services"])
    assert not [s for s in after["services"].values() if s.get("Service") in JOB_SERVICES]
    objs = after["objects"]
    names = lambda kind, field="name": {o.get(field) for o in objs.get(kind, [])}  # noqa: E731
    assert not set(GROUPS) & names("group")
    assert not {"henry", "demo"} & names("user", "username")
    assert not {"bionicgpt", "whoami", "grafana"} & names("application", "slug")
    assert "BionicGPT OAuth2" not in names("provider_oauth2")
    assert "BionicGPT Groups Mapping" not in names("scope_mapping")
    assert "bionicgpt-enrollment" not in names("flow", "slug")
    assert not [p for p in names("provider_proxy") | names("provider_oauth2") if str(p).startswith("hecate/lab/")]
    assert {"hecate/lab/route/whoami", "hecate/lab/app/grafana"} <= before["providers"]
    assert after["lock"] is None


def test_objects_hecate_does_not_own_are_never_touched(scenario):
    assert scenario["before"]["foreign"] == {key: True for key in scenario["before"]["foreign"]}
    assert scenario["after"]["foreign"] == scenario["before"]["foreign"]


def test_generated_secrets_are_kept_and_the_run_is_recorded(scenario):
    before, after = scenario["before"], scenario["after"]
    assert after["db"] == before["db"] and set(after["db"]) == {"password", "app_password"}
    assert after["grafana"] == before["grafana"] and {"client_id", "client_secret"} <= set(after["grafana"])
    (record,) = after["history"]
    assert record["status"] == "teardown" and record["env"] == "lab"
    assert steps(scenario["applied"])["record"]["result"] is True
    assert record["run_id"] in json.dumps(steps(scenario["applied"])["record"])
    # a teardown is not a deployment to roll back to
    rollback = scenario["rollback"]
    assert rollback.returncode != 0
    assert f"record {record['run_id']} is the teardown of environment 'lab'" in rollback.data["comment"]


def test_a_second_teardown_removes_nothing_and_writes_nothing(scenario):
    again = scenario["again"]
    assert again.returncode == 0, again
    assert hecate_plan.rows(again.data) == []
    assert scenario["again_writes"] == {name: [] for name in scenario["again_writes"]}
    assert scenario["again_caddy_writes"] == 0
    assert steps(again)["record"]["comment"].startswith("State was not run because none")


def test_purge_secrets_previews_the_generated_secrets_only(scenario):
    preview = scenario["purge_preview"]
    assert preview.returncode == 0, preview
    assert scenario["purge_preview_writes"] == {name: [] for name in scenario["purge_preview_writes"]}
    got = steps(preview)
    assert got["secrets_node"]["result"] is None and got["secrets_edge"]["result"] is None
    purged = {key.split("_|-")[1] for _, key in objects(preview) if key.startswith("hecate_secret_|-")}
    assert purged == {
        "bionicgpt secret secret/bionicgpt/db#password purged",
        "bionicgpt secret secret/bionicgpt/db#app_password purged",
        "bionicgpt secret secret/bionicgpt/oauth#cookie_secret purged",
        "bionicgpt secret secret/bionicgpt/oauth#client_id purged",
        "bionicgpt secret secret/bionicgpt/oauth#client_secret purged",
        "bionicgpt secret secret/bionicgpt/litellm#master_key purged",
        "hecate application secret secret/hecate/teardown-grafana#client_id purged",
        "hecate application secret secret/hecate/teardown-grafana#client_secret purged",
    }
    # what the operator stores (the Azure key, the Authentik token) and the edge's own
    # generated secrets (the gossip key the agents use) are not in it
    assert "secret/hecate/consul" not in json.dumps(preview.data)


def test_anything_but_present_or_absent_is_refused_naming_ensure(scenario):
    bad = scenario["bad"]
    assert bad.returncode != 0
    assert 'pillar ensure must be "present" (deploy, the default) or "absent" (teardown), got "gone"' in \
        json.dumps(bad.data) + bad.stdout + bad.stderr
    assert scenario["bad_writes"] == {name: [] for name in scenario["bad_writes"]}


def test_the_environment_deploys_again_after_a_teardown(scenario):
    redeployed = scenario["redeployed"]
    assert redeployed.returncode == 0, redeployed
    chat = scenario["chat"]
    assert chat.status_code == 200 and "oauth2-proxy" in chat.text
