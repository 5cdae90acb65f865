"""
hecate runner: operations across all systems, run on the master.

- ``validate``: the pillar of an environment against the schema, before anything writes.
- ``lock``/``unlock``: one Consul session lock per environment, so two orchestrations of
  the same environment cannot interleave; the loser is told who holds it since when.
- ``record``/``history``: deployment records in Consul KV (who, when, pillar hash,
  component versions).

The master reaches Consul with ``hecate:connections:consul`` from its own config over the
environment's pillar (set the URL in the master config when the pillar's URL is only
valid on the nodes). Every function returns ``result`` and ``retcode`` and sets
``__context__["retcode"]`` on failure, so ``salt-run`` exits non-zero and an
orchestration's ``salt.runner`` step fails.
"""

import datetime
import getpass
import hashlib
import json
import logging
import os

import salt.exceptions
import salt.utils.sdb

try:
    import hecate_config
    import hecate_consul_client
    import hecate_pillar
except ImportError:  # installed with pip
    from saltext.hecate.utils import hecate_config, hecate_consul_client, hecate_pillar

log = logging.getLogger(__name__)

__virtualname__ = "hecate"

LOCK_TTL = "20m"  # no renewal between orchestration steps: cover the longest run
RECORDS = "hecate/deployments"


def __virtual__():
    return __virtualname__


def _finish(ret):
    """
    Signal the outcome both ways Salt reads it: ``__context__["retcode"]`` for
    orchestration (``salt.runner`` steps) and a ``retcode`` key for the exit code of
    ``salt-run`` (as Salt's own orchestrate runner does).
    """
    ret["retcode"] = 0 if ret["result"] else 1
    if not ret["result"]:
        __context__["retcode"] = 1
    return ret


def _failed(env, exc, **extra):
    ret = {"result": False, "env": env, "comment": str(exc)}
    ret.update(extra)
    return _finish(ret)


def _env_pillar(env):
    if not env:
        raise salt.exceptions.SaltInvocationError("env is required (e.g. env=prod)")
    pillar, errors = hecate_pillar.compile_for_env(__opts__, env)
    if errors:
        raise salt.exceptions.CommandExecutionError(
            f"pillar for environment '{env}' does not render: " + "; ".join(map(str, errors))
        )
    return pillar


def _consul(pillar):
    return hecate_consul_client.from_config(
        __opts__, pillar, lambda uri: salt.utils.sdb.sdb_get(uri, __opts__), __context__
    )


def _orch_settings(pillar):
    return hecate_config.deep_merge(
        {"lock_ttl": LOCK_TTL, "lock_wait": 0},
        hecate_config.traverse(pillar, "hecate:orchestration", {}) or {},
    )


def _who():
    user = os.environ.get("SUDO_USER") or getpass.getuser()
    return f"{user}@{__opts__.get('id', 'master')}"


def _lock_key(env):
    return f"hecate/locks/{env}"


def validate(env=None):
    """
    Validate the pillar of an environment: schema, secrets-as-references and the
    semantic checks of every system. Every error names its key path.

    env
        The environment (``lab``, ``dev``, ``staging``, ``prod``); its overlay is
        ``pillar/env/<env>.sls``.

    CLI Example:

    .. code-block:: bash

        salt-run hecate.validate env=prod
    """
    errors = hecate_pillar.validate_env(__opts__, env)
    if errors:
        log.warning("hecate.validate env=%s: %d error(s)", env, len(errors))
    return _finish({"result": not errors, "env": env, "errors": errors})


def lock(env=None, run_id=None, wait=None):
    """
    Take the deployment lock of ``env`` (Consul session lock ``hecate/locks/<env>``).
    Fails with "held by <who> since <when>" when another run holds it.

    run_id
        The orchestration run taking it (``unlock`` releases only that run's lock).
    wait
        Seconds to wait for a held lock (default ``hecate:orchestration:lock_wait``, 0).

    CLI Example:

    .. code-block:: bash

        salt-run hecate.lock env=prod run_id=manual-maintenance
    """
    try:
        pillar = _env_pillar(env)
        settings = _orch_settings(pillar)
        holder = f"{_who()} run {run_id or 'manual'}"
        session = _consul(pillar).lock_acquire(
            _lock_key(env),
            holder,
            ttl=settings["lock_ttl"],
            wait=settings["lock_wait"] if wait is None else wait,
        )
    except (salt.exceptions.CommandExecutionError, salt.exceptions.SaltInvocationError) as exc:
        return _failed(env, exc)
    return _finish(
        {"result": True, "env": env, "key": _lock_key(env), "holder": holder, "session": session}
    )


def unlock(env=None, run_id=None, force=False):
    """
    Release the deployment lock of ``env`` if ``run_id`` holds it (``force=True``: whoever
    holds it). A lock that is not held is not an error.

    CLI Example:

    .. code-block:: bash

        salt-run hecate.unlock env=prod run_id=manual-maintenance
        salt-run hecate.unlock env=prod force=True
    """
    try:
        pillar = _env_pillar(env)
        client = _consul(pillar)
        info = client.lock_info(_lock_key(env))
        if not info["held"]:
            return _finish({"result": True, "env": env, "comment": "lock was not held"})
        mine = run_id is not None and str(info["holder"]).endswith(f" run {run_id}")
        if not (mine or force):
            raise salt.exceptions.CommandExecutionError(
                f"lock {_lock_key(env)} is held by {info['holder']} since {info['since']}, "
                f"not by run {run_id}; use force=True to break it"
            )
        client.lock_release(_lock_key(env), info["session"])
    except (salt.exceptions.CommandExecutionError, salt.exceptions.SaltInvocationError) as exc:
        return _failed(env, exc)
    return _finish({"result": True, "env": env, "comment": f"released lock held by {info['holder']}"})


def pillar_hash(pillar):
    """sha256 of the environment's hecate/bionicgpt pillar (it holds references, no secrets)."""
    subset = {k: pillar.get(k) for k in ("hecate", "bionicgpt")}
    return hashlib.sha256(json.dumps(subset, sort_keys=True, default=str).encode()).hexdigest()


def record(env=None, run_id=None, status="deployed", **details):
    """
    Write the deployment record of a run to Consul KV
    (``hecate/deployments/<env>/<run_id>``): environment, status, who and when, pillar
    hash, component versions, and the details the orchestration passes (Nomad job
    versions, the Caddy config snapshot to restore).

    CLI Example:

    .. code-block:: bash

        salt-run hecate.record env=prod run_id=20261123T120000-abc123
    """
    try:
        pillar = _env_pillar(env)
        if not run_id:
            raise salt.exceptions.SaltInvocationError("run_id is required")
        doc = {
            "env": env,
            "run_id": run_id,
            "status": status,
            "who": _who(),
            "when": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "pillar_sha256": pillar_hash(pillar),
            "components": _component_versions(pillar),
        }
        doc.update({k: v for k, v in details.items() if not k.startswith("__")})
        key = f"{RECORDS}/{env}/{run_id}"
        _consul(pillar).put_json(key, doc)
    except (salt.exceptions.CommandExecutionError, salt.exceptions.SaltInvocationError) as exc:
        return _failed(env, exc)
    return _finish({"result": True, "env": env, "key": key, "record": doc})


def _component_versions(pillar):
    versions = {}
    for name, path in (
        ("authentik", "hecate:authentik:version"),
        ("caddy", "hecate:reverse_proxy:caddy:version"),
    ):
        value = hecate_config.traverse(pillar, path)
        if value:
            versions[name] = value
    return versions


def history(env=None, limit=20):
    """
    The deployment records of ``env``, newest first.

    CLI Example:

    .. code-block:: bash

        salt-run hecate.history env=prod limit=5
    """
    try:
        pillar = _env_pillar(env)
        client = _consul(pillar)
        prefix = f"{RECORDS}/{env}/"
        keys = sorted(client.kv_keys(prefix), reverse=True)[: int(limit)]
        records = [client.get_json(key) for key in keys]
    except (salt.exceptions.CommandExecutionError, salt.exceptions.SaltInvocationError) as exc:
        return _failed(env, exc)
    return _finish({"result": True, "env": env, "records": [r for r in records if r]})
