"""
Status of the edge's own Nomad jobs, for ``salt-run hecate.status`` (docs/upgrades.md): per
job the version it runs (the images' tags and Nomad's job version), its latest deployment
(status, description) and its canaries (desired, placed, healthy, promoted).

:func:`job_rows` reads Nomad on an edge (``hecate_edge.job_status``); :func:`from_edges`
turns the edges' answers into the runner's ``edge_jobs`` entry. Reads only.
"""

import hecate_edge_jobs
import hecate_nomad_client


def _images(job):
    """``{"group/task": image}`` of a job's docker tasks."""
    out = {}
    for group in job.get("TaskGroups") or []:
        for task in group.get("Tasks") or []:
            image = (task.get("Config") or {}).get("image")
            if image:
                out[f"{group['Name']}/{task['Name']}"] = image
    return out


def _canaries(client, dep, namespace=None):
    """``{group: {desired, placed, healthy, promoted}}`` of the groups of ``dep`` with canaries."""
    groups = {g: st for g, st in ((dep or {}).get("TaskGroups") or {}).items() if st.get("DesiredCanaries")}
    if not groups:
        return {}
    health = {a.get("ID"): (a.get("DeploymentStatus") or {}).get("Healthy")
              for a in client.deployment_allocations(dep["ID"], namespace=namespace)}
    return {g: {"desired": st["DesiredCanaries"], "placed": len(st.get("PlacedCanaries") or []),
                "healthy": sum(1 for c in st.get("PlacedCanaries") or [] if health.get(c) is True),
                "promoted": bool(st.get("Promoted"))}
            for g, st in sorted(groups.items())}


def job_row(client, job_id, namespace=None):
    """
    One edge job as ``hecate.status`` shows it: ``{"job", "present", "version", "stable",
    "status", "images", "tags", "deployment": {id, job_version, status, description} | None,
    "canaries", "ok", "comment"}``. ``ok``: the job runs (not stopped) a version whose
    deployment succeeded (Nomad's ``Stable``); a periodic job only has to be registered.
    """
    job = client.job(job_id, namespace=namespace)
    if job is None:
        return {"job": job_id, "present": False, "ok": False, "comment": f"{job_id}: not deployed"}
    images = _images(job)
    dep, _ = client.job_deployment(job_id, namespace=namespace)
    row = {
        "job": job_id, "present": True, "version": job.get("Version"), "stable": bool(job.get("Stable")),
        "status": job.get("Status"), "stopped": bool(job.get("Stop")), "images": images,
        "tags": {name: hecate_edge_jobs.image_tag(image) for name, image in images.items()},
        "deployment": None, "canaries": {},
    }
    if dep:
        row["deployment"] = {"id": dep["ID"][:8], "job_version": dep.get("JobVersion"), "status": dep.get("Status"),
                             "description": dep.get("StatusDescription")}
        row["canaries"] = _canaries(client, dep, namespace)
    periodic = bool(job.get("Periodic")) or job.get("Type") != "service"
    row["ok"] = not row["stopped"] and (periodic or row["stable"])
    row["comment"] = _comment(row, periodic)
    return row


def _comment(row, periodic):
    tags = sorted({t for t in row["tags"].values() if t})
    head = f"{row['job']} version {row['version']}" + (f" ({', '.join(tags)})" if tags else "")
    if row["stopped"]:
        return f"{head}: stopped"
    if periodic:
        return f"{head}: periodic, {row['status']}"
    dep = row["deployment"]
    if dep is None:
        return f"{head}: {row['status']}, no deployment"
    text = f"{head}: deployment {dep['id']} of version {dep['job_version']} {dep['status']} ({dep['description']})"
    if row["canaries"]:
        text += "; canaries " + "; ".join(
            f"group {g}: {c['placed']}/{c['desired']} placed, {c['healthy']} healthy, "
            + ("promoted" if c["promoted"] else "not promoted") for g, c in row["canaries"].items())
    if not row["stable"]:
        text += "; the running version is not stable (its deployment has not succeeded)"
    return text


def job_rows(client, pillar):
    """``{"ok", "jobs": [rows]}`` for every job hecate deploys on the edge, in deployment order."""
    namespace = hecate_edge_jobs.nomad_settings(pillar).get("namespace")
    rows = []
    for name in hecate_edge_jobs.deploy_order(pillar):
        job_id = hecate_edge_jobs.job_id(pillar, name)
        try:
            rows.append(dict(job_row(client, job_id, namespace=namespace), name=name))
        except hecate_nomad_client.NomadError as exc:
            rows.append({"job": job_id, "name": name, "present": None, "ok": False,
                         "comment": f"{job_id}: Nomad answered {exc.status}: {exc.text or exc}"})
    return {"ok": all(r["ok"] for r in rows), "jobs": rows}


def from_edges(answers):
    """
    The runner's ``edge_jobs`` from ``{minion: hecate_edge.job_status answer}``: the edges of
    an environment share one Nomad cluster, so the first answer in minion order is the
    status; an edge that answered with an error is listed in ``errors``.
    """
    errors, status, source = [], None, None
    for minion, got in sorted((answers or {}).items()):
        if isinstance(got, dict) and isinstance(got.get("jobs"), list):
            if status is None:
                status, source = got, minion
        else:
            errors.append(f"{minion}: {got}")
    if status is None:
        errors = errors or ["no minion with role hecate-edge answered"]
        return {"ok": False, "jobs": [], "errors": errors}
    return {"ok": bool(status.get("ok")), "jobs": status["jobs"], "from": source, "errors": errors}
