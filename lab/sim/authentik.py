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
  Authentik enforces it (group names, provider/mapping/stage names, application and flow
  slugs, usernames, outpost names);
  a policy binding needs exactly one of policy/group/user (``non_field_errors``);
- DRF partial updates (``PATCH`` is ``partial=True``): only the SENT fields are
  validated, and each serializer's ``validate(attrs)`` sees only them, never the stored
  object merged in; the ``validate()`` of every serializer hecate's writes reach is
  reproduced: identification stage (user fields or sources), policy binding (``target``
  and one of policy/user/group; a PATCH without ``target`` crashes the real server: 500),
  proxy provider (``internal_host`` unless ``mode`` is sent and not proxy), brand (one
  default), user (``path`` and ``type`` field validators; internal service accounts are
  read-only); ``unique_together`` checks fill unsent fields from the object, as DRF does;
- DRF list defaults: a POST or PUT without group ``users`` (+ ``children`` on 2025.10,
  ``parents`` from 2025.12) or user ``groups`` (+ ``roles`` from 2025.12) sets them to
  ``[]``; a written ``children`` (2025.10) re-parents groups;
- proxy providers get ``set_oauth_defaults`` on every write (the managed
  openid/profile/email/entitlements/proxy mappings added, the two outpost callback
  redirect URIs); the basic-auth, host-URL and outpost provider/name validators;
- URL routing as Django's: no trailing slash, or an unknown URL, is an HTML 404 before
  authentication (APPEND_SLASH = False); a real action the simulator does not serve is
  a lab 501; a malformed object key is 404 "Not found.";
- list filters as each viewset's FilterSet (``FILTERS``): unknown choices and related
  objects are django-filter's 400s, garbage booleans filter nothing, and a documented
  filter the table lacks is a lab 400, never silently ignored;
- the application list without ``superuser_full_list=true`` (or from a non-superuser):
  policy-filtered for the token's user and cached per (user, page) ignoring filters,
  cleared by an application creation or a binding/group/user save; tokens may name
  their user (``tokens: {key: {user: <username>}}``, akadmin by default);
- unique messages word for word per declaring model (``provider with this name ...``,
  ``stage with ...``, group names global and "This field must be unique." before
  2025.12); a flow's pbm_uuid is no flow; policy-binding targets accept either pk and
  come back as the subclass pk;
- page-number pagination (``pagination.next`` is a page number, 0 at the end; "Invalid
  page." 404 past the end) with the release's page size: default 100 without a cap up
  to 2025.10, default 20 and at most 100 from 2025.12;
- OAuth2 providers get a generated 40-character client id and 128-character secret
  (returned in clear on GET, as Authentik does); groups carry ``parent`` before 2025.12
  and ``parents`` after; deletes cascade like the models (bindings of a deleted group or
  application, stage bindings of a deleted flow);
- a fresh install: the default flows, stages and flow bindings, the seven managed scope
  mappings, the embedded outpost, the default brand, the ``authentik Admins`` group and
  ``akadmin``. ``POST /_lab/objects`` stores an object without today's validation (what
  an older database may hold).

Config (``--config`` JSON)::

    {"version": "2025.10",                # 2025.6 | 2025.10 | 2026.5
     "token": "<api token>",              # full access (akadmin's API token)
     "tokens": {"<key>": {"permissions": "none" | "read" | "all", "user": "<username>"}},
     "strict": false,
     "bootstrap": {"token": null, "password": false, "email": null},
     "ready_requires": [["127.0.0.1", 5432]],
     "database_ok": true,
     "state_file": null}

As the Nomad job's stand-in (lab/sim/nomad_tasks.py), the server of a fresh install:

- ``bootstrap`` is Authentik's first start (AUTHENTIK_BOOTSTRAP_TOKEN, _PASSWORD, _EMAIL;
  docs.goauthentik.io "Automated install": "Only read on the first startup"): the token
  becomes an API token of akadmin (intent API), the password akadmin's, the e-mail his.
  With a ``state_file`` that exists (the database of an earlier start) they are ignored;
- ``/-/health/live/`` answers 200 while the server runs, ``/-/health/ready/`` 200 only while
  every ``ready_requires`` address accepts a TCP connection (PostgreSQL; Redis before
  2025.10), else 503 (docs.goauthentik.io "Monitoring"); ``database_ok: false`` (the
  credentials are not those PostgreSQL was initialised with) keeps it at 503;
- ``state_file``: the objects are kept there after every write and read back at start (the
  data of a real Authentik lives in PostgreSQL, so it survives a restart).
"""

import copy
import datetime
import json
import os
import re
import secrets
import string
import textwrap
import time
import urllib.parse
import uuid

from werkzeug.exceptions import HTTPException, NotFound
from werkzeug.routing import Rule
from werkzeug.wrappers import Response

try:
    from lab.sim.authentik_saml import SAMLIdP
    from lab.sim.authentik_web import EmbeddedOutpost, hash_password
    from lab.sim.base import Simulator
except ImportError:  # pragma: no cover
    from authentik_saml import SAMLIdP  # type: ignore
    from authentik_web import EmbeddedOutpost, hash_password  # type: ignore
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
# handler404 (authentik/core/views/error.py NotFoundView) renders if/error.html: an HTML
# page titled "Not Found" (the lab's page is its own, not the vendor template)
NOT_FOUND_PAGE = ("<!DOCTYPE html>\n<html><head><title>Not Found - authentik</title></head>"
                  "<body><h1>Not Found</h1></body></html>\n")


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
                 since=None):
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
        self.since = since


STAGE_KINDS = ("stage_identification", "stage_captcha", "stage_password", "stage_prompt",
               "stage_user_write", "stage_user_login")
PROVIDER_KINDS = ("provider_oauth2", "provider_proxy", "provider_saml")
# the serializer class of each provider kind (outpost type checks, messages)
PROVIDER_CLASSES = {"provider_proxy": "ProxyProvider", "provider_oauth2": "OAuth2Provider",
                    "provider_saml": "SAMLProvider"}
# PolicyBindingModel subclasses the lab has: an application's pk IS its pbm_uuid; a flow
# (flow_uuid) and a flow stage binding (fsb_uuid) have a pk of their own besides it.
PBM_KINDS = ("application", "flow", "flow_binding")
# ProxyProvider.set_oauth_defaults (authentik/providers/proxy/models.py): the managed
# scope mappings every proxy provider gets, and its callback marker
PROXY_SCOPES = frozenset({
    "goauthentik.io/providers/oauth2/scope-openid", "goauthentik.io/providers/oauth2/scope-profile",
    "goauthentik.io/providers/oauth2/scope-email", "goauthentik.io/providers/oauth2/scope-entitlements",
    "goauthentik.io/providers/proxy/scope-proxy"})
CALLBACK_SIGNATURE = "X-authentik-auth-callback"
EMBEDDED_OUTPOST = "goauthentik.io/outposts/embedded"
EMBEDDED_OUTPOST_NAME = "authentik Embedded Outpost"
# DomainlessURLValidator(schemes=("http", "https")) (authentik/lib/models.py): its schemes
# are http, https and "blank"; the host may lack a domain
HOST_URL_RE = re.compile(r"^(?:https?|blank)://(?:[^\s:@/]+(?::[^\s:@/]*)?@)?[^\s/?#:]+(?::\d{1,5})?(?:[/?#]\S*)?$",
                         re.I)


def _flag(value):
    return str(value).lower() in ("1", "true", "t", "yes", "y", "on")


RESOURCES = [
    Res("group", "/core/groups/", "Group", "Group", ordering=("name",),
        defaults={"is_superuser": False, "attributes": {}, "roles": []},
        refs={"parent": ("group",), "parents": ("group",), "users": ("user",)}),
    Res("user", "/core/users/", "User", "User", pk="int", ordering=("username",),
        search=("username", "name", "email"),
        defaults={"is_active": True, "last_login": None, "groups": [], "email": "",
                  "attributes": {}, "path": "users", "type": "internal", "roles": []},
        refs={"groups": ("group",)}, unique=("username",)),
    Res("application", "/core/applications/", "Application", "Application",
        lookup_field="slug", ordering=("name",),
        search=("name", "slug", "meta_launch_url", "meta_description", "meta_publisher", "group"),
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
        unique=("name", "client_id")),
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
    # authentik/providers/saml/models.py SAMLProvider field defaults (2025.6 to 2026.5;
    # ``issuer`` became ``issuer_override`` in 2026.x: the release's schema keeps one)
    Res("provider_saml", "/providers/saml/", "SAMLProvider", "SAMLProvider", pk="int",
        defaults={"authentication_flow": None, "property_mappings": [], "audience": "",
                  "issuer": "authentik", "issuer_override": "", "sp_binding": "redirect",
                  "sls_url": "", "sls_binding": "redirect", "logout_method": "frontchannel_iframe",
                  "name_id_mapping": None, "authn_context_class_ref_mapping": None,
                  "assertion_valid_not_before": "minutes=-5", "assertion_valid_not_on_or_after": "minutes=5",
                  "session_valid_not_on_or_after": "minutes=86400",
                  "digest_algorithm": "http://www.w3.org/2001/04/xmlenc#sha256",
                  "signature_algorithm": "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
                  "verification_kp": None, "signing_kp": None, "encryption_kp": None,
                  "default_relay_state": "",
                  "default_name_id_policy": "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified",
                  "sign_assertion": True, "sign_response": False, "sign_logout_request": False,
                  "sign_logout_response": False},
        refs={"authentication_flow": ("flow",), "authorization_flow": ("flow",),
              "invalidation_flow": ("flow",), "property_mappings": ("saml_mapping",),
              "name_id_mapping": ("saml_mapping",), "authn_context_class_ref_mapping": ("saml_mapping",),
              "verification_kp": ("certificate",), "signing_kp": ("certificate",),
              "encryption_kp": ("certificate",)},
        unique=("name",)),
    Res("saml_mapping", "/propertymappings/provider/saml/", "SAMLPropertyMapping", "SAMLPropertyMapping",
        defaults={"managed": None, "friendly_name": None}, unique=("name", "managed"),
        search=("name", "saml_name", "friendly_name")),
    Res("scope_mapping", "/propertymappings/provider/scope/", "ScopeMapping", "ScopeMapping",
        defaults={"managed": None, "description": ""}, unique=("name", "managed"),
        search=("name", "scope_name")),
    Res("flow", "/flows/instances/", "Flow", "Flow", lookup_field="slug", ordering=("slug", "name"),
        search=("name", "slug", "designation", "title"),
        defaults={"policy_engine_mode": "any", "compatibility_mode": False, "layout": "stacked",
                  "denied_action": "message_continue", "authentication": "none",
                  "background": ""},
        unique=("slug",)),
    Res("flow_binding", "/flows/bindings/", "FlowStageBinding", "FlowStageBinding",
        ordering=("order", "pk"), search=("stage__name",),
        defaults={"evaluate_on_plan": False, "re_evaluate_policies": True,
                  "policy_engine_mode": "any", "invalid_response_action": "retry"},
        refs={"target": ("flow",), "stage": STAGE_KINDS}),
    Res("policy_binding", "/policies/bindings/", "PolicyBinding", "PolicyBinding",
        ordering=("order", "pk"), search=("policy__name",),
        defaults={"policy": None, "group": None, "user": None, "negate": False, "enabled": True,
                  "timeout": 30, "failure_result": False},
        refs={"group": ("group",), "user": ("user",), "policy": ("policy",),
              "target": ("pbm",)}),
    Res("outpost", "/outposts/instances/", "Outpost", "Outpost", ordering=("name",),
        defaults={"service_connection": None, "managed": None, "config": {}},
        refs={"providers": PROVIDER_KINDS}, unique=("name",)),
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
        defaults={"validation_policies": []}, refs={"fields": ("prompt",)}, unique=("name",)),
    Res("stage_user_write", "/stages/user_write/", "UserWriteStage", "UserWriteStage",
        defaults={"user_creation_mode": "create_when_required", "create_users_as_inactive": False,
                  "create_users_group": None, "user_type": "external", "user_path_template": ""},
        refs={"create_users_group": ("group",)}, unique=("name",)),
    Res("certificate", "/crypto/certificatekeypairs/", "CertificateKeyPair", "CertificateKeyPair",
        defaults={"managed": None}, unique=("name", "managed")),
    Res("stage_user_login", "/stages/user_login/", "UserLoginStage", "UserLoginStage",
        defaults={"session_duration": "seconds=0", "terminate_other_sessions": False,
                  "remember_me_offset": "seconds=0", "network_binding": "no_binding",
                  "geoip_binding": "no_binding", "remember_device": "days=30"},
        unique=("name",)),
]
BY_KIND = {r.kind: r for r in RESOURCES}

# Response-only fields that Authentik computes and the simulator fills in.
COMPONENTS = {
    "provider_oauth2": ("ak-provider-oauth2-form", "oauth2provider", "OAuth2/OpenID Provider"),
    "provider_proxy": ("ak-provider-proxy-form", "proxyprovider", "Proxy Provider"),
    "provider_saml": ("ak-provider-saml-form", "samlprovider", "SAML Provider"),
    "saml_mapping": ("ak-property-mapping-provider-saml-form", "samlpropertymapping", "SAML Provider Property Mapping"),
    "scope_mapping": ("ak-property-mapping-provider-scope-form", "scopemapping", "Scope Mapping"),
    "stage_identification": ("ak-stage-identification-form", "identificationstage", "Identification Stage"),
    "stage_captcha": ("ak-stage-captcha-form", "captchastage", "Captcha Stage"),
    "stage_password": ("ak-stage-password-form", "passwordstage", "Password Stage"),
    "stage_prompt": ("ak-stage-prompt-form", "promptstage", "Prompt Stage"),
    "stage_user_write": ("ak-stage-user-write-form", "userwritestage", "User Write Stage"),
    "stage_user_login": ("ak-stage-user-login-form", "userloginstage", "User Login Stage"),
}

# ----------------------------------------------------------------------------------------
# List filters: each viewset's django-filter FilterSet (filterset_fields / filterset_class)
# ----------------------------------------------------------------------------------------
# DRF's DjangoFilterBackend builds the FilterSet's form from the query string; an invalid
# form is ``translate_validation(filterset.errors)``, a 400 ``{"<param>": ["<message>"]}``
# (django_filters/rest_framework/backends.py). The messages are Django's form fields':
# ModelChoiceField / ChoiceField / ModelMultipleChoiceField ``invalid_choice``,
# UUIDField "Enter a valid UUID.", DecimalField "Enter a number.", DateTimeField "Enter a
# valid date/time.". A BooleanFilter's widget turns anything but true/false/1/0 into None,
# which filters nothing (django_filters/widgets.py BooleanWidget). An empty value skips a
# filter. Parameters the release documents but this table lacks are refused with a lab
# 400 (never silently ignored), parameters the schema does not know are the
# ``unknown_params`` of the request log (a 400 in strict mode).
CHOICE_MSG = "Select a valid choice. That choice is not one of the available choices."


def _choice_msg(value):
    return f"Select a valid choice. {value} is not one of the available choices."


class Filt:
    """
    One filter. ``kind``: char, bool, uuid, number, datetime, choice, multichoice, fk,
    m2m, allvalues, attributes, custom. ``get(obj, sim)`` gives the object's value (for
    m2m: the related keys); ``ref``: the kinds an fk/m2m value must name, looked up by
    ``by`` (``pk``, ``pbm`` for a PolicyBindingModel's pbm_uuid, or a field name).
    """

    def __init__(self, kind, get=None, lookup="exact", ref=(), by="pk", test=None):
        self.kind = kind
        self.get = get
        self.lookup = lookup
        self.ref = ref
        self.by = by
        self.test = test  # custom: callable(obj, parsed_value, sim) -> bool


def _field(name):
    return lambda o, s: o.get(name)


def _char(name, lookup="exact"):
    return Filt("char", _field(name), lookup)


def _bool(name):
    return Filt("bool", _field(name))


def _fk(name, *kinds, by="pk"):
    return Filt("fk", _field(name), ref=kinds, by=by)


def _m2m(get, *kinds, by="pk"):
    return Filt("m2m", get if callable(get) else _field(get), ref=kinds, by=by)


def _isnull(get):
    return Filt("bool", lambda o, s: get(o, s) in (None, []), lookup="isnull")


def _stage_filters(*extra):
    out = {"name": _char("name"), "stage_uuid": Filt("uuid", _field("pk"))}
    for name in extra:
        out[name] = _char(name)
    return out


def _user_is_superuser(obj, value, sim):
    # UsersFilter.filter_is_superuser: a DIRECT group with is_superuser (ak_groups)
    direct = any(sim.db["group"].get(g, {}).get("is_superuser") for g in obj.get("groups", []))
    return direct == value


def _has_key(obj, value, sim):
    # CertificateKeyPairFilter.filter_has_key: false filters nothing
    return (not value) or bool(obj.get("key_data") or obj.get("seeded_key"))


def _app_of_provider(obj, sim):
    return next((a["pk"] for a in sim.db["application"].values() if a.get("provider") == obj["pk"]), None)


FILTERS = {
    # authentik/core/api/groups.py GroupFilter
    "group": {
        "name": _char("name"), "is_superuser": _bool("is_superuser"),
        "members_by_pk": _m2m(lambda o, s: s.group_users(o["pk"]), "user"),
        "members_by_username": _m2m(lambda o, s: [s.db["user"][u]["username"] for u in s.group_users(o["pk"])],
                                    "user", by="username"),
        "attributes": Filt("attributes"),
    },
    # authentik/core/api/users.py UsersFilter
    "user": {
        "username": _char("username"), "email": _char("email"), "name": _char("name"),
        "path": _char("path"), "path_startswith": _char("path", "startswith"),
        "is_active": _bool("is_active"),
        "is_superuser": Filt("custom", test=_user_is_superuser),
        "date_joined": Filt("datetime", _field("date_joined")),
        "date_joined__gt": Filt("datetime", _field("date_joined"), "gt"),
        "date_joined__lt": Filt("datetime", _field("date_joined"), "lt"),
        "last_updated": Filt("datetime", _field("last_updated")),
        "last_updated__gt": Filt("datetime", _field("last_updated"), "gt"),
        "last_updated__lt": Filt("datetime", _field("last_updated"), "lt"),
        "last_login": Filt("datetime", _field("last_login")),
        "last_login__gt": Filt("datetime", _field("last_login"), "gt"),
        "last_login__lt": Filt("datetime", _field("last_login"), "lt"),
        "last_login__isnull": _isnull(_field("last_login")),
        "type": Filt("multichoice", _field("type")),
        "uuid": Filt("uuid", _field("uuid")),
        "groups_by_name": _m2m(lambda o, s: [s.db["group"][g]["name"] for g in o.get("groups", [])
                                             if g in s.db["group"]], "group", by="name"),
        "groups_by_pk": _m2m("groups", "group"),
        "roles_by_name": _m2m("roles", "role", by="name"),
        "roles_by_pk": _m2m("roles", "role"),
        "attributes": Filt("attributes"),
    },
    # authentik/core/api/applications.py ApplicationViewSet.filterset_fields
    "application": {name: _char(name) for name in (
        "name", "slug", "meta_launch_url", "meta_description", "meta_publisher", "group")},
    # authentik/brands/api.py BrandViewSet.filterset_fields
    "brand": dict(
        {name: _char(name) for name in ("domain", "branding_title", "branding_logo", "branding_favicon",
                                        "branding_default_flow_background")},
        brand_uuid=Filt("uuid", _field("pk")), default=_bool("default"),
        web_certificate=_fk("web_certificate", "certificate"),
        client_certificates=_m2m("client_certificates", "certificate"),
        **{name: _fk(name, "flow") for name in (
            "flow_authentication", "flow_invalidation", "flow_recovery", "flow_unenrollment",
            "flow_user_settings", "flow_device_code", "flow_lockdown")}),
    # authentik/providers/oauth2/api/providers.py OAuth2ProviderViewSet.filterset_fields
    "provider_oauth2": dict(
        {name: _char(name) for name in ("name", "client_id", "access_code_validity",
                                        "access_token_validity", "refresh_token_validity")},
        authorization_flow=_fk("authorization_flow", "flow"),
        property_mappings=_m2m("property_mappings", "scope_mapping"),
        application=Filt("fk", _app_of_provider, ref=("application",)),
        client_type=Filt("choice", _field("client_type")), sub_mode=Filt("choice", _field("sub_mode")),
        issuer_mode=Filt("choice", _field("issuer_mode")),
        include_claims_in_id_token=_bool("include_claims_in_id_token"),
        signing_key=_fk("signing_key", "certificate")),
    # authentik/providers/proxy/api.py ProxyProviderViewSet.filterset_fields (lookups as listed)
    "provider_proxy": dict(
        {f"{name}__iexact": _char(name, "iexact") for name in (
            "name", "internal_host", "external_host", "skip_path_regex", "basic_auth_password_attribute",
            "basic_auth_user_attribute", "mode", "cookie_domain")},
        application__isnull=_isnull(_app_of_provider),
        authorization_flow__slug__iexact=Filt(
            "char", lambda o, s: (s.db["flow"].get(o.get("authorization_flow")) or {}).get("slug"), "iexact"),
        property_mappings__iexact=_m2m("property_mappings", "scope_mapping"),
        internal_host_ssl_validation__iexact=_bool("internal_host_ssl_validation"),
        basic_auth_enabled__iexact=_bool("basic_auth_enabled"),
        certificate__kp_uuid__iexact=Filt("uuid", _field("certificate")),
        certificate__name__iexact=Filt(
            "char", lambda o, s: (s.db["certificate"].get(o.get("certificate") or "") or {}).get("name"), "iexact")),
    # authentik/providers/saml/api/providers.py SAMLProviderViewSet.filterset_fields (the
    # char fields exact; the relations by pk)
    "provider_saml": dict(
        {name: _char(name) for name in (
            "name", "acs_url", "audience", "issuer", "issuer_override", "sp_binding", "sls_url", "sls_binding",
            "logout_method", "assertion_valid_not_before", "assertion_valid_not_on_or_after",
            "session_valid_not_on_or_after", "digest_algorithm", "signature_algorithm", "default_relay_state",
            "default_name_id_policy")},
        authentication_flow=_fk("authentication_flow", "flow"), authorization_flow=_fk("authorization_flow", "flow"),
        invalidation_flow=_fk("invalidation_flow", "flow"),
        property_mappings=_m2m("property_mappings", "saml_mapping"),
        name_id_mapping=_fk("name_id_mapping", "saml_mapping"),
        authn_context_class_ref_mapping=_fk("authn_context_class_ref_mapping", "saml_mapping"),
        signing_kp=_fk("signing_kp", "certificate"), verification_kp=_fk("verification_kp", "certificate"),
        encryption_kp=_fk("encryption_kp", "certificate"),
        sign_assertion=_bool("sign_assertion"), sign_response=_bool("sign_response"),
        sign_logout_request=_bool("sign_logout_request"), sign_logout_response=_bool("sign_logout_response"),
        is_backchannel=_bool("is_backchannel"),
        backchannel_application=Filt("fk", lambda o, s: None, ref=("application",))),
    # authentik/providers/saml/api/property_mappings.py SAMLPropertyMappingFilter
    "saml_mapping": {"name": _char("name"), "saml_name": _char("saml_name"),
                     "friendly_name": _char("friendly_name"),
                     "managed": Filt("allvalues", _field("managed")),
                     "managed__isnull": _isnull(_field("managed"))},
    # authentik/core/api/property_mappings.py PropertyMappingFilterSet + ScopeMappingFilter
    "scope_mapping": {"name": _char("name"), "scope_name": _char("scope_name"),
                      "managed": Filt("allvalues", _field("managed")),
                      "managed__isnull": _isnull(_field("managed"))},
    # authentik/flows/api/flows.py FlowViewSet.filterset_fields
    "flow": {"flow_uuid": Filt("uuid", _field("pk")), "name": _char("name"), "slug": _char("slug"),
             "designation": Filt("choice", _field("designation")),
             "denied_action": Filt("choice", _field("denied_action"))},
    # authentik/flows/api/bindings.py FlowStageBindingViewSet.filterset_fields = "__all__"
    "flow_binding": {"target": _fk("target", "flow"), "stage": _fk("stage", *STAGE_KINDS),
                     "order": Filt("number", _field("order")),
                     "evaluate_on_plan": _bool("evaluate_on_plan"),
                     "re_evaluate_policies": _bool("re_evaluate_policies"),
                     "invalid_response_action": Filt("choice", _field("invalid_response_action")),
                     "policy_engine_mode": Filt("choice", _field("policy_engine_mode")),
                     "fsb_uuid": Filt("uuid", _field("pk")), "pbm_uuid": Filt("uuid", _field("pbm_uuid")),
                     "policies": _m2m(lambda o, s: [], "policy")},
    # authentik/policies/api/bindings.py PolicyBindingFilter: target is the FK to
    # PolicyBindingModel, i.e. a pbm_uuid (a flow's flow_uuid is no valid choice)
    "policy_binding": {"policy": _fk("policy", "policy"), "policy__isnull": _isnull(_field("policy")),
                       "target": _fk("target", "pbm", by="pbm"),
                       "target_in": _m2m(lambda o, s: [o["target"]], "pbm", by="pbm"),
                       "enabled": _bool("enabled"), "order": Filt("number", _field("order")),
                       "timeout": Filt("number", _field("timeout"))},
    # authentik/outposts/api/outposts.py OutpostFilter
    "outpost": {"providers__isnull": _isnull(_field("providers")),
                "name__iexact": _char("name", "iexact"), "name__icontains": _char("name", "icontains"),
                "managed__iexact": _char("managed", "iexact"),
                "managed__icontains": _char("managed", "icontains"),
                # the lab has no service connections: every outpost's is null
                "service_connection__name__iexact": Filt("char", lambda o, s: None, "iexact"),
                "service_connection__name__icontains": Filt("char", lambda o, s: None, "icontains"),
                "providers_by_pk": _m2m("providers", *PROVIDER_KINDS)},
    # authentik/stages/*/api.py filterset_fields
    "stage_identification": dict(
        name=_char("name"), password_stage=_fk("password_stage", "stage_password"),
        captcha_stage=_fk("captcha_stage", "stage_captcha"), webauthn_stage=_fk("webauthn_stage", "webauthn"),
        case_insensitive_matching=_bool("case_insensitive_matching"),
        show_matched_user=_bool("show_matched_user"), show_source_labels=_bool("show_source_labels"),
        enrollment_flow=_fk("enrollment_flow", "flow"), recovery_flow=_fk("recovery_flow", "flow"),
        passwordless_flow=_fk("passwordless_flow", "flow")),
    "stage_captcha": {"name": _char("name"), "public_key": _char("public_key")},
    "stage_password": {"name": _char("name"), "configure_flow": _fk("configure_flow", "flow"),
                       "failed_attempts_before_cancel": Filt("number", _field("failed_attempts_before_cancel")),
                       "allow_show_password": _bool("allow_show_password")},
    "prompt": dict({name: _char(name) for name in ("field_key", "label", "name", "placeholder")},
                   type=Filt("choice", _field("type"))),
    "stage_prompt": dict(_stage_filters(), fields=_m2m("fields", "prompt"),
                         validation_policies=_m2m("validation_policies", "policy")),
    "stage_user_write": dict(_stage_filters("user_path_template"),
                             create_users_as_inactive=_bool("create_users_as_inactive"),
                             create_users_group=_fk("create_users_group", "group"),
                             user_creation_mode=Filt("choice", _field("user_creation_mode")),
                             user_type=Filt("choice", _field("user_type"))),
    "stage_user_login": dict(_stage_filters("session_duration", "remember_me_offset", "remember_device"),
                             terminate_other_sessions=_bool("terminate_other_sessions"),
                             network_binding=Filt("choice", _field("network_binding")),
                             geoip_binding=Filt("choice", _field("geoip_binding"))),
    # authentik/crypto/api.py CertificateKeyPairFilter
    "certificate": {"name": _char("name"), "managed": _char("managed"),
                    "has_key": Filt("custom", test=_has_key),
                    "key_type": Filt("multichoice", _field("key_type"))},
}
# Query parameters that are no filters: serializer switches and the application list's own.
SWITCHES = frozenset({"include_users", "include_groups", "include_children", "include_parents",
                      "include_inherited_roles", "include_roles", "include_details"})
APP_LIST_PARAMS = frozenset({"superuser_full_list", "for_user", "only_with_launch_url"})


# Actions under the served collections that the extracted schemas leave out
# (authentik_schemas/extract.py SKIP_SUFFIXES): real endpoints, unimplemented here
UNSERVED_ACTIONS = (
    "/used_by/", "/diagram/", "/execute/", "/export/", "/set_background/",
    "/set_background_url/", "/set_icon/", "/check_access/",
    "/impersonate/", "/impersonate_end/", "/recovery/", "/recovery_email/", "/me/",
    "/paths/", "/service_account/", "/preview_user/", "/setup_urls/", "/health/",
    "/default_settings/", "/cache_clear/", "/cache_info/", "/import/", "/preview/",
    "/current/", "/history/", "/export_csv/", "/bulk_delete/", "/metrics/",
    "/account_lockdown/", "/set_password_hash/", "/generate/", "/view_certificate/",
    "/view_private_key/",
)

# Django app labels of the models (meta_model_name is "<app_label>.<model>")
APP_LABELS = {"provider_oauth2": "providers_oauth2", "provider_proxy": "providers_proxy",
              "provider_saml": "providers_saml", "saml_mapping": "providers_saml",
              "scope_mapping": "providers_oauth2", "stage_identification": "stages_identification",
              "stage_captcha": "stages_captcha", "stage_password": "stages_password",
              "stage_prompt": "stages_prompt", "stage_user_write": "stages_user_write",
              "stage_user_login": "stages_user_login"}


class AuthentikSim(EmbeddedOutpost, SAMLIdP, Simulator):
    """
    The REST API (this module), the browser side (lab/sim/authentik_web.py) and the SAML
    IdP's URLs, metadata and certificates (lab/sim/authentik_saml.py).
    """

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
            self.tokens[key] = {"permissions": info.get("permissions", "all"),
                                "user": info.get("user", "akadmin")}
        if self.version >= (2025, 12):
            self.page_size, self.max_page_size = 20, 100
        else:
            self.page_size, self.max_page_size = 100, None
        self.ready_requires = [tuple(a) for a in cfg.get("ready_requires") or []]
        self.database_ok = cfg.get("database_ok", True)  # False: its database refuses the login
        self.state_file = cfg.get("state_file")
        if self.state_file and os.path.exists(self.state_file):
            self._empty()
            self._load_state()  # an existing database: the bootstrap is not read again
        else:
            self._fresh_install()

    def _empty(self):
        self.db = {r.kind: {} for r in RESOURCES}
        self.db["policy"] = {}
        self.passwords = {}  # user pk -> (salt, PBKDF2 hash) of the password set (never the value)
        self.app_cache = {}  # (user pk, page) -> (expiry, [application pks]): see _applications_for_user
        self.next_int = {"user": 1, "provider": 1}
        self.init_web()

    def _fresh_install(self):
        """The database as a new install has it, bootstrapped (also ``POST /_lab/reset``)."""
        self._empty()
        self._seed()
        self._bootstrap(self.options.get("bootstrap") or {})
        self._save_state()

    # -- routing -----------------------------------------------------------------------------
    def rules(self):
        rules = [
            Rule("/-/health/live/", endpoint="health_live", methods=["GET", "HEAD"]),
            Rule("/-/health/ready/", endpoint="health_ready", methods=["GET", "HEAD"]),
            Rule(f"{API}/root/config/", endpoint="config", methods=["GET"]),
            Rule(f"{API}/admin/version/", endpoint="version", methods=["GET"]),
            Rule(f"{API}/core/groups/<key>/add_user/", endpoint="membership",
                 defaults={"action": "add"}, methods=["POST"]),
            Rule(f"{API}/core/groups/<key>/remove_user/", endpoint="membership",
                 defaults={"action": "remove"}, methods=["POST"]),
            Rule(f"{API}/core/users/<key>/set_password/", endpoint="set_password",
                 methods=["POST"]),
            Rule(f"{API}/core/applications/<key>/set_icon_url/", endpoint="set_icon_url",
                 methods=["POST"]),
            Rule(f"{API}/providers/saml/<key>/metadata/", endpoint="saml_metadata", methods=["GET"]),
            Rule(f"{API}/crypto/certificatekeypairs/<key>/view_certificate/", endpoint="view_certificate",
                 methods=["GET"]),
            Rule("/application/saml/<slug>/metadata/", endpoint="saml_app_metadata", methods=["GET"]),
            # session-authenticated browser endpoints (lab/sim/authentik_web.py)
            Rule(f"{API}/flows/executor/<slug>/", endpoint="executor", methods=["GET", "POST"]),
            Rule("/application/o/authorize/", endpoint="authorize", methods=["GET", "POST"]),
            Rule("/flows/-/default/authentication/", endpoint="default_flow",
                 defaults={"designation": "authentication"}, methods=["GET"]),
            Rule("/if/flow/<slug>/", endpoint="flow_page", methods=["GET"]),
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
        """
        A URL no route matches. Authentik has ``APPEND_SLASH = False``
        (authentik/root/settings.py) and a DefaultRouter that wants the trailing slash
        (authentik/api/v3/urls.py), so ``/api/v3/core/groups`` (no slash) matches
        nothing, for GET and POST alike; Django then renders ``handler404 =
        error.NotFoundView`` (authentik/root/urls.py, core/views/error.py): an HTML page
        with status 404, before any authentication. A path the release's schema has but
        the simulator does not implement is a loud lab 501 instead of a fake 404.
        """
        path = request.path
        if path.startswith(API + "/") and path.endswith("/") and self._documented(path[len(API):]):
            return self.json({"detail": f"lab: {request.method} {path} exists in Authentik "
                                        f"{self.release} but the simulator does not implement it"},
                             status=501)
        return Response(NOT_FOUND_PAGE, status=404, mimetype="text/html")

    def _documented(self, path):
        """A path of this release's API (the extracted schema, or an action it leaves out)."""
        if path.endswith(UNSERVED_ACTIONS) and any(path.startswith(r.path) for r in RESOURCES):
            return True
        for template in self.openapi["paths"]:
            if re.fullmatch(re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)), path):
                return True
        return False

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
    def _dispatch(self, request):
        # the server asks its embedded outpost first (internal/web/proxy.go)
        outpost = self.outpost_dispatch(request)
        if outpost is not None:
            return outpost
        # URL resolution comes before DRF's authentication: an unknown URL (a missing
        # trailing slash included) is the HTML 404 whatever the token
        if not request.path.endswith("/"):
            return self.not_found(request)
        try:
            self.url_map.bind_to_environ(request.environ).match()
        except NotFound:
            return self.not_found(request)
        except HTTPException:
            pass  # 405 and the like: DRF authenticates first, then refuses the method
        if request.path.startswith(API + "/"):
            denied = self._authenticate(request)
            if denied is not None:
                return denied
        return super().dispatch(request)

    def _authenticate(self, request):
        header = request.headers.get("Authorization", "").strip()
        public = request.path.rstrip("/") == f"{API}/root/config"
        if not header and request.path.startswith(f"{API}/flows/executor/"):
            return None  # FlowExecutorView: AllowAny, the browser's session
        if re.fullmatch(f"{API}/providers/saml/[^/]+/metadata/", request.path):
            return None  # SAMLProviderViewSet.metadata: permission_classes=[AllowAny]
        if not header or " " not in header:
            if public:
                return None
            return self.detail(403, "Authentication credentials were not provided.")
        kind, _, token = header.partition(" ")
        if kind.lower() != "bearer":
            # authentik/api/authentication.py validate_auth: up to 2025.10 an
            # AuthenticationFailed; from 2025.12 (f1a1f327c) it returns None and the
            # request is simply unauthenticated
            if self.version >= (2025, 12):
                return self.detail(403, "Authentication credentials were not provided.")
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

    def _body(self, request, op, partial, res=None):
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
        if errors and res is not None:
            self._relation_uuid_messages(res, body, errors)
        if errors:
            return None, self.json(errors, status=400)
        return body, None

    @staticmethod
    def _relation_uuid_messages(res, body, errors):
        """
        A malformed uuid in a relation field (PrimaryKeyRelatedField) fails in Django's
        UUIDField.to_python, whose ValidationError DRF reports as-is: "“x” is not a
        valid UUID." (rest_framework/serializers.py Serializer.to_internal_value); only
        plain UUIDFields say "Must be a valid UUID.".
        """
        for name in res.refs:
            if errors.get(name) != ["Must be a valid UUID."]:
                continue
            values = body[name] if isinstance(body.get(name), list) else [body.get(name)]
            bad = next((v for v in values if not UUID_RE.match(str(v))), None)
            if bad is not None:
                errors[name] = [f"“{bad}” is not a valid UUID."]

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
               "provider_saml": "{id}", "saml_mapping": "{pm_uuid}",
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

    def _no_match(self, res, key=None):
        """
        DRF get_object_or_404 (rest_framework/generics.py) turns the TypeError/
        ValueError/ValidationError of a malformed key into a bare Http404, "Not found.";
        only a well-formed key that matches nothing gets Django's "No <Model> matches".
        """
        malformed = (res.pk == "int" and _as_key("int", key) is None) or (
            res.pk == "uuid" and not UUID_RE.match(str(key)))
        if key is not None and res.lookup_field == "pk" and malformed:
            return self.detail(404, "Not found.")
        return self.detail(404, f"No {res.model} matches the given query.")

    def group_users(self, group_pk):
        return [u["pk"] for u in self.db["user"].values() if group_pk in u.get("groups", [])]

    def _exists(self, kinds, value):
        for kind in kinds:
            if kind == "policy":
                if str(value) in self.db["policy"]:
                    return True
                continue
            if kind == "pbm":
                if self._pbm(value) is not None:
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
            # a flow's pbm_uuid is NOT a flow: authorization_flow, the brand's flows,
            # FlowStageBinding.target... are plain FKs to Flow (pk flow_uuid); only a
            # policy binding's target resolves PolicyBindingModel pks (see _pbm)
        return False

    def _pbm(self, value):
        """
        PolicyBindingModelForeignKey.to_internal_value (authentik/policies/api/
        bindings.py): the pk of any PolicyBindingModel subclass (application pk, flow
        flow_uuid, flow stage binding fsb_uuid) or a pbm_uuid; returns the pbm_uuid.
        """
        text = str(value).lower()
        for kind in PBM_KINDS:
            for obj in self.db[kind].values():
                if str(obj["pk"]).lower() == text or obj["pbm_uuid"] == text:
                    return obj["pbm_uuid"]
        return None

    def _pbm_subclass_pk(self, pbm_uuid):
        """PolicyBindingModelForeignKey.to_representation: the subclass's own pk."""
        for kind in PBM_KINDS:
            for obj in self.db[kind].values():
                if obj["pbm_uuid"] == pbm_uuid:
                    return obj["pk"]
        return pbm_uuid

    # -- semantic validation after the schema -----------------------------------------------------
    def _semantic(self, res, body, current, request=None):
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
        errors = self._field_errors(res, body, current, self._initial_data(request))
        if errors:
            return errors
        errors = self._unique_together(res, body, current)
        if errors:
            return errors
        check = getattr(self, f"_validate_{res.kind}", None)
        return check(body, current) if check else {}

    @staticmethod
    def _initial_data(request):
        """The serializer's ``initial_data``: the request body as sent."""
        if request is None or not request.data:
            return {}
        try:
            data = json.loads(request.data.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            return {}
        return data if isinstance(data, dict) else {}

    def _field_errors(self, res, body, current, initial=None):
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
            if value is None or value == "" or field in errors:
                continue
            # a field declared on a base model is unique across every subclass's table
            # (Provider.name, Stage.name)
            kinds = {kind: PROVIDER_KINDS for kind in PROVIDER_KINDS}.get(
                res.kind, STAGE_KINDS if res.kind in STAGE_KINDS and field == "name" else (res.kind,))
            for kind in kinds:
                if any(obj.get(field) == value and (current is None or obj["pk"] != current["pk"])
                       for obj in self.db[kind].values()):
                    errors[field] = [self._unique_message(res, field)]
                    break
        # the serializer's validate_<field> runs only when the field itself passed (DRF
        # Serializer.to_internal_value): an unknown pk is reported, never a later check
        extra = {}
        if res.kind == "group":
            extra = self._group_rules(body, current)
        if res.kind == "provider_proxy":
            extra = self._proxy_fields(body, initial or {})
        if res.kind == "outpost":
            extra = self._outpost_fields(body, current, initial or {})
        for field, messages in extra.items():
            errors.setdefault(field, messages)
        # ApplicationSerializer.validate_slug (authentik/core/api/applications.py) came
        # with 2025.10; 2025.6 accepts the reserved slugs
        if res.kind == "application" and self.version >= (2025, 10) and body.get("slug") in (
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
        if res.kind in ("scope_mapping", "saml_mapping") and isinstance(body.get("expression"), str):
            wrong = _expression_error(body["expression"], (current or {}).get("name") or "NoneType")
            if wrong:
                errors.setdefault("expression", [wrong])
        return errors

    def _unique_message(self, res, field):
        """
        DRF's message for a model's ``unique=True`` (rest_framework/utils/field_mapping.py
        get_unique_error_message): Django's "%(model_name)s with this %(field_label)s
        already exists." with the verbose_name of the model that DECLARES the field and
        the field's verbose_name, not capitalised. Serializer-level UniqueValidators
        without a message say "This field must be unique." (UserSerializer.username,
        BrandSerializer.domain, GroupSerializer.name up to 2025.10).
        """
        if (res.kind, field) in (("user", "username"), ("brand", "domain")):
            return "This field must be unique."
        if (res.kind, field) == ("group", "name"):
            if self.version < (2025, 12):
                return "This field must be unique."
            return "Group with this name already exists."
        model, label = UNIQUE_LABELS.get((res.kind, field), (None, None)) if res.kind not in STAGE_KINDS \
            else ("stage", field)
        if model is None:
            model, label = _verbose(res), field.replace("_", " ")
        return f"{model} with this {label} already exists."

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
        """
        Group name uniqueness: up to 2025.10 GroupSerializer's own
        ``UniqueValidator(Group.objects.all())`` on ``name`` (authentik/core/api/groups.py
        Meta.extra_kwargs, "This field isn't unique on the database"), GLOBAL whatever the
        parent, "This field must be unique."; from 2025.12 ``Group.name`` is
        ``unique=True`` (authentik/core/models.py), "Group with this name already
        exists.". GroupSerializer.validate_parent (up to 2025.10) refuses the group itself.
        """
        errors = {}
        if "name" in body and any(
            g["name"] == body["name"] and (current is None or g["pk"] != current["pk"])
            for g in self.db["group"].values()
        ):
            errors["name"] = [self._unique_message(BY_KIND["group"], "name")]
        if (self.version < (2025, 12) and current is not None and body.get("parent")
                and str(body["parent"]).lower() == current["pk"]):
            errors["parent"] = ["Cannot set group as parent of itself."]
        return errors

    def _proxy_fields(self, body, initial):
        """
        ProxyProviderSerializer field validators (authentik/providers/proxy/api.py,
        models.py): ``validate_basic_auth_enabled`` reads ``initial_data`` - the
        attributes must be in the same request, stored ones do not count;
        ``external_host``/``internal_host`` use DomainlessURLValidator(schemes=("http",
        "https")) (authentik/lib/models.py), "Enter a valid URL.".
        """
        errors = {}
        if body.get("basic_auth_enabled") and (
                initial.get("basic_auth_password_attribute", "") == ""
                or initial.get("basic_auth_user_attribute", "") == ""):
            errors["basic_auth_enabled"] = [
                "User and password attributes must be set when basic auth is enabled."]
        for field in ("external_host", "internal_host"):
            value = body.get(field)
            if isinstance(value, str) and value != "" and not HOST_URL_RE.match(value):
                errors[field] = ["Enter a valid URL."]
        return errors

    def _outpost_fields(self, body, current, initial):
        """
        OutpostSerializer.validate_name / validate_providers (authentik/outposts/api/
        outposts.py, 2025.6 to 2026.5): the embedded outpost keeps its name; every
        provider must be of the class ``type_map[initial_data.get("type")]`` (no type
        in the body - a PATCH - maps to Provider: anything passes); outposts other than
        the embedded one need at least one provider.
        """
        errors = {}
        embedded = current is not None and current.get("managed") == EMBEDDED_OUTPOST
        if "name" in body and embedded and body["name"] != EMBEDDED_OUTPOST_NAME:
            errors["name"] = ["Embedded outpost's name cannot be changed"]
        if "providers" in body:
            wanted = {"proxy": "provider_proxy"}.get(initial.get("type"))
            for pk in body["providers"]:
                kind = next((k for k in PROVIDER_KINDS if pk in self.db[k]), "provider_oauth2")
                if initial.get("type") is not None and kind != wanted:
                    cls = PROVIDER_CLASSES[kind]
                    errors["providers"] = [
                        f"Outpost type {initial['type']} can't be used with {cls} providers."]
                    break
            if "providers" not in errors and not embedded and len(body["providers"]) < 1:
                errors["providers"] = ["This list may not be empty."]
        if isinstance(body.get("config"), dict):
            wrong = _outpost_config_error(body["config"])
            if wrong:
                errors["config"] = [f"Failed to validate config: {wrong}"]
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
        if res.kind == "policy_binding" and out.get("target") is not None:
            out["target"] = self._pbm(out["target"]) or out["target"]  # stored as the pbm_uuid
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
        users = children = None
        if res.kind == "group":
            if self.version >= (2025, 12):
                obj.pop("parent", None)
                obj.setdefault("parents", [])
            else:
                obj.setdefault("parent", None)
            users = obj.pop("users", None)
            children = obj.pop("children", None)
            self.next_int["group_num"] = self.next_int.get("group_num", 1000) + 1
            obj["num_pk"] = self.next_int["group_num"]
        if res.kind == "provider_oauth2":
            obj.setdefault("client_id", generate_id(40))
            obj.setdefault("client_secret", generate_id(128))
        if res.kind == "provider_proxy":
            obj["client_id"] = generate_id(40)
        if res.kind in ("flow", "flow_binding"):
            obj["pbm_uuid"] = str(uuid.uuid4())
        if res.kind == "application":
            obj["pbm_uuid"] = obj["pk"]
            self._take_backchannel(obj)
        if res.kind == "user":
            obj["uuid"] = str(uuid.uuid4())
            obj["date_joined"] = obj["password_change_date"] = obj["last_updated"] = _now()
        self.db[res.kind][obj["pk"]] = obj
        if users is not None:
            self._set_members(obj["pk"], users)
        if children is not None:
            self._set_children(obj["pk"], children)
        if res.kind == "provider_proxy":
            self._set_oauth_defaults(obj)
        if res.kind in ("application", "policy_binding", "group", "user"):
            self._clear_app_cache()
        return obj

    def update(self, res, obj, body):
        users = body.pop("users", None) if res.kind == "group" else None
        children = body.pop("children", None) if res.kind == "group" else None
        obj.update(body)
        if res.kind == "application" and "backchannel_providers" in body:
            self._take_backchannel(obj)
        if res.kind == "user":
            obj["last_updated"] = _now()
        if users is not None:
            self._set_members(obj["pk"], users)
        if children is not None:
            self._set_children(obj["pk"], children)
        if res.kind == "provider_proxy":
            self._set_oauth_defaults(obj)
        # invalidate_policy_cache (policies/signals.py) on post_save of a binding, group or
        # user; an application's own update does not clear it (post_save_application)
        if res.kind in ("policy_binding", "group", "user"):
            self._clear_app_cache()
        return obj

    def _take_backchannel(self, app):
        """
        Provider.backchannel_application (authentik/core/models.py) is a ForeignKey: the
        providers named here leave any other application's ``backchannel_providers``.
        """
        for other in self.db["application"].values():
            if other["pk"] != app["pk"]:
                other["backchannel_providers"] = [
                    pk for pk in other.get("backchannel_providers", [])
                    if pk not in app.get("backchannel_providers", [])]

    def list_defaults(self, res):
        """
        Request fields whose serializer field has ``default=list``: DRF fills them in
        whenever the request is not partial (rest_framework/fields.py
        Field.validate_empty_values), so a POST or PUT without them sets the relation
        to ``[]`` (ModelSerializer.update: ``field.set([])``). GroupSerializer:
        ``users`` (every release), ``children`` (2025.10), ``parents`` (2025.12+)
        (authentik/core/api/groups.py Meta.extra_kwargs); UserSerializer: ``groups``
        (every release) and ``roles`` (2025.12+) (authentik/core/api/users.py). Which
        of them a release has is read off its request schema.
        """
        names = {"group": ("users", "children", "parents"), "user": ("groups", "roles")}.get(res.kind, ())
        schema = self.validator.resolve({"$ref": f"#/components/schemas/{res.schema}Request"})
        return [n for n in names if n in schema.get("properties", {})]

    def _set_children(self, group_pk, children):
        """A written ``children`` (2025.10, reverse FK of ``parent``) re-parents groups."""
        wanted = {str(c).lower() for c in children}
        for group in self.db["group"].values():
            if group["pk"] in wanted:
                group["parent"] = group_pk
            elif group.get("parent") == group_pk:
                group["parent"] = None

    def _set_oauth_defaults(self, obj):
        """
        ProxyProviderSerializer.create/update (authentik/providers/proxy/api.py) call
        ``instance.set_oauth_defaults()`` (authentik/providers/proxy/models.py, the same
        in 2025.6, 2025.10 and 2026.5) after every write: client_type confidential, no
        signing key, claims in the id token, the managed openid/profile/email/
        entitlements/proxy scope mappings ADDED (``property_mappings.add``: a client
        cannot remove them) and redirect_uris replaced by the two outpost callbacks
        (``_get_callback_url``: strict, ``?X-authentik-auth-callback=true``).
        """
        obj["client_type"] = "confidential"
        obj["signing_key"] = None
        obj["include_claims_in_id_token"] = True
        mappings = list(obj.get("property_mappings") or [])
        for mapping in self.db["scope_mapping"].values():
            if mapping.get("managed") in PROXY_SCOPES and mapping["pk"] not in mappings:
                mappings.append(mapping["pk"])
        obj["property_mappings"] = mappings
        host = obj.get("external_host") or ""
        obj["redirect_uris"] = [
            {"matching_mode": "strict",
             "url": urllib.parse.urljoin(host, "outpost.goauthentik.io/callback") + f"?{CALLBACK_SIGNATURE}=true"},
            {"matching_mode": "strict", "url": host + f"?{CALLBACK_SIGNATURE}=true"},
        ]

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
            # Provider.backchannel_application on_delete=CASCADE (authentik/core/models.py)
            for kind in PROVIDER_KINDS:
                self._drop(kind, lambda p: p["pk"] in obj.get("backchannel_providers", []))
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
                if pk in app.get("backchannel_providers", []):
                    app["backchannel_providers"].remove(pk)
            for outpost in self.db["outpost"].values():
                if pk in outpost.get("providers", []):
                    outpost["providers"].remove(pk)
        elif res.kind in STAGE_KINDS:
            self._drop("flow_binding", lambda b: b["stage"] == pk)
        elif res.kind == "flow_binding":
            self._drop("policy_binding", lambda b: b["target"] == obj["pbm_uuid"])
        elif res.kind == "prompt":
            for stage in self.db["stage_prompt"].values():
                if pk in stage.get("fields", []):
                    stage["fields"].remove(pk)
        elif res.kind == "scope_mapping":
            for prov in list(self.db["provider_oauth2"].values()) + list(self.db["provider_proxy"].values()):
                if pk in prov.get("property_mappings", []):
                    prov["property_mappings"].remove(pk)
        elif res.kind == "saml_mapping":
            for prov in self.db["provider_saml"].values():
                if pk in prov.get("property_mappings", []):
                    prov["property_mappings"].remove(pk)
                for field in ("name_id_mapping", "authn_context_class_ref_mapping"):
                    if prov.get(field) == pk:
                        prov[field] = None

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
            for key, val in (("component", comp), ("meta_model_name", f"authentik_{APP_LABELS[res.kind]}.{model}"),
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
        out["backchannel_providers_obj"] = [
            self._provider_obj(prov) for prov in map(self._provider, obj.get("backchannel_providers", []))
            if prov]
        out["launch_url"] = self._launch_url(obj)
        for key in ("meta_icon_url", "meta_icon_themed_urls"):
            if key in out:
                out[key] = None
        if self.version < (2026, 1):
            # ReadOnlyField(source="get_meta_icon"): a URL name as it is, none -> None
            out["meta_icon"] = obj.get("meta_icon") or None

    def _provider(self, pk):
        for kind in PROVIDER_KINDS:
            if pk in self.db[kind]:
                return self.db[kind][pk]
        return None

    def _provider_obj(self, prov):
        """ProviderSerializer (authentik/core/api/providers.py) of the concrete provider."""
        kind = next(k for k in PROVIDER_KINDS if prov["pk"] in self.db[k])
        full = self.represent(BY_KIND[kind], prov)
        props = self.validator.resolve({"$ref": "#/components/schemas/Provider"}).get("properties", {})
        return {k: full.get(k) for k in props}

    def _repr_provider_oauth2(self, obj, out, request):
        self._repr_provider(obj, out)
        out["redirect_uris"] = self._redirect_uris(obj.get("redirect_uris"))

    def _redirect_uris(self, uris):
        """RedirectURISerializer: from 2025.12 every entry carries redirect_uri_type."""
        schema = self.openapi["components"]["schemas"]["RedirectURI"]["properties"]
        out = []
        for uri in uris or []:
            entry = {"matching_mode": uri["matching_mode"], "url": uri["url"]}
            if "redirect_uri_type" in schema:
                entry["redirect_uri_type"] = uri.get("redirect_uri_type") or "authorization"
            out.append(entry)
        return out

    def _repr_provider_proxy(self, obj, out, request):
        self._repr_provider(obj, out)
        if "client_id" in out:
            out["client_id"] = obj["client_id"]
        if "redirect_uris" in out:  # read-only here: what set_oauth_defaults stored
            out["redirect_uris"] = self._redirect_uris(obj.get("redirect_uris"))
        if "outpost_set" in out:
            out["outpost_set"] = [f"Outpost {o['name']}" for o in self.db["outpost"].values()
                                  if obj["pk"] in o.get("providers", [])]

    def _repr_provider(self, obj, out):
        app = next((a for a in self.db["application"].values() if a.get("provider") == obj["pk"]), None)
        for key in ("assigned_application_slug", "assigned_application_name"):
            if key in out:
                out[key] = (app or {}).get(key.rsplit("_", 1)[-1]) if app else None
        back = next((a for a in self.db["application"].values()
                     if obj["pk"] in a.get("backchannel_providers", [])), None)
        for key in ("assigned_backchannel_application_slug", "assigned_backchannel_application_name"):
            if key in out:
                out[key] = back.get(key.rsplit("_", 1)[-1]) if back else None

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
            out["policybindingmodel_ptr_id"] = obj["pbm_uuid"]

    def _stage(self, pk):
        for kind in STAGE_KINDS:
            if pk in self.db[kind]:
                return self.db[kind][pk]
        return None

    def _repr_policy_binding(self, obj, out, request):
        out["target"] = self._pbm_subclass_pk(obj["target"])
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
    # -- health (authentik/root/monitoring.py LiveView/ReadyView) -------------------------------
    def on_health_live(self, request):
        return Response(status=200)

    def on_health_ready(self, request):
        import socket  # pylint: disable=import-outside-toplevel

        if not self.database_ok:
            return Response(status=503)
        for host, port in self.ready_requires:
            try:
                with socket.create_connection((host, int(port)), timeout=1):
                    pass
            except OSError:
                return Response(status=503)
        return Response(status=200)

    # -- first start and the database ------------------------------------------------------------
    def _bootstrap(self, boot):
        akadmin = next(u for u in self.db["user"].values() if u["username"] == "akadmin")
        if boot.get("token"):
            self.tokens[boot["token"]] = {"permissions": "all", "user": "akadmin", "bootstrap": True}
        if boot.get("password"):
            self.passwords[akadmin["pk"]] = True
        if boot.get("email"):
            akadmin["email"] = boot["email"]

    def _save_state(self):
        if not self.state_file:
            return
        data = {"release": self.release, "db": self.db, "passwords": sorted(self.passwords),
                "next_int": self.next_int,
                "tokens": {k: v for k, v in self.tokens.items() if v.get("bootstrap")}}
        os.makedirs(os.path.dirname(self.state_file), exist_ok=True)
        tmp = self.state_file + ".tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            os.fchmod(fh.fileno(), 0o600)
            json.dump(data, fh)
        os.replace(tmp, self.state_file)

    def _load_state(self):
        with open(self.state_file, encoding="utf-8") as fh:
            data = json.load(fh)
        self.db = {kind: dict(table) for kind, table in data["db"].items()}
        for kind, table in self.db.items():  # JSON made the integer keys strings
            self.db[kind] = {(int(k) if isinstance(k, str) and k.isdigit() else k): v for k, v in table.items()}
        self.passwords = {(int(p) if isinstance(p, str) and p.isdigit() else p): True for p in data["passwords"]}
        self.next_int = data["next_int"]
        self.tokens.update(data.get("tokens") or {})

    def dispatch(self, request):
        resp = self._dispatch(request)
        if self.state_file and request.method in ("POST", "PUT", "PATCH", "DELETE") and resp.status_code < 400:
            with self.cond:
                self._save_state()
        return resp

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
        body, error = self._body(request, op, partial=False, res=res)
        if error:
            return error
        body = self._normalise(res, body)
        for name in self.list_defaults(res):
            body.setdefault(name, [])
        try:
            errors = self._semantic(res, body, None, request)
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
            return self._no_match(res, key)
        if request.method == "GET":
            return self.json(self.represent(res, obj, request))
        if request.method == "DELETE":
            self.delete(res, obj)
            return Response(status=204)
        body, error = self._body(request, op, partial=request.method == "PATCH", res=res)
        if error:
            return error
        body = self._normalise(res, body)
        if request.method == "PUT":
            for name in self.list_defaults(res):
                body.setdefault(name, [])
        try:
            errors = self._semantic(res, body, obj, request)
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
            return self._no_match(BY_KIND["group"], key)
        user = self.db["user"].get(int(body["pk"]))
        if user is None:  # GroupViewSet.add_user/remove_user: a bare ``raise Http404``
            return self.detail(404, "Not found.")
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
            return self._no_match(BY_KIND["user"], key)
        self.passwords[user["pk"]] = hash_password(str(body["password"]))
        user["password_change_date"] = _now()
        return Response(status=204)

    def on_set_icon_url(self, request, key):
        """ApplicationViewSet.set_icon_url (up to 2025.12): ``meta_icon.name = url`` (lib/utils/file.py)."""
        op = self.operation("/core/applications/{slug}/set_icon_url/", "post")
        if op is None:  # gone from 2026.1: meta_icon is a plain field
            return self.not_found(request)
        body, error = self._body(request, op, partial=False)
        if error:
            return error
        app = self.lookup(BY_KIND["application"], key)
        if app is None:
            return self._no_match(BY_KIND["application"], key)
        app["meta_icon"] = body["url"]
        return self.json({})

    @staticmethod
    def resource(kind):
        return BY_KIND[kind]

    @staticmethod
    def user_uid(pk):
        """User.uid: what an OAuth2/proxy provider's default sub mode (hashed_user_id) sends."""
        return _uid(pk)

    def _list(self, request, res):
        op = self.operation(self._template(res), "get")
        bad = self._check_params(request, op)
        if bad:
            return bad
        items, error = self._filter(request, res, op, list(self.db[res.kind].values()))
        if error is not None:
            return error
        # DRF SearchFilter (rest_framework/filters.py): the value is split on whitespace
        # and commas (search_smart_split; quoted phrases are not modelled) and every term
        # must match one of the search fields
        search = request.args.get("search")
        terms = [t.lower() for t in re.split(r"[\s,]+", search or "") if t]
        if terms:
            items = [o for o in items if all(
                any(t in str(o.get(f, "")).lower() for f in res.search) for t in terms)]
        # DRF OrderingFilter.get_ordering: comma-separated, invalid fields dropped
        # (remove_invalid_fields; the model's fields are the valid ones here), the viewset's
        # default ordering when none is left
        fields = set(res.defaults) | {"pk"} | {k for o in items for k in o}
        keys = [k.strip() for k in (request.args.get("ordering") or "").split(",")]
        keys = [k for k in keys if k and k.lstrip("-") in fields] or list(res.ordering)
        for key in reversed(keys):
            desc = key.startswith("-")
            field = key.lstrip("-")
            items.sort(key=lambda o, f=field: _sort_key(o.get(f)), reverse=desc)
        page = self._paginate(request, items)
        if not isinstance(page, dict):
            return page  # the 404 "Invalid page."
        chunk = page.pop("chunk")
        if res.kind == "application":
            chunk, error = self._applications_for_user(request, page, chunk, search)
            if error is not None:
                return error
        body = {"pagination": page, "results": [self.represent(res, o, request) for o in chunk]}
        listing = self.validator.resolve(
            (op.get("responses") or {}).get("200") or {"type": "object"})
        if "autocomplete" in listing.get("properties", {}):
            body["autocomplete"] = {}
        return self.json(body)

    def _paginate(self, request, items):
        """
        authentik/api/pagination.py Pagination (DRF PageNumberPagination): an invalid
        page_size is ignored (DRF's PAGE_SIZE, 100); from 2025.12 the tenant's default
        (20) applies when no page_size is given and its maximum (100) caps the one given.
        ``page=last`` is DRF's last_page_strings; any other bad page is "Invalid page.".
        """
        raw = request.args.get("page_size")
        try:
            size = int(raw) if raw is not None else None
        except ValueError:
            size = None
        if size is not None and size < 1:
            size = None
        if raw is None and self.max_page_size:
            size = self.page_size
        elif size is None:
            size = 100
        if self.max_page_size:
            size = min(size, self.max_page_size)
        count = len(items)
        pages = max(1, -(-count // size))
        raw_page = request.args.get("page") or "1"
        try:
            page = pages if raw_page == "last" else int(raw_page)
        except ValueError:
            return self.detail(404, "Invalid page.")
        if page < 1 or page > pages:
            return self.detail(404, "Invalid page.")
        chunk = items[(page - 1) * size: page * size]
        return {
            "next": page + 1 if page < pages else 0,
            "previous": page - 1 if page > 1 else 0,
            "count": count,
            "current": page,
            "total_pages": pages,
            "start_index": (page - 1) * size + 1 if count else 0,
            "end_index": (page - 1) * size + len(chunk),
            "chunk": chunk,
        }

    # -- filters: the viewset's FilterSet, django-filter's way -----------------------------------
    def _filter(self, request, res, op, items):
        """``(items, None)`` or ``(None, a 400 response)``; see FILTERS."""
        params = {p["name"]: p for p in (op or {}).get("parameters", []) if p.get("in") == "query"}
        table = FILTERS.get(res.kind, {})
        errors, missing, plan = {}, [], []
        for name in request.args:
            if name in PAGE_PARAMS or name in SWITCHES or name not in params:
                continue
            if res.kind == "application" and name in APP_LIST_PARAMS:
                continue
            spec = table.get(name)
            if spec is None:
                missing.append(name)
                continue
            values = [v for v in request.args.getlist(name)]
            parsed, error = self._filter_value(spec, values, params[name], res)
            if error:
                errors[name] = [error]
            elif parsed is not None:
                plan.append((spec, parsed))
        if missing:
            return None, self.json({name: [
                f"lab: the Authentik {self.release} filter '{name}' is not implemented by the "
                f"simulator; refusing instead of returning every object"] for name in sorted(missing)},
                status=400)
        if errors:
            return None, self.json(errors, status=400)
        for spec, parsed in plan:
            if spec.kind == "attributes":
                try:
                    items = [o for o in items if _attributes_match(o.get("attributes") or {}, parsed)]
                except _FilterError as exc:
                    return None, self.json([str(exc)], status=400)
                continue
            items = [o for o in items if self._filter_match(spec, o, parsed)]
        return items, None

    def _filter_value(self, spec, values, param, res):
        """``(parsed, error)``; parsed None means the filter does nothing."""
        last = values[-1] if values else ""
        kind = spec.kind
        if kind in ("m2m", "allvalues", "multichoice"):
            values = [v for v in values if v != ""]
            if not values:
                return None, None
        elif last == "":
            return None, None
        if kind in ("bool", "custom"):
            low = last.lower()
            return {"true": True, "1": True, "false": False, "0": False}.get(low), None
        if kind == "char":
            return last, None
        if kind == "uuid":
            return (last.lower(), None) if UUID_RE.match(last) else (None, "Enter a valid UUID.")
        if kind == "number":
            try:
                return float(last), None
            except ValueError:
                return None, "Enter a number."
        if kind == "datetime":
            try:
                return datetime.datetime.fromisoformat(last.replace("Z", "+00:00")), None
            except ValueError:
                return None, "Enter a valid date/time."
        if kind in ("choice", "multichoice"):
            enum = self._param_enum(param)
            for value in (values if kind == "multichoice" else [last]):
                if enum is not None and value not in enum:
                    return None, _choice_msg(value)
            return (values if kind == "multichoice" else last), None
        if kind == "allvalues":
            # AllValuesMultipleFilter: the choices are the values present in the table
            present = {str(o.get("managed")) for o in self.db[res.kind].values()}
            for value in values:
                if value not in present:
                    return None, _choice_msg(value)
            return values, None
        if kind == "fk":
            key = self._resolve_ref(spec, last)
            return (key, None) if key is not None else (None, CHOICE_MSG)
        if kind == "m2m":
            keys = []
            for value in values:
                if "uuid" in str(param.get("schema", {}).get("items", {}).get("format", "")) \
                        and spec.by in ("pk", "pbm") and not UUID_RE.match(value):
                    return None, f"“{value}” is not a valid UUID."
                key = self._resolve_ref(spec, value)
                if key is None:
                    return None, _choice_msg(value)
                keys.append(key)
            return keys, None
        if kind == "attributes":
            return last, None
        raise ValueError(f"unknown filter kind {kind}")

    def _param_enum(self, param):
        schema = self.validator.resolve(param.get("schema") or {})
        if schema.get("type") == "array":
            schema = self.validator.resolve(schema.get("items") or {})
        return schema.get("enum")

    def _resolve_ref(self, spec, value):
        """The stored key an fk/m2m value names, or None (not one of the choices)."""
        for kind in spec.ref:
            if kind == "pbm":
                for pbm_kind in PBM_KINDS:
                    for obj in self.db[pbm_kind].values():
                        if obj["pbm_uuid"] == str(value).lower():
                            return obj["pbm_uuid"]
                continue
            table = self.db.get(kind) or {}
            if spec.by == "pk":
                key = _as_key(BY_KIND[kind].pk if kind in BY_KIND else "uuid", value)
                if key in table:
                    return key
            else:
                for obj in table.values():
                    if obj.get(spec.by) == value:
                        return value
        return None

    def _filter_match(self, spec, obj, parsed):
        kind = spec.kind
        if kind == "custom":
            return spec.test(obj, parsed, self)
        got = spec.get(obj, self)
        if kind == "bool":
            if spec.lookup == "isnull":
                return got == parsed
            return bool(got) == parsed
        if kind == "char":
            if got is None:
                return False
            got = str(got)
            return {"exact": got == parsed, "iexact": got.lower() == parsed.lower(),
                    "icontains": parsed.lower() in got.lower(),
                    "startswith": got.startswith(parsed)}[spec.lookup]
        if kind == "uuid":
            return got is not None and str(got).lower() == parsed
        if kind == "number":
            return got is not None and float(got) == parsed
        if kind == "datetime":
            if not got:
                return False
            when = datetime.datetime.fromisoformat(str(got).replace("Z", "+00:00"))
            return {"exact": when == parsed, "gt": when > parsed, "lt": when < parsed}[spec.lookup]
        if kind == "choice":
            return got == parsed
        if kind in ("multichoice", "allvalues"):
            return str(got) in parsed
        if kind == "fk":
            return got is not None and str(got).lower() == str(parsed).lower()
        if kind == "m2m":
            have = {str(v).lower() for v in (got or [])}
            return any(str(k).lower() in have for k in parsed)
        raise ValueError(f"unknown filter kind {kind}")

    # -- the application list: policy-filtered and cached per user and page -------------------
    def _applications_for_user(self, request, page, chunk, search):
        """
        ApplicationViewSet.list (authentik/core/api/applications.py, 2025.6 to 2026.5):
        only ``superuser_full_list=true`` from a superuser is the plain list. Otherwise
        the filtered page is kept to the applications whose policies let the token's user
        in (PolicyEngine), and without ``search`` that result is CACHED for 24 h under
        ``user_app_cache_key(user.pk, page)`` - a key without the filters, so the next
        list of the same page returns it whatever the filters say (a cached empty list
        counts as a miss: ``if not allowed_applications``). The cache is cleared when an
        application is created (core/signals.py post_save_application) and on every save
        of a policy binding, group or user (policies/signals.py invalidate_policy_cache).
        ``pagination.count`` counts before the policy check.
        """
        user = self._request_user(request)
        full = str(request.args.get("superuser_full_list", "false")).lower() == "true"
        if full and self._is_superuser(user):
            return chunk, None
        if "for_user" in request.args:
            try:
                for_user = int(request.args.get("for_user", 0))
            except ValueError:
                return None, self.json(["Invalid input."], status=400)
            target = self.db["user"].get(for_user) if self._is_superuser(user) else (
                user if user and user["pk"] == for_user else None)
            if target is None:
                return None, self.json({"for_user": ["User not found"]}, status=400)
            return [a for a in chunk if self._app_allows(a, target)], None
        if search:
            allowed = [a["pk"] for a in chunk if self._app_allows(a, user)]
        else:
            key = ((user or {}).get("pk"), page["current"])
            cached = self.app_cache.get(key)
            allowed = cached[1] if cached and cached[0] > time.time() else None
            if not allowed:
                allowed = [a["pk"] for a in chunk if self._app_allows(a, user)]
                self.app_cache[key] = (time.time() + 86400, allowed)
        apps = [self.db["application"][pk] for pk in allowed if pk in self.db["application"]]
        if str(request.args.get("only_with_launch_url", "false")).lower() == "true":
            apps = [a for a in apps if self._launch_url(a)]
        return apps, None

    def _request_user(self, request):
        token = request.headers.get("Authorization", "").partition(" ")[2]
        username = (self.tokens.get(token) or {}).get("user", "akadmin")
        return next((u for u in self.db["user"].values() if u["username"] == username), None)

    def _all_groups(self, user):
        """User.all_groups (authentik/core/models.py): direct groups and their descendants."""
        found = set(user.get("groups", [])) if user else set()
        grew = True
        while grew:
            grew = False
            for group in self.db["group"].values():
                parents = set(group.get("parents") or ([group["parent"]] if group.get("parent") else []))
                if group["pk"] not in found and parents & found:
                    found.add(group["pk"])
                    grew = True
        return found

    def _is_superuser(self, user):
        return bool(user) and any(self.db["group"].get(g, {}).get("is_superuser")
                                  for g in self._all_groups(user))

    def _app_allows(self, app, user):
        """
        PolicyEngine.build/result (authentik/policies/engine.py) for the static bindings
        the lab has (group and user; the lab has no policies): no binding passes; with
        bindings, each enabled binding passes when it matches (or, negated, does not), and
        the application's policy_engine_mode decides: any one of them, or all.
        """
        bindings = [b for b in self.db["policy_binding"].values()
                    if b["target"] == app["pk"] and b.get("enabled", True)
                    and (b.get("group") or b.get("user") is not None)]
        if not bindings:
            return True
        groups = self._all_groups(user)
        results = []
        for binding in bindings:
            if binding.get("user") is not None:
                match = user is not None and binding["user"] == user["pk"]
            else:
                match = binding["group"] in groups
            results.append(match != bool(binding.get("negate")))
        # PolicyEngine.result: mode all needs every binding, any one of them
        return all(results) if app.get("policy_engine_mode") == "all" else any(results)

    def _launch_url(self, app):
        """
        Application.get_launch_url (authentik/core/models.py): meta_launch_url, else the
        provider's launch_url - a proxy provider's external_host, an OAuth2 provider's
        first redirect URI without its path.
        """
        if app.get("meta_launch_url"):
            return app["meta_launch_url"]
        if app.get("provider") in self.db["provider_proxy"]:
            return self.db["provider_proxy"][app["provider"]].get("external_host")
        prov = self.db["provider_oauth2"].get(app.get("provider"))
        if prov and prov.get("redirect_uris"):
            parts = urllib.parse.urlparse(prov["redirect_uris"][0]["url"])
            return urllib.parse.urlunparse(parts._replace(path=""))
        return None

    def _clear_app_cache(self):
        self.app_cache.clear()

    def _control(self, request):
        """
        ``POST /_lab/objects`` ``{"kind": ..., "object": {...}}``: store an object as an
        older release or a hand-made database left it, bypassing today's validation
        (e.g. two groups of one name, possible in databases older than the serializer's
        UniqueValidator). ``POST /_lab/reset``: back to a fresh install (for tests about a
        first run on a session-wide simulator). Everything else is the base's.
        """
        if request.path == "/_lab/reset" and request.method == "POST":
            with self.cond:
                self._fresh_install()
            return self.json({"reset": True})
        if request.path == "/_lab/objects" and request.method == "POST":
            spec = request.get_json(force=True)
            with self.cond:
                obj = self.create(BY_KIND[spec["kind"]], dict(spec["object"]))
            return self.json({"pk": obj["pk"]}, status=201)
        return super()._control(request)

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
        # blueprints/system/providers-oauth2.yaml and providers-proxy.yaml: seven managed
        # scope mappings on every release (expressions abridged; the email and profile
        # ones changed between releases)
        verified = "True" if self.version < (2025, 10) else "False"
        groups = "ak_groups" if self.version < (2025, 12) else "groups"
        mappings = [
            ("oauth2/scope-openid", "authentik default OAuth Mapping: OpenID 'openid'", "openid",
             "", "return {}"),
            ("oauth2/scope-email", "authentik default OAuth Mapping: OpenID 'email'", "email",
             "Email address", f'return {{"email": request.user.email, "email_verified": {verified}}}'),
            ("oauth2/scope-profile", "authentik default OAuth Mapping: OpenID 'profile'", "profile",
             "General Profile Information",
             'return {"name": request.user.name, "given_name": request.user.name, '
             '"preferred_username": request.user.username, "nickname": request.user.username, '
             f'"groups": [group.name for group in request.user.{groups}.all()]}}'),
            ("oauth2/scope-entitlements", "authentik default OAuth Mapping: Application Entitlements",
             "entitlements", "Application entitlements",
             "entitlements = [e.name for e in request.user.app_entitlements(provider.application)]\n"
             'return {"entitlements": entitlements, "roles": entitlements}'),
            ("oauth2/scope-offline_access", "authentik default OAuth Mapping: OpenID 'offline_access'",
             "offline_access", "Access to request new tokens without interaction", "return {}"),
            ("oauth2/scope-authentik_api", "authentik default OAuth Mapping: authentik API access",
             "goauthentik.io/api", "authentik API Access on behalf of your user", "return {}"),
            ("proxy/scope-proxy", "authentik default OAuth Mapping: Proxy outpost", "ak_proxy",
             "authentik Proxy - User information",
             'return {"ak_proxy": {"user_attributes": request.user.group_attributes(request), '
             '"is_superuser": request.user.is_superuser}}'),
        ]
        for managed, name, scope, desc, expr in mappings:
            self.create(BY_KIND["scope_mapping"], {
                "name": name, "scope_name": scope, "expression": expr, "description": desc,
                "managed": f"goauthentik.io/providers/{managed}"})
        self.create(BY_KIND["outpost"], {
            "name": "authentik Embedded Outpost", "type": "proxy", "providers": [],
            "managed": "goauthentik.io/outposts/embedded",
            "config": {"authentik_host": "", "log_level": "info", "object_naming_template": "ak-outpost-%(name)s"}})
        self.create(BY_KIND["certificate"], {"name": "authentik Self-signed Certificate", "seeded_key": True})
        self.seed_saml()
        admins = self.create(BY_KIND["group"], {"name": "authentik Admins", "is_superuser": True})
        akadmin = self.create(BY_KIND["user"], {"username": "akadmin", "name": "authentik Default Admin",
                                                "email": "root@localhost"})
        akadmin["groups"] = [admins["pk"]]

    def _flow_pk(self, slug):
        return next(f["pk"] for f in self.db["flow"].values() if f["slug"] == slug)


# (kind, field) -> (verbose_name of the model declaring the field, the field's verbose_name)
UNIQUE_LABELS = {
    # Provider.name (authentik/core/models.py): Provider has no Meta.verbose_name
    ("provider_oauth2", "name"): ("provider", "name"),
    ("provider_proxy", "name"): ("provider", "name"),
    ("provider_saml", "name"): ("provider", "name"),
    ("saml_mapping", "name"): ("Property Mapping", "name"),
    ("saml_mapping", "managed"): ("Property Mapping", "Managed by authentik"),
    # OAuth2Provider.client_id verbose_name "Client ID" (providers/oauth2/models.py)
    ("provider_oauth2", "client_id"): ("OAuth2/OpenID Provider", "Client ID"),
    # PropertyMapping.name; ManagedModel.managed "Managed by authentik" (blueprints/models.py)
    ("scope_mapping", "name"): ("Property Mapping", "name"),
    ("scope_mapping", "managed"): ("Property Mapping", "Managed by authentik"),
    ("certificate", "name"): ("Certificate-Key Pair", "name"),
    ("certificate", "managed"): ("Certificate-Key Pair", "Managed by authentik"),
    ("prompt", "name"): ("Prompt", "name"),
    ("outpost", "name"): ("Outpost", "name"),
    ("application", "slug"): ("Application", "slug"),
    ("application", "provider"): ("Application", "provider"),
    ("flow", "slug"): ("Flow", "slug"),
}


def _verbose(res):
    return {"OAuth2Provider": "OAuth2/OpenID Provider", "ProxyProvider": "Proxy Provider",
            "ScopeMapping": "Scope Mapping", "FlowStageBinding": "Flow Stage Binding",
            "PolicyBinding": "Policy Binding", "IdentificationStage": "Identification Stage",
            "CaptchaStage": "Captcha Stage", "PasswordStage": "Password Stage",
            "PromptStage": "Prompt Stage", "UserWriteStage": "User Write Stage",
            "UserLoginStage": "User Login Stage"}.get(res.model, res.model)


def _expression_error(expression, filename):
    """
    PropertyMappingSerializer.validate_expression (authentik/core/api/property_mappings.py)
    -> BaseEvaluator.validate (authentik/lib/expression/evaluator.py): the expression is
    compiled (never run) as the body of ``def handler()``; a SyntaxError or ValueError is
    "Expression Syntax Error: <str(exc)>".
    """
    wrapped = "def handler():\n" + textwrap.indent(expression, "    ") + "\nresult = handler()"
    try:
        compile(wrapped, filename, "exec")
    except (SyntaxError, ValueError) as exc:
        return f"Expression Syntax Error: {exc}"
    return None


# authentik/outposts/models.py OutpostConfig (2025.6 to 2026.5): the typed top-level fields
# OutpostSerializer.validate_config checks with dacite from_dict; None passes an Optional
OUTPOST_CONFIG_TYPES = {
    "authentik_host": (str, False), "authentik_host_insecure": (bool, False),
    "authentik_host_browser": (str, False), "log_level": (str, False),
    "object_naming_template": (str, False), "container_image": (str, True),
    "docker_network": (str, True), "docker_map_ports": (bool, False), "docker_labels": (dict, True),
    "kubernetes_replicas": (int, False), "kubernetes_namespace": (str, False),
    "kubernetes_ingress_annotations": (dict, False), "kubernetes_ingress_secret_name": (str, False),
    "kubernetes_ingress_class_name": (str, True), "kubernetes_service_type": (str, False),
    "kubernetes_disabled_components": (list, False), "kubernetes_image_pull_secrets": (list, False),
    "kubernetes_json_patches": (dict, True),
}


def _outpost_config_error(config):
    """dacite's WrongTypeError text for the first field of the wrong type, else None."""
    for key, value in config.items():
        if key not in OUTPOST_CONFIG_TYPES:
            continue  # dacite ignores keys the dataclass does not have
        typ, optional = OUTPOST_CONFIG_TYPES[key]
        if value is None and optional:
            continue
        if not isinstance(value, typ):  # dacite's is_instance: bool passes for int
            should = typ.__name__ + (" | None" if optional else "")
            return (f'wrong value type for field "{key}" - should be "{should}" '
                    f'instead of value "{value}" of type "{type(value).__name__}"')
    return None


class _FilterError(Exception):
    """A filter method's own ValidationError (a 400 whose body is a list)."""


def _attributes_match(attributes, text):
    """
    GroupFilter/UsersFilter.filter_attributes (authentik/core/api/groups.py, users.py):
    the value is JSON ``{"key": value}``, each key a Django JSONField lookup
    (``attributes__<key>=<value>``, ``__`` walking into nested objects).
    """
    try:
        wanted = json.loads(text)
    except ValueError:
        raise _FilterError("filter: failed to parse JSON") from None
    if not isinstance(wanted, dict):
        raise _FilterError("filter: value must be key:value mapping")
    for key, value in wanted.items():
        node = attributes
        for part in str(key).split("__"):
            if not isinstance(node, dict) or part not in node:
                return False
            node = node[part]
        if node != value:
            return False
    return True


def _sort_key(value):
    """Numbers by value (order 10 after 2), everything else by text."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, value, "")
    return (1, 0, "" if value is None else str(value))


def _as_key(pk_kind, value):
    """A URL/filter value as the stored key of a table (int pks or lower-case uuids)."""
    if pk_kind == "int":
        try:
            return int(value)
        except (TypeError, ValueError):
            return None
    return str(value).lower()


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

