"""
Consul for hecate, on py-consul, over the shared HTTP session (same TLS verification, CA
bundle, timeouts and retries as every other hecate client).

- **Token**: sent as the ``X-Consul-Token`` header. py-consul lets ``CONSUL_HTTP_TOKEN``
  override an explicit token (``os.getenv("CONSUL_HTTP_TOKEN", token)``); hecate sets the
  token after construction, so the configured one always wins and the environment is
  never read implicitly (configure ``token: sdb://osenv/CONSUL_HTTP_TOKEN`` to use it).
  ``CONSUL_HTTP_ADDR``/``CONSUL_HTTP_SSL*`` are ignored as well: host, port, scheme and
  verification come from ``hecate:connections:consul``.
- **KV** with CAS (``cas=0`` creates only), flags, recurse/keys, JSON helpers for
  records such as ``hecate/deployments/<env>/...``.
- **Services**: register (always ``replace-existing-checks``), deregister, agent view,
  health (passing only or all), catalog; :meth:`ConsulClient.service_addresses` gives
  ``address:port`` of the instances.
- **Sessions and locks** (the recipe of Consul's api/lock.go): a session with a TTL, the
  lock key acquired with ``?acquire=<session>`` and flags ``0x2ddccbc058a50c18``, its
  value a JSON record of who holds it since when, renewed every TTL/2 by whoever keeps
  it (:class:`Lock` can do that in a thread), released with ``?release=`` and the session
  destroyed. When the holder dies its session expires, Consul releases the key, and after
  the session's lock-delay another contender can take it. A contender that finds the lock
  taken gets :class:`LockHeld`: ``lock <key> is held by <holder> since <time>``.

Runners on the master call this module directly::

    client = hecate_consul_client.from_config(__opts__, __pillar__, sdb_get, __context__)
    session = client.lock_acquire("hecate/locks/prod", holder="salt-run by alice", ttl="30s")
    ...
    client.lock_release("hecate/locks/prod", session)
"""

import datetime
import json
import logging
import re
import threading
import time
import urllib.parse
import uuid

import requests
import salt.exceptions

import hecate_config
import hecate_http
import hecate_loader
import hecate_secrets
import hecate_vault_client

# imported when the first client is made (hecate_loader.LazyModule)
consul = hecate_loader.lazy("consul", "consul.callback")
HAS_CONSUL = hecate_loader.available("consul")  # a missing one is reported by __virtual__ of the modules

log = logging.getLogger(__name__)

# The flags value Consul's own lock (api/lock.go LockFlagValue) marks its keys with.
LOCK_FLAGS = 0x2DDCCBC058A50C18
DEFAULT_LOCK_TTL = "15s"
DEFAULT_LOCK_DELAY = "15s"


class CASConflict(salt.exceptions.CommandExecutionError):
    """A check-and-set write found the key changed (or present, for cas=0)."""


class LockHeld(salt.exceptions.CommandExecutionError):
    """Someone else holds the lock; ``holder`` and ``since`` say who and since when."""

    def __init__(self, key, holder, since):
        super().__init__(f"lock {key} is held by {holder or 'an unknown holder'} since {since or 'an unknown time'}")
        self.key, self.holder, self.since = key, holder, since


class LockLost(salt.exceptions.CommandExecutionError):
    """Our session expired (or was destroyed): the lock is no longer ours."""


def now_iso():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def duration_seconds(value):
    """'15s', '1m30s', '500ms' or a number of seconds -> float seconds."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, str) or not value:
        raise salt.exceptions.SaltInvocationError(f"invalid duration {value!r} (e.g. '15s', '1m')")
    units = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
    parts = re.findall(r"([0-9]*\.?[0-9]+)(ns|us|ms|s|m|h)", value)
    if not parts or "".join(n + u for n, u in parts) != value:
        if re.fullmatch(r"[0-9]+", value):
            return float(value)
        raise salt.exceptions.SaltInvocationError(f"invalid duration {value!r} (e.g. '15s', '1m')")
    return sum(float(n) * units[u] for n, u in parts)


def go_duration(value):
    """A duration as Consul wants it in JSON bodies ('15s')."""
    secs = duration_seconds(value)
    return f"{int(secs)}s" if float(secs).is_integer() else f"{int(secs * 1000)}ms"


def _path_unescape(key):
    """Go's url.PathUnescape as bytes: None when a '%' does not start a valid escape."""
    if re.search(r"%(?![0-9A-Fa-f]{2})", key):
        return None
    return urllib.parse.unquote_to_bytes(key)


def check_key(key):
    """
    Refuse a KV key that Consul refuses or that would not reach it as written.

    Consul 1.21.6+/1.22+ (agent/kvs_endpoint.go ``validateKVKey``, consul#22931/#22939)
    rejects leading or trailing spaces and '..' path segments, also once percent-escapes
    in the key are decoded. Its HTTP client refuses a leading '/' (api/kv.go ``put``), and
    the HTTP layer changes keys with empty segments ('a//b': Go's ServeMux redirects to
    'a/b', and a PUT that follows the redirect loses its body) or dot segments (resolved by
    the client before sending: 'a/../b' would write 'b'). Anything else is left to Consul:
    1.21.5's character whitelist (consul#22682, relaxed again in 1.21.6) is reported by
    the server itself.
    """
    if not isinstance(key, str) or not key.strip("/"):
        raise salt.exceptions.SaltInvocationError("a Consul KV key is required")
    if key.startswith("/"):
        raise salt.exceptions.SaltInvocationError(f"Consul KV key {key!r} must not start with '/'")
    if key.startswith(" ") or key.endswith(" "):
        raise salt.exceptions.SaltInvocationError(
            f"Consul KV key {key!r}: leading/trailing spaces are not allowed")
    segments = key.split("/")
    if ".." in segments:
        raise salt.exceptions.SaltInvocationError(f"Consul KV key {key!r} must not contain '..'")
    if "." in segments or "" in segments[:-1]:
        raise salt.exceptions.SaltInvocationError(
            f"Consul KV key {key!r} has an empty or '.' segment: Consul would store it under another name")
    decoded = _path_unescape(key)
    if decoded is not None and decoded != key.encode("utf-8"):
        if b".." in decoded:
            raise salt.exceptions.SaltInvocationError(
                f"Consul KV key {key!r} decodes to a path traversal ('..'), which Consul refuses")
        if b" " in decoded:
            raise salt.exceptions.SaltInvocationError(
                f"Consul KV key {key!r} decodes to a key with spaces, which Consul refuses")
    return key


def encode_value(value):
    """Bytes for a KV value: str as UTF-8, dict/list as canonical JSON, None as empty."""
    if value is None:
        return None
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, (dict, list, int, float, bool)):
        return json.dumps(value, sort_keys=True, separators=(",", ":")).encode("utf-8")
    raise salt.exceptions.SaltInvocationError(
        f"a Consul KV value must be a string, bytes or JSON data, not {type(value).__name__}"
    )


def decode_value(raw, decode="text"):
    """``decode``: 'text' (UTF-8), 'json', 'raw' (bytes), 'auto' (JSON when it parses)."""
    if raw is None:
        return None if decode != "text" else ""
    if decode == "raw":
        return raw
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    if decode == "text":
        return text
    try:
        return json.loads(text)
    except ValueError:
        if decode == "auto":
            return text
        raise salt.exceptions.CommandExecutionError("Consul KV value is not JSON") from None


class ConsulClient:
    """One Consul agent (HTTP API), with hecate's error handling."""

    def __init__(self, settings, token=None):
        if not HAS_CONSUL:
            raise salt.exceptions.CommandExecutionError("the py-consul library is not installed")
        url = settings.get("url")
        if not url:
            raise salt.exceptions.SaltInvocationError(
                "hecate:connections:consul:url is not set (minion config or pillar)"
            )
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise salt.exceptions.SaltInvocationError(
                f"hecate:connections:consul:url must be http(s)://host:port, got {url!r}"
            )
        self.url = url.rstrip("/")
        self.settings = settings
        timeout = float(settings.get("timeout") or 30)
        self.http = hecate_http.Client(
            self.url,
            "Consul",
            timeout=timeout,
            retries=settings.get("retries", 3),
            **hecate_config.tls_args(settings, "consul"),
        )
        # The configured token wins over CONSUL_HTTP_TOKEN, which py-consul reads itself.
        self._token = token
        # ``api`` for everything, ``api_once`` for conditional writes (CAS, lock acquire and
        # release, session create): hecate's two HTTP sessions (same TLS settings, CA
        # bundle, no proxies from the environment), the second never resending a request
        # whose answer was lost (see hecate_http.uncertain_write).
        self.api = self._py_consul(parts, timeout, self.http.session)
        self.api_once = self._py_consul(parts, timeout, self.http.once)
        self.stats = self.http.stats

    def _py_consul(self, parts, timeout, session):
        api = consul.Consul(
            host=parts.hostname,
            port=parts.port or (443 if parts.scheme == "https" else 80),
            scheme=parts.scheme,
            verify=session.verify,
            dc=self.settings.get("datacenter") or None,
            connections_timeout=timeout,
        )
        api.http.session = session
        api.http.verify = session.verify
        api.token = self._token.reveal() if isinstance(self._token, hecate_secrets.Secret) else self._token
        return api

    # -- plumbing ----------------------------------------------------------------------------
    def _count(self, method):
        self.stats[method] = self.stats.get(method, 0) + 1

    def _call(self, what, func, method="GET", not_found=None):
        self._count(method)
        try:
            return func()
        except consul.NotFound as exc:
            if not_found is not None:
                raise not_found from None
            raise salt.exceptions.CommandExecutionError(f"Consul: {what}: not found ({self._text(exc)})") from None
        except consul.ACLPermissionDenied as exc:
            raise salt.exceptions.CommandExecutionError(
                f"Consul: {what}: permission denied ({self._text(exc)}); "
                "check hecate:connections:consul:token and its policy"
            ) from None
        except consul.ConsulException as exc:
            raise salt.exceptions.CommandExecutionError(f"Consul: {what}: {self._text(exc)}") from None
        except requests.exceptions.SSLError as exc:
            raise hecate_http.Unreachable(
                hecate_http.tls_failed("Consul", self.url, exc, "hecate:connections:consul")
            ) from None
        except requests.exceptions.Timeout:
            raise hecate_http.Unreachable(f"Consul at {self.url}: {what} timed out") from None
        except requests.exceptions.RequestException as exc:
            raise hecate_http.Unreachable(
                f"Consul at {self.url} is unreachable: {hecate_http._reason(exc)}"  # pylint: disable=protected-access
            ) from None

    def _text(self, exc):
        text = str(exc).strip()
        if text[:4] in ("400 ", "403 ", "404 ", "405 ", "413 ", "429 ", "500 ", "502 ", "503 "):
            code, text = text[:3], text[4:]
            text = f"{text} (HTTP {code})" if text else f"HTTP {code}"
        text = text or type(exc).__name__
        return hecate_secrets.scrub(text[:500], [self._token] if self._token else [])

    def _headers(self):
        return self.api.prepare_headers()

    # -- KV ----------------------------------------------------------------------------------------
    def kv_get(self, key, index=None, wait=None):
        """``(index, entry)``; entry is None when the key does not exist (Value as bytes)."""
        check_key(key)
        idx, entry = self._call(f"read key {key}", lambda: self.api.kv.get(key, index=index, wait=wait))
        return int(idx), entry

    def kv_list(self, prefix):
        """Every entry under ``prefix`` (recurse)."""
        _, entries = self._call(f"list keys under {prefix}", lambda: self.api.kv.get(prefix, recurse=True))
        return entries or []

    def kv_keys(self, prefix="", separator=None):
        _, keys = self._call(
            f"list keys under {prefix or '/'}", lambda: self.api.kv.get(prefix, keys=True, separator=separator)
        )
        return keys or []

    def kv_put(self, key, value, cas=None, flags=None, acquire=None, release=None):
        """
        Write; returns Consul's answer (False when a CAS/acquire/release did not apply).
        A conditional write whose answer is lost is not sent again blindly: the key is
        re-read to decide whether it was applied (:func:`hecate_http.uncertain_write`).
        """
        check_key(key)
        data = encode_value(value)
        if cas is None and acquire is None and release is None:
            return bool(
                self._call(f"write key {key}", lambda: self.api.kv.put(key, data, flags=flags), "PUT")
            )

        def send():
            return bool(
                self._call(
                    f"write key {key}",
                    lambda: self.api_once.kv.put(key, data, cas=cas, flags=flags, acquire=acquire, release=release),
                    "PUT",
                )
            )

        def landed():
            _, entry = self.kv_get(key)
            return _put_landed(entry, data, flags, cas, acquire, release)

        return hecate_http.uncertain_write(f"Consul: write key {key}", send, landed)

    def kv_put_cas(self, key, value, cas, flags=None):
        """Write with check-and-set; :class:`CASConflict` naming the key when it does not apply."""
        if self.kv_put(key, value, cas=cas, flags=flags):
            return True
        _, entry = self.kv_get(key)
        now = entry["ModifyIndex"] if entry else None
        if cas == 0:
            raise CASConflict(f"Consul: key {key} already exists (ModifyIndex {now}); cas=0 only creates")
        raise CASConflict(
            f"Consul: key {key} changed since it was read (expected ModifyIndex {cas}, "
            f"now {now if now is not None else 'deleted'}); nothing was written"
        )

    def kv_delete(self, key, cas=None, recurse=False):
        if not recurse:
            check_key(key)
        return bool(
            self._call(
                f"delete key {key}", lambda: self.api.kv.delete(key, recurse=recurse or None, cas=cas), "DELETE"
            )
        )

    def get_json(self, key):
        """A JSON record (e.g. a deployment record) or None."""
        _, entry = self.kv_get(key)
        if entry is None:
            return None
        try:
            return decode_value(entry["Value"], "json")
        except salt.exceptions.CommandExecutionError:
            raise salt.exceptions.CommandExecutionError(f"Consul: key {key} does not hold JSON") from None

    def put_json(self, key, data, cas=None):
        """Store ``data`` as canonical JSON; with ``cas`` raises :class:`CASConflict`."""
        if cas is None:
            return self.kv_put(key, data)
        return self.kv_put_cas(key, data, cas)

    # -- services, health, catalog -----------------------------------------------------------------
    def agent_services(self):
        return self._call("list agent services", self.api.agent.services) or {}

    def agent_service(self, service_id):
        """The agent's view of one service instance, or None."""
        # Not py-consul's agent.service_definition(): it sends no X-Consul-Token (it skips
        # prepare_headers), and under default deny Consul answers 403 once the service
        # exists (agent_endpoint.go AgentService: 404 first, then service:read). The id is
        # not quoted here: py-consul's uri() quotes the path and Consul decodes it once.
        path = f"/v1/agent/service/{service_id}"
        return self._call(
            f"read service {service_id}",
            lambda: self.api.http.get(consul.callback.CB.json(), path, headers=self._headers()),
        )

    def agent_checks(self, service_id=None):
        checks = self._call("list agent checks", self.api.agent.checks) or {}
        if service_id is None:
            return checks
        return {cid: c for cid, c in checks.items() if c.get("ServiceID") == service_id}

    def service_register(self, definition):
        """
        Register (or replace) a service on the agent. ``definition`` uses Consul's field
        names (Name, ID, Address, Port, Tags, Meta, Weights, EnableTagOverride, Checks).
        Checks missing from ``definition`` are removed (``replace-existing-checks``).
        """
        checks = list(definition.get("Checks") or [])
        what = f"register service {definition.get('ID') or definition.get('Name')}"
        return self._call(
            what,
            lambda: self.api.agent.service.register(
                definition["Name"],
                service_id=definition.get("ID"),
                address=definition.get("Address") or None,
                port=definition.get("Port") or None,
                tags=definition.get("Tags") or None,
                meta=definition.get("Meta") or None,
                weights=definition.get("Weights") or None,
                enable_tag_override=bool(definition.get("EnableTagOverride")),
                check=checks[0] if checks else None,
                extra_checks=checks[1:],
                replace_existing_checks=True,
            ),
            "PUT",
        )

    def service_deregister(self, service_id):
        """True when removed, False when the agent had no such service."""
        return bool(
            self._call(
                f"deregister service {service_id}",
                lambda: self.api.agent.service.deregister(service_id),
                "PUT",
            )
        )

    def health_service(self, name, passing=True, tag=None, index=None, wait=None):
        """Health entries ({Node, Service, Checks}) of a service; passing only by default."""
        _, nodes = self._call(
            f"health of service {name}",
            lambda: self.api.health.service(name, passing=passing, tag=tag, index=index, wait=wait),
        )
        return nodes or []

    def service_addresses(self, name, passing=True):
        """``["address:port", ...]`` of the service's instances (service address, else node's)."""
        out = []
        for entry in self.health_service(name, passing=passing):
            svc = entry.get("Service") or {}
            addr = svc.get("Address") or (entry.get("Node") or {}).get("Address")
            if not addr:
                continue
            if ":" in addr and not addr.startswith("["):
                addr = f"[{addr}]"
            item = f"{addr}:{svc.get('Port')}"
            if item not in out:
                out.append(item)
        return sorted(out)

    def catalog_services(self):
        _, services = self._call("list catalog services", self.api.catalog.services)
        return services or {}

    # -- sessions ------------------------------------------------------------------------------------
    def session_create(self, name, ttl=DEFAULT_LOCK_TTL, lock_delay=DEFAULT_LOCK_DELAY, behavior="release"):
        """
        A session id. (Sent directly: py-consul asserts ttl >= 10 s, Consul's own
        minimum is the server's ``session_ttl_min``.)

        Never resent once it went out: a create whose answer was lost may have made a
        session, and a second one would be left behind (until its TTL runs out, twice
        over). :meth:`lock_acquire` names its sessions uniquely to find such a one.
        """
        if behavior not in ("release", "delete"):
            raise salt.exceptions.SaltInvocationError("behavior must be 'release' or 'delete'")
        body = {"Name": name, "Behavior": behavior, "LockDelay": go_duration(lock_delay)}
        if ttl:
            body["TTL"] = go_duration(ttl)
        params = [("dc", self.api.dc)] if self.api.dc else []
        return self._call(
            f"create session {name!r}",
            lambda: self.api_once.http.put(
                consul.callback.CB.json(is_id=True),
                "/v1/session/create",
                params=params,
                headers=self._headers(),
                data=json.dumps(body),
            ),
            "PUT",
        )

    def session_renew(self, session_id):
        """The renewed session; :class:`LockLost` when it no longer exists."""
        return self._call(
            f"renew session {session_id}",
            lambda: self.api.session.renew(session_id),
            "PUT",
            not_found=LockLost(f"Consul: session {session_id} has expired or was destroyed: the lock is lost"),
        )

    def session_destroy(self, session_id):
        return bool(
            self._call(f"destroy session {session_id}", lambda: self.api.session.destroy(session_id), "PUT")
        )

    def session_info(self, session_id):
        _, info = self._call(f"read session {session_id}", lambda: self.api.session.info(session_id))
        return info

    def session_list(self):
        _, sessions = self._call("list sessions", self.api.session.list)
        return sessions or []

    # -- locks -----------------------------------------------------------------------------------------
    def lock_info(self, key):
        """``{key, held, holder, since, session, lock_index}`` of a lock key."""
        _, entry = self.kv_get(key)
        return _lock_info(key, entry)

    def lock_acquire(self, key, holder, ttl=DEFAULT_LOCK_TTL, lock_delay=DEFAULT_LOCK_DELAY, wait=0):
        """
        Take the lock ``key`` for ``holder`` (a name saying who/what: "salt-run by alice on
        master1"). Returns the session id; renew it every ``ttl``/2 with :meth:`lock_renew`
        and give it back with :meth:`lock_release`.

        ``wait`` (seconds): how long to wait for a held lock to be released; 0 fails at once
        with :class:`LockHeld` ("lock <key> is held by <holder> since <time>").
        """
        check_key(key)
        if not holder or not isinstance(holder, str):
            raise salt.exceptions.SaltInvocationError("a lock needs a holder name (who takes it)")
        ttl_s = duration_seconds(ttl)
        deadline = time.monotonic() + float(wait or 0)
        session = self._lock_session(key, ttl, lock_delay)
        acquired = False
        try:
            while True:
                index, entry = self.kv_get(key)
                if entry is not None and entry.get("Flags") != LOCK_FLAGS:
                    raise salt.exceptions.CommandExecutionError(
                        f"Consul: key {key} exists and is not a lock (flags {entry.get('Flags')}); "
                        "refusing to take it over"
                    )
                info = _lock_info(key, entry)
                remaining = deadline - time.monotonic()
                if info["held"]:
                    if remaining <= 0:
                        raise LockHeld(key, info["holder"], info["since"])
                    # Blocking query: returns when the key changes (released) or at wait.
                    self.kv_get(key, index=index, wait=go_duration(max(1, min(remaining, ttl_s / 2))))
                    self.session_renew(session)
                    continue
                record = {"holder": holder, "since": now_iso(), "session": session, "ttl": go_duration(ttl)}
                if self.kv_put(key, record, acquire=session, flags=LOCK_FLAGS):
                    acquired = True
                    log.info("Consul lock %s acquired by %s", key, holder)
                    return session
                _, again = self.kv_get(key)
                if _lock_info(key, again)["held"]:
                    continue  # lost a race: report (or wait for) the winner
                if remaining <= 0:
                    raise salt.exceptions.CommandExecutionError(
                        f"Consul: lock {key} is free but cannot be taken yet: the previous holder's "
                        f"session ended and its lock-delay is still running; retry in a few seconds"
                    )
                time.sleep(min(0.5, max(remaining, 0.05)))
                self.session_renew(session)
        finally:
            if not acquired:
                try:
                    self.session_destroy(session)
                except salt.exceptions.CommandExecutionError:
                    pass

    def _lock_session(self, key, ttl, lock_delay):
        """
        The session of a lock attempt, named ``hecate lock <key> #<nonce>``: when the answer
        to its create is lost, the session list tells whether it exists (then it is used,
        and destroyed with the attempt if the lock is not taken) or not (created again).
        """
        name = f"hecate lock {key} #{uuid.uuid4().hex[:8]}"

        def landed():
            return next((s["ID"] for s in self.session_list() if s.get("Name") == name), None)

        return hecate_http.uncertain_write(
            f"Consul: create session {name!r}",
            lambda: self.session_create(name, ttl=ttl, lock_delay=lock_delay),
            landed,
        )

    def lock_renew(self, session_id):
        """Keep the lock: renew its session (:class:`LockLost` when it already expired)."""
        return self.session_renew(session_id)

    def lock_release(self, key, session_id):
        """
        Give the lock back and destroy its session. The key keeps a record of the last
        holder (``released`` time added). :class:`LockLost` when we no longer held it.
        """
        check_key(key)
        _, entry = self.kv_get(key)
        info = _lock_info(key, entry)
        record = {"holder": None, "last_holder": info["holder"], "since": info["since"], "released": now_iso()}
        released = self.kv_put(key, record, release=session_id, flags=LOCK_FLAGS)
        try:
            self.session_destroy(session_id)
        except salt.exceptions.CommandExecutionError:
            pass
        if not released:
            raise LockLost(
                f"Consul: lock {key} was not held by session {session_id} "
                f"(now {'held by ' + str(info['holder']) if info['held'] else 'free'}); nothing released"
            )
        log.info("Consul lock %s released", key)
        return True


def _put_landed(entry, data, flags, cas, acquire, release):
    """
    After a conditional KV write lost its answer, the key as re-read tells: True when it
    holds exactly what was written (a CAS whose ModifyIndex moved, a lock held by our
    session, a release that left our record); None when the condition still holds (not
    applied, sending again is safe); False when it can no longer apply (someone else's
    change: reported like Consul's own ``false``).
    """
    value = (entry or {}).get("Value") or b""
    ours = entry is not None and value == (data or b"") and entry.get("Flags", 0) == (flags or 0)
    if acquire is not None:
        if entry is not None and entry.get("Session") == acquire:
            return True  # only the holder of our session can have taken it
        return None if not (entry or {}).get("Session") else False
    if release is not None:
        if ours and entry.get("Session") != release:
            return True
        return None if (entry or {}).get("Session") == release else False
    if cas == 0:
        return True if ours else (None if entry is None else False)
    if entry is not None and entry.get("ModifyIndex") == cas:
        return None
    return bool(ours)


def _lock_info(key, entry):
    info = {"key": key, "held": False, "holder": None, "since": None, "session": None, "lock_index": 0}
    if entry is None:
        return info
    info["lock_index"] = entry.get("LockIndex", 0)
    info["session"] = entry.get("Session") or None
    info["held"] = bool(entry.get("Session"))
    try:
        record = decode_value(entry.get("Value"), "json") or {}
    except salt.exceptions.CommandExecutionError:
        record = {}
    if isinstance(record, dict):
        if info["held"]:
            info["holder"], info["since"] = record.get("holder"), record.get("since")
        else:
            info["last_holder"] = record.get("last_holder") or record.get("holder")
            info["released"] = record.get("released")
    return info


class Lock:
    """
    A held lock that renews itself: ``with Lock(client, key, holder, ttl="30s"):`` or
    ``lock.acquire(); ...; lock.release()``. ``lost`` turns True if a renewal fails
    (the session expired, e.g. after a long network outage).
    """

    def __init__(self, client, key, holder, ttl=DEFAULT_LOCK_TTL, lock_delay=DEFAULT_LOCK_DELAY, wait=0):
        self.client, self.key, self.holder = client, key, holder
        self.ttl, self.lock_delay, self.wait = ttl, lock_delay, wait
        self.session = None
        self.lost = False
        self._stop = threading.Event()
        self._thread = None

    def acquire(self):
        self.session = self.client.lock_acquire(self.key, self.holder, self.ttl, self.lock_delay, self.wait)
        self._thread = threading.Thread(target=self._renew, name=f"lock {self.key}", daemon=True)
        self._thread.start()
        return self.session

    def _renew(self):
        every = max(duration_seconds(self.ttl) / 2, 0.5)
        while not self._stop.wait(every):
            try:
                self.client.lock_renew(self.session)
            except LockLost:
                self.lost = True
                return
            except salt.exceptions.CommandExecutionError:
                continue  # transient: try again at the next tick, the TTL leaves room

    def release(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        if self.session and not self.lost:
            self.client.lock_release(self.key, self.session)
        self.session = None

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc):
        self.release()


def from_config(opts, pillar, sdb_get=None, context=None, overrides=None):
    """
    The client for ``hecate:connections:consul`` (minion/master config > pillar), the
    token resolved at this moment (literal in config, ``sdb://``, or Vault reference),
    cached in ``context`` (pass ``__context__``).
    """
    settings = hecate_config.connection("consul", opts, pillar, overrides)
    key = ("hecate_consul_client", settings.get("url"), repr(settings.get("token")))
    if context is not None and key in context:
        return context[key]
    token = None
    if settings.get("token"):
        resolve = hecate_vault_client.Resolver(opts, pillar, sdb_get, context)
        token = resolve(settings["token"], "hecate:connections:consul:token")
    client = ConsulClient(settings, token=token)
    if context is not None:
        context[key] = client
    return client


def service_definition(service_id, spec):
    """Consul's registration body for a ``hecate:consul:services`` entry (or state args)."""
    checks = []
    for chk in spec.get("checks") or []:
        checks.append(check_definition(chk))
    out = {"ID": service_id, "Name": spec.get("name") or service_id}
    if spec.get("address"):
        out["Address"] = spec["address"]
    if spec.get("port"):
        out["Port"] = int(spec["port"])
    out["Tags"] = list(spec.get("tags") or [])
    out["Meta"] = {str(k): str(v) for k, v in (spec.get("meta") or {}).items()}
    weights = spec.get("weights")
    if weights:
        out["Weights"] = {"Passing": int(weights.get("passing", 1)), "Warning": int(weights.get("warning", 1))}
    out["EnableTagOverride"] = bool(spec.get("enable_tag_override", False))
    out["Checks"] = checks
    return out


_CHECK_FIELDS = {
    "id": "CheckID", "name": "Name", "notes": "Notes", "http": "HTTP", "tcp": "TCP", "ttl": "TTL",
    "interval": "Interval", "timeout": "Timeout", "method": "Method", "header": "Header",
    "body": "Body", "tls_skip_verify": "TLSSkipVerify", "tls_server_name": "TLSServerName",
    "disable_redirects": "DisableRedirects",
    "deregister_critical_service_after": "DeregisterCriticalServiceAfter",
    "success_before_passing": "SuccessBeforePassing",
    "failures_before_warning": "FailuresBeforeWarning",
    "failures_before_critical": "FailuresBeforeCritical",
}


def check_definition(chk):
    out = {}
    for key, val in chk.items():
        name = _CHECK_FIELDS.get(str(key).lower())
        if name is None:
            if key in _CHECK_FIELDS.values():
                name = key
            else:
                raise salt.exceptions.SaltInvocationError(f"unknown check field {key!r}")
        if val is None:
            continue
        out[name] = val
    return out
