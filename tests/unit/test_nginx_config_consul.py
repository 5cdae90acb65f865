"""
nginx_config.managed with streams whose backends come from Consul, with ``__salt__``
patched: ``hecate_consul.service_addresses`` is built by another part of hecate.
The state module is imported directly with its loader dunders set; the real nginx checks
the rendered file (``nginx -t``), nginx itself is not started (manage_service False).
"""

import importlib.util
import os

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NGINX = "/usr/sbin/nginx"

pytestmark = pytest.mark.skipif(
    not os.access(NGINX, os.X_OK),
    reason="nginx is not installed (make test installs nginx libnginx-mod-stream as root)",
)


class FakeSalt(dict):
    """``__salt__`` with only the functions a test gives it (``in`` like the loader)."""


@pytest.fixture
def state(tmp_path):
    spec = importlib.util.spec_from_file_location(
        "hecate_test_nginx_config", os.path.join(REPO, "_states", "nginx_config.py")
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.__opts__ = {"test": False}
    mod.__pillar__ = {}
    mod.__context__ = {}
    mod.__salt__ = FakeSalt()
    mod.root = str(tmp_path)
    return mod


def config(root, streams):
    return {
        "config_file": f"{root}/nginx.conf",
        "pid_file": f"{root}/nginx.pid",
        "error_log": f"{root}/error.log",
        "access_log": None,
        "user": None,
        "manage_service": False,
        "file_user": None,
        "file_group": None,
        "tcp_proxies": streams,
    }


STREAMS = [
    {"name": "wazuh-agent-tcp", "listen_port": 41515, "consul_service": "wazuh-registration"},
    {"name": "jenkins-agent", "listen_port": 45000,
     "consul_service": {"name": "jenkins-master", "port": 50000}},
]


def test_consul_backends_are_rendered_sorted(state):
    calls = []

    def service_addresses(name, passing=True):
        calls.append((name, passing))
        return {
            "wazuh-registration": ["100.88.163.86:1515", "100.88.163.85:1515"],
            "jenkins-master": ["100.65.138.128:8059"],
        }[name]

    state.__salt__["hecate_consul.service_addresses"] = service_addresses
    cfg = config(state.root, STREAMS)
    ret = state.managed(cfg["config_file"], config=cfg)
    assert ret["result"] is True, ret
    assert calls == [("wazuh-registration", True), ("jenkins-master", True)]
    with open(cfg["config_file"], encoding="utf-8") as fh:
        text = fh.read()
    assert (
        "servers: consul service 'wazuh-registration' (passing)\n"
        "    upstream hecate_wazuh_agent_tcp {\n"
        "        server 100.88.163.85:1515;\n"
        "        server 100.88.163.86:1515;\n"
    ) in text
    assert "        server 100.65.138.128:50000;\n" in text

    # Consul answering in another order changes nothing
    state.__salt__["hecate_consul.service_addresses"] = lambda n, passing=True: list(
        reversed(service_addresses(n, passing))
    )
    assert state.managed(cfg["config_file"], config=cfg)["changes"] == {}
    # a new instance shows up as a one-line diff
    state.__salt__["hecate_consul.service_addresses"] = lambda n, passing=True: (
        service_addresses(n, passing) + (["100.88.163.87:1515"] if n == "wazuh-registration" else [])
    )
    state.__opts__["test"] = True
    ret = state.managed(cfg["config_file"], config=cfg)
    assert ret["result"] is None
    assert "+        server 100.88.163.87:1515;\n" in ret["changes"]["diff"]


def test_missing_hecate_consul_fails_clearly(state):
    cfg = config(state.root, STREAMS)
    ret = state.managed(cfg["config_file"], config=cfg)
    assert ret["result"] is False and ret["changes"] == {}
    assert ret["comment"] == (
        "hecate:reverse_proxy:nginx:tcp_proxies:0: stream 'wazuh-agent-tcp' takes its backends "
        "from Consul service 'wazuh-registration', but hecate_consul.service_addresses is not "
        "available on this minion (sync the hecate_consul module: saltutil.sync_modules)"
    )
    assert not os.path.exists(cfg["config_file"])


def test_service_without_passing_instances_leaves_the_file(state):
    state.__salt__["hecate_consul.service_addresses"] = lambda n, passing=True: ["10.0.0.1:1"]
    cfg = config(state.root, STREAMS)
    assert state.managed(cfg["config_file"], config=cfg)["result"] is True
    with open(cfg["config_file"], encoding="utf-8") as fh:
        before = fh.read()
    state.__salt__["hecate_consul.service_addresses"] = lambda n, passing=True: (
        [] if n == "jenkins-master" else ["10.0.0.1:1"]
    )
    ret = state.managed(cfg["config_file"], config=cfg)
    assert ret["result"] is False
    assert "tcp_proxies:1: Consul service 'jenkins-master' has no passing instances" in ret["comment"]
    with open(cfg["config_file"], encoding="utf-8") as fh:
        assert fh.read() == before
