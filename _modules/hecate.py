"""
hecate execution module: the extension's own housekeeping on a minion.

CLI Example:

.. code-block:: bash

    salt '*' hecate.version
    salt '*' hecate.validate_pillar
    salt '*' hecate.target bionicgpt-node
    salt-run salt.cmd hecate.one_member bionicgpt-node env=prod
"""

import datetime
import secrets

import salt.exceptions

import hecate_config
import hecate_loader
import hecate_members
import hecate_pillar
import hecate_schema
import hecate_secrets

__virtualname__ = "hecate"


def __virtual__():
    return hecate_loader.virtual(__virtualname__, libs=("jsonschema",))


def version():
    """
    The version of the hecate extension loaded on this minion.

    CLI Example:

    .. code-block:: bash

        salt '*' hecate.version
    """
    return hecate_loader.__version__


def new_run_id():
    """
    A new orchestration run id: UTC time (sortable) and a random suffix. The
    orchestration SLS renders one per run and hands it to every step, so locks, Nomad
    restore marks and deployment records name the same run.

    CLI Example:

    .. code-block:: bash

        salt-call hecate.new_run_id
    """
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    run_id = f"{now}-{secrets.token_hex(3)}"
    # the run's steps in this process (targets, validate, lock, unlock, record) share one
    # compilation of the environment's pillar (hecate_pillar.compile_for_env)
    hecate_pillar.start_run(run_id)
    return run_id


def validate_pillar():
    """
    Validate this minion's pillar against the hecate schema. Returns the list of errors
    (each naming its key path); empty when valid.

    CLI Example:

    .. code-block:: bash

        salt '*' hecate.validate_pillar
    """
    return hecate_schema.validate(dict(__pillar__), __grains__.get("hecate_env"))


def target(role=None, env=None, run_id=None):
    """
    The compound target of the members of ``role`` (``hecate-edge``, ``bionicgpt-node``;
    default both) in an environment: the role and environment grains *and* the minion ids
    (or globs) pillar ``hecate:members`` lists for the role - grains alone are the minion's
    own claim. The orchestration, the top file and the runner target with it.

    env
        Not given: this minion's environment (its ``hecate_env`` grain) and its own pillar
        (the top file uses it so). Given: on the master only (the orchestration, whose
        functions run in the master's context), the pillar a minion of that environment
        gets, compiled once per run; an environment whose pillar does not render lists
        nobody (the orchestration's validate step says why).
    run_id
        The orchestration run asking (``hecate.new_run_id``): its other steps on the master
        reuse the pillar compiled here.

    CLI Example:

    .. code-block:: bash

        salt '*' hecate.target bionicgpt-node
        salt-call hecate.target hecate-edge
    """
    if role is not None and role not in hecate_members.ROLES:
        raise salt.exceptions.SaltInvocationError(
            f"role must be one of {', '.join(hecate_members.ROLES)}, not {role!r}"
        )
    own = __grains__.get("hecate_env")
    if env is None or (env == own and __opts__.get("__role") != "master"):
        return hecate_members.target(own, hecate_members.members(__pillar__), role)
    if __opts__.get("__role") != "master":
        raise salt.exceptions.SaltInvocationError(
            f"env={env}: another environment's members are known on the master only "
            f"(this minion is in {own!r})"
        )
    key = f"hecate.members.{env}"
    if key not in __context__:
        pillar, errors = hecate_pillar.compile_for_env(__opts__, env, run_id=run_id)
        __context__[key] = {} if errors else hecate_members.members(pillar)
    return hecate_members.target(env, __context__[key], role)


def several(role, env=None):
    """
    Whether the members of ``role`` in an environment may be more than one minion: pillar
    ``hecate:members`` lists more than one id, or a glob. The orchestration runs the steps
    that write to a system the environment shares (Vault, Authentik, the Nomad cluster, DNS)
    on one member (:func:`one_member`) when this is true, so that several members do not
    race for the same objects. ``env`` as for :func:`target`.

    CLI Example:

    .. code-block:: bash

        salt '*' hecate.several hecate-edge
    """
    tgt = target(role, env=env)  # validates the role, caches the environment's members
    own = __grains__.get("hecate_env")
    if env is None or (env == own and __opts__.get("__role") != "master"):
        members = hecate_members.members(__pillar__)
    else:
        members = __context__.get(f"hecate.members.{env}") or {}
    patterns = members.get(role) or []
    return bool(tgt) and (len(patterns) > 1 or any(map(hecate_members.is_glob, patterns)))


def one_member(role, env, run_id=None):
    """
    The target of the one member of ``role`` that the orchestration runs a shared-system step
    on (Vault, Authentik, the Nomad cluster's jobs, DNS) when the role may have several (see
    :func:`several`): the role's target (:func:`target`) narrowed to the first member, by
    sorted id, that the master's grains cache matches. Empty when the cache matches none; the
    step then lets Salt pick one that answers (``subset: 1``).

    Picked here because Salt's ``subset`` first runs ``sys.list_functions`` on every target,
    which loads every execution module on each, and waits for all of them before the step's
    own job starts. A down member is not a risk the subset would have covered: every step
    requires the preflight, which runs on every member and fails on one that does not answer.
    The narrowed target still names the role's grains and pillar listing, so a stale cache
    can only make the step find nobody (and fail), never run on a minion that is no member.
    On the master only (``env`` and ``run_id`` as for :func:`target`).

    CLI Example:

    .. code-block:: bash

        salt-run salt.cmd hecate.one_member bionicgpt-node env=prod
    """
    if __opts__.get("__role") != "master":
        raise salt.exceptions.SaltInvocationError(
            "hecate.one_member: the master's grains cache is known on the master only"
        )
    key = f"hecate.one_member.{env}.{role}"
    if key not in __context__:
        __context__[key] = hecate_members.one_known(__opts__, target(role, env=env, run_id=run_id))
    return __context__[key]


def connection(system):
    """
    The effective connection settings for ``system`` (caddy, authentik, nomad, consul,
    vault) as this minion sees them (defaults < pillar < minion config). Secret values
    are shown by reference only.

    CLI Example:

    .. code-block:: bash

        salt -G 'roles:hecate-edge' hecate.connection caddy
    """
    settings = hecate_config.connection(system, __opts__, __pillar__)
    return _describe_secrets(settings)


def _describe_secrets(node):
    if isinstance(node, dict):
        if hecate_secrets.is_ref(node):
            return hecate_secrets.describe(node)
        return {
            key: (
                hecate_secrets.describe(val)
                if key in hecate_schema.SECRET_KEYS and val
                else _describe_secrets(val)
            )
            for key, val in node.items()
        }
    return node
