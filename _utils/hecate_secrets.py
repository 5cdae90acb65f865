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
"""

import re

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
