"""
The teardown of the edge's streams (orch.hecate ensure: absent): ``nginx_config.absent`` and
``coturn_config.absent`` remove only a file hecate wrote (the header ``managed`` puts on its
first line), stop the daemon that ran it (nginx through its service or its pid file; coturn
stopped and disabled, since hecate.coturn enabled it), preview exactly that under test=True,
and find nothing to do the second time. The files are rendered by the same code ``managed``
writes with; one test stops a real nginx.
"""

import os
import subprocess

import pytest

import hecate_coturn_render
import hecate_coturn_schema
import hecate_nginx_process
import hecate_nginx_render
import hecate_nginx_schema
from lab import procs
from tests.unit.states.conftest import converges, fails, load, unchanged

nginx_config = load("states", "nginx_config")
coturn_config = load("states", "coturn_config")
NGINX = "/usr/sbin/nginx"
SECRET = "0123456789abcdef-turn-secret"
FOREIGN = "# my own nginx.conf\nevents {}\nstream {}\n"


class Services:
    """``service.*`` of the minion: which are running/enabled, and every call that changes one."""

    def __init__(self, running=(), enabled=(), fail=()):
        self.running, self.enabled, self.fail = set(running), set(enabled), set(fail)
        self.writes = []

    def funcs(self):
        def stop(name):
            self.writes.append(("stop", name))
            if "stop" in self.fail:
                return False
            self.running.discard(name)
            return True

        def disable(name):
            self.writes.append(("disable", name))
            self.enabled.discard(name)
            return True

        return {"service.status": lambda name: name in self.running, "service.stop": stop,
                "service.enabled": lambda name: name in self.enabled, "service.disable": disable}


class Removal:
    """A file the state removes, seen as a backend: written once it is gone; services too."""

    def __init__(self, path, services=None):
        self.path, self.services = path, services

    @property
    def writes(self):
        gone = [] if self.path.exists() else [("removed", str(self.path))]
        return gone + (self.services.writes if self.services else [])


class Nothing:
    """A backend for runs that must find nothing to do (its ``writes`` stay empty)."""

    writes = ()


@pytest.fixture
def opts():
    return {"test": False}


@pytest.fixture
def salt_funcs():
    return {}


@pytest.fixture
def configure_loader_modules(opts, salt_funcs):
    dunders = {"__opts__": opts, "__pillar__": {}, "__context__": {}, "__salt__": salt_funcs}
    return {nginx_config: dict(dunders), coturn_config: dict(dunders)}


# -- nginx -----------------------------------------------------------------------------------------
def nginx_settings(tmp_path, **extra):
    raw = {"config_file": str(tmp_path / "nginx.conf"), "pid_file": str(tmp_path / "nginx.pid"),
           "error_log": str(tmp_path / "error.log"), "access_log": None, "user": None, "worker_processes": 1,
           "worker_rlimit_nofile": None, "service": None, "file_user": None, "file_group": None,
           "tcp_proxies": [{"name": "wazuh-agent", "listen_port": procs.free_port(), "listen_address": "127.0.0.1",
                            "backend": "127.0.0.1:9"},
                           {"name": "jenkins-agent", "listen_port": procs.free_port(), "listen_address": "127.0.0.1",
                            "backend": "127.0.0.1:9"}]}
    raw.update(extra)
    return raw


def write_nginx(raw, load_module=None):
    """The file nginx_config.managed writes for ``raw`` (static backends: no Consul, no nginx -t)."""
    settings = hecate_nginx_schema.normalise(raw)
    text = hecate_nginx_render.render(settings, hecate_nginx_render.resolve_streams(settings), load_module)
    with open(raw["config_file"], "w", encoding="utf-8") as fh:
        fh.write(text)
    return text


def test_nginx_file_hecate_wrote_is_previewed_then_removed_once(opts, tmp_path):
    raw = nginx_settings(tmp_path, manage_service=False)
    write_nginx(raw)
    path = tmp_path / "nginx.conf"
    before = path.read_text()
    preview, applied = converges(nginx_config.absent, opts, Removal(path), name=str(path), config=raw)
    assert preview["changes"] == {"file": {"old": str(path), "new": None},
                                  "streams": {"removed": ["wazuh-agent", "jenkins-agent"]}}
    assert preview["comment"].startswith(f"would remove {path} (2 stream(s): wazuh-agent, jenkins-agent)")
    assert "manage_service: false" in preview["comment"]
    assert applied["changes"] == preview["changes"]
    assert not path.exists() and before.startswith(nginx_config.MARK)


def test_nginx_through_its_service_is_stopped_before_the_file_goes(opts, salt_funcs, tmp_path):
    services = Services(running={"nginx"})
    salt_funcs.update(services.funcs())
    raw = nginx_settings(tmp_path, service="nginx")
    write_nginx(raw)
    path = tmp_path / "nginx.conf"
    preview, applied = converges(nginx_config.absent, opts, Removal(path, services), name=str(path), config=raw)
    assert preview["changes"]["service"] == "stopped"
    assert preview["comment"].startswith("would stop nginx and remove")
    assert applied["comment"].startswith("Stopped nginx and removed")
    assert services.writes == [("stop", "nginx")]


def test_nginx_that_does_not_stop_keeps_its_file(opts, salt_funcs, tmp_path):
    services = Services(running={"nginx"}, fail={"stop"})
    salt_funcs.update(services.funcs())
    raw = nginx_settings(tmp_path, service="nginx")
    text = write_nginx(raw)
    ret = nginx_config.absent(name=raw["config_file"], config=raw)
    assert ret["result"] is False and "service.stop nginx failed" in ret["comment"]
    assert (tmp_path / "nginx.conf").read_text() == text


def test_a_file_hecate_did_not_write_is_left_alone_and_nginx_with_it(opts, salt_funcs, tmp_path):
    services = Services(running={"nginx"})
    salt_funcs.update(services.funcs())
    path = tmp_path / "nginx.conf"
    path.write_text(FOREIGN)
    ret = unchanged(nginx_config.absent, opts, Removal(path, services), name=str(path),
                    config=nginx_settings(tmp_path, service="nginx"))
    assert "was not written by hecate" in ret["comment"] and "left as it is" in ret["comment"]
    assert path.read_text() == FOREIGN and services.running == {"nginx"}


def test_no_file_is_nothing_to_do(opts, tmp_path):
    path = tmp_path / "nginx.conf"
    ret = unchanged(nginx_config.absent, opts, Nothing(), name=str(path),
                    config=nginx_settings(tmp_path))
    assert ret["comment"] == f"{path} is absent"


def test_nginx_bad_pillar_names_the_key(opts, tmp_path):
    path = tmp_path / "nginx.conf"
    write_nginx(nginx_settings(tmp_path))
    comment = fails(nginx_config.absent, opts, Nothing(), name=str(path),
                    config=nginx_settings(tmp_path, manage_service="yes"))
    assert "hecate:reverse_proxy:nginx:manage_service" in comment
    assert path.exists()


@pytest.mark.skipif(not os.access(NGINX, os.X_OK), reason="nginx is not installed")
def test_a_running_nginx_without_service_manager_is_stopped_by_its_pid_file(opts, tmp_path):
    raw = nginx_settings(tmp_path, tcp_proxies=[])
    settings = hecate_nginx_schema.normalise(raw)
    try:
        load_module = hecate_nginx_process.stream_module(settings)
    except Exception as exc:  # pylint: disable=broad-except
        pytest.skip(f"nginx has no stream module: {exc}")
    write_nginx(raw, load_module)
    subprocess.run([NGINX, "-c", raw["config_file"]], check=True, capture_output=True)
    try:
        assert hecate_nginx_process.master_pid(raw["pid_file"]) is not None
        opts["test"] = True
        preview = nginx_config.absent(name=raw["config_file"], config=raw)
        assert preview["result"] is None and preview["changes"]["service"] == "stopped", preview
        assert hecate_nginx_process.master_pid(raw["pid_file"]) is not None  # the preview stopped nothing
        opts["test"] = False
        ret = nginx_config.absent(name=raw["config_file"], config=raw)
        assert ret["result"] is True and ret["changes"] == preview["changes"], ret
        assert hecate_nginx_process.master_pid(raw["pid_file"]) is None
        assert not os.path.exists(raw["config_file"])
    finally:
        hecate_nginx_process.stop(raw["pid_file"])


# -- coturn ----------------------------------------------------------------------------------------
def coturn_settings(tmp_path, **extra):
    raw = {"realm": "example.com", "static_auth_secret": {"vault": "secret/hecate/coturn", "key": "static_auth_secret"},
           "config_file": str(tmp_path / "turnserver.conf"), "file_mode": "0600", "file_user": None,
           "file_group": None}
    raw.update(extra)
    return raw


def write_coturn(raw):
    text = hecate_coturn_render.render(hecate_coturn_schema.normalise(raw), SECRET)
    with open(raw["config_file"], "w", encoding="utf-8") as fh:
        fh.write(text)
    return text


def test_coturn_file_is_removed_once_and_the_secret_never_shown(opts, tmp_path):
    raw = coturn_settings(tmp_path, manage_service=False)
    write_coturn(raw)
    path = tmp_path / "turnserver.conf"
    preview, applied = converges(coturn_config.absent, opts, Removal(path), name=str(path), config=raw)
    assert preview["changes"] == {"file": {"old": str(path), "new": None}, "content": coturn_config.REMOVED}
    assert SECRET not in repr(preview) + repr(applied)
    assert applied["comment"].startswith(f"Removed {path}")
    assert not path.exists()


def test_coturn_is_stopped_and_disabled_through_its_service(opts, salt_funcs, tmp_path):
    services = Services(running={"turn"}, enabled={"turn"})
    salt_funcs.update(services.funcs())
    raw = coturn_settings(tmp_path, service="turn")
    write_coturn(raw)
    path = tmp_path / "turnserver.conf"
    preview, applied = converges(coturn_config.absent, opts, Removal(path, services), name=str(path), config=raw)
    assert preview["changes"]["service"] == "stopped"
    assert preview["changes"]["enabled"] == {"old": True, "new": False}
    assert preview["comment"] == f"would stop turn, disable turn, remove {path}"
    assert applied["comment"] == f"Stopped turn, disabled turn, removed {path}"
    assert services.writes == [("stop", "turn"), ("disable", "turn")]


def test_coturn_without_pillar_uses_hecate_defaults(opts, salt_funcs, tmp_path):
    services = Services()  # coturn not running, not enabled
    salt_funcs.update(services.funcs())
    path = tmp_path / "turnserver.conf"
    write_coturn(coturn_settings(tmp_path))
    preview, _ = converges(coturn_config.absent, opts, Removal(path, services), name=str(path))
    assert set(preview["changes"]) == {"file", "content"}
    assert services.writes == []


def test_coturn_that_does_not_stop_keeps_its_file(opts, salt_funcs, tmp_path):
    services = Services(running={"coturn"}, enabled={"coturn"}, fail={"stop"})
    salt_funcs.update(services.funcs())
    raw = coturn_settings(tmp_path)
    text = write_coturn(raw)
    ret = coturn_config.absent(name=raw["config_file"], config=raw)
    assert ret["result"] is False and "service.stop coturn failed" in ret["comment"]
    assert (tmp_path / "turnserver.conf").read_text() == text and SECRET not in ret["comment"]
    assert services.writes == [("stop", "coturn")]


def test_a_turnserver_conf_hecate_did_not_write_is_left_alone(opts, salt_funcs, tmp_path):
    services = Services(running={"coturn"}, enabled={"coturn"})
    salt_funcs.update(services.funcs())
    path = tmp_path / "turnserver.conf"
    path.write_text("# Debian's turnserver.conf\nstatic-auth-secret=theirs\n")
    ret = unchanged(coturn_config.absent, opts, Removal(path, services), name=str(path),
                    config=coturn_settings(tmp_path))
    assert "was not written by hecate" in ret["comment"] and "theirs" not in repr(ret)
    assert path.exists() and services.running == {"coturn"}


def test_coturn_bad_pillar_names_the_key(opts, tmp_path):
    path = tmp_path / "turnserver.conf"
    write_coturn(coturn_settings(tmp_path))
    comment = fails(coturn_config.absent, opts, Nothing(), name=str(path),
                    config=coturn_settings(tmp_path, manage_service="yes"))
    assert "hecate:reverse_proxy:coturn:manage_service" in comment
    assert path.exists()


def test_the_mark_is_the_header_managed_writes():
    # absent's idea of "hecate wrote it" follows managed's header, whatever its wording after the name
    assert hecate_nginx_render.HEADER.startswith(nginx_config.MARK + ",")
    assert hecate_coturn_render.HEADER.startswith(coturn_config.MARK + ",")
    assert "nginx_config.managed" in nginx_config.MARK and "coturn_config.managed" in coturn_config.MARK
