"""
The HTTP simulators of the lab and a client handle to drive them from tests.

Registry: name -> "module:Class". Each runs in its own process::

    python -m lab.sim vault --port 8200 --config vault.json [--tls-cert c --tls-key k]
"""

import json
import os
import re
import sys
import urllib.request

from lab import procs

# POSTs that change nothing the states manage: an AppRole login only issues a token.
READ_ONLY_POSTS = {"vault": (r"^/v1/auth/approle/login$",)}

SIMULATORS = {
    "vault": "lab.sim.vault:VaultSim",
    "consul": "lab.sim.consul:ConsulSim",
    "nomad": "lab.sim.nomad:NomadSim",
    "authentik": "lab.sim.authentik:AuthentikSim",
    "hetzner": "lab.sim.hetzner:HetznerSim",
}


def load(name):
    import importlib  # pylint: disable=import-outside-toplevel

    module, _, cls = SIMULATORS[name].partition(":")
    return getattr(importlib.import_module(module), cls)


class SimHandle:
    """A running simulator process: its URL, request log, faults and state."""

    def __init__(self, name, workdir, options=None, port=None, tls=None):
        self.name = name
        self.port = port or procs.free_port()
        self.workdir = workdir
        self.options = options or {}
        self.tls = tls  # (cert, key, ca) or None
        os.makedirs(workdir, exist_ok=True)
        self.config_path = os.path.join(workdir, f"{name}.json")
        with open(self.config_path, "w", encoding="utf-8") as fh:
            json.dump(self.options, fh)
        os.chmod(self.config_path, 0o600)
        self.proc = None
        self.token = None  # the harness's token, where the simulated server has ACLs

    @property
    def headers(self):
        """The harness's token header for direct requests (Nomad: ``X-Nomad-Token``)."""
        header = {"nomad": "X-Nomad-Token", "consul": "X-Consul-Token", "vault": "X-Vault-Token"}.get(self.name)
        return {header: self.token} if header and self.token else {}

    @property
    def url(self):
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    @property
    def control_url(self):
        return self.url + "/_lab"

    def start(self):
        argv = [sys.executable, "-m", "lab.sim", self.name, "--port", str(self.port),
                "--config", self.config_path]
        if self.tls:
            argv += ["--tls-cert", self.tls[0], "--tls-key", self.tls[1]]
        self.proc = procs.Proc(self.name, argv, os.path.join(self.workdir, f"{self.name}.log"))
        self._call("GET", "/health", timeout=20)
        return self

    def stop(self):
        if self.proc:
            self.proc.stop()
            self.proc = None

    def _call(self, method, path, body=None, timeout=5):
        import ssl  # pylint: disable=import-outside-toplevel
        import time  # pylint: disable=import-outside-toplevel

        ctx = None
        if self.tls:
            ctx = ssl.create_default_context(cafile=self.tls[2])
        data = json.dumps(body).encode() if body is not None else None
        deadline = time.monotonic() + timeout
        while True:
            req = urllib.request.Request(self.control_url + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=5, context=ctx) as resp:  # noqa: S310
                    return json.loads(resp.read() or b"null")
            except OSError:
                if time.monotonic() > deadline or (self.proc and self.proc.poll() is not None):
                    raise
                time.sleep(0.05)

    def requests(self):
        """Every API request so far: ``[{"method", "path", "query", "status", "time"}]``."""
        return self._call("GET", "/requests")

    def writes(self):
        """Requests that may change the system (minus POSTs that only read, e.g. a login)."""
        skip = READ_ONLY_POSTS.get(self.name, ())
        return [r for r in self.requests() if r["method"] in ("POST", "PUT", "PATCH", "DELETE")
                and not any(re.search(pattern, r["path"]) for pattern in skip)]

    def clear_requests(self):
        self._call("DELETE", "/requests")

    def fault(self, **spec):
        """
        Inject a fault for requests matching method, path (regex) and query (regex):
        status+body | action='drop' (no answer, nothing done) | action='apply_then_drop'
        (handled, then no answer) | the simulator's own action (e.g. Vault's 'seal') |
        delay; ``times`` times (default: always); ``after``/``until`` ({method, path}):
        dormant until / retired at a matching request.
        """
        self._call("POST", "/faults", spec)

    def faults(self):
        """The armed faults, each with ``hits`` (requests it answered so far)."""
        return self._call("GET", "/faults")

    def clear_faults(self):
        self._call("DELETE", "/faults")

    def state(self):
        return self._call("GET", "/state")

    def reset(self):
        """Authentik simulator: back to a fresh install (API tokens kept)."""
        self._call("POST", "/reset")

    def action_fault(self, **spec):
        """Hetzner simulator: the next matching Action ends as ``outcome`` (error|stuck)."""
        self._call("POST", "/action_faults", spec)

    def clear_action_faults(self):
        self._call("DELETE", "/action_faults")
