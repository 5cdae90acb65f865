"""
Caddy Admin API client (on the shared :class:`hecate_http.Client`) and the on-minion
snapshot store used for rollback.

API facts this relies on (Caddy 2.8+, checked against 2.11.7):

- ``GET /config/<path>`` answers with ``Etag: "<path> <hash>"``; a missing leaf is ``null``,
  traversal through a missing key is 400.
- Mutations (POST/PUT/PATCH/DELETE) accept ``If-Match: <that etag>``; when the config at the
  path named inside the ETag changed meanwhile Caddy answers 412 and changes nothing. An
  ETag of ``/config/`` therefore guards a write to any sub-path against *any* change.
  ``POST /load`` ignores If-Match, which is why hecate never uses it to apply routes.
- ``/id/<id>`` reaches the object carrying that ``@id``; a duplicate ``@id`` is a 400.
- A config that fails to provision is refused (400/500 "loading new config: ...") and
  Caddy keeps running the previous one.
- The admin endpoint checks the ``Host`` header unless it listens on a wildcard interface or
  a socket, and checks ``Origin`` when ``admin.enforce_origin`` is set *or* the request
  carries an ``Origin`` (admin.go, adminHandler.serveHTTP, checkHost, checkOrigin); allowed
  are ``admin.origins``, else the listen address (for loopback: ``localhost``, ``127.0.0.1``
  and ``[::1]`` with its port). Refusals are 403 "host not allowed: <host>" and "client is
  not allowed to access from origin '<origin>'" (``''`` when none was sent);
  :meth:`CaddyAdmin.request` says which setting to change.
- Before 2.8 (commit 4a0492f3e, caddy#6208) the ETag of ``GET /config/`` is an HTTP
  trailer, which ``requests`` cannot read: hecate refuses to write without it.
"""

import contextlib
import datetime
import functools
import gc
import json
import os
import re
import tempfile
import urllib.parse

import salt.exceptions

import hecate_config
import hecate_http

SYSTEM = "Caddy admin API"
JSON_HEADERS = {"Content-Type": "application/json"}


class PreconditionFailed(hecate_http.HTTPError):
    """412: the config changed between our read and our guarded write."""


@contextlib.contextmanager
def bulk():
    """
    Pause Python's cyclic garbage collector while a large config is parsed, built, compared or
    serialised. These are trees of hundreds of thousands of new dicts, lists and strings that
    hold no reference cycles, and every few hundred allocations make the collector walk them
    (and, in a minion, all of Salt's objects) again: at 10,000 routes that is most of the run
    (``json.loads`` of the 3 MB config 0.4 s against 0.05 s paused). Nested uses are fine;
    the collector is enabled again only if it was enabled on entry.

    On the way out, what was allocated meanwhile and is still alive (the built routes, a
    return value) is moved to the oldest generation without a pass over it (``gc.freeze()``
    then ``gc.unfreeze()``, which also resets the count that would trigger one): else the
    first allocation after ``gc.enable()`` walks all of it at once (0.03 s per exit at 10,000
    routes). Cycles among those objects are still collected, by the next full collection.
    Nothing in Salt or hecate freezes objects for its own ends, which this would undo.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.freeze()
            gc.unfreeze()
            gc.enable()


def in_bulk(func):
    """Run ``func`` inside :func:`bulk`."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        with bulk():
            return func(*args, **kwargs)

    return wrapper


def copy_json(value):
    """
    A copy of JSON data (dicts, lists, scalars): ``copy.deepcopy`` without its memo and
    dispatch, several times faster on the route trees hecate builds by the thousand.
    """
    if isinstance(value, dict):
        return {key: copy_json(val) for key, val in value.items()}
    if isinstance(value, list):
        return [copy_json(val) for val in value]
    return value


def config_path(*parts):
    """``config_path("apps", "http", "servers", "x")`` -> ``/config/apps/http/servers/x``."""
    out = []
    for part in parts:
        for piece in str(part).strip("/").split("/"):
            if piece:
                out.append(urllib.parse.quote(piece, safe="@.-_~:"))
    return "/config/" + "/".join(out)


def server_parts(server):
    return ("apps", "http", "servers", server)


class CaddyAdmin:
    """
    One Caddy admin endpoint.

    ``settings`` is the ``hecate:connections:caddy`` block (see :mod:`hecate_config`):
    ``admin_url``, optional ``origin`` (sent as the ``Origin`` header, for admin
    endpoints that enforce origins), ``timeout``, ``retries``, ``verify``, ``ca_bundle``.
    """

    def __init__(self, settings):
        url = settings.get("admin_url")
        if not url:
            raise salt.exceptions.SaltInvocationError(
                "hecate:connections:caddy:admin_url is not set (minion config or pillar)"
            )
        if not re.match(r"^https?://", url):
            raise salt.exceptions.SaltInvocationError(
                f"hecate:connections:caddy:admin_url must be an http(s):// URL, got {url!r}"
            )
        headers = {}
        if settings.get("origin"):
            headers["Origin"] = settings["origin"]
        self.settings = settings
        self.http = hecate_http.Client(
            url,
            SYSTEM,
            headers=headers,
            timeout=settings.get("timeout", 30),
            retries=settings.get("retries", 2),
            **hecate_config.tls_args(settings, "caddy"),
        )

    @classmethod
    def from_config(cls, opts, pillar, overrides=None):
        return cls(hecate_config.connection("caddy", opts, pillar, overrides))

    @property
    def stats(self):
        return self.http.stats

    def request(self, method, path, **kwargs):
        """``self.http.request``, with a 403 of Caddy's Host/Origin checks explained."""
        try:
            return self.http.request(method, path, **kwargs)
        except hecate_http.HTTPError as exc:
            if exc.status != 403:
                raise
            hint = refusal_hint(self.settings, str(exc))
            if not hint:
                raise
            raise hecate_http.HTTPError(f"{exc}. {hint}", status=exc.status, body=exc.body) from None

    def json(self, method, path, **kwargs):
        resp = self.request(method, path, **kwargs)
        if not resp.content:
            return None
        try:
            return resp.json()
        except ValueError:
            raise hecate_http.HTTPError(
                f"{SYSTEM}: {method} {path} returned a body that is not JSON", status=resp.status_code
            ) from None

    # -- reading ----------------------------------------------------------------------------
    @in_bulk
    def get(self, *parts, known=None):
        """
        ``(value, etag)`` of the config at ``parts`` (the whole config when empty).

        ``known``: route objects the caller holds already (JSON dicts with an ``@id``, e.g.
        the routes it is about to compare with); an object of the config that carries one
        of their ``@id`` s and equals it is returned as the caller's object (see
        :func:`shared_loads`). The value is the same; it just takes no memory of its own.
        """
        path = config_path(*parts)
        resp = self.request("GET", path)
        etag = resp.headers.get("Etag")
        if not etag:
            raise hecate_http.HTTPError(
                f"{SYSTEM}: GET {path} sent no Etag header; hecate needs Caddy 2.8 or newer "
                "(older releases send it as an HTTP trailer), because it never writes to Caddy "
                "without If-Match; nothing was written",
                status=resp.status_code,
            )
        try:
            value = shared_loads(resp.content, known) if resp.content else None
        except ValueError:
            raise hecate_http.HTTPError(
                f"{SYSTEM}: GET {path} returned a body that is not JSON", status=resp.status_code
            ) from None
        return value, etag

    def config(self, *parts):
        return self.get(*parts)[0]

    def get_id(self, object_id, *parts):
        return self.json("GET", _id_path(object_id, *parts))

    # -- writing ----------------------------------------------------------------------------
    def write(self, method, path, value=None, etag=None, data=None):
        """
        ``method`` on ``path`` (a ``/config/...`` or ``/id/...`` path) with ``value`` as
        JSON, guarded by ``If-Match: etag`` when given. 412 raises
        :class:`PreconditionFailed`. ``data`` is ``encode(value)`` when the caller has it
        already (the guarded apply encodes its write once, for the snapshot and the request).
        """
        headers = dict(JSON_HEADERS)
        if etag:
            headers["If-Match"] = etag
        if data is None:
            data = None if value is None and method == "DELETE" else encode(value)
        try:
            self.request(method, path, data=data, headers=headers)
        except hecate_http.HTTPError as exc:
            if exc.status == 412:
                raise PreconditionFailed(str(exc), status=412, body=exc.body) from None
            raise

    def write_id(self, method, object_id, value=None, etag=None, retries=3):
        """
        ``method`` on the object carrying ``@id`` ``object_id`` (``/id/<id>``), always
        guarded. Caddy looks the ``@id`` up before it takes its config lock, so an
        unguarded ``/id/`` write that coincides with another change can land on whatever
        object then sits at the looked-up index. With ``If-Match`` (the caller's ``etag``,
        else the ETag of a fresh read of the whole config) Caddy refuses it instead (412).
        With the caller's ``etag`` a 412 raises :class:`PreconditionFailed`; with our own,
        the write is retried on a fresh ETag up to ``retries`` more times.
        """
        path = _id_path(object_id)
        if etag:
            return self.write(method, path, value, etag)
        for _ in range(int(retries) + 1):
            _, fresh = self.get()
            try:
                return self.write(method, path, value, fresh)
            except PreconditionFailed:
                continue
        raise PreconditionFailed(
            f"{SYSTEM}: {method} {path}: the config changed between read and write "
            f"{int(retries) + 1} times (412); nothing was written",
            status=412,
        )

    def load(self, config, force=False):
        """``POST /load``: replace the whole config (unguarded; Caddy ignores If-Match)."""
        headers = dict(JSON_HEADERS)
        if force:
            headers["Cache-Control"] = "must-revalidate"
        self.request("POST", "/load", data=encode(config), headers=headers)

    def upstreams(self):
        return self.json("GET", "/reverse_proxy/upstreams") or []

    def adapt(self, text, adapter="caddyfile"):
        """``POST /adapt``: ``(json_config, warnings)``."""
        resp = self.json(
            "POST", "/adapt", data=text.encode("utf-8"), headers={"Content-Type": f"text/{adapter}"}
        )
        resp = resp or {}
        return resp.get("result"), resp.get("warnings") or []


def shared_loads(data, known=None):
    """
    ``json.loads(data)``, where each object carrying the ``@id`` of one of ``known`` (JSON
    dicts) and equal to it is that object of ``known`` instead of a parsed copy.

    A converged run compares the server's routes as read with the routes it built, and most
    are equal: at 10,000 routes holding both as separate trees was the run's peak memory
    (two 28 MB trees). The parser hands over every object as soon as it is complete, so a
    route equal to one of ``known`` is dropped right after it was parsed and the config
    holds the caller's object. Equal means ``==``, the test the plan itself applies
    (:func:`hecate_caddy_routes.plan_set`); what differs, or carries no known ``@id``, stays
    as Caddy sent it. Nothing may change these objects in place afterwards, as nothing
    changes a config as read or a built route today.
    """
    table = {}
    for obj in known or ():
        rid = obj.get("@id") if isinstance(obj, dict) else None
        if isinstance(rid, str):
            table[rid] = obj
    if not table:
        return json.loads(data)

    def hook(obj):
        rid = obj.get("@id")
        if rid.__class__ is str:  # an @id of another type (a broken config) is never ours
            mine = table.get(rid)
            if mine is not None and mine == obj:
                return mine
        return obj

    return json.loads(data, object_hook=hook)


def refusal_hint(settings, text):
    """What to change when Caddy's admin endpoint refused hecate (403 ``text``), or None."""
    url = settings.get("admin_url")
    if "host not allowed" in text:
        return (
            "Caddy's admin endpoint accepts only the host:port it listens on (admin.listen; "
            "localhost, 127.0.0.1 or [::1] for a loopback one) unless admin.origins lists "
            f"others: set hecate:connections:caddy:admin_url (now {url}) to that address, "
            "or add this host to Caddy's admin origins"
        )
    if "not allowed to access from origin" in text or "Origin header is missing" in text:
        origin = settings.get("origin")
        if not origin:
            return (
                "This Caddy enforces origins (admin.enforce_origin): set "
                "hecate:connections:caddy:origin to one of its admin.origins, written "
                "scheme://host:port"
            )
        return (
            "Caddy checks the Origin header against admin.origins (always when "
            "admin.enforce_origin is on, else whenever a request carries one): "
            f"hecate:connections:caddy:origin (now {origin!r}) must be one of them, "
            "written scheme://host:port, or be unset when Caddy does not enforce origins"
        )
    return None


def _id_path(object_id, *parts):
    if not object_id or "/" in str(object_id):
        raise salt.exceptions.SaltInvocationError(f"invalid Caddy object @id {object_id!r}")
    tail = config_path(*parts)[len("/config/"):]
    return f"/id/{urllib.parse.quote(str(object_id), safe='@.-_~:')}" + (f"/{tail}" if tail else "")


def encode(value):
    """``value`` as the compact ASCII JSON hecate sends to Caddy and keeps in snapshots."""
    return json.dumps(value, separators=(",", ":")).encode("ascii")


def _encode_record(record, encoded=None):
    """
    ``encode(record)`` in pieces, taking the encoding of some of its values from ``encoded``
    (key -> bytes): written one after the other, the record is never joined into one more
    copy of the request body (3.4 MB at 10,000 routes, and once more for the config as read).
    """
    if not encoded:
        yield encode(record)
        return
    yield b"{"
    for index, (key, val) in enumerate(record.items()):
        yield (b"," if index else b"") + encode(key) + b":"
        yield encoded[key] if key in encoded else encode(val)
    yield b"}"


def traverse(config, parts):
    """The value at ``parts`` in a config dict, or None when any key is missing."""
    cur = config
    for part in parts:
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        elif isinstance(cur, list) and str(part).isdigit() and int(part) < len(cur):
            cur = cur[int(part)]
        else:
            return None
    return cur


# -- snapshots ---------------------------------------------------------------------------------
class SnapshotStore:
    """
    Previous Caddy configs kept on the minion, so a later failed step can restore them.

    Layout under ``state_dir`` (0700, files 0600, written atomically)::

        snapshots/<id>.json   {"id", "time", "server", "path", "before", "after", "config"}
        snapshots/<id>.routes {"id", "time", "server", "route_ids", "run"}  # @ids of the routes written
        pending/<server>.json {"snapshots": [<id>, ...], "settled": <run id>}
                                  # what caddy.rollback will undo; "settled": the run whose
                                  # route state succeeded here (an edge that keeps its routes
                                  # when another edge's Caddy failed)

    ``path`` is the config path hecate wrote (a server's ``routes`` array, or the key it
    created), ``before``/``after`` the values there, ``config`` the whole config as read
    before the write. A real run of the route states first clears the server's pending
    marker, and sets it again only when it writes: so ``caddy.rollback`` undoes exactly
    the last run's write, and nothing when that run changed nothing.
    The ``.routes`` file lets each run check that Caddy still has the routes of the last
    write (:meth:`written_routes`) without parsing a snapshot three configs large.
    """

    def __init__(self, state_dir, keep=10):
        if not state_dir:
            raise salt.exceptions.SaltInvocationError(
                "hecate:connections:caddy:state_dir is not set"
            )
        self.root = os.path.abspath(state_dir)
        self.keep = max(1, int(keep))

    # directories
    def _dir(self, name=None):
        """The state directory (or a subdirectory), created 0700 and kept that way."""
        paths = [self.root] + ([os.path.join(self.root, name)] if name else [])
        for path in paths:
            try:
                os.makedirs(path, mode=0o700, exist_ok=True)
                st = os.stat(path)
                if st.st_uid != os.geteuid():
                    raise salt.exceptions.CommandExecutionError(
                        f"Caddy state directory {path} is owned by uid {st.st_uid}, not by the "
                        "minion's user; refusing to keep configs there"
                    )
                if st.st_mode & 0o077:
                    os.chmod(path, 0o700)
            except OSError as exc:
                raise salt.exceptions.CommandExecutionError(
                    f"cannot use Caddy state directory {path}: {exc.strerror}"
                ) from None
        return paths[-1]

    def _write(self, path, data, encoded=None):
        directory = os.path.dirname(path)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                os.fchmod(fh.fileno(), 0o600)
                fh.writelines(_encode_record(data, encoded))  # a few pieces, not json.dump's chunks
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    @staticmethod
    def _read(path):
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)

    # snapshots
    @in_bulk
    def save(self, server, path, before, after, config, run_id=None, after_data=None):
        """
        Keep a snapshot of a write (see the class); returns its id. ``after_data`` is
        ``encode(after)`` when the caller has it (the request body of the write).
        """
        now = datetime.datetime.now(datetime.timezone.utc)
        snap_id = now.strftime("%Y%m%dT%H%M%S.%fZ") + "-" + safe_name(server)
        record = {
            "id": snap_id,
            "time": now.isoformat(),
            "server": server,
            "path": list(path),
            "before": before,
            "after": after,
            "config": config,
            "run": run_id,
        }
        directory = self._dir("snapshots")
        self._write(os.path.join(directory, snap_id + ".json"), record,
                    encoded={"after": after_data} if after_data is not None else None)
        self._write(os.path.join(directory, snap_id + ".routes"), _written(record))
        self._prune()
        return snap_id

    def written_routes(self, snap_id):
        """
        ``{"id", "time", "server", "route_ids"}`` of a snapshot: the ``@id`` (or None) of each
        route of its server as that write left them (None when the write did not hold them).
        Read from the small ``.routes`` file; computed from the snapshot when it has none
        (written before there were such files).
        """
        path = os.path.join(self.root, "snapshots", safe_name(snap_id) + ".routes")
        try:
            return self._read(path)
        except (OSError, ValueError):
            return _written(self.load(snap_id))

    @in_bulk
    def load(self, snap_id):
        path = os.path.join(self.root, "snapshots", safe_name(snap_id) + ".json")
        try:
            return self._read(path)
        except FileNotFoundError:
            raise salt.exceptions.SaltInvocationError(
                f"no Caddy config snapshot '{snap_id}' in {self.root}"
            ) from None
        except (OSError, ValueError) as exc:
            raise salt.exceptions.CommandExecutionError(
                f"cannot read Caddy config snapshot '{snap_id}': {exc}"
            ) from None

    def list(self, server=None):
        """Snapshot summaries, newest first."""
        directory = os.path.join(self.root, "snapshots")
        if not os.path.isdir(directory):
            return []
        out = []
        for fname in sorted(os.listdir(directory), reverse=True):
            if not fname.endswith(".json"):
                continue
            snap_id = fname[: -len(".json")]
            if server is not None and not snap_id.endswith("-" + safe_name(server)):
                continue
            out.append(snap_id)
        return out

    def _prune(self):
        by_server = {}
        for snap_id in self.list():
            by_server.setdefault(snap_id.split("-", 1)[-1], []).append(snap_id)
        pending = {sid for snaps in self.pending().values() for sid in snaps}
        for ids in by_server.values():
            for old in ids[self.keep:]:
                if old not in pending:
                    for ext in (".json", ".routes"):
                        try:
                            os.unlink(os.path.join(self.root, "snapshots", old + ext))
                        except OSError:
                            pass

    # pending markers: per server, the snapshots a rollback would undo (oldest first)
    def _pending_path(self, server):
        return os.path.join(self.root, "pending", safe_name(server) + ".json")

    def _pending_list(self, server):
        try:
            return list(self._read(self._pending_path(server)).get("snapshots") or [])
        except FileNotFoundError:
            return []
        except (OSError, ValueError, AttributeError) as exc:
            raise salt.exceptions.CommandExecutionError(
                f"cannot read the Caddy rollback marker for '{server}' in {self.root}: {exc}"
            ) from None

    def push_pending(self, server, snap_id):
        snaps = self._pending_list(server) + [snap_id]
        self._dir("pending")
        self._write(self._pending_path(server), {"server": server, "snapshots": snaps})

    def pop_pending(self, server, snap_id):
        snaps = self._pending_list(server)
        if snap_id not in snaps:
            return
        snaps.remove(snap_id)
        if snaps:
            self._write(self._pending_path(server), {"server": server, "snapshots": snaps})
        else:
            self.clear_pending(server)

    def settle(self, server, run_id):
        """Mark the pending write of ``server`` as one its run's route state finished successfully."""
        if not run_id:
            return
        try:
            data = self._read(self._pending_path(server))
        except FileNotFoundError:
            return  # nothing written: nothing a rollback would undo anyway
        except (OSError, ValueError) as exc:
            raise salt.exceptions.CommandExecutionError(
                f"cannot read the Caddy rollback marker for '{server}' in {self.root}: {exc}"
            ) from None
        self._write(self._pending_path(server), dict(data, settled=str(run_id)))

    def settled(self):
        """``{safe server name: run id}`` of the pending writes whose route state succeeded."""
        directory = os.path.join(self.root, "pending")
        out = {}
        for fname in sorted(os.listdir(directory)) if os.path.isdir(directory) else ():
            if fname.endswith(".json") and not fname.startswith("."):
                try:
                    run = self._read(os.path.join(directory, fname)).get("settled")
                except (OSError, ValueError, AttributeError):
                    continue
                if run:
                    out[fname[: -len(".json")]] = run
        return out

    def clear_pending(self, server):
        try:
            os.unlink(self._pending_path(server))
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise salt.exceptions.CommandExecutionError(
                f"cannot clear the Caddy rollback marker in {self.root}: {exc.strerror}"
            ) from None

    def pending(self):
        """``{safe server name: [snapshot ids, oldest first]}`` a rollback would undo."""
        directory = os.path.join(self.root, "pending")
        out = {}
        if not os.path.isdir(directory):
            return out
        for fname in sorted(os.listdir(directory)):
            if fname.endswith(".json") and not fname.startswith("."):
                server = fname[: -len(".json")]
                try:
                    snaps = self._read(os.path.join(directory, fname)).get("snapshots") or []
                except (OSError, ValueError, AttributeError):
                    continue
                if snaps:
                    out[server] = list(snaps)
        return out


def _written(record):
    """The ``.routes`` summary of a snapshot record (see :meth:`SnapshotStore.written_routes`)."""
    value = record.get("after")
    for part in reversed(record.get("path") or []):
        value = {part: value}
    routes = traverse(value, server_parts(record.get("server")) + ("routes",))
    ids = None
    if isinstance(routes, list):
        ids = [r.get("@id") if isinstance(r, dict) else None for r in routes]
    return {"id": record.get("id"), "time": record.get("time"), "server": record.get("server"), "route_ids": ids,
            "run": record.get("run")}


def safe_name(name):
    return re.sub(r"[^A-Za-z0-9_.-]", "_", str(name))
