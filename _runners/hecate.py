"""
hecate runner: operations across all systems, run on the master.

- ``validate``: the pillar of an environment against the schema, before anything writes.
- ``lock``/``unlock``: one Consul session lock per environment, so two orchestrations of
  the same environment cannot interleave; the loser is told who holds it since when.
- ``record``/``history``: deployment records in Consul KV (who, when, pillar hash,
  component versions, Nomad job versions, the Caddy snapshot holding its routes).
- ``rollback``: back to a recorded deployment (Nomad job versions, Caddy routes).
- ``plan``: what a run would change, per system and object (a test=True orchestration).
- ``status``: Consul health of every service, a request through Caddy and, with
  ``hecate:dns``, whether each route domain's record in its zone points at the edge.
- ``import_caddyfile``: a hand-made Caddyfile as hecate's pillar, with what it cannot express.

``validate`` and ``status`` also say who belongs to the environment (``members``, from pillar
``hecate:members``) and which minions claim a role by their grains without being listed
(``not_members``: never targeted, never a WireGuard peer).

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

import salt.client
import salt.exceptions
import salt.runner

import hecate_caddy_import
import hecate_clients
import hecate_config
import hecate_http
import hecate_loader
import hecate_members
import hecate_pillar
import hecate_plan

log = logging.getLogger(__name__)

__virtualname__ = "hecate"

LOCK_TTL = "20m"  # no renewal between orchestration steps: cover the longest run
RECORDS = "hecate/deployments"


def __virtual__():
    return hecate_loader.virtual(__virtualname__, libs=("jsonschema", "consul"))


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


def validate(env=None, refs=True):
    """
    Validate the pillar of an environment: schema, secrets-as-references and the
    semantic checks of every system. Every error names its key path.

    env
        The environment (``lab``, ``dev``, ``staging``, ``prod``); its overlay is
        ``pillar/env/<env>.sls``.
    refs
        Also check that the secrets the pillar references and hecate does not generate
        exist in Vault (needs the master's ``hecate:connections:vault``).

    The return also has ``members`` (``{role: [minion ids]}``: the grains and listed in
    ``hecate:members``), ``not_members`` (``{minion id: [roles]}``: the grains but not
    listed) and ``warnings``. A not-member does not fail validation (it is left out).

    CLI Example:

    .. code-block:: bash

        salt-run hecate.validate env=prod
        salt-run hecate.validate env=prod refs=False
    """
    errors = hecate_pillar.validate_env(__opts__, env, check_refs=refs)
    if errors:
        log.warning("hecate.validate env=%s: %d error(s)", env, len(errors))
    ret = {"result": not errors, "env": env, "errors": errors}
    ret.update(_membership(env))
    return _finish(ret)


def _membership(env, pillar=None):
    """``members``, ``not_members`` and ``warnings`` of ``env`` ({} when its pillar does not render)."""
    try:
        pillar = pillar if pillar is not None else _env_pillar(env)
    except (salt.exceptions.CommandExecutionError, salt.exceptions.SaltInvocationError):
        return {}
    report = hecate_pillar.membership(__opts__, env, pillar)
    for mid, roles in sorted(report["not_members"].items()):
        log.warning("hecate env=%s: minion %s claims %s by its grains but is not a member (hecate:members)",
                    env, mid, ", ".join(roles))
    return report


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
        session = hecate_clients.consul(__opts__, pillar, __context__).lock_acquire(
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


def unlock(env=None, run_id=None, force=False, leave_others=False):
    """
    Release the deployment lock of ``env`` if ``run_id`` holds it (``force=True``: whoever
    holds it). A lock that is not held is not an error. ``leave_others=True`` (the
    orchestration's cleanup after a failure): a lock another run holds is left alone
    without failing - the run that lost the race for the lock must not break it.

    CLI Example:

    .. code-block:: bash

        salt-run hecate.unlock env=prod run_id=manual-maintenance
        salt-run hecate.unlock env=prod force=True
    """
    try:
        pillar = _env_pillar(env)
        client = hecate_clients.consul(__opts__, pillar, __context__)
        info = client.lock_info(_lock_key(env))
        lost = _lost_by(info, run_id)
        if lost:
            raise salt.exceptions.CommandExecutionError(lost)
        if not info["held"]:
            return _finish({"result": True, "env": env, "comment": "lock was not held"})
        mine = run_id is not None and str(info["holder"]).endswith(f" run {run_id}")
        if not (mine or force) and leave_others:
            return _finish({"result": True, "env": env,
                            "comment": f"lock held by {info['holder']} (not this run): left alone"})
        if not (mine or force):
            raise salt.exceptions.CommandExecutionError(
                f"lock {_lock_key(env)} is held by {info['holder']} since {info['since']}, "
                f"not by run {run_id}; use force=True to break it"
            )
        client.lock_release(_lock_key(env), info["session"])
    except (salt.exceptions.CommandExecutionError, salt.exceptions.SaltInvocationError) as exc:
        return _failed(env, exc)
    return _finish({"result": True, "env": env, "comment": f"released lock held by {info['holder']}"})


def _lost_by(info, run_id):
    """
    Why ``run_id`` lost the lock, or None. A lock released by ``unlock`` keeps its last
    holder with a ``released`` time; a lock whose session was destroyed or expired while the
    run held it (Consul releases the key and keeps its value) has the run as last holder and
    no ``released`` time - the run went on without the protection of the lock.
    """
    if run_id is None or info["held"] or info.get("released"):
        return None
    holder = str(info.get("last_holder") or "")
    if not holder.endswith(f" run {run_id}"):
        return None
    return (f"lock {info['key']} was lost during run {run_id}: its Consul session expired or was "
            f"destroyed while the run held it, so another run may have changed the environment "
            f"meanwhile; check with hecate.plan and hecate.status before running again")


def _pillar_hash(pillar):
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
            "pillar_sha256": _pillar_hash(pillar),
            "components": _component_versions(pillar),
        }
        doc.update(_deployed_state(env, pillar))
        doc.update({k: v for k, v in details.items() if not k.startswith("__")})
        key = f"{RECORDS}/{env}/{run_id}"
        hecate_clients.consul(__opts__, pillar, __context__).put_json(key, doc)
    except (salt.exceptions.CommandExecutionError, salt.exceptions.SaltInvocationError) as exc:
        return _failed(env, exc)
    return _finish({"result": True, "env": env, "key": key, "record": doc})


def _target(env, role, pillar):
    return hecate_members.target(env, hecate_members.members(pillar), role)


def _call(env, role, fun, arg=(), kwarg=None, timeout=120, pillar=None):
    """``{minion: return}`` of an execution function on the members of a role."""
    pillar = pillar if pillar is not None else _env_pillar(env)
    client = salt.client.get_local_client(__opts__["conf_file"])
    try:
        return client.cmd(
            _target(env, role, pillar), fun, list(arg), tgt_type="compound", kwarg=kwarg or {},
            timeout=timeout,
        )
    finally:
        client.destroy()


def _job_ids(pillar):
    nomad = hecate_config.traverse(pillar, "bionicgpt:nomad", {}) or {}
    prefix = nomad.get("job_prefix", "bionicgpt-")
    return [prefix + name for name in nomad.get("jobs", ["database", "llm", "application"])]


def _deployed_state(env, pillar):
    """
    What a rollback to this deployment needs: each Nomad job's version (from the local
    nodes) and the Caddy snapshot whose applied routes are live now (from the cloud nodes).
    """
    nomad = {}
    for job_id in _job_ids(pillar):
        for minion, status in (_call(env, "bionicgpt-node", "nomad.job_status", [job_id], pillar=pillar) or {}).items():
            if isinstance(status, dict) and status.get("Version") is not None:
                nomad.setdefault(minion, {})[job_id] = status["Version"]
    caddy = {}
    for minion, snaps in (_call(env, "hecate-edge", "caddy.snapshots", pillar=pillar) or {}).items():
        if isinstance(snaps, dict) and snaps.get("snapshots"):
            caddy[minion] = snaps["snapshots"][0]
    return {"nomad_jobs": nomad, "caddy_snapshot": caddy}


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
        client = hecate_clients.consul(__opts__, pillar, __context__)
        prefix = f"{RECORDS}/{env}/"
        keys = sorted(client.kv_keys(prefix), reverse=True)[: int(limit)]
        records = [client.get_json(key) for key in keys]
    except (salt.exceptions.CommandExecutionError, salt.exceptions.SaltInvocationError) as exc:
        return _failed(env, exc)
    return _finish({"result": True, "env": env, "records": [r for r in records if r]})


def rollback(env=None, to=None):
    """
    Put ``env`` back on the recorded deployment ``to`` (a run id from ``hecate.history``):
    each Nomad job back to the version it ran then, the Caddy routes back to what that
    deployment applied. Holds the environment's lock while it works and records the
    rollback as a deployment of its own.

    CLI Example:

    .. code-block:: bash

        salt-run hecate.rollback env=prod to=20261123T120000Z-a1b2c3
    """
    run_id = f"rollback-{to}"
    try:
        if not to:
            raise salt.exceptions.SaltInvocationError("to=<run id> is required (see hecate.history)")
        pillar = _env_pillar(env)
        client = hecate_clients.consul(__opts__, pillar, __context__)
        target = client.get_json(f"{RECORDS}/{env}/{to}")
        if not target:
            raise salt.exceptions.CommandExecutionError(f"no deployment record {to} for environment '{env}'")
        taken = lock(env=env, run_id=run_id)
        if not taken["result"]:
            return taken
        try:
            done = _restore(env, target, pillar)
        finally:
            unlock(env=env, run_id=run_id)
        recorded = record(env=env, run_id=f"{datetime.datetime.now(datetime.timezone.utc):%Y%m%dT%H%M%SZ}-{run_id}",
                          status="rollback", rolled_back_to=to)
    except (salt.exceptions.CommandExecutionError, salt.exceptions.SaltInvocationError) as exc:
        return _failed(env, exc)
    return _finish({"result": True, "env": env, "to": to, "restored": done,
                    "record": recorded.get("key")})


def _restore(env, target, pillar):
    """Revert Nomad jobs and Caddy routes to the recorded deployment; raise on any failure."""
    done = []
    for minion, jobs in sorted((target.get("nomad_jobs") or {}).items()):
        for job_id, version in sorted(jobs.items()):
            status = _call(env, "bionicgpt-node", "nomad.job_status", [job_id], pillar=pillar).get(minion)
            if isinstance(status, dict) and status.get("Version") == version:
                done.append(f"{minion}: job {job_id} already on version {version}")
                continue
            out = _call(env, "bionicgpt-node", "nomad.revert", [job_id], {"version": version},
                        pillar=pillar).get(minion)
            if not isinstance(out, dict):
                raise salt.exceptions.CommandExecutionError(
                    f"{minion}: reverting job {job_id} to version {version} failed: {out}"
                )
            done.append(f"{minion}: job {job_id} reverted to version {version}")
    for minion, snapshot in sorted((target.get("caddy_snapshot") or {}).items()):
        out = _call(env, "hecate-edge", "caddy.rollback", [],
                    {"snapshot": snapshot, "restore": "after", "force": True}, pillar=pillar).get(minion)
        if not isinstance(out, dict):
            raise salt.exceptions.CommandExecutionError(
                f"{minion}: restoring the Caddy routes of snapshot {snapshot} failed: {out}"
            )
        done.append(f"{minion}: Caddy routes of snapshot {snapshot} restored")
    return done


def plan(env=None, orch="orch.bionicgpt"):
    """
    What a run of ``orch`` would change in ``env``, per system and object - the
    orchestration run with ``test=True`` (nothing is written), summarised.

    CLI Example:

    .. code-block:: bash

        salt-run hecate.plan env=prod
        salt-run hecate.plan env=prod orch=orch.hecate
    """
    runner = salt.runner.RunnerClient(__opts__)
    out = runner.cmd(
        "state.orchestrate", [orch], kwarg={"pillar": {"env": env}, "test": True},
        print_event=False, full_return=False,
    )
    if not isinstance(out, dict):
        return _failed(env, f"the test run of {orch} returned no data: {out}")
    rows = hecate_plan.rows(out)
    failing = [r for r in rows if r["result"] is False]
    failed = bool(failing) or bool(out.get("retcode"))
    ret = {
        "result": not failed,
        "env": env,
        "report": hecate_plan.render(rows, env).splitlines(),
        "changes": rows,
    }
    if failed and not failing:
        ret["comment"] = f"the test run of {orch} failed (retcode {out.get('retcode')})"
    return _finish(ret)


def status(env=None):
    """
    Health of ``env``: every Consul service with its instances' check states, the
    request through Caddy that the orchestration's verify step makes
    (``bionicgpt:verify:probe``); who belongs (``members``) and which minions claim a
    role by their grains without being listed (``not_members``), as ``hecate.validate``;
    and, when ``hecate:dns`` is set, per route domain what its zone's RRSets say (read
    from the Hetzner API on the edge, not from a resolver) and whether that is the edge's
    addresses.

    CLI Example:

    .. code-block:: bash

        salt-run hecate.status env=prod
    """
    try:
        pillar = _env_pillar(env)
        client = hecate_clients.consul(__opts__, pillar, __context__)
        services = {}
        healthy = True
        for name in sorted(client.catalog_services()):
            if name == "consul":
                continue
            entries = client.health_service(name, passing=False)
            states = [c.get("Status") for e in entries for c in e.get("Checks") or []]
            ok = bool(entries) and all(st == "passing" for st in states)
            healthy = healthy and ok
            services[name] = {"instances": len(entries), "passing": ok,
                              "checks": {st: states.count(st) for st in sorted(set(states))}}
        probe = _probe(hecate_config.traverse(pillar, "bionicgpt:verify:probe"))
        healthy = healthy and probe.get("ok", True)
        ret = {"result": healthy, "env": env, "services": services, "probe": probe}
        dns = _dns_status(env, pillar)
        if dns is not None:
            ret["dns"] = dns
            ret["result"] = healthy and dns["ok"]
    except (salt.exceptions.CommandExecutionError, salt.exceptions.SaltInvocationError) as exc:
        return _failed(env, exc)
    ret.update(_membership(env, pillar))
    return _finish(ret)


def _dns_status(env, pillar):
    """
    ``{"ok", "domains": {domain: {...}}, "errors"}`` from ``hetzner_dns.resolution`` on the
    edges (where hecate's DNS settings and the edge's addresses are), or None without
    ``hecate:dns``. A domain in none of the managed zones is listed, not counted as a failure.
    """
    dns = hecate_config.traverse(pillar, "hecate:dns")
    if not isinstance(dns, dict) or not dns or dns.get("enabled", True) is False:
        return None
    domains, errors = {}, []
    # the edges answer with their in-memory pillar: bring it up to date with the pillar files
    _call(env, "hecate-edge", "saltutil.refresh_pillar", kwarg={"wait": True})
    answers = _call(env, "hecate-edge", "hetzner_dns.resolution") or {}
    if not answers:
        errors.append(f"no minion with role hecate-edge in environment {env} answered")
    for minion, got in sorted(answers.items()):
        if not isinstance(got, dict):
            errors.append(f"{minion}: {got}")
            continue
        for domain, entry in got.items():
            domains.setdefault(domain, dict(entry, minion=minion))
    ok = not errors and all(e.get("points_at_edge") is not False for e in domains.values())
    return {"ok": ok, "domains": domains, "errors": errors}


def _probe(spec):
    if not spec or not spec.get("url"):
        return {"skipped": "no bionicgpt:verify:probe in pillar"}
    base, _, rest = spec["url"].partition("://")
    host_part, _, path = rest.partition("/")
    headers = {"Host": spec["host"]} if spec.get("host") else {}
    try:
        # TLS verified; bionicgpt:verify:probe:ca_bundle names the CA (on this master)
        http = hecate_http.Client(f"{base}://{host_part}", "probe", retries=0, timeout=10,
                                  ca_bundle=spec.get("ca_bundle"),
                                  config_key="bionicgpt:verify:probe")
        resp = http.request("GET", "/" + path, ok=range(100, 600), headers=headers,
                            allow_redirects=False)
    except (hecate_http.Unreachable, salt.exceptions.SaltInvocationError) as exc:
        return {"url": spec["url"], "ok": False, "error": str(exc)}
    return {"url": spec["url"], "host": spec.get("host"), "status": resp.status_code,
            "ok": 200 <= resp.status_code < 400}


# -- migration from a Caddyfile -------------------------------------------------------------------
def import_caddyfile(path=None, text=None, env=None, adapt_on=None, caddy_binary=None):
    """
    A hand-made Caddyfile as pillar YAML for ``hecate:reverse_proxy:caddy`` (``pillar``),
    with what hecate's route model cannot express (``unsupported``) and where the pillar
    deliberately does not do what the Caddyfile did (``corrected``), each with its Caddyfile
    line. Nothing is written anywhere: review the YAML, put it in your pillar, then remove
    each site block from the Caddyfile before hecate serves its domain (docs: "Migrating a
    Caddyfile").

    The Caddyfile is read by Caddy's own adapter (``caddy adapt``), then mapped.

    path
        The Caddyfile, read on the master; when the master has no such file and ``env`` is
        given, it is read on the environment's edge (``file.read``).
    text
        The Caddyfile itself, from an orchestration (``salt.runner``) or the Python API
        (``RunnerClient``). Not on the command line: Salt does not split ``key=value`` when
        the value has a line break (``salt.utils.args.parse_input``), so a multi-line
        ``text=`` would arrive as ``path`` (the runner refuses it); use ``path=``.
    env
        The environment whose edge (a member of role ``hecate-edge``) adapts the Caddyfile
        with its Caddy (``caddy.adapt``, the admin API's ``/adapt``) when the master has no
        ``caddy`` binary, and reads ``path`` when the master has no such file.
    adapt_on
        ``master``: ``caddy adapt`` run here (``caddy_binary``, else ``caddy`` on the PATH or
        next to Salt's Python); ``edge``: ``caddy.adapt`` on the edge of ``env``. Default:
        the master when it has a binary, else the edge.

    CLI Example:

    .. code-block:: bash

        salt-run hecate.import_caddyfile path=/etc/caddy/Caddyfile
        salt-run hecate.import_caddyfile path=/etc/caddy/Caddyfile env=prod adapt_on=edge
        salt-run hecate.import_caddyfile path=/etc/caddy/Caddyfile --out=json | jq -r .pillar
    """
    try:
        if (path is None) == (text is None):
            raise salt.exceptions.SaltInvocationError("give the Caddyfile as path=<file> or text=<Caddyfile>")
        if isinstance(path, str) and (path.startswith("text=") or "\n" in path):
            raise salt.exceptions.SaltInvocationError(
                "Salt's command line passes an argument with a line break as a positional one (it does not "
                "split key=value then): give the Caddyfile as path=<file>; text= is for orchestrations "
                "(salt.runner) and the Python API"
            )
        if adapt_on not in (None, "master", "edge"):
            raise salt.exceptions.SaltInvocationError(f"adapt_on must be master or edge, not {adapt_on!r}")
        local_path, source = None, "text"
        if path is not None:
            text, local_path, source = _read_caddyfile(str(path), env)
        binary = hecate_caddy_import.caddy_binary(caddy_binary) if adapt_on != "edge" else None
        if adapt_on == "master" and binary is None:
            raise salt.exceptions.CommandExecutionError(
                "no caddy binary on the master (PATH, next to Salt's Python, or caddy_binary=); "
                "give env=<env> adapt_on=edge to adapt with the edge's Caddy"
            )
        if binary is not None:
            adapted, warnings = hecate_caddy_import.adapt_with_binary(binary, text, local_path)
            adapted_on = f"master ({binary})"
        else:
            adapted, warnings, adapted_on = _adapt_on_edge(env, text)
        result = hecate_caddy_import.convert(adapted, text, warnings)
    except (salt.exceptions.CommandExecutionError, salt.exceptions.SaltInvocationError) as exc:
        return _failed(env, exc)
    return _finish({
        "result": True,
        "source": source,
        "adapted_on": adapted_on,
        "routes": len(result["sites"]),
        "pillar": hecate_caddy_import.render(result),
        "unsupported": result["unsupported"],
        "corrected": result["corrected"],
        "warnings": result["warnings"],
    })


def _read_caddyfile(path, env):
    """``(text, path on the master or None, source)``: the master's file, else the edge's."""
    if os.path.isfile(path):
        try:
            with open(path, encoding="utf-8") as fh:
                return fh.read(), path, f"master:{path}"
        except (OSError, UnicodeDecodeError) as exc:
            raise salt.exceptions.CommandExecutionError(f"cannot read {path} on the master: {exc}") from None
    if not env:
        raise salt.exceptions.CommandExecutionError(
            f"{path} is not a file on the master; give env=<env> to read it on the environment's edge"
        )
    exists = _call(env, "hecate-edge", "file.file_exists", [path]) or {}
    for minion in sorted(m for m, found in exists.items() if found is True):
        got = _call(env, "hecate-edge", "file.read", [path]).get(minion)
        if isinstance(got, str):
            return got, None, f"{minion}:{path}"
    raise salt.exceptions.CommandExecutionError(
        f"{path} is neither on the master nor on an edge of environment '{env}' "
        f"({', '.join(sorted(exists)) or 'no member of role hecate-edge answered'})"
    )


def _adapt_on_edge(env, text):
    """``(config, warnings, where)`` from ``caddy.adapt`` on the first edge of ``env`` that answers."""
    if not env:
        raise salt.exceptions.CommandExecutionError(
            "no caddy binary on the master: give env=<env> to adapt with the edge's Caddy "
            "(caddy.adapt), or caddy_binary=<path>"
        )
    answers = _call(env, "hecate-edge", "caddy.adapt", kwarg={"caddyfile": text}) or {}
    problems = []
    for minion in sorted(answers):
        got = answers[minion]
        if isinstance(got, dict) and isinstance(got.get("result"), dict):
            return got["result"], hecate_caddy_import.edge_warnings(got.get("warnings")), f"edge {minion}"
        problems.append(f"{minion}: {got}")
    raise salt.exceptions.CommandExecutionError(
        "caddy.adapt on the edge gave no config: " + ("; ".join(problems) or
                                                      f"no member of role hecate-edge in '{env}' answered")
    )
