"""
Helpers for the Caddy tests: loopback HTTP(S) backends that echo what they received, a
stand-in for the Authentik outpost's forward-auth endpoint, and requests through Caddy's
listener with a Host header (over TLS with SNI, verified against Caddy's internal CA, for
a Caddy with automatic HTTPS on).
"""

import copy
import http.client
import json
import os
import socket
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests

from lab import caddy as lab_caddy


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # quiet
        pass

    def _send(self, status, body, headers=None, ctype="application/json"):
        data = body if isinstance(body, bytes) else body.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for key, val in (headers or {}).items():
            self.send_header(key, val)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):  # noqa: N802
        self.server.owner.handle(self)

    do_POST = do_GET  # noqa: N815


class Backend:
    """An HTTP (or HTTPS, with ``cert``) server on 127.0.0.1 that echoes each request."""

    def __init__(self, name, cert=None):
        self.name = name
        self.healthy = True
        self.seen = []
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.owner = self
        if cert is not None:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            cert.configure_cert(ctx)
            self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def port(self):
        return self.httpd.server_address[1]

    @property
    def dial(self):
        return f"127.0.0.1:{self.port}"

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def handle(self, req):
        self.seen.append({"path": req.path, "headers": dict(req.headers.items())})
        if req.path == "/healthz":
            req._send(200 if self.healthy else 503, "ok" if self.healthy else "down", ctype="text/plain")
            return
        if req.path == "/big":
            req._send(200, "hecate " * 2000, ctype="text/plain")
            return
        body = {"backend": self.name, "method": req.command, "path": req.path, "headers": dict(req.headers.items())}
        req._send(200, json.dumps(body), headers={"Server": f"backend-{self.name}"})


class FakeOutpost(Backend):
    """
    The Authentik outpost's side of forward auth (``/outpost.goauthentik.io/auth/caddy``):
    a request whose cookie holds ``session=alice`` is allowed (200 + X-Authentik-* headers),
    anything else is sent to the outpost's login start (302).
    """

    def handle(self, req):
        self.seen.append({"path": req.path, "headers": dict(req.headers.items())})
        if req.path.startswith("/outpost.goauthentik.io/auth/caddy"):
            if "session=alice" in (req.headers.get("Cookie") or ""):
                req._send(
                    200,
                    "",
                    headers={"X-Authentik-Username": "alice", "X-Authentik-Groups": "hecate-admins"},
                )
            else:
                uri = req.headers.get("X-Forwarded-Uri", "")
                req._send(302, "", headers={"Location": f"/outpost.goauthentik.io/start?rd={uri}"})
            return
        if req.path.startswith("/outpost.goauthentik.io/"):
            req._send(200, json.dumps({"outpost": True, "path": req.path}))
            return
        req._send(404, "{}")


def through(caddy, host, path="/", headers=None, timeout=5):
    """A GET sent to Caddy's listener for ``host``."""
    hdrs = {"Host": host}
    hdrs.update(headers or {})
    return requests.get(
        f"http://127.0.0.1:{caddy.http_port}{path}", headers=hdrs, timeout=timeout, allow_redirects=False
    )


def as_adapted(route):
    """
    A route hecate built, without what hecate adds to every route (its @id, the deletion of
    client-sent X-Authentik* headers): what ``caddy adapt`` makes of the same site block.
    """
    import hecate_caddy_routes  # pylint: disable=import-outside-toplevel

    obj = copy.deepcopy(route)
    obj.pop("@id")
    sub = obj["handle"][0]["routes"]
    assert sub[0] == hecate_caddy_routes.STRIP_IDENTITY, sub[0]
    obj["handle"][0]["routes"] = sub[1:]
    return obj


def reset(caddy):
    """Put Caddy back to its initial config (one empty server 'hecate')."""
    with open(caddy.config_path, encoding="utf-8") as fh:
        cfg = json.load(fh)
    resp = requests.post(
        caddy.admin_url + "/load",
        data=json.dumps(cfg),
        headers={"Content-Type": "application/json", "Cache-Control": "must-revalidate"},
        timeout=10,
    )
    resp.raise_for_status()


def raw_config(caddy):
    resp = requests.get(caddy.admin_url + "/config/", timeout=10)
    resp.raise_for_status()
    return resp.content


def writes(caddy):
    return len(caddy.admin_writes())


def wait_for(predicate, timeout=10.0, interval=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


def new_caddy(workdir):
    os.makedirs(workdir, exist_ok=True)
    return lab_caddy.Caddy(workdir).start()


def adapt(caddyfile, workdir):
    """
    The routes ``caddy adapt`` (the real binary) makes of a Caddyfile with one server: what
    an operator migrating to hecate has in Caddy when they load their old Caddyfile.
    """
    (server,) = lab_caddy.adapt(caddyfile, workdir)["apps"]["http"]["servers"].values()
    return server["routes"]


def internal_root(caddy):
    """The root certificate (PEM) of Caddy's ``internal`` CA, from the admin API."""
    resp = requests.get(caddy.admin_url + "/pki/ca/local", timeout=10)
    resp.raise_for_status()
    return resp.json()["root_certificate"]


def through_tls(caddy, host, path="/", headers=None, port=None, ip="127.0.0.1", ca=None, timeout=10.0):
    """
    ``(status, headers, body)`` of a GET over TLS to Caddy's HTTPS listener (or ``port``) at
    ``ip``, with SNI and Host ``host``, the certificate verified against ``ca`` (default: the
    root of Caddy's internal CA). Caddy obtains certificates in the background after a config
    change, so a handshake it cannot serve yet is retried until ``timeout``.
    """
    ctx = ssl.create_default_context(cadata=ca or internal_root(caddy))
    hdrs = {"Host": host, "User-Agent": "hecate-tests"}
    hdrs.update(headers or {})
    deadline = time.monotonic() + timeout
    while True:
        sock = socket.create_connection((ip, port or caddy.https_port), timeout=5)
        try:
            tls = ctx.wrap_socket(sock, server_hostname=host)
        except ssl.SSLCertVerificationError:
            sock.close()
            raise
        except ssl.SSLError:
            sock.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
            continue
        conn = http.client.HTTPConnection(host, timeout=5)
        conn.sock = tls
        try:
            conn.request("GET", path, headers=hdrs)
            resp = conn.getresponse()
            return resp.status, dict(resp.getheaders()), resp.read()
        finally:
            conn.close()


def put_routes(caddy, routes, server="hecate"):
    """Replace a server's routes by hand (someone else's change, not hecate's)."""
    resp = requests.patch(
        f"{caddy.admin_url}/config/apps/http/servers/{server}/routes",
        data=json.dumps(routes),
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    resp.raise_for_status()
