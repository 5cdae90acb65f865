"""
Backups of the edge (issue 16): run the backup job now, read the records it writes in Consul
KV, restore Authentik's database from one, and the safety net of an Authentik upgrade. The
``hecate_edge`` execution module and states (on an edge, which reaches Nomad) and the
``hecate`` runner (on the master: ``salt-run hecate.backup / hecate.backups / hecate.restore``)
call these functions; docs/backups.md is the operator's page.

- The periodic batch job ``hecate-backup`` (salt/hecate/edge/jobs/backup.nomad.hcl.j2) writes
  one archive per target onto the edge's backups volume and records each in Consul KV itself:
  ``hecate/backups/<env>/<target>/<id>`` (Consul's KV API, ``PUT /v1/kv/<key>``), the id being
  the launch time in UTC (``20260101T030000Z``). Its retention deletes old archives with their
  records.
- :func:`run` launches it now: Nomad's ``POST /v1/job/<id>/periodic/force`` (nomad/
  periodic_endpoint.go Periodic.Force) makes the child job ``<id>/periodic-<unix time>``
  (nomad/periodic.go deriveJob); its evaluation, then its allocation are followed to the end
  and the record of the run is read back.
- :func:`restore` puts Authentik's database back from a record: refused while Authentik's job
  runs (it would keep writing) unless told to stop it; then Authentik stopped, a one-off batch
  job ``hecate-restore`` on the node holding the archive (sha256 checked, ``pg_restore --clean
  --if-exists --single-transaction``), Authentik started again on the version it ran.
- :func:`upgrade_check`: whether ``hecate:authentik:version`` differs from the running job's
  (an upgrade migrates the database: the edge deploy backs it up first and restores it when the
  deployment fails).

Errors are :class:`BackupError` (a ``CommandExecutionError``) naming the target, the backup and
the environment.
"""

import datetime
import re
import time

import salt.exceptions

import hecate_edge_jobs
import hecate_nomad_client

ID_RE = re.compile(r"^\d{8}T\d{6}Z$")
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+$")
TERMINAL_ALLOC = ("complete", "failed", "lost")
RESTORABLE = ("authentik_database",)


class BackupError(salt.exceptions.CommandExecutionError):
    """A backup, a listing or a restore that cannot be done (the message says which and why)."""


# -- ids and records -----------------------------------------------------------------------------
def launch_id(child_job_id):
    """``hecate-backup/periodic-1767236400`` -> ``20260101T030000Z`` (the launch time, UTC)."""
    _, sep, stamp = str(child_job_id).rpartition("/periodic-")
    if not sep or not stamp.isdigit():
        raise BackupError(f"{child_job_id!r} is not a launch of a periodic job (<job>/periodic-<unix time>)")
    when = datetime.datetime.fromtimestamp(int(stamp), tz=datetime.timezone.utc)
    return when.strftime("%Y%m%dT%H%M%SZ")


def environment(pillar):
    env = hecate_edge_jobs.environment(pillar)
    if not env:
        raise BackupError("hecate:global:environment is not set: backup records live under hecate/backups/<env>/")
    return env


def records(consul, env, target=None):
    """Every record of ``env`` (of ``target``), newest first."""
    out = []
    for key in consul.kv_keys(hecate_edge_jobs.backup_key(env, target)):
        doc = consul.get_json(key)
        if isinstance(doc, dict):
            doc.setdefault("key", key)
            out.append(doc)
    return sorted(out, key=lambda r: (str(r.get("id")), str(r.get("target"))), reverse=True)


def record(consul, env, target, backup_id):
    """The record of one backup, checked (:func:`check_record`)."""
    if target not in hecate_edge_jobs.BACKUP_TARGETS:
        raise BackupError(f"unknown backup target {target!r}: one of {', '.join(hecate_edge_jobs.BACKUP_TARGETS)}")
    if not ID_RE.match(str(backup_id or "")):
        raise BackupError(f"backup={backup_id!r} is not a backup id (e.g. 20260101T030000Z: "
                          f"salt-run hecate.backups env={env} target={target} lists them)")
    key = hecate_edge_jobs.backup_key(env, target, backup_id)
    doc = consul.get_json(key)
    if not doc:
        raise BackupError(f"no backup {backup_id} of {target} in environment '{env}' (no record at {key}; "
                          f"salt-run hecate.backups env={env} target={target} lists them)")
    check_record(doc, target, backup_id)
    return doc


def check_record(doc, target, backup_id):
    """
    A record's fields before they go into a restore job: the record is data in Consul that
    ends up in a shell script, so every field must have the shape the backup job writes.
    """
    problems = []
    if doc.get("target") != target or doc.get("id") != backup_id:
        problems.append(f"it is the record of {doc.get('target')}/{doc.get('id')}")
    if doc.get("file") != hecate_edge_jobs.backup_file(target, backup_id):
        problems.append(f"file {doc.get('file')!r} is not {hecate_edge_jobs.backup_file(target, backup_id)!r}")
    if not SHA256_RE.match(str(doc.get("sha256") or "")):
        problems.append("no sha256")
    for field in ("node", "volume"):
        if not NAME_RE.match(str(doc.get(field) or "")):
            problems.append(f"{field} {doc.get(field)!r} is not a name")
    if problems:
        raise BackupError(f"the record of backup {backup_id} of {target} is not one the backup job wrote: "
                          + "; ".join(problems))
    return doc


# -- following batch work in Nomad --------------------------------------------------------------
def _deadline(timeout):
    return time.monotonic() + float(timeout)


def _left(deadline, cap=30):
    return max(1, min(cap, deadline - time.monotonic()))


def follow_batch(nomad, job_id, eval_id, deadline, what):
    """
    Follow what one evaluation of a batch job placed until every allocation of it has ended;
    returns the allocations. :class:`BackupError` on a failed evaluation, a placement
    failure, a failed allocation (with its tasks' last events) or the deadline.
    """
    evaluation = None
    index = 0
    while True:
        evaluation, index = nomad.evaluation(eval_id, index=index, wait=_left(deadline))
        if evaluation.get("Status") in hecate_nomad_client.TERMINAL_EVAL or time.monotonic() >= deadline:
            break
    if evaluation.get("FailedTGAllocs"):
        raise BackupError(f"{what}: Nomad cannot place job {job_id}: "
                          + "; ".join(hecate_nomad_client.placement_failures(evaluation["FailedTGAllocs"])))
    if evaluation.get("Status") != "complete":
        raise BackupError(f"{what}: evaluation {eval_id[:8]} of job {job_id} is {evaluation.get('Status')} "
                          f"{evaluation.get('StatusDescription') or ''}".rstrip())
    index = 0
    while True:
        allocs, index = nomad.allocations_wait(job_id, index=index, wait=_left(deadline))
        mine = [a for a in allocs if a.get("EvalID") == eval_id]
        if mine and all(a.get("ClientStatus") in TERMINAL_ALLOC for a in mine):
            break
        if time.monotonic() >= deadline:
            states = ", ".join(f"{a['ID'][:8]} {a.get('ClientStatus')}" for a in mine) or "none placed"
            raise BackupError(f"{what}: job {job_id} has not finished in time (allocations: {states})")
    failed = [a for a in mine if a.get("ClientStatus") != "complete"]
    if failed:
        details = []
        for alloc in failed:
            full = nomad.allocation(alloc["ID"]) or alloc
            details.extend(hecate_nomad_client.describe_failures([hecate_nomad_client.alloc_failure(full)]))
        raise BackupError(f"{what}: job {job_id} failed:\n  " + "\n  ".join(details))
    return mine


def wait_stopped(nomad, job_id, deadline, what):
    """Until no allocation of ``job_id`` runs any more (after a stop)."""
    index = 0
    while True:
        allocs, index = nomad.allocations_wait(job_id, index=index, wait=_left(deadline, 5))
        live = [a for a in allocs if a.get("ClientStatus") not in TERMINAL_ALLOC]
        if not live:
            return
        if time.monotonic() >= deadline:
            raise BackupError(f"{what}: job {job_id} still has {len(live)} allocation(s) running after its stop")


# -- backups now --------------------------------------------------------------------------------------
def run(nomad, consul, pillar, target=None, timeout=600):
    """
    Run the backup job now (Nomad's periodic force), wait for the run to end and return
    ``{"id", "job", "records": {target: record}, "record": <target's record or None>}``.
    """
    env = environment(pillar)
    settings = hecate_edge_jobs.backup_settings(pillar)
    what = f"backup of {target or 'every target'} in environment '{env}'"
    if not settings["enabled"]:
        raise BackupError(f"{what}: backups are not enabled on this edge (hecate:backup:enabled)")
    if target is not None and target not in settings["targets"]:
        raise BackupError(f"{what}: {target!r} is not among hecate:backup:targets "
                          f"({', '.join(settings['targets'])})")
    job_id = hecate_edge_jobs.job_id(pillar, "backup")
    job = nomad.job(job_id)
    if job is None or job.get("Stop"):
        raise BackupError(f"{what}: job {job_id} is not {'running' if job else 'registered'} in Nomad; deploy the "
                          f"edge first (salt-run state.orch orch.hecate pillar='{{\"env\": \"{env}\"}}')")
    deadline = _deadline(timeout)
    try:
        reply = nomad.periodic_force(job_id)
    except hecate_nomad_client.NomadError as exc:
        raise BackupError(f"{what}: Nomad did not launch job {job_id}: {exc.text or exc}") from None
    evaluation, _ = nomad.evaluation(reply["EvalID"])
    child = evaluation["JobID"]
    backup_id = launch_id(child)
    follow_batch(nomad, child, reply["EvalID"], deadline, f"{what} (run {child})")
    found = {}
    for name in settings["targets"]:
        key = hecate_edge_jobs.backup_key(env, name, backup_id)
        doc = consul.get_json(key)
        if doc is None:
            raise BackupError(f"{what}: run {child} ended, but there is no record of {name} at {key}")
        found[name] = check_record(doc, name, backup_id)
    return {"id": backup_id, "env": env, "job": child, "records": found,
            "record": found.get(target) if target else None}


# -- restore -------------------------------------------------------------------------------------------
def restore_command(env, target, backup_id, stop_authentik=True):
    """The runner call that restores a backup (for messages)."""
    return (f"salt-run hecate.restore target={target} backup={backup_id} env={env}"
            + (" stop_authentik=True" if stop_authentik else ""))


def restore(nomad, consul, pillar, target, backup_id, render_job, stop_authentik=False, test=False,
            timeout=900):
    """
    Restore ``target`` (``authentik_database``) from backup ``backup_id``.
    ``render_job(record)`` renders the restore job's HCL (salt/hecate/edge/jobs/
    restore.nomad.hcl.j2). Returns ``{"result": True|None, "steps": [...], "record": ...}``;
    with ``test`` only what it would do.
    """
    env = environment(pillar)
    what = f"restore of {target} from backup {backup_id} in environment '{env}'"
    if target not in RESTORABLE:
        spec = hecate_edge_jobs.BACKUP_TARGETS.get(target)
        if spec is None:
            raise BackupError(f"{what}: unknown backup target; one of {', '.join(hecate_edge_jobs.BACKUP_TARGETS)}")
        raise BackupError(f"{what}: hecate restores authentik_database only; a {target} archive is a tar.gz of "
                          "the files (docs/backups.md: stop the job that uses them, unpack it over its volume, "
                          "start the job)")
    doc = record(consul, env, target, backup_id)
    ak_id = hecate_edge_jobs.job_id(pillar, "authentik")
    restore_id = hecate_edge_jobs.job_id(pillar, "restore")
    db = hecate_edge_jobs.authentik_settings(pillar)["database"]["name"]
    ak = nomad.job(ak_id)
    running = ak is not None and not ak.get("Stop")
    if running and not stop_authentik:
        raise BackupError(f"{what}: refused: Authentik (job {ak_id}) is running and would keep writing to its "
                          f"database; run again with stop_authentik=True (hecate stops {ak_id}, restores, starts it "
                          "again), or stop it first")
    steps = []
    if running:
        steps.append(f"stop job {ak_id} (version {ak['Version']}) and wait until its allocations have stopped")
    steps.append(f"run job {restore_id} on node {doc['node']}: check {doc['file']} on volume {doc['volume']} "
                 f"against sha256 {doc['sha256']}, then pg_restore --clean --if-exists --single-transaction "
                 f"into database {db}")
    if running:
        steps.append(f"start job {ak_id} again (its version {ak['Version']}) and wait until it is healthy")
    if test:
        return {"result": None, "env": env, "record": doc, "steps": steps,
                "comment": f"{what} would: " + "; then ".join(steps)}
    deadline = _deadline(timeout)
    done = []
    if running:
        nomad.deregister(ak_id)
        wait_stopped(nomad, ak_id, deadline, what)
        done.append(f"stopped job {ak_id}")
    failure = None
    try:
        _run_restore_job(nomad, restore_id, render_job(doc), deadline, what)
        done.append(f"restored database {db} from {doc['file']} (job {restore_id} on node {doc['node']})")
    except salt.exceptions.CommandExecutionError as exc:
        failure = exc
    if running:
        # the database is as the dump left it, or (a failed single transaction) as it was:
        # either way Authentik runs again on the version it ran
        done.append(_start_again(nomad, ak_id, ak["Version"], deadline, what))
    if failure is not None:
        raise BackupError(f"{failure}\n(" + "; ".join(done) + ")" if done else str(failure)) from None
    return {"result": True, "env": env, "record": doc, "steps": done, "comment": f"{what}: " + "; ".join(done)}


def _run_restore_job(nomad, restore_id, hcl, deadline, what):
    try:
        job = nomad.parse(hcl)
    except hecate_nomad_client.NomadError as exc:
        raise BackupError(f"{what}: Nomad rejected the restore job: {exc.text or exc}") from None
    if job.get("ID") != restore_id:
        raise BackupError(f"{what}: the restore job file defines {job.get('ID')!r}, not {restore_id!r}")
    if nomad.job(restore_id) is not None:
        nomad.deregister(restore_id, purge=True)  # an earlier restore's: each restore is a fresh job
    reply = nomad.register(job)
    follow_batch(nomad, restore_id, reply["EvalID"], deadline, what)
    nomad.deregister(restore_id, purge=True)


def _start_again(nomad, job_id, version, deadline, what):
    """Revert the stopped job to ``version`` (what it ran) and follow it until healthy."""
    stopped = nomad.job(job_id) or {}
    try:
        reply = nomad.revert(job_id, version, enforce_prior_version=stopped.get("Version"))
    except hecate_nomad_client.NomadError as exc:
        raise BackupError(f"{what}: job {job_id} could not be started again (revert to version {version}): "
                          f"{exc.text or exc}; start it with nomad.revert {job_id} version={version}") from None
    after = nomad.job(job_id) or {}
    rollout = hecate_nomad_client.Rollout(nomad, job_id, timeout=max(1, deadline - time.monotonic()))
    outcome = rollout.follow(reply.get("EvalID"), after.get("Version"), expect_deployment=True,
                             register_index=reply.get("JobModifyIndex", 0))
    if outcome["status"] != "successful":
        raise BackupError(f"{what}: job {job_id} started again as version {after.get('Version')}, but its "
                          f"deployment is {outcome['status']}: {outcome['description']}")
    return f"started job {job_id} again (version {after.get('Version')}, as version {version}): healthy"


# -- the upgrade's safety net ---------------------------------------------------------------------------
def running_version(job):
    """The Authentik release a registered ``hecate-authentik`` job runs (its server's image tag)."""
    for group in job.get("TaskGroups") or []:
        for task in group.get("Tasks") or []:
            image = str((task.get("Config") or {}).get("image") or "")
            if task.get("Name") == "server" and image:
                return hecate_edge_jobs.image_tag(image)
    return None


def upgrade_check(nomad, pillar):
    """
    ``{"upgrade": bool, "job": id, "from": running release, "to": pillar's release,
    "backup": whether hecate backs up before it, "comment"}``. An Authentik that is not
    deployed (or stopped) is no upgrade.
    """
    ak_id = hecate_edge_jobs.job_id(pillar, "authentik")
    wanted = hecate_edge_jobs.authentik_settings(pillar).get("version")
    job = nomad.job(ak_id)
    out = {"upgrade": False, "job": ak_id, "from": None, "to": wanted,
           "backup": bool(hecate_edge_jobs.backup_settings(pillar)["before_upgrade"])}
    if job is None or job.get("Stop"):
        out["comment"] = f"Authentik (job {ak_id}) is not deployed yet: no upgrade"
        return out
    out["from"] = running_version(job)
    if str(out["from"]) == str(wanted):
        out["comment"] = f"Authentik {wanted} already runs (job {ak_id}): no upgrade"
        return out
    out["upgrade"] = True
    out["comment"] = f"Authentik upgrade {out['from']} -> {wanted} (job {ak_id}): its database is migrated"
    return out


def upgrade_attempted(nomad, pillar, release):
    """Whether a version of Authentik's job with ``release`` was registered (the upgrade reached Nomad)."""
    versions, _ = nomad.versions(hecate_edge_jobs.job_id(pillar, "authentik"))
    return any(str(running_version(v)) == str(release) for v in versions)


def can_back_up(pillar):
    """None, or why the backup job cannot take the database backup an upgrade needs."""
    settings = hecate_edge_jobs.backup_settings(pillar)
    if not settings["enabled"] or "authentik_database" not in settings["targets"]:
        return ("the backup job (hecate:backup:enabled, with authentik_database among hecate:backup:targets) "
                "is not deployed")
    return None
