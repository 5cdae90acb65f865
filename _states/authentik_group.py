"""
Authentik groups: name, attributes, superuser flag and parents.

Only the fields given are managed; a run compares them with the live group and PATCHes
just the fields that differ (never a full PUT: TF#956). ``parent``/``parents`` are group
names and work on every release (``parent`` up to 2025.10, ``parents`` from 2025.12).

.. code-block:: yaml

    bionicgpt-superadmin:
      authentik_group.present:
        - prefix: bionicgpt-
        - attributes:
            description: BionicGPT super administrators
            role: superadmin

    bionicgpt-old:
      authentik_group.absent: []
"""

import salt.exceptions

import hecate_clients
import hecate_loader
import hecate_state

__virtualname__ = "authentik_group"


def __virtual__():
    return hecate_loader.virtual(__virtualname__)


def _parent_names(parent, parents):
    if parents is not None:
        if not isinstance(parents, (list, tuple)):
            raise salt.exceptions.SaltInvocationError("parents must be a list of group names")
        return sorted(parents)
    if parent is None:
        return None
    return [parent] if parent else []


@hecate_state.guard
def present(name, attributes=None, is_superuser=None, parent=None, parents=None, prefix=None):
    """
    Ensure a group exists with the given fields.

    name
        The group name (unique in Authentik from 2025.12; before that per parent).
    attributes
        The full attributes mapping (keys not listed are removed); unmanaged when omitted.
    is_superuser
        Members become Authentik superusers; unmanaged when omitted.
    parent / parents
        Parent group name(s); ``""``/``[]`` for none; unmanaged when omitted.
    prefix
        Refuse a name that does not start with it (the application's group prefix).

    .. code-block:: yaml

        bionicgpt-demo-tenant:
          authentik_group.present:
            - parent: bionicgpt-superadmin
            - attributes: {tenant: demo}
            - prefix: bionicgpt-
    """
    ret = hecate_state.new(name)
    if prefix and not name.startswith(prefix):
        raise salt.exceptions.SaltInvocationError(
            f"group '{name}' does not carry the prefix '{prefix}'"
        )
    if attributes is not None and not isinstance(attributes, dict):
        raise salt.exceptions.SaltInvocationError(f"group '{name}': attributes must be a mapping")
    test = bool(__opts__.get("test"))
    client = hecate_clients.authentik(__opts__, __pillar__, __context__, __salt__)
    names = _parent_names(parent, parents)
    desired = {}
    if attributes is not None:
        desired["attributes"] = attributes
    if is_superuser is not None:
        desired["is_superuser"] = bool(is_superuser)
    if names is not None:
        desired["parents"] = names
    live = client.find("group", name)
    if live is None:
        changes = {"group": {"old": None, "new": name}}
        changes.update(hecate_state.diff({}, desired))
        if not test:
            body = {"name": name}
            body.update({k: v for k, v in desired.items() if k != "parents"})
            if names:
                body.update(client.parents_body(_parent_pks(client, names, name)))
            client.create("group", body)
        return hecate_state.result(ret, changes, test,
                                   f"group '{name}' would be created",
                                   f"group '{name}' created")
    current = {
        "attributes": live.get("attributes") or {},
        "is_superuser": bool(live.get("is_superuser")),
        "parents": sorted(_names_of(client, client.group_parents(live))),
    }
    current = {k: v for k, v in current.items() if k in desired}
    changes = hecate_state.diff(current, desired)
    if changes and not test:
        body = {}
        for key in ("attributes", "is_superuser"):
            if key in desired and current[key] != desired[key]:
                body[key] = desired[key]
        if "parents" in desired and current["parents"] != desired["parents"]:
            body.update(client.parents_body(_parent_pks(client, names, name)))
        client.patch("group", live["pk"], body, old=live)
    fields = ", ".join(sorted({k.split(":")[0] for k in changes}))
    return hecate_state.result(ret, changes, test,
                               f"group '{name}' would be updated ({fields})",
                               f"group '{name}' updated ({fields})")


def _parent_pks(client, names, name):
    pks = []
    for parent in names:
        group = client.find("group", parent)
        if group is None:
            raise salt.exceptions.CommandExecutionError(
                f"group '{name}': parent group '{parent}' does not exist"
            )
        pks.append(group["pk"])
    return pks


def _names_of(client, pks):
    by_pk = {g["pk"]: n for n, groups in client.index("group").items() for g in groups}
    return [by_pk.get(pk, pk) for pk in pks]


@hecate_state.guard
def absent(name):
    """
    Ensure a group does not exist (its policy bindings and memberships go with it).

    .. code-block:: yaml

        bionicgpt-old-tenant:
          authentik_group.absent
    """
    ret = hecate_state.new(name, f"group '{name}' is already absent")
    test = bool(__opts__.get("test"))
    if __salt__["authentik.group_get"](name) is None:
        return ret
    changes = {"group": {"old": name, "new": None}}
    if not test:
        __salt__["authentik.group_delete"](name)
    return hecate_state.result(ret, changes, test,
                               f"group '{name}' would be deleted",
                               f"group '{name}' deleted")
