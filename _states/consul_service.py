"""
Services registered on a Consul agent: the external services (not run by Nomad) that
the operator used to register by hand with ``consul services register``.

The state compares the agent's view of the service (``/v1/agent/service/<id>`` and its
checks) with the desired definition and registers only when something differs, always
with ``replace-existing-checks`` so that checks removed from pillar disappear. The
agent does not report a check's target (URL/address) back, so the desired checks'
fingerprint is kept in the service meta key ``hecate-checks``; a check changed by hand
(or by anything that re-registered the service) shows as a difference.

Driven from pillar by ``salt/hecate/consul_services.sls``:

.. code-block:: yaml

    hecate:
      consul:
        services:
          jenkins-master:
            name: jenkins-master
            address: 100.65.138.128
            port: 8059
            tags: [jenkins, ci, external]
            meta: {domain: jenkins.cybermonkey.dev}
            checks:
              - {http: "http://100.65.138.128:8059/login", interval: 30s, timeout: 5s}
"""

import hashlib
import json

import salt.exceptions

import hecate_clients
import hecate_consul_client
import hecate_consul_schema
import hecate_loader
import hecate_state

__virtualname__ = "consul_service"

FINGERPRINT_META = "hecate-checks"


def __virtual__():
    return hecate_loader.virtual(__virtualname__, libs=("consul",))


def _seconds(value):
    if value in (None, ""):
        return None
    return hecate_consul_client.duration_seconds(value)


def _check_kind(chk):
    for kind, field in (("http", "HTTP"), ("tcp", "TCP"), ("ttl", "TTL")):
        if chk.get(field):
            return kind
    return ""


def _desired_checks(service_id, name, checks):
    out = []
    for pos, chk in enumerate(checks):
        cid = chk.get("CheckID") or f"service:{service_id}" + (f":{pos + 1}" if len(checks) > 1 else "")
        kind = _check_kind(chk)
        out.append(
            {
                "id": cid,
                "name": chk.get("Name") or f"Service '{name}' check",
                "type": kind,
                "interval": _seconds(chk.get("Interval")) if kind != "ttl" else None,
                "timeout": _seconds(chk.get("Timeout")),
                "notes": chk.get("Notes") or "",
            }
        )
    return out


def _live_checks(checks):
    out = []
    for cid in sorted(checks):
        chk = checks[cid]
        out.append(
            {
                "id": cid,
                "name": chk.get("Name") or "",
                "type": chk.get("Type") or "",
                "interval": _seconds(chk.get("Interval")),
                "timeout": _seconds(chk.get("Timeout")),
                "notes": chk.get("Notes") or "",
            }
        )
    return out


def _fingerprint(checks):
    blob = json.dumps(checks, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _summary(checks, fingerprint):
    return [
        f"{c['id']}: {c['type']}"
        + (f" every {c['interval']:g}s" if c.get("interval") else "")
        + (f" timeout {c['timeout']:g}s" if c.get("timeout") else "")
        for c in sorted(checks, key=lambda c: c["id"])
    ] + ([f"definition {fingerprint}"] if fingerprint else [])


@hecate_state.guard
def registered(
    name,
    service_name=None,
    address=None,
    port=None,
    tags=None,
    meta=None,
    checks=None,
    weights=None,
    enable_tag_override=False,
):
    """
    Ensure the service with ID ``name`` is registered on the agent as described.

    service_name
        The Consul service name (default: the ID ``name``).
    address, port, tags, meta, weights ({passing, warning}), enable_tag_override
        As in Consul's service definition.
    checks
        A list of checks with lower-case keys: exactly one of ``http``/``tcp``/``ttl``,
        ``interval`` (http/tcp), ``timeout``, ``id``, ``name``, ``method``, ``header``,
        ``tls_skip_verify``, ``deregister_critical_service_after``, ...

    .. code-block:: yaml

        jenkins-master:
          consul_service.registered:
            - address: 100.65.138.128
            - port: 8059
            - tags: [ci]
            - checks:
              - tcp: 100.65.138.128:8059
                interval: 10s
    """
    spec = {
        "name": service_name or name,
        "address": address,
        "port": port,
        "tags": tags,
        "meta": meta,
        "checks": checks or [],
        "weights": weights,
        "enable_tag_override": enable_tag_override,
    }
    definition = hecate_consul_client.service_definition(name, spec)
    problems = hecate_consul_schema.check_pillar(
        {"hecate": {"consul": {"services": {name: {**spec, "address": address or "-"}}}}}
    )
    if problems:
        raise salt.exceptions.SaltInvocationError(
            "; ".join(f"{path.replace('hecate:consul:services:', '')}: {msg}" for path, msg in problems)
        )
    wanted_checks = _desired_checks(name, definition["Name"], definition["Checks"])
    fingerprint = _fingerprint(definition["Checks"])
    definition["Meta"][FINGERPRINT_META] = fingerprint
    desired = {
        "name": definition["Name"],
        "address": definition.get("Address", ""),
        "port": definition.get("Port", 0),
        "tags": definition["Tags"],
        "meta": {k: v for k, v in definition["Meta"].items() if k != FINGERPRINT_META},
        "weights": definition.get("Weights") or {"Passing": 1, "Warning": 1},
        "enable_tag_override": definition["EnableTagOverride"],
    }
    ret = hecate_state.new(name, f"Consul service {name} is registered as described")
    client = hecate_clients.consul(__opts__, __pillar__, __context__, __salt__)
    live = client.agent_service(name)
    changes = {}
    if live is None:
        changes = {"registered": {"old": None, "new": name}}
        changes.update(hecate_state.diff({}, desired))
        if wanted_checks:
            changes["checks"] = {"old": [], "new": _summary(wanted_checks, None)}
    else:
        live_meta = dict(live.get("Meta") or {})
        live_fp = live_meta.pop(FINGERPRINT_META, None)
        current = {
            "name": live.get("Service"),
            "address": live.get("Address") or "",
            "port": live.get("Port") or 0,
            "tags": list(live.get("Tags") or []),
            "meta": live_meta,
            "weights": live.get("Weights") or {"Passing": 1, "Warning": 1},
            "enable_tag_override": bool(live.get("EnableTagOverride")),
        }
        changes.update(hecate_state.diff(current, desired))
        have_checks = _live_checks(client.agent_checks(name))
        if have_checks != sorted(wanted_checks, key=lambda c: c["id"]) or live_fp != fingerprint:
            changes["checks"] = {
                "old": _summary(have_checks, live_fp),
                "new": _summary(wanted_checks, fingerprint),
            }
    if not changes:
        return ret
    if __opts__.get("test"):
        return hecate_state.result(ret, changes, True, f"would register Consul service {name}", "")
    client.service_register(definition)
    verb = "registered" if live is None else "updated"
    return hecate_state.result(ret, changes, False, "", f"{verb} Consul service {name}")


@hecate_state.guard
def absent(name, owned=False):
    """
    Ensure no service with ID ``name`` is registered on the agent (its checks go too).

    owned
        Only deregister a service hecate registered (its meta carries ``hecate-checks``,
        which :func:`registered` always writes); one registered by something else under this
        ID is left alone and named in the comment. The teardown of an environment sets it.

    .. code-block:: yaml

        jenkins-master:
          consul_service.absent:
            - owned: true
    """
    ret = hecate_state.new(name, f"Consul service {name} is not registered")
    client = hecate_clients.consul(__opts__, __pillar__, __context__, __salt__)
    live = client.agent_service(name)
    if live is None:
        return ret
    if owned and FINGERPRINT_META not in (live.get("Meta") or {}):
        ret["comment"] = (f"Consul service {name} was not registered by hecate (no meta {FINGERPRINT_META}): "
                          "left alone")
        return ret
    changes = {"deregistered": {"old": name, "new": None}}
    if __opts__.get("test"):
        return hecate_state.result(ret, changes, True, f"would deregister Consul service {name}", "")
    client.service_deregister(name)
    return hecate_state.result(ret, changes, False, "", f"deregistered Consul service {name}")
