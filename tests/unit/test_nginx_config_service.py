"""
nginx_config.managed with ``service`` set (systemd on the edge): it asks the service
manager to reload - never to restart - and confirms through the pid file that new workers
run. ``service.*`` are patched to drive a real nginx the way Debian's unit does
(``ExecReload=nginx -s reload``); the test nginx runs in a temporary directory.
"""

import importlib.util
import os
import socket

import pytest

from lab import procs
from tests import edge_support

REPO = edge_support.REPO
NGINX = "/usr/sbin/nginx"

pytestmark = pytest.mark.skipif(
    not os.access(NGINX, os.X_OK)
    or not os.path.exists("/usr/lib/nginx/modules/ngx_stream_module.so"),
    reason="nginx with its stream module is not installed (make test installs nginx "
    "libnginx-mod-stream as root)",
)


def load_state():
    spec = importlib.util.spec_from_file_location(
        "hecate_test_nginx_config_service", os.path.join(REPO, "_states", "nginx_config.py")
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


class ServiceManager:
    """Plays systemd for one nginx: start = ``nginx -c``, reload = ``nginx -s reload``."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.calls = []

    def _run(self, *args):
        import subprocess  # pylint: disable=import-outside-toplevel

        return subprocess.run([NGINX, "-c", self.cfg["config_file"], *args], check=False).returncode == 0

    def status(self, name):
        self.calls.append(("status", name))
        return os.path.exists(self.cfg["pid_file"])

    def start(self, name):
        self.calls.append(("start", name))
        return self._run()

    def reload(self, name):
        self.calls.append(("reload", name))
        return self._run("-s", "reload")

    def restart(self, name):
        raise AssertionError("nginx must be reloaded, never restarted")

    def funcs(self):
        return {
            "service.status": self.status,
            "service.start": self.start,
            "service.reload": self.reload,
            "service.restart": self.restart,
        }


@pytest.fixture
def setup(tmp_path):
    mod = load_state()
    root = str(tmp_path)
    cfg = {
        "config_file": f"{root}/nginx.conf",
        "pid_file": f"{root}/nginx.pid",
        "error_log": f"{root}/error.log",
        "access_log": None,
        "user": None,
        "worker_processes": 1,
        "service": "nginx",
        "file_user": None,
        "file_group": None,
        "tcp_proxies": [],
    }
    manager = ServiceManager(cfg)
    mod.__opts__ = {"test": False}
    mod.__pillar__ = {}
    mod.__context__ = {}
    mod.__salt__ = manager.funcs()
    yield mod, cfg, manager
    import hecate_nginx_process  # pylint: disable=import-outside-toplevel

    hecate_nginx_process.stop(cfg["pid_file"])


def test_service_is_started_then_reloaded(setup):
    mod, cfg, manager = setup
    a, b = edge_support.Echo("tcp", "a:"), edge_support.Echo("tcp", "b:")
    port = procs.free_port()
    try:
        cfg["tcp_proxies"] = [{"name": "s", "listen_port": port, "listen_address": "127.0.0.1",
                               "backend": a.address}]
        ret = mod.managed(cfg["config_file"], config=cfg)
        assert ret["result"] is True and ret["changes"]["service"] == "started", ret
        assert [c[0] for c in manager.calls] == ["status", "start"]
        assert edge_support.tcp_roundtrip(port) == b"a:ping"

        manager.calls.clear()
        cfg["tcp_proxies"][0]["backend"] = b.address
        ret = mod.managed(cfg["config_file"], config=cfg)
        assert ret["result"] is True and ret["changes"]["service"] == "reloaded", ret
        assert [c[0] for c in manager.calls] == ["status", "reload"]
        assert edge_support.tcp_roundtrip(port) == b"b:ping"

        manager.calls.clear()
        assert mod.managed(cfg["config_file"], config=cfg)["changes"] == {}
        assert [c[0] for c in manager.calls] == ["status"]
    finally:
        a.stop()
        b.stop()


def test_failed_service_reload_restores_the_file(setup):
    mod, cfg, manager = setup
    echo = edge_support.Echo("tcp", "a:")
    port = procs.free_port()
    try:
        cfg["tcp_proxies"] = [{"name": "s", "listen_port": port, "listen_address": "127.0.0.1",
                               "backend": echo.address}]
        assert mod.managed(cfg["config_file"], config=cfg)["result"] is True
        with open(cfg["config_file"], encoding="utf-8") as fh:
            live = fh.read()
        mod.__salt__["service.reload"] = lambda name: False
        cfg["tcp_proxies"][0]["timeouts"] = {"proxy": "5m"}
        ret = mod.managed(cfg["config_file"], config=cfg)
        assert ret["result"] is False
        assert "service.reload nginx failed" in ret["comment"]
        assert "was restored to its previous version; the previous configuration keeps serving" in ret["comment"]
        with open(cfg["config_file"], encoding="utf-8") as fh:
            assert fh.read() == live
        assert edge_support.tcp_roundtrip(port) == b"a:ping"
    finally:
        echo.stop()


def test_service_that_will_not_start_leaves_no_file(setup):
    mod, cfg, manager = setup
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", 0))
    squatter.listen()
    try:
        cfg["tcp_proxies"] = [{"name": "s", "listen_port": squatter.getsockname()[1],
                               "listen_address": "127.0.0.1", "backend": "127.0.0.1:9"}]
        ret = mod.managed(cfg["config_file"], config=cfg)
    finally:
        squatter.close()
    assert ret["result"] is False
    assert "service.start nginx failed" in ret["comment"]
    assert "nginx is not running" in ret["comment"]
    assert not os.path.exists(cfg["config_file"])
