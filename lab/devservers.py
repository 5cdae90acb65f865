"""
Real Consul/Vault in dev mode for the lab, when their binaries are on PATH.

``python -m lab up`` uses these instead of the simulators when ``consul``/``vault`` are
installed (they are not in CI, where the simulators stand in). Dev mode keeps everything
in memory, listens on loopback only and uses the lab's own token:

- Consul: ``consul agent -dev`` on free ports, ACLs on with ``default_policy = "allow"``
  (like the simulator in the lab) and the lab token as initial management token;
- Vault: ``vault server -dev`` with the lab's root token; dev mode mounts KV v2 at
  ``secret/``.

Tests do not use these (they count requests through the simulators' logs); the contract
tests run against any real server named by CONSUL_HTTP_ADDR / VAULT_ADDR.
"""

import os
import shutil

from lab import procs


def available(name):
    return shutil.which(name)


class DevServer:
    def __init__(self, name, url, proc):
        self.name, self.url, self.proc = name, url, proc

    def stop(self):
        self.proc.stop()


def consul(workdir, token):
    port = procs.free_port()
    hcl = (
        'acl { enabled = true default_policy = "allow" '
        f'tokens {{ initial_management = "{token}" }} }} session_ttl_min = "1s"'
    )
    argv = [
        available("consul"), "agent", "-dev", "-client", "127.0.0.1", "-bind", "127.0.0.1",
        "-http-port", str(port), "-dns-port", "-1", "-grpc-port", "-1",
        "-serf-lan-port", str(procs.free_port()), "-serf-wan-port", str(procs.free_port()),
        "-server-port", str(procs.free_port()), "-hcl", hcl,
    ]
    os.makedirs(workdir, exist_ok=True)
    proc = procs.Proc("consul", argv, os.path.join(workdir, "consul.log"))
    url = f"http://127.0.0.1:{port}"
    procs.wait_http(url + "/v1/status/leader", timeout=30, ok=lambda s: s == 200, proc=proc.popen)
    return DevServer("consul", url, proc)


def vault(workdir, root_token):
    port = procs.free_port()
    argv = [
        available("vault"), "server", "-dev", f"-dev-root-token-id={root_token}",
        f"-dev-listen-address=127.0.0.1:{port}",
    ]
    os.makedirs(workdir, exist_ok=True)
    proc = procs.Proc("vault", argv, os.path.join(workdir, "vault.log"), env={"HOME": workdir})
    url = f"http://127.0.0.1:{port}"
    procs.wait_http(url + "/v1/sys/health", timeout=30, ok=lambda s: s == 200, proc=proc.popen)
    return DevServer("vault", url, proc)
