"""
hecate runner: operations across all systems, run on the master.

- ``validate``: the pillar of an environment against the schema, before anything writes.
- ``lock``/``unlock``: one Consul session lock per environment, so two orchestrations of
  the same environment cannot interleave; the loser is told who holds it since when.
- ``record``/``history``: deployment records in Consul KV (who, when, pillar hash,
  component versions, Nomad job versions, the Caddy snapshot holding its routes); a
  teardown (``ensure: absent``) is recorded the same way with status ``teardown``.
- ``rollback``: back to a recorded deployment (Nomad job versions, Caddy routes).
- ``plan``: what a run would change, per system and object (a test=True orchestration).
- ``status``: Consul health of every service, a request through Caddy and, with
  ``hecate:dns``, whether each route domain's record in its zone points at the edge; the
  certificate each edge serves for each route domain; the edge's own Nomad jobs (version,
  deployment, canaries).
- ``sync_routes``: the routes alone (DNS records and Caddy routes, pillar and Consul) on
  the edges, e.g. from a Consul watch or a Salt reactor when services change.
- ``route``: one route end to end, one row per aspect.
- ``import_caddyfile``: a hand-made Caddyfile as hecate's pillar, with what it cannot express.
- ``backup``/``backups``/``restore``: the edge's backups (docs/backups.md): run the backup job
  now, list the records it writes in Consul KV, restore Authentik's database from one.

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
import secrets

import salt.client
import salt.exceptions
import salt.runner

import hecate_backups
import hecate_caddy_import
import hecate_caddy_routes
import hecate_clients
import hecate_config
import hecate_consul_routes
import hecate_edge_jobs
import hecate_edge_status
import hecate_http
import hecate_loader
import hecate_members
import hecate_pillar
import hecate_plan
import hecate_route_checks

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


def _env_pillar(env, run_id=None):
    """The environment's pillar; for an orchestration run, as its other steps compiled it."""
    if not env:
        raise salt.exceptions.SaltInvocationError("env is required (e.g. env=prod)")
    pillar, errors = hecate_pillar.compile_for_env(__opts__, env, run_id=run_id)
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
        pillar = _env_pillar(env, run_id)
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
        pillar = _env_pillar(env, run_id)
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
    hash, component versions, each Nomad job's version, and per edge the Caddy snapshot to
    restore and ``caddy_routes``: which routes that edge serves (``caddy.routes_version``:
    their digest and number, the run that wrote them last; ``error`` for an edge whose Caddy
    did not answer), so the record says which edges got which version. ``status`` is
    ``deployed`` (default), ``rollback``, ``teardown`` (the orchestration's ``ensure:
    absent``) or ``failed`` (the orchestration's Caddy step failed on some edge: ``step``
    names it). Other keyword arguments the orchestration passes are kept in the record.

    CLI Example:

    .. code-block:: bash

        salt-run hecate.record env=prod run_id=20261123T120000-abc123
    """
    try:
        pillar = _env_pillar(env, run_id)
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
    return {"nomad_jobs": nomad, "caddy_snapshot": caddy, "caddy_routes": _routes_versions(env, pillar)}


def _routes_versions(env, pillar):
    """``{edge: caddy.routes_version}`` of every edge (an edge that did not answer: its error)."""
    out = {}
    answers = _call(env, "hecate-edge", "caddy.routes_version", pillar=pillar) or {}
    for minion, version in sorted(answers.items()):
        out[minion] = version if isinstance(version, dict) else {"error": str(version)}
    return out


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
        if target.get("status") == "failed":
            raise salt.exceptions.CommandExecutionError(
                f"record {to} is a failed run of environment '{env}' (its {target.get('step')} step failed on "
                f"some edge), not a deployment to return to; pick a deployed one from hecate.history"
            )
        if target.get("status") == "teardown":
            raise salt.exceptions.CommandExecutionError(
                f"record {to} is the teardown of environment '{env}' (ensure: absent), not a deployment "
                f"to return to; deploy it again: salt-run state.orch orch.bionicgpt pillar='{{\"env\": \"{env}\"}}'"
            )
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
    when ``hecate:dns`` is set, per route domain what its zone's RRSets say (read
    from the Hetzner API on the edge, not from a resolver) and whether that is the edge's
    addresses (with ``hecate:dns:edges``: ``dns:edges`` says which edges' addresses the route
    records carry and which are left out as unhealthy in Consul); and per route domain the
    certificate each edge serves (``certificates``: a TLS handshake with the domain as SNI
    on the edge's Caddy listeners, ``caddy.certificates``):
    issuer, not-after, days left; when hecate deploys the edge's own jobs (``edge_jobs``,
    from ``hecate_edge.job_status`` on an edge), each job's version (image tags, Nomad job
    version), latest deployment (status, description) and canaries (desired, placed,
    healthy, promoted): a job whose running version is not stable fails the status.
    A certificate with fewer than
    ``hecate:reverse_proxy:caddy:certificates:warn_days`` (14) days left, one that does not
    cover its domain, or a TLS listener without a certificate for a domain fails the status;
    an edge whose Caddy serves no TLS (the lab's HTTP listener) is reported as "no TLS
    listener" and does not.

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
        _refresh_edges(env, pillar)
        dns = _dns_status(env, pillar)
        if dns is not None:
            ret["dns"] = dns
            ret["result"] = ret["result"] and dns["ok"]
        ret["certificates"] = _certificates(env, pillar)
        ret["result"] = ret["result"] and ret["certificates"]["ok"]
        if hecate_edge_jobs.enabled_jobs(pillar):  # the edge's own jobs: version, deployment, canaries
            ret["edge_jobs"] = hecate_edge_status.from_edges(
                _call(env, "hecate-edge", "hecate_edge.job_status", pillar=pillar))
            ret["result"] = ret["result"] and ret["edge_jobs"]["ok"]
    except (salt.exceptions.CommandExecutionError, salt.exceptions.SaltInvocationError) as exc:
        return _failed(env, exc)
    ret.update(_membership(env, pillar))
    return _finish(ret)


def _refresh_edges(env, pillar):
    """The edges answer with their in-memory pillar: bring it up to date with the pillar files."""
    _call(env, "hecate-edge", "saltutil.refresh_pillar", kwarg={"wait": True}, pillar=pillar)


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
    out = {"ok": ok, "domains": domains, "errors": errors}
    edges = next((e["edges"] for e in domains.values() if e.get("edges")), None)
    if edges:  # hecate:dns:edges: which edges' addresses the route records carry
        out["edges"] = dict(edges, text=_edges_text(edges))
    return out


def _edges_text(edges):
    """``hetzner_dns.resolution``'s ``edges`` in one line: in the records, left out and why."""
    text = f"route records carry the edges {', '.join(edges.get('in_records') or []) or '(none)'}"
    if edges.get("all_down"):
        return text + (f" although no edge's Caddy is healthy in Consul (service '{edges.get('service')}'): "
                       "every address is kept")
    left = edges.get("left_out") or {}
    if left:
        text += "; left out as unhealthy: " + "; ".join(f"{mid} ({why})" for mid, why in sorted(left.items()))
    return text


def _certificates(env, pillar):
    """
    ``{"ok", "domains": {domain: {minion: entry}}, "expiring": [...], "problems": [...],
    "errors": [...]}`` from ``caddy.certificates`` on every edge.
    """
    warn = hecate_config.traverse(pillar, f"{hecate_route_checks.CERTS_PATH}:warn_days", hecate_route_checks.WARN_DAYS)
    answers = _call(env, "hecate-edge", "caddy.certificates", kwarg={"warn_days": warn}, pillar=pillar) or {}
    out = {"ok": True, "warn_days": warn, "domains": {}, "expiring": [], "problems": [], "errors": []}
    if not answers:
        out["errors"].append(f"no minion with role hecate-edge in environment {env} answered")
    for minion, got in sorted(answers.items()):
        if not isinstance(got, dict) or "domains" not in got:
            out["errors"].append(f"{minion}: {got}")
            continue
        for domain, entry in got["domains"].items():
            out["domains"].setdefault(domain, {})[minion] = entry
            if entry.get("expiring"):
                out["expiring"].append(f"{domain} ({minion}: {entry.get('days_left')} days left)")
            if entry.get("ok") is False:
                out["problems"].append(f"{domain} ({minion}): {entry.get('problem')}")
    out["ok"] = not out["errors"] and not out["problems"]
    return out


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


# -- routes ------------------------------------------------------------------------------------------
ROUTES_SLS = "hecate.routes"
SYNC_LOCK_WAIT = 120


def _truthy(value):
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def _state_rows(answers):
    """``({minion: {state id: {result, comment, changes}}}, failures)`` of a state.apply on minions."""
    rows, failures = {}, []
    for minion, got in sorted(answers.items()):
        if not isinstance(got, dict) or not all(isinstance(v, dict) for v in got.values()):
            failures.append(f"{minion}: {got}")  # render error, "did not return"
            continue
        states = {}
        for key, sret in sorted(got.items(), key=lambda kv: kv[1].get("__run_num__", 0)):
            sid = sret.get("__id__") or key.split("_|-")[1]
            states[sid] = {"result": sret.get("result"), "comment": sret.get("comment"),
                           "changes": sret.get("changes") or {}}
            if sret.get("result") is False:
                failures.append(f"{minion}: {sid}: {sret.get('comment')}")
        rows[minion] = states
    return rows, failures


def _apply_routes(env, pillar, run_id, test):
    answers = _call(
        env, "hecate-edge", "state.apply", [ROUTES_SLS],
        {"pillar": {"hecate_run": {"id": run_id, "env": env}}, "test": test, "queue": True},
        timeout=300, pillar=pillar,
    ) or {}
    if not answers:
        raise salt.exceptions.CommandExecutionError(
            f"no minion with role hecate-edge in environment {env} answered"
        )
    return _state_rows(answers)


def sync_routes(env=None, test=False, wait=None):
    """
    Bring the routes of ``env`` in line on its edges: the Caddy routes from pillar and from
    Consul (``hecate:reverse_proxy:caddy:consul_routes``) and their DNS records, as the
    orchestration's dns, caddy and dns_prune steps do, in one state run per edge
    (``state.apply hecate.routes``), so DNS and Caddy work from one reading of Consul.

    It first previews (``test=True`` on the edges). When nothing would change it stops
    there: no lock, no write anywhere. Otherwise it takes the environment's lock (waiting
    up to ``wait`` seconds, default 120, for a running orchestration), applies, and
    releases it. Meant for operators and for a Consul watch or Salt reactor that runs it
    when services change (docs/systems/caddy.md).

    test
        Only the preview: exactly the changes a real run would make, nothing written.

    Returns ``changes`` (``{minion: {state id: changes}}``, only states that changed or
    would change) and ``states`` (every state's result and comment).

    CLI Example:

    .. code-block:: bash

        salt-run hecate.sync_routes env=prod test=True
        salt-run hecate.sync_routes env=prod
    """
    test = _truthy(test)
    run_id = f"{datetime.datetime.now(datetime.timezone.utc):%Y%m%dT%H%M%SZ}-sync-{secrets.token_hex(3)}"
    try:
        pillar = _env_pillar(env)
        states, failures = _apply_routes(env, pillar, run_id, True)
        changes = _changed(states)
        written = False
        if changes and not failures and not test:
            taken = lock(env=env, run_id=run_id, wait=SYNC_LOCK_WAIT if wait is None else wait)
            if not taken["result"]:
                return taken
            try:
                states, failures = _apply_routes(env, pillar, run_id, False)
            finally:
                unlock(env=env, run_id=run_id)
            changes, written = _changed(states), True
    except (salt.exceptions.CommandExecutionError, salt.exceptions.SaltInvocationError) as exc:
        return _failed(env, exc)
    ret = {"result": not failures, "env": env, "test": test, "run_id": run_id, "changes": changes,
           "states": states}
    if failures:
        ret["comment"] = "the routes could not be brought in line:\n" + "\n".join(failures)
    elif not changes:
        ret["comment"] = "the routes are in line on every edge: nothing written"
    elif test or not written:
        ret["comment"] = "would change the routes (test=True: nothing written)"
    else:
        ret["comment"] = "changed the routes"
    return _finish(ret)


def _changed(states):
    return {minion: {sid: st["changes"] for sid, st in rows.items() if st["changes"]}
            for minion, rows in states.items() if any(st["changes"] for st in rows.values())}


def route(domain=None, env=None, path=None):
    """
    One route end to end, one row per aspect:

    - ``source``: the pillar route (its key path) or the Consul service (tag, meta) that
      gives the domain its route; a Consul service that claims it but is skipped, and why;
    - ``dns``: what the domain's zone answers (read from the Hetzner API on the edge) and
      whether that is the edge (with ``hecate:dns``);
    - ``caddy``: the route as live on each edge (its ``@id``, owner, upstreams) and whether it
      is what hecate would write now;
    - ``upstream``: the upstream's instances and their health in Consul (a static backend is
      not in Consul), and Caddy's own count of requests and failures per upstream;
    - ``forward_auth``: whether requests go through the Authentik outpost, as asked;
    - ``certificate``: what each edge serves for the domain (a TLS handshake, SNI);
    - ``request``: a real GET through the edge (``hecate:reverse_proxy:caddy:probe``: a base
      URL with the domain as Host header, else ``https://<domain>``): status and time.

    ``result`` is false when a row fails. Nothing is written.

    CLI Example:

    .. code-block:: bash

        salt-run hecate.route domain=chat.codemonkey.ai env=prod
    """
    try:
        if not domain:
            raise salt.exceptions.SaltInvocationError("domain is required (e.g. domain=chat.example.com)")
        domain = str(domain).lower().rstrip(".")
        pillar = _env_pillar(env)
        rows = _route_rows(env, pillar, domain, path)
    except (salt.exceptions.CommandExecutionError, salt.exceptions.SaltInvocationError) as exc:
        return _failed(env, exc, domain=domain)
    ok = all(r["ok"] is not False for r in rows)
    return _finish({"result": ok, "env": env, "domain": domain, "rows": rows,
                    "report": hecate_route_checks.render(rows, domain)})


def _route_rows(env, pillar, domain, path):
    data = hecate_caddy_routes.caddy_data(pillar)
    data = data if isinstance(data, dict) else {}
    client = hecate_clients.consul(__opts__, pillar, __context__)
    _refresh_edges(env, pillar)
    source, want = _route_source(pillar, data, domain, client)
    rows = [source]
    rows.append(_route_dns(env, pillar, domain))
    live = _route_live(env, pillar, data, domain)
    rows.append(_route_caddy(live, want))
    rows.append(_route_upstream(env, pillar, client, want, live))
    rows.append(_route_forward_auth(want, live))
    rows.append(_route_certificate(env, pillar, domain))
    probe = hecate_config.traverse(pillar, hecate_route_checks.PROBE_PATH, {}) or {}
    got = hecate_route_checks.request(domain, probe, path)
    summary = (f"GET {got['url']} (Host {domain}): {got['status']} in {got['ms']} ms" if "status" in got
               else f"GET {got['url']}: {got['error']}")
    ok = got.pop("ok")
    rows.append(hecate_route_checks.row("request", ok, summary, **got))
    return rows


def _route_source(pillar, data, domain, client):
    """The source row and what hecate wants: ``{"kind", "route", "consul_service", "tag", "forward_auth"}``."""
    row = hecate_route_checks.row
    idx, spec = hecate_route_checks.pillar_source(data, domain)
    want = None
    if spec is not None:
        where = f"{hecate_caddy_routes.PILLAR_PATH}:routes:{idx}"
        upstream = spec.get("upstream") if isinstance(spec.get("upstream"), dict) else {}
        errors = []

        def resolve(name):
            addresses = client.service_addresses(name, passing=True)
            if not addresses:
                raise salt.exceptions.CommandExecutionError(f"Consul service '{name}' has no passing instances")
            return addresses

        built = hecate_caddy_routes.build_route(spec, where, data, resolve, errors=errors)
        want = {"kind": "pillar", "route": built, "consul_service": upstream.get("consul_service"),
                "tag": None, "forward_auth": bool(spec.get("forward_auth"))}
        name = hecate_caddy_routes.route_name(spec)
        summary = f"pillar route '{name}' ({where})"
        if errors:
            summary += "; hecate cannot build it now: " + "; ".join(msg for _, msg in errors)
        return row("source", not errors, summary, kind="pillar", where=where, name=name), want
    conf = hecate_consul_routes.settings(data)
    if conf is None:
        return row("source", False, f"no pillar route has {domain}, and no route comes from Consul "
                                    f"({hecate_consul_routes.PILLAR_PATH} is not set)", kind=None), None
    tag = hecate_consul_routes.tag_of(conf)
    answer = hecate_consul_routes.read_consul(
        tag, client.catalog_services, lambda name, t: client.health_service(name, passing=False, tag=t)
    )
    found = hecate_consul_routes.discover(pillar, answer, data, tag)
    for service, disc in sorted(found.services.items()):
        if domain in disc.domains:
            want = {"kind": "consul", "route": disc.route, "consul_service": service, "tag": tag,
                    "forward_auth": disc.forward_auth}
            meta = (answer[service][0] or {}).get("meta", {})
            return row("source", True, f"Consul service '{service}' (tag {tag}, route {disc.route.name})",
                       kind="consul", service=service, tag=tag, meta=meta,
                       kept_without_passing=disc.kept), want
    claimed = hecate_route_checks.claimants(answer, domain)
    if claimed:
        why = "; ".join(f"Consul service '{s}' claims it but is skipped: {found.skipped.get(s, 'skipped')}"
                        for s in claimed)
        return row("source", False, why, kind="consul", services=claimed, tag=tag), None
    return row("source", False, f"no pillar route and no Consul service (tag {tag}) has {domain}", kind=None), None


def _route_dns(env, pillar, domain):
    row = hecate_route_checks.row
    dns = hecate_config.traverse(pillar, "hecate:dns")
    if not isinstance(dns, dict) or not dns or dns.get("enabled", True) is False:
        return row("dns", None, "hecate:dns is not configured: hecate manages no record")
    answers = _call(env, "hecate-edge", "hetzner_dns.resolution", kwarg={"domain": domain}, pillar=pillar) or {}
    for minion, got in sorted(answers.items()):
        if isinstance(got, dict) and domain in got:
            entry = got[domain]
            if entry.get("zone") is None:
                return row("dns", None, f"{domain} is in none of hecate:dns:zones: not managed by hecate",
                           minion=minion, **entry)
            values = {t: (entry.get(t) or {}).get("values") for t in ("A", "AAAA")}
            ok = bool(entry.get("points_at_edge"))
            text = ", ".join(f"{t} {' '.join(v) or '(none)'}" for t, v in values.items())
            text = f"zone {entry['zone']} answers {text}" + (" (the edge)" if ok else
                    f"; the edge is A {' '.join(entry['edge']['A'])} AAAA {' '.join(entry['edge']['AAAA'])}")
            if entry.get("edges"):
                text += "; " + _edges_text(entry["edges"])
            return row("dns", ok, text, minion=minion, **entry)
    errors = [f"{m}: {g}" for m, g in sorted(answers.items())] or ["no edge answered"]
    return row("dns", False, "hetzner_dns.resolution failed: " + "; ".join(errors))


def _route_live(env, pillar, data, domain):
    """``{minion: {"index", "route", "error"}}``: the route serving ``domain`` on each edge."""
    server = data.get("server") or hecate_caddy_routes.DEFAULT_SERVER
    out = {}
    for minion, got in sorted((_call(env, "hecate-edge", "caddy.routes", kwarg={"server": server},
                                     pillar=pillar) or {}).items()):
        if not isinstance(got, list):
            out[minion] = {"error": str(got)}
            continue
        idx, live = hecate_route_checks.serving_route(got, domain)
        out[minion] = {"index": idx, "route": live}
    return out


def _route_caddy(live, want):
    row = hecate_route_checks.row
    if not live:
        return row("caddy", False, "no edge answered")
    ok, parts, detail = True, [], {}
    for minion, got in sorted(live.items()):
        if got.get("error"):
            ok = False
            parts.append(f"{minion}: {got['error']}")
            continue
        route = got["route"]
        if route is None:
            ok = False
            parts.append(f"{minion}: no route serves it")
            detail[minion] = None
            continue
        rid = route.get("@id")
        view = hecate_caddy_routes.summary(route)
        entry = {"index": got["index"], "id": rid, "owner": hecate_route_checks.owner(rid), **view}
        if want is not None and want.get("route") is not None:
            delta = hecate_caddy_routes.route_diff(route, want["route"].json)
            entry["in_sync"] = not delta
            if delta:
                entry["differs"] = delta
                ok = False
        elif want is not None:
            ok = False
        detail[minion] = entry
        sync = {True: "as hecate would write it", False: "differs from what hecate would write now",
                None: "(hecate would write nothing)"}[entry.get("in_sync")]
        parts.append(f"{minion}: route {got['index']} ({rid or 'no @id'}, {entry['owner']}) -> "
                     f"{', '.join(view['upstreams']) or 'no upstream'}; {sync}")
    return row("caddy", ok, "; ".join(parts), edges=detail)


def _route_upstream(env, pillar, client, want, live):
    row = hecate_route_checks.row
    dials = sorted({d for got in live.values() if got.get("route")
                    for d in hecate_caddy_routes.summary(got["route"])["upstreams"]})
    caddy_view = {}
    if dials:
        for minion, got in sorted((_call(env, "hecate-edge", "caddy.upstreams", pillar=pillar) or {}).items()):
            if isinstance(got, list):
                caddy_view[minion] = {u.get("address"): {"num_requests": u.get("num_requests"), "fails": u.get("fails")}
                                      for u in got if isinstance(u, dict) and u.get("address") in dials}
    service = (want or {}).get("consul_service")
    if not service:
        text = f"static backend {', '.join(dials)} (not a Consul service)" if dials else "no upstream"
        return row("upstream", None if dials else False, text, caddy=caddy_view)
    entries = client.health_service(service, passing=False, tag=want.get("tag"))
    instances = []
    for entry in entries:
        svc, node = entry.get("Service") or {}, entry.get("Node") or {}
        states = sorted({c.get("Status") for c in entry.get("Checks") or []})
        status = "passing" if all(s == "passing" for s in states) else next(
            (s for s in ("critical", "warning", "maintenance") if s in states), "unknown")
        instances.append({"address": f"{svc.get('Address') or node.get('Address')}:{svc.get('Port')}",
                          "node": node.get("Node"), "status": status})
    passing = [i for i in instances if i["status"] == "passing"]
    text = (f"Consul service '{service}': {len(passing)} of {len(instances)} instance(s) passing"
            + (f" ({', '.join(i['address'] for i in passing)})" if passing else ""))
    return row("upstream", bool(passing), text, service=service, instances=instances, caddy=caddy_view)


def _route_forward_auth(want, live):
    row = hecate_route_checks.row
    routes = [got["route"] for got in live.values() if got.get("route")]
    if not routes:
        return row("forward_auth", None, "no live route")
    live_fa = {bool(hecate_caddy_routes.summary(r).get("forward_auth")) for r in routes}
    outposts = sorted({d for r in routes for d in hecate_caddy_routes.summary(r).get("forward_auth") or []})
    asked = want.get("forward_auth") if want else None
    if len(live_fa) > 1:
        return row("forward_auth", False, "the edges disagree: some check logins, some do not", outposts=outposts)
    on = live_fa.pop()
    text = (f"through the Authentik outpost {', '.join(outposts)}" if on
            else "none: requests go straight to the upstream")
    ok = None if asked is None else on == asked
    if ok is False:
        text += f" (hecate wants {'forward auth' if asked else 'none'})"
    return row("forward_auth", ok, text, enabled=on, wanted=asked, outposts=outposts)


def _route_certificate(env, pillar, domain):
    row = hecate_route_checks.row
    warn = hecate_config.traverse(pillar, f"{hecate_route_checks.CERTS_PATH}:warn_days", hecate_route_checks.WARN_DAYS)
    answers = _call(env, "hecate-edge", "caddy.certificates",
                    kwarg={"domains": [domain], "warn_days": warn}, pillar=pillar) or {}
    parts, detail, ok = [], {}, None
    for minion, got in sorted(answers.items()):
        entry = (got.get("domains") or {}).get(domain) if isinstance(got, dict) else None
        if entry is None:
            parts.append(f"{minion}: {got}")
            ok = False
            continue
        detail[minion] = entry
        if "skipped" in entry:
            parts.append(f"{minion}: {entry['skipped']}")
            continue
        ok = (ok is not False) and entry["ok"]
        if "issuer" in entry:
            parts.append(f"{minion}: {entry['issuer']}, not after {entry['not_after']} ({entry['days_left']} days left)"
                         + (f": {entry['problem']}" if entry.get("problem") else ""))
        else:
            parts.append(f"{minion}: {entry.get('problem')}")
    return row("certificate", ok, "; ".join(parts) or "no edge answered", edges=detail)


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


# -- backups (docs/backups.md; the logic is in _utils/hecate_backups.py, run on an edge) -----------
def _edge_call(env, fun, kwarg, timeout, pillar):
    """``(minion, return)`` of ``fun`` on the first edge of ``env`` that answers (one edge: the
    edges share one Nomad cluster, and a backup or a restore must run once)."""
    import salt.utils.minions  # pylint: disable=import-outside-toplevel

    found = salt.utils.minions.CkMinions(__opts__).check_minions(_target(env, "hecate-edge", pillar), "compound")
    edges = sorted(found["minions"])
    if not edges:
        raise salt.exceptions.CommandExecutionError(f"no member of role hecate-edge in environment '{env}'")
    client = salt.client.get_local_client(__opts__["conf_file"])
    try:
        for minion in edges:
            # the edge answers with its in-memory pillar (the restore job is rendered from it)
            client.cmd(minion, "saltutil.refresh_pillar", kwarg={"wait": True}, timeout=60)
            answer = client.cmd(minion, fun, kwarg=kwarg, timeout=timeout)
            if minion in (answer or {}):
                got = answer[minion]
                if not isinstance(got, dict):  # an execution error: "ERROR: <message>"
                    raise salt.exceptions.CommandExecutionError(f"{minion}: {str(got).removeprefix('ERROR: ')}")
                return minion, got
    finally:
        client.destroy()
    raise salt.exceptions.CommandExecutionError(f"no edge of environment '{env}' answered ({', '.join(edges)})")


def backup(target=None, env=None, timeout=600):
    """
    Back up ``env``'s edge now: the backup job (``hecate-backup``) launched at once (Nomad's
    periodic force) on an edge, followed to its end; returns the run's id and the record the
    job wrote in Consul KV for ``target`` (``hecate/backups/<env>/<target>/<id>``: when, size,
    sha256, file, volume, node, job, allocation), or for every target when none is given.

    CLI Example:

    .. code-block:: bash

        salt-run hecate.backup target=authentik_database env=prod
    """
    try:
        pillar = _env_pillar(env)
        edge, out = _edge_call(env, "hecate_edge.backup", {"target": target, "timeout": timeout},
                               float(timeout) + 60, pillar)
    except (salt.exceptions.CommandExecutionError, salt.exceptions.SaltInvocationError) as exc:
        return _failed(env, exc, target=target)
    return _finish({"result": True, "env": env, "target": target, "edge": edge, "id": out["id"], "job": out["job"],
                    "record": out["record"] if target else out["records"]})


def backups(env=None, target=None):
    """
    The backup records of ``env`` (of ``target``), newest first, from Consul KV
    (``hecate/backups/<env>/``): id, target, when, file, size, sha256, node, volume.

    CLI Example:

    .. code-block:: bash

        salt-run hecate.backups env=prod
        salt-run hecate.backups env=prod target=authentik_database
    """
    try:
        pillar = _env_pillar(env)
        if target is not None and target not in hecate_edge_jobs.BACKUP_TARGETS:
            raise salt.exceptions.SaltInvocationError(
                f"unknown backup target {target!r}: one of "
                f"{', '.join(hecate_edge_jobs.BACKUP_TARGETS)}")
        found = hecate_backups.records(hecate_clients.consul(__opts__, pillar, __context__), env, target)
    except (salt.exceptions.CommandExecutionError, salt.exceptions.SaltInvocationError) as exc:
        return _failed(env, exc, target=target)
    return _finish({"result": True, "env": env, "target": target, "backups": found})


def restore(target=None, backup=None, env=None, stop_authentik=False, test=False, timeout=900):  # pylint: disable=redefined-outer-name
    """
    Restore ``target`` (``authentik_database``) of ``env`` from the backup ``backup`` (an id
    from ``hecate.backups``). Refused while Authentik's job runs (it would keep writing to
    its database) unless ``stop_authentik=True``: then Authentik is stopped, the one-off job
    ``hecate-restore`` checks the archive's sha256 and runs ``pg_restore --clean`` on the node
    holding it, and Authentik is started again on the version it ran. ``test=True`` says what
    it would do (``result`` None) and changes nothing.

    CLI Example:

    .. code-block:: bash

        salt-run hecate.restore target=authentik_database backup=20260101T030000Z env=prod test=True
        salt-run hecate.restore target=authentik_database backup=20260101T030000Z env=prod stop_authentik=True
    """
    try:
        pillar = _env_pillar(env)
        if not target or not backup:
            raise salt.exceptions.SaltInvocationError(
                "target=<backup target> and backup=<backup id> are required "
                f"(salt-run hecate.backups env={env} lists the backups)")
        edge, out = _edge_call(env, "hecate_edge.restore",
                               {"target": target, "backup": str(backup), "stop_authentik": bool(stop_authentik),
                                "test": bool(test), "timeout": timeout}, float(timeout) + 60, pillar)
    except (salt.exceptions.CommandExecutionError, salt.exceptions.SaltInvocationError) as exc:
        return _failed(env, exc, target=target, backup=backup)
    ret = {"result": out["result"], "env": env, "target": target, "backup": backup, "edge": edge,
           "steps": out["steps"], "comment": out["comment"]}
    if test:
        ret.update(result=None, test=True, retcode=0)  # a preview: nothing failed
        return ret
    return _finish(ret)
