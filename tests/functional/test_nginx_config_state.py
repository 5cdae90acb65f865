"""
nginx_config.managed through Salt's loaders against the real nginx: its own prefix, pid
file and logs in a temporary directory, listening on loopback high ports, carrying TCP and
UDP traffic to loopback echo servers.
"""

import os
import shutil
import socket
import sys

import pytest
from saltfactories.utils.functional import Loaders

from lab import procs
from tests import edge_support

sys.path.insert(0, os.path.join(edge_support.REPO, "_utils"))
import hecate_nginx_process  # noqa: E402  pylint: disable=wrong-import-position
import hecate_nginx_schema

NGINX = "/usr/sbin/nginx"
pytestmark = [
    pytest.mark.skipif(
        not os.access(NGINX, os.X_OK),
        reason="nginx is not installed (make test installs nginx libnginx-mod-stream as root)",
    ),
]


def _stream_module_missing():
    try:
        hecate_nginx_process.stream_module(dict(hecate_nginx_schema.DEFAULTS))
    except Exception as exc:  # pylint: disable=broad-except
        return str(exc)
    return None


@pytest.fixture(scope="module", autouse=True)
def needs_stream_module():
    missing = _stream_module_missing()
    if missing:
        pytest.skip(f"nginx has no stream module: {missing}")


@pytest.fixture(scope="module")
def loaders(salt_factories, repo):
    factory = salt_factories.salt_minion_daemon(
        "edge-nginx-functional", overrides={"module_dirs": [repo], "file_client": "local"}
    )
    return Loaders(factory.config.copy())


@pytest.fixture
def states(loaders):
    try:
        yield loaders.states
    finally:
        loaders.reset_state()


@pytest.fixture
def echo():
    servers = {}

    def make(protocol, prefix):
        servers[(protocol, prefix)] = edge_support.Echo(protocol, prefix)
        return servers[(protocol, prefix)]

    yield make
    for server in servers.values():
        server.stop()


class Edge:
    """One nginx instance's directory and settings."""

    def __init__(self, root):
        self.root = str(root)
        self.logs = os.path.join(self.root, "logs")
        os.makedirs(self.logs)
        self.config_file = os.path.join(self.root, "nginx.conf")
        self.pid_file = os.path.join(self.root, "nginx.pid")
        self.error_log = os.path.join(self.logs, "error.log")

    def config(self, streams, **extra):
        cfg = {
            "config_file": self.config_file,
            "pid_file": self.pid_file,
            "error_log": self.error_log,
            "access_log": os.path.join(self.logs, "access.log"),
            "user": None,
            "worker_processes": 1,
            "worker_rlimit_nofile": None,
            "service": None,
            "file_user": None,
            "file_group": None,
            "tcp_proxies": streams,
        }
        cfg.update(extra)
        return cfg

    def master(self):
        return hecate_nginx_process.master_pid(self.pid_file)

    def text(self):
        with open(self.config_file, encoding="utf-8") as fh:
            return fh.read()

    def stop(self):
        hecate_nginx_process.stop(self.pid_file)


@pytest.fixture
def edge(tmp_path):
    handle = Edge(tmp_path / "edge")
    yield handle
    handle.stop()


def apply(states, edge, cfg, test=False):
    return states.nginx_config.managed(name=edge.config_file, config=cfg, test=test)


def test_preview_apply_rerun_with_tcp_and_udp_traffic(states, edge, echo):
    tcp, udp = echo("tcp", "tcp-a:"), echo("udp", "udp-a:")
    tcp_port, udp_port = procs.free_port(), procs.free_port(socket.SOCK_DGRAM)
    cfg = edge.config(
        [
            {"name": "agent-tcp", "listen_port": tcp_port, "listen_address": "127.0.0.1",
             "backend": tcp.address, "timeouts": {"connect": "5s", "proxy": "30s"}},
            {"name": "agent-udp", "listen_port": udp_port, "listen_address": "127.0.0.1",
             "protocol": "udp", "backends": [udp.address], "proxy_responses": 1},
        ]
    )
    before = edge_support.tree(edge.root)

    preview = apply(states, edge, cfg, test=True)
    assert preview.result is None, preview
    assert set(preview.changes) == {"diff", "service"}
    assert preview.changes["service"] == "started"
    assert f"+        listen 127.0.0.1:{udp_port} udp reuseport;" in preview.changes["diff"]
    assert edge_support.tree(edge.root) == before, "test=True wrote something"
    assert edge.master() is None

    ret = apply(states, edge, cfg)
    assert ret.result is True, ret
    assert ret.changes == preview.changes  # the preview was exact
    assert edge.master() is not None
    assert oct(os.stat(edge.config_file).st_mode & 0o777) == "0o644"
    assert edge_support.tcp_roundtrip(tcp_port) == b"tcp-a:ping"
    assert edge_support.udp_roundtrip(udp_port) == b"udp-a:ping"
    # no candidate left next to the live file
    assert sorted(os.listdir(edge.root)) == ["logs", "nginx.conf", "nginx.pid"]

    master, mtime = edge.master(), os.stat(edge.config_file).st_mtime_ns
    again = apply(states, edge, cfg)
    assert again.result is True and again.changes == {}, again
    assert "in the desired state (2 stream(s)); nginx is running" in again.comment
    assert edge.master() == master and os.stat(edge.config_file).st_mtime_ns == mtime
    again = apply(states, edge, cfg, test=True)
    assert again.result is True and again.changes == {}


def test_change_reloads_without_restart(states, edge, echo):
    old, new = echo("tcp", "old:"), echo("tcp", "new:")
    port = procs.free_port()
    stream = {"name": "jenkins-agent", "listen_port": port, "listen_address": "127.0.0.1",
              "backend": old.address}
    assert apply(states, edge, edge.config([stream])).result is True
    assert edge_support.tcp_roundtrip(port) == b"old:ping"
    master = edge.master()
    workers = hecate_nginx_process.workers(master)

    stream["backend"] = new.address
    cfg = edge.config([stream])
    preview = apply(states, edge, cfg, test=True)
    assert preview.result is None and preview.changes["service"] == "reloaded"
    assert f"-        server {old.address};" in preview.changes["diff"]
    assert f"+        server {new.address};" in preview.changes["diff"]
    assert edge_support.tcp_roundtrip(port) == b"old:ping"  # preview changed nothing

    ret = apply(states, edge, cfg)
    assert ret.result is True, ret
    assert ret.changes == preview.changes
    assert "reloaded nginx (new workers running)" in ret.comment
    assert edge.master() == master, "nginx was restarted, not reloaded"
    assert hecate_nginx_process.workers(master) - workers, "no new workers after the reload"
    assert edge_support.tcp_roundtrip(port) == b"new:ping"
    # logging: the access log names the stream's port and upstream
    edge.stop()
    with open(os.path.join(edge.logs, "access.log"), encoding="utf-8") as fh:
        log = fh.read()
    assert f" TCP {port} 200 " in log and old.address in log and new.address in log


def test_broken_stream_is_rejected_and_the_previous_config_keeps_serving(states, edge, echo):
    tcp = echo("tcp", "ok:")
    port = procs.free_port()
    good = {"name": "wazuh-agent-tcp", "listen_port": port, "listen_address": "127.0.0.1",
            "backend": tcp.address}
    assert apply(states, edge, edge.config([good])).result is True
    # a served request first: the state returns once the master runs, its workers follow
    assert edge_support.tcp_roundtrip(port) == b"ok:ping"
    live = edge.text()
    workers = hecate_nginx_process.workers(edge.master())
    broken = {"name": "wazuh-api", "listen_port": procs.free_port(),
              "listen_address": "127.0.0.1", "backend": "no-such-host.invalid:55000"}
    cfg = edge.config([good, broken])
    snapshot = edge_support.tree(edge.root)

    for test in (True, False):
        ret = apply(states, edge, cfg, test=test)
        assert ret.result is False, ret
        assert ret.changes == {}
        assert (
            "nginx -t rejected the new configuration for "
            f"{edge.config_file} in stream 'wazuh-api' (hecate:reverse_proxy:nginx:tcp_proxies:1)"
        ) in ret.comment
        assert 'host not found in upstream "no-such-host.invalid:55000"' in ret.comment
        assert f"{edge.config_file} was left unchanged" in ret.comment
        assert edge.text() == live
        assert sorted(os.listdir(edge.root)) == ["logs", "nginx.conf", "nginx.pid"]
    # nothing was reloaded; the old config still serves
    assert hecate_nginx_process.workers(edge.master()) == workers
    assert edge_support.tcp_roundtrip(port) == b"ok:ping"
    assert {k: v for k, v in edge_support.tree(edge.root).items() if "log" not in k} == {
        k: v for k, v in snapshot.items() if "log" not in k
    }


def test_port_taken_at_reload_restores_the_previous_file(states, edge, echo):
    tcp = echo("tcp", "ok:")
    port = procs.free_port()
    good = {"name": "wazuh-agent-tcp", "listen_port": port, "listen_address": "127.0.0.1",
            "backend": tcp.address}
    assert apply(states, edge, edge.config([good])).result is True
    live = edge.text()
    master = edge.master()
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", 0))
    squatter.listen()
    taken = squatter.getsockname()[1]
    cfg = edge.config(
        [good, {"name": "jenkins-agent", "listen_port": taken, "listen_address": "127.0.0.1",
                "backend": tcp.address}]
    )
    try:
        ret = apply(states, edge, cfg)
        assert ret.result is False, ret
        assert ret.changes == {}
        assert f"bind() to 127.0.0.1:{taken} failed (98: Address already in use)" in ret.comment
        assert f"{edge.config_file} was restored to its previous version" in ret.comment
        assert edge.text() == live
        assert edge.master() == master
        assert edge_support.tcp_roundtrip(port) == b"ok:ping"
    finally:
        squatter.close()
    # once the port is free the same state converges
    ret = apply(states, edge, cfg)
    assert ret.result is True and ret.changes["service"] == "reloaded", ret
    assert edge_support.tcp_roundtrip(taken) == b"ok:ping"


def test_starts_nginx_when_it_is_not_running(states, edge, echo):
    tcp = echo("tcp", "ok:")
    port = procs.free_port()
    cfg = edge.config([{"name": "a", "listen_port": port, "listen_address": "127.0.0.1",
                        "backend": tcp.address}])
    assert apply(states, edge, cfg).result is True
    edge.stop()
    preview = apply(states, edge, cfg, test=True)
    assert preview.result is None and preview.changes == {"service": "started"}
    ret = apply(states, edge, cfg)
    assert ret.result is True and ret.changes == {"service": "started"}
    assert edge_support.tcp_roundtrip(port) == b"ok:ping"


def test_file_mode_is_corrected_without_reload(states, edge, echo):
    tcp = echo("tcp", "ok:")
    port = procs.free_port()
    cfg = edge.config([{"name": "a", "listen_port": port, "listen_address": "127.0.0.1",
                        "backend": tcp.address}])
    assert apply(states, edge, cfg).result is True
    assert edge_support.tcp_roundtrip(port) == b"ok:ping"  # its workers are up
    master = edge.master()
    workers = hecate_nginx_process.workers(master)
    os.chmod(edge.config_file, 0o600)
    ret = apply(states, edge, cfg)
    assert ret.result is True and ret.changes == {"mode": {"old": "0600", "new": "0644"}}, ret
    assert hecate_nginx_process.workers(master) == workers


def test_unmanaged_service_only_writes_the_file(states, edge, echo):
    tcp = echo("tcp", "ok:")
    cfg = edge.config(
        [{"name": "a", "listen_port": procs.free_port(), "backend": tcp.address}],
        manage_service=False,
    )
    ret = apply(states, edge, cfg)
    assert ret.result is True and set(ret.changes) == {"diff"}, ret
    assert edge.master() is None
    assert apply(states, edge, cfg).changes == {}


def test_bad_input_fails_with_key_paths_and_writes_nothing(states, edge, echo):
    tcp = echo("tcp", "ok:")
    port = procs.free_port()
    cfg = edge.config(
        [
            {"name": "a", "listen_port": port, "backend": tcp.address},
            {"name": "b", "listen_port": port, "backend": tcp.address},
            {"name": "c", "listen_port": 443, "protocol": "udp", "backend": tcp.address},
            {"name": "d", "listen_port": port + 1, "backend": tcp.address, "colour": "red"},
        ]
    )
    ret = apply(states, edge, cfg)
    assert ret.result is False and ret.changes == {}
    assert "hecate:reverse_proxy:nginx:tcp_proxies:3:colour: unknown key (not in the schema)" in ret.comment
    # schema errors first; with the shape fixed the clashes are reported
    del cfg["tcp_proxies"][3]["colour"]
    ret = apply(states, edge, cfg)
    assert ret.result is False
    assert f"hecate:reverse_proxy:nginx:tcp_proxies:1:listen_port: {port}/tcp of stream 'b'" in ret.comment
    assert (
        "hecate:reverse_proxy:nginx:tcp_proxies:2:listen_port: 443/udp of stream 'c' clashes with Caddy's https port"
        in ret.comment
    )
    assert os.listdir(edge.root) == ["logs"]


def test_missing_log_directory_is_named(states, edge, echo):
    tcp = echo("tcp", "ok:")
    cfg = edge.config([{"name": "a", "listen_port": procs.free_port(), "backend": tcp.address}])
    shutil.rmtree(edge.logs)
    ret = apply(states, edge, cfg, test=True)
    assert ret.result is False
    assert f"hecate:reverse_proxy:nginx:error_log: directory {edge.logs} does not exist" in ret.comment
