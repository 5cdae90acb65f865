"""
The pillar of hecate's Caddy routes, ``hecate:reverse_proxy:caddy``: its schema, and the
checks a schema cannot express (:func:`check_pillar` builds the route set with
``hecate_caddy_routes.build``, which names every bad key; Consul upstreams are not resolved
here).
"""

import hecate_caddy_routes
import hecate_route_auth
import hecate_schema

# -- schema (hecate_schema assembles it; semantic checks are in check_pillar) -------------------
_STR = {"type": "string", "minLength": 1}
_STRS = {"type": "array", "items": _STR}
_STR_OR_STRS = {"type": ["string", "array"], "minLength": 1, "items": _STR}
_DURATION = {"type": ["string", "integer"]}
_PORT = {"type": "integer", "minimum": 1, "maximum": 65535}
_BOOL = {"type": "boolean"}
_d = hecate_schema.described
_DUR = " (a duration such as 10s, or nanoseconds)"


def _header_ops(direction):
    return {
        "type": "object",
        "additionalProperties": False,
        "description": f"Header changes on the {direction}.",
        "properties": {
            "set": {"type": "object", "additionalProperties": _STR_OR_STRS,
                    "description": "Headers to set (replacing existing values): name -> value or list; values "
                                   "may hold Caddy placeholders."},
            "add": {"type": "object", "additionalProperties": _STR_OR_STRS,
                    "description": "Headers to add next to existing values: name -> value or list."},
            "delete": _d(_STRS, "Header names to remove."),
        },
    }


def _matcher(outcome):
    return {
        "type": "object",
        "additionalProperties": False,
        "minProperties": 1,
        "description": f"A request matcher: the request is {outcome} when every key given matches.",
        "properties": {
            "headers": {"type": "object", "additionalProperties": _STR_OR_STRS,
                        "description": "Header name -> value(s) it must have (* for any value)."},
            "header_regexp": {"type": "object", "additionalProperties": _STR,
                              "description": "Header name -> regular expression its value must match."},
            "paths": _d(_STRS, "Paths, any of which must match (* wildcards)."),
            "path_regexp": _d(_STR, "A regular expression the path must match."),
            "query": {"type": "object", "additionalProperties": _STR_OR_STRS,
                      "description": "Query parameter -> value(s) it must have (* for any value)."},
            "methods": _d(_STRS, "HTTP methods, any of which must match."),
            "remote_ip": _d(_STRS, "Client addresses or CIDR ranges, any of which must match."),
        },
    }


_POLICY = {
    "type": "object",
    "additionalProperties": False,
    "description": "A named block of rules expanded into each route that lists it.",
    "properties": {
        "block": {"type": "array", "items": _matcher("answered block_status"),
                  "description": "Matchers whose requests get block_status instead of the backend."},
        "block_status": {"type": "integer", "minimum": 400, "maximum": 599, "default": 404,
                         "description": "Status code of a blocked request."},
        "abort": {"type": "array", "items": _matcher("dropped (connection closed)"),
                  "description": "Matchers whose requests have their connection closed without an answer."},
        "response_headers": {"type": "object", "additionalProperties": {"type": ["string", "null"]},
                             "description": "Headers set on every response (replacing the backend's); null "
                                            "deletes one."},
        "encode": {"type": "array", "items": {"enum": ["gzip", "zstd"]},
                   "description": "Response compressions offered."},
    },
}
# -- answers of a route's own, timeouts, access logs (hecate_caddy_responses, hecate_caddy_logs) ----
_ENTRY_MATCH = {
    "path": {
        "type": "string",
        "pattern": "^[/*]",
        "description": "Only requests whose path matches this pattern (Caddy's path matcher, e.g. /health or /old/*).",
    },
    "match": {
        "description": (
            "Only requests this matcher (as in a policy: headers, header_regexp, paths, path_regexp, query, "
            "methods, remote_ip; keys all must match) or one of this list of matchers matches. Without path "
            "or match the entry answers every request of the route."
        ),
        "oneOf": [_matcher("answered by this entry"),
                  {"type": "array", "minItems": 1, "items": _matcher("answered by this entry")}],
    },
}
_REDIRECT = {
    "type": "object",
    "additionalProperties": False,
    "required": ["to"],
    "description": "One redirect (the Caddyfile's redir).",
    "properties": {
        "to": {
            "type": "string",
            "minLength": 1,
            "description": (
                "Where to: a URL or a path; Caddyfile shorthands such as {uri} and {host} are expanded as "
                "caddy adapt does (https://example.com{uri} keeps the path and query)."
            ),
        },
        "status": {
            "oneOf": [{"type": "integer", "minimum": 300, "maximum": 308}, {"enum": ["permanent", "temporary"]}],
            "description": "3xx status; permanent is 301, temporary (the default, as in Caddy) 302.",
        },
        **_ENTRY_MATCH,
    },
}
_RESPOND = {
    "type": "object",
    "additionalProperties": False,
    "description": "One static response (the Caddyfile's respond, or abort).",
    "properties": {
        "status": {
            "type": "integer",
            "minimum": 100,
            "maximum": 599,
            "description": "HTTP status (Caddy's default: 200).",
        },
        "body": {
            "type": "string",
            "description": "Response body; Caddyfile shorthands such as {host} are expanded.",
        },
        "close": {"type": "boolean", "description": "Close the connection after the response."},
        "abort": {
            "type": "boolean",
            "description": "Close the connection without any response (the Caddyfile's abort); no status or body.",
        },
        **_ENTRY_MATCH,
    },
}
_ACCESS_LOG = {
    "type": "object",
    "additionalProperties": False,
    "description": "One access log of the route's domains (the Caddyfile's per-site log).",
    "properties": {
        "file": {
            "type": "string",
            "pattern": "^/",
            "description": "Write the log to this file (absolute path; Caddy's log rolling defaults apply).",
        },
        "output": {
            "enum": ["stderr", "stdout", "discard"],
            "description": "Write the log to this stream instead of a file (default: stderr).",
        },
        "format": {"enum": ["json", "console"], "description": "Encoder (Caddy's default: json when not a terminal)."},
        "level": {
            "enum": ["DEBUG", "INFO", "WARN", "ERROR"],
            "description": "Minimum level (Caddy's default: INFO; access entries of 5xx answers are ERROR).",
        },
    },
}
_ROUTE_EXTRA = {
    "redirect": {
        "description": (
            "Redirects this route answers itself, before forward auth (a mapping or a list; entries run in "
            "order). A redirect without path or match answers every request: the route then needs no backend."
        ),
        "oneOf": [_REDIRECT, {"type": "array", "minItems": 1, "items": _REDIRECT}],
    },
    "respond": {
        "description": (
            "Static responses this route answers itself, after forward auth and before the backend (a mapping "
            "or a list; entries run in order), e.g. a health endpoint. One without path or match answers "
            "every request: the route then needs no backend."
        ),
        "oneOf": [_RESPOND, {"type": "array", "minItems": 1, "items": _RESPOND}],
    },
    "dial_timeout": {
        "type": ["string", "integer"],
        "description": (
            "How long to wait for the connection to the backend (Caddy's transport dial_timeout: a duration "
            "such as 5s, or nanoseconds; Caddy's default: 3s)."
        ),
    },
    "response_header_timeout": {
        "type": ["string", "integer"],
        "description": (
            "How long to wait for the backend's response headers once the request is sent (Caddy's transport "
            "response_header_timeout: a duration such as 30s, or nanoseconds; Caddy's default: no limit)."
        ),
    },
    "access_log": {
        "description": (
            "Access logs of the route's domains: true (Caddy's defaults), a mapping or a list of them. hecate "
            "writes one logger per entry, logging.logs.hecate.<route>.<n>, and maps the domains to it in the "
            "server's logs.logger_names (Caddy 2.10 or newer)."
        ),
        "oneOf": [{"type": "boolean"}, _ACCESS_LOG, {"type": "array", "minItems": 1, "items": _ACCESS_LOG}],
    },
}
_ROUTE = {
    "type": "object",
    "additionalProperties": False,
    "description": "One site: its domains, where requests go, and what happens on the way.",
    "properties": {
        "name": _d(_STR, "The route's name ([a-z0-9_-]); its Caddy @id is hecate.route.<name>. Absent: "
                         "service, else made from the first domain."),
        "service": _d(_STR, "What the route serves; its name when name is absent.", examples=["nextcloud"]),
        "enabled": _d(_BOOL, "false keeps the entry in pillar but removes the route from Caddy.", default=True),
        "domain": _d(_STR, "The domain the route serves (* for one label of a wildcard).",
                     examples=["cloud.example.com"]),
        "domains": _d(_STRS, "Several domains (instead of or next to domain)."),
        "backend": _d(_STR_OR_STRS, "Where requests go: host:port, http(s)://host[:port], or a list of them "
                                    "(load-balanced; all http or all https). Set backend or upstream.",
                      examples=["100.65.138.128:11000"]),
        "upstream": {
            "type": "object",
            "additionalProperties": False,
            "required": ["consul_service"],
            "description": "Backends found in Consul when the state runs (instead of backend).",
            "properties": {
                "consul_service": _d(_STR, "The Consul service whose passing instances are the backends.",
                                     examples=["bionicgpt-oauth2-proxy"]),
                "scheme": {"enum": ["http", "https"], "default": "http",
                           "description": "How Caddy talks to the instances."},
            },
        },
        "tls_skip_verify": _d(_BOOL, "Do not verify an https backend's certificate.", default=False),
        "tls_server_name": _d(_STR, "SNI and certificate name for an https backend."),
        "headers": {
            "type": "object",
            "additionalProperties": False,
            "description": "Header changes on the way to the backend (up) and back (down).",
            "properties": {"up": _header_ops("request to the backend"),
                           "down": _header_ops("response to the client")},
        },
        "health_checks": {
            "type": "object",
            "additionalProperties": False,
            "description": "Caddy's health checks of the backends; an unhealthy one gets no requests.",
            "properties": {
                "active": {
                    "type": "object",
                    "additionalProperties": False,
                    "description": "Caddy polls each backend.",
                    "properties": {
                        "uri": {"type": "string", "pattern": "^/",
                                "description": "Path (and query) requested (required for active checks)."},
                        "port": _d(_PORT, "Port polled instead of the backend's."),
                        "interval": _d(_DURATION, "Time between two polls" + _DUR + "."),
                        "timeout": _d(_DURATION, "How long a poll may take" + _DUR + "."),
                        "expect_status": {"type": "integer", "minimum": 100, "maximum": 599,
                                          "description": "Status a healthy backend answers; absent: any 2xx."},
                        "passes": {"type": "integer", "minimum": 1,
                                   "description": "Passing polls before a backend is healthy again."},
                        "fails": {"type": "integer", "minimum": 1,
                                  "description": "Failing polls before a backend is unhealthy."},
                    },
                },
                "passive": {
                    "type": "object",
                    "additionalProperties": False,
                    "description": "Caddy judges backends by the proxied requests.",
                    "properties": {
                        "fail_duration": _d(_DURATION, "How long a failed request is remembered" + _DUR
                                            + "; required for passive checks to work."),
                        "max_fails": {"type": "integer", "minimum": 1,
                                      "description": "Failures within fail_duration that make a backend unhealthy."},
                        "unhealthy_status": {"type": "array", "items": {"type": "integer"},
                                             "description": "Response statuses counted as failures."},
                        "unhealthy_latency": _d(_DURATION, "Responses slower than this count as failures" + _DUR
                                                + "."),
                    },
                },
            },
        },
        "load_balancing": {
            "type": "object",
            "additionalProperties": False,
            "description": "How Caddy picks a backend and retries.",
            "properties": {
                "policy": {"enum": list(hecate_caddy_routes.LB_POLICIES), "default": "random",
                           "description": "Selection policy (Caddy's default random)."},
                "try_duration": _d(_DURATION, "How long to keep trying backends for one request" + _DUR
                                   + "; absent: one try."),
                "try_interval": _d(_DURATION, "Wait between two tries" + _DUR + "."),
                "retries": {"type": "integer", "minimum": 0,
                            "description": "Further backends tried for one request."},
            },
        },
        "forward_auth": {
            "oneOf": [
                _BOOL,
                {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "copy_headers": _d(_STRS, "Headers copied from the outpost's answer onto the request, "
                                                  "instead of forward_auth:copy_headers."),
                    },
                },
            ],
            "default": False,
            "description": (
                "true: every request is first checked by the Authentik outpost (forward_auth:outpost); "
                "unauthenticated users are sent to the login."
            ),
        },
        # the Authentik side of a protected route (hecate_route_auth); implies forward_auth
        "auth": hecate_route_auth.AUTH_SCHEMA,
        "policies": _d(_STRS, "Policies applied to the route, in order; absent: default_policies; [] for none."),
        **_ROUTE_EXTRA,
    },
}
CADDY_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "description": (
        "The edge's HTTP(S) routes in Caddy, driven through its Admin API: hecate owns the routes "
        "whose @id starts with hecate.route. and never touches others."
    ),
    "properties": {
        "version": {"type": "string", "examples": ["2.10.0"],
                    "description": "The Caddy release in use (2.8 or newer), written into the deployment record."},
        "server": {"type": "string", "pattern": hecate_caddy_routes.SERVER_RE,
                   "default": hecate_caddy_routes.DEFAULT_SERVER,
                   "description": "The server under apps.http.servers that holds the routes (srv0 for a "
                                  "Caddyfile's sites)."},
        "listen": _d(_STRS, "Listener addresses for creating server when Caddy lacks it; refused when another "
                            "server listens there. Absent: a missing server is an error.",
                     examples=[[":443"]]),
        "ports": {
            "type": "object",
            "additionalProperties": False,
            "description": "Caddy's ports, for the edge's port-clash checks (nginx streams, coturn).",
            "properties": {
                "http": _d(_PORT, "HTTP port (TCP).", default=80),
                "https": _d(_PORT, "HTTPS port (TCP, and UDP for HTTP/3).", default=443),
                "admin": _d(_PORT, "Admin API port (TCP).", default=2019),
            },
        },
        "forward_auth": {
            "type": "object",
            "additionalProperties": False,
            "description": "The Authentik outpost routes with forward_auth use.",
            "properties": {
                "outpost": _d(_STR, "The outpost: host:port or http(s)://host[:port]; required once a route "
                                    "uses forward_auth.",
                              examples=["hecate-server-1:9000"]),
                "uri": {"type": "string", "pattern": "^/", "default": hecate_caddy_routes.OUTPOST_AUTH_URI,
                        "description": "The outpost's auth endpoint."},
                "copy_headers": _d(_STRS, "Headers copied from the outpost's answer onto the request; absent: "
                                          "Authentik's X-Authentik-* set."),
                "tls_skip_verify": _d(_BOOL, "Do not verify an https outpost's certificate.", default=False),
                **hecate_route_auth.FORWARD_AUTH_SETTINGS,
            },
        },
        "policies": {"type": "object", "additionalProperties": _POLICY,
                     "description": "Policies by name, merged over the built-in security and common ones "
                                    "(lists replace); new names add policies."},
        "default_policies": _d(_STRS, "Policies of a route that names none.",
                               default=list(hecate_caddy_routes.DEFAULT_POLICIES)),
        "keep_snapshots": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 10,
                           "description": "Rollback snapshots kept per server (pending ones are never pruned)."},
        "routes": {"type": "array", "items": _ROUTE, "default": [],
                   "description": "The routes hecate keeps on the server, exactly: a route removed here is "
                                  "removed from Caddy."},
    },
}
PILLAR_SCHEMA = {hecate_caddy_routes.PILLAR_PATH: CADDY_SCHEMA}


def check_pillar(pillar, env):
    """Semantic checks for hecate_schema.validate (Consul upstreams are not resolved here)."""
    data = hecate_caddy_routes.caddy_data(pillar)
    if not isinstance(data, dict) or not data:
        return []
    errors = []
    try:
        hecate_caddy_routes.build(data, resolve_service=None)
    except hecate_caddy_routes.RouteDataError as exc:
        errors.extend(exc.errors)
    try:
        hecate_caddy_routes.route_auths(data)  # Consul routes too, and slugs unique across routes
    except hecate_caddy_routes.RouteDataError as exc:
        errors.extend(e for e in exc.errors if e not in errors)
    return errors
