"""
Native single sign-on applications in Authentik, from pillar ``hecate:authentik:applications``:
sites that speak OpenID Connect (Grafana, Nextcloud, Jenkins, MinIO) or SAML (Wazuh)
themselves, next to the sites Caddy protects with forward auth (hecate_route_auth).

Each entry ``<name>`` becomes (``salt/hecate/authentik_apps.sls``):

- a provider ``hecate/<env>/app/<name>``: OAuth2/OpenID (flows by slug, redirect URIs,
  scopes and property mappings, token lifetimes, signing key) or SAML (ACS URL, audience,
  issuer, binding, signing key pair, property mappings);
- an application (slug ``<name>`` or ``slug``) with that provider, published as
  ``hecate/<env>/app/<name>`` (the ownership mark; a same-slug application without it is
  an error naming it);
- policy bindings of exactly ``groups`` (none: any signed-in user);
- in Vault at ``credentials``: the OAuth2 client id and secret, or the SAML IdP's metadata
  URL, entity id, SSO URL and signing certificate, for the application to read.

Entries removed from pillar lose their application and provider (``authentik_application.
pruned``, in the orchestration's Authentik prune step). This generalises what
``salt/bionicgpt/authentik.sls`` lays down for BionicGPT, which keeps its own pillar.
"""

import re

import hecate_authentik_client as hak
import hecate_config
import hecate_route_auth
import hecate_schema

PILLAR_PATH = "hecate:authentik:applications"
PROTOCOLS = ("oidc", "saml")
_SLUG = {"type": "string", "pattern": r"^[-a-zA-Z0-9_]+$", "maxLength": 50}
_NAMES = {"type": "array", "items": {"type": "string", "minLength": 1}}
_DURATION = {"type": ["string", "integer"]}
_VAULT_PATH = {"type": "string", "pattern": r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.@-]+)+$"}
_REDIRECT = {
    "oneOf": [
        hecate_schema.URL,
        {"type": "object", "required": ["url"], "additionalProperties": False,
         "properties": {"url": {"type": "string", "minLength": 1}, "matching_mode": {"enum": ["strict", "regex"]}}},
    ]
}

OIDC_KEYS = ("redirect_uris", "client_type", "scopes", "access_code_validity", "access_token_validity",
             "refresh_token_validity", "sub_mode", "issuer_mode", "include_claims_in_id_token")
SAML_KEYS = ("acs_url", "audience", "issuer", "sp_binding", "name_id_mapping", "sign_assertion", "sign_response",
             "digest_algorithm", "signature_algorithm")


def _d(text, schema):
    return dict(schema, description=text)


APP_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["protocol"],
    "description": "One application that signs its users in with Authentik itself (OIDC or SAML).",
    "properties": {
        "protocol": _d("oidc (an OAuth2/OpenID provider) or saml (a SAML provider).", {"enum": list(PROTOCOLS)}),
        "name": _d("The application's display name (default: the key).", {"type": "string", "minLength": 1}),
        "slug": _d("The application's slug (default: the key); OIDC URLs are /application/o/<slug>/.", _SLUG),
        "launch_url": _d("The application's launch URL on the user's dashboard.", hecate_schema.URL),
        "icon": _d("URL of the application's icon on the user's dashboard.", hecate_schema.URL),
        "meta_description": _d("The application's description on the user's dashboard.", {"type": "string"}),
        "groups": _d("Authentik groups whose members get in (policy bindings, engine mode any); empty or "
                     "absent: any signed-in user. The groups must exist.", _NAMES),
        "flow": _d("Slug of the authorization flow (default default-provider-authorization-implicit-consent).",
                   _SLUG),
        "invalidation_flow": _d("Slug of the invalidation flow (default default-provider-invalidation-flow).",
                                _SLUG),
        "property_mappings": _d("Further mappings by name: scope mappings (oidc) or SAML property mappings "
                                "(saml, default: Authentik's managed ones).", _NAMES),
        "signing_key": _d("Name of the certificate key pair that signs tokens (oidc: RS256 instead of HS256) "
                          "or assertions (saml).", {"type": "string", "minLength": 1}),
        "credentials": _d("Vault KV v2 path (<mount>/<path>) hecate writes for the application to read: "
                          "client_id and client_secret (oidc); metadata_url, entity_id, sso_url and "
                          "certificate (saml).", _VAULT_PATH),
        "redirect_uris": _d("oidc: the application's callback URLs (matched strictly, or "
                            "{url, matching_mode: regex}).", {"type": "array", "minItems": 1, "items": _REDIRECT}),
        "client_type": _d("oidc: confidential (default) or public.", {"enum": ["confidential", "public"]}),
        "scopes": _d("oidc: Authentik's built-in scopes to offer (default openid, email, profile).", _NAMES),
        "access_code_validity": _d("oidc: lifetime of an authorization code (e.g. minutes=1).", _DURATION),
        "access_token_validity": _d("oidc: lifetime of an access token (e.g. hours=1).", _DURATION),
        "refresh_token_validity": _d("oidc: lifetime of a refresh token (e.g. days=30).", _DURATION),
        "sub_mode": _d("oidc: what the sub claim holds.", {"enum": [
            "hashed_user_id", "user_id", "user_uuid", "user_username", "user_email", "user_upn"]}),
        "issuer_mode": _d("oidc: issuer per provider or global.", {"enum": ["global", "per_provider"]}),
        "include_claims_in_id_token": _d("oidc: put the claims in the ID token too.", {"type": "boolean"}),
        "acs_url": _d("saml: the service provider's Assertion Consumer Service URL.", hecate_schema.URL),
        "audience": _d("saml: the audience restriction (usually the SP's entity id).", {"type": "string"}),
        "issuer": _d("saml: the IdP entity id Authentik presents (default authentik).",
                     {"type": "string", "minLength": 1}),
        "sp_binding": _d("saml: how Authentik sends the response to the ACS URL.", {"enum": ["redirect", "post"]}),
        "name_id_mapping": _d("saml: name of the SAML property mapping that makes the NameID.",
                              {"type": "string", "minLength": 1}),
        "sign_assertion": _d("saml: sign the assertion (default true).", {"type": "boolean"}),
        "sign_response": _d("saml: sign the response (default false).", {"type": "boolean"}),
        "digest_algorithm": _d("saml: digest algorithm URI.", {"type": "string", "minLength": 1}),
        "signature_algorithm": _d("saml: signature algorithm URI.", {"type": "string", "minLength": 1}),
    },
}
PILLAR_SCHEMA = {
    PILLAR_PATH: {
        "type": "object",
        "description": ("Applications that sign in with Authentik themselves (OIDC or SAML): provider, "
                        "application, group bindings, credentials in Vault; the key names the application."),
        "propertyNames": {"pattern": r"^[a-z0-9][a-z0-9_-]{0,49}$"},
        "additionalProperties": APP_SCHEMA,
    }
}


def mark(env, name):
    """The provider's name and the application's publisher of entry ``name``."""
    return hecate_route_auth.mark(env, "app", name)


def check_pillar(pillar, env):
    """Protocol keys, slugs unique among hecate's applications, http refused in prod."""
    apps = hecate_config.traverse(pillar, PILLAR_PATH)
    if not isinstance(apps, dict):
        return []
    env = env or hecate_config.traverse(pillar, "hecate:global:environment")
    errors, slugs = [], {}
    for name, app in apps.items():
        if not isinstance(app, dict):
            continue
        where = f"{PILLAR_PATH}:{name}"
        protocol = app.get("protocol")
        other = SAML_KEYS if protocol == "oidc" else OIDC_KEYS if protocol == "saml" else ()
        for key in other:
            if key in app:
                errors.append((f"{where}:{key}", f"only for protocol {'saml' if protocol == 'oidc' else 'oidc'}"))
        if protocol == "oidc":
            if not app.get("redirect_uris"):
                errors.append((f"{where}:redirect_uris", "required key is missing (protocol oidc)"))
            if app.get("client_type", "confidential") == "confidential" and not app.get("credentials"):
                errors.append((f"{where}:credentials", "required key is missing: the Vault path where the "
                                                       "client id and secret go for the application to read"))
        if protocol == "saml" and not app.get("acs_url"):
            errors.append((f"{where}:acs_url", "required key is missing (protocol saml)"))
        urls = [(f"{where}:redirect_uris:{i}", u.get("url") if isinstance(u, dict) else u)
                for i, u in enumerate(app.get("redirect_uris") or [])]
        urls.append((f"{where}:acs_url", app.get("acs_url")))
        for path, url in urls:
            if env == "prod" and isinstance(url, str) and url.startswith("http://"):
                errors.append((path, "plain http is refused in prod"))
        for idx, uri in enumerate(app.get("redirect_uris") or []):
            if isinstance(uri, dict) and uri.get("matching_mode") == "regex":
                try:
                    re.compile(uri.get("url", ""))
                except re.error as exc:
                    errors.append((f"{where}:redirect_uris:{idx}:url", f"invalid regular expression ({exc})"))
        groups = app.get("groups") or []
        if isinstance(groups, list) and len(set(map(str, groups))) != len(groups):
            errors.append((f"{where}:groups", "lists a group twice"))
        for key in ("access_code_validity", "access_token_validity", "refresh_token_validity"):
            if app.get(key) is not None:
                try:
                    hak.duration_seconds(app[key], key)
                except Exception as exc:  # pylint: disable=broad-except
                    errors.append((f"{where}:{key}", str(exc).split(": ", 1)[-1]))
        slug = app.get("slug") or name
        if slug in hak.RESERVED_SLUGS:
            errors.append((f"{where}:slug", f"'{slug}' is reserved by Authentik (it clashes with the OAuth2 "
                                            "endpoints)"))
        if slug in slugs:
            errors.append((f"{where}:slug", f"application slug '{slug}' is also {slugs[slug]}'s"))
        slugs.setdefault(slug, f"{PILLAR_PATH}:{name}")
    bionic = hecate_config.traverse(pillar, "bionicgpt:authentik:application:slug")
    if bionic in slugs:
        errors.append((f"{slugs[bionic]}:slug", f"application slug '{bionic}' is also BionicGPT's "
                                                "(bionicgpt:authentik:application:slug)"))
    return errors


def desired_marks(pillar, env):
    """The marks of the entries in pillar (what :func:`prune` keeps)."""
    apps = hecate_config.traverse(pillar, PILLAR_PATH) or {}
    return sorted(mark(env, name) for name in apps) if isinstance(apps, dict) else []
