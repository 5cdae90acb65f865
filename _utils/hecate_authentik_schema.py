"""
The pillar of hecate's Authentik objects, ``bionicgpt:authentik`` (and
``hecate:authentik:version``): its schema, and the checks a schema cannot express (group
prefix on every group that reaches the application, test users in the lab only, durations,
redirect URIs, no plain http towards Authentik in prod).
"""

import re

import salt.exceptions

import hecate_authentik_client
import hecate_config
import hecate_schema

# ------------------------------------------------------------------------------------------
# Pillar schema: bionicgpt:authentik
# ------------------------------------------------------------------------------------------
_SLUG = {"type": "string", "pattern": r"^[-a-zA-Z0-9_]+$", "maxLength": 50}
_NAME = {"type": "string", "minLength": 1}
# checked by check_pillar (duration_seconds), which says what is wrong with a value
_DURATION = {"type": ["string", "integer"]}
_URL = hecate_schema.URL
_REDIRECT = {
    "oneOf": [
        _URL,
        {
            "type": "object",
            "required": ["url"],
            "additionalProperties": False,
            "properties": {
                "url": {"type": "string", "minLength": 1,
                        "description": "The redirect URL, or a regular expression with matching_mode regex."},
                "matching_mode": {"enum": ["strict", "regex"], "default": "strict",
                                  "description": "strict compares the whole URL; regex matches url as an expression."},
            },
        },
    ]
}
_VAULT_PATH = {"type": "string", "pattern": r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.@-]+)+$"}
_d = hecate_schema.described
_UNMANAGED = "absent: not managed (Authentik's value stays)"
_VALIDITY = (
    "{} lifetime, as an Authentik duration (hours=1, days=7; several joined with ;) or seconds; " + _UNMANAGED + "."
)

PILLAR_SCHEMA = {
    # the Authentik release in use, for the deployment record (hecate.record)
    "hecate:authentik": {
        "type": "object",
        "additionalProperties": False,
        "description": "Facts about the Authentik in use.",
        "properties": {
            "version": {"type": "string", "minLength": 1, "examples": ["2025.10"],
                        "description": "The Authentik release deployed, written into the deployment record."},
        },
    },
    "bionicgpt:authentik": {
        "type": "object",
        "additionalProperties": False,
        "required": ["group_prefix"],
        "description": (
            "BionicGPT's single sign-on in Authentik (bionicgpt.authentik, on the cloud node): groups, "
            "the groups scope mapping, the OAuth2 provider, the application, its bindings, self-enrollment."
        ),
        "properties": {
            "group_prefix": {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
                             "examples": ["bionicgpt-"],
                             "description": "Only groups named with this prefix reach BionicGPT: every group here, "
                                            "the bindings and the groups claim must carry it."},
            "groups": {
                "type": "object",
                "description": "Authentik groups hecate keeps, by name (each starts with group_prefix).",
                "additionalProperties": {
                    "type": ["object", "null"],
                    "additionalProperties": False,
                    "description": "One group; null or {} for a plain group.",
                    "properties": {
                        "attributes": {"type": "object", "default": {},
                                       "description": "The group's full attributes (keys not listed are removed)."},
                        "is_superuser": {"type": "boolean",
                                         "description": "Members become Authentik superusers; " + _UNMANAGED + "."},
                        "parent": {"type": ["string", "null"],
                                   "description": "Name of the parent group; empty for none; " + _UNMANAGED + "."},
                    },
                },
            },
            "scope_mapping": {
                "type": "object",
                "required": ["name"],
                "additionalProperties": False,
                "description": (
                    "The scope mapping that puts the user's prefixed groups (and is_superadmin) into the "
                    "token; it is added to the provider's property mappings."
                ),
                "properties": {
                    "name": _d(_NAME, "The mapping's name in Authentik.", examples=["BionicGPT Groups Mapping"]),
                    "scope_name": {"type": "string", "pattern": r"^[A-Za-z0-9_.:/-]+$", "default": "groups",
                                   "description": "The scope a client requests to get these claims."},
                    "description": {"type": "string",
                                    "description": "Shown to users on the consent page; " + _UNMANAGED + "."},
                    "superadmin_group": {"type": "string",
                                         "description": "Members get is_superadmin: true; absent: "
                                                        "<group_prefix>superadmin."},
                    "claim": {"type": "string", "pattern": r"^[A-Za-z_][A-Za-z0-9_]*$", "default": "groups",
                              "description": "The claim that carries the group names."},
                },
            },
            "provider": {
                "type": "object",
                "required": ["name", "authorization_flow", "invalidation_flow", "redirect_uris",
                             "credentials"],
                "additionalProperties": False,
                "description": "The OAuth2/OpenID provider oauth2-proxy logs in with.",
                "properties": {
                    "name": _d(_NAME, "The provider's name (unique in Authentik)."),
                    "authorization_flow": _d(_SLUG, "Slug of the flow that authorizes a login.",
                                             examples=["default-provider-authorization-implicit-consent"]),
                    "invalidation_flow": _d(_SLUG, "Slug of the flow run at logout.",
                                            examples=["default-provider-invalidation-flow"]),
                    "authentication_flow": {"oneOf": [_SLUG, {"type": "null"}],
                                            "description": "Slug of a flow that authenticates users who are not "
                                                           "logged in; " + _UNMANAGED + "."},
                    "client_type": {"enum": ["confidential", "public"], "default": "confidential",
                                    "description": "confidential clients (oauth2-proxy) hold a client secret."},
                    "redirect_uris": {"type": "array", "minItems": 1, "items": _REDIRECT,
                                      "examples": [["https://chat.example.com/oauth2/callback"]],
                                      "description": "Where Authentik may send the user back: URLs matched "
                                                     "strictly, or {url, matching_mode: regex}; plain http is "
                                                     "refused in prod."},
                    "scopes": {"type": "array", "items": {"type": "string", "minLength": 1},
                               "default": ["openid", "email", "profile"],
                               "description": "Authentik's built-in scope mappings attached to the provider."},
                    "property_mappings": {"type": "array", "items": _NAME, "default": [],
                                          "description": "Further scope mappings, by name (the scope_mapping "
                                                         "above is added by itself)."},
                    "access_code_validity": _d(_DURATION, _VALIDITY.format("Authorization code")),
                    "access_token_validity": _d(_DURATION, _VALIDITY.format("Access token")),
                    "refresh_token_validity": _d(_DURATION, _VALIDITY.format("Refresh token")),
                    "sub_mode": {"enum": ["hashed_user_id", "user_id", "user_uuid", "user_username",
                                          "user_email", "user_upn"],
                                 "description": "What the sub claim holds; " + _UNMANAGED + "."},
                    "issuer_mode": {"enum": ["global", "per_provider"],
                                    "description": "Whether the issuer URL is the same for every provider or per "
                                                   "provider; " + _UNMANAGED + "."},
                    "include_claims_in_id_token": {"type": "boolean",
                                                   "description": "Put the scope claims into the ID token too; "
                                                                  + _UNMANAGED + "."},
                    "signing_key": {"type": ["string", "null"], "examples": ["authentik Self-signed Certificate"],
                                    "description": "Name of the certificate key pair that signs tokens (RS256); "
                                                   "empty: HS256 with the client secret; " + _UNMANAGED + "."},
                    "credentials": _d(_VAULT_PATH,
                                      "Vault KV v2 path (mount first) where hecate stores the client_id and "
                                      "client_secret Authentik generates; the oauth2-proxy task reads them there.",
                                      examples=["secret/bionicgpt/oauth"]),
                },
            },
            "application": {
                "type": "object",
                "required": ["name", "slug"],
                "additionalProperties": False,
                "description": "The application users see in Authentik, tied to the provider.",
                "properties": {
                    "name": _d(_NAME, "The application's display name."),
                    "slug": _d(_SLUG, "The application's slug (in the issuer URL /application/o/<slug>/).",
                               examples=["bionicgpt"]),
                    "launch_url": _d(_URL, "What the application's tile in the user library opens."),
                    "description": {"type": "string", "description": "Shown in the library; " + _UNMANAGED + "."},
                    "publisher": {"type": "string", "description": "Shown in the library; " + _UNMANAGED + "."},
                    "group": {"type": "string",
                              "description": "Library section the tile is listed under; " + _UNMANAGED + "."},
                    "open_in_new_tab": {"type": "boolean",
                                        "description": "The tile opens a new tab; " + _UNMANAGED + "."},
                    "policy_engine_mode": {"enum": ["any", "all"], "default": "any",
                                           "description": "any: one passing binding grants access; all: every "
                                                          "binding must pass."},
                },
            },
            "bindings": {
                "type": "object",
                "additionalProperties": False,
                "description": "Which groups may use the application.",
                "properties": {
                    "groups": {"type": "array", "items": {"type": "string"}, "default": [],
                               "description": "Groups bound to the application (each defined under groups and "
                                              "prefixed)."},
                    "exclusive": {"type": "boolean", "default": False,
                                  "description": "Remove every other binding of the application, so only these "
                                                 "groups get in."},
                },
            },
            "enrollment": {
                "type": "object",
                "additionalProperties": False,
                "description": (
                    "Self-service sign-up, linked from the login page. New users reach BionicGPT only once "
                    "they are in a bound group."
                ),
                "properties": {
                    "enabled": {"type": "boolean", "default": True,
                                "description": "false unlinks and removes the enrollment flow."},
                    "slug": _d(_SLUG, "Slug of the enrollment flow.", default="bionicgpt-enrollment"),
                    "name": _d(_NAME, "The flow's name."),
                    "title": _d(_NAME, "Title shown on the sign-up pages."),
                    "identification_stage": _d(_NAME, "The login's identification stage the sign-up link is "
                                                      "added to.",
                                               default="default-authentication-identification"),
                    "group": {"type": ["string", "null"], "default": None,
                              "description": "Group new users are put in (a prefixed one grants access at once); "
                                             "null: none."},
                    "user_type": {"enum": ["internal", "external"], "default": "internal",
                                  "description": "Authentik user type of new users."},
                    "captcha": {
                        "type": ["object", "null"],
                        "required": ["public_key", "private_key"],
                        "additionalProperties": False,
                        "default": None,
                        "description": "A captcha stage before the prompt (reCAPTCHA; hCaptcha or Turnstile "
                                       "through the URLs); null: none.",
                        "properties": {
                            "public_key": _d(_NAME, "The captcha's site key."),
                            "private_key": _d(hecate_schema.SECRET_VALUE,
                                              "The captcha's secret key, as a Vault reference."),
                            "js_url": _d(_URL, "URL of the captcha's script; absent: reCAPTCHA's."),
                            "api_url": _d(_URL, "URL the server verifies answers at; absent: reCAPTCHA's."),
                            "interactive": {"type": "boolean",
                                            "description": "The captcha needs a user interaction (reCAPTCHA v2, "
                                                           "hCaptcha)."},
                        },
                    },
                },
            },
            "test_users": {
                "type": "object",
                "description": "Users for tests, by username; refused outside the lab environment.",
                "additionalProperties": {
                    "type": "object",
                    "additionalProperties": False,
                    "description": "One test user.",
                    "properties": {
                        "name": {"type": "string", "description": "Display name."},
                        "email": {"type": "string", "pattern": r"^[^@\s]+@[^@\s]+$", "description": "E-mail address."},
                        "groups": {"type": "array", "items": {"type": "string"}, "default": [],
                                   "description": "Groups the user is in."},
                        "attributes": {"type": "object", "description": "The user's attributes."},
                        "password": _d(hecate_schema.SECRET_VALUE, "The user's password, as a Vault reference."),
                        "is_active": {"type": "boolean", "description": "false disables the user."},
                    },
                },
            },
        },
    }
}


def check_pillar(pillar, env):
    """Semantic checks of ``bionicgpt:authentik`` and the Authentik connection."""
    errors = []
    env = env or hecate_config.traverse(pillar, "hecate:global:environment")
    url = hecate_config.traverse(pillar, "hecate:connections:authentik:url")
    if env == "prod" and hecate_authentik_client.plain_http_off_host(url):
        errors.append(("hecate:connections:authentik:url", hecate_authentik_client.PLAIN_HTTP_REFUSED))
    conf = hecate_config.traverse(pillar, "bionicgpt:authentik")
    if not isinstance(conf, dict):
        return errors
    base = "bionicgpt:authentik"
    prefix = conf.get("group_prefix")
    if not isinstance(prefix, str) or not prefix:
        return errors
    groups = conf.get("groups") or {}
    if isinstance(groups, dict):
        for name, spec in groups.items():
            if not str(name).startswith(prefix):
                errors.append((f"{base}:groups:{name}",
                               f"group name must start with the prefix '{prefix}'"))
            parent = (spec or {}).get("parent") if isinstance(spec, dict) else None
            if parent and parent == name:
                errors.append((f"{base}:groups:{name}:parent", "a group cannot be its own parent"))
    known = set(groups) if isinstance(groups, dict) else set()

    def need_group(path, name):
        if not isinstance(name, str) or not name.startswith(prefix):
            errors.append((path, f"'{name}' does not carry the group prefix '{prefix}': "
                                 f"only prefixed groups may reach the application"))
        elif name not in known:
            errors.append((path, f"'{name}' is not defined under {base}:groups"))

    for idx, name in enumerate((conf.get("bindings") or {}).get("groups") or []):
        need_group(f"{base}:bindings:groups:{idx}", name)
    mapping = conf.get("scope_mapping") or {}
    if mapping.get("superadmin_group"):
        need_group(f"{base}:scope_mapping:superadmin_group", mapping["superadmin_group"])
    enrollment = conf.get("enrollment") or {}
    if enrollment.get("group"):
        need_group(f"{base}:enrollment:group", enrollment["group"])
    users = conf.get("test_users") or {}
    if users and env not in (None, "lab"):
        errors.append((f"{base}:test_users",
                       f"test users belong in the lab overlay only (environment is '{env}')"))
    if isinstance(users, dict):
        for user, spec in users.items():
            for idx, name in enumerate((spec or {}).get("groups") or []):
                if str(name).startswith(prefix) and name not in known:
                    errors.append((f"{base}:test_users:{user}:groups:{idx}",
                                   f"'{name}' is not defined under {base}:groups"))
    provider = conf.get("provider") or {}
    if env == "prod":
        for idx, uri in enumerate(provider.get("redirect_uris") or []):
            text = uri.get("url") if isinstance(uri, dict) else uri
            if isinstance(text, str) and text.startswith("http://"):
                errors.append((f"{base}:provider:redirect_uris:{idx}",
                               "plain http redirect URIs are refused in prod"))
    for key in ("access_code_validity", "access_token_validity", "refresh_token_validity"):
        if provider.get(key) is not None:
            try:
                if hecate_authentik_client.duration_seconds(provider[key], key) <= 0:
                    errors.append((f"{base}:provider:{key}", "must be longer than zero"))
            except salt.exceptions.SaltInvocationError as exc:
                errors.append((f"{base}:provider:{key}", str(exc).split(": ", 1)[-1]))
    for idx, uri in enumerate(provider.get("redirect_uris") or []):
        if isinstance(uri, dict) and uri.get("matching_mode") == "regex":
            try:
                re.compile(uri.get("url", ""))
            except re.error as exc:
                errors.append((f"{base}:provider:redirect_uris:{idx}:url",
                               f"invalid regular expression ({exc})"))
        elif isinstance(uri, (str, dict)):
            # strict matching (the default) compares the whole URL the client sends
            where, text = ((f"{base}:provider:redirect_uris:{idx}:url", uri.get("url"))
                           if isinstance(uri, dict) else (f"{base}:provider:redirect_uris:{idx}", uri))
            if isinstance(text, str) and not re.match(_URL["pattern"], text):
                errors.append((where, f"{text!r} is not an absolute http(s) URL (strict matching "
                                      "compares it with the whole redirect URL)"))
    app = conf.get("application") or {}
    if isinstance(app, dict) and app.get("slug") in hecate_authentik_client.RESERVED_SLUGS:
        errors.append((f"{base}:application:slug", f"'{app['slug']}' is reserved by Authentik "
                                                  "(it clashes with the OAuth2 endpoints)"))
    if provider and not conf.get("application"):
        errors.append((f"{base}:application", "a provider needs an application (name, slug)"))
    return errors
