"""
The pillar of hecate's Caddy routes, ``hecate:reverse_proxy:caddy``: its schema, and the
checks a schema cannot express (:func:`check_pillar` builds the route set with
``hecate_caddy_routes.build``, which names every bad key; Consul upstreams are not resolved
here).
"""

import hecate_caddy_routes

# -- schema (hecate_schema assembles it; semantic checks are in check_pillar) -------------------
_STR = {"type": "string", "minLength": 1}
_STRS = {"type": "array", "items": _STR}
_STR_OR_STRS = {"type": ["string", "array"], "minLength": 1, "items": _STR}
_DURATION = {"type": ["string", "integer"]}
_PORT = {"type": "integer", "minimum": 1, "maximum": 65535}
_BOOL = {"type": "boolean"}
_HEADER_OPS = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "set": {"type": "object", "additionalProperties": _STR_OR_STRS},
        "add": {"type": "object", "additionalProperties": _STR_OR_STRS},
        "delete": _STRS,
    },
}
_MATCHER = {
    "type": "object",
    "additionalProperties": False,
    "minProperties": 1,
    "properties": {
        "headers": {"type": "object", "additionalProperties": _STR_OR_STRS},
        "header_regexp": {"type": "object", "additionalProperties": _STR},
        "paths": _STRS,
        "path_regexp": _STR,
        "query": {"type": "object", "additionalProperties": _STR_OR_STRS},
        "methods": _STRS,
        "remote_ip": _STRS,
    },
}
_POLICY = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "block": {"type": "array", "items": _MATCHER},
        "block_status": {"type": "integer", "minimum": 400, "maximum": 599},
        "abort": {"type": "array", "items": _MATCHER},
        "response_headers": {"type": "object", "additionalProperties": {"type": ["string", "null"]}},
        "encode": {"type": "array", "items": {"enum": ["gzip", "zstd"]}},
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
        "oneOf": [_MATCHER, {"type": "array", "minItems": 1, "items": _MATCHER}],
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
    "properties": {
        "name": _STR,
        "service": _STR,
        "enabled": _BOOL,
        "domain": _STR,
        "domains": _STRS,
        "backend": _STR_OR_STRS,
        "upstream": {
            "type": "object",
            "additionalProperties": False,
            "required": ["consul_service"],
            "properties": {"consul_service": _STR, "scheme": {"enum": ["http", "https"]}},
        },
        "tls_skip_verify": _BOOL,
        "tls_server_name": _STR,
        "headers": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"up": _HEADER_OPS, "down": _HEADER_OPS},
        },
        "health_checks": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "active": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "uri": {"type": "string", "pattern": "^/"},
                        "port": _PORT,
                        "interval": _DURATION,
                        "timeout": _DURATION,
                        "expect_status": {"type": "integer", "minimum": 100, "maximum": 599},
                        "passes": {"type": "integer", "minimum": 1},
                        "fails": {"type": "integer", "minimum": 1},
                    },
                },
                "passive": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "fail_duration": _DURATION,
                        "max_fails": {"type": "integer", "minimum": 1},
                        "unhealthy_status": {"type": "array", "items": {"type": "integer"}},
                        "unhealthy_latency": _DURATION,
                    },
                },
            },
        },
        "load_balancing": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "policy": {"enum": list(hecate_caddy_routes.LB_POLICIES)},
                "try_duration": _DURATION,
                "try_interval": _DURATION,
                "retries": {"type": "integer", "minimum": 0},
            },
        },
        "forward_auth": {
            "oneOf": [
                _BOOL,
                {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {"copy_headers": _STRS},
                },
            ]
        },
        "policies": _STRS,
        **_ROUTE_EXTRA,
    },
}
CADDY_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "version": {"type": "string"},
        "server": {"type": "string", "pattern": hecate_caddy_routes.SERVER_RE},
        "listen": _STRS,
        "ports": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"http": _PORT, "https": _PORT, "admin": _PORT},
        },
        "forward_auth": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "outpost": _STR,
                "uri": {"type": "string", "pattern": "^/"},
                "copy_headers": _STRS,
                "tls_skip_verify": _BOOL,
            },
        },
        "policies": {"type": "object", "additionalProperties": _POLICY},
        "default_policies": _STRS,
        "keep_snapshots": {"type": "integer", "minimum": 1, "maximum": 1000},
        "routes": {"type": "array", "items": _ROUTE},
    },
}
PILLAR_SCHEMA = {hecate_caddy_routes.PILLAR_PATH: CADDY_SCHEMA}


def check_pillar(pillar, env):
    """Semantic checks for hecate_schema.validate (Consul upstreams are not resolved here)."""
    data = hecate_caddy_routes.caddy_data(pillar)
    if not isinstance(data, dict) or not data:
        return []
    try:
        hecate_caddy_routes.build(data, resolve_service=None)
    except hecate_caddy_routes.RouteDataError as exc:
        return exc.errors
    return []
