"""
Authentik REST API v3 client for hecate, on the shared :class:`hecate_http.Client`.

- Bearer token from ``hecate:connections:authentik:token`` (minion config or pillar; a
  Vault reference ``{vault: secret/hecate/authentik, key: api_token}``, an ``sdb://`` URI
  or, in minion config only, a literal), resolved through
  :class:`hecate_vault_client.Resolver` when the client is built. Never an argument.
- TLS verification on (``verify``/``ca_bundle``), retries with backoff on connection
  errors and 429/500/502/503/504 for idempotent requests.
- Every list is read to the last page (``pagination.next`` is a page NUMBER, 0 at the
  end); lookups by name verify the match themselves, because Authentik ignores unknown
  filters silently.
- A 403 becomes "token invalid or lacks permission"; DRF 400 bodies become messages that
  name the field (``redirect_uris: Invalid Regex Pattern: (``).
- The server version (``/admin/version/``) decides where the API changed: group
  ``parent`` (uuid) up to 2025.10, ``parents`` (list) from 2025.12.

The module also holds the pure helpers the states share (duration normalisation,
redirect URIs, the group scope-mapping expression); the pillar schema of
``bionicgpt:authentik`` is in ``hecate_authentik_schema``.
"""

import copy
import ipaddress
import logging
import re
import urllib.parse

import salt.exceptions

import hecate_config
import hecate_http
import hecate_secrets
import hecate_vault_client

log = logging.getLogger(__name__)

SYSTEM = "Authentik"
RETRY_STATUSES = (429, 500, 502, 503, 504)
MAX_PAGE_SIZE = 100  # the server caps page_size at 100 from 2025.12
PARENTS_SINCE = (2025, 12)  # group.parent (uuid) became group.parents ([uuid])
EMBEDDED_OUTPOST = "goauthentik.io/outposts/embedded"
MANAGED_SCOPE = "goauthentik.io/providers/oauth2/scope-{}"
# the scope mappings Authentik adds to every proxy provider (set_oauth_defaults)
PROXY_FORCED_SCOPES = frozenset(
    [MANAGED_SCOPE.format(s) for s in ("openid", "profile", "email", "entitlements")]
    + ["goauthentik.io/providers/proxy/scope-proxy"]
)


class AuthentikError(salt.exceptions.CommandExecutionError):
    """An Authentik API call failed (status and parsed body kept for callers)."""

    def __init__(self, message, status=None, body=None):
        super().__init__(message)
        self.status = status
        self.body = body


class Forbidden(AuthentikError):
    """403: the token is invalid/expired, or its user lacks the permission."""


class Kind:
    """One API collection."""

    def __init__(self, path, label, key="pk", name_field="name", name_filter="name",
                 list_params=None, index=False):
        self.path = path
        self.label = label  # for messages: "group", "OAuth2 provider" ...
        self.key = key  # the field in the item URL: pk or slug
        self.name_field = name_field  # the field that identifies an object by name
        self.name_filter = name_filter  # the query parameter that filters by it
        self.list_params = list_params or {}
        self.index = index  # list everything once per run and look names up locally


KINDS = {
    "group": Kind("/core/groups/", "group", list_params={"include_users": "false"}, index=True),
    "user": Kind("/core/users/", "user", name_field="username", name_filter="username",
                 list_params={"include_groups": "false"}),
    "application": Kind("/core/applications/", "application", key="slug", name_field="slug",
                        name_filter="slug", list_params={"superuser_full_list": "true"}),
    "brand": Kind("/core/brands/", "brand", name_field="domain", name_filter="domain"),
    "provider_oauth2": Kind("/providers/oauth2/", "OAuth2 provider", index=True),
    "provider_proxy": Kind("/providers/proxy/", "proxy provider", name_filter="name__iexact"),
    "provider_saml": Kind("/providers/saml/", "SAML provider"),
    "saml_mapping": Kind("/propertymappings/provider/saml/", "SAML property mapping", index=True),
    "scope_mapping": Kind("/propertymappings/provider/scope/", "scope mapping", index=True),
    "flow": Kind("/flows/instances/", "flow", key="slug", name_field="slug", name_filter="slug"),
    "flow_binding": Kind("/flows/bindings/", "flow stage binding", name_field=None, name_filter=None),
    "policy_binding": Kind("/policies/bindings/", "policy binding", name_field=None, name_filter=None),
    "outpost": Kind("/outposts/instances/", "outpost", name_filter="name__iexact"),
    "certificate": Kind("/crypto/certificatekeypairs/", "certificate key pair"),
    "stage_identification": Kind("/stages/identification/", "identification stage"),
    "stage_captcha": Kind("/stages/captcha/", "captcha stage"),
    "stage_password": Kind("/stages/password/", "password stage"),
    "stage_prompt": Kind("/stages/prompt/stages/", "prompt stage"),
    # listed whole once anyway (names_by_pk: which fields a prompt stage has): look names up there
    "prompt": Kind("/stages/prompt/prompts/", "prompt field", index=True),
    "stage_user_write": Kind("/stages/user_write/", "user write stage"),
    "stage_user_login": Kind("/stages/user_login/", "user login stage"),
}


def parse_version(text):
    """``'2025.10.4'`` -> ``(2025, 10, 4)``; unparseable -> None."""
    match = re.match(r"^\s*v?(\d{4})\.(\d{1,2})(?:\.(\d+))?", str(text or ""))
    if not match:
        return None
    return int(match.group(1)), int(match.group(2)), int(match.group(3) or 0)


PLAIN_HTTP_REFUSED = "plain http is refused in prod: the API token would cross the network in clear"


def environment(opts=None, pillar=None):
    """
    The environments this minion is said to be in: its ``hecate_env`` grain (what the
    pillar top and the orchestration's targeting go by) and the pillar's
    ``hecate:global:environment`` (the overlay it got). Either may be None.
    """
    grains = (opts or {}).get("grains") or {}
    return {grains.get("hecate_env"), hecate_config.traverse(pillar or {}, "hecate:global:environment")} - {None}


def plain_http_off_host(url):
    """
    A plain-http URL whose host is not this machine's loopback: there the token would cross
    a network. ``http://127.0.0.1:9000`` (Authentik deployed by hecate on the edge, its
    ports on the edge's loopback) keeps it on the host.
    """
    if not isinstance(url, str) or not url.lower().startswith("http://"):
        return False
    host = (urllib.parse.urlsplit(url).hostname or "").strip("[]")
    if host == "localhost":
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True


def check_transport(url, envs):
    """
    Refuse a plain-http Authentik URL when any of ``envs`` is prod: the bearer token
    (an Authentik admin credential) must not cross the network in clear. The pillar check
    (``hecate.validate``) says the same before a run; this holds at call time too, for a
    URL set in minion config (which wins over pillar and is not validated).
    """
    if "prod" in set(envs or ()) and plain_http_off_host(url):
        raise salt.exceptions.SaltInvocationError(
            f"hecate:connections:authentik:url: {PLAIN_HTTP_REFUSED} (got {url}; use https://)"
        )


class AuthentikClient:
    """
    A client bound to one Authentik server and token.

    ``stats`` (from the HTTP client) counts requests per method. ``env`` (a name or a
    set of them, see :func:`environment`): in prod a plain-http URL is refused before
    any request is made.
    """

    def __init__(self, settings, token, env=None):
        url = settings.get("url")
        if not url:
            raise salt.exceptions.SaltInvocationError(
                "hecate:connections:authentik:url is not set (minion config or pillar)"
            )
        check_transport(url, {env} if isinstance(env, str) else env)
        if not token:
            raise salt.exceptions.SaltInvocationError(
                "hecate:connections:authentik:token is not set: give a Vault reference "
                "{vault: secret/hecate/authentik, key: api_token} in pillar or minion config"
            )
        self.settings = settings
        self.url = url.rstrip("/")
        self._token = token
        self.http = hecate_http.Client(
            self.url + "/api/v3",
            SYSTEM,
            headers={"Authorization": f"Bearer {token.reveal()}", "Accept": "application/json"},
            timeout=settings.get("timeout", 30),
            retries=settings.get("retries", 3),
            retry_statuses=RETRY_STATUSES,
            **hecate_config.tls_args(settings, "authentik"),
        )
        self.page_size = max(1, min(int(settings.get("page_size") or MAX_PAGE_SIZE), MAX_PAGE_SIZE))
        self._version = None
        self._index = {}

    @property
    def stats(self):
        return self.http.stats

    # -- transport ----------------------------------------------------------------------------
    def call(self, method, path, ok=None, params=None, body=None):
        """One request; JSON result (None for empty bodies). Errors name the field."""
        kwargs = {}
        if params:
            kwargs["params"] = params
        if body is not None:
            kwargs["json"] = body
        try:
            return self.http.json(method, path, ok=ok, **kwargs)
        except hecate_http.HTTPError as exc:
            text = hecate_secrets.scrub(hecate_http.error_text(exc.body), [self._token])
            where = f"{method} {path}"
            if exc.status == 403:
                raise Forbidden(
                    f"Authentik at {self.url}: token invalid or lacks permission "
                    f"({where} returned 403: {text or 'forbidden'})",
                    status=403,
                    body=exc.body,
                ) from None
            raise AuthentikError(
                f"Authentik: {where} returned {exc.status}" + (f": {text}" if text else ""),
                status=exc.status,
                body=exc.body,
            ) from None

    def list(self, kind, **filters):
        """Every object of ``kind`` matching ``filters``, all pages read."""
        spec = KINDS[kind]
        params = dict(spec.list_params)
        params.update({k: _param(v) for k, v in filters.items() if v is not None})
        params["page_size"] = self.page_size
        out, page = [], 1
        while True:
            params["page"] = page
            data = self.call("GET", spec.path, params=params)
            if not isinstance(data, dict) or "results" not in data:
                raise AuthentikError(f"Authentik: GET {spec.path} did not return a paginated list")
            out.extend(data["results"])
            nxt = int((data.get("pagination") or {}).get("next") or 0)
            if nxt <= 0:
                return out
            if nxt <= page:
                raise AuthentikError(
                    f"Authentik: GET {spec.path} pagination went backwards (page {page} -> {nxt})"
                )
            page = nxt

    def item_path(self, kind, key):
        return f"{KINDS[kind].path}{urllib.parse.quote(str(key), safe='')}/"

    def get(self, kind, key):
        """One object by its key (pk or slug); None when it does not exist."""
        if key is None:
            return None
        # only the group endpoint takes include_users on a single object (schema)
        params = KINDS[kind].list_params if kind == "group" else None
        try:
            return self.call("GET", self.item_path(kind, key), params=params)
        except AuthentikError as exc:
            if exc.status == 404:
                return None
            raise

    def find(self, kind, name, exact=True):
        """
        The one object of ``kind`` whose name field equals ``name``; None when there is
        none. More than one (groups before 2025.12 allow duplicate names) is an error.
        """
        spec = KINDS[kind]
        if spec.index:
            found = self.index(kind).get(name, [])
        else:
            found = [o for o in self.list(kind, **{spec.name_filter: name})
                     if o.get(spec.name_field) == name]
        if len(found) > 1:
            raise AuthentikError(
                f"Authentik has {len(found)} {spec.label}s named '{name}' "
                f"({', '.join(str(o.get('pk')) for o in found)}); remove the duplicates by hand"
            )
        return copy.deepcopy(found[0]) if found else None

    def lookup(self, kind, name):
        """By slug for slug-keyed kinds (flows, applications), else by name; or None."""
        if KINDS[kind].key == "slug":
            return self.get(kind, name)
        return self.find(kind, name)

    def require(self, kind, name, where=None):
        """Like :meth:`lookup` but a missing object is an error naming it."""
        obj = self.lookup(kind, name)
        if obj is None:
            raise AuthentikError(
                (f"{where}: " if where else "")
                + f"Authentik has no {KINDS[kind].label} '{name}'"
            )
        return obj

    def index(self, kind):
        """``{name: [objects]}`` of ``kind``, listed once (every page) and kept current."""
        if kind not in self._index:
            spec = KINDS[kind]
            table = {}
            for obj in self.list(kind):
                table.setdefault(obj.get(spec.name_field), []).append(obj)
            self._index[kind] = table
        return self._index[kind]

    def names_by_pk(self, kind):
        """``{pk: name}`` of every object of ``kind`` (from the per-run index)."""
        return {o.get("pk"): name for name, objs in self.index(kind).items() for o in objs}

    def _reindex(self, kind, obj, old=None):
        if kind not in self._index:
            return
        spec = KINDS[kind]
        table = self._index[kind]
        if old is not None:
            bucket = table.get(old.get(spec.name_field), [])
            table[old.get(spec.name_field)] = [o for o in bucket if o.get("pk") != old.get("pk")]
        if obj is not None:
            table.setdefault(obj.get(spec.name_field), []).append(obj)

    def create(self, kind, body):
        obj = self.call("POST", KINDS[kind].path, ok=(201, 200), body=body)
        self._reindex(kind, obj)
        return obj

    def patch(self, kind, key, body, old=None):
        obj = self.call("PATCH", self.item_path(kind, key), body=body)
        self._reindex(kind, obj, old=old or obj)
        return obj

    # -- partial updates the serializers accept -----------------------------------------------
    # A PATCH is a DRF partial update: each serializer's validate(attrs) sees only the
    # fields sent, never the stored object (rest_framework/serializers.py run_validation,
    # mixins.py partial_update). Where a validate() reads fields together, the PATCH
    # re-sends the live values of the ones it reads.
    def set_enrollment_flow(self, stage, flow_pk):
        """
        Point an identification stage's ``enrollment_flow`` at ``flow_pk`` (None unlinks).
        IdentificationStageSerializer.validate (authentik/stages/identification/api.py)
        refuses a body without user fields and without sources, so the stage's own
        ``user_fields`` and ``sources`` go with it, unchanged.
        """
        body = {"enrollment_flow": flow_pk,
                "user_fields": list(stage.get("user_fields") or []),
                "sources": list(stage.get("sources") or [])}
        return self.patch("stage_identification", stage["pk"], body)

    def patch_policy_binding(self, binding, fields):
        """
        PATCH ``fields`` of a policy binding together with its ``target`` and the one of
        policy/user/group it binds: PolicyBindingSerializer.validate
        (authentik/policies/api/bindings.py) reads them from the sent fields only
        (without ``target`` the server fails with a 500 from 2024.12 on; without the
        bound object it answers 400).
        """
        body = dict(fields, target=binding["target"])
        for key in ("policy", "group", "user"):
            if binding.get(key) is not None:
                body[key] = binding[key]
        return self.patch("policy_binding", binding["pk"], body)

    def proxy_provider_changes(self, provider, fields):
        """
        The part of ``fields`` (API values) that differs from the live proxy provider.
        ``property_mappings`` compares as a set with the managed scope mappings Authentik
        adds on every write (ProxyProvider.set_oauth_defaults, authentik/providers/proxy/
        models.py: ``property_mappings.add(...)``, so a client can never take them off):
        wanting ``[]`` on a provider that holds only those is no change.
        """
        out = {}
        for key, value in fields.items():
            live = provider.get(key)
            if key == "property_mappings":
                forced = {m["pk"] for ms in self.index("scope_mapping").values() for m in ms
                          if m.get("managed") in PROXY_FORCED_SCOPES}
                if set(value or []) | forced != set(live or []):
                    out[key] = list(value or [])
            elif key in ("access_token_validity", "refresh_token_validity") and live is not None:
                if duration_seconds(value, key) != duration_seconds(live, key):
                    out[key] = value
            elif live != value:
                out[key] = value
        return out

    def patch_proxy_provider(self, provider, fields):
        """
        PATCH ``fields`` of a proxy provider with its ``mode`` (and, in proxy mode, its
        ``internal_host``) unless ``fields`` change them: ProxyProviderSerializer.validate
        (authentik/providers/proxy/api.py) takes an unsent mode for "proxy" and then
        wants an internal host.
        """
        body = dict(fields)
        body.setdefault("mode", provider.get("mode") or "proxy")
        if body["mode"] == "proxy":
            body.setdefault("internal_host", provider.get("internal_host") or "")
        return self.patch("provider_proxy", provider["pk"], body)

    def delete(self, kind, key, old=None):
        """Delete; True when deleted, False when it was already gone."""
        try:
            self.call("DELETE", self.item_path(kind, key), ok=(204, 200))
        except AuthentikError as exc:
            if exc.status == 404:
                return False
            raise
        if old is not None:
            self._reindex(kind, None, old=old)
        else:
            self._index.pop(kind, None)
        return True

    # -- server version --------------------------------------------------------------------
    def version(self):
        """``(year, month, patch)`` of the server, asked once per client."""
        if self._version is None:
            try:
                data = self.call("GET", "/admin/version/")
                self._version = parse_version((data or {}).get("version_current"))
            except Forbidden as exc:
                if "Token invalid" in str(exc) or "credentials were not provided" in str(exc):
                    raise
                self._version = None
            if self._version is None:
                self._version = self._probe_version()
        return self._version

    def _probe_version(self):
        """
        Without permission to read the version: tell the group schema apart from a
        group object (``parents`` exists from 2025.12); assume the older API otherwise.
        """
        spec = KINDS["group"]
        data = self.call("GET", spec.path, params=dict(spec.list_params, page_size=1))
        results = (data or {}).get("results") or []
        if results and "parents" in results[0]:
            return PARENTS_SINCE + (0,)
        return (2025, 10, 0)

    @property
    def parents_field(self):
        return "parents" if self.version()[:2] >= PARENTS_SINCE else "parent"

    # -- groups and users ----------------------------------------------------------------------
    def group_parents(self, group):
        """The parent uuids of a group object, whatever the server version."""
        if "parents" in group:
            return sorted(group.get("parents") or [])
        return [group["parent"]] if group.get("parent") else []

    def parents_body(self, parent_pks):
        """The request fields that set a group's parents on this server."""
        parent_pks = list(parent_pks or [])
        if self.parents_field == "parents":
            return {"parents": parent_pks}
        if len(parent_pks) > 1:
            raise salt.exceptions.SaltInvocationError(
                f"Authentik {'.'.join(map(str, self.version()[:2]))} supports one parent per "
                f"group (several parents came with 2025.12)"
            )
        return {"parent": parent_pks[0] if parent_pks else None}

    def add_user(self, group_pk, user_pk):
        self.call("POST", f"{self.item_path('group', group_pk)}add_user/", ok=(204, 200),
                  body={"pk": int(user_pk)})

    def remove_user(self, group_pk, user_pk):
        self.call("POST", f"{self.item_path('group', group_pk)}remove_user/", ok=(204, 200),
                  body={"pk": int(user_pk)})

    def set_password(self, user_pk, password):
        """``password`` is a :class:`hecate_secrets.Secret`; revealed only into the body."""
        self.call("POST", f"{self.item_path('user', user_pk)}set_password/", ok=(204, 200),
                  body={"password": password.reveal()})

    # -- providers, mappings, outposts ---------------------------------------------------------
    def managed_scope_mapping(self, scope):
        """
        The built-in scope mapping of ``scope`` (openid, email, profile, offline_access...)
        or None, from the per-run index: the ``managed`` filter is an
        AllValuesMultipleFilter (authentik/core/api/property_mappings.py), so asking for
        a value no mapping has is a 400, not an empty list.
        """
        managed = MANAGED_SCOPE.format(scope)
        found = [m for ms in self.index("scope_mapping").values() for m in ms if m.get("managed") == managed]
        return copy.deepcopy(found[0]) if found else None

    def embedded_outpost(self):
        found = [o for o in self.list("outpost", managed__iexact=EMBEDDED_OUTPOST)
                 if o.get("managed") == EMBEDDED_OUTPOST]
        if not found:
            raise AuthentikError("Authentik has no embedded outpost (managed " + EMBEDDED_OUTPOST + ")")
        return found[0]

    def outpost_providers(self, outpost_pk, add=(), remove=()):
        """
        Attach/detach providers (pks) on an outpost: read, edit the list, PATCH only
        ``providers`` when it changed. Returns ``(old, new)`` lists.
        """
        outpost = self.get("outpost", outpost_pk)
        if outpost is None:
            raise AuthentikError(f"Authentik: outpost {outpost_pk} does not exist")
        old = list(outpost.get("providers") or [])
        new = [p for p in old if p not in remove] + [p for p in add if p not in old]
        if new != old:
            self.patch("outpost", outpost_pk, {"providers": new})
        return old, new

    def set_app_icon(self, slug, url):
        """
        Set an application's icon to ``url``: from 2026.1 ``meta_icon`` is a plain field;
        before, it is read-only and ``set_icon_url`` sets it (ApplicationViewSet,
        authentik/core/api/applications.py; lib/utils/file.py set_file_url).
        """
        if self.version()[:2] >= (2026, 1):
            return self.patch("application", slug, {"meta_icon": url})
        self.call("POST", f"{self.item_path('application', slug)}set_icon_url/", ok=(200, 204), body={"url": url})
        return self.get("application", slug)

    def close(self):
        self.http.close()


def _param(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def from_config(opts, pillar, sdb_get=None, context=None):
    """
    The client for this minion's ``hecate:connections:authentik`` settings, cached in
    ``context`` (pass ``__context__``) so one run resolves the token and asks the
    version once.
    """
    settings = hecate_config.connection("authentik", opts, pillar)
    key = ("hecate_authentik_client", settings.get("url"))
    if context is not None and key in context:
        return context[key]
    if not settings.get("url"):
        raise salt.exceptions.SaltInvocationError(
            "hecate:connections:authentik:url is not set (minion config or pillar)"
        )
    envs = environment(opts, pillar)
    check_transport(settings["url"], envs)  # before the token is even resolved
    resolve = hecate_vault_client.Resolver(opts, pillar, sdb_get, context)
    token = resolve(settings.get("token"), "hecate:connections:authentik:token")
    client = AuthentikClient(settings, token, env=envs)
    if context is not None:
        context[key] = client
    return client


# ------------------------------------------------------------------------------------------
# Pure helpers shared by the states
# ------------------------------------------------------------------------------------------
_UNITS = {
    "weeks": 604800.0,
    "days": 86400.0,
    "hours": 3600.0,
    "minutes": 60.0,
    "seconds": 1.0,
    "milliseconds": 0.001,
    "microseconds": 0.000001,
}


def duration_seconds(value, where="duration"):
    """
    Authentik's ``hours=1;minutes=30`` (Python ``timedelta`` keywords) in seconds, so
    that ``hours=1`` equals ``minutes=60``. Integers are taken as seconds.
    """
    if isinstance(value, bool):
        raise salt.exceptions.SaltInvocationError(f"{where}: expected a duration such as 'hours=1', got {value!r}")
    if isinstance(value, (int, float)):
        return float(value)
    total, seen = 0.0, False
    for part in str(value).split(";"):
        part = part.strip()
        if not part:
            continue
        unit, sep, amount = part.partition("=")
        unit = unit.strip().lower()
        try:
            number = float(amount)
        except ValueError:
            number = None
        if not sep or unit not in _UNITS or number is None:
            raise salt.exceptions.SaltInvocationError(
                f"{where}: {value!r} is not an Authentik duration "
                f"(e.g. 'hours=1' or 'days=1;hours=2'; units {', '.join(_UNITS)})"
            )
        total += number * _UNITS[unit]
        seen = True
    if not seen:
        raise salt.exceptions.SaltInvocationError(f"{where}: empty duration")
    return total


def duration_text(value, where="duration"):
    """The string to send for a desired duration (ints become ``seconds=N``)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"seconds={int(value)}"
    duration_seconds(value, where)
    return str(value).strip()


def redirect_uris(value, where="redirect_uris"):
    """
    Desired redirect URIs as Authentik's ``[{"matching_mode", "url"}]``, each a strict
    match unless given as ``{url, matching_mode: regex}``; sorted, because the server
    does not keep the order (authentik#18765).
    """
    out = []
    for idx, item in enumerate(value or []):
        if isinstance(item, str):
            item = {"url": item, "matching_mode": "strict"}
        if not isinstance(item, dict) or not isinstance(item.get("url"), str) or not item["url"]:
            raise salt.exceptions.SaltInvocationError(
                f"{where}:{idx}: expected a URL or {{url: ..., matching_mode: strict|regex}}"
            )
        mode = item.get("matching_mode", "strict")
        if mode not in ("strict", "regex"):
            raise salt.exceptions.SaltInvocationError(
                f"{where}:{idx}: matching_mode must be strict or regex, not {mode!r}"
            )
        if mode == "regex":
            try:
                re.compile(item["url"])
            except re.error as exc:
                raise salt.exceptions.SaltInvocationError(
                    f"{where}:{idx}: invalid regular expression ({exc})"
                ) from None
        entry = {"matching_mode": mode, "url": item["url"]}
        if item.get("redirect_uri_type"):
            entry["redirect_uri_type"] = item["redirect_uri_type"]
        out.append(entry)
    return sorted(out, key=lambda e: (e["url"], e["matching_mode"]))


def live_redirect_uris(value):
    """Live redirect URIs normalised like :func:`redirect_uris` (default type dropped)."""
    out = []
    for item in value or []:
        entry = {"matching_mode": item.get("matching_mode"), "url": item.get("url")}
        if item.get("redirect_uri_type") not in (None, "authorization"):
            entry["redirect_uri_type"] = item["redirect_uri_type"]
        out.append(entry)
    return sorted(out, key=lambda e: (e["url"], e["matching_mode"]))


# Application.reserved_slugs (authentik/core/models.py): slugs that clash with the OAuth2
# provider endpoints (/application/o/authorize/ ...). The API refuses them from 2025.10
# (ApplicationSerializer.validate_slug); 2025.6 accepts them and the application then
# shadows an endpoint, so hecate refuses them on every release.
RESERVED_SLUGS = ("authorize", "token", "device", "userinfo", "introspect", "revoke")


def check_application_slug(slug, where="application"):
    if slug in RESERVED_SLUGS:
        raise salt.exceptions.SaltInvocationError(
            f"{where}: slug: The slug '{slug}' is reserved and cannot be used for applications "
            f"(it clashes with Authentik's OAuth2 endpoints /application/o/{slug}/)"
        )


def group_scope_expression(prefix, superadmin_group=None, claim="groups"):
    """
    The scope-mapping expression of the user's plan (bionicgpt-plan.md section 2.1
    step 3): only groups whose name starts with ``prefix``, plus ``is_superadmin``.
    ``request.user.ak_groups`` works on every supported release (2026 keeps it as a
    deprecated alias of ``groups``).
    """
    superadmin_group = superadmin_group or f"{prefix}superadmin"
    return (
        "# Managed by hecate (authentik_scope_mapping.present); edits are overwritten.\n"
        f"# Only groups whose name starts with {prefix!r} reach the token.\n"
        "prefixed = [\n"
        "    group.name\n"
        "    for group in request.user.ak_groups.all()\n"
        f"    if group.name.startswith({prefix!r})\n"
        "]\n"
        "return {\n"
        f"    {claim!r}: prefixed,\n"
        f"    \"is_superadmin\": {superadmin_group!r} in prefixed,\n"
        "}\n"
    )


def check_deletable_scope_mapping(mapping):
    """Refuse to delete a scope mapping Authentik manages itself (a built-in one)."""
    if mapping.get("managed"):
        raise salt.exceptions.CommandExecutionError(
            f"scope mapping '{mapping.get('name')}' is managed by Authentik ({mapping['managed']}); "
            "not deleting it"
        )


def same_expression(left, right):
    """Expressions compared without trailing whitespace differences."""

    def norm(text):
        return "\n".join(line.rstrip() for line in str(text or "").strip().splitlines())

    return norm(left) == norm(right)
