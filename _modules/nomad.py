"""
Nomad execution module: parse, validate, plan, register (with ``EnforceIndex``), job
status and versions, allocations, evaluations, deployments (blocking queries), canary
promotion, revert, stop/purge and variables (check-and-set), over Nomad's HTTP API.

Connection: ``hecate:connections:nomad`` (minion config wins over pillar)::

    hecate:
      connections:
        nomad: {url: https://127.0.0.1:4646, token: sdb://osenv/NOMAD_TOKEN,
                ca_bundle: /etc/nomad.d/ca.pem, namespace: default}

TLS is verified by default; the token is sent in ``X-Nomad-Token`` and never logged.

CLI Example:

.. code-block:: bash

    salt -G 'roles:bionicgpt-node' nomad.parse source=salt://bionicgpt/jobs/database.nomad.hcl.j2
    salt -G 'roles:bionicgpt-node' nomad.plan source=salt://bionicgpt/jobs/database.nomad.hcl.j2
    salt -G 'roles:bionicgpt-node' nomad.job_status bionicgpt-database
    salt -C 'G@roles:bionicgpt-node and G@hecate_env:prod' nomad.job_status bionicgpt-database

Target by the role grain (and, with several environments, the ``hecate_env`` grain:
``salt-call hecate.target bionicgpt-node`` prints the full target, which also requires the
minion to be listed in pillar ``hecate:members``).
"""

import salt.exceptions

import hecate_clients
import hecate_loader
import hecate_nomad_client
import hecate_secrets

__virtualname__ = "nomad"


def __virtual__():
    return hecate_loader.virtual(__virtualname__)


def render(source, context=None, defaults=None, template="jinja", saltenv=None):
    """
    Render a job file from the fileserver (``salt://...``) with ``template`` (Jinja by
    default; pillar, grains and ``salt`` are available, plus ``context``/``defaults``).
    Returns the HCL text.

    CLI Example:

    .. code-block:: bash

        salt -G 'roles:bionicgpt-node' nomad.render salt://bionicgpt/jobs/database.nomad.hcl.j2
    """
    saltenv = saltenv or __opts__.get("saltenv") or "base"
    contents = __salt__["cp.get_file_str"](source, saltenv=saltenv)
    if contents is False or contents is None:
        raise salt.exceptions.CommandExecutionError(f"job file {source} not found in saltenv {saltenv}")
    if not template:
        return contents
    try:
        rendered = __salt__["file.apply_template_on_contents"](
            contents, template, context or {}, defaults or {}, saltenv
        )
    except Exception as exc:  # pylint: disable=broad-except  # template errors come in many types
        raise salt.exceptions.CommandExecutionError(f"rendering {source} failed: {exc}") from None
    if isinstance(rendered, dict):  # salt's renderer reports failures as {'result': False, 'data': ...}
        raise salt.exceptions.CommandExecutionError(
            f"rendering {source} failed: {rendered.get('data') or rendered}"
        )
    return rendered


def _job_from(job=None, hcl=None, source=None, context=None, saltenv=None, namespace=None):
    if isinstance(job, dict):
        return job
    if source:
        hcl = render(source, context=context, saltenv=saltenv)
    if not hcl:
        raise salt.exceptions.SaltInvocationError("give the job as job=<dict>, hcl=<text> or source=salt://...")
    return parse(hcl, namespace=namespace)


def parse(hcl=None, source=None, canonicalize=True, context=None, saltenv=None, namespace=None):
    """
    Parse HCL through Nomad's ``/v1/jobs/parse`` (canonicalized by default) and return
    the job as JSON. A syntax or schema error names the line (``input.hcl:12,5-15``) of
    the rendered text.

    CLI Example:

    .. code-block:: bash

        salt -G 'roles:bionicgpt-node' nomad.parse source=salt://bionicgpt/jobs/llm.nomad.hcl.j2
    """
    if source:
        hcl = render(source, context=context, saltenv=saltenv)
    if not hcl:
        raise salt.exceptions.SaltInvocationError("hcl or source is required")
    client = hecate_clients.nomad(__opts__, __pillar__, __context__, __salt__, namespace=namespace)
    job = client.parse(hcl, canonicalize=canonicalize)
    if canonicalize and namespace:
        job["Namespace"] = namespace
    elif canonicalize and job.get("Namespace") in (None, "default"):
        job["Namespace"] = client.namespace
    return job


def validate(job=None, hcl=None, source=None, namespace=None):
    """
    Validate a job (``/v1/validate/job``). Returns Nomad's answer:
    ``{ValidationErrors, Warnings, Error, DriverConfigValidated}``.

    CLI Example:

    .. code-block:: bash

        salt -G 'roles:bionicgpt-node' nomad.validate source=salt://bionicgpt/jobs/database.nomad.hcl.j2
    """
    job = _job_from(job, hcl, source, namespace=namespace)
    return hecate_clients.nomad(__opts__, __pillar__, __context__, __salt__, namespace=namespace).validate(job)


def plan(job=None, hcl=None, source=None, diff=True, summary=False, namespace=None):
    """
    Plan a job (``/v1/job/:id/plan``): Nomad's diff against the running version, the
    scheduler's annotations (what it would create, update in place or replace) and
    placement failures. ``summary=True`` returns ``{"changes", "lines",
    "JobModifyIndex"}`` instead of the raw plan.

    CLI Example:

    .. code-block:: bash

        salt -G 'roles:bionicgpt-node' nomad.plan source=salt://bionicgpt/jobs/database.nomad.hcl.j2 summary=True
    """
    job = _job_from(job, hcl, source, namespace=namespace)
    result = hecate_clients.nomad(__opts__, __pillar__, __context__, __salt__, namespace=namespace).plan(job, diff=diff)
    if not summary:
        return result
    return {
        "JobModifyIndex": result.get("JobModifyIndex"),
        "changes": hecate_nomad_client.plan_changes(result),
        "lines": hecate_nomad_client.plan_lines(result, job.get("ID")),
    }


def register(job=None, hcl=None, source=None, modify_index=None, enforce_index=True, namespace=None):
    """
    Register a job. With ``enforce_index`` (default) Nomad registers only if the job's
    modify index still equals ``modify_index`` (0: the job must not exist); when no
    ``modify_index`` is given the current one is read first. A conflict raises an error
    and registers nothing.

    CLI Example:

    .. code-block:: bash

        salt -G 'roles:bionicgpt-node' nomad.register \\
            source=salt://bionicgpt/jobs/database.nomad.hcl.j2 modify_index=1234
    """
    job = _job_from(job, hcl, source, namespace=namespace)
    client = hecate_clients.nomad(__opts__, __pillar__, __context__, __salt__, namespace=namespace)
    if enforce_index and modify_index is None:
        current = client.job(job["ID"], namespace=job.get("Namespace"))
        modify_index = (current or {}).get("JobModifyIndex", 0)
    return client.register(job, modify_index=modify_index if enforce_index else None)


def job(job_id, namespace=None):
    """
    The job as Nomad has it (None when it does not exist).

    CLI Example:

    .. code-block:: bash

        salt -G 'roles:bionicgpt-node' nomad.job bionicgpt-database
    """
    return hecate_clients.nomad(__opts__, __pillar__, __context__, __salt__, namespace=namespace).job(job_id)


def job_status(job_id, namespace=None):
    """
    A summary: status, version, stable, stopped, modify index, allocation counts by
    client status and the latest deployment. None when the job does not exist.

    CLI Example:

    .. code-block:: bash

        salt -G 'roles:bionicgpt-node' nomad.job_status bionicgpt-application
    """
    client = hecate_clients.nomad(__opts__, __pillar__, __context__, __salt__, namespace=namespace)
    current = client.job(job_id)
    if current is None:
        return None
    counts = {}
    for alloc in client.allocations(job_id):
        if alloc.get("JobVersion") == current.get("Version") or alloc.get("ClientStatus") in ("pending", "running"):
            counts[alloc["ClientStatus"]] = counts.get(alloc["ClientStatus"], 0) + 1
    deployment, _ = client.job_deployment(job_id)
    return {
        "ID": current["ID"],
        "Status": current.get("Status"),
        "Version": current.get("Version"),
        "Stable": current.get("Stable"),
        "Stop": current.get("Stop"),
        "JobModifyIndex": current.get("JobModifyIndex"),
        "Allocations": counts,
        "Deployment": (
            {k: deployment.get(k) for k in ("ID", "JobVersion", "Status", "StatusDescription")}
            if deployment else None
        ),
    }


def versions(job_id, diffs=False, namespace=None):
    """
    The job's versions (newest first) with their ``Stable`` flags; ``diffs=True`` adds
    Nomad's diff between consecutive versions.

    CLI Example:

    .. code-block:: bash

        salt -G 'roles:bionicgpt-node' nomad.versions bionicgpt-database diffs=True
    """
    client = hecate_clients.nomad(__opts__, __pillar__, __context__, __salt__, namespace=namespace)
    found, found_diffs = client.versions(job_id, diffs=diffs)
    if diffs:
        return {"Versions": found, "Diffs": found_diffs}
    return found


def allocations(job_id, namespace=None):
    """
    The job's allocations (stubs with task states and events).

    CLI Example:

    .. code-block:: bash

        salt -G 'roles:bionicgpt-node' nomad.allocations bionicgpt-database
    """
    return hecate_clients.nomad(__opts__, __pillar__, __context__, __salt__, namespace=namespace).allocations(job_id)


def allocation(alloc_id, namespace=None):
    """
    One allocation in full (None when unknown).

    CLI Example:

    .. code-block:: bash

        salt -G 'roles:bionicgpt-node' nomad.allocation 5d0a2e51-...
    """
    return hecate_clients.nomad(__opts__, __pillar__, __context__, __salt__, namespace=namespace).allocation(alloc_id)


def evaluation(eval_id, index=None, wait=None, namespace=None):
    """
    One evaluation; with ``index`` it is a blocking query that returns once the
    evaluations changed past that index or after ``wait`` seconds.

    CLI Example:

    .. code-block:: bash

        salt -G 'roles:bionicgpt-node' nomad.evaluation 2f2b1e0a-...
    """
    client = hecate_clients.nomad(__opts__, __pillar__, __context__, __salt__, namespace=namespace)
    found, idx = client.evaluation(eval_id, index=index, wait=wait)
    return {"Index": idx, "Evaluation": found} if index else found


def deployment(job_id=None, deployment_id=None, index=None, wait=None, namespace=None):
    """
    The latest deployment of ``job_id`` (or the deployment ``deployment_id``). With
    ``index`` it is a blocking query (``X-Nomad-Index``); the answer then is
    ``{"Index": n, "Deployment": {...}}``.

    CLI Example:

    .. code-block:: bash

        salt -G 'roles:bionicgpt-node' nomad.deployment job_id=bionicgpt-database
        salt -G 'roles:bionicgpt-node' nomad.deployment deployment_id=8f1c... index=120 wait=30
    """
    client = hecate_clients.nomad(__opts__, __pillar__, __context__, __salt__, namespace=namespace)
    if deployment_id:
        found, idx = client.deployment(deployment_id, index=index, wait=wait)
    elif job_id:
        found, idx = client.job_deployment(job_id, index=index, wait=wait)
    else:
        raise salt.exceptions.SaltInvocationError("job_id or deployment_id is required")
    return {"Index": idx, "Deployment": found} if index else found


def follow(job_id, eval_id=None, version=None, timeout=600, promote=False, namespace=None):
    """
    Follow an evaluation and the deployment of ``version`` (default: the job's current
    version) until successful, failed, cancelled or ``timeout`` seconds; failing
    allocations are reported with their task events. ``promote=True`` promotes canaries
    that wait for a manual promotion once every one of them is healthy.

    CLI Example:

    .. code-block:: bash

        salt -G 'roles:bionicgpt-node' nomad.follow bionicgpt-database eval_id=2f2b1e0a-... timeout=300
    """
    client = hecate_clients.nomad(__opts__, __pillar__, __context__, __salt__, namespace=namespace)
    if version is None:
        current = client.job(job_id)
        if current is None:
            raise salt.exceptions.CommandExecutionError(f"Nomad job {job_id} does not exist")
        version = current["Version"]
    rollout = hecate_nomad_client.Rollout(client, job_id, timeout=float(timeout), promote=bool(promote))
    return rollout.follow(eval_id, int(version), expect_deployment=True)


def promote(job_id=None, deployment_id=None, groups=None, namespace=None):
    """
    Promote the canaries of a deployment (``deployment_id``, or the latest deployment of
    ``job_id``): all groups, or the ``groups`` listed. Nomad then replaces the old
    allocations. It refuses canaries that are not all healthy yet, and a deployment that
    has ended; a deployment without canaries waiting has nothing to promote.

    CLI Example:

    .. code-block:: bash

        salt -G 'roles:hecate-edge' nomad.promote job_id=hecate-authentik
        salt -G 'roles:hecate-edge' nomad.promote deployment_id=8f1c... groups='[server]'
    """
    client = hecate_clients.nomad(__opts__, __pillar__, __context__, __salt__, namespace=namespace)
    if not deployment_id:
        if not job_id:
            raise salt.exceptions.SaltInvocationError("job_id or deployment_id is required")
        dep, _ = client.job_deployment(job_id)
        if not dep:
            raise salt.exceptions.CommandExecutionError(f"Nomad job {job_id} has no deployment")
        if not hecate_nomad_client.awaiting_promotion(dep):
            raise salt.exceptions.CommandExecutionError(
                f"deployment {dep['ID'][:8]} of job {job_id} (version {dep.get('JobVersion')}, {dep.get('Status')}) "
                "has no canaries waiting for a promotion")
        deployment_id = dep["ID"]
    if isinstance(groups, str):
        groups = [g.strip() for g in groups.split(",") if g.strip()]
    return client.promote(deployment_id, groups=groups or None)


def revert(job_id, version=None, enforce_prior_version=None, namespace=None):
    """
    Revert the job to ``version`` (default: the newest stable version older than the
    current one). ``enforce_prior_version`` makes Nomad refuse if the current version
    changed meanwhile.

    CLI Example:

    .. code-block:: bash

        salt -G 'roles:bionicgpt-node' nomad.revert bionicgpt-database
        salt -G 'roles:bionicgpt-node' nomad.revert bionicgpt-database version=3 enforce_prior_version=5
    """
    client = hecate_clients.nomad(__opts__, __pillar__, __context__, __salt__, namespace=namespace)
    if version is None:
        current = client.job(job_id)
        if current is None:
            raise salt.exceptions.CommandExecutionError(f"Nomad job {job_id} does not exist")
        found, _ = client.versions(job_id)
        stable = hecate_nomad_client.last_stable_version(found, below=current["Version"])
        if stable is None:
            raise salt.exceptions.CommandExecutionError(
                f"Nomad job {job_id} has no stable version older than {current['Version']}"
            )
        version = stable["Version"]
        if enforce_prior_version is None:
            enforce_prior_version = current["Version"]
    return client.revert(job_id, version, enforce_prior_version=enforce_prior_version)


def stop(job_id, purge=False, namespace=None):
    """
    Stop (deregister) a job; ``purge=True`` also removes it and its history.

    CLI Example:

    .. code-block:: bash

        salt -G 'roles:bionicgpt-node' nomad.stop bionicgpt-llm purge=True
    """
    client = hecate_clients.nomad(__opts__, __pillar__, __context__, __salt__, namespace=namespace)
    return client.deregister(job_id, purge=purge)


def var_get(path, namespace=None):
    """
    A Nomad variable with its items (None when absent). Items can be secrets: this
    returns them to the caller as stored.

    CLI Example:

    .. code-block:: bash

        salt -G 'roles:bionicgpt-node' nomad.var_get nomad/jobs/bionicgpt-application
    """
    return hecate_clients.nomad(__opts__, __pillar__, __context__, __salt__, namespace=namespace).var_get(path)


def var_list(prefix="", namespace=None):
    """
    Variables' metadata (no items) under ``prefix``.

    CLI Example:

    .. code-block:: bash

        salt -G 'roles:bionicgpt-node' nomad.var_list nomad/jobs
    """
    return hecate_clients.nomad(__opts__, __pillar__, __context__, __salt__, namespace=namespace).var_list(prefix)


def var_put(path, items, cas=None, namespace=None):
    """
    Write a variable (all its items). ``cas`` is the modify index it must still have
    (0: it must not exist). Values may be Vault references, resolved here. Returns the
    variable's metadata (no items).

    CLI Example:

    .. code-block:: bash

        salt -G 'roles:bionicgpt-node' nomad.var_put nomad/jobs/x '{"region": "eu"}' cas=0
    """
    resolve = hecate_clients.resolver(__opts__, __pillar__, __context__, __salt__)
    resolved = hecate_nomad_client.resolve_items(items, resolve, where="items")
    body = {k: (v.reveal() if isinstance(v, hecate_secrets.Secret) else v) for k, v in resolved.items()}
    client = hecate_clients.nomad(__opts__, __pillar__, __context__, __salt__, namespace=namespace)
    written = client.var_put(path, body, cas=cas)
    return {k: v for k, v in (written or {}).items() if k != "Items"}


def var_delete(path, cas=None, namespace=None):
    """
    Delete a variable (``cas``: the modify index it must still have).

    CLI Example:

    .. code-block:: bash

        salt -G 'roles:bionicgpt-node' nomad.var_delete nomad/jobs/x cas=42
    """
    client = hecate_clients.nomad(__opts__, __pillar__, __context__, __salt__, namespace=namespace)
    return client.var_delete(path, cas=cas)
