"""
Waits of the edge's deployment (orch.hecate): Authentik's API answers with hecate's token,
Caddy's admin API answers. They read only and report no changes; under ``test=True`` they
look once and say what a real run would wait for instead of failing (on a bare edge
nothing runs yet).

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

import hecate_edge_jobs
import hecate_loader
import hecate_state

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
