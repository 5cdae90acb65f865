"""
The pillar schema: one declarative JSON Schema for the whole ``hecate``/``bionicgpt``
tree, plus semantic checks that a schema cannot express (duplicate domains, port
clashes, secrets written as literals).

Each system contributes its part: a util module listed in :data:`SYSTEM_MODULES` may
define ``PILLAR_SCHEMA`` (``{"hecate:reverse_proxy:caddy": {...json schema...}}``) and
``check_pillar(pillar, env) -> [(key_path, message)]``. Every error names its key path,
Salt style (``hecate:reverse_proxy:caddy:routes:3:backend``).
"""

import contextlib
import copy
import hashlib
import json
import os
import re
import tempfile

import hecate_config
import hecate_loader
import hecate_secrets

# imported when a pillar is validated (hecate_loader.LazyModule): every state module imports
# this module for its definitions, and most state runs find their pillar validated already
# (hecate_validated); a missing library is reported by the modules that validate
# (hecate_loader.virtual)
jsonschema = hecate_loader.lazy("jsonschema", "jsonschema.exceptions")

# Util modules that extend the schema; each later system adds itself here.
SYSTEM_MODULES = (
    "hecate_consul_schema",
    "hecate_vault_schema",
    "hecate_wireguard_schema",
    "hecate_agents_schema",
    "hecate_nomad_schema",
    "hecate_caddy_schema",
    "hecate_consul_routes",
    "hecate_route_checks",
    "hecate_nginx_schema",
    "hecate_coturn_schema",
    "hecate_authentik_schema",
    "hecate_authentik_apps",
    "hecate_orchestration_schema",
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

def described(node, description, **notes):
    """
    A copy of the schema ``node`` with a ``description`` for the pillar reference (and
    ``default``/``examples`` given as ``notes``). jsonschema ignores these keywords, so a
    shared fragment can be described per use without changing what validates.
    """
    out = dict(node, description=description)
    out.update(notes)
    return out


VAULT_REF = {
    "type": "object",
    "required": ["vault", "key"],
    "additionalProperties": False,
    "description": "A secret kept in Vault (KV v2): where it lives, never its value.",
    "properties": {
        "vault": {
            "type": "string",
            "pattern": r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.@-]+)+$",
            "description": "The secret's path, its first segment being the KV v2 mount (secret/bionicgpt/db).",
        },
        "key": {"type": "string", "minLength": 1, "description": "The key inside that secret."},
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
_TLS_TEXT = {
    "verify": (
        "Verify the server's TLS certificate for an https URL. Only false turns verification off "
        "(logged as a warning); null or absent verifies."
    ),
    "ca_bundle": (
        "CA file or directory trusted for this system instead of the system store; it must exist "
        "on the machine that connects, and it wins over verify."
    ),
    "timeout": "Seconds to wait for a connection and for each answer of one request.",
    "retries": (
        "How often a request is retried after a connection error or a 429/502/503/504 answer, "
        "with exponential backoff (Retry-After honoured); conditional writes are never re-sent."
    ),
}


def _connection(system, description, extra):
    """The schema of ``hecate:connections:<system>``, defaults from ``hecate_config.DEFAULTS``."""
    defaults = hecate_config.DEFAULTS[system]
    props = {key: described(node, _TLS_TEXT[key], default=defaults[key]) for key, node in TLS.items()}
    props.update(extra)
    return {"type": "object", "additionalProperties": False, "description": description,
            "properties": props}


def _secret(description):
    return described(SECRET_VALUE, description, default=None)


_CONN = hecate_config.DEFAULTS
BASE_SCHEMA = {
    "type": "object",
    "required": ["hecate"],
    "properties": {
        "hecate": {
            "type": "object",
            "required": ["global"],
            "description": "The edge (Caddy, Authentik, DNS, nginx, coturn), the connections and the shared settings.",
            "properties": {
                "global": {
                    "type": "object",
                    "required": ["domain", "environment"],
                    "description": "What the whole deployment shares.",
                    "properties": {
                        "domain": {
                            "type": "string",
                            "pattern": HOSTNAME,
                            "examples": ["example.com"],
                            "description": (
                                "Your DNS zone (a host name, no wildcard), set once at the top of "
                                "`pillar/hecate.sls` (`{%- set domain = 'example.com' %}`). The "
                                "shipped pillar derives every host name from it: Authentik's URL and "
                                "route `hera.<domain>`, the sites `<name>.<domain>`, Vault at "
                                "`vault.<domain>`, the WireGuard endpoint `cloud.<domain>`, the OIDC "
                                "issuer, coturn's realm (`bionicgpt.sls` and the overlays import it "
                                "from `hecate.sls`). A name that lives elsewhere is written out in full."
                            ),
                        },
                        "environment": {
                            "type": "string",
                            "pattern": ENV_NAME,
                            "examples": ["prod"],
                            "description": (
                                "The environment this pillar is for; set by its overlay "
                                "`env/<env>.sls` and checked against the environment being validated."
                            ),
                        },
                        "hetzner_location": {
                            "type": "string",
                            "examples": ["nbg1"],
                            "description": (
                                "The Hetzner location of the cloud node, for the operator's records; "
                                "no hecate state reads it."
                            ),
                        },
                    },
                    "additionalProperties": False,
                },
                "connections": {
                    "type": "object",
                    "additionalProperties": False,
                    "description": (
                        "How the minions reach each API. Looked up like config.get: minion config "
                        "wins over pillar, pillar over the defaults; secrets are Vault references or "
                        "sdb:// URIs."
                    ),
                    "properties": {
                        "caddy": _connection(
                            "caddy",
                            "Caddy's Admin API on the edge (no token: keep it on loopback).",
                            {
                                "admin_url": described(
                                    URL,
                                    "Caddy's Admin API as the edge minion reaches it: the admin listen "
                                    "address or a name in Caddy's admin.origins (https only through a "
                                    "TLS proxy in front of it).",
                                    default=_CONN["caddy"]["admin_url"],
                                ),
                                "origin": {
                                    "type": ["string", "null"],
                                    "default": None,
                                    "examples": ["http://127.0.0.1:2019"],
                                    "description": (
                                        "Origin header sent to the Admin API, a scheme://host:port from "
                                        "Caddy's admin.origins; needed when Caddy enforces origins. "
                                        "Null sends none."
                                    ),
                                },
                                "state_dir": {
                                    "type": "string",
                                    "default": _CONN["caddy"]["state_dir"],
                                    "description": (
                                        "Directory on the edge minion for the snapshots caddy.rollback "
                                        "restores (0700, files 0600)."
                                    ),
                                },
                            },
                        ),
                        "authentik": _connection(
                            "authentik",
                            "Authentik's REST API (the Authentik states and module run on the edge).",
                            {
                                "url": described(
                                    URL,
                                    "Authentik's base URL; required by the Authentik states. Plain "
                                    "http is refused in prod (the token would cross in clear).",
                                    default=None,
                                    examples=["https://hera.example.com"],
                                ),
                                "token": _secret(
                                    "API token of a superuser (intent API, not expiring), as a Vault "
                                    "reference or sdb:// URI."
                                ),
                                "page_size": {
                                    "type": "integer",
                                    "minimum": 1,
                                    "maximum": 100,
                                    "default": _CONN["authentik"]["page_size"],
                                    "description": (
                                        "Objects asked for per list request; hecate reads every page "
                                        "either way."
                                    ),
                                },
                            },
                        ),
                        "nomad": _connection(
                            "nomad",
                            "Nomad's HTTP API on the local node.",
                            {
                                "url": described(URL, "Nomad's HTTP API address.",
                                                 default=_CONN["nomad"]["url"]),
                                "token": _secret(
                                    "Nomad ACL token (Vault reference or sdb:// URI); null when ACLs "
                                    "are off."
                                ),
                                "namespace": {
                                    "type": "string",
                                    "default": _CONN["nomad"]["namespace"],
                                    "description": "Nomad namespace of the module's calls.",
                                },
                                "region": {
                                    "type": ["string", "null"],
                                    "default": None,
                                    "description": "Nomad region of the calls; null means the agent's own.",
                                },
                            },
                        ),
                        "consul": _connection(
                            "consul",
                            "Consul's HTTP API (services, health, the run lock, deployment records).",
                            {
                                "url": described(URL, "Consul's HTTP API address.",
                                                 default=_CONN["consul"]["url"]),
                                "token": _secret(
                                    "Consul ACL token (Vault reference or sdb:// URI); hecate never "
                                    "falls back to CONSUL_HTTP_TOKEN. Under default deny it needs "
                                    "key_prefix \"hecate/\" write, session write, service write and "
                                    "node/service read."
                                ),
                                "datacenter": {
                                    "type": ["string", "null"],
                                    "default": None,
                                    "description": "Consul datacenter of the calls; null means the agent's own.",
                                },
                            },
                        ),
                        "vault": _connection(
                            "vault",
                            "Vault (KV v2), where every secret hecate uses lives. Log in with a "
                            "token or with AppRole.",
                            {
                                "url": described(URL, "Vault's address.", default=_CONN["vault"]["url"],
                                                 examples=["https://vault.example.com:8200"]),
                                "token": _secret(
                                    "Vault token, as an sdb:// URI (or a value in minion config, "
                                    "never in pillar); when absent, approle logs in."
                                ),
                                "namespace": {
                                    "type": ["string", "null"],
                                    "default": None,
                                    "description": "Vault Enterprise namespace; null for none.",
                                },
                                "approle": {
                                    "type": ["object", "null"],
                                    "default": None,
                                    "description": (
                                        "AppRole login, used when no token is set: the minion logs in "
                                        "with role_id and secret_id and uses the token Vault returns."
                                    ),
                                    "properties": {
                                        "role_id": {
                                            "type": "string",
                                            "description": "The AppRole's role id (not a secret).",
                                        },
                                        "secret_id": _secret(
                                            "The AppRole's secret id, as an sdb:// URI (a Vault "
                                            "reference would need Vault to log in to Vault)."
                                        ),
                                        "mount": {
                                            "type": "string",
                                            "default": "approle",
                                            "description": "Mount path of the AppRole auth method.",
                                        },
                                    },
                                    "additionalProperties": False,
                                },
                            },
                        ),
                    },
                },
                # sections the systems fill (hecate_schema.schema places their fragments here)
                "consul": {
                    "type": "object",
                    "additionalProperties": False,
                    "description": "Consul: its agents and the external services hecate registers.",
                },
                "reverse_proxy": {
                    "type": "object",
                    "additionalProperties": False,
                    "description": "The edge's proxies: Caddy (HTTP), nginx (TCP/UDP streams), coturn (TURN).",
                },
            },
        },
        "bionicgpt": {
            "type": "object",
            "description": (
                "BionicGPT on the local node (its jobs, secrets, the tunnel, Nomad) and its single "
                "sign-on in Authentik."
            ),
        },
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


def _system_modules():
    # Imported lazily, at validation time: the system utils import this module for its
    # shared definitions.
    return [hecate_loader.import_util(name) for name in SYSTEM_MODULES]


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


def fragment_errors(raw, fragment, where):
    """
    ``[(key_path, message)]`` of ``raw`` against one system's ``fragment`` of the schema,
    the key paths below ``where`` (the fragment's place in the pillar).
    """
    errors = []
    for error in jsonschema.Draft202012Validator(fragment).iter_errors(raw):
        for path, msg in format_error(error):
            errors.append((where if path == "(top)" else f"{where}:{path}", msg))
    return errors


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


# -- validated once per pillar ---------------------------------------------------------------
# Every hecate SLS starts with ``hecate pillar is valid``, so an orchestration validates the
# same pillar on the same minion once per step, each time in a new job process (Salt forks one
# per job): the import of jsonschema, the assembled schema and the checks, ~0.1 s a step.
# Validation is a function of the pillar's hecate and bionicgpt trees, the environment and this
# code only (no grains, files or network), so trees that passed once pass again: the minion
# remembers the digests of what passed (not the pillar), next to its other caches, readable by
# its user only.
VALIDATED_FILE = os.path.join("hecate", "valid-pillars.json")
VALIDATED_KEEP = 32  # digests remembered (a few environments and runs; the oldest go first)
_UTILS_DIR = os.path.dirname(os.path.abspath(__file__))
_code_digest = []  # this process's digest of the utils' code (computed once)


def _code_fingerprint():
    """sha256 of the source of every util beside this one: the schema and all its checks."""
    if not _code_digest:
        digest = hashlib.sha256()
        for name in sorted(os.listdir(_UTILS_DIR)):
            if name.endswith(".py"):
                digest.update(name.encode())
                with open(os.path.join(_UTILS_DIR, name), "rb") as fh:
                    digest.update(hashlib.sha256(fh.read()).digest())
        _code_digest.append(digest.hexdigest())
    return _code_digest[0]


def _validated_part(pillar):
    """What the schema and the checks read: the ``hecate`` and ``bionicgpt`` trees."""
    return {root: pillar[root] for root in STRICT_ROOTS if root in pillar}


def pillar_digest(pillar, env):
    """
    The digest :func:`validate_once` remembers for ``pillar`` in ``env`` (with this code), or
    None when the pillar does not serialise canonically (it is then validated every time).
    """
    try:
        text = json.dumps(_validated_part(pillar), sort_keys=True, separators=(",", ":"), default=repr)
    except (TypeError, ValueError):  # keys of mixed types cannot be sorted
        return None
    digest = hashlib.sha256(_code_fingerprint().encode())
    digest.update(b"\0" + str(env).encode() + b"\0" + text.encode())
    return digest.hexdigest()


def _read_validated(path):
    try:
        with open(path, encoding="utf-8") as fh:
            known = json.load(fh)
    except (OSError, ValueError):
        return []
    return [d for d in known if isinstance(d, str)] if isinstance(known, list) else []


def _remember_validated(path, digest):
    """Add ``digest`` to the file (atomic replace, mode 0600); a failure only costs a re-check."""
    known = [d for d in _read_validated(path) if d != digest][-(VALIDATED_KEEP - 1):] + [digest]
    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".valid-pillars.")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(known, fh)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    except OSError:
        pass


def validate_once(pillar, env, cachedir):
    """
    :func:`validate` of the ``hecate`` and ``bionicgpt`` trees of ``pillar`` (all that the
    schema and the checks read: the run's ``hecate_run`` and other keys are not validated),
    skipped when these same trees passed in ``env`` with this same code before (on this
    minion: ``<cachedir>/hecate/valid-pillars.json``), so every orchestration run, whose
    ``hecate_run`` differs, finds them validated. Errors are found afresh every time; only a
    pass is remembered. Without a ``cachedir``, validated every time.
    """
    part = _validated_part(pillar)
    digest = pillar_digest(part, env) if cachedir else None
    if digest is None:
        return validate(part, env)
    path = os.path.join(cachedir, VALIDATED_FILE)
    if digest in _read_validated(path):
        return []
    errors = validate(part, env)
    if not errors:
        _remember_validated(path, digest)
    return errors
