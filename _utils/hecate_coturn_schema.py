"""
The pillar of coturn (STUN/TURN) on the Hecate edge, ``hecate:reverse_proxy:coturn``: its
schema, the checks a schema cannot express, its listeners (for the edge's port-clash
check) and the settings with defaults merged (:func:`normalise`).

.. code-block:: yaml

    hecate:
      reverse_proxy:
        coturn:
          realm: cybermonkey.dev
          static_auth_secret: {vault: secret/hecate/coturn, key: static_auth_secret}
          ports: {listening: 3478, tls_listening: 5349, relay_min: 49160, relay_max: 49200}
          cert: /etc/coturn/certs/hecate.fullchain.pem
          pkey: /etc/coturn/certs/hecate.privkey.pem

The TURN REST API shared secret (``use-auth-secret`` + ``static-auth-secret``) is a Vault
reference in pillar; the state resolves it on the minion when it writes the file, which
is created readable by root and the coturn daemon's group only (Debian runs turnserver as
``turnserver`` and sets ``/etc/turnserver.conf`` to root:turnserver 0640 itself).

Relaying to private, loopback and other special-purpose networks is denied by default
(``denied_peer_ips``): a TURN server on the edge must not become a way into the WireGuard
or Tailscale networks behind it. The file itself is written by ``hecate_coturn_render``.
"""

import ipaddress
import re

import salt.exceptions

import hecate_config
import hecate_schema

PILLAR_KEY = "hecate:reverse_proxy:coturn"

# Special-purpose networks a TURN relay must not reach (IANA special-purpose registries).
DEFAULT_DENIED_PEER_IPS = [
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.0.2.0/24",
    "192.88.99.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "240.0.0.0/4",
    "::1/128",
    "::ffff:0:0/96",
    "64:ff9b::/96",
    "100::/64",
    "2001::/23",
    "2001:db8::/32",
    "2002::/16",
    "fc00::/7",
    "fe80::/10",
]

DEFAULTS = {
    "version": None,
    "config_file": "/etc/turnserver.conf",
    "realm": None,
    "static_auth_secret": None,
    # coturn's own defaults
    "ports": {"listening": 3478, "tls_listening": 5349, "relay_min": 49152, "relay_max": 65535},
    "listening_ips": [],
    "relay_ips": [],
    "external_ip": None,
    "cert": None,
    "pkey": None,
    "log_file": "syslog",
    "verbose": False,
    "fingerprint": True,
    "stale_nonce": 600,
    "denied_peer_ips": DEFAULT_DENIED_PEER_IPS,
    "allowed_peer_ips": [],
    "pidfile": None,
    "manage_service": True,
    "service": "coturn",
    "file_mode": "0640",
    "file_user": "root",
    "file_group": "turnserver",
    "packages": [],
}

PORT = {"type": "integer", "minimum": 1, "maximum": 65535}
PATH = r"^/[^\s\"'#\\]*$"
UNIX_NAME = r"^[A-Za-z_][A-Za-z0-9_.-]{0,31}$"
IP = {"type": "string", "pattern": r"^[0-9A-Fa-f:.]+$"}
PEER = {"type": "string", "pattern": r"^[0-9A-Fa-f:./-]+$"}
SECRET_REF = {"oneOf": [hecate_schema.VAULT_REF, {"type": "string", "pattern": "^sdb://"}]}
_d = hecate_schema.described
_DEF = DEFAULTS
_OWNER = "of the config file; null: unchanged."

COTURN_SCHEMA = {
    "type": "object",
    "required": ["realm", "static_auth_secret"],
    "additionalProperties": False,
    "description": (
        "coturn (STUN/TURN) on the edge. hecate writes its config file (the secret is read from "
        "Vault on the minion) and restarts coturn when it changes (coturn cannot reload)."
    ),
    "properties": {
        "version": {"type": ["string", "null"], "default": None,
                    "description": "The coturn release in use, for the operator's records; no state reads it."},
        "config_file": {"type": "string", "pattern": PATH, "default": _DEF["config_file"],
                        "description": "coturn's configuration file, which hecate writes whole."},
        "realm": {"type": "string", "pattern": hecate_schema.DOMAIN, "examples": ["example.com"],
                  "description": "The TURN realm (usually your domain)."},
        "static_auth_secret": _d(SECRET_REF, "The TURN REST API shared secret clients' credentials are made "
                                             "from (use-auth-secret), as a Vault reference."),
        "ports": {
            "type": "object",
            "additionalProperties": False,
            "description": "coturn's ports (checked against Caddy's, the streams' and WireGuard's).",
            "properties": {
                "listening": _d(PORT, "STUN/TURN port (UDP and TCP).", default=_DEF["ports"]["listening"]),
                "tls_listening": _d(PORT, "TURN over TLS/DTLS port, used when cert and pkey are set.",
                                    default=_DEF["ports"]["tls_listening"]),
                "relay_min": _d(PORT, "Lowest UDP relay port.", default=_DEF["ports"]["relay_min"]),
                "relay_max": _d(PORT, "Highest UDP relay port.", default=_DEF["ports"]["relay_max"]),
            },
        },
        "listening_ips": {"type": "array", "items": IP, "default": [],
                          "description": "Addresses coturn listens on; []: every address."},
        "relay_ips": {"type": "array", "items": IP, "default": [],
                      "description": "Addresses relayed traffic leaves from; []: coturn chooses."},
        "external_ip": {"type": ["string", "null"], "pattern": r"^[0-9A-Fa-f:.]+(/[0-9A-Fa-f:.]+)?$",
                        "default": None,
                        "description": "Public address behind NAT (public or public/private); null: none."},
        "cert": {"type": ["string", "null"], "pattern": PATH, "default": None,
                 "description": "Certificate chain file for TLS (readable by the turnserver group); null with "
                                "pkey: no TLS."},
        "pkey": {"type": ["string", "null"], "pattern": PATH, "default": None,
                 "description": "Private key file of cert."},
        "log_file": {"type": "string", "pattern": r"^(syslog|stdout|/[^\s\"'#\\]*)$", "default": _DEF["log_file"],
                     "description": "Where coturn logs: syslog, stdout or a file."},
        "verbose": {"type": "boolean", "default": _DEF["verbose"], "description": "Verbose logging."},
        "fingerprint": {"type": "boolean", "default": _DEF["fingerprint"],
                        "description": "Add fingerprints to TURN messages (WebRTC clients expect them)."},
        "stale_nonce": {"type": ["integer", "null"], "minimum": 1, "default": _DEF["stale_nonce"],
                        "description": "Seconds a nonce stays valid; null: coturn's default."},
        "denied_peer_ips": {"type": "array", "items": PEER, "default": _DEF["denied_peer_ips"],
                            "description": "Addresses the relay refuses to reach (CIDR or a-b ranges); by default "
                                           "loopback, private and other special-purpose networks."},
        "allowed_peer_ips": {"type": "array", "items": PEER, "default": [],
                             "description": "Exceptions to denied_peer_ips (a backend the relay may reach)."},
        "pidfile": {"type": ["string", "null"], "pattern": PATH, "default": None,
                    "description": "coturn's pid file; null: coturn's default."},
        "manage_service": {"type": "boolean", "default": _DEF["manage_service"],
                           "description": "Keep coturn running and restart it when the file changes; false: "
                                          "only write the file."},
        "service": {"type": ["string", "null"], "pattern": r"^[A-Za-z0-9@_.-]+$", "default": _DEF["service"],
                    "description": "coturn's service name."},
        "file_mode": {"type": "string", "pattern": r"^0?[0-7]{3}$", "default": _DEF["file_mode"],
                      "description": "Mode of the config file (it holds the secret: no access for others)."},
        "file_user": {"type": ["string", "null"], "pattern": UNIX_NAME, "default": _DEF["file_user"],
                      "description": "Owner " + _OWNER},
        "file_group": {"type": ["string", "null"], "pattern": UNIX_NAME, "default": _DEF["file_group"],
                       "description": "Group " + _OWNER + " coturn's group must read the file."},
        "packages": {"type": "array", "items": {"type": "string", "pattern": r"^[a-z0-9][a-z0-9+.-]*$"},
                     "default": [], "description": "Packages installed first (e.g. coturn)."},
    },
}
PILLAR_SCHEMA = {PILLAR_KEY: COTURN_SCHEMA}


def peer_range(text):
    """``10.0.0.0/8`` or ``10.0.0.1-10.0.0.9`` or one address -> coturn's ``a-b`` / ``a``."""
    if "-" in text:
        low, _, high = text.partition("-")
        low, high = ipaddress.ip_address(low), ipaddress.ip_address(high)
        if low.version != high.version or low > high:
            raise ValueError(text)
        return f"{low}-{high}"
    net = ipaddress.ip_network(text, strict=True)
    if net.num_addresses == 1:
        return str(net.network_address)
    return f"{net.network_address}-{net.broadcast_address}"


def semantic_errors(raw, where=PILLAR_KEY):
    errors = []
    if not isinstance(raw, dict):
        return errors
    ports = hecate_config.deep_merge(DEFAULTS["ports"], raw.get("ports") or {})
    low, high = ports.get("relay_min"), ports.get("relay_max")
    if isinstance(low, int) and isinstance(high, int) and low > high:
        errors.append((f"{where}:ports:relay_min", f"relay_min {low} is above relay_max {high}"))
    if ports.get("listening") == ports.get("tls_listening"):
        errors.append((f"{where}:ports:tls_listening", "must differ from ports:listening"))
    if bool(raw.get("cert")) != bool(raw.get("pkey")):
        errors.append((f"{where}:{'pkey' if raw.get('cert') else 'cert'}",
                       "cert and pkey go together (TLS needs both)"))
    mode = raw.get("file_mode")
    if isinstance(mode, str) and re.match(r"^0?[0-7]{3}$", mode) and int(mode, 8) & 0o007:
        errors.append(
            (f"{where}:file_mode", f"{mode} lets every user read the TURN secret; use 0640 or 0600")
        )
    for key in ("listening_ips", "relay_ips"):
        for idx, addr in enumerate(raw.get(key) or []):
            try:
                ipaddress.ip_address(addr)
            except ValueError:
                errors.append((f"{where}:{key}:{idx}", f"{addr!r} is not an IP address"))
    external = raw.get("external_ip")
    if isinstance(external, str):
        for part in external.split("/"):
            try:
                ipaddress.ip_address(part)
            except ValueError:
                errors.append((f"{where}:external_ip", f"{part!r} is not an IP address"))
    for key in ("denied_peer_ips", "allowed_peer_ips"):
        for idx, peer in enumerate(raw.get(key) or []):
            try:
                peer_range(peer)
            except ValueError:
                errors.append(
                    (f"{where}:{key}:{idx}",
                     f"{peer!r} is not an address, a network (a.b.c.d/n) or a range (a-b)")
                )
    return errors


def check_pillar(pillar, env):  # pylint: disable=unused-argument
    raw = hecate_config.traverse(pillar, PILLAR_KEY)
    return semantic_errors(raw) if isinstance(raw, dict) else []


def _addresses(ips):
    if not ips:
        return [(4, None), (6, None)]
    out = []
    for text in ips:
        try:
            ip = ipaddress.ip_address(text)
        except ValueError:
            continue
        out.append((ip.version, None if ip.is_unspecified else ip))
    return out or [(4, None), (6, None)]


def listeners(pillar):
    """coturn's listening, TLS (when it has a certificate) and relay ports, for clash checks."""
    raw = hecate_config.traverse(pillar, PILLAR_KEY)
    if not isinstance(raw, dict):
        return []
    ports = raw.get("ports") if isinstance(raw.get("ports"), dict) else {}
    ports = hecate_config.deep_merge(DEFAULTS["ports"], ports)
    listen = _addresses(raw.get("listening_ips"))
    out = []

    def add(name, label, low, high, addrs):
        if isinstance(low, int) and isinstance(high, int) and low <= high:
            out.append(
                {
                    "key": f"{PILLAR_KEY}:ports:{name}",
                    "label": label,
                    "protocols": ("tcp", "udp"),
                    "low": low,
                    "high": high,
                    "addresses": addrs,
                }
            )

    add("listening", "coturn's listening port", ports["listening"], ports["listening"], listen)
    if raw.get("cert"):
        add("tls_listening", "coturn's TLS/DTLS port", ports["tls_listening"],
            ports["tls_listening"], listen)
    add("relay_min", "coturn's relay port range", ports["relay_min"], ports["relay_max"],
        _addresses(raw.get("relay_ips")))
    return out


def normalise(raw):
    """Settings (defaults merged); raises ``SaltInvocationError`` listing every error."""
    if not isinstance(raw, dict):
        raise salt.exceptions.SaltInvocationError(
            f"{PILLAR_KEY}: not set (realm, static_auth_secret, ports ...)"
        )
    errors = hecate_schema.fragment_errors(raw, COTURN_SCHEMA, PILLAR_KEY)
    if not errors:
        errors = semantic_errors(raw)
    if errors:
        raise salt.exceptions.SaltInvocationError(
            "invalid coturn pillar:\n"
            + "\n".join(f"{path}: {msg}" for path, msg in sorted(set(errors)))
        )
    settings = hecate_config.deep_merge(DEFAULTS, raw)
    if "denied_peer_ips" in raw:  # lists replace, they never merge
        settings["denied_peer_ips"] = list(raw["denied_peer_ips"])
    return settings
