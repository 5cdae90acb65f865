"""
caddy_routes: the whole hecate route set of a Caddy server, from pillar.

.. code-block:: yaml

    hecate caddy routes:
      caddy_routes.managed: []        # server, routes etc. from hecate:reverse_proxy:caddy

    hecate caddy routes removed:
      caddy_routes.absent: []         # teardown: none of hecate's routes left

Compares the routes built from pillar ``hecate:reverse_proxy:caddy`` with the routes of
the live server that carry a hecate ``@id`` (``hecate.route.<name>``), reports each route
added / removed / changed, and applies everything in ONE write guarded by ``If-Match``
(the ETag of the config it read). If Caddy changed meanwhile (412) it reads again,
re-diffs and retries, so a route or setting someone else added is kept. Routes without a
hecate ``@id`` are never touched. Before writing, the previous routes are saved on the
minion; ``caddy.rollback`` restores them.

With ``<pillar_key>:consul_routes`` the set also holds a route per Consul service carrying
its tag and ``meta.hecate_domain`` (``consul.<service>``; see :mod:`hecate_consul_routes`):
the same discovery the DNS state uses in the same run; services it skips are named in the
comment, never failing the state.
A protected route (``auth`` or ``forward_auth``) is switched to forward auth only when its
Authentik side is in place (``hecate_route_auth.readiness``: provider, application,
outpost); otherwise it stays as Caddy has it (or is not added) and the state fails naming
it, so that Caddy never asks the outpost about a host the outpost cannot answer for.
Routes with ``access_log`` also get their loggers (``logging.logs.hecate.<route>.<n>``) and
the server's ``logs.logger_names`` (``hecate_caddy_logs``); when those change, the one
guarded write covers the common ancestor of what changed (the whole config when the logging
app changes), and the snapshot holds it.
"""

import json

import salt.exceptions

import hecate_caddy_apply
import hecate_caddy_client
import hecate_caddy_logs
import hecate_caddy_routes
import hecate_clients
import hecate_config
import hecate_consul_routes
import hecate_edge_jobs
import hecate_http
import hecate_loader
import hecate_route_auth
import hecate_state

__virtualname__ = "caddy_routes"


def __virtual__():
    return hecate_loader.virtual(__virtualname__)


def _count(changes):
    parts = []
    for key in ("added", "removed", "changed"):
        if changes.get(key):
            parts.append(f"{len(changes[key])} {key}")
    if changes.get("access_logs"):
        parts.append(f"{len(changes['access_logs'])} access log(s)")
    elif "access_log_settings" in changes:
        parts.append("access log settings")
    if "order" in changes:
        parts.append("reordered")
    if "server" in changes:
        parts.append("server created")
    return ", ".join(parts)


def _keep_waiting(salt_funcs, missing):
    """
    A resolver for ``missing_services: keep``: a Consul service without a passing instance
    yet is recorded in ``missing`` (its route is then kept as Caddy has it, or left out) instead
    of failing the whole route set. The same in a preview as in a real run.
    """
    resolve = hecate_caddy_routes.consul_resolver(salt_funcs, test=False)

    def wrapped(service):
        try:
            return resolve(service)
        except salt.exceptions.CommandExecutionError as exc:
            if "has no passing instances" not in str(exc):
                raise
            missing.add(service)
            return [hecate_caddy_routes.PENDING_UPSTREAM.format(service)]

    return wrapped


def _waiting(desired, missing):
    """The routes whose Consul service has no passing instance yet (route -> why), kept as
    Caddy has them (``missing_services: keep``)."""
    marks = [hecate_caddy_routes.PENDING_UPSTREAM.format(s) for s in sorted(missing)]
    return {r.name: f"its Consul service has no passing instance ({', '.join(sorted(missing))})"
            for r in desired if any(m in json.dumps(r.json) for m in marks)}


def _noting_waiting(compute, desired, waiting, notes):
    """``compute`` that also says, per waiting route, whether Caddy keeps it or lacks it yet."""

    def noting(live):
        ids = {route.get("@id") for route in live if isinstance(route, dict)}
        del notes[:]
        for route in desired:
            if route.name in waiting:
                how = "kept as Caddy has it" if route.id in ids else "not added yet"
                notes.append(f"route {route.name}: {how}: {waiting[route.name][:-1]}; "
                             "orch.bionicgpt deploys BionicGPT's)")
        return compute(live)

    return noting


@hecate_state.guard
def managed(name, server=None, retries=3, pillar_key=hecate_caddy_routes.PILLAR_PATH, missing_services="fail"):
    """
    Make the hecate routes of a Caddy server exactly those in pillar.

    name
        State ID (free text).
    server
        The server under ``apps.http.servers`` (default: ``<pillar_key>:server``, else
        ``hecate``). If it does not exist and ``<pillar_key>:listen`` is set, it is created
        with those listener addresses only (Caddy's automatic HTTPS stays on); when another
        server already listens on one of them (a Caddyfile's ``srv0`` on ``:443``), the
        state fails before writing, naming that server: set ``server`` to it instead.
    retries
        How many times to re-read and retry after a 412 (someone changed Caddy between our
        read and our write) before failing.
    pillar_key
        Where the Caddy block lives in pillar (default ``hecate:reverse_proxy:caddy``).

    missing_services
        ``fail`` (default): a Consul upstream without a passing instance fails the state.
        ``keep``: its route stays as Caddy has it (or is not added yet) and the comment says
        so; orch.hecate uses it, so the edge deploys before the services behind it.

    Consul upstreams (``upstream: {consul_service: <name>}``) are resolved at run time
    through ``hecate_consul.service_addresses`` (passing instances only). Routes from Consul
    (``<pillar_key>:consul_routes``) are read through ``hecate_consul.catalog_services`` and
    ``hecate_consul.service_health``.

    .. code-block:: yaml

        hecate caddy routes:
          caddy_routes.managed
    """
    ret = hecate_state.new(name)
    data = hecate_caddy_routes.caddy_data(__pillar__, pillar_key)
    if not isinstance(data, dict):
        ret.update(result=False, comment=f"pillar {pillar_key} must be a mapping")
        return ret
    server = server or data.get("server") or hecate_caddy_routes.DEFAULT_SERVER
    settings = hecate_config.connection("caddy", __opts__, __pillar__)
    store = hecate_caddy_client.SnapshotStore(
        settings.get("state_dir"), keep=data.get("keep_snapshots", 10)
    )
    test = bool(__opts__.get("test"))
    if not test:
        # First of all: whatever happens below (bad data, Consul, Caddy down), a rollback
        # after this run must undo this run's write only, never an earlier deployment.
        store.clear_pending(server)
    missing, waiting_notes = set(), []
    if missing_services == "keep":
        resolve = _keep_waiting(__salt__, missing)
    else:
        resolve = hecate_caddy_routes.consul_resolver(__salt__, test=bool(__opts__.get("test")))
    desired = hecate_caddy_routes.build(data, resolve_service=resolve, base=pillar_key)
    waiting = _waiting(desired, missing)
    held = _held(desired, data, test)
    discovery = hecate_consul_routes.for_states(__pillar__, __salt__, __opts__, __context__, data)
    planned, left_out = hecate_consul_routes.planner(desired, discovery, held={**waiting, **held})
    compute = _noting_waiting(planned, desired, waiting, waiting_notes)
    admin = hecate_clients.caddy(__opts__, __pillar__)
    try:
        out = hecate_caddy_apply.apply(
            admin,
            server,
            compute,
            test=test,
            store=store,
            retries=int(retries),
            listen=data.get("listen"),
            run_id=str((__pillar__.get("hecate_run") or {}).get("id") or "") or None,
            base=pillar_key,
            extra=lambda config: hecate_caddy_logs.plan(config, server, desired),
            known=[r.json for r in desired],  # a converged server costs one route set, not two
        )
    except hecate_http.Unreachable:
        if not (test and "caddy" in hecate_edge_jobs.enabled_jobs(__pillar__)):
            raise
        # a preview on an edge whose Caddy job this run deploys: Caddy starts from its
        # bootstrap, an empty server, so every route would be added to it
        _, changes = compute([])
        out = {"changes": changes, "notes": [
            "Caddy does not run yet (its job hecate-caddy is deployed by this run): the routes are "
            "planned against its bootstrap config, an empty server"], "conflicts": 0, "dropped": 0,
            "snapshot": None, "written": False}
    changes = out["changes"]
    where = f"Caddy server '{server}'"
    ret = hecate_state.result(
        ret,
        changes,
        test,
        would=f"would update the hecate routes of {where} ({_count(changes)}) in one guarded write",
        did=(
            f"updated the hecate routes of {where} ({_count(changes)}) in one guarded write"
            + (f" after {out['conflicts']} retries (Caddy changed meanwhile)" if out.get("conflicts") else "")
            + (f" ({out['dropped']} writes dropped by Caddy and checked)" if out.get("dropped") else "")
            + f"; previous routes kept as snapshot {out['snapshot']} (caddy.rollback restores them)"
        ),
    )
    if not changes:
        if discovery is None:
            ret["comment"] = f"the {len(desired)} hecate routes of {where} are as in pillar"
        else:
            count = len(desired) + len(discovery.services) - len(left_out)
            ret["comment"] = f"the {count} hecate routes of {where} are as in pillar and Consul"
    notes = (list(out["notes"]) + waiting_notes + (discovery.lines() if discovery is not None else [])
             + list(left_out))
    if notes:
        ret["comment"] += "\n" + "\n".join(notes)
    if held:
        ret["result"] = False
        ret["comment"] += "\n" + "\n".join(
            f"route '{name}' not switched to forward auth (kept as Caddy has it): its Authentik side "
            f"is not in place: {why}" for name, why in sorted(held.items())
        )
    elif not test:
        # this edge applied the routes: the rollback of a run that failed elsewhere keeps them
        store.settle(server, (__pillar__.get("hecate_run") or {}).get("id"))
    return ret


@hecate_state.guard
def absent(name, server=None, retries=3, pillar_key=hecate_caddy_routes.PILLAR_PATH):
    """
    Remove every hecate route of a Caddy server (``@id`` ``hecate.route.<name>``: the pillar's
    and those taken from Consul) and their access loggers, in ONE write guarded by the ETag it
    read, as :func:`managed` writes; the teardown of an environment (``ensure: absent``).
    Routes without a hecate ``@id`` and the ad-hoc routes of ``caddy_route.present`` stay, and
    so does the server itself. The previous routes are saved as a snapshot
    (``caddy.rollback`` restores them). A server that does not exist has nothing to remove.

    name
        State ID (free text).
    server
        The server under ``apps.http.servers`` (default: ``<pillar_key>:server``, else
        ``hecate``).
    retries
        How many times to re-read and retry after a 412 before failing.
    pillar_key
        Where the Caddy block lives in pillar (default ``hecate:reverse_proxy:caddy``).

    .. code-block:: yaml

        hecate caddy routes removed:
          caddy_routes.absent
    """
    ret = hecate_state.new(name)
    data = hecate_caddy_routes.caddy_data(__pillar__, pillar_key)
    if not isinstance(data, dict):
        ret.update(result=False, comment=f"pillar {pillar_key} must be a mapping")
        return ret
    server = server or data.get("server") or hecate_caddy_routes.DEFAULT_SERVER
    settings = hecate_config.connection("caddy", __opts__, __pillar__)
    store = hecate_caddy_client.SnapshotStore(settings.get("state_dir"), keep=data.get("keep_snapshots", 10))
    test = bool(__opts__.get("test"))
    if not test:
        store.clear_pending(server)  # a rollback after this run undoes this run's write only
    out = hecate_caddy_apply.apply(
        hecate_clients.caddy(__opts__, __pillar__),
        server,
        lambda live: hecate_caddy_routes.plan_set(live, []),
        test=test,
        store=store,
        retries=int(retries),
        run_id=str((__pillar__.get("hecate_run") or {}).get("id") or "") or None,
        base=pillar_key,
        extra=lambda config: hecate_caddy_logs.plan(config, server, []),
        missing_ok=True,
    )
    changes = out["changes"]
    where = f"Caddy server '{server}'"
    ret = hecate_state.result(
        ret,
        changes,
        test,
        would=f"would remove the hecate routes of {where} ({_count(changes)}) in one guarded write",
        did=(
            f"removed the hecate routes of {where} ({_count(changes)}) in one guarded write"
            + (f" after {out['conflicts']} retries (Caddy changed meanwhile)" if out.get("conflicts") else "")
            + f"; previous routes kept as snapshot {out['snapshot']} (caddy.rollback restores them)"
        ),
    )
    if not changes:
        ret["comment"] = f"{where} has no hecate route"
    if out["notes"]:
        ret["comment"] += "\n" + "\n".join(out["notes"])
    if not test:  # removed here: the rollback of a run that failed on another edge keeps that
        store.settle(server, (__pillar__.get("hecate_run") or {}).get("id"))
    return ret


def _held(desired, data, test):
    """The protected routes whose Authentik side is not in place (route -> why)."""
    settings = data.get("forward_auth") if isinstance(data.get("forward_auth"), dict) else {}
    auths = [r.auth for r in desired if r.auth is not None]
    if not auths or settings.get("manage_authentik") is False:
        return {}
    if test and "authentik" in hecate_edge_jobs.enabled_jobs(__pillar__):
        # a preview of a run that deploys Authentik itself (orch.hecate on a bare edge): its
        # Authentik step, before this one, makes the routes' Authentik side; the real run checks
        return {}
    env = hecate_route_auth.environment(__pillar__, __grains__)

    def connect():
        return hecate_clients.authentik(__opts__, __pillar__, __context__, __salt__)

    return hecate_route_auth.caddy_guard(connect, auths, env, test)
