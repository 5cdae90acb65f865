"""
Checks of a route as it runs: the certificate the edge serves for its domain (a TLS handshake
with SNI), a real request through the edge, and the rows of ``salt-run hecate.route`` (where
the route comes from, what Caddy has, its upstreams' health, forward auth, DNS).

Certificates (``caddy.certificates`` on the edge, ``hecate.status``): the edge's Caddy server
(``hecate:reverse_proxy:caddy:server``) is asked, on the addresses it listens on, for the
certificate of each route domain. A listener that answers the TLS ClientHello with plain text
(the lab's HTTP listener) is reported as "no TLS listener", not as a failure; a TLS listener
that has no certificate for a domain (a TLS alert) is a failure, and so is a certificate that
expires in fewer than ``warn_days`` days (14 by default) or does not cover the domain.
"""

import datetime
import socket
import ssl
import time

import salt.exceptions
from cryptography import x509
from cryptography.x509.oid import NameOID

import hecate_caddy_apply
import hecate_caddy_routes
import hecate_consul_routes
import hecate_http

PROBE_PATH = "hecate:reverse_proxy:caddy:probe"
CERTS_PATH = "hecate:reverse_proxy:caddy:certificates"
WARN_DAYS = 14
HANDSHAKE_TIMEOUT = 5.0

PILLAR_SCHEMA = {
    PROBE_PATH: {
        "type": "object",
        "additionalProperties": False,
        "description": "How salt-run hecate.route sends its request through the edge.",
        "properties": {
            "url": {
                "type": "string",
                "pattern": r"^https?://[^\s/]+/?$",
                "description": (
                    "Base URL of an edge listener the master can reach (e.g. http://127.0.0.1:8080 "
                    "in the lab); the request carries the route's domain as Host header. Default: "
                    "https://<domain>, resolved by the master's resolver."
                ),
            },
            "path": {"type": "string", "pattern": "^/", "description": "Path requested (default /)."},
            "timeout": {"type": "number", "exclusiveMinimum": 0, "description": "Seconds (default 10)."},
            "ca_bundle": {
                "type": ["string", "null"],
                "description": "CA bundle (on the master) that verifies the edge's certificate; default: the system's.",
            },
        },
    },
    CERTS_PATH: {
        "type": "object",
        "additionalProperties": False,
        "description": "The certificate check of hecate.status.",
        "properties": {
            "warn_days": {
                "type": "integer",
                "minimum": 0,
                "description": "Flag a route's certificate that expires in fewer days than this (default 14).",
            },
        },
    },
}


# -- certificates ------------------------------------------------------------------------------------
def tcp_targets(listen):
    """``[(host, port, address)]`` to connect to for a Caddy server's ``listen`` addresses."""
    out = []
    for addr in listen or []:
        parsed = hecate_caddy_apply.parse_listener(addr)
        if parsed is None or parsed[0] != "tcp":
            continue  # unix sockets, udp (HTTP/3), placeholders
        _, version, host, first, _ = parsed
        host = host or ("::1" if version == "6" else "127.0.0.1")  # a wildcard: ask on loopback
        if (host, first) not in [(h, p) for h, p, _ in out]:
            out.append((host, first, addr))
    return out


def handshake(host, port, server_name, timeout=HANDSHAKE_TIMEOUT):
    """
    A TLS handshake with SNI ``server_name``, certificate not verified (we read it, we do not
    trust it): ``("tls", der)``, ``("alert", why)`` (a TLS listener that refused: usually no
    certificate for that name), ``("plain", why)`` (the listener does not speak TLS) or
    ``("unreachable", why)``.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except OSError as exc:
        return "unreachable", exc.strerror or str(exc)
    try:
        with ctx.wrap_socket(sock, server_hostname=server_name) as tls:
            return "tls", tls.getpeercert(binary_form=True)
    except ssl.SSLError as exc:
        reason = str(getattr(exc, "reason", None) or exc)
        if "ALERT" in reason.upper():
            return "alert", f"TLS alert: {reason.lower().replace('_', ' ')}"
        if isinstance(exc, ssl.SSLEOFError):
            return "plain", "closed the connection without a TLS answer"
        return "plain", f"answered in plain text ({reason.lower().replace('_', ' ')})"
    except TimeoutError:
        return "plain", f"no TLS answer within {timeout:g}s"
    except OSError as exc:
        return "plain", f"closed the connection without a TLS answer ({exc.strerror or exc})"
    finally:
        sock.close()


def _name(name):
    for oid in (NameOID.COMMON_NAME, NameOID.ORGANIZATION_NAME):
        attrs = name.get_attributes_for_oid(oid)
        if attrs:
            return str(attrs[0].value)
    return name.rfc4514_string()


def describe_certificate(der, domain, warn_days=WARN_DAYS, now=None):
    """Issuer, subject names, not-after, days left, and whether it is expiring or wrong."""
    cert = x509.load_der_x509_certificate(der)
    now = now or datetime.datetime.now(datetime.timezone.utc)
    not_after = cert.not_valid_after_utc
    days = (not_after - now).total_seconds() / 86400
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
            x509.DNSName)
    except x509.ExtensionNotFound:
        names = [_name(cert.subject)]
    covers = any(hecate_caddy_routes.host_covers(str(n).lower(), domain) for n in names)
    out = {
        "issuer": _name(cert.issuer),
        "issuer_dn": cert.issuer.rfc4514_string(),
        "names": sorted(str(n) for n in names),
        "not_after": not_after.isoformat(timespec="seconds"),
        "days_left": round(days, 1),
        "covers_domain": covers,
        "expiring": days < warn_days,
    }
    problems = []
    if days < 0:
        problems.append(f"expired {-days:.1f} days ago")
    elif days < warn_days:
        problems.append(f"expires in {days:.1f} days (under {warn_days})")
    if not covers:
        problems.append(f"does not cover {domain} (names: {', '.join(out['names'])})")
    out["ok"] = not problems
    if problems:
        out["problem"] = "; ".join(problems)
    return out


def check_certificates(listen, domains, warn_days=WARN_DAYS, timeout=HANDSHAKE_TIMEOUT, now=None):
    """
    ``{"listener", "domains": {domain: {...}}, "expiring": [...], "ok"}`` for a server that
    listens on ``listen``. The first listener that speaks TLS is used; when none does, every
    domain is ``{"skipped": "no TLS listener (...)"}`` and the result is ok.
    """
    targets = tcp_targets(listen)
    out = {"listener": None, "domains": {}, "expiring": [], "ok": True}
    names = [d for d in domains if not d.startswith("*.")]
    for dom in domains:
        if dom.startswith("*."):
            out["domains"][dom] = {"skipped": "wildcard domain: no single name to ask the certificate of"}
    if not names:
        return out
    plain = []
    chosen = None
    for host, port, addr in targets:
        kind, got = handshake(host, port, names[0], timeout)
        if kind in ("tls", "alert"):
            chosen = (host, port, addr, kind, got)
            break
        plain.append(f"{addr}: {got}")
    if chosen is None:
        why = "; ".join(plain) or "the server listens on no TCP address"
        for dom in names:
            out["domains"][dom] = {"skipped": f"no TLS listener ({why})"}
        return out
    host, port, addr, kind, got = chosen
    out["listener"] = addr
    for idx, dom in enumerate(names):
        if idx:
            kind, got = handshake(host, port, dom, timeout)
        if kind == "tls":
            entry = describe_certificate(got, dom, warn_days, now)
            if entry["expiring"]:
                out["expiring"].append(dom)
        elif kind == "alert":
            entry = {"ok": False, "problem": f"no certificate for {dom} on {addr} ({got})"}
        else:
            entry = {"ok": False, "problem": f"{addr}: {got}"}
        out["domains"][dom] = entry
        out["ok"] = out["ok"] and entry["ok"]
    return out


def route_hosts(routes):
    """The domains of a server's hecate routes (``@id`` hecate.route.* / hecate.adhoc.*), in order."""
    out = []
    for route in routes or []:
        rid = route.get("@id") if isinstance(route, dict) else None
        if not str(rid or "").startswith((hecate_caddy_routes.ID_PREFIX, hecate_caddy_routes.ADHOC_PREFIX)):
            continue
        for mset in route.get("match") or []:
            for host in (mset.get("host") or []) if isinstance(mset, dict) else []:
                if host not in out:
                    out.append(str(host).lower())
    return out


# -- a request through the edge ---------------------------------------------------------------------
def request(domain, probe=None, path=None):
    """
    ``{"url", "status", "ms", "ok"}`` of one GET for ``domain`` through the edge (``probe``:
    pillar ``hecate:reverse_proxy:caddy:probe``), or ``{"url", "error", "ok": False}``. Any
    status below 500 is ok: 5xx is what Caddy answers when the upstream is down.
    """
    probe = probe or {}
    path = path or probe.get("path") or "/"
    if probe.get("url"):
        base, headers = probe["url"].rstrip("/"), {"Host": domain}
    else:
        base, headers = f"https://{domain}", {}
    url = base + path
    try:
        client = hecate_http.Client(base, f"the edge ({domain})", retries=0, timeout=probe.get("timeout", 10),
                                    ca_bundle=probe.get("ca_bundle"), config_key=PROBE_PATH)
        started = time.monotonic()
        resp = client.request("GET", path, ok=range(100, 600), headers=headers, allow_redirects=False)
        elapsed = (time.monotonic() - started) * 1000
    except (hecate_http.Unreachable, salt.exceptions.SaltInvocationError) as exc:
        return {"url": url, "host": domain, "error": str(exc), "ok": False}
    out = {"url": url, "host": domain, "status": resp.status_code, "ms": round(elapsed, 1),
           "ok": resp.status_code < 500}
    if resp.is_redirect:
        out["location"] = resp.headers.get("Location")
    return out


# -- hecate.route ------------------------------------------------------------------------------------
def row(aspect, ok, summary, **detail):
    """One row of ``hecate.route``: ``ok`` True, False, or None (nothing to judge)."""
    return {"aspect": aspect, "ok": ok, "summary": summary, **detail}


def render(rows, domain):
    """The rows as text lines, one per aspect."""
    marks = {True: "ok", False: "FAIL", None: "-"}
    lines = [f"route {domain}"]
    lines += [f"  {r['aspect']:<13} {marks[r['ok']]:<5} {r['summary']}" for r in rows]
    return lines


def pillar_source(data, domain):
    """``(index, spec)`` of the enabled pillar route serving ``domain`` (exact first, then a wildcard)."""
    routes = data.get("routes") if isinstance(data.get("routes"), list) else []
    exact, wild = None, None
    for idx, spec in enumerate(routes):
        if not isinstance(spec, dict) or spec.get("enabled") is False:
            continue
        doms = [str(d).lower().rstrip(".") for d in _as_list(spec.get("domain")) + _as_list(spec.get("domains"))]
        if domain in doms and exact is None:
            exact = (idx, spec)
        elif wild is None and any(hecate_caddy_routes.host_covers(d, domain) for d in doms):
            wild = (idx, spec)
    return exact or wild or (None, None)


def _as_list(value):
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def claimants(answer, domain):
    """The Consul services whose ``meta.hecate_domain`` names ``domain``."""
    out = []
    for service, instances in sorted((answer or {}).items()):
        for inst in instances:
            raw = inst.get("meta", {}).get(hecate_consul_routes.META_DOMAIN, "")
            if domain in [d.strip().lower().rstrip(".") for d in raw.split(",")]:
                out.append(service)
                break
    return out


def serving_route(routes, domain):
    """``(index, route)`` of the first of a server's routes that serves ``domain``, or (None, None)."""
    for idx, route in enumerate(routes or []):
        if not isinstance(route, dict):
            continue
        for mset in route.get("match") or []:
            hosts = (mset.get("host") or []) if isinstance(mset, dict) else []
            if any(hecate_caddy_routes.host_covers(p, domain) for p in hosts):
                return idx, route
        if hecate_caddy_routes.takes_every_request(route, domain):
            return idx, route
    return None, None


def owner(route_id):
    rid = str(route_id or "")
    if rid.startswith(hecate_consul_routes.ID_PREFIX):
        return "Consul (caddy_routes.managed)"
    if rid.startswith(hecate_caddy_routes.ID_PREFIX):
        return "pillar (caddy_routes.managed)"
    if rid.startswith(hecate_caddy_routes.ADHOC_PREFIX):
        return "ad-hoc (caddy_route.present)"
    return "not hecate's"
