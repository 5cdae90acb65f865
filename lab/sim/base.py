"""
Common base for the HTTP simulators (Vault, Consul, Nomad, Authentik).

A simulator is a werkzeug WSGI app served in its own process on a loopback port. It
reproduces the documented API of the real server; this base adds what every one of
them needs:

- a request log (method, path, status, and the token's name where the simulator knows
  it) readable over ``GET /_lab/requests`` so tests can count write calls and see who
  made them, cleared with ``DELETE /_lab/requests``;
- fault injection over ``POST /_lab/faults`` for requests matching a method, a path regex
  and optionally a query regex, ``times`` times: a status with a body, a delay, a dropped
  connection (``action: drop``: closed before the request is handled), a lost answer
  (``action: apply_then_drop``: the request is handled - a write is applied - and the
  connection is closed without an answer, as when a server restarts or a proxy times
  out after the backend committed), or an action of the simulator's own such as sealing
  Vault. A fault can wait for a trigger (``after``: it is dormant until a request matching
  that method/path arrives, and that request is faulted too if it matches) and end at one
  (``until``: retired when a matching request arrives, which passes), so a test can arm it
  before a run and be certain it hits the step it is meant for. ``GET /_lab/faults`` shows
  each fault's ``hits``, so a test can tell that its fault really happened;
- one lock around all handlers (state is shared between server threads) and a
  condition variable that blocking queries wait on and writes notify;
- optional TLS (``--tls-cert/--tls-key``) so clients' CA-bundle handling can be tested.

Control endpoints live under ``/_lab/`` and are never counted in the request log.
"""

import json
import re
import threading
import time

from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import Map
from werkzeug.wrappers import Request, Response

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class DropConnection(ConnectionError):
    """Raised by a fault: close the socket without an answer (werkzeug treats a
    ConnectionError from the app as a dropped connection and sends nothing)."""


class Simulator:
    """Subclasses set ``name``, implement :meth:`rules` and handlers ``on_<endpoint>``."""

    name = "base"
    # what an injected fault's body is sent as unless the fault says: the API's own error
    # content type (Consul and Nomad answer errors as text/plain: agent/http.go,
    # command/agent/http.go wrap)
    fault_mimetype = "application/json"

    def __init__(self, options=None):
        self.options = options or {}
        self.cond = threading.Condition()
        self.log = []
        self.faults = []
        self.url_map = Map(self.rules(), strict_slashes=False, merge_slashes=False)

    # -- to be provided by subclasses -------------------------------------------------
    def rules(self):
        return []

    def not_found(self, request):
        """Body for unknown paths; subclasses return their API's own 404 shape."""
        return Response("404 page not found\n", status=404, mimetype="text/plain")

    def method_not_allowed(self, request):
        return Response("method not allowed\n", status=405, mimetype="text/plain")

    def handle_error(self, request, exc):
        """Unexpected exception inside a handler: a 500 in the API's error shape."""
        return Response(f"internal error: {exc}\n", status=500, mimetype="text/plain")

    # -- helpers for handlers ------------------------------------------------------------
    @staticmethod
    def json(data, status=200, headers=None):
        return Response(
            json.dumps(data), status=status, mimetype="application/json", headers=headers
        )

    @staticmethod
    def text(body, status=200, headers=None):
        return Response(body, status=status, mimetype="text/plain", headers=headers)

    def wait_for_change(self, index_fn, index, wait_seconds):
        """
        Blocking-query helper: with the lock held, wait until ``index_fn()`` exceeds
        ``index`` or ``wait_seconds`` pass. Writes must call :meth:`changed`.
        """
        deadline = time.monotonic() + wait_seconds
        while index_fn() <= index:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self.cond.wait(remaining)

    def changed(self):
        self.cond.notify_all()

    # -- WSGI ------------------------------------------------------------------------------
    def __call__(self, environ, start_response):
        request = Request(environ)
        path = request.path
        if path.startswith("/_lab/"):
            return self._control(request)(environ, start_response)
        fault = self._take_fault(request)
        if fault is not None:
            if fault.get("delay"):
                time.sleep(float(fault["delay"]))
            if fault.get("action") == "drop":
                self._log_request(request, 0)
                raise DropConnection()
            if fault.get("action") == "apply_then_drop":
                resp = self.dispatch(request)
                self._log_request(request, resp.status_code, dropped=True)
                raise DropConnection()
            elif fault.get("action"):
                # the simulator's own fault (say Vault sealing itself); the request then
                # meets the changed simulator like any other
                with self.cond:
                    getattr(self, f"fault_{fault['action']}")(fault)
                    self.changed()
            if fault.get("status"):
                body = fault.get("body", "")
                resp = Response(
                    body if isinstance(body, str) else json.dumps(body),
                    status=int(fault["status"]),
                    mimetype=fault.get("mimetype", self.fault_mimetype),
                    headers=fault.get("headers"),
                )
                self._log_request(request, resp.status_code)
                return resp(environ, start_response)
        resp = self.dispatch(request)
        self._log_request(request, resp.status_code)
        return resp(environ, start_response)

    def dispatch(self, request):
        adapter = self.url_map.bind_to_environ(request.environ)
        with self.cond:
            try:
                endpoint, args = adapter.match()
            except NotFound:
                return self.not_found(request)
            except MethodNotAllowed:
                return self.method_not_allowed(request)
            except HTTPException as exc:
                return exc.get_response()
            try:
                return getattr(self, f"on_{endpoint}")(request, **args)
            except HTTPException as exc:
                return exc.get_response()
            except Exception as exc:  # pylint: disable=broad-except
                return self.handle_error(request, exc)

    def identity(self, request):
        """Who made the request (a token's *name*, never its secret), or None when the
        simulator does not tell; recorded as ``"token"`` in the request log."""
        return None

    def _log_request(self, request, status, dropped=False):
        entry = {
            "method": request.method,
            "path": request.path,
            "query": request.query_string.decode("latin-1"),
            "status": status,
            "time": time.time(),
        }
        who = self.identity(request)
        if who is not None:
            entry["token"] = who
        if dropped:
            entry["dropped"] = True  # handled, but the answer never left
        self.log.append(entry)

    @staticmethod
    def _matches(spec, request):
        """A request matches ``{"method": ..., "path": regex}`` (either may be left out)."""
        if spec.get("method") and spec["method"].upper() != request.method:
            return False
        return not spec.get("path") or re.search(spec["path"], request.path) is not None

    def _take_fault(self, request):
        with self.cond:
            # triggers first, for every fault: a fault earlier in the list must not hide
            # the trigger of a later one
            for fault in self.faults:
                if fault.get("until") and not fault.get("ended") and self._matches(fault["until"], request):
                    fault["ended"] = True
                if fault.get("after") and not fault.get("armed") and self._matches(fault["after"], request):
                    fault["armed"] = True
            for fault in self.faults:
                if fault.get("ended") or (fault.get("after") and not fault.get("armed")):
                    continue
                if not self._matches(fault, request):
                    continue
                if fault.get("query") and not re.search(fault["query"], request.query_string.decode("latin-1")):
                    continue
                if fault.get("times") is not None:
                    if fault["times"] <= 0:
                        continue
                    fault["times"] -= 1
                fault["hits"] = fault.get("hits", 0) + 1
                return dict(fault)
        return None

    def _control(self, request):
        path = request.path
        if path == "/_lab/health":
            return self.json({"name": self.name, "ok": True})
        if path == "/_lab/requests":
            if request.method == "DELETE":
                self.log.clear()
                return self.json({"cleared": True})
            return self.json(self.log)
        if path == "/_lab/faults":
            with self.cond:
                if request.method == "DELETE":
                    self.faults.clear()
                    return self.json({"cleared": True})
                if request.method == "POST":
                    fault = request.get_json(force=True)
                    action = fault.get("action")
                    if action and action not in ("drop", "apply_then_drop") and not hasattr(self, f"fault_{action}"):
                        return self.json({"error": f"{self.name} has no fault action {action!r}"}, status=400)
                    fault["hits"] = 0
                    self.faults.append(fault)
                    return self.json({"faults": len(self.faults)})
                return self.json(self.faults)
        if path == "/_lab/state":
            with self.cond:
                return self.json(self.snapshot())
        return self.json({"error": "unknown control endpoint"}, status=404)

    def snapshot(self):
        """Simulator state for debugging and tests (``GET /_lab/state``)."""
        return {}


def serve(app, host, port, tls_cert=None, tls_key=None):
    """Serve ``app`` forever (threaded); faults that drop a connection close the socket."""
    from werkzeug.serving import (  # pylint: disable=import-outside-toplevel
        WSGIRequestHandler,
        make_server,
    )

    class Handler(WSGIRequestHandler):
        def connection_dropped(self, error, environ=None):
            self.close_connection = True

        def log_request(self, *args, **kwargs):  # the request log is ours; keep stderr quiet
            pass

    ssl_context = (tls_cert, tls_key) if tls_cert else None
    server = make_server(
        host, port, app, threaded=True, request_handler=Handler, ssl_context=ssl_context
    )
    server.serve_forever()
