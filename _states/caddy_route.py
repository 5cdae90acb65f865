"""
caddy_route: one ad-hoc Caddy route, outside the pillar route set.

.. code-block:: yaml

    maintenance page:
      caddy_route.present:
        - name: maintenance
        - domain: status.example.com
        - backend: 127.0.0.1:8081
        - policies: [security]

    old route gone:
      caddy_route.absent:
        - name: maintenance

The route gets ``@id: hecate.adhoc.<name>``: ``caddy_routes.managed`` (which owns
``hecate.route.*``) leaves it alone, and this state never touches other routes. The
route fields are those of a pillar route (docs/systems/caddy.md); policies and the forward-auth
outpost come from pillar ``hecate:reverse_proxy:caddy``; ``forward_auth`` here writes the Caddy
half only (the Authentik side is made for pillar routes with ``auth``, hecate_route_auth).
Writes are one request guarded by
``If-Match``, retried after a 412, and snapshotted for ``caddy.rollback``.
"""

import hecate_caddy_apply
import hecate_caddy_client
import hecate_caddy_routes
import hecate_clients
import hecate_config
import hecate_loader
import hecate_state

__virtualname__ = "caddy_route"

ROUTE_FIELDS = (
    "domain",
    "domains",
    "backend",
    "upstream",
    "tls_skip_verify",
    "tls_server_name",
    "headers",
    "health_checks",
    "load_balancing",
    "forward_auth",
    "policies",
    "redirect",
    "respond",
    "dial_timeout",
    "response_header_timeout",
)


def __virtual__():
    return hecate_loader.virtual(__virtualname__)


def _context(server):
    data = hecate_caddy_routes.caddy_data(__pillar__)
    data = data if isinstance(data, dict) else {}
    settings = hecate_config.connection("caddy", __opts__, __pillar__)
    store = hecate_caddy_client.SnapshotStore(
        settings.get("state_dir"), keep=data.get("keep_snapshots", 10)
    )
    server = server or data.get("server") or hecate_caddy_routes.DEFAULT_SERVER
    return data, hecate_clients.caddy(__opts__, __pillar__), store, server


@hecate_state.guard
def present(name, server=None, index=None, retries=3, **kwargs):
    """
    Ensure the ad-hoc route ``name`` exists with exactly these fields.

    name
        Route name (``[a-z0-9_-]``); its ``@id`` is ``hecate.adhoc.<name>``.
    route fields
        As for a pillar route: ``domain``/``domains``, ``backend``/``upstream``,
        ``tls_skip_verify``, ``tls_server_name``, ``headers``, ``health_checks``,
        ``load_balancing``, ``forward_auth``, ``policies`` (default: the pillar's
        ``default_policies``), ``redirect``, ``respond``, ``dial_timeout``,
        ``response_header_timeout``. Not ``access_log``: access logs live outside the
        routes, with the pillar route set (``caddy_routes.managed``).
    server
        Caddy server (default: pillar ``hecate:reverse_proxy:caddy:server``).
    index
        Where to insert a new route (default: the end of the server's routes).

    .. code-block:: yaml

        maintenance page:
          caddy_route.present:
            - domain: status.example.com
            - backend: 10.0.0.5:8080
    """
    unknown = sorted(k for k in kwargs if k not in ROUTE_FIELDS and not k.startswith("__"))
    if unknown:
        return {
            "name": name,
            "result": False,
            "changes": {},
            "comment": f"caddy_route.present: unknown argument(s): {', '.join(unknown)}"
            + ("; access_log is for pillar routes (caddy_routes.managed): access logs live outside "
               "a server's routes" if "access_log" in unknown else ""),
        }
    spec = {k: v for k, v in kwargs.items() if k in ROUTE_FIELDS and v is not None}
    spec["name"] = name
    data, admin, store, server = _context(server)
    errors = []
    route = hecate_caddy_routes.build_route(
        spec,
        f"caddy_route.present:{name}",
        data,
        resolve_service=hecate_caddy_routes.consul_resolver(__salt__, test=bool(__opts__.get("test"))),
        id_prefix=hecate_caddy_routes.ADHOC_PREFIX,
        errors=errors,
    )
    if errors:
        raise hecate_caddy_routes.RouteDataError(errors)
    test = bool(__opts__.get("test"))
    out = hecate_caddy_apply.apply(
        admin,
        server,
        lambda live: hecate_caddy_routes.plan_present(live, route, index),
        test=test,
        store=store,
        retries=int(retries),
    )
    ret = hecate_state.new(name, f"Caddy route '{name}' ({route.id}) is as requested")
    verb = "add" if "added" in out["changes"] else "update"
    return hecate_state.result(
        ret,
        out["changes"],
        test,
        would=f"would {verb} Caddy route '{name}' ({route.id}) on server '{server}'",
        did=f"{verb}d Caddy route '{name}' ({route.id}) on server '{server}'; snapshot {out['snapshot']}",
    )


@hecate_state.guard
def absent(name, server=None, retries=3):
    """
    Ensure the ad-hoc route ``name`` (``@id`` ``hecate.adhoc.<name>``) is not in the server.

    .. code-block:: yaml

        maintenance page:
          caddy_route.absent
    """
    route_id = hecate_caddy_routes.ADHOC_PREFIX + name
    _, admin, store, server = _context(server)
    test = bool(__opts__.get("test"))
    out = hecate_caddy_apply.apply(
        admin,
        server,
        lambda live: hecate_caddy_routes.plan_absent(live, route_id, name),
        test=test,
        store=store,
        retries=int(retries),
    )
    ret = hecate_state.new(name, f"Caddy route '{name}' ({route_id}) is absent")
    return hecate_state.result(
        ret,
        out["changes"],
        test,
        would=f"would remove Caddy route '{name}' ({route_id}) from server '{server}'",
        did=f"removed Caddy route '{name}' ({route_id}) from server '{server}'; snapshot {out['snapshot']}",
    )
