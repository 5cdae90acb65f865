"""
The WireGuard tunnel's pillar, ``bionicgpt:wireguard``: its schema, the checks a schema
cannot express (addresses inside the network, no duplicates), and a minion's effective
settings (:func:`settings`: role, tunnel address, key and config paths) and peers' target.

The members of an environment form a mesh (:func:`hecate_wireguard_config.peers_from_mine`):
every edge (``roles: [hecate-edge]``, the ``cloud`` side) peers with every other edge and
every local node (``roles: [bionicgpt-node]``, the ``local`` side), and two local nodes peer
when one of them has an endpoint the other can dial. Pillar ``bionicgpt:wireguard`` holds
the addressing; every node makes its own key pair (``hecate_wireguard_keys``) and publishes
only the public key through the Salt mine (alias :data:`MINE_KEY`), so the others learn it
without anybody copying keys around.

Peers are members only: minions that have a role grain *and* are listed for that role in
pillar ``hecate:members`` (:mod:`hecate_members`), never a minion that only claims the role
by its grains; each takes the tunnel address (and endpoint) pillar gives its id, never one
that depends on which other minions exist.
"""

import ipaddress
import os
import re

import salt.exceptions

import hecate_config
import hecate_members
import hecate_wireguard_keys

PILLAR_PATH = "bionicgpt:wireguard"
MINE_KEY = "wireguard_public_key"
ROLES = {"hecate-edge": "cloud", "bionicgpt-node": "local"}
IFNAME = r"^[A-Za-z0-9_=+.-]{1,15}$"  # wg-quick's interface name rule
ENDPOINT = re.compile(r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[A-Za-z0-9.-]+)):(?P<port>\d{1,5})$")

DEFAULTS = {
    "interface": "wg0",
    "listen_port": 51820,
    "network": None,
    "mtu": None,
    "persistent_keepalive": 25,
    "config_dir": "/etc/wireguard",
    "netns": None,
    "install": True,
    "service": True,
    "cloud": {},
    "local": {},
    "nodes": {},
    "extra_peers": [],
    "verify": {"enabled": True, "within": 180, "timeout": 60, "ping": True},
}

_PORT = {"type": "integer", "minimum": 1, "maximum": 65535}
_ENDPOINT_TEXT = "Public host:port (or [ipv6]:port) where the other side reaches it."
_PEER = {
    "type": "object",
    "required": ["name", "public_key", "allowed_ips"],
    "additionalProperties": False,
    "description": "A static peer hecate does not manage (an operator's laptop, another site).",
    "properties": {
        "name": {"type": "string", "minLength": 1, "description": "A name for the peer (a comment in the config)."},
        "public_key": {"type": "string", "description": "The peer's WireGuard public key (base64 of 32 bytes)."},
        "allowed_ips": {"type": "array", "items": {"type": "string"}, "minItems": 1,
                        "examples": [["10.88.0.10/32"]],
                        "description": "Networks routed to the peer and accepted from it (CIDR)."},
        "endpoint": {"type": ["string", "null"], "default": None,
                     "description": "The peer's host:port; null when the peer connects first."},
        "persistent_keepalive": {"type": ["integer", "null"], "minimum": 0, "maximum": 65535, "default": None,
                                 "description": "Seconds between keepalives to the peer; null or 0 sends none."},
    },
}
PILLAR_SCHEMA = {
    PILLAR_PATH: {
        "type": "object",
        "required": ["network", "cloud", "local"],
        "additionalProperties": False,
        "description": (
            "The WireGuard mesh of an environment's members: every edge (roles:hecate-edge) peers "
            "with every other member, two local nodes (roles:bionicgpt-node) when one of them has "
            "an endpoint. Every node makes its own key; public keys travel through the Salt mine."
        ),
        "properties": {
            "interface": {"type": "string", "pattern": IFNAME, "default": DEFAULTS["interface"],
                          "description": "Interface name; wg-quick reads <config_dir>/<interface>.conf."},
            "listen_port": dict(_PORT, default=DEFAULTS["listen_port"],
                                description="UDP port the interface listens on (the hub's must be reachable)."),
            "network": {"type": "string", "examples": ["10.88.0.0/24"],
                        "description": "The tunnel network (CIDR); every tunnel address must lie inside it."},
            "mtu": {"type": ["integer", "null"], "minimum": 1280, "maximum": 9000, "default": None,
                    "description": "Interface MTU; null lets wg-quick choose."},
            "persistent_keepalive": {"type": "integer", "minimum": 0, "maximum": 65535,
                                     "default": DEFAULTS["persistent_keepalive"],
                                     "description": "Seconds between keepalives a local node sends to each "
                                                    "peer it dials (keeps NAT open); 0 sends none."},
            "config_dir": {"type": "string", "pattern": "^/", "default": DEFAULTS["config_dir"],
                           "description": "Directory of the config file and the private key (0700)."},
            "netns": {"type": ["string", "null"], "pattern": r"^[A-Za-z0-9_.-]{1,64}$", "default": None,
                      "description": "Network namespace the interface lives in; null: the host's."},
            "install": {"type": "boolean", "default": DEFAULTS["install"],
                        "description": "Install wireguard-tools with the package manager."},
            "service": {"type": "boolean", "default": DEFAULTS["service"],
                        "description": "Enable and start wg-quick@<interface> (never restarted for a peer change)."},
            "cloud": {
                "type": "object",
                "required": ["address", "endpoint"],
                "additionalProperties": False,
                "description": "An edge's side: the tunnel address and public endpoint of the edge not "
                               "listed under nodes (with several edges, give each its own there).",
                "properties": {
                    "address": {"type": "string", "examples": ["10.88.0.1"],
                                "description": "Tunnel address of an edge not listed under nodes "
                                               "(only one member may use it)."},
                    "endpoint": {"type": "string", "examples": ["cloud.example.com:51820"],
                                 "description": _ENDPOINT_TEXT},
                },
            },
            "local": {
                "type": "object",
                "required": ["address"],
                "additionalProperties": False,
                "description": "The local node's side.",
                "properties": {
                    "address": {"type": "string", "examples": ["10.88.0.2"],
                                "description": "Tunnel address of a local node not listed under nodes "
                                               "(only one member may use it)."},
                },
            },
            "nodes": {
                "type": "object",
                "default": {},
                "description": "Per-minion tunnel settings, keyed by minion id: needed for a second "
                               "member of a role (only one edge may take cloud:address and "
                               "cloud:endpoint, only one local node local:address).",
                "additionalProperties": {
                    "type": "object",
                    "required": ["address"],
                    "additionalProperties": False,
                    "description": "One minion's own tunnel settings.",
                    "properties": {
                        "address": {"type": "string", "description": "The minion's tunnel address."},
                        "endpoint": {"type": "string",
                                     "description": "For an edge: the public host:port the other members "
                                                    "dial, instead of cloud:endpoint. For a local node: the "
                                                    "host:port other local nodes dial (e.g. its LAN "
                                                    "address); without one on either side two local nodes "
                                                    "have no tunnel between them. Edges never dial a local "
                                                    "node (it is behind NAT)."},
                    },
                },
            },
            "extra_peers": {"type": "array", "items": _PEER, "default": [],
                            "description": "Static peers added to every node's configuration."},
            "verify": {
                "type": "object",
                "additionalProperties": False,
                "description": "What wireguard.verify checks after the tunnel is configured.",
                "properties": {
                    "enabled": {"type": "boolean", "default": DEFAULTS["verify"]["enabled"],
                                "description": "false skips the check (the lab has no real tunnel)."},
                    "within": {"type": "integer", "minimum": 1, "default": DEFAULTS["verify"]["within"],
                               "description": "Seconds within which every peer must have completed a handshake."},
                    "timeout": {"type": "integer", "minimum": 0, "default": DEFAULTS["verify"]["timeout"],
                                "description": "Seconds to wait for the handshakes and the ping."},
                    "ping": {"type": "boolean", "default": DEFAULTS["verify"]["ping"],
                             "description": "Also ping each peer's tunnel address."},
                },
            },
        },
    }
}


# -- pillar checks ---------------------------------------------------------------------------


def check_pillar(pillar, env=None):  # pylint: disable=unused-argument
    """Semantic checks of ``bionicgpt:wireguard``: addresses inside the network, no duplicates."""
    conf = hecate_config.traverse(pillar, PILLAR_PATH)
    if not isinstance(conf, dict):
        return []
    errors = []
    base = PILLAR_PATH
    try:
        net = ipaddress.ip_network(str(conf.get("network")), strict=True)
    except ValueError as exc:
        return [(f"{base}:network", f"not a network in CIDR form ({exc})")]
    seen = {}

    def address(path, value):
        try:
            addr = ipaddress.ip_address(str(value))
        except ValueError:
            errors.append((path, f"{value!r} is not an IP address"))
            return
        if addr not in net:
            errors.append((path, f"{addr} is outside the tunnel network {net}"))
        elif net.num_addresses > 2 and addr in (net.network_address, net.broadcast_address):
            errors.append((path, f"{addr} is the network or broadcast address of {net}"))
        if addr in seen:
            errors.append((path, f"{addr} is already used by {seen[addr]}"))
        else:
            seen[addr] = path

    for role in ("cloud", "local"):
        if isinstance(conf.get(role), dict) and "address" in conf[role]:
            address(f"{base}:{role}:address", conf[role]["address"])
    for mid, node in sorted((conf.get("nodes") or {}).items()):
        if isinstance(node, dict) and "address" in node:
            address(f"{base}:nodes:{mid}:address", node["address"])
        if isinstance(node, dict) and node.get("endpoint") and not ENDPOINT.match(node["endpoint"]):
            errors.append((f"{base}:nodes:{mid}:endpoint", "expected host:port or [ipv6]:port"))
    endpoint = (conf.get("cloud") or {}).get("endpoint")
    if endpoint is not None and not _endpoint_ok(endpoint):
        errors.append((f"{base}:cloud:endpoint", f"{endpoint!r}: expected host:port or [ipv6]:port"))
    for idx, peer in enumerate(conf.get("extra_peers") or []):
        where = f"{base}:extra_peers:{idx}"
        if not isinstance(peer, dict):
            continue
        if "public_key" in peer and not hecate_wireguard_keys.valid_key(peer["public_key"]):
            errors.append((f"{where}:public_key", "not a WireGuard public key (base64 of 32 bytes)"))
        for jdx, cidr in enumerate(peer.get("allowed_ips") or []):
            try:
                ipaddress.ip_network(str(cidr), strict=False)
            except ValueError:
                errors.append((f"{where}:allowed_ips:{jdx}", f"{cidr!r} is not an IP network"))
        if peer.get("endpoint") and not _endpoint_ok(peer["endpoint"]):
            errors.append((f"{where}:endpoint", "expected host:port or [ipv6]:port"))
    return errors


def _endpoint_ok(value):
    match = ENDPOINT.match(str(value))
    return bool(match) and 0 < int(match.group("port")) < 65536


# -- settings ----------------------------------------------------------------------------------


def role_of(grains):
    """``cloud``/``local`` from the ``roles`` grain (cloud wins if a minion has both)."""
    roles = grains.get("roles") or []
    if isinstance(roles, str):
        roles = [roles]
    if "hecate-edge" in roles:
        return "cloud"
    if "bionicgpt-node" in roles:
        return "local"
    return None


def settings(pillar, grains, overrides=None):
    """
    This minion's effective WireGuard settings: pillar ``bionicgpt:wireguard`` over the
    defaults, plus its role, tunnel address (``address``, ``cidr``), key and config paths.
    Raises ``SaltInvocationError`` naming the pillar key when something is missing.
    """
    conf = hecate_config.traverse(pillar, PILLAR_PATH)
    if not conf:
        raise salt.exceptions.SaltInvocationError(
            f"{PILLAR_PATH} is not set in this minion's pillar (tunnel addressing)"
        )
    merged = hecate_config.deep_merge(DEFAULTS, hecate_config.plain(conf))
    merged = hecate_config.deep_merge(merged, {k: v for k, v in (overrides or {}).items() if v is not None})
    problems = check_pillar({"bionicgpt": {"wireguard": merged}})
    if problems:
        raise salt.exceptions.SaltInvocationError("; ".join(f"{p}: {m}" for p, m in problems))
    if not re.match(IFNAME, str(merged["interface"])):
        raise salt.exceptions.SaltInvocationError(
            f"{PILLAR_PATH}:interface: {merged['interface']!r} is not a valid interface name"
        )
    role = role_of(grains)
    if role is None:
        raise salt.exceptions.SaltInvocationError(
            "this minion has neither roles:hecate-edge nor roles:bionicgpt-node; "
            "it has no place in the tunnel"
        )
    mid = grains.get("id")
    net = ipaddress.ip_network(merged["network"])
    node = (merged.get("nodes") or {}).get(mid) or {}
    addr_key = f"{PILLAR_PATH}:nodes:{mid}:address" if "address" in node else f"{PILLAR_PATH}:{role}:address"
    address = node.get("address") or (merged.get(role) or {}).get("address")
    if not address:
        raise salt.exceptions.SaltInvocationError(f"{addr_key}: required key is missing")
    merged.update(
        {
            "id": mid,
            "role": role,
            "env": grains.get("hecate_env"),
            "members": hecate_members.members(pillar),
            "address": str(ipaddress.ip_address(address)),
            "address_key": addr_key,
            "cidr": f"{ipaddress.ip_address(address)}/{net.prefixlen}",
            "key_file": os.path.join(merged["config_dir"], f"{merged['interface']}.key"),
            "config_file": os.path.join(merged["config_dir"], f"{merged['interface']}.conf"),
        }
    )
    return merged


def peer_target(conf, role=None):
    """
    Compound target of the members this minion may peer with: the role and environment
    grains and the ids pillar ``hecate:members`` lists - of every role (the mesh), or of
    ``role`` (``hecate-edge``, ``bionicgpt-node``).
    """
    return hecate_members.target(conf.get("env"), conf.get("members") or {}, role)


def peer_patterns(conf, role=None):
    """The ids/globs pillar ``hecate:members`` lists (for every role, or for ``role``)."""
    members = conf.get("members") or {}
    roles = [role] if role else list(ROLES)
    return [pat for grain in roles for pat in members.get(grain) or []]


def member_side(minion_id, conf):
    """
    ``cloud``/``local``: the side of the tunnel ``minion_id`` is a member of (by pillar
    ``hecate:members``; an id listed for both roles is an edge, as :func:`role_of`), or None.
    """
    members = conf.get("members") or {}
    for grain, side in ROLES.items():
        if hecate_members.matches(minion_id, members.get(grain)):
            return side
    return None


def tunnel_address(conf, minion_id, side):
    """
    ``(address, pillar key)`` of a member: ``nodes:<id>:address``, else its side's address
    (``cloud:address``/``local:address``, which only one member of the side may take).
    """
    node = (conf.get("nodes") or {}).get(minion_id) or {}
    if node.get("address"):
        return node["address"], f"{PILLAR_PATH}:nodes:{minion_id}:address"
    return (conf.get(side) or {}).get("address"), f"{PILLAR_PATH}:{side}:address"


def endpoint_of(conf, minion_id, side):
    """
    ``(endpoint or None, pillar key)`` others dial to reach a member: ``nodes:<id>:endpoint``,
    else for an edge ``cloud:endpoint`` (which only one edge may take); a local node has none
    unless pillar gives it one.
    """
    node = (conf.get("nodes") or {}).get(minion_id) or {}
    if node.get("endpoint"):
        return node["endpoint"], f"{PILLAR_PATH}:nodes:{minion_id}:endpoint"
    if side == "cloud":
        return (conf.get("cloud") or {}).get("endpoint"), f"{PILLAR_PATH}:cloud:endpoint"
    return None, None
