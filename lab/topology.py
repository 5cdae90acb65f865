"""
The lab topology, shared by ``python -m lab`` and the test suite: which services run,
which grains the minions carry, and the pillar/config that points hecate's modules at
the loopback addresses.

Secrets of the lab (the Vault root token, tokens of the simulated services) are made
fresh for every lab; they go into the minion/master config and into Vault, never into
pillar, exactly as in production.
"""

import contextlib
import os
import secrets
import socket
import uuid

import jinja2
import yaml

from lab import procs

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = "lab"

MINIONS = {
    "cloud": {"roles": ["hecate-edge"], "hecate_env": ENV},
    "local": {"roles": ["bionicgpt-node"], "hecate_env": ENV},
}


def minions(edges=1, nodes=1):
    """
    The lab's minions and their grains: ``cloud`` and ``local`` (:data:`MINIONS`) for one edge
    and one node; ``edge-1``... and ``node-1``... for more (``python -m lab up --edges 2 --nodes 3``).
    """
    if (edges, nodes) == (1, 1):
        return {mid: dict(grains) for mid, grains in MINIONS.items()}
    if edges < 1 or nodes < 1:
        raise ValueError("the lab needs at least one edge and one node")
    out = {f"edge-{i}": {"roles": ["hecate-edge"], "hecate_env": ENV} for i in range(1, edges + 1)}
    out.update({f"node-{i}": {"roles": ["bionicgpt-node"], "hecate_env": ENV} for i in range(1, nodes + 1)})
    return out


def several(minion_map):
    """Whether ``minion_map`` has more than one member of a role (the lab's several-edges pillar applies)."""
    return set(minion_map) != set(MINIONS)


def _by_role(minion_map, role):
    return sorted(mid for mid, grains in minion_map.items() if role in grains["roles"])


def several_pillar(minion_map):
    """
    What several edges and nodes need in pillar, keyed by minion id as in production
    (docs/systems/wireguard-agents.md, *Several edges and nodes*): each member's tunnel
    address and endpoint (edges: a public address; nodes: their LAN address, so they reach
    each other), Consul servers on the first edge (two edges) or the first three, Nomad's
    servers on the same edges and none on the nodes, and the first node a GPU box (its
    Nomad client meta ``gpu = "true"``: the llm job goes there).
    """
    edges, nodes = _by_role(minion_map, "hecate-edge"), _by_role(minion_map, "bionicgpt-node")
    tunnel = {}
    for i, mid in enumerate(edges, 1):
        tunnel[mid] = {"address": f"10.88.0.{10 + i}", "endpoint": f"192.0.2.{10 + i}:51820"}
    for i, mid in enumerate(nodes, 1):
        tunnel[mid] = {"address": f"10.88.0.{100 + i}", "endpoint": f"192.168.88.{100 + i}:51820"}
    servers = edges[:3] if len(edges) >= 3 else edges[:1]
    return {
        "bionicgpt": {
            "wireguard": {"nodes": tunnel},
            "nomad": {"agent": {"server": {"enabled": False},
                                "nodes": {nodes[0]: {"client": {"meta": {"gpu": "true"}}}}}},
        },
        "hecate": {
            "consul": {"agent": {"bootstrap_expect": len(servers),
                                 "nodes": {mid: {"server": False} for mid in edges if mid not in servers}}},
            "nomad": {"agent": {"nodes": {mid: {"server": {"enabled": True, "bootstrap_expect": len(servers)}}
                                          for mid in servers}}},
        },
    }


def edge_pillar_of(edge):
    """
    One edge's own pillar in a lab of several edges (``lab_minions/<id>.sls``): its Caddy
    (admin API, snapshots directory) and the verify probes through its Caddy's listener.
    ``edge``: ``{"caddy_admin", "caddy_http_port", "caddy_state_dir"}``.
    """
    http = edge["caddy_http_port"]
    return {
        "hecate": {
            "connections": {"caddy": {"admin_url": edge["caddy_admin"], "state_dir": edge["caddy_state_dir"]}},
            "verify": {"probe": {"url": f"http://127.0.0.1:{http}/-/health/live/", "host": LAB_AUTHENTIK_DOMAIN}},
        },
        "bionicgpt": {"verify": {"probe": {"url": f"http://127.0.0.1:{http}/ping", "host": LAB_CHAT_DOMAIN}}},
    }


def members(minions=None):
    """
    ``hecate:members`` of the lab: each lab minion's id under each of its roles. Grains only
    claim a role; this list (pillar, the master's say) makes the lab's minions members.
    """
    out = {}
    for mid, grains in sorted((minions or MINIONS).items()):
        for role in grains["roles"]:
            out.setdefault(role, []).append(mid)
    return out


def new_lab_secrets():
    """
    Throwaway credentials for one lab (or one test session): Vault's root token (for the
    harness that seeds Vault, never in a Salt config), the AppRole hecate's master and
    minions log in with, hecate's Consul token, and the two Consul tokens the pillar names
    by Vault reference (the agents' ``secret/hecate/consul#agent_token``, Nomad's
    ``secret/bionicgpt/nomad#consul_token``), Nomad's management token (the harness's, like
    Vault's root token: the output of ``nomad acl bootstrap``) and hecate's Nomad token (with
    :data:`NOMAD_POLICY` only).
    """
    return {
        "vault_root_token": "lab-" + secrets.token_urlsafe(24),
        "vault_role_id": str(uuid.uuid4()),
        "vault_secret_id": str(uuid.uuid4()),
        "consul_token": str(uuid.uuid4()),
        "consul_agent_token": str(uuid.uuid4()),
        # the edge's backup job records its backups with it (hecate:backup:consul_token)
        "consul_backup_token": str(uuid.uuid4()),
        "nomad_consul_token": str(uuid.uuid4()),
        "nomad_management_token": str(uuid.uuid4()),
        "nomad_token": str(uuid.uuid4()),
        # what Nomad's workload identity gets from Vault for the jobs' templates (read only)
        "nomad_vault_token": "lab-" + secrets.token_urlsafe(24),
    }


# The Vault policy of hecate's AppRole (docs/systems/consul-vault.md, "What hecate's tokens may
# do"): exactly what hecate_vault_client does, on the two trees the shipped pillar names
# (secret/hecate/..., secret/bionicgpt/...): read a secret, write it with check-and-set (create
# a new one, update an existing one), soft-delete its latest version (hecate_secret.absent,
# hecate_vault.delete), read its metadata (the current version a CAS write is based on) and
# list keys (hecate_vault.list). Nothing under sys/ or auth/ beyond Vault's built-in "default"
# policy (look itself up, renew itself). A pillar that names other paths needs them added.
VAULT_ROLE = "hecate"
VAULT_TREES = ("hecate", "bionicgpt")
VAULT_POLICY = [
    rule
    for tree in VAULT_TREES
    for rule in (
        {"path": f"secret/data/{tree}/*", "capabilities": ["create", "read", "update", "delete"]},
        {"path": f"secret/metadata/{tree}/*", "capabilities": ["read", "list"]},
    )
]
# Nomad's jobs read their secrets through templates (workload identity -> Vault role): read only.
NOMAD_VAULT_POLICY = [{"path": "secret/data/*", "capabilities": ["read"]}]


def vault_policy_hcl():
    """:data:`VAULT_POLICY` in Vault's policy language (for a real ``vault server -dev``)."""
    return "".join(
        f'path "{rule["path"]}" {{\n  capabilities = {list(rule["capabilities"])!r}\n}}\n'.replace("'", '"')
        for rule in VAULT_POLICY
    )


def vault_options(lab_secrets):
    """The Vault simulator: root token for the harness, hecate's AppRole and its policy."""
    options = {
        "root_token": lab_secrets["vault_root_token"],
        "mounts": ["secret"],
        "unseal_key": "lab-" + secrets.token_urlsafe(8),
        "policies": {VAULT_ROLE: VAULT_POLICY, "nomad-workloads": NOMAD_VAULT_POLICY},
    }
    if lab_secrets.get("nomad_vault_token"):
        options["tokens"] = {lab_secrets["nomad_vault_token"]: {"policies": ["nomad-workloads"]}}
    if lab_secrets.get("vault_role_id"):
        # as lab/devservers.py makes the role on a real Vault: tokens for 1h, renewable to 4h
        options["approles"] = {lab_secrets["vault_role_id"]: {
            "role_name": VAULT_ROLE, "secret_id": lab_secrets["vault_secret_id"], "policies": [VAULT_ROLE],
            "token_ttl": 3600, "token_max_ttl": 14400,
        }}
    return options


# Consul ACL rules (Consul's policy language, as the simulator takes them) of the tokens the
# pillar names: the agents' token (node registration, service discovery) and the token
# Nomad's Consul integration registers allocations' services with (agent and node read,
# service write: what registering a service with its checks needs, agent/acl.go
# vetServiceRegisterWithAuthorizer / vetCheckRegisterWithAuthorizer).
CONSUL_AGENT_RULES = {"node_prefix": {"": "write"}, "service_prefix": {"": "read"}}
NOMAD_CONSUL_RULES = {"agent_prefix": {"": "read"}, "node_prefix": {"": "read"}, "service_prefix": {"": "write"}}
# The backup job's token (docs/backups.md): its own records, nothing else.
CONSUL_BACKUP_RULES = {"key_prefix": {"hecate/backups/": "write"}}


# The Consul rules hecate's own token needs (docs/systems/consul-vault.md): its records, locks and
# consul_kv keys under hecate/, the lock's session, the external services of
# hecate:consul:services (by name), and reads of services and nodes (health, catalog).
# The lab still gives hecate a management token; tests/contract/test_consul_acl_contract.py
# checks that these rules are enough for hecate's client.
CONSUL_HECATE_RULES = {
    "key_prefix": {"hecate/": "write"},
    "session_prefix": {"": "write"},
    "service_prefix": {"": "read"},
    "service": {"wazuh-registration": "write", "jenkins-master": "write"},
    "node_prefix": {"": "read"},
}


def consul_tokens(lab_secrets):
    """``{secret: spec}`` of the lab's Consul tokens (the simulator's ``acl.tokens``)."""
    tokens = {}
    if lab_secrets.get("consul_token"):
        tokens[lab_secrets["consul_token"]] = {"name": "hecate", "management": True}
    if lab_secrets.get("consul_agent_token"):
        tokens[lab_secrets["consul_agent_token"]] = {"name": "agent", "rules": CONSUL_AGENT_RULES}
    if lab_secrets.get("nomad_consul_token"):
        tokens[lab_secrets["nomad_consul_token"]] = {"name": "nomad", "rules": NOMAD_CONSUL_RULES}
    if lab_secrets.get("consul_backup_token"):
        tokens[lab_secrets["consul_backup_token"]] = {"name": "backup", "rules": CONSUL_BACKUP_RULES}
    return tokens


def consul_options(lab_secrets):
    """
    The Consul simulator of a lab, configured as the pillar's hecate:consul:agent asks of production:
    ACLs on with ``default_policy = deny`` (a request without a token sees nothing and may
    do nothing), hecate's token a management token, the agents' and Nomad's tokens with
    their own rules; sessions may be as short as 1s and checks run at least every 2s so
    that locks and health react quickly in the lab.
    """
    return {
        "acl": {"enabled": True, "default_policy": "deny", "tokens": consul_tokens(lab_secrets)},
        "session_ttl_min": "1s",
        "check_interval_max": "2s",
    }
LAB_VAULT_VERSION = "1.21.0"  # what the Vault simulator reports (lab/sim/vault.py sys/health)
LAB_CONSUL_VERSION = "1.22.0"  # what the Consul simulator reports (lab/sim/consul.py agent/self)


# The Nomad ACL policy of hecate's token (docs/systems/consul-vault.md, "What hecate's tokens
# may do"): in the jobs' namespace list, parse, read and submit jobs (submit-job covers plan,
# register, revert, stop and purge; validate needs read-job), mount the host volumes the
# BionicGPT jobs and the edge's jobs use (doRegister checks host volumes against the token), and the
# Nomad variables the nomad_variable states manage (below nomad/jobs/, where jobs read them).
# Nothing for agent, node or operator: hecate does not call those endpoints.
NOMAD_POLICY = {
    "namespace": {"default": {
        "capabilities": ["list-jobs", "parse-job", "read-job", "submit-job"],
        "variables": {"nomad/jobs/*": ["read", "write", "list", "destroy"]},
    }},
    "host_volume": {"bionicgpt_postgres": "write", "ollama": "write",
                    # the edge's own jobs (hecate:nomad:jobs)
                    "hecate_postgres": "write", "hecate_caddy_data": "write", "hecate_caddy_config": "write",
                    "hecate_backups": "write", "hecate_nginx_config": "read"},
}


def nomad_policy_hcl(policy=None):
    """:data:`NOMAD_POLICY` in Nomad's ACL policy language (``nomad acl policy apply``)."""
    policy = policy or NOMAD_POLICY
    out = []
    for ns, spec in policy.get("namespace", {}).items():
        body = []
        if spec.get("policy"):
            body.append(f'  policy = "{spec["policy"]}"')
        if spec.get("capabilities"):
            body.append("  capabilities = [" + ", ".join(f'"{c}"' for c in spec["capabilities"]) + "]")
        for path, caps in (spec.get("variables") or {}).items():
            body.append(f'  variables {{\n    path "{path}" {{\n      capabilities = ['
                        + ", ".join(f'"{c}"' for c in caps) + "]\n    }\n  }")
        out.append(f'namespace "{ns}" {{\n' + "\n".join(body) + "\n}")
    for name, level in policy.get("host_volume", {}).items():
        out.append(f'host_volume "{name}" {{\n  policy = "{level}"\n}}')
    for kind in ("agent", "node", "operator"):
        if policy.get(kind):
            out.append(f'{kind} {{\n  policy = "{policy[kind]}"\n}}')
    return "\n".join(out) + "\n"


def nomad_acl(lab_secrets):
    """The Nomad simulator's ``acl`` option: ACLs on, anonymous gets nothing (a fresh
    ``nomad acl bootstrap``), the harness's management token and hecate's token."""
    if not (lab_secrets or {}).get("nomad_token"):
        return None
    return {"enabled": True, "tokens": {
        lab_secrets["nomad_management_token"]: {"name": "management", "type": "management"},
        lab_secrets["nomad_token"]: {"name": "hecate", "policies": [NOMAD_POLICY]},
    }}


EDGE_NODE_CLASS = "hecate-edge"
EDGE_VOLUMES = ("hecate_postgres", "hecate_caddy_data", "hecate_caddy_config", "hecate_backups",
                "hecate_nginx_config")
NODE_VOLUMES = ("bionicgpt_postgres", "ollama")


def task_runners():
    """
    Which tasks of the lab's Nomad run a real part (lab/sim/nomad_tasks.py): Caddy's image runs
    the real Caddy binary with the task's own command, Authentik's server the Authentik
    simulator bootstrapped from the task's environment, PostgreSQL's image (run as itself)
    the stand-in with its start-up checks. Everything else is the in-process stand-in.
    """
    return [
        # the official image sets XDG_CONFIG_HOME=/config and XDG_DATA_HOME=/data
        {"image": "caddy:*", "run": "caddy", "image_env": {"XDG_CONFIG_HOME": "/config", "XDG_DATA_HOME": "/data"}},
        {"image": "ghcr.io/goauthentik/server:*", "args": ["server"], "run": "authentik"},
        {"image": "postgres:*", "command": None, "run": "postgres"},
        # the backup and restore jobs' shell tasks: their scripts run on the host (container
        # paths mapped), with the lab's pg_dump/pg_restore for the PostgreSQL image
        {"image": "postgres:*", "command": "/bin/sh", "run": "sh", "programs": ["pg_dump", "pg_restore"]},
        {"image": "alpine:*", "command": "/bin/sh", "run": "sh"},
        {"image": "curlimages/curl:*", "command": "/bin/sh", "run": "sh"},
    ]



def nomad_options(consul_url=None, refuse_images=("*:refused*",), consul_token=None, lab_secrets=None,
                  vault_url=None, vault_token=None, data_dir=None, agents_dir=None, node_meta=None):
    """
    The Nomad simulator of the lab: one node in dc1 with ``meta.location = local`` and node
    class ``hecate-edge`` (what the BionicGPT and the edge's job files constrain on: the one
    simulated client stands in for the local node's and the edge's), durations scaled down
    100x, images whose tag starts with ``refused`` fail to pull (to demonstrate a failed
    deployment and its revert). Like the agents hecate configures (hecate_agents_config):
    Vault integration on (the client fingerprints the lab's Vault, ``attr.vault.version``;
    the servers' default workload identity for Vault; templates read it with
    ``vault_token``, the jobs' read-only policy), Consul integration (the client
    fingerprints the lab's Consul, ``attr.consul.version``, which Nomad requires of every
    group with Consul services) and memory oversubscription on
    (``server.default_scheduler_config``).
    ``consul_token`` is what a real Nomad's ``consul { token = ... }`` holds: Consul denies
    its service registrations without it. With ``lab_secrets`` ACLs are on, as in
    production: :func:`nomad_acl` (hecate's minions carry ``nomad_token``, the harness the
    management token). The client's host volumes are those the lab's agent configs declare
    (edge: :data:`EDGE_VOLUMES`, node: :data:`NODE_VOLUMES`; with ``agents_dir``, at their
    paths there); the task runners (:func:`task_runners`) keep their files under ``data_dir``.
    ``node_meta``: the client's meta (default ``location = local``; a lab of several nodes
    adds its GPU box's ``gpu = "true"``, :func:`node_meta`: the one simulated client stands
    in for every node).
    """
    options = {
        "datacenter": "dc1",
        "node_meta": dict(node_meta or {"location": "local"}),
        "node_class": EDGE_NODE_CLASS,
        "time_scale": 0.01,
        "refuse_images": list(refuse_images),
        "vault": {"enabled": True, "version": LAB_VAULT_VERSION,
                  "default_identity": {"aud": ["vault.io"], "ttl": "1h"}},
        "consul_version": LAB_CONSUL_VERSION,
        "memory_oversubscription": True,
        "host_volumes": {name: {"Path": None, "ReadOnly": False} for name in NODE_VOLUMES + EDGE_VOLUMES},
        "task_runners": task_runners(),
    }
    acl = nomad_acl(lab_secrets)
    if acl:
        options["acl"] = acl
    if consul_url:
        options["consul_url"] = consul_url
    if consul_token:
        options["consul_token"] = consul_token
    if vault_url:
        options["vault"].update({"url": vault_url, "token": vault_token})
    if data_dir:
        options["data_dir"] = data_dir
    if agents_dir:
        volumes = dict(agent_dirs(agents_dir, "cloud")["nomad_edge"]["host_volumes"])
        volumes.update(agent_dirs(agents_dir, "local")["nomad"]["host_volumes"])
        options["host_volumes"] = {name: {"Path": vol["path"], "ReadOnly": False} for name, vol in volumes.items()}
        for vol in volumes.values():
            os.makedirs(vol["path"], exist_ok=True)
    try:
        from lab import caddy as lab_caddy  # pylint: disable=import-outside-toplevel

        options["caddy_binary"] = lab_caddy.caddy_binary()
    except FileNotFoundError:
        pass  # no Caddy: its tasks fail to start, as without the image
    return options


def node_meta(minion_map=None):
    """
    The meta of the lab's one Nomad client: ``location = local`` (the BionicGPT jobs'
    constraint), and with several nodes also the GPU box's ``gpu = "true"``
    (:func:`several_pillar`), so the llm job, constrained to a gpu node, is placed.
    """
    meta = {"location": "local"}
    if minion_map is not None and several(minion_map):
        meta["gpu"] = "true"
    return meta


def vault_approle(lab_secrets):
    """hecate's AppRole login (``hecate:connections:vault:approle``) for the lab's Salt configs."""
    return {"role_id": lab_secrets["vault_role_id"], "secret_id": lab_secrets["vault_secret_id"]}


def salt_opts(lab_secrets):
    """
    Keys every lab master/minion config carries (connection credentials only): Vault by
    AppRole (the root token stays with the harness), hecate's Consul and Nomad tokens.
    """
    conns = {"vault": {"approle": vault_approle(lab_secrets)}}
    if lab_secrets.get("consul_token"):
        conns["consul"] = {"token": lab_secrets["consul_token"]}
    if lab_secrets.get("nomad_token"):
        conns["nomad"] = {"token": lab_secrets["nomad_token"]}
    return {"hecate": {"connections": conns}}


def file_roots():
    return {"base": [os.path.join(REPO, "salt")]}


# The lab's own pillar tree (top.sls, hecate.sls, bionicgpt.sls, env/<env>.sls): the lab and
# the tests never read the operator's pillar/, which is the operator's to edit.
PILLAR_DIR = os.path.join(REPO, "lab", "pillar")
OPERATOR_PILLAR_DIR = os.path.join(REPO, "pillar")


def pillar_roots(runtime_dir):
    """
    The lab's pillar_roots: :data:`PILLAR_DIR`, then ``runtime_dir`` where the lab writes
    ``lab_runtime.sls`` (and the tests ``lab_overrides.sls``), which its top file includes.
    """
    return {"base": [PILLAR_DIR, runtime_dir]}


def runtime_pillar(addresses, agents_dir=None):
    """
    The ``lab_runtime`` pillar: where the lab's services listen, and which minions are the
    lab's members (:func:`members`).

    ``addresses``: {"caddy_admin": url, "caddy_http_port": int, "caddy_state_dir": path,
    "vault": url, ...}. ``caddy_state_dir`` is where the minion keeps Caddy config snapshots
    for rollback (root-only /var/lib/hecate/caddy in production).
    ``agents_dir``: where the WireGuard/Consul/Nomad agent states write instead of /etc
    and /opt (one subdirectory per minion: the pillar file is Jinja, ``grains.id``).
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
    if "hetzner" in addresses:
        conns["hetzner_dns"] = hetzner_connection(addresses["hetzner"])
    minion_map = addresses.get("minions") or MINIONS
    pillar = {"hecate": {"connections": conns, "members": members(minion_map)}}
    if "caddy_http_port" in addresses:
        # the lab's Caddy listens on a loopback port: probe the chat route by Host header
        pillar["bionicgpt"] = {"verify": {"probe": {
            "url": f"http://127.0.0.1:{addresses['caddy_http_port']}/ping",
            "host": LAB_CHAT_DOMAIN,
        }}}
    agents_dir = addresses.get("agents_dir", agents_dir)
    # the edge's jobs: deployed from zero by orch.hecate (`python -m lab up`), or none (the
    # test suite's fast lab, whose Caddy and Authentik the harness starts)
    pillar["hecate"]["nomad"] = {"jobs": []}
    if agents_dir:
        pillar["hecate"]["nomad"]["agent"] = agent_dirs(agents_dir)["nomad_edge"]
        pillar["hecate"]["consul"] = {"agent": agent_dirs(agents_dir)["consul"]}
        pillar.setdefault("bionicgpt", {}).update({
            "wireguard": agent_dirs(agents_dir)["wireguard"],
            "nomad": {"agent": agent_dirs(agents_dir)["nomad"]},
        })
    if "edge_dir" in addresses:
        pillar["hecate"]["reverse_proxy"] = edge_pillar(addresses)
    if "authentik" in addresses and "caddy_http_port" in addresses:
        # the fast lab: the Authentik route and the edge's verify step reach the Authentik
        # simulator the harness started, through the harness's Caddy
        host = addresses["authentik"].split("://", 1)[-1]
        routes = [dict(r, backend=host) if r.get("service") == "authentik" else r for r in lab_routes()]
        pillar["hecate"].setdefault("reverse_proxy", {}).setdefault("caddy", {})["routes"] = routes
        pillar["hecate"]["verify"] = {"timeout": 30, "probe": {
            "url": f"http://127.0.0.1:{addresses['caddy_http_port']}/-/health/live/", "host": LAB_AUTHENTIK_DOMAIN}}
    if "edge_jobs" in addresses:
        pillar = _merge(pillar, edge_jobs_pillar(addresses["edge_jobs"]))
    if several(minion_map):
        pillar = _merge(pillar, several_pillar(minion_map))
    return pillar


def _merge(base, override):
    out = dict(base)
    for key, val in override.items():
        out[key] = _merge(out[key], val) if isinstance(val, dict) and isinstance(out.get(key), dict) else val
    return out


# -- the edge from zero: Caddy, Authentik and PostgreSQL as Nomad jobs --------------------------------
LAB_AUTHENTIK_DOMAIN = "hera.cybermonkey.dev"


def edge_job_ports():
    """Loopback ports for the edge jobs of one lab (held together while picked, so they differ)."""
    names = ("caddy_http", "caddy_https", "caddy_admin", "authentik_http", "authentik_https")
    with contextlib.ExitStack() as stack:
        ports = {}
        for name in names:
            ports[name] = procs.bind_free(stack.enter_context(socket.socket()))
    return ports


def render_pillar_file(name, root=PILLAR_DIR, grains=None):
    """One pillar SLS file of ``root`` (``hecate.sls``, ``env/prod.sls``) rendered with Jinja, as data."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(root), undefined=jinja2.StrictUndefined)
    return yaml.safe_load(env.get_template(name).render(grains=grains or {})) or {}


def lab_routes():
    """The Caddy routes of the lab's hecate.sls (lab/pillar/: never the operator's pillar/)."""
    return render_pillar_file("hecate.sls")["hecate"]["reverse_proxy"]["caddy"]["routes"]


def edge_jobs_pillar(edge):
    """
    What makes the lab's edge deploy itself: ``hecate:nomad:jobs`` lists Caddy, Authentik and
    PostgreSQL, and the places production has on the edge host are the lab's loopback ports:
    Authentik's static ports, Caddy's listener (plain HTTP, automatic HTTPS off: no ACME here)
    and admin API, the Authentik route's backend, the two probes through Caddy. ``edge``:
    :func:`edge_job_ports` plus ``vault_path`` (where the Authentik secrets hecate generates
    go) and ``state_dir`` (Caddy snapshots). Deadlines are real time for real processes: the
    simulator's 100x scale would leave Authentik's simulator a few seconds to start.
    """
    ref = lambda key: {"vault": edge["vault_path"], "key": key}  # noqa: E731
    http, admin, ak_http = edge["caddy_http"], edge["caddy_admin"], edge["authentik_http"]
    routes = []
    for route in lab_routes():
        route = dict(route)
        if route.get("service") == "authentik":
            route["backend"] = f"127.0.0.1:{ak_http}"
        routes.append(route)
    caddy_conn = {"admin_url": f"http://127.0.0.1:{admin}"}
    if edge.get("state_dir"):
        caddy_conn["state_dir"] = edge["state_dir"]
    return {
        "hecate": {
            "nomad": {"jobs": ["postgresql", "authentik", "caddy"], "deploy_timeout": 180, "wait_timeout": 60},
            "connections": {"authentik": {"url": f"http://127.0.0.1:{ak_http}", "token": ref("api_token")},
                            "caddy": caddy_conn},
            "authentik": {
                "version": f"{AUTHENTIK_VERSION}.0",
                "database": {"password": ref("db_password")},
                "secret_key": ref("secret_key"),
                "ports": {"http": ak_http, "https": edge["authentik_https"]},
                "bootstrap": {"password": ref("bootstrap_password"), "token": ref("api_token")},
            },
            "reverse_proxy": {"caddy": {
                "ports": {"http": http, "https": edge["caddy_https"], "admin": admin},
                "listen": [f"127.0.0.1:{http}"],
                "routes": routes,
            }},
            "jobs": {"caddy": {"automatic_https": False, "check_port": "http"}},
            "deployment": {"healthy_deadline": "30m", "progress_deadline": "60m", "min_healthy_time": "10s"},
            "verify": {"timeout": 60, "probe": {"url": f"http://127.0.0.1:{http}/-/health/live/",
                                                "host": LAB_AUTHENTIK_DOMAIN}},
        },
        "bionicgpt": {"verify": {"probe": {"url": f"http://127.0.0.1:{http}/ping", "host": LAB_CHAT_DOMAIN}}},
    }


def agent_dirs(agents_dir, minion="{{ grains.id }}"):
    """The lab's agent directories for ``minion`` (default: the Jinja that names each minion)."""
    base = os.path.join(agents_dir, minion)
    return {
        "wireguard": {"config_dir": os.path.join(base, "wireguard")},
        "consul": {
            "config_dir": os.path.join(base, "consul.d"),
            "data_dir": os.path.join(base, "consul-data"),
        },
        "nomad": {
            "config_dir": os.path.join(base, "nomad.d"),
            "data_dir": os.path.join(base, "nomad-data"),
            "host_volumes": {name: {"path": os.path.join(base, "volumes", name)} for name in NODE_VOLUMES},
        },
        # the edge's Nomad client (hecate:nomad:agent)
        "nomad_edge": {
            "config_dir": os.path.join(base, "nomad.d"),
            "data_dir": os.path.join(base, "nomad-data"),
            "host_volumes": {name: {"path": os.path.join(base, "volumes", name)} for name in EDGE_VOLUMES},
        },
    }


# -- the edge's nginx streams and coturn ---------------------------------------------------
# coturn's relay range in the lab sits above Linux's ephemeral ports (32768-60999), so the
# free ports the lab picks for streams never fall into it.
LAB_RELAY_RANGE = (61000, 61050)


def edge_addresses(edge_dir):
    """
    Paths and loopback ports for the lab's nginx streams and coturn config: a TCP stream
    (to Caddy's HTTP listener), a UDP stream (to ``edge_udp_backend_port``, where tests run
    an echo server) and coturn's listening port. All ports are picked while held together,
    so they differ.
    """
    names = ("edge_tcp_port", "edge_udp_port", "edge_udp_backend_port", "coturn_port")
    with contextlib.ExitStack() as stack:
        ports = {}
        for name in names:
            kind = socket.SOCK_STREAM if name == "edge_tcp_port" else socket.SOCK_DGRAM
            ports[name] = procs.bind_free(stack.enter_context(socket.socket(socket.AF_INET, kind)))
    ports["edge_dir"] = edge_dir
    return ports


def edge_paths(edge_dir):
    return {
        "nginx_config": os.path.join(edge_dir, "nginx", "nginx.conf"),
        "nginx_pid": os.path.join(edge_dir, "nginx", "nginx.pid"),
        "nginx_logs": os.path.join(edge_dir, "nginx", "logs"),
        "coturn_config": os.path.join(edge_dir, "coturn", "turnserver.conf"),
    }


def edge_pillar(addresses):
    """
    ``hecate:reverse_proxy`` for the lab: nginx and coturn write into the lab directory,
    nginx runs without a service manager (started and reloaded through its pid file) on
    loopback ports, nothing is installed, files keep the lab user as owner.
    """
    paths = edge_paths(addresses["edge_dir"])
    owner = {"file_user": None, "file_group": None, "packages": []}
    nginx = dict(
        owner,
        config_file=paths["nginx_config"],
        pid_file=paths["nginx_pid"],
        error_log=os.path.join(paths["nginx_logs"], "error.log"),
        access_log=os.path.join(paths["nginx_logs"], "stream-access.log"),
        user=None,
        service=None,
        worker_processes=1,
        worker_rlimit_nofile=None,
        tcp_proxies=[
            {
                "name": "lab-caddy-http",
                "listen_address": "127.0.0.1",
                "listen_port": addresses["edge_tcp_port"],
                "backend": f"127.0.0.1:{addresses.get('caddy_http_port', 80)}",
                "timeouts": {"connect": "5s", "proxy": "60s"},
            },
            {
                "name": "lab-udp-echo",
                "listen_address": "127.0.0.1",
                "listen_port": addresses["edge_udp_port"],
                "protocol": "udp",
                "backend": f"127.0.0.1:{addresses['edge_udp_backend_port']}",
                "proxy_responses": 1,
                "timeouts": {"proxy": "10s"},
            },
        ],
    )
    coturn = dict(
        owner,
        config_file=paths["coturn_config"],
        file_mode="0600",
        manage_service=False,
        listening_ips=["127.0.0.1"],
        relay_ips=["127.0.0.1"],
        cert=None,
        pkey=None,
        ports={
            "listening": addresses["coturn_port"],
            "tls_listening": addresses["coturn_port"] + 1,
            "relay_min": LAB_RELAY_RANGE[0],
            "relay_max": LAB_RELAY_RANGE[1],
        },
    )
    return {"nginx": nginx, "coturn": coturn}


def make_edge_dirs(addresses):
    paths = edge_paths(addresses["edge_dir"])
    for path in (paths["nginx_logs"], os.path.dirname(paths["coturn_config"])):
        os.makedirs(path, exist_ok=True)


def write_runtime_pillar(runtime_dir, addresses):
    addresses = dict(addresses)
    if "caddy_admin" in addresses and not addresses.get("caddy_state_dir"):
        # the lab's minions run unprivileged: snapshots live next to the runtime pillar
        addresses["caddy_state_dir"] = os.path.join(os.path.dirname(os.path.abspath(runtime_dir)), "caddy-state")
    os.makedirs(runtime_dir, exist_ok=True)
    if "edge_dir" in addresses:
        make_edge_dirs(addresses)
    path = os.path.join(runtime_dir, "lab_runtime.sls")
    agents_dir = os.path.join(os.path.dirname(os.path.abspath(runtime_dir)), "agents")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("# Written by the lab: loopback addresses of this lab's services and the\n")
        fh.write("# directories the agent states write to (per minion, instead of /etc).\n")
        yaml.safe_dump(runtime_pillar(addresses, agents_dir), fh, default_flow_style=False)
    write_minion_pillars(runtime_dir, addresses.get("edges") or {})
    return path


def write_minion_pillars(runtime_dir, edges):
    """
    ``lab_minions/<id>.sls`` for each of several edges (:func:`edge_pillar_of`), which the
    lab's top file includes for that minion only: each edge has its own Caddy.
    """
    directory = os.path.join(runtime_dir, "lab_minions")
    os.makedirs(directory, exist_ok=True)
    for mid, edge in sorted(edges.items()):
        with open(os.path.join(directory, f"{mid}.sls"), "w", encoding="utf-8") as fh:
            fh.write(f"# Written by the lab: edge {mid}'s own Caddy and the probes through it.\n")
            yaml.safe_dump(edge_pillar_of(edge), fh, default_flow_style=False)


def agent_secrets(lab_secrets=None):
    """
    Values for the secrets the agent configs reference in pillar: the Consul gossip key
    (base64 of 32 random bytes, as `consul keygen` makes; in a full run hecate.secrets
    generates it) and the ACL tokens - the lab's (the ones its Consul knows, see
    :func:`consul_tokens`) when ``lab_secrets`` is given, else fresh UUIDs.
    """
    import base64  # pylint: disable=import-outside-toplevel

    lab_secrets = lab_secrets or {}
    return {
        "secret/hecate/consul": {
            "gossip_key": base64.b64encode(secrets.token_bytes(32)).decode(),
            "agent_token": lab_secrets.get("consul_agent_token") or str(uuid.uuid4()),
        },
        "secret/bionicgpt/nomad": {"consul_token": lab_secrets.get("nomad_consul_token") or str(uuid.uuid4())},
        # the edge's backup job (hecate:backup:consul_token)
        "secret/hecate/backup": {"consul_token": lab_secrets.get("consul_backup_token") or str(uuid.uuid4())},
        # the edge's Nomad client registers its jobs' services with the same token
        "secret/hecate/nomad": {"consul_token": lab_secrets.get("nomad_consul_token") or str(uuid.uuid4())},
    }


def seed_agent_secrets(vault_url, token, values=None, lab_secrets=None):
    """Write :func:`agent_secrets` into the lab's Vault (KV v2, keeping other keys). Returns them."""
    values = values or agent_secrets(lab_secrets)
    seed_vault(vault_url, token, {tuple(path.split("/", 1)): data for path, data in values.items()})
    return values


# -- Authentik (simulator) ------------------------------------------------------------------
# The release the lab simulates; tests start the others (2025.6, 2026.5) too.
AUTHENTIK_VERSION = os.environ.get("HECATE_AUTHENTIK_VERSION", "2025.10")
# Where hecate's pillar expects the Authentik API token (lab/pillar/hecate.sls references it).
AUTHENTIK_TOKEN_PATH = ("secret", "hecate/authentik", "api_token")
# Lab test users' passwords (lab/pillar/env/lab.sls references them).
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
    """Write ``{(mount, path): data}`` into Vault KV v2, keeping keys already there."""
    import sys  # pylint: disable=import-outside-toplevel

    utils = os.path.join(REPO, "_utils")
    sys.path.insert(0, utils)
    try:
        import hecate_vault_client  # pylint: disable=import-outside-toplevel
    finally:
        sys.path.remove(utils)
    kv = hecate_vault_client.VaultKV({"url": vault_url, "token": root_token})
    for (mount, path), data in items.items():
        kv.merge(mount, path, data)


# Operator-provided secrets (hecate never makes them): what a lab's Vault must hold before an
# orchestration runs, with lab values. hecate.validate checks that they exist.
# bionicgpt:domain of the lab's pillar (lab/pillar/hecate.sls, chat_domain).
LAB_CHAT_DOMAIN = "chat.codemonkey.ai"


def azure_secrets():
    """Azure OpenAI connection for LiteLLM (the lab never calls Azure)."""
    return {("secret", "bionicgpt/azure"): {
        "endpoint": "https://lab-openai.invalid/",
        "api_key": "lab-" + secrets.token_urlsafe(24),
        "chat_deployment": "gpt-4-lab",
    }}


def seed_prerequisites(vault_url, root_token, lab_secrets, edge_from_zero=False):
    """
    Everything an orchestration of the lab needs in Vault that hecate does not generate.
    ``edge_from_zero``: hecate deploys Authentik and generates its API token; only the lab
    users' passwords are seeded.
    """
    items = dict(authentik_vault_seed(lab_secrets))
    if edge_from_zero:
        mount, path, _ = AUTHENTIK_TOKEN_PATH
        items.pop((mount, path), None)
    items.update(azure_secrets())
    items.update(hetzner_vault_seed(lab_secrets))
    seed_vault(vault_url, root_token, items)
    seed_agent_secrets(vault_url, root_token, lab_secrets=lab_secrets)


# -- Hetzner DNS (simulator) ---------------------------------------------------------------------
# Where the lab's pillar (pillar/env/lab.sls, hecate:dns:token) expects the Hetzner API token.
HETZNER_TOKEN_PATH = ("secret", "hecate/hetzner", "dns_api_token")
# The zones of the lab's route domains, and records that someone else made in them: hecate
# must never change or delete these (no managed-by=hecate label).
LAB_ZONES = ("cybermonkey.dev", "codemonkey.ai")
LAB_FOREIGN_RRSETS = {
    "cybermonkey.dev": [
        {"name": "@", "type": "TXT", "ttl": 3600, "records": ['"google-site-verification=lab-foreign-record"']},
        {"name": "mail", "type": "A", "ttl": 3600, "labels": {"owner": "mail-team"}, "records": ["203.0.113.25"]},
    ],
}


def hetzner_token(lab_secrets):
    """The lab's Hetzner Cloud API token (added to ``lab_secrets`` on first use)."""
    if "hetzner_token" not in lab_secrets:
        lab_secrets["hetzner_token"] = "lab-" + secrets.token_urlsafe(40)
    return lab_secrets["hetzner_token"]


def hetzner_options(lab_secrets, zones=LAB_ZONES, foreign=None):
    """
    The Hetzner DNS simulator of a lab: the lab's token, one primary zone per lab domain
    (with their SOA/NS) seeded with the foreign records, actions that take 20 ms.
    """
    foreign = LAB_FOREIGN_RRSETS if foreign is None else foreign
    return {
        "token": hetzner_token(lab_secrets),
        "action_seconds": 0.02,
        "zones": [{"name": z, "ttl": 3600, "rrsets": list(foreign.get(z, []))} for z in zones],
    }


def hetzner_connection(url):
    """``hecate:connections:hetzner_dns`` for the simulator at ``url`` (quick polls and retries)."""
    return {"api_endpoint": url.rstrip("/") + "/v1", "poll_interval": 0.05, "backoff": 0.1,
            "action_timeout": 10, "retries": 3}


def hetzner_vault_seed(lab_secrets):
    mount, path, key = HETZNER_TOKEN_PATH
    return {(mount, path): {key: hetzner_token(lab_secrets)}}
