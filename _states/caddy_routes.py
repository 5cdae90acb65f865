"""
caddy_routes: the whole hecate route set of a Caddy server, from pillar.

.. code-block:: yaml

    hecate caddy routes:
      caddy_routes.managed: []        # server, routes etc. from hecate:reverse_proxy:caddy

Compares the routes built from pillar ``hecate:reverse_proxy:caddy`` with the routes of
the live server that carry a hecate ``@id`` (``hecate.route.<name>``), reports each route
added / removed / changed, and applies everything in ONE write guarded by ``If-Match``
(the ETag of the config it read). If Caddy changed meanwhile (412) it reads again,
re-diffs and retries, so a route or setting someone else added is kept. Routes without a
hecate ``@id`` are never touched. Before writing, the previous routes are saved on the
minion; ``caddy.rollback`` restores them.
"""

import json

import salt.exceptions

try:
    import hecate_caddy_client
    import hecate_caddy_routes
    import hecate_config
    import hecate_edge_jobs
    import hecate_http
    import hecate_state
except ImportError:  # installed with pip
    from saltext.hecate.utils import (
        hecate_caddy_client,
        hecate_caddy_routes,
        hecate_config,
        hecate_edge_jobs,
        hecate_http,
        hecate_state,
    )

__virtualname__ = "caddy_routes"


def __virtual__():
    return __virtualname__


def _count(changes):
    parts = []
    for key in ("added", "removed", "changed"):
        if changes.get(key):
            parts.append(f"{len(changes[key])} {key}")
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


def _with_waiting_kept(desired, missing, notes):
    """``compute(live)`` for plan_set where routes of ``missing`` services keep their live form."""
    marks = [hecate_caddy_routes.PENDING_UPSTREAM.format(s) for s in sorted(missing)]
    waiting = {r.id for r in desired if any(m in json.dumps(r.json) for m in marks)}

    def compute(live):
        by_id = {route.get("@id"): route for route in live if isinstance(route, dict)}
        routes = []
        for route in desired:
            if route.id not in waiting:
                routes.append(route)
            elif route.id in by_id:
                routes.append(hecate_caddy_routes.Route(route.name, route.id, route.domains, by_id[route.id],
                                                        route.where))
        del notes[:]
        for route in desired:
            if route.id in waiting:
                how = "kept as Caddy has it" if route.id in by_id else "not added yet"
                notes.append(f"route {route.name}: {how}: its Consul service has no passing instance "
                             f"({', '.join(sorted(missing))}; orch.bionicgpt deploys BionicGPT's)")
        return hecate_caddy_routes.plan_set(live, routes)

    return compute


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
    through ``hecate_consul.service_addresses`` (passing instances only).
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
    compute = _with_waiting_kept(desired, missing, waiting_notes) if missing else \
        (lambda live: hecate_caddy_routes.plan_set(live, desired))
    admin = hecate_caddy_client.CaddyAdmin(settings)
    try:
        out = hecate_caddy_routes.apply(
            admin,
            server,
            compute,
            test=test,
            store=store,
            retries=int(retries),
            listen=data.get("listen"),
            run_id=str((__pillar__.get("hecate_run") or {}).get("id") or "") or None,
            base=pillar_key,
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
        ret["comment"] = f"the {len(desired)} hecate routes of {where} are as in pillar"
    if out["notes"] or waiting_notes:
        ret["comment"] += "\n" + "\n".join(out["notes"] + waiting_notes)
    return ret
