"""
Authentik users — meant for the lab's test users (pillar ``bionicgpt:authentik:test_users``
exists in the lab overlay only). Passwords are Vault references, set when the user is
created (Authentik cannot tell whether a password matches, so it is not compared later).

.. code-block:: yaml

    henry:
      authentik_user.present:
        - display_name: Henry Smith
        - email: henry@example.com
        - groups: [bionicgpt-superadmin]
        - password: {vault: secret/bionicgpt/lab-users, key: henry}
"""

import salt.exceptions

import hecate_clients
import hecate_loader
import hecate_secrets
import hecate_state

__virtualname__ = "authentik_user"


def __virtual__():
    return hecate_loader.virtual(__virtualname__)


@hecate_state.guard
def present(name, display_name=None, email=None, groups=None, attributes=None,
            user_type=None, path=None, is_active=None, password=None, exclusive_groups=False):
    """
    Ensure a user exists.

    name
        The username.
    display_name / email / attributes / user_type / path / is_active
        Managed when given (``user_type``: internal, external, service_account).
    groups
        Group names the user must be in (added with ``add_user``); with
        ``exclusive_groups`` the user is removed from every other group.
    password
        A Vault reference (``{vault: <mount>/<path>, key: <key>}``) or ``sdb://`` URI,
        set at creation only.

    .. code-block:: yaml

        henry:
          authentik_user.present:
            - display_name: Henry Smith
            - email: henry@example.com
            - groups: [bionicgpt-superadmin]
            - password: {vault: secret/bionicgpt/lab-users, key: henry}
    """
    ret = hecate_state.new(name)
    test = bool(__opts__.get("test"))
    if password is not None and not (
        hecate_secrets.is_ref(password) or (isinstance(password, str) and password.startswith("sdb://"))
    ):
        raise salt.exceptions.SaltInvocationError(
            f"user '{name}': password must be a Vault reference or sdb:// URI, never a value"
        )
    client = hecate_clients.authentik(__opts__, __pillar__, __context__, __salt__)
    desired = {}
    for key, value in (("name", display_name), ("email", email), ("attributes", attributes),
                       ("type", user_type), ("path", path), ("is_active", is_active)):
        if value is not None:
            desired[key] = value
    want_groups = list(groups or [])
    group_objs = {g: client.find("group", g) for g in want_groups}
    missing = [g for g, o in group_objs.items() if o is None]
    if missing and not test:
        raise salt.exceptions.CommandExecutionError(
            f"user '{name}': group(s) {', '.join(missing)} do not exist"
        )
    live = client.find("user", name)
    if live is None:
        changes = {"user": {"old": None, "new": name}}
        changes.update(hecate_state.diff({}, desired))
        if want_groups:
            changes["groups"] = {"added": sorted(want_groups), "removed": []}
        if password is not None:
            changes["password"] = {"old": None, "new": f"set from {hecate_secrets.describe(password)}"}
        if not test:
            secret = None
            if password is not None:
                resolve = hecate_clients.resolver(__opts__, __pillar__, __context__, __salt__)
                secret = resolve(password, f"user '{name}': password")
            body = dict(desired, username=name)
            body.setdefault("name", name)
            if want_groups:
                body["groups"] = [group_objs[g]["pk"] for g in want_groups]
            user = client.create("user", body)
            if secret is not None:
                client.set_password(user["pk"], secret)
        return hecate_state.result(ret, changes, test,
                                   f"user '{name}' would be created",
                                   f"user '{name}' created")
    current = {k: live.get(k) for k in desired}
    changes = hecate_state.diff(current, desired)
    body = {k: desired[k] for k in desired if current[k] != desired[k]}
    group_names = client.names_by_pk("group")
    live_groups = {group_names.get(pk, pk): pk for pk in live.get("groups") or []}
    add = sorted(g for g in want_groups if g not in live_groups)
    remove = sorted(g for g in live_groups if g not in want_groups) if exclusive_groups else []
    if add or remove:
        changes["groups"] = {"added": add, "removed": remove}
    if not test:
        if body:
            client.patch("user", live["pk"], body)
        for gname in add:
            client.add_user(group_objs[gname]["pk"], live["pk"])
        for gname in remove:
            client.remove_user(live_groups[gname], live["pk"])
    fields = ", ".join(sorted({k.split(":")[0] for k in changes}))
    return hecate_state.result(ret, changes, test,
                               f"user '{name}' would be updated ({fields})",
                               f"user '{name}' updated ({fields})")


@hecate_state.guard
def absent(name):
    """
    Ensure a user does not exist.

    .. code-block:: yaml

        henry:
          authentik_user.absent
    """
    ret = hecate_state.new(name, f"user '{name}' is already absent")
    test = bool(__opts__.get("test"))
    if __salt__["authentik.user_get"](name) is None:
        return ret
    changes = {"user": {"old": name, "new": None}}
    if not test:
        __salt__["authentik.user_delete"](name)
    return hecate_state.result(ret, changes, test,
                               f"user '{name}' would be deleted",
                               f"user '{name}' deleted")
