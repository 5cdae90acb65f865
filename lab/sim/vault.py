"""
Vault simulator: token auth with Vault's ACL evaluation, token lifetimes (TTL, renew-self,
revoke-self), KV v2 (versions, CAS, metadata, soft delete, undelete, destroy, list),
sys/health, seal/unseal, ACL policies (``sys/policies/acl``), the UI mounts probe, AppRole
login, with Vault's ``{"errors": [...]}`` bodies.

Behaviour follows hashicorp/vault-plugin-secrets-kv (path_data.go, path_metadata.go,
path_delete.go, path_destroy.go) and OpenBao's core (internal/vault/policy/acl.go NewACL and
AllowOperation, internal/http/logical.go) - see shared/api-notes/hashicorp.md:

- all of a token's policies are merged into one set of exact, prefix (``path/*``) and
  segment-wildcard (``+``) rules - capabilities add up, ``deny`` wins - and the single most
  specific rule decides (an exact path, else the longest prefix and the ``+`` rules ordered as
  CheckAllowedFromNonExactPaths does); a LIST is checked on the path with a trailing slash;
- a token expires at its TTL (then every request is ``403 permission denied``); renew-self
  extends it up to the role's max TTL.

Config (``--config`` JSON)::

    {"root_token": "...",
     "mounts": ["secret"],
     "policies": {"reader": [{"path": "secret/data/app/*", "capabilities": ["read"]}]},
     "tokens": {"<token>": {"policies": ["reader"]}},
     "approles": {"<role_id>": {"role_name": "app", "secret_id": "...", "policies": ["reader"],
                                "token_ttl": 3600, "token_max_ttl": 0}},
     "unseal_key": "..."}

AppRole login (``POST /v1/auth/approle/login``) as builtin/credential/approle/path_login.go
pathLoginUpdate answers it: ``missing role_id`` / ``missing secret_id`` / ``invalid role or
secret ID`` (400), else a service token with the role's policies plus ``default``, valid for
the role's ``token_ttl`` (seconds; default 3600). Every token but root carries Vault's built-in
``default`` policy (vault/policy_store.go defaultPolicy), which is what lets it look itself
up, renew and revoke itself; the role's own policies decide everything else.
"""

import datetime
import json
import re
import secrets
import time
import uuid

import hcl2
from werkzeug.routing import Rule
from werkzeug.wrappers import Response

try:
    from lab.sim.base import Simulator
except ImportError:  # pragma: no cover
    from base import Simulator  # type: ignore

DEFAULT_MAX_VERSIONS = 10
APPROLE_TOKEN_TTL = 3600
SYSTEM_MAX_TTL = 32 * 24 * 3600  # Vault's default max_lease_ttl (768h)
# The part of Vault's built-in "default" policy (vault/policy_store.go) the simulator serves.
DEFAULT_POLICY = [
    {"path": "auth/token/lookup-self", "capabilities": ["read"]},
    {"path": "auth/token/renew-self", "capabilities": ["update"]},
    {"path": "auth/token/revoke-self", "capabilities": ["update"]},
    {"path": "sys/capabilities-self", "capabilities": ["update"]},
    {"path": "sys/internal/ui/mounts", "capabilities": ["read"]},
]
CAPABILITIES = ("create", "read", "update", "delete", "list", "patch", "sudo", "deny")


def _now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class VaultSim(Simulator):
    name = "vault"

    def __init__(self, options=None):
        super().__init__(options)
        cfg = self.options
        self.root_token = cfg.get("root_token") or "root"
        self.policies = {"default": DEFAULT_POLICY}
        self.policies.update(cfg.get("policies", {}))
        self.policy_text = {name: policy_hcl(rules) for name, rules in self.policies.items()}
        self.tokens = {}
        self._issue(self.root_token, ["root"], "root", None, ttl=0, path="auth/token/root")
        for tok, info in cfg.get("tokens", {}).items():
            self._issue(tok, ["default"] + list(info.get("policies", [])), "token", None,
                        ttl=int(info.get("ttl") or 0), path="auth/token/create")
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
            Rule("/v1/sys/policies/acl", endpoint="policies", methods=["GET", "LIST"]),
            Rule("/v1/sys/policies/acl/<name>", endpoint="policy", methods=["GET", "PUT", "POST", "DELETE"]),
            Rule("/v1/sys/internal/ui/mounts/<path:path>", endpoint="ui_mount", methods=["GET"]),
            Rule("/v1/auth/approle/login", endpoint="approle_login", methods=["POST", "PUT"]),
            Rule("/v1/auth/token/create", endpoint="token_create", methods=["POST", "PUT"]),
            Rule("/v1/auth/token/lookup-self", endpoint="lookup_self", methods=["GET"]),
            Rule("/v1/auth/token/renew-self", endpoint="renew_self", methods=["POST", "PUT"]),
            Rule("/v1/auth/token/revoke-self", endpoint="revoke_self", methods=["POST", "PUT"]),
            Rule(
                "/v1/<mount>/<any(data,metadata,delete,undelete,destroy,config):op>",
                endpoint="kv",
                defaults={"path": ""},
                methods=["GET", "POST", "PUT", "DELETE", "LIST", "PATCH"],
            ),
            Rule(
                "/v1/<mount>/<any(data,metadata,delete,undelete,destroy):op>/<path:path>",
                endpoint="kv",
                methods=["GET", "POST", "PUT", "DELETE", "LIST", "PATCH"],
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

    # -- tokens and ACLs ---------------------------------------------------------------------------
    def _issue(self, token, policies, display_name, meta, ttl, path, max_ttl=0):
        now = time.time()
        self.tokens[token] = {
            "policies": policies, "display_name": display_name, "meta": meta, "path": path,
            "accessor": secrets.token_hex(12), "issue_time": now, "creation_ttl": ttl,
            "expires": now + ttl if ttl else None,
            "max_expires": now + (max_ttl or SYSTEM_MAX_TTL) if ttl else None,
        }
        return self.tokens[token]

    def _token(self, request):
        tok = request.headers.get("X-Vault-Token")
        if not tok:
            auth = request.headers.get("Authorization", "")
            if auth.startswith("Bearer "):
                tok = auth[7:]
        return tok

    def _token_info(self, request):
        """The request's live token, or None (unknown, revoked or past its TTL: the
        expiration manager revokes a token when its TTL runs out)."""
        secret = self._token(request) or ""
        info = self.tokens.get(secret)
        if info is not None and info["expires"] is not None and time.time() >= info["expires"]:
            del self.tokens[secret]
            return None
        return info

    def _acl(self, info):
        """internal/vault/policy/acl.go NewACL: every policy of the token merged."""
        rules = []
        for name in info["policies"]:
            rules.extend(self.policies.get(name, []))
        return ACL(rules)

    def _allowed(self, request, api_path, capability):
        """None when allowed, else the 403 response (AllowOperation)."""
        info = self._token_info(request)
        if info is None:
            return self.err(403, "permission denied")
        if "root" in info["policies"]:
            return None
        if capability == "list" and not api_path.endswith("/"):
            api_path += "/"  # internal/http/logical.go: a LIST is for the path with a slash
        if self._acl(info).allows(api_path, capability):
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
            "cluster_id": str(uuid.uuid5(uuid.NAMESPACE_URL, "vault-lab")),
            "replication_performance_mode": "disabled",
            "replication_dr_mode": "disabled",
        }
        # vault/http/sys_health.go getSysHealth: ?activecode= / ?sealedcode= set the status
        code = request.args.get("sealedcode" if self.sealed else "activecode")
        try:
            status = int(code) if code else (503 if self.sealed else 200)
        except ValueError:
            return self.err(400, f"unable to parse {'sealedcode' if self.sealed else 'activecode'}")
        return self.json(body, status=status)

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

    def on_policies(self, request):
        """LIST/GET sys/policies/acl."""
        denied = self._sealed() or self._allowed(request, "sys/policies/acl", "list")
        if denied:
            return denied
        return self.json({"data": {"keys": sorted(set(self.policies) | {"root"})}})

    def on_policy(self, request, name):
        """sys/policies/acl/<name> (vault/logical_system.go handlePoliciesSet/Read/Delete)."""
        if self.sealed:
            return self._sealed()
        name = name.lower()
        path = f"sys/policies/acl/{name}"
        if request.method == "GET":
            denied = self._allowed(request, path, "read")
            if denied:
                return denied
            if name == "root":
                return self.json({"data": {"name": "root", "policy": ""}})
            if name not in self.policies:
                return self.err(404)
            return self.json({"data": {"name": name, "policy": self.policy_text.get(name, "")}})
        if request.method == "DELETE":
            denied = self._allowed(request, path, "delete")
            if denied:
                return denied
            if name in ("root", "default"):
                return self.err(400, f'cannot delete "{name}" policy')
            self.policies.pop(name, None)
            self.policy_text.pop(name, None)
            return self.json(None, status=204)
        denied = self._allowed(request, path, "update" if name in self.policies else "create")
        if denied:
            return denied
        if name == "root":
            return self.err(400, "cannot update \"root\" policy")
        body = request.get_json(silent=True) or {}
        text = body.get("policy")
        if not text:
            return self.err(400, "'policy' parameter not supplied or empty")
        try:
            rules = parse_policy(text)
        except ValueError as exc:
            return self.err(400, f"failed to parse policy: {exc}")
        self.policies[name] = rules
        self.policy_text[name] = text
        return self.json(None, status=204)

    def on_ui_mount(self, request, path):
        """
        sys/internal/ui/mounts/<path> (vault/logical_system.go pathInternalUIMountRead): the
        mount a path is on - how clients modelled on saltext-vault tell KV v2 from v1. A token
        with no capability anywhere under the mount is refused (hasMountAccess).
        """
        if self.sealed:
            return self._sealed()
        mount = path.strip("/").split("/", 1)[0]
        info = self._token_info(request)
        if info is None:
            return self.err(403, "permission denied")
        if mount not in self.mounts:  # refused alike, so the path cannot list mounts by brute force
            return self.err(403, "permission denied")
        if "root" not in info["policies"] and not self._acl(info).any_under(f"{mount}/"):
            return self.err(403, "permission denied")
        return self.json({"request_id": str(uuid.uuid4()), "data": {
            "type": "kv", "options": {"version": "2"}, "path": f"{mount}/", "description": "key/value secret storage",
            "local": False, "seal_wrap": False, "external_entropy_access": False, "config": {
                "default_lease_ttl": 0, "max_lease_ttl": 0, "force_no_cache": False}}})

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
        ttl = int(role.get("token_ttl") or APPROLE_TOKEN_TTL)
        info = self._issue(token, policies, "approle", meta, ttl=ttl, path="auth/approle/login",
                           max_ttl=int(role.get("token_max_ttl") or 0))
        info["entity_id"] = str(uuid.uuid5(uuid.NAMESPACE_URL, "approle:" + role_id))
        return self.json({"request_id": str(uuid.uuid4()), "lease_id": "", "renewable": False,
                          "lease_duration": 0, "data": None, "wrap_info": None, "warnings": None,
                          "auth": self._auth_block(token, info)})

    def _auth_block(self, token, info):
        ttl = self._ttl(info)
        return {"client_token": token, "accessor": info["accessor"], "policies": info["policies"],
                "token_policies": info["policies"], "metadata": info["meta"], "lease_duration": ttl,
                "renewable": info["expires"] is not None, "entity_id": info.get("entity_id", ""),
                "token_type": "service", "orphan": True, "mfa_requirement": None, "num_uses": 0}

    @staticmethod
    def _ttl(info):
        return max(0, int(round(info["expires"] - time.time()))) if info["expires"] is not None else 0

    def on_token_create(self, request):
        """
        auth/token/create (vault/token_store.go handleCreateCommon), the part contract tests
        use: a child token with ``policies`` (+ ``default`` unless ``no_default_policy``) and
        ``ttl``. A non-root parent may only hand out policies it has itself.
        """
        if self.sealed:
            return self._sealed()
        denied = self._allowed(request, "auth/token/create", "update")
        if denied:
            return denied
        parent = self._token_info(request)
        body = request.get_json(silent=True) or {}
        policies = sorted(set(body.get("policies") or []))
        if not body.get("no_default_policy"):
            policies = ["default"] + [p for p in policies if p != "default"]
        if "root" not in parent["policies"] and not set(policies) <= set(parent["policies"]):
            return self.err(400, "child policies must be subset of parent")
        try:
            ttl = int(_duration_seconds(body["ttl"])) if body.get("ttl") else APPROLE_TOKEN_TTL
        except ValueError:
            return self.err(400, f"error converting input {body['ttl']} for field \"ttl\"")
        token = "hvs." + secrets.token_urlsafe(24)
        info = self._issue(token, policies, body.get("display_name") or "token", body.get("meta"), ttl=ttl,
                           path="auth/token/create")
        return self.json({"request_id": str(uuid.uuid4()), "lease_id": "", "renewable": False,
                          "lease_duration": 0, "data": None, "wrap_info": None, "warnings": None,
                          "auth": self._auth_block(token, info)})

    def on_lookup_self(self, request):
        """auth/token/lookup-self (vault/token_store.go handleLookup): the token's own data."""
        if self.sealed:
            return self._sealed()
        denied = self._allowed(request, "auth/token/lookup-self", "read")  # the "default" policy
        if denied:
            return denied
        token = self._token(request)
        info = self.tokens[token]
        stamp = lambda t: datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime(  # noqa: E731
            "%Y-%m-%dT%H:%M:%S.%fZ") if t else None
        return self.json({"request_id": str(uuid.uuid4()), "lease_id": "", "renewable": False,
                          "lease_duration": 0, "wrap_info": None, "warnings": None, "auth": None, "data": {
                              "accessor": info["accessor"], "creation_time": int(info["issue_time"]),
                              "creation_ttl": info["creation_ttl"], "display_name": info["display_name"],
                              "entity_id": info.get("entity_id", ""), "expire_time": stamp(info["expires"]),
                              "explicit_max_ttl": 0, "id": token, "issue_time": stamp(info["issue_time"]),
                              "meta": info["meta"], "num_uses": 0, "orphan": True, "path": info["path"],
                              "policies": info["policies"], "renewable": info["expires"] is not None,
                              "ttl": self._ttl(info), "type": "service"}})

    def on_renew_self(self, request):
        """
        auth/token/renew-self (vault/token_store.go handleRenewSelf, then the expiration
        manager's RenewToken): a new TTL of ``increment`` (default: the token's own TTL),
        never past the token's max TTL; a root token is not renewable.
        """
        if self.sealed:
            return self._sealed()
        denied = self._allowed(request, "auth/token/renew-self", "update")
        if denied:
            return denied
        token = self._token(request)
        info = self.tokens[token]
        if info["expires"] is None:
            return self.err(400, "lease is not renewable")
        body = request.get_json(silent=True) or {}
        increment = body.get("increment") or info["creation_ttl"]
        try:
            increment = int(_duration_seconds(increment))
        except ValueError:
            return self.err(400, f'error converting input {increment} for field "increment"')
        info["expires"] = min(time.time() + increment, info["max_expires"])
        return self.json({"request_id": str(uuid.uuid4()), "lease_id": "", "renewable": False,
                          "lease_duration": 0, "data": None, "wrap_info": None, "warnings": None,
                          "auth": self._auth_block(token, info)})

    def on_revoke_self(self, request):
        if self.sealed:
            return self._sealed()
        denied = self._allowed(request, "auth/token/revoke-self", "update")
        if denied:
            return denied
        self.tokens.pop(self._token(request), None)
        return self.json(None, status=204)

    # -- KV v2 ------------------------------------------------------------------------------------
    def on_kv(self, request, mount, op, path):
        if self.sealed:
            return self._sealed()
        method = request.method
        if method == "GET" and request.args.get("list") in ("true", "1"):
            method = "LIST"
        # internal/http/logical.go buildLogicalRequest parses the body before any token or
        # route is looked at: a PATCH needs Content-Type application/merge-patch+json (415),
        # a body that is no JSON is a 400 (whatever its Content-Type)
        problem = self._parse_body(request)
        if problem is not None:
            return problem
        if mount not in self.mounts:
            denied = self._allowed(request, f"{mount}/{op}/{path}", "read")
            return denied or self.not_found(request)
        kv = self.mounts[mount]
        # a LIST is checked on the path with a trailing slash (see _allowed)
        api_path = f"{mount}/{op}/{path}" if path else f"{mount}/{op}"
        handler = {
            ("data", "GET"): ("read", self._read),
            ("data", "POST"): (None, self._write),
            ("data", "PUT"): (None, self._write),
            ("data", "DELETE"): ("delete", self._delete_latest),
            ("data", "PATCH"): ("patch", self._patch),
            ("delete", "POST"): ("update", self._delete_versions),
            ("delete", "PUT"): ("update", self._delete_versions),
            ("undelete", "POST"): ("update", self._undelete),
            ("undelete", "PUT"): ("update", self._undelete),
            ("destroy", "POST"): ("update", self._destroy),
            ("destroy", "PUT"): ("update", self._destroy),
            ("metadata", "GET"): ("read", self._read_metadata),
            ("metadata", "LIST"): ("list", self._list),
            ("metadata", "POST"): (None, self._write_metadata),
            ("metadata", "PUT"): (None, self._write_metadata),
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

    def _parse_body(self, request):
        """The request's JSON body as ``request.vault_body`` (a dict), or the error response."""
        request.vault_body = {}
        if request.method not in ("POST", "PUT", "PATCH"):
            return None
        if request.method == "PATCH":
            mimetype = request.mimetype or ""
            if mimetype != "application/merge-patch+json":
                return self.err(415, "PATCH requires Content-Type of application/merge-patch+json, "
                                     f"provided {mimetype}")
        raw = request.get_data(cache=True)
        if not raw.strip():
            return None
        try:
            body = json.loads(raw)
        except ValueError as exc:
            return self.err(400, f"failed to decode JSON input: {exc}")
        if body is None:
            return None
        if not isinstance(body, dict):
            return self.err(400, "failed to decode JSON input: not a JSON object")
        request.vault_body = body
        return None

    def _secret(self, kv, path):
        return kv["secrets"].get(path)

    def _max_versions(self, kv, rec):
        """path_data.go KeyMetadata.AddVersion: max(the key's, the mount's), else 10."""
        return max(rec["max_versions"], kv["config"]["max_versions"] or 0) or DEFAULT_MAX_VERSIONS

    def _read(self, request, kv, path):
        try:
            version = int(request.args.get("version", "0") or 0)
        except ValueError:
            # sdk/framework/backend.go HandleRequest: fd.Validate() fails, no existence check
            return self.err(400, 'Field validation failed: error converting input for field "version": '
                                 f'cannot parse {request.args.get("version")!r} as int')
        rec = self._secret(kv, path)
        if rec is None or not rec["versions"]:
            return self.err(404)
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
        body = request.vault_body
        data, problem = self._data_field(body)
        if problem:
            return problem
        rec = kv["secrets"].get(path)
        problem = self._check_and_set(body, kv, rec)
        if problem:
            return problem
        if rec is None:
            rec = {"versions": {}, "current_version": 0, "oldest_version": 0,
                   "max_versions": 0, "cas_required": False, "created_time": _now(),
                   "updated_time": _now(), "custom_metadata": None}
            kv["secrets"][path] = rec
        return self._add_version(kv, rec, data)

    def _data_field(self, body):
        """``(data, None)``, or ``(None, the 400)`` for a missing or non-map ``data``."""
        data = body.get("data")
        if data is None:
            return None, self.err(400, "no data provided")
        if not isinstance(data, dict):  # framework.TypeMap, validated in the existence check
            return None, self.err(400, f'error converting input for field "data": {data!r} is not a map')
        return data, None

    def _check_and_set(self, body, kv, rec):
        """path_data.go validateCheckAndSetOption: None, or the 400."""
        options = body.get("options") or {}
        current = rec["current_version"] if rec else 0
        cas_required = kv["config"]["cas_required"] or (rec and rec["cas_required"])
        if isinstance(options, dict) and "cas" in options:
            try:  # mapstructure.WeakDecode
                cas = int(options["cas"])
            except (TypeError, ValueError):
                return self.err(400, "error parsing check-and-set parameter")
            if cas != current:
                return self.err(400, "check-and-set parameter did not match the current version")
        elif cas_required:
            return self.err(400, "check-and-set parameter required for this call")
        return None

    def _patch(self, request, kv, path):
        """
        path_data.go pathDataPatch: ``data`` required; a missing secret is a 404 with no body;
        check-and-set as for a write; a deleted or destroyed current version is a 404 whose
        ``data`` is that version's metadata; else the data merged (RFC 7386, as
        framework.HandlePatchOperation) into a new version.
        """
        body = request.vault_body
        data, problem = self._data_field(body)
        if problem:
            return problem
        rec = self._secret(kv, path)
        if rec is None:
            return Response(status=404, mimetype="application/json")
        problem = self._check_and_set(body, kv, rec)
        if problem:
            return problem
        current = rec["versions"].get(rec["current_version"])
        if current is None:
            return Response(status=404, mimetype="application/json")
        if current["deletion_time"] or current["destroyed"]:
            return self.json({"request_id": str(uuid.uuid4()), "lease_id": "", "renewable": False,
                              "lease_duration": 0, "data": _version_meta(rec, rec["current_version"]),
                              "wrap_info": None, "warnings": None, "auth": None}, status=404)
        return self._add_version(kv, rec, _merge_patch(current["data"], data))

    def _add_version(self, kv, rec, data):
        version = rec["current_version"] + 1
        rec["versions"][version] = {"data": data, "created_time": _now(), "deletion_time": "",
                                    "destroyed": False}
        rec["current_version"] = version
        rec["updated_time"] = _now()
        # KeyMetadata.AddVersion: oldest_version stays 0 until versions are trimmed
        keep = self._max_versions(kv, rec)
        if version - rec["oldest_version"] >= keep:
            drop = version - keep
            for old in range(rec["oldest_version"], drop + 1):
                rec["versions"].pop(old, None)
            rec["oldest_version"] = drop + 1
        self.changed()
        return self.json({"request_id": str(uuid.uuid4()), "data": _version_meta(rec, version)})

    def _delete_latest(self, request, kv, path):
        rec = self._secret(kv, path)
        if rec and rec["current_version"] in rec["versions"]:
            ver = rec["versions"][rec["current_version"]]
            if not ver["deletion_time"] and not ver["destroyed"]:  # pathDataDelete: a destroyed one stays
                ver["deletion_time"] = _now()
        self.changed()
        return self.json(None, status=204)

    def _versions_arg(self, request, missing="No version number provided"):
        # path_delete.go (delete, undelete): "No version number provided"; path_destroy.go:
        # "no version number provided"
        body = request.vault_body
        versions = body.get("versions")
        if not isinstance(versions, list) or not versions:
            return None, self.err(400, missing)
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
        return self._mark(request, kv, path, destroy, missing="no version number provided")

    def _mark(self, request, kv, path, func, missing="No version number provided"):
        versions, error = self._versions_arg(request, missing)
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
        # path_metadata.go pathMetadataList lists every key in storage: metadata-only keys and
        # keys whose versions are all deleted or destroyed too
        for name in kv["secrets"]:
            if not name.startswith(prefix):
                continue
            rest = name[len(prefix) :]
            keys.add(rest.split("/", 1)[0] + "/" if "/" in rest else rest)
        if not keys:
            return self.err(404)
        return self.json({"request_id": str(uuid.uuid4()), "data": {"keys": sorted(keys)}})

    def _write_metadata(self, request, kv, path):
        body = request.vault_body
        fields = ("max_versions", "cas_required", "delete_version_after", "custom_metadata")
        if not any(key in body for key in fields):
            # path_metadata.go pathMetadataWrite's fast path: nothing to set, nothing created
            return self.json(None, status=204)
        parsed = {}
        for key, parse in (("max_versions", _type_int), ("cas_required", _type_bool)):
            if key in body:
                try:  # framework.TypeInt / TypeBool (path_metadata.go pathMetadataWrite)
                    parsed[key] = parse(body[key])
                except ValueError:  # sdk/framework/backend.go: fd.Validate() in the existence check
                    return self.err(400, f'error converting input for field "{key}": invalid value {body[key]!r}')
        if "custom_metadata" in body:
            problem = _custom_metadata_problem(body["custom_metadata"])
            if problem:
                return self.err(400, problem)
        rec = kv["secrets"].get(path)
        if rec is None:
            rec = {"versions": {}, "current_version": 0, "oldest_version": 0, "max_versions": 0,
                   "cas_required": False, "created_time": _now(), "updated_time": _now(),
                   "custom_metadata": None}
            kv["secrets"][path] = rec
        rec.update(parsed)
        if "custom_metadata" in body:
            rec["custom_metadata"] = body["custom_metadata"]
        self.changed()
        if "cas_required" in parsed and kv["config"]["cas_required"] and not parsed["cas_required"]:
            # pathMetadataWrite: stored, with a warning; the mount's setting still applies
            return self.json({"request_id": str(uuid.uuid4()), "lease_id": "", "renewable": False,
                              "lease_duration": 0, "data": None, "wrap_info": None, "auth": None,
                              "warnings": ['"cas_required" set to false, but is mandated by backend config. '
                                           "This value will be ignored."]})
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
        """path_config.go pathConfigWrite: max_versions a framework.TypeInt, cas_required a
        framework.TypeBool (so ``"false"`` is false), refused with a 400 when they do not parse."""
        body = request.vault_body
        parsed = {}
        for key, parse in (("max_versions", _type_int), ("cas_required", _type_bool)):
            if key in body:
                try:
                    parsed[key] = parse(body[key])
                except ValueError:  # sdk/framework/backend.go HandleRequest: fd.Validate()
                    return self.err(400, 'Field validation failed: error converting input for field '
                                         f'"{key}": invalid value {body[key]!r}')
        kv["config"].update(parsed)
        self.changed()
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


def _type_bool(value):
    """framework.TypeBool (parseutil.ParseBool): a bool, a number, or strconv.ParseBool's words."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return value != 0
    text = str(value)
    if text in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if text in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise ValueError(text)


def _type_int(value):
    """framework.TypeInt (a number or a string of digits)."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, float) and value != int(value):
        raise ValueError(value)
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ValueError(value) from None


def _merge_patch(target, patch):
    """RFC 7386 JSON merge patch (framework.HandlePatchOperation): null removes a key."""
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            result[key] = _merge_patch(result.get(key), value)
        else:
            result[key] = value
    return result


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


class ACL:
    """
    internal/vault/policy/acl.go (OpenBao; the same in Vault's vault/acl.go): every rule of a
    token's policies in one of three sets - exact paths, prefixes (``path/*``, the ``*``
    stripped) and segment-wildcard paths (with ``+``; a trailing ``*`` kept) - capabilities
    OR'd per path, ``deny`` replacing everything (NewACL). AllowOperation: the exact rule,
    for a LIST also the exact rule without the trailing slash, else the most specific
    non-exact rule (CheckAllowedFromNonExactPaths), for a LIST retried without the slash.
    """

    def __init__(self, rules):
        self.exact, self.prefix, self.segment = {}, {}, {}
        for rule in rules:
            path = rule["path"].lstrip("/")
            caps = set(rule.get("capabilities") or [])
            if path == "+" or "/+" in path or path.startswith("+/"):
                table = self.segment
            elif path.endswith("*"):
                table, path = self.prefix, path[:-1]
            else:
                table = self.exact
            have = table.get(path)
            if have is None:
                table[path] = {"deny"} if "deny" in caps else set(caps)
            elif "deny" in have:
                continue
            elif "deny" in caps:
                table[path] = {"deny"}
            else:
                have.update(caps)

    def capabilities(self, path, listing=False):
        found = self.exact.get(path)
        if found is None and listing:
            found = self.exact.get(path[:-1] if path.endswith("/") else path)
        if found is None:
            found = self._non_exact(path)
        if found is None and listing and path.endswith("/"):
            found = self._non_exact(path[:-1])
        return found

    def allows(self, path, capability):
        caps = self.capabilities(path, listing=capability == "list")
        return bool(caps) and "deny" not in caps and capability in caps

    def any_under(self, prefix):
        """Some capability on some path below ``prefix`` (hasMountAccess, roughly)."""
        return any(p.startswith(prefix) and c and "deny" not in c
                   for table in (self.exact, self.prefix, self.segment) for p, c in table.items())

    def _non_exact(self, path):
        candidates = []
        prefixes = [p for p in self.prefix if path.startswith(p)]
        if prefixes:
            longest = max(prefixes, key=len)
            if not self.segment:
                return self.prefix[longest]
            # (firstWCOrGlob, isPrefix, wildcards, len, path)
            candidates.append(((len(longest), True, 0, len(longest), longest), self.prefix[longest]))
        parts = path.split("/")
        for full, caps in self.segment.items():
            wc_path, is_prefix = (full[:-1], True) if full.endswith("*") else (full, False)
            acl_parts = wc_path.split("/")
            if len(parts) < len(acl_parts) or (not is_prefix and len(acl_parts) != len(parts)):
                continue
            wildcards = 0
            for i, part in enumerate(acl_parts):
                if part == "+":
                    wildcards += 1
                elif part == parts[i] or is_prefix and i == len(acl_parts) - 1 and parts[i].startswith(part):
                    continue
                else:
                    break
            else:
                candidates.append(((full.index("+"), is_prefix, wildcards, len(wc_path), wc_path), caps))
        if not candidates:
            return None

        def rank(key):
            # ``less`` of CheckAllowedFromNonExactPaths; the last after sorting wins: a later
            # first wildcard, a non-prefix, fewer "+", a longer path
            first, is_prefix, wildcards, length, text = key
            return (first, not is_prefix, -wildcards, length, text)
        return max(candidates, key=lambda c: rank(c[0]))[1]


def _custom_metadata_problem(custom):
    """path_metadata.go validateCustomMetadata (go-multierror's text), or None."""
    prefix = "custom_metadata validation failed"
    if custom is None:
        return None
    if not isinstance(custom, dict) or not all(isinstance(v, str) for v in custom.values()):
        return f"{prefix}: expected a map of string keys and values"
    if len(custom) > 64:
        errs = [f"{prefix}: payload must contain at most 64 keys, provided {len(custom)}"]
    else:
        errs = []
        for key, value in custom.items():
            if not 0 < len(key) <= 128:
                errs.append(f"{prefix}: length of key {json.dumps(key)} is {len(key)} but must be 0 < len(key) <= 128")
            if not 0 < len(value) <= 512:
                errs.append(f"{prefix}: length of value for key {json.dumps(key)} is {len(value)} but must be "
                            "0 < len(value) <= 512")
            if not key.isprintable():
                errs.append(f"{prefix}: key {json.dumps(key)} ({key}) contains unprintable characters")
            if not value.isprintable():
                errs.append(f"{prefix}: value for key {json.dumps(key)} contains unprintable characters")
    if not errs:
        return None
    head = "1 error occurred:" if len(errs) == 1 else f"{len(errs)} errors occurred:"
    return head + "\n" + "".join(f"\t* {e}\n" for e in errs) + "\n"


def _uq(value):
    """python-hcl2 keeps string literals quoted."""
    return json.loads(value) if isinstance(value, str) and value.startswith('"') else value


def parse_policy(text):
    """A policy document (``path "x" { capabilities = [...] }``) -> the simulator's rules."""
    try:
        raw = hcl2.loads(text)
    except Exception as exc:  # pylint: disable=broad-except  # lark/hcl2 errors
        raise ValueError(str(exc)) from None
    rules = []
    for block in raw.get("path") or []:
        for path, body in block.items():
            caps = [_uq(c) for c in body.get("capabilities") or []]
            unknown = [c for c in caps if c not in CAPABILITIES]
            if unknown:
                raise ValueError(f'path "{_uq(path)}": invalid capability "{unknown[0]}"')
            rules.append({"path": _uq(path), "capabilities": caps})
    return rules


def policy_hcl(rules):
    """The simulator's rules as a policy document (what ``sys/policies/acl/<name>`` returns)."""
    return "".join(f'path "{r["path"]}" {{\n  capabilities = {json.dumps(list(r.get("capabilities") or []))}\n}}\n'
                   for r in rules)


def _duration_seconds(value):
    """A TTL as Vault's framework reads it: seconds, or a Go duration ("1h", "90s")."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    text = str(value).strip()
    if re.fullmatch(r"\d+", text):
        return float(text)
    total, pos = 0.0, 0
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    for match in re.finditer(r"(\d+(?:\.\d+)?)(ms|h|m|s)", text):
        if match.start() != pos:
            raise ValueError(text)
        total += float(match.group(1)) * units[match.group(2)]
        pos = match.end()
    if not text or pos != len(text):
        raise ValueError(text)
    return total
