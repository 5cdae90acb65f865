"""
Compile the pillar a minion of a given environment would get, on the master.

Environments are selected by the ``hecate_env`` grain in ``pillar/top.sls`` (pillar
given on the command line is not visible to pillar top files, so it cannot pick the
overlay). The runner and the orchestration use this to validate and plan an
environment before any minion is touched.
"""

import collections
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

# One orchestration run compiles the environment's pillar on the master for its targets (the
# render), its validate step, and its lock, unlock and record runner steps - all in the one
# process that runs the orchestration, ~0.3 s each (most of it Salt building the pillar's
# loaders). The run's id, made by hecate.new_run_id in that process (start_run), lets them
# share one compilation: the pillar as the run found it when it started. Only ids made in this
# process count (a hand-given run_id="manual" is compiled afresh every time), and only the
# last few runs are kept, so a long-lived process (the reactor's) holds no old pillar for long.
RUNS_KEPT = 4
_runs = collections.deque(maxlen=RUNS_KEPT)  # run ids started in this process, newest last
_run_pillars = {}  # (run_id, env, roles, minion_id, pillarenv) -> (pillar, errors)


def start_run(run_id):
    """Mark ``run_id`` as a run of this process: its environment pillar is compiled once."""
    _runs.append(run_id)
    for key in [k for k in _run_pillars if k[0] not in _runs]:
        del _run_pillars[key]


def compile_for_env(opts, env, roles=ROLES, minion_id=None, run_id=None):
    """
    ``(pillar, render_errors)`` for a synthetic minion with ``hecate_env: env``; with the
    ``run_id`` of a run this process started (:func:`start_run`), compiled once for the run.
    """
    key = (run_id, env, tuple(roles), minion_id, opts.get("pillarenv"))
    if run_id is not None and key in _run_pillars:
        compiled, errors = _run_pillars[key]
        return copy.deepcopy(compiled), list(errors)
    mid = minion_id or f"hecate-{env}-validate"
    grains = {"id": mid, "roles": list(roles), "hecate_env": env}
    popts = copy.deepcopy(opts)
    popts["grains"] = grains
    popts["id"] = mid
    pillar = salt.pillar.Pillar(popts, grains, mid, "base", pillarenv=opts.get("pillarenv"))
    compiled = pillar.compile_pillar()
    errors = list(compiled.pop("_errors", None) or [])
    if run_id is not None and run_id in _runs:
        _run_pillars[key] = (copy.deepcopy(compiled), list(errors))
    return compiled, errors


def validate_env(opts, env, check_refs=False, run_id=None):
    """
    Every error for ``env``: render errors first, then schema and semantic checks, then
    (``check_refs``, once the schema passes) the Vault references hecate does not produce
    itself must exist - read with this master's ``hecate:connections:vault`` settings.
    ``run_id``: the orchestration run validating (:func:`compile_for_env`).
    """
    if not isinstance(env, str) or not env:
        return ["env: an environment name is required (e.g. pillar='{\"env\": \"prod\"}')"]
    compiled, errors = compile_for_env(opts, env, run_id=run_id)
    if any(f"'env.{env}'" in str(err) for err in errors):
        return [
            f"hecate:global:environment: unknown environment '{env}': "
            f"no overlay pillar/env/{env}.sls"
        ]
    if errors:
        return [f"pillar render: {err}" for err in errors]
    # trees that passed on this master before are not checked again (validate_once); the
    # references are checked every time below (a secret may have gone from Vault since)
    found = hecate_schema.validate_once(compiled, env, opts.get("cachedir"))
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
