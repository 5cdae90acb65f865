"""
Consul and Nomad *agent* configuration for hecate's two roles, built from pillar.

- Consul (pillar ``hecate:consul:agent``): a server on the cloud node
  (``bootstrap_expect``, UI), a client on each local node that joins the cloud node's
  tunnel address (``retry_join``). Gossip runs over WireGuard: ``bind_addr`` and
  ``advertise_addr`` are the node's tunnel address. Gossip key and ACL agent token are
  Vault references resolved on the minion when the file is written.
- Nomad (pillar ``bionicgpt:nomad:agent``): server + client on the local node, client
  ``meta.location = local``, host volumes (``bionicgpt_postgres``, ``ollama``), Consul and
  Vault integration (workload identities; the BionicGPT jobs' ``vault`` blocks need it:
  without it Nomad refuses them, ``Vault "default" not enabled but used in the job``),
  memory oversubscription (``server.default_scheduler_config``, so a task's ``memory_max``
  is honoured rather than ignored with a warning), docker plugin settings. Task ports are
  allocated on the WireGuard interface (``network_interface``) so the cloud node reaches
  them over the tunnel.

Config is built as plain dicts (Vault references left in place), rendered to JSON
(Consul) or HCL (Nomad; Nomad's JSON agent config mis-parses ``plugin`` blocks,
hashicorp/nomad#7981). Secret values are masked line by line in every diff
(:func:`masked_diff`), so a state return never shows one, old or new.
"""

import copy
import ipaddress
import json
import re

import salt.exceptions

try:
    import hecate_secrets
    import hecate_wireguard
except ImportError:  # installed with pip
    from saltext.hecate.utils import hecate_secrets, hecate_wireguard

CONSUL_PATH = "hecate:consul:agent"
NOMAD_PATH = "bionicgpt:nomad:agent"
# The edge's Nomad client (roles: hecate-edge): it runs the edge's own jobs (Caddy,
# Authentik, PostgreSQL), selected by its node class.
NOMAD_EDGE_PATH = "hecate:nomad:agent"
EDGE_ROLE = "hecate-edge"
REQUIRED_VOLUMES = ("bionicgpt_postgres", "ollama")
# key names whose values are masked in diffs (plus every key that held a Vault reference)
SECRET_LINE_KEYS = frozenset({"encrypt", "agent", "default", "initial_management", "replication", "token"})

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

PILLAR_SCHEMA = {
    CONSUL_PATH: {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "datacenter": {"type": "string", "pattern": r"^[A-Za-z0-9_-]+$"},
            "data_dir": _ABS,
            "config_dir": _ABS,
            "install": {"type": "boolean"},
            "service": {"type": "boolean"},
            "user": _OWNER,
            "group": _OWNER,
            "client_addr": {"type": "string"},
            "ui": {"type": "boolean"},
            "bootstrap_expect": {"type": "integer", "minimum": 1},
            "log_level": {"enum": ["TRACE", "DEBUG", "INFO", "WARN", "ERR"]},
            "gossip_key": _SECRET,
            "acl": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "enabled": {"type": "boolean"},
                    "default_policy": {"enum": ["allow", "deny"]},
                    "enable_token_persistence": {"type": "boolean"},
                    "agent_token": _SECRET,
                },
            },
            "ports": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    k: {"type": "integer", "minimum": -1, "maximum": 65535}
                    for k in ("http", "https", "dns", "serf_lan", "serf_wan", "server", "grpc", "grpc_tls")
                },
            },
            "extra": {"type": "object"},
        },
    },
    NOMAD_PATH: {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "datacenter": {"type": "string", "pattern": r"^[A-Za-z0-9_-]+$"},
            "region": {"type": ["string", "null"]},
            "data_dir": _ABS,
            "config_dir": _ABS,
            "install": {"type": "boolean"},
            "service": {"type": "boolean"},
            "packages": {"type": "array", "items": {"type": "string"}},
            "user": _OWNER,
            "group": _OWNER,
            "bind_addr": {"type": "string"},
            "server": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "enabled": {"type": "boolean"},
                    "bootstrap_expect": {"type": "integer", "minimum": 1},
                    "memory_oversubscription": {"type": "boolean"},
                },
            },
            "client": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "enabled": {"type": "boolean"},
                    "network_interface": {"type": ["string", "null"]},
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
                            "additionalProperties": False,
                            "properties": {
                                "cidr": {"type": "string", "description": "Address range."},
                                "interface": {"type": "string", "description": "Interface name."},
                            },
                        },
                    },
                    "meta": {"type": "object", "additionalProperties": {"type": "string"}},
                    "driver_allowlist": {"type": "array", "items": {"type": "string"}},
                    "reserved": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            k: {"type": "integer", "minimum": 0} for k in ("cpu", "memory", "disk")
                        },
                    },
                },
            },
            "host_volumes": {
                "type": "object",
                "additionalProperties": {
                    "type": "object",
                    "required": ["path"],
                    "additionalProperties": False,
                    "properties": {
                        "path": _ABS,
                        "read_only": {"type": "boolean"},
                        "mode": {"type": "string", "pattern": "^0?[0-7]{3,4}$"},
                        "user": _OWNER,
                        "group": _OWNER,
                    },
                },
            },
            "consul": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "address": {"type": "string"},
                    "token": _SECRET,
                    "auto_advertise": {"type": "boolean"},
                    "server_auto_join": {"type": "boolean"},
                    "client_auto_join": {"type": "boolean"},
                },
            },
            "vault": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "enabled": {"type": "boolean"},
                    "address": {"type": ["string", "null"], "pattern": r"^https?://"},
                    "ca_file": {"type": ["string", "null"]},
                    "jwt_auth_backend_path": {"type": ["string", "null"]},
                    "default_identity": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "aud": {"type": "array", "items": {"type": "string"}},
                            "ttl": {"type": "string"},
                        },
                    },
                },
            },
            "docker": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "allow_privileged": {"type": "boolean"},
                    "volumes_enabled": {"type": "boolean"},
                    "allow_caps": {"type": ["array", "null"], "items": {"type": "string"}},
                },
            },
            "telemetry": {"type": ["object", "null"]},
            "extra": {"type": "object"},
        },
    },
}


def _traverse(data, path):
    cur = data
    for part in path.split(":"):
        try:
            cur = cur[part]
        except (KeyError, TypeError, IndexError):
            return None
    return cur


def _merge(base, override):
    out = copy.deepcopy(base)
    for key, val in (override or {}).items():
        if isinstance(val, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], val)
        else:
            out[key] = copy.deepcopy(val)
    return out


def check_pillar(pillar, env=None):  # pylint: disable=unused-argument
    """Secrets must be references; Nomad needs the two host volumes the jobs mount (the
    edge's client: those of the edge's jobs, checked by hecate_edge_schema)."""
    errors = []
    consul = _traverse(pillar, CONSUL_PATH)
    if isinstance(consul, dict):
        for key, val in (("gossip_key", consul.get("gossip_key")), ("acl:agent_token", (consul.get("acl") or {}).get("agent_token"))):
            if isinstance(val, str) and not val.startswith("sdb://"):
                errors.append((f"{CONSUL_PATH}:{key}", "secret given as a literal; use {vault: <mount>/<path>, key: <key>}"))
        addr = consul.get("client_addr")
        if isinstance(addr, str):
            for part in addr.split():
                if not part.startswith("{{"):
                    try:
                        ipaddress.ip_address(part)
                    except ValueError:
                        errors.append((f"{CONSUL_PATH}:client_addr", f"{part!r} is not an IP address"))
    nomad = _traverse(pillar, NOMAD_PATH)
    if isinstance(nomad, dict):
        token = (nomad.get("consul") or {}).get("token")
        if isinstance(token, str) and not token.startswith("sdb://"):
            errors.append((f"{NOMAD_PATH}:consul:token", "secret given as a literal; use {vault: <mount>/<path>, key: <key>}"))
        if (nomad.get("vault") or {}).get("enabled") is False:
            errors.append((f"{NOMAD_PATH}:vault:enabled", (
                "the BionicGPT jobs read their secrets through Nomad's Vault integration (vault blocks); "
                "Nomad refuses them without it (Vault \"default\" not enabled but used in the job)")))
        volumes = nomad.get("host_volumes") or {}
        for name in REQUIRED_VOLUMES:
            if name not in volumes:
                errors.append((f"{NOMAD_PATH}:host_volumes:{name}", "required host volume is missing (the BionicGPT jobs mount it)"))
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
    conf = _traverse(pillar, CONSUL_PATH)
    if conf is None:
        raise salt.exceptions.SaltInvocationError(f"{CONSUL_PATH} is not set in this minion's pillar")
    return _merge(CONSUL_DEFAULTS, hecate_wireguard._plain(conf))  # pylint: disable=protected-access


def nomad_path(grains=None):
    """Where this minion's Nomad agent config lives in pillar: the edge's, or the node's."""
    roles = (grains or {}).get("roles") or []
    return NOMAD_EDGE_PATH if EDGE_ROLE in roles else NOMAD_PATH


def nomad_settings(pillar, grains=None):
    path = nomad_path(grains)
    conf = _traverse(pillar, path)
    if conf is None:
        raise salt.exceptions.SaltInvocationError(f"{path} is not set in this minion's pillar")
    merged = _merge(NOMAD_DEFAULTS, hecate_wireguard._plain(conf))  # pylint: disable=protected-access
    if merged["vault"].get("address") is None:
        merged["vault"]["address"] = _traverse(pillar, "hecate:connections:vault:url")
    return merged


def consul_config(pillar, grains):
    """The Consul agent config (a dict, Vault references unresolved) for this minion's role."""
    conf = consul_settings(pillar)
    wg = hecate_wireguard.settings(pillar, grains)
    server = wg["role"] == "cloud"
    cfg = {
        "datacenter": conf["datacenter"],
        "node_name": grains.get("id"),
        "data_dir": conf["data_dir"],
        "server": server,
    }
    if server:
        cfg["bootstrap_expect"] = conf["bootstrap_expect"]
    cfg.update(
        {
            "bind_addr": wg["address"],
            "advertise_addr": wg["address"],
            "client_addr": conf["client_addr"],
            "log_level": conf["log_level"],
            "ui_config": {"enabled": bool(server and conf["ui"])},
        }
    )
    if not server:
        cloud = wg["cloud"]["address"]
        serf_lan = (conf.get("ports") or {}).get("serf_lan")
        join = f"{cloud}:{serf_lan}" if serf_lan and serf_lan != 8301 else cloud
        if ":" in cloud and serf_lan and serf_lan != 8301:
            join = f"[{cloud}]:{serf_lan}"
        cfg["retry_join"] = [join]
    if conf.get("ports"):
        cfg["ports"] = dict(sorted(conf["ports"].items()))
    if conf.get("gossip_key") is not None:
        cfg["encrypt"] = conf["gossip_key"]
    acl = conf.get("acl") or {}
    if acl.get("enabled"):
        cfg["acl"] = {
            "enabled": True,
            "default_policy": acl.get("default_policy", "deny"),
            "enable_token_persistence": bool(acl.get("enable_token_persistence", True)),
        }
        if acl.get("agent_token") is not None:
            cfg["acl"]["tokens"] = {"agent": acl["agent_token"]}
    return _merge(cfg, conf.get("extra") or {})


def nomad_config(pillar, grains):
    """The Nomad agent config (a dict, Vault references unresolved): server + client."""
    conf = nomad_settings(pillar, grains)
    wg = hecate_wireguard.settings(pillar, grains)
    cfg = {"name": grains.get("id"), "datacenter": conf["datacenter"]}
    if conf.get("region"):
        cfg["region"] = conf["region"]
    cfg.update(
        {
            "data_dir": conf["data_dir"],
            "bind_addr": conf["bind_addr"],
            "advertise": {"http": wg["address"], "rpc": wg["address"], "serf": wg["address"]},
        }
    )
    server = conf["server"]
    if server.get("enabled"):
        cfg["server"] = {"enabled": True, "bootstrap_expect": server.get("bootstrap_expect", 1)}
        if server.get("memory_oversubscription", True):
            cfg["server"]["default_scheduler_config"] = scheduler_config(memory_oversubscription=True)
    client = conf["client"]
    if client.get("enabled"):
        block = {
            "enabled": True,
            "network_interface": client.get("network_interface") or wg["interface"],
            "options": {"driver.allowlist": ",".join(client.get("driver_allowlist") or ["docker"])},
            "meta": dict(sorted((client.get("meta") or {}).items())),
        }
        if client.get("node_class"):
            block["node_class"] = client["node_class"]
        if client.get("reserved"):
            block["reserved"] = dict(client["reserved"])
        if client.get("host_networks"):
            block["host_network"] = {name: dict(net) for name, net in sorted(client["host_networks"].items())}
        volumes = {}
        for name, vol in sorted((conf.get("host_volumes") or {}).items()):
            volumes[name] = {"path": vol["path"], "read_only": bool(vol.get("read_only", False))}
        if volumes:
            block["host_volume"] = volumes
        cfg["client"] = block
    consul = conf["consul"]
    cblock = {
        "address": consul["address"],
        "auto_advertise": bool(consul.get("auto_advertise", True)),
        "server_auto_join": bool(consul.get("server_auto_join", True)),
        "client_auto_join": bool(consul.get("client_auto_join", True)),
    }
    if consul.get("token") is not None:
        cblock["token"] = consul["token"]
    cfg["consul"] = cblock
    vault = conf["vault"]
    if vault.get("enabled"):
        if not vault.get("address"):
            raise salt.exceptions.SaltInvocationError(
                f"{NOMAD_PATH}:vault:address is not set (nor hecate:connections:vault:url)"
            )
        vblock = {"enabled": True, "address": vault["address"]}
        for key in ("ca_file", "jwt_auth_backend_path"):
            if vault.get(key):
                vblock[key] = vault[key]
        if server.get("enabled") and vault.get("default_identity"):
            vblock["default_identity"] = dict(vault["default_identity"])
        cfg["vault"] = vblock
    if conf.get("telemetry"):
        cfg["telemetry"] = dict(conf["telemetry"])
    docker = conf["docker"]
    dconf = {
        "allow_privileged": bool(docker.get("allow_privileged", False)),
        "volumes": {"enabled": bool(docker.get("volumes_enabled", True))},
    }
    if docker.get("allow_caps") is not None:
        dconf["allow_caps"] = list(docker["allow_caps"])
    cfg["plugin"] = {"docker": {"config": dconf}}
    return _merge(cfg, conf.get("extra") or {})


def scheduler_config(memory_oversubscription):
    """
    ``server.default_scheduler_config``: Nomad's defaults (nomad/config.go DefaultConfig:
    binpack, preemption for system jobs only; the block replaces them whole, so they are
    repeated) with ``memory_oversubscription_enabled``. Nomad applies it only when the
    cluster has no scheduler configuration yet (nomad/leader.go getOrCreateSchedulerConfig):
    on a cluster that already runs, ``nomad operator scheduler set-config
    -memory-oversubscription=true`` does it, and until then Nomad warns that it ignores
    ``memory_max`` (the job states report the warning).
    """
    return {
        "scheduler_algorithm": "binpack",
        "memory_oversubscription_enabled": bool(memory_oversubscription),
        "preemption_config": {
            "system_scheduler_enabled": True,
            "sysbatch_scheduler_enabled": False,
            "batch_scheduler_enabled": False,
            "service_scheduler_enabled": False,
        },
    }


# -- secrets ----------------------------------------------------------------------------------


def resolve_secrets(cfg, resolver, where):
    """
    A copy of ``cfg`` with every Vault reference / ``sdb://`` value resolved through
    ``resolver`` (a :class:`hecate_vault_client.Resolver`) to its string value, and the
    set of key names that held secrets.
    """
    names = set()

    def walk(node, path):
        if isinstance(node, dict) and not hecate_secrets.is_ref(node):
            out = {}
            for key, val in node.items():
                sub = f"{path}:{key}"
                if hecate_secrets.is_ref(val) or (isinstance(val, str) and val.startswith("sdb://")):
                    secret = resolver(val, sub)
                    names.add(key)
                    out[key] = secret.reveal() if secret is not None else None
                else:
                    out[key] = walk(val, sub)
            return out
        if isinstance(node, list):
            return [walk(v, f"{path}:{i}") for i, v in enumerate(node)]
        return node

    return walk(cfg, where), names


def mask(text, names=()):
    """``text`` with the value of every secret-named key replaced by the redaction marker."""
    keys = "|".join(re.escape(k) for k in sorted(SECRET_LINE_KEYS | set(names)))
    pattern = re.compile(rf'^(\s*"?(?:{keys})"?\s*[:=]\s*)"(?:[^"\\]|\\.)*"(,?)\s*$')
    out = []
    for line in (text or "").splitlines(True):
        match = pattern.match(line.rstrip("\n"))
        if match:
            line = f'{match.group(1)}"{hecate_secrets.REDACTED}"{match.group(2)}\n'
        out.append(line)
    return "".join(out)


def masked_diff(old, new, name, names=()):
    """
    ``(diff, secrets_changed)``: a unified diff with secret values masked on both sides,
    and whether any secret value differs (which the masked diff cannot show).
    """
    old_m, new_m = mask(old, names) if old is not None else None, mask(new, names)
    diff = hecate_wireguard.text_diff(old_m, new_m, name)
    old_secret = [l for l, m in zip((old or "").splitlines(), (old_m or "").splitlines()) if l != m]
    new_secret = [l for l, m in zip(new.splitlines(), new_m.splitlines()) if l != m]
    return diff, old is not None and old_secret != new_secret


# -- rendering --------------------------------------------------------------------------------


def render_json(cfg):
    """Consul's JSON config (JSON has no comments: the file name says who manages it)."""
    return json.dumps(cfg, indent=2) + "\n"


_BARE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
MAP_ATTRS = frozenset({"options"})
LABELED = frozenset({"host_volume", "host_network", "plugin"})


def _hcl_key(key):
    return key if _BARE.match(key) else _hcl_str(key)


def _hcl_str(value):
    escaped = (
        str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    )
    return f'"{escaped}"'


def _hcl_value(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_hcl_value(v) for v in value) + "]"
    if value is None:
        raise salt.exceptions.SaltInvocationError("null values cannot be rendered to HCL")
    return _hcl_str(value)


def _hcl_body(node, indent):
    pad = "  " * indent
    lines = []
    scalars = [(k, v) for k, v in node.items() if not isinstance(v, dict)]
    width = max((len(_hcl_key(k)) for k, _ in scalars), default=0)
    for key, val in node.items():
        if val is None:
            continue
        if isinstance(val, dict) and key in MAP_ATTRS:
            inner = max((len(_hcl_str(k)) for k in val), default=0)
            lines.append(f"{pad}{key} = {{")
            for k, v in val.items():
                lines.append(f"{pad}  {_hcl_str(k).ljust(inner)} = {_hcl_value(v)}")
            lines.append(f"{pad}}}")
        elif isinstance(val, dict) and key in LABELED:
            for label, body in val.items():
                lines.append(f"{pad}{key} {_hcl_str(label)} {{")
                lines.extend(_hcl_body(body, indent + 1))
                lines.append(f"{pad}}}")
        elif isinstance(val, dict):
            lines.append(f"{pad}{_hcl_key(key)} {{")
            lines.extend(_hcl_body(val, indent + 1))
            lines.append(f"{pad}}}")
        else:
            lines.append(f"{pad}{_hcl_key(key).ljust(width)} = {_hcl_value(val)}")
    return lines


def render_hcl(cfg, header=None):
    """Deterministic HCL for a Nomad agent config dict (blocks, labeled blocks, maps)."""
    lines = [f"# {line}" for line in (header or "").splitlines()]
    top = [(k, v) for k, v in cfg.items() if not isinstance(v, dict)]
    blocks = [(k, v) for k, v in cfg.items() if isinstance(v, dict)]
    lines.extend(_hcl_body(dict(top), 0))
    for key, val in blocks:
        lines.append("")
        lines.extend(_hcl_body({key: val}, 0))
    return "\n".join(lines) + "\n"
