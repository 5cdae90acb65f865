"""
Writing hecate's routes into Caddy: the guarded apply (read with the ETag, compute, one
``If-Match`` write, retried on 412 and on a write Caddy dropped) with a snapshot of what it
replaced, and the rollback that restores snapshots only where the live value is still what
hecate wrote. The route set itself comes from ``hecate_caddy_routes``.
"""

import os
import re

import salt.exceptions

import hecate_caddy_client
import hecate_caddy_routes
import hecate_http


# -- the guarded apply -----------------------------------------------------------------------------
def _nested(parts, value):
    for part in reversed(parts):
        value = {part: value}
    return value


def _server_missing(config, server, base=hecate_caddy_routes.PILLAR_PATH):
    names = sorted((hecate_caddy_client.traverse(config, ("apps", "http", "servers")) or {}).keys())
    have = f" (it has: {', '.join(names)})" if names else ""
    return salt.exceptions.CommandExecutionError(
        f"Caddy has no HTTP server '{server}'{have}; set {base}:server to one of them, "
        f"or {base}:listen to let hecate create it"
    )


# -- listener addresses of a server hecate creates ---------------------------------------------------
# Caddy's HTTP app refuses a config in which two servers list the same listener address
# (modules/caddyhttp/app.go, App.Validate: "listener address repeated: ... (already claimed by
# server ...)"; the admin API answers 500 "loading new config: ..." and keeps the old config). It
# compares the addresses as written (after caddy.ParseNetworkAddress, network "tcp" by default), so
# ":443" and "127.0.0.1:443" pass; Caddy then binds both with SO_REUSEPORT (listen_unix.go,
# reusePort) and the kernel gives each connection to ONE of the two servers, by destination
# address: the other server's sites stop answering there. Checked on the real Caddy in
# tests/functional/test_caddy_caddyfile.py. hecate refuses both before it writes.
_WILDCARD_HOSTS = ("", "0.0.0.0", "::")  # compared with, never bound


def parse_listener(addr):
    """
    A Caddy listener address (``[network/]host:port[-port]``) -> ``(family, ip_version, host,
    first_port, last_port)``, host "" for a wildcard; ``("unix", None, path, None, None)`` for
    a socket; None when hecate cannot judge it (placeholders, other networks).
    """
    if not isinstance(addr, str) or "{" in addr:
        return None
    match = re.match(r"^(?:([A-Za-z0-9]+)/)?(.*)$", addr.strip())
    network, rest = (match.group(1) or "tcp").lower(), match.group(2)
    if network.startswith("unix"):
        return ("unix", None, rest, None, None)
    family = network[:3]
    if family not in ("tcp", "udp") or network[3:] not in ("", "4", "6"):
        return None
    host, sep, ports = rest.rpartition(":")
    if not sep:
        return None
    host = host.strip("[]").lower()
    first, _, last = ports.partition("-")
    try:
        first, last = int(first), int(last or first)
    except ValueError:
        return None
    version = network[3:] or None
    if host in _WILDCARD_HOSTS:
        host = ""
    elif re.match(r"^[0-9.]+$", host):
        version = version or "4"
    elif ":" in host:
        version = version or "6"
    return (family, version, host, first, last)


def _listeners_overlap(one, two):
    if one[0] != two[0]:
        return False
    if one[0] == "unix":
        return one[2] == two[2]
    if one[1] and two[1] and one[1] != two[1]:
        return False
    if one[2] and two[2] and one[2] != two[2]:
        return False
    return one[3] <= two[4] and two[3] <= one[4]


def listener_conflicts(config, server, listen):
    """``[(our_address, other_server, its_address)]``: addresses of ``listen`` another server holds."""
    servers = hecate_caddy_client.traverse(config, ("apps", "http", "servers")) or {}
    found = []
    for ours in listen or []:
        mine = parse_listener(ours)
        if mine is None:
            continue
        for name, obj in sorted(servers.items()):
            if name == server or not isinstance(obj, dict):
                continue
            for theirs in obj.get("listen") or []:
                other = parse_listener(theirs)
                if other is not None and _listeners_overlap(mine, other):
                    found.append((ours, name, theirs))
    return found


class ListenerTaken(salt.exceptions.CommandExecutionError):
    """The server hecate would create listens where another server already does."""

    def __init__(self, server, found, base=hecate_caddy_routes.PILLAR_PATH):
        self.server, self.found = server, list(found)
        lines = [
            f"- {base}:listen {ours!r}: Caddy server '{name}' already listens on {theirs!r}"
            for ours, name, theirs in self.found
        ]
        other = self.found[0][1]
        super().__init__(
            f"hecate would create Caddy server '{server}' ({base}:server) on an address another "
            f"server holds; nothing was written:\n" + "\n".join(lines) + "\n"
            "Caddy refuses two servers on one listener address (\"listener address repeated\"), and "
            "when one address is a wildcard of the other it binds both but hands each connection to "
            "one server only, so the other server's sites stop answering there. Either set "
            f"{base}:server to '{other}' to manage hecate's routes inside that server (its own routes "
            "stay as they are, and hecate refuses a route one of them would shadow), or free the "
            f"address: take it out of '{other}' (e.g. the Caddyfile it was started from) or give "
            f"{base}:listen another one."
        )


# -- routes hecate wrote that Caddy no longer has ------------------------------------------------------
def _managed_id(rid):
    prefixes = (hecate_caddy_routes.ID_PREFIX, hecate_caddy_routes.ADHOC_PREFIX)
    return rid if isinstance(rid, str) and rid.startswith(prefixes) else None


def hecate_id(route):
    """The route's ``@id`` when hecate manages it (``hecate.route.*``, ``hecate.adhoc.*``), else None."""
    return _managed_id(hecate_caddy_routes._rid(route))



def lost_routes_note(store, server, live):
    """
    A note when routes of hecate's last write to ``server`` (its newest snapshot) are no longer
    in ``live``, the server's routes now; None otherwise. Caddy forgets API changes when it
    starts without ``--resume`` or loads a config file (``caddy reload``, ``POST /load``, and in
    2.11 SIGUSR1 before any API change), and an unexplained "N added" hides that.
    """
    if store is None:
        return None
    try:
        snaps = store.list(server)
        record = store.written_routes(snaps[0]) if snaps else None
    except (OSError, salt.exceptions.SaltException):  # a note is not worth failing the run
        return None
    if not record:
        return None
    present = {hecate_id(r) for r in live or []}
    gone = [rid for rid in map(_managed_id, record.get("route_ids") or []) if rid and rid not in present]
    if not gone:
        return None
    names = ", ".join(rid.split(".", 2)[-1] for rid in gone)
    return (
        f"Caddy no longer has {len(gone)} route(s) hecate wrote to server '{server}' at "
        f"{record.get('time')} (snapshot {record.get('id')}): {names}. Caddy was restarted without "
        "--resume, or its config was replaced from a file (caddy reload, POST /load; SIGUSR1 on "
        "Caddy 2.11 before any API change), or someone removed them; caddy_routes.managed puts them "
        "back. Run Caddy with --resume so that API changes survive a restart."
    )


def _put(obj, rel, value):
    """
    ``obj`` with ``value`` at the relative path ``rel`` (None removes the key), as a new
    object: only the dicts on the path are copied, the rest is shared with ``obj`` (the
    config as read: at the root, a copy of all of it would cost as much as parsing it).
    """
    if not rel:
        return value
    obj = dict(obj) if isinstance(obj, dict) else {}
    if len(rel) == 1 and value is None:
        obj.pop(rel[0], None)
    else:
        obj[rel[0]] = _put(obj.get(rel[0]), rel[1:], value)
    return obj


def one_write(config, edits):
    """
    ``(path, before, value)`` of ONE write that makes every edit (``{path: value}``, value
    None removes the key): at the deepest existing common ancestor of the edited keys, so
    one ``If-Match`` guards them all (the root ``/config/`` when they share nothing).
    """
    paths = sorted(edits, key=len)
    if len(paths) == 1 and edits[paths[0]] is not None and hecate_caddy_client.traverse(config, paths[0]) is not None:
        at = tuple(paths[0])
    else:
        at = tuple(os.path.commonprefix([tuple(p[:-1]) for p in paths]))
    while at and hecate_caddy_client.traverse(config, at) is None:
        at = at[:-1]
    before = hecate_caddy_client.traverse(config, at)
    value = before
    for path in paths:
        value = _put(value, tuple(path[len(at):]), edits[path])
    return at, before, value


@hecate_caddy_client.in_bulk
def apply(admin, server, compute, test, store=None, retries=3, listen=None, run_id=None,
          base=hecate_caddy_routes.PILLAR_PATH, extra=None, missing_ok=False, known=None):
    """
    Read the whole config with its ETag, ``compute(live_routes) -> (new_routes, changes)``,
    and write the server's new routes array in ONE request guarded by ``If-Match``.

    ``extra(config) -> (edits, changes)`` adds edits outside the routes array (``{path:
    value}``: the access logs, :func:`hecate_caddy_logs.plan`); then the one write goes to the
    deepest common ancestor of everything that changes (:func:`one_write`), still one request
    guarded by the same ETag, and its snapshot holds that ancestor.

    On 412 (the config changed meanwhile) read again, recompute and retry, at most
    ``retries`` more times; then raise. Before writing, the previous value is saved in
    ``store`` (a :class:`hecate_caddy_client.SnapshotStore`) and marked pending for
    rollback (the whole-set state clears earlier marks before it starts).

    Caddy replaces its admin endpoint on every config change and may drop a request that
    arrives meanwhile (connection reset or closed without a response; caddy#5984), so
    when someone else changes Caddy at the same time, our write can be lost in transit
    *or* applied without us hearing back. Then the next read decides: if it already
    shows the wanted state, the dropped write landed (reported as written, its snapshot
    kept for rollback); otherwise it is retried like a 412 (it cannot apply twice: it
    is guarded by the ETag read before it). Drops have their own budget of ``retries``.

    A missing ``server`` is created with ``listen`` (and nothing else: Caddy's automatic
    HTTPS stays on), unless another server already listens there (:class:`ListenerTaken`,
    in a preview too); with ``missing_ok`` (a removal) a missing server means nothing to do.
    ``base`` is the pillar key messages name.

    ``known``: the route objects ``compute`` compares with (the built routes' JSON). The
    config is read with them (:meth:`hecate_caddy_client.CaddyAdmin.get`), so a live route
    equal to one of them is that very object: a converged server then costs the memory of
    one route set, not two, and the plan finds it unchanged by identity. Nothing else differs.
    Returns ``{"changes", "written", "attempts", "snapshot", "notes", "conflicts", "dropped"}``.
    """
    parts = hecate_caddy_client.server_parts(server)
    notes = []
    conflicts = dropped = 0
    uncertain = None  # (snapshot, changes) of a write whose answer was lost

    def done(changes, written, attempt, snap):
        return {"changes": changes, "written": written, "attempts": attempt, "snapshot": snap,
                "notes": notes, "conflicts": conflicts, "dropped": dropped}

    attempt = 0
    while True:
        attempt += 1
        # Unreachable here keeps an uncertain write's marker
        config, etag = admin.get(known=known) if known else admin.get()
        server_obj = hecate_caddy_client.traverse(config, parts)
        if server_obj is None and missing_ok:
            return done({}, False, attempt, None)
        if server_obj is None and not listen:
            raise _server_missing(config, server, base)
        if server_obj is None:
            taken = listener_conflicts(config, server, listen)
            if taken:
                raise ListenerTaken(server, taken, base)
        if server_obj is not None and not isinstance(server_obj, dict):
            raise salt.exceptions.CommandExecutionError(f"Caddy server '{server}' is not an object")
        live = (server_obj or {}).get("routes")
        if live is not None and not isinstance(live, list):
            raise salt.exceptions.CommandExecutionError(f"Caddy server '{server}': routes is not a list")
        try:
            new_routes, changes = compute(live or [])
        except hecate_caddy_routes.ShadowedRoutes as exc:
            raise exc.on(server) from None
        edits, more = extra(config) if extra is not None else ({}, {})
        if more:
            changes = dict(changes, **more)
        if server_obj is not None and ((config.get("admin") or {}).get("config") or {}).get("persist") is False:
            notes.append("Caddy's admin.config.persist is false: API changes are lost when Caddy restarts")
        lost = lost_routes_note(store, server, live) if attempt == 1 else None
        if lost:
            notes.append(lost)
        if server_obj is None:
            changes = dict(changes)
            changes["server"] = {"old": None, "new": {"listen": list(listen)}}
        if uncertain is not None:
            snap, sent = uncertain
            uncertain = None
            if not changes:  # the dropped write did land
                return done(sent, True, attempt, snap)
            if store is not None:
                store.pop_pending(server, snap)
        if not changes:
            return done({}, False, attempt, None)
        if test:
            return done(changes, False, attempt, None)
        if dropped > retries:
            raise hecate_http.Unreachable(
                f"Caddy admin API dropped hecate's write {dropped} times (it restarts its admin "
                f"endpoint on every config change: someone else is changing Caddy); nothing was "
                f"written - try again when they are done"
            )
        if edits:
            edits = dict(edits)
            if server_obj is None:
                edits[parts] = {"listen": list(listen), "routes": new_routes}
            elif new_routes != (live or []) or "routes" not in server_obj:
                edits[parts + ("routes",)] = new_routes
            path, before, value = one_write(config, edits)
            method = "PATCH"
        elif server_obj is None:
            # create the server at the deepest key that exists (never rewrite the admin block)
            if not isinstance(config, dict):
                raise salt.exceptions.CommandExecutionError(
                    "Caddy has no config at all; start it with a base config (admin listener) "
                    "before hecate creates servers in it"
                )
            k = 0
            while hecate_caddy_client.traverse(config, parts[: k + 1]) is not None:
                k += 1
            path = parts[: k + 1]
            value = _nested(parts[k + 1:], {"listen": list(listen), "routes": new_routes})
            method, before = "PUT", None
        elif "routes" in server_obj:
            path, value, method, before = parts + ("routes",), new_routes, "PATCH", live
        else:
            path, value, method, before = parts + ("routes",), new_routes, "PUT", None
        snap = None
        data = hecate_caddy_client.encode(value)  # once: the request body and the snapshot's "after"
        if store is not None:
            snap = store.save(server, path, before, value, config, run_id=run_id, after_data=data)
            store.push_pending(server, snap)
        try:
            admin.write(method, hecate_caddy_client.config_path(*path), value, etag, data=data)
        except hecate_caddy_client.PreconditionFailed:
            conflicts += 1
            if store is not None:
                store.pop_pending(server, snap)
            if conflicts > retries:
                raise salt.exceptions.CommandExecutionError(
                    f"Caddy config changed between read and write {conflicts} times in a row "
                    f"(412 Precondition Failed); nothing was written. Someone else is changing "
                    f"Caddy: try again when they are done"
                ) from None
            continue
        except hecate_http.HTTPError as exc:
            # Caddy answered: it refused the change and kept its config, nothing to undo.
            if store is not None:
                store.pop_pending(server, snap)
            raise _refused(exc, server, new_routes) from None
        except hecate_http.Unreachable:
            # No answer: the write may have landed. The marker stays; the next read tells.
            dropped += 1
            uncertain = (snap, changes)
            continue
        return done(changes, True, attempt, snap)


def _refused(exc, server, routes):
    """
    Caddy refused the new routes: its error names the route by position ("route 11:
    loading handler modules: ..."); say which of ours that is and that nothing changed.
    """
    match = re.search(r"\broute (\d+):", str(exc))
    index = int(match.group(1)) if match else None
    if index is None or not 0 <= index < len(routes) or not isinstance(routes[index], dict):
        return exc
    name = routes[index].get("@id") or f"the route for {_route_hosts(routes[index]) or 'no host'}"
    return hecate_http.HTTPError(
        f"Caddy refused route {name} (route {index} of server '{server}'); nothing was written: {exc}",
        status=exc.status, body=exc.body,
    )


def _route_hosts(route):
    hosts = []
    for matcher in route.get("match") or []:
        if isinstance(matcher, dict):
            hosts.extend(str(h) for h in matcher.get("host") or [])
    return ", ".join(hosts)


# -- rollback ---------------------------------------------------------------------------------------
@hecate_caddy_client.in_bulk
def rollback(admin, store, server=None, snapshot=None, force=False, test=False, retries=3,
             restore="before", run_id=None, only_failed=False):
    """
    Undo hecate's writes: every pending snapshot (of ``server``, or of all servers),
    newest first, or the one named ``snapshot``. Each restore is guarded: it happens only
    when the live value is still what hecate wrote (``force=True`` restores anyway), in
    one write with ``If-Match``. Returns ``{"restored": [...], "skipped": [...]}``.

    ``restore="after"`` (with ``snapshot``) puts back what that write applied instead of
    what it replaced: the config of a recorded deployment (``hecate.rollback``).
    ``run_id`` limits the undo to the writes of that orchestration run (an onfail step
    after a run whose Caddy step never ran must not undo the previous run's write);
    ``only_failed`` (with ``run_id``) also spares the writes whose route state of that run
    succeeded (:meth:`SnapshotStore.settle`): on several edges, one edge's failing Caddy
    does not undo the routes another edge applied.
    """
    if restore not in ("before", "after"):
        raise salt.exceptions.SaltInvocationError("restore must be 'before' or 'after'")
    if restore == "after" and not snapshot:
        raise salt.exceptions.SaltInvocationError("restore='after' needs a snapshot")
    other = "after" if restore == "before" else "before"
    if snapshot:
        todo = [store.load(snapshot)]
    else:
        ids = []
        for srv, snaps in store.pending().items():
            if server is None or srv == hecate_caddy_client.safe_name(server):
                ids.extend(snaps)
        todo = [store.load(sid) for sid in sorted(ids, reverse=True)]
        if run_id is not None:
            todo = [record for record in todo if record.get("run") == str(run_id)]
    restored, skipped = [], []
    if only_failed and run_id is not None and not snapshot:
        settled = store.settled()
        for record in [r for r in todo if settled.get(hecate_caddy_client.safe_name(r["server"])) == str(run_id)]:
            todo.remove(record)
            skipped.append({"snapshot": record["id"], "reason": "this run's routes were applied here: kept"})
    for record in todo:
        path = tuple(record["path"])
        where = hecate_caddy_client.config_path(*path)
        sent = False  # a restore whose answer was lost (see apply)
        for _ in range(retries + 1):
            config, etag = admin.get()
            current = hecate_caddy_client.traverse(config, path)
            if current == record[restore]:
                if sent:
                    restored.append({"snapshot": record["id"], "path": where})
                else:
                    skipped.append({"snapshot": record["id"], "reason": "already at the saved config"})
                break
            sent = False
            if current != record[other] and not force:
                raise salt.exceptions.CommandExecutionError(
                    f"Caddy config at {where} changed since hecate wrote it (snapshot "
                    f"{record['id']}); not restoring over someone else's change "
                    f"(caddy.rollback force=True restores anyway)"
                )
            if test:
                restored.append({"snapshot": record["id"], "path": where, "would": True})
                break
            try:
                if record[restore] is None:
                    admin.write("DELETE", where, None, etag)
                elif current is None:
                    admin.write("PUT", where, record[restore], etag)
                else:
                    admin.write("PATCH", where, record[restore], etag)
            except hecate_caddy_client.PreconditionFailed:
                continue
            except hecate_http.Unreachable:
                sent = True  # may have landed: the next read tells
                continue
            restored.append({"snapshot": record["id"], "path": where})
            break
        else:
            raise salt.exceptions.CommandExecutionError(
                f"Caddy config kept changing while restoring snapshot {record['id']} "
                f"(412 {retries + 1} times); nothing was restored"
            )
        if not test and restore == "before":
            store.pop_pending(record["server"], record["id"])
    return {"restored": restored, "skipped": skipped}

