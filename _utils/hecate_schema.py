"""
The pillar schema: one declarative JSON Schema for the whole ``hecate``/``bionicgpt``
tree, plus semantic checks that a schema cannot express (duplicate domains, port
clashes, secrets written as literals).

Each system contributes its part: a util module listed in :data:`SYSTEM_MODULES` may
define ``PILLAR_SCHEMA`` (``{"hecate:reverse_proxy:caddy": {...json schema...}}``) and
``check_pillar(pillar, env) -> [(key_path, message)]``. Every error names its key path,
Salt style (``hecate:reverse_proxy:caddy:routes:3:backend``).
"""

import copy
import importlib
import os
import re
import sys

import jsonschema

try:
    import hecate_secrets
except ImportError:  # installed with pip
    from saltext.hecate.utils import hecate_secrets

# Util modules that extend the schema; each later system adds itself here.
SYSTEM_MODULES = (
    "hecate_consul_client",
    "hecate_vault_client",
    "hecate_wireguard",
    "hecate_agents",
    "hecate_nomad_client",
    "hecate_caddy_routes",
    "hecate_nginx",
    "hecate_coturn",
    "hecate_authentik_client",
    "hecate_preflight",
    "hecate_members",
    "hecate_dns_schema",
    "hecate_edge_schema",
)

ENV_NAME = r"^[a-z][a-z0-9-]{1,30}$"
_LABELS = r"([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$"
DOMAIN = r"^(?=.{1,253}$)(\*\.)?" + _LABELS
# A host name (no wildcard), e.g. the domain a service is reached at.
HOSTNAME = r"^(?=.{1,253}$)" + _LABELS
# Keys whose values are secrets: pillar must hold a Vault reference (or sdb://), never
# the value itself (values in pillar reach pillar.items and the job cache).
SECRET_KEYS = frozenset(
    {
        "token",
        "password",
        "secret",
        "secret_id",
        "secret_key",
        "client_secret",
        "static_auth_secret",
        "auth_secret",
        "api_key",
        "master_key",
        "cookie_secret",
        "gossip_key",
        "private_key",
    }
)
# Key names that name a secret wherever they appear (a task's environment included:
# OAUTH2_PROXY_CLIENT_SECRET, POSTGRES_PASSWORD, AZURE_API_KEY): the last word of the name,
# or its last two words (words split at anything not a letter or digit, case ignored).
SECRET_WORDS = frozenset({"password", "passwd", "secret", "token", "apikey"})
SECRET_WORD_PAIRS = frozenset(
    {(first, "key") for first in ("api", "private", "master", "secret", "access", "gossip", "encryption")}
)


def is_secret_key(key):
    """Whether a pillar key (or an environment variable) names a secret."""
    if not isinstance(key, str):
        return False
    if key in SECRET_KEYS:
        return True
    words = [w for w in re.split(r"[^a-z0-9]+", key.lower()) if w]
    if not words:
        return False
    return words[-1] in SECRET_WORDS or tuple(words[-2:]) in SECRET_WORD_PAIRS

VAULT_REF = {
    "type": "object",
    "required": ["vault", "key"],
    "additionalProperties": False,
    "properties": {
        "vault": {"type": "string", "pattern": r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.@-]+)+$"},
        "key": {"type": "string", "minLength": 1},
    },
}
SECRET_VALUE = {
    "oneOf": [VAULT_REF, {"type": "string", "pattern": "^sdb://"}, {"type": "null"}]
}
URL = {"type": "string", "pattern": r"^https?://[^\s/]+(/\S*)?$"}
TLS = {
    "verify": {"type": "boolean"},
    "ca_bundle": {"type": ["string", "null"]},
    "timeout": {"type": "number", "exclusiveMinimum": 0},
    "retries": {"type": "integer", "minimum": 0, "maximum": 10},
}


def _connection(extra):
    props = dict(TLS)
    props.update(extra)
    return {"type": "object", "additionalProperties": False, "properties": props}


BASE_SCHEMA = {
    "type": "object",
    "required": ["hecate"],
    "properties": {
        "hecate": {
            "type": "object",
            "required": ["global"],
            "properties": {
                "global": {
                    "type": "object",
                    "required": ["domain", "environment"],
                    "properties": {
                        "domain": {"type": "string", "pattern": DOMAIN},
                        "environment": {"type": "string", "pattern": ENV_NAME},
                        "hetzner_location": {"type": "string"},
                    },
                    "additionalProperties": False,
                },
                "connections": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "caddy": _connection(
                            {
                                "admin_url": URL,
                                "origin": {"type": ["string", "null"]},
                                "state_dir": {"type": "string"},
                            }
                        ),
                        "authentik": _connection(
                            {
                                "url": URL,
                                "token": SECRET_VALUE,
                                "page_size": {"type": "integer", "minimum": 1, "maximum": 100},
                            }
                        ),
                        "nomad": _connection(
                            {
                                "url": URL,
                                "token": SECRET_VALUE,
                                "namespace": {"type": "string"},
                                "region": {"type": ["string", "null"]},
                            }
                        ),
                        "consul": _connection(
                            {
                                "url": URL,
                                "token": SECRET_VALUE,
                                "datacenter": {"type": ["string", "null"]},
                            }
                        ),
                        "vault": _connection(
                            {
                                "url": URL,
                                "token": SECRET_VALUE,
                                "namespace": {"type": ["string", "null"]},
                                "approle": {
                                    "type": ["object", "null"],
                                    "properties": {
                                        "role_id": {"type": "string"},
                                        "secret_id": SECRET_VALUE,
                                        "mount": {"type": "string"},
                                    },
                                    "additionalProperties": False,
                                },
                            }
                        ),
                    },
                },
            },
        },
        "bionicgpt": {"type": "object"},
    },
}
# The sections under ``hecate`` and ``bionicgpt`` are exactly those the systems register
# (see :func:`schema`): a misspelt section (``hecate:reverse_proxi``) is an unknown key, not
# a silently ignored one.
STRICT_ROOTS = ("hecate", "bionicgpt")


def _set_fragment(schema, path, fragment):
    """Place ``fragment`` at pillar ``path`` (``a:b:c``) inside the object schema."""
    node = schema
    parts = path.split(":")
    for part in parts[:-1]:
        node.setdefault("type", "object")
        # a section made only of registered sub-sections (hecate:reverse_proxy) knows them all
        node = node.setdefault("properties", {}).setdefault(
            part, {"type": "object", "additionalProperties": False}
        )
    props = node.setdefault("properties", {})
    existing = props.get(parts[-1])
    fragment = copy.deepcopy(fragment)
    if existing and existing.get("properties"):
        # another system registered a deeper path first (e.g. bionicgpt:nomad:agent before
        # bionicgpt:nomad): keep its sub-keys, whatever the registration order
        merged = dict(existing["properties"])
        merged.update(fragment.get("properties", {}))
        fragment["properties"] = merged
    props[parts[-1]] = fragment


def _import_util(name):
    """A sibling util, from the same packaging as this module."""
    if __name__.startswith("saltext."):  # installed with pip
        return importlib.import_module(f"saltext.hecate.utils.{name}")
    if name in sys.modules:
        return sys.modules[name]
    # file_roots tree: the loader puts _utils on sys.path only while it imports a module,
    # and this runs later, so import from the directory this file was loaded from.
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, here)
    try:
        return importlib.import_module(name)
    finally:
        if here in sys.path:
            sys.path.remove(here)


def _system_modules():
    # Imported lazily, at validation time: the system utils import this module for its
    # shared definitions.
    return [_import_util(name) for name in SYSTEM_MODULES]


def schema():
    """The assembled schema (base + every system's fragments)."""
    full = copy.deepcopy(BASE_SCHEMA)
    for root in STRICT_ROOTS:
        full["properties"][root]["additionalProperties"] = False
    for mod in _system_modules():
        for path, fragment in getattr(mod, "PILLAR_SCHEMA", {}).items():
            _set_fragment(full, path, fragment)
    return full


def _unexpected(error):
    """
    The keys an ``additionalProperties: false`` error is about, read from the object itself
    (jsonschema gives ONE error per object naming them all in its message, which cannot be
    parsed back safely when a key holds quotes or parentheses).
    """
    instance, schema_ = error.instance, error.schema
    if not isinstance(instance, dict) or not isinstance(schema_, dict):
        return []
    known = schema_.get("properties") or {}
    patterns = list((schema_.get("patternProperties") or {}).keys())
    return [
        str(key)
        for key in instance
        if key not in known and not any(re.search(pat, str(key)) for pat in patterns)
    ]


def format_error(error):
    """
    ``[(key_path, message)]`` for one jsonschema error: one entry per unknown key of an
    object (each with its full path), the best match of a oneOf/anyOf, else the error.
    """
    path = [str(p) for p in error.absolute_path]
    if error.validator == "required":
        missing = re.search(r"'([^']+)' is a required property", error.message)
        if missing:
            return [(":".join(path + [missing.group(1)]), "required key is missing")]
    if error.validator == "additionalProperties" and error.validator_value is False:
        extra = _unexpected(error)
        if extra:
            return [(":".join(path + [key]), "unknown key (not in the schema)") for key in extra]
    if error.validator in ("oneOf", "anyOf") and error.context:
        return _branch_errors(error)
    return [(":".join(path) or "(top)", _message(error))]


def _branch_errors(error):
    """
    Errors of a failed oneOf/anyOf: those of the branch that fits best, all of them, so that
    every unknown key of an object branch is named. For a mapping, branches of another type
    (``{type: boolean}``) are left out when an object branch exists. Other values keep
    jsonschema's choice: a pattern error would print the value, which may be a secret
    written as a literal (the type error does not).
    """
    fitting = list(error.context)
    if isinstance(error.instance, dict):
        fitting = [e for e in fitting if not (e.validator == "type" and not e.relative_path)] or fitting
    best = jsonschema.exceptions.best_match(fitting)
    branch = best.relative_schema_path[0] if best.relative_schema_path else None
    same = [e for e in fitting if e.relative_schema_path and e.relative_schema_path[0] == branch] or [best]
    out = []
    for err in same:
        out.extend(format_error(err))
    return out


def _message(error):
    if error.validator == "pattern":
        return f"{error.instance!r} does not match the expected format"
    if error.validator == "enum":
        return f"{error.instance!r} is not one of {error.validator_value}"
    if error.validator in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        return f"{error.instance!r} is out of range ({error.validator} {error.validator_value})"
    if error.validator == "type":
        return f"expected {error.validator_value}, got {type(error.instance).__name__}"
    return error.message


def literal_message(value):
    """
    Why a secret value in pillar is refused, and the reference form to write instead (never
    the value). A ``{{ salt['vault.read_secret'](...) }}`` line, as in the user's drafts,
    leaves either the value (rendered) or the Jinja text (not rendered) in pillar.
    """
    form = ("use the Vault reference {vault: <mount>/<path>, key: <key>} instead (hecate resolves it "
            "when it writes, or hands it to Nomad's template block, so the value never enters pillar)")
    if isinstance(value, str) and ("vault.read_secret" in value or "{{" in value):
        return ("a {{ salt['vault.read_secret'](...) }} line copies the secret into pillar (pillar.items, "
                "the job cache, every minion's pillar cache); " + form)
    return "secret given as a literal; " + form


def check_secrets(pillar):
    """Secret-named keys must hold references, never values; references must be well formed."""
    errors = []

    def literal(val):
        if isinstance(val, str):
            return not val.startswith("sdb://")
        return isinstance(val, (int, float)) and not isinstance(val, bool)

    def walk(node, path):
        if hecate_secrets.is_ref(node):
            try:
                hecate_secrets.parse_ref(node, path)
            except Exception as exc:  # pylint: disable=broad-except
                errors.append((path, str(exc).split(": ", 1)[-1]))
            return
        if isinstance(node, dict):
            for key, val in node.items():
                sub = f"{path}:{key}" if path else str(key)
                if is_secret_key(key) and literal(val):
                    if path.endswith(":env"):
                        # a task's environment is stored in clear in the Nomad job
                        msg = ("secret given as a literal in a task's environment (Nomad keeps it "
                               "in clear in the job); keep it in Vault and render it with a "
                               "template block, as the job templates do for their secrets")
                    else:
                        msg = literal_message(val)
                    errors.append((sub, msg))
                else:
                    walk(val, sub)
        elif isinstance(node, list):
            for idx, val in enumerate(node):
                walk(val, f"{path}:{idx}")

    walk({k: v for k, v in pillar.items() if k in ("hecate", "bionicgpt")}, "")
    return errors


# Environments are named after their overlay (pillar/env/<name>.sls) and the `hecate_env`
# grain; the long names some drafts use are refused with the name to write, never mapped.
ENVIRONMENTS = ("lab", "dev", "staging", "prod")
ENV_ALIASES = {"production": "prod", "development": "dev", "develop": "dev", "stage": "staging",
               "testing": "lab", "test": "lab"}


def _alias_error(got):
    return [(
        "hecate:global:environment",
        f"{got!r} is not an environment name: hecate's environments are {', '.join(ENVIRONMENTS)} "
        f"(the overlay pillar/env/<name>.sls and the minions' hecate_env grain); write "
        f"environment: {ENV_ALIASES[got]}",
    )]


def check_environment(pillar, env):
    got = ((pillar.get("hecate") or {}).get("global") or {}).get("environment")
    if isinstance(got, str) and got in ENV_ALIASES:
        return _alias_error(got)
    if env is None:
        return []
    if got is None:
        return [
            (
                "hecate:global:environment",
                f"unknown environment '{env}': no overlay pillar/env/{env}.sls sets it",
            )
        ]
    if got != env:
        return [
            (
                "hecate:global:environment",
                f"the pillar of environment '{env}' says it is {got!r}: an overlay (or a "
                f"change on top of pillar/env/{env}.sls) sets the wrong environment",
            )
        ]
    return []


def validate(pillar, env=None):
    """
    All errors of a compiled pillar, as sorted ``"key:path: message"`` strings.
    An empty list means valid.
    """
    found = []
    validator = jsonschema.Draft202012Validator(schema())
    for error in validator.iter_errors(pillar):
        found.extend(format_error(error))
    found.extend(check_environment(pillar, env))
    found.extend(check_secrets(pillar))
    for mod in _system_modules():
        check = getattr(mod, "check_pillar", None)
        if check:
            found.extend(check(pillar, env))
    return sorted({f"{path}: {msg}" for path, msg in found})
