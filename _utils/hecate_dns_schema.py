"""
The pillar schema of ``hecate:dns`` (Hetzner DNS) and its connection settings
``hecate:connections:hetzner_dns``, plus the checks a JSON schema cannot express.

Only the schema and the semantic checks live here; the records hecate derives from the
pillar are built by :mod:`hecate_dns_records`, whose errors :func:`check_pillar` reports
with their key paths.
"""

import hecate_config
import hecate_dns_edges
import hecate_dns_records
import hecate_members
import hecate_schema

PILLAR_PATH = "hecate:dns"
CONNECTION_PATH = "hecate:connections:hetzner_dns"

# A record name: like hecate_schema.DOMAIN, but labels may start with "_" (_dmarc, _acme-challenge).
RECORD_NAME = r"^(?=.{1,253}$)(\*\.)?([A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$"
_TTL = {
    "type": "integer",
    "minimum": 60,
    "maximum": 2147483647,
    "description": "Time to live of the RRSet in seconds (60 or more).",
}
_ZONE_NAME = {
    "type": "string",
    "pattern": hecate_schema.HOSTNAME,
    "description": "The zone's name as in the Hetzner Console, without a trailing dot (e.g. cybermonkey.dev).",
}
_CAA = {
    "type": "object",
    "additionalProperties": False,
    "description": (
        "CAA records hecate keeps at the zone apex (RFC 8659): which certificate authorities "
        "may issue for the zone. Set issue: [letsencrypt.org] for Caddy's Let's Encrypt "
        "certificates."
    ),
    "properties": {
        "issue": {
            "type": "array",
            "items": {"type": "string", "pattern": r"^[A-Za-z0-9.-]+(;.*)?$"},
            "description": "CA domains allowed to issue certificates (CAA 0 issue \"<ca>\").",
        },
        "issuewild": {
            "type": "array",
            "items": {"type": "string", "pattern": r"^[A-Za-z0-9.-]+(;.*)?$"},
            "description": (
                "CA domains allowed to issue wildcard certificates (CAA 0 issuewild "
                "\"<ca>\"); without it, issue applies to wildcards too."
            ),
        },
        "iodef": {
            "type": ["string", "null"],
            "pattern": r"^(mailto:|https?://)\S+$",
            "description": "Where CAs report refused requests (mailto: or https: URL).",
        },
        "ttl": _TTL,
    },
}


def _addresses(who):
    """The ``ipv4``/``ipv6`` properties of one edge's public addresses."""
    return {f"ipv{v}": {"type": "array", "items": {"type": "string"},
                        "description": f"Public IPv{v} addresses of {who} ({rr} records)."}
            for v, rr in (("4", "A"), ("6", "AAAA"))}


_RECORD = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "type"],
    "description": "One extra RRSet hecate owns (besides the route records).",
    "properties": {
        "name": {
            "type": "string",
            "pattern": RECORD_NAME,
            "description": (
                "Fully qualified name of the RRSet (the zone's name for its apex, *.<name> "
                "for a wildcard); it must lie in one of hecate:dns:zones."
            ),
        },
        "type": {
            "enum": list(hecate_dns_records.EXTRA_TYPES),
            "description": "Record type: A, AAAA, CNAME, TXT, MX or CAA (NS and SOA are never managed).",
        },
        "ttl": _TTL,
        "value": {
            "type": "string",
            "minLength": 1,
            "description": "The record's value (shorthand for values: [value]).",
        },
        "values": {
            "type": "array",
            "minItems": 1,
            "items": {"type": "string", "minLength": 1},
            "description": (
                "The record values: an address for A/AAAA, a host name for CNAME, "
                "'<priority> <host>' for MX, the text for TXT (hecate quotes it), "
                "'<flags> <tag> \"<value>\"' for CAA."
            ),
        },
        "comment": {"type": "string", "description": "Free text for the operator; not sent to Hetzner."},
    },
}
DNS_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["zones"],
    "description": (
        "Hetzner DNS records for the edge, managed by hecate through the Hetzner Cloud API "
        "(Zones/RRSets): an A/AAAA RRSet per route domain pointing at the edge, the extra "
        "records below and CAA. hecate labels what it owns (managed-by=hecate, "
        "hecate-env=<environment>) and never changes an RRSet without those labels."
    ),
    "properties": {
        "enabled": {
            "type": "boolean",
            "default": True,
            "description": "false keeps the configuration but makes the DNS step a no-op.",
        },
        "zones": {
            "type": "array",
            "minItems": 1,
            "description": "The zones hecate writes records in; they must exist in the Hetzner project.",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["name"],
                "description": "One zone: its name, optionally its own TTL and CAA records.",
                "properties": {
                    "name": _ZONE_NAME,
                    "ttl": dict(_TTL, description="TTL of hecate's records in this zone (default: hecate:dns:ttl)."),
                    "caa": _CAA,
                },
            },
        },
        "ttl": dict(_TTL, default=hecate_dns_records.DEFAULT_TTL,
                    description="TTL of hecate's records unless a zone or record sets one."),
        "routes": {
            "type": "boolean",
            "default": True,
            "description": (
                "Give every route domain (hecate:reverse_proxy:caddy:routes) A/AAAA records "
                "pointing at the edge (default true)."
            ),
        },
        "edge": {
            "type": "object",
            "additionalProperties": False,
            "description": (
                "The edge's public addresses. When neither list is given, the public addresses "
                "in the grains (ipv4, ipv6) of the edge minion that applies the records are used; "
                "pillar wins. These addresses are never filtered by health: with several edges, "
                "list them per edge under hecate:dns:edges instead."
            ),
            "properties": {
                **_addresses("the edge"),
            },
        },
        "edges": {
            "type": "object",
            "minProperties": 1,
            "propertyNames": {"pattern": hecate_members.PATTERN},
            "description": (
                "Several edges: each edge's public addresses, keyed by its minion id (a member of "
                "hecate:members:hecate-edge). The route records carry the addresses of the edges "
                "whose Caddy passes its Consul health checks (service hecate:jobs:caddy:service, on "
                "the edge's Consul node, named after the minion id); an edge Consul does not know "
                "counts as unhealthy. When no edge is healthy, the records keep every edge's "
                "address. Not together with hecate:dns:edge."
            ),
            "examples": [{"edge-1.example.com": {"ipv4": ["203.0.113.10"]},
                          "edge-2.example.com": {"ipv4": ["203.0.113.20"], "ipv6": ["2001:db8:20::20"]}}],
            "additionalProperties": {
                "type": "object",
                "additionalProperties": False,
                "description": "One edge's public addresses.",
                "properties": {
                    **_addresses("this edge"),
                },
            },
        },
        "health_service": {
            "type": "string",
            "pattern": r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
            "description": (
                "The Consul service whose checks on each edge's Consul node decide whether that "
                "edge's addresses of hecate:dns:edges are in the route records (default: "
                "hecate:jobs:caddy:service, the hecate-caddy job's service, which its allocation on "
                "each edge registers). Name another here to judge the edges by a check of your own "
                "on every edge (hecate:consul:services)."
            ),
        },
        "caa": _CAA,
        "records": {
            "type": "array",
            "items": _RECORD,
            "description": "Extra records (A/AAAA/CNAME/TXT/MX/CAA) hecate owns in the zones.",
        },
        "token": dict(
            hecate_schema.SECRET_VALUE,
            description=(
                "The Hetzner Cloud API token (read & write) of the project holding the zones, "
                "as a Vault reference {vault: <mount>/<path>, key: <key>}; "
                "hecate:connections:hetzner_dns:token wins when both are set."
            ),
        ),
    },
}
_CONN = hecate_config.DEFAULTS["hetzner_dns"]
CONNECTION_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "description": "How hecate reaches the Hetzner Cloud API for DNS (minion config wins over pillar).",
    "properties": {
        "api_endpoint": dict(
            hecate_schema.URL,
            default=_CONN["api_endpoint"],
            description="Base URL of the Hetzner Cloud API.",
        ),
        "token": dict(
            hecate_schema.SECRET_VALUE,
            default=None,
            description="API token: Vault reference or sdb:// URI (a literal only in the minion config).",
        ),
        "verify": dict(hecate_schema.TLS["verify"], default=_CONN["verify"],
                       description="Verify the API's TLS certificate."),
        "ca_bundle": dict(hecate_schema.TLS["ca_bundle"], default=_CONN["ca_bundle"],
                          description="CA file or directory trusted for the API."),
        "timeout": dict(hecate_schema.TLS["timeout"], default=_CONN["timeout"],
                        description="Seconds to wait for one API request."),
        "retries": dict(
            hecate_schema.TLS["retries"],
            default=_CONN["retries"],
            description="Retries of a request the API asks to retry (rate_limit_exceeded, conflict, 502/504).",
        ),
        "backoff": {
            "type": "number",
            "exclusiveMinimum": 0,
            "default": _CONN["backoff"],
            "description": "First retry delay in seconds (doubling, with jitter, capped at 60).",
        },
        "action_timeout": {
            "type": "number",
            "exclusiveMinimum": 0,
            "default": _CONN["action_timeout"],
            "description": "Seconds to wait for an API action (e.g. set_rrset_records) to finish.",
        },
        "poll_interval": {
            "type": "number",
            "exclusiveMinimum": 0,
            "default": _CONN["poll_interval"],
            "description": "Seconds between two reads of a running action.",
        },
    },
}
PILLAR_SCHEMA = {PILLAR_PATH: DNS_SCHEMA, CONNECTION_PATH: CONNECTION_SCHEMA}


def check_pillar(pillar, env=None):
    """
    What the schema cannot say: records outside the zones, invalid values for their type,
    two definitions of one RRSet, CNAME next to other data, CNAME at an apex.
    """
    dns = hecate_dns_records.dns_settings(pillar)
    if not dns:
        return []
    errors = _not_members(pillar, dns)
    try:
        hecate_dns_records.desired(pillar, grains=None, env=env or "validate", check_only=True)
    except hecate_dns_records.DNSDataError as exc:
        return errors + exc.errors
    except Exception:  # pylint: disable=broad-except
        return errors  # shapes the schema rejects are reported by the schema
    return errors


def _not_members(pillar, dns):
    """Edges of ``hecate:dns:edges`` that ``hecate:members:hecate-edge`` does not list (when it is set)."""
    if not isinstance(hecate_config.traverse(pillar, hecate_members.PILLAR_PATH), dict):
        return []
    patterns = hecate_members.members(pillar)["hecate-edge"]
    return [(f"{hecate_dns_edges.PATH}:{mid}",
             f"{mid} is not a member of role hecate-edge (hecate:members:hecate-edge: "
             f"{', '.join(patterns) or 'none'}): list the edge there or drop it here")
            for mid in sorted(hecate_dns_edges.listed(dns)) if not hecate_members.matches(mid, patterns)]
