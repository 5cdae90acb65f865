"""
Waits of the edge's deployment (orch.hecate): Authentik's API answers with hecate's token,
Caddy's admin API answers. They read only and report no changes; under ``test=True`` they
look once and say what a real run would wait for instead of failing (on a bare edge
nothing runs yet).

The safety net of an Authentik upgrade (docs/backups.md): ``backed_up_before_upgrade`` runs
the backup job before a deploy that changes Authentik's release, ``restored_after_failed_upgrade``
(``onfail`` of the job) restores that backup once the failed deployment is reverted.

``pending`` is the preview of an object that can only be planned once its system runs:
the orchestration renders it, under ``test=True`` on an edge whose Authentik is not up
yet, for each Authentik object instead of failing the preview.

.. code-block:: yaml

    authentik answers with hecate's token:
      hecate_edge.authentik_api:
        - timeout: 300

    caddy admin api answers:
      hecate_edge.caddy_admin:
        - timeout: 120
"""

import time

import salt.exceptions

import hecate_backups
import hecate_clients
import hecate_edge_jobs
import hecate_loader
import hecate_state

# what backed_up_before_upgrade tells restored_after_failed_upgrade, in the same state run
# (the states of one run share __context__)
BEFORE_UPGRADE = "hecate_edge.backup_before_upgrade"

__virtualname__ = "hecate_edge"


def __virtual__():
    return hecate_loader.virtual(__virtualname__, salt_funcs=__salt__,
                                 functions=("hecate_edge.authentik_status", "hecate_edge.caddy_status"))


def _wait(check, timeout, interval):
    deadline = time.monotonic() + float(timeout)
    while True:
        out = check()
        if out[0] or time.monotonic() >= deadline:
            return out
        time.sleep(float(interval))


@hecate_state.guard
def authentik_api(name, timeout=300, interval=2):
    """
    Wait until Authentik is ready (``/-/health/ready/``: its database answers) and accepts
    hecate's API token (the bootstrap token of its first start), up to ``timeout`` seconds.
    A token Authentik refuses fails at once, with what to do about it (waiting would not
    change it).

    .. code-block:: yaml

        authentik answers with hecate's token:
          hecate_edge.authentik_api:
            - timeout: 300
            - interval: 2
    """
    ret = hecate_state.new(name)
    check_fn = __salt__["hecate_edge.authentik_status"]

    def check():
        status = check_fn()
        if status["token"] is False:
            raise salt.exceptions.CommandExecutionError(status["comment"])
        return status["ready"] and status["token"] is True, status["comment"]

    return _answers(ret, check, timeout, interval, "Authentik does not answer yet",
                    "its job is deployed by the step before")


@hecate_state.guard
def caddy_admin(name, timeout=120, interval=1):
    """
    Wait until Caddy's admin API answers (``hecate:connections:caddy:admin_url``), up to
    ``timeout`` seconds.

    .. code-block:: yaml

        caddy admin api answers:
          hecate_edge.caddy_admin:
            - timeout: 120
            - interval: 1
    """
    ret = hecate_state.new(name)
    check_fn = __salt__["hecate_edge.caddy_status"]

    def check():
        status = check_fn()
        return status["answers"], status["comment"]

    return _answers(ret, check, timeout, interval, "Caddy's admin API does not answer yet",
                    "its job is deployed by this run")


def _answers(ret, check, timeout, interval, not_yet, why):
    """
    Shared end of the waits: with test=True one look (not answering yet is a preview, result
    None, since the job that starts it is deployed before); otherwise wait up to ``timeout``.
    """
    if __opts__.get("test"):
        try:
            ok, comment = check()
        except salt.exceptions.CommandExecutionError as exc:
            ok, comment = False, str(exc)
        if not ok:
            ret.update(result=None, comment=(
                f"{not_yet} ({comment}); a real run waits up to {timeout}s for it ({why})"))
            return ret
        ret["comment"] = comment
        return ret
    ok, comment = _wait(check, timeout, interval)
    ret["comment"] = comment if ok else f"{comment} (waited {timeout}s)"
    ret["result"] = ok
    return ret


@hecate_state.guard
def backed_up_before_upgrade(name, timeout=600):
    """
    Before a deploy that changes Authentik's release (``hecate:authentik:version`` against the
    running ``hecate-authentik`` job: an upgrade migrates its database), run the backup job now
    (``hecate_edge.backup``, Nomad's periodic force) and wait for its record of
    ``authentik_database``; the upgrade goes ahead only once the database is backed up. No
    upgrade (or ``hecate:backup:before_upgrade: false``): nothing to do. ``test=True``: the
    backup it would take, nothing run.

    .. code-block:: yaml

        hecate edge authentik database backed up before an upgrade:
          hecate_edge.backed_up_before_upgrade:
            - timeout: 600
    """
    ret = hecate_state.new(name)
    nomad = hecate_clients.nomad(__opts__, __pillar__, __context__, __salt__)
    check = hecate_backups.upgrade_check(nomad, __pillar__)
    if not check["upgrade"]:
        ret["comment"] = f"{check['comment']}: nothing to back up first"
        return ret
    if not check["backup"]:
        ret["comment"] = f"{check['comment']}; not backed up first (hecate:backup:before_upgrade is off)"
        return ret
    problem = hecate_backups.can_back_up(__pillar__)
    if problem:
        ret.update(result=False, comment=(
            f"{check['comment']}: hecate backs its database up first, but {problem}; enable it, or set "
            "hecate:backup:before_upgrade: false to upgrade without a backup"))
        return ret
    what = f"backup of authentik_database before the upgrade of Authentik from {check['from']} to {check['to']}"
    if __opts__.get("test"):
        ret.update(result=None, changes={"backup before upgrade": {"old": None, "new": what}},
                   comment=f"would run job {hecate_edge_jobs.job_id(__pillar__, 'backup')} now: {what}")
        return ret
    out = __salt__["hecate_edge.backup"](target="authentik_database", timeout=timeout)
    record = out["record"]
    __context__[BEFORE_UPGRADE] = {"id": record["id"], "env": out["env"], "from": check["from"],
                                   "to": check["to"], "job": check["job"]}
    ret["changes"] = {"backup before upgrade": {"old": None, "new": record["id"]}}
    ret["comment"] = (f"{what}: backup {record['id']} ({record['file']} on node {record['node']}, "
                      f"{record['size']} bytes, sha256 {record['sha256']})")
    return ret


@hecate_state.guard
def restored_after_failed_upgrade(name, timeout=900):
    """
    After a failed deploy of an Authentik upgrade (``onfail`` of its ``nomad_job.running``):
    once the job is back on the release it ran (Nomad's auto-revert, or hecate's revert),
    restore the database from the backup ``backed_up_before_upgrade`` took in this run -
    Authentik stopped, ``pg_restore --clean``, started again. When it cannot, it fails with the
    exact ``salt-run hecate.restore ...`` to run. Nothing to do when this run took no such
    backup or the upgrade never reached Nomad.

    .. code-block:: yaml

        hecate edge authentik database restored after a failed upgrade:
          hecate_edge.restored_after_failed_upgrade:
            - onfail:
              - nomad_job: hecate edge job authentik
    """
    ret = hecate_state.new(name)
    mark = __context__.get(BEFORE_UPGRADE)
    if not mark:
        ret["comment"] = "this run took no backup before an Authentik upgrade: nothing to restore"
        return ret
    upgrade = f"Authentik's upgrade from {mark['from']} to {mark['to']} failed"
    command = hecate_backups.restore_command(mark["env"], "authentik_database", mark["id"])
    nomad = hecate_clients.nomad(__opts__, __pillar__, __context__, __salt__)
    if not hecate_backups.upgrade_attempted(nomad, __pillar__, mark["to"]):
        ret["comment"] = (f"{upgrade} before job {mark['job']} was registered: its database was not touched "
                          f"(backup {mark['id']} is there if needed: {command})")
        return ret
    check = hecate_backups.upgrade_check(nomad, __pillar__)
    if check["from"] != mark["from"]:
        ret.update(result=False, comment=(
            f"{upgrade} and job {mark['job']} runs {check['from'] or 'nothing'}, not {mark['from']}: its database "
            f"was not restored. Revert the job to its last stable version (salt -G roles:hecate-edge "
            f"nomad.revert {mark['job']}), then restore the database backed up before the upgrade: {command}"))
        return ret
    if __opts__.get("test"):
        ret.update(result=None, changes={"restored": {"old": None, "new": mark["id"]}},
                   comment=f"{upgrade}: would restore its database from backup {mark['id']}")
        return ret
    try:
        out = __salt__["hecate_edge.restore"](target="authentik_database", backup=mark["id"], stop_authentik=True,
                                              timeout=timeout)
    except salt.exceptions.CommandExecutionError as exc:
        ret.update(result=False, comment=(
            f"{upgrade}, and restoring its database from backup {mark['id']} (taken before the upgrade) failed "
            f"too: {exc}\nRestore it with: {command}"))
        return ret
    ret["changes"] = {"restored": {"old": None, "new": mark["id"]}}
    ret["comment"] = (f"{upgrade} (job {mark['job']} is back on {mark['from']}); its database was restored from "
                      f"backup {mark['id']}, taken before the upgrade: " + "; ".join(out["steps"]))
    return ret


def pending(name, kind, system="Authentik", **kwargs):  # pylint: disable=unused-argument
    """
    The preview of ``kind`` ``name`` in a system that is not up yet (test=True on a bare
    edge): result None, and the object as to be created once the system is up. Outside
    ``test=True`` it fails: a real run applies the object's own state instead.

    .. code-block:: yaml

        authentik sso application grafana:
          hecate_edge.pending:
            - name: grafana
            - kind: SSO application
            - system: Authentik
    """
    ret = hecate_state.new(name)
    if not __opts__.get("test"):
        ret.update(result=False, comment=f"{kind} {name}: hecate_edge.pending is only a preview")
        return ret
    ret.update(result=None, changes={kind: {"old": None, "new": name}},
               comment=f"{system} {kind} '{name}' will be created once {system} is up "
                       f"(its job is deployed by this run; {system} does not answer yet)")
    return ret


def secrets_fixed(name, rotate=()):
    """
    Fail when this run asks to rotate a secret that its consumer reads only once (Authentik's
    bootstrap token and password, its secret key, its database password): a new value in
    Vault would not reach Authentik or PostgreSQL, it would only break hecate's access.

    .. code-block:: yaml

        hecate edge secrets are never rotated:
          hecate_edge.secrets_fixed:
            - rotate: []        # the run's pillar 'rotate' list (hecate/edge/secrets.sls)
    """
    ret = hecate_state.new(name, "no run-once secret is asked to rotate")
    fixed = sorted(set(rotate or ()) & set(hecate_edge_jobs.GENERATED))
    if fixed:
        ret.update(result=False, comment=(
            f"{', '.join(fixed)}: read only once by their consumer (Authentik's first start, PostgreSQL's "
            "initdb); rotating the value in Vault would not change it there. Change it in Authentik or "
            "PostgreSQL first, then store the new value in Vault by hand."))
    return ret
