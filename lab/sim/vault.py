"""
Vault simulator: token auth with per-token path policies, KV v2 (versions, CAS,
metadata, soft delete, undelete, destroy, list), sys/health, seal/unseal and AppRole
login, with Vault's ``{"errors": [...]}`` bodies.

Behaviour follows hashicorp/vault-plugin-secrets-kv (path_data.go, path_metadata.go)
and the Vault HTTP API docs; see shared/api-notes/hashicorp.md.

Config (``--config`` JSON)::

    {"root_token": "...",
     "mounts": ["secret"],
     "policies": {"reader": [{"path": "secret/data/app/*", "capabilities": ["read"]}]},
     "tokens": {"<token>": {"policies": ["reader"]}},
     "approles": {"<role_id>": {"role_name": "app", "secret_id": "...", "policies": ["reader"]}},
     "unseal_key": "..."}

AppRole login (``POST /v1/auth/approle/login``) as builtin/credential/approle/path_login.go
pathLoginUpdate answers it: ``missing role_id`` / ``missing secret_id`` / ``invalid role or
secret ID`` (400), else a service token with the role's policies plus ``default``. Every
token but root carries Vault's built-in ``default`` policy (vault/policy_store.go
defaultPolicy), which is what lets it look itself up (``auth/token/lookup-self``); the
role's own policies decide everything else.
"""

import datetime
import re
import secrets
import uuid

from werkzeug.routing import Rule

try:
    from lab.sim.base import Simulator
except ImportError:  # pragma: no cover
    from base import Simulator  # type: ignore

DEFAULT_MAX_VERSIONS = 10
APPROLE_TOKEN_TTL = 3600
# The part of Vault's built-in "default" policy (vault/policy_store.go) the simulator serves.
DEFAULT_POLICY = [
    {"path": "auth/token/lookup-self", "capabilities": ["read"]},
    {"path": "auth/token/renew-self", "capabilities": ["update"]},
    {"path": "auth/token/revoke-self", "capabilities": ["update"]},
]


def _now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class VaultSim(Simulator):
    name = "vault"

    def __init__(self, options=None):
        super().__init__(options)
        cfg = self.options
        self.root_token = cfg.get("root_token") or "root"
        self.policies = {"root": [{"path": "*", "capabilities": ["sudo"]}], "default": DEFAULT_POLICY}
        self.policies.update(cfg.get("policies", {}))
        self.tokens = {self.root_token: {"policies": ["root"], "display_name": "root", "meta": None}}
        for tok, info in cfg.get("tokens", {}).items():
            self.tokens[tok] = {"policies": ["default"] + list(info.get("policies", [])),
                                "display_name": "token", "meta": None}
        self.approles = dict(cfg.get("approles", {}))
        self.unseal_key = cfg.get("unseal_key", "lab-unseal-key")
        self.sealed = False
        # mount -> {"config": {...}, "secrets": {path: record}}
        self.mounts = {
            m: {"config": {"max_versions": 0, "cas_required": False}, "secrets": {}}
            for m in cfg.get("mounts", ["secret"])
        }

    def rules(self):
        return [
            Rule("/v1/sys/health", endpoint="health", methods=["GET", "HEAD"]),
            Rule("/v1/sys/seal-status", endpoint="seal_status", methods=["GET"]),
            Rule("/v1/sys/seal", endpoint="seal", methods=["PUT", "POST"]),
            Rule("/v1/sys/unseal", endpoint="unseal", methods=["PUT", "POST"]),
            Rule("/v1/auth/approle/login", endpoint="approle_login", methods=["POST", "PUT"]),
            Rule("/v1/auth/token/lookup-self", endpoint="lookup_self", methods=["GET"]),
            Rule(
                "/v1/<mount>/<any(data,metadata,delete,undelete,destroy,config):op>",
                endpoint="kv",
                defaults={"path": ""},
                methods=["GET", "POST", "PUT", "DELETE", "LIST"],
            ),
            Rule(
                "/v1/<mount>/<any(data,metadata,delete,undelete,destroy):op>/<path:path>",
                endpoint="kv",
                methods=["GET", "POST", "PUT", "DELETE", "LIST"],
            ),
        ]

    # -- error shapes -------------------------------------------------------------------------
    def err(self, status, *messages):
        return self.json({"errors": list(messages)}, status=status)

    def not_found(self, request):
        route = request.path[len("/v1/") :] if request.path.startswith("/v1/") else request.path
        return self.err(404, f'no handler for route "{route}". route entry not found.')

    def method_not_allowed(self, request):
        return self.err(405, "unsupported operation")

    def handle_error(self, request, exc):
        return self.err(500, f"internal error: {type(exc).__name__}")

    # -- auth ------------------------------------------------------------------------------------
    def _token(self, request):
        tok = request.headers.get("X-Vault-Token")
        if not tok:
            auth = request.headers.get("Authorization", "")
            if auth.startswith("Bearer "):
                tok = auth[7:]
        return tok

    def _allowed(self, request, api_path, capability):
        """None when allowed, else the 403 response."""
        info = self.tokens.get(self._token(request) or "")
        if info is None:
            return self.err(403, "permission denied")
        for pol in info["policies"]:
            if pol == "root":
                return None
            for rule in _best_rules(self.policies.get(pol, []), api_path):
                caps = rule.get("capabilities", [])
                if "deny" in caps:
                    return self.err(403, "permission denied")
                if capability in caps:
                    return None
        return self.err(403, "permission denied")

    # -- sys ---------------------------------------------------------------------------------------
    def on_health(self, request):
        body = {
            "initialized": True,
            "sealed": self.sealed,
            "standby": False,
            "performance_standby": False,
            "server_time_utc": int(datetime.datetime.now().timestamp()),
            "version": "1.21.0",
            "cluster_name": "vault-lab",
        }
        return self.json(body, status=503 if self.sealed else 200)

    def on_seal_status(self, request):
        return self.json({"type": "shamir", "initialized": True, "sealed": self.sealed, "t": 1, "n": 1})

    def on_seal(self, request):
        denied = self._allowed(request, "sys/seal", "sudo")
        if denied:
            return denied
        self.sealed = True
        return self.json(None, status=204)

    def on_unseal(self, request):
        body = request.get_json(silent=True) or {}
        if body.get("key") != self.unseal_key:
            return self.err(400, "invalid key")
        self.sealed = False
        return self.on_seal_status(request)

    def _sealed(self):
        return self.err(503, "Vault is sealed") if self.sealed else None

    def fault_seal(self, fault):
        """Fault action ``seal``: Vault seals itself (as ``sys/seal`` would) when the fault
        hits; the request that triggered it is answered by the sealed Vault."""
        self.sealed = True

    def on_approle_login(self, request):
        # builtin/credential/approle/path_login.go pathLoginUpdate (bind_secret_id on, as
        # roles are by default): role_id, then the role, then secret_id
        if self.sealed:
            return self._sealed()
        body = request.get_json(silent=True) or {}
        role_id = str(body.get("role_id") or "").strip()
        if not role_id:
            return self.err(400, "missing role_id")
        role = self.approles.get(role_id)
        if role is None:
            return self.err(400, "invalid role or secret ID")
        secret_id = str(body.get("secret_id") or "").strip()
        if not secret_id:
            return self.err(400, "missing secret_id")
        if not secrets.compare_digest(secret_id, str(role.get("secret_id") or "")):
            return self.err(400, "invalid role or secret ID")
        token = "hvs." + secrets.token_urlsafe(24)
        policies = ["default"] + sorted(set(role.get("policies", [])) - {"default"})
        meta = {"role_name": role.get("role_name") or "default"}
        self.tokens[token] = {"policies": policies, "display_name": "approle", "meta": meta}
        return self.json(
            {
                "request_id": str(uuid.uuid4()), "lease_id": "", "renewable": False, "lease_duration": 0,
                "data": None, "wrap_info": None, "warnings": None,
                "auth": {
                    "client_token": token,
                    "accessor": secrets.token_hex(12),
                    "policies": policies,
                    "token_policies": policies,
                    "metadata": meta,
                    "lease_duration": APPROLE_TOKEN_TTL,
                    "renewable": True,
                    "entity_id": str(uuid.uuid5(uuid.NAMESPACE_URL, "approle:" + role_id)),
                    "token_type": "service",
                    "orphan": True,
                },
            }
        )

    def on_lookup_self(self, request):
        if self.sealed:
            return self._sealed()
        denied = self._allowed(request, "auth/token/lookup-self", "read")  # the "default" policy
        if denied:
            return denied
        info = self.tokens[self._token(request)]
        return self.json({"request_id": str(uuid.uuid4()), "data": {
            "policies": info["policies"], "display_name": info["display_name"], "meta": info["meta"],
            "orphan": True, "renewable": info["display_name"] != "root",
            "ttl": 0 if info["display_name"] == "root" else APPROLE_TOKEN_TTL,
            "type": "service"}})

    # -- KV v2 ------------------------------------------------------------------------------------
    def on_kv(self, request, mount, op, path):
        if self.sealed:
            return self._sealed()
        method = request.method
        if method == "GET" and request.args.get("list") in ("true", "1"):
            method = "LIST"
        if mount not in self.mounts:
            denied = self._allowed(request, f"{mount}/{op}/{path}", "read")
            return denied or self.not_found(request)
        kv = self.mounts[mount]
        # a LIST of the mount's root is "secret/metadata/" to Vault's policy check
        api_path = f"{mount}/{op}/{path}" if path or request.path.endswith("/") else f"{mount}/{op}"
        handler = {
            ("data", "GET"): ("read", self._read),
            ("data", "POST"): (None, self._write),
            ("data", "PUT"): (None, self._write),
            ("data", "DELETE"): ("delete", self._delete_latest),
            ("delete", "POST"): ("update", self._delete_versions),
            ("delete", "PUT"): ("update", self._delete_versions),
            ("undelete", "POST"): ("update", self._undelete),
            ("undelete", "PUT"): ("update", self._undelete),
            ("destroy", "POST"): ("update", self._destroy),
            ("destroy", "PUT"): ("update", self._destroy),
            ("metadata", "GET"): ("read", self._read_metadata),
            ("metadata", "LIST"): ("list", self._list),
            ("metadata", "POST"): ("update", self._write_metadata),
            ("metadata", "PUT"): ("update", self._write_metadata),
            ("metadata", "DELETE"): ("delete", self._delete_metadata),
            ("config", "GET"): ("read", self._read_config),
            ("config", "POST"): ("update", self._write_config),
            ("config", "PUT"): ("update", self._write_config),
        }.get((op, method))
        if handler is None:
            return self.method_not_allowed(request)
        capability, func = handler
        if capability is None:  # create vs update depends on existence
            capability = "update" if path in kv["secrets"] else "create"
        denied = self._allowed(request, api_path, capability)
        if denied:
            return denied
        if op != "config" and op != "metadata" and not path:
            return self.not_found(request)
        return func(request, kv, path)

    def _secret(self, kv, path):
        return kv["secrets"].get(path)

    def _max_versions(self, kv, rec):
        return rec["max_versions"] or kv["config"]["max_versions"] or DEFAULT_MAX_VERSIONS

    def _read(self, request, kv, path):
        rec = self._secret(kv, path)
        if rec is None or not rec["versions"]:
            return self.err(404)
        try:
            version = int(request.args.get("version", "0") or 0)
        except ValueError:
            return self.err(400, "version must be an integer")
        version = version or rec["current_version"]
        ver = rec["versions"].get(version)
        if ver is None:
            return self.err(404)
        meta = _version_meta(rec, version)
        body = {"request_id": str(uuid.uuid4()), "lease_id": "", "renewable": False,
                "lease_duration": 0, "wrap_info": None, "warnings": None, "auth": None,
                "data": {"data": None, "metadata": meta}}
        if ver["deletion_time"] or ver["destroyed"]:
            return self.json(body, status=404)
        body["data"]["data"] = ver["data"]
        return self.json(body)

    def _write(self, request, kv, path):
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            return self.err(400, "error parsing JSON")
        data = body.get("data")
        if data is None:
            return self.err(400, "no data provided")
        if not isinstance(data, dict):
            return self.err(400, "data must be a JSON object")
        options = body.get("options") or {}
        rec = kv["secrets"].get(path)
        current = rec["current_version"] if rec else 0
        cas_required = kv["config"]["cas_required"] or (rec and rec["cas_required"])
        if "cas" in options:
            try:
                cas = int(options["cas"])
            except (TypeError, ValueError):
                return self.err(400, "cas must be an integer")
            if cas != current:
                return self.err(400, "check-and-set parameter did not match the current version")
        elif cas_required:
            return self.err(400, "check-and-set parameter required for this call")
        if rec is None:
            rec = {"versions": {}, "current_version": 0, "oldest_version": 0,
                   "max_versions": 0, "cas_required": False, "created_time": _now(),
                   "updated_time": _now(), "custom_metadata": None}
            kv["secrets"][path] = rec
        version = current + 1
        rec["versions"][version] = {"data": data, "created_time": _now(), "deletion_time": "",
                                    "destroyed": False}
        rec["current_version"] = version
        rec["updated_time"] = _now()
        keep = self._max_versions(kv, rec)
        for old in sorted(rec["versions"]):
            if len(rec["versions"]) <= keep:
                break
            del rec["versions"][old]
        rec["oldest_version"] = min(rec["versions"])
        self.changed()
        return self.json({"request_id": str(uuid.uuid4()), "data": _version_meta(rec, version)})

    def _delete_latest(self, request, kv, path):
        rec = self._secret(kv, path)
        if rec and rec["current_version"] in rec["versions"]:
            ver = rec["versions"][rec["current_version"]]
            if not ver["deletion_time"]:
                ver["deletion_time"] = _now()
        self.changed()
        return self.json(None, status=204)

    def _versions_arg(self, request):
        body = request.get_json(silent=True) or {}
        versions = body.get("versions")
        if not isinstance(versions, list) or not versions:
            return None, self.err(400, "no version number provided")
        try:
            return [int(v) for v in versions], None
        except (TypeError, ValueError):
            return None, self.err(400, "version numbers must be integers")

    def _delete_versions(self, request, kv, path):
        return self._mark(request, kv, path, lambda v: v.__setitem__("deletion_time", v["deletion_time"] or _now()))

    def _undelete(self, request, kv, path):
        return self._mark(
            request, kv, path, lambda v: v.__setitem__("deletion_time", "") if not v["destroyed"] else None
        )

    def _destroy(self, request, kv, path):
        def destroy(ver):
            ver["destroyed"] = True
            ver["data"] = None
        return self._mark(request, kv, path, destroy)

    def _mark(self, request, kv, path, func):
        versions, error = self._versions_arg(request)
        if error:
            return error
        rec = self._secret(kv, path)
        for num in versions:
            if rec and num in rec["versions"]:
                func(rec["versions"][num])
        self.changed()
        return self.json(None, status=204)

    def _read_metadata(self, request, kv, path):
        if not path:
            return self.err(404)
        rec = self._secret(kv, path)
        if rec is None:
            return self.err(404)
        return self.json({"request_id": str(uuid.uuid4()), "data": _metadata(rec)})

    def _list(self, request, kv, path):
        prefix = path.rstrip("/") + "/" if path else ""
        keys = set()
        for name, rec in kv["secrets"].items():
            if not name.startswith(prefix) or not rec["versions"]:
                continue
            rest = name[len(prefix) :]
            keys.add(rest.split("/", 1)[0] + "/" if "/" in rest else rest)
        if not keys:
            return self.err(404)
        return self.json({"request_id": str(uuid.uuid4()), "data": {"keys": sorted(keys)}})

    def _write_metadata(self, request, kv, path):
        body = request.get_json(silent=True) or {}
        rec = kv["secrets"].get(path)
        if rec is None:
            rec = {"versions": {}, "current_version": 0, "oldest_version": 0, "max_versions": 0,
                   "cas_required": False, "created_time": _now(), "updated_time": _now(),
                   "custom_metadata": None}
            kv["secrets"][path] = rec
        if "max_versions" in body:
            rec["max_versions"] = int(body["max_versions"])
        if "cas_required" in body:
            rec["cas_required"] = bool(body["cas_required"])
        if "custom_metadata" in body:
            rec["custom_metadata"] = body["custom_metadata"]
        self.changed()
        return self.json(None, status=204)

    def _delete_metadata(self, request, kv, path):
        kv["secrets"].pop(path, None)
        self.changed()
        return self.json(None, status=204)

    def _read_config(self, request, kv, path):
        cfg = dict(kv["config"])
        cfg["delete_version_after"] = "0s"
        return self.json({"data": cfg})

    def _write_config(self, request, kv, path):
        body = request.get_json(silent=True) or {}
        for key in ("max_versions", "cas_required"):
            if key in body:
                kv["config"][key] = body[key]
        return self.json(None, status=204)

    def snapshot(self):
        return {
            "sealed": self.sealed,
            "mounts": {
                m: {p: {"current_version": r["current_version"], "versions": sorted(r["versions"])}
                    for p, r in kv["secrets"].items()}
                for m, kv in self.mounts.items()
            },
        }


def _version_meta(rec, version):
    ver = rec["versions"][version]
    return {"created_time": ver["created_time"], "custom_metadata": rec["custom_metadata"],
            "deletion_time": ver["deletion_time"], "destroyed": ver["destroyed"],
            "version": version}


def _metadata(rec):
    return {
        "cas_required": rec["cas_required"],
        "created_time": rec["created_time"],
        "current_version": rec["current_version"],
        "custom_metadata": rec["custom_metadata"],
        "delete_version_after": "0s",
        "max_versions": rec["max_versions"],
        "oldest_version": rec["oldest_version"],
        "updated_time": rec["updated_time"],
        "versions": {
            str(num): {"created_time": v["created_time"], "deletion_time": v["deletion_time"],
                       "destroyed": v["destroyed"]}
            for num, v in sorted(rec["versions"].items())
        },
    }


def _best_rules(rules, api_path):
    """
    Rules matching ``api_path``, most specific first (Vault: exact beats glob, longer
    prefix beats shorter; ``+`` matches one segment, a trailing ``*`` any suffix).
    """
    matched = []
    for rule in rules:
        pattern = rule["path"]
        glob = pattern.endswith("*")
        body = pattern[:-1] if glob else pattern
        regex = "^" + "/".join(
            "[^/]+" if seg == "+" else re.escape(seg) for seg in body.split("/")
        ) + (".*" if glob else "") + "$"
        if re.match(regex, api_path):
            matched.append((0 if "*" not in pattern and "+" not in pattern else 1,
                            -len(pattern), rule))
    matched.sort(key=lambda item: (item[0], item[1]))
    return [rule for _, _, rule in matched[:1]]
