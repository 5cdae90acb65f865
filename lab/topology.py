"""
The lab topology, shared by ``python -m lab`` and the test suite: which services run,
which grains the minions carry, and the pillar/config that points hecate's modules at
the loopback addresses.

Secrets of the lab (the Vault root token, tokens of the simulated services) are made
fresh for every lab; they go into the minion/master config and into Vault, never into
pillar, exactly as in production.
"""

import os
import secrets

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = "lab"

MINIONS = {
    "cloud": {"roles": ["hecate-edge"], "hecate_env": ENV},
    "local": {"roles": ["bionicgpt-node"], "hecate_env": ENV},
}


def new_lab_secrets():
    """Throwaway credentials for one lab (or one test session)."""
    return {"vault_root_token": "lab-" + secrets.token_urlsafe(24)}


def vault_options(lab_secrets):
    return {
        "root_token": lab_secrets["vault_root_token"],
        "mounts": ["secret"],
        "unseal_key": "lab-" + secrets.token_urlsafe(8),
    }


def nomad_options(consul_url=None, refuse_images=("*:refused*",)):
    """
    The Nomad simulator of the lab: one node with ``meta.location = local`` in dc1 (what
    the job templates constrain on), durations scaled down 100x, images whose tag starts
    with ``refused`` fail to pull (to demonstrate a failed deployment and its revert).
    """
    options = {
        "datacenter": "dc1",
        "node_meta": {"location": "local"},
        "time_scale": 0.01,
        "refuse_images": list(refuse_images),
    }
    if consul_url:
        options["consul_url"] = consul_url
    return options


def salt_opts(lab_secrets):
    """Keys every lab master/minion config carries (connection credentials only)."""
    return {"hecate": {"connections": {"vault": {"token": lab_secrets["vault_root_token"]}}}}


def file_roots():
    return {"base": [os.path.join(REPO, "salt")]}


def pillar_roots(runtime_dir):
    return {"base": [os.path.join(REPO, "pillar"), runtime_dir]}


def runtime_pillar(addresses):
    """
    The ``lab_runtime`` pillar: where the lab's services listen.

    ``addresses``: {"caddy_admin": url, "caddy_http_port": int, "vault": url, ...}
    """
    conns = {}
    if "caddy_admin" in addresses:
        conns["caddy"] = {"admin_url": addresses["caddy_admin"]}
    if "vault" in addresses:
        conns["vault"] = {"url": addresses["vault"]}
    for name in ("authentik", "consul", "nomad"):
        if name in addresses:
            conns[name] = {"url": addresses[name]}
    return {"hecate": {"connections": conns}}


def write_runtime_pillar(runtime_dir, addresses):
    os.makedirs(runtime_dir, exist_ok=True)
    path = os.path.join(runtime_dir, "lab_runtime.sls")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("# Written by the lab: loopback addresses of this lab's services.\n")
        yaml.safe_dump(runtime_pillar(addresses), fh, default_flow_style=False)
    return path
