"""
Vault KV v2 for hecate: read keys and metadata, write with check-and-set, generate.

Named ``hecate_vault`` so that it never shadows Salt's or saltext-vault's ``vault``,
``vault_secret``, ``vault_db``, ``vault_pki`` ... modules.

**This module never returns a secret value.** Whatever an execution module returns is
stored in the master's job cache and printed by the CLI, so :func:`read` returns the
secret's keys, its metadata and the values *redacted*; modules that need a value resolve
a reference (``{vault: <mount>/<path>, key: <key>}``) themselves at the moment they use
it (``hecate_vault_client.Resolver``). Arguments given on the command line are recorded
in the job cache too: put values into Vault with :func:`generate`, the
``hecate_secret.generated``/``hecate_secret.present`` states (which take references), or
Vault's own tools - not with ``salt ... hecate_vault.write key=<secret>``.

Connection settings: ``hecate:connections:vault`` (minion config wins over pillar):
``url``, ``token`` (literal in the minion config or ``sdb://``) or ``approle: {role_id,
secret_id}``, ``namespace``, ``verify``, ``ca_bundle``, ``timeout``, ``retries``.

Paths are ``<mount>/<path>``, e.g. ``secret/bionicgpt/db``.

CLI Example:

.. code-block:: bash

    salt -G 'roles:bionicgpt-node' hecate_vault.read secret/bionicgpt/db
    salt -G 'roles:bionicgpt-node' hecate_vault.metadata secret/bionicgpt/oauth
"""

import salt.exceptions

import hecate_clients
import hecate_loader
import hecate_secrets
import hecate_vault_client

__virtualname__ = "hecate_vault"
__func_alias__ = {"list_": "list"}


def __virtual__():
    return hecate_loader.virtual(__virtualname__, libs=("hvac",))


def read(path, version=None):
    """
    The keys and metadata of a secret, values redacted (``XXX-REDACTED-XXX``): the return
    of an execution module lands in the job cache, so this function never returns a
    secret value. ``exists`` is False (and ``keys`` empty) when the secret does not exist
    or its latest version is deleted.

    CLI Example:

    .. code-block:: bash

        salt -G 'roles:bionicgpt-node' hecate_vault.read secret/bionicgpt/db
        salt -G 'roles:bionicgpt-node' hecate_vault.read secret/bionicgpt/db version=2
    """
    mount, rel = hecate_vault_client.split_path(path)
    client = hecate_clients.vault(__opts__, __pillar__, __context__, __salt__)
    data, meta = client.read(mount, rel, version=int(version) if version else None)
    out = {"path": path, "exists": data is not None, "keys": sorted(data or {})}
    out["data"] = {key: hecate_secrets.REDACTED for key in out["keys"]}
    meta = meta or {}
    for field in ("version", "created_time", "deletion_time", "destroyed"):
        if field in meta:
            out[field] = meta[field]
    return out


def exists(path, key=None):
    """
    True when the secret (and ``key`` in it, if given) exists.

    CLI Example:

    .. code-block:: bash

        salt -G 'roles:bionicgpt-node' hecate_vault.exists secret/bionicgpt/oauth key=client_secret
    """
    mount, rel = hecate_vault_client.split_path(path)
    data = hecate_clients.vault(__opts__, __pillar__, __context__, __salt__).read_data(mount, rel)
    if data is None:
        return False
    return key is None or key in data


def metadata(path):
    """
    Secret metadata (current_version, versions with created/deletion times, cas_required,
    max_versions); None when the secret does not exist. No values.

    CLI Example:

    .. code-block:: bash

        salt -G 'roles:bionicgpt-node' hecate_vault.metadata secret/bionicgpt/db
    """
    mount, rel = hecate_vault_client.split_path(path)
    return hecate_clients.vault(__opts__, __pillar__, __context__, __salt__).metadata(mount, rel)


def list_(path):
    """
    Secrets and folders below a path (folders end with '/').

    CLI Example:

    .. code-block:: bash

        salt -G 'roles:bionicgpt-node' hecate_vault.list secret/bionicgpt
    """
    mount, _, rel = path.partition("/")
    return hecate_clients.vault(__opts__, __pillar__, __context__, __salt__).list(mount, rel)


def write(path, data=None, cas=None, merge=True, **kwargs):
    """
    Write keys to a secret with check-and-set. Values may be Vault references
    (``{vault: <mount>/<path>, key: <key>}``, copied), ``sdb://`` URIs or strings.
    ``merge=True`` keeps the secret's other keys; ``cas`` is the version that must still
    be current (0 = create only; default: the version just read, so a concurrent writer
    makes this fail instead of being overwritten). Returns path, version and key names.

    Arguments on the command line are recorded in the job cache: do not pass secret
    values this way (see the module documentation).

    CLI Example:

    .. code-block:: bash

        salt -G 'roles:bionicgpt-node' hecate_vault.write secret/bionicgpt/oauth \\
            data='{"client_secret": {"vault": "secret/staging/oauth", "key": "client_secret"}}'
    """
    values = dict(data or {})
    values.update({k: v for k, v in kwargs.items() if not k.startswith("__")})
    if not values:
        raise salt.exceptions.SaltInvocationError("nothing to write: give data={key: value}")
    mount, rel = hecate_vault_client.split_path(path)
    client = hecate_clients.vault(__opts__, __pillar__, __context__, __salt__)
    resolver = hecate_clients.resolver(__opts__, __pillar__, __context__, __salt__)
    resolved = {}
    for key, value in values.items():
        secret = resolver(value, f"{path}#{key}")
        resolved[key] = secret.reveal() if secret is not None else ""
    current, version = client.read_for_update(mount, rel)
    if cas is None:
        cas = version
    body = dict(current or {}) if merge else {}
    body.update(resolved)
    try:
        result = client.write(mount, rel, body, cas=int(cas))
    except salt.exceptions.CommandExecutionError as exc:
        raise salt.exceptions.CommandExecutionError(hecate_secrets.scrub(exc, resolver.resolved)) from None
    version = ((result or {}).get("data") or {}).get("version")
    return {"path": path, "version": version, "keys": sorted(body)}


def generate(path, key, length=32, alphabet="alnum", prefix="", rotate=False):
    """
    Ensure ``key`` exists in the secret at ``path``: generate a random value of ``length``
    characters from ``alphabet`` (alnum, alpha, lower_alnum, digits, hex, base64url,
    symbols) after an optional ``prefix`` when it is absent. An existing value is kept
    unless ``rotate=True``. The value is never returned.

    CLI Example:

    .. code-block:: bash

        salt -G 'roles:bionicgpt-node' hecate_vault.generate secret/bionicgpt/litellm master_key prefix=sk-
    """
    mount, rel = hecate_vault_client.split_path(path)
    client = hecate_clients.vault(__opts__, __pillar__, __context__, __salt__)
    current, version = client.read_for_update(mount, rel)
    if current is not None and key in current and not rotate:
        return {"path": path, "key": key, "generated": False, "version": version}
    secret = hecate_secrets.generate(int(length), alphabet, prefix)
    body = dict(current or {})
    body[key] = secret.reveal()
    result = client.write(mount, rel, body, cas=version)
    return {
        "path": path,
        "key": key,
        "generated": True,
        "version": ((result or {}).get("data") or {}).get("version"),
    }


def delete(path):
    """
    Soft-delete the latest version of a secret (recoverable with Vault's undelete).

    CLI Example:

    .. code-block:: bash

        salt -G 'roles:bionicgpt-node' hecate_vault.delete secret/bionicgpt/old
    """
    mount, rel = hecate_vault_client.split_path(path)
    hecate_clients.vault(__opts__, __pillar__, __context__, __salt__).delete_latest(mount, rel)
    return True

