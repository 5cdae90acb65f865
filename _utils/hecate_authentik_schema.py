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
                "url": {"type": "string", "minLength": 1},
                "matching_mode": {"enum": ["strict", "regex"]},
            },
        },
    ]
}
_VAULT_PATH = {"type": "string", "pattern": r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.@-]+)+$"}

PILLAR_SCHEMA = {
    # the Authentik release in use, for the deployment record (hecate.record)
    "hecate:authentik": {
        "type": "object",
        "additionalProperties": False,
        "properties": {"version": {"type": "string", "minLength": 1}},
    },
    "bionicgpt:authentik": {
        "type": "object",
        "additionalProperties": False,
        "required": ["group_prefix"],
        "properties": {
            "group_prefix": {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"},
            "groups": {
                "type": "object",
                "additionalProperties": {
                    "type": ["object", "null"],
                    "additionalProperties": False,
                    "properties": {
                        "attributes": {"type": "object"},
                        "is_superuser": {"type": "boolean"},
                        "parent": {"type": ["string", "null"]},
                    },
                },
            },
            "scope_mapping": {
                "type": "object",
                "required": ["name"],
                "additionalProperties": False,
                "properties": {
                    "name": _NAME,
                    "scope_name": {"type": "string", "pattern": r"^[A-Za-z0-9_.:/-]+$"},
                    "description": {"type": "string"},
                    "superadmin_group": {"type": "string"},
                    "claim": {"type": "string", "pattern": r"^[A-Za-z_][A-Za-z0-9_]*$"},
                },
            },
            "provider": {
                "type": "object",
                "required": ["name", "authorization_flow", "invalidation_flow", "redirect_uris",
                             "credentials"],
                "additionalProperties": False,
                "properties": {
                    "name": _NAME,
                    "authorization_flow": _SLUG,
                    "invalidation_flow": _SLUG,
                    "authentication_flow": {"oneOf": [_SLUG, {"type": "null"}]},
                    "client_type": {"enum": ["confidential", "public"]},
                    "redirect_uris": {"type": "array", "minItems": 1, "items": _REDIRECT},
                    "scopes": {"type": "array", "items": {"type": "string", "minLength": 1}},
                    "property_mappings": {"type": "array", "items": _NAME},
                    "access_code_validity": _DURATION,
                    "access_token_validity": _DURATION,
                    "refresh_token_validity": _DURATION,
                    "sub_mode": {"enum": ["hashed_user_id", "user_id", "user_uuid", "user_username",
                                          "user_email", "user_upn"]},
                    "issuer_mode": {"enum": ["global", "per_provider"]},
                    "include_claims_in_id_token": {"type": "boolean"},
                    "signing_key": {"type": ["string", "null"]},
                    "credentials": _VAULT_PATH,
                },
            },
            "application": {
                "type": "object",
                "required": ["name", "slug"],
                "additionalProperties": False,
                "properties": {
                    "name": _NAME,
                    "slug": _SLUG,
                    "launch_url": _URL,
                    "description": {"type": "string"},
                    "publisher": {"type": "string"},
                    "group": {"type": "string"},
                    "open_in_new_tab": {"type": "boolean"},
                    "policy_engine_mode": {"enum": ["any", "all"]},
                },
            },
            "bindings": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "groups": {"type": "array", "items": {"type": "string"}},
                    "exclusive": {"type": "boolean"},
                },
            },
            "enrollment": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "enabled": {"type": "boolean"},
                    "slug": _SLUG,
                    "name": _NAME,
                    "title": _NAME,
                    "identification_stage": _NAME,
                    "group": {"type": ["string", "null"]},
                    "user_type": {"enum": ["internal", "external"]},
                    "captcha": {
                        "type": ["object", "null"],
                        "required": ["public_key", "private_key"],
                        "additionalProperties": False,
                        "properties": {
                            "public_key": _NAME,
                            "private_key": hecate_schema.SECRET_VALUE,
                            "js_url": _URL,
                            "api_url": _URL,
                            "interactive": {"type": "boolean"},
                        },
                    },
                },
            },
            "test_users": {
                "type": "object",
                "additionalProperties": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "name": {"type": "string"},
                        "email": {"type": "string", "pattern": r"^[^@\s]+@[^@\s]+$"},
                        "groups": {"type": "array", "items": {"type": "string"}},
                        "attributes": {"type": "object"},
                        "password": hecate_schema.SECRET_VALUE,
                        "is_active": {"type": "boolean"},
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
    if env == "prod" and isinstance(url, str) and url.lower().startswith("http://"):
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
