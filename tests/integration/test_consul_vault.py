"""
Consul and Vault through the real master and minions: the SLS files driven from pillar,
idempotence counted in the simulators' request logs, and the leak scan - known secrets
must appear in no return, no job-cache file, no master/minion log (debug level) and no
pillar.items output.
"""

import os
import secrets as pysecrets

import pytest
import requests

from tests.leakscan import LeakScan, Transcript

REDACTED = "XXX-REDACTED-XXX"


def vault_put(vault_sim, path, data):
    mount, _, rel = path.partition("/")
    resp = requests.post(f"{vault_sim.url}/v1/{mount}/data/{rel}", json={"data": data},
                         headers={"X-Vault-Token": vault_sim.root_token}, timeout=10)
    assert resp.status_code == 200, resp.text


def vault_get(vault_sim, path):
    mount, _, rel = path.partition("/")
    resp = requests.get(
        f"{vault_sim.url}/v1/{mount}/data/{rel}", headers={"X-Vault-Token": vault_sim.root_token}, timeout=10
    )
    return resp.json()["data"]["data"] if resp.status_code == 200 else None


def states(ret):
    """``{state id: return}`` of a state run on one minion."""
    data = ret.data
    assert isinstance(data, dict), ret
    if not all(isinstance(v, dict) and "__id__" in v for v in data.values()):
        (data,) = data.values()  # keyed by minion id
    return {v["__id__"]: v for v in data.values()}


@pytest.fixture(scope="module")
def known():
    return {
        "db_password": "KnownDb-" + pysecrets.token_hex(12),
        "oauth_client_secret": "KnownOauth-" + pysecrets.token_hex(12),
    }


def test_secrets_sls_consul_services_and_leak_scan(
    salt_cli, salt_master, cloud_minion, local_minion, vault_sim, consul_sim, known, lab_secrets
):
    out = Transcript()
    # An existing DB password (must survive) and a secret another module handed over.
    vault_put(vault_sim, "secret/bionicgpt/db", {"password": known["db_password"]})
    vault_put(vault_sim, "secret/hecate/leaktest/authentik", {"client_secret": known["oauth_client_secret"]})
    # keys this test wants generated: an orchestration test that ran first made them; other
    # keys at those paths (the OAuth client secret) are kept
    for path, key in (("secret/bionicgpt/oauth", "cookie_secret"), ("secret/bionicgpt/litellm", "master_key")):
        data = vault_get(vault_sim, path) or {}
        if key in data:
            data.pop(key)
            vault_put(vault_sim, path, data)

    # -- bionicgpt.secrets on the local node: preview, apply, re-run -------------------------------
    vault_sim.clear_requests()
    ret = out.run(salt_cli, "state.apply", "bionicgpt.secrets", "test=True", minion_tgt="local")
    assert ret.returncode == 0, ret
    got = states(ret)
    assert got["bionicgpt secret db_password"]["result"] is True
    assert got["bionicgpt secret db_password"]["changes"] == {}
    for name, target in (("db_app_password", "secret/bionicgpt/db#app_password"),
                         ("oauth2_proxy_cookie_secret", "secret/bionicgpt/oauth#cookie_secret"),
                         ("litellm_master_key", "secret/bionicgpt/litellm#master_key")):
        step = got[f"bionicgpt secret {name}"]
        assert step["result"] is None and step["changes"] == {target: {"old": None, "new": REDACTED}}
    assert vault_sim.writes() == []

    ret = out.run(salt_cli, "state.apply", "bionicgpt.secrets", minion_tgt="local")
    assert ret.returncode == 0, ret
    assert all(s["result"] is True for s in states(ret).values())
    assert len(vault_sim.writes()) == 3
    generated = {
        "db_app": vault_get(vault_sim, "secret/bionicgpt/db")["app_password"],
        "cookie": vault_get(vault_sim, "secret/bionicgpt/oauth")["cookie_secret"],
        "litellm": vault_get(vault_sim, "secret/bionicgpt/litellm")["master_key"],
    }
    assert len(generated["cookie"]) == 32  # oauth2-proxy: 32 bytes -> AES-256
    assert generated["litellm"].startswith("sk-") and len(generated["litellm"]) == 35
    assert vault_get(vault_sim, "secret/bionicgpt/db") == {
        "password": known["db_password"], "app_password": generated["db_app"]}

    vault_sim.clear_requests()
    ret = out.run(salt_cli, "state.apply", "bionicgpt.secrets", minion_tgt="local")
    assert ret.returncode == 0, ret
    assert all(s["result"] is True and s["changes"] == {} for s in states(ret).values())
    assert vault_sim.writes() == []
    assert vault_get(vault_sim, "secret/bionicgpt/oauth")["cookie_secret"] == generated["cookie"]

    # -- a secret handed over by another module, by reference ---------------------------------------
    # (other tests of the session may have stored keys here too: all of them must be kept)
    before = vault_get(vault_sim, "secret/bionicgpt/oauth")
    ret = out.run(
        salt_cli, "state.single", "hecate_secret.present", "name=secret/bionicgpt/oauth",
        'values={"client_secret": {"vault": "secret/hecate/leaktest/authentik", "key": "client_secret"}}',
        minion_tgt="local",
    )
    assert ret.returncode == 0, ret
    (step,) = ret.data.values()
    assert step["result"] is True and step["changes"]["secret/bionicgpt/oauth#client_secret"]["new"] == REDACTED
    oauth = vault_get(vault_sim, "secret/bionicgpt/oauth")
    assert oauth == dict(before, client_secret=known["oauth_client_secret"])
    assert oauth["cookie_secret"] == generated["cookie"]

    # -- failures carry no values either: a Vault error while rotating -------------------------------
    vault_sim.fault(method="POST", path="/v1/secret/data/bionicgpt/litellm", status=400,
                    body={"errors": ["lab: refused"]}, times=1)
    ret = out.run(salt_cli, "state.apply", "bionicgpt.secrets", 'pillar={"rotate": ["litellm_master_key"]}',
                  minion_tgt="local")
    vault_sim.clear_faults()
    assert ret.returncode != 0
    step = states(ret)["bionicgpt secret litellm_master_key"]
    assert step["result"] is False and "lab: refused" in step["comment"]
    assert vault_get(vault_sim, "secret/bionicgpt/litellm")["master_key"] == generated["litellm"]

    # -- execution modules and pillar ----------------------------------------------------------------
    ret = out.run(salt_cli, "hecate_vault.read", "secret/bionicgpt/oauth", minion_tgt="local")
    assert ret.data["keys"] == sorted(oauth)
    assert set(ret.data["data"].values()) == {REDACTED}
    for minion in ("local", "cloud"):
        ret = out.run(salt_cli, "pillar.items", minion_tgt=minion)
        assert ret.returncode == 0, ret
        ret = out.run(salt_cli, "hecate.connection", "vault", minion_tgt=minion)
        assert ret.returncode == 0, ret

    # -- external Consul services from pillar on the cloud node --------------------------------------
    consul_sim.clear_requests()
    ret = out.run(salt_cli, "state.apply", "hecate.consul_services", "test=True", minion_tgt="cloud")
    assert ret.returncode == 0, ret
    got = states(ret)
    assert set(got) == {"consul service wazuh-master", "consul service jenkins-master"}
    assert {v["result"] for v in got.values()} == {None}
    assert consul_sim.writes() == []
    ret = out.run(salt_cli, "state.apply", "hecate.consul_services", minion_tgt="cloud")
    assert ret.returncode == 0, ret
    assert sorted(w["path"] for w in consul_sim.writes()) == ["/v1/agent/service/register"] * 2
    services = requests.get(f"{consul_sim.url}/v1/agent/services", headers={"X-Consul-Token": consul_sim.token},
                            timeout=10).json()
    assert services["wazuh-master"]["Service"] == "wazuh-registration"
    assert services["jenkins-master"]["Meta"]["domain"] == "jenkins.cybermonkey.dev"
    consul_sim.clear_requests()
    ret = out.run(salt_cli, "state.apply", "hecate.consul_services", minion_tgt="cloud")
    assert ret.returncode == 0, ret
    assert all(v["result"] is True and v["changes"] == {} for v in states(ret).values())
    assert consul_sim.writes() == []

    # -- the leak scan ----------------------------------------------------------------------------------
    needles = {
        "existing db password": known["db_password"],
        "handed-over oauth client secret": known["oauth_client_secret"],
        "generated cookie secret": generated["cookie"],
        "generated litellm key": generated["litellm"],
        "generated db app password": generated["db_app"],
        "vault token": lab_secrets["vault_root_token"],
        "vault AppRole secret_id": lab_secrets["vault_secret_id"],
        "consul token": lab_secrets["consul_token"],
        "nomad token": lab_secrets["nomad_token"],
    }
    scan = LeakScan()
    scan.add("CLI output (returns, pillar.items)", out.text())
    logs = scan.add_daemon_logs([salt_master, cloud_minion, local_minion])
    # the scan is meaningful: these very runs are in the logs
    assert any(b"secret/bionicgpt/oauth" in blob for blob in logs.values())
    jobs = os.path.join(salt_master.config["cachedir"], "jobs")
    assert scan.add_tree("job cache", jobs) > 0, "the master's job cache is empty: nothing was scanned"
    assert scan.contains("job cache", "secret/bionicgpt/oauth#cookie_secret")
    assert scan.hits(needles) == []
