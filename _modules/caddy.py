"""
caddy execution module: Caddy's Admin API, and hecate's routes from pillar.

The admin endpoint comes from ``hecate:connections:caddy`` (minion config wins over pillar;
see docs/systems/caddy.md): ``admin_url`` (default ``http://127.0.0.1:2019``), optional ``origin``
(sent as the ``Origin`` header), ``verify``/``ca_bundle`` for an https admin endpoint,
``state_dir`` (root-only directory for config snapshots, default ``/var/lib/hecate/caddy``).

The route set is built from pillar ``hecate:reverse_proxy:caddy`` (``caddy.desired_routes``),
compared with the live config (``caddy.drift``) and applied by the ``caddy_routes.managed``
state in one guarded write; ``caddy.rollback`` restores what that write replaced. With
``hecate:reverse_proxy:caddy:consul_routes`` the set also holds the routes of the Consul
services carrying its tag (``caddy.consul_routes`` shows them and the services skipped).
``caddy.certificates`` reads the certificate Caddy serves for each route domain.

CLI Example:

.. code-block:: bash

    salt -G 'roles:hecate-edge' caddy.config apps/http/servers
    salt -G 'roles:hecate-edge' caddy.drift
    salt -G 'roles:hecate-edge' caddy.rollback
    salt -C 'G@roles:hecate-edge and G@hecate_env:prod' caddy.drift
"""

import hashlib
import json

import salt.exceptions

import hecate_caddy_apply
import hecate_caddy_client
import hecate_caddy_logs
import hecate_caddy_routes
import hecate_clients
import hecate_config
import hecate_consul_routes
import hecate_loader
import hecate_route_checks

__virtualname__ = "caddy"


def __virtual__():
    return hecate_loader.virtual(__virtualname__)


# -- helpers -------------------------------------------------------------------------------------
def _admin():
    return hecate_clients.caddy(__opts__, __pillar__)


def _data():
    data = hecate_caddy_routes.caddy_data(__pillar__)
    return data if isinstance(data, dict) else {}


def _server(server=None):
    return server or _data().get("server") or hecate_caddy_routes.DEFAULT_SERVER


def _store():
    settings = hecate_config.connection("caddy", __opts__, __pillar__)
    return hecate_caddy_client.SnapshotStore(
        settings.get("state_dir"), keep=_data().get("keep_snapshots", 10)
    )


def _json_arg(value, what):
    if isinstance(value, (bytes, str)):
        try:
            return json.loads(value)
        except ValueError as exc:
            raise salt.exceptions.SaltInvocationError(f"{what} is not valid JSON: {exc}") from None
    return value


def _parts(path):
    return [p for p in str(path or "").strip("/").split("/") if p]


# -- the Admin API -----------------------------------------------------------------------------
def config(path="", etag=False):
    """
    The config at ``path`` (below ``/config/``; the whole config when empty). With
    ``etag=True`` returns ``{"value": ..., "etag": ...}``; the ETag can be passed to the
    write functions to guard them (``If-Match``).

    CLI Example:

    .. code-block:: bash

        salt -G 'roles:hecate-edge' caddy.config
        salt -G 'roles:hecate-edge' caddy.config apps/http/servers/hecate/routes etag=True
    """
    value, tag = _admin().get(*_parts(path))
    return {"value": value, "etag": tag} if etag else value


def load(config, force=False):  # pylint: disable=redefined-outer-name
    """
    Replace Caddy's whole config (``POST /load``). Unguarded (Caddy ignores If-Match on
    /load) and not snapshotted: for disaster recovery, not for routes (use the states).
    ``force=True`` reloads even an identical config.

    CLI Example:

    .. code-block:: bash

        salt -G 'roles:hecate-edge' caddy.load "$(cat caddy.json)"
    """
    cfg = _json_arg(config, "config")
    if not isinstance(cfg, dict):
        raise salt.exceptions.SaltInvocationError("config must be a JSON object")
    _admin().load(cfg, force=force)
    return True


def adapt(caddyfile=None, path=None, adapter="caddyfile"):
    """
    Convert a Caddyfile (text, or a file on the minion) to Caddy JSON with Caddy's own
    adapter (``POST /adapt``); nothing is loaded. Returns ``{"result", "warnings"}``.

    CLI Example:

    .. code-block:: bash

        salt -G 'roles:hecate-edge' caddy.adapt path=/opt/hecate/Caddyfile
    """
    if (caddyfile is None) == (path is None):
        raise salt.exceptions.SaltInvocationError("give either caddyfile (text) or path")
    if path is not None:
        try:
            with open(path, encoding="utf-8") as fh:
                caddyfile = fh.read()
        except OSError as exc:
            raise salt.exceptions.CommandExecutionError(f"cannot read {path}: {exc.strerror}") from None
    result, warnings = _admin().adapt(caddyfile, adapter=adapter)
    return {"result": result, "warnings": warnings}


def upstreams():
    """
    Health of the reverse proxy upstreams (``GET /reverse_proxy/upstreams``):
    ``[{"address", "num_requests", "fails"}]``.

    CLI Example:

    .. code-block:: bash

        salt -G 'roles:hecate-edge' caddy.upstreams
    """
    return _admin().upstreams()


def routes(server=None):
    """
    The routes of a server (default: pillar ``hecate:reverse_proxy:caddy:server``).

    CLI Example:

    .. code-block:: bash

        salt -G 'roles:hecate-edge' caddy.routes
        salt -G 'roles:hecate-edge' caddy.routes server=srv0
    """
    server = _server(server)
    value = _admin().config(*hecate_caddy_client.server_parts(server))
    if value is None:
        raise salt.exceptions.CommandExecutionError(f"Caddy has no HTTP server '{server}'")
    return value.get("routes") or []


def routes_version(server=None):
    """
    Which hecate routes this edge's Caddy serves, for the deployment record: ``sha256`` of
    the server's routes carrying a hecate ``@id`` (in order; edges serving the same routes
    have the same digest), their number, and ``last_write``: the newest snapshot of
    hecate's route states here (its id, time and orchestration run). When Caddy does not
    answer, ``error`` says why instead of the digest (retcode 1) and ``last_write`` still
    shows what was written here last.

    CLI Example:

    .. code-block:: bash

        salt -G 'roles:hecate-edge' caddy.routes_version
    """
    server = _server(server)
    out = {"server": server, "last_write": None}
    store = _store()
    snaps = store.list(server)
    if snaps:
        written = store.written_routes(snaps[0])
        out["last_write"] = {k: written.get(k) for k in ("id", "time", "run")}
    try:
        live = _admin().config(*hecate_caddy_client.server_parts(server))
    except salt.exceptions.CommandExecutionError as exc:
        __context__["retcode"] = 1
        return dict(out, error=str(exc))
    managed = [r for r in ((live or {}).get("routes") or []) if hecate_caddy_apply.hecate_id(r)]
    digest = hashlib.sha256(json.dumps(managed, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    return dict(out, sha256=digest, routes=len(managed))


def route_get(route_id):
    """
    The config object carrying ``@id`` ``route_id`` (``GET /id/<id>``).

    CLI Example:

    .. code-block:: bash

        salt -G 'roles:hecate-edge' caddy.route_get hecate.route.nextcloud
    """
    return _admin().get_id(route_id)


def route_add(route, server=None, index=None, etag=None):
    """
    Add a route object (JSON; it must carry an ``@id``) to a server: appended, or inserted
    at ``index``. ``etag`` (from ``caddy.config etag=True``) guards the write. Caddy refuses
    a duplicate ``@id``.

    CLI Example:

    .. code-block:: bash

        salt -G 'roles:hecate-edge' caddy.route_add \\
            '{"@id": "x", "match": [{"host": ["x.example"]}], "handle": [{"handler": "static_response", "body": "hi"}]}'
    """
    obj = _json_arg(route, "route")
    if not isinstance(obj, dict) or not obj.get("@id"):
        raise salt.exceptions.SaltInvocationError("route must be a JSON object with an @id")
    parts = hecate_caddy_client.server_parts(_server(server)) + ("routes",)
    if index is None:
        _admin().write("POST", hecate_caddy_client.config_path(*parts), obj, etag)
    else:
        _admin().write("PUT", hecate_caddy_client.config_path(*parts, int(index)), obj, etag)
    return True


def route_replace(route_id, route, etag=None):
    """
    Replace the object carrying ``@id`` ``route_id`` (``PATCH /id/<id>``); the new object
    keeps that ``@id`` unless it names its own. Always guarded by ``If-Match``: ``etag``
    (from ``caddy.config etag=True``; a 412 then fails), else the ETag of a fresh read
    (retried on 412), because Caddy resolves an ``@id`` before it locks its config and an
    unguarded write racing another change can hit a different object.

    CLI Example:

    .. code-block:: bash

        salt -G 'roles:hecate-edge' caddy.route_replace x \\
            '{"match": [{"host": ["x.example"]}], "handle": [{"handler": "static_response", "body": "bye"}]}'
    """
    obj = _json_arg(route, "route")
    if not isinstance(obj, dict):
        raise salt.exceptions.SaltInvocationError("route must be a JSON object")
    obj = dict(obj)
    obj.setdefault("@id", route_id)
    _admin().write_id("PATCH", route_id, obj, etag)
    return True


def route_delete(route_id, etag=None):
    """
    Delete the object carrying ``@id`` ``route_id`` (``DELETE /id/<id>``), guarded like
    ``caddy.route_replace``.

    CLI Example:

    .. code-block:: bash

        salt -G 'roles:hecate-edge' caddy.route_delete x
    """
    _admin().write_id("DELETE", route_id, None, etag)
    return True


# -- hecate's route set ------------------------------------------------------------------------
def _desired(data):
    """``(pillar routes, discovery)``: what the caddy_routes.managed state builds now."""
    built = hecate_caddy_routes.build(data, resolve_service=hecate_caddy_routes.consul_resolver(__salt__))
    return built, hecate_consul_routes.for_states(__pillar__, __salt__, __opts__, None, data)


def desired_routes(server=None):  # pylint: disable=unused-argument
    """
    The route objects hecate builds from pillar ``hecate:reverse_proxy:caddy`` (Consul
    upstreams resolved now) and, with ``consul_routes``, from the Consul services carrying
    its tag, in the order they are written (exact domains before wildcards). Nothing is read
    from Caddy.

    CLI Example:

    .. code-block:: bash

        salt -G 'roles:hecate-edge' caddy.desired_routes
    """
    built, discovery = _desired(_data())
    routes = list(built) + (discovery.routes if discovery is not None else [])
    return [r.json for r in sorted(routes, key=lambda r: r.wildcard)]


def consul_routes():
    """
    The routes hecate takes from Consul now (``hecate:reverse_proxy:caddy:consul_routes``):
    per route its service, domains, upstreams (the passing instances), forward auth and
    policies; the services carrying the tag that get no route, each with the reason (no
    ``meta.hecate_domain``, a domain pillar has, no passing instance, bad meta ...); notes.
    Nothing is written. ``{"enabled": False}`` without ``consul_routes`` in pillar.

    CLI Example:

    .. code-block:: bash

        salt -G roles:hecate-edge caddy.consul_routes
    """
    discovery = hecate_consul_routes.for_states(__pillar__, __salt__, __opts__, None, _data())
    if discovery is None:
        return {"enabled": False, "comment": f"{hecate_consul_routes.PILLAR_PATH} is not set (or enabled: false)"}
    return dict(discovery.report(), enabled=True)


def certificates(domains=None, server=None, warn_days=None, timeout=5):
    """
    The certificate Caddy serves for each route domain: a TLS handshake with the domain as
    SNI on the server's own listen addresses (a wildcard address is asked on loopback), and
    per domain the issuer, the names, ``not_after``, ``days_left``, ``expiring`` (fewer than
    ``warn_days`` left; default ``hecate:reverse_proxy:caddy:certificates:warn_days``, 14)
    and ``ok``. A server that answers TLS with plain text (an HTTP-only listener) has every
    domain ``skipped: no TLS listener``, which is not a failure.

    domains
        The domains to ask for (a list or comma-separated); default: the hosts of the
        server's hecate routes (``@id`` hecate.route.* and hecate.adhoc.*).
    server
        The server under ``apps.http.servers`` (default ``hecate:reverse_proxy:caddy:server``).

    CLI Example:

    .. code-block:: bash

        salt -G roles:hecate-edge caddy.certificates
        salt -G roles:hecate-edge caddy.certificates domains=chat.codemonkey.ai warn_days=30
    """
    server = _server(server)
    value = _admin().config(*hecate_caddy_client.server_parts(server))
    if not isinstance(value, dict):
        raise salt.exceptions.CommandExecutionError(f"Caddy has no HTTP server '{server}'")
    if isinstance(domains, str):
        domains = [d.strip() for d in domains.split(",") if d.strip()]
    domains = [str(d).lower().rstrip(".") for d in domains] if domains else hecate_route_checks.route_hosts(
        value.get("routes"))
    if warn_days is None:
        warn_days = (_data().get("certificates") or {}).get("warn_days", hecate_route_checks.WARN_DAYS)
    out = hecate_route_checks.check_certificates(value.get("listen"), domains, int(warn_days), float(timeout))
    return dict(out, server=server, warn_days=int(warn_days))


def drift(server=None):
    """
    What differs between pillar and the live Caddy, without changing anything: the same
    per-route ``added``/``removed``/``changed`` the ``caddy_routes.managed`` state would
    report. One read. Fails as the state does when a pillar route would never serve (an
    earlier route hecate does not manage takes every request for one of its domains), or
    when the server it would create listens where another server does. ``notes`` (only
    when there are some) says e.g. that Caddy lost routes hecate wrote (restarted without
    ``--resume``, or reloaded from its config file): a run of the state puts them back;
    and which Consul services get no route, and why.

    CLI Example:

    .. code-block:: bash

        salt -G 'roles:hecate-edge' caddy.drift
    """
    server = _server(server)
    data = _data()
    built, discovery = _desired(data)
    compute, left_out = hecate_consul_routes.planner(built, discovery)
    out = hecate_caddy_apply.apply(
        _admin(),
        server,
        compute,
        test=True,
        store=_store(),  # read only (test=True): to tell routes Caddy lost from new ones
        listen=data.get("listen"),
        extra=lambda config: hecate_caddy_logs.plan(config, server, built),
        known=[r.json for r in built],
    )
    ret = {"server": server, "in_sync": not out["changes"], "changes": out["changes"]}
    notes = list(out["notes"]) + (discovery.lines() if discovery is not None else []) + list(left_out)
    if notes:
        ret["notes"] = notes
    return ret


def rollback(server=None, snapshot=None, force=False, test=False, restore="before", run_id=None, only_failed=False):
    """
    Restore the Caddy config that the last run of hecate's Caddy states replaced (all
    servers, or ``server``), or the one saved in ``snapshot``. Each restore is one write
    guarded by ``If-Match`` and happens only if the live value is still what hecate wrote;
    ``force=True`` restores over later changes too. Meant for an orchestration ``onfail``
    step; with nothing to roll back it succeeds and says so.

    CLI Example:

    .. code-block:: bash

        salt -G 'roles:hecate-edge' caddy.rollback
        salt -G 'roles:hecate-edge' caddy.rollback snapshot=20260101T120000.000000Z-hecate force=True
        salt -G 'roles:hecate-edge' caddy.rollback snapshot=20260101T120000.000000Z-hecate restore=after force=True

    restore
        ``before`` (default): what the write replaced. ``after`` (with ``snapshot``): what
        the write applied, i.e. the routes of a recorded deployment.
    run_id
        Undo only the writes of that orchestration run (its onfail step passes it).
    only_failed
        With ``run_id``: keep the writes whose route state of that run succeeded on this
        minion (the orchestration's rollback after a failing Caddy step: on several edges,
        the edges that applied the routes keep them; those that failed are put back).
    """
    out = hecate_caddy_apply.rollback(
        _admin(), _store(), server=server, snapshot=snapshot, force=force, test=test,
        restore=restore, run_id=run_id, only_failed=only_failed,
    )
    kept = [s for s in out["skipped"] if s.get("reason", "").endswith(": kept")]
    if kept and not out["restored"]:
        out["comment"] = "nothing to roll back: this run's routes were applied on this edge and stay"
    elif not out["restored"] and not out["skipped"]:
        out["comment"] = "nothing to roll back: the last run of the Caddy states wrote nothing"
    elif test:
        out["comment"] = f"would restore {len(out['restored'])} Caddy config(s)"
    else:
        out["comment"] = f"restored {len(out['restored'])} Caddy config(s)"
    return out


def snapshots(server=None):
    """
    The config snapshots kept on this minion (newest first) and the ones a rollback
    would restore.

    CLI Example:

    .. code-block:: bash

        salt -G 'roles:hecate-edge' caddy.snapshots
    """
    store = _store()
    return {"snapshots": store.list(server), "pending": store.pending()}
