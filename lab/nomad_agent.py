"""
A real Nomad for the lab when the ``nomad`` binary is on PATH: ``nomad agent -dev`` bound to
loopback on free ports, with the client meta and host volumes the BionicGPT jobs need, and
ACLs on as in production: bootstrapped with the lab's management token
(``POST /v1/acl/bootstrap`` with ``BootstrapSecret``), hecate's policy
(:func:`lab.topology.nomad_policy_hcl`) and a token with it, whose SecretID (Nomad generates
it) becomes the lab's ``nomad_token``. Without the binary the lab uses the simulator
(lab/sim/nomad.py) instead.
"""

import os
import shutil

from lab import procs, topology


def available():
    return shutil.which("nomad") is not None


class DevAgent:
    """
    Configured like the agent hecate writes (hecate_agents.nomad_config) where the jobs
    depend on it: Vault integration with a default workload identity (the jobs' vault
    blocks are refused without it) and memory oversubscription (else memory_max is ignored).
    """

    def __init__(self, workdir, consul_url=None, consul_token=None, vault_url=None, lab_secrets=None,
                 node_meta=None):
        self.workdir = workdir
        self.node_meta = dict(node_meta or {"location": "local"})
        self.lab_secrets = lab_secrets
        self.consul_url = consul_url
        self.consul_token = consul_token  # the lab's Consul denies by default: Nomad needs its token
        self.vault_url = vault_url
        self.http_port, self.rpc_port, self.serf_port = procs.free_port(), procs.free_port(), procs.free_port()
        self.proc = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.http_port}"

    def config(self):
        volumes = "".join(
            f'  host_volume "{name}" {{\n    path = "{os.path.join(self.workdir, name)}"\n  }}\n'
            for name in ("bionicgpt_postgres", "ollama")
        )
        consul = ""
        if self.consul_url:
            token = f'  token = "{self.consul_token}"\n' if self.consul_token else ""
            consul = f'consul {{\n  address = "{self.consul_url.split("://", 1)[-1]}"\n{token}}}\n'
        vault = ""
        if self.vault_url:
            vault = (f'vault {{\n  enabled = true\n  address = "{self.vault_url}"\n'
                     '  default_identity {\n    aud = ["vault.io"]\n    ttl = "1h"\n  }\n}\n')
        server = (
            "server {\n  default_scheduler_config {\n    scheduler_algorithm = \"binpack\"\n"
            "    memory_oversubscription_enabled = true\n    preemption_config {\n"
            "      system_scheduler_enabled = true\n      sysbatch_scheduler_enabled = false\n"
            "      batch_scheduler_enabled = false\n      service_scheduler_enabled = false\n    }\n  }\n}\n"
        )
        acl = 'acl {\n  enabled = true\n}\n' if self.lab_secrets else ""
        return acl + (
            'bind_addr = "127.0.0.1"\n'
            f'data_dir = "{os.path.join(self.workdir, "data")}"\n'
            f"ports {{\n  http = {self.http_port}\n  rpc = {self.rpc_port}\n  serf = {self.serf_port}\n}}\n"
            'client {\n  enabled = true\n  meta {\n'
            + "".join(f'    {key} = "{value}"\n' for key, value in sorted(self.node_meta.items()))
            + "  }\n" + volumes + "}\n"
            + server + consul + vault
        )

    def start(self):
        os.makedirs(self.workdir, exist_ok=True)
        for name in ("bionicgpt_postgres", "ollama", "data"):
            os.makedirs(os.path.join(self.workdir, name), exist_ok=True)
        path = os.path.join(self.workdir, "nomad.hcl")
        with open(path, "w", encoding="utf-8") as fh:
            os.fchmod(fh.fileno(), 0o600)  # it holds Nomad's Consul token
            fh.write(self.config())
        self.proc = procs.Proc(
            "nomad", ["nomad", "agent", "-dev", "-config", path], os.path.join(self.workdir, "nomad.log")
        )
        procs.wait_http(self.url + "/v1/status/leader", timeout=60, ok=lambda s: s == 200, proc=self.proc.popen)
        if self.lab_secrets:
            self._bootstrap_acl()
        return self

    def _bootstrap_acl(self):
        # imported here: devservers imports this module's neighbours only
        from lab.devservers import _call  # pylint: disable=import-outside-toplevel

        management = self.lab_secrets["nomad_management_token"]
        _call("nomad", "POST", f"{self.url}/v1/acl/bootstrap", "X-Nomad-Token", "",
              {"BootstrapSecret": management})
        _call("nomad", "POST", f"{self.url}/v1/acl/policy/hecate", "X-Nomad-Token", management,
              {"Name": "hecate", "Description": "hecate's minions and master", "Rules": topology.nomad_policy_hcl()})
        created = _call("nomad", "POST", f"{self.url}/v1/acl/token", "X-Nomad-Token", management,
                        {"Name": "hecate", "Type": "client", "Policies": ["hecate"]}).json()
        self.lab_secrets["nomad_token"] = created["SecretID"]

    def stop(self):
        if self.proc:
            self.proc.stop()
            self.proc = None
