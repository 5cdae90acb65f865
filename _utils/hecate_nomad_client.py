"""
Nomad HTTP API client for hecate, on the shared :mod:`hecate_http` client (TLS verified by
default, CA bundle option, retries with backoff, token in a header, never in a URL).

Why not python-nomad: it returns only ``.json()`` (no ``X-Nomad-Index``, so no blocking
queries), reads ``NOMAD_ADDR``/``NOMAD_TOKEN`` from the environment behind the caller's
back and defaults to ``verify=False``. Every call hecate needs is one request here, so
hecate does not use it (see docs/systems/nomad.md).

API facts (shared/api-notes/hashicorp.md): error bodies are plain text; 400 for agent-side
checks and parse errors, 403 for ACL errors, 500 for everything else including validation
failures and ``EnforceIndex`` conflicts (text prefixed ``Enforcing job modify index``);
blocking queries with ``?index=&wait=`` and the ``X-Nomad-Index`` header.

Also here, so that the execution module and the states share them: the readable summary
of a plan (:func:`plan_changes`, :func:`plan_lines`) and following a rollout to its end
(:class:`Rollout`).
"""

import re
import time
import urllib.parse

import salt.exceptions

import hecate_config
import hecate_http
import hecate_secrets
import hecate_vault_client


# -- errors ----------------------------------------------------------------------------------------
class NomadError(salt.exceptions.CommandExecutionError):
    """An API error; ``status`` and ``text`` (Nomad's plain-text error) for callers."""

    def __init__(self, message, status=None, text=""):
        super().__init__(message)
        self.status, self.text = status, text


class EnforceIndexConflict(NomadError):
    """The job changed in Nomad since it was planned: nothing was registered."""


class VariableConflict(NomadError):
    """check-and-set failed; ``current`` is the variable's metadata now (items withheld)."""

    def __init__(self, message, current=None):
        super().__init__(message, status=409)
        self.current = current


# -- the client ----------------------------------------------------------------------------------------
class NomadClient:
    """Nomad's HTTP API (one agent address); ``namespace``/``region`` from the settings."""

    def __init__(self, settings, token=None):
        if not settings.get("url"):
            raise salt.exceptions.SaltInvocationError(
                "hecate:connections:nomad:url is not set (minion config or pillar)"
            )
        headers = {}
        if token:
            headers["X-Nomad-Token"] = token.reveal() if isinstance(token, hecate_secrets.Secret) else token
        self.settings = settings
        self.namespace = settings.get("namespace") or "default"
        self.region = settings.get("region")
        self.http = hecate_http.Client(
            settings["url"],
            "Nomad",
            headers=headers,
            timeout=settings.get("timeout", 30),
            retries=settings.get("retries", 3),
            **hecate_config.tls_args(settings, "nomad"),
        )
        self.connect_timeout = self.http.timeout[0]

    # low level ---------------------------------------------------------------------------------
    def _path(self, path, namespace=None, **params):
        query = {"namespace": namespace or self.namespace}
        if self.region:
            query["region"] = self.region
        query.update({k: v for k, v in params.items() if v is not None})
        return f"{path}?{urllib.parse.urlencode(query)}"

    def _call(self, method, path, body=None, ok=None, namespace=None, timeout=None, idempotent=None, **params):
        kwargs = {}
        if body is not None:
            kwargs["json"] = body
        if timeout is not None:
            kwargs["timeout"] = timeout
        try:
            resp = self.http.request(method, self._path(path, namespace, **params), ok=ok,
                                     idempotent=idempotent, **kwargs)
        except hecate_http.HTTPError as exc:
            text = exc.body if isinstance(exc.body, str) else hecate_http.error_text(exc.body)
            if exc.status == 500 and "Enforcing job modify index" in (text or ""):
                raise EnforceIndexConflict(str(exc), status=exc.status, text=text) from None
            raise NomadError(str(exc), status=exc.status, text=text or "") from None
        index = resp.headers.get("X-Nomad-Index")
        body = None
        if resp.content:
            try:
                body = resp.json()
            except ValueError:
                body = resp.text
        return body, int(index) if index and index.isdigit() else None

    def get(self, path, index=None, wait=None, namespace=None, missing_ok=False, **params):
        """GET, optionally as a blocking query; returns ``(body, X-Nomad-Index)``."""
        timeout = None
        if index:
            wait = wait or 30
            # Nomad adds up to wait/16 of jitter; leave room for it and for the network
            timeout = (self.connect_timeout, wait + wait / 16 + 10)
            params.update(index=int(index), wait=f"{int(wait * 1000)}ms")
        try:
            return self._call("GET", path, namespace=namespace, timeout=timeout, **params)
        except NomadError as exc:
            if missing_ok and exc.status == 404:
                return None, None
            raise

    # jobs --------------------------------------------------------------------------------------------
    def leader(self):
        return self.get("/v1/status/leader")[0]

    def parse(self, hcl, canonicalize=True, variables=None):
        body = {"JobHCL": hcl, "Canonicalize": bool(canonicalize)}
        if variables:
            body["Variables"] = variables
        return self._call("POST", "/v1/jobs/parse", body)[0]

    def validate(self, job):
        return self._call("POST", "/v1/validate/job", {"Job": job})[0]

    def plan(self, job, diff=True, policy_override=False):
        body = {"Job": job, "Diff": bool(diff), "PolicyOverride": bool(policy_override)}
        return self._call("POST", f"/v1/job/{_q(job['ID'])}/plan", body, namespace=job.get("Namespace"))[0]

    def register(self, job, modify_index=None, policy_override=False):
        """Register; with ``modify_index`` (0 = must not exist) Nomad enforces it atomically."""
        body = {"Job": job, "PolicyOverride": bool(policy_override)}
        if modify_index is not None:
            body.update(EnforceIndex=True, JobModifyIndex=int(modify_index))
        return self._call("POST", f"/v1/job/{_q(job['ID'])}", body, namespace=job.get("Namespace"))[0]

    def job(self, job_id, namespace=None):
        return self.get(f"/v1/job/{_q(job_id)}", namespace=namespace, missing_ok=True)[0]

    def versions(self, job_id, diffs=False, namespace=None):
        body = self.get(f"/v1/job/{_q(job_id)}/versions", namespace=namespace, missing_ok=True,
                        diffs="true" if diffs else None)[0]
        return (body or {}).get("Versions") or [], (body or {}).get("Diffs")

    def allocations(self, job_id, namespace=None):
        return self.get(f"/v1/job/{_q(job_id)}/allocations", namespace=namespace)[0] or []

    def allocations_wait(self, job_id, index=0, wait=None, namespace=None):
        """``(allocations, X-Nomad-Index)``, as a blocking query when ``index`` is given."""
        body, idx = self.get(f"/v1/job/{_q(job_id)}/allocations", index=index, wait=wait, namespace=namespace)
        return body or [], idx

    def periodic_force(self, job_id, namespace=None):
        """
        Launch a periodic job now (``POST /v1/job/:id/periodic/force``, nomad/periodic_endpoint.go
        Periodic.Force): ``{"EvalID", "EvalCreateIndex", "Index"}``; the evaluation's job is the
        launch, ``<id>/periodic-<unix time>``. Never sent twice (a second POST launches again).
        """
        return self._call("POST", f"/v1/job/{_q(job_id)}/periodic/force", namespace=namespace)[0]

    def allocation(self, alloc_id, namespace=None):
        return self.get(f"/v1/allocation/{_q(alloc_id)}", namespace=namespace, missing_ok=True)[0]

    def evaluation(self, eval_id, index=None, wait=None, namespace=None):
        return self.get(f"/v1/evaluation/{_q(eval_id)}", index=index, wait=wait, namespace=namespace)

    def job_deployment(self, job_id, index=None, wait=None, namespace=None):
        return self.get(f"/v1/job/{_q(job_id)}/deployment", index=index, wait=wait, namespace=namespace)

    def deployments(self, job_id, namespace=None):
        return self.get(f"/v1/job/{_q(job_id)}/deployments", namespace=namespace)[0] or []

    def deployment(self, deployment_id, index=None, wait=None, namespace=None):
        return self.get(f"/v1/deployment/{_q(deployment_id)}", index=index, wait=wait, namespace=namespace)

    def deployment_allocations(self, deployment_id, namespace=None):
        return self.get(f"/v1/deployment/allocations/{_q(deployment_id)}", namespace=namespace)[0] or []

    def promote(self, deployment_id, groups=None, namespace=None):
        """
        Promote a deployment's canaries (all groups, or ``groups``): Nomad refuses canaries
        that are not healthy (500 ``Task group "g" has 0/1 healthy allocations``) and a
        terminal deployment (``can't promote terminal deployment``).
        """
        body = {"DeploymentID": deployment_id, "All": not groups}
        if groups:
            body["Groups"] = list(groups)
        return self._call("POST", f"/v1/deployment/promote/{_q(deployment_id)}", body, namespace=namespace)[0]

    def revert(self, job_id, version, enforce_prior_version=None, namespace=None):
        body = {"JobID": job_id, "JobVersion": int(version)}
        if enforce_prior_version is not None:
            body["EnforcePriorVersion"] = int(enforce_prior_version)
        return self._call("POST", f"/v1/job/{_q(job_id)}/revert", body, namespace=namespace)[0]

    def deregister(self, job_id, purge=False, namespace=None):
        return self._call("DELETE", f"/v1/job/{_q(job_id)}", namespace=namespace,
                          purge="true" if purge else None)[0]

    # variables ---------------------------------------------------------------------------------------
    def var_get(self, path, namespace=None):
        return self.get(f"/v1/var/{_qp(path)}", namespace=namespace, missing_ok=True)[0]

    def var_list(self, prefix="", namespace=None):
        return self.get("/v1/vars", namespace=namespace, prefix=prefix or None)[0] or []

    def var_put(self, path, items, cas=None, namespace=None):
        """
        Write a variable; with ``cas`` (0: create only) :class:`VariableConflict` when it
        changed meanwhile. A CAS write whose answer is lost is not resent blindly (it
        would fail its own check): the variable is re-read to decide.
        """
        body = {"Namespace": namespace or self.namespace, "Path": path, "Items": items}

        def send():
            try:
                return self._call("PUT", f"/v1/var/{_qp(path)}", body, namespace=namespace,
                                  idempotent=cas is None, cas=None if cas is None else int(cas))[0]
            except NomadError as exc:
                if exc.status == 409:
                    raise self._var_conflict(path, cas, namespace) from None
                raise

        if cas is None:
            return send()

        def landed():
            current = self.var_get(path, namespace=namespace)
            if current is not None and current.get("Items") == items and (
                    int(cas) == 0 or current.get("ModifyIndex") != int(cas)):
                return current  # ours landed
            if (current or {}).get("ModifyIndex", 0) == int(cas):
                return None  # not applied: the check still holds, sending again is safe
            raise self._var_conflict(path, cas, namespace, current)

        return hecate_http.uncertain_write(f"Nomad: write variable {path}", send, landed)

    def var_delete(self, path, cas=None, namespace=None):
        """Delete a variable; with ``cas`` conditionally, re-reading after a lost answer."""
        def send():
            try:
                self._call("DELETE", f"/v1/var/{_qp(path)}", namespace=namespace,
                           idempotent=cas is None, cas=None if cas is None else int(cas))
            except NomadError as exc:
                if exc.status == 409:
                    raise self._var_conflict(path, cas, namespace) from None
                raise
            return True

        if cas is None:
            return send()

        def landed():
            current = self.var_get(path, namespace=namespace)
            if current is None:
                return True  # gone (a deleted variable has no ModifyIndex left to compare)
            if current.get("ModifyIndex") == int(cas):
                return None
            raise self._var_conflict(path, cas, namespace, current)

        return hecate_http.uncertain_write(f"Nomad: delete variable {path}", send, landed)

    def _var_conflict(self, path, cas, namespace=None, current=None):
        if current is None:
            current = self.var_get(path, namespace=namespace)
        meta = {k: v for k, v in (current or {}).items() if k != "Items"} or None
        now = (current or {}).get("ModifyIndex", 0)
        return VariableConflict(
            f"Nomad variable {path}: check-and-set failed (expected modify index {cas}, "
            f"now {now}); someone changed it meanwhile, nothing was written",
            current=meta,
        )


def _q(value):
    return urllib.parse.quote(str(value), safe="")


def _qp(path):
    return urllib.parse.quote(str(path).strip("/"), safe="/")


def from_config(opts, pillar, sdb_get=None, context=None, overrides=None):
    """The client for this minion's ``hecate:connections:nomad`` (cached in ``context``)."""
    settings = hecate_config.connection("nomad", opts, pillar, overrides=overrides)
    key = ("hecate_nomad_client", settings.get("url"), settings.get("namespace"), settings.get("region"))
    if context is not None and key in context:
        return context[key]
    token = None
    if settings.get("token"):
        resolve = hecate_vault_client.Resolver(opts, pillar, sdb_get, context)
        token = resolve(settings["token"], "hecate:connections:nomad:token")
    client = NomadClient(settings, token)
    if context is not None:
        context[key] = client
    return client


# -- plans, readably -----------------------------------------------------------------------------------
def _object_label(obj):
    """A name for one of several objects of a kind (services by name, templates by path...)."""
    for key in ("Name", "Label", "DestPath", "Volume", "LTarget", "DestinationName"):
        for field in obj.get("Fields") or []:
            if field.get("Name") == key:
                return field.get("New") or field.get("Old")
    return None


def _walk_objects(objects, prefix):
    """Yield ``(path, field_name, [FieldDiff], is_set)`` for nested object diffs."""
    seen = {}
    for obj in objects or []:
        name = obj["Name"]
        if obj.get("Fields") and all(f["Name"] == name for f in obj["Fields"]):
            # a set of strings (Datacenters, Tags, Args): one entry with lists of values
            yield prefix, name, obj["Fields"], True
            continue
        label = _object_label(obj)
        count = seen.get(name, 0)
        seen[name] = count + 1
        if label and name not in ("Config", "Resources", "LogConfig", "Vault", "Update"):
            path = f"{prefix}:{name}[{label}]"
        else:
            path = f"{prefix}:{name}" + (f"#{count + 1}" if count else "")
        for field in obj.get("Fields") or []:
            yield path, field["Name"], [field], False
        yield from _walk_objects(obj.get("Objects"), path)


def diff_fields(diff):
    """
    Flatten a plan/version Diff into ``{"group g:task t:Object[label]:Field": {"old", "new"}}``.
    Sets of strings (Datacenters, Tags, Args) become ``{"old": [removed], "new": [added]}``.
    """
    out = {}
    if not diff:
        return out

    def add(path, name, fields, is_set):
        if is_set:
            out[f"{path}:{name}"] = {"old": sorted(f["Old"] for f in fields if f.get("Old")),
                                     "new": sorted(f["New"] for f in fields if f.get("New"))}
        else:
            out[f"{path}:{name}"] = {"old": fields[0].get("Old", ""), "new": fields[0].get("New", "")}

    def walk_owner(path, owner):
        for field in owner.get("Fields") or []:
            add(path, field["Name"], [field], False)
        for opath, name, fields, is_set in _walk_objects(owner.get("Objects"), path):
            add(opath, name, fields, is_set)

    walk_owner("job", diff)
    for group in diff.get("TaskGroups") or []:
        gpath = f"group {group['Name']}"
        walk_owner(gpath, group)
        for task in group.get("Tasks") or []:
            walk_owner(f"{gpath}:task {task['Name']}", task)
    return out


def _placements(plan):
    names = {"Place": "create", "Stop": "destroy", "InPlaceUpdate": "in-place update",
             "DestructiveUpdate": "create/destroy update", "Migrate": "migrate", "Canary": "canary",
             "Ignore": "ignore"}
    desired = ((plan or {}).get("Annotations") or {}).get("DesiredTGUpdates") or {}
    out = {}
    for group, counts in sorted(desired.items()):
        entry = {names[k]: v for k, v in (counts or {}).items() if k in names and v}
        if entry:
            out[group] = entry
    return out


def _task_annotations(diff):
    out = {}
    for group in (diff or {}).get("TaskGroups") or []:
        for task in group.get("Tasks") or []:
            if task.get("Annotations"):
                out[f"group {group['Name']}:task {task['Name']}"] = list(task["Annotations"])
    return out


def placement_failures(failed):
    """Human text for a plan's/evaluation's FailedTGAllocs (AllocMetric)."""
    lines = []
    for group, metric in sorted((failed or {}).items()):
        reasons = []
        if metric.get("NodesEvaluated", 1) == 0:
            reasons.append("no nodes were eligible for evaluation (check datacenters and node pool)")
        for what, count in sorted((metric.get("ConstraintFiltered") or {}).items()):
            reasons.append(f'constraint "{what}" filtered {count} node(s)')
        for what, count in sorted((metric.get("ClassFiltered") or {}).items()):
            reasons.append(f'class "{what}" filtered {count} node(s)')
        for what, count in sorted((metric.get("DimensionExhausted") or {}).items()):
            reasons.append(f'resources exhausted on {count} node(s): {what}')
        lines.append(f"group {group}: cannot place: " + ("; ".join(reasons) or "no node fits"))
    return lines


def plan_changes(plan):
    """The ``changes`` a state reports for a plan (no values that are not in the job spec)."""
    diff = (plan or {}).get("Diff") or {}
    changes = {"diff": diff.get("Type", "None"), "fields": diff_fields(diff)}
    placements = _placements(plan)
    if placements:
        changes["placements"] = placements
    annotations = _task_annotations(diff)
    if annotations:
        changes["annotations"] = annotations
    return changes


def _short(value, width=100):
    text = str(value)
    if "\n" in text.strip("\n"):
        first = text.strip("\n").split("\n", 1)[0]
        return f"{first[:width]!r}... ({text.count(chr(10)) + 1} lines)"
    return repr(text if len(text) <= width else text[:width] + "...")


def _new_job_lines(diff, placements):
    lines = []
    for group in diff.get("TaskGroups") or []:
        counts = placements.get(group["Name"], {})
        what = ", ".join(f"{n} {k}" for k, n in counts.items()) or "nothing to place"
        lines.append(f"  + group {group['Name']} ({what})")
        for task in group.get("Tasks") or []:
            image = next((f.get("New") for o in task.get("Objects") or [] if o["Name"] == "Config"
                          for f in o.get("Fields") or [] if f["Name"] == "image"), None)
            lines.append(f"    + task {task['Name']}" + (f": {image}" if image else ""))
    return lines


def plan_lines(plan, job_id=None):
    """
    ``nomad job plan``-like lines: for a changed job every field old -> new per group and
    task with the task annotations; for a new job its groups, tasks and images; then the
    scheduler's placements and placement failures.
    """
    diff = (plan or {}).get("Diff") or {}
    kind = diff.get("Type", "None")
    marker = {"Added": "+", "Deleted": "-", "Edited": "+/-", "None": ""}
    lines = [f"{marker.get(kind, '')} Job: {diff.get('ID') or job_id!r} ({kind.lower()})".strip()]
    placements = _placements(plan)
    if kind == "Added":
        lines.extend(_new_job_lines(diff, placements))
    else:
        annotations = _task_annotations(diff)
        current, shown = None, set()
        fields = diff_fields(diff)
        for path in sorted(fields, key=lambda p: (p.rsplit(":", 1)[0], p)):
            change = fields[path]
            owner, field = path.rsplit(":", 1)
            if owner != current:
                current = owner
                notes = [(key, ", ".join(a)) for key, a in annotations.items()
                         if key not in shown and (owner == key or owner.startswith(key + ":"))]
                shown.update(key for key, _ in notes)
                lines.append(f"  {owner}" + (f" ({notes[0][1]})" if notes else "") + ":")
            old, new = change["old"], change["new"]
            if isinstance(old, list):
                lines.extend(f"    - {field}: {_short(v)}" for v in old)
                lines.extend(f"    + {field}: {_short(v)}" for v in new)
            elif old == "":
                lines.append(f"    + {field}: {_short(new)}")
            elif new == "":
                lines.append(f"    - {field}: {_short(old)}")
            else:
                lines.append(f"    ~ {field}: {_short(old)} -> {_short(new)}")
        for key, ann in sorted(annotations.items()):
            if key not in shown:
                lines.append(f"  {key} ({', '.join(ann)})")
        for group, counts in placements.items():
            lines.append(f"  group {group}: " + ", ".join(f"{n} {what}" for what, n in counts.items()))
    failures = placement_failures((plan or {}).get("FailedTGAllocs"))
    if failures:
        lines.append("  Scheduler dry-run: WARNING: failed to place all allocations:")
        lines.extend("    " + line for line in failures)
    else:
        lines.append("  Scheduler dry-run: all tasks successfully allocated.")
    return lines


# -- update strategies and canaries ----------------------------------------------------------------------
def _duration(ns):
    seconds = int((ns or 0) // 1_000_000_000)
    if seconds and seconds % 3600 == 0:
        return f"{seconds // 3600}h"
    if seconds and seconds % 60 == 0:
        return f"{seconds // 60}m"
    return f"{seconds}s"


def update_strategy(group):
    """
    How Nomad replaces a task group's allocations, from its ``update`` block (a parsed,
    canonicalized group): ``{"kind": rolling|canary|blue-green|none, "text"}``. Canaries
    (``canary`` > 0) run beside the old allocations until promoted; as many canaries as the
    group's count is blue-green. ``auto_promote``: Nomad promotes once every canary is
    healthy (nomad/deploymentwatcher autoPromoteDeployment); otherwise the nomad_job state
    does it at that moment.
    """
    upd = group.get("Update") or {}
    if not upd.get("MaxParallel"):
        return {"kind": "none", "text": "no update block: every allocation is replaced at once, no deployment"}
    count = group.get("Count") or 0
    canary = upd.get("Canary") or 0
    health = (f"healthy after {_duration(upd.get('MinHealthyTime'))} of passing "
              f"{'checks' if upd.get('HealthCheck', 'checks') == 'checks' else upd.get('HealthCheck')} "
              f"within {_duration(upd.get('HealthyDeadline'))}")
    revert = "auto_revert to the last stable version on failure" if upd.get("AutoRevert") else "no auto_revert"
    if not canary:
        return {"kind": "rolling", "text": f"rolling: {upd['MaxParallel']} at a time (each old allocation stopped as "
                                           f"its replacement is placed); {health}; {revert}"}
    promoter = "Nomad promotes them (auto_promote)" if upd.get("AutoPromote") else "hecate promotes them"
    kind = "blue-green" if canary >= count else "canary"
    text = (f"{kind}: {canary} canar{'y' if canary == 1 else 'ies'} beside the {count} running; once "
            f"{'it is' if canary == 1 else 'they are'} {health}, {promoter}")
    if kind == "canary":
        text += f", then the rest {upd['MaxParallel']} at a time"
    return {"kind": kind, "text": f"{text}; {revert}"}


def strategy_lines(job):
    """One line per task group: how a new version of ``job`` replaces the running one."""
    return [f"  update group {g['Name']}: {update_strategy(g)['text']}" for g in job.get("TaskGroups") or []]


def awaiting_promotion(dep):
    """
    ``{group: dstate}`` of the groups whose canaries wait for a promotion (RequiresPromotion,
    nomad/structs/deployment.go) in a running deployment.
    """
    if not dep or dep.get("Status") != "running":
        return {}
    return {g: st for g, st in (dep.get("TaskGroups") or {}).items()
            if (st.get("DesiredCanaries") or 0) > 0 and not st.get("Promoted")}


def canaries_healthy(dep):
    """Whether every canary of every group awaiting promotion is placed and healthy."""
    waiting = awaiting_promotion(dep)
    return bool(waiting) and all(
        len(st.get("PlacedCanaries") or []) >= st["DesiredCanaries"] and (st.get("HealthyAllocs") or 0)
        >= st["DesiredCanaries"] for st in waiting.values())


# -- following a rollout -------------------------------------------------------------------------------
TERMINAL_EVAL = ("complete", "failed", "canceled", "cancelled", "blocked")
TERMINAL_DEPLOYMENT = ("successful", "failed", "cancelled")
_ROLLBACK = re.compile(r"rolling back to job version (\d+)")


def alloc_failure(alloc, max_events=8):
    """A failing allocation and its tasks' last events, for state comments."""
    tasks = {}
    for name, state in sorted((alloc.get("TaskStates") or {}).items()):
        events = [
            f"{e.get('Type')}: {e.get('DisplayMessage') or e.get('DriverError') or e.get('Message') or ''}".rstrip(": ")
            for e in (state.get("Events") or [])
            if e.get("Type") not in ("Received", "Task Setup", "Driver", "Started")
        ]
        if state.get("Failed") or any(
            e.startswith(("Driver Failure", "Not Restarting", "Alloc Unhealthy", "Restarting", "Template"))
            for e in events
        ):
            tasks[name] = {
                "state": state.get("State"),
                "failed": bool(state.get("Failed")),
                "restarts": state.get("Restarts", 0),
                "events": events[-max_events:],
            }
    return {
        "id": alloc.get("ID", "")[:8],
        "group": alloc.get("TaskGroup"),
        "version": alloc.get("JobVersion"),
        "client_status": alloc.get("ClientStatus"),
        "healthy": (alloc.get("DeploymentStatus") or {}).get("Healthy"),
        "tasks": tasks,
    }


def describe_failures(failures):
    lines = []
    for fail in failures:
        lines.append(
            f"allocation {fail['id']} (group {fail['group']}, version {fail['version']}): "
            f"{fail['client_status']}, healthy={fail['healthy']}"
        )
        for task, info in fail["tasks"].items():
            lines.append(f"  task {task} ({info['state']}{', failed' if info['failed'] else ''}, "
                         f"{info['restarts']} restarts):")
            lines.extend(f"    {event}" for event in info["events"])
    return lines


class Rollout:
    """
    Follow what one registration started: its evaluation, then the deployment of *this*
    job version (an unchanged spec makes none: levant#263), until successful, failed,
    cancelled or the deadline. Uses blocking queries on ``X-Nomad-Index``.
    """

    def __init__(self, client, job_id, namespace=None, timeout=600, wait=30, promote=False):
        self.client, self.job_id, self.namespace = client, job_id, namespace
        self.deadline = time.monotonic() + timeout
        self.timeout = timeout
        self.wait = wait
        # promote canaries that wait for a manual promotion once they are all healthy
        self.promote = promote
        self.promotion = None

    def remaining(self):
        return self.deadline - time.monotonic()

    def _wait_time(self):
        return max(1, min(self.wait, self.remaining()))

    def evaluation(self, eval_id):
        index = 0
        while True:
            evaluation, index = self.client.evaluation(eval_id, index=index, wait=self._wait_time(),
                                                       namespace=self.namespace)
            if evaluation.get("Status") in TERMINAL_EVAL:
                return evaluation
            if self.remaining() <= 0:
                return evaluation
            index = index or 0

    def deployment(self, deployment_id):
        """
        Follow the deployment to its end. Canaries that wait for a manual promotion (no
        ``auto_promote``) are promoted here once every one of them is healthy, when this
        rollout may (``promote``); with ``auto_promote`` Nomad does it at that moment.
        """
        index = 0
        while True:
            dep, index = self.client.deployment(deployment_id, index=index, wait=self._wait_time(),
                                                namespace=self.namespace)
            if dep.get("Status") in TERMINAL_DEPLOYMENT or self.remaining() <= 0:
                return dep
            self._promote_if_ready(dep)
            index = index or 0

    def _promote_if_ready(self, dep):
        waiting = awaiting_promotion(dep)
        if not waiting or self.promotion is not None or not canaries_healthy(dep):
            return
        if all(st.get("AutoPromote") for st in waiting.values()):
            return  # Nomad promotes them itself (autoPromoteDeployment)
        if not self.promote:
            return
        try:
            self.client.promote(dep["ID"], namespace=self.namespace)
        except NomadError as exc:
            # e.g. a canary turned unhealthy meanwhile: the deployment will say how it ends
            self.promotion = {"by": "hecate", "ok": False, "error": exc.text or str(exc)}
            return
        self.promotion = {"by": "hecate", "ok": True,
                          "groups": {g: st["DesiredCanaries"] for g, st in sorted(waiting.items())}}

    def find_deployment(self, version, after_index=0):
        """The deployment of ``version`` (created after ``after_index``), waiting briefly for it."""
        index = 0
        while True:
            for dep in self.client.deployments(self.job_id, namespace=self.namespace):
                if dep.get("JobVersion") == version and dep.get("CreateIndex", 0) > after_index:
                    return dep
            if self.remaining() <= 0:
                return None
            _, index = self.client.job_deployment(self.job_id, index=index, wait=min(5, self._wait_time()),
                                                  namespace=self.namespace)
            index = index or 0

    def follow(self, eval_id, version, expect_deployment, register_index=0):
        """
        ``{"status": successful|failed|cancelled|timeout|placement-failed|eval-failed|
        no-deployment, "version", "deployment", "description", "failures", "evaluation",
        "auto_revert_version", "revert"}``
        """
        out = {"status": None, "version": version, "deployment": None, "description": "",
               "failures": [], "evaluation": None, "auto_revert_version": None}
        evaluation = self.evaluation(eval_id) if eval_id else None
        out["evaluation"] = (evaluation or {}).get("ID")
        if evaluation is not None and evaluation.get("Status") not in TERMINAL_EVAL:
            out.update(status="timeout", description=f"evaluation {eval_id[:8]} still {evaluation.get('Status')}")
            return out
        if evaluation is not None and evaluation.get("Status") in ("failed", "canceled", "cancelled"):
            out.update(status="eval-failed",
                       description=f"evaluation {eval_id[:8]} {evaluation.get('Status')}: "
                                   f"{evaluation.get('StatusDescription') or ''}".strip())
            return out
        if evaluation is not None and evaluation.get("FailedTGAllocs"):
            out.update(status="placement-failed",
                       description="; ".join(placement_failures(evaluation["FailedTGAllocs"])))
            return out
        dep_id = (evaluation or {}).get("DeploymentID")
        if not dep_id and expect_deployment:
            dep = self.find_deployment(version, after_index=register_index - 1 if register_index else 0)
            dep_id = (dep or {}).get("ID")
        if not dep_id:
            out.update(status="no-deployment",
                       description="no deployment (the job spec was unchanged or nothing needed placing)")
            return out
        dep = self.deployment(dep_id)
        out["deployment"] = dep.get("ID")
        out["description"] = dep.get("StatusDescription", "")
        if dep.get("Status") not in TERMINAL_DEPLOYMENT:
            out["status"] = "timeout"
            out["description"] = (f"deployment {dep_id[:8]} still {dep.get('Status')} after "
                                  f"{int(self.timeout)}s: {dep.get('StatusDescription', '')}")
            if awaiting_promotion(dep):
                out["description"] += (f" (canaries: {canary_summary(dep)}"
                                       + ("; not promoted: they are not all healthy" if not canaries_healthy(dep)
                                          else "; waiting for a promotion") + ")")
            return out
        out["status"] = dep["Status"]
        out["canaries"] = {g: {"desired": st.get("DesiredCanaries") or 0,
                               "placed": len(st.get("PlacedCanaries") or []), "promoted": bool(st.get("Promoted")),
                               "auto_promote": bool(st.get("AutoPromote"))}
                           for g, st in sorted((dep.get("TaskGroups") or {}).items())
                           if st.get("DesiredCanaries")}
        if self.promotion is not None:
            out["promotion"] = self.promotion
        if dep["Status"] == "failed":
            allocs = self.client.deployment_allocations(dep_id, namespace=self.namespace)
            out["failures"] = [
                alloc_failure(a) for a in allocs
                if a.get("ClientStatus") == "failed" or (a.get("DeploymentStatus") or {}).get("Healthy") is False
            ]
            match = _ROLLBACK.search(dep.get("StatusDescription", ""))
            if match:
                out["auto_revert_version"] = int(match.group(1))
        return out

    def follow_auto_revert(self, failed_version):
        """After Nomad's auto-revert: follow the rollback's deployment (levant#133)."""
        job = self.client.job(self.job_id, namespace=self.namespace)
        if job is None or job.get("Version", 0) <= failed_version:
            # the watcher registers the rollback right after failing; give it a moment
            index = 0
            while self.remaining() > 0:
                _, index = self.client.job_deployment(self.job_id, index=index, wait=min(5, self._wait_time()),
                                                      namespace=self.namespace)
                job = self.client.job(self.job_id, namespace=self.namespace)
                if job is not None and job.get("Version", 0) > failed_version:
                    break
        if job is None or job.get("Version", 0) <= failed_version:
            return {"status": "timeout", "version": None, "description": "the rollback was not registered"}
        dep = self.find_deployment(job["Version"])
        if dep is None:
            return {"status": "no-deployment", "version": job["Version"], "description": ""}
        dep = self.deployment(dep["ID"])
        return {"status": dep.get("Status"), "version": job["Version"], "deployment": dep.get("ID"),
                "description": dep.get("StatusDescription", "")}


def canary_summary(dep):
    """``group server: 1/1 placed, 0 healthy`` for the groups of ``dep`` that have canaries."""
    parts = []
    for group, st in sorted((dep.get("TaskGroups") or {}).items()):
        if st.get("DesiredCanaries"):
            parts.append(f"group {group}: {len(st.get('PlacedCanaries') or [])}/{st['DesiredCanaries']} placed, "
                         f"{st.get('HealthyAllocs') or 0} healthy, "
                         + ("promoted" if st.get("Promoted") else "not promoted"))
    return "; ".join(parts)


def last_stable_version(versions, below):
    """The newest version marked stable that is older than ``below`` (or None)."""
    for version in sorted(versions, key=lambda v: -v.get("Version", 0)):
        if version.get("Stable") and version.get("Version", 0) < below:
            return version
    return None


def resolve_items(items, resolve, where="items"):
    """
    Variable items with Vault references / ``sdb://`` URIs resolved (by ``resolve``, a
    :class:`hecate_vault_client.Resolver`) to :class:`hecate_secrets.Secret`; literal
    scalars become strings.
    """
    if not isinstance(items, dict) or not items:
        raise salt.exceptions.SaltInvocationError(f"{where}: a non-empty mapping of key: value is required")
    out = {}
    for key, value in items.items():
        if hecate_secrets.is_ref(value) or (isinstance(value, str) and value.startswith("sdb://")):
            out[str(key)] = resolve(value, f"{where}:{key}")
        elif isinstance(value, bool):
            out[str(key)] = "true" if value else "false"
        elif isinstance(value, (str, int, float)):
            out[str(key)] = str(value)
        else:
            raise salt.exceptions.SaltInvocationError(
                f"{where}:{key}: a string or a Vault reference {{vault: <mount>/<path>, key: <key>}} is required"
            )
    return out
