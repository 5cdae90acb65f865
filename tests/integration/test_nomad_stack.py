"""The BionicGPT jobs on the real local minion (roles: bionicgpt-node) against the Nomad
simulator: preview, apply, converged re-run, and the orchestration's salt.state path."""

import re
import uuid

import pytest
import requests

READ_ONLY_POSTS = re.compile(r"^/v1/(jobs/parse|validate/job|job/[^/]+/plan)$")
JOBS = ("bionicgpt-database", "bionicgpt-llm", "bionicgpt-application")


def writes(sim):
    return [r for r in sim.writes() if not READ_ONLY_POSTS.match(r["path"])]


def states(ret):
    assert isinstance(ret.data, dict), ret
    return {s["name"]: s for s in ret.data.values()}


@pytest.fixture(scope="module")
def clean_stack(nomad_sim, local_call, vault_sim):
    for job in JOBS:
        requests.delete(f"{nomad_sim.url}/v1/job/{job}?purge=true", timeout=10, headers=nomad_sim.headers)
    # what the jobs' templates read (the simulated Nomad renders them from Vault, and a task
    # whose secret does not exist waits, as Nomad's does): the generated secrets, and the OAuth
    # client the orchestration's Authentik step stores (here: placeholders)
    assert local_call.run("state.apply", "bionicgpt.secrets").returncode == 0
    from lab import topology  # pylint: disable=import-outside-toplevel

    oauth = requests.get(f"{vault_sim.url}/v1/secret/data/bionicgpt/oauth", timeout=10,
                         headers={"X-Vault-Token": vault_sim.root_token}).json()["data"]["data"]
    if "client_id" not in oauth:
        topology.seed_vault(vault_sim.url, vault_sim.root_token, {("secret", "bionicgpt/oauth"): {
            "client_id": "lab-client", "client_secret": "lab-" + uuid.uuid4().hex}})
    yield


def test_jobs_sls_preview_apply_converge(local_call, nomad_sim, clean_stack):
    nomad_sim.clear_requests()
    ret = local_call.run("state.apply", "bionicgpt.jobs", "test=True")
    found = states(ret)
    assert set(found) == set(JOBS)
    for state in found.values():
        assert state["result"] is None, state["comment"]
        assert state["changes"]["diff"] == "Added"
    assert writes(nomad_sim) == []

    ret = local_call.run("state.apply", "bionicgpt.jobs")
    assert ret.returncode == 0, ret
    for state in states(ret).values():
        assert state["result"] is True, state["comment"]
        assert state["changes"]["deployment"]["status"] == "successful"

    nomad_sim.clear_requests()
    ret = local_call.run("state.apply", "bionicgpt.jobs")
    for state in states(ret).values():
        assert state["result"] is True and state["changes"] == {}, state
        assert not state.get("warnings"), state  # e.g. Nomad 2.0.1+'s shutdown_delay warnings
    assert writes(nomad_sim) == []
    # the lab's Nomad has ACLs on: the minion's requests all carried hecate's own token
    # (hecate:connections:nomad:token), never the management token
    assert {r.get("token") for r in nomad_sim.requests()} == {"hecate"}
    # secrets stay Vault lookups inside the job; no value of the lab's Vault reaches the return
    stored = requests.get(f"{nomad_sim.url}/v1/job/bionicgpt-database", timeout=10, headers=nomad_sim.headers)
    assert "[[ with secret" in stored.text


def test_orchestration_salt_state_step_previews_on_the_local_node(salt_run_cli, local_minion, nomad_sim,
                                                                  clean_stack):
    """After the apply above: a salt.state step runs the SLS on the local node under test=True."""
    nomad_sim.clear_requests()
    ret = salt_run_cli.run("state.orchestrate_single", "salt.state", "name=nomad jobs", "tgt=local",
                           "sls=bionicgpt.jobs", "test=True")
    assert ret.returncode == 0, ret
    (step,) = ret.data["hecate-master"].values()
    assert step["result"] is True, step
    assert step["comment"] == "States ran successfully. No changes made to local."
    assert writes(nomad_sim) == []
