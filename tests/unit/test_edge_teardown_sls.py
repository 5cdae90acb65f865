"""
orch.hecate's teardown (``ensure: absent``) as Salt renders it, without a master: the
orchestration's steps and their order (Caddy routes first, the Authentik objects before the
jobs that run Authentik are purged, the edge jobs last, secrets only with purge_secrets),
the shared ``ensure``/``purge_secrets`` check, and the edge's teardown SLS files: which jobs
they purge in which order, when the Caddy/Authentik steps find their system gone, which
secrets purge_secrets removes. The hecate_edge functions are the real module's over the lab's
copy of the shipped pillar; Nomad's answer (``nomad.job``) is given per test.
"""

import copy
import importlib.util
import json
import os
import tempfile

import pytest
import salt.config
import salt.exceptions
import salt.utils.templates
import yaml

from tests import pillar_files

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TEARDOWN = ["caddy", "dns", "authentik", "consul_services", "streams", "edge_jobs"]


def edge_module(pillar):
    path = os.path.join(REPO, "_modules", "hecate_edge.py")
    spec = importlib.util.spec_from_file_location("hecate_edge_teardown", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.__pillar__ = pillar
    return mod


def render(path, pillar, jobs=None, opts_test=False):
    """``path`` (under salt/) rendered as a minion renders it; ``jobs``: the job ids Nomad has."""
    mod = edge_module(pillar)
    calls = []

    def nomad_job(job_id, namespace=None):
        calls.append((job_id, namespace))
        return {"ID": job_id} if job_id in (jobs or ()) else None

    funcs = {f"hecate_edge.{n}": getattr(mod, n) for n in ("settings", "jobs", "secrets")}
    funcs.update({"nomad.job": nomad_job, "hecate.new_run_id": lambda: "20260101T000000Z-abcdef",
                  "hecate.target": lambda role, env=None, run_id=None: f"G@roles:{role} and G@hecate_env:{env}",
                  "hecate.several": lambda role, env=None: False})  # one edge, one node
    opts = salt.config.minion_config(None)
    opts.update({"file_client": "local", "file_roots": {"base": [os.path.join(REPO, "salt")]},
                 "cachedir": tempfile.mkdtemp(prefix="hecate-render-"), "test": opts_test})
    with open(os.path.join(REPO, "salt", path), encoding="utf-8") as fh:
        text = fh.read()
    out = salt.utils.templates.render_jinja_tmpl(
        text, {"opts": opts, "saltenv": "base", "pillar": pillar, "salt": funcs, "grains": {}})
    return yaml.safe_load(out) or {}, calls


def edge_pillar(**hecate):
    pillar = copy.deepcopy(pillar_files.compiled("prod"))
    pillar["hecate"].update(hecate)
    return pillar


def orch(**pillar):
    data, _ = render("orch/hecate.sls", dict({"env": "prod"}, **pillar))
    return data


def step_sls(data):
    return {sid: next(v for v in body["salt.state"] if "sls" in v)["sls"]
            for sid, body in data.items() if "salt.state" in body}


def requires(body):
    kind = "salt.state" if "salt.state" in body else "salt.runner"
    return next((v["require"] for v in body[kind] if isinstance(v, dict) and "require" in v), [])


# -- the orchestration -----------------------------------------------------------------------------
def test_the_teardown_steps_run_in_reverse_order_each_after_the_one_before():
    data = orch(ensure="absent")
    sls = step_sls(data)
    assert list(sls) == ["preflight"] + TEARDOWN
    assert sls["caddy"] == ["hecate.edge.caddy_routes_absent"]
    assert sls["dns"] == ["hecate.dns_absent"]
    assert sls["authentik"] == ["hecate.edge.authentik_objects_absent"]
    assert sls["consul_services"] == ["hecate.consul_services_absent"]
    assert sls["streams"] == ["hecate.nginx_absent", "hecate.coturn_absent"]
    assert sls["edge_jobs"] == ["hecate.edge.jobs_absent"]
    assert requires(data["caddy"]) == [{"salt": "lock"}]
    for before, step in zip(TEARDOWN, TEARDOWN[1:]):
        assert requires(data[step]) == [{"salt": before}], step
    # recorded as a teardown after the last step, only when a step changed something
    record = dict(kv for item in data["record"]["salt.runner"] for kv in item.items())
    assert record["status"] == "teardown" and record["require"] == [{"salt": "edge_jobs"}]
    assert record["onchanges"] == [{"salt": s} for s in TEARDOWN]
    # the deployment's steps are not there: agents, WireGuard, the edge secrets stay
    assert not {"wireguard", "consul_agents", "nomad_agents", "edge_secrets", "secrets_edge", "verify"} & set(data)
    assert "caddy_rollback" in data and "unlock_after_failure" in data


def test_purge_secrets_adds_the_edge_secrets_step_last():
    data = orch(ensure="absent", purge_secrets=True)
    sls = step_sls(data)
    assert list(sls)[-1] == "secrets_edge"
    assert sls["secrets_edge"] == ["hecate.edge.secrets_absent", "hecate.app_credentials_absent"]
    assert requires(data["secrets_edge"]) == [{"salt": "edge_jobs"}]


def test_without_ensure_it_deploys():
    sls = step_sls(orch())
    assert "edge_authentik" in sls and "verify" in sls and "edge_jobs" not in sls


@pytest.mark.parametrize("orch_sls", ["orch/hecate.sls", "orch/bionicgpt.sls"])
@pytest.mark.parametrize(("pillar", "message"), [
    ({"ensure": "gone"}, 'pillar ensure must be "present" (deploy, the default) or "absent" (teardown), got "gone"'),
    ({"purge_secrets": True}, 'pillar purge_secrets is true or false, and only with "ensure": "absent", got true'),
    ({"ensure": "absent", "purge_secrets": "yes"},
     'pillar purge_secrets is true or false, and only with "ensure": "absent", got "yes"'),
])
def test_ensure_and_purge_secrets_are_checked_the_same_way_by_both(orch_sls, pillar, message):
    name = "orch." + os.path.basename(orch_sls)[:-4]
    with pytest.raises(salt.exceptions.SaltRenderError) as info:
        render(orch_sls, dict({"env": "prod"}, **pillar))
    assert f"{name}: {message}" in str(info.value)


# -- the edge's teardown SLS -----------------------------------------------------------------------
def purged(data):
    return [(body["nomad_job.absent"][0]["name"], [r for item in body["nomad_job.absent"] if "require" in item
                                                  for r in item["require"]])
            for body in data.values() if "nomad_job.absent" in body]


def test_the_edge_jobs_are_purged_last_deployed_first():
    data, _ = render("hecate/edge/jobs_absent.sls", edge_pillar())
    assert purged(data) == [
        ("hecate-backup", []),
        ("hecate-caddy", [{"nomad_job": "hecate edge job backup purged"}]),
        ("hecate-authentik", [{"nomad_job": "hecate edge job caddy purged"}]),
        ("hecate-redis", [{"nomad_job": "hecate edge job authentik purged"}]),
        ("hecate-postgresql", [{"nomad_job": "hecate edge job redis purged"}]),
    ]
    assert all({"purge": True} in body["nomad_job.absent"] for body in data.values())


def test_only_the_jobs_hecate_deploys_are_purged():
    data, _ = render("hecate/edge/jobs_absent.sls", edge_pillar(nomad={"jobs": ["caddy"], "job_prefix": "edge-"}))
    assert [name for name, _ in purged(data)] == ["edge-backup", "edge-caddy"]
    data, _ = render("hecate/edge/jobs_absent.sls", edge_pillar(nomad={"jobs": []}))
    assert purged(data) == [] and list(data) == ["hecate edge jobs (none deployed by hecate)"]


@pytest.mark.parametrize(("sls", "system", "included"), [
    ("hecate/edge/caddy_routes_absent.sls", "caddy", ["hecate.caddy_absent"]),
    ("hecate/edge/authentik_objects_absent.sls", "authentik",
     ["hecate.authentik_absent", "bionicgpt.authentik_absent"]),
])
def test_caddy_and_authentik_are_asked_while_their_job_exists(sls, system, included):
    pillar = edge_pillar()
    data, calls = render(sls, pillar, jobs=[f"hecate-{system}"])
    assert data == {"include": included} and calls == [(f"hecate-{system}", "default")]
    # their job purged by an earlier teardown: nothing to remove, said so; nothing included
    data, _ = render(sls, pillar, jobs=[])
    (state,) = data.values()
    text = state["test.show_notification"][0]["text"]
    assert f"its job hecate-{system} is not registered in Nomad" in text and "volume" in text
    # an edge whose Caddy/Authentik hecate does not deploy: always asked, Nomad never is
    data, calls = render(sls, edge_pillar(nomad={"jobs": []}), jobs=[])
    assert data == {"include": included} and calls == []


def test_purge_secrets_removes_the_generated_edge_secrets_only():
    data, _ = render("hecate/edge/secrets_absent.sls", edge_pillar())
    keys = sorted((body["hecate_secret.absent"][0]["name"], body["hecate_secret.absent"][1]["key"])
                  for body in data.values())
    assert keys == [("secret/hecate/authentik", k) for k in ("api_token", "bootstrap_password", "db_password",
                                                             "secret_key")]
    assert "consul" not in json.dumps(data) and "coturn" not in json.dumps(data)
    data, _ = render("hecate/edge/secrets_absent.sls", edge_pillar(nomad={"jobs": []}))
    assert list(data) == ["hecate edge secrets (none to purge)"]


def test_streams_teardown_names_the_files_from_pillar():
    pillar = edge_pillar()
    nginx, _ = render("hecate/nginx_absent.sls", pillar)
    coturn, _ = render("hecate/coturn_absent.sls", pillar)
    assert nginx == {"hecate nginx streams removed": {"nginx_config.absent": [{"name": "/etc/nginx/nginx.conf"}]}}
    assert coturn == {"hecate coturn config removed": {"coturn_config.absent": [{"name": "/etc/turnserver.conf"}]}}
    pillar["hecate"]["reverse_proxy"].pop("coturn", None)
    coturn, _ = render("hecate/coturn_absent.sls", pillar)
    assert coturn["hecate coturn config removed"]["coturn_config.absent"] == [{"name": "/etc/turnserver.conf"}]
