"""
Compile the pillar a minion of a given environment would get, on the master.

Environments are selected by the ``hecate_env`` grain in ``pillar/top.sls`` (pillar
given on the command line is not visible to pillar top files, so it cannot pick the
overlay). The runner and the orchestration use this to validate and plan an
environment before any minion is touched.
"""

import copy

import salt.exceptions
import salt.pillar
import salt.utils.sdb

import hecate_agents_schema
import hecate_members
import hecate_preflight
import hecate_schema
import hecate_vault_client

ROLES = ("hecate-edge", "bionicgpt-node")


def compile_for_env(opts, env, roles=ROLES, minion_id=None):
    """``(pillar, render_errors)`` for a synthetic minion with ``hecate_env: env``."""
    mid = minion_id or f"hecate-{env}-validate"
    grains = {"id": mid, "roles": list(roles), "hecate_env": env}
    popts = copy.deepcopy(opts)
    popts["grains"] = grains
    popts["id"] = mid
    pillar = salt.pillar.Pillar(popts, grains, mid, "base", pillarenv=opts.get("pillarenv"))
    compiled = pillar.compile_pillar()
    errors = list(compiled.pop("_errors", None) or [])
    return compiled, errors


def validate_env(opts, env, check_refs=False):
    """
    Every error for ``env``: render errors first, then schema and semantic checks, then
    (``check_refs``, once the schema passes) the Vault references hecate does not produce
    itself must exist - read with this master's ``hecate:connections:vault`` settings.
    """
    if not isinstance(env, str) or not env:
        return ["env: an environment name is required (e.g. pillar='{\"env\": \"prod\"}')"]
    compiled, errors = compile_for_env(opts, env)
    if any(f"'env.{env}'" in str(err) for err in errors):
        return [
            f"hecate:global:environment: unknown environment '{env}': "
            f"no overlay pillar/env/{env}.sls"
        ]
    if errors:
        return [f"pillar render: {err}" for err in errors]
    found = hecate_schema.validate(compiled, env)
    found += [f"{path}: {msg}" for path, msg in membership_errors(opts, env, compiled)]
    if found or not check_refs:
        return found
    return [f"{path}: {msg}" for path, msg in check_references(opts, compiled)]


def membership(opts, env, pillar):
    """
    Who belongs to ``env`` (:func:`hecate_members.resolve`): pillar ``hecate:members`` against
    the accepted minions whose grains (cached on this master) claim a role in ``env``.
    """
    claimed, accepted = hecate_members.claims(opts, env)
    report = hecate_members.resolve(env, hecate_members.members(pillar), claimed, accepted)
    report["warnings"] += hecate_members.tunnel_warnings(pillar, report["members"])
    report["warnings"] += hecate_agents_schema.server_warnings(pillar, report["members"])
    return report


def membership_errors(opts, env, pillar):
    """
    ``[(key_path, message)]``: no ``hecate:members``; members that would share a tunnel
    address or an edge's endpoint; Consul or Nomad servers that do not match their
    ``bootstrap_expect``.
    """
    missing = hecate_members.required(pillar)
    if missing:
        return missing
    resolved = membership(opts, env, pillar)["members"]
    return hecate_members.address_problems(pillar, resolved) + hecate_agents_schema.server_problems(pillar, resolved)


def check_references(opts, pillar):
    """``[(key_path, message)]`` of secret references that will not resolve."""
    try:
        vault = hecate_vault_client.from_config(
            opts, pillar, lambda uri: salt.utils.sdb.sdb_get(uri, opts)
        )
        return hecate_preflight.missing_references(pillar, vault)
    except (salt.exceptions.CommandExecutionError, salt.exceptions.SaltInvocationError) as exc:
        return [("hecate:connections:vault", f"cannot check secret references: {exc}")]
