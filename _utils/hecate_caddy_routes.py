"""
Caddy routes from pillar: the route model (pillar entry to Caddy route JSON), reading routes
back, routes Caddy would never use, and the plan (diff) of the live routes against the
desired ones. The pillar schema is in ``hecate_caddy_schema``, the guarded write and the
rollback in ``hecate_caddy_apply``.

Pillar (``hecate:reverse_proxy:caddy``)::

    server: hecate                 # the server under apps.http.servers
    listen: [":443"]               # only used to create the server when it is missing
    ports: {http: 80, https: 443, admin: 2019}
    forward_auth: {outpost: "hecate-server-1:9000"}     # the Authentik outpost
    default_policies: [security, common]
    policies: {...}                # overrides of / additions to the built-in policies
    routes:
      - domain: cloud.cybermonkey.dev          # or domains: [...]
        backend: "100.65.138.128:11000"        # or a list, or https://host (+ tls_skip_verify)
        service: nextcloud                     # the route's name (its @id is hecate.route.<name>)
      - domain: observe.example.com
        backend: "10.0.0.7:3000"
        service: grafana
        auth: {groups: [grafana-users]}        # Authentik side by hecate_route_auth, then forward auth
      - domain: chat.example.com
        upstream: {consul_service: oauth2-proxy}   # resolved through hecate_consul at apply time
        forward_auth: true                      # = auth: {} (any signed-in user)
        health_checks: {active: {uri: /ping, interval: 10s}, passive: {max_fails: 3, fail_duration: 30s}}
        load_balancing: {policy: least_conn}
        headers: {up: {set: {X-Real-IP: "{http.request.remote.host}"}}, down: {delete: [Server]}}

Every route hecate manages carries ``@id: hecate.route.<name>`` (``hecate.adhoc.<name>`` for
the per-route states); routes without a hecate ``@id`` are never touched.
"""

import copy
import re

import salt.exceptions

import hecate_caddy_client
import hecate_caddy_logs
import hecate_caddy_responses
import hecate_config
import hecate_route_auth
import hecate_state

PILLAR_PATH = "hecate:reverse_proxy:caddy"
DEFAULT_SERVER = "hecate"
ID_PREFIX = "hecate.route."
ADHOC_PREFIX = "hecate.adhoc."
OUTPOST_PATH = "/outpost.goauthentik.io/*"
OUTPOST_AUTH_URI = "/outpost.goauthentik.io/auth/caddy"
# Authentik's documented Caddy snippet (docs.goauthentik.io, "Caddy" proxy provider page).
AUTHENTIK_HEADERS = [
    "X-Authentik-Username",
    "X-Authentik-Groups",
    "X-Authentik-Entitlements",
    "X-Authentik-Email",
    "X-Authentik-Name",
    "X-Authentik-Uid",
    "X-Authentik-Jwt",
    "X-Authentik-Meta-Jwks",
    "X-Authentik-Meta-Outpost",
    "X-Authentik-Meta-Provider",
    "X-Authentik-Meta-App",
    "X-Authentik-Meta-Version",
]
# Every hecate route deletes these request headers first: only the outpost's answer may carry
# the identity to a backend (internal/outpost/proxyv2/application/mode_common.go, getHeaders,
# sets X-authentik-*). Without it a backend that once sat behind forward auth, or trusts those
# headers anyway, would believe a client's own "X-Authentik-Username: admin" on a public route.
# Caddy's ``delete`` takes a trailing ``*`` as a case-insensitive prefix (headers.go,
# HeaderOps.ApplyTo). The ``_`` and ``.`` spellings are there because CGI/FastCGI/PHP backends
# fold "X_Authentik_Uid", "X.Authentik.Uid" and "X-Authentik-Uid" into one HTTP_X_AUTHENTIK_UID
# (the outpost drops such variants of its own headers: removeDuplicateUnderscoreHeader); Caddy
# releases with the fix of GHSA-f59h-q822-g45g drop them on their own, older ones pass them.
CLIENT_IDENTITY_HEADERS = ["X-Authentik*", "X_Authentik*", "X.Authentik*"]


def _strip_identity():
    """A fresh :data:`STRIP_IDENTITY` (one per build, shared by its routes: :class:`PolicyCache`)."""
    return {"handle": [{"handler": "headers", "request": {"delete": list(CLIENT_IDENTITY_HEADERS)}}]}


STRIP_IDENTITY = _strip_identity()

LB_POLICIES = ("random", "round_robin", "least_conn", "first", "ip_hash", "client_ip_hash", "uri_hash")
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
SERVER_RE = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$"
DOMAIN_RE = re.compile(
    r"^(?=.{1,253}$)(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
)
HOST_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,252})$")
HEADER_NAME_RE = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")

# The user's Caddyfile snippets, as named policies. Deliberate corrections (docs/systems/caddy.md):
# - the Caddyfile put `path` and `path_regexp` (and `header` and `header_regexp`) in one named
#   matcher, which Caddy ANDs; the intent is "any of these", so they are separate matcher sets;
# - `respond 444` only sends a 444 status in Caddy; closing the connection is `abort`;
# - `?rest_route=` is in the query, which path_regexp never sees: it is a query matcher.
# The three Cloudflare headers stay one matcher set (all present = a Worker request), as in
# the Caddyfile, so that traffic proxied by Cloudflare itself is not blocked.
BUILTIN_POLICIES = {
    "security": {
        "block": [
            {"headers": {"Cf-Worker": "*", "Cf-Connecting-Ip": "*", "Cf-Ray": "*"}},
            {
                "paths": [
                    "/wp-admin/*", "/wp-login.php", "/wordpress/*", "/.git/*", "/.env",
                    "/phpmyadmin/*", "/config.json", "/.DS_Store", "/info.php", "/phpinfo.php",
                    "/test.php", "/telescope/*", "/horizon/*", "/pulse/*",
                    "/.well-known/security.txt", "/.svn/*", "/.hg/*", "/backup/*", "/old/*",
                    "/temp/*", "/tmp/*", "/sql/*", "/admin/*", "/manager/*", "/shell.php",
                ]
            },
            {
                "path_regexp": r"(/(vendor|node_modules|bower_components)/"
                r"|\.(sql|bak|backup|log|old|orig|original|save|swp|tmp)$)"
            },
            {"query": {"rest_route": "*"}},
        ],
        "block_status": 404,
        "abort": [
            {
                "header_regexp": {
                    "User-Agent": "(?i)(bot|crawler|spider|scraper|scan|exploit|nikto|sqlmap|havij|acunetix)"
                }
            },
            {"headers": {"User-Agent": "Go-http-client/1.1"}},
        ],
    },
    "common": {
        "response_headers": {
            "X-Frame-Options": "SAMEORIGIN",
            "X-Content-Type-Options": "nosniff",
            "Strict-Transport-Security": "max-age=31536000; includeSubDomains; preload",
            "Referrer-Policy": "strict-origin-when-cross-origin",
            "X-XSS-Protection": "1; mode=block",
        },
        "encode": ["gzip"],
    },
}
DEFAULT_POLICIES = ["security", "common"]


class RouteDataError(salt.exceptions.SaltInvocationError):
    """Bad route data; ``errors`` is ``[(key_path, message)]``, the message lists them all."""

    def __init__(self, errors):
        self.errors = list(errors)
        lines = [f"{path}: {msg}" for path, msg in self.errors]
        super().__init__("invalid Caddy route data (nothing was written):\n" + "\n".join(lines))


# -- durations ---------------------------------------------------------------------------------
_DUR_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h|d)")
_DUR_UNITS = {
    "ns": 1,
    "us": 10**3,
    "µs": 10**3,
    "ms": 10**6,
    "s": 10**9,
    "m": 60 * 10**9,
    "h": 3600 * 10**9,
    "d": 86400 * 10**9,
}
DURATION_KEYS = frozenset(
    {
        "interval",
        "timeout",
        "fail_duration",
        "unhealthy_latency",
        "try_duration",
        "try_interval",
        "dial_timeout",
        "dial_fallback_delay",
        "response_header_timeout",
        "expect_continue_timeout",
        "read_timeout",
        "write_timeout",
        "read_header_timeout",
        "idle_timeout",
        "keepalive",
        "keepalive_idle",
        "keepalive_interval",
        "flush_interval",
        "stream_timeout",
        "stream_close_delay",
    }
)


def parse_duration(value):
    """Caddy duration (Go syntax plus ``d``, or integer nanoseconds) -> int ns; ValueError."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration")
    if isinstance(value, (int, float)):
        return int(value)
    text = str(value).strip()
    sign = -1 if text.startswith("-") else 1
    text = text.lstrip("+-")
    if text == "0":
        return 0
    pos, total = 0, 0.0
    for match in _DUR_PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _DUR_UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise ValueError(f"{value!r} is not a duration (use e.g. 10s, 1m30s, 500ms)")
    return sign * int(round(total))


def normalise(value, key=None):
    """Compare-ready copy: durations as int ns (Caddy accepts "10s" and 10000000000 alike)."""
    if isinstance(value, dict):
        return {k: normalise(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [normalise(v) for v in value]
    if key in DURATION_KEYS and isinstance(value, (str, int, float)) and not isinstance(value, bool):
        try:
            return parse_duration(value)
        except ValueError:
            return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# -- parsing helpers ---------------------------------------------------------------------------
def _as_list(value):
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


_URL_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://(.*)$")


def parse_upstream(text):
    """
    ``"host:port"``, ``"http://host[:port]"`` or ``"https://host[:port]"`` ->
    ``(scheme, dial)``. Raises ValueError with a message for the operator.
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"{text!r} is not an upstream address")
    raw = text.strip()
    scheme = None
    match = _URL_RE.match(raw)
    if match:
        scheme = match.group(1).lower()
        if scheme not in ("http", "https"):
            raise ValueError(f"{raw!r}: scheme must be http or https")
        rest = match.group(2)
        if rest.endswith("/"):
            rest = rest[:-1]
        if "/" in rest or "?" in rest:
            raise ValueError(f"{raw!r}: an upstream URL cannot carry a path or query")
    else:
        rest = raw
    if rest.startswith("["):
        end = rest.find("]")
        if end < 0:
            raise ValueError(f"{raw!r}: unterminated IPv6 address")
        host, tail = rest[: end + 1], rest[end + 1:]
        if tail and not tail.startswith(":"):
            raise ValueError(f"{raw!r}: bad address")
        port = tail[1:] if tail else None
    elif rest.count(":") == 1:
        host, port = rest.split(":")
    elif ":" in rest:
        raise ValueError(f"{raw!r}: put an IPv6 address in brackets ([::1]:8080)")
    else:
        host, port = rest, None
    if not host or not (host.startswith("[") or HOST_RE.match(host)):
        raise ValueError(f"{raw!r}: bad host {host!r}")
    if port is None or port == "":
        if scheme is None:
            raise ValueError(f"{raw!r}: no port (write host:port, or an http(s):// URL)")
        port = "443" if scheme == "https" else "80"
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"{raw!r}: bad port {port!r} (1-65535)")
    return scheme or "http", f"{host}:{int(port)}"


def _check_regexp(pattern):
    """Caddy uses Go's RE2: no lookaround or backreferences. Returns an error text or None."""
    if re.search(r"\(\?<?[=!]|\\[1-9]", pattern):
        return f"{pattern!r}: lookaround and backreferences are not supported by Caddy (RE2)"
    try:
        re.compile(pattern)
    except re.error as exc:
        return f"{pattern!r} is not a valid regular expression: {exc}"
    return None


def _matcher(spec, where, errors):
    """A policy matcher spec -> one Caddy matcher set (its keys are ANDed)."""
    out = {}
    if not isinstance(spec, dict) or not spec:
        errors.append((where, "a matcher must be a non-empty mapping"))
        return out
    for key, val in spec.items():
        sub = f"{where}:{key}"
        if key == "headers":
            out["header"] = {}
            for name, values in (val or {}).items():
                if not HEADER_NAME_RE.match(str(name)):
                    errors.append((f"{sub}:{name}", "not a valid header name"))
                out["header"][str(name)] = [str(v) for v in _as_list(values)]
        elif key == "header_regexp":
            out["header_regexp"] = {}
            for name, pattern in (val or {}).items():
                problem = _check_regexp(str(pattern))
                if problem:
                    errors.append((f"{sub}:{name}", problem))
                out["header_regexp"][str(name)] = {"pattern": str(pattern)}
        elif key == "paths":
            paths = [str(p) for p in _as_list(val)]
            for path in paths:
                if not (path.startswith("/") or path.startswith("*")):
                    errors.append((sub, f"path {path!r} must start with / or *"))
            out["path"] = paths
        elif key == "path_regexp":
            problem = _check_regexp(str(val))
            if problem:
                errors.append((sub, problem))
            out["path_regexp"] = {"pattern": str(val)}
        elif key == "query":
            out["query"] = {str(k): [str(v) for v in _as_list(vs)] for k, vs in (val or {}).items()}
        elif key == "methods":
            out["method"] = [str(m).upper() for m in _as_list(val)]
        elif key == "remote_ip":
            out["remote_ip"] = {"ranges": [str(r) for r in _as_list(val)]}
        else:
            errors.append(
                (sub, "unknown matcher (headers, header_regexp, paths, path_regexp, query, methods, remote_ip)")
            )
    return out


def policy_routes(policy, where, errors):
    """A named policy -> the subroute routes that implement it, in order."""
    out = []
    block = [_matcher(m, f"{where}:block:{i}", errors) for i, m in enumerate(policy.get("block") or [])]
    if block:
        out.append(
            {
                "match": block,
                "handle": [{"handler": "static_response", "status_code": int(policy.get("block_status", 404))}],
            }
        )
    abort = [_matcher(m, f"{where}:abort:{i}", errors) for i, m in enumerate(policy.get("abort") or [])]
    if abort:
        out.append({"match": abort, "handle": [{"handler": "static_response", "abort": True}]})
    handlers = []
    headers = policy.get("response_headers") or {}
    if headers:
        for name in headers:
            if not HEADER_NAME_RE.match(str(name)):
                errors.append((f"{where}:response_headers:{name}", "not a valid header name"))
        response = {"deferred": True}
        setters = {str(k): [str(v)] for k, v in headers.items() if v is not None}
        deletes = sorted(str(k) for k, v in headers.items() if v is None)
        if setters:
            response["set"] = setters
        if deletes:
            response["delete"] = deletes
        handlers.append({"handler": "headers", "response": response})
    encodings = list(policy.get("encode") or [])
    if encodings:
        handlers.append(
            {"handler": "encode", "encodings": {e: {} for e in encodings}, "prefer": encodings}
        )
    if handlers:
        out.append({"handle": handlers})
    return out


def merged_policies(data):
    """
    Built-in policies with the pillar's ``policies`` merged over them by name: a key given
    replaces the built-in one (lists replace), except ``response_headers``, merged per
    header (``null`` removes a header, or deletes it from responses if not built in).
    """
    out = copy.deepcopy(BUILTIN_POLICIES)
    for name, policy in (data.get("policies") or {}).items():
        if isinstance(policy, dict):
            base = out.get(name, {})
            for key, val in copy.deepcopy(policy).items():
                if key == "response_headers" and isinstance(val, dict) and isinstance(base.get(key), dict):
                    base[key].update(val)
                else:
                    base[key] = val
            out[name] = base
        else:
            out[name] = policy
    return out


def _header_ops(ops, where, errors):
    out = {}
    if not ops:
        return out
    if not isinstance(ops, dict):
        errors.append((where, "expected {set: {...}, add: {...}, delete: [...]}"))
        return out
    for op in ("set", "add"):
        if ops.get(op):
            out[op] = {}
            for name, vals in ops[op].items():
                if not HEADER_NAME_RE.match(str(name)):
                    errors.append((f"{where}:{op}:{name}", "not a valid header name"))
                out[op][str(name)] = [str(v) for v in _as_list(vals)]
    if ops.get("delete"):
        out["delete"] = [str(v) for v in _as_list(ops["delete"])]
    for key in ops:
        if key not in ("set", "add", "delete"):
            errors.append((f"{where}:{key}", "unknown header operation (set, add, delete)"))
    return out


def _durations(section, keys, where, errors):
    for key in keys:
        if key in section:
            try:
                if parse_duration(section[key]) < 0:
                    raise ValueError(f"{section[key]!r} is negative")
            except ValueError as exc:
                errors.append((f"{where}:{key}", str(exc)))


def _transport(scheme, skip_verify, server_name):
    if scheme != "https":
        return None
    tls = {}
    if skip_verify:
        tls["insecure_skip_verify"] = True
    if server_name:
        tls["server_name"] = server_name
    return {"protocol": "http", "tls": tls}


def route_name(spec):
    name = spec.get("name") or spec.get("service")
    if not name:
        domains = _as_list(spec.get("domains")) or _as_list(spec.get("domain"))
        if domains and isinstance(domains[0], str):
            name = domains[0].replace("*", "wildcard").replace(".", "-")
    return str(name).lower() if name else None


def _forward_auth_routes(settings, route_fa, where, errors):
    outpost = settings.get("outpost")
    if not outpost:
        errors.append(
            (
                f"{where}:forward_auth",
                f"forward auth needs {PILLAR_PATH}:forward_auth:outpost (host:port of the Authentik outpost)",
            )
        )
        return []
    try:
        scheme, dial = parse_upstream(outpost)
    except ValueError as exc:
        errors.append((f"{PILLAR_PATH}:forward_auth:outpost", str(exc)))
        return []
    copy_headers = settings.get("copy_headers") or AUTHENTIK_HEADERS
    if isinstance(route_fa, dict) and route_fa.get("copy_headers"):
        copy_headers = route_fa["copy_headers"]
    base = {"handler": "reverse_proxy", "upstreams": [{"dial": dial}]}
    transport = _transport(scheme, settings.get("tls_skip_verify"), None)
    if transport:
        base["transport"] = transport
    copies = [{"handle": [{"handler": "vars"}]}]
    for header in copy_headers:
        if not HEADER_NAME_RE.match(str(header)):
            errors.append((f"{where}:forward_auth:copy_headers", f"{header!r} is not a header name"))
            continue
        placeholder = f"{{http.reverse_proxy.header.{header}}}"
        copies.append({"handle": [{"handler": "headers", "request": {"delete": [header]}}]})
        copies.append(
            {
                "match": [{"not": [{"vars": {placeholder: [""]}}]}],
                "handle": [{"handler": "headers", "request": {"set": {header: [placeholder]}}}],
            }
        )
    auth = hecate_caddy_client.copy_json(base)
    auth.update(
        {
            "rewrite": {"method": "GET", "uri": settings.get("uri") or OUTPOST_AUTH_URI},
            "headers": {
                "request": {
                    "set": {
                        "X-Forwarded-Method": ["{http.request.method}"],
                        "X-Forwarded-Uri": ["{http.request.uri}"],
                    }
                }
            },
            "handle_response": [{"match": {"status_code": [2]}, "routes": copies}],
        }
    )
    # The outpost's own paths (login callback, sign-out) go to the outpost without the auth
    # check; then the check; then the application (Authentik's documented order).
    return [{"match": [{"path": [OUTPOST_PATH]}], "handle": [hecate_caddy_client.copy_json(base)]}, {"handle": [auth]}]


TIMEOUT_KEYS = ("dial_timeout", "response_header_timeout")
PROXY_KEYS = ("tls_skip_verify", "tls_server_name", "headers", "load_balancing", "health_checks") + TIMEOUT_KEYS


def _timeouts(spec, where, errors):
    """The route's transport timeouts, as ``caddy adapt`` writes them (integer nanoseconds)."""
    out = {}
    for key in TIMEOUT_KEYS:
        if spec.get(key) is None:
            continue
        try:
            value = parse_duration(spec[key])
            if value <= 0:
                raise ValueError(f"{spec[key]!r} must be more than 0")
        except ValueError as exc:
            errors.append((f"{where}:{key}", str(exc)))
            continue
        out[key] = value
    return out


def _answers_all(spec, redirects, responds, where, errors):
    """Which entry answers every request of the route ("" when none); what follows never runs."""
    hecate_caddy_responses.unreachable(redirects, where, "redirect", errors)
    hecate_caddy_responses.unreachable(responds, where, "respond", errors)
    if any(catches_all for _, catches_all in redirects):
        for key in ("respond", "forward_auth"):
            if spec.get(key):
                errors.append((f"{where}:{key}", "never used: the redirect answers every request"))
        return "its redirect"
    if any(catches_all for _, catches_all in responds):
        return "its respond entry"
    return ""


# -- the model -----------------------------------------------------------------------------------
class Route:
    """
    One built route: ``name``, ``id``, ``domains``, ``json`` (the Caddy route object) and
    ``auth`` (its :class:`hecate_route_auth.RouteAuth` when it is protected, else None).
    """

    def __init__(self, name, route_id, domains, json_, where, auth=None, loggers=()):
        self.name = name
        self.id = route_id
        self.domains = domains
        self.json = json_
        self.where = where
        self.auth = auth
        self.loggers = list(loggers)  # [(name, logger JSON)]: its access logs (hecate_caddy_logs)

    @property
    def wildcard(self):
        return any(d.startswith("*.") for d in self.domains)


class PolicyCache:
    """
    The policies of one build, merged and compiled once, and the identity headers' deletion:
    one object each, shared by every route of the build as the policies' routes always were
    (at 10,000 routes a deletion of its own per route was a quarter of the build's memory).
    Nothing changes a built route in place; a shared object is written out once per route.
    """

    def __init__(self, data):
        self.policies = merged_policies(data)
        self.compiled = {}
        self.strip_identity = _strip_identity()

    def routes(self, name, errors):
        """Subroute routes of policy ``name``; its problems go to ``errors`` the first time."""
        if name not in self.compiled:
            policy = self.policies[name]
            found = []
            if not isinstance(policy, dict):
                found.append((f"{PILLAR_PATH}:policies:{name}", "a policy must be a mapping"))
                routes = []
            else:
                routes = policy_routes(policy, f"{PILLAR_PATH}:policies:{name}", found)
            errors.extend(found)
            self.compiled[name] = routes
        return self.compiled[name]


def build_route(spec, where, data, resolve_service=None, id_prefix=ID_PREFIX, errors=None, cache=None):
    """
    One pillar route spec -> :class:`Route` (None when it has errors, which are appended to
    ``errors`` as ``(key_path, message)``). ``data`` is the whole caddy pillar block (for
    policies and forward-auth settings). ``resolve_service(name) -> ["addr:port"]`` resolves
    Consul upstreams; without it, Consul routes are checked but not built (returns None).
    ``cache`` (a :class:`PolicyCache`) shares compiled policies between routes.
    """
    own = []
    if not isinstance(spec, dict):
        errors.append((where, "a route must be a mapping"))
        return None
    name = route_name(spec)
    label = f"route '{name}'" if name else "route"
    if not name or not NAME_RE.match(name):
        own.append((f"{where}:name", f"{name!r} is not a valid route name ([a-z0-9_-], from name/service/domain)"))
    # domains
    domains = [str(d).lower().rstrip(".") for d in _as_list(spec.get("domain")) + _as_list(spec.get("domains"))]
    if not domains:
        own.append((f"{where}:domain", "required key is missing (domain or domains)"))
    for dom in domains:
        if not DOMAIN_RE.match(dom):
            own.append((f"{where}:domain", f"{dom!r} is not a valid domain"))
    if len(set(domains)) != len(domains):
        own.append((f"{where}:domains", "lists a domain twice"))
    # answers of its own (hecate_caddy_responses): a site that only redirects needs no upstream
    redirects = hecate_caddy_responses.redirect_items(spec.get("redirect"), where, own, _matcher)
    responds = hecate_caddy_responses.respond_items(spec.get("respond"), where, own, _matcher)
    answers_all = _answers_all(spec, redirects, responds, where, own)
    # upstreams
    upstreams, scheme = [], None
    backend, upstream = spec.get("backend"), spec.get("upstream")
    consul_pending = False
    if answers_all and (backend is not None or upstream is not None):
        own.append((f"{where}:{'backend' if backend is not None else 'upstream'}",
                    f"never used: {answers_all} answers every request"))
    elif backend is not None and upstream is not None:
        own.append((f"{where}:upstream", "set either backend or upstream, not both"))
    elif answers_all:
        pass
    elif backend is None and upstream is None:
        own.append(
            (
                f"{where}:backend",
                "required key is missing (no upstream: set backend, or upstream: {consul_service: <name>})",
            )
        )
    elif backend is not None:
        backends = _as_list(backend)
        if not backends:
            own.append((f"{where}:backend", "no upstream: the backend list is empty"))
        schemes = set()
        for item in backends:
            try:
                sch, dial = parse_upstream(item)
            except ValueError as exc:
                own.append((f"{where}:backend", str(exc)))
                continue
            schemes.add(sch)
            upstreams.append(dial)
        if len(schemes) > 1:
            own.append((f"{where}:backend", "mixes http and https backends (one transport per route)"))
        scheme = schemes.pop() if len(schemes) == 1 else None
        if len(set(upstreams)) != len(upstreams):
            own.append((f"{where}:backend", "lists a backend twice"))
    else:
        service = upstream.get("consul_service") if isinstance(upstream, dict) else None
        scheme = (upstream or {}).get("scheme", "http") if isinstance(upstream, dict) else "http"
        if not service:
            own.append((f"{where}:upstream:consul_service", "required key is missing"))
        elif resolve_service is None:
            consul_pending = True
        else:
            try:
                addresses = resolve_service(service)
            except (salt.exceptions.SaltException, ValueError) as exc:
                own.append((f"{where}:upstream:consul_service", str(exc)))
                addresses = []
            for addr in sorted(set(addresses or [])):
                if str(addr).startswith("<"):  # preview placeholder, never written
                    upstreams.append(str(addr))
                    continue
                try:
                    upstreams.append(parse_upstream(str(addr))[1])
                except ValueError as exc:
                    own.append(
                        (f"{where}:upstream:consul_service", f"Consul service '{service}' gave a bad address: {exc}")
                    )
    if spec.get("tls_skip_verify") and scheme not in (None, "https"):
        own.append((f"{where}:tls_skip_verify", "only applies to an https:// backend"))
    # proxy handler
    proxy = {"handler": "reverse_proxy", "upstreams": [{"dial": d} for d in upstreams]}
    transport = _transport(scheme, spec.get("tls_skip_verify"), spec.get("tls_server_name"))
    timeouts = _timeouts(spec, where, own)
    for key in PROXY_KEYS if answers_all else ():
        if spec.get(key) not in (None, False, {}):
            own.append((f"{where}:{key}",
                        f"only applies to a route with a backend ({answers_all} answers every request)"))
    if timeouts:
        transport = dict(transport or {"protocol": "http"}, **timeouts)
    if transport:
        proxy["transport"] = transport
    headers = spec.get("headers") or {}
    if headers:
        up = _header_ops(headers.get("up"), f"{where}:headers:up", own)
        down = _header_ops(headers.get("down"), f"{where}:headers:down", own)
        hdr = {}
        if up:
            hdr["request"] = up
        if down:
            hdr["response"] = down
        if hdr:
            proxy["headers"] = hdr
    lb = spec.get("load_balancing") or {}
    if lb:
        _durations(lb, ("try_duration", "try_interval"), f"{where}:load_balancing", own)
        lbj = {}
        if lb.get("policy"):
            if lb["policy"] not in LB_POLICIES:
                own.append((f"{where}:load_balancing:policy", f"{lb['policy']!r} is not one of {list(LB_POLICIES)}"))
            lbj["selection_policy"] = {"policy": lb["policy"]}
        for key in ("try_duration", "try_interval", "retries"):
            if key in lb:
                lbj[key] = lb[key]
        proxy["load_balancing"] = lbj
    health = spec.get("health_checks") or {}
    if health:
        hc = {}
        if health.get("active"):
            active = dict(health["active"])
            _durations(active, ("interval", "timeout"), f"{where}:health_checks:active", own)
            if "uri" not in active:
                own.append((f"{where}:health_checks:active:uri", "required key is missing"))
            hc["active"] = active
        if health.get("passive"):
            passive = dict(health["passive"])
            _durations(passive, ("fail_duration", "unhealthy_latency"), f"{where}:health_checks:passive", own)
            hc["passive"] = passive
        if hc:
            proxy["health_checks"] = hc
    # policies
    loggers = hecate_caddy_logs.loggers(spec, name, where, own) if name else []
    cache = cache or PolicyCache(data)
    wanted = spec.get("policies")
    if wanted is None:
        wanted = data.get("default_policies", DEFAULT_POLICIES)
    sub = [cache.strip_identity]
    for pname in _as_list(wanted):
        if pname not in cache.policies:
            own.append((f"{where}:policies", f"unknown policy {pname!r} (have: {', '.join(sorted(cache.policies))})"))
            continue
        sub.extend(cache.routes(pname, errors))
    # the Caddyfile's directive order: redir, forward_auth, respond, reverse_proxy
    sub.extend(item for item, _ in redirects)
    fa = spec.get("forward_auth")
    auth = None
    # pillar routes only: an ad-hoc route (caddy_route.present) gets the Caddy half alone
    if id_prefix == ID_PREFIX and name and NAME_RE.match(name) and not any(p.endswith(":domain") for p, _ in own):
        settings = data.get("forward_auth") if isinstance(data.get("forward_auth"), dict) else {}
        auth, auth_errors = hecate_route_auth.from_route(name, domains, spec, settings, where)
        own.extend(auth_errors)
    if hecate_route_auth.protected(spec):
        sub.extend(_forward_auth_routes(data.get("forward_auth") or {}, fa, where, own))
    sub.extend(item for item, _ in responds)
    if not answers_all:
        sub.append({"handle": [proxy]})
    if own:
        errors.extend((path, f"{label}: {msg}") for path, msg in own)
        return None
    if consul_pending:
        return None
    route_id = id_prefix + name
    route = {
        "@id": route_id,
        "match": [{"host": domains}],
        "handle": [{"handler": "subroute", "routes": sub}],
        "terminal": True,
    }
    return Route(name, route_id, domains, route, where, auth=auth, loggers=loggers)


def route_auths(data, base=PILLAR_PATH):
    """
    The Authentik side of every protected route in the caddy block ``data`` (enabled
    routes with ``auth`` or ``forward_auth``, Consul upstreams included), as
    :class:`hecate_route_auth.RouteAuth`. Raises :class:`RouteDataError` naming each problem.
    """
    if not isinstance(data, dict):
        raise RouteDataError([(base, "must be a mapping")])
    errors, out = [], []
    settings = data.get("forward_auth") if isinstance(data.get("forward_auth"), dict) else {}
    for idx, spec in enumerate(data.get("routes") or []):
        if not isinstance(spec, dict) or spec.get("enabled") is False:
            continue
        where = f"{base}:routes:{idx}"
        name = route_name(spec)
        if not name or not NAME_RE.match(name):
            continue  # the route model names the problem
        domains = [str(d).lower().rstrip(".") for d in _as_list(spec.get("domain")) + _as_list(spec.get("domains"))]
        auth, found = hecate_route_auth.from_route(name, domains, spec, settings, where)
        errors.extend(found)
        if auth is not None:
            out.append(auth)
    errors.extend(hecate_route_auth.check_unique(out))
    if errors:
        raise RouteDataError(errors)
    return out


def hold(desired, held, live):
    """
    ``desired`` with the routes named in ``held`` (route name -> why) kept as they are in
    ``live``: a held route that Caddy has is written back unchanged (a protected route stays
    protected, a public one public), one it lacks is left out. Used for protected routes
    whose Authentik side is not in place, so that Caddy never asks the outpost about a host
    it cannot answer for.
    """
    if not held:
        return desired
    live_by_id = {_rid(r): r for r in live or [] if _rid(r)}
    out = []
    for route in desired:
        if route.name not in held:
            out.append(route)
        elif route.id in live_by_id:
            out.append(Route(route.name, route.id, route.domains, live_by_id[route.id], route.where,
                             auth=route.auth, loggers=route.loggers))
    return out


def caddy_data(pillar, path=PILLAR_PATH):
    """The Caddy block of ``pillar`` (``{}`` when missing or empty)."""
    return hecate_config.traverse(pillar, path, {}) or {}


@hecate_caddy_client.in_bulk
def build(data, resolve_service=None, id_prefix=ID_PREFIX, base=PILLAR_PATH):
    """
    The whole desired route set: a list of :class:`Route` in the order they are written
    (routes with only exact domains first, then wildcard ones; pillar order otherwise).
    Raises :class:`RouteDataError` listing every problem.
    """
    errors = []
    routes = []
    if not isinstance(data, dict):
        raise RouteDataError([(base, "must be a mapping")])
    shapes = {"routes": list, "policies": dict, "forward_auth": dict, "default_policies": list, "listen": list}
    for key, kind in shapes.items():
        if data.get(key) is not None and not isinstance(data[key], kind):
            errors.append((f"{base}:{key}", f"expected a {'list' if kind is list else 'mapping'}"))
    if errors:
        raise RouteDataError(errors)
    specs = data.get("routes") or []
    seen_names, seen_domains = {}, {}
    cache = PolicyCache(data)
    for idx, spec in enumerate(specs):
        where = f"{base}:routes:{idx}"
        if isinstance(spec, dict) and spec.get("enabled") is False:
            continue
        try:
            route = build_route(spec, where, data, resolve_service, id_prefix, errors, cache)
        except (AttributeError, TypeError, ValueError) as exc:  # shapes the schema rejects
            errors.append((where, f"malformed route ({type(exc).__name__}: {exc}); see `salt-run hecate.validate`"))
            route = None
        if route is not None:  # the same name and domains, already worked out
            name, domains = route.name, route.domains
        elif isinstance(spec, dict):
            name = route_name(spec)
            domains = [str(d).lower().rstrip(".") for d in _as_list(spec.get("domain")) + _as_list(spec.get("domains"))]
        else:
            name, domains = None, []
        if name:
            if name in seen_names:
                errors.append((f"{where}:name", f"route '{name}': name used twice (also {seen_names[name]})"))
            seen_names.setdefault(name, where)
        if domains:
            for dom in domains:
                if dom in seen_domains and seen_domains[dom][0] != where:
                    other_where, other_name = seen_domains[dom]
                    errors.append(
                        (
                            f"{where}:domain",
                            f"route '{name}': duplicate domain {dom!r} (also route '{other_name}', {other_where})",
                        )
                    )
                seen_domains.setdefault(dom, (where, name))
        if route is not None:
            routes.append(route)
    if errors:
        raise RouteDataError(errors)
    return sorted(routes, key=lambda r: r.wildcard)


PENDING_UPSTREAM = "<passing instances of Consul service '{}' when applied>"


def consul_resolver(salt_funcs, test=False):
    """
    ``resolve_service`` over ``__salt__["hecate_consul.service_addresses"]``.

    ``test``: a preview of an orchestration runs before the steps that start the
    service (Nomad), so a service with no passing instance yet is shown as a placeholder
    upstream instead of failing the preview; a real run still fails on it.
    """
    fun = "hecate_consul.service_addresses"

    def resolve(service):
        if fun not in salt_funcs:
            raise salt.exceptions.CommandExecutionError(
                f"Consul module not available ({fun} is not loaded on this minion); "
                f"cannot resolve Consul service '{service}'"
            )
        addresses = salt_funcs[fun](service, passing=True)
        if not addresses and test:
            return [PENDING_UPSTREAM.format(service)]
        if not addresses:
            raise salt.exceptions.CommandExecutionError(
                f"Consul service '{service}' has no passing instances"
            )
        return list(addresses)

    return resolve


# -- reading routes back -------------------------------------------------------------------------
def _dials(handler):
    return [u.get("dial") for u in handler.get("upstreams") or [] if isinstance(u, dict)]


def describe(route):
    """
    A readable view of a route object (hecate-built or not) for diffs: domains, the
    policies' pieces, forward auth and the upstream proxy, durations normalised.
    """
    view = {}
    if not isinstance(route, dict):
        return {"value": route}
    hosts = []
    for mset in route.get("match") or []:
        if isinstance(mset, dict):
            hosts.extend(mset.get("host") or [])
    view["domains"] = hosts
    other = {k: v for k, v in route.items() if k not in ("@id", "match", "handle", "terminal")}
    if other:
        view["other"] = other
    handlers = route.get("handle") or []
    subroutes = []
    for handler in handlers:
        if isinstance(handler, dict) and handler.get("handler") == "subroute":
            subroutes.extend(handler.get("routes") or [])
        else:
            subroutes.append({"handle": [handler]})
    for idx, sub in enumerate(subroutes):
        match = sub.get("match") if isinstance(sub, dict) else None
        for handler in (sub.get("handle") or []) if isinstance(sub, dict) else []:
            if not isinstance(handler, dict):
                continue
            kind = handler.get("handler")
            if kind == "static_response" and (handler.get("headers") or {}).get("Location"):
                view.setdefault("redirect", []).append(
                    {"to": handler["headers"]["Location"], "status": handler.get("status_code"),
                     "match": match or "(all requests)"})
            elif kind == "static_response" and ("body" in handler or handler.get("close")):
                entry = {k: handler[k] for k in ("status_code", "body", "close") if k in handler}
                view.setdefault("respond", []).append(dict(entry, match=match or "(all requests)"))
            elif kind == "static_response" and handler.get("abort"):
                view.setdefault("abort", []).extend(match or ["(all requests)"])
            elif kind == "static_response":
                view.setdefault(f"respond {handler.get('status_code', 200)}", []).extend(match or ["(all requests)"])
            elif kind == "headers" and set(handler) == {"handler", "request"} and set(handler["request"]) == {"delete"}:
                view.setdefault("request_headers_deleted", []).extend(handler["request"]["delete"])
            elif kind == "headers" and "response" in handler and not handler.get("request"):
                view.setdefault("response_headers", {}).update(
                    {k: v for k, v in handler["response"].items() if k != "deferred"}
                )
            elif kind == "encode":
                view["encode"] = sorted(handler.get("encodings") or {})
            elif kind == "reverse_proxy" and handler.get("rewrite"):
                fa = view.setdefault("forward_auth", {})
                fa["outpost"] = _dials(handler)
                fa["uri"] = handler["rewrite"].get("uri")
                fa["copy_headers"] = sorted(
                    {
                        name
                        for hr in handler.get("handle_response") or []
                        for r in hr.get("routes") or []
                        for h in r.get("handle") or []
                        for name in ((h.get("request") or {}).get("set") or {})
                    }
                )
                if handler.get("transport"):
                    fa["transport"] = handler["transport"]
            elif kind == "reverse_proxy" and match == [{"path": [OUTPOST_PATH]}]:
                view.setdefault("forward_auth", {})["outpost_paths"] = _dials(handler)
            elif kind == "reverse_proxy":
                view["upstreams"] = _dials(handler)
                for key in ("transport", "load_balancing", "health_checks", "headers"):
                    if key in handler:
                        view[key] = handler[key]
                rest = {
                    k: v
                    for k, v in handler.items()
                    if k not in ("handler", "upstreams", "transport", "load_balancing", "health_checks", "headers")
                }
                if rest:
                    view["proxy_other"] = rest
            else:
                view.setdefault("other_handlers", []).append({"at": idx, "match": match, "handler": handler})
    return normalise(view)


def summary(route):
    """Domains, upstreams (and forward-auth outpost, upstream TLS) of a route: for reports."""
    out = {"domains": [], "upstreams": []}
    if not isinstance(route, dict):
        return out
    for mset in route.get("match") or []:
        if isinstance(mset, dict):
            out["domains"].extend(mset.get("host") or [])
    stack = list(route.get("handle") or [])
    while stack:
        handler = stack.pop(0)
        if not isinstance(handler, dict):
            continue
        if handler.get("handler") == "subroute":
            for sub in handler.get("routes") or []:
                if isinstance(sub, dict) and sub.get("match") != [{"path": [OUTPOST_PATH]}]:
                    stack.extend(sub.get("handle") or [])
                if isinstance(sub, dict) and not sub.get("match"):
                    out.update(_answer_summary(sub.get("handle")))
        elif handler.get("handler") == "reverse_proxy":
            if handler.get("rewrite"):
                out["forward_auth"] = _dials(handler)
            else:
                out["upstreams"] = _dials(handler)
                tls = (handler.get("transport") or {}).get("tls")
                if tls is not None:
                    out["tls"] = tls
    return out


def _answer_summary(handlers):
    """``redirect``/``respond`` of a route that answers every request itself (for reports)."""
    for handler in handlers if isinstance(handlers, list) else []:
        if isinstance(handler, dict) and handler.get("handler") == "static_response":
            location = (handler.get("headers") or {}).get("Location")
            if location:
                return {"redirect": {"to": location[0], "status": handler.get("status_code", 200)}}
            return {"respond": "abort" if handler.get("abort") else handler.get("status_code", 200)}
    return {}


def route_diff(old, new):
    """Readable field diff of two route objects ({} when they are equivalent)."""
    if old == new or normalise(old) == normalise(new):
        return {}
    changes = hecate_state.diff(describe(old), describe(new))
    if not changes:  # the view did not capture the difference: show the raw objects
        changes = hecate_state.diff(normalise(old), normalise(new))
    return changes or {"route": {"old": old, "new": new}}


def _rid(route):
    return route.get("@id") if isinstance(route, dict) else None


def _label(route, idx, prefix):
    rid = _rid(route)
    if rid and rid.startswith(prefix):
        return rid[len(prefix):]
    return f"{rid or '#' + str(idx)} (not managed)"


# -- routes Caddy would never use ------------------------------------------------------------------
# Caddy runs a server's routes in order (modules/caddyhttp/server.go, Server.Routes). A route runs
# when one of its matcher sets matches (no set, or an empty one, matches every request: routes.go,
# MatcherSets.AnyMatchWithError, MatcherSet.Match). A running route ends the request when it is
# ``terminal`` (routes.go, wrapRoute: the next handler becomes emptyHandler) or when one of its
# handlers answers without calling the next one (routes.go, Route.HandlersRaw). A later route for
# the same host then never sees a request. The judgement is conservative, since a false alarm
# blocks a valid deploy: a route counts only when it takes EVERY request for a domain.
#
# - Its matcher sets: none, an empty one, or one made only of ``host`` whose pattern covers the
#   domain (matchers.go, MatchHost: case-insensitive; a ``*`` label matches exactly one label, the
#   label count must be equal; a pattern with a placeholder is never judged). Any other matcher
#   (path, header, ...) narrows the route: it does not count.
# - It ends the request: ``terminal``, or a handler of its own list that never calls the next one:
#   static_response (except status 103, staticresp.go), reverse_proxy without handle_response
#   (whose routes may fall through to the next handler, as forward auth does: reverseproxy.go),
#   error (staticerror.go), file_server without pass_thru (fileserver/staticfiles.go, notFound),
#   or a subroute without error routes one of whose routes takes every request for the domain.
# - It is in no ``group`` (only the first matching route of a group runs, and the group may have
#   been satisfied elsewhere): grouped routes are never judged.
def host_covers(pattern, domain):
    """
    Whether Caddy's host matcher ``pattern`` matches every request for ``domain`` (``*.x``
    too; None: any host, which no pattern covers).
    """
    if domain is None or not isinstance(pattern, str) or not pattern or "{" in pattern:
        return False
    try:
        pattern = pattern if pattern.isascii() else pattern.encode("idna").decode("ascii")
    except UnicodeError:
        return False
    pattern = pattern.lower()
    if "*" not in pattern:
        return pattern == domain
    want, have = pattern.split("."), domain.split(".")
    return len(want) == len(have) and all(w in ("*", h) for w, h in zip(want, have))


def _matches_every_request(route, domain):
    sets = route.get("match")
    if not sets:
        return True
    if not isinstance(sets, list):
        return False
    for mset in sets:
        if mset == {}:
            return True
        if (isinstance(mset, dict) and set(mset) == {"host"} and isinstance(mset["host"], list)
                and any(host_covers(pattern, domain) for pattern in mset["host"])):
            return True
    return False


def _answers(handlers, domain):
    """Why this handler chain never calls the next route for a request of ``domain``, or None."""
    for handler in handlers if isinstance(handlers, list) else []:
        if not isinstance(handler, dict):
            continue
        kind = handler.get("handler")
        status = str(handler.get("status_code", ""))
        if kind == "static_response" and status != "103" and "{" not in status:
            return "its static_response answers"
        if kind == "reverse_proxy" and not handler.get("handle_response"):
            return "its reverse_proxy answers"
        if kind == "error":
            return "its error handler answers"
        if kind == "file_server" and not handler.get("pass_thru"):
            return "its file_server answers"
        if kind == "subroute" and not handler.get("errors"):
            inner = shadowed_by(handler.get("routes") or [], domain)
            if inner is not None:
                return f"its subroute's route {inner[0]}: {inner[1]}"
    return None


def takes_every_request(route, domain):
    """Why ``route`` ends every request for ``domain`` that reaches it, or None (see above)."""
    if not isinstance(route, dict) or route.get("group") or not _matches_every_request(route, domain):
        return None
    if route.get("terminal") is True:
        return "terminal"
    return _answers(route.get("handle"), domain)


def shadowed_by(routes, domain):
    """``(index, why)`` of the first of ``routes`` that takes every request for ``domain``, or None."""
    for idx, route in enumerate(routes if isinstance(routes, list) else []):
        why = takes_every_request(route, domain)
        if why:
            return idx, why
    return None


def _catch_all(route):
    """
    A route that may end every request whatever its host: hecate's routes go before it. Its
    group is ignored here (placing hecate's routes early is harmless; missing one is not).
    """
    if not isinstance(route, dict) or not _matches_every_request(route, None):
        return False
    return route.get("terminal") is True or _answers(route.get("handle"), None) is not None


def _hosts_text(route):
    hosts = []
    for mset in route.get("match") or [] if isinstance(route, dict) else []:
        if isinstance(mset, dict):
            hosts.extend(str(h) for h in mset.get("host") or [])
    if not hosts:
        return "no host matcher: every host"
    return ("host " if len(hosts) == 1 else "hosts ") + ", ".join(hosts)


class ShadowedRoutes(salt.exceptions.CommandExecutionError):
    """
    Routes Caddy would never use. ``found`` is ``[(ours, domain, index, other, why)]``: our
    :class:`Route`, its domain, and the index, object and reason of the earlier route.
    """

    def __init__(self, found, server=None):
        self.found, self.server = list(found), server
        where = f"Caddy server '{server}'" if server else "the Caddy server"
        lines = []
        for ours, domain, index, other, why in self.found:
            rid = _rid(other)
            label = f"@id {rid}" if rid else "no @id"
            kind = "Caddy route" if ours.id.startswith(ADHOC_PREFIX) else "hecate route"
            lines.append(
                f"- {kind} '{ours.name}' ({ours.id}, {ours.where}) would never serve {domain}: "
                f"route {index} of {where} ({label}; {_hosts_text(other)}), {_owner(rid)}, "
                f"comes first and takes every request for it ({why})"
            )
        super().__init__(
            "Caddy would never send these routes a request; nothing was written:\n" + "\n".join(lines)
            + "\nCaddy runs a server's routes in order, and a matching route that is terminal or "
            "answers the request itself ends it. Remove or narrow the earlier route (e.g. the site "
            "block of a Caddyfile loaded into this server), or take the domain out of hecate's routes."
        )

    def on(self, server):
        return ShadowedRoutes(self.found, server)


def _owner(rid):
    rid = rid or ""
    if rid.startswith(ID_PREFIX):
        return "a pillar route of caddy_routes.managed"
    if rid.startswith(ADHOC_PREFIX):
        return "an ad-hoc route of caddy_route.present"
    return "not managed by hecate"


def check_shadowing(routes, ours):
    """
    Raise :class:`ShadowedRoutes` when a route of ``ours`` (:class:`Route`), at its place in
    ``routes`` (the server's routes as they will be), has a domain that an earlier route
    not in ``ours`` takes entirely. ``routes`` holds the same objects as ``ours[i].json``.
    """
    found = []
    mine = {id(r.json): r for r in ours}
    others, where = [], []  # the earlier routes that are not ours, and their indexes
    for idx, route in enumerate(routes):
        if id(route) not in mine:
            others.append(route)
            where.append(idx)
            continue
        ours_route = mine[id(route)]
        for domain in ours_route.domains if others else ():
            hit = shadowed_by(others, domain)
            if hit is not None:
                found.append((ours_route, domain, where[hit[0]], others[hit[0]], hit[1]))
    if found:
        raise ShadowedRoutes(found)


# -- plans -----------------------------------------------------------------------------------------
def _equivalent(new, live):
    """
    Whether two routes arrays mean the same. Caddy returns what it was given, so a converged
    server is usually equal as is; only a route that is not equal is normalised (durations),
    never the whole array (at 10,000 routes that took longer than the rest of the plan).
    """
    return len(new) == len(live) and all(a is b or a == b or normalise(a) == normalise(b) for a, b in zip(new, live))


def plan_set(live, desired, prefix=ID_PREFIX):
    """
    The new routes array of a server whose hecate-managed routes (``@id`` starting with
    ``prefix``) must be exactly ``desired`` (list of :class:`Route`), and the changes.

    Routes hecate does not manage are kept verbatim and in order; the managed block takes
    the place of the first managed route; when there is none, it goes before the first
    catch-all (a route that ends every request, whatever its host), else at the end.

    Raises :class:`ShadowedRoutes` when an earlier route hecate does not manage would take
    every request for a domain of ``desired`` (see :func:`takes_every_request`), converged
    or not: Caddy would never use that route.
    """
    live = list(live or [])
    managed_idx = [i for i, r in enumerate(live) if (_rid(r) or "").startswith(prefix)]
    unmanaged = [r for r in live if not (_rid(r) or "").startswith(prefix)]
    if managed_idx:
        at = managed_idx[0]
    else:
        at = next((i for i, r in enumerate(unmanaged) if _catch_all(r)), len(unmanaged))
    new = unmanaged[:at] + [r.json for r in desired] + unmanaged[at:]
    check_shadowing(new, desired)
    if _equivalent(new, live):
        return live, {}
    live_by_id = {_rid(live[i]): live[i] for i in managed_idx}
    want_by_id = {r.id: r for r in desired}
    changes = {}
    added = {r.name: summary(r.json) for r in desired if r.id not in live_by_id}
    removed = {rid[len(prefix):]: summary(live_by_id[rid]) for rid in live_by_id if rid not in want_by_id}
    changed = {}
    for rid, route in live_by_id.items():
        if rid in want_by_id:
            delta = route_diff(route, want_by_id[rid].json)
            if delta:
                changed[rid[len(prefix):]] = delta
    if added:
        changes["added"] = added
    if removed:
        changes["removed"] = removed
    if changed:
        changes["changed"] = changed
    if not changes:
        changes["order"] = {
            "old": [_label(r, i, prefix) for i, r in enumerate(live)],
            "new": [_label(r, i, prefix) for i, r in enumerate(new)],
        }
    return new, changes


def plan_present(live, route, index=None):
    """
    Add or update one route (by ``@id``); other routes untouched. Raises
    :class:`ShadowedRoutes` when an earlier route takes every request for one of its domains.
    """
    live = list(live or [])
    for i, existing in enumerate(live):
        if _rid(existing) == route.id:
            new = live[:i] + [route.json] + live[i + 1:]
            check_shadowing(new, [route])
            delta = route_diff(existing, route.json)
            if not delta:
                return live, {}
            return new, {"changed": {route.name: delta}}
    new = list(live)
    if index is None or index >= len(new):
        new.append(route.json)
    else:
        new.insert(max(0, int(index)), route.json)
    check_shadowing(new, [route])
    return new, {"added": {route.name: summary(route.json)}}


def plan_absent(live, route_id, name):
    live = list(live or [])
    for i, existing in enumerate(live):
        if _rid(existing) == route_id:
            return live[:i] + live[i + 1:], {"removed": {name: summary(existing)}}
    return live, {}
