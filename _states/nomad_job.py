"""
Nomad jobs from job-file templates: plan, register with the plan's modify index, follow
the deployment of the new version, revert on failure.

.. code-block:: yaml

    bionicgpt-database:
      nomad_job.running:
        - source: salt://bionicgpt/jobs/database.nomad.hcl.j2
        - context: {settings: database}
        - timeout: 900
        - revert_on_failure: true

    old-job:
      nomad_job.absent:
        - purge: true

    bionicgpt-database back to stable:     # e.g. an orchestration onfail step
      nomad_job.reverted:
        - name: bionicgpt-database

How ``running`` works:

1. render the template (Jinja; pillar, grains, ``context``), parse it through Nomad's
   ``/v1/jobs/parse`` (an HCL error names the line of the rendered file), validate;
2. plan with diff. No diff: nothing is written (result True; False if the current
   version's deployment failed, so a failure is not hidden). ``test=True``: result None
   and a readable summary of Nomad's diff and the scheduler's placements;
3. register with ``EnforceIndex`` = the plan's ``JobModifyIndex``: if someone changed
   the job in between, Nomad refuses and nothing is registered (no lost update);
4. follow the evaluation, then the deployment of *this* version (an unchanged spec makes
   no deployment; it is not waited for) until successful, failed or ``timeout``. Canaries
   (``update.canary``) run beside the old allocations until promoted: with
   ``auto_promote`` Nomad promotes them once all are healthy; without it (blue-green:
   as many canaries as the count) the state promotes them at that moment (``promote``),
   then follows the replacement of the old allocations to the end;
5. on failure report the failing allocations with their task events. If the job's
   update block has ``auto_revert``, Nomad rolls back by itself and the state follows
   the rollback; otherwise, with ``revert_on_failure: true``, the state reverts to the
   newest stable version (``EnforcePriorVersion`` = the failed version).
"""

import json
import logging
import os

import salt.exceptions

import hecate_clients
import hecate_files
import hecate_loader
import hecate_nomad_client
import hecate_state

log = logging.getLogger(__name__)

__virtualname__ = "nomad_job"
FAILED = ("failed", "placement-failed", "eval-failed", "cancelled")


def __virtual__():
    return hecate_loader.virtual(__virtualname__, salt_funcs=__salt__, functions=("nomad.parse",))


def _run_id():
    """The orchestration run applying this state (pillar ``hecate_run:id``), if any."""
    return str((__pillar__.get("hecate_run") or {}).get("id") or "") or None


def _marks_path(run_id):
    safe = "".join(c for c in run_id if c.isalnum() or c in "-_.T")
    return os.path.join(__opts__["cachedir"], "hecate", "nomad-runs", f"{safe}.json")


def _marks(run_id):
    """``{job: version before the run (None: the run created it)}`` for ``run_id``."""
    try:
        with open(_marks_path(run_id), encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return {}


def _mark_before(name, before):
    """
    Remember, for the orchestration run in progress, which version ``name`` had before the
    run registered a new one (the first registration of the run wins), so a failure in a
    later step can put the job back where the run found it (``reverted`` with ``run_id``).
    """
    run_id = _run_id()
    if not run_id:
        return
    marks = _marks(run_id)
    if name in marks:
        return
    marks[name] = before["Version"] if before else None
    path = _marks_path(run_id)
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    hecate_files.write_atomic(path, json.dumps(marks), mode=0o600)
    runs = sorted(f for f in os.listdir(os.path.dirname(path)) if f.endswith(".json"))
    for old in runs[:-50]:  # keep the last 50 runs' marks
        os.unlink(os.path.join(os.path.dirname(path), old))


def _stop_created(ret, client, name, job, run_id):
    """The run created the job: leaving things as they were means stopping it."""
    if job is None or job.get("Stop"):
        ret["comment"] = f"job {name} (created by run {run_id}) is not running"
        return ret
    ret["changes"] = {"stopped": {"old": False, "new": True}}
    if __opts__.get("test"):
        ret.update(result=None, comment=f"job {name} was created by run {run_id} and would be stopped")
        return ret
    client.deregister(name, purge=False, namespace=job.get("Namespace"))
    ret["comment"] = f"job {name} was created by run {run_id}: stopped"
    return ret


def _latest_deployment_failed(client, job):
    dep, _ = client.job_deployment(job["ID"])
    if dep and dep.get("JobVersion") == job.get("Version") and dep.get("Status") == "failed":
        return dep
    return None


@hecate_state.guard
def running(
    name,
    source=None,
    hcl=None,
    context=None,
    defaults=None,
    template="jinja",
    saltenv=None,
    namespace=None,
    region=None,
    timeout=600,
    wait=True,
    revert_on_failure=False,
    policy_override=False,
    promote=True,
):
    """
    Ensure the Nomad job ``name`` runs the spec rendered from ``source`` (or given as
    ``hcl``), and that its deployment succeeded.

    name
        The job ID; the job file must define ``job "<name>"``.
    source
        ``salt://`` path of the job file (rendered with ``template``, default Jinja,
        with pillar, grains, ``context`` and ``defaults``).
    hcl
        The job file text, instead of ``source``.
    namespace, region
        Override ``hecate:connections:nomad`` for this job.
    timeout
        Seconds to follow the evaluation and deployment (and a revert) before failing.
    wait
        False: register and return without following the deployment.
    revert_on_failure
        Revert to the newest stable version when the deployment fails and the job's
        update block does not ask Nomad to ``auto_revert`` by itself.
    promote
        Promote canaries that wait for a manual promotion (``canary`` without
        ``auto_promote``) once every one of them is healthy (default True). False: the
        state follows the deployment until ``timeout`` and leaves the promotion to you
        (``nomad.promote``).

    .. code-block:: yaml

        bionicgpt-database:
          nomad_job.running:
            - source: salt://bionicgpt/jobs/database.nomad.hcl.j2
            - context:
                job_id: bionicgpt-database
            - revert_on_failure: True
    """
    ret = hecate_state.new(name)
    if not source and not hcl:
        ret.update(result=False, comment="source (salt://...) or hcl is required")
        return ret
    where = source or "the given hcl"
    if source:
        hcl = __salt__["nomad.render"](source, context=context, defaults=defaults,
                                       template=template, saltenv=saltenv)
    client = hecate_clients.nomad(__opts__, __pillar__, __context__, __salt__, namespace=namespace, region=region)
    try:
        job = client.parse(hcl, canonicalize=True)
    except hecate_nomad_client.NomadError as exc:
        detail = exc.text or str(exc)
        ret.update(result=False, comment=f"Nomad rejected the job file {where} (line numbers refer to the "
                                         f"rendered file): {detail}")
        return ret
    if job.get("ID") != name:
        ret.update(result=False, comment=f"{where} defines job {job.get('ID')!r}, but the state is named {name!r}")
        return ret
    if job.get("Namespace") in (None, "default"):
        job["Namespace"] = client.namespace
    checked = client.validate(job)
    if checked.get("ValidationErrors"):
        ret.update(result=False, comment=f"Nomad job {name} from {where} is invalid:\n  "
                                         + "\n  ".join(checked["ValidationErrors"]))
        return ret
    before = client.job(name)
    plan = client.plan(job, diff=True, policy_override=policy_override)
    if plan.get("Warnings"):
        # e.g. memory_max ignored while the cluster's memory oversubscription is off:
        # the job runs, but not as written
        ret["warnings"] = [f"Nomad: {plan['Warnings']}"]
    changes = hecate_nomad_client.plan_changes(plan)
    lines = hecate_nomad_client.plan_lines(plan, name)
    if plan.get("FailedTGAllocs"):
        failures = hecate_nomad_client.placement_failures(plan["FailedTGAllocs"])
        ret.update(result=False, comment=f"Nomad cannot place job {name}; nothing registered:\n  "
                                         + "\n  ".join(failures))
        return ret
    if changes["diff"] == "None":
        failed = _latest_deployment_failed(client, before) if before else None
        if failed:
            ret.update(result=False, comment=(
                f"job {name} version {before['Version']} matches {where}, but its deployment "
                f"{failed['ID'][:8]} failed: {failed.get('StatusDescription')}. Fix the job file or "
                f"revert (nomad_job.reverted / nomad.revert)."))
            return ret
        ret["comment"] = f"job {name} is up to date (version {before['Version']})" if before else \
            f"job {name} is up to date"
        return ret
    new_version = before["Version"] + 1 if before else 0
    changes["version"] = {"old": before["Version"] if before else None, "new": new_version}
    if before:
        # how the running allocations will be replaced (the update blocks of the new spec)
        lines.extend(hecate_nomad_client.strategy_lines(job))
    if __opts__.get("test"):
        ret.update(result=None, changes=changes, comment=(
            f"job {name} would be {'updated to version ' + str(new_version) if before else 'created'}:\n"
            + "\n".join(lines)))
        return ret

    try:
        reply = client.register(job, modify_index=plan.get("JobModifyIndex", 0), policy_override=policy_override)
    except hecate_nomad_client.EnforceIndexConflict as exc:
        ret.update(result=False, comment=(
            f"job {name} changed in Nomad after it was planned (planned at job modify index "
            f"{plan.get('JobModifyIndex', 0)}): {exc.text}. Nothing was registered; re-run to plan "
            f"against the current version."))
        return ret
    _mark_before(name, before)
    after = client.job(name) or {}
    version = after.get("Version", new_version)
    changes["version"] = {"old": before["Version"] if before else None, "new": version}
    ret["changes"] = changes
    summary = "\n".join(lines)
    if not wait:
        ret["comment"] = f"job {name} registered as version {version} (not following the deployment)\n{summary}"
        return ret

    rollout = hecate_nomad_client.Rollout(client, name, namespace=job.get("Namespace"), timeout=float(timeout),
                                          promote=bool(promote))
    expect = (before is None or version != before.get("Version")) and job.get("Type") == "service"
    try:
        outcome = rollout.follow(reply.get("EvalID"), version, expect_deployment=expect,
                                 register_index=reply.get("JobModifyIndex", 0))
    except salt.exceptions.CommandExecutionError as exc:
        # registered, but Nomad stopped answering while we followed the rollout: report the
        # registration (an onfail revert needs to know) and why its outcome is unknown
        changes["deployment"] = {"id": None, "status": "unknown"}
        ret.update(result=False, changes=changes, comment=(
            f"job {name} was registered as version {version}, but following its deployment failed: {exc}. "
            f"Its outcome is unknown; check with nomad.job_status {name} and revert with "
            f"nomad_job.reverted if needed\n{summary}"))
        return ret
    changes["deployment"] = {"id": (outcome.get("deployment") or "")[:8] or None, "status": outcome["status"]}
    promoted = _promotion_line(outcome)
    if outcome.get("promotion") or outcome.get("canaries"):
        changes["deployment"]["promoted_by"] = _promoted_by(outcome)
    if outcome["status"] in ("successful", "no-deployment"):
        ret["comment"] = (f"job {name} version {version}: deployment {outcome['status']}"
                          + (f" ({outcome['description']})" if outcome["status"] == "no-deployment" else "")
                          + (f"; {promoted}" if promoted else "") + f"\n{summary}")
        return ret

    ret["result"] = False
    comment = [f"job {name} version {version}: deployment {outcome['status']}: {outcome['description']}"]
    if promoted:
        comment.append(promoted)
    comment.extend(hecate_nomad_client.describe_failures(outcome.get("failures") or []))
    if outcome.get("auto_revert_version") is not None:
        rolled = rollout.follow_auto_revert(version)
        changes["revert"] = {"to_version": outcome["auto_revert_version"], "by": "nomad auto_revert",
                             "new_version": rolled.get("version"), "status": rolled.get("status")}
        comment.append(f"Nomad auto-reverted to version {outcome['auto_revert_version']} "
                       f"(now version {rolled.get('version')}): deployment {rolled.get('status')}")
    elif revert_on_failure and outcome["status"] in FAILED:
        comment.append(_revert(client, rollout, name, version, changes))
    elif outcome["status"] == "timeout":
        comment.append(f"not reverted: the deployment is still running (Nomad's progress_deadline will end it); "
                       f"revert with nomad_job.reverted or nomad.revert {name}")
    ret["comment"] = "\n".join(comment)
    return ret


def _promoted_by(outcome):
    """Who promoted the canaries of a followed deployment: hecate, Nomad (auto_promote) or nobody."""
    promotion = outcome.get("promotion")
    if promotion is not None:
        return "hecate" if promotion.get("ok") else None
    canaries = outcome.get("canaries") or {}
    if canaries and all(c["promoted"] for c in canaries.values()):
        return "nomad auto_promote" if all(c["auto_promote"] for c in canaries.values()) else "someone else"
    return None


def _promotion_line(outcome):
    """A line about the canaries of the followed deployment (none without canaries)."""
    canaries = outcome.get("canaries") or {}
    promotion = outcome.get("promotion")
    if promotion is not None and not promotion.get("ok"):
        return f"hecate could not promote the canaries: {promotion.get('error')}"
    if not canaries:
        return ""
    counts = ", ".join(f"group {g}: {c['placed']}/{c['desired']}" for g, c in canaries.items())
    by = _promoted_by(outcome)
    if by is None:
        return f"canaries ({counts}) not promoted"
    return f"canaries ({counts}) healthy, promoted by {by}"


def _revert(client, rollout, name, failed_version, changes):
    found, _ = client.versions(name)
    stable = hecate_nomad_client.last_stable_version(found, below=failed_version)
    if stable is None:
        changes["revert"] = {"to_version": None, "status": "no stable version"}
        return f"not reverted: job {name} has no stable version older than {failed_version}"
    try:
        reply = client.revert(name, stable["Version"], enforce_prior_version=failed_version)
    except hecate_nomad_client.NomadError as exc:
        changes["revert"] = {"to_version": stable["Version"], "status": "error"}
        return f"revert of job {name} to version {stable['Version']} failed: {exc.text or exc}"
    after = client.job(name) or {}
    outcome = rollout.follow(reply.get("EvalID"), after.get("Version"), expect_deployment=True,
                             register_index=reply.get("JobModifyIndex", 0))
    changes["revert"] = {"to_version": stable["Version"], "by": "hecate", "new_version": after.get("Version"),
                         "status": outcome["status"]}
    return (f"reverted job {name} to stable version {stable['Version']} (now version {after.get('Version')}): "
            f"deployment {outcome['status']}")


@hecate_state.guard
def absent(name, purge=False, namespace=None, region=None):
    """
    Ensure the job is stopped (and with ``purge: true`` removed with its history).

    .. code-block:: yaml

        bionicgpt-old:
          nomad_job.absent:
            - purge: True
    """
    ret = hecate_state.new(name)
    client = hecate_clients.nomad(__opts__, __pillar__, __context__, __salt__, namespace=namespace, region=region)
    job = client.job(name)
    if job is None:
        ret["comment"] = f"job {name} is absent"
        return ret
    if job.get("Stop") and not purge:
        ret["comment"] = f"job {name} is stopped"
        return ret
    changes = {"stopped": {"old": bool(job.get("Stop")), "new": True}}
    if purge:
        changes["purged"] = {"old": False, "new": True}
    if __opts__.get("test"):
        ret.update(result=None, changes=changes,
                   comment=f"job {name} would be {'purged' if purge else 'stopped'}")
        return ret
    reply = client.deregister(name, purge=purge)
    ret.update(changes=changes, comment=f"job {name} {'purged' if purge else 'stopped'} "
                                        f"(evaluation {str(reply.get('EvalID'))[:8]})")
    return ret


@hecate_state.guard
def reverted(name, version=None, namespace=None, region=None, timeout=600, run_id=None):
    """
    Put the job back on a version that worked: ``version``, or by default the newest
    stable version, unless the current version is stable already. For orchestration
    ``onfail`` steps. A job that does not exist, or whose current version is stable,
    needs nothing.

    run_id
        Put the job back where the orchestration run ``run_id`` found it: the version it
        had before that run registered a new one (a job the run created is stopped). A job
        the run did not register needs nothing.

    .. code-block:: yaml

        bionicgpt-database:
          nomad_job.reverted:
            - run_id: 20261123T120000Z-a1b2c3
    """
    ret = hecate_state.new(name)
    client = hecate_clients.nomad(__opts__, __pillar__, __context__, __salt__, namespace=namespace, region=region)
    job = client.job(name)
    if run_id:
        marks = _marks(str(run_id))
        if name not in marks:
            ret["comment"] = f"job {name} was not changed by run {run_id}; nothing to revert"
            return ret
        if marks[name] is None:
            return _stop_created(ret, client, name, job, run_id)
        version = marks[name]
    if job is None:
        ret["comment"] = f"job {name} does not exist; nothing to revert"
        return ret
    current = job["Version"]
    found, _ = client.versions(name)
    if version is None:
        if job.get("Stable"):
            ret["comment"] = f"job {name} runs stable version {current}"
            return ret
        target = hecate_nomad_client.last_stable_version(found, below=current)
        if target is None:
            ret.update(result=False, comment=f"job {name} version {current} is not stable and there is no "
                                             f"stable version to revert to")
            return ret
    else:
        target = next((v for v in found if v.get("Version") == int(version)), None)
        if target is None:
            ret.update(result=False, comment=f"job {name} has no version {version}")
            return ret
        if int(version) == current:
            ret["comment"] = f"job {name} is on version {current}"
            return ret
    changes = {"version": {"old": current, "new": f"{current + 1} (copy of version {target['Version']})"}}
    if __opts__.get("test"):
        ret.update(result=None, changes=changes,
                   comment=f"job {name} would be reverted from version {current} to version {target['Version']}")
        return ret
    try:
        reply = client.revert(name, target["Version"], enforce_prior_version=current)
    except hecate_nomad_client.NomadError as exc:
        ret.update(result=False, comment=f"revert of job {name} to version {target['Version']} failed: "
                                         f"{exc.text or exc}")
        return ret
    after = client.job(name) or {}
    rollout = hecate_nomad_client.Rollout(client, name, namespace=job.get("Namespace"), timeout=float(timeout))
    outcome = rollout.follow(reply.get("EvalID"), after.get("Version"), expect_deployment=True,
                             register_index=reply.get("JobModifyIndex", 0))
    changes["version"]["new"] = after.get("Version")
    changes["deployment"] = {"status": outcome["status"]}
    ret["changes"] = changes
    ok = outcome["status"] in ("successful", "no-deployment")
    ret["result"] = ok
    ret["comment"] = (f"job {name} reverted to version {target['Version']} (now version {after.get('Version')}): "
                      f"deployment {outcome['status']} {outcome.get('description', '')}".rstrip())
    if not ok:
        ret["comment"] += "\n" + "\n".join(hecate_nomad_client.describe_failures(outcome.get("failures") or []))
    return ret
