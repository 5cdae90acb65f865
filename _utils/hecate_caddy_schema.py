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
