"""
Nomad variables with check-and-set: a concurrent writer makes the state fail instead of
being overwritten.

.. code-block:: yaml

    nomad/jobs/bionicgpt-application:
      nomad_variable.present:
        - items:
            log_level: info
            api_key: {vault: secret/bionicgpt/litellm, key: master_key}

Values given as Vault references (or ``sdb://`` URIs) are resolved only to compare and
write them, and are never shown: changes name the key with ``XXX-REDACTED-XXX``. Keys
whose name is a secret name (``password``, ``token`` ...) are redacted too. A variable
holds exactly ``items`` (Nomad replaces all items on write), so keys not listed are
removed.
"""

import hecate_clients
import hecate_loader
import hecate_nomad_client
import hecate_schema
import hecate_secrets
import hecate_state

__virtualname__ = "nomad_variable"


def __virtual__():
    return hecate_loader.virtual(__virtualname__)


def _secretish(key, value):
    return isinstance(value, hecate_secrets.Secret) or key.lower() in hecate_schema.SECRET_KEYS


def _value(value):
    return value.reveal() if isinstance(value, hecate_secrets.Secret) else value


@hecate_state.guard
def present(name, items, namespace=None):
    """
    Ensure the variable at path ``name`` holds exactly ``items``.

    .. code-block:: yaml

        nomad/jobs/bionicgpt-application:
          nomad_variable.present:
            - items:
                log_level: info
                api_key: {vault: secret/bionicgpt/litellm, key: master_key}
    """
    ret = hecate_state.new(name)
    client = hecate_clients.nomad(__opts__, __pillar__, __context__, __salt__, namespace=namespace)
    resolver = hecate_clients.resolver(__opts__, __pillar__, __context__, __salt__)
    desired = hecate_nomad_client.resolve_items(items, resolver, where=f"{name}:items")
    current = client.var_get(name)
    have = (current or {}).get("Items") or {}
    changes = {}
    for key in sorted(set(have) | set(desired)):
        new = desired.get(key)
        old = have.get(key)
        if new is not None and old == _value(new):
            continue
        if _secretish(key, new if new is not None else old):
            changes[key] = {
                "old": hecate_secrets.REDACTED if old is not None else None,
                "new": hecate_secrets.REDACTED if new is not None else None,
            }
        else:
            changes[key] = {"old": old, "new": new}
    if not changes:
        ret["comment"] = f"variable {name} is up to date"
        return ret
    action = "updated" if current else "created"
    if __opts__.get("test"):
        ret.update(result=None, changes=changes, comment=f"variable {name} would be {action}")
        return ret
    cas = current["ModifyIndex"] if current else 0
    try:
        client.var_put(name, {k: _value(v) for k, v in desired.items()}, cas=cas)
    except hecate_nomad_client.VariableConflict as exc:
        ret.update(result=False, comment=str(exc))
        return ret
    ret.update(changes=changes, comment=f"variable {name} {action}")
    return ret


@hecate_state.guard
def absent(name, namespace=None):
    """
    Ensure the variable at path ``name`` does not exist (deleted with check-and-set).

    .. code-block:: yaml

        nomad/jobs/bionicgpt-old:
          nomad_variable.absent
    """
    ret = hecate_state.new(name)
    client = hecate_clients.nomad(__opts__, __pillar__, __context__, __salt__, namespace=namespace)
    current = client.var_get(name)
    if current is None:
        ret["comment"] = f"variable {name} is absent"
        return ret
    changes = {"deleted": {"old": sorted(current.get("Items") or {}), "new": None}}
    if __opts__.get("test"):
        ret.update(result=None, changes=changes, comment=f"variable {name} would be deleted")
        return ret
    try:
        client.var_delete(name, cas=current["ModifyIndex"])
    except hecate_nomad_client.VariableConflict as exc:
        ret.update(result=False, comment=str(exc))
        return ret
    ret.update(changes=changes, comment=f"variable {name} deleted")
    return ret
