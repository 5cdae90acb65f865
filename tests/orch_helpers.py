"""
Helpers for the tests that drive the whole orchestration (`salt-run state.orch
orch.bionicgpt`) through the factories master, the minions, the real Caddy and the
simulators: running it, reading its return, counting writes, and looking at what the
systems hold. The fixtures that set the lab up (``sims``, ``stack``, ``overrides``) are in
tests/integration/conftest.py.

Writes are counted in the simulators' request logs and Caddy's admin log. Some POSTs
only read (Nomad's parse/plan/validate, Vault's AppRole login): they are not writes.
The environment's lock and deployment record are the orchestration's own bookkeeping
in Consul (``BOOKKEEPING``); a converged re-run writes nothing else.
"""

import json
import re
import time

import requests

import hecate_plan
from tests import caddy_helpers

READ_ONLY = {
    "nomad": [r"^/v1/jobs/parse$", r"^/v1/job/[^/]+/plan$", r"^/v1/validate/job$"],
    "vault": [r"^/v1/auth/approle/login$"],
}
BOOKKEEPING = {"consul": [r"^/v1/session/", r"^/v1/kv/hecate/locks/", r"^/v1/kv/hecate/deployments/"]}
JOBS = ("bionicgpt-database", "bionicgpt-llm", "bionicgpt-application")
REQUISITE_FAILED = "One or more requisite failed"


def writes(name, sim, exclude=()):
    """The write requests a simulator received (minus the read-only POSTs and ``exclude``)."""
    skip = READ_ONLY.get(name, []) + list(exclude)
    return [
        (r["method"], r["path"])
        for r in sim.requests()
        if r["method"] in ("POST", "PUT", "PATCH", "DELETE")
        and not any(re.search(p, r["path"]) for p in skip)
    ]


def orch(salt_run_cli, test=False, env="lab", sls="orch.bionicgpt"):
    """``salt-run state.orch <sls> pillar='{"env": <env>}' [test=True]`` (orch.bionicgpt by default)."""
    args = ["state.orch", sls, f"pillar={json.dumps({'env': env})}"]
    if test:
        args.append("test=True")
    ret = salt_run_cli.run(*args)
    assert isinstance(ret.data, dict) and "data" in ret.data, ret
    return ret


def steps(ret):
    """``{step id: step return}`` of an orchestration return."""
    (master,) = ret.data["data"].values()
    return {key.split("_|-")[1]: val for key, val in master.items()}


def objects(ret):
    """``{(minion, state key)}`` of every state that changed (or would change) something."""
    return {(row["minion"], row["key"]) for row in hecate_plan.rows(ret.data)}


def failures(ret):
    """
    ``[(step, where, comment)]`` of everything that failed in an orchestration return,
    except the "requisite failed" echoes: the failing states inside ``salt.state`` steps
    (``where`` = ``minion: state id``), the returns of failing runner steps and the
    per-minion returns of failing ``salt.function`` steps.
    """
    out = []
    for step_id, step in steps(ret).items():
        if step.get("result") is not False:
            continue
        changes = step.get("changes") or {}
        comment = str(step.get("comment", ""))
        nested = changes.get("ret")
        if isinstance(nested, dict) and nested:
            for minion, states in nested.items():
                if isinstance(states, dict) and states and all(isinstance(v, dict) for v in states.values()):
                    for key, sret in states.items():
                        text = str(sret.get("comment", ""))
                        if sret.get("result") is False and not text.startswith(REQUISITE_FAILED):
                            out.append((step_id, f"{minion}: {key.split('_|-')[1]}", text))
                else:  # a render error, a function's return, "did not return"
                    out.append((step_id, minion, json.dumps(states, default=str)))
        elif isinstance(changes.get("return"), dict):
            out.append((step_id, "master", str(changes["return"].get("comment", ""))))
        elif not comment.startswith(REQUISITE_FAILED):
            out.append((step_id, "-", comment + " " + json.dumps(changes, default=str)))
    return out


def comments(ret):
    """Every comment of an orchestration return: steps, nested states, runner returns."""
    out = []

    def walk(value):
        if isinstance(value, dict):
            for key, val in value.items():
                if key == "comment":
                    out.append(str(val))
                else:
                    walk(val)
        elif isinstance(value, list):
            for val in value:
                walk(val)

    walk(ret.data)
    return out


def clear(stack):
    for sim in stack["sims"].values():
        sim.clear_requests()
    return caddy_helpers.writes(stack["caddy"])


def managed_routes(caddy):
    """The hecate-managed routes (``@id: hecate.*``) of Caddy's ``hecate`` server."""
    config = json.loads(caddy_helpers.raw_config(caddy))
    routes = config["apps"]["http"]["servers"]["hecate"].get("routes") or []
    return [r for r in routes if str(r.get("@id", "")).startswith("hecate.")]


def job(nomad_sim, job_id):
    resp = requests.get(f"{nomad_sim.url}/v1/job/{job_id}", timeout=10, headers=nomad_sim.headers)
    return resp.json() if resp.status_code == 200 else None


def purge_jobs(sims):
    """Purge the BionicGPT jobs and wait until Nomad (the simulator) has taken their
    services out of Consul: those deregistrations are Nomad's, not hecate's writes."""
    for job_id in JOBS:
        requests.delete(f"{sims['nomad'].url}/v1/job/{job_id}?purge=true", timeout=10, headers=sims["nomad"].headers)
    headers = {"X-Consul-Token": sims["consul"].token}
    deadline = time.monotonic() + 60
    while True:
        services = requests.get(f"{sims['consul'].url}/v1/agent/services", headers=headers, timeout=10).json()
        if not any(sid.startswith("_nomad-task-") for sid in services):
            return
        assert time.monotonic() < deadline, f"Nomad kept its services in Consul: {sorted(services)}"
        time.sleep(0.1)


def lock_holder(consul_sim, env="lab"):
    """The session holding the environment's lock, or None."""
    resp = requests.get(f"{consul_sim.url}/v1/kv/hecate/locks/{env}", timeout=10,
                        headers={"X-Consul-Token": consul_sim.token})
    return resp.json()[0].get("Session") if resp.status_code == 200 else None
