"""
Authentik simulator: the REST API v3 objects hecate manages, for one Authentik release.

What it reproduces (see shared/api-notes/authentik-caddy.md and the vendor schemas):

- ``Authorization: Bearer <token>``; a bad token is **403** ``{"detail": "Token
  invalid/expired"}``, no header 403 "Authentication credentials were not provided.", a
  token without permissions 403 "You do not have permission to perform this action.";
- every request body validated against the vendor OpenAPI schema of the simulated
  release (``lab/sim/authentik_schemas/<release>.json``, extracted unchanged): required
  fields, types, enums, lengths, patterns, formats (uuid, uri, email), nested objects,
  with DRF-shaped 400 bodies (``{"field": ["This field is required."]}``, nested errors,
  ``non_field_errors``). Fields the schema does not know (read-only ones included) are
  silently ignored like the real server, but recorded in the request log
  (``unknown_fields``); with ``strict: true`` they are rejected with a 400 instead.
  Query parameters the schema does not list are recorded (``unknown_params``) likewise;
- DRF semantics: POST 201, PUT/PATCH 200, DELETE 204; 404 ``{"detail": "No <Model>
  matches the given query."}``; 405 ``{"detail": "Method \\"X\\" not allowed."}``;
  references checked (``Invalid pk "<x>" - object does not exist.``); uniqueness where
  Authentik enforces it (group name per parent before 2025.12 and globally from 2025.12,
  provider/mapping/stage names, application and flow slugs, usernames, outpost names);
  a policy binding needs exactly one of policy/group/user (``non_field_errors``);
- DRF partial updates (``PATCH`` is ``partial=True``): only the SENT fields are
  validated, and each serializer's ``validate(attrs)`` sees only them, never the stored
  object merged in; the ``validate()`` of every serializer hecate's writes reach is
  reproduced: identification stage (user fields or sources), policy binding (``target``
  and one of policy/user/group; a PATCH without ``target`` crashes the real server: 500),
  proxy provider (``internal_host`` unless ``mode`` is sent and not proxy), brand (one
  default), user (``path`` and ``type`` field validators; internal service accounts are
  read-only); ``unique_together`` checks fill unsent fields from the object, as DRF does;
- page-number pagination (``pagination.next`` is a page number, 0 at the end; "Invalid
  page." 404 past the end) with the release's page size: default 100 without a cap up
  to 2025.10, default 20 and at most 100 from 2025.12;
- OAuth2 providers get a generated 40-character client id and 128-character secret
  (returned in clear on GET, as Authentik does); groups carry ``parent`` before 2025.12
  and ``parents`` after; deletes cascade like the models (bindings of a deleted group or
  application, stage bindings of a deleted flow);
- a fresh install: the default flows, stages and flow bindings, the managed
  openid/email/profile/offline_access scope mappings, the embedded outpost, the default
  brand, the ``authentik Admins`` group and ``akadmin``.

Config (``--config`` JSON)::

    {"version": "2025.10",                # 2025.6 | 2025.10 | 2026.5
     "token": "<api token>",              # full access (akadmin's API token)
     "tokens": {"<key>": {"permissions": "none" | "read" | "all"}},
     "strict": false}
"""

import copy
import datetime
import json
import os
import re
import secrets
import string
import uuid

from werkzeug.routing import Rule
from werkzeug.wrappers import Response

try:
    from lab.sim.base import Simulator
except ImportError:  # pragma: no cover
    from base import Simulator  # type: ignore

SCHEMA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "authentik_schemas")
RELEASES = ("2025.6", "2025.10", "2026.5")
API = "/api/v3"
ALNUM = string.ascii_letters + string.digits
PAGE_PARAMS = frozenset({"page", "page_size", "ordering", "search"})

TRUE_VALUES = {True, "1", "true", "True", "TRUE", "t", "T", "y", "Y", "yes", "Yes", "on", "On"}
FALSE_VALUES = {False, "0", "false", "False", "FALSE", "f", "F", "n", "N", "no", "No", "off", "Off"}
SLUG_MESSAGE = "Enter a valid “slug” consisting of letters, numbers, underscores or hyphens."
UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$")
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
URL_RE = re.compile(r"^[a-z][a-z0-9.+-]*://[^\s/?#]+[^\s]*$", re.I)


def parse_release(text):
    """'2025.10.4' -> (2025, 10)."""
    parts = str(text).split(".")
    return int(parts[0]), int(parts[1])


def _now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat().replace("+00:00", "Z")


def generate_id(length=40):
    """Authentik's client id: letters and digits (authentik/lib/generators.py)."""
    return "".join(secrets.choice(ALNUM) for _ in range(length))


# ----------------------------------------------------------------------------------------
# Request validation against the OpenAPI schema, with DRF's error shapes and messages
# ----------------------------------------------------------------------------------------
class SchemaValidator:
    """Validate JSON bodies against OpenAPI 3.0 component schemas, the DRF way."""

    def __init__(self, components):
        self.components = components

    def resolve(self, schema):
        """Follow ``$ref`` and single-element ``allOf``; keep sibling keys (nullable...)."""
        seen = 0
        while True:
            seen += 1
            if seen > 20:
                raise ValueError("schema reference loop")
            if "$ref" in schema:
                section, name = schema["$ref"].split("/")[-2:]
                extra = {k: v for k, v in schema.items() if k != "$ref"}
                schema = dict(self.components[section][name], **extra)
                continue
            if "allOf" in schema and len(schema["allOf"]) == 1:
                extra = {k: v for k, v in schema.items() if k != "allOf"}
                base = self.resolve(schema["allOf"][0])
                schema = dict(base, **extra)
                continue
            return schema

    def validate(self, schema, data, partial=False, path=""):
        """``(errors, unknown)``: DRF error dict (empty when valid), unknown field paths."""
        schema = self.resolve(schema)
        unknown = []
        if not isinstance(data, dict):
            return {"non_field_errors": [
                f"Invalid data. Expected a dictionary, but got {_type_name(data)}."]}, unknown
        errors = {}
        props = schema.get("properties", {})
        if not partial:
            for name in schema.get("required", []):
                if name not in data:
                    errors[name] = ["This field is required."]
        for name, value in data.items():
            prop = props.get(name)
            if prop is None or self.resolve(prop).get("readOnly"):
                unknown.append(f"{path}{name}")
                continue
            err, unk = self.field(prop, value, f"{path}{name}.")
            unknown.extend(unk)
            if err:
                errors[name] = err
        return errors, unknown

    def field(self, prop, value, path):
        """Errors for one field (a list of messages, or nested dict/list) and unknowns."""
        prop = self.resolve(prop)
        if value is None:
            return ([] if prop.get("nullable") else ["This field may not be null."]), []
        if "enum" in prop:
            if value not in prop["enum"]:
                return [f'"{value}" is not a valid choice.'], []
            return [], []
        kind = prop.get("type")
        if kind == "object" or (kind is None and "properties" in prop):
            if "properties" in prop:
                err, unk = self.validate(prop, value, path=path)
                return err, unk
            if not isinstance(value, dict):
                return [f'Expected a dictionary of items but got type "{_type_name(value)}".'], []
            return [], []
        if kind == "array":
            if not isinstance(value, list):
                return [f'Expected a list of items but got type "{_type_name(value)}".'], []
            item = self.resolve(prop.get("items", {}))
            if item.get("type") == "object" or "properties" in item:
                out, any_err, unknown = [], False, []
                for idx, elem in enumerate(value):
                    err, unk = self.field(item, elem, f"{path}{idx}.")
                    unknown.extend(unk)
                    any_err = any_err or bool(err)
                    out.append(err if isinstance(err, dict) else ({"non_field_errors": err} if err else {}))
                return (out if any_err else []), unknown
            msgs = []
            for elem in value:
                err, _ = self.field(item, elem, path)
                msgs.extend(m for m in err if m not in msgs)
            return msgs, []
        if kind == "integer":
            if isinstance(value, bool) or not (
                isinstance(value, int) or (isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()))
            ):
                return ["A valid integer is required."], []
            num = int(value)
            if "maximum" in prop and num > prop["maximum"]:
                return [f"Ensure this value is less than or equal to {prop['maximum']}."], []
            if "minimum" in prop and num < prop["minimum"]:
                return [f"Ensure this value is greater than or equal to {prop['minimum']}."], []
            return [], []
        if kind == "number":
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                try:
                    float(value)
                except (TypeError, ValueError):
                    return ["A valid number is required."], []
            return [], []
        if kind == "boolean":
            try:
                ok = value in TRUE_VALUES or value in FALSE_VALUES
            except TypeError:
                ok = False
            return ([] if ok else ["Must be a valid boolean."]), []
        if kind == "string":
            return self.string(prop, value), []
        return [], []  # {} / AnyValue

    @staticmethod
    def string(prop, value):
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            return ["Not a valid string."]
        value = str(value)
        fmt = prop.get("format")
        if fmt == "uuid":
            return [] if UUID_RE.match(value) else ["Must be a valid UUID."]
        if value == "" and prop.get("minLength", 0) >= 1:
            return ["This field may not be blank."]
        if fmt == "uri" and value and not URL_RE.match(value):
            return ["Enter a valid URL."]
        if fmt == "email" and value and not EMAIL_RE.match(value):
            return ["Enter a valid email address."]
        if fmt == "date-time" and value:
            try:
                datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                return ["Datetime has wrong format. Use one of these formats instead: "
                        "YYYY-MM-DDThh:mm[:ss[.uuuuuu]][+HH:MM|-HH:MM|Z]."]
        if "maxLength" in prop and len(value) > prop["maxLength"]:
            return [f"Ensure this field has no more than {prop['maxLength']} characters."]
        if "minLength" in prop and len(value) < prop["minLength"]:
            return [f"Ensure this field has at least {prop['minLength']} characters."]
        if "pattern" in prop and not re.search(prop["pattern"], value):
            if prop["pattern"] == "^[-a-zA-Z0-9_]+$":
                return [SLUG_MESSAGE]
            return ["This value does not match the required pattern."]
        return []

    def check_response(self, schema, data, path=""):
        """
        Problems of a response object against a response schema: missing required keys
        and keys the schema does not declare (used by the simulator's own tests).
        """
        schema = self.resolve(schema)
        problems = []
        if not isinstance(data, dict):
            return [f"{path or '(top)'}: not an object"]
        props = schema.get("properties", {})
        for name in schema.get("required", []):
            if name not in data:
                problems.append(f"{path}{name}: required in the response schema but missing")
        for name, value in data.items():
            if name not in props:
                problems.append(f"{path}{name}: not in the response schema")
                continue
            prop = self.resolve(props[name])
            if value is None:
                continue
            kind = prop.get("type")
            expected = {"string": str, "integer": int, "boolean": bool, "array": list,
                        "object": dict, "number": (int, float)}.get(kind)
            if expected and not isinstance(value, expected):
                problems.append(f"{path}{name}: expected {kind}, got {_type_name(value)}")
            if "enum" in prop and value not in prop["enum"]:
                problems.append(f"{path}{name}: {value!r} not in {prop['enum']}")
        return problems


class ServerCrash(Exception):
    """An exception the real server does not catch: Django answers 500."""


SERVER_ERROR_PAGE = "<h1>Server Error (500)</h1>"  # Django's default handler500 text


def _type_name(value):
    return {dict: "dict", list: "list", str: "str", int: "int", float: "float",
            bool: "bool", type(None): "NoneType"}.get(type(value), type(value).__name__)


# ----------------------------------------------------------------------------------------
# Resources
# ----------------------------------------------------------------------------------------
class Res:
    """One API collection: path, lookup, schemas, defaults, references, uniqueness."""

    def __init__(self, kind, path, model, schema, *, pk="uuid", lookup_field="pk",
                 ordering=("name",), defaults=None, refs=None, unique=(), search=("name",),
                 filters=None, since=None):
        self.kind = kind
        self.path = path  # relative to /api/v3, with trailing slash
        self.model = model  # Django model name in 404 bodies
        self.schema = schema  # response component; request is <schema>Request
        self.pk = pk  # "uuid" | "int"
        self.lookup_field = lookup_field  # the field the URL key matches ("pk" or "slug")
        self.ordering = ordering
        self.defaults = defaults or {}
        self.refs = refs or {}  # field -> kinds it may reference
        self.unique = unique  # fields unique on their own
        self.search = search
        self.filters = filters or {}  # query param -> callable(obj, value, sim) -> bool
        self.since = since


STAGE_KINDS = ("stage_identification", "stage_captcha", "stage_password", "stage_prompt",
               "stage_user_write", "stage_user_login")
PROVIDER_KINDS = ("provider_oauth2", "provider_proxy")


def _flag(value):
    return str(value).lower() in ("1", "true", "t", "yes", "y", "on")


RESOURCES = [
    Res("group", "/core/groups/", "Group", "Group", ordering=("name",),
        defaults={"is_superuser": False, "attributes": {}, "roles": []},
        refs={"parent": ("group",), "parents": ("group",), "users": ("user",)},
        filters={
            "members_by_username": lambda o, v, s: any(
                s.db["user"].get(u, {}).get("username") == v for u in s.group_users(o["pk"])),
            "members_by_pk": lambda o, v, s: int(v) in s.group_users(o["pk"]),
        }),
    Res("user", "/core/users/", "User", "User", pk="int", ordering=("username",),
        search=("username", "name", "email"),
        defaults={"is_active": True, "last_login": None, "groups": [], "email": "",
                  "attributes": {}, "path": "users", "type": "internal", "roles": []},
        refs={"groups": ("group",)}, unique=("username",),
        filters={"groups_by_name": lambda o, v, s: any(
            s.db["group"].get(g, {}).get("name") == v for g in o.get("groups", []))}),
    Res("application", "/core/applications/", "Application", "Application",
        lookup_field="slug", ordering=("name",), search=("name", "slug"),
        defaults={"provider": None, "backchannel_providers": [], "open_in_new_tab": False,
                  "meta_launch_url": "", "meta_description": "", "meta_publisher": "",
                  "policy_engine_mode": "any", "group": "", "meta_hide": False, "meta_icon": ""},
        refs={"provider": PROVIDER_KINDS, "backchannel_providers": PROVIDER_KINDS},
        unique=("slug", "provider")),
    Res("brand", "/core/brands/", "Brand", "Brand", ordering=("domain",), search=("domain",),
        defaults={"default": False, "branding_title": "authentik",
                  "branding_logo": "/static/dist/assets/icons/icon_left_brand.svg",
                  "branding_favicon": "/static/dist/assets/icons/icon.png",
                  "branding_custom_css": "",
                  "branding_default_flow_background": "/static/dist/assets/images/flow_background.jpg",
                  "flow_authentication": None, "flow_invalidation": None, "flow_recovery": None,
                  "flow_unenrollment": None, "flow_user_settings": None, "flow_device_code": None,
                  "flow_lockdown": None, "default_application": None, "web_certificate": None,
                  "client_certificates": [], "attributes": {}},
        refs={"flow_authentication": ("flow",), "flow_invalidation": ("flow",),
              "flow_recovery": ("flow",), "flow_unenrollment": ("flow",),
              "flow_user_settings": ("flow",), "flow_device_code": ("flow",),
              "flow_lockdown": ("flow",), "default_application": ("application",),
              "web_certificate": ("certificate",), "client_certificates": ("certificate",)},
        unique=("domain",)),
    Res("provider_oauth2", "/providers/oauth2/", "OAuth2Provider", "OAuth2Provider", pk="int",
        defaults={"authentication_flow": None, "property_mappings": [],
                  "client_type": "confidential", "access_code_validity": "minutes=1",
                  "access_token_validity": "hours=1", "refresh_token_validity": "days=30",
                  "refresh_token_threshold": "seconds=0", "include_claims_in_id_token": True,
                  "signing_key": None, "encryption_key": None, "redirect_uris": [],
                  "logout_uri": "", "logout_method": "backchannel",
                  "sub_mode": "hashed_user_id", "issuer_mode": "per_provider",
                  "jwt_federation_sources": [], "jwt_federation_providers": [],
                  "grant_types": ["authorization_code", "refresh_token"]},
        refs={"authentication_flow": ("flow",), "authorization_flow": ("flow",),
              "invalidation_flow": ("flow",), "property_mappings": ("scope_mapping",),
              "signing_key": ("certificate",), "encryption_key": ("certificate",),
              "jwt_federation_providers": PROVIDER_KINDS},
        unique=("name", "client_id"),
        filters={"application": lambda o, v, s: any(
            a.get("provider") == o["pk"] and str(a["pk"]) == v for a in s.db["application"].values())}),
    Res("provider_proxy", "/providers/proxy/", "ProxyProvider", "ProxyProvider", pk="int",
        defaults={"authentication_flow": None, "property_mappings": [], "internal_host": "",
                  "internal_host_ssl_validation": True, "certificate": None,
                  "skip_path_regex": "", "basic_auth_enabled": False,
                  "basic_auth_password_attribute": "", "basic_auth_user_attribute": "",
                  "mode": "proxy", "intercept_header_auth": True, "cookie_domain": "",
                  "jwt_federation_sources": [], "jwt_federation_providers": [],
                  "access_token_validity": "hours=24", "refresh_token_validity": "days=30"},
        refs={"authentication_flow": ("flow",), "authorization_flow": ("flow",),
              "invalidation_flow": ("flow",), "property_mappings": ("scope_mapping",),
              "certificate": ("certificate",)},
        unique=("name",)),
    Res("scope_mapping", "/propertymappings/provider/scope/", "ScopeMapping", "ScopeMapping",
        defaults={"managed": None, "description": ""}, unique=("name", "managed"),
        search=("name", "scope_name")),
    Res("flow", "/flows/instances/", "Flow", "Flow", lookup_field="slug", ordering=("slug",),
        search=("name", "slug", "title"),
        defaults={"policy_engine_mode": "any", "compatibility_mode": False, "layout": "stacked",
                  "denied_action": "message_continue", "authentication": "none",
                  "background": ""},
        unique=("slug",),
        filters={"flow_uuid": lambda o, v, s: str(o["pk"]) == v}),
    Res("flow_binding", "/flows/bindings/", "FlowStageBinding", "FlowStageBinding",
        ordering=("target", "order"), search=("stage__name",),
        defaults={"evaluate_on_plan": False, "re_evaluate_policies": True,
                  "policy_engine_mode": "any", "invalid_response_action": "retry"},
        refs={"target": ("flow",), "stage": STAGE_KINDS},
        filters={"fsb_uuid": lambda o, v, s: str(o["pk"]) == v,
                 "pbm_uuid": lambda o, v, s: str(o["pk"]) == v}),
    Res("policy_binding", "/policies/bindings/", "PolicyBinding", "PolicyBinding",
        ordering=("target", "order"), search=("policy__name",),
        defaults={"policy": None, "group": None, "user": None, "negate": False, "enabled": True,
                  "timeout": 30, "failure_result": False},
        refs={"group": ("group",), "user": ("user",), "policy": ("policy",),
              "target": ("application", "flow", "flow_binding")},
        filters={"target_in": lambda o, v, s: str(o["target"]) == v,
                 "policy__isnull": lambda o, v, s: (o.get("policy") is None) == _flag(v)}),
    Res("outpost", "/outposts/instances/", "Outpost", "Outpost", ordering=("name",),
        defaults={"service_connection": None, "managed": None, "config": {}},
        refs={"providers": PROVIDER_KINDS}, unique=("name",),
        filters={"providers_by_pk": lambda o, v, s: int(v) in o.get("providers", []),
                 "providers__isnull": lambda o, v, s: (not o.get("providers")) == _flag(v)}),
    Res("stage_identification", "/stages/identification/", "IdentificationStage",
        "IdentificationStage",
        defaults={"user_fields": ["email", "username"], "password_stage": None,
                  "captcha_stage": None, "webauthn_stage": None,
                  "case_insensitive_matching": True, "show_matched_user": True,
                  "enrollment_flow": None, "recovery_flow": None, "passwordless_flow": None,
                  "sources": [], "show_source_labels": False, "pretend_user_exists": True,
                  "enable_remember_me": False},
        refs={"password_stage": ("stage_password",), "captcha_stage": ("stage_captcha",),
              "enrollment_flow": ("flow",), "recovery_flow": ("flow",),
              "passwordless_flow": ("flow",)},
        unique=("name",)),
    Res("stage_captcha", "/stages/captcha/", "CaptchaStage", "CaptchaStage",
        defaults={"js_url": "https://www.recaptcha.net/recaptcha/api.js",
                  "api_url": "https://www.recaptcha.net/recaptcha/api/siteverify",
                  "interactive": False, "score_min_threshold": 0.5, "score_max_threshold": 1.0,
                  "error_on_invalid_score": True},
        unique=("name",)),
    Res("stage_password", "/stages/password/", "PasswordStage", "PasswordStage",
        defaults={"configure_flow": None, "failed_attempts_before_cancel": 5,
                  "allow_show_password": False},
        refs={"configure_flow": ("flow",)}, unique=("name",)),
    Res("prompt", "/stages/prompt/prompts/", "Prompt", "Prompt", ordering=("field_key",),
        defaults={"required": True, "placeholder": "", "initial_value": "", "order": 0,
                  "sub_text": "", "placeholder_expression": False,
                  "initial_value_expression": False},
        unique=("name",), search=("field_key", "label", "type", "placeholder")),
    Res("stage_prompt", "/stages/prompt/stages/", "PromptStage", "PromptStage",
        defaults={"validation_policies": []}, refs={"fields": ("prompt",)}, unique=("name",),
        filters={"stage_uuid": lambda o, v, s: str(o["pk"]) == v}),
    Res("stage_user_write", "/stages/user_write/", "UserWriteStage", "UserWriteStage",
        defaults={"user_creation_mode": "create_when_required", "create_users_as_inactive": False,
                  "create_users_group": None, "user_type": "external", "user_path_template": ""},
        refs={"create_users_group": ("group",)}, unique=("name",),
        filters={"stage_uuid": lambda o, v, s: str(o["pk"]) == v}),
    Res("certificate", "/crypto/certificatekeypairs/", "CertificateKeyPair", "CertificateKeyPair",
        defaults={"managed": None}, unique=("name", "managed")),
    Res("stage_user_login", "/stages/user_login/", "UserLoginStage", "UserLoginStage",
        defaults={"session_duration": "seconds=0", "terminate_other_sessions": False,
                  "remember_me_offset": "seconds=0", "network_binding": "no_binding",
                  "geoip_binding": "no_binding", "remember_device": "days=30"},
        unique=("name",),
        filters={"stage_uuid": lambda o, v, s: str(o["pk"]) == v}),
]
BY_KIND = {r.kind: r for r in RESOURCES}

# Response-only fields that Authentik computes and the simulator fills in.
COMPONENTS = {
    "provider_oauth2": ("ak-provider-oauth2-form", "oauth2provider", "OAuth2/OpenID Provider"),
    "provider_proxy": ("ak-provider-proxy-form", "proxyprovider", "Proxy Provider"),
    "scope_mapping": ("ak-property-mapping-provider-scope-form", "scopemapping", "Scope Mapping"),
    "stage_identification": ("ak-stage-identification-form", "identificationstage", "Identification Stage"),
    "stage_captcha": ("ak-stage-captcha-form", "captchastage", "Captcha Stage"),
    "stage_password": ("ak-stage-password-form", "passwordstage", "Password Stage"),
    "stage_prompt": ("ak-stage-prompt-form", "promptstage", "Prompt Stage"),
    "stage_user_write": ("ak-stage-user-write-form", "userwritestage", "User Write Stage"),
    "stage_user_login": ("ak-stage-user-login-form", "userloginstage", "User Login Stage"),
}


class AuthentikSim(Simulator):
    name = "authentik"

    def __init__(self, options=None):
        self.release = str((options or {}).get("version") or "2025.10")
        if self.release not in RELEASES:
            raise ValueError(f"unknown Authentik release {self.release!r}; have {RELEASES}")
        with open(os.path.join(SCHEMA_DIR, f"{self.release}.json"), encoding="utf-8") as fh:
            self.openapi = json.load(fh)
        self.version = parse_release(self.release)
        self.validator = SchemaValidator(self.openapi["components"])
        super().__init__(options)
        cfg = self.options
        self.strict = bool(cfg.get("strict"))
        self.tokens = {}
        if cfg.get("token"):
            self.tokens[cfg["token"]] = {"permissions": "all"}
        for key, info in (cfg.get("tokens") or {}).items():
            self.tokens[key] = {"permissions": info.get("permissions", "all")}
        if self.version >= (2025, 12):
            self.page_size, self.max_page_size = 20, 100
        else:
            self.page_size, self.max_page_size = 100, None
        self.db = {r.kind: {} for r in RESOURCES}
        self.db["policy"] = {}
        self.passwords = {}  # user pk -> True when a password was set (never the value)
        self.next_int = {"user": 1, "provider": 1}
        self._seed()

    # -- routing -----------------------------------------------------------------------------
    def rules(self):
        rules = [
            Rule(f"{API}/root/config/", endpoint="config", methods=["GET"]),
            Rule(f"{API}/admin/version/", endpoint="version", methods=["GET"]),
            Rule(f"{API}/core/groups/<key>/add_user/", endpoint="membership",
                 defaults={"action": "add"}, methods=["POST"]),
            Rule(f"{API}/core/groups/<key>/remove_user/", endpoint="membership",
                 defaults={"action": "remove"}, methods=["POST"]),
            Rule(f"{API}/core/users/<key>/set_password/", endpoint="set_password",
                 methods=["POST"]),
        ]
        for res in RESOURCES:
            rules.append(Rule(f"{API}{res.path}", endpoint="collection",
                              defaults={"kind": res.kind}, methods=["GET", "POST"]))
            rules.append(Rule(f"{API}{res.path}<key>/", endpoint="item",
                              defaults={"kind": res.kind},
                              methods=["GET", "PUT", "PATCH", "DELETE"]))
        return rules

    # -- error shapes (DRF) -------------------------------------------------------------------
    def detail(self, status, text):
        return self.json({"detail": text}, status=status)

    def not_found(self, request):
        # Django's own 404 for an unknown URL under /api/v3 is an HTML page; the API's
        # catch-all answers JSON. Both are 404; clients must not parse more.
        return self.detail(404, "Not found.")

    def method_not_allowed(self, request):
        return self.detail(405, f'Method "{request.method}" not allowed.')

    def _crash(self, request, exc):
        """The server's own bug (an uncaught exception): Django's plain 500 page."""
        request.environ["lab.server_error"] = str(exc)
        return Response(SERVER_ERROR_PAGE, status=500, mimetype="text/html")

    def handle_error(self, request, exc):
        return self.json({"detail": f"Internal server error ({type(exc).__name__})"}, status=500)

    # -- request log with schema findings ---------------------------------------------------
    def _log_request(self, request, status):
        super()._log_request(request, status)
        entry = self.log[-1]
        for key in ("unknown_fields", "unknown_params", "fields", "server_error"):
            value = request.environ.get(f"lab.{key}")
            if value is not None:
                entry[key] = value

    # -- dispatch with authentication ------------------------------------------------------------
    def dispatch(self, request):
        if request.path.startswith(API + "/"):
            denied = self._authenticate(request)
            if denied is not None:
                return denied
        return super().dispatch(request)

    def _authenticate(self, request):
        header = request.headers.get("Authorization", "").strip()
        public = request.path.rstrip("/") == f"{API}/root/config"
        if not header or " " not in header:
            if public:
                return None
            return self.detail(403, "Authentication credentials were not provided.")
        kind, _, token = header.partition(" ")
        if kind.lower() != "bearer":
            return self.detail(403, "Unsupported authentication type")
        if not token:
            return self.detail(403, "Malformed header")
        info = self.tokens.get(token)
        if info is None:
            return self.detail(403, "Token invalid/expired")
        if public:
            return None
        perms = info["permissions"]
        if perms == "none" or (perms == "read" and request.method not in ("GET", "HEAD", "OPTIONS")):
            return self.detail(403, "You do not have permission to perform this action.")
        return None

    # -- helpers -----------------------------------------------------------------------------------
    def operation(self, path_template, method):
        return (self.openapi["paths"].get(path_template) or {}).get(method.lower())

    def _check_params(self, request, op):
        known = {p["name"] for p in (op or {}).get("parameters", []) if p.get("in") == "query"}
        unknown = sorted(set(request.args) - known)
        if unknown:
            request.environ["lab.unknown_params"] = unknown
            if self.strict:
                return self.json({name: [
                    f"Unknown query parameter: not in the Authentik {self.release} schema for "
                    f"this request (a real server ignores it silently)."] for name in unknown},
                    status=400)
        return None

    def _body(self, request, op, partial):
        """``(body, error_response)`` after parsing and validating against the schema."""
        if request.content_length in (None, 0) and not request.data:
            body = {}
        else:
            ctype = request.mimetype or ""
            if ctype != "application/json":
                return None, self.detail(415, f'Unsupported media type "{ctype}" in request.')
            try:
                body = json.loads(request.data.decode("utf-8"))
            except (ValueError, UnicodeDecodeError) as exc:
                return None, self.detail(400, f"JSON parse error - {exc}")
        schema = (op or {}).get("requestBody")
        if schema is None:
            return body, None
        errors, unknown = self.validator.validate(schema, body, partial=partial)
        if isinstance(body, dict):
            request.environ["lab.fields"] = sorted(body)
        if unknown:
            request.environ["lab.unknown_fields"] = sorted(unknown)
            if self.strict and not errors:
                read_only = self._read_only_fields(schema)
                errors = {}
                for name in unknown:
                    what = "read-only field" if name in read_only else "Unknown field"
                    errors.setdefault(name.split(".")[0], []).append(
                        f"{what} '{name}': not in the Authentik {self.release} schema for this "
                        f"request (a real server ignores it silently).")
        if errors:
            return None, self.json(errors, status=400)
        return body, None

    def _read_only_fields(self, request_schema):
        """Top-level read-only fields of the response component matching a request schema."""
        ref = request_schema.get("$ref", "")
        name = ref.rsplit("/", 1)[-1]
        if name.startswith("Patched"):
            name = name[len("Patched"):]
        if name.endswith("Request"):
            name = name[: -len("Request")]
        response = self.openapi["components"].get("schemas", {}).get(name, {})
        return {k for k, v in response.get("properties", {}).items() if v.get("readOnly")}

    def _template(self, res, item=False):
        if not item:
            return res.path
        key = {"group": "{group_uuid}", "user": "{id}", "application": "{slug}",
               "brand": "{brand_uuid}", "provider_oauth2": "{id}", "provider_proxy": "{id}",
               "scope_mapping": "{pm_uuid}", "flow": "{slug}", "flow_binding": "{fsb_uuid}",
               "policy_binding": "{policy_binding_uuid}", "outpost": "{uuid}",
               "prompt": "{prompt_uuid}", "certificate": "{kp_uuid}"}.get(res.kind, "{stage_uuid}")
        return f"{res.path}{key}/"

    def lookup(self, res, key):
        table = self.db[res.kind]
        if res.lookup_field == "slug":
            for obj in table.values():
                if obj["slug"] == key:
                    return obj
            return None
        if res.pk == "int":
            try:
                return table.get(int(key))
            except ValueError:
                return None
        return table.get(str(key).lower())

    def _no_match(self, res):
        return self.detail(404, f"No {res.model} matches the given query.")

    def group_users(self, group_pk):
        return [u["pk"] for u in self.db["user"].values() if group_pk in u.get("groups", [])]

    def _exists(self, kinds, value):
        for kind in kinds:
            if kind == "policy":
                if str(value) in self.db["policy"]:
                    return True
                continue
            table = self.db[kind]
            if BY_KIND[kind].pk == "int":
                try:
                    if int(value) in table:
                        return True
                except (TypeError, ValueError):
                    continue
            elif str(value).lower() in table:
                return True
            if kind == "flow" and any(f["pbm_uuid"] == str(value).lower() for f in table.values()):
                return True
        return False

    # -- semantic validation after the schema -----------------------------------------------------
    def _semantic(self, res, body, current):
        """
        What a DRF ``ModelSerializer`` checks after the schema, in DRF's order
        (rest_framework/serializers.py ``Serializer.run_validation``):

        1. field level (``to_internal_value``: each SENT field, its validators and the
           serializer's ``validate_<field>``); any error stops here;
        2. ``run_validators``: model ``unique_together``, which on an update fills the
           fields not sent from the instance (rest_framework/validators.py
           ``UniqueTogetherValidator.filter_queryset``) and skips unchanged values;
        3. the serializer's ``validate(attrs)``. On a PATCH (``partial=True``,
           rest_framework/mixins.py ``partial_update``) ``attrs`` holds ONLY the sent
           fields, never the stored object: validators that look at fields the client
           did not send see them as absent.

        ``body`` is the request body (already schema-valid), ``current`` the stored
        object on an update (None on create).
        """
        errors = self._field_errors(res, body, current)
        if errors:
            return errors
        errors = self._unique_together(res, body, current)
        if errors:
            return errors
        check = getattr(self, f"_validate_{res.kind}", None)
        return check(body, current) if check else {}

    def _field_errors(self, res, body, current):
        errors = {}
        for field, kinds in res.refs.items():
            if field not in body or body[field] is None:
                continue
            values = body[field] if isinstance(body[field], list) else [body[field]]
            for value in values:
                if not self._exists(kinds, value):
                    errors[field] = [f'Invalid pk "{value}" - object does not exist.']
                    break
        for field in res.unique:
            value = body.get(field)
            if value is None or value == "":
                continue
            for obj in self.db[res.kind].values():
                if current is not None and obj["pk"] == current["pk"]:
                    continue
                if obj.get(field) == value:
                    errors[field] = [self._unique_message(res, field)]
                    break
        if res.kind in PROVIDER_KINDS and "name" in body:
            other = "provider_proxy" if res.kind == "provider_oauth2" else "provider_oauth2"
            if any(o["name"] == body["name"] for o in self.db[other].values()):
                errors["name"] = [f"{_verbose(res)} with this name already exists."]
        if res.kind == "group":
            errors.update(self._group_rules(body, current))
        if res.kind == "application" and body.get("slug") in (
            "authorize", "token", "device", "userinfo", "introspect", "revoke"
        ):
            errors["slug"] = [f"The slug '{body['slug']}' is reserved and cannot be used for applications."]
        if (res.kind == "certificate" and "certificate_data" in body
                and "-----BEGIN CERTIFICATE-----" not in str(body["certificate_data"])):
            errors["certificate_data"] = ["Unable to load certificate."]
        if res.kind == "provider_oauth2":
            # OAuth2ProviderSerializer.validate_redirect_uris (authentik/providers/oauth2/
            # api/providers.py): a field-level error on redirect_uris naming the pattern
            for uri in body.get("redirect_uris") or []:
                if isinstance(uri, dict) and uri.get("matching_mode") == "regex":
                    try:
                        re.compile(uri.get("url", ""))
                    except re.error:
                        errors["redirect_uris"] = [f"Invalid Regex Pattern: {uri.get('url', '')}"]
                        break
        if res.kind == "user":
            errors.update(self._user_fields(body, current))
        return errors

    @staticmethod
    def _unique_message(res, field):
        # UserSerializer.username and BrandSerializer.domain declare their own
        # UniqueValidator without a message: DRF's default text (authentik/core/api/
        # users.py, authentik/brands/api.py). Model-level unique fields get Django's.
        if (res.kind, field) in (("user", "username"), ("brand", "domain")):
            return "This field must be unique."
        return f"{_verbose(res)} with this {field.replace('_', ' ')} already exists."

    def _user_fields(self, body, current):
        """UserSerializer.validate_path / validate_type (authentik/core/api/users.py)."""
        errors = {}
        path = body.get("path")
        if isinstance(path, str) and path:
            if path[:1] == "/" or path[-1] == "/":
                errors["path"] = ["No leading or trailing slashes allowed."]
            elif any(segment == "" for segment in path.split("/")):
                errors["path"] = ["No empty segments in user path allowed."]
        if "type" in body:
            isa = "internal_service_account"
            if current is not None and current.get("type") == isa and body["type"] != isa:
                errors["type"] = ["Can't change internal service account to other user type."]
            elif current is None and body["type"] == isa:
                errors["type"] = ["Setting a user to internal service account is not allowed."]
        return errors

    def _unique_together(self, res, body, current):
        """Model unique_together: fields not sent come from the instance; unchanged is skipped."""
        sets = {"policy_binding": ("policy", "target", "order"),
                "flow_binding": ("target", "stage", "order")}
        fields = sets.get(res.kind)
        if not fields:
            return {}
        merged = dict(current or {}, **body)
        values = tuple(None if merged.get(f) is None else str(merged[f]).lower() for f in fields)
        if None in values:
            return {}  # DRF skips the check when any of the values is None
        if current is not None and all(
            f not in body or str(body[f]).lower() == str(current.get(f)).lower() for f in fields
        ):
            return {}
        for obj in self.db[res.kind].values():
            if current is not None and obj["pk"] == current["pk"]:
                continue
            if tuple(None if obj.get(f) is None else str(obj[f]).lower() for f in fields) == values:
                return {"non_field_errors": [f"The fields {', '.join(fields)} must make a unique set."]}
        return {}

    # -- the serializers' validate(attrs): attrs are the SENT fields only ------------------------
    def _validate_policy_binding(self, attrs, current):
        """
        PolicyBindingSerializer.validate (authentik/policies/api/bindings.py). Since
        2024.12 (app entitlements, goauthentik/authentik#12090) it starts with
        ``attrs.get("target").supported_policy_binding_targets()``: a PATCH without
        ``target`` is an AttributeError, i.e. a 500, on every release simulated here
        (before 2024.12 it was a 400 "One of 'policy', 'group' or 'user' must be set.").
        The supported targets of a plain PolicyBindingModel are policy, user, group
        (authentik/policies/models.py), in that order in the messages.
        """
        if attrs.get("target") is None:
            raise ServerCrash("'NoneType' object has no attribute 'supported_policy_binding_targets'")
        supported = ("policy", "user", "group")
        count = sum(bool(attrs.get(k)) for k in supported)
        names = ", ".join(f"'{k}'" for k in supported)
        if count > 1:
            return {"non_field_errors": [f"Only one of {names} can be set."]}
        if count < 1:
            return {"non_field_errors": [f"One of {names} must be set."]}
        return {}

    @staticmethod
    def _validate_stage_identification(attrs, current):
        """IdentificationStageSerializer.validate (authentik/stages/identification/api.py)."""
        if len(attrs.get("user_fields") or []) < 1 and len(attrs.get("sources") or []) < 1:
            return {"non_field_errors": [
                "When no user fields are selected, at least one source must be selected"]}
        return {}

    @staticmethod
    def _validate_provider_proxy(attrs, current):
        """ProxyProviderSerializer.validate (authentik/providers/proxy/api.py)."""
        if attrs.get("mode", "proxy") == "proxy" and attrs.get("internal_host", "") == "":
            return {"internal_host": ["Internal host cannot be empty when forward auth is disabled."]}
        return {}

    def _validate_brand(self, attrs, current):
        """BrandSerializer.validate (authentik/brands/api.py): one default brand."""
        if attrs.get("default", False) and any(
            b.get("default") and (current is None or b["pk"] != current["pk"])
            for b in self.db["brand"].values()
        ):
            return {"default": ["Only a single brand can be set as default."]}
        return {}

    @staticmethod
    def _validate_user(attrs, current):
        """UserSerializer.validate (authentik/core/api/users.py)."""
        if current is not None and current.get("type") == "internal_service_account":
            return {"non_field_errors": ["Can't modify internal service account users"]}
        return {}

    def _group_rules(self, body, current):
        errors = {}
        name = body.get("name", (current or {}).get("name"))
        if self.version >= (2025, 12):
            # Group.name is unique=True from 2025.12 (parents became many-to-many)
            if "name" in body and any(
                g["name"] == name and (current is None or g["pk"] != current["pk"])
                for g in self.db["group"].values()
            ):
                errors["name"] = ["Group with this name already exists."]
            return errors
        parent = body.get("parent", (current or {}).get("parent"))
        if parent is None:
            return errors  # unique_together(name, parent) is skipped when parent is null
        for obj in self.db["group"].values():
            if current is not None and obj["pk"] == current["pk"]:
                continue
            if obj["name"] == name and obj.get("parent") == str(parent).lower():
                errors["non_field_errors"] = ["The fields name, parent must make a unique set."]
        return errors

    # -- object store --------------------------------------------------------------------------
    def _normalise(self, res, body):
        """Coerce accepted representations the way DRF stores them."""
        schema = self.validator.resolve({"$ref": f"#/components/schemas/{res.schema}Request"})
        out = {}
        for key, value in body.items():
            prop = schema.get("properties", {}).get(key)
            if prop is None:
                continue  # unknown / read-only: ignored like DRF
            prop = self.validator.resolve(prop)
            out[key] = _coerce(prop, value, self.validator)
        return out

    def _new_pk(self, res):
        if res.pk == "int":
            counter = "provider" if res.kind in PROVIDER_KINDS else res.kind
            value = self.next_int.setdefault(counter, 1)
            self.next_int[counter] = value + 1
            return value
        return str(uuid.uuid4())

    def create(self, res, body):
        obj = copy.deepcopy(res.defaults)
        obj.update(copy.deepcopy(body))
        obj["pk"] = self._new_pk(res)
        if res.kind == "group":
            if self.version >= (2025, 12):
                obj.pop("parent", None)
                obj.setdefault("parents", [])
            else:
                obj.setdefault("parent", None)
            users = obj.pop("users", None)
            self.next_int["group_num"] = self.next_int.get("group_num", 1000) + 1
            obj["num_pk"] = self.next_int["group_num"]
        if res.kind == "provider_oauth2":
            obj.setdefault("client_id", generate_id(40))
            obj.setdefault("client_secret", generate_id(128))
        if res.kind == "provider_proxy":
            obj["client_id"] = generate_id(40)
        if res.kind == "flow":
            obj["pbm_uuid"] = str(uuid.uuid4())
        if res.kind == "user":
            obj["uuid"] = str(uuid.uuid4())
            obj["date_joined"] = obj["password_change_date"] = obj["last_updated"] = _now()
        self.db[res.kind][obj["pk"]] = obj
        if res.kind == "group" and users is not None:
            self._set_members(obj["pk"], users)
        return obj

    def update(self, res, obj, body):
        users = body.pop("users", None) if res.kind == "group" else None
        obj.update(body)
        if res.kind == "user":
            obj["last_updated"] = _now()
        if users is not None:
            self._set_members(obj["pk"], users)
        return obj

    def _set_members(self, group_pk, users):
        for user in self.db["user"].values():
            member = user["pk"] in users
            groups = user.setdefault("groups", [])
            if member and group_pk not in groups:
                groups.append(group_pk)
            elif not member and group_pk in groups:
                groups.remove(group_pk)

    def delete(self, res, obj):
        del self.db[res.kind][obj["pk"]]
        pk = obj["pk"]
        if res.kind == "group":
            for user in self.db["user"].values():
                if pk in user.get("groups", []):
                    user["groups"].remove(pk)
            for other in self.db["group"].values():
                if other.get("parent") == pk:
                    other["parent"] = None
                if pk in other.get("parents", []):
                    other["parents"].remove(pk)
            self._drop("policy_binding", lambda b: b.get("group") == pk)
        elif res.kind == "user":
            self._drop("policy_binding", lambda b: b.get("user") == pk)
        elif res.kind == "application":
            self._drop("policy_binding", lambda b: b["target"] == pk)
        elif res.kind == "flow":
            self._drop("flow_binding", lambda b: b["target"] == pk)
            self._drop("policy_binding", lambda b: b["target"] == obj["pbm_uuid"])
            for kind in PROVIDER_KINDS:  # authorization_flow is CASCADE
                self._drop(kind, lambda p: p.get("authorization_flow") == pk)
            for table in self.db.values():
                for other in table.values():
                    for field in ("enrollment_flow", "recovery_flow", "passwordless_flow",
                                  "authentication_flow", "invalidation_flow", "configure_flow",
                                  "flow_authentication", "flow_invalidation", "flow_recovery",
                                  "flow_unenrollment", "flow_user_settings", "flow_device_code"):
                        if other.get(field) == pk:
                            other[field] = None
        elif res.kind in PROVIDER_KINDS:
            for app in self.db["application"].values():
                if app.get("provider") == pk:
                    app["provider"] = None
            for outpost in self.db["outpost"].values():
                if pk in outpost.get("providers", []):
                    outpost["providers"].remove(pk)
        elif res.kind in STAGE_KINDS:
            self._drop("flow_binding", lambda b: b["stage"] == pk)
        elif res.kind == "flow_binding":
            self._drop("policy_binding", lambda b: b["target"] == pk)
        elif res.kind == "prompt":
            for stage in self.db["stage_prompt"].values():
                if pk in stage.get("fields", []):
                    stage["fields"].remove(pk)
        elif res.kind == "scope_mapping":
            for prov in list(self.db["provider_oauth2"].values()) + list(self.db["provider_proxy"].values()):
                if pk in prov.get("property_mappings", []):
                    prov["property_mappings"].remove(pk)

    def _drop(self, kind, pred):
        for pk in [pk for pk, o in self.db[kind].items() if pred(o)]:
            self.delete(BY_KIND[kind], self.db[kind][pk])

    # -- representation ---------------------------------------------------------------------------
    def represent(self, res, obj, request=None):
        schema = self.validator.resolve({"$ref": f"#/components/schemas/{res.schema}"})
        out = {}
        for name, prop in schema.get("properties", {}).items():
            if name in obj:
                out[name] = obj[name]
            else:
                out[name] = _default_for(self.validator.resolve(prop))
        out["pk"] = obj["pk"]
        computed = getattr(self, f"_repr_{res.kind}", None)
        if computed:
            computed(obj, out, request)
        if res.kind in COMPONENTS:
            comp, model, verbose = COMPONENTS[res.kind]
            for key, val in (("component", comp), ("meta_model_name", f"authentik_x.{model}"),
                             ("verbose_name", verbose), ("verbose_name_plural", verbose + "s")):
                if key in out:
                    out[key] = val
        return {k: v for k, v in out.items() if k in schema.get("properties", {})}

    def _repr_group(self, obj, out, request):
        include_users = request is None or request.args.get("include_users", "true") != "false"
        users = self.group_users(obj["pk"])
        out["num_pk"] = obj["num_pk"]
        out["users"] = users
        out["users_obj"] = [self._partial_user(u) for u in users] if include_users else None
        out["roles_obj"] = []
        if "parent_name" in out:
            parent = self.db["group"].get(obj.get("parent") or "")
            out["parent_name"] = parent["name"] if parent else None
        children = [g["pk"] for g in self.db["group"].values()
                    if g.get("parent") == obj["pk"] or obj["pk"] in g.get("parents", [])]
        if "children" in out:
            out["children"] = children
        if "children_obj" in out:
            out["children_obj"] = None
        if "parents_obj" in out:
            out["parents_obj"] = None
        if "inherited_roles_obj" in out:
            out["inherited_roles_obj"] = None

    def _partial_user(self, pk):
        user = self.db["user"][pk]
        return {"pk": pk, "username": user["username"], "name": user["name"],
                "is_active": user["is_active"], "last_login": user["last_login"],
                "email": user["email"], "attributes": user["attributes"], "uid": _uid(pk)}

    def _repr_user(self, obj, out, request):
        out["uid"] = _uid(obj["pk"])
        out["avatar"] = "data:image/svg+xml;base64,"
        out["is_superuser"] = any(self.db["group"].get(g, {}).get("is_superuser")
                                  for g in obj.get("groups", []))
        include = request is None or request.args.get("include_groups", "true") != "false"
        out["groups_obj"] = [
            {"pk": g, "num_pk": self.db["group"][g].get("num_pk", 0),
             "name": self.db["group"][g]["name"], "is_superuser": self.db["group"][g]["is_superuser"],
             "attributes": self.db["group"][g]["attributes"]}
            for g in obj.get("groups", []) if g in self.db["group"]
        ] if include else None
        if "roles_obj" in out:
            out["roles_obj"] = []

    def _repr_application(self, obj, out, request):
        prov = self._provider(obj.get("provider"))
        out["provider_obj"] = self._provider_obj(prov) if prov else None
        out["backchannel_providers_obj"] = []
        out["launch_url"] = obj.get("meta_launch_url") or None
        for key in ("meta_icon_url", "meta_icon_themed_urls"):
            if key in out:
                out[key] = None
        if self.version < (2026, 1):
            out["meta_icon"] = None

    def _provider(self, pk):
        for kind in PROVIDER_KINDS:
            if pk in self.db[kind]:
                return self.db[kind][pk]
        return None

    def _provider_obj(self, prov):
        return {"pk": prov["pk"], "name": prov["name"],
                "authorization_flow": prov.get("authorization_flow"),
                "invalidation_flow": prov.get("invalidation_flow"),
                "property_mappings": prov.get("property_mappings", []),
                "component": "ak-provider-oauth2-form"}

    def _repr_provider_oauth2(self, obj, out, request):
        self._repr_provider(obj, out)

    def _repr_provider_proxy(self, obj, out, request):
        self._repr_provider(obj, out)
        if "client_id" in out:
            out["client_id"] = obj["client_id"]
        if "redirect_uris" in out:
            out["redirect_uris"] = [{"matching_mode": "strict",
                                     "url": obj.get("external_host", "") + "/outpost.goauthentik.io/callback"}]
        if "outpost_set" in out:
            out["outpost_set"] = [f"Outpost {o['name']}" for o in self.db["outpost"].values()
                                  if obj["pk"] in o.get("providers", [])]

    def _repr_provider(self, obj, out):
        app = next((a for a in self.db["application"].values() if a.get("provider") == obj["pk"]), None)
        for key in ("assigned_application_slug", "assigned_application_name"):
            if key in out:
                out[key] = (app or {}).get(key.rsplit("_", 1)[-1]) if app else None
        for key in ("assigned_backchannel_application_slug", "assigned_backchannel_application_name"):
            if key in out:
                out[key] = None

    def _repr_flow(self, obj, out, request):
        out["policybindingmodel_ptr_id"] = obj["pbm_uuid"]
        out["stages"] = [b["stage"] for b in sorted(self.db["flow_binding"].values(),
                                                      key=lambda b: b["order"])
                         if b["target"] == obj["pk"]]
        out["policies"] = []
        out["cache_count"] = 0
        out["export_url"] = f"{API}/flows/instances/{obj['slug']}/export/"
        if "background_url" in out:
            out["background_url"] = "/static/dist/assets/images/flow_background.jpg"
            out["background_themed_urls"] = None
        elif "background" in out:
            out["background"] = "/static/dist/assets/images/flow_background.jpg"

    def _repr_flow_binding(self, obj, out, request):
        stage = self._stage(obj["stage"])
        out["stage_obj"] = {"pk": obj["stage"], "name": (stage or {}).get("name", ""),
                            "component": "", "verbose_name": "", "verbose_name_plural": "",
                            "meta_model_name": ""}
        if "policybindingmodel_ptr_id" in out:
            out["policybindingmodel_ptr_id"] = obj["pk"]

    def _stage(self, pk):
        for kind in STAGE_KINDS:
            if pk in self.db[kind]:
                return self.db[kind][pk]
        return None

    def _repr_policy_binding(self, obj, out, request):
        group = self.db["group"].get(obj.get("group") or "")
        out["group_obj"] = {"pk": group["pk"], "num_pk": group.get("num_pk", 0), "name": group["name"],
                            "is_superuser": group["is_superuser"], "attributes": group["attributes"]} \
            if group else None
        out["user_obj"] = self._partial_user(obj["user"]) if obj.get("user") in self.db["user"] else None
        out["policy_obj"] = None

    def _repr_outpost(self, obj, out, request):
        out["providers_obj"] = [self._provider_obj(p) for p in
                                (self._provider(pk) for pk in obj.get("providers", [])) if p]
        out["service_connection_obj"] = None
        out["refresh_interval_s"] = 300
        out["token_identifier"] = f"ak-outpost-{obj['pk']}-api"

    def _repr_certificate(self, obj, out, request):
        digest = uuid.UUID(obj["pk"]).hex
        pairs = [digest[i:i + 2] for i in range(0, 32, 2)]
        out["fingerprint_sha256"] = ":".join(pairs * 2)
        out["fingerprint_sha1"] = ":".join((pairs * 2)[:20])
        out["cert_expiry"] = "2035-01-01T00:00:00Z"
        out["cert_subject"] = f"OU=Self-signed,O=authentik,CN={obj['name']}"
        out["private_key_available"] = True
        for key in ("private_key_type", "key_type"):
            if key in out:
                out[key] = "rsa"
        out["certificate_download_url"] = f"{API}/crypto/certificatekeypairs/{obj['pk']}/view_certificate/?download"
        out["private_key_download_url"] = f"{API}/crypto/certificatekeypairs/{obj['pk']}/view_private_key/?download"

    def _repr_brand(self, obj, out, request):
        out["brand_uuid"] = obj["pk"]

    def _repr_stage_prompt(self, obj, out, request):
        if "fields_obj" in out:
            out["fields_obj"] = []
        if "validation_policies_obj" in out:
            out["validation_policies_obj"] = []

    def _repr_prompt(self, obj, out, request):
        if "promptstage_set" in out:
            out["promptstage_set"] = []

    # -- handlers ------------------------------------------------------------------------------------
    def on_config(self, request):
        return self.json({
            "error_reporting": {"enabled": False, "sentry_dsn": "", "environment": "lab",
                                "send_pii": False, "traces_sample_rate": 0.0},
            "capabilities": ["can_save_media"],
            "cache_timeout": 300, "cache_timeout_flows": 300, "cache_timeout_policies": 300,
            "cache_timeout_reputation": 300,
        })

    def on_version(self, request):
        release = self.openapi["release"]
        return self.json({
            "version_current": release, "version_latest": release, "version_latest_valid": True,
            "build_hash": "", "outdated": False, "outpost_outdated": False,
        })

    def on_collection(self, request, kind):
        res = BY_KIND[kind]
        if request.method == "GET":
            return self._list(request, res)
        op = self.operation(self._template(res), "post")
        bad = self._check_params(request, op)
        if bad:
            return bad
        body, error = self._body(request, op, partial=False)
        if error:
            return error
        body = self._normalise(res, body)
        try:
            errors = self._semantic(res, body, None)
        except ServerCrash as exc:
            return self._crash(request, exc)
        if errors:
            return self.json(errors, status=400)
        obj = self.create(res, body)
        return self.json(self.represent(res, obj, request), status=201)

    def on_item(self, request, kind, key):
        res = BY_KIND[kind]
        op = self.operation(self._template(res, item=True), request.method)
        if op is None:
            return self.method_not_allowed(request)
        bad = self._check_params(request, op)
        if bad:
            return bad
        obj = self.lookup(res, key)
        if obj is None:
            return self._no_match(res)
        if request.method == "GET":
            return self.json(self.represent(res, obj, request))
        if request.method == "DELETE":
            self.delete(res, obj)
            return Response(status=204)
        body, error = self._body(request, op, partial=request.method == "PATCH")
        if error:
            return error
        body = self._normalise(res, body)
        try:
            errors = self._semantic(res, body, obj)
        except ServerCrash as exc:
            return self._crash(request, exc)
        if errors:
            return self.json(errors, status=400)
        self.update(res, obj, body)
        return self.json(self.represent(res, obj, request))

    def on_membership(self, request, key, action):
        op = self.operation(f"/core/groups/{{group_uuid}}/{action}_user/", "post")
        body, error = self._body(request, op, partial=False)
        if error:
            return error
        group = self.lookup(BY_KIND["group"], key)
        if group is None:
            return self._no_match(BY_KIND["group"])
        user = self.db["user"].get(int(body["pk"]))
        if user is None:
            return self.detail(404, "No User matches the given query.")
        groups = user.setdefault("groups", [])
        if action == "add" and group["pk"] not in groups:
            groups.append(group["pk"])
        elif action == "remove" and group["pk"] in groups:
            groups.remove(group["pk"])
        return Response(status=204)

    def on_set_password(self, request, key):
        op = self.operation("/core/users/{id}/set_password/", "post")
        body, error = self._body(request, op, partial=False)
        if error:
            return error
        user = self.lookup(BY_KIND["user"], key)
        if user is None:
            return self.detail(404, "No User matches the given query.")
        self.passwords[user["pk"]] = True
        user["password_change_date"] = _now()
        return Response(status=204)

    def _list(self, request, res):
        op = self.operation(self._template(res), "get")
        bad = self._check_params(request, op)
        if bad:
            return bad
        known = {p["name"] for p in (op or {}).get("parameters", [])}
        items = list(self.db[res.kind].values())
        for param, value in request.args.items(multi=True):
            if param in PAGE_PARAMS or param not in known:
                continue
            items = [o for o in items if self._match(res, o, param, value)]
        search = request.args.get("search")
        if search:
            items = [o for o in items
                     if any(search.lower() in str(o.get(f, "")).lower() for f in res.search)]
        ordering = request.args.get("ordering")
        keys = [ordering] if ordering else list(res.ordering)
        for key in reversed(keys):
            desc = key.startswith("-")
            field = key.lstrip("-")
            items.sort(key=lambda o, f=field: str(o.get(f, "")), reverse=desc)
        try:
            size = int(request.args.get("page_size") or self.page_size)
            page = int(request.args.get("page") or 1)
        except ValueError:
            return self.detail(404, "Invalid page.")
        if size < 1:
            size = self.page_size
        if self.max_page_size:
            size = min(size, self.max_page_size)
        count = len(items)
        pages = max(1, -(-count // size))
        if page < 1 or page > pages:
            return self.detail(404, "Invalid page.")
        chunk = items[(page - 1) * size: page * size]
        body = {
            "pagination": {
                "next": page + 1 if page < pages else 0,
                "previous": page - 1 if page > 1 else 0,
                "count": count,
                "current": page,
                "total_pages": pages,
                "start_index": (page - 1) * size + 1 if count else 0,
                "end_index": (page - 1) * size + len(chunk),
            },
            "results": [self.represent(res, o, request) for o in chunk],
        }
        listing = self.validator.resolve(
            (op.get("responses") or {}).get("200") or {"type": "object"})
        if "autocomplete" in listing.get("properties", {}):
            body["autocomplete"] = {}
        return self.json(body)

    def _match(self, res, obj, param, value):
        if param in res.filters:
            try:
                return res.filters[param](obj, value, self)
            except (TypeError, ValueError):
                return False
        field, _, op = param.partition("__")
        if field in ("include_users", "include_groups", "include_children", "include_parents",
                     "include_inherited_roles", "include_roles", "superuser_full_list",
                     "for_user", "only_with_launch_url"):
            return True
        if field == "target" and res.kind == "policy_binding":
            return str(obj.get("target")) == value
        if field not in obj:
            return True  # a filter the simulator does not model: no narrowing
        got = obj.get(field)
        if op == "isnull":
            return (got in (None, [], "")) == _flag(value)
        if op == "iexact":
            return str(got).lower() == value.lower()
        if op == "icontains":
            return value.lower() in str(got).lower()
        if isinstance(got, bool):
            return got == _flag(value)
        if isinstance(got, list):
            return value in [str(v) for v in got]
        return "" if got is None else str(got) == value

    # -- lab control -----------------------------------------------------------------------------------
    def snapshot(self):
        return {
            "release": self.openapi["release"],
            "page_size": self.page_size,
            "objects": {kind: list(table.values()) for kind, table in self.db.items()},
            "passwords_set": sorted(self.passwords),
        }

    # -- a fresh install ----------------------------------------------------------------------------
    def _seed(self):
        def flow(slug, name, designation, title=None, authentication="none"):
            return self.create(BY_KIND["flow"], {
                "slug": slug, "name": name, "title": title or name,
                "designation": designation, "authentication": authentication})

        def stage(kind, name, **fields):
            return self.create(BY_KIND[kind], dict(fields, name=name))

        def bind(flow_obj, stage_obj, order):
            self.create(BY_KIND["flow_binding"], {
                "target": flow_obj["pk"], "stage": stage_obj["pk"], "order": order})

        authn = flow("default-authentication-flow", "Welcome to authentik!", "authentication")
        flow("default-invalidation-flow", "Logout", "invalidation")
        flow("default-provider-authorization-explicit-consent",
             "Authorize Application", "authorization",
             "Redirecting to %(app)s", "require_authenticated")
        flow("default-provider-authorization-implicit-consent",
             "Authorize Application", "authorization",
             "Redirecting to %(app)s", "require_authenticated")
        flow("default-provider-invalidation-flow", "Logged out of application", "invalidation",
             "You've logged out of %(app)s.")
        flow("default-user-settings-flow", "User settings", "stage_configuration",
             "Update your info", "require_authenticated")
        flow("default-source-enrollment", "Welcome to authentik! Please select a username.",
             "enrollment", authentication="require_unauthenticated")
        flow("default-password-change", "Change password", "stage_configuration",
             authentication="require_authenticated")
        ident = stage("stage_identification", "default-authentication-identification",
                      user_fields=["email", "username"])
        pwd = stage("stage_password", "default-authentication-password",
                    backends=["authentik.core.auth.InbuiltBackend", "authentik.core.auth.TokenBackend"])
        login = stage("stage_user_login", "default-authentication-login")
        bind(authn, ident, 10)
        bind(authn, pwd, 20)
        bind(authn, login, 100)
        brand = {"domain": "authentik-default", "default": True,
                 "flow_authentication": authn["pk"],
                 "flow_invalidation": self._flow_pk("default-invalidation-flow"),
                 "flow_user_settings": self._flow_pk("default-user-settings-flow")}
        self.create(BY_KIND["brand"], brand)
        mappings = [
            ("openid", "return {}", ""),
            ("email", 'return {"email": request.user.email, "email_verified": False}', "Email address"),
            ("profile", 'return {"name": request.user.name, "given_name": request.user.name, '
                        '"preferred_username": request.user.username, "nickname": request.user.username, '
                        '"groups": [group.name for group in request.user.ak_groups.all()]}',
             "General Profile Information"),
            ("offline_access", "return {}", "Access to request new tokens without interaction"),
        ]
        for scope, expr, desc in mappings:
            self.create(BY_KIND["scope_mapping"], {
                "name": f"authentik default OAuth Mapping: OpenID '{scope}'",
                "scope_name": scope, "expression": expr, "description": desc,
                "managed": f"goauthentik.io/providers/oauth2/scope-{scope}"})
        self.create(BY_KIND["outpost"], {
            "name": "authentik Embedded Outpost", "type": "proxy", "providers": [],
            "managed": "goauthentik.io/outposts/embedded",
            "config": {"authentik_host": "", "log_level": "info", "object_naming_template": "ak-outpost-%(name)s"}})
        self.create(BY_KIND["certificate"], {"name": "authentik Self-signed Certificate"})
        admins = self.create(BY_KIND["group"], {"name": "authentik Admins", "is_superuser": True})
        akadmin = self.create(BY_KIND["user"], {"username": "akadmin", "name": "authentik Default Admin",
                                                "email": "root@localhost"})
        akadmin["groups"] = [admins["pk"]]

    def _flow_pk(self, slug):
        return next(f["pk"] for f in self.db["flow"].values() if f["slug"] == slug)


def _verbose(res):
    return {"OAuth2Provider": "OAuth2/OpenID Provider", "ProxyProvider": "Proxy Provider",
            "ScopeMapping": "Scope Mapping", "FlowStageBinding": "Flow Stage Binding",
            "PolicyBinding": "Policy Binding", "IdentificationStage": "Identification Stage",
            "CaptchaStage": "Captcha Stage", "PasswordStage": "Password Stage",
            "PromptStage": "Prompt Stage", "UserWriteStage": "User Write Stage",
            "UserLoginStage": "User Login Stage"}.get(res.model, res.model)


def _uid(pk):
    return f"{pk:064x}"


def _default_for(prop):
    if prop.get("nullable"):
        return None
    return {"string": "", "integer": 0, "number": 0, "boolean": False, "array": [],
            "object": {}}.get(prop.get("type"))


def _coerce(prop, value, validator):
    if value is None:
        return None
    kind = prop.get("type")
    if "enum" in prop:
        return value
    if kind == "integer":
        return int(value)
    if kind == "number":
        return float(value)
    if kind == "boolean":
        return value in TRUE_VALUES
    if kind == "string":
        value = str(value)
        return value.lower() if prop.get("format") == "uuid" else value
    if kind == "array":
        item = validator.resolve(prop.get("items", {}))
        return [_coerce(item, v, validator) for v in value]
    if kind == "object" and "properties" in prop:
        return {k: _coerce(validator.resolve(prop["properties"][k]), v, validator)
                for k, v in value.items() if k in prop["properties"]}
    return value

