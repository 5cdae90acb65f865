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


def check_pillar(pillar, env=None):  # pylint: disable=unused-argument
    """Secrets must be references; Nomad needs the two host volumes the jobs mount."""
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


def nomad_settings(pillar):
    conf = hecate_config.traverse(pillar, NOMAD_PATH)
    if conf is None:
        raise salt.exceptions.SaltInvocationError(f"{NOMAD_PATH} is not set in this minion's pillar")
    merged = hecate_config.deep_merge(NOMAD_DEFAULTS, hecate_config.plain(conf))
    if merged["vault"].get("address") is None:
        merged["vault"]["address"] = hecate_config.traverse(pillar, "hecate:connections:vault:url")
    return merged
