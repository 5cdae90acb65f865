"""
Consul KV keys, written with check-and-set.

The state reads the key, compares (JSON values semantically), and writes with
``cas=<the ModifyIndex it read>`` (0 when the key was absent): if anyone changed the key
in between, Consul refuses the write and the state fails with a clear message instead of
overwriting the other change. ``modify_index`` pins the index the key must have.

Never put secrets here: anyone with ``key:read`` can read Consul KV. Secrets live in Vault
(``hecate_secret`` states).

.. code-block:: yaml

    hecate/config/maintenance:
      consul_kv.present:
        - value: "off"

    hecate/deployments/lab/schema:
      consul_kv.present:
        - value: {version: 1, fields: [env, who, when]}

    hecate/tmp:
      consul_kv.absent:
        - recurse: True
"""

import salt.exceptions

import hecate_clients
import hecate_consul_client
import hecate_loader
import hecate_state

__virtualname__ = "consul_kv"


def __virtual__():
    return hecate_loader.virtual(__virtualname__, libs=("consul",))


def _is_secret_ref(value):
    return isinstance(value, dict) and "vault" in value and set(value) <= {"vault", "key"}


@hecate_state.guard
def present(name, value, flags=None, modify_index=None):
    """
    Ensure the key ``name`` holds ``value`` (a string, or JSON data: dicts and lists are
    stored as canonical JSON and compared as data) and, if given, ``flags``.

    modify_index
        Write only if the key's ModifyIndex is still this (0: only if the key is absent);
        otherwise fail, naming the index found.

    .. code-block:: yaml

        hecate/config/motd:
          consul_kv.present:
            - value: {message: maintenance at 22:00}
    """
    hecate_consul_client.check_key(name)
    if _is_secret_ref(value):
        raise salt.exceptions.SaltInvocationError(
            f"{name}: a Vault reference cannot be stored in Consul KV (readable by anyone with key:read)"
        )
    if flags is not None and (not isinstance(flags, int) or flags < 0):
        raise salt.exceptions.SaltInvocationError(f"{name}: flags must be a non-negative integer")
    structured = isinstance(value, (dict, list))
    if not structured and not isinstance(value, str):
        value = str(value) if value is not None else ""
    ret = hecate_state.new(name, f"Consul key {name} already holds the value")
    client = hecate_clients.consul(__opts__, __pillar__, __context__, __salt__)
    _, entry = client.kv_get(name)
    index = entry["ModifyIndex"] if entry else 0
    if modify_index is not None and int(modify_index) != index:
        raise hecate_consul_client.CASConflict(
            f"Consul key {name}: expected ModifyIndex {modify_index}, found "
            f"{index if entry else 'no key'}; nothing written"
        )
    changes = {}
    if entry is None:
        changes["value"] = {"old": None, "new": value}
        if flags:
            changes["flags"] = {"old": None, "new": flags}
    else:
        if structured:
            current = hecate_consul_client.decode_value(entry.get("Value"), "auto")
            if current != value:
                changes.update(
                    hecate_state.diff(current, value, "value")
                    if isinstance(current, type(value))
                    else {"value": {"old": current, "new": value}}
                )
        else:
            current = hecate_consul_client.decode_value(entry.get("Value"), "text")
            if current != value:
                changes["value"] = {"old": current, "new": value}
        if flags is not None and entry.get("Flags", 0) != flags:
            changes["flags"] = {"old": entry.get("Flags", 0), "new": flags}
    if not changes or __opts__.get("test"):
        return hecate_state.result(ret, changes, True, f"would write Consul key {name}", "")
    keep_flags = flags if flags is not None else (entry.get("Flags") if entry else None)
    try:
        client.kv_put_cas(name, value, index, flags=keep_flags)
    except hecate_consul_client.CASConflict as exc:
        raise hecate_consul_client.CASConflict(f"{exc}; re-run to converge") from None
    return hecate_state.result(ret, changes, False, "", f"wrote Consul key {name}")


@hecate_state.guard
def absent(name, recurse=False):
    """
    Ensure the key ``name`` does not exist (``recurse: True``: nor any key under that
    prefix). A single key is deleted with check-and-set on the index read.

    .. code-block:: yaml

        hecate/tmp:
          consul_kv.absent:
            - recurse: True
    """
    ret = hecate_state.new(name, f"Consul key {name} is absent")
    client = hecate_clients.consul(__opts__, __pillar__, __context__, __salt__)
    if recurse:
        keys = [k for k in client.kv_keys(name)]
        if not keys:
            return ret
        changes = {"deleted": sorted(keys)}
        if __opts__.get("test"):
            return hecate_state.result(ret, changes, True, f"would delete {len(keys)} key(s) under {name}", "")
        client.kv_delete(name, recurse=True)
        return hecate_state.result(ret, changes, False, "", f"deleted {len(keys)} key(s) under {name}")
    hecate_consul_client.check_key(name)
    _, entry = client.kv_get(name)
    if entry is None:
        return ret
    changes = {"deleted": [name]}
    if __opts__.get("test"):
        return hecate_state.result(ret, changes, True, f"would delete Consul key {name}", "")
    if not client.kv_delete(name, cas=entry["ModifyIndex"]):
        raise hecate_consul_client.CASConflict(
            f"Consul key {name} changed since it was read (ModifyIndex {entry['ModifyIndex']}); "
            "not deleted, re-run to converge"
        )
    return hecate_state.result(ret, changes, False, "", f"deleted Consul key {name}")
