r"""
Consul simulator: one server agent (node ``lab-consul``, datacenter ``dc1``) with

- KV: indexes (CreateIndex/ModifyIndex/LockIndex), flags, CAS (``?cas``, 0 = create
  only), ``?recurse``/``?keys``/``?separator``/``?raw``, lock ``?acquire``/``?release``
  with sessions, lock-delay after invalidation, tombstones, 512 KB value limit;
- sessions with TTL (expire after TTL x 2, like Consul), LockDelay, Behavior
  release|delete, renew/destroy/info/list;
- agent services and checks: register (strict JSON decoding, ``replace-existing-checks``),
  deregister, TTL check updates, and HTTP/TCP checks that are *run for real* against their
  targets by a background thread, so health reflects what is actually listening;
- health (``/v1/health/service/<name>[?passing]``) and catalog endpoints, with other nodes
  registered through ``/v1/catalog/register`` (their checks keep the status registered:
  Consul runs only an agent's own checks) and removed by ``/v1/catalog/deregister``;
- blocking queries (``?index=&wait=``) with ``X-Consul-Index``/``X-Consul-KnownLeader``;
- ACLs (optional): tokens sent as ``X-Consul-Token``, ``Authorization: Bearer`` or
  ``?token=``, each with Consul's rule kinds (``key``, ``service``, ``node``, ``session``,
  ``agent``, exact and ``_prefix``: exact beats prefix, the longest prefix wins), the
  agent's ``default_policy`` where no rule matches; the anonymous token (no token sent)
  has no rules. As Consul does, single reads and writes answer 403 while listings
  (KV recurse/keys, agent services/checks, health, catalog, session lists) are filtered;
  an unknown token is ``403 ACL not found`` everywhere. Each request's token is recorded
  by *name* in the request log (``"token"``: ``anonymous``/``unknown``/the name);
- Consul's own error texts and status codes (plain text bodies).

Behaviour follows hashicorp/consul (agent/kvs_endpoint.go, agent/agent_endpoint.go,
agent/session_endpoint.go, agent/structs/check_type.go, service_definition.go,
lib/json.go: JSON bodies are decoded with DisallowUnknownFields, field names matched
case-insensitively); see shared/api-notes/hashicorp.md.

KV key names are checked as the configured ``version`` does (agent/kvs_endpoint.go):
before 1.21.5 not at all; 1.21.5 (consul#22682) against the whitelist
``^[a-zA-Z0-9,_./\-?&=]+$``; 1.21.6+ and 1.22+ (consul#22931/#22939, CVE-2025-11392) no
leading/trailing spaces and no '..' segment, also after decoding percent-escapes in the key,
unless ``disable_kv_key_validation``. Paths with empty or dot segments are redirected (301)
to their clean form, as Go's http.ServeMux does before Consul sees them.

Config (``--config`` JSON), all optional::

    {"node_name": "lab-consul", "datacenter": "dc1", "version": "1.22.0",
     "disable_kv_key_validation": false,
     "session_ttl_min": "10s",          # Consul's session_ttl_min agent option
     "check_interval_max": "2s",        # lab only: run checks at least this often
     "acl": {"enabled": true, "default_policy": "deny",
             "tokens": {"<secret>": "management" | "read" |
                        {"name": "nomad", "rules": {"service_prefix": {"": "write"},
                                                    "node_prefix": {"": "read"}}}}}}

``"read"`` is read on every rule kind; a dict's ``rules`` map a rule kind to
``{name-or-prefix: "read" | "write" | "deny"}`` (Consul's policy language: ``service_prefix
"" { policy = "write" }``); ``"management": true`` in a dict (or the string) allows all.
"""

import base64
import concurrent.futures
import json
import re
import socket
import threading
import time
import urllib.parse
import uuid

import requests
from werkzeug.routing import Rule
from werkzeug.wrappers import Response

try:
    from lab.sim.base import Simulator
except ImportError:  # pragma: no cover
    from base import Simulator  # type: ignore

KV_MAX_VALUE_SIZE = 512 * 1024
SESSION_TTL_MAX = 86400.0
SESSION_TTL_MULTIPLIER = 2
MAX_LOCK_DELAY = 60.0
DEFAULT_LOCK_DELAY = 15.0
LOCK_DELAY_MIN_THRESHOLD = 1000  # ns: smaller numbers are taken as seconds
MAX_WAIT = 600.0
DEFAULT_WAIT = 300.0
DEFAULT_CHECK_TIMEOUT = 10.0
SERF_CHECK = "serfHealth"
CHECK_OUTPUT_MAX = 4096

_DURATION_RE = re.compile(r"([0-9]*\.?[0-9]+)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_META_KEY = re.compile(r"^[a-zA-Z0-9_-]+$")


class DecodeError(ValueError):
    """A request body Consul would refuse with 'Request decode failed: ...'."""


def parse_duration(text):
    """Go's time.ParseDuration (seconds as float); raises DecodeError like Go."""
    if not isinstance(text, str):
        raise DecodeError(f"time: invalid duration {json.dumps(str(text))}")
    raw = text.strip()
    sign = 1.0
    if raw.startswith(("-", "+")):
        sign = -1.0 if raw[0] == "-" else 1.0
        raw = raw[1:]
    if raw == "0":
        return 0.0
    pos, total = 0, 0.0
    for match in _DURATION_RE.finditer(raw):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if not raw or pos != len(raw):
        if raw and re.fullmatch(r"[0-9.]+", raw):
            raise DecodeError(f'time: missing unit in duration "{text}"')
        raise DecodeError(f'time: invalid duration "{text}"')
    return sign * total


def format_duration(seconds):
    """Go's Duration.String(): 30s, 1m0s, 1h0m0s, 500ms, 0s."""
    if seconds == 0:
        return "0s"
    ns = int(round(seconds * 1e9))
    if ns < 1000:
        return f"{ns}ns"
    if ns < 1_000_000:
        return _trim(ns / 1e3) + "µs"
    if ns < 1_000_000_000:
        return _trim(ns / 1e6) + "ms"
    hours, rem = divmod(ns, 3600 * 10**9)
    minutes, rem = divmod(rem, 60 * 10**9)
    secs = _trim(rem / 1e9) + "s"
    if hours:
        return f"{hours}h{minutes}m{secs}"
    if minutes:
        return f"{minutes}m{secs}"
    return secs


def _trim(value):
    text = f"{value:.9f}".rstrip("0").rstrip(".")
    return text or "0"


# -- strict, case-insensitive JSON decoding (Go encoding/json + DisallowUnknownFields) -------
# A schema is {"Field": type} where type is "string", "int", "uint", "bool", "duration",
# "any", ("list", type), ("map", type), or a nested schema dict (a Go struct).
CHECK_TYPE = {
    "CheckID": "string", "Name": "string", "Status": "string", "Notes": "string",
    "ScriptArgs": ("list", "string"), "HTTP": "string", "H2PING": "string",
    "H2PingUseTLS": "bool", "Header": ("map", ("list", "string")), "Method": "string",
    "Body": "string", "DisableRedirects": "bool", "TCP": "string", "UDP": "string",
    "Interval": "duration", "AliasNode": "string", "AliasService": "string",
    "DockerContainerID": "string", "Shell": "string", "GRPC": "string", "GRPCUseTLS": "bool",
    "OSService": "string", "TLSServerName": "string", "TLSSkipVerify": "bool",
    "Timeout": "duration", "TTL": "duration", "SuccessBeforePassing": "int",
    "FailuresBeforeWarning": "int", "FailuresBeforeCritical": "int", "ProxyHTTP": "string",
    "ProxyGRPC": "string", "DeregisterCriticalServiceAfter": "duration",
    "OutputMaxSize": "int",
    # snake_case aliases and ignored fields of CheckType.UnmarshalJSON
    "args": ("list", "string"), "script_args": ("list", "string"),
    "deregister_critical_service_after": "duration", "docker_container_id": "string",
    "tls_server_name": "string", "tls_skip_verify": "bool", "grpc_use_tls": "bool",
    "h2ping_use_tls": "bool", "ServiceID": "string", "service_id": "string",
}
SERVICE_DEFINITION = {
    "Kind": "string", "ID": "string", "Name": "string", "Tags": ("list", "string"),
    "Address": "string",
    "TaggedAddresses": ("map", {"Address": "string", "Port": "int"}),
    "Meta": ("map", "string"), "Port": "int", "SocketPath": "string",
    "Check": CHECK_TYPE, "Checks": ("list", CHECK_TYPE),
    "Weights": {"Passing": "int", "Warning": "int"}, "Token": "string",
    "EnableTagOverride": "bool", "Locality": {"Region": "string", "Zone": "string"},
    "Proxy": "any", "Connect": "any",
    "enable_tag_override": "bool",
    "tagged_addresses": ("map", {"Address": "string", "Port": "int"}),
}
CHECK_UPDATE = {"Status": "string", "Output": "string"}
# PUT /v1/catalog/register: structs.RegisterRequest (agent/structs/structs.go) with its
# structs.NodeService and structs.HealthCheck (api-docs/catalog "Register Entity")
CATALOG_SERVICE = {
    "Kind": "string", "ID": "string", "Service": "string", "Tags": ("list", "string"),
    "Address": "string", "TaggedAddresses": ("map", {"Address": "string", "Port": "int"}),
    "Meta": ("map", "string"), "Port": "int", "SocketPath": "string",
    "Weights": {"Passing": "int", "Warning": "int"}, "EnableTagOverride": "bool",
    "Locality": {"Region": "string", "Zone": "string"}, "Proxy": "any", "Connect": "any",
}
HEALTH_CHECK = {
    "Node": "string", "CheckID": "string", "Name": "string", "Status": "string", "Notes": "string",
    "Output": "string", "ServiceID": "string", "ServiceName": "string", "ServiceTags": ("list", "string"),
    "Type": "string", "Interval": "string", "Timeout": "string", "ExposedPort": "int",
    "Definition": "any",
}
CATALOG_REGISTER = {
    "ID": "string", "Node": "string", "Address": "string", "Datacenter": "string",
    "TaggedAddresses": ("map", "string"), "NodeMeta": ("map", "string"),
    "Service": CATALOG_SERVICE, "Check": HEALTH_CHECK, "Checks": ("list", HEALTH_CHECK),
    "SkipNodeUpdate": "bool", "Token": "string",
}
CATALOG_DEREGISTER = {"Node": "string", "Datacenter": "string", "ServiceID": "string",
                      "CheckID": "string", "Token": "string"}
CHECK_STATUSES = ("passing", "warning", "critical")
GO_TYPES = {"string": "string", "int": "int", "uint": "uint64", "bool": "bool",
            "duration": "time.Duration"}


def _json_kind(value):
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


def decode(value, schema, struct="", field=""):
    """Decode ``value`` against ``schema``; returns canonical field names."""
    where = f"{struct}.{field}" if field else struct
    if value is None:
        return None
    if isinstance(schema, dict):
        if not isinstance(value, dict):
            raise DecodeError(
                f"json: cannot unmarshal {_json_kind(value)} into Go struct field {where} of type struct"
            )
        lower = {}
        for name in schema:
            lower.setdefault(name.lower(), name)
        out = {}
        for key, val in value.items():
            name = schema.get(key) and key or lower.get(key.lower())
            if name is None:
                raise DecodeError(f'json: unknown field "{key}"')
            out[name] = decode(val, schema[name], struct or "ServiceDefinition", name)
        return out
    if schema == "any":
        return value
    if isinstance(schema, tuple):
        kind, inner = schema
        if kind == "list":
            if not isinstance(value, list):
                raise DecodeError(
                    f"json: cannot unmarshal {_json_kind(value)} into Go struct field {where} of type []{_go(inner)}"
                )
            return [decode(v, inner, struct, field) for v in value]
        if not isinstance(value, dict):
            raise DecodeError(
                f"json: cannot unmarshal {_json_kind(value)} into Go struct field {where} "
                f"of type map[string]{_go(inner)}"
            )
        return {k: decode(v, inner, struct, field) for k, v in value.items()}
    if schema == "duration":
        if isinstance(value, str):
            return parse_duration(value)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value) / 1e9
        return 0.0
    ok = {
        "string": lambda v: isinstance(v, str),
        "bool": lambda v: isinstance(v, bool),
        "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "uint": lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0,
    }[schema]
    if isinstance(value, float) and schema in ("int", "uint") and value.is_integer():
        value = int(value)
    if not ok(value):
        raise DecodeError(
            f"json: cannot unmarshal {_json_kind(value)} into Go struct field {where} of type {GO_TYPES[schema]}"
        )
    return value


def _go(schema):
    if isinstance(schema, tuple):
        return ("[]" if schema[0] == "list" else "map[string]") + _go(schema[1])
    if isinstance(schema, dict):
        return "struct"
    return GO_TYPES.get(schema, "interface {}")


def _b64(value):
    return base64.b64encode(value).decode() if value else None


# -- ACLs ------------------------------------------------------------------------------------
ACL_RESOURCES = ("key", "service", "node", "session", "agent")
ACL_LEVELS = {"deny": 0, "read": 1, "write": 2}
ANONYMOUS = "anonymous"
ANONYMOUS_ACCESSOR = "00000000-0000-0000-0000-000000000002"  # Consul's anonymous token


class Authorizer:
    """
    A resolved token (acl.Authorizer): its rules, then the agent's default policy. Rules
    follow Consul's policy language: ``{"key_prefix": {"hecate/": "write"}, "service":
    {"web": "read"}}``; an exact rule beats any prefix, the longest prefix wins, and where
    no rule matches ``default_policy`` decides.
    """

    def __init__(self, name, accessor, rules, management, default_allow):
        self.name, self.accessor, self.rules = name, accessor, rules
        self.management, self.default_allow = management, default_allow

    @classmethod
    def from_spec(cls, spec, default_allow):
        if spec == "management":
            return cls("management", str(uuid.uuid4()), {}, True, default_allow)
        if spec == "read":
            rules = {f"{kind}_prefix": {"": "read"} for kind in ACL_RESOURCES}
            return cls("read", str(uuid.uuid4()), rules, False, default_allow)
        if not isinstance(spec, dict):
            raise ValueError(f"an ACL token is 'management', 'read' or a dict, not {spec!r}")
        rules = spec.get("rules") or {}
        for kind, entries in rules.items():
            if kind.removesuffix("_prefix") not in ACL_RESOURCES or not isinstance(entries, dict):
                raise ValueError(f"unknown ACL rule kind {kind!r}")
            for policy in entries.values():
                if policy not in ACL_LEVELS:
                    raise ValueError(f"ACL policy must be read, write or deny, not {policy!r}")
        name = spec.get("name") or "token"
        return cls(name, spec.get("accessor") or str(uuid.uuid4()), rules, bool(spec.get("management")),
                   default_allow)

    def _level(self, resource, name):
        exact = self.rules.get(resource) or {}
        if name in exact:
            return ACL_LEVELS[exact[name]]
        best = None
        for prefix, policy in (self.rules.get(f"{resource}_prefix") or {}).items():
            if name.startswith(prefix) and (best is None or len(prefix) > len(best[0])):
                best = (prefix, policy)
        return ACL_LEVELS[best[1]] if best else None

    def allowed(self, resource, name, access):
        if self.management:
            return True
        level = self._level(resource, name)
        if level is None:
            return self.default_allow
        return level >= ACL_LEVELS[access]

    def key_write_prefix(self, prefix):
        """acl/policy_authorizer.go KeyWritePrefix (a recursive delete): the longest prefix rule
        over ``prefix`` grants write (or none applies and the default allows), and no rule,
        exact or prefix, under ``prefix`` withholds write."""
        if self.management:
            return True
        for kind in ("key", "key_prefix"):
            for name, policy in (self.rules.get(kind) or {}).items():
                if name.startswith(prefix) and policy != "write":
                    return False
        best = None
        for name, policy in (self.rules.get("key_prefix") or {}).items():
            if prefix.startswith(name) and (best is None or len(name) > len(best[0])):
                best = (name, policy)
        return best[1] == "write" if best else self.default_allow

    def denied(self, resource, name, access):
        """acl.PermissionDeniedByACL's text (acl/errors.go)."""
        what = f"lacks permission '{resource}:{access}' on \"{name}\""
        if self.accessor == ANONYMOUS_ACCESSOR:
            return (f"Permission denied: anonymous token {what}. The anonymous token is used "
                    "implicitly when a request does not specify a token.")
        return f"Permission denied: token with AccessorID '{self.accessor}' {what}"


class ConsulSim(Simulator):
    name = "consul"
    fault_mimetype = "text/plain"

    def __init__(self, options=None):
        super().__init__(options)
        cfg = self.options
        self.node = cfg.get("node_name", "lab-consul")
        self.dc = cfg.get("datacenter", "dc1")
        self.version = str(cfg.get("version", "1.22.0"))
        self.disable_kv_key_validation = bool(cfg.get("disable_kv_key_validation"))
        self.node_id = str(uuid.uuid5(uuid.NAMESPACE_DNS, self.node))
        self.session_ttl_min = parse_duration(cfg.get("session_ttl_min", "10s"))
        cap = cfg.get("check_interval_max")
        self.check_interval_max = parse_duration(cap) if cap else None
        acl = cfg.get("acl") or {}
        self.acl_enabled = bool(acl.get("enabled"))
        self.acl_default = acl.get("default_policy", "allow")
        if self.acl_default not in ("allow", "deny"):
            raise ValueError(f"acl.default_policy must be allow or deny, not {self.acl_default!r}")
        default_allow = self.acl_default == "allow"
        self.acl_tokens = {
            secret: Authorizer.from_spec(spec, default_allow) for secret, spec in (acl.get("tokens") or {}).items()
        }
        self._anonymous = Authorizer(ANONYMOUS, ANONYMOUS_ACCESSOR, {}, False, default_allow)
        self._acl_off = Authorizer("acl-disabled", "", {}, True, True)
        self.index = 12  # a fresh dev agent starts with a handful of raft entries
        self.table_index = {"kvs": 1, "services": 11, "checks": 11, "sessions": 1}
        self.kv = {}  # key -> entry (Value as bytes)
        self.tombstones = {}  # key -> index of deletion
        self.lock_delay = {}  # key -> monotonic deadline
        self.sessions = {}  # id -> session dict (+ "_expires")
        self.services = {}  # id -> service dict
        # nodes registered through /v1/catalog/register (other agents' nodes, external
        # services): name -> {"node": node dict, "services": {id: svc}, "checks": {id: chk}}
        self.remote = {}
        self.checks = {}  # check id -> check dict (+ "_def", "_next", "_running", ...)
        self.node_index = (5, 5)
        self.consul_service_index = (11, 11)
        self.serf_index = (11, 11)
        self._stop = threading.Event()
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=8)
        self._ticker = threading.Thread(target=self._tick_forever, name="consul-sim-ticker", daemon=True)
        self._ticker.start()

    def rules(self):
        return [
            Rule("/v1/kv/", endpoint="kv", defaults={"key": ""}, methods=["GET", "PUT", "DELETE"]),
            Rule("/v1/kv/<path:key>", endpoint="kv", methods=["GET", "PUT", "DELETE"]),
            Rule("/v1/session/create", endpoint="session_create", methods=["PUT"]),
            Rule("/v1/session/destroy/<sid>", endpoint="session_destroy", methods=["PUT"]),
            Rule("/v1/session/renew/<sid>", endpoint="session_renew", methods=["PUT"]),
            Rule("/v1/session/info/<sid>", endpoint="session_info", methods=["GET"]),
            Rule("/v1/session/list", endpoint="session_list", methods=["GET"]),
            Rule("/v1/agent/self", endpoint="agent_self", methods=["GET"]),
            Rule("/v1/agent/services", endpoint="agent_services", methods=["GET"]),
            Rule("/v1/agent/service/register", endpoint="agent_register", methods=["PUT"]),
            Rule("/v1/agent/service/deregister/<path:sid>", endpoint="agent_deregister", methods=["PUT"]),
            Rule("/v1/agent/service/<path:sid>", endpoint="agent_service", methods=["GET"]),
            Rule("/v1/agent/checks", endpoint="agent_checks", methods=["GET"]),
            Rule("/v1/agent/check/<any(pass,warn,fail):op>/<path:cid>", endpoint="agent_check_ttl", methods=["PUT"]),
            Rule("/v1/agent/check/update/<path:cid>", endpoint="agent_check_update", methods=["PUT"]),
            Rule("/v1/health/service/<path:name>", endpoint="health_service", methods=["GET"]),
            Rule("/v1/health/checks/<path:name>", endpoint="health_checks", methods=["GET"]),
            Rule("/v1/catalog/services", endpoint="catalog_services", methods=["GET"]),
            Rule("/v1/catalog/service/<path:name>", endpoint="catalog_service", methods=["GET"]),
            Rule("/v1/catalog/nodes", endpoint="catalog_nodes", methods=["GET"]),
            Rule("/v1/catalog/register", endpoint="catalog_register", methods=["PUT"]),
            Rule("/v1/catalog/deregister", endpoint="catalog_deregister", methods=["PUT"]),
            Rule("/v1/status/leader", endpoint="status_leader", methods=["GET"]),
            Rule("/v1/acl/token/self", endpoint="acl_token_self", methods=["GET"]),
        ]

    def dispatch(self, request):
        # Go's http.ServeMux answers a path with empty or dot segments with a redirect to
        # its clean form (the key "a//b" is "a/b"; a PUT that follows loses its body)
        clean = _clean_path(request.path)
        if clean != request.path:
            query = request.query_string.decode("latin-1")
            location = clean + (f"?{query}" if query else "")
            return Response(f'<a href="{location}">Moved Permanently</a>.\n\n', status=301,
                            mimetype="text/html", headers={"Location": location})
        return super().dispatch(request)

    # -- error shapes (Consul answers errors as text/plain) ----------------------------------
    def err(self, status, text):
        return Response(text, status=status, mimetype="text/plain")

    def method_not_allowed(self, request, methods=None):
        # agent/http.go: MethodNotAllowedError, with an Allow header of OPTIONS and the
        # endpoint's declared methods joined by ","
        if methods is None:
            allowed = self.url_map.bind_to_environ(request.environ).allowed_methods()
            methods = [m for m in ("GET", "PUT", "POST", "DELETE") if m in allowed]
        resp = self.err(405, f"method {request.method} not allowed")
        resp.headers["Allow"] = ",".join(["OPTIONS", *methods])
        return resp

    def handle_error(self, request, exc):
        return self.err(500, str(exc))

    # -- helpers -------------------------------------------------------------------------------
    def _bump(self, *tables):
        self.index += 1
        for table in tables:
            self.table_index[table] = self.index
        self.changed()
        return self.index

    def _meta(self, index):
        return {
            "X-Consul-Index": str(max(int(index), 1)),
            "X-Consul-KnownLeader": "true",
            "X-Consul-LastContact": "0",
            "X-Consul-Effective-Consistency": "leader",
        }

    def _json(self, data, index=None, status=200):
        headers = self._meta(index) if index is not None else None
        return self.json(data, status=status, headers=headers)

    def _query(self, request):
        """``(error response or None, index or None, wait)``: agent/http.go parseWait (400s),
        then the RPC's forwarding (an unknown ?dc) - all before any ACL check."""
        args = request.args
        # parseWait: ?wait= is parsed whether or not ?index= is given
        wait = DEFAULT_WAIT
        if args.get("wait"):
            try:
                wait = parse_duration(args["wait"])
            except DecodeError:
                return self.err(400, "Invalid wait time"), None, wait
        index = None
        if args.get("index"):
            # strconv.ParseUint(idx, 10, 64): digits only (no sign, no spaces), at most 2^64-1
            raw = args["index"]
            if not re.fullmatch(r"[0-9]+", raw) or int(raw) >= 2**64:
                return self.err(400, "Invalid index"), None, wait
            index = int(raw)
        if "dc" in args and args.get("dc") not in ("", self.dc):
            return self.err(500, "No path to datacenter"), None, wait
        return None, index, wait

    def _blocking(self, request, index_fn):
        """None to go on, or an error response for bad ?index/?wait; blocks when asked."""
        err, index, wait = self._query(request)
        if err is not None or not index:
            return err
        wait = min(max(wait, 0.0), MAX_WAIT)
        wait += wait / 16 * (uuid.uuid4().int % 1000) / 1000.0  # Consul's jitter
        self.wait_for_change(index_fn, index, wait)
        return None

    # -- ACLs (acl/policy_authorizer.go, acl/errors.go, agent/acl.go) -------------------------
    @staticmethod
    def _secret(request):
        # agent/http.go parseTokenInternal: ?token first, then X-Consul-Token, then an
        # "Authorization: Bearer <token>" header (the first word after the scheme)
        token = request.args.get("token") or request.headers.get("X-Consul-Token")
        if not token:
            parts = request.headers.get("Authorization", "").split(" ")
            if len(parts) > 1 and parts[0] == "Bearer":
                token = " ".join(parts[1:]).strip().split(" ")[0].strip()
        return token or None

    def identity(self, request):
        """The request's token by name, for the request log (never the secret)."""
        secret = self._secret(request)
        if not secret:
            return ANONYMOUS
        authz = self.acl_tokens.get(secret)
        return authz.name if authz is not None else "unknown"

    def _resolve(self, request):
        """``(authorizer, None)`` or ``(None, 403 ACL not found)`` for an unknown token."""
        if not self.acl_enabled:
            return self._acl_off, None
        secret = self._secret(request)
        if not secret:
            return self._anonymous, None
        authz = self.acl_tokens.get(secret)
        if authz is None:
            return None, self.err(403, "ACL not found")
        return authz, None

    def _allow(self, request, resource, name, access):
        """None when the request's token may ``access`` ``resource`` ``name``, else the 403."""
        authz, denied = self._resolve(request)
        if denied is not None:
            return denied
        if authz.allowed(resource, name, access):
            return None
        return self.err(403, authz.denied(resource, name, access))

    def _read_body(self, request):
        return request.get_data(cache=False) or b""

    def _decode_json(self, request, schema, struct):
        raw = self._read_body(request)
        if not raw.strip():
            raise DecodeError("EOF")
        try:
            body = json.loads(raw)
        except ValueError as exc:
            raise DecodeError(f"invalid character in JSON body: {exc.msg}") from None
        if not isinstance(body, dict):
            raise DecodeError(f"json: cannot unmarshal {_json_kind(body)} into Go value of type {struct}")
        return decode(body, schema, struct)

    # -- KV ------------------------------------------------------------------------------------
    def _kv_prefix_index(self, prefix):
        idx = 0
        for key, ent in self.kv.items():
            if key.startswith(prefix):
                idx = max(idx, ent["ModifyIndex"])
        for key, tomb in self.tombstones.items():
            if key.startswith(prefix):
                idx = max(idx, tomb)
        return idx or self.table_index["kvs"]

    def on_kv(self, request, key):
        # KVSEndpoint checks the key name before anything else (ACLs are checked by the RPC)
        problem = self._kv_key_problem(key) if key else None
        warning = None
        if problem and self.disable_kv_key_validation and _version(self.version) >= (1, 21, 6):
            problem, warning = None, problem
        if problem:
            # validateKVKey returns a plain error: Consul's HTTP layer answers 500 with its text
            return self.err(500, problem)
        # agent/kvs_endpoint.go checks the request first (KVSGet: parseWait; KVSPut/KVSDelete:
        # missing key, conflicting flags, ?flags/?cas, the value size); then the KVS RPC resolves
        # the token and (agent/consul/kvs_endpoint.go) Get checks key:read (403 before 404),
        # List/ListKeys filter the entries by key:read (FilterDirEnt), kvsPreApply checks
        # key:write (DeleteTree: KeyWritePrefix)
        authz, denied = self._resolve(request)
        if request.method == "GET":
            err = self._query(request)[0] or denied
            if err is not None:
                return err
            listing = "keys" in request.args or "recurse" in request.args
            if not listing and not authz.allowed("key", key, "read"):
                return self.err(403, authz.denied("key", key, "read"))
            resp = self._kv_get(request, key, authz)
        elif request.method == "PUT":
            resp = self._kv_put(request, key, authz, denied)
        else:
            resp = self._kv_delete(request, key, authz, denied)
        if warning:
            resp.headers["X-Consul-KV-Warning"] = (
                f"KV key validation bypassed: {warning}. Consider enabling key validation for security.")
        return resp

    def _kv_key_problem(self, key):
        """The error text of the configured Consul version's key check, or None."""
        version = _version(self.version)
        if version < (1, 21, 5):
            return None
        if version < (1, 21, 6):
            # consul#22682 (1.21.5): KVSEndpoint checks the key against this whitelist
            # (skipped with DisableHTTPUnprintableCharFilter); its '..' check is modelled
            # with the same text
            if not re.fullmatch(KV_KEY_PATTERN_1_21_5, key) or ".." in key:
                return f"invalid key name, keys should respect the {_go_quote(KV_KEY_PATTERN_1_21_5)} format"
            return None
        if key.startswith(" ") or key.endswith(" "):
            return "invalid key name, leading/trailing spaces are not allowed"
        if ".." in key.split("/"):
            return "invalid key name, path traversal is not allowed"
        decoded = _path_unescape(key)
        if decoded is not None and decoded != key.encode("utf-8"):
            if b".." in decoded:
                return "invalid key name, path traversal is not allowed"
            if b" " in decoded:
                return "invalid key name, leading/trailing spaces are not allowed"
        return None

    def _kv_get(self, request, key, authz):
        args = request.args
        readable = [k for k in self.kv if authz.allowed("key", k, "read")]
        if "keys" in args:
            # "due to historic spelling error, we now are forced to check for both spellings"
            sep = args.get("separator", args.get("seperator", ""))

            def index_fn():
                return self._kv_prefix_index(key)

            err = self._blocking(request, index_fn)
            if err:
                return err
            found = set()
            for name in readable:
                if not name.startswith(key):
                    continue
                rest = name[len(key):]
                if sep and sep in rest:
                    found.add(key + rest[: rest.index(sep) + len(sep)])
                else:
                    found.add(name)
            if not found and key:
                return Response(status=404, headers=self._meta(index_fn()))
            # KVSGetKeys: "We do not generate not found for the root, but just provide the
            # empty list"
            return self._json(sorted(found), index_fn())
        if "recurse" in args:
            def index_fn():
                return self._kv_prefix_index(key)

            err = self._blocking(request, index_fn)
            if err:
                return err
            entries = [self._kv_out(self.kv[k]) for k in sorted(readable) if k.startswith(key)]
            if not entries:
                return Response(status=404, headers=self._meta(index_fn()))
            return self._json(entries, index_fn())
        if not key:
            return self.err(400, "Missing key name")

        def index_fn():
            ent = self.kv.get(key)
            if ent is not None:
                return ent["ModifyIndex"]
            return max(self.table_index["kvs"], max(self.tombstones.values(), default=0))

        err = self._blocking(request, index_fn)
        if err:
            return err
        ent = self.kv.get(key)
        if ent is None:
            return Response(status=404, headers=self._meta(index_fn()))
        if "raw" in args:
            headers = self._meta(index_fn())
            # agent/kvs_endpoint.go KVSGet: raw values are served sandboxed
            headers["X-Content-Type-Options"] = "nosniff"
            headers["Content-Security-Policy"] = "sandbox"
            return Response(ent["Value"] or b"", status=200, mimetype="text/plain", headers=headers)
        return self._json([self._kv_out(ent)], index_fn())

    @staticmethod
    def _kv_out(ent):
        out = {k: ent[k] for k in ("LockIndex", "Key", "Flags")}
        out["Value"] = _b64(ent["Value"])
        if ent.get("Session"):
            out["Session"] = ent["Session"]
        out["CreateIndex"] = ent["CreateIndex"]
        out["ModifyIndex"] = ent["ModifyIndex"]
        return out

    def _conflicting(self, args, *flags):
        present = [f for f in flags if f in args]
        if len(present) > 1:
            # agent/kvs_endpoint.go conflictingFlags: fmt.Fprintf(resp, "Conflicting flags: %v\n",
            # params.Encode()) - url.Values.Encode sorts by key and escapes
            encoded = urllib.parse.urlencode([(k, v) for k in sorted(args) for v in args.getlist(k)])
            return self.err(400, f"Conflicting flags: {encoded}\n")
        return None

    @staticmethod
    def _kv_write_denied(authz, denied, key, recurse=False):
        """The KVS RPC's ACL answer (kvsPreApply), or None."""
        if denied is not None:
            return denied
        if not (authz.key_write_prefix(key) if recurse else authz.allowed("key", key, "write")):
            return Response(authz.denied("key", key, "write"), status=403, mimetype="text/plain")
        return None

    def _kv_put(self, request, key, authz, denied):
        args = request.args
        if not key:
            return self.err(400, "Missing key name")
        conflict = self._conflicting(args, "cas", "acquire", "release")
        if conflict:
            return conflict
        flags = 0
        if "flags" in args:
            try:
                flags = int(args.get("flags"))
                if flags < 0 or flags >= 2**64:
                    raise ValueError
            except ValueError:
                return self.err(500, f'strconv.ParseUint: parsing "{args.get("flags")}": invalid syntax')
        cas = None
        if "cas" in args:
            try:
                cas = int(args.get("cas"))
                if cas < 0:
                    raise ValueError
            except ValueError:
                return self.err(500, f'strconv.ParseUint: parsing "{args.get("cas")}": invalid syntax')
        length = request.content_length or 0
        if length > KV_MAX_VALUE_SIZE:
            return self.err(
                413,
                f"Request body({length} bytes) too large, max size: {KV_MAX_VALUE_SIZE} bytes. "
                "See https://developer.hashicorp.com/docs/agent/config/config-files#kv_max_value_size.",
            )
        refused = self._kv_write_denied(authz, denied, key)
        if refused is not None:
            return refused
        value = self._read_body(request) or None
        existing = self.kv.get(key)
        if "acquire" in args:
            sid = args.get("acquire")
            # agent/consul/kvs_endpoint.go kvsPreApply: the lock-delay refusal comes before
            # the raft apply, where kvsLockTxn checks the session
            if self.lock_delay.get(key, 0) > time.monotonic():
                return self._json(False)
            if not sid:
                return self.err(500, "missing session")
            if sid not in self.sessions:
                return self.err(500, f'invalid session "{sid}"')
            if existing is not None and existing.get("Session") not in (None, "", sid):
                return self._json(False)
            self._kv_write(key, value, flags, session=sid, acquire=True)
            return self._json(True)
        if "release" in args:
            sid = args.get("release")
            if not sid:
                return self.err(500, "missing session")
            if existing is None or existing.get("Session") != sid:
                return self._json(False)
            self._kv_write(key, value, flags, session="", acquire=False)
            return self._json(True)
        if cas is not None:
            if cas == 0 and existing is not None:
                return self._json(False)
            if cas != 0 and (existing is None or existing["ModifyIndex"] != cas):
                return self._json(False)
        self._kv_write(key, value, flags, session=None, acquire=False)
        return self._json(True)

    def _kv_write(self, key, value, flags, session, acquire):
        """session None keeps the holder (plain set), '' clears it (release)."""
        idx = self._bump("kvs")
        existing = self.kv.get(key)
        if existing is None:
            ent = {"CreateIndex": idx, "LockIndex": 0, "Session": ""}
        else:
            ent = dict(existing)
        if acquire and ent.get("Session") != session:
            ent["LockIndex"] = ent.get("LockIndex", 0) + 1
        if session is not None:
            ent["Session"] = session
        ent.update({"Key": key, "Flags": flags, "Value": value, "ModifyIndex": idx})
        self.kv[key] = ent
        self.tombstones.pop(key, None)

    def _kv_delete(self, request, key, authz, denied):
        args = request.args
        conflict = self._conflicting(args, "recurse", "cas")
        if conflict:
            return conflict
        recurse = "recurse" in args
        if not recurse and not key:
            return self.err(400, "Missing key name")
        cas = None
        if "cas" in args:
            raw = args.get("cas")
            if not re.fullmatch(r"[0-9]+", raw or "") or int(raw) >= 2**64:
                return self.err(500, f'strconv.ParseUint: parsing "{raw}": invalid syntax')
            cas = int(raw)
        refused = self._kv_write_denied(authz, denied, key, recurse=recurse)
        if refused is not None:
            return refused
        if recurse:
            doomed = [k for k in self.kv if k.startswith(key)]
            if doomed:
                idx = self._bump("kvs")
                for k in doomed:
                    del self.kv[k]
                    self.tombstones[k] = idx
            return self._json(True)
        existing = self.kv.get(key)
        if cas is not None and (existing is None or existing["ModifyIndex"] != cas):
            return self._json(existing is None)
        if existing is not None:
            idx = self._bump("kvs")
            del self.kv[key]
            self.tombstones[key] = idx
        return self._json(True)

    # -- sessions --------------------------------------------------------------------------------
    def on_session_create(self, request):
        # agent/consul/session_endpoint.go Apply: session:write on the session's node
        authz, denied = self._resolve(request)
        if denied:
            return denied
        body = {}
        raw = self._read_body(request)
        if raw.strip():
            try:
                body = json.loads(raw)
            except ValueError as exc:
                return self.err(400, f"Request decode failed: {exc.msg}")
            if not isinstance(body, dict):
                return self.err(
                    400, "Request decode failed: json: cannot unmarshal into Go value of type structs.Session"
                )
        # structs.Session.UnmarshalJSON uses plain json.Unmarshal: unknown fields are ignored,
        # keys match case-insensitively.
        low = {k.lower(): v for k, v in body.items()}
        lock_delay = DEFAULT_LOCK_DELAY
        if "lockdelay" in low:
            val = low["lockdelay"]
            try:
                if isinstance(val, str):
                    lock_delay = parse_duration(val)
                    if lock_delay * 1e9 < LOCK_DELAY_MIN_THRESHOLD:
                        lock_delay = lock_delay * 1e9
                elif isinstance(val, (int, float)):
                    lock_delay = float(val) / 1e9
                    if val < LOCK_DELAY_MIN_THRESHOLD:
                        lock_delay = float(val)
            except DecodeError as exc:
                return self.err(400, f"Request decode failed: {exc}")
        # the LockDelay is kept as given: deleteSessionTxn caps it at MaxLockDelay when applied
        # agent/consul/session_endpoint.go Session.Apply: session:write on the node is checked
        # before Behavior and TTL are validated (a token without it gets 403 for any body)
        node = low.get("node") or self.node
        if not authz.allowed("session", node, "write"):
            return self.err(403, authz.denied("session", node, "write"))
        behavior = low.get("behavior") or "release"
        if behavior not in ("release", "delete"):
            return self.err(500, f"Invalid Behavior setting '{behavior}'")
        ttl = low.get("ttl") or ""
        ttl_s = 0.0
        if ttl:
            try:
                ttl_s = parse_duration(ttl)
            except DecodeError as exc:
                return self.err(500, f"Session TTL '{ttl}' invalid: {exc}")
            if ttl_s != 0 and (ttl_s < self.session_ttl_min or ttl_s > SESSION_TTL_MAX):
                return self.err(
                    500,
                    f"Invalid Session TTL '{int(ttl_s * 1e9)}', must be between "
                    f"[{format_duration(self.session_ttl_min)}={format_duration(SESSION_TTL_MAX)}]",
                )
        if node != self.node:
            return self.err(500, "Missing node registration")
        idx = self._bump("sessions")
        sid = str(uuid.uuid4())
        self.sessions[sid] = {
            "ID": sid,
            "Name": low.get("name") or "",
            "Node": node,
            "LockDelay": int(lock_delay * 1e9),
            "Behavior": behavior,
            "TTL": ttl,
            # agent/session_endpoint.go fixupEmptySessionChecks: "Checks": [] empties the
            # default node check
            "NodeChecks": ([] if low.get("checks") == [] else [SERF_CHECK]) if low.get("nodechecks") is None
            else list(low["nodechecks"]),
            "ServiceChecks": low.get("servicechecks"),
            "CreateIndex": idx,
            "ModifyIndex": idx,
            "_ttl": ttl_s,
            "_expires": time.monotonic() + ttl_s * SESSION_TTL_MULTIPLIER if ttl_s else None,
        }
        return self.json({"ID": sid})

    @staticmethod
    def _session_out(sess):
        return {k: v for k, v in sess.items() if not k.startswith("_")}

    def on_session_destroy(self, request, sid):
        # agent/consul/session_endpoint.go Apply(destroy): the token is resolved (403 ACL not
        # found), then a session that does not exist is no error (true) before session:write
        # is checked on the session's node
        authz, denied = self._resolve(request)
        if denied:
            return denied
        sess = self.sessions.get(sid)
        if sess is None:
            return self._json(True)
        if not authz.allowed("session", sess["Node"], "write"):
            return self.err(403, authz.denied("session", sess["Node"], "write"))
        self._invalidate(sid)
        return self._json(True)

    def fault_destroy_session(self, fault):
        """Fault action ``destroy_session``: the session holding ``fault["key"]`` is
        destroyed (its locks released, lock-delay applied) when the fault hits, as
        ``PUT /v1/session/destroy/<id>`` would; the triggering request then goes on."""
        ent = self.kv.get(fault.get("key", ""))
        if ent and ent.get("Session"):
            self._invalidate(ent["Session"])

    def _invalidate(self, sid):
        sess = self.sessions.pop(sid, None)
        if sess is None:
            return
        idx = self._bump("sessions", "kvs")
        now = time.monotonic()
        for key in [k for k, e in self.kv.items() if e.get("Session") == sid]:
            if sess["Behavior"] == "delete":
                del self.kv[key]
                self.tombstones[key] = idx
            else:
                ent = self.kv[key]
                ent["Session"] = ""
                ent["ModifyIndex"] = idx
            if sess["LockDelay"]:
                # agent/consul/state/session.go deleteSessionTxn: "Enforce the max lock delay"
                self.lock_delay[key] = now + min(sess["LockDelay"] / 1e9, MAX_LOCK_DELAY)

    def on_session_renew(self, request, sid):
        # Session.Renew: an unknown session is a 404 before session:write is checked
        authz, denied = self._resolve(request)
        if denied:
            return denied
        sess = self.sessions.get(sid)
        if sess is None:
            return self.err(404, f"Session id '{sid}' not found")
        if not authz.allowed("session", sess["Node"], "write"):
            return self.err(403, authz.denied("session", sess["Node"], "write"))
        if sess["_ttl"]:
            sess["_expires"] = time.monotonic() + sess["_ttl"] * SESSION_TTL_MULTIPLIER
        # agent/session_endpoint.go SessionRenew writes no query meta (no X-Consul-Index)
        return self._json([self._session_out(sess)])

    def on_session_info(self, request, sid):
        authz, denied = self._resolve(request)  # results filtered by session:read
        if denied:
            return denied

        def index_fn():
            # agent/consul/state/session.go SessionGet: the sessions table's index
            return self.table_index["sessions"]

        err = self._blocking(request, index_fn)
        if err:
            return err
        sess = self.sessions.get(sid)
        if sess is not None and not authz.allowed("session", sess["Node"], "read"):
            sess = None
        return self._json([self._session_out(sess)] if sess else [], index_fn())

    def on_session_list(self, request):
        authz, denied = self._resolve(request)
        if denied:
            return denied
        err = self._blocking(request, lambda: self.table_index["sessions"])
        if err:
            return err
        out = [self._session_out(s) for s in self.sessions.values() if authz.allowed("session", s["Node"], "read")]
        return self._json(out, self.table_index["sessions"])

    # -- agent -----------------------------------------------------------------------------------
    def on_agent_self(self, request):
        denied = self._allow(request, "agent", self.node, "read")  # AgentSelf: agent:read
        if denied:
            return denied
        return self.json(
            {
                "Config": {"Datacenter": self.dc, "NodeName": self.node, "NodeID": self.node_id,
                           "Server": True, "Version": self.version},
                "Member": {"Name": self.node, "Addr": "127.0.0.1", "Port": 8301, "Status": 1},
                "Meta": {"consul-network-segment": "", "consul-version": self.version},
            }
        )

    def _agent_service_out(self, svc):
        out = {
            "ID": svc["ID"],
            "Service": svc["Service"],
            "Tags": list(svc["Tags"]),
            "Meta": dict(svc["Meta"]),
            "Port": svc["Port"],
            "Address": svc["Address"],
            "Weights": dict(svc["Weights"]),
            "EnableTagOverride": svc["EnableTagOverride"],
            "Datacenter": self.dc,
        }
        if svc["TaggedAddresses"]:  # api.AgentService: `json:",omitempty"`
            out["TaggedAddresses"] = svc["TaggedAddresses"]
        return out

    def on_agent_services(self, request):
        authz, denied = self._resolve(request)  # AgentServices: filtered by service:read
        if denied:
            return denied
        return self.json({sid: self._agent_service_out(s) for sid, s in sorted(self.services.items())
                          if authz.allowed("service", s["Service"], "read")})

    def on_agent_service(self, request, sid):
        if sid == "register" or sid.startswith(("deregister/", "maintenance/")):
            return self.method_not_allowed(request, ["PUT"])  # those paths are PUT-only endpoints
        # AgentService resolves the token (unknown: 403 ACL not found), then looks the
        # service up (404), and only then checks service:read on it (403)
        authz, denied = self._resolve(request)
        if denied:
            return denied
        svc = self.services.get(sid)
        if svc is None:
            return self.err(404, f"unknown service ID: {sid}")
        if not authz.allowed("service", svc["Service"], "read"):
            return self.err(403, authz.denied("service", svc["Service"], "read"))
        out = self._agent_service_out(svc)
        # agent/agent_endpoint.go AgentService: hashstructure's uint64 formatted with %x
        out["ContentHash"] = format(abs(hash(json.dumps(out, sort_keys=True))) & 0xFFFFFFFFFFFFFFFF, "x")
        return self.json(out, headers={"X-Consul-ContentHash": out["ContentHash"]})

    def _check_out(self, chk):
        return {k: v for k, v in chk.items() if not k.startswith("_")}

    def on_agent_checks(self, request):
        authz, denied = self._resolve(request)  # AgentChecks: filtered (filterChecksWithAuthorizer)
        if denied:
            return denied
        return self.json({cid: self._check_out(c) for cid, c in sorted(self.checks.items())
                          if self._check_readable(authz, c)})

    def on_agent_register(self, request):
        try:
            args = self._decode_json(request, SERVICE_DEFINITION, "ServiceDefinition")
        except DecodeError as exc:
            return self.err(400, f"Request decode failed: {exc}")
        if not args.get("Name"):
            return self.err(400, "Missing service name")
        address = args.get("Address") or ""
        if address in ("0.0.0.0", "::", "[::]"):
            return self.err(400, "Invalid service address")
        # AgentRegisterService resolves the token here (403 ACL not found), but vets
        # service:write only once Weights, Meta and the checks are validated
        authz, denied = self._resolve(request)
        if denied:
            return denied
        weights = args.get("Weights")
        if weights is not None:
            if weights.get("Passing", 0) <= 0:
                return self.err(400, "Invalid Weights: Passing must be greater than 0")
            if weights.get("Warning", 0) < 0:
                return self.err(400, "Invalid Weights: Warning must be greater or equal than 0")
        meta = args.get("Meta") or {}
        problem = _meta_problem(meta)
        if problem:
            return self.err(400, f"Invalid Service Meta: {problem}")
        chk_types = []
        single = args.get("Check")
        if single and any(v not in (None, "", 0, 0.0, False, [], {}) for v in single.values()):
            chk_types.append(single)
        chk_types.extend(c for c in (args.get("Checks") or []) if c is not None)
        normalised = []
        for chk in chk_types:
            chk = _check_aliases(chk)
            problem = _check_problem(chk)
            if problem:
                return self.err(400, f"Invalid check: {problem}")
            status = chk.get("Status") or ""
            if status and status not in ("passing", "warning", "critical"):
                return self.err(400, "Status for checks must 'passing', 'warning', 'critical'")
            normalised.append(chk)
        # vetServiceRegisterWithAuthorizer: service:write on the name, and on the name of a
        # service this registration would replace
        sid = args.get("ID") or args["Name"]
        for name in {args["Name"], (self.services.get(sid) or {}).get("Service") or args["Name"]}:
            if not authz.allowed("service", name, "write"):
                return self.err(403, authz.denied("service", name, "write"))
        # Agent.AddService refuses script checks from remote calls after the ACL vetting
        if any(chk.get("ScriptArgs") for chk in normalised):
            return self.err(
                500,
                "Scripts are disabled on this agent from remote calls; to enable, "
                "configure 'enable_script_checks' to true",
            )
        replace = "replace-existing-checks" in request.args and request.args.get(
            "replace-existing-checks"
        ) in ("", "true")
        self._add_service(args, normalised, replace)
        return Response(b"", status=200)

    def _add_service(self, args, chk_types, replace):
        sid = args.get("ID") or args["Name"]
        idx = self._bump("services", "checks")
        prev = self.services.get(sid)
        tagged = args.get("TaggedAddresses") or args.get("tagged_addresses")
        self.services[sid] = {
            "ID": sid,
            "Service": args["Name"],
            "Kind": args.get("Kind") or "",
            "Tags": list(args.get("Tags") or []),
            "Address": args.get("Address") or "",
            "TaggedAddresses": tagged,
            "Meta": dict(args.get("Meta") or {}),
            "Port": int(args.get("Port") or 0),
            "Weights": dict(args.get("Weights") or {"Passing": 1, "Warning": 1}),
            "EnableTagOverride": bool(args.get("EnableTagOverride") or args.get("enable_tag_override")),
            "CreateIndex": prev["CreateIndex"] if prev else idx,
            "ModifyIndex": idx,
        }
        new_ids = []
        for pos, chk in enumerate(chk_types):
            cid = chk.get("CheckID") or (
                f"service:{sid}" + (f":{pos + 1}" if len(chk_types) > 1 else "")
            )
            new_ids.append(cid)
            old = self.checks.get(cid)
            status = chk.get("Status") or "critical"
            output = ""
            if old is not None:  # Consul restores status/output of a re-registered check
                status, output = old["Status"], old["Output"]
            interval = chk.get("Interval") or 0.0
            self.checks[cid] = {
                "Node": self.node,
                "CheckID": cid,
                "Name": chk.get("Name") or f"Service '{args['Name']}' check",
                "Status": status,
                "Notes": chk.get("Notes") or "",
                "Output": output,
                "ServiceID": sid,
                "ServiceName": args["Name"],
                "ServiceTags": list(args.get("Tags") or []),
                "Type": _check_kind(chk),
                "Interval": format_duration(interval) if interval else "",
                "Timeout": format_duration(chk["Timeout"]) if chk.get("Timeout") else "",
                "ExposedPort": 0,
                # agent-local checks carry no HealthCheckDefinition (only catalog-registered ones)
                "Definition": {},
                "CreateIndex": old["CreateIndex"] if old else idx,
                "ModifyIndex": idx,
                "_def": chk,
                "_next": time.monotonic(),  # first run right away
                "_running": False,
                "_successes": 0,
                "_failures": 0,
                "_critical_since": None if status != "critical" else time.monotonic(),
                "_ttl_deadline": (time.monotonic() + chk["TTL"]) if chk.get("TTL") else None,
            }
        if replace or prev is None:
            for cid in [c for c, v in self.checks.items() if v["ServiceID"] == sid and c not in new_ids]:
                del self.checks[cid]

    def on_agent_deregister(self, request, sid):
        # vetServiceUpdateWithAuthorizer: unknown service 404 first, then service:write
        authz, denied = self._resolve(request)
        if denied:
            return denied
        if sid not in self.services:
            return self.err(
                404,
                f'Unknown service ID "{sid}". Ensure that the service ID is passed, not the service name.',
            )
        name = self.services[sid]["Service"]
        if not authz.allowed("service", name, "write"):
            return self.err(403, authz.denied("service", name, "write"))
        self._remove_service(sid)
        return Response(b"", status=200)

    def _remove_service(self, sid):
        self._bump("services", "checks")
        del self.services[sid]
        for cid in [c for c, v in self.checks.items() if v["ServiceID"] == sid]:
            del self.checks[cid]

    def _unknown_check(self, cid):
        return self.err(404, f'Unknown check ID "{cid}". Ensure that the check ID is passed, not the check name.')

    def on_agent_check_ttl(self, request, op, cid):
        authz, denied = self._resolve(request)
        if denied:
            return denied
        status = {"pass": "passing", "warn": "warning", "fail": "critical"}[op]
        return self._ttl_update(authz, cid, status, request.args.get("note", ""))

    def on_agent_check_update(self, request, cid):
        try:
            body = self._decode_json(request, CHECK_UPDATE, "checkUpdate")
        except DecodeError as exc:
            return self.err(400, f"Request decode failed: {exc}")
        status = body.get("Status") or ""
        if status not in ("passing", "warning", "critical"):
            return self.err(400, f"Invalid check status: '{status}'")
        authz, denied = self._resolve(request)
        if denied:
            return denied
        return self._ttl_update(authz, cid, status, body.get("Output") or "")

    def _ttl_update(self, authz, cid, status, output):
        # vetCheckUpdateWithAuthorizer: unknown check 404 first, then service:write on its
        # service (node:write for a node check)
        chk = self.checks.get(cid)
        if chk is None:
            return self._unknown_check(cid)
        kind, name = ("service", chk["ServiceName"]) if chk["ServiceID"] else ("node", self.node)
        if not authz.allowed(kind, name, "write"):
            return self.err(403, authz.denied(kind, name, "write"))
        if not chk["_def"].get("TTL"):
            return self.err(500, f'CheckID "{cid}" does not have associated TTL')
        chk["_ttl_deadline"] = time.monotonic() + chk["_def"]["TTL"]
        self._set_status(chk, status, output)
        return Response(b"", status=200)

    def _set_status(self, chk, status, output):
        if chk["Status"] == status and chk["Output"] == output:
            return
        if chk["Status"] != status:
            chk["_critical_since"] = time.monotonic() if status == "critical" else None
        chk["Status"] = status
        chk["Output"] = output[:CHECK_OUTPUT_MAX]
        chk["ModifyIndex"] = self._bump("checks")

    # -- health & catalog ------------------------------------------------------------------------
    def _node_out(self):
        return {
            "ID": self.node_id,
            "Node": self.node,
            "Address": "127.0.0.1",
            "Datacenter": self.dc,
            "TaggedAddresses": {"lan": "127.0.0.1", "lan_ipv4": "127.0.0.1",
                                "wan": "127.0.0.1", "wan_ipv4": "127.0.0.1"},
            "Meta": {"consul-network-segment": "", "consul-version": self.version},
            "CreateIndex": self.node_index[0],
            "ModifyIndex": self.node_index[1],
        }

    def _serf_check(self):
        return {
            "Node": self.node, "CheckID": SERF_CHECK, "Name": "Serf Health Status",
            "Status": "passing", "Notes": "", "Output": "Agent alive and reachable",
            "ServiceID": "", "ServiceName": "", "ServiceTags": [], "Type": "", "Interval": "",
            "Timeout": "", "ExposedPort": 0, "Definition": {},
            "CreateIndex": self.serf_index[0], "ModifyIndex": self.serf_index[1],
        }

    def _instances(self, name):
        """[(service dict, [service checks])] including the server's own 'consul' service."""
        out = []
        if name == "consul":
            svc = {"ID": "consul", "Service": "consul", "Kind": "", "Tags": [], "Address": "",
                   "TaggedAddresses": None, "Meta": {"grpc_port": "8502", "non_voter": "false",
                                                      "raft_version": "3", "read_replica": "false",
                                                      "serf_protocol_current": "2",
                                                      "serf_protocol_max": "5",
                                                      "serf_protocol_min": "1", "version": self.version},
                   "Port": 8300, "Weights": {"Passing": 1, "Warning": 1},
                   "EnableTagOverride": False, "CreateIndex": self.consul_service_index[0],
                   "ModifyIndex": self.consul_service_index[1]}
            out.append((svc, []))
        for sid, svc in sorted(self.services.items()):
            if svc["Service"] == name:
                out.append((svc, [c for c in self.checks.values() if c["ServiceID"] == sid]))
        return out

    def _remote_instances(self, name):
        """[(node dict, service dict, [checks])] on the catalog-registered nodes: a node's own
        checks (ServiceID "") count for each of its services, as Consul's health endpoint
        lists them; such a node has no agent, hence no serfHealth check."""
        out = []
        for _, rec in sorted(self.remote.items()):
            node_checks = [c for _, c in sorted(rec["checks"].items()) if not c["ServiceID"]]
            for sid, svc in sorted(rec["services"].items()):
                if svc["Service"] == name:
                    own = [c for _, c in sorted(rec["checks"].items()) if c["ServiceID"] == sid]
                    out.append((rec["node"], svc, node_checks + own))
        return out

    def _service_index(self, name):
        idx = 0
        for svc, checks in self._instances(name):
            idx = max([idx, svc["ModifyIndex"]] + [c["ModifyIndex"] for c in checks])
        for node, svc, checks in self._remote_instances(name):
            idx = max([idx, node["ModifyIndex"], svc["ModifyIndex"]] + [c["ModifyIndex"] for c in checks])
        return idx or max(self.table_index["services"], self.table_index["checks"])

    def _health_service_out(self, svc):
        return {
            "ID": svc["ID"], "Service": svc["Service"], "Tags": list(svc["Tags"]),
            "Address": svc["Address"], "TaggedAddresses": svc["TaggedAddresses"],
            "Meta": dict(svc["Meta"]), "Port": svc["Port"], "Weights": dict(svc["Weights"]),
            "EnableTagOverride": svc["EnableTagOverride"],
            "Proxy": {"Mode": "", "MeshGateway": {}, "Expose": {}}, "Connect": {},
            "PeerName": "", "CreateIndex": svc["CreateIndex"], "ModifyIndex": svc["ModifyIndex"],
        }

    def on_health_service(self, request, name):
        # Health.ServiceNodes: results filtered by service:read and node:read (no 403)
        authz, denied = self._resolve(request)
        if denied:
            return denied
        if "filter" in request.args:
            return self.err(400, "filter expressions are not supported by the lab simulator")
        passing = False
        if "passing" in request.args:
            raw = request.args.get("passing")
            # getBoolQueryParam: "" is true, else strconv.ParseBool
            if raw in ("", "1", "t", "T", "TRUE", "true", "True"):
                passing = True
            elif raw in ("0", "f", "F", "FALSE", "false", "False"):
                passing = False
            else:
                return self.err(400, "Invalid value for ?passing")
        tags = request.args.getlist("tag")
        err = self._blocking(request, lambda: self._service_index(name))
        if err:
            return err
        result = []
        for svc, checks in self._instances(name):
            if not self._instance_readable(authz, svc):
                continue
            if tags and not all(t in svc["Tags"] for t in tags):
                continue
            all_checks = [self._serf_check()] + [self._check_out(c) for c in checks]
            if passing and any(c["Status"] != "passing" for c in all_checks):
                continue
            result.append({"Node": self._node_out(), "Service": self._health_service_out(svc),
                           "Checks": all_checks})
        for node, svc, checks in self._remote_instances(name):
            if not (authz.allowed("node", node["Node"], "read") and authz.allowed("service", name, "read")):
                continue
            if tags and not all(t in svc["Tags"] for t in tags):
                continue
            out_checks = [self._check_out(c) for c in checks]
            if passing and any(c["Status"] != "passing" for c in out_checks):
                continue
            result.append({"Node": dict(node), "Service": self._health_service_out(svc), "Checks": out_checks})
        return self._json(result, self._service_index(name))

    def on_health_checks(self, request, name):
        authz, denied = self._resolve(request)
        if denied:
            return denied
        err = self._blocking(request, lambda: self._service_index(name))
        if err:
            return err
        out = [self._check_out(c) for svc, checks in self._instances(name) for c in checks
               if self._instance_readable(authz, svc)]
        out += [self._check_out(c) for node, svc, checks in self._remote_instances(name) for c in checks
                if c["ServiceID"] == svc["ID"] and authz.allowed("service", name, "read")]
        return self._json(out, self._service_index(name))

    def _catalog_index(self):
        return max([self.consul_service_index[1]] + [s["ModifyIndex"] for s in self.services.values()]
                   + [s["ModifyIndex"] for r in self.remote.values() for s in r["services"].values()]
                   + [self.table_index["services"]])

    def on_catalog_services(self, request):
        authz, denied = self._resolve(request)  # filtered by service:read
        if denied:
            return denied
        err = self._blocking(request, self._catalog_index)
        if err:
            return err
        out = {"consul": []} if authz.allowed("service", "consul", "read") else {}
        for svc in self.services.values():
            if not authz.allowed("service", svc["Service"], "read"):
                continue
            tags = out.setdefault(svc["Service"], [])
            for tag in svc["Tags"]:
                if tag not in tags:
                    tags.append(tag)
        for rec in self.remote.values():
            for svc in rec["services"].values():
                if not authz.allowed("service", svc["Service"], "read"):
                    continue
                tags = out.setdefault(svc["Service"], [])
                tags.extend(t for t in svc["Tags"] if t not in tags)
        return self._json(out, self._catalog_index())

    def on_catalog_service(self, request, name):
        authz, denied = self._resolve(request)  # filtered by service:read and node:read
        if denied:
            return denied
        err = self._blocking(request, lambda: self._service_index(name))
        if err:
            return err
        node = self._node_out()
        out = []
        for svc, _ in self._instances(name):
            if not self._instance_readable(authz, svc):
                continue
            out.append({
                "ID": node["ID"], "Node": node["Node"], "Address": node["Address"],
                "Datacenter": self.dc, "TaggedAddresses": node["TaggedAddresses"],
                "NodeMeta": node["Meta"], "ServiceKind": svc.get("Kind", ""),
                "ServiceID": svc["ID"], "ServiceName": svc["Service"],
                "ServiceTags": list(svc["Tags"]), "ServiceAddress": svc["Address"],
                "ServiceTaggedAddresses": svc["TaggedAddresses"],
                "ServiceWeights": dict(svc["Weights"]), "ServiceMeta": dict(svc["Meta"]),
                "ServicePort": svc["Port"], "ServiceEnableTagOverride": svc["EnableTagOverride"],
                "CreateIndex": svc["CreateIndex"], "ModifyIndex": svc["ModifyIndex"],
            })
        for rnode, svc, _ in self._remote_instances(name):
            if not (authz.allowed("node", rnode["Node"], "read") and authz.allowed("service", name, "read")):
                continue
            out.append({
                "ID": rnode["ID"], "Node": rnode["Node"], "Address": rnode["Address"],
                "Datacenter": self.dc, "TaggedAddresses": rnode["TaggedAddresses"],
                "NodeMeta": rnode["Meta"], "ServiceKind": svc["Kind"],
                "ServiceID": svc["ID"], "ServiceName": svc["Service"],
                "ServiceTags": list(svc["Tags"]), "ServiceAddress": svc["Address"],
                "ServiceTaggedAddresses": svc["TaggedAddresses"],
                "ServiceWeights": dict(svc["Weights"]), "ServiceMeta": dict(svc["Meta"]),
                "ServicePort": svc["Port"], "ServiceEnableTagOverride": svc["EnableTagOverride"],
                "CreateIndex": svc["CreateIndex"], "ModifyIndex": svc["ModifyIndex"],
            })
        return self._json(out, self._service_index(name))

    def on_catalog_nodes(self, request):
        authz, denied = self._resolve(request)  # filtered by node:read
        if denied:
            return denied
        nodes = [self._node_out()] if authz.allowed("node", self.node, "read") else []
        nodes += [dict(r["node"]) for _, r in sorted(self.remote.items())
                  if authz.allowed("node", r["node"]["Node"], "read")]
        return self._json(nodes, max([self.node_index[1]] + [r["node"]["ModifyIndex"] for r in self.remote.values()]))

    # -- catalog register/deregister (agent/consul/catalog_endpoint.go Register, Deregister) ----
    def on_catalog_register(self, request):
        """
        PUT /v1/catalog/register: a node (another agent's, or an external one) with a service
        and checks, as Catalog.Register takes it: node and address required (unless
        SkipNodeUpdate), the service ID defaults to its name, a check's CheckID to its Name and
        its Node to the request's, a check without status is critical; ACLs as
        vetRegisterWithACL (node:write for a new or changed node and node-level checks,
        service:write for the service). Checks registered here are never run: their status is
        what the registration says (Consul runs only an agent's own checks). Errors of the RPC
        answer 500 with its text, as agent/http.go does.
        """
        try:
            args = self._decode_json(request, CATALOG_REGISTER, "RegisterRequest")
        except DecodeError as exc:
            return self.err(400, f"Request decode failed: {exc}")
        if args.get("Datacenter") not in (None, "", self.dc):
            return self.err(500, "No path to datacenter")
        node = args.get("Node") or ""
        if not node:
            return self.err(500, "Must provide node")
        if node == self.node:
            return self.err(400, f"lab simulator: node {node} is the agent's own; register through "
                                 "/v1/agent/service/register")
        if not args.get("Address") and not args.get("SkipNodeUpdate"):
            return self.err(500, "Must provide address if SkipNodeUpdate is not set")
        if args.get("ID"):
            try:
                uuid.UUID(args["ID"])
            except ValueError:
                return self.err(500, "Bad node ID: uuid string is wrong length")
        authz, denied = self._resolve(request)
        if denied:
            return denied
        svc = args.get("Service")
        if svc is not None:
            if not svc.get("ID") and svc.get("Service"):
                svc["ID"] = svc["Service"]
            if svc.get("ID") and not svc.get("Service"):
                return self.err(500, "Must provide service name (Service.Service) when service ID is provided")
            if (svc.get("Address") or "") in ("0.0.0.0", "::", "[::]"):
                return self.err(500, "Invalid service address")
            if not authz.allowed("service", svc["Service"], "write"):
                return self.err(403, authz.denied("service", svc["Service"], "write"))
        checks = ([args["Check"]] if args.get("Check") else []) + [c for c in args.get("Checks") or [] if c]
        rec = self.remote.get(node)
        changes_node = rec is None or args.get("Address") not in (None, "", rec["node"]["Address"])
        if changes_node and not authz.allowed("node", node, "write"):
            return self.err(403, authz.denied("node", node, "write"))
        known = set((rec or {}).get("services", {})) | ({svc["ID"]} if svc else set())
        for chk in checks:
            chk["Node"] = chk.get("Node") or node
            chk["CheckID"] = chk.get("CheckID") or chk.get("Name") or ""
            if chk["Node"].lower() != node.lower():
                return self.err(500, f"Node '{chk['Node']}' for check '{chk['CheckID']}' doesn't match "
                                     f"register request node '{node}'")
            if not chk.get("ServiceID"):
                if not authz.allowed("node", node, "write"):
                    return self.err(403, authz.denied("node", node, "write"))
            elif chk["ServiceID"] not in known:
                return self.err(500, f"Unknown service ID '{chk['ServiceID']}' for check ID '{chk['CheckID']}'")
            if chk.get("Status") and chk["Status"] not in CHECK_STATUSES:
                return self.err(500, f"Invalid check status '{chk['Status']}'")
        self._catalog_apply(node, args, svc, checks)
        return self.json(True)

    def _catalog_apply(self, node, args, svc, checks):
        idx = self._bump("services", "checks")
        rec = self.remote.setdefault(node, {"node": None, "services": {}, "checks": {}})
        prev = rec["node"]
        if prev is None or not args.get("SkipNodeUpdate"):
            tagged = args.get("TaggedAddresses") or {}
            rec["node"] = {
                "ID": args.get("ID") or (prev or {}).get("ID") or "",
                "Node": node,
                "Address": args.get("Address") or (prev or {}).get("Address") or "",
                "Datacenter": self.dc,
                "TaggedAddresses": dict(tagged) if tagged else None,
                "Meta": dict(args.get("NodeMeta") or {}),
                "CreateIndex": prev["CreateIndex"] if prev else idx,
                "ModifyIndex": idx,
            }
        if svc is not None:
            old = rec["services"].get(svc["ID"])
            rec["services"][svc["ID"]] = {
                "ID": svc["ID"], "Service": svc["Service"], "Kind": svc.get("Kind") or "",
                "Tags": list(svc.get("Tags") or []), "Address": svc.get("Address") or "",
                "TaggedAddresses": svc.get("TaggedAddresses"), "Meta": dict(svc.get("Meta") or {}),
                "Port": int(svc.get("Port") or 0),
                "Weights": dict(svc.get("Weights") or {"Passing": 1, "Warning": 1}),
                "EnableTagOverride": bool(svc.get("EnableTagOverride")),
                "CreateIndex": old["CreateIndex"] if old else idx, "ModifyIndex": idx,
            }
        for chk in checks:
            old = rec["checks"].get(chk["CheckID"])
            owner = rec["services"].get(chk.get("ServiceID") or "")
            rec["checks"][chk["CheckID"]] = {
                "Node": node, "CheckID": chk["CheckID"], "Name": chk.get("Name") or "",
                "Status": chk.get("Status") or "critical", "Notes": chk.get("Notes") or "",
                "Output": chk.get("Output") or "", "ServiceID": chk.get("ServiceID") or "",
                "ServiceName": owner["Service"] if owner else "",
                "ServiceTags": list(owner["Tags"]) if owner else [],
                "Type": chk.get("Type") or "", "Interval": chk.get("Interval") or "",
                "Timeout": chk.get("Timeout") or "", "ExposedPort": 0,
                "Definition": chk.get("Definition") or {},
                "CreateIndex": old["CreateIndex"] if old else idx, "ModifyIndex": idx,
            }

    def on_catalog_deregister(self, request):
        """
        PUT /v1/catalog/deregister {Node, ServiceID | CheckID}: a service with its checks, one
        check, or (neither given) the node with everything on it; ACLs as vetDeregisterWithACL.
        A name the node does not have is no error (the raft apply deletes nothing).
        """
        try:
            args = self._decode_json(request, CATALOG_DEREGISTER, "DeregisterRequest")
        except DecodeError as exc:
            return self.err(400, f"Request decode failed: {exc}")
        node = args.get("Node") or ""
        if not node:
            return self.err(500, "Must provide node")
        authz, denied = self._resolve(request)
        if denied:
            return denied
        rec = self.remote.get(node)
        sid, cid = args.get("ServiceID") or "", args.get("CheckID") or ""
        if not authz.allowed("node", node, "write"):
            if sid:
                svc = (rec or {}).get("services", {}).get(sid)
                if svc is None:
                    return self.err(500, f"Unknown service ID '{sid}'")
                if not authz.allowed("service", svc["Service"], "write"):
                    return self.err(403, authz.denied("service", svc["Service"], "write"))
            elif cid:
                chk = (rec or {}).get("checks", {}).get(cid)
                if chk is None:
                    return self.err(500, f"Unknown check ID '{cid}'")
                kind, name = ("service", chk["ServiceName"]) if chk["ServiceID"] else ("node", node)
                if not authz.allowed(kind, name, "write"):
                    return self.err(403, authz.denied(kind, name, "write"))
            else:
                return self.err(403, authz.denied("node", node, "write"))
        if rec is not None:
            self._bump("services", "checks")
            if sid:
                rec["services"].pop(sid, None)
                rec["checks"] = {k: c for k, c in rec["checks"].items() if c["ServiceID"] != sid}
            elif cid:
                rec["checks"].pop(cid, None)
            else:
                del self.remote[node]
        return self.json(True)

    def _instance_readable(self, authz, svc):
        return authz.allowed("node", self.node, "read") and authz.allowed("service", svc["Service"], "read")

    def _check_readable(self, authz, chk):
        if chk["ServiceID"]:
            return authz.allowed("service", chk["ServiceName"], "read")
        return authz.allowed("node", self.node, "read")

    def on_acl_token_self(self, request):
        """
        GET /v1/acl/token/self (agent/acl_endpoint.go ACLTokenSelf -> ACL.TokenRead by secret):
        ACLs off is 401 "ACL support disabled"; a secret needs no permission to read itself;
        a secret the store does not hold (none sent: the anonymous token's secret is not "")
        is 404 "Supplied token does not exist".
        """
        if not self.acl_enabled:
            return self.err(401, "ACL support disabled")
        secret = self._secret(request)
        authz = self.acl_tokens.get(secret or "")
        if authz is None:
            return self.err(404, "Supplied token does not exist")
        policies = ([{"ID": "00000000-0000-0000-0000-000000000001", "Name": "global-management"}]
                    if authz.management else [{"ID": str(uuid.uuid5(uuid.NAMESPACE_URL, authz.name)),
                                                "Name": f"{authz.name}-policy"}])
        return self._json({"AccessorID": authz.accessor, "SecretID": secret, "Description": authz.name,
                           "Policies": policies, "Local": False, "CreateTime": "2024-01-01T00:00:00Z",
                           "Hash": "", "CreateIndex": 5, "ModifyIndex": 5}, 5)

    def on_status_leader(self, request):
        return self.json("127.0.0.1:8300")

    # -- background: session TTLs, lock-delay, health checks -----------------------------------
    def _tick_forever(self):
        while not self._stop.wait(0.05):
            try:
                self._tick()
            except Exception:  # pylint: disable=broad-except
                pass  # the simulator must keep running; state stays consistent under the lock

    def _tick(self):
        now = time.monotonic()
        due = []
        with self.cond:
            for sid, sess in list(self.sessions.items()):
                if sess["_expires"] is not None and sess["_expires"] <= now:
                    self._invalidate(sid)
            for key, deadline in list(self.lock_delay.items()):
                if deadline <= now:
                    del self.lock_delay[key]
            for chk in list(self.checks.values()):
                definition = chk["_def"]
                if chk["_ttl_deadline"] is not None and chk["_ttl_deadline"] <= now:
                    chk["_ttl_deadline"] = now + definition["TTL"]
                    self._set_status(chk, "critical", "TTL expired")
                if chk["Type"] in ("http", "tcp") and not chk["_running"] and chk["_next"] <= now:
                    chk["_running"] = True
                    due.append((chk["CheckID"], dict(definition)))
                reap = definition.get("DeregisterCriticalServiceAfter")
                since = chk["_critical_since"]
                if reap and since is not None and now - since >= reap and chk["ServiceID"] in self.services:
                    self._remove_service(chk["ServiceID"])
        for cid, definition in due:
            self._pool.submit(self._run_check, cid, definition)

    def _run_check(self, cid, definition):
        try:
            status, output = run_check(definition)
        except Exception as exc:  # pylint: disable=broad-except
            status, output = "critical", f"check failed: {exc}"
        with self.cond:
            chk = self.checks.get(cid)
            if chk is None or chk["_def"] != definition:
                if chk is not None:
                    chk["_running"] = False
                return
            chk["_running"] = False
            interval = definition.get("Interval") or 10.0
            if self.check_interval_max:
                interval = min(interval, self.check_interval_max)
            chk["_next"] = time.monotonic() + interval
            status = self._threshold(chk, status)
            self._set_status(chk, status, output)

    @staticmethod
    def _threshold(chk, status):
        """SuccessBeforePassing / FailuresBeforeWarning / FailuresBeforeCritical."""
        definition = chk["_def"]
        if status == "passing":
            chk["_successes"] += 1
            chk["_failures"] = 0
            if chk["_successes"] < (definition.get("SuccessBeforePassing") or 0):
                return chk["Status"]
            return status
        chk["_failures"] += 1
        chk["_successes"] = 0
        before_critical = definition.get("FailuresBeforeCritical") or 0
        before_warning = definition.get("FailuresBeforeWarning") or before_critical
        if status == "critical" and chk["_failures"] < before_critical:
            if chk["_failures"] >= before_warning and before_warning:
                return "warning"
            return chk["Status"]
        return status

    def snapshot(self):
        return {
            "index": self.index,
            "kv": {k: {"ModifyIndex": e["ModifyIndex"], "Session": e.get("Session") or "",
                       "Flags": e["Flags"]} for k, e in self.kv.items()},
            "sessions": sorted(self.sessions),
            "services": {sid: {"Service": s["Service"], "Address": s["Address"], "Port": s["Port"]}
                         for sid, s in self.services.items()},
            "checks": {cid: {"Status": c["Status"], "Output": c["Output"], "ServiceID": c["ServiceID"]}
                       for cid, c in self.checks.items()},
        }


KV_KEY_PATTERN_1_21_5 = r"^[a-zA-Z0-9,_./\-?&=]+$"


def _version(text):
    """'1.22.0' (or '1.21.5+ent') -> (1, 22, 0)."""
    return tuple(int(n) for n in re.findall(r"\d+", text.split("+")[0].split("-")[0])[:3])


def _go_quote(text):
    """Go's %q of a plain ASCII string."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _path_unescape(key):
    """Go's url.PathUnescape as bytes; None when a '%' does not start a valid escape."""
    if re.search(r"%(?![0-9A-Fa-f]{2})", key):
        return None
    return urllib.parse.unquote_to_bytes(key)


def _clean_path(path):
    """Go's path.Clean as http.ServeMux applies it (a trailing slash is kept)."""
    if "//" not in path and "/." not in path:
        return path
    out = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if out:
                out.pop()
            continue
        out.append(part)
    clean = "/" + "/".join(out)
    if path.endswith("/") and clean != "/":
        clean += "/"
    return clean


def _meta_problem(meta):
    if len(meta) > 64:
        return "Node metadata cannot contain more than 64 key/value pairs"
    for key, val in meta.items():
        if not key:
            return "Key cannot be blank"
        if not _META_KEY.match(key):
            return f"Key contains invalid characters: {key}"
        if len(key) > 128:
            return f"Key is too long (limit: 128 characters): {key}"
        if key.startswith("consul-"):
            return f"Key prefix 'consul-' is reserved for internal use: {key}"
        if len(val) > 512:
            return f"Value is too long (limit: 512 characters): {key}"
    return None


def _check_aliases(chk):
    out = dict(chk)
    for snake, canon in (("args", "ScriptArgs"), ("script_args", "ScriptArgs"),
                         ("deregister_critical_service_after", "DeregisterCriticalServiceAfter"),
                         ("docker_container_id", "DockerContainerID"),
                         ("tls_server_name", "TLSServerName"), ("tls_skip_verify", "TLSSkipVerify"),
                         ("grpc_use_tls", "GRPCUseTLS"), ("h2ping_use_tls", "H2PingUseTLS")):
        if snake in out:
            val = out.pop(snake)
            if not out.get(canon):
                out[canon] = val
    out.pop("ServiceID", None)
    out.pop("service_id", None)
    return out


def _check_problem(chk):
    """structs.CheckType.Validate()."""
    interval_check = bool(chk.get("ScriptArgs") or chk.get("HTTP") or chk.get("TCP") or chk.get("UDP")
                          or chk.get("GRPC") or chk.get("H2PING") or chk.get("OSService"))
    is_alias = bool(chk.get("AliasNode") or chk.get("AliasService"))
    interval = chk.get("Interval") or 0
    ttl = chk.get("TTL") or 0
    if interval > 0 and ttl > 0:
        return "Interval and TTL cannot both be specified"
    if interval_check and interval <= 0:
        return "Interval must be > 0 for Script, HTTP, H2PING, TCP, UDP or OSService checks"
    if interval_check and is_alias:
        return "Interval cannot be set for Alias checks"
    if is_alias and ttl > 0:
        return "TTL must be not be set for Alias checks"
    if not interval_check and not is_alias and ttl <= 0:
        return "TTL must be > 0 for TTL checks"
    if (chk.get("OutputMaxSize") or 0) < 0:
        return "MaxOutputMaxSize must be positive"
    if (chk.get("FailuresBeforeWarning") or 0) > (chk.get("FailuresBeforeCritical") or 0):
        return "FailuresBeforeWarning can't be higher than FailuresBeforeCritical"
    return None


def _check_kind(chk):
    interval = (chk.get("Interval") or 0) > 0
    if chk.get("GRPC") and interval:
        return "grpc"
    if chk.get("HTTP") and interval:
        return "http"
    if (chk.get("TTL") or 0) > 0:
        return "ttl"
    if chk.get("TCP") and interval:
        return "tcp"
    if chk.get("UDP") and interval:
        return "udp"
    if chk.get("AliasNode") or chk.get("AliasService"):
        return "alias"
    if chk.get("ScriptArgs"):
        return "script"
    if chk.get("H2PING") and interval:
        return "h2ping"
    return ""


def run_check(definition):
    """Run one HTTP or TCP check for real: (status, output) as Consul's checkers report."""
    timeout = definition.get("Timeout") or DEFAULT_CHECK_TIMEOUT
    if definition.get("HTTP"):
        url = definition["HTTP"]
        method = definition.get("Method") or "GET"
        headers = {k: ", ".join(v) for k, v in (definition.get("Header") or {}).items()}
        headers.setdefault("User-Agent", "Consul Health Check")
        headers.setdefault("Accept", "text/plain, text/*, */*")
        try:
            resp = requests.request(
                method, url, headers=headers, data=definition.get("Body") or None,
                timeout=timeout, verify=not definition.get("TLSSkipVerify"),
                allow_redirects=not definition.get("DisableRedirects"),
            )
        except requests.exceptions.Timeout:
            return (
                "critical",
                f'Get "{url}": context deadline exceeded (Client.Timeout exceeded while awaiting headers)',
            )
        except requests.exceptions.RequestException as exc:
            reason = "connection refused" if "refused" in str(exc).lower() else type(exc).__name__
            return "critical", f'Get "{url}": dial tcp: connect: {reason}'
        body = resp.text[:CHECK_OUTPUT_MAX]
        line = f"HTTP {method} {url}: {resp.status_code} {resp.reason} Output: {body}"
        if 200 <= resp.status_code < 300:
            return "passing", line
        if resp.status_code == 429:
            return "warning", line
        return "critical", line
    target = definition.get("TCP") or ""
    host, _, port = target.rpartition(":")
    host = host.strip("[]")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except (OSError, ValueError) as exc:
        reason = "connection refused" if isinstance(exc, ConnectionRefusedError) else str(exc) or type(exc).__name__
        return "critical", f"dial tcp {target}: connect: {reason}"
    return "passing", f"TCP connect {target}: Success"
