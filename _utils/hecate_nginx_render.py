"""
nginx's main configuration file from normalised ``hecate:reverse_proxy:nginx`` settings
(``hecate_nginx_schema.normalise``).

:func:`resolve_streams` turns each stream into its listen directive, upstream name and
``server`` lines (asking Consul, through a callable, for the streams that name a
``consul_service``); :func:`render` writes the whole file: a main context, ``events`` and
one ``stream`` block.
"""

import ipaddress
import re

import salt.exceptions

import hecate_nginx_schema


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
        key = f"{hecate_nginx_schema.PILLAR_KEY}:tcp_proxies:{idx}"
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
            ip = hecate_nginx_schema.parse_ip(addr)
            listen = f"[{ip}]:{proxy['listen_port']}" if ip.version == 6 else f"{ip}:{proxy['listen_port']}"
        else:
            listen = str(proxy["listen_port"])
        streams.append(
            {
                "key": key,
                "name": proxy["name"],
                "upstream": hecate_nginx_schema.upstream_name(proxy["name"]),
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
