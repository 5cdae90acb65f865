"""
The pillar of the external services hecate registers in Consul, ``hecate:consul:services``:
its schema, and the checks a schema cannot express (one check kind, an interval where one
is needed, no ``consul-`` meta keys). ``hecate_consul_client.service_definition`` turns an
entry into Consul's registration body.
"""

import hecate_schema

# -- pillar: external services registered in Consul (hecate:consul:services) ----------------------
DURATION = {"type": "string", "pattern": r"^([0-9]*\.?[0-9]+(ns|us|ms|s|m|h))+$"}


def _d(node, description, **notes):
    return hecate_schema.described(node, description, **notes)


SERVICE_CHECK = {
    "type": "object",
    "additionalProperties": False,
    "description": "One health check of the service; exactly one of http, tcp or ttl.",
    "properties": {
        "id": {"type": "string", "minLength": 1,
               "description": "The check's ID in Consul; Consul derives one from the service when absent."},
        "name": {"type": "string", "minLength": 1, "description": "The check's name as Consul shows it."},
        "notes": {"type": "string", "description": "Free text for humans, shown by Consul."},
        "http": {"type": "string", "pattern": r"^https?://\S+$",
                 "examples": ["http://100.65.138.128:8059/login"],
                 "description": "URL Consul requests every interval; a 2xx answer passes."},
        "tcp": {"type": "string", "pattern": r"^\S+:[0-9]{1,5}$", "examples": ["100.88.163.85:1515"],
                "description": "host:port Consul connects to every interval; an accepted connection passes."},
        "ttl": _d(DURATION, "A TTL check: critical unless something reports to it within this duration."),
        "interval": _d(DURATION, "How often an http or tcp check runs (required for those; a ttl check has none).",
                       examples=["30s"]),
        "timeout": _d(DURATION, "How long one http or tcp attempt may take (Consul's default 10s).",
                      examples=["5s"]),
        "method": {"type": "string", "enum": ["GET", "HEAD", "POST", "PUT", "OPTIONS"],
                   "description": "HTTP method of an http check (Consul's default GET)."},
        "header": {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "string"}},
                   "description": "Request headers of an http check: name -> list of values."},
        "body": {"type": "string", "description": "Request body of an http check."},
        "tls_skip_verify": {"type": "boolean",
                            "description": "Do not verify the certificate of an https check (Consul's default false)."},
        "tls_server_name": {"type": "string", "description": "SNI name for an https or TLS check."},
        "disable_redirects": {"type": "boolean",
                              "description": "An http check does not follow redirects (Consul's default: it follows)."},
        "deregister_critical_service_after": _d(
            DURATION, "Consul deregisters the service when this check stays critical this long; absent: never."),
        "success_before_passing": {"type": "integer", "minimum": 0,
                                   "description": "Consecutive successes before the check turns passing."},
        "failures_before_warning": {"type": "integer", "minimum": 0,
                                    "description": "Consecutive failures before the check turns warning "
                                                   "(at most failures_before_critical)."},
        "failures_before_critical": {"type": "integer", "minimum": 0,
                                     "description": "Consecutive failures before the check turns critical."},
    },
}
SERVICE = {
    "type": "object",
    "additionalProperties": False,
    "description": (
        "An external service (not run by Nomad) registered on the edge's Consul agent; the key is "
        "its service ID."
    ),
    "properties": {
        "ensure": {"type": "string", "enum": ["present", "absent"], "default": "present",
                   "description": "absent deregisters the service."},
        "name": {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
                 "description": "The service name clients look up; the service ID when absent."},
        "address": {"type": "string", "minLength": 1, "examples": ["100.88.163.85"],
                    "description": "Address of the service (required unless ensure is absent)."},
        "port": {"type": "integer", "minimum": 0, "maximum": 65535, "description": "Port of the service."},
        "tags": {"type": "array", "items": {"type": "string"}, "default": [],
                 "description": "Consul tags of the service."},
        "meta": {"type": "object", "additionalProperties": {"type": "string"}, "default": {},
                 "description": "Consul service metadata (string values; keys starting consul- are reserved)."},
        "weights": {
            "type": "object",
            "additionalProperties": False,
            "description": "DNS SRV weights of the instance.",
            "properties": {
                "passing": {"type": "integer", "minimum": 1, "default": 1,
                            "description": "Weight while the checks pass."},
                "warning": {"type": "integer", "minimum": 0, "default": 1,
                            "description": "Weight while a check warns."},
            },
        },
        "enable_tag_override": {"type": "boolean", "default": False,
                                "description": "Let anti-entropy keep tags changed in the catalog."},
        "checks": {"type": "array", "items": SERVICE_CHECK, "default": [],
                   "description": "Health checks; they replace the service's existing checks on each run."},
    },
}
PILLAR_SCHEMA = {
    "hecate:consul:services": {
        "type": "object",
        "propertyNames": {"pattern": r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$"},
        "additionalProperties": SERVICE,
        "description": (
            "External services (not run by Nomad) registered in Consul by hecate.consul_services, "
            "keyed by service ID, so Caddy and nginx can find them."
        ),
    },
}

def check_pillar(pillar, env=None):
    """Semantic checks of hecate:consul:services (one check kind, interval where needed)."""
    errors = []
    services = ((pillar.get("hecate") or {}).get("consul") or {}).get("services") or {}
    if not isinstance(services, dict):
        return errors
    for sid, svc in services.items():
        if not isinstance(svc, dict):
            continue
        base = f"hecate:consul:services:{sid}"
        if svc.get("ensure", "present") == "present" and not svc.get("address"):
            errors.append((f"{base}:address", "required for an external service"))
        meta = svc.get("meta") or {}
        for key in meta if isinstance(meta, dict) else ():
            if str(key).startswith("consul-"):
                errors.append((f"{base}:meta:{key}", "the 'consul-' prefix is reserved by Consul"))
        for pos, chk in enumerate(svc.get("checks") or []):
            if not isinstance(chk, dict):
                continue
            where = f"{base}:checks:{pos}"
            kinds = [k for k in ("http", "tcp", "ttl") if chk.get(k)]
            if len(kinds) != 1:
                errors.append((where, "a check needs exactly one of http, tcp or ttl"))
                continue
            if kinds[0] in ("http", "tcp") and not chk.get("interval"):
                errors.append((f"{where}:interval", f"required for a {kinds[0]} check"))
            if kinds[0] == "ttl" and chk.get("interval"):
                errors.append((f"{where}:interval", "a ttl check has no interval"))
            if (chk.get("failures_before_warning") or 0) > (chk.get("failures_before_critical") or 0):
                errors.append((f"{where}:failures_before_warning", "can't be higher than failures_before_critical"))
    return errors
