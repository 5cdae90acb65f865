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

    ``addresses``: {"caddy_admin": url, "caddy_http_port": int, "caddy_state_dir": path,
    "vault": url, ...}. ``caddy_state_dir`` is where the minion keeps Caddy config snapshots
    for rollback (root-only /var/lib/hecate/caddy in production).
    """
    conns = {}
    if "caddy_admin" in addresses:
        conns["caddy"] = {"admin_url": addresses["caddy_admin"]}
        if addresses.get("caddy_state_dir"):
            conns["caddy"]["state_dir"] = addresses["caddy_state_dir"]
    if "vault" in addresses:
        conns["vault"] = {"url": addresses["vault"]}
    for name in ("authentik", "consul", "nomad"):
        if name in addresses:
            conns[name] = {"url": addresses[name]}
    return {"hecate": {"connections": conns}}


def write_runtime_pillar(runtime_dir, addresses):
    addresses = dict(addresses)
    if "caddy_admin" in addresses and not addresses.get("caddy_state_dir"):
        # the lab's minions run unprivileged: snapshots live next to the runtime pillar
        addresses["caddy_state_dir"] = os.path.join(os.path.dirname(os.path.abspath(runtime_dir)), "caddy-state")
    os.makedirs(runtime_dir, exist_ok=True)
    path = os.path.join(runtime_dir, "lab_runtime.sls")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("# Written by the lab: loopback addresses of this lab's services.\n")
        yaml.safe_dump(runtime_pillar(addresses), fh, default_flow_style=False)
    return path
