"""
Consul and Nomad *agent* configuration for hecate's two roles, built from pillar.

- Consul (pillar ``hecate:consul:agent``): a server on every edge (``bootstrap_expect``,
  UI; ``nodes:<id>:server: false`` makes an edge a client), a client on each local node;
  every agent joins the servers' tunnel addresses (``retry_join``). Gossip runs over
  WireGuard: ``bind_addr`` and ``advertise_addr`` are the node's tunnel address. Gossip key
  and ACL agent token are Vault references resolved on the minion when the file is written.
- Nomad (pillar ``bionicgpt:nomad:agent``, on an edge ``hecate:nomad:agent``; each with
  per-minion ``nodes:<id>`` merged over it): server + client on the local node by default
  (servers find each other, clients the servers, through Consul), client
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

import json
import re

import salt.exceptions

import hecate_agents_schema
import hecate_config
import hecate_files
import hecate_secrets
import hecate_wireguard_schema

# key names whose values are masked in diffs (plus every key that held a Vault reference)
SECRET_LINE_KEYS = frozenset({"encrypt", "agent", "default", "initial_management", "replication", "token"})


def consul_config(pillar, grains, edges=None):
    """
    The Consul agent config (a dict, Vault references unresolved) for this minion's role.

    ``edges``: ``{minion id: tunnel address}`` of the environment's edges
    (:func:`hecate_wireguard_config.member_addresses`); every edge runs a server unless
    ``hecate:consul:agent:nodes:<id>:server`` is false. A server joins the other servers, a
    client all of them (``retry_join``, over the tunnel). Without ``edges``: the one edge at
    ``bionicgpt:wireguard:cloud:address``.
    """
    conf = hecate_agents_schema.consul_settings(pillar)
    wg = hecate_wireguard_schema.settings(pillar, grains)
    server = hecate_agents_schema.consul_server(conf, grains.get("id"), wg["role"] == "cloud")
    if edges:
        servers = sorted(addr for mid, addr in edges.items()
                         if hecate_agents_schema.consul_server(conf, mid, True) and mid != grains.get("id"))
    else:
        servers = [] if server else [wg["cloud"]["address"]]
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
    if servers:
        serf_lan = (conf.get("ports") or {}).get("serf_lan")
        cfg["retry_join"] = [_join_address(addr, serf_lan) for addr in dict.fromkeys(servers)]
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
    return hecate_config.deep_merge(cfg, conf.get("extra") or {})


def _join_address(address, serf_lan):
    if not serf_lan or serf_lan == 8301:
        return address
    return f"[{address}]:{serf_lan}" if ":" in address else f"{address}:{serf_lan}"


def nomad_config(pillar, grains):
    """The Nomad agent config (a dict, Vault references unresolved): server + client."""
    conf = hecate_agents_schema.nomad_settings(pillar, grains)
    wg = hecate_wireguard_schema.settings(pillar, grains)
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
                f"{hecate_agents_schema.NOMAD_PATH}:vault:address is not set (nor hecate:connections:vault:url)"
            )
        vblock = {"enabled": True, "address": vault["address"]}
        for key in ("ca_file", "jwt_auth_backend_path"):
            if vault.get(key):
                vblock[key] = vault[key]
        if server.get("enabled") and vault.get("default_identity"):
            vblock["default_identity"] = dict(vault["default_identity"])
        cfg["vault"] = vblock
    acl = conf["acl"]
    if acl.get("enabled"):
        cfg["acl"] = {"enabled": True}
        cfg["acl"].update({k: acl[k] for k in ("token_ttl", "policy_ttl", "role_ttl") if acl.get(k)})
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
    return hecate_config.deep_merge(cfg, conf.get("extra") or {})


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
    diff = hecate_files.unified_diff(old_m, new_m, name)
    old_secret = [line for line, m in zip((old or "").splitlines(), (old_m or "").splitlines()) if line != m]
    new_secret = [line for line, m in zip(new.splitlines(), new_m.splitlines()) if line != m]
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
