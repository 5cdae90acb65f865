"""
hecate.nginx and hecate.coturn on the real cloud minion (roles: hecate-edge), applied
standalone with state.apply (as the orchestration's salt.state steps will), with the lab
paths and loopback ports from the lab_runtime pillar.
"""

import json
import os
import secrets
import urllib.request

import pytest

from lab import topology
from tests import edge_support

NGINX = "/usr/sbin/nginx"
needs_nginx = pytest.mark.skipif(
    not os.access(NGINX, os.X_OK)
    or not os.path.exists("/usr/lib/nginx/modules/ngx_stream_module.so"),
    reason="nginx with its stream module is not installed (make test installs nginx "
    "libnginx-mod-stream as root)",
)


def states_of(ret):
    assert ret.returncode in (0, 1), ret
    assert isinstance(ret.data, dict), ret
    return {sid.split("_|-")[1]: state for sid, state in ret.data.items()}


@needs_nginx
def test_nginx_sls_preview_apply_rerun_and_traffic(cloud_call, edge_addresses, caddy):
    paths = topology.edge_paths(edge_addresses["edge_dir"])
    backend = edge_support.Echo("udp", "lab:", port=edge_addresses["edge_udp_backend_port"])
    try:
        before = edge_support.tree(edge_addresses["edge_dir"])
        ret = cloud_call.run("state.apply", "hecate.nginx", "test=True")
        state = states_of(ret)["hecate nginx streams"]
        assert state["result"] is None, state
        assert state["changes"]["service"] == "started"
        assert "lab-caddy-http" in state["changes"]["diff"]
        assert edge_support.tree(edge_addresses["edge_dir"]) == before

        ret = cloud_call.run("state.apply", "hecate.nginx")
        assert ret.returncode == 0, ret
        applied = states_of(ret)["hecate nginx streams"]
        assert applied["result"] is True and applied["changes"] == state["changes"], applied
        assert os.path.exists(paths["nginx_pid"])

        # TCP: through nginx to Caddy's HTTP listener
        with urllib.request.urlopen(
            f"http://127.0.0.1:{edge_addresses['edge_tcp_port']}/", timeout=10
        ) as resp:
            assert resp.status == 200
            assert "Caddy" in resp.headers.get("Server", "")
        # UDP: through nginx to the echo backend
        assert edge_support.udp_roundtrip(edge_addresses["edge_udp_port"]) == b"lab:ping"

        ret = cloud_call.run("state.apply", "hecate.nginx")
        again = states_of(ret)["hecate nginx streams"]
        assert again["result"] is True and again["changes"] == {}, again
    finally:
        backend.stop()


def vault_put(vault_sim, path, data):
    req = urllib.request.Request(
        f"{vault_sim.url}/v1/secret/data/{path}",
        data=json.dumps({"data": data}).encode(),
        headers={"X-Vault-Token": vault_sim.root_token, "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 200


def _grep(root, needle):
    hits = []
    for base, _, files in os.walk(root):
        for name in files:
            full = os.path.join(base, name)
            try:
                with open(full, "rb") as fh:
                    if needle.encode() in fh.read():
                        hits.append(full)
            except OSError:
                continue
    return hits


def test_coturn_sls_secret_stays_in_the_file(
    cloud_call, cloud_minion, salt_master, vault_sim, edge_addresses
):
    secret = secrets.token_urlsafe(32)
    vault_put(vault_sim, "hecate/coturn", {"static_auth_secret": secret})
    config = topology.edge_paths(edge_addresses["edge_dir"])["coturn_config"]

    ret = cloud_call.run("state.apply", "hecate.coturn", "test=True")
    states = states_of(ret)
    assert set(states) == {"hecate coturn config"}  # the lab does not run the coturn service
    state = states["hecate coturn config"]
    assert state["result"] is None, state
    assert state["changes"]["content"] == "file created (contains secrets, not shown)"
    assert not os.path.exists(config)

    ret = cloud_call.run("state.apply", "hecate.coturn")
    assert ret.returncode == 0, ret
    state = states_of(ret)["hecate coturn config"]
    assert state["result"] is True, state
    assert oct(os.stat(config).st_mode & 0o777) == "0o600"
    with open(config, encoding="utf-8") as fh:
        assert f"static-auth-secret={secret}\n" in fh.read()

    ret = cloud_call.run("state.apply", "hecate.coturn")
    assert states_of(ret)["hecate coturn config"]["changes"] == {}
    # nowhere else: not in the CLI output, the minion's debug log, or either job cache
    assert secret not in ret.stdout
    with open(cloud_minion.config["log_file"], encoding="utf-8", errors="replace") as fh:
        minion_log = fh.read()
    assert "coturn_config: " in minion_log and "[DEBUG" in minion_log  # the log we search is live
    places = [cloud_minion.config["log_file"], cloud_minion.config["cachedir"],
              salt_master.config["cachedir"], salt_master.config["log_file"]]
    for place in places:
        if os.path.isdir(place):
            assert _grep(place, secret) == [], place
        elif os.path.exists(place):
            with open(place, "rb") as fh:
                assert secret.encode() not in fh.read(), place


def test_lab_pillar_validates(salt_run_cli):
    ret = salt_run_cli.run("hecate.validate", "env=lab")
    assert ret.returncode == 0 and ret.data["result"] is True, ret


def test_cloud_minion_pillar_validates(cloud_call):
    """The edge pillar (shipped streams and coturn, lab paths over them) as the minion sees it."""
    ret = cloud_call.run("hecate.validate_pillar")
    assert ret.returncode == 0 and ret.data == [], ret


@needs_nginx
def test_runs_as_an_orchestration_salt_state_step_in_test_mode(
    salt_run_cli, salt_master, cloud_minion, edge_addresses, vault_sim
):
    """What the lead's orch steps will do: salt.state with sls=hecate.nginx / hecate.coturn,
    targeted by grain and environment, in test mode - which must write nothing.

    (state.orchestrate_high/_single drop the runner's own test=True - they call the state
    system with test=None - so the step carries ``test: True`` itself, as salt.state
    does when ``state.orch ... test=True`` runs a step.)"""
    vault_put(vault_sim, "hecate/coturn", {"static_auth_secret": secrets.token_urlsafe(32)})
    before = edge_support.tree(edge_addresses["edge_dir"])
    steps = {
        f"edge {sls}": {
            "salt": [
                "state",
                {"tgt": "G@roles:hecate-edge and G@hecate_env:lab"},
                {"tgt_type": "compound"},
                {"sls": sls},
                {"test": True},
            ],
            "__env__": "base",
            "__sls__": "edge",
        }
        for sls in ("hecate.nginx", "hecate.coturn")
    }
    ret = salt_run_cli.run("state.orchestrate_high", json.dumps(steps))
    assert ret.returncode == 0, ret
    master_ret = ret.data[salt_master.id]
    assert len(master_ret) == 2, master_ret
    for step in master_ret.values():
        assert step["result"] in (None, True), step
        minion_states = step["changes"]["ret"]["cloud"] if step["changes"] else {}
        for state in minion_states.values():
            assert state["result"] in (None, True), state
    assert edge_support.tree(edge_addresses["edge_dir"]) == before
