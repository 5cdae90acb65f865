"""
The secret leak scan over a full lab run (issue 10): the orchestration through the real
master and minions as an operator runs it - a preview, the real run, a re-run and a failing
run (an oauth2-proxy image the Nomad simulator refuses to pull) - with known secret values in
Vault, then a search for every one of them in everything Salt printed, stored or logged:

- the CLI output of every call (state returns, ``pillar.items`` of both minions, masked and,
  on Salt 3008, unmasked);
- what ``python -m lab`` prints for these returns (``lab.cli.print_summary``; the lab command
  prints exactly that for its runs);
- the comments of every failed state of the failing run (the exception and error text);
- the master's job cache (every file under ``<cachedir>/jobs``) and the minions' cache
  directories;
- the master and minion log files, at debug level (checked to hold DEBUG lines).

The needles: the operator-provided secrets, planted with known values before the runs (the
Consul ACL agent token, Nomad's Consul token, the Azure API key, the lab users' passwords; the
Authentik API token is the simulator's own), every value hecate generates or stores during the
real run (deleted first, so this run makes them: DB passwords, oauth2-proxy cookie secret,
LiteLLM master key, the OAuth client secret Authentik made, the Consul gossip key, the coturn
secret - read back from the Vault simulator after the runs), the connection credentials (Vault
and Consul tokens in the minion config) and the WireGuard private keys. Expected hits: 0.

About 4 orchestration runs plus setup: over the default suite's budget, so it is ``long``.
"""

import os
import secrets as pysecrets
import time
import uuid

import pytest
import requests
import salt.version

from lab import cli as lab_cli
from tests import caddy_helpers
from tests.integration.test_consul_vault import vault_get, vault_put
from tests.leakscan import LeakScan, Transcript
from tests.orch_helpers import purge_jobs, steps

REFUSED = {"bionicgpt": {"jobs": {"application": {"oauth2_proxy": {
    "image": "quay.io/oauth2-proxy/oauth2-proxy:refused-7.6.0"}}}}}
# Where hecate reads or stores secrets in the lab (pillar references and generated specs).
VAULT_PATHS = (
    "secret/hecate/authentik",
    "secret/hecate/consul",
    "secret/hecate/coturn",
    "secret/bionicgpt/db",
    "secret/bionicgpt/oauth",
    "secret/bionicgpt/litellm",
    "secret/bionicgpt/azure",
    "secret/bionicgpt/nomad",
    "secret/bionicgpt/lab-users",
    "secret/hecate/hetzner",
)
# Made by hecate during a run: removed first so that this run generates / stores them.
GENERATED_PATHS = (
    "secret/hecate/consul",  # gossip_key (its agent_token is planted again below)
    "secret/hecate/coturn",
    "secret/bionicgpt/db",
    "secret/bionicgpt/oauth",  # cookie_secret, and client_id/client_secret from Authentik
    "secret/bionicgpt/litellm",
)
# Keys at those paths that are not secrets (they may appear in output).
NOT_SECRET = {
    ("secret/bionicgpt/azure", "endpoint"),
    ("secret/bionicgpt/azure", "chat_deployment"),
    ("secret/bionicgpt/oauth", "client_id"),
}
REDACTED = "XXX-REDACTED-XXX"


def vault_delete(vault_sim, path):
    mount, _, rel = path.partition("/")
    resp = requests.delete(f"{vault_sim.url}/v1/{mount}/metadata/{rel}",
                           headers={"X-Vault-Token": vault_sim.root_token}, timeout=10)
    assert resp.status_code == 204, resp.text


def delete_authentik_user(authentik_sim, username):
    """Remove a lab user so that this run creates it (a password is set only on creation)."""
    headers = {"Authorization": f"Bearer {authentik_sim.token}"}
    api = f"{authentik_sim.url}/api/v3/core/users/"
    for user in requests.get(api, params={"username": username}, headers=headers, timeout=10).json()["results"]:
        assert requests.delete(f"{api}{user['pk']}/", headers=headers, timeout=10).status_code == 204


def failed_comments(ret):
    """Comments of every failed state of an orchestration, the minions' states included."""
    out = []
    for step in steps(ret).values():
        if step.get("result") is False:
            out.append(str(step.get("comment", "")))
        changes = step.get("changes")
        minion_rets = changes.get("ret") if isinstance(changes, dict) else None
        for states in (minion_rets or {}).values() if isinstance(minion_rets, dict) else ():
            if isinstance(states, dict):
                out.extend(str(s.get("comment", "")) for s in states.values()
                           if isinstance(s, dict) and s.get("result") is False)
            else:  # a minion's render errors come back as a list of strings
                out.append(str(states))
    return out


@pytest.fixture
def planted(stack, lab_secrets):  # noqa: F811
    """
    Known values for the operator-provided secrets, no generated secret in Vault, the lab
    users and the BionicGPT jobs and routes gone; Vault is put back as found afterwards.
    """
    vault = stack["sims"]["vault"]
    before = {path: vault_get(vault, path) for path in VAULT_PATHS}
    for path in GENERATED_PATHS:
        if before[path] is not None:
            vault_delete(vault, path)
    known = {
        "secret/hecate/consul": {"agent_token": str(uuid.uuid4())},
        "secret/bionicgpt/nomad": {"consul_token": str(uuid.uuid4())},
        "secret/bionicgpt/azure": dict(before["secret/bionicgpt/azure"],
                                       api_key="KnownAzureKey-" + pysecrets.token_urlsafe(24)),
        "secret/bionicgpt/lab-users": {user: "KnownUser-" + pysecrets.token_urlsafe(12)
                                       for user in ("henry", "demo")},
    }
    for path, data in known.items():
        vault_put(vault, path, data)
    assert vault_get(vault, "secret/hecate/authentik")["api_token"] == stack["sims"]["authentik"].token
    for user in known["secret/bionicgpt/lab-users"]:
        delete_authentik_user(stack["sims"]["authentik"], user)
    purge_jobs(stack["sims"])
    caddy_helpers.reset(stack["caddy"])
    yield known
    for path, data in before.items():
        if vault_get(vault, path) is not None:
            vault_delete(vault, path)
        if data is not None:
            vault_put(vault, path, data)


@pytest.mark.long
@pytest.mark.timeout(900)
def test_no_secret_leaks_in_a_full_lab_run(
    salt_master, cloud_minion, local_minion, salt_cli, salt_run_cli, stack, overrides,  # noqa: F811
    planted, lab_secrets, agents_dir, capsys,
):
    vault = stack["sims"]["vault"]
    out = Transcript()
    runs = []
    for title, test, change in (("preview", True, None), ("apply", False, None),
                                ("re-run", False, None), ("failing run", False, REFUSED)):
        if change:
            overrides(change)
        args = ["state.orch", "orch.bionicgpt", 'pillar={"env": "lab"}'] + (["test=True"] if test else [])
        started = time.monotonic()
        ret = out.run(salt_run_cli, *args)
        runs.append((title, ret, time.monotonic() - started))
        assert isinstance(ret.data, dict) and "data" in ret.data, ret
    (_, preview, _), (_, applied, _), (_, rerun, _), (_, failing, _) = runs
    assert preview.returncode == 0 and applied.returncode == 0 and rerun.returncode == 0, [
        r.stdout[-3000:] for _, r, _ in runs[:3]]
    assert failing.returncode != 0 and steps(failing)["nomad_jobs"]["result"] is False
    # this run generated the secrets (and says so without the values)
    generated = steps(applied)["secrets_node"]["changes"]["ret"]["local"]
    assert any(REDACTED in str(s["changes"]) for s in generated.values()), generated

    for minion in ("cloud", "local"):
        assert out.run(salt_cli, "pillar.items", minion_tgt=minion).returncode == 0
        if salt.version.__saltstack_version__.major >= 3008:
            ret = out.run(salt_cli, "pillar.items", "unmask=True", minion_tgt=minion)
            assert "secret/bionicgpt/oauth" in ret.stdout, ret  # the references, unmasked

    # what `python -m lab` prints for these runs
    capsys.readouterr()
    for title, ret, elapsed in runs:
        print(f"==> orch.bionicgpt env=lab: {title}")
        lab_cli.print_summary(ret.data, elapsed)
    printed = capsys.readouterr().out
    assert "FAILED" in printed and "nomad_jobs" in printed

    comments = failed_comments(failing)
    assert any("refused" in c for c in comments), comments

    # -- the needles ------------------------------------------------------------------------------
    needles = {
        "Vault root token (harness)": lab_secrets["vault_root_token"],
        "Vault AppRole secret_id (minion config)": lab_secrets["vault_secret_id"],
        "Consul token (minion config)": lab_secrets["consul_token"],
        "Nomad token (minion config)": lab_secrets["nomad_token"],
        "Nomad management token (harness)": lab_secrets["nomad_management_token"],
        "Authentik API token": lab_secrets["authentik_token"],
    }
    for path in VAULT_PATHS:
        for key, value in (vault_get(vault, path) or {}).items():
            if (path, key) not in NOT_SECRET:
                needles[f"{path}#{key}"] = str(value)
    for path, data in planted.items():
        for key, value in data.items():
            if (path, key) not in NOT_SECRET:
                assert needles[f"{path}#{key}"] == value  # the planted values were the ones used
    expected = {"secret/hecate/consul#gossip_key", "secret/hecate/coturn#static_auth_secret",
                "secret/bionicgpt/db#password", "secret/bionicgpt/db#app_password",
                "secret/bionicgpt/oauth#cookie_secret", "secret/bionicgpt/oauth#client_secret",
                "secret/bionicgpt/litellm#master_key"}
    assert expected <= set(needles), sorted(needles)
    for minion in ("cloud", "local"):
        key_file = os.path.join(agents_dir, minion, "wireguard", "hcwg0.key")
        with open(key_file, encoding="utf-8") as fh:
            needles[f"WireGuard private key of {minion}"] = fh.read().strip()

    # -- the places -------------------------------------------------------------------------------
    scan = LeakScan()
    scan.add("CLI output (state returns, pillar.items)", out.text())
    scan.add("python -m lab output", printed)
    scan.add("failed states' comments", "\n".join(comments))
    logs = scan.add_daemon_logs([salt_master, cloud_minion, local_minion])
    assert all(b"bionicgpt" in blob for blob in logs.values())
    assert scan.add_tree("master job cache", os.path.join(salt_master.config["cachedir"], "jobs")) > 0
    assert scan.contains("master job cache", REDACTED)  # this session's secret-bearing returns
    for daemon in (cloud_minion, local_minion):
        assert scan.add_tree(f"{daemon.id} cache", daemon.config["cachedir"]) > 0
    assert scan.hits(needles) == []
