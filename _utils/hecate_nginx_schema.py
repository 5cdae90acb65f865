"""
The pillar of the edge's nginx stream proxies (``hecate:reverse_proxy:nginx``): its schema
and the checks a schema cannot express.

Caddy serves HTTP(S) on the edge; nginx only proxies non-HTTP traffic (Wazuh agents,
the Wazuh API, Jenkins agents, ...) with its ``stream`` module. hecate owns nginx's
whole main configuration file (``config_file``, default ``/etc/nginx/nginx.conf``): a
main context, ``events`` and one ``stream`` block, no ``http`` block.

.. code-block:: yaml

    hecate:
      reverse_proxy:
        nginx:
          tcp_proxies:
            - name: wazuh-agent-tcp
              listen_port: 1515
              backend: "100.88.163.85:1515"          # or backends: [...] or consul_service
              timeouts: {connect: 30s, proxy: 300s}
            - name: wazuh-agent-udp
              listen_port: 1514
              protocol: udp
              consul_service: wazuh-agents            # passing instances, via hecate_consul
            - name: jenkins-agent
              listen_port: 50000
              consul_service: {name: jenkins-master, port: 50000}

:data:`PILLAR_SCHEMA` and :func:`check_pillar` (port clashes between streams, Caddy,
WireGuard and coturn: :func:`port_clashes`) for ``hecate_schema``; :func:`normalise` gives
the state the settings with defaults merged. Rendering is in ``hecate_nginx_render``, the
nginx binary and process in ``hecate_nginx_process``.
"""

import ipaddress

import salt.exceptions

import hecate_config
import hecate_coturn_schema
import hecate_schema
import hecate_wireguard_schema

PILLAR_KEY = "hecate:reverse_proxy:nginx"
CADDY_PORTS_KEY = "hecate:reverse_proxy:caddy:ports"
# Caddy's listeners: https is TCP and UDP (HTTP/3); admin is loopback-only but a stream on
# the same port still could not bind it there.
CADDY_PORTS = (("http", 80, ("tcp",)), ("https", 443, ("tcp", "udp")), ("admin", 2019, ("tcp",)))

DEFAULT_LOG_FORMAT = (
    '$remote_addr [$time_local] $protocol $server_port $status $bytes_sent $bytes_received '
    '$session_time "$upstream_addr" "$upstream_bytes_sent" "$upstream_bytes_received" '
    '"$upstream_connect_time"'
)

DEFAULTS = {
    "version": None,
    "binary": "/usr/sbin/nginx",
    "config_file": "/etc/nginx/nginx.conf",
    "pid_file": "/run/nginx.pid",
    "error_log": "/var/log/nginx/error.log",
    "error_log_level": "notice",
    "access_log": "/var/log/nginx/stream-access.log",
    "log_format": DEFAULT_LOG_FORMAT,
    "user": "www-data",
    "worker_processes": "auto",
    "worker_connections": 4096,
    "worker_rlimit_nofile": 65535,
    "stream_module": "auto",
    "manage_service": True,
    "service": "nginx",
    "reload_timeout": 15,
    "file_mode": "0644",
    "file_user": "root",
    "file_group": "root",
    "packages": [],
    "tcp_proxies": [],
}
STREAM_DEFAULTS = {"protocol": "tcp", "timeouts": {"connect": "30s", "proxy": "10m"}}

# -- schema ---------------------------------------------------------------------------------
PORT = {"type": "integer", "minimum": 1, "maximum": 65535}
# Absolute paths without characters that would end or split an nginx directive.
PATH = r"^/[^\s;{}'\"\\#$]*$"
NAME = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$"
UNIX_NAME = r"^[A-Za-z_][A-Za-z0-9_.-]{0,31}$"
HOSTPORT = r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?):[0-9]{1,5}$"
# Unions without oneOf (whose errors are hard to read): string keywords (pattern) apply to
# strings only, object keywords to objects only, number keywords to numbers only.
DURATION = {"type": ["integer", "string"], "minimum": 0, "pattern": r"^[0-9]+(ms|s|m|h|d)?$"}
_d = hecate_schema.described
_DUR = " (nginx time: 30s, 10m, or seconds)"
_FAILS = "Failed attempts within fail_timeout that take a backend out for fail_timeout (nginx's default 1)."
_FAIL_TIMEOUT = "Window for max_fails and how long a failed backend stays out" + _DUR + "; nginx's default 10s."
SERVER_PROPS = {
    "address": {"type": "string", "pattern": HOSTPORT, "description": "The backend's host:port."},
    "weight": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 1,
               "description": "Share of connections relative to the other backends."},
    "max_fails": {"type": "integer", "minimum": 0, "description": _FAILS + " Overrides the stream's."},
    "fail_timeout": _d(DURATION, _FAIL_TIMEOUT + " Overrides the stream's."),
    "backup": {"type": "boolean", "default": False, "description": "Used only when the other backends are down."},
    "down": {"type": "boolean", "default": False, "description": "Marked unavailable (kept in the file)."},
}
BACKEND_ITEM = {
    "type": ["string", "object"],
    "pattern": HOSTPORT,
    "required": ["address"],
    "additionalProperties": False,
    "properties": SERVER_PROPS,
    "description": "A backend: host:port, or a mapping with its address and server parameters.",
}
CONSUL_SERVICE = {
    "type": ["string", "object"],
    "pattern": NAME,
    "required": ["name"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "pattern": NAME, "description": "The Consul service."},
        "port": _d(PORT, "Port used instead of the one Consul registered."),
        "passing": {"type": "boolean", "default": True,
                    "description": "Only instances whose checks pass; false takes every registered instance."},
    },
    "description": (
        "Backends from Consul when the state runs: a service name, or {name, port, passing}. No "
        "instance fails the state and leaves the live file as it was."
    ),
}
PROXY = {
    "type": "object",
    "required": ["name", "listen_port"],
    "additionalProperties": False,
    "description": "One stream: a port nginx listens on and the backends it forwards to.",
    "properties": {
        "name": {"type": "string", "pattern": NAME, "examples": ["wazuh-agent-tcp"],
                 "description": "The stream's name (its upstream is hecate_<name>); unique."},
        "listen_port": _d(PORT, "Port nginx listens on; must not clash with Caddy, WireGuard, coturn or "
                                "another stream."),
        "listen_address": {"type": "string", "pattern": r"^[0-9A-Fa-f:.\[\]]+$",
                           "description": "IP address to listen on; absent: every address."},
        "protocol": {"enum": ["tcp", "udp"], "default": STREAM_DEFAULTS["protocol"],
                     "description": "Transport of the stream."},
        "backend": {"type": "string", "pattern": HOSTPORT, "examples": ["100.88.163.85:1515"],
                    "description": "One backend host:port (or backends, or consul_service)."},
        "backends": {
            "type": "array",
            "minItems": 1,
            "items": BACKEND_ITEM,
            "description": "Several backends, load-balanced.",
        },
        "consul_service": CONSUL_SERVICE,
        "balance": {"enum": ["round_robin", "least_conn", "random", "hash"], "default": "round_robin",
                    "description": "How nginx picks a backend (hash: by client address)."},
        "timeouts": {
            "type": "object",
            "additionalProperties": False,
            "description": "Stream timeouts.",
            "properties": {
                "connect": _d(DURATION, "Time to connect to a backend" + _DUR + ".",
                              default=STREAM_DEFAULTS["timeouts"]["connect"]),
                "proxy": _d(DURATION, "Idle time after which the connection is closed" + _DUR + ".",
                            default=STREAM_DEFAULTS["timeouts"]["proxy"]),
            },
        },
        "max_fails": {"type": "integer", "minimum": 0, "description": _FAILS},
        "fail_timeout": _d(DURATION, _FAIL_TIMEOUT),
        "proxy_responses": {"type": "integer", "minimum": 0,
                            "description": "UDP only: responses expected per datagram; absent: nginx waits "
                                           "for responses until the proxy timeout."},
        "access_log": {"type": "boolean", "default": True,
                       "description": "Log the stream's sessions to the access log."},
    },
}
_OWNER = "of nginx.conf; absent or null: unchanged."
NGINX_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "description": (
        "nginx on the edge for non-HTTP traffic (stream module): hecate owns its whole main "
        "configuration file, with no http block (Caddy serves HTTP)."
    ),
    "properties": {
        "version": {"type": ["string", "null"], "default": None,
                    "description": "The nginx release in use, for the operator's records; no state reads it."},
        "tcp_proxies": {"type": "array", "items": PROXY, "default": [], "description": "The streams."},
        "binary": {"type": "string", "pattern": PATH, "default": DEFAULTS["binary"],
                   "description": "The nginx binary (nginx -V, nginx -t)."},
        "config_file": {"type": "string", "pattern": PATH, "default": DEFAULTS["config_file"],
                        "description": "nginx's main configuration file, which hecate writes whole."},
        "pid_file": {"type": "string", "pattern": PATH, "default": DEFAULTS["pid_file"],
                     "description": "nginx's pid file (reloads signal it when service is null)."},
        "error_log": {"type": "string", "pattern": PATH, "default": DEFAULTS["error_log"],
                      "description": "Error log file."},
        "error_log_level": {
            "enum": ["debug", "info", "notice", "warn", "error", "crit", "alert", "emerg"],
            "default": DEFAULTS["error_log_level"],
            "description": "Error log level.",
        },
        "access_log": {"type": ["string", "null"], "pattern": PATH, "default": DEFAULTS["access_log"],
                       "description": "The streams' access log file; null turns it off."},
        "log_format": {"type": "string", "pattern": r"^[^'\\\x00-\x1f]+$", "default": DEFAULT_LOG_FORMAT,
                       "description": "Format of the access log lines (nginx stream variables)."},
        "user": {"type": ["string", "null"], "pattern": UNIX_NAME, "default": DEFAULTS["user"],
                 "description": "User nginx's workers run as; null: nginx's build default."},
        "worker_processes": {
            "type": ["string", "integer"], "pattern": "^auto$", "minimum": 1, "maximum": 1024,
            "default": DEFAULTS["worker_processes"],
            "description": "Worker processes; auto: one per core.",
        },
        "worker_connections": {"type": "integer", "minimum": 16, "maximum": 1048576,
                               "default": DEFAULTS["worker_connections"],
                               "description": "Connections one worker may hold open."},
        "worker_rlimit_nofile": {"type": ["integer", "null"], "minimum": 1,
                                 "default": DEFAULTS["worker_rlimit_nofile"],
                                 "description": "Open-file limit of the workers; null: the system's."},
        "stream_module": {"type": "string", "pattern": r"^(auto|builtin|/[^\s;{}'\"\\#$]*)$",
                          "default": DEFAULTS["stream_module"],
                          "description": "auto loads the stream module when nginx -V says it is dynamic; "
                                         "builtin loads nothing; a path loads that module file."},
        "manage_service": {"type": "boolean", "default": DEFAULTS["manage_service"],
                           "description": "Start nginx when it is not running and reload it when the file "
                                          "changes; false: only write the file."},
        "service": {"type": ["string", "null"], "pattern": r"^[A-Za-z0-9@_.-]+$", "default": DEFAULTS["service"],
                    "description": "Service reloaded through the service manager; null: nginx -s reload "
                                   "through pid_file."},
        "reload_timeout": {"type": "number", "exclusiveMinimum": 0, "maximum": 300,
                           "default": DEFAULTS["reload_timeout"],
                           "description": "Seconds to wait for nginx to run new workers after a reload."},
        "file_mode": {"type": "string", "pattern": r"^0?[0-7]{3}$", "default": DEFAULTS["file_mode"],
                      "description": "Mode of nginx.conf."},
        "file_user": {"type": ["string", "null"], "pattern": UNIX_NAME, "default": DEFAULTS["file_user"],
                      "description": "Owner " + _OWNER},
        "file_group": {"type": ["string", "null"], "pattern": UNIX_NAME, "default": DEFAULTS["file_group"],
                       "description": "Group " + _OWNER},
        "packages": {"type": "array", "items": {"type": "string", "pattern": r"^[a-z0-9][a-z0-9+.-]*$"},
                     "default": DEFAULTS["packages"],
                     "description": "Packages installed first (e.g. nginx, libnginx-mod-stream)."},
    },
}
PILLAR_SCHEMA = {PILLAR_KEY: NGINX_SCHEMA}


def parse_ip(text):
    """An IP address from ``1.2.3.4``, ``::1`` or ``[::1]`` (ValueError otherwise)."""
    return ipaddress.ip_address(text[1:-1] if text.startswith("[") and text.endswith("]") else text)


def _split_hostport(text):
    host, _, port = text.rpartition(":")
    return host, int(port)


def upstream_name(name):
    return "hecate_" + name.lower().replace("-", "_")


def semantic_errors(raw, where=PILLAR_KEY):
    """Checks on the nginx block that the schema cannot express (no cross-system ones)."""
    errors = []
    proxies = raw.get("tcp_proxies") if isinstance(raw, dict) else None
    if not isinstance(proxies, list):
        return errors
    seen = {}
    for idx, proxy in enumerate(proxies):
        key = f"{where}:tcp_proxies:{idx}"
        if not isinstance(proxy, dict):
            continue
        sources = [k for k in ("backend", "backends", "consul_service") if k in proxy]
        if len(sources) != 1:
            errors.append(
                (key, "give exactly one of backend, backends, consul_service"
                 + (f" (got {', '.join(sources)})" if sources else ""))
            )
        if "proxy_responses" in proxy and proxy.get("protocol", "tcp") != "udp":
            errors.append((f"{key}:proxy_responses", "only applies to protocol udp"))
        addr = proxy.get("listen_address")
        if isinstance(addr, str):
            try:
                parse_ip(addr)
            except ValueError:
                errors.append((f"{key}:listen_address", f"{addr!r} is not an IP address"))
        backends = []
        if isinstance(proxy.get("backend"), str):
            backends.append((f"{key}:backend", proxy["backend"]))
        for bidx, item in enumerate(proxy.get("backends") or []):
            address = item.get("address") if isinstance(item, dict) else item
            if isinstance(address, str):
                backends.append((f"{key}:backends:{bidx}", address))
        for bkey, address in backends:
            try:
                port = _split_hostport(address)[1]
            except ValueError:
                continue  # the schema reports the format
            if not 1 <= port <= 65535:
                errors.append((bkey, f"port {port} of {address!r} is out of range (1-65535)"))
        name = proxy.get("name")
        if isinstance(name, str):
            upstream = upstream_name(name)
            if upstream in seen:
                errors.append(
                    (f"{key}:name", f"stream name {name!r} is already used by {seen[upstream]}")
                )
            else:
                seen[upstream] = key
    return errors


def _addresses(addr, default_families=(4,)):
    """Listener addresses as ``(family, ip_or_None)``; None means every address of the family."""
    if addr is None:
        return [(fam, None) for fam in default_families]
    try:
        ip = parse_ip(addr)
    except ValueError:
        return [(fam, None) for fam in default_families]
    return [(ip.version, None if ip.is_unspecified else ip)]


def _overlap(addrs_a, addrs_b):
    for fam_a, ip_a in addrs_a:
        for fam_b, ip_b in addrs_b:
            if fam_a == fam_b and (ip_a is None or ip_b is None or ip_a == ip_b):
                return True
    return False


def listeners(pillar):
    """
    Every port the edge node listens on according to pillar, as dicts
    ``{key, label, protocols, low, high, addresses}``: Caddy's ports (defaults 80/443/2019
    when unset), the WireGuard hub's, coturn's, then the nginx streams.
    """
    out = []
    caddy_ports = hecate_config.traverse(pillar, CADDY_PORTS_KEY, {}) or {}
    if not isinstance(caddy_ports, dict):
        caddy_ports = {}
    for name, default, protocols in CADDY_PORTS:
        port = caddy_ports.get(name, default)
        if isinstance(port, int) and not isinstance(port, bool):
            out.append(
                {
                    "key": f"{CADDY_PORTS_KEY}:{name}",
                    "label": f"Caddy's {name} port",
                    "protocols": protocols,
                    "low": port,
                    "high": port,
                    "addresses": [(4, None), (6, None)],
                }
            )
    # the WireGuard hub's UDP port (unless its interface lives in a network namespace, where
    # its socket does not compete with the host's listeners)
    wireguard = hecate_config.traverse(pillar, hecate_wireguard_schema.PILLAR_PATH)
    if isinstance(wireguard, dict) and not wireguard.get("netns"):
        port = wireguard.get("listen_port", hecate_wireguard_schema.DEFAULTS["listen_port"])
        if isinstance(port, int) and not isinstance(port, bool):
            out.append(
                {
                    "key": f"{hecate_wireguard_schema.PILLAR_PATH}:listen_port",
                    "label": "WireGuard's listen port",
                    "protocols": ("udp",),
                    "low": port,
                    "high": port,
                    "addresses": [(4, None), (6, None)],
                }
            )
    out.extend(hecate_coturn_schema.listeners(pillar))
    nginx = hecate_config.traverse(pillar, PILLAR_KEY, {}) or {}
    proxies = nginx.get("tcp_proxies") if isinstance(nginx, dict) else None
    for idx, proxy in enumerate(proxies if isinstance(proxies, list) else []):
        if not isinstance(proxy, dict):
            continue
        port = proxy.get("listen_port")
        protocol = proxy.get("protocol", "tcp")
        if not isinstance(port, int) or protocol not in ("tcp", "udp"):
            continue
        out.append(
            {
                "key": f"{PILLAR_KEY}:tcp_proxies:{idx}:listen_port",
                "label": f"stream {proxy.get('name')!r}",
                "protocols": (protocol,),
                "low": port,
                "high": port,
                "addresses": _addresses(proxy.get("listen_address")),
            }
        )
    return out


def _ports(entry):
    low, high = entry["low"], entry["high"]
    return str(low) if low == high else f"{low}-{high}"


def port_clashes(pillar):
    """A listener that another one already holds (same protocol, overlapping ports and
    addresses) is an error at the later listener's key path. Single ports are indexed by
    (protocol, port), so hundreds of streams cost no pairwise scan; only port ranges
    (coturn's relay range) are compared with everything."""
    errors = []
    by_port = {}  # (protocol, port) -> [(index, entry)]
    ranges = []  # [(index, entry)]
    entries = listeners(pillar)
    for idx, entry in enumerate(entries):
        if entry["low"] == entry["high"]:
            candidates = [c for p in entry["protocols"] for c in by_port.get((p, entry["low"]), [])]
            candidates += [
                (i, other) for i, other in ranges
                if other["low"] <= entry["low"] <= other["high"]
            ]
        else:
            candidates = list(enumerate(entries[:idx]))
        for _, other in sorted(candidates, key=lambda c: c[0]):
            common = [p for p in entry["protocols"] if p in other["protocols"]]
            if not common or entry["low"] > other["high"] or other["low"] > entry["high"]:
                continue
            if not _overlap(entry["addresses"], other["addresses"]):
                continue
            errors.append(
                (
                    entry["key"],
                    f"{_ports(entry)}/{'+'.join(common)} of {entry['label']} clashes with "
                    f"{other['label']} ({other['key']}: {_ports(other)}/"
                    f"{'+'.join(other['protocols'])})",
                )
            )
            break
        if entry["low"] == entry["high"]:
            for proto in entry["protocols"]:
                by_port.setdefault((proto, entry["low"]), []).append((idx, entry))
        else:
            ranges.append((idx, entry))
    return errors


def check_pillar(pillar, env):  # pylint: disable=unused-argument
    """Semantic checks of the nginx block, and port clashes on the edge node."""
    nginx = hecate_config.traverse(pillar, PILLAR_KEY)
    errors = semantic_errors(nginx) if isinstance(nginx, dict) else []
    return errors + port_clashes(pillar)


def normalise(raw, pillar=None):
    """
    Settings (defaults merged) of a ``hecate:reverse_proxy:nginx`` block; raises
    ``SaltInvocationError`` listing every error with its key path. ``pillar`` (the full
    pillar, with ``raw`` in place) adds the port-clash checks against Caddy and coturn.
    """
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise salt.exceptions.SaltInvocationError(f"{PILLAR_KEY}: expected a mapping")
    errors = hecate_schema.fragment_errors(raw, NGINX_SCHEMA, PILLAR_KEY)
    if not errors:
        errors = semantic_errors(raw)
        if pillar is not None:
            errors += [e for e in port_clashes(pillar) if e[0].startswith(PILLAR_KEY)]
    if errors:
        raise salt.exceptions.SaltInvocationError(
            "invalid nginx stream pillar:\n"
            + "\n".join(f"{path}: {msg}" for path, msg in sorted(set(errors)))
        )
    settings = hecate_config.deep_merge(DEFAULTS, {k: v for k, v in raw.items() if k != "tcp_proxies"})
    settings["tcp_proxies"] = [
        hecate_config.deep_merge(STREAM_DEFAULTS, proxy) for proxy in raw.get("tcp_proxies") or []
    ]
    return settings
