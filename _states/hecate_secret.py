"""
Secrets in Vault KV v2, managed without ever showing them.

``hecate_secret`` (not ``vault``/``vault_secret``: those belong to saltext-vault).
Returns, comments and logs name the path and key (``secret/bionicgpt/db#password``),
never a value; ``test=True`` says what would be generated or written and reads only.
Every write is a check-and-set on the version that was read, so a concurrent writer
makes the state fail instead of being overwritten.

.. code-block:: yaml

    bionicgpt db password:
      hecate_secret.generated:
        - name: secret/bionicgpt/db
        - key: password
        - length: 32

    litellm master key:
      hecate_secret.generated:
        - name: secret/bionicgpt/litellm
        - key: master_key
        - prefix: sk-

    oauth client secret copied from where the provider module stored it:
      hecate_secret.present:
        - name: secret/bionicgpt/oauth
        - values:
            client_secret: {vault: secret/hecate/authentik-oauth, key: bionicgpt}
"""

import salt.exceptions

import hecate_clients
import hecate_loader
import hecate_secrets
import hecate_state
import hecate_vault_client

__virtualname__ = "hecate_secret"

REDACTED = hecate_secrets.REDACTED


def __virtual__():
    return hecate_loader.virtual(__virtualname__, libs=("hvac",))


def _write(client, name, mount, rel, body, version, secrets_used):
    try:
        result = client.write(mount, rel, body, cas=version)
    except hecate_vault_client.CASConflict:
        raise hecate_vault_client.CASConflict(
            f"Vault: {name} changed while this state ran (check-and-set on version {version} failed); "
            "nothing was written, re-run to converge"
        ) from None
    except salt.exceptions.CommandExecutionError as exc:
        # Vault's own error texts carry no values; scrub anyway, errors are shown to operators
        raise salt.exceptions.CommandExecutionError(hecate_secrets.scrub(exc, secrets_used)) from None
    return ((result or {}).get("data") or {}).get("version")


@hecate_state.guard
def generated(name, key, length=32, alphabet="alnum", prefix="", rotate=False):
    """
    Ensure ``key`` exists in the secret at ``name`` (``<mount>/<path>``), generating a
    random value of ``length`` characters from ``alphabet`` (after ``prefix``) when it is
    absent. The secret's other keys are kept.

    An existing value is never changed - not when ``length`` or ``alphabet`` change - unless
    ``rotate: True`` asks for a new one on this run (pass it for one run only, e.g.
    ``state.apply bionicgpt.secrets pillar='{"rotate": ["db_password"]}'``).

    .. code-block:: yaml

        secret/bionicgpt/db:
          hecate_secret.generated:
            - key: password
            - length: 32
            - alphabet: alnum
    """
    mount, rel = hecate_vault_client.split_path(name, "name")
    # validate the generation parameters even when nothing is generated
    hecate_secrets.generate(int(length), alphabet, prefix)
    where = f"{name}#{key}"
    how = hecate_secrets.describe_generated(int(length), alphabet, prefix)
    ret = hecate_state.new(where, f"{where} exists; left unchanged")
    client = hecate_clients.vault(__opts__, __pillar__, __context__, __salt__)
    current, version = client.read_for_update(mount, rel)
    exists = current is not None and key in current
    if exists and not rotate:
        return ret
    changes = {where: {"old": REDACTED if exists else None, "new": REDACTED}}
    verb = "rotate" if exists else "generate"
    if __opts__.get("test"):
        return hecate_state.result(
            ret, changes, True, f"would {verb} {where}: {how}", ""
        )
    secret = hecate_secrets.generate(int(length), alphabet, prefix)
    body = dict(current or {})
    body[key] = secret.reveal()
    new_version = _write(client, name, mount, rel, body, version, [secret])
    changes["version"] = {"old": version or None, "new": new_version}
    return hecate_state.result(
        ret, changes, False, "", f"{'rotated' if exists else 'generated'} {where}: {how}"
    )


@hecate_state.guard
def present(name, values):
    """
    Ensure the secret at ``name`` holds ``values`` (``{key: value}``), keeping its other
    keys. A value may be a Vault reference ``{vault: <mount>/<path>, key: <key>}`` (copied),
    an ``sdb://`` URI, or a string handed over by another module; it is compared with what
    Vault holds and written only when it differs. Values never appear in the return.

    .. code-block:: yaml

        secret/bionicgpt/oauth:
          hecate_secret.present:
            - values:
                client_secret: {vault: secret/hecate/authentik, key: bionicgpt_client_secret}
    """
    mount, rel = hecate_vault_client.split_path(name, "name")
    if not isinstance(values, dict) or not values:
        raise salt.exceptions.SaltInvocationError(
            "values: expected a mapping of key -> value (or reference)"
        )
    ret = hecate_state.new(name, f"{name}: keys {', '.join(sorted(values))} already hold the given values")
    resolve = hecate_clients.resolver(__opts__, __pillar__, __context__, __salt__)
    wanted = {}
    for key, value in values.items():
        secret = resolve(value, f"{name}#{key}")
        wanted[key] = secret.reveal() if secret is not None else ""
    client = resolve.vault()
    current, version = client.read_for_update(mount, rel)
    current = current or {}
    changes = {}
    for key in sorted(wanted):
        if current.get(key) != wanted[key]:
            changes[f"{name}#{key}"] = {"old": REDACTED if key in current else None, "new": REDACTED}
    if not changes:
        return ret
    keys = ", ".join(sorted(k.split("#", 1)[1] for k in changes))
    if __opts__.get("test"):
        return hecate_state.result(ret, changes, True, f"would write {keys} to {name}", "")
    body = dict(current)
    body.update(wanted)
    new_version = _write(client, name, mount, rel, body, version, resolve.resolved)
    changes["version"] = {"old": version or None, "new": new_version}
    return hecate_state.result(ret, changes, False, "", f"wrote {keys} to {name}")


@hecate_state.guard
def absent(name, key=None):
    """
    Without ``key``: soft-delete the latest version of the secret at ``name`` (Vault keeps
    the versions; ``undelete`` restores it). With ``key``: write a new version without that
    key (check-and-set).

    .. code-block:: yaml

        secret/bionicgpt/old:
          hecate_secret.absent:
            - key: password
    """
    mount, rel = hecate_vault_client.split_path(name, "name")
    where = f"{name}#{key}" if key else name
    ret = hecate_state.new(where, f"{where} is absent")
    client = hecate_clients.vault(__opts__, __pillar__, __context__, __salt__)
    current, version = client.read_for_update(mount, rel)
    if current is None or (key and key not in current):
        return ret
    changes = {where: {"old": REDACTED if key else "present", "new": None}}
    if __opts__.get("test"):
        return hecate_state.result(ret, changes, True, f"would remove {where}", "")
    if key:
        body = {k: v for k, v in current.items() if k != key}
        _write(client, name, mount, rel, body, version, [])
    else:
        client.delete_latest(mount, rel)
    return hecate_state.result(ret, changes, False, "", f"removed {where}")
