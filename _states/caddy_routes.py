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


@hecate_state.guard
def managed(name, server=None, retries=3, pillar_key=hecate_caddy_routes.PILLAR_PATH):
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
    desired = hecate_caddy_routes.build(
        data,
        resolve_service=hecate_caddy_routes.consul_resolver(__salt__, test=bool(__opts__.get("test"))),
        base=pillar_key,
    )
    admin = hecate_caddy_client.CaddyAdmin(settings)
    try:
        out = hecate_caddy_routes.apply(
            admin,
            server,
            lambda live: hecate_caddy_routes.plan_set(live, desired),
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
        _, changes = hecate_caddy_routes.plan_set([], desired)
        out = {"changes": changes, "notes": [
            "Caddy does not run yet (its job hecate-caddy is deployed by this run): the routes are "
            "planned against its bootstrap config, an empty server"], "conflicts": 0, "dropped": 0}
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
    if out["notes"]:
        ret["comment"] += "\n" + "\n".join(out["notes"])
    return ret
