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


# -- Authentik (simulator) ------------------------------------------------------------------
# The release the lab simulates; tests start the others (2025.6, 2026.5) too.
AUTHENTIK_VERSION = os.environ.get("HECATE_AUTHENTIK_VERSION", "2025.10")
# Where hecate's pillar expects the Authentik API token (pillar/hecate.sls references it).
AUTHENTIK_TOKEN_PATH = ("secret", "hecate/authentik", "api_token")
# Lab test users' passwords (pillar/env/lab.sls references them).
LAB_USERS_PATH = ("secret", "bionicgpt/lab-users")
LAB_USERS = ("henry", "demo")


def authentik_options(lab_secrets, version=None, strict=True):
    """
    The Authentik simulator's config: its API token (made per lab, stored in Vault only)
    and strict mode, so a request field unknown to the simulated release's schema is a
    400 in the lab instead of being silently ignored as the real server does.
    """
    return {
        "version": version or AUTHENTIK_VERSION,
        "token": authentik_token(lab_secrets),
        "strict": strict,
    }


def authentik_token(lab_secrets):
    """The lab's Authentik API token (added to ``lab_secrets`` on first use)."""
    if "authentik_token" not in lab_secrets:
        lab_secrets["authentik_token"] = secrets.token_urlsafe(48)
    return lab_secrets["authentik_token"]


def authentik_vault_seed(lab_secrets):
    """
    What the Vault simulator must hold for hecate's Authentik modules to work the
    production way: the API token at secret/hecate/authentik#api_token, and the lab test
    users' passwords at secret/bionicgpt/lab-users.
    """
    mount, path, key = AUTHENTIK_TOKEN_PATH
    users_mount, users_path = LAB_USERS_PATH
    if "lab_user_passwords" not in lab_secrets:
        lab_secrets["lab_user_passwords"] = {u: "lab-" + secrets.token_urlsafe(12) for u in LAB_USERS}
    return {
        (mount, path): {key: authentik_token(lab_secrets)},
        (users_mount, users_path): dict(lab_secrets["lab_user_passwords"]),
    }


def seed_vault(vault_url, root_token, items):
    """Write ``{(mount, path): data}`` into Vault KV v2 (merging over what is there)."""
    import json  # pylint: disable=import-outside-toplevel
    import urllib.request  # pylint: disable=import-outside-toplevel

    for (mount, path), data in items.items():
        url = f"{vault_url}/v1/{mount}/data/{path}"
        headers = {"X-Vault-Token": root_token, "Content-Type": "application/json"}
        current = {}
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as resp:  # noqa: S310
                current = (json.load(resp).get("data") or {}).get("data") or {}
        except OSError:
            current = {}
        body = json.dumps({"data": dict(current, **data)}).encode()
        req = urllib.request.Request(url, data=body, headers=headers, method="POST")
        with urllib.request.urlopen(req, timeout=10):  # noqa: S310 (loopback lab)
            pass
