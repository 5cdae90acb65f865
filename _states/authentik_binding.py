"""
Who may use an Authentik application: policy bindings with ``group`` set, targeting the
application's ``pk``.

Authentik has no "group membership policy": a binding of the group itself to the
application lets its members in (and, once an application has any binding, nobody else
gets in). With ``exclusive: True`` every other binding on the application (other groups,
users, policies) is removed, so only the listed groups reach it.

.. code-block:: yaml

    bionicgpt access:
      authentik_binding.present:
        - application: bionicgpt
        - groups: [bionicgpt-superadmin, bionicgpt-demo-tenant]
        - prefix: bionicgpt-
        - exclusive: True
"""

import salt.exceptions

import hecate_clients
import hecate_loader
import hecate_state

__virtualname__ = "authentik_binding"


def __virtual__():
    return hecate_loader.virtual(__virtualname__)


def _describe(binding, group_names, user_names):
    if binding.get("group"):
        return f"group:{group_names.get(binding['group'], binding['group'])}"
    if binding.get("user") is not None:
        return f"user:{user_names.get(binding['user'], binding['user'])}"
    return f"policy:{binding.get('policy')}"


@hecate_state.guard
def present(name, application, groups, exclusive=False, prefix=None, timeout=None):
    """
    Ensure each group in ``groups`` is bound (enabled, not negated) to ``application``.

    name
        A label for the state.
    application
        The application's slug.
    groups
        Group names allowed in (empty with ``exclusive``: every binding removed).
    exclusive
        Remove every other binding on the application (groups, users, policies).
    prefix
        Refuse a group whose name does not start with it.
    timeout
        Policy timeout (seconds) on new bindings; Authentik's default otherwise.

    .. code-block:: yaml

        bionicgpt access:
          authentik_binding.present:
            - application: bionicgpt
            - groups: [bionicgpt-superadmin, bionicgpt-demo-tenant]
            - prefix: bionicgpt-
            - exclusive: True
    """
    ret = hecate_state.new(name)
    test = bool(__opts__.get("test"))
    if not isinstance(groups, (list, tuple)) or (not groups and not exclusive):
        raise salt.exceptions.SaltInvocationError(
            f"{name}: groups must be a non-empty list of names (or empty with exclusive: no binding at "
            "all, every signed-in user gets in)"
        )
    if prefix:
        stray = [g for g in groups if not str(g).startswith(prefix)]
        if stray:
            raise salt.exceptions.SaltInvocationError(
                f"{name}: group(s) {', '.join(stray)} do not carry the prefix '{prefix}'"
            )
    client = hecate_clients.authentik(__opts__, __pillar__, __context__, __salt__)
    app = client.get("application", application)
    group_objs = {g: client.find("group", g) for g in groups}
    missing = [g for g, obj in group_objs.items() if obj is None]
    if not test:
        if app is None:
            raise salt.exceptions.CommandExecutionError(
                f"{name}: application '{application}' does not exist (its state must run first)"
            )
        if missing:
            raise salt.exceptions.CommandExecutionError(
                f"{name}: group(s) {', '.join(missing)} do not exist (their states must run first)"
            )
    live = client.list("policy_binding", target=app["pk"]) if app else []
    live = [b for b in live if app and str(b.get("target")) == str(app["pk"])]
    group_names = client.names_by_pk("group")
    by_group = {}
    for binding in live:
        if binding.get("group"):
            by_group.setdefault(binding["group"], []).append(binding)
    to_create, to_patch, to_delete = [], [], []
    added, enabled = [], {}
    for idx, gname in enumerate(groups):
        obj = group_objs[gname]
        bindings = by_group.get(obj["pk"], []) if obj else []
        if not bindings:
            added.append(gname)
            to_create.append((idx, gname))
            continue
        keep = bindings[0]
        if not keep.get("enabled", True) or keep.get("negate"):
            enabled[gname] = {"old": f"enabled={keep.get('enabled')} negate={keep.get('negate')}",
                              "new": "enabled=True negate=False"}
            to_patch.append(keep)
        to_delete.extend(bindings[1:])  # duplicates of the same group binding
    wanted = {group_objs[g]["pk"] for g in groups if group_objs[g]}
    if exclusive:
        to_delete.extend(b for b in live if b.get("group") not in wanted)
    user_names = {}
    for binding in to_delete:
        if binding.get("user") is not None and binding["user"] not in user_names:
            user = client.get("user", binding["user"])
            user_names[binding["user"]] = user["username"] if user else binding["user"]
    removed = sorted({_describe(b, group_names, user_names) for b in to_delete})
    changes = {}
    if added or removed:
        changes["bindings"] = {"added": [f"group:{g}" for g in added], "removed": removed}
    for gname, change in enabled.items():
        changes[f"group:{gname}"] = change
    if changes and not test:
        order = max([b.get("order", 0) for b in live] or [-1]) + 1
        for idx, gname in to_create:
            body = {"target": app["pk"], "group": group_objs[gname]["pk"], "order": order + idx,
                    "enabled": True, "negate": False}
            if timeout is not None:
                body["timeout"] = int(timeout)
            client.create("policy_binding", body)
        for binding in to_patch:
            client.patch_policy_binding(binding, {"enabled": True, "negate": False})
        for binding in to_delete:
            client.delete("policy_binding", binding["pk"])
    return hecate_state.result(ret, changes, test,
                               f"access to '{application}' would be updated",
                               f"access to '{application}' updated")


@hecate_state.guard
def absent(name, application, groups):
    """
    Ensure the listed groups are not bound to ``application``.

    .. code-block:: yaml

        no more demo tenant:
          authentik_binding.absent:
            - application: bionicgpt
            - groups: [bionicgpt-demo-tenant]
    """
    ret = hecate_state.new(name, f"no binding of {', '.join(groups)} on '{application}'")
    test = bool(__opts__.get("test"))
    client = hecate_clients.authentik(__opts__, __pillar__, __context__, __salt__)
    app = client.get("application", application)
    if app is None:
        return ret
    pks = {}
    for gname in groups:
        obj = client.find("group", gname)
        if obj:
            pks[obj["pk"]] = gname
    live = [b for b in client.list("policy_binding", target=app["pk"])
            if str(b.get("target")) == str(app["pk"]) and b.get("group") in pks]
    if not live:
        return ret
    changes = {"bindings": {"added": [], "removed": sorted({f"group:{pks[b['group']]}" for b in live})}}
    if not test:
        for binding in live:
            client.delete("policy_binding", binding["pk"])
    return hecate_state.result(ret, changes, test,
                               f"access to '{application}' would be updated",
                               f"access to '{application}' updated")
