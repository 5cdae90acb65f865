"""
Secret references: pillar names a secret, modules fetch it at the moment they use it.

The one documented form in pillar is a mapping with the Vault KV v2 path (first path
segment is the mount) and the key inside that secret:

.. code-block:: yaml

    client_secret: {vault: secret/bionicgpt/oauth, key: client_secret}

Connection settings in the minion config may also use ``sdb://`` URIs.

Resolved values are wrapped in :class:`Secret`, whose ``str``/``repr`` is a redaction
marker, so that a value that slips into a log call, an exception or a state return shows
``XXX-REDACTED-XXX`` instead of the secret. Call :meth:`Secret.reveal` only where the
value is handed to the API (a header or request body).

New secret values (the ones hecate generates into Vault) come from :func:`generate`.
"""

import base64
import re
import secrets
import string

import salt.exceptions

REDACTED = "XXX-REDACTED-XXX"
_PATH_RE = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.@-]+)+$")


class Secret:
    """A secret value that refuses to print itself."""

    __slots__ = ("_value", "source")

    def __init__(self, value, source="secret"):
        self._value = value
        self.source = source

    def reveal(self):
        return self._value

    def __str__(self):
        return REDACTED

    __repr__ = __str__

    def __format__(self, spec):
        return REDACTED

    def __eq__(self, other):
        if isinstance(other, Secret):
            return self._value == other._value
        return NotImplemented

    def __hash__(self):
        return hash(self._value)

    def __bool__(self):
        return bool(self._value)


def is_ref(value):
    """True for ``{vault: <path>, key: <key>}`` (a mapping whose ``vault`` is a path string)."""
    return isinstance(value, dict) and isinstance(value.get("vault"), str)


def parse_ref(ref, where="secret reference"):
    """
    Split a reference into ``(mount, path, key)``.

    ``where`` names the pillar key in error messages.
    """
    if not is_ref(ref):
        raise salt.exceptions.SaltInvocationError(
            f"{where}: expected {{vault: <mount>/<path>, key: <key>}}, got {type(ref).__name__}"
        )
    path = ref.get("vault")
    key = ref.get("key")
    extra = set(ref) - {"vault", "key"}
    if extra:
        raise salt.exceptions.SaltInvocationError(
            f"{where}: unknown field(s) {', '.join(sorted(extra))} in a Vault reference"
        )
    if not isinstance(path, str) or not _PATH_RE.match(path):
        raise salt.exceptions.SaltInvocationError(
            f"{where}: 'vault' must be '<mount>/<path>', e.g. secret/bionicgpt/oauth"
        )
    if not isinstance(key, str) or not key:
        raise salt.exceptions.SaltInvocationError(f"{where}: 'key' must be a non-empty string")
    mount, _, rest = path.partition("/")
    return mount, rest, key


def describe(ref):
    """A printable name for a reference: ``vault:secret/bionicgpt/oauth#client_secret``."""
    if is_ref(ref):
        return f"vault:{ref.get('vault')}#{ref.get('key')}"
    if isinstance(ref, str) and ref.startswith("sdb://"):
        return ref
    return REDACTED


def resolve(value, vault=None, sdb_get=None, where="secret"):
    """
    Turn a configured value into a :class:`Secret` (or None when unset).

    ``vault`` is a callable ``(mount, path) -> dict | None`` (a KV v2 read),
    ``sdb_get`` the ``sdb.get`` function. Literal strings are accepted (minion config).
    """
    if value is None or value == "":
        return None
    if isinstance(value, Secret):
        return value
    if is_ref(value):
        mount, path, key = parse_ref(value, where)
        if vault is None:
            raise salt.exceptions.CommandExecutionError(
                f"{where}: {describe(value)} needs a Vault connection (hecate:connections:vault)"
            )
        data = vault(mount, path)
        if not data or key not in data:
            raise salt.exceptions.CommandExecutionError(
                f"{where}: Vault secret {mount}/{path} has no key '{key}'"
            )
        return Secret(data[key], describe(value))
    if isinstance(value, str) and value.startswith("sdb://"):
        if sdb_get is None:
            raise salt.exceptions.CommandExecutionError(f"{where}: cannot resolve {value} here")
        got = sdb_get(value)
        if got is None or got == value:
            raise salt.exceptions.CommandExecutionError(f"{where}: {value} resolved to nothing")
        return Secret(got, value)
    if isinstance(value, str):
        return Secret(value, "literal")
    raise salt.exceptions.SaltInvocationError(
        f"{where}: expected a string, sdb:// URI or Vault reference"
    )


def scrub(text, secrets):
    """Replace every revealed value of ``secrets`` in ``text`` with the redaction marker."""
    text = str(text)
    for secret in secrets:
        value = secret.reveal() if isinstance(secret, Secret) else secret
        if isinstance(value, str) and len(value) >= 4:
            text = text.replace(value, REDACTED)
    return text


def find_refs(data, path=""):
    """Yield ``(key_path, ref)`` for every Vault reference in a nested pillar structure."""
    if is_ref(data):
        yield path, data
    elif isinstance(data, dict):
        for key, val in data.items():
            yield from find_refs(val, f"{path}:{key}" if path else str(key))
    elif isinstance(data, list):
        for idx, val in enumerate(data):
            yield from find_refs(val, f"{path}:{idx}")


# -- generated secrets ------------------------------------------------------------------------
ALPHABETS = {
    "alnum": string.ascii_letters + string.digits,
    "alpha": string.ascii_letters,
    "lower_alnum": string.ascii_lowercase + string.digits,
    "digits": string.digits,
    "hex": "0123456789abcdef",
    "base64url": string.ascii_letters + string.digits + "-_",
    # printable without quotes, backslash, space, '$', '`' (safe in env files and URLs' userinfo
    # only after escaping; prefer alnum for connection strings)
    "symbols": string.ascii_letters + string.digits + "!#%+,-./:=?@^_~",
}
# Not an alphabet: ``length`` random bytes, base64 (standard, padded) - the form of a
# Consul gossip encryption key (`consul keygen`: 32 bytes).
BYTES_BASE64 = "bytes_base64"


def generate(length=32, alphabet="alnum", prefix=""):
    """A random secret (``secrets.choice``) wrapped in :class:`hecate_secrets.Secret`."""
    if alphabet == BYTES_BASE64:
        if not isinstance(length, int) or isinstance(length, bool) or not 16 <= length <= 1024:
            raise salt.exceptions.SaltInvocationError("bytes_base64: length (bytes) must be 16..1024")
        value = (prefix or "") + base64.b64encode(secrets.token_bytes(length)).decode()
        return Secret(value, f"generated ({length} bytes, base64)")
    if alphabet not in ALPHABETS:
        raise salt.exceptions.SaltInvocationError(
            f"unknown alphabet {alphabet!r}; one of {', '.join(sorted(ALPHABETS))}"
        )
    if not isinstance(length, int) or isinstance(length, bool) or not 8 <= length <= 4096:
        raise salt.exceptions.SaltInvocationError("length must be an integer between 8 and 4096")
    chars = ALPHABETS[alphabet]
    value = (prefix or "") + "".join(secrets.choice(chars) for _ in range(length))
    return Secret(value, f"generated ({length} chars, {alphabet})")


def describe_generated(length=32, alphabet="alnum", prefix=""):
    """What a generated value looks like, for comments and test=True: never the value."""
    if alphabet == BYTES_BASE64:
        text = f"random {length} bytes (base64)"
    else:
        text = f"random {length} characters ({alphabet})"
    return f"{text} after the prefix {prefix!r}" if prefix else text
