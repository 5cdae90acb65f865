"""
The edge's teardown in the lab (issue 16): `salt-run state.orch orch.hecate pillar='{"env":
"lab", "ensure": "absent"}'` after the edge was deployed from zero (tests/integration/
test_edge_from_zero.py: Caddy, Authentik and PostgreSQL as Nomad jobs run as the real Caddy,
the Authentik simulator and the PostgreSQL stand-in), with a protected route and an
application with its own sign-in, so every kind of object hecate makes on the edge exists.
Next to them, objects hecate does not own: a Caddy route without an @id, an Authentik group
with the BionicGPT prefix, an application marked by another environment, a user, a Nomad job
with the edge's prefix, a Consul service registered by hand.

Then: the preview writes nothing (no simulator, the job-run Caddy and Authentik, nginx, the
files) and announces what the teardown removes; the teardown removes Caddy's routes (while
Caddy runs: its autosave on the config volume has none of hecate's left), the Authentik
objects hecate made (while Authentik runs: its database on the PostgreSQL volume has none of
them left), the Consul services, nginx (stopped) and coturn's file, the edge jobs (purged);
the foreign objects, the generated secrets and the volumes' data stay; the run is recorded;
a second teardown changes and writes nothing. At the end the session's fast lab is
configured again (orch.hecate without the job-run edge), as the other tests expect it.
"""

import collections
import contextlib
import glob
import json
import os
import shutil
import time

import pytest
import requests

import hecate_nginx_process
import hecate_plan
from lab import topology
from lab.sim import pg
from tests import caddy_helpers
from tests.integration.test_edge_from_zero import EDGE_JOBS, Edge, _vault_read
from tests.orch_helpers import BOOKKEEPING, clear, job, lock_holder, objects, orch, purge_jobs, steps, writes

pytestmark = [pytest.mark.long, pytest.mark.timeout(1800)]
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
JOB_FILE = os.path.join(REPO, "tests", "fixtures", "whoami-route-job.nomad.hcl")
TEARDOWN_STEPS = ("caddy", "dns", "authentik", "consul_services", "streams", "edge_jobs")
EXTERNAL = ("wazuh-master", "jenkins-master")  # hecate:consul:services
GROUPS = ("bionicgpt-superadmin", "bionicgpt-demo-tenant")
FOREIGN_ROUTE = {"match": [{"host": ["ops.example.com"]}], "handle": [{"handler": "static_response", "body": "ops"}]}
FOREIGN_GROUP = "bionicgpt-team-extra"
FOREIGN_APP = {"name": "Staging wiki", "slug": "staging-wiki", "meta_publisher": "hecate/staging/app/wiki"}
FOREIGN_USER = "alice"
FOREIGN_JOB = "hecate-team-whoami"
FOREIGN_SERVICE = "backup-agent"
EDGE_SECRETS = {"secret_key", "db_password", "bootstrap_password", "api_token"}


def teardown(salt_run_cli, test=False, **pillar):
    """``salt-run state.orch orch.hecate pillar='{"env": "lab", "ensure": "absent", ...}' [test=True]``."""
    args = ["state.orch", "orch.hecate", f"pillar={json.dumps(dict({'env': 'lab', 'ensure': 'absent'}, **pillar))}"]
    ret = salt_run_cli.run(*args, *(["test=True"] if test else []))
    assert isinstance(ret.data, dict) and "data" in ret.data, ret
    return ret


def wait(predicate, what, timeout=60):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


# -- the edge's volumes (host directories of the cloud minion's Nomad client) ----------------------
def volumes(agents_dir):
    return {name: vol["path"] for name, vol in topology.agent_dirs(agents_dir, "cloud")["nomad_edge"]
            ["host_volumes"].items()}


def wipe_volumes(agents_dir):
    """A bare node: the edge's host volumes empty (an earlier module's edge may have left data)."""
    for path in volumes(agents_dir).values():
        shutil.rmtree(path, ignore_errors=True)
        os.makedirs(path, exist_ok=True)


def volume_files(agents_dir):
    return sorted(os.path.relpath(p, agents_dir) for path in volumes(agents_dir).values()
                  for p in glob.glob(os.path.join(path, "**", "*"), recursive=True) if os.path.isfile(p))


def authentik_db(agents_dir):
    """Authentik's objects as its database on the hecate_postgres volume holds them: {kind: [obj]}."""
    # the PostgreSQL stand-in keeps each database's relations under base/<database>/ (lab/sim/pg.py)
    (path,) = glob.glob(os.path.join(volumes(agents_dir)["hecate_postgres"], "**", "base", "*",
                                     pg.AUTHENTIK_RELATION), recursive=True)
    with open(path, encoding="utf-8") as fh:
        return {kind: list(table.values()) for kind, table in json.load(fh)["db"].items()}


def names(db, kind, field="name"):
    return {o.get(field) for o in db.get(kind, [])}


def autosave_routes(agents_dir):
    """The routes of Caddy's autosave on the hecate_caddy_config volume (what a new Caddy resumes)."""
    with open(os.path.join(volumes(agents_dir)["hecate_caddy_config"], "caddy", "autosave.json"),
              encoding="utf-8") as fh:
        return json.load(fh)["apps"]["http"]["servers"]["hecate"].get("routes") or []


# -- the systems -----------------------------------------------------------------------------------
def consul(sims, method, path, body=None):
    resp = requests.request(method, sims["consul"].url + path, json=body, timeout=10,
                            headers={"X-Consul-Token": sims["consul"].token})
    assert resp.status_code == 200, (path, resp.text)
    return resp.json() if resp.content else None


def services(sims):
    return consul(sims, "GET", "/v1/agent/services")


def nomad_services(sims, service_names):
    return sorted(sid for sid, svc in services(sims).items()
                  if sid.startswith("_nomad-task-") and svc.get("Service") in service_names)


def ak_api(edge, method, path, body=None):
    resp = requests.request(method, f"http://127.0.0.1:{edge.ports['authentik_http']}/api/v3{path}", json=body,
                            timeout=10, headers={"Authorization": f"Bearer {edge.authentik_token()}"})
    assert resp.status_code in (200, 201, 204), (path, resp.status_code, resp.text)
    return resp.json() if resp.content else None


def add_foreign(sims, edge):
    resp = requests.post(f"http://127.0.0.1:{edge.ports['caddy_admin']}/config/apps/http/servers/hecate/routes",
                         json=FOREIGN_ROUTE, timeout=10)
    resp.raise_for_status()
    ak_api(edge, "POST", "/core/groups/", {"name": FOREIGN_GROUP})
    ak_api(edge, "POST", "/core/applications/", FOREIGN_APP)
    ak_api(edge, "POST", "/core/users/", {"username": FOREIGN_USER, "name": "Alice (enrolled herself)"})
    consul(sims, "PUT", "/v1/agent/service/register", {"ID": FOREIGN_SERVICE, "Name": FOREIGN_SERVICE, "Port": 9100})
    nomad = sims["nomad"]
    with open(JOB_FILE, encoding="utf-8") as fh:
        parsed = requests.post(f"{nomad.url}/v1/jobs/parse", json={"JobHCL": fh.read(), "Canonicalize": True},
                               headers=nomad.headers, timeout=10)
    parsed.raise_for_status()
    spec = dict(parsed.json(), ID=FOREIGN_JOB, Name=FOREIGN_JOB)
    resp = requests.post(f"{nomad.url}/v1/jobs", json={"Job": spec}, headers=nomad.headers, timeout=10)
    assert resp.status_code == 200, resp.text
    # Nomad registers the job's service by itself: wait, so that its write is not taken for hecate's
    wait(lambda: nomad_services(sims, ["whoami"]), "the foreign job's service in Consul")


def remove_foreign(sims):
    consul(sims, "PUT", f"/v1/agent/service/deregister/{FOREIGN_SERVICE}")
    nomad = sims["nomad"]
    requests.delete(f"{nomad.url}/v1/job/{FOREIGN_JOB}?purge=true", headers=nomad.headers, timeout=10)
    wait(lambda: not nomad_services(sims, ["whoami"]), "the foreign job's service to leave Consul")


def purge_edge_jobs(sims):
    for job_id in EDGE_JOBS:
        requests.delete(f"{sims['nomad'].url}/v1/job/{job_id}?purge=true", timeout=10, headers=sims["nomad"].headers)
    wait(lambda: not nomad_services(sims, list(EDGE_JOBS)), "Nomad to take the edge jobs' services out")


def _registration(spec):
    """What a deregistration or purge would change of a job (its status moves by itself)."""
    return None if spec is None else (spec["Version"], spec["JobModifyIndex"], spec.get("Stop"))


def streams_files(lab_dir):
    paths = topology.edge_paths(os.path.join(lab_dir, "edge"))
    return {"nginx": os.path.exists(paths["nginx_config"]), "coturn": os.path.exists(paths["coturn_config"]),
            "nginx_master": hecate_nginx_process.master_pid(paths["nginx_pid"])}


# -- the scenario ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def scenario(salt_run_cli, salt_cli, stack, lab_dir, agents_dir):
    sims = stack["sims"]
    purge_jobs(sims)  # bare: no BionicGPT either
    purge_edge_jobs(sims)
    wipe_volumes(agents_dir)
    edge = Edge(stack, lab_dir)
    protected = {"domain": "whoami.cybermonkey.dev", "backend": "127.0.0.1:9", "service": "whoami",
                 "auth": {"groups": ["bionicgpt-superadmin"]}}
    grafana = {"protocol": "oidc", "name": "Grafana", "groups": ["bionicgpt-superadmin"],
               "credentials": f"{edge.vault_path}-grafana",
               "redirect_uris": ["https://observe.cybermonkey.dev/login/generic_oauth"]}
    routes = edge.pillar["hecate"]["reverse_proxy"]["caddy"]["routes"] + [protected]
    edge.write({"hecate": {
        "reverse_proxy": {"caddy": {"routes": routes,
                                    "forward_auth": {"outpost": f"127.0.0.1:{edge.ports['authentik_http']}"}}},
        "authentik": {"applications": {"grafana": grafana}}}})
    out, done = {"edge": edge}, False
    try:
        out["deployed"] = orch(salt_run_cli, sls="orch.hecate")
        assert out["deployed"].returncode == 0, out["deployed"]
        add_foreign(sims, edge)
        db = authentik_db(agents_dir)
        out["before"] = {
            "routes": sorted(r["@id"] for r in edge.routes()),
            "caddy": edge.admin("/config/apps/http/servers/hecate/routes").json(),
            "db": db,
            "secrets": _vault_read(sims["vault"], edge.vault_path),
            "grafana": _vault_read(sims["vault"], f"{edge.vault_path}-grafana"),
            "services": services(sims),
            "streams": streams_files(lab_dir),
            "volumes": volume_files(agents_dir),
            "jobs": {j: job(sims["nomad"], j) for j in EDGE_JOBS + (FOREIGN_JOB,)},
        }
        registered = {j: _registration(job(sims["nomad"], j)) for j in EDGE_JOBS + (FOREIGN_JOB,)}

        clear(stack)
        caddy_writes, db_text = collections.Counter(edge.caddy_writes()), json.dumps(db, sort_keys=True)
        out["preview"] = teardown(salt_run_cli, test=True)
        out["purge_preview"] = teardown(salt_run_cli, test=True, purge_secrets=True)
        out["preview_writes"] = {name: writes(name, sim) for name, sim in sims.items()}
        out["preview_unchanged"] = {
            "caddy": collections.Counter(edge.caddy_writes()) == caddy_writes,
            "authentik": json.dumps(authentik_db(agents_dir), sort_keys=True) == db_text,
            "streams": streams_files(lab_dir) == out["before"]["streams"],
            "jobs": {j: _registration(job(sims["nomad"], j)) for j in registered} == registered,
        }

        out["applied"] = teardown(salt_run_cli)
        out["caddy_writes"] = sorted((collections.Counter(edge.caddy_writes()) - caddy_writes).elements())
        wait(lambda: not nomad_services(sims, list(EDGE_JOBS)), "Nomad to take the purged jobs' services out")
        out["after"] = {
            "jobs": {j: job(sims["nomad"], j) for j in EDGE_JOBS + (FOREIGN_JOB,)},
            "autosave": autosave_routes(agents_dir),
            "db": authentik_db(agents_dir),
            "secrets": _vault_read(sims["vault"], edge.vault_path),
            "grafana": _vault_read(sims["vault"], f"{edge.vault_path}-grafana"),
            "services": services(sims),
            "streams": streams_files(lab_dir),
            "volumes": volume_files(agents_dir),
            "lock": lock_holder(sims["consul"]),
            "history": salt_run_cli.run("hecate.history", "env=lab", "limit=1").data["records"],
        }

        clear(stack)
        out["again"] = teardown(salt_run_cli)
        out["again_writes"] = {name: writes(name, sim, BOOKKEEPING.get(name, ())) for name, sim in sims.items()}
        # what those steps said (an orchestration step that changed nothing returns no state comments)
        out["gone"] = salt_cli.run("state.apply",
                                   "hecate.edge.caddy_routes_absent,hecate.edge.authentik_objects_absent",
                                   minion_tgt="cloud")
        done = True
    finally:
        # the session's other tests expect the fast lab configured and no job-run edge
        with contextlib.suppress(Exception):
            remove_foreign(sims)
        os.unlink(edge.path)
        purge_edge_jobs(sims)
        wipe_volumes(agents_dir)
        restored = orch(salt_run_cli, sls="orch.hecate")
        purge_jobs(sims)
        if done:
            out["restored"] = restored
    return out


def test_the_preview_announces_every_removal_and_writes_nothing(scenario):
    preview = scenario["preview"]
    assert preview.returncode == 0, preview
    got = steps(preview)
    for step in TEARDOWN_STEPS:
        assert got[step]["result"] is None, (step, got[step])
    assert "secrets_edge" not in got and "wireguard" not in got and "edge_authentik" not in got
    assert scenario["preview_writes"] == {name: [] for name in scenario["preview_writes"]}
    assert scenario["preview_unchanged"] == {"caddy": True, "authentik": True, "streams": True, "jobs": True}
    keys = {key for _, key in objects(preview)}
    assert "caddy_routes_|-hecate caddy routes removed_|-hecate caddy routes removed_|-absent" in keys
    assert any(k.startswith("hetzner_dns_|-") and k.endswith("_|-cleared") for k in keys), keys
    for group in GROUPS:
        assert f"authentik_group_|-authentik group {group} removed_|-{group}_|-absent" in keys
    assert "authentik_route_auth_|-hecate route auth gone_|-hecate route auth gone_|-absent" in keys
    assert "authentik_application_|-hecate applications gone_|-hecate applications gone_|-pruned" in keys
    for sid in EXTERNAL:
        assert f"consul_service_|-consul service {sid} removed_|-{sid}_|-absent" in keys
    assert any(k.startswith("nginx_config_|-hecate nginx streams removed_|-") and k.endswith("_|-absent") for k in keys)
    assert any(k.startswith("coturn_config_|-hecate coturn config removed_|-") and k.endswith("_|-absent")
               for k in keys)
    purged = sorted(k.split("_|-")[2] for k in keys if k.startswith("nomad_job_|-"))
    # the edge's jobs that ran (hecate-redis: not for this Authentik release; nothing to purge)
    assert purged == ["hecate-authentik", "hecate-backup", "hecate-caddy", "hecate-postgresql"]


def test_the_teardown_removes_what_the_edge_deployment_made(scenario):
    applied, before, after = scenario["applied"], scenario["before"], scenario["after"]
    assert applied.returncode == 0, applied
    assert objects(applied) == objects(scenario["preview"])  # exactly what the preview said
    # Caddy's routes went while Caddy ran: one write, and its autosave keeps none of hecate's
    assert "hecate.route.authentik" in before["routes"] and "hecate.route.whoami" in before["routes"]
    caddy_writes = scenario["caddy_writes"]
    assert caddy_writes and all(uri.startswith("/config/") for _, uri in caddy_writes), caddy_writes
    assert not [r for r in after["autosave"] if str(r.get("@id", "")).startswith("hecate.")]
    # the Authentik objects hecate made went while Authentik ran (its database keeps the rest)
    db, was = after["db"], before["db"]
    assert set(GROUPS) <= names(was, "group") and not set(GROUPS) & names(db, "group")
    assert {"bionicgpt", "whoami", "grafana"} <= names(was, "application", "slug")
    assert not {"bionicgpt", "whoami", "grafana"} & names(db, "application", "slug")
    assert not {"henry", "demo"} & names(db, "user", "username")
    providers = names(db, "provider_proxy") | names(db, "provider_oauth2")
    assert not [p for p in providers if str(p).startswith("hecate/lab/")]
    assert "BionicGPT OAuth2" not in names(db, "provider_oauth2")
    # the edge's jobs purged (not just stopped), the external services deregistered
    assert all(after["jobs"][j] is None for j in EDGE_JOBS), after["jobs"]
    assert not set(EXTERNAL) & set(after["services"])
    # nginx stopped, its config and coturn's removed
    assert before["streams"]["nginx"] and before["streams"]["coturn"] and before["streams"]["nginx_master"]
    assert after["streams"] == {"nginx": False, "coturn": False, "nginx_master": None}
    assert after["lock"] is None


def test_objects_hecate_does_not_own_are_never_touched(scenario):
    before, after = scenario["before"], scenario["after"]
    assert FOREIGN_ROUTE in before["caddy"] and FOREIGN_ROUTE in after["autosave"]
    assert FOREIGN_GROUP in names(after["db"], "group")
    assert FOREIGN_APP["slug"] in names(after["db"], "application", "slug")
    assert FOREIGN_USER in names(after["db"], "user", "username")
    assert after["jobs"][FOREIGN_JOB] is not None and after["jobs"][FOREIGN_JOB]["Status"] != "dead"
    assert FOREIGN_SERVICE in after["services"]


def test_secrets_and_the_volumes_data_are_kept_and_the_run_is_recorded(scenario):
    before, after = scenario["before"], scenario["after"]
    assert set(before["secrets"]) >= EDGE_SECRETS and after["secrets"] == before["secrets"]
    assert after["grafana"] == before["grafana"] and {"client_id", "client_secret"} <= set(after["grafana"])
    # the database, certificates and autosave stay on the host volumes
    assert before["volumes"] and set(before["volumes"]) <= set(after["volumes"])
    (record,) = after["history"]
    assert record["status"] == "teardown" and record["env"] == "lab"
    assert record["run_id"] in json.dumps(steps(scenario["applied"])["record"])


def test_purge_secrets_previews_the_edge_secrets_and_sso_credentials_only(scenario):
    preview, edge = scenario["purge_preview"], scenario["edge"]
    assert preview.returncode == 0, preview
    assert steps(preview)["secrets_edge"]["result"] is None
    purged = {key.split("_|-")[1] for _, key in objects(preview) if key.startswith("hecate_secret_|-")}
    assert purged == {f"hecate edge secret {edge.vault_path}#{k} purged" for k in EDGE_SECRETS} | {
        f"hecate application secret {edge.vault_path}-grafana#{k} purged" for k in ("client_id", "client_secret")}
    text = json.dumps(preview.data)
    assert "secret/hecate/consul" not in text and "secret/hecate/coturn" not in text


def test_a_second_teardown_removes_nothing_and_writes_nothing(scenario):
    again = scenario["again"]
    assert again.returncode == 0, again
    assert hecate_plan.rows(again.data) == []
    assert scenario["again_writes"] == {name: [] for name in scenario["again_writes"]}
    assert steps(again)["record"]["comment"].startswith("State was not run because none")
    gone = scenario["gone"]
    assert gone.returncode == 0, gone
    said = {s["comment"] for s in gone.data.values()}
    assert said == {
        "no Caddy to remove routes from: its job hecate-caddy is not registered in Nomad (purged by a teardown); "
        "its volumes keep their data",
        "no Authentik to remove objects from: its job hecate-authentik is not registered in Nomad (purged by a "
        "teardown); its database stays on its volume",
    }, gone.data


def test_the_fast_lab_is_configured_again(scenario, stack, lab_dir):
    assert scenario["restored"].returncode == 0, scenario["restored"]
    resp = caddy_helpers.through(stack["caddy"], topology.LAB_AUTHENTIK_DOMAIN, "/-/health/live/")
    assert resp.status_code == 200
    assert streams_files(lab_dir)["nginx_master"] is not None
