"""
Orchestration step 1 (``hecate.preflight`` -> ``hecate_preflight.reach``) against the lab's
Consul (ACLs on, default deny), Vault (AppRole) and an ACL-enabled Nomad simulator: the
probe authenticates the way the modules will, and a wrong, missing or under-privileged
credential fails here - naming the system and the setting, never showing the secret -
instead of passing and failing mid-run.
"""

import uuid

import pytest
import salt.exceptions

import hecate_preflight
from lab import topology
from lab.sim import SimHandle

NOMAD_TOKEN = str(uuid.uuid4())


def conns(system, **block):
    return {"hecate": {"connections": {system: dict(block, retries=0)}}}


def refused(system, opts, *secrets, pillar=None):
    """The CommandExecutionError text of a failing probe; no secret may appear in it."""
    with pytest.raises(salt.exceptions.CommandExecutionError) as exc:
        hecate_preflight.reach(system, opts, pillar or {})
    text = str(exc.value)
    for secret in secrets:
        assert secret not in text
    return text


# -- Vault: the probe logs in as the client does ---------------------------------------------------
def test_vault_approle_only_connection_logs_in_and_looks_itself_up(vault_sim, lab_secrets):
    """An AppRole-only connection (the lab's minions) has no token to send until it logs in."""
    vault_sim.clear_requests()
    out = hecate_preflight.reach("vault", conns("vault", url=vault_sim.url,
                                                approle=topology.vault_approle(lab_secrets)), {})
    assert out == f"vault at {vault_sim.url}: reachable, AppRole login accepted (policies: default, hecate)"
    assert [(r["method"], r["path"], r["status"]) for r in vault_sim.requests()] == [
        ("POST", "/v1/auth/approle/login", 200), ("GET", "/v1/auth/token/lookup-self", 200)]


def test_vault_wrong_secret_id_names_the_approle_setting(vault_sim, lab_secrets):
    wrong = "wrong-" + uuid.uuid4().hex
    approle = dict(topology.vault_approle(lab_secrets), secret_id=wrong)
    text = refused("vault", conns("vault", url=vault_sim.url, approle=approle), wrong, lab_secrets["vault_role_id"])
    assert (
        text == "vault: hecate:connections:vault:approle: Vault: AppRole login auth/approle: invalid role or secret ID"
    )


def test_vault_bad_token_names_the_token_setting(vault_sim):
    bad = "hvs." + uuid.uuid4().hex
    text = refused("vault", conns("vault", url=vault_sim.url, token=bad), bad)
    assert text.startswith("vault: hecate:connections:vault:token: Vault: look up its token auth/token/lookup-self: "
                           "permission denied")


# -- Consul: a key read under hecate/ (status/leader needs no ACL) ---------------------------------
def test_consul_probe_needs_a_token_that_may_read_hecates_keys(consul_sim, lab_secrets):
    consul_sim.clear_requests()
    out = hecate_preflight.reach("consul", conns("consul", url=consul_sim.url, token=consul_sim.token), {})
    assert out == f"consul at {consul_sim.url}: reachable (404), token may read hecate/deployments"
    assert [(r["path"], r["token"]) for r in consul_sim.requests()] == [("/v1/kv/hecate/deployments", "hecate")]

    bad = str(uuid.uuid4())
    text = refused("consul", conns("consul", url=consul_sim.url, token=bad), bad)
    assert text == ("consul: token invalid or lacks permission: hecate:connections:consul:token "
                    "(Consul: GET /v1/kv/hecate/deployments returned 403: ACL not found)")
    text = refused("consul", conns("consul", url=consul_sim.url))
    assert text.startswith("consul: token invalid or lacks permission: no token (hecate:connections:consul:token "
                           "is not set) (Consul: GET /v1/kv/hecate/deployments returned 403: Permission denied: "
                           "anonymous token lacks permission 'key:read'")
    # a valid token without key:read on hecate/ (Nomad's: services only) fails too
    nomad_token = lab_secrets["nomad_consul_token"]
    text = refused("consul", conns("consul", url=consul_sim.url, token=nomad_token), nomad_token)
    assert "lacks permission 'key:read' on \"hecate/deployments\"" in text


# -- Nomad: the job list for hecate's prefix (status/leader needs no ACL) --------------------------
@pytest.fixture(scope="module")
def nomad_acl(tmp_path_factory):
    """A Nomad simulator with ACLs on (its one token is a management token)."""
    handle = SimHandle("nomad", str(tmp_path_factory.mktemp("nomad-acl")),
                       dict(topology.nomad_options(), token=NOMAD_TOKEN, stand_ins=False)).start()
    yield handle
    handle.stop()


def test_nomad_probe_lists_hecates_jobs_with_the_token(nomad_acl):
    pillar = {"bionicgpt": {"nomad": {"job_prefix": "hecate-"}}}
    nomad_acl.clear_requests()
    out = hecate_preflight.reach("nomad", conns("nomad", url=nomad_acl.url, token=NOMAD_TOKEN), pillar)
    assert out == f"nomad at {nomad_acl.url}: reachable (200), token may list jobs hecate-*"
    assert [(r["path"], r["query"]) for r in nomad_acl.requests()] == [("/v1/jobs", "prefix=hecate-&namespace=default")]

    bad = str(uuid.uuid4())
    text = refused("nomad", conns("nomad", url=nomad_acl.url, token=bad), bad, pillar=pillar)
    assert text == ("nomad: token invalid or lacks permission: hecate:connections:nomad:token "
                    "(Nomad: GET /v1/jobs returned 403: Permission denied)")
    text = refused("nomad", conns("nomad", url=nomad_acl.url), pillar=pillar)
    assert "no token (hecate:connections:nomad:token is not set)" in text
