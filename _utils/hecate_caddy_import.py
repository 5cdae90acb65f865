"""
From a hand-made Caddyfile to hecate's pillar (``hecate:reverse_proxy:caddy``): the mapping
behind ``salt-run hecate.import_caddyfile``.

The input is what Caddy's own adapter makes of the Caddyfile (``caddy adapt``: the meaning)
and the Caddyfile's text (``hecate_caddyfile``: where each thing is written). Every site
block becomes a route; what a route cannot hold is listed as ``unsupported`` with its
Caddyfile line, and every place where hecate's pillar does not do exactly what the Caddyfile
did is listed as ``corrected``, also with its line. Nothing is dropped silently.

Mapping (docs/systems/caddy-import.md):

- site addresses -> ``domain``/``domains`` (one route per site block; its name from the first
  domain);
- ``reverse_proxy`` -> ``backend`` (``https://`` with ``transport http { tls }``),
  ``tls_skip_verify``, ``tls_server_name``, ``dial_timeout``, ``response_header_timeout``,
  ``headers`` (``header_up``/``header_down``), ``load_balancing``, ``health_checks``;
- ``redir`` -> ``redirect``; ``respond``/``abort`` -> ``respond``;
- ``log`` -> ``access_log``;
- snippets of ``respond``/``abort`` with matchers and of ``header``/``encode`` -> policies: the
  built-in ``security`` and ``common`` when they are the user's snippets as hecate corrected
  them (each correction reported with its line), else a policy of their own, else (blocks
  that are not hecate's ``security``) the route's own ``respond`` entries, unchanged.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import salt.exceptions
import yaml

import hecate_caddy_routes
import hecate_caddyfile

# what a handler of the adapted JSON is written as in a Caddyfile
DIRECTIVES = {
    "static_response": ("respond", "redir", "abort"),
    "reverse_proxy": ("reverse_proxy", "forward_auth", "php_fastcgi"),
    "headers": ("header", "request_header"),
    "encode": ("encode",),
    "file_server": ("file_server",),
    "rewrite": ("rewrite", "uri", "try_files", "handle_path", "php_fastcgi"),
    "subroute": ("handle", "route", "handle_path", "php_fastcgi"),
    "vars": ("vars", "root"),
    "map": ("map",),
    "authentication": ("basic_auth", "basicauth"),
    "templates": ("templates",),
    "error": ("error",),
    "request_body": ("request_body",),
    "push": ("push",),
    "metrics": ("metrics",),
    "tracing": ("tracing",),
    "intercept": ("intercept",),
    "copy_response": ("copy_response",),
    "copy_response_headers": ("copy_response_headers",),
    "invoke": ("invoke",),
    "log_append": ("log_append",),
    "log_skip": ("log_skip", "skip_log"),
    "acme_server": ("acme_server",),
}
_MATCHERS = {"header", "header_regexp", "path", "path_regexp", "query", "method", "remote_ip"}
_QUERY_ALT = re.compile(r"^\\\?([A-Za-z0-9_.~-]+)=$")


def fmt_duration(value):
    """Nanoseconds (as ``caddy adapt`` writes durations) -> ``1m30s``-style text."""
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        return value
    if value % 10**9:
        for unit, size in (("ms", 10**6), ("us", 10**3)):
            if value % size == 0:
                return f"{value // size}{unit}"
        return value
    secs, out = value // 10**9, ""
    for unit, size in (("h", 3600), ("m", 60), ("s", 1)):
        if secs >= size:
            out += f"{secs // size}{unit}"
            secs %= size
    return out


class Unexpressible(Exception):
    """Something of the adapted JSON hecate's route model cannot hold (the message says why)."""


# -- the report --------------------------------------------------------------------------------
class Report:
    """``unsupported`` and ``corrected`` entries, each once, with the Caddyfile line."""

    def __init__(self):
        self.unsupported, self.corrected, self._seen = [], [], set()

    def _add(self, into, item, default, text):
        line = item.line if item is not None else None
        directive = item.text if item is not None else default
        key = (id(into), line, directive, text)
        if key in self._seen:
            return
        self._seen.add(key)
        field = "why" if into is self.unsupported else "correction"
        if line is None:
            text += " (no Caddyfile line found for it)"
        into.append({"line": line, "directive": directive, field: text})

    def unsupported_(self, item, why, default="(adapted config)"):
        self._add(self.unsupported, item, default, why)

    def corrected_(self, item, correction, default="(adapted config)"):
        self._add(self.corrected, item, default, correction)


# -- matchers -------------------------------------------------------------------------------------
def _one(values):
    return values[0] if isinstance(values, list) and len(values) == 1 else values


def matcher_spec(mset):
    """An adapted matcher set -> a hecate matcher (policies, respond, redirect); Unexpressible."""
    if not isinstance(mset, dict) or not mset:
        raise Unexpressible("an empty matcher set")
    spec = {}
    for key, val in mset.items():
        if key not in _MATCHERS:
            raise Unexpressible(f"the {key} matcher is not in hecate's matchers "
                                "(headers, header_regexp, paths, path_regexp, query, methods, remote_ip)")
        if key == "header":
            if any(v is None for v in val.values()):
                raise Unexpressible("a header matcher for an absent header (!Name) is not in hecate's matchers")
            spec["headers"] = {k: _one(v) for k, v in val.items()}
        elif key == "header_regexp":
            spec["header_regexp"] = {k: v["pattern"] for k, v in val.items()}
        elif key == "path":
            spec["paths"] = list(val)
        elif key == "path_regexp":
            spec["path_regexp"] = val["pattern"]
        elif key == "query":
            spec["query"] = {k: _one(v) for k, v in val.items()}
        elif key == "method":
            spec["methods"] = list(val)
        else:
            if set(val) - {"ranges"}:
                raise Unexpressible("remote_ip with options other than ranges")
            spec["remote_ip"] = list(val.get("ranges") or [])
    return spec


def _canon(items):
    return sorted(json.dumps(i, sort_keys=True) for i in items)


def _alternatives(pattern):
    """Top-level alternatives of a regexp (inside one group that wraps it all), and whether wrapped."""
    wrapped = pattern.startswith("(") and not pattern.startswith("(?") and _closing(pattern, 0) == len(pattern) - 1
    body = pattern[1:-1] if wrapped else pattern
    parts, depth, start, i, in_class = [], 0, 0, 0, False
    while i < len(body):
        ch = body[i]
        if ch == "\\":
            i += 2
            continue
        if in_class:
            in_class = ch != "]"
        elif ch == "[":
            in_class = True
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "|" and depth == 0:
            parts.append(body[start:i])
            start = i + 1
        i += 1
    parts.append(body[start:])
    return parts, wrapped


def _closing(pattern, at):
    depth, i, in_class = 0, at, False
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            i += 2
            continue
        if in_class:
            in_class = ch != "]"
        elif ch == "[":
            in_class = True
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return -1


# -- one site ----------------------------------------------------------------------------------------
class Site:
    """One adapted route (a site block) being mapped onto a pillar route."""

    def __init__(self, route, caddyfile, report):
        self.route = route
        self.hosts = [h for m in route.get("match") or [] for h in (m.get("host") or [])]
        self.block = caddyfile.site_for(self.hosts) if self.hosts else None
        self.lines = hecate_caddyfile.Lines(caddyfile, self.block)
        self.report = report
        self.spec = {}
        self.blocks = []    # respond/abort with a matcher and a 4xx/5xx: (match, status or "abort", directive)
        self.responds = []  # respond entries in order: (entry, directive); entry None: blocks[n] (a policy?)
        self.redirects = []
        self.response = {"headers": {}, "deferred": True, "encode": [], "items": []}
        self.policies = []
        self.name = None

    @property
    def label(self):
        return f"site {', '.join(self.hosts) or '(no host)'}"

    def line_of(self, kind, pred=None):
        return self.lines.take(DIRECTIVES.get(kind, (kind,)), pred)

    def unsupported(self, item, why):
        self.report.unsupported_(item, why, default=self.label)

    # -- the subroute's entries --------------------------------------------------------------
    def items(self):
        handle = self.route.get("handle") or []
        if len(handle) == 1 and handle[0].get("handler") == "subroute" and not handle[0].get("errors"):
            return handle[0].get("routes") or []
        return [{"handle": handle}]

    def map(self):
        route = self.route
        extra = sorted(set(route) - {"match", "handle", "terminal", "@id", "group"})
        if route.get("group") or extra:
            self.unsupported(None, f"{self.label}: route settings {extra or ['group']} are not in hecate's route model")
        if "{http.regexp." in json.dumps(route):
            self.unsupported(self.block_line(), f"{self.label}: placeholders of a regexp's captures ({{re.*}}) are not "
                                                "in hecate's route model (its matchers carry no names)")
        for item in self.items():
            try:
                self.item(item)
            except Unexpressible as exc:
                kinds = [h.get("handler") for h in item.get("handle") or []]
                where = self.line_of(kinds[0] if kinds else "")
                self.unsupported(where, f"{self.label}: {exc}")
        if "backend" in self.spec and self.catches_all():
            for key in ("backend",) + hecate_caddy_routes.PROXY_KEYS:
                self.spec.pop(key, None)
            _, where = self.lines.find(("reverse_proxy",))
            self.unsupported(where, f"{self.label}: this reverse_proxy never ran: a respond or redir before it "
                                    "answers every request (left out)")
        if "backend" not in self.spec and not self.catches_all():
            self.unsupported(self.block_line(), f"{self.label}: no reverse_proxy and no respond/redir for every "
                                                "request: hecate's route needs a backend or an answer of its own")

    def block_line(self):
        if self.block is None:
            return None
        return hecate_caddyfile.Directive([hecate_caddyfile.Token(" ".join(self.block.keys) + " {", self.block.line)])

    def catches_all(self):
        return any(e is not None and "path" not in e and "match" not in e for e, _ in self.responds + self.redirects)

    def item(self, item):
        extra = sorted(set(item) - {"match", "handle", "terminal"})
        if extra or item.get("terminal"):
            raise Unexpressible(f"a handle/route block ({extra or ['terminal']}) is not in hecate's route model")
        handlers = item.get("handle") or []
        match = item.get("match")
        if match and len(handlers) != 1:
            kinds = [h.get("handler") for h in handlers]
            raise Unexpressible(f"handlers {kinds} together under one matcher are not in hecate's route model")
        # the adapter puts consecutive directives without a matcher in one entry: one by one
        for handler in handlers:
            try:
                self.handler(handler, match)
            except Unexpressible as exc:
                self.unsupported(self.line_of(handler.get("handler")), f"{self.label}: {exc}")

    def handler(self, handler, match):
        kind = handler.get("handler")
        if kind in ("headers", "encode") and not match:
            self.response_handler(handler)
        elif kind == "static_response":
            self.static(handler, match)
        elif kind == "reverse_proxy" and not match and "backend" not in self.spec:
            self.proxy(handler)
        elif kind == "reverse_proxy":
            raise Unexpressible("a second reverse_proxy, or one for some requests only (with a matcher): a "
                                "hecate route has one backend for all its requests (make another route)")
        elif kind in ("headers", "encode"):
            raise Unexpressible(f"{kind} for some requests only (with a matcher) is not in hecate's policies")
        else:
            raise Unexpressible(f"the {kind} handler ({', '.join(DIRECTIVES.get(kind, (kind,)))}) is not in "
                                "hecate's route model")

    # -- static responses -------------------------------------------------------------------
    def static(self, handler, match):
        keys = set(handler) - {"handler"}
        location = (handler.get("headers") or {}).get("Location")
        status = handler.get("status_code")
        if isinstance(status, str) and status.isdigit():
            status = int(status)
        if location and keys <= {"headers", "status_code"} and set(handler["headers"]) == {"Location"}:
            where = self.line_of("redir", lambda d: d.name == "redir")
            if not isinstance(status, int) or not 300 <= status <= 308 or len(location) != 1:
                raise Unexpressible(f"redir with status {status!r}: hecate's redirect takes a 3xx status")
            entry = {"to": location[0], "status": {301: "permanent", 302: "temporary"}.get(status, status)}
            self.redirects.append((self.with_match(entry, match), where))
            return
        if handler.get("abort") and keys == {"abort"}:
            where = self.line_of("abort", lambda d: d.name == "abort")
            if match:
                self.blocks.append((match, "abort", where))
                self.responds.append((None, where))
            else:
                self.responds.append(({"abort": True}, where))
            return
        if keys - {"status_code", "body", "close"}:
            raise Unexpressible(f"a static response with {sorted(keys - {'status_code', 'body', 'close'})} "
                                "is not in hecate's respond")
        if status is not None and not isinstance(status, int):
            raise Unexpressible(f"a response status {status!r} that is a placeholder")
        where = self.line_of("respond", lambda d: d.name == "respond")
        if match and isinstance(status, int) and status >= 400 and not keys - {"status_code"}:
            self.blocks.append((match, status, where))
            self.responds.append((None, where))
            return
        entry = {}
        if status is not None:
            entry["status"] = status
        if "body" in handler:
            entry["body"] = handler["body"]
        if handler.get("close"):
            entry["close"] = True
        self.responds.append((self.with_match(entry, match), where))

    def with_match(self, entry, match):
        if not match:
            return entry
        specs = [matcher_spec(m) for m in match]
        if len(specs) == 1 and set(specs[0]) == {"paths"} and len(specs[0]["paths"]) == 1:
            return dict(entry, path=specs[0]["paths"][0])
        return dict(entry, match=specs[0] if len(specs) == 1 else specs)

    # -- header / encode without a matcher: a policy's response part -----------------------
    def response_handler(self, handler):
        kind = handler.get("handler")
        if kind == "encode":
            where = self.line_of("encode")
            extra = set(handler) - {"handler", "encodings", "prefer"}
            names = list(handler.get("prefer") or handler.get("encodings") or [])
            bad = [n for n in names if n not in ("gzip", "zstd")] + [n for n in handler.get("encodings") or {}
                                                                      if (handler["encodings"][n] or {})]
            if extra or bad:
                self.unsupported(where, f"{self.label}: encode options {sorted(extra) + bad} are not in hecate's "
                                        "policies (encode: [gzip, zstd])")
                return
            self.response["encode"] = names
            self.response["items"].append(where)
            return
        where = self.line_of("headers", lambda d: d.name == "header")
        if set(handler) - {"handler", "response"}:
            self.unsupported(where, f"{self.label}: request headers for every handler (request_header) are not "
                                    "in hecate's route model; a backend's are headers.up on the route")
            return
        response = handler.get("response") or {}
        extra = set(response) - {"set", "delete", "deferred"}
        if extra:
            self.unsupported(where, f"{self.label}: response header operations {sorted(extra)} are not in "
                                    "hecate's policies (they set and delete)")
            return
        for name, values in (response.get("set") or {}).items():
            if len(values) != 1:
                self.unsupported(where, f"{self.label}: header {name} with several values")
                continue
            self.response["headers"][name] = values[0]
        for name in response.get("delete") or []:
            self.response["headers"][name] = None
        self.response["deferred"] = bool(response.get("deferred"))
        self.response["items"].append(where)

    # -- the reverse proxy ------------------------------------------------------------------
    def proxy(self, handler):
        where = self.line_of("reverse_proxy", lambda d: d.name == "reverse_proxy")
        spec = self.spec
        for key in sorted(set(handler) - {"handler", "upstreams", "transport", "headers", "load_balancing",
                                          "health_checks"}):
            self.unsupported(where, f"{self.label}: reverse_proxy setting {key} is not in hecate's route model")
        transport = dict(handler.get("transport") or {})
        scheme = "https" if "tls" in transport else "http"
        if transport.get("protocol", "http") != "http":
            raise Unexpressible(f"transport {transport.get('protocol')} (hecate proxies over HTTP)")
        backends = []
        for upstream in handler.get("upstreams") or []:
            dial = upstream.get("dial") if isinstance(upstream, dict) else None
            if not dial or "{" in dial or set(upstream) != {"dial"}:
                self.unsupported(where, f"{self.label}: upstream {upstream} (placeholders, other options) is "
                                        "not in hecate's route model")
                continue
            backends.append(self.backend(dial, scheme))
        if handler.get("dynamic_upstreams") or not backends:
            raise Unexpressible("reverse_proxy without fixed upstreams (dynamic upstreams are not in hecate's "
                                "route model; Consul services are upstream: {consul_service: <name>})")
        spec["backend"] = backends[0] if len(backends) == 1 else backends
        self.transport(transport, where)
        headers = handler.get("headers") or {}
        ops = {}
        for side, key in (("request", "up"), ("response", "down")):
            part = dict(headers.get(side) or {})
            extra = set(part) - {"set", "add", "delete"}
            if extra:
                self.unsupported(where, f"{self.label}: header_{key} operations {sorted(extra)} are not in hecate's "
                                        "route model (set, add, delete)")
            kept = {k: ({n: _one(v) for n, v in part[k].items()} if k != "delete" else list(part[k]))
                    for k in ("set", "add", "delete") if part.get(k)}
            if kept:
                ops[key] = kept
        if ops:
            spec["headers"] = ops
        self.load_balancing(handler.get("load_balancing") or {}, where)
        self.health(handler.get("health_checks") or {}, where)

    def backend(self, dial, scheme):
        host, _, port = dial.rpartition(":")
        if scheme == "https":
            return f"https://{host}" if port == "443" else f"https://{host}:{port}"
        return dial

    def transport(self, transport, where):
        tls = transport.pop("tls", None)
        transport.pop("protocol", None)
        for key in hecate_caddy_routes.TIMEOUT_KEYS:
            if key in transport:
                self.spec[key] = fmt_duration(transport.pop(key))
        for key in sorted(transport):
            self.unsupported(where, f"{self.label}: transport setting {key} is not in hecate's route model")
        if tls:
            if tls.get("insecure_skip_verify"):
                self.spec["tls_skip_verify"] = True
            if tls.get("server_name"):
                self.spec["tls_server_name"] = tls["server_name"]
            for key in sorted(set(tls) - {"insecure_skip_verify", "server_name"}):
                self.unsupported(where, f"{self.label}: transport tls setting {key} is not in hecate's route model")

    def load_balancing(self, lb, where):
        out = {}
        policy = lb.get("selection_policy")
        if policy:
            if set(policy) != {"policy"} or policy["policy"] not in hecate_caddy_routes.LB_POLICIES:
                self.unsupported(where, f"{self.label}: lb_policy {policy} is not in hecate's load_balancing "
                                        f"({', '.join(hecate_caddy_routes.LB_POLICIES)})")
            else:
                out["policy"] = policy["policy"]
        for key in ("try_duration", "try_interval", "retries"):
            if key in lb:
                out[key] = fmt_duration(lb[key]) if key != "retries" else lb[key]
        for key in sorted(set(lb) - {"selection_policy", "try_duration", "try_interval", "retries"}):
            self.unsupported(where, f"{self.label}: load balancing setting {key} is not in hecate's route model")
        if out:
            self.spec["load_balancing"] = out

    def health(self, checks, where):
        keys = {
            "active": ("uri", "port", "interval", "timeout", "expect_status", "passes", "fails"),
            "passive": ("fail_duration", "max_fails", "unhealthy_status", "unhealthy_latency"),
        }
        out = {}
        for kind, allowed in keys.items():
            part = checks.get(kind)
            if not part:
                continue
            out[kind] = {k: fmt_duration(v) if k in hecate_caddy_routes.DURATION_KEYS else v
                         for k, v in part.items() if k in allowed}
            for key in sorted(set(part) - set(allowed)):
                self.unsupported(where, f"{self.label}: {kind} health check setting {key} is not in hecate's "
                                        "route model")
        for kind in sorted(set(checks) - set(keys)):
            self.unsupported(where, f"{self.label}: health checks {kind} are not in hecate's route model")
        if out:
            self.spec["health_checks"] = out


# -- policies --------------------------------------------------------------------------------------
def _split_and(mset):
    """A named matcher's lines of two kinds (path + path_regexp, header + header_regexp), one set each."""
    keys = set(mset)
    if len(keys) > 1 and (keys <= {"path", "path_regexp"} or keys <= {"header", "header_regexp"}):
        return [{k: mset[k]} for k in sorted(keys)]
    return [mset]


def _split_query(mset):
    """A path_regexp alternative ``\\?name=`` (never seen: a path has no query) as a query matcher."""
    if set(mset) != {"path_regexp"}:
        return [mset], []
    parts, wrapped = _alternatives(mset["path_regexp"]["pattern"])
    queries = [m.group(1) for m in (_QUERY_ALT.match(p) for p in parts) if m]
    if not queries or len(queries) == len(parts):
        return [mset], []
    rest = [p for p in parts if not _QUERY_ALT.match(p)]
    pattern = "|".join(rest)
    pattern = f"({pattern})" if wrapped else pattern
    return [{"path_regexp": dict(mset["path_regexp"], pattern=pattern)}] + [
        {"query": {name: ["*"]}} for name in queries], queries


def security_policy(site):
    """
    ``(policy, corrections)`` of a site's matcher responses as hecate's policy would hold them
    with the three corrections of the user's ``security`` snippet applied; corrections are
    ``[(directive, text)]``.
    """
    block, abort, status, corrections = [], [], set(), []
    for match, code, where in site.blocks:
        name = where.args[0][1:] if where is not None and where.args and where.args[0].startswith("@") else None
        definition = site.lines.matcher(name) if name else None
        sets = []
        for mset in match:
            split = _split_and(mset)
            if len(split) > 1:
                kinds = " and ".join(sorted(mset))
                corrections.append((definition or where, (
                    f"named matcher @{name}: Caddy ANDs its lines ({kinds}), so it matched only requests "
                    "matching all of them, almost none; hecate's security policy matches any of them")))
            for part in split:
                queried, names = _split_query(part)
                if names:
                    line = site.lines.sub(definition, ("path_regexp",)) or definition or where
                    alts = ", ".join(f"\\?{n}=" for n in names)
                    corrections.append((line, (
                        f"path_regexp alternative {alts} never matched: a path has no query string; hecate's "
                        f"security policy uses a query matcher ({', '.join(names)})")))
                sets.extend(queried)
        if code == 444:
            corrections.append((where, (
                "respond 444 only sends the status code 444 (a response); hecate's security policy closes "
                "the connection without a response (Caddy's abort), as the comment intended")))
            abort.extend(sets)
        elif code == "abort":
            abort.extend(sets)
        else:
            status.add(code)
            block.extend(sets)
    policy = {}
    if block:
        policy["block"] = [matcher_spec(m) for m in block]
        if len(status) > 1:
            raise Unexpressible(f"block statuses {sorted(status)}")
        policy["block_status"] = status.pop()
    if abort:
        policy["abort"] = [matcher_spec(m) for m in abort]
    return policy, corrections


def _same_policy(one, two):
    return (_canon(one.get("block") or []) == _canon(two.get("block") or [])
            and _canon(one.get("abort") or []) == _canon(two.get("abort") or [])
            and (one.get("block_status", 404) == two.get("block_status", 404) or not one.get("block")))


def _headers_lower(headers):
    return {str(k).lower(): v for k, v in (headers or {}).items()}


class Policies:
    """The policies the sites need: the built-ins when they match, named ones otherwise."""

    def __init__(self, report):
        self.report = report
        self.custom = {}
        self.builtin = hecate_caddy_routes.BUILTIN_POLICIES

    def for_site(self, site):
        names = []
        if site.blocks:
            names += self.filters(site)
        if site.response["items"]:
            names.append(self.response(site))
        return names

    def filters(self, site):
        try:
            policy, corrections = security_policy(site)
        except Unexpressible:
            policy, corrections = None, []
        if policy is not None and _same_policy(policy, self.builtin["security"]):
            for where, text in corrections:
                self.report.corrected_(where, text, default=site.label)
            site.responds = [(e, w) for e, w in site.responds if e is not None]
            return ["security"]
        # not hecate's security policy: the same responses, unchanged, as the route's own
        blocks, out = iter(site.blocks), []
        for entry, where in site.responds:
            if entry is None:
                match, code, _ = next(blocks)
                entry = {"abort": True} if code == "abort" else {"status": code}
                try:
                    entry = site.with_match(entry, match)
                except Unexpressible as exc:
                    site.unsupported(where, f"{site.label}: {exc}")
                    continue
            out.append((entry, where))
        site.responds = out
        return []

    def response(self, site):
        wanted = {"response_headers": dict(site.response["headers"])} if site.response["headers"] else {}
        if site.response["encode"]:
            wanted["encode"] = list(site.response["encode"])
        common = self.builtin["common"]
        header_line = next((w for w in site.response["items"] if w is not None and w.name == "header"), None)
        if not site.response["deferred"] and wanted.get("response_headers"):
            self.report.corrected_(header_line, (
                "header without defer sets these response headers before the backend answers, so a "
                "backend's own value of one of them is sent as well (reverse_proxy adds its headers); "
                "hecate's policy sets them once the backend answered (deferred), replacing the backend's"),
                default=site.label)
        if (_headers_lower(wanted.get("response_headers")) == _headers_lower(common["response_headers"])
                and wanted.get("encode", []) == common["encode"]):
            return "common"
        via = next((w.via for w in site.response["items"] if w is not None and w.via), None)
        base = via or f"{site.name}-site"
        name, idx = base, 1
        while name in self.custom and self.custom[name] != wanted or name in self.builtin:
            idx += 1
            name = f"{base}-{idx}"
        self.custom[name] = wanted
        return name


# -- access logs ------------------------------------------------------------------------------------
def access_logs(site, server, logging_, report):
    """The site's ``access_log`` entries from the server's logger_names and the logging app."""
    names_by_host = ((server.get("logs") or {}).get("logger_names") or {})
    found = [names_by_host.get(h) for h in site.hosts]
    found = [[n] if isinstance(n, str) else list(n or []) for n in found]
    if not any(found):
        return []
    if any(f != found[0] for f in found):
        report.unsupported_(site.line_of("log"), f"{site.label}: different access logs per host of one site",
                            default=site.label)
    logs = ((logging_ or {}).get("logs") or {})
    out = []
    for name in found[0]:
        where = site.line_of("log")
        if name == "":
            report.corrected_(where, (
                "log without options sends the site's access log to Caddy's default logger (the global "
                "log, or stderr); hecate gives the route a logger of its own on stderr: add file: to keep "
                "the entries in a file"), default=site.label)
            out.append({})
            continue
        logger = logs.get(name) or {}
        entry = {}
        writer = dict(logger.get("writer") or {})
        output = writer.pop("output", None)
        if output == "file":
            entry["file"] = writer.pop("filename", None)
        elif output in ("stderr", "stdout", "discard"):
            entry["output"] = output
        elif output is not None:
            report.unsupported_(where, f"{site.label}: log output {output} is not in hecate's access_log "
                                       "(file, stderr, stdout, discard)", default=site.label)
        for key in sorted(writer):
            report.unsupported_(where, f"{site.label}: log output option {key} (e.g. roll_*) is not in hecate's "
                                       "access_log: Caddy's defaults apply", default=site.label)
        encoder = dict(logger.get("encoder") or {})
        fmt = encoder.pop("format", None)
        if fmt in ("json", "console"):
            entry["format"] = fmt
        elif fmt is not None:
            report.unsupported_(where, f"{site.label}: log format {fmt} is not in hecate's access_log "
                                       "(json, console)", default=site.label)
        if encoder:
            report.unsupported_(where, f"{site.label}: log format options {sorted(encoder)} are not in "
                                       "hecate's access_log", default=site.label)
        if logger.get("level"):
            entry["level"] = str(logger["level"]).upper()
        for key in sorted(set(logger) - {"writer", "encoder", "level", "include"}):
            report.unsupported_(where, f"{site.label}: log setting {key} is not in hecate's access_log",
                                default=site.label)
        out.append(entry)
    return out


# -- the whole config --------------------------------------------------------------------------------
def _route_name(hosts, taken):
    first = hosts[0] if hosts else "site"
    labels = first.replace("*", "wildcard").split(".")
    base = re.sub(r"[^a-z0-9_-]", "-", labels[0].lower()) or "site"
    name, idx = base, 1
    while name in taken:
        idx += 1
        name = f"{base}-{idx}"
    taken.add(name)
    return name


def _global(adapted, caddyfile, report, server_names):
    """Everything outside the HTTP servers' routes: reported (hecate manages routes only)."""
    for item in caddyfile.options:
        why = {
            "log": "the global log is Caddy's default logger, not part of hecate's routes: keep it in the "
                   "config Caddy starts with (logging.logs.default); hecate only adds its access loggers to "
                   "its exclude list",
        }.get(item.name, f"global option {item.name}: Caddy's own settings are not part of hecate's routes; "
                          "keep it in the config Caddy starts with")
        report.unsupported_(item, why)
    if not caddyfile.options:  # else each global option is reported above
        for name in sorted(set(adapted) - {"apps", "logging"}):
            report.unsupported_(None, f"top-level {name} is not part of hecate's routes", default=name)
    tls = [item for site in caddyfile.sites for item in caddyfile.directives(site) if item.name == "tls"]
    for item in tls:
        report.unsupported_(item, "tls (certificates, client auth) is not part of hecate's routes: Caddy's "
                                  "automatic HTTPS serves hecate's domains")
    for app in sorted(set(adapted.get("apps") or {}) - {"http"}):
        if not tls and not caddyfile.options:
            report.unsupported_(None, f"the {app} app is not part of hecate's routes", default=f"apps.{app}")
    http = (adapted.get("apps") or {}).get("http") or {}
    for key in sorted(set(http) - {"servers"}):
        report.unsupported_(None, f"HTTP app setting {key} (global options) is not part of hecate's routes",
                            default=f"apps.http.{key}")
    for name in server_names:
        server = http["servers"][name]
        for key in sorted(set(server) - {"listen", "routes", "logs"}):
            if key == "tls_connection_policies" and tls:
                continue  # the tls directives, reported above
            report.unsupported_(None, f"server {name}: {key} is not part of hecate's routes",
                                default=f"apps.http.servers.{name}.{key}")
        for key in sorted(set(server.get("logs") or {}) - {"logger_names", "skip_hosts", "skip_unmapped_hosts"}):
            report.unsupported_(None, f"server {name}: logs {key} is not part of hecate's routes",
                                default=f"apps.http.servers.{name}.logs.{key}")


def convert(adapted, text, warnings=()):
    """
    The adapted config (``caddy adapt`` of ``text``) -> ``{"caddy": pillar block, "routes":
    [(route spec, site)], "unsupported", "corrected", "warnings"}``.
    """
    caddyfile = hecate_caddyfile.Caddyfile(text)
    report = Report()
    adapted = adapted or {}
    servers = ((adapted.get("apps") or {}).get("http") or {}).get("servers") or {}
    # the main server: the one with the most routes (a Caddyfile's https sites: srv0 on :443)
    order = sorted(servers, key=lambda n: (-len(servers[n].get("routes") or []), n))
    _global(adapted, caddyfile, report, order)
    sites, taken = [], set()
    for idx, name in enumerate(order):
        for route in servers[name].get("routes") or []:
            site = Site(route, caddyfile, report)
            if idx > 0:
                where = site.block_line()
                report.unsupported_(where, f"{site.label}: served by server {name} on "
                                           f"{', '.join(servers[name].get('listen') or [])}, not by the main "
                                           f"server {order[0]}: hecate's routes are served by one server (listen)",
                                    default=site.label)
                continue
            if not site.hosts or any(set(m) != {"host"} for m in route.get("match") or []):
                report.unsupported_(site.block_line(), f"{site.label}: a site without a host name (or with other "
                                                       "matchers) takes requests of every host: not a hecate route",
                                    default=site.label)
                continue
            site.name = _route_name(site.hosts, taken)
            site.map()
            site.logs = access_logs(site, servers[name], adapted.get("logging"), report)
            sites.append(site)
    for site in caddyfile.sites:
        for item in caddyfile.unresolved_imports(site):
            report.unsupported_(item, "import of a file: its lines are not known to the importer (Caddy's "
                                      "adapter read it; what it holds is mapped, but not named by line)")
    policies = Policies(report)
    for site in sites:
        site.policies = policies.for_site(site)
    caddy = _pillar(sites, policies, servers.get(order[0]) if order else None)
    sites.sort(key=lambda s: s.block.line if s.block is not None else 10**9)
    return {
        "caddy": caddy,
        "sites": sites,
        "unsupported": report.unsupported,
        "corrected": report.corrected,
        "warnings": list(warnings or []),
    }


def _pillar(sites, policies, server):
    lists = [tuple(s.policies) for s in sites]
    default = max(lists, key=lists.count) if lists else ()
    caddy = {}
    if server and server.get("listen"):
        caddy["listen"] = list(server["listen"])
    caddy["default_policies"] = list(default)
    if policies.custom:
        caddy["policies"] = policies.custom
    for site in sites:
        spec = {"domain": site.hosts[0]} if len(site.hosts) == 1 else {"domains": list(site.hosts)}
        spec["service"] = site.name
        spec.update(site.spec)
        if site.redirects:
            spec["redirect"] = _one([e for e, _ in site.redirects])
        if site.responds:
            spec["respond"] = _one([e for e, _ in site.responds])
        if tuple(site.policies) != default:
            spec["policies"] = list(site.policies)
        if site.logs:
            spec["access_log"] = _one(site.logs)
        site.pillar = spec
    return caddy


# -- output ---------------------------------------------------------------------------------------
def _dump(data, indent):
    text = yaml.safe_dump(data, default_flow_style=False, sort_keys=False, width=110, allow_unicode=True)
    return "".join(" " * indent + line + "\n" for line in text.splitlines())


def render(result):
    """Pillar YAML for ``hecate:reverse_proxy:caddy``, each route under its Caddyfile line."""
    caddy = dict(result["caddy"])
    out = ["hecate:", "  reverse_proxy:", "    caddy:"]
    body = _dump(caddy, 6) if caddy else ""
    out.append(body.rstrip("\n"))
    out.append("      routes:")
    for site in sorted(result["sites"], key=lambda s: s.block.line if s.block is not None else 10**9):
        where = f"Caddyfile line {site.block.line}" if site.block is not None else "no Caddyfile line found"
        comment = site.lines.caddyfile.comment_before(site.block.line) if site.block is not None else None
        out.append(f"        # {', '.join(site.hosts)} ({where}{': ' + comment if comment else ''})")
        out.append(_dump([site.pillar], 8).rstrip("\n"))
    return "\n".join(line for line in out if line) + "\n"


def caddy_binary(configured=None):
    """The ``caddy`` binary to adapt with on this host: ``configured``, PATH, or next to Python."""
    for candidate in (configured, shutil.which("caddy"), os.path.join(os.path.dirname(sys.executable), "caddy")):
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def adapt_with_binary(binary, text, path=None, timeout=60):
    """
    ``(config, warnings)`` of ``caddy adapt`` run here: of the file ``path`` when given (so
    that its relative imports resolve as Caddy resolves them), else of ``text``.
    """
    with tempfile.TemporaryDirectory(prefix="hecate-import-") as tmp:
        if path is None:
            path = os.path.join(tmp, "Caddyfile")
            with open(path, "w", encoding="utf-8") as fh:
                fh.write(text)
        try:
            proc = subprocess.run([binary, "adapt", "--config", path, "--adapter", "caddyfile"],
                                  capture_output=True, text=True, timeout=timeout, check=False, cwd=tmp)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise salt.exceptions.CommandExecutionError(f"cannot run {binary} adapt: {exc}") from None
    warnings, errors = [], []
    for raw in proc.stderr.splitlines():
        try:
            entry = json.loads(raw)
        except ValueError:
            errors.append(raw.strip())
            continue
        if isinstance(entry, dict) and entry.get("level") == "warn":
            where = f"line {entry['line']}: " if entry.get("line") else ""
            warnings.append(where + str(entry.get("msg")))
        elif isinstance(entry, dict) and entry.get("level") == "error":
            errors.append(str(entry.get("msg")))
    if proc.returncode != 0:
        detail = "; ".join(e for e in errors if e) or f"exit status {proc.returncode}"
        raise salt.exceptions.CommandExecutionError(f"caddy adapt refused the Caddyfile: {detail}")
    try:
        return json.loads(proc.stdout), warnings
    except ValueError:
        raise salt.exceptions.CommandExecutionError("caddy adapt printed no JSON config") from None


def edge_warnings(warnings):
    """The admin API's adapt warnings (``{file, line, directive, message}``) as text."""
    out = []
    for item in warnings or []:
        if isinstance(item, dict):
            where = f"line {item['line']}: " if item.get("line") else ""
            out.append(where + str(item.get("message") or item))
        else:
            out.append(str(item))
    return out
