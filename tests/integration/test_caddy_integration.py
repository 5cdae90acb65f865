"""
The cloud minion applies salt://hecate/caddy.sls (the user's routes from lab/pillar/hecate.sls)
to the lab's real Caddy: exact preview, one write, converged re-run, drift, rollback.
"""

import json
import os
import stat

import pytest
import requests

from tests import caddy_helpers as ch

STATE = "caddy_routes_|-hecate caddy routes_|-hecate caddy routes_|-managed"
USER_ROUTES = {
    "authentik",
    "nextcloud",
    "grafana",
    "jenkins",
    "minio-console",
    "minio-api",
    "persephone-minio",
    "wazuh",
    "u-page",
    "helen",
    "bionicgpt",  # chat domain -> oauth2-proxy, resolved through Consul
}
PROXY = "bionicgpt-oauth2-proxy"


@pytest.fixture(autouse=True)
def oauth2_proxy_in_consul(consul_sim, runtime_pillar_dir):
    """oauth2-proxy registered in Consul as Nomad registers it (no Nomad needed here)."""
    headers = {"X-Consul-Token": consul_sim.token}
    body = {"ID": "caddy-test-oauth2-proxy", "Name": PROXY, "Address": "127.0.0.1", "Port": 9}
    resp = requests.put(f"{consul_sim.url}/v1/agent/service/register", json=body, headers=headers, timeout=10)
    assert resp.status_code == 200, resp.text
    yield
    requests.put(f"{consul_sim.url}/v1/agent/service/deregister/caddy-test-oauth2-proxy",
                 headers=headers, timeout=10)


def _sls(cloud_call, *args):
    ret = cloud_call.run("state.sls", "hecate.caddy", *args)
    assert isinstance(ret.data, dict), ret
    return ret, ret.data[STATE]


def test_caddy_sls_on_the_cloud_minion(cloud_call, caddy, lab_dir):
    ch.reset(caddy)
    raw, w0 = ch.raw_config(caddy), ch.writes(caddy)

    ret, preview = _sls(cloud_call, "test=True")
    assert preview["result"] is None, preview
    assert set(preview["changes"]["added"]) == USER_ROUTES
    assert preview["changes"]["added"]["wazuh"] == {
        "domains": ["delphi.cybermonkey.dev"],
        "upstreams": ["100.88.163.85:443"],
        "tls": {"insecure_skip_verify": True},
    }
    assert ch.raw_config(caddy) == raw and ch.writes(caddy) == w0

    ret, applied = _sls(cloud_call)
    assert ret.returncode == 0, ret
    assert applied["result"] is True and applied["changes"] == preview["changes"]
    assert ch.writes(caddy) == w0 + 1
    # the user's sites answer through Caddy with their policies; only paths Caddy answers
    # itself are probed (the user's backends are real addresses, never contacted by tests)
    blocked = ch.through(caddy, "cloud.cybermonkey.dev", "/wp-login.php")
    assert blocked.status_code == 404 and blocked.headers["Server"] == "Caddy"

    ret, again = _sls(cloud_call)
    assert again["result"] is True and again["changes"] == {}
    assert ch.writes(caddy) == w0 + 1

    drift = cloud_call.run("caddy.drift")
    assert drift.data == {"server": "hecate", "in_sync": True, "changes": {}}

    state_dir = os.path.join(lab_dir, "caddy-state")
    assert stat.S_IMODE(os.stat(state_dir).st_mode) == 0o700


def test_rollback_from_the_command_line(cloud_call, caddy):
    ch.reset(caddy)
    empty = ch.raw_config(caddy)
    ret, applied = _sls(cloud_call)
    assert applied["result"] is True and applied["changes"]
    ret = cloud_call.run("caddy.rollback")
    assert ret.returncode == 0, ret
    assert len(ret.data["restored"]) == 1
    assert ch.raw_config(caddy) == empty
    ret = cloud_call.run("caddy.rollback")
    assert ret.returncode == 0 and "nothing to roll back" in ret.data["comment"]


def test_rollback_refusal_is_a_failure(cloud_call, caddy):
    ch.reset(caddy)
    _sls(cloud_call)
    ch.reset(caddy)  # someone replaced the config meanwhile ...
    requests.post(  # ... and added a route of their own
        caddy.admin_url + "/config/apps/http/servers/hecate/routes",
        json={"@id": "ops.route", "handle": [{"handler": "static_response", "body": "ops"}]},
        timeout=10,
    ).raise_for_status()
    raw = ch.raw_config(caddy)
    ret = cloud_call.run("caddy.rollback")
    assert ret.returncode != 0
    assert "changed since hecate wrote it" in ret.stdout + ret.stderr
    assert ch.raw_config(caddy) == raw


# The user's Nextcloud site block, as their Caddyfile has it today (shared/reference,
# hecate-framework.md), without the imported snippet: loaded into the same server, as when an
# operator migrates, the adapter makes it a terminal route for the host (see
# tests/functional/test_caddy_states.py for Caddy's source on that).
USER_SITE = "https://cloud.cybermonkey.dev {\n\treverse_proxy 100.65.138.128:11000\n}\n"


def test_a_site_of_the_old_caddyfile_in_the_server_stops_the_sls(cloud_call, caddy, tmp_path):
    ch.reset(caddy)
    ch.put_routes(caddy, ch.adapt(USER_SITE, str(tmp_path)))
    raw, w0 = ch.raw_config(caddy), ch.writes(caddy)
    comments = []
    for args in (("test=True",), ()):
        ret, state = _sls(cloud_call, *args)
        assert ret.returncode != 0 and state["result"] is False and state["changes"] == {}, state
        comments.append(state["comment"])
    assert comments[0] == comments[1]  # the preview says what the run does
    assert (
        "hecate route 'nextcloud' (hecate.route.nextcloud, hecate:reverse_proxy:caddy:routes:"
        in comments[0]
    )
    assert (
        "would never serve cloud.cybermonkey.dev: route 0 of Caddy server 'hecate' (no @id; host "
        "cloud.cybermonkey.dev), not managed by hecate, comes first and takes every request for it "
        "(terminal)" in comments[0]
    )
    assert comments[0].count("would never serve") == 1  # the other sites are free
    assert ch.raw_config(caddy) == raw and ch.writes(caddy) == w0
    ch.reset(caddy)


# -- Caddy forgetting the routes (restart without --resume, caddy reload, SIGUSR1) ------------------
# cmd/commandfuncs.go (cmdRun): only with --resume does Caddy start from autosave.json (the API
# changes); without it, from its --config file. caddyconfig/load.go and admin.go: POST /load (what
# `caddy reload` sends) and every API change replace the whole config. SIGUSR1 (Caddy 2.11+,
# sigtrap_posix.go) reloads the --config file only while no API change has happened since
# (ClearLastConfigIfDifferent): after hecate's write it is ignored; before 2.11 it is not implemented.
def _lost(cloud_call, caddy, w_applied):
    empty = {"apps", "admin", "logging"}
    assert set(json.loads(ch.raw_config(caddy))) == empty
    assert json.loads(ch.raw_config(caddy))["apps"]["http"]["servers"]["hecate"]["routes"] == []
    drift = cloud_call.run("caddy.drift")
    assert drift.returncode == 0, drift
    assert drift.data["in_sync"] is False and set(drift.data["changes"]) == {"added"}
    assert set(drift.data["changes"]["added"]) == USER_ROUTES  # every route reported missing
    (note,) = drift.data["notes"]
    assert note.startswith(f"Caddy no longer has {len(USER_ROUTES)} route(s) hecate wrote to server 'hecate' at ")
    assert "restarted without --resume, or its config was replaced from a file (caddy reload" in note
    w0 = ch.writes(caddy)
    ret, applied = _sls(cloud_call)
    assert ret.returncode == 0 and applied["result"] is True, applied
    assert set(applied["changes"]["added"]) == USER_ROUTES and set(applied["changes"]) == {"added"}
    assert note in applied["comment"]  # the run says why it put them back
    assert caddy.admin_writes()[w0:] == [("PATCH", "/config/apps/http/servers/hecate/routes")]
    assert ch.raw_config(caddy) == w_applied  # exactly what the first run wrote
    drift = cloud_call.run("caddy.drift")
    assert drift.data == {"server": "hecate", "in_sync": True, "changes": {}}


def test_a_restart_without_resume_and_a_reload_lose_the_routes_and_a_run_restores_them(cloud_call, caddy):
    ch.reset(caddy)
    _, applied = _sls(cloud_call)
    assert applied["result"] is True and set(applied["changes"]["added"]) == USER_ROUTES
    written = ch.raw_config(caddy)
    try:
        caddy.restart(resume=False)  # a Caddy started from its config file, as the user's job does
        _lost(cloud_call, caddy, written)

        # SIGUSR1 after hecate's write: ignored by Caddy 2.11, the routes stay
        before = len(caddy.log_lines())
        caddy.signal_reload()
        assert ch.wait_for(lambda: any(
            e.get("msg") == "last config unknown, ignored SIGUSR1" for e in caddy.log_lines()[before:]))
        assert ch.raw_config(caddy) == written

        caddy.reload()  # `caddy reload --config <file>`: the file replaces the whole config
        _lost(cloud_call, caddy, written)
    finally:
        caddy.restart()
        ch.reset(caddy)
