"""
The hecate_edge execution module and states through Salt's functional loaders: what the edge's
job files and orch.hecate's waits call, against the real Caddy and the Authentik simulator
of the test session (started directly here; tests/integration/test_edge_from_zero.py runs
them as Nomad jobs).

The faults of the waits: a bootstrap token Authentik refuses fails at once with what to do
(AUTHENTIK_BOOTSTRAP_TOKEN is "Only read on the first startup", docs.goauthentik.io
"Automated install"), an admin API that does not answer fails after the timeout, and both
only report (result None) under test=True.
"""

import os
import secrets
import uuid

import pytest
import yaml
from saltfactories.utils.functional import Loaders

from lab import procs, topology
from tests.conftest import REPO


class RuntimePillar:
    """This module's lab_runtime pillar: the session's services plus per-test overrides."""

    def __init__(self, path, addresses, base):
        self.path, self.addresses, self.base = path, addresses, base
        self.set()

    def set(self, overrides=None):
        data = topology._merge(topology.runtime_pillar(self.addresses), self.base)  # pylint: disable=protected-access
        data = topology._merge(data, overrides or {})  # pylint: disable=protected-access
        os.makedirs(self.path, exist_ok=True)
        with open(os.path.join(self.path, "lab_runtime.sls"), "w", encoding="utf-8") as fh:
            yaml.safe_dump(data, fh)


@pytest.fixture(scope="module")
def runtime_pillar(tmp_path_factory, caddy, authentik_sim, vault_sim, consul_sim, lab_secrets):
    addresses = {"caddy_admin": caddy.admin_url, "caddy_http_port": caddy.http_port, "vault": vault_sim.url,
                 "consul": consul_sim.url, "authentik": authentik_sim.url,
                 "caddy_state_dir": str(tmp_path_factory.mktemp("caddy-state"))}
    # the edge deploys its jobs; Authentik's token is the one the session's simulator knows
    base = {"hecate": {"nomad": {"jobs": ["postgresql", "authentik", "caddy"]},
                       "connections": {"authentik": {"url": authentik_sim.url}}}}
    return RuntimePillar(str(tmp_path_factory.mktemp("edge-pillar")), addresses, base)


@pytest.fixture(autouse=True)
def reset_pillar(runtime_pillar):
    runtime_pillar.set()
    yield
    runtime_pillar.set()


@pytest.fixture(scope="module")
def loaders(salt_factories, runtime_pillar, lab_secrets):
    overrides = {
        "file_client": "local",
        "file_roots": topology.file_roots(),
        "pillar_roots": topology.pillar_roots(runtime_pillar.path),
        "fileserver_followsymlinks": True,
        "module_dirs": [REPO],
        "grains": dict(topology.MINIONS["cloud"]),
    }
    overrides.update(topology.salt_opts(lab_secrets))
    factory = salt_factories.salt_minion_daemon(f"edge-functional-{uuid.uuid4().hex[:6]}", overrides=overrides)
    return Loaders(factory.config.copy())


@pytest.fixture(autouse=True)
def reset_loaders_state(loaders):
    try:
        yield
    finally:
        loaders.reset_state()


def single(ret):
    return ret.raw[next(iter(ret.raw))] if hasattr(ret, "raw") else ret


def test_module_reports_the_jobs_and_their_settings(loaders):
    mod = loaders.modules.hecate_edge
    assert [j["job_id"] for j in mod.jobs()] == ["hecate-postgresql", "hecate-authentik", "hecate-caddy",
                                                   "hecate-backup"]
    assert mod.needs_redis("2025.6.1") is True and mod.needs_redis() is False
    settings = mod.settings("authentik")
    assert settings["authentik"]["database"]["password"] == {"vault": "secret/hecate/authentik", "key": "db_password"}
    assert settings["redis"] is False and settings["job_id"] == "hecate-authentik"
    assert mod.settings("nomad")["node_class"] == "hecate-edge"
    assert '"listen": "127.0.0.1:' in mod.caddy_bootstrap()
    assert set(mod.secrets()) == {"authentik_secret_key", "authentik_db_password", "authentik_bootstrap_password",
                                  "authentik_api_token"}


def test_status_of_the_running_authentik_and_caddy(loaders):
    mod = loaders.modules.hecate_edge
    status = mod.authentik_status()
    assert status["ready"] is True and status["token"] is True, status
    assert "accepts hecate's API token" in status["comment"]
    caddy = mod.caddy_status()
    assert caddy["answers"] is True and "hecate" in caddy["servers"], caddy


def test_waits_pass_when_both_answer(loaders):
    ret = single(loaders.states.hecate_edge.authentik_api(name="authentik answers", timeout=10))
    assert ret["result"] is True and ret["changes"] == {}, ret
    ret = single(loaders.states.hecate_edge.caddy_admin(name="caddy answers", timeout=10))
    assert ret["result"] is True and ret["changes"] == {}, ret


def test_a_bootstrap_token_authentik_refuses_fails_at_once_and_says_why(loaders, runtime_pillar, vault_sim):
    path = f"secret/hecate/edge-{uuid.uuid4().hex[:6]}"
    topology.seed_vault(vault_sim.url, vault_sim.root_token,
                        {tuple(path.split("/", 1)): {"api_token": secrets.token_urlsafe(32)}})
    runtime_pillar.set({"hecate": {"connections": {"authentik": {"token": {"vault": path, "key": "api_token"}}}}})
    ret = single(loaders.states.hecate_edge.authentik_api(name="authentik answers", timeout=300))
    assert ret["result"] is False, ret
    assert f"refuses hecate's API token ({path}#api_token)" in ret["comment"]
    assert "read only on Authentik's first start" in ret["comment"]
    assert "waited" not in ret["comment"]  # no point waiting for it
    preview = single(loaders.states.hecate_edge.authentik_api(name="authentik answers", test=True))
    assert preview["result"] is None and "refuses hecate's API token" in preview["comment"]


def test_an_admin_api_that_does_not_answer_fails_after_the_timeout(loaders, runtime_pillar):
    port = procs.free_port()
    runtime_pillar.set({"hecate": {"connections": {"caddy": {"admin_url": f"http://127.0.0.1:{port}"}},
                                   "reverse_proxy": {"caddy": {"ports": {"admin": port}}}}})
    ret = single(loaders.states.hecate_edge.caddy_admin(name="caddy answers", timeout=1, interval=0.2))
    assert ret["result"] is False, ret
    assert f"127.0.0.1:{port}" in ret["comment"] and "(waited 1s)" in ret["comment"]
    preview = single(loaders.states.hecate_edge.caddy_admin(name="caddy answers", test=True))
    assert preview["result"] is None and "a real run waits up to 120s" in preview["comment"]
    status = loaders.modules.hecate_edge.authentik_status()
    assert status["ready"] is True  # the other system is unaffected


def test_pending_is_a_preview_only(loaders):
    ret = single(loaders.states.hecate_edge.pending(name="bionicgpt-demo", kind="group", test=True))
    assert ret["result"] is None and ret["changes"] == {"group": {"old": None, "new": "bionicgpt-demo"}}
    assert "will be created once Authentik is up" in ret["comment"]
    ret = single(loaders.states.hecate_edge.pending(name="bionicgpt-demo", kind="group"))
    assert ret["result"] is False


def test_run_once_secrets_are_never_rotated(loaders):
    ret = single(loaders.states.hecate_edge.secrets_fixed(name="fixed", rotate=["authentik_api_token", "other"]))
    assert ret["result"] is False and ret["comment"].startswith("authentik_api_token: read only once")
    ret = single(loaders.states.hecate_edge.secrets_fixed(name="fixed", rotate=["coturn_static_auth_secret"]))
    assert ret["result"] is True
