"""
The pillar of hecate's Consul and Nomad *agents*: ``hecate:consul:agent`` and
``bionicgpt:nomad:agent``, their schema, the checks a schema cannot express (secrets as
references, the host volumes the jobs mount), and the settings with defaults merged
(:func:`consul_settings`, :func:`nomad_settings`). The agents' configuration files are
built and rendered by ``hecate_agents_config``.
"""

import ipaddress

import salt.exceptions

import hecate_config

CONSUL_PATH = "hecate:consul:agent"
NOMAD_PATH = "bionicgpt:nomad:agent"
# The edge's Nomad client (roles: hecate-edge): it runs the edge's own jobs (Caddy,
# Authentik, PostgreSQL), selected by its node class.
NOMAD_EDGE_PATH = "hecate:nomad:agent"
EDGE_ROLE = "hecate-edge"
REQUIRED_VOLUMES = ("bionicgpt_postgres", "ollama")

CONSUL_DEFAULTS = {
    "datacenter": "dc1",
    "data_dir": "/opt/consul",
    "config_dir": "/etc/consul.d",
    "install": True,
    "service": True,
    "user": "root",
    "group": "consul",
    "client_addr": "127.0.0.1",
    "ui": True,
    "bootstrap_expect": 1,
    "log_level": "INFO",
    "gossip_key": None,
    "acl": {"enabled": True, "default_policy": "deny", "enable_token_persistence": True, "agent_token": None},
    "ports": {},
    "extra": {},
}

NOMAD_DEFAULTS = {
    "datacenter": "dc1",
    "region": None,
    "data_dir": "/opt/nomad/data",
    "config_dir": "/etc/nomad.d",
    "install": True,
    "service": True,
    "packages": ["nomad", "docker.io"],
    "user": "root",
    "group": "root",
    "bind_addr": "0.0.0.0",
    "server": {"enabled": True, "bootstrap_expect": 1, "memory_oversubscription": True},
    "client": {
        "enabled": True,
        "network_interface": None,  # default: the WireGuard interface
        "meta": {"location": "local"},
        "driver_allowlist": ["docker"],
        "reserved": {},
    },
    "host_volumes": {},
    "consul": {
        "address": "127.0.0.1:8500",
        "token": None,
        "auto_advertise": True,
        "server_auto_join": True,
        "client_auto_join": True,
    },
    "vault": {
        "enabled": True,
        "address": None,  # default: hecate:connections:vault:url
        "ca_file": None,
        "jwt_auth_backend_path": None,
        "default_identity": {"aud": ["vault.io"], "ttl": "1h"},
    },
    "docker": {"allow_privileged": False, "volumes_enabled": True, "allow_caps": None},
    "acl": {"enabled": True, "token_ttl": None, "policy_ttl": None, "role_ttl": None},
    "telemetry": None,
    "extra": {},
}

_SECRET = {
    "oneOf": [
        {
            "type": "object",
            "required": ["vault", "key"],
            "additionalProperties": False,
            "properties": {"vault": {"type": "string"}, "key": {"type": "string"}},
        },
        {"type": "string", "pattern": "^sdb://"},
        {"type": "null"},
    ]
}
_PORT = {"type": "integer", "minimum": 1, "maximum": 65535}
_ABS = {"type": "string", "pattern": "^/"}
_OWNER = {"type": ["string", "null"]}
_C, _N = CONSUL_DEFAULTS, NOMAD_DEFAULTS
_CONFIG_OWNER = (
    "of the agent's config file; it is 0640 (0600 when the group is root), so the group must "
    "be the one the agent runs as. Ignored when Salt does not run as root."
)


def _d(node, description, **notes):
    return dict(node, description=description, **notes)


_CONSUL_PORT_TEXT = {
    "http": "HTTP API",
    "https": "HTTPS API",
    "dns": "DNS interface",
    "serf_lan": "LAN gossip (a client joins the server on it)",
    "serf_wan": "WAN gossip",
    "server": "server RPC",
    "grpc": "gRPC API",
    "grpc_tls": "gRPC API over TLS",
}

PILLAR_SCHEMA = {
    CONSUL_PATH: {
        "type": "object",
        "additionalProperties": False,
        "description": (
            "The Consul agents consul.agent lays down: a server on the cloud node, a client on each "
            "local node joined over the tunnel (both bound to their tunnel address)."
        ),
        "properties": {
            "datacenter": {"type": "string", "pattern": r"^[A-Za-z0-9_-]+$", "default": _C["datacenter"],
                           "description": "Consul datacenter name."},
            "data_dir": _d(_ABS, "Consul's data directory.", default=_C["data_dir"]),
            "config_dir": _d(_ABS, "Directory of the rendered consul.json.", default=_C["config_dir"]),
            "install": {"type": "boolean", "default": _C["install"],
                        "description": "Add HashiCorp's apt repository and install consul."},
            "service": {"type": "boolean", "default": _C["service"],
                        "description": "Enable the consul service and restart it when its config changes."},
            "user": _d(_OWNER, "Owner " + _CONFIG_OWNER, default=_C["user"]),
            "group": _d(_OWNER, "Group " + _CONFIG_OWNER, default=_C["group"]),
            "client_addr": {"type": "string", "default": _C["client_addr"],
                            "description": "Addresses (space separated, or a go-sockaddr template) the HTTP, "
                                           "DNS and gRPC interfaces bind to."},
            "ui": {"type": "boolean", "default": _C["ui"], "description": "Serve the web UI (server only)."},
            "bootstrap_expect": {"type": "integer", "minimum": 1, "default": _C["bootstrap_expect"],
                                 "description": "Servers expected before the cluster elects a leader."},
            "log_level": {"enum": ["TRACE", "DEBUG", "INFO", "WARN", "ERR"], "default": _C["log_level"],
                          "description": "Consul's log level."},
            "gossip_key": _d(_SECRET, "Gossip encryption key (Vault reference, e.g. the generated "
                                      "hecate:secrets entry); null: gossip in clear.", default=None),
            "acl": {
                "type": "object",
                "additionalProperties": False,
                "description": "Consul's ACL system.",
                "properties": {
                    "enabled": {"type": "boolean", "default": _C["acl"]["enabled"],
                                "description": "Turn ACLs on."},
                    "default_policy": {"enum": ["allow", "deny"], "default": _C["acl"]["default_policy"],
                                       "description": "What a request without a matching rule gets. Under "
                                                      "deny, hecate's token needs its own policy."},
                    "enable_token_persistence": {"type": "boolean",
                                                 "default": _C["acl"]["enable_token_persistence"],
                                                 "description": "Keep tokens set through the API across restarts."},
                    "agent_token": _d(_SECRET, "The agent's own token (Vault reference); null: none.",
                                      default=None),
                },
            },
            "ports": {
                "type": "object",
                "additionalProperties": False,
                "default": {},
                "description": "Consul's ports; absent ones keep Consul's defaults.",
                "properties": {
                    k: {"type": "integer", "minimum": -1, "maximum": 65535,
                        "description": f"Port of the {text}; -1 turns it off."}
                    for k, text in _CONSUL_PORT_TEXT.items()
                },
            },
            "extra": {"type": "object", "default": {},
                      "description": "Any other Consul agent settings, merged over what hecate renders."},
            "nodes": {
                "type": "object",
                "default": {},
                "description": (
                    "Per-minion settings, keyed by minion id. Every edge runs a Consul server unless "
                    "its entry says server: false (two edges: one server, bootstrap_expect 1; three: "
                    "three). Local nodes run clients."
                ),
                "additionalProperties": {
                    "type": "object",
                    "additionalProperties": False,
                    "description": "One minion's Consul agent settings.",
                    "properties": {
                        "server": {"type": "boolean", "description": "false: this edge runs a Consul client "
                                                                    "(joined to the servers) instead."},
                    },
                },
            },
        },
    },
    NOMAD_PATH: {
        "type": "object",
        "additionalProperties": False,
        "description": (
            "The Nomad agent nomad.agent lays down on the local node: server and client, task ports "
            "on the WireGuard interface, Consul and Vault integration, the docker plugin."
        ),
        "properties": {
            "datacenter": {"type": "string", "pattern": r"^[A-Za-z0-9_-]+$", "default": _N["datacenter"],
                           "description": "Nomad datacenter name (the jobs' datacenters must include it)."},
            "region": {"type": ["string", "null"], "default": None,
                       "description": "Nomad region; null: Nomad's default (global)."},
            "data_dir": _d(_ABS, "Nomad's data directory.", default=_N["data_dir"]),
            "config_dir": _d(_ABS, "Directory of the rendered nomad.hcl.", default=_N["config_dir"]),
            "install": {"type": "boolean", "default": _N["install"],
                        "description": "Add HashiCorp's apt repository and install packages."},
            "service": {"type": "boolean", "default": _N["service"],
                        "description": "Enable the nomad service and restart it when its config changes."},
            "packages": {"type": "array", "items": {"type": "string"}, "default": _N["packages"],
                         "description": "Packages installed when install is true."},
            "user": _d(_OWNER, "Owner " + _CONFIG_OWNER, default=_N["user"]),
            "group": _d(_OWNER, "Group " + _CONFIG_OWNER, default=_N["group"]),
            "bind_addr": {"type": "string", "default": _N["bind_addr"],
                          "description": "Address Nomad's listeners bind to; it advertises the tunnel address."},
            "server": {
                "type": "object",
                "additionalProperties": False,
                "description": "The Nomad server on the local node.",
                "properties": {
                    "enabled": {"type": "boolean", "default": _N["server"]["enabled"],
                                "description": "Run a server on this node."},
                    "bootstrap_expect": {"type": "integer", "minimum": 1,
                                         "default": _N["server"]["bootstrap_expect"],
                                         "description": "Servers expected before the cluster elects a leader."},
                    "memory_oversubscription": {
                        "type": "boolean",
                        "default": _N["server"]["memory_oversubscription"],
                        "description": (
                            "Bootstrap the scheduler with memory oversubscription, so a task's memory_max "
                            "is honoured. Applies only to a new cluster: on an existing one run `nomad "
                            "operator scheduler set-config -memory-oversubscription=true`."
                        ),
                    },
                },
            },
            "client": {
                "type": "object",
                "additionalProperties": False,
                "description": "The Nomad client that runs the BionicGPT tasks.",
                "properties": {
                    "enabled": {"type": "boolean", "default": _N["client"]["enabled"],
                                "description": "Run a client on this node."},
                    "network_interface": {"type": ["string", "null"], "default": None,
                                          "description": "Interface task ports are allocated on; null: the "
                                                         "WireGuard interface, so the edge reaches them."},
                    "node_class": {"type": ["string", "null"], "pattern": r"^[A-Za-z0-9_.-]+$",
                                   "description": "The client's node class (the edge's jobs "
                                                  "constrain on it: hecate:nomad:node_class)."},
                    "host_networks": {
                        "type": "object",
                        "description": "Named host networks (`host_network` blocks) ports may be "
                                       "placed on, e.g. `loopback: {cidr: 127.0.0.1/32}` for "
                                       "Authentik's ports on the edge.",
                        "additionalProperties": {
                            "type": "object",
                            "description": "One host network, by its name (`host_network \"<name>\"`): "
                                           "the addresses of the node its ports bind to, by CIDR or "
                                           "by interface.",
                            "additionalProperties": False,
                            "properties": {
                                "cidr": {"type": "string", "description": "Address range."},
                                "interface": {"type": "string", "description": "Interface name."},
                            },
                        },
                    },
                    "meta": {"type": "object", "additionalProperties": {"type": "string"},
                             "default": _N["client"]["meta"],
                             "description": "Client metadata; meta.location must match "
                                            "bionicgpt:nomad:node_location, the jobs' constraint."},
                    "driver_allowlist": {"type": "array", "items": {"type": "string"},
                                         "default": _N["client"]["driver_allowlist"],
                                         "description": "Task drivers the client enables."},
                    "reserved": {
                        "type": "object",
                        "additionalProperties": False,
                        "default": {},
                        "description": "Resources kept back for the host, not offered to tasks.",
                        "properties": {
                            "cpu": {"type": "integer", "minimum": 0, "description": "CPU reserved, in MHz."},
                            "memory": {"type": "integer", "minimum": 0, "description": "Memory reserved, in MB."},
                            "disk": {"type": "integer", "minimum": 0, "description": "Disk reserved, in MB."},
                        },
                    },
                },
            },
            "host_volumes": {
                "type": "object",
                "description": (
                    "Host directories offered to jobs, by name; bionicgpt_postgres and ollama are "
                    "required (the database and llm jobs mount them). The directories are created."
                ),
                "additionalProperties": {
                    "type": "object",
                    "required": ["path"],
                    "additionalProperties": False,
                    "description": "One host volume.",
                    "properties": {
                        "path": _d(_ABS, "The directory on the host.", examples=["/opt/bionicgpt/postgres"]),
                        "read_only": {"type": "boolean", "default": False,
                                      "description": "Offer the volume read-only."},
                        "mode": {"type": "string", "pattern": "^0?[0-7]{3,4}$", "default": "0755",
                                 "description": "Mode of the directory."},
                        "user": _d(_OWNER, "Owner of the directory; absent: unchanged."),
                        "group": _d(_OWNER, "Group of the directory; absent: unchanged."),
                    },
                },
            },
            "consul": {
                "type": "object",
                "additionalProperties": False,
                "description": "Nomad's Consul integration (service registration, joining).",
                "properties": {
                    "address": {"type": "string", "default": _N["consul"]["address"],
                                "description": "The local Consul agent's HTTP address."},
                    "token": _d(_SECRET, "Consul token Nomad uses (Vault reference); null: none.", default=None),
                    "auto_advertise": {"type": "boolean", "default": _N["consul"]["auto_advertise"],
                                       "description": "Register Nomad's own services in Consul."},
                    "server_auto_join": {"type": "boolean", "default": _N["consul"]["server_auto_join"],
                                         "description": "Servers find each other through Consul."},
                    "client_auto_join": {"type": "boolean", "default": _N["consul"]["client_auto_join"],
                                         "description": "Clients find the servers through Consul."},
                },
            },
            "vault": {
                "type": "object",
                "additionalProperties": False,
                "description": "Nomad's Vault integration, through which the jobs read their secrets.",
                "properties": {
                    "enabled": {"type": "boolean", "default": _N["vault"]["enabled"],
                                "description": "Must stay true: Nomad refuses the jobs' vault blocks without it."},
                    "address": {"type": ["string", "null"], "pattern": r"^https?://", "default": None,
                                "description": "Vault's address; null: hecate:connections:vault:url."},
                    "ca_file": {"type": ["string", "null"], "default": None,
                                "description": "CA file Nomad trusts for Vault."},
                    "jwt_auth_backend_path": {"type": ["string", "null"], "default": None,
                                              "description": "Mount of Vault's JWT auth method for workload "
                                                             "identities; null: Nomad's default (jwt-nomad)."},
                    "default_identity": {
                        "type": "object",
                        "additionalProperties": False,
                        "description": "The workload identity tasks present to Vault (server only).",
                        "properties": {
                            "aud": {"type": "array", "items": {"type": "string"},
                                    "default": _N["vault"]["default_identity"]["aud"],
                                    "description": "Audience of the identity token."},
                            "ttl": {"type": "string", "default": _N["vault"]["default_identity"]["ttl"],
                                    "description": "Lifetime of the identity token."},
                        },
                    },
                },
            },
            "docker": {
                "type": "object",
                "additionalProperties": False,
                "description": "The docker task driver's plugin settings.",
                "properties": {
                    "allow_privileged": {"type": "boolean", "default": _N["docker"]["allow_privileged"],
                                         "description": "Allow privileged containers."},
                    "volumes_enabled": {"type": "boolean", "default": _N["docker"]["volumes_enabled"],
                                        "description": "Allow docker volume mounts."},
                    "allow_caps": {"type": ["array", "null"], "items": {"type": "string"}, "default": None,
                                   "description": "Linux capabilities tasks may have; null: Nomad's default "
                                                  "list (a short list can break PostgreSQL)."},
                },
            },
            "acl": {
                "type": "object",
                "additionalProperties": False,
                "description": "Nomad's ACL system (the agent's `acl` block; every server and client "
                               "alike). With it on, Nomad answers nothing without a token until "
                               "`nomad acl bootstrap`: see the bootstrap steps in the agents' docs.",
                "properties": {
                    "enabled": {"type": "boolean", "default": _N["acl"]["enabled"],
                                "description": "Turn ACL enforcement on (hecate's calls then carry "
                                               "hecate:connections:nomad:token)."},
                    **{key: {"type": ["string", "null"], "pattern": r"^\d+(ns|us|ms|s|m|h)$", "default": None,
                             "description": f"How long a client caches {what} (a duration, e.g. 30s); "
                                            "null: Nomad's default (30s)."}
                       for key, what in (("token_ttl", "ACL tokens"), ("policy_ttl", "ACL policies"),
                                         ("role_ttl", "ACL roles"))},
                },
            },
            "telemetry": {"type": ["object", "null"], "default": None,
                          "description": "Nomad's telemetry block, rendered as given; null: none."},
            "extra": {"type": "object", "default": {},
                      "description": "Any other Nomad agent settings, merged over what hecate renders."},
            "nodes": {
                "type": "object",
                "default": {},
                "description": (
                    "Per-minion settings, keyed by minion id, merged over the others for that minion: "
                    "which agents run a server (their number must equal bootstrap_expect) and a "
                    "node's client meta, e.g. {gpu-1: {client: {meta: {gpu: \"true\"}}}} (the llm "
                    "job then runs on gpu nodes: bionicgpt:jobs:llm:node_meta)."
                ),
                "additionalProperties": {
                    "type": "object",
                    "additionalProperties": False,
                    "description": "One minion's Nomad agent settings.",
                    "properties": {
                        "server": {
                            "type": "object",
                            "additionalProperties": False,
                            "description": "This minion's server (enabled, bootstrap_expect).",
                            "properties": {
                                "enabled": {"type": "boolean", "description": "Run a server on this minion."},
                                "bootstrap_expect": {"type": "integer", "minimum": 1,
                                                     "description": "Servers expected before the cluster "
                                                                    "elects a leader."},
                            },
                        },
                        "client": {
                            "type": "object",
                            "additionalProperties": False,
                            "description": "This minion's client (enabled, meta, node_class, reserved).",
                            "properties": {
                                "enabled": {"type": "boolean", "description": "Run a client on this minion."},
                                "meta": {"type": "object", "additionalProperties": {"type": "string"},
                                         "description": "Client metadata merged over the role's "
                                                        "(values are strings: gpu: \"true\")."},
                                "node_class": {"type": ["string", "null"], "pattern": r"^[A-Za-z0-9_.-]+$",
                                               "description": "The client's node class."},
                                "reserved": {"type": "object", "description": "Resources kept back for "
                                                                               "the host (cpu, memory, disk)."},
                            },
                        },
                    },
                },
            },
        },
    },
}


def check_pillar(pillar, env=None):  # pylint: disable=unused-argument
    """(The edge's Nomad client: the host volumes of the edge's jobs are checked by
    hecate_edge_schema.) Secrets must be references; Nomad needs the two host volumes the jobs mount."""
    errors = []
    consul = hecate_config.traverse(pillar, CONSUL_PATH)
    if isinstance(consul, dict):
        for key, val in (
            ("gossip_key", consul.get("gossip_key")),
            ("acl:agent_token", (consul.get("acl") or {}).get("agent_token")),
        ):
            if isinstance(val, str) and not val.startswith("sdb://"):
                errors.append(
                    (f"{CONSUL_PATH}:{key}", "secret given as a literal; use {vault: <mount>/<path>, key: <key>}")
                )
        addr = consul.get("client_addr")
        if isinstance(addr, str):
            for part in addr.split():
                if not part.startswith("{{"):
                    try:
                        ipaddress.ip_address(part)
                    except ValueError:
                        errors.append((f"{CONSUL_PATH}:client_addr", f"{part!r} is not an IP address"))
    nomad = hecate_config.traverse(pillar, NOMAD_PATH)
    if isinstance(nomad, dict):
        token = (nomad.get("consul") or {}).get("token")
        if isinstance(token, str) and not token.startswith("sdb://"):
            errors.append(
                (f"{NOMAD_PATH}:consul:token", "secret given as a literal; use {vault: <mount>/<path>, key: <key>}")
            )
        if (nomad.get("vault") or {}).get("enabled") is False:
            errors.append((f"{NOMAD_PATH}:vault:enabled", (
                "the BionicGPT jobs read their secrets through Nomad's Vault integration (vault blocks); "
                "Nomad refuses them without it (Vault \"default\" not enabled but used in the job)")))
        volumes = nomad.get("host_volumes") or {}
        for name in REQUIRED_VOLUMES:
            if name not in volumes:
                errors.append(
                    (
                        f"{NOMAD_PATH}:host_volumes:{name}",
                        "required host volume is missing (the BionicGPT jobs mount it)",
                    )
                )
        paths = {}
        for name, vol in sorted(volumes.items()):
            path = (vol or {}).get("path") if isinstance(vol, dict) else None
            if path in paths:
                errors.append((f"{NOMAD_PATH}:host_volumes:{name}:path", f"same path as host volume {paths[path]}"))
            elif path:
                paths[path] = name
    return errors


# -- settings ----------------------------------------------------------------------------------


def consul_settings(pillar):
    conf = hecate_config.traverse(pillar, CONSUL_PATH)
    if conf is None:
        raise salt.exceptions.SaltInvocationError(f"{CONSUL_PATH} is not set in this minion's pillar")
    return hecate_config.deep_merge(CONSUL_DEFAULTS, hecate_config.plain(conf))


def consul_server(conf, minion_id, edge):
    """Whether ``minion_id`` runs a Consul server: every edge (``edge``) unless ``nodes:<id>:server: false``."""
    node = (conf.get("nodes") or {}).get(minion_id) or {}
    return bool(edge) and node.get("server", True) is not False


def nomad_path(grains=None):
    """Where this minion's Nomad agent config lives in pillar: the edge's, or the node's."""
    roles = (grains or {}).get("roles") or []
    return NOMAD_EDGE_PATH if EDGE_ROLE in roles else NOMAD_PATH


def nomad_settings(pillar, grains=None):
    """
    This minion's Nomad agent settings: its role's pillar over the defaults, then its own
    entry ``<path>:nodes:<minion id>`` over those (``nodes`` itself is dropped).
    """
    path = nomad_path(grains)
    conf = hecate_config.traverse(pillar, path)
    if conf is None:
        raise salt.exceptions.SaltInvocationError(f"{path} is not set in this minion's pillar")
    merged = _nomad_merged(conf, (grains or {}).get("id"))
    if merged["vault"].get("address") is None:
        merged["vault"]["address"] = hecate_config.traverse(pillar, "hecate:connections:vault:url")
    return merged


def _nomad_merged(conf, minion_id):
    merged = hecate_config.deep_merge(NOMAD_DEFAULTS, hecate_config.plain(conf))
    own = (merged.pop("nodes", None) or {}).get(minion_id)
    return hecate_config.deep_merge(merged, own) if isinstance(own, dict) else merged


# -- several edges and nodes: who runs the servers (hecate.validate, on the master) ---------------


def _servers(pillar, resolved):
    """
    ``{"consul": (expect, [ids]), "nomad": (expects, [ids])}`` of the resolved members
    (``{role: [minion ids]}``); ``None`` for an agent whose pillar is absent.
    """
    out = {}
    consul = hecate_config.traverse(pillar, CONSUL_PATH)
    if isinstance(consul, dict):
        conf = consul_settings(pillar)
        ids = [mid for mid in resolved.get(EDGE_ROLE) or [] if consul_server(conf, mid, True)]
        out["consul"] = ({conf.get("bootstrap_expect")}, ids, [
            mid for mid in resolved.get("bionicgpt-node") or []
            if ((conf.get("nodes") or {}).get(mid) or {}).get("server") is True])
    expects, ids = set(), []
    for role, path in ((EDGE_ROLE, NOMAD_EDGE_PATH), ("bionicgpt-node", NOMAD_PATH)):
        conf = hecate_config.traverse(pillar, path)
        if not isinstance(conf, dict):
            continue
        for mid in resolved.get(role) or []:
            server = _nomad_merged(conf, mid)["server"]
            if server.get("enabled"):
                ids.append(mid)
                expects.add(server.get("bootstrap_expect", 1))
    out["nomad"] = (expects, ids, [])
    return out


def server_problems(pillar, resolved):
    """
    ``[(path, message)]``: servers that would not form one cluster - their number differs
    from the ``bootstrap_expect`` they are given (too few never elect a leader; too many
    elect several, one cluster each), or a local node asked to be a Consul server.
    """
    errors = []
    found = _servers(pillar, resolved)
    if "consul" in found:
        (expect,), ids, on_nodes = found["consul"]
        for mid in on_nodes:
            errors.append((f"{CONSUL_PATH}:nodes:{mid}:server",
                           f"{mid} is a local node: Consul servers run on the edges"))
        if not ids and resolved.get(EDGE_ROLE):
            errors.append((f"{CONSUL_PATH}:nodes", "no edge runs a Consul server (every edge has server: false)"))
        elif ids and len(ids) != expect:
            errors.append((f"{CONSUL_PATH}:bootstrap_expect", (
                f"{len(ids)} edges run a Consul server ({', '.join(ids)}) but bootstrap_expect is {expect}: "
                f"set it to {len(ids)}, or make edges clients with {CONSUL_PATH}:nodes:<minion id>:server: false "
                "(Consul wants 1 or 3 servers)")))
    expects, ids, _ = found["nomad"]
    if ids and expects != {len(ids)}:
        errors.append(("bionicgpt:nomad:agent:server:bootstrap_expect", (
            f"{len(ids)} members run a Nomad server ({', '.join(ids)}) but they expect "
            f"{' or '.join(str(e) for e in sorted(expects))}: every server's bootstrap_expect must be "
            f"{len(ids)} (<agent>:server:bootstrap_expect, <agent>:nodes:<minion id>:server), or run fewer "
            "servers - on the edges: hecate:nomad:agent:nodes:<edge id>:server:enabled: true, and "
            "bionicgpt:nomad:agent:server:enabled: false")))
    return errors


def server_warnings(pillar, resolved):
    """An even number of Consul or Nomad servers tolerates no more failures than one fewer."""
    out = []
    for name, (_, ids, _) in sorted(_servers(pillar, resolved).items()):
        if len(ids) % 2 == 0 and ids:
            out.append(f"{len(ids)} {name.capitalize()} servers ({', '.join(ids)}): an even number survives "
                       f"no more failures than {len(ids) - 1} (quorum {len(ids) // 2 + 1}); run 1 or 3")
    return out
