"""
nginx TCP/UDP stream proxies of the Hecate edge, from pillar ``hecate:reverse_proxy:nginx``.

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

This module holds the pillar schema (:data:`PILLAR_SCHEMA`, :func:`check_pillar`: port
clashes between streams, Caddy, WireGuard and coturn), the renderer (:func:`render`) and
the nginx mechanics the state uses: the stream module of this build (``nginx -V``), ``nginx -t``
on a candidate file, the running master (pid file, worker processes) and confirmation
that a reload took effect.
"""

import contextlib
import ipaddress
import os
import re
import signal
import subprocess
import tempfile
import time

import jsonschema
import salt.exceptions

import hecate_config
import hecate_coturn
import hecate_schema
import hecate_wireguard

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
SERVER_PROPS = {
    "address": {"type": "string", "pattern": HOSTPORT},
    "weight": {"type": "integer", "minimum": 1, "maximum": 1000},
    "max_fails": {"type": "integer", "minimum": 0},
    "fail_timeout": DURATION,
    "backup": {"type": "boolean"},
    "down": {"type": "boolean"},
}
BACKEND_ITEM = {
    "type": ["string", "object"],
    "pattern": HOSTPORT,
    "required": ["address"],
    "additionalProperties": False,
    "properties": SERVER_PROPS,
}
CONSUL_SERVICE = {
    "type": ["string", "object"],
    "pattern": NAME,
    "required": ["name"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "pattern": NAME},
        "port": PORT,
        "passing": {"type": "boolean"},
    },
}
PROXY = {
    "type": "object",
    "required": ["name", "listen_port"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "pattern": NAME},
        "listen_port": PORT,
        "listen_address": {"type": "string", "pattern": r"^[0-9A-Fa-f:.\[\]]+$"},
        "protocol": {"enum": ["tcp", "udp"]},
        "backend": {"type": "string", "pattern": HOSTPORT},
        "backends": {
            "type": "array",
            "minItems": 1,
            "items": BACKEND_ITEM,
        },
        "consul_service": CONSUL_SERVICE,
        "balance": {"enum": ["round_robin", "least_conn", "random", "hash"]},
        "timeouts": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"connect": DURATION, "proxy": DURATION},
        },
        "max_fails": {"type": "integer", "minimum": 0},
        "fail_timeout": DURATION,
        "proxy_responses": {"type": "integer", "minimum": 0},
        "access_log": {"type": "boolean"},
    },
}
NGINX_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "version": {"type": ["string", "null"]},
        "tcp_proxies": {"type": "array", "items": PROXY},
        "binary": {"type": "string", "pattern": PATH},
        "config_file": {"type": "string", "pattern": PATH},
        "pid_file": {"type": "string", "pattern": PATH},
        "error_log": {"type": "string", "pattern": PATH},
        "error_log_level": {
            "enum": ["debug", "info", "notice", "warn", "error", "crit", "alert", "emerg"]
        },
        "access_log": {"type": ["string", "null"], "pattern": PATH},
        "log_format": {"type": "string", "pattern": r"^[^'\\\x00-\x1f]+$"},
        "user": {"type": ["string", "null"], "pattern": UNIX_NAME},
        "worker_processes": {
            "type": ["string", "integer"], "pattern": "^auto$", "minimum": 1, "maximum": 1024
        },
        "worker_connections": {"type": "integer", "minimum": 16, "maximum": 1048576},
        "worker_rlimit_nofile": {"type": ["integer", "null"], "minimum": 1},
        "stream_module": {"type": "string", "pattern": r"^(auto|builtin|/[^\s;{}'\"\\#$]*)$"},
        "manage_service": {"type": "boolean"},
        "service": {"type": ["string", "null"], "pattern": r"^[A-Za-z0-9@_.-]+$"},
        "reload_timeout": {"type": "number", "exclusiveMinimum": 0, "maximum": 300},
        "file_mode": {"type": "string", "pattern": r"^0?[0-7]{3}$"},
        "file_user": {"type": ["string", "null"], "pattern": UNIX_NAME},
        "file_group": {"type": ["string", "null"], "pattern": UNIX_NAME},
        "packages": {"type": "array", "items": {"type": "string", "pattern": r"^[a-z0-9][a-z0-9+.-]*$"}},
    },
}
PILLAR_SCHEMA = {PILLAR_KEY: NGINX_SCHEMA}


def _fragment_errors(raw, schema, where):
    validator = jsonschema.Draft202012Validator(schema)
    errors = []
    for error in validator.iter_errors(raw):
        for path, msg in hecate_schema.format_error(error):
            errors.append((where if path == "(top)" else f"{where}:{path}", msg))
    return errors


def _ip(text):
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
                _ip(addr)
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
        ip = _ip(addr)
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
    wireguard = hecate_config.traverse(pillar, hecate_wireguard.PILLAR_PATH)
    if isinstance(wireguard, dict) and not wireguard.get("netns"):
        port = wireguard.get("listen_port", hecate_wireguard.DEFAULTS["listen_port"])
        if isinstance(port, int) and not isinstance(port, bool):
            out.append(
                {
                    "key": f"{hecate_wireguard.PILLAR_PATH}:listen_port",
                    "label": "WireGuard's listen port",
                    "protocols": ("udp",),
                    "low": port,
                    "high": port,
                    "addresses": [(4, None), (6, None)],
                }
            )
    out.extend(hecate_coturn.listeners(pillar))
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
    errors = _fragment_errors(raw, NGINX_SCHEMA, PILLAR_KEY)
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


# -- upstreams ------------------------------------------------------------------------------
class ConsulUnavailable(LookupError):
    """Raised by a ``service_addresses`` callable when hecate_consul is not loaded."""


def _duration(value):
    return f"{value}s" if isinstance(value, int) else value


def _server_params(item, proxy):
    params = []
    weight = item.get("weight")
    if weight is not None:
        params.append(f"weight={weight}")
    max_fails = item.get("max_fails", proxy.get("max_fails"))
    if max_fails is not None:
        params.append(f"max_fails={max_fails}")
    fail_timeout = item.get("fail_timeout", proxy.get("fail_timeout"))
    if fail_timeout is not None:
        params.append(f"fail_timeout={_duration(fail_timeout)}")
    if item.get("backup"):
        params.append("backup")
    if item.get("down"):
        params.append("down")
    return params


def _consul_address(entry, port, service, key):
    if not isinstance(entry, str) or ":" not in entry:
        raise salt.exceptions.CommandExecutionError(
            f"{key}: hecate_consul.service_addresses({service!r}) returned {entry!r}, "
            "not 'address:port'"
        )
    host, _, got_port = entry.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        ip = ipaddress.ip_address(host)
        host = f"[{ip}]" if ip.version == 6 else str(ip)
    except ValueError:
        if not re.match(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$", host):
            raise salt.exceptions.CommandExecutionError(
                f"{key}: hecate_consul.service_addresses({service!r}) returned an unusable "
                f"address {entry!r}"
            ) from None
    if port is None:
        if not got_port.isdigit() or not 1 <= int(got_port) <= 65535:
            raise salt.exceptions.CommandExecutionError(
                f"{key}: hecate_consul.service_addresses({service!r}) returned {entry!r} "
                "without a valid port"
            )
        port = int(got_port)
    return f"{host}:{port}"


def resolve_streams(settings, service_addresses=None):
    """
    The streams ready to render: listen directive, upstream name, ``server`` lines.

    ``service_addresses(name, passing=True)`` lists ``"addr:port"`` of a Consul service
    (``hecate_consul.service_addresses``); it is needed only when a stream names a
    ``consul_service``. Consul addresses are sorted so that a re-ordered answer does not
    rewrite the file.
    """
    streams = []
    for idx, proxy in enumerate(settings["tcp_proxies"]):
        key = f"{PILLAR_KEY}:tcp_proxies:{idx}"
        servers = []
        if "backend" in proxy:
            servers.append((proxy["backend"], _server_params({}, proxy)))
            source = "static"
        elif "backends" in proxy:
            for item in proxy["backends"]:
                item = item if isinstance(item, dict) else {"address": item}
                servers.append((item["address"], _server_params(item, proxy)))
            source = "static"
        else:
            ref = proxy["consul_service"]
            ref = ref if isinstance(ref, dict) else {"name": ref}
            service, passing = ref["name"], ref.get("passing", True)
            unavailable = salt.exceptions.CommandExecutionError(
                f"{key}: stream {proxy['name']!r} takes its backends from Consul service "
                f"{service!r}, but hecate_consul.service_addresses is not available on "
                "this minion (sync the hecate_consul module: saltutil.sync_modules)"
            )
            if service_addresses is None:
                raise unavailable
            try:
                found = service_addresses(service, passing=passing)
            except ConsulUnavailable:
                raise unavailable from None
            except salt.exceptions.SaltException as exc:
                raise salt.exceptions.CommandExecutionError(
                    f"{key}: looking up Consul service {service!r} failed: {exc}"
                ) from None
            addresses = sorted(
                {_consul_address(a, ref.get("port"), service, key) for a in (found or [])}
            )
            if not addresses:
                raise salt.exceptions.CommandExecutionError(
                    f"{key}: Consul service {service!r} has no "
                    f"{'passing ' if passing else ''}instances; stream {proxy['name']!r} "
                    "would have no backend (the live configuration was left unchanged)"
                )
            servers = [(a, _server_params({}, proxy)) for a in addresses]
            source = f"consul service {service!r}{' (passing)' if passing else ''}"
        addr = proxy.get("listen_address")
        if addr:
            ip = _ip(addr)
            listen = f"[{ip}]:{proxy['listen_port']}" if ip.version == 6 else f"{ip}:{proxy['listen_port']}"
        else:
            listen = str(proxy["listen_port"])
        streams.append(
            {
                "key": key,
                "name": proxy["name"],
                "upstream": upstream_name(proxy["name"]),
                "protocol": proxy["protocol"],
                "listen": listen,
                "source": source,
                "servers": servers,
                "balance": proxy.get("balance", "round_robin"),
                "timeouts": proxy["timeouts"],
                "proxy_responses": proxy.get("proxy_responses"),
                "access_log": proxy.get("access_log", True),
            }
        )
    return streams


# -- rendering ------------------------------------------------------------------------------
HEADER = (
    "# Managed by Salt (hecate: nginx_config.managed, pillar hecate:reverse_proxy:nginx).\n"
    "# Local changes are overwritten; each version is checked with `nginx -t` before it\n"
    "# replaces this file.\n"
)
BALANCE = {"round_robin": None, "least_conn": "least_conn;", "random": "random;",
           "hash": "hash $remote_addr consistent;"}


def render(settings, streams, load_module=None, paths=None):
    """
    The whole nginx main configuration. ``paths`` (``{"error_log": p, "access_log": p,
    "pid_file": p}``) overrides the files nginx opens, for checking a preview without
    creating anything at the real paths (``nginx -t`` creates the log and pid files).
    """
    paths = paths or {}
    error_log = paths.get("error_log", settings["error_log"])
    access_log = paths.get("access_log", settings["access_log"])
    pid_file = paths.get("pid_file", settings["pid_file"])
    lines = [HEADER.rstrip("\n")]
    if load_module:
        lines.append(f"load_module {load_module};")
    lines.append("")
    if settings["user"]:
        lines.append(f"user {settings['user']};")
    lines.append(f"worker_processes {settings['worker_processes']};")
    if settings["worker_rlimit_nofile"]:
        lines.append(f"worker_rlimit_nofile {settings['worker_rlimit_nofile']};")
    lines.append(f"pid {pid_file};")
    lines.append(f"error_log {error_log} {settings['error_log_level']};")
    lines += ["", "events {", f"    worker_connections {settings['worker_connections']};", "}", ""]
    lines.append("stream {")
    lines.append(f"    log_format hecate_stream '{settings['log_format']}';")
    lines.append(f"    access_log {access_log} hecate_stream;" if access_log else "    access_log off;")
    for stream in streams:
        lines.append("")
        lines.append(f"    # stream {stream['name']!r} ({stream['key']}), servers: {stream['source']}")
        lines.append(f"    upstream {stream['upstream']} {{")
        if BALANCE[stream["balance"]]:
            lines.append(f"        {BALANCE[stream['balance']]}")
        for address, params in stream["servers"]:
            lines.append(f"        server {' '.join([address] + params)};")
        lines.append("    }")
        lines.append("    server {")
        udp = " udp reuseport" if stream["protocol"] == "udp" else ""
        lines.append(f"        listen {stream['listen']}{udp};")
        lines.append(f"        proxy_pass {stream['upstream']};")
        lines.append(f"        proxy_connect_timeout {_duration(stream['timeouts']['connect'])};")
        lines.append(f"        proxy_timeout {_duration(stream['timeouts']['proxy'])};")
        if stream["proxy_responses"] is not None:
            lines.append(f"        proxy_responses {stream['proxy_responses']};")
        if not stream["access_log"]:
            lines.append("        access_log off;")
        lines.append("    }")
    lines.append("}")
    return "\n".join(lines) + "\n"


# -- the nginx binary -----------------------------------------------------------------------
def _run(argv, timeout=60):
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except FileNotFoundError:
        raise salt.exceptions.CommandExecutionError(
            f"nginx not found at {argv[0]}: install nginx (Debian: nginx, libnginx-mod-stream; "
            "see hecate:reverse_proxy:nginx:packages) or set hecate:reverse_proxy:nginx:binary"
        ) from None
    except subprocess.TimeoutExpired:
        raise salt.exceptions.CommandExecutionError(
            f"{' '.join(argv[:3])} did not finish within {timeout}s"
        ) from None
    return proc.returncode, (proc.stdout or "") + (proc.stderr or "")


def build_info(binary):
    """``nginx -V``: ``{"version": "1.22.1", "configure": "--prefix=... --with-stream=dynamic ..."}``."""
    code, out = _run([binary, "-V"])
    if code != 0:
        raise salt.exceptions.CommandExecutionError(f"{binary} -V failed: {out.strip()}")
    version = re.search(r"nginx/([0-9.]+)", out)
    configure = re.search(r"configure arguments:(.*)", out)
    return {
        "version": version.group(1) if version else None,
        "configure": configure.group(1).strip() if configure else "",
    }


def stream_module(settings):
    """
    The ``load_module`` path for the stream module, or None when it is built in.
    ``stream_module: auto`` reads ``nginx -V``.
    """
    wanted = settings["stream_module"]
    if wanted == "builtin":
        return None
    if wanted != "auto":
        if not os.path.exists(wanted):
            raise salt.exceptions.CommandExecutionError(
                f"{PILLAR_KEY}:stream_module: {wanted} does not exist"
            )
        return wanted
    info = build_info(settings["binary"])
    args = info["configure"]
    if re.search(r"--with-stream=dynamic(\s|$)", args):
        found = re.search(r"--modules-path=(\S+)", args)
        if found:
            modules = found.group(1).strip("'\"")
        else:
            prefix = re.search(r"--prefix=(\S+)", args)
            modules = os.path.join(prefix.group(1).strip("'\"") if prefix else "/usr/share/nginx",
                                   "modules")
        path = os.path.join(modules, "ngx_stream_module.so")
        if not os.path.exists(path):
            raise salt.exceptions.CommandExecutionError(
                f"nginx's stream module is not installed: {path} is missing (Debian: "
                "libnginx-mod-stream; see hecate:reverse_proxy:nginx:packages)"
            )
        return path
    if re.search(r"--with-stream(\s|$)", args):
        return None
    raise salt.exceptions.CommandExecutionError(
        f"{settings['binary']} (nginx {info['version']}) is built without the stream module"
    )


def _stream_at(text, lineno):
    """The ``# stream`` comment above line ``lineno`` of a rendered config, if any."""
    found = None
    for idx, line in enumerate(text.splitlines(), start=1):
        if idx > lineno:
            break
        match = re.match(r"\s*# stream ('[^']*'|\"[^\"]*\") \(([^)]+)\)", line)
        if match:
            found = f"stream {match.group(1)} ({match.group(2)})"
        elif line.strip() == "}" and not line.startswith(" "):
            found = None
    return found


def check_config(binary, candidate, live_path, text=None):
    """
    ``nginx -t`` on ``candidate``; raise ``CommandExecutionError`` with nginx's message
    (the candidate's name replaced by ``live_path``, and the stream the failing line
    belongs to) when nginx rejects it.
    """
    code, out = _run([binary, "-t", "-q", "-c", candidate])
    if code == 0:
        return
    message = "\n".join(
        _strip_log_prefix(line) for line in out.strip().replace(candidate, f"{live_path} (candidate)").splitlines()
    )
    where = None
    if text is not None:
        line = re.search(r"\(candidate\):([0-9]+)", message)
        if line:
            where = _stream_at(text, int(line.group(1)))
    raise salt.exceptions.CommandExecutionError(
        f"nginx -t rejected the new configuration for {live_path}"
        + (f" in {where}" if where else "")
        + f"; {live_path} was left unchanged:\n{message}"
    )


def check_preview(settings, text_for, live_path):
    """
    ``nginx -t`` for a preview (test=True): the candidate goes to a private temporary
    directory, and the log and pid files it opens too, so nothing is created at the real
    paths. ``text_for(paths)`` renders the configuration with those paths.
    """
    with tempfile.TemporaryDirectory(prefix="hecate-nginx-preview-") as tmp:
        paths = {
            "error_log": os.path.join(tmp, "error.log"),
            "pid_file": os.path.join(tmp, "nginx.pid"),
        }
        if settings["access_log"]:
            paths["access_log"] = os.path.join(tmp, "access.log")
        candidate = os.path.join(tmp, "nginx.conf")
        text = text_for(paths)
        with open(candidate, "w", encoding="utf-8") as fh:
            fh.write(text)
        check_config(settings["binary"], candidate, live_path, text)


def check_dirs(settings):
    """The directories the config names must exist (nginx would fail on them later)."""
    for key in ("pid_file", "error_log", "access_log"):
        path = settings.get(key)
        if path and not os.path.isdir(os.path.dirname(path)):
            raise salt.exceptions.CommandExecutionError(
                f"{PILLAR_KEY}:{key}: directory {os.path.dirname(path)} does not exist"
            )


# -- the running nginx ----------------------------------------------------------------------
def master_pid(pid_file):
    """The pid of the running nginx master named by ``pid_file``, or None."""
    try:
        with open(pid_file, encoding="ascii") as fh:
            pid = int(fh.read().strip())
    except (OSError, ValueError):
        return None
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            cmdline = fh.read()
    except OSError:
        return None
    return pid if b"nginx" in cmdline else None


def workers(pid):
    """Pids of the processes whose parent is ``pid`` (the master's workers)."""
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as fh:
                fields = fh.read().rpartition(")")[2].split()
        except OSError:
            continue
        if len(fields) > 1 and fields[1] == str(pid):
            found.add(int(entry))
    return found


def log_size(path):
    try:
        return os.path.getsize(path)
    except OSError:
        return None


def _log_since(path, offset):
    if offset is None:
        return ""
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            return fh.read().decode("utf-8", "replace")
    except OSError:
        return ""


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def confirm_reload(pid, before, error_log, offset, timeout):
    """
    Wait until the master runs new workers and the old ones stopped accepting (they set
    their title to "worker process is shutting down" and close the listeners). Returns
    ``(True, "")`` or ``(False, reason)`` with nginx's ``[emerg]`` lines when the master
    refused the configuration (a port taken by another process, ...), kept its old
    workers, or did not react within ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    failed_at = None
    while time.monotonic() < deadline:
        if not _alive(pid):
            return False, "the nginx master exited"
        if workers(pid) - before and not _serving(before):
            return True, ""
        log = _log_since(error_log, offset)
        emerg = [line for line in log.splitlines() if "[emerg]" in line]
        retrying = log.rstrip().endswith("try again to bind() after 500ms")
        if emerg and not retrying:
            # nginx gave up and keeps the old workers; give it a moment to be sure
            failed_at = failed_at or time.monotonic()
            if time.monotonic() - failed_at > 0.5:
                return False, "\n".join(_strip_log_prefix(line) for line in emerg[-3:])
        time.sleep(0.05)
    return False, f"nginx did not start new workers within {timeout}s"


def _serving(old_workers):
    """Old workers still accepting connections (alive and not yet "shutting down")."""
    serving = set()
    for wpid in old_workers:
        try:
            with open(f"/proc/{wpid}/cmdline", "rb") as fh:
                title = fh.read()
        except OSError:
            continue
        if title and b"shutting down" not in title:
            serving.add(wpid)
    return serving


def _strip_log_prefix(line):
    """``2026/01/02 10:00:00 [emerg] 12#12: msg`` -> ``nginx: [emerg] msg``."""
    return re.sub(r"^[0-9/]+ [0-9:]+ \[(\w+)\] [0-9]+#[0-9]+: ", r"nginx: [\1] ", line)


def start(settings):
    """Start nginx directly (no service manager); it binds before daemonising."""
    code, out = _run([settings["binary"], "-c", settings["config_file"]])
    if code != 0:
        raise salt.exceptions.CommandExecutionError(f"nginx did not start:\n{out.strip()}")


def signal_reload(settings):
    """``nginx -s reload`` against the managed configuration (its ``pid`` file)."""
    code, out = _run([settings["binary"], "-c", settings["config_file"], "-s", "reload"])
    if code != 0:
        raise salt.exceptions.CommandExecutionError(f"nginx -s reload failed:\n{out.strip()}")


def stop(pid_file, timeout=10):
    """Stop the master of ``pid_file`` (tests and the lab); True when one was running."""
    pid = master_pid(pid_file)
    if pid is None:
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.05)
    return True
