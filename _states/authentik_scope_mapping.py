"""
Authentik OAuth2 scope mappings (``/propertymappings/provider/scope/``).

With ``group_prefix`` the expression is the one of the user's plan: the ``groups`` claim
carries only the groups whose name starts with the prefix, and ``is_superadmin`` tells
whether the superadmin group is among them.

.. code-block:: yaml

    BionicGPT Groups Mapping:
      authentik_scope_mapping.present:
        - scope_name: groups
        - group_prefix: bionicgpt-
        - superadmin_group: bionicgpt-superadmin
"""

import difflib

import salt.exceptions

import hecate_authentik_client as hak
import hecate_clients
import hecate_loader
import hecate_state

__virtualname__ = "authentik_scope_mapping"


def __virtual__():
    return hecate_loader.virtual(__virtualname__)


def _text_diff(old, new):
    lines = difflib.unified_diff(
        str(old or "").rstrip().splitlines(),
        str(new or "").rstrip().splitlines(),
        "live",
        "desired",
        lineterm="",
    )
    return "\n".join(lines)


@hecate_state.guard
def present(name, scope_name="groups", expression=None, group_prefix=None,
            superadmin_group=None, claim="groups", description=None):
    """
    Ensure a scope mapping exists with this scope name and expression.

    name
        The mapping's name (unique in Authentik).
    scope_name
        The scope a client requests to get these claims (default ``groups``).
    expression
        The Python expression; when omitted, built from ``group_prefix``.
    group_prefix / superadmin_group / claim
        Emit only groups named ``<group_prefix>*`` under ``claim``, and
        ``is_superadmin`` (membership of ``superadmin_group``, default
        ``<group_prefix>superadmin``).
    description
        Shown to the user on consent; unmanaged when omitted.

    .. code-block:: yaml

        BionicGPT Groups Mapping:
          authentik_scope_mapping.present:
            - scope_name: groups
            - group_prefix: bionicgpt-
            - superadmin_group: bionicgpt-superadmin
    """
    ret = hecate_state.new(name)
    if expression is None:
        if not group_prefix:
            raise salt.exceptions.SaltInvocationError(
                f"scope mapping '{name}': give an expression or a group_prefix"
            )
        if superadmin_group and not superadmin_group.startswith(group_prefix):
            raise salt.exceptions.SaltInvocationError(
                f"scope mapping '{name}': superadmin_group '{superadmin_group}' does not carry "
                f"the prefix '{group_prefix}'"
            )
        expression = hak.group_scope_expression(group_prefix, superadmin_group, claim)
    test = bool(__opts__.get("test"))
    client = hecate_clients.authentik(__opts__, __pillar__, __context__, __salt__)
    live = client.find("scope_mapping", name)
    desired = {"scope_name": scope_name}
    if description is not None:
        desired["description"] = description
    if live is None:
        changes = {"scope_mapping": {"old": None, "new": name}}
        changes.update(hecate_state.diff({}, desired))
        changes["expression"] = _text_diff("", expression)
        if not test:
            client.create("scope_mapping", dict(desired, name=name, expression=expression))
        return hecate_state.result(ret, changes, test,
                                   f"scope mapping '{name}' would be created",
                                   f"scope mapping '{name}' created")
    if live.get("managed"):
        raise salt.exceptions.CommandExecutionError(
            f"scope mapping '{name}' is managed by Authentik ({live['managed']}); "
            "choose another name for hecate's mapping"
        )
    current = {k: live.get(k) for k in desired}
    changes = hecate_state.diff(current, desired)
    body = {k: desired[k] for k in desired if current[k] != desired[k]}
    if not hak.same_expression(live.get("expression"), expression):
        changes["expression"] = _text_diff(live.get("expression"), expression)
        body["expression"] = expression
    if body and not test:
        client.patch("scope_mapping", live["pk"], body, old=live)
    fields = ", ".join(sorted(changes))
    return hecate_state.result(ret, changes, test,
                               f"scope mapping '{name}' would be updated ({fields})",
                               f"scope mapping '{name}' updated ({fields})")


@hecate_state.guard
def absent(name):
    """
    Ensure a (hecate-owned, not built-in) scope mapping does not exist.

    .. code-block:: yaml

        Old Groups Mapping:
          authentik_scope_mapping.absent
    """
    ret = hecate_state.new(name, f"scope mapping '{name}' is already absent")
    test = bool(__opts__.get("test"))
    live = __salt__["authentik.scope_mapping_get"](name)
    if live is None:
        return ret
    hak.check_deletable_scope_mapping(live)  # the preview refuses what the delete would
    changes = {"scope_mapping": {"old": name, "new": None}}
    if not test:
        __salt__["authentik.scope_mapping_delete"](name)
    return hecate_state.result(ret, changes, test,
                               f"scope mapping '{name}' would be deleted",
                               f"scope mapping '{name}' deleted")
