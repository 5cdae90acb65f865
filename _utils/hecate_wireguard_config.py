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
    The peers of this minion: every member at the other end of the tunnel that has
    published a public key (``mine_data``: ``{minion_id: public_key}``, from
    :func:`peer_target`; an id pillar ``hecate:members`` does not list is dropped here too),
    with the addresses pillar gives them (never the addresses they claim), plus
    ``extra_peers``.

    Returns ``(peers, problems)``; peers are sorted by name, each
    ``{name, public_key, allowed_ips, endpoint, persistent_keepalive, address}``.
    """
    peer_role, _ = hecate_wireguard_schema.PEER_ROLE[conf["role"]]
    nodes = conf.get("nodes") or {}
    peers, problems, used = [], [], {conf["address"]: f"this minion ({conf['id']})"}
    listed = hecate_wireguard_schema.peer_patterns(conf)
    for mid in sorted(mine_data or {}):
        pub = mine_data[mid]
        if mid == conf.get("id") or not hecate_members.matches(mid, listed):
            continue
        if not pub:
            continue
        if not isinstance(pub, str) or not hecate_wireguard_keys.valid_key(pub):
            problems.append(f"minion {mid} published something that is not a WireGuard public key")
            continue
        node = nodes.get(mid) or {}
        address = node.get("address") or (conf.get(peer_role) or {}).get("address")
        where = (
            f"{hecate_wireguard_schema.PILLAR_PATH}:nodes:{mid}:address"
            if "address" in node
            else f"{hecate_wireguard_schema.PILLAR_PATH}:{peer_role}:address"
        )
        if address in used:
            problems.append(
                f"minion {mid} would get tunnel address {address} ({where}), already used by "
                f"{used[address]}; give each node its own under "
                f"{hecate_wireguard_schema.PILLAR_PATH}:nodes:<minion id>:address"
            )
            continue
        used[address] = f"minion {mid}"
        peer = {
            "name": mid,
            "public_key": pub,
            "address": address,
            "allowed_ips": [f"{address}/{ipaddress.ip_address(address).max_prefixlen}"],
            "endpoint": None,
            "persistent_keepalive": None,
        }
        if conf["role"] == "local":  # the hub has the public endpoint; we are behind NAT
            peer["endpoint"] = node.get("endpoint") or conf["cloud"]["endpoint"]
            peer["persistent_keepalive"] = conf.get("persistent_keepalive") or None
        peers.append(peer)
    for extra in conf.get("extra_peers") or []:
        peers.append(
            {
                "name": extra["name"],
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
