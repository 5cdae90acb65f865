"""
Route checks (_utils/hecate_route_checks.py): the certificate check against real TLS and
plain-HTTP listeners on loopback (certificates from a trustme CA), the request through the
edge, and the helpers of ``hecate.route``.
"""

import datetime
import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import trustme

import hecate_route_checks as rc

NOW = datetime.datetime.now(datetime.timezone.utc)


class _Echo(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):  # noqa: N802
        status = 503 if self.path == "/down" else 200
        body = (self.headers.get("Host") or "").encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def server():
    """``server(cert=None)``: an HTTP server on loopback (TLS with ``cert``, SNI-blind)."""
    started = []

    def start(cert=None):
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
        httpd.daemon_threads = True
        if cert is not None:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            cert.configure_cert(ctx)
            httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        started.append(httpd)
        return httpd.server_address[1]

    yield start
    for httpd in started:
        httpd.shutdown()
        httpd.server_close()


def test_listeners_to_ask_on():
    assert rc.tcp_targets([":443", "127.0.0.1:8443", "udp/:443", "unix//run/caddy.sock", "[::]:9443",
                           "tcp6/:9444", "{env.PORT}"]) == [
        ("127.0.0.1", 443, ":443"), ("127.0.0.1", 8443, "127.0.0.1:8443"), ("127.0.0.1", 9443, "[::]:9443"),
        ("::1", 9444, "tcp6/:9444")]


def test_certificate_details_days_left_and_the_warning(server):
    ca = trustme.CA(organization_name="Lab CA")
    soon = ca.issue_cert("app.example.com", not_after=NOW + datetime.timedelta(days=10))
    port = server(soon)
    got = rc.check_certificates([f"127.0.0.1:{port}"], ["app.example.com"], warn_days=14)
    entry = got["domains"]["app.example.com"]
    assert got["listener"] == f"127.0.0.1:{port}"
    assert entry["issuer"].startswith("Lab CA") and entry["names"] == ["app.example.com"]
    assert 9.9 <= entry["days_left"] <= 10.0 and entry["expiring"] is True and entry["covers_domain"] is True
    assert entry["ok"] is False and "expires in 10.0 days (under 14)" in entry["problem"]
    assert got["expiring"] == ["app.example.com"] and got["ok"] is False
    # with a lower threshold the same certificate is fine
    fine = rc.check_certificates([f"127.0.0.1:{port}"], ["app.example.com"], warn_days=5)
    assert fine["ok"] is True and fine["domains"]["app.example.com"]["ok"] is True and fine["expiring"] == []


def test_a_certificate_that_does_not_cover_the_domain_or_expired_fails(server):
    ca = trustme.CA()
    other = ca.issue_cert("*.other.example.com", not_after=NOW + datetime.timedelta(days=90))
    got = rc.check_certificates([f"127.0.0.1:{server(other)}"], ["app.example.com", "x.other.example.com"])
    assert got["domains"]["app.example.com"]["problem"].startswith("does not cover app.example.com")
    assert got["domains"]["x.other.example.com"]["ok"] is True  # a wildcard name covers one label
    expired = ca.issue_cert("old.example.com", not_before=NOW - datetime.timedelta(days=100),
                            not_after=NOW - datetime.timedelta(days=2))
    got = rc.check_certificates([f"127.0.0.1:{server(expired)}"], ["old.example.com"])
    assert "expired 2.0 days ago" in got["domains"]["old.example.com"]["problem"]


def test_a_plain_http_listener_is_no_tls_listener_not_a_failure(server):
    port = server()
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    got = rc.check_certificates([f"127.0.0.1:{closed}", f"127.0.0.1:{port}"], ["a.example.com", "*.w.example.com"])
    assert got["ok"] is True and got["listener"] is None and got["expiring"] == []
    skipped = got["domains"]["a.example.com"]["skipped"]
    assert skipped.startswith("no TLS listener (") and f"127.0.0.1:{port}: answered in plain text" in skipped
    assert f"127.0.0.1:{closed}: " in skipped
    assert got["domains"]["*.w.example.com"]["skipped"].startswith("wildcard domain")
    # the TLS listener after a plain one is found
    tls = server(trustme.CA().issue_cert("a.example.com"))
    got = rc.check_certificates([f"127.0.0.1:{port}", f"127.0.0.1:{tls}"], ["a.example.com"])
    assert got["listener"] == f"127.0.0.1:{tls}" and got["domains"]["a.example.com"]["covers_domain"] is True


def test_route_hosts_are_those_of_hecates_routes():
    routes = [
        {"@id": "hecate.route.a", "match": [{"host": ["a.example.com", "b.example.com"]}]},
        {"match": [{"host": ["site.example.com"]}]},
        {"@id": "hecate.route.consul.w", "match": [{"host": ["W.example.com", "a.example.com"]}]},
        {"@id": "hecate.adhoc.x", "match": [{"host": ["x.example.com"], "path": ["/x"]}]},
    ]
    assert rc.route_hosts(routes) == ["a.example.com", "b.example.com", "w.example.com", "x.example.com"]


def test_serving_route_source_and_claimants():
    routes = [{"match": [{"host": ["a.example.com"]}, {"path": ["/x"]}]},
              {"@id": "hecate.route.wild", "match": [{"host": ["*.example.com"]}]},
              {"handle": [{"handler": "static_response"}]}]
    assert rc.serving_route(routes, "a.example.com") == (0, routes[0])
    assert rc.serving_route(routes, "b.example.com") == (1, routes[1])
    assert rc.serving_route(routes, "other.net") == (2, routes[2])  # the catch-all takes it
    assert rc.serving_route(routes[:2], "other.net") == (None, None)
    data = {"routes": [{"domain": "*.example.com", "backend": "x:1"},
                       {"domains": ["a.example.com"], "backend": "x:1", "enabled": False},
                       {"domains": ["b.example.com", "A.example.com."], "backend": "x:1"}]}
    assert rc.pillar_source(data, "a.example.com") == (2, data["routes"][2])
    assert rc.pillar_source(data, "c.example.com") == (0, data["routes"][0])
    assert rc.pillar_source(data, "c.example.net") == (None, None)
    answer = {"s": [{"meta": {"hecate_domain": "x.example.com, a.example.com"}}], "t": [{"meta": {}}]}
    assert rc.claimants(answer, "a.example.com") == ["s"]
    assert [rc.owner(i) for i in ("hecate.route.consul.w", "hecate.route.a", "hecate.adhoc.b", None)] == [
        "Consul (caddy_routes.managed)", "pillar (caddy_routes.managed)", "ad-hoc (caddy_route.present)",
        "not hecate's"]


def test_the_request_through_the_edge_sends_the_domain_as_host(server):
    port = server()
    got = rc.request("app.example.com", {"url": f"http://127.0.0.1:{port}/"})
    assert got["status"] == 200 and got["ok"] is True and got["ms"] >= 0
    assert got["url"] == f"http://127.0.0.1:{port}/" and got["host"] == "app.example.com"
    down = rc.request("app.example.com", {"url": f"http://127.0.0.1:{port}", "path": "/down"})
    assert down["status"] == 503 and down["ok"] is False
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    gone = rc.request("app.example.com", {"url": f"http://127.0.0.1:{closed}"})
    assert gone["ok"] is False and "unreachable" in gone["error"]
    assert rc.render([rc.row("dns", True, "fine"), rc.row("request", False, "503"), rc.row("x", None, "-")],
                     "app.example.com") == [
        "route app.example.com", "  dns           ok    fine", "  request       FAIL  503", "  x             -     -"]
