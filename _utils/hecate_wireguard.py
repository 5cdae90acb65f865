"""
WireGuard for hecate: keys, addressing, peers, config rendering, live sync and checks.

The cloud node (``roles: [hecate-edge]``) is the hub, each local node
(``roles: [bionicgpt-node]``) a peer of it. Pillar ``bionicgpt:wireguard`` holds the
addressing; every node makes its own key pair and publishes only the public key through
the Salt mine (alias :data:`MINE_KEY`), so the other side learns it without anybody
copying keys around.

Peers are members only: the minions at the other end that have the role grain *and* are
listed for the role in pillar ``hecate:members`` (:mod:`hecate_members`), never a minion
that only claims the role by its grains; each takes the tunnel address pillar gives its
id, never one that depends on which other minions exist.

Secrets: the private key exists in one place, ``<config_dir>/<interface>.key`` (mode
0600). The rendered ``<interface>.conf`` holds no secret: it loads the key with
``PostUp = wg set %i private-key <key file>`` (wg-quick), and the live sync hands the
key to ``wg syncconf`` through stdin. Nothing here returns, logs or puts the private key in an
exception; ``wg show <if> dump`` output (whose first line carries it) is parsed and the
key dropped at once, and command output is never logged.

Peers change without dropping the tunnel: a live interface is updated with
``wg syncconf`` (only the differences are applied; sessions of unchanged peers stay up),
never with a down/up.
"""

import base64
import binascii
import difflib
import grp
import ipaddress
import os
import pwd
import re
import subprocess
import tempfile
import time

import salt.exceptions

import hecate_members

try:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import x25519

    HAS_CRYPTOGRAPHY = True
except ImportError:  # pragma: no cover - reported by __virtual__
    HAS_CRYPTOGRAPHY = False

PILLAR_PATH = "bionicgpt:wireguard"
MINE_KEY = "wireguard_public_key"
ROLES = {"hecate-edge": "cloud", "bionicgpt-node": "local"}
# the role that is the other end of the tunnel, and its grain
PEER_ROLE = {"cloud": ("local", "bionicgpt-node"), "local": ("cloud", "hecate-edge")}
IFNAME = r"^[A-Za-z0-9_=+.-]{1,15}$"  # wg-quick's interface name rule
ENDPOINT = re.compile(r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[A-Za-z0-9.-]+)):(?P<port>\d{1,5})$")
WG_QUICK_ONLY = ("address", "dns", "mtu", "table", "preup", "postup", "predown", "postdown", "saveconfig")

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
_PEER = {
    "type": "object",
    "required": ["name", "public_key", "allowed_ips"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "public_key": {"type": "string"},
        "allowed_ips": {"type": "array", "items": {"type": "string"}, "minItems": 1},
        "endpoint": {"type": ["string", "null"]},
        "persistent_keepalive": {"type": ["integer", "null"], "minimum": 0, "maximum": 65535},
    },
}
PILLAR_SCHEMA = {
    PILLAR_PATH: {
        "type": "object",
        "required": ["network", "cloud", "local"],
        "additionalProperties": False,
        "properties": {
            "interface": {"type": "string", "pattern": IFNAME},
            "listen_port": _PORT,
            "network": {"type": "string"},
            "mtu": {"type": ["integer", "null"], "minimum": 1280, "maximum": 9000},
            "persistent_keepalive": {"type": "integer", "minimum": 0, "maximum": 65535},
            "config_dir": {"type": "string", "pattern": "^/"},
            "netns": {"type": ["string", "null"], "pattern": r"^[A-Za-z0-9_.-]{1,64}$"},
            "install": {"type": "boolean"},
            "service": {"type": "boolean"},
            "cloud": {
                "type": "object",
                "required": ["address", "endpoint"],
                "additionalProperties": False,
                "properties": {"address": {"type": "string"}, "endpoint": {"type": "string"}},
            },
            "local": {
                "type": "object",
                "required": ["address"],
                "additionalProperties": False,
                "properties": {"address": {"type": "string"}},
            },
            "nodes": {
                "type": "object",
                "additionalProperties": {
                    "type": "object",
                    "required": ["address"],
                    "additionalProperties": False,
                    "properties": {
                        "address": {"type": "string"},
                        "endpoint": {"type": "string"},
                    },
                },
            },
            "extra_peers": {"type": "array", "items": _PEER},
            "verify": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "enabled": {"type": "boolean"},
                    "within": {"type": "integer", "minimum": 1},
                    "timeout": {"type": "integer", "minimum": 0},
                    "ping": {"type": "boolean"},
                },
            },
        },
    }
}


def _err(msg):
    return salt.exceptions.CommandExecutionError(msg)


def _traverse(data, path):
    cur = data
    for part in path.split(":"):
        try:
            cur = cur[part]
        except (KeyError, TypeError, IndexError):
            return None
    return cur


def _plain(node):
    """A deep copy as plain dicts/lists (``__pillar__`` values may be loader proxies)."""
    if hasattr(node, "items"):
        return {k: _plain(v) for k, v in node.items()}
    if isinstance(node, (list, tuple)):
        return [_plain(v) for v in node]
    return node


# -- pillar checks ---------------------------------------------------------------------------


def check_pillar(pillar, env=None):  # pylint: disable=unused-argument
    """Semantic checks of ``bionicgpt:wireguard``: addresses inside the network, no duplicates."""
    conf = _traverse(pillar, PILLAR_PATH)
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
        if "public_key" in peer and not valid_key(peer["public_key"]):
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
    conf = _traverse(pillar, PILLAR_PATH)
    if not conf:
        raise salt.exceptions.SaltInvocationError(
            f"{PILLAR_PATH} is not set in this minion's pillar (tunnel addressing)"
        )
    merged = _merge(DEFAULTS, _plain(conf))
    merged = _merge(merged, {k: v for k, v in (overrides or {}).items() if v is not None})
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


def _merge(base, override):
    out = dict(base)
    for key, val in (override or {}).items():
        if isinstance(val, dict) and isinstance(out.get(key), dict) and key != "nodes":
            out[key] = _merge(out[key], val)
        else:
            out[key] = val
    return out


def peer_target(conf):
    """
    Compound target of the members at the other end of this minion's tunnel: the role and
    environment grains and the ids pillar ``hecate:members`` lists for that role.
    """
    _, grain = PEER_ROLE[conf["role"]]
    return hecate_members.target(conf.get("env"), conf.get("members") or {}, grain)


def peer_patterns(conf):
    """The ids/globs pillar ``hecate:members`` lists for the other end of the tunnel."""
    _, grain = PEER_ROLE[conf["role"]]
    return (conf.get("members") or {}).get(grain) or []


# -- keys -----------------------------------------------------------------------------------------


def valid_key(value):
    try:
        return len(base64.b64decode(str(value), validate=True)) == 32
    except (binascii.Error, ValueError):
        return False


def _clamp(raw):
    key = bytearray(raw)
    key[0] &= 248
    key[31] = (key[31] & 127) | 64
    return bytes(key)


def public_from_private(private_b64):
    """The base64 public key of a base64 private key (``wg pubkey``)."""
    raw = base64.b64decode(private_b64.strip(), validate=True)
    if len(raw) != 32:
        raise _err("the private key is not 32 bytes")
    pub = x25519.X25519PrivateKey.from_private_bytes(raw).public_key()
    return base64.b64encode(
        pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    ).decode()


def new_private_key():
    """A fresh clamped Curve25519 private key, base64 (``wg genkey``)."""
    raw = x25519.X25519PrivateKey.generate().private_bytes(
        serialization.Encoding.Raw,
        serialization.PrivateFormat.Raw,
        serialization.NoEncryption(),
    )
    return base64.b64encode(_clamp(raw)).decode()


def read_public_key(key_file):
    """Public key derived from the private key file, or None when there is no key file."""
    try:
        with open(key_file, encoding="ascii") as fh:
            private = fh.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise _err(f"cannot read the WireGuard key file {key_file}: {exc.strerror}") from None
    try:
        return public_from_private(private)
    except (binascii.Error, ValueError, salt.exceptions.CommandExecutionError):
        raise _err(f"{key_file} does not hold a WireGuard private key") from None


def key_file_problems(key_file):
    """What is wrong with an existing key file's mode (a key readable by others)."""
    st = os.stat(key_file)
    if st.st_mode & 0o077:
        return f"mode {oct(st.st_mode & 0o777)} (should be 0600)"
    return None


def ensure_key(key_file, force=False):
    """
    Make a key pair unless one exists. Returns ``(public_key, created)``; the private
    key goes only into ``key_file`` (0600, its directory 0700 when created here).
    """
    if not force:
        existing = read_public_key(key_file)
        if existing:
            if key_file_problems(key_file):
                os.chmod(key_file, 0o600)
            return existing, False
    ensure_dir(os.path.dirname(key_file), 0o700)
    private = new_private_key()
    write_private(key_file, private + "\n", mode=0o600)
    return public_from_private(private), True


# -- files ----------------------------------------------------------------------------------------


def ensure_dir(path, mode=0o755):
    """Create ``path`` (and parents) with ``mode`` when missing; True when created."""
    if os.path.isdir(path):
        return False
    try:
        os.makedirs(path, mode=mode, exist_ok=True)
        os.chmod(path, mode)
    except OSError as exc:
        raise _err(f"cannot create directory {path}: {exc.strerror}") from None
    return True


def _ids(user, group):
    uid = gid = -1
    try:
        if user is not None:
            uid = pwd.getpwnam(user).pw_uid
        if group is not None:
            gid = grp.getgrnam(group).gr_gid
    except KeyError:
        missing = ("user", user) if user is not None and uid == -1 else ("group", group)
        raise _err(f"{missing[0]} '{missing[1]}' does not exist on this host") from None
    return uid, gid


def file_state(path, mode, user=None, group=None):
    """``(content or None, {"mode"/"user"/"group": (old, new)} of what differs)``."""
    try:
        with open(path, encoding="utf-8") as fh:
            content = fh.read()
        st = os.stat(path)
    except FileNotFoundError:
        return None, {}
    except OSError as exc:
        raise _err(f"cannot read {path}: {exc.strerror}") from None
    meta = {}
    if st.st_mode & 0o7777 != mode:
        meta["mode"] = (oct(st.st_mode & 0o7777), oct(mode))
    if user is not None and pwd.getpwuid(st.st_uid).pw_name != user:
        meta["user"] = (pwd.getpwuid(st.st_uid).pw_name, user)
    if group is not None:
        try:
            current = grp.getgrgid(st.st_gid).gr_name
        except KeyError:
            current = str(st.st_gid)
        if current != group:
            meta["group"] = (current, group)
    return content, meta


def write_private(path, content, mode=0o600, user=None, group=None):
    """
    Write ``content`` atomically: a temp file created 0600 in the same directory, owner
    and mode set before any byte is written, then renamed over ``path``. The content is
    never logged and never part of an error message.
    """
    uid, gid = _ids(user, group)
    directory = os.path.dirname(path) or "."
    fd, tmp = None, None
    try:
        fd, tmp = tempfile.mkstemp(prefix=".hecate-", dir=directory)
        os.fchmod(fd, 0o600)
        if uid != -1 or gid != -1:
            os.fchown(fd, uid, gid)
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fd = None
            fh.write(content)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        raise _err(f"cannot write {path}: {exc.strerror}") from None
    finally:
        if fd is not None:
            os.close(fd)
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


def text_diff(old, new, name):
    """A unified diff of two texts (empty when equal)."""
    return "".join(
        difflib.unified_diff(
            (old or "").splitlines(True),
            new.splitlines(True),
            fromfile=name if old is not None else "/dev/null",
            tofile=name,
        )
    )


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
    peer_role, _ = PEER_ROLE[conf["role"]]
    nodes = conf.get("nodes") or {}
    peers, problems, used = [], [], {conf["address"]: f"this minion ({conf['id']})"}
    listed = peer_patterns(conf)
    for mid in sorted(mine_data or {}):
        pub = mine_data[mid]
        if mid == conf.get("id") or not hecate_members.matches(mid, listed):
            continue
        if not pub:
            continue
        if not isinstance(pub, str) or not valid_key(pub):
            problems.append(f"minion {mid} published something that is not a WireGuard public key")
            continue
        node = nodes.get(mid) or {}
        address = node.get("address") or (conf.get(peer_role) or {}).get("address")
        where = f"{PILLAR_PATH}:nodes:{mid}:address" if "address" in node else f"{PILLAR_PATH}:{peer_role}:address"
        if address in used:
            problems.append(
                f"minion {mid} would get tunnel address {address} ({where}), already used by "
                f"{used[address]}; give each node its own under {PILLAR_PATH}:nodes:<minion id>:address"
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


# -- commands -------------------------------------------------------------------------------------


def run(cmd, netns=None, stdin=None, check=True, timeout=30):
    """
    Run a command (inside ``netns`` when given) without a shell. Output is returned,
    never logged; an error names the command and its stderr (``wg``/``ip`` never echo a
    key there).
    """
    if netns:
        cmd = ["ip", "netns", "exec", netns] + list(cmd)
    try:
        proc = subprocess.run(
            cmd, input=stdin, capture_output=True, text=True, timeout=timeout, check=False
        )
    except FileNotFoundError:
        raise _err(f"{cmd[0]} is not installed") from None
    except subprocess.TimeoutExpired:
        raise _err(f"`{' '.join(cmd[:4])} ...` timed out after {timeout}s") from None
    if check and proc.returncode != 0:
        raise _err(f"`{' '.join(cmd)}` failed: {proc.stderr.strip() or proc.returncode}")
    return proc


def interface_exists(interface, netns=None):
    return run(["ip", "link", "show", "dev", interface], netns=netns, check=False).returncode == 0


def parse_dump(text):
    """
    ``wg show <if> dump`` as ``{public_key, listen_port, fwmark, peers: {public_key: {...}}}``.
    The interface's private key and the peers' preshared keys are dropped here.
    """
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise _err("empty output from `wg show dump`")
    first = lines[0].split("\t")
    if len(first) != 4:
        raise _err("unexpected `wg show dump` output (interface line)")
    out = {
        "public_key": first[1] if first[1] != "(none)" else None,
        "listen_port": int(first[2]) if first[2].isdigit() else None,
        "fwmark": None if first[3] == "off" else first[3],
        "peers": {},
    }
    for line in lines[1:]:
        fields = line.split("\t")
        if len(fields) != 8:
            raise _err("unexpected `wg show dump` output (peer line)")
        pub, psk, endpoint, allowed, handshake, rx, tx, keepalive = fields
        out["peers"][pub] = {
            "preshared_key": psk != "(none)",
            "endpoint": None if endpoint == "(none)" else endpoint,
            "allowed_ips": [] if allowed == "(none)" else sorted(allowed.split(",")),
            "latest_handshake": int(handshake),
            "transfer_rx": int(rx),
            "transfer_tx": int(tx),
            "persistent_keepalive": None if keepalive == "off" else int(keepalive),
        }
    return out


def live_status(interface, netns=None):
    """Parsed ``wg show <if> dump`` plus the interface's addresses and link state, or None."""
    if not interface_exists(interface, netns):
        return None
    dump = parse_dump(run(["wg", "show", interface, "dump"], netns=netns).stdout)
    addr = run(["ip", "-o", "addr", "show", "dev", interface], netns=netns).stdout
    # link-local IPv6 addresses appear by themselves when the link comes up: not ours to manage
    dump["addresses"] = sorted(a for a in re.findall(r"\binet6? (\S+)", addr) if not a.lower().startswith("fe80:"))
    link = run(["ip", "-o", "link", "show", "dev", interface], netns=netns).stdout
    flags = re.search(r"<([^>]*)>", link)
    dump["up"] = bool(flags and "UP" in flags.group(1).split(","))
    index = re.match(r"(\d+):", link)
    dump["ifindex"] = int(index.group(1)) if index else None
    return dump


def live_changes(conf, peers, live, key_public):
    """What a live sync would change: ``{peers: {added, removed, changed}, address, key, link}``."""
    changes = {}
    want = {p["public_key"]: p for p in peers}
    have = live["peers"]
    added = sorted(want[k]["name"] for k in want if k not in have)
    removed = sorted(k for k in have if k not in want)
    changed = []
    for key, peer in want.items():
        if key not in have:
            continue
        cur = have[key]
        if sorted(peer["allowed_ips"]) != cur["allowed_ips"]:
            changed.append(f"{peer['name']}: allowed_ips {cur['allowed_ips']} -> {sorted(peer['allowed_ips'])}")
        if (peer.get("persistent_keepalive") or None) != cur["persistent_keepalive"]:
            changed.append(f"{peer['name']}: persistent_keepalive {cur['persistent_keepalive']} -> {peer.get('persistent_keepalive')}")
        endpoint = peer.get("endpoint")
        if endpoint and _is_ip_endpoint(endpoint) and _norm_endpoint(endpoint) != cur["endpoint"]:
            changed.append(f"{peer['name']}: endpoint {cur['endpoint']} -> {endpoint}")
    if added or removed or changed:
        changes["peers"] = {"added": added, "removed": removed, "changed": changed}
    if live.get("listen_port") != conf["listen_port"]:
        changes["listen_port"] = {"old": live.get("listen_port"), "new": conf["listen_port"]}
    if live["addresses"] != [conf["cidr"]]:
        changes["addresses"] = {"old": live["addresses"], "new": [conf["cidr"]]}
    if live.get("public_key") != key_public:
        changes["key"] = {"old": live.get("public_key"), "new": key_public}
    if not live.get("up"):
        changes["link"] = {"old": "down", "new": "up"}
    return changes


def _is_ip_endpoint(endpoint):
    match = ENDPOINT.match(endpoint)
    if not match:
        return False
    if match.group("v6"):
        return True
    try:
        ipaddress.ip_address(match.group("host"))
        return True
    except ValueError:
        return False


def _norm_endpoint(endpoint):
    match = ENDPOINT.match(endpoint)
    if match.group("v6"):
        return f"[{ipaddress.ip_address(match.group('v6'))}]:{int(match.group('port'))}"
    return f"{match.group('host')}:{int(match.group('port'))}"


def _with_private_key(config_text, key_file):
    try:
        with open(key_file, encoding="ascii") as fh:
            private = fh.read().strip()
    except OSError as exc:
        raise _err(f"cannot read the WireGuard key file {key_file}: {exc.strerror}") from None
    lines = strip_config(config_text).splitlines()
    at = lines.index("[Interface]") + 1
    return "\n".join(lines[:at] + [f"PrivateKey = {private}"] + lines[at:]) + "\n"


def sync_live(conf, config_text, live, changes):
    """
    Bring a live interface to the config without taking it down: ``wg syncconf`` applies
    only the differences (unchanged peers keep their sessions; the private key is part of
    its input, so it is kept), then addresses, MTU and link state.
    """
    iface, netns = conf["interface"], conf.get("netns")
    if {"peers", "listen_port", "key"} & set(changes):
        # `wg syncconf` sets the interface to exactly the given config: a config without
        # PrivateKey clears the key (and every session). The key goes in through stdin,
        # never argv, a log line or a file other than the key file.
        run(["wg", "syncconf", iface, "/dev/stdin"], netns=netns, stdin=_with_private_key(config_text, conf["key_file"]))
    if "addresses" in changes:
        for cidr in live["addresses"]:
            if cidr != conf["cidr"]:
                run(["ip", "addr", "del", cidr, "dev", iface], netns=netns)
        if conf["cidr"] not in live["addresses"]:
            run(["ip", "addr", "add", conf["cidr"], "dev", iface], netns=netns)
    if conf.get("mtu"):
        run(["ip", "link", "set", "dev", iface, "mtu", str(conf["mtu"])], netns=netns)
    if "link" in changes:
        run(["ip", "link", "set", "dev", iface, "up"], netns=netns)


# -- verification -----------------------------------------------------------------------------


def ping(address, netns=None, count=1, wait=2):
    """True when ``address`` answers an ICMP echo (``ping`` from iputils)."""
    proc = run(
        ["ping", "-n", "-q", "-c", str(count), "-W", str(wait), str(address)],
        netns=netns,
        check=False,
        timeout=count * wait + 5,
    )
    return proc.returncode == 0


def verify(interface, peers, within=180, timeout=60, do_ping=True, netns=None, clock=time.time):
    """
    Wait up to ``timeout`` seconds until every peer has a handshake younger than
    ``within`` seconds and (``do_ping``) answers a ping at its tunnel address. Pinging
    also makes WireGuard initiate a handshake. Returns ``(ok, report)``;
    report is ``{peer name: {handshake_age, ping, transfer_rx, transfer_tx, problem}}``.
    """
    if not peers:
        return False, {"": {"problem": "no peers to verify (no public key published by the other side)"}}
    deadline = time.monotonic() + max(timeout, 0)
    while True:
        live = live_status(interface, netns)
        report, ok = {}, True
        for peer in peers:
            entry = {"handshake_age": None, "ping": None}
            have = (live or {}).get("peers", {}).get(peer["public_key"])
            if live is None:
                entry["problem"] = f"interface {interface} does not exist"
            elif have is None:
                entry["problem"] = "not configured on the interface"
            else:
                entry["transfer_rx"], entry["transfer_tx"] = have["transfer_rx"], have["transfer_tx"]
                if do_ping and peer.get("address"):
                    entry["ping"] = ping(peer["address"], netns=netns)
                    if entry["ping"]:
                        have = live_status(interface, netns)["peers"].get(peer["public_key"], have)
                if have["latest_handshake"]:
                    entry["handshake_age"] = max(0, int(clock()) - have["latest_handshake"])
                if not have["latest_handshake"]:
                    entry["problem"] = "no handshake yet"
                elif entry["handshake_age"] > within:
                    entry["problem"] = f"latest handshake {entry['handshake_age']}s ago (> {within}s)"
                elif do_ping and peer.get("address") and not entry["ping"]:
                    entry["problem"] = f"no answer to ping at {peer['address']} over the tunnel"
            if entry.get("problem"):
                ok = False
            report[peer["name"]] = entry
        if ok or time.monotonic() >= deadline:
            return ok, report
        time.sleep(1)
