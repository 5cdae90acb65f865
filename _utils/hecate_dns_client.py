"""
Hetzner DNS for hecate: the Zones/RRSets part of the Hetzner Cloud API, through ``hcloud``
(Hetzner's official Python library), never a hand-written HTTP client.

What this adds to ``hcloud``:

- hecate's TLS, timeout and environment rules: hcloud's ``requests`` session is replaced by
  the one :class:`hecate_http.Client` builds (CA bundle or verification from Salt's
  settings only, nothing from the environment, connection retries); hcloud keeps its own
  retries of what the API asks to retry (``rate_limit_exceeded``, ``conflict``, 502, 504;
  hcloud ``_client.ClientBase._retry_policy``), their number and first delay from
  ``retries``/``backoff``.
- the token is resolved (Vault reference, ``sdb://``) when the first request is made and
  only handed to hcloud; messages never contain it.
- every write returns an Action (``hcloud.actions.BoundAction``): it is followed until
  ``success``, a failed one raises with its error code and message, one still running
  after ``action_timeout`` seconds raises naming the action (command and id) and what it
  was doing.
- ``APIException(code, message, details)`` becomes ``CommandExecutionError`` with the
  API's code and message, the fields of an ``invalid_input`` and what was being done.
"""

import time

import requests
import salt.exceptions

import hecate_config
import hecate_dns_records
import hecate_http
import hecate_loader
import hecate_secrets
import hecate_vault_client

# imported when the first client talks to the API (hecate_loader.LazyModule: hcloud alone
# takes longer to import than most steps spend in their states)
hcloud = hecate_loader.lazy("hcloud", "hcloud.zones")
HAS_HCLOUD = hecate_loader.available("hcloud")  # a missing one is reported by the modules' __virtual__

SYSTEM = "Hetzner DNS API"
CONFIG_KEY = "hecate:connections:hetzner_dns"
DEFAULT_ENDPOINT = "https://api.hetzner.cloud/v1"


class ActionFailed(salt.exceptions.CommandExecutionError):
    """An Action of the API ended in ``error`` or did not finish in time."""


def rrset_dict(rrset):
    """A plain dict of an hcloud ``ZoneRRSet`` (what :mod:`hecate_dns_records` works on)."""
    return {
        "name": rrset.name,
        "type": rrset.type,
        "ttl": rrset.ttl,
        "labels": dict(rrset.labels or {}),
        "protection": dict(rrset.protection or {}),
        "records": [{"value": r.value, "comment": r.comment or ""} for r in rrset.records or []],
    }


class DNSClient:
    """One Hetzner Cloud project's zones, as seen with one API token."""

    def __init__(self, settings, token):
        """
        ``settings``: the ``hecate:connections:hetzner_dns`` block; ``token``: a callable
        returning the token as :class:`hecate_secrets.Secret` (called on first use).
        """
        if not HAS_HCLOUD:
            raise salt.exceptions.CommandExecutionError("the hcloud library is not installed (pip install hcloud)")
        self.settings = settings
        self.endpoint = (settings.get("api_endpoint") or DEFAULT_ENDPOINT).rstrip("/")
        self.action_timeout = float(settings.get("action_timeout") or 120)
        self.poll_interval = float(settings.get("poll_interval") or 1.0)
        self._token_source = token
        self._secrets = []
        self._client = None
        self._zones = {}
        self.writes = []  # (what, action command) of every write made, in order

    # -- the hcloud client ------------------------------------------------------------------------
    def _hcloud(self):
        if self._client is not None:
            return self._client
        http = hecate_http.Client(
            self.endpoint,
            SYSTEM,
            timeout=self.settings.get("timeout", 30),
            retries=int(self.settings.get("retries", 3)),
            # the API's retryable answers are hcloud's to retry (by error code, not status)
            retry_statuses=(),
            **hecate_config.tls_args(self.settings, "hetzner_dns"),
        )
        secret = self._token_source()
        if not secret:
            raise salt.exceptions.SaltInvocationError(
                f"{CONFIG_KEY}:token (or hecate:dns:token) is not set: the Hetzner Cloud API token of "
                "the project that holds the zones, as a Vault reference or sdb:// URI"
            )
        self._secrets.append(secret)
        client = hcloud.Client(
            token=secret.reveal(),
            api_endpoint=self.endpoint,
            application_name="hecate",
            poll_interval=self.poll_interval,
            timeout=http.timeout,
        )
        # hcloud has no public setting for these (2.27: ClientBase.__init__); the unit tests
        # check that the attributes still exist, so an hcloud upgrade cannot drop them silently.
        for base in (client._client, client._client_hetzner):  # pylint: disable=protected-access
            base._session = http.session  # pylint: disable=protected-access
            base._retry_max_retries = int(self.settings.get("retries", 3))  # pylint: disable=protected-access
            base._retry_interval_func = hcloud.exponential_backoff_function(  # pylint: disable=protected-access
                base=float(self.settings.get("backoff") or 1.0), multiplier=2, cap=60.0, jitter=True
            )
        self._client = client
        return client

    def _where(self):
        parts = requests.utils.urlparse(self.endpoint)
        return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")

    def _fail(self, text, cls=salt.exceptions.CommandExecutionError):
        return cls(hecate_secrets.scrub(text, self._secrets))

    def _call(self, what, func, not_found=None):
        """``func()``; errors become ``CommandExecutionError``. ``not_found``: what a
        ``not_found`` answer returns instead (a callable; it may raise its own error)."""
        try:
            return func()
        except hcloud.APIException as exc:
            if not_found is not None and exc.code == "not_found":
                return not_found()
            raise self._fail(f"{SYSTEM}: {what}: {api_error(exc)}") from None
        except requests.exceptions.SSLError as exc:
            failed = hecate_http.tls_failed(SYSTEM, self._where(), exc, CONFIG_KEY)
            raise self._fail(failed, hecate_http.Unreachable) from None
        except requests.exceptions.RequestException as exc:
            reason = hecate_http._reason(exc)  # pylint: disable=protected-access
            message = f"{SYSTEM} at {self._where()}: {what}: unreachable ({reason})"
            raise self._fail(message, hecate_http.Unreachable) from None

    # -- reads ------------------------------------------------------------------------------------
    def zone(self, name):
        """The zone (an hcloud ``BoundZone``), read once per client; errors name it."""
        if name in self._zones:
            return self._zones[name]
        client = self._hcloud()

        def missing():
            raise self._fail(
                f"{SYSTEM}: zone {name} does not exist in the Hetzner project of this token "
                "(hecate manages records, not zones: create the zone in the Hetzner Console)"
            )

        zone = self._call(f"read zone {name}", lambda: client.zones.get(name), not_found=missing)
        if zone.mode != "primary":
            raise self._fail(
                f"{SYSTEM}: zone {name} is in {zone.mode} mode: its records come from its primary "
                "nameservers (AXFR), not from the API"
            )
        self._zones[name] = zone
        return zone

    def rrsets(self, zone_name, label_selector=None, name=None, rtype=None):
        """Every RRSet of the zone (all pages) as dicts, optionally filtered by the API."""
        zone = self.zone(zone_name)
        client = self._hcloud()
        kwargs = {"label_selector": label_selector, "name": name, "type": [rtype] if rtype else None}
        got = self._call(f"list RRSets of zone {zone_name}", lambda: client.zones.get_rrset_all(zone, **kwargs))
        return [rrset_dict(r) for r in got]

    def rrset(self, zone_name, name, rtype):
        """One RRSet as a dict, or None."""
        zone = self.zone(zone_name)
        client = self._hcloud()
        return self._call(f"read RRSet {name}/{rtype} of zone {zone_name}",
                          lambda: rrset_dict(client.zones.get_rrset(zone, name, rtype)),
                          not_found=lambda: None)

    # -- writes -----------------------------------------------------------------------------------
    def _rrset_ref(self, zone_name, name, rtype):
        return hcloud.zones.ZoneRRSet(name=name, type=rtype, zone=self.zone(zone_name))

    @staticmethod
    def _records(values):
        return [hcloud.zones.ZoneRecord(value=v) for v in values]

    def create(self, zone_name, name, rtype, ttl, labels, values):
        what = f"create {_label(zone_name, name, rtype)}"
        client, zone = self._hcloud(), self.zone(zone_name)
        resp = self._call(what, lambda: client.zones.create_rrset(
            zone, name=name, type=rtype, ttl=ttl, labels=labels, records=self._records(values)))
        self.wait(resp.action, what)

    def set_records(self, zone_name, name, rtype, values):
        what = f"set the records of {_label(zone_name, name, rtype)}"
        client, ref = self._hcloud(), self._rrset_ref(zone_name, name, rtype)
        action = self._call(what, lambda: client.zones.set_rrset_records(ref, self._records(values)))
        self.wait(action, what)

    def change_ttl(self, zone_name, name, rtype, ttl):
        what = f"change the TTL of {_label(zone_name, name, rtype)}"
        client, ref = self._hcloud(), self._rrset_ref(zone_name, name, rtype)
        action = self._call(what, lambda: client.zones.change_rrset_ttl(ref, ttl))
        self.wait(action, what)

    def set_labels(self, zone_name, name, rtype, labels):
        """Labels are replaced as a whole (``PUT``; no Action is returned)."""
        what = f"set the labels of {_label(zone_name, name, rtype)}"
        client, ref = self._hcloud(), self._rrset_ref(zone_name, name, rtype)
        self._call(what, lambda: client.zones.update_rrset(ref, labels=dict(labels)))
        self.writes.append((what, None))

    def delete(self, zone_name, name, rtype):
        what = f"delete {_label(zone_name, name, rtype)}"
        client, ref = self._hcloud(), self._rrset_ref(zone_name, name, rtype)
        resp = self._call(what, lambda: client.zones.delete_rrset(ref))
        self.wait(resp.action, what)

    def wait(self, action, what):
        """Follow an Action until it succeeds; failure or ``action_timeout`` raise naming it."""
        self.writes.append((what, action.command))
        deadline = time.monotonic() + self.action_timeout
        name = f"action {action.command} #{action.id}"
        while True:
            status = action.status
            if status == "success":
                return action
            if status == "error":
                err = action.error or {}
                raise self._fail(
                    f"{SYSTEM}: {what}: {name} failed: {err.get('code', 'error')}: "
                    f"{err.get('message', '(no message)')}", ActionFailed)
            if time.monotonic() >= deadline:
                raise self._fail(
                    f"{SYSTEM}: {what}: {name} did not finish within {self.action_timeout:g}s "
                    f"(still {status}, progress {action.progress}%); raise "
                    f"{CONFIG_KEY}:action_timeout if the API is slow", ActionFailed)
            time.sleep(min(self.poll_interval, max(deadline - time.monotonic(), 0.0)))
            self._call(f"{what}: read {name}", action.reload)


def _label(zone_name, name, rtype):
    return f"{'' if name == '@' else name + '.'}{zone_name} {rtype}"


def api_error(exc):
    """``code: message`` of an ``hcloud.APIException`` with the fields of an invalid input."""
    text = f"{exc.code}: {exc.message}"
    details = exc.details if isinstance(exc.details, dict) else {}
    fields = details.get("fields") or []
    parts = []
    for field in fields if isinstance(fields, list) else []:
        if isinstance(field, dict) and field.get("name"):
            msgs = field.get("messages") or []
            parts.append(f"{field['name']}" + (f" ({'; '.join(map(str, msgs))})" if msgs else ""))
    if parts:
        text += f" [fields: {', '.join(parts)}]"
    if exc.code == "unauthorized" or exc.code == 401:
        text += f" (is {CONFIG_KEY}:token the API token of the project that holds the zone?)"
    elif exc.code == "token_readonly":
        text += " (the API token is read-only: hecate needs a read & write token)"
    return text


def token_ref(opts, pillar):
    """The configured token: ``hecate:connections:hetzner_dns:token``, else ``hecate:dns:token``."""
    settings = hecate_config.connection("hetzner_dns", opts, pillar)
    return settings.get("token") or hecate_config.traverse(pillar or {}, "hecate:dns:token")


def from_config(opts, pillar, sdb_get=None, context=None):
    """
    The client for this minion's settings (minion config wins over pillar), cached in
    ``context`` (pass ``__context__``) per endpoint. The token is resolved on first use.
    """
    settings = hecate_config.connection("hetzner_dns", opts, pillar)
    key = ("hecate_dns_client", settings.get("api_endpoint"))
    if context is not None and key in context:
        return context[key]
    ref = token_ref(opts, pillar)
    where = f"{CONFIG_KEY}:token" if settings.get("token") else "hecate:dns:token"
    resolver = hecate_vault_client.Resolver(opts, pillar, sdb_get, context)
    client = DNSClient(settings, lambda: resolver(ref, where))
    if context is not None:
        context[key] = client
    return client


# -- applying a plan -------------------------------------------------------------------------------
class ApplyFailed(salt.exceptions.CommandExecutionError):
    """A write failed; ``left`` are the ops still applied (their undo failed too)."""

    def __init__(self, message, left=()):
        super().__init__(message)
        self.left = list(left)


def apply(client, ops, env):
    """
    Make the changes of ``ops`` (:func:`hecate_dns_records.plan`), one RRSet after the
    other, each Action followed to its end. If a write fails, the RRSets this call already
    changed are put back as they were (in reverse order) before :class:`ApplyFailed` is
    raised, so a failed run leaves the zone as it found it; what could not be put back is
    named in the message and in ``left``.
    """
    done = []  # (op, [undo steps, in the order to run them]), filled as the writes succeed
    try:
        for op in ops:
            undos = []
            done.append((op, undos))
            _apply_one(client, op, env, undos)
    except salt.exceptions.CommandExecutionError as exc:
        done = [(op, undos) for op, undos in done if undos]
        if not done:
            raise
        left, problems = [], []
        for op, undos in reversed(done):
            for undo in undos:
                try:
                    undo()
                except salt.exceptions.CommandExecutionError as undo_exc:
                    left.append(op)
                    problems.append(f"{hecate_dns_records.key_of(op.name, op.type, op.zone)}: {undo_exc}")
                    break
        if problems:
            raise ApplyFailed(f"{exc}\n{len(done)} RRSet(s) changed before it; putting them back FAILED for "
                              + "; ".join(problems), left) from None
        raise ApplyFailed(f"{exc}\nthe {len(done)} RRSet(s) this run changed before it were put back as they were") \
            from None


def _apply_one(client, op, env, undos):
    """Write one op; each write that succeeds puts its undo first in ``undos``."""
    zone, name, rtype, live = op.zone, op.name, op.type, op.live
    if op.kind == "create":
        client.create(zone, name, rtype, op.new["ttl"], hecate_dns_records.labels(env), op.new["values"])
        undos.insert(0, lambda: client.delete(zone, name, rtype))
        return
    if op.kind == "delete":
        client.delete(zone, name, rtype)
        undos.insert(0, lambda: client.create(zone, name, rtype, live.get("ttl"), live.get("labels") or {},
                                              [r["value"] for r in live.get("records") or []]))
        return
    for write in op.writes:
        if write == "set_records":
            client.set_records(zone, name, rtype, op.new["values"])
            undos.insert(0, lambda: client.set_records(zone, name, rtype, [r["value"] for r in live["records"]]))
        elif write == "change_ttl":
            client.change_ttl(zone, name, rtype, op.new["ttl"])
            undos.insert(0, lambda: client.change_ttl(zone, name, rtype, live.get("ttl")))
        elif write == "labels":
            merged = dict(live.get("labels") or {}, **hecate_dns_records.labels(env))
            client.set_labels(zone, name, rtype, merged)
            undos.insert(0, lambda: client.set_labels(zone, name, rtype, live.get("labels") or {}))
