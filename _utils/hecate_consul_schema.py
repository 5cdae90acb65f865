"""
The pillar of the external services hecate registers in Consul, ``hecate:consul:services``:
its schema, and the checks a schema cannot express (one check kind, an interval where one
is needed, no ``consul-`` meta keys). ``hecate_consul_client.service_definition`` turns an
entry into Consul's registration body.
"""


# -- pillar: external services registered in Consul (hecate:consul:services) ----------------------
DURATION = {"type": "string", "pattern": r"^([0-9]*\.?[0-9]+(ns|us|ms|s|m|h))+$"}
SERVICE_CHECK = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "id": {"type": "string", "minLength": 1},
        "name": {"type": "string", "minLength": 1},
        "notes": {"type": "string"},
        "http": {"type": "string", "pattern": r"^https?://\S+$"},
        "tcp": {"type": "string", "pattern": r"^\S+:[0-9]{1,5}$"},
        "ttl": DURATION,
        "interval": DURATION,
        "timeout": DURATION,
        "method": {"type": "string", "enum": ["GET", "HEAD", "POST", "PUT", "OPTIONS"]},
        "header": {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "string"}}},
        "body": {"type": "string"},
        "tls_skip_verify": {"type": "boolean"},
        "tls_server_name": {"type": "string"},
        "disable_redirects": {"type": "boolean"},
        "deregister_critical_service_after": DURATION,
        "success_before_passing": {"type": "integer", "minimum": 0},
        "failures_before_warning": {"type": "integer", "minimum": 0},
        "failures_before_critical": {"type": "integer", "minimum": 0},
    },
}
SERVICE = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "ensure": {"type": "string", "enum": ["present", "absent"]},
        "name": {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"},
        "address": {"type": "string", "minLength": 1},
        "port": {"type": "integer", "minimum": 0, "maximum": 65535},
        "tags": {"type": "array", "items": {"type": "string"}},
        "meta": {"type": "object", "additionalProperties": {"type": "string"}},
        "weights": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"passing": {"type": "integer", "minimum": 1}, "warning": {"type": "integer", "minimum": 0}},
        },
        "enable_tag_override": {"type": "boolean"},
        "checks": {"type": "array", "items": SERVICE_CHECK},
    },
}
PILLAR_SCHEMA = {
    "hecate:consul:services": {
        "type": "object",
        "propertyNames": {"pattern": r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$"},
        "additionalProperties": SERVICE,
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
