"""
Real Consul/Vault in dev mode for the lab, when their binaries are on PATH.

``python -m lab up`` uses these instead of the simulators when ``consul``/``vault`` are
installed (they are not in CI, where the simulators stand in). Dev mode keeps everything
in memory and listens on loopback only; both are set up as the lab's simulators are, i.e.
as pillar/hecate.sls asks of production:

- Consul: ``consul agent -dev`` on free ports, ACLs on with ``default_policy = "deny"``,
  hecate's token as initial management token, and the tokens the pillar names made with
  Consul's ACL API (``PUT /v1/acl/policy``, ``PUT /v1/acl/token`` with the lab's SecretID):
  the agents' token (also set as this agent's own, ``PUT /v1/agent/token/agent``) and
  Nomad's, with the rules of :data:`lab.topology.CONSUL_AGENT_RULES` /
  :data:`~lab.topology.NOMAD_CONSUL_RULES`;
- Vault: ``vault server -dev`` with the lab's root token (dev mode mounts KV v2 at
  ``secret/``) and hecate's AppRole: ``approle`` enabled, the ``hecate`` policy
  (:func:`lab.topology.vault_policy_hcl`), the role with the lab's role_id and a custom
  secret_id, so master and minions log in as in production.

Tests do not use these (they count requests through the simulators' logs); the contract
tests run against any real server named by CONSUL_HTTP_ADDR / VAULT_ADDR.
"""

import os
import shutil
import time

import requests

from lab import procs, topology


def available(name):
    return shutil.which(name)


class DevServer:
    def __init__(self, name, url, proc):
        self.name, self.url, self.proc = name, url, proc

    def stop(self):
        self.proc.stop()


def _call(name, method, url, token_header, token, body, timeout=30):
    """One setup request; retried while the server is still electing/bootstrapping."""
    deadline = time.monotonic() + timeout
    while True:
        resp = requests.request(method, url, json=body, headers={token_header: token}, timeout=10)
        if resp.status_code < 300:
            return resp
        if time.monotonic() > deadline:
            # the body is the server's error text; the request (which holds secrets) is not shown
            raise RuntimeError(
                f"{name} setup: {method} {url.split('/v1/', 1)[-1]} -> {resp.status_code} {resp.text[:300]}"
            )
        time.sleep(0.5)


def consul_rules_hcl(rules):
    """``{"service_prefix": {"": "write"}}`` -> ``service_prefix "" { policy = "write" }``."""
    return "".join(
        f'{kind} "{name}" {{ policy = "{policy}" }}\n'
        for kind, entries in rules.items()
        for name, policy in entries.items()
    )


def consul(workdir, lab_secrets):
    port = procs.free_port()
    token = lab_secrets["consul_token"]
    hcl = (
        'acl { enabled = true default_policy = "deny" '
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
    for name, secret_key, rules in (("agent", "consul_agent_token", topology.CONSUL_AGENT_RULES),
                                    ("nomad", "nomad_consul_token", topology.NOMAD_CONSUL_RULES)):
        policy = f"lab-{name}"
        _call("consul", "PUT", f"{url}/v1/acl/policy", "X-Consul-Token", token,
              {"Name": policy, "Rules": consul_rules_hcl(rules)})
        _call("consul", "PUT", f"{url}/v1/acl/token", "X-Consul-Token", token,
              {"SecretID": lab_secrets[secret_key], "Description": f"lab {name} token",
               "Policies": [{"Name": policy}]})
    _call("consul", "PUT", f"{url}/v1/agent/token/agent", "X-Consul-Token", token,
          {"Token": lab_secrets["consul_agent_token"]})
    return DevServer("consul", url, proc)


def vault(workdir, lab_secrets):
    port = procs.free_port()
    root = lab_secrets["vault_root_token"]
    argv = [
        available("vault"), "server", "-dev", f"-dev-root-token-id={root}",
        f"-dev-listen-address=127.0.0.1:{port}",
    ]
    os.makedirs(workdir, exist_ok=True)
    proc = procs.Proc("vault", argv, os.path.join(workdir, "vault.log"), env={"HOME": workdir})
    url = f"http://127.0.0.1:{port}"
    procs.wait_http(url + "/v1/sys/health", timeout=30, ok=lambda s: s == 200, proc=proc.popen)
    role = f"{url}/v1/auth/approle/role/{topology.VAULT_ROLE}"
    for method, target, body in (
        ("POST", f"{url}/v1/sys/auth/approle", {"type": "approle"}),
        ("PUT", f"{url}/v1/sys/policies/acl/{topology.VAULT_ROLE}", {"policy": topology.vault_policy_hcl()}),
        ("POST", role, {"token_policies": [topology.VAULT_ROLE], "token_ttl": "1h", "token_max_ttl": "4h"}),
        ("POST", f"{role}/role-id", {"role_id": lab_secrets["vault_role_id"]}),
        ("POST", f"{role}/custom-secret-id", {"secret_id": lab_secrets["vault_secret_id"]}),
    ):
        _call("vault", method, target, "X-Vault-Token", root, body)
    return DevServer("vault", url, proc)
