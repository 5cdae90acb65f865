"""
The wg-quick configuration of a minion: its peers (from the mine's public keys and the
addresses pillar gives them: :func:`peers_from_mine`), the rendered ``<interface>.conf``
(:func:`render_config`) and the parsers for a config file.

The rendered file holds no secret: it loads the key with
``PostUp = wg set %i private-key <key file>`` (wg-quick).
"""

import ipaddress

import hecate_members
import hecate_wireguard_keys
import hecate_wireguard_schema

WG_QUICK_ONLY = ("address", "dns", "mtu", "table", "preup", "postup", "predown", "postdown", "saveconfig")


# -- peers and config --------------------------------------------------------------------------


def peers_from_mine(conf, mine_data):
    """
    The peers of this minion: the members of its environment that published a public key
    (``mine_data``: ``{minion_id: public_key}``, from :func:`peer_target`; an id pillar
    ``hecate:members`` does not list is dropped here too), with the addresses and endpoints
    pillar gives them (never what they claim), plus ``extra_peers``.

    The mesh (why: docs/systems/wireguard-agents.md, *Several edges and nodes*): an edge
    peers with every other member; a local node with every edge, and with another local
    node when one of the two has an endpoint (``nodes:<id>:endpoint``) - without one on
    either side, both behind NAT, no tunnel could come up between them. A minion dials a
    peer (``Endpoint``) when the peer has an endpoint and is an edge, or when both are local
    nodes; edges never dial a local node. A local node keeps NAT open towards every peer
    it dials (``PersistentKeepalive``).

    Returns ``(peers, problems)``; peers are sorted by name, each ``{name, role,
    public_key, allowed_ips, endpoint, persistent_keepalive, address}`` (``role``
    ``cloud``/``local``; None for an extra peer).
    """
    own_side = conf["role"]
    own_endpoint, _ = hecate_wireguard_schema.endpoint_of(conf, conf.get("id"), own_side)
    peers, problems = [], []
    keepalive = conf.get("persistent_keepalive") or None
    used = {conf["address"]: f"this minion ({conf['id']})"}
    dialled = {own_endpoint: f"this minion ({conf['id']})"} if own_side == "cloud" and own_endpoint else {}
    for mid in sorted(mine_data or {}):
        pub = mine_data[mid]
        side = hecate_wireguard_schema.member_side(mid, conf)
        if mid == conf.get("id") or side is None or not pub:
            continue
        if not isinstance(pub, str) or not hecate_wireguard_keys.valid_key(pub):
            problems.append(f"minion {mid} published something that is not a WireGuard public key")
            continue
        endpoint, endpoint_key = hecate_wireguard_schema.endpoint_of(conf, mid, side)
        if own_side == "local" and side == "local" and not (endpoint or own_endpoint):
            continue  # two local nodes behind NAT: neither can dial the other
        address, where = hecate_wireguard_schema.tunnel_address(conf, mid, side)
        if address in used:
            problems.append(
                f"minion {mid} would get tunnel address {address} ({where}), already used by "
                f"{used[address]}; give each node its own under "
                f"{hecate_wireguard_schema.PILLAR_PATH}:nodes:<minion id>:address"
            )
            continue
        used[address] = f"minion {mid}"
        dial = endpoint if (side == "cloud" or own_side == "local") else None
        if dial and side == "cloud" and dial in dialled:
            problems.append(
                f"edge {mid} would get endpoint {dial} ({endpoint_key}), already the endpoint of "
                f"{dialled[dial]}; give each edge its own under "
                f"{hecate_wireguard_schema.PILLAR_PATH}:nodes:<minion id>:endpoint"
            )
            continue
        if dial and side == "cloud":
            dialled[dial] = f"edge {mid}"
        peers.append({
            "name": mid,
            "role": side,
            "public_key": pub,
            "address": address,
            "allowed_ips": [f"{address}/{ipaddress.ip_address(address).max_prefixlen}"],
            "endpoint": dial,
            # a local node is behind NAT: it keeps the mapping open towards whom it dials
            "persistent_keepalive": keepalive if dial and own_side == "local" else None,
        })
    for extra in conf.get("extra_peers") or []:
        peers.append(
            {
                "name": extra["name"],
                "role": None,
                "public_key": extra["public_key"],
                "address": None,
                "allowed_ips": list(extra["allowed_ips"]),
                "endpoint": extra.get("endpoint"),
                "persistent_keepalive": extra.get("persistent_keepalive"),
            }
        )
    seen = {}
    for peer in peers:
        if peer["public_key"] in seen:
            problems.append(f"peers {seen[peer['public_key']]} and {peer['name']} have the same public key")
        seen[peer["public_key"]] = peer["name"]
    return peers, problems


def member_addresses(conf, side, mine_ids=()):
    """
    ``{minion id: tunnel address}`` of the members of one side (``cloud``: the edges,
    ``local``: the local nodes), this minion included: the ids pillar ``hecate:members``
    lists by name (no glob), and the ids from the mine (``mine_ids``) its patterns match.
    Listed ids count without the mine, so a configuration that joins them (Consul's
    ``retry_join``) does not depend on which keys the mine has yet.
    """
    grain = {v: k for k, v in hecate_wireguard_schema.ROLES.items()}[side]
    patterns = hecate_wireguard_schema.peer_patterns(conf, grain)
    ids = {p for p in patterns if not hecate_members.is_glob(p)}
    ids.update(mid for mid in mine_ids or () if hecate_members.matches(mid, patterns))
    if conf.get("id") and hecate_wireguard_schema.member_side(conf["id"], conf) == side:
        ids.add(conf["id"])
    out = {}
    for mid in sorted(ids):
        if hecate_wireguard_schema.member_side(mid, conf) != side:
            continue  # listed for both roles: an edge
        address, _ = hecate_wireguard_schema.tunnel_address(conf, mid, side)
        if address:
            out[mid] = str(address)
    return out


def render_config(conf, peers):
    """The wg-quick config for this minion. It holds no secret (the key is loaded by PostUp)."""
    lines = [
        "# Managed by Salt (hecate): pillar bionicgpt:wireguard and the peers' public keys",
        "# from the Salt mine. Local edits are overwritten. The private key is only in",
        f"# {conf['key_file']}.",
        "[Interface]",
        f"Address = {conf['cidr']}",
        f"ListenPort = {conf['listen_port']}",
    ]
    if conf.get("mtu"):
        lines.append(f"MTU = {conf['mtu']}")
    lines.append(f"PostUp = wg set %i private-key {conf['key_file']}")
    for peer in peers:
        lines += ["", f"# {peer['name']}", "[Peer]", f"PublicKey = {peer['public_key']}"]
        lines.append(f"AllowedIPs = {', '.join(peer['allowed_ips'])}")
        if peer.get("endpoint"):
            lines.append(f"Endpoint = {peer['endpoint']}")
        if peer.get("persistent_keepalive"):
            lines.append(f"PersistentKeepalive = {peer['persistent_keepalive']}")
    return "\n".join(lines) + "\n"


def strip_config(text):
    """The ``wg`` (not wg-quick) part of a config, like ``wg-quick strip``."""
    out = []
    for line in text.splitlines():
        bare = line.split("#", 1)[0].strip()
        key = bare.split("=", 1)[0].strip().lower() if "=" in bare else None
        if key in WG_QUICK_ONLY:
            continue
        if bare:
            out.append(bare)
    return "\n".join(out) + "\n"


def parse_config(text):
    """``(interface: {key: value}, peers: {public_key: {key: value}})`` of a wg config."""
    interface, peers, current = {}, {}, None
    for line in text.splitlines():
        bare = line.split("#", 1)[0].strip()
        if not bare:
            continue
        if bare.lower() == "[interface]":
            current = interface
            continue
        if bare.lower() == "[peer]":
            current = {}
            peers[id(current)] = current
            continue
        if "=" in bare and current is not None:
            key, _, val = bare.partition("=")
            current[key.strip().lower()] = val.strip()
    return interface, {p.get("publickey"): p for p in peers.values()}
