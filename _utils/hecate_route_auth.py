"""
Identity-aware routes: the Authentik objects that protect one Caddy route, from the
route's ``auth`` (or ``forward_auth: true``) in pillar ``hecate:reverse_proxy:caddy``.

For each protected route hecate keeps, in Authentik:

- a **proxy provider** ``hecate/<env>/route/<route>``: external host ``https://<domain>``,
  mode ``forward_single`` (or ``forward_domain`` with a cookie domain), flows by slug,
  skip-path regexes, token validity;
- an **application** (slug: the route's name, or ``auth:slug``) with that provider, whose
  publisher is the same ``hecate/<env>/route/<route>`` (the mark that makes it hecate's);
- **policy bindings** of exactly the listed groups on it (none: any signed-in user), the
  application's policy engine mode ``any`` (a member of any listed group gets in);
- the provider **attached** to the embedded outpost (or ``auth:outpost``), and to no other.

Ownership: hecate changes and deletes only providers named ``hecate/<env>/...`` and
applications published as ``hecate/<env>/...`` (and the bindings on those applications).
Of everything else it only ever reads, except that it adds/removes its own providers on the
outpost and fills in a blank ``authentik_host`` of the embedded outpost (without it the
embedded outpost sends browsers to its internal address). A same-slug application or a
provider for the same host on the same outpost that hecate does not own is an error naming
it, never taken over.

Order (why): a new route's objects are made provider -> application -> bindings -> outpost,
so the outpost serves the host only once its bindings exist (an application without
bindings lets every signed-in user in); changed bindings are added before old ones go.
Removing a route's objects (:func:`prune`) runs after Caddy stopped asking the outpost
for it (``hecate.route_auth_prune``, after the Caddy step).

:func:`readiness` tells the Caddy state whether a route's Authentik side is in place, so
that a run in which Authentik failed never switches a route to forward auth that the
outpost cannot answer.
"""

import re

import salt.exceptions

import hecate_authentik_client as hak
import hecate_http
import hecate_state

DEFAULT_FLOW = "default-provider-authorization-implicit-consent"
DEFAULT_INVALIDATION = "default-provider-invalidation-flow"
MODES = ("forward_single", "forward_domain")
SLUG_RE = re.compile(r"^[-a-zA-Z0-9_]+$")
_FLOW_SLUG = {"type": "string", "pattern": r"^[-a-zA-Z0-9_]+$", "maxLength": 50}
_DOMAIN = {"type": "string", "pattern": r"^\.?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$"}

# the ``auth`` key of a route (hecate:reverse_proxy:caddy:routes:<n>:auth)
AUTH_SCHEMA = {
    "type": ["object", "null"],
    "additionalProperties": False,
    "description": (
        "Protect the route with Authentik: hecate makes a proxy provider for the route's domain, "
        "an application, the group bindings and attaches the provider to the outpost, then has "
        "Caddy ask the outpost for every request (forward auth). `{}` lets any signed-in user in."
    ),
    "properties": {
        "groups": {
            "type": "array",
            "items": {"type": "string", "minLength": 1},
            "description": (
                "Authentik groups whose members get in (policy bindings on the application, engine "
                "mode any); empty or absent: any signed-in user. The groups must exist."
            ),
        },
        "mode": {
            "enum": list(MODES),
            "description": (
                "forward_single (default): the provider answers for the route's one domain; "
                "forward_domain: one provider for every host under `cookie_domain` (routes with "
                "several domains or a wildcard)."
            ),
        },
        "cookie_domain": dict(_DOMAIN, description=(
            "forward_domain only (required there): the domain the session cookie is set for, e.g. "
            "example.com; every domain of the route must be it or under it.")),
        "external_host": dict({"type": "string", "pattern": r"^https://[^\s/]+/?$"}, description=(
            "forward_domain only: the https URL the outpost's sign-in callback goes to (default: "
            "https://<the route's first domain without a wildcard>).")),
        "skip_paths": {
            "type": "array",
            "items": {"type": "string", "minLength": 1},
            "description": (
                "Regular expressions (Go syntax) of paths reached without signing in (the "
                "provider's skip_path_regex); forward_domain matches them against the whole URL."
            ),
        },
        "flow": dict(_FLOW_SLUG, description=(
            "Slug of the authorization flow (default default-provider-authorization-implicit-consent).")),
        "invalidation_flow": dict(_FLOW_SLUG, description=(
            "Slug of the invalidation (sign-out) flow (default default-provider-invalidation-flow).")),
        "token_validity": {
            "type": ["string", "integer"],
            "description": (
                "How long a sign-in lasts (the provider's access_token_validity, e.g. hours=24 or "
                "seconds); Authentik's default (hours=24) when absent."
            ),
        },
        "name": {"type": "string", "minLength": 1,
                 "description": "The application's display name (default: the route's name)."},
        "slug": dict(_FLOW_SLUG, description=(
            "The application's slug (default: the route's name); set it when another application "
            "already has that slug.")),
        "launch_url": {"type": "string", "pattern": r"^https?://\S+$",
                       "description": "The application's launch URL (default https://<first domain>)."},
        "icon": {"type": "string", "pattern": r"^https?://\S+$",
                 "description": "URL of the application's icon on the user's dashboard."},
        "meta_description": {"type": "string",
                             "description": "The application's description on the user's dashboard."},
        "outpost": {"type": "string", "minLength": 1,
                    "description": (
                        "Name of the Authentik outpost that serves the route (default: the embedded "
                        "outpost); Caddy reaches it at forward_auth:outpost.")},
    },
}
# settings under hecate:reverse_proxy:caddy:forward_auth that belong to the Authentik side
FORWARD_AUTH_SETTINGS = {
    "manage_authentik": {
        "type": "boolean",
        "description": (
            "true (default): hecate makes the Authentik side of every protected route and "
            "switches a route to forward auth only once it is in place; false: Authentik is "
            "managed elsewhere, hecate writes only the Caddy half (routes may not use `auth`)."
        ),
    },
    "authentik_host": {
        "type": "string",
        "pattern": r"^https?://[^\s/]+/?$",
        "description": (
            "The URL browsers reach Authentik at, set as the embedded outpost's authentik_host "
            "when that is blank (default: hecate:connections:authentik:url)."
        ),
    },
}


def environment(pillar, grains=None):
    """The environment hecate's marks carry (``hecate:global:environment``, else the grain)."""
    env = ((pillar or {}).get("hecate") or {}).get("global", {}).get("environment") or (grains or {}).get("hecate_env")
    if not env:
        raise salt.exceptions.SaltInvocationError(
            "hecate:global:environment is not set: hecate marks its Authentik objects with the environment"
        )
    return str(env)


def mark(env, kind, name):
    """The ownership mark: a provider's name and its application's publisher."""
    return f"hecate/{env}/{kind}/{name}"


def owned_prefix(env, kind=None):
    return f"hecate/{env}/" + (f"{kind}/" if kind else "")


class RouteAuth:
    """The normalised Authentik side of one protected route (environment-free)."""

    def __init__(self, route, domains, where, groups=(), mode="forward_single", cookie_domain="",
                 external_host=None, skip_paths=(), flow=DEFAULT_FLOW,
                 invalidation_flow=DEFAULT_INVALIDATION, token_validity=None, name=None,
                 slug=None, launch_url=None, icon=None, description=None, outpost=None):
        self.route = route
        self.domains = list(domains)
        self.where = where
        self.groups = list(groups)
        self.mode = mode
        self.cookie_domain = cookie_domain or ""
        self.external_host = external_host
        self.skip_paths = list(skip_paths)
        self.flow = flow
        self.invalidation_flow = invalidation_flow
        self.token_validity = token_validity
        self.name = name or route
        self.slug = slug or route
        self.launch_url = launch_url
        self.icon = icon
        self.description = description
        self.outpost = outpost  # None: the embedded outpost

    def provider_name(self, env):
        return mark(env, "route", self.route)

    def label(self):
        return f"route '{self.route}'"


def protected(spec):
    """Whether a route spec asks for forward auth (``auth`` mapping or ``forward_auth``)."""
    return isinstance(spec, dict) and (isinstance(spec.get("auth"), dict) or bool(spec.get("forward_auth")))


def from_route(route, domains, spec, settings, where):
    """
    ``(RouteAuth or None, [(key_path, message)])`` for a route spec; None when the route
    is not protected. ``settings`` is the caddy block's ``forward_auth`` mapping.
    """
    if not protected(spec):
        return None, []
    errors = []
    auth = spec.get("auth")
    if auth is not None and not isinstance(auth, dict):
        return None, [(f"{where}:auth", "must be a mapping (or absent)")]
    if (settings or {}).get("manage_authentik") is False:
        if auth is not None:
            return None, [(f"{where}:auth", "forward_auth:manage_authentik is false: hecate does not make "
                                            "the Authentik side, so a route cannot ask for it with auth "
                                            "(use forward_auth: true)")]
        return None, []  # the Caddy half only
    auth = dict(auth or {})
    base = f"{where}:auth"
    mode = auth.get("mode", "forward_single")
    if mode not in MODES:
        errors.append((f"{base}:mode", f"{mode!r} is not one of {list(MODES)}"))
    groups = auth.get("groups") or []
    if not isinstance(groups, list) or not all(isinstance(g, str) and g for g in groups):
        errors.append((f"{base}:groups", "must be a list of group names"))
        groups = []
    elif len(set(groups)) != len(groups):
        errors.append((f"{base}:groups", "lists a group twice"))
    exact = [d for d in domains if not d.startswith("*.")]
    cookie = str(auth.get("cookie_domain") or "").lower().lstrip(".")
    external = auth.get("external_host")
    if mode == "forward_single":
        if cookie:
            errors.append((f"{base}:cookie_domain", "only with mode forward_domain"))
        if external:
            errors.append((f"{base}:external_host", "only with mode forward_domain (forward_single "
                                                    "answers at https://<domain>)"))
        if len(domains) != 1 or not exact:
            errors.append((f"{base}:mode", "forward_single answers for exactly one domain without a "
                                           "wildcard; a route with several domains or a wildcard "
                                           "needs mode forward_domain and cookie_domain"))
        external = f"https://{exact[0]}" if exact else None
    elif mode == "forward_domain":
        if not cookie:
            errors.append((f"{base}:cookie_domain", "required key is missing (mode forward_domain)"))
        for dom in domains:
            bare = dom[2:] if dom.startswith("*.") else dom
            if cookie and bare != cookie and not bare.endswith("." + cookie):
                errors.append((f"{base}:cookie_domain", f"domain {dom!r} is not under {cookie!r}: the "
                                                        "session cookie would not reach it"))
        if not external:
            if not exact:
                errors.append((f"{base}:external_host", "required when every domain is a wildcard"))
            else:
                external = f"https://{exact[0]}"
        external = external.rstrip("/") if external else None
    skip = auth.get("skip_paths") or []
    for idx, pattern in enumerate(skip if isinstance(skip, list) else []):
        try:
            re.compile(str(pattern))
        except re.error as exc:
            errors.append((f"{base}:skip_paths:{idx}", f"invalid regular expression ({exc})"))
        if "\n" in str(pattern):
            errors.append((f"{base}:skip_paths:{idx}", "one expression per item (no line breaks)"))
    if auth.get("token_validity") is not None:
        try:
            if hak.duration_seconds(auth["token_validity"], "token_validity") <= 0:
                errors.append((f"{base}:token_validity", "must be longer than zero"))
        except salt.exceptions.SaltInvocationError as exc:
            errors.append((f"{base}:token_validity", str(exc).split(": ", 1)[-1]))
    slug = auth.get("slug") or route
    if not isinstance(slug, str) or not SLUG_RE.match(slug) or len(slug) > 50:
        errors.append((f"{base}:slug", f"application slug {slug!r} must match [-a-zA-Z0-9_] and have "
                                       "at most 50 characters (set auth:slug)"))
    elif slug in hak.RESERVED_SLUGS:
        errors.append((f"{base}:slug", f"'{slug}' is reserved by Authentik (it clashes with the "
                                       "OAuth2 endpoints); set auth:slug"))
    if errors:
        return None, errors
    launch = auth.get("launch_url") or (f"https://{exact[0]}" if exact else None)
    return RouteAuth(
        route, domains, where, groups=groups, mode=mode, cookie_domain=cookie, external_host=external,
        skip_paths=[str(p) for p in skip], flow=auth.get("flow") or DEFAULT_FLOW,
        invalidation_flow=auth.get("invalidation_flow") or DEFAULT_INVALIDATION,
        token_validity=auth.get("token_validity"), name=auth.get("name"), slug=slug,
        launch_url=launch, icon=auth.get("icon"), description=auth.get("meta_description"),
        outpost=auth.get("outpost"),
    ), []


def check_unique(auths):
    """Two protected routes may not share an application slug: ``[(key_path, message)]``."""
    seen, errors = {}, []
    for auth in auths:
        if auth.slug in seen:
            errors.append((f"{auth.where}:auth:slug", f"application slug '{auth.slug}' is also the slug of "
                                                      f"route '{seen[auth.slug]}'; set auth:slug"))
        seen.setdefault(auth.slug, auth.route)
    return errors


# -- reading Authentik once per run ---------------------------------------------------------------
class Live:
    """What one run reads: proxy providers, outposts, flows, groups (each listed once)."""

    def __init__(self, client):
        self.client = client
        self.providers = client.list("provider_proxy")
        self.outposts = client.list("outpost")
        self.flow_slug = client.names_by_pk("flow")
        self.flow_by_slug = {slug: pk for pk, slug in self.flow_slug.items()}

    def provider(self, name):
        found = [p for p in self.providers if p.get("name") == name]
        return found[0] if found else None

    def outpost(self, name=None):
        if name:
            found = [o for o in self.outposts if o.get("name") == name]
            if not found:
                raise hak.AuthentikError(f"Authentik has no outpost '{name}'")
        else:
            found = [o for o in self.outposts if o.get("managed") == hak.EMBEDDED_OUTPOST]
            if not found:
                raise hak.AuthentikError(f"Authentik has no embedded outpost (managed {hak.EMBEDDED_OUTPOST})")
        return found[0]

    def flow(self, slug, where):
        if slug not in self.flow_by_slug:
            raise hak.AuthentikError(f"{where}: Authentik has no flow '{slug}'")
        return self.flow_by_slug[slug]

    def refresh_outposts(self):
        self.outposts = self.client.list("outpost")


def _provider_view(auth):
    """The provider as hecate compares it (flows by slug, skip paths as a list)."""
    view = {
        "external_host": auth.external_host,
        "mode": auth.mode,
        "cookie_domain": auth.cookie_domain,
        "authorization_flow": auth.flow,
        "invalidation_flow": auth.invalidation_flow,
        "skip_path_regex": list(auth.skip_paths),
    }
    if auth.token_validity is not None:
        view["access_token_validity"] = hak.duration_text(auth.token_validity, "token_validity")
    return view


def _live_provider_view(live, flow_slug, keys):
    view = {
        "external_host": live.get("external_host"),
        "mode": live.get("mode"),
        "cookie_domain": live.get("cookie_domain") or "",
        "authorization_flow": flow_slug.get(live.get("authorization_flow"), live.get("authorization_flow")),
        "invalidation_flow": flow_slug.get(live.get("invalidation_flow"), live.get("invalidation_flow")),
        "skip_path_regex": [p for p in str(live.get("skip_path_regex") or "").split("\n") if p],
        "access_token_validity": live.get("access_token_validity"),
    }
    return {k: view[k] for k in keys}


def _api_field(key, value, live_data):
    if key in ("authorization_flow", "invalidation_flow"):
        return live_data.flow_by_slug[value]
    if key == "skip_path_regex":
        return "\n".join(value)
    return value


def _same(key, old, new):
    if key == "access_token_validity" and old is not None and new is not None:
        return hak.duration_seconds(old) == hak.duration_seconds(new)
    return old == new


def _app_view(auth, env, provider_name):
    view = {"name": auth.name, "provider": provider_name, "meta_publisher": auth.provider_name(env),
            "meta_launch_url": auth.launch_url or "", "policy_engine_mode": "any"}
    if auth.description is not None:
        view["meta_description"] = auth.description
    return view


def _live_app_view(app, keys):
    view = {k: app.get(k) for k in keys}
    view["provider"] = (app.get("provider_obj") or {}).get("name") if app.get("provider") else None
    return {k: view[k] for k in keys}


def icon_supported_in_body(client):
    """``meta_icon`` is a writable field from 2026.1; before, ``set_icon_url`` sets it."""
    return client.version()[:2] >= (2026, 1)


class RouteError(salt.exceptions.CommandExecutionError):
    """One route's Authentik side failed; the run goes on with the others."""


def ensure(client, live, auth, env, test):
    """
    Make the Authentik side of one route as ``auth`` says (or, with ``test``, say what
    would change). Returns the route's ``changes``; raises :class:`RouteError`.
    """
    where = f"{auth.label()} ({auth.where}:auth)"
    name = auth.provider_name(env)
    changes = {}
    try:
        # the flows must exist (named in the error), before anything is written
        live.flow(auth.flow, f"{where}: flow")
        live.flow(auth.invalidation_flow, f"{where}: invalidation_flow")
        outpost = live.outpost(auth.outpost)
    except hak.AuthentikError as exc:
        raise RouteError(str(exc)) from None
    if outpost.get("type") not in (None, "proxy"):
        raise RouteError(f"{where}: outpost '{outpost['name']}' is a {outpost.get('type')} outpost, "
                         "not a proxy outpost")
    provider = live.provider(name)
    for other in live.providers:
        if (other.get("name") != name and other.get("pk") in (outpost.get("providers") or [])
                and str(other.get("external_host") or "").rstrip("/").lower() == auth.external_host.lower()):
            raise RouteError(
                f"{where}: proxy provider '{other['name']}' (not hecate's) already serves "
                f"{auth.external_host} on outpost '{outpost['name']}'; hecate never takes it over: "
                "delete it (or detach it from the outpost), or set forward_auth:manage_authentik "
                "false to keep managing Authentik by hand"
            )
    # a same-slug application that is not this route's: an error naming it, before any write
    app = client.get("application", auth.slug)
    if app is not None and app.get("meta_publisher") != name:
        owner = app.get("meta_publisher") or ""
        whose = (f"it belongs to hecate {owner}" if owner.startswith("hecate/")
                 else f"hecate does not own it (publisher {owner!r})")
        raise RouteError(f"{where}: Authentik already has an application '{auth.slug}' ({app.get('name')}); "
                         f"{whose}: set auth:slug, or delete that application")
    missing = [g for g in auth.groups if client.find("group", g) is None]
    if missing and not test:
        raise RouteError(f"{where}: group(s) {', '.join(missing)} do not exist in Authentik (make them "
                         "first, e.g. under bionicgpt:authentik:groups)")
    # 1. the provider
    desired = _provider_view(auth)
    body = {}
    if provider is None:
        changes["provider"] = {"old": None, "new": name}
        changes.update(hecate_state.diff({}, desired, "provider"))
        body = {k: _api_field(k, v, live) for k, v in desired.items()}
        if not test:
            provider = client.create("provider_proxy", dict(body, name=name))
            live.providers.append(provider)
    else:
        current = _live_provider_view(provider, live.flow_slug, desired)
        for key, value in desired.items():
            if not _same(key, current.get(key), value):
                changes.update(hecate_state.diff({key: current.get(key)}, {key: value}, "provider"))
                body[key] = _api_field(key, value, live)
        if body and not test:
            provider = client.patch_proxy_provider(provider, body)
    # 2. the application
    want_app = _app_view(auth, env, name)
    app_body = {k: v for k, v in want_app.items() if k != "provider"}
    icon_in_body = bool(auth.icon) and icon_supported_in_body(client)
    set_icon = False
    if app is None:
        changes["application"] = {"old": None, "new": auth.slug}
        changes.update(hecate_state.diff({}, want_app, "application"))
        if auth.icon:
            changes["application:icon"] = {"old": None, "new": auth.icon}
            set_icon = not icon_in_body
        if not test:
            app_body.update(provider=provider["pk"], slug=auth.slug)
            if icon_in_body:
                app_body["meta_icon"] = auth.icon
            app = client.create("application", app_body)
    else:
        current = _live_app_view(app, want_app)
        patch = {}
        for key, value in want_app.items():
            if current.get(key) != value:
                changes.update(hecate_state.diff({key: current.get(key)}, {key: value}, "application"))
                patch[key] = provider["pk"] if key == "provider" and provider else value
        if auth.icon and app.get("meta_icon") != auth.icon:
            changes["application:icon"] = {"old": app.get("meta_icon") or None, "new": auth.icon}
            if icon_in_body:
                patch["meta_icon"] = auth.icon
            else:
                set_icon = True
        if patch and not test:
            app = client.patch("application", auth.slug, patch)
    if set_icon and not test:
        client.set_app_icon(auth.slug, auth.icon)  # up to 2025.12 meta_icon is read-only
    # 3. the bindings: exactly the listed groups (added before the others go)
    bindings = _bindings(client, app, auth, test)
    if bindings:
        changes["bindings"] = bindings["changes"]
    # 4. the outpost: this provider on the wanted outpost and on no other
    holders = sorted(o["name"] for o in live.outposts if provider and provider.get("pk") in (o.get("providers") or []))
    if holders != [outpost["name"]]:
        changes["outpost"] = {"old": holders, "new": [outpost["name"]]}
        if not test:
            client.outpost_providers(outpost["pk"], add=[provider["pk"]])
            for other in live.outposts:
                if other["pk"] != outpost["pk"] and provider["pk"] in (other.get("providers") or []):
                    client.outpost_providers(other["pk"], remove=[provider["pk"]])
            live.refresh_outposts()
    return changes


def _bindings(client, app, auth, test):
    """The bindings of ``app`` made exactly ``auth.groups``; ``{"changes"}`` or None."""
    groups = {g: client.find("group", g) for g in auth.groups}  # missing ones: ensure() refused a real run
    live = []
    if app is not None and app.get("pk"):
        live = [b for b in client.list("policy_binding", target=app["pk"])
                if str(b.get("target")) == str(app["pk"])]
    names = client.names_by_pk("group")
    wanted = {obj["pk"]: g for g, obj in groups.items() if obj}
    keep, delete, patch = set(), [], []
    for binding in live:
        gpk = binding.get("group")
        if gpk in wanted and gpk not in keep:
            keep.add(gpk)
            if not binding.get("enabled", True) or binding.get("negate"):
                patch.append(binding)
        else:
            delete.append(binding)
    added = [g for g in auth.groups if groups[g] is None or groups[g]["pk"] not in keep]

    def describe(binding):
        if binding.get("group"):
            return f"group:{names.get(binding['group'], binding['group'])}"
        if binding.get("user") is not None:
            return f"user:{binding['user']}"
        return f"policy:{binding.get('policy')}"

    removed = sorted(describe(b) for b in delete)
    if not (added or removed or patch):
        return None
    out = {"added": [f"group:{g}" for g in added], "removed": removed}
    if patch:
        out["enabled"] = sorted(describe(b) for b in patch)
    if not test:
        order = max([b.get("order", 0) for b in live] or [-1]) + 1
        for idx, gname in enumerate(added):
            client.create("policy_binding", {"target": app["pk"], "group": groups[gname]["pk"],
                                             "order": order + idx, "enabled": True, "negate": False})
        for binding in patch:
            client.patch_policy_binding(binding, {"enabled": True, "negate": False})
        for binding in delete:
            client.delete("policy_binding", binding["pk"])
    return {"changes": out}


def outpost_host(client, live, authentik_host, test):
    """
    Fill in a blank ``authentik_host`` of the embedded outpost (without it the embedded
    outpost sends browsers to the address its API connection returned, i.e. its internal
    one: internal/outpost/proxyv2/application/endpoint.go GetOIDCEndpoint). A value the
    operator set is left alone. Returns changes.
    """
    outpost = live.outpost(None)
    config = dict(outpost.get("config") or {})
    if config.get("authentik_host") or not authentik_host:
        return {}
    changes = {"embedded outpost:authentik_host": {"old": config.get("authentik_host") or "",
                                                   "new": authentik_host}}
    if not test:
        config["authentik_host"] = authentik_host
        client.patch("outpost", outpost["pk"], {"config": config})
        live.refresh_outposts()
    return changes


def managed(client, auths, env, test, authentik_host=None):
    """
    Every protected route's Authentik side, route by route. Returns ``(changes,
    errors)``: changes keyed by route, errors ``{route: message}`` (the other routes are
    still made).
    """
    live = Live(client)
    changes, errors = {}, {}
    if auths:
        changes.update(outpost_host(client, live, authentik_host, test))
    for auth in auths:
        try:
            route_changes = ensure(client, live, auth, env, test)
        except (salt.exceptions.CommandExecutionError, salt.exceptions.SaltInvocationError) as exc:
            errors[auth.route] = str(exc)
            continue
        if route_changes:
            changes[auth.route] = route_changes
    return changes, errors


# -- removal --------------------------------------------------------------------------------------
def stale(client, auths, env, kind="route"):
    """
    ``[(mark, provider or None, application or None)]``: hecate's objects of ``kind`` in
    this environment that no desired entry wants (by mark).
    """
    wanted = {a.provider_name(env) for a in auths}
    prefix = owned_prefix(env, kind)
    pkind = "provider_proxy" if kind == "route" else None
    found = {}
    providers = client.list(pkind) if pkind else []
    for prov in providers:
        name = str(prov.get("name") or "")
        if name.startswith(prefix) and name not in wanted:
            found.setdefault(name, [None, None])[0] = prov
    for app in client.list("application"):
        pub = str(app.get("meta_publisher") or "")
        if pub.startswith(prefix) and pub not in wanted:
            found.setdefault(pub, [None, None])[1] = app
    return [(name, prov, app) for name, (prov, app) in sorted(found.items())]


def prune(client, auths, env, test):
    """
    Delete hecate's route objects of this environment that no protected route wants:
    the provider taken off its outposts, the application (its bindings go with it), the
    provider. Returns changes keyed by route.
    """
    changes = {}
    outposts = client.list("outpost")
    for name, prov, app in stale(client, auths, env):
        route = name.rsplit("/", 1)[-1]
        entry = {}
        if prov is not None:
            holders = [o for o in outposts if prov["pk"] in (o.get("providers") or [])]
            if holders:
                entry["outpost"] = {"old": sorted(o["name"] for o in holders), "new": []}
            entry["provider"] = {"old": name, "new": None}
        if app is not None:
            entry["application"] = {"old": app["slug"], "new": None}
        changes[route] = entry
        if test:
            continue
        if prov is not None:
            for outpost in outposts:
                if prov["pk"] in (outpost.get("providers") or []):
                    client.outpost_providers(outpost["pk"], remove=[prov["pk"]])
        if app is not None:
            client.delete("application", app["slug"])
        if prov is not None:
            client.delete("provider_proxy", prov["pk"])
    return changes


# -- what the Caddy state asks ---------------------------------------------------------------------
def readiness(client, auths, env):
    """
    ``{route: reason}`` for the routes whose Authentik side is NOT in place: the provider
    with the route's external host and mode, assigned to hecate's application, attached to
    the route's outpost. Reads two lists; writes nothing.
    """
    live = Live(client)
    out = {}
    for auth in auths:
        name = auth.provider_name(env)
        prov = live.provider(name)
        try:
            outpost = live.outpost(auth.outpost)
        except hak.AuthentikError as exc:
            out[auth.route] = str(exc)
            continue
        if prov is None:
            out[auth.route] = f"Authentik has no proxy provider '{name}'"
        elif str(prov.get("external_host") or "").rstrip("/").lower() != auth.external_host.lower():
            out[auth.route] = (f"proxy provider '{name}' answers for {prov.get('external_host')}, "
                               f"not {auth.external_host}")
        elif prov.get("mode") != auth.mode:
            out[auth.route] = f"proxy provider '{name}' is in mode {prov.get('mode')}, not {auth.mode}"
        elif prov.get("assigned_application_slug") != auth.slug:
            out[auth.route] = f"proxy provider '{name}' is not the provider of application '{auth.slug}'"
        elif prov["pk"] not in (outpost.get("providers") or []):
            out[auth.route] = f"proxy provider '{name}' is not attached to outpost '{outpost['name']}'"
    return out


def caddy_guard(connect, auths, env, test):
    """
    ``{route: reason}`` of the protected routes Caddy must not switch to forward auth in
    this run. ``connect()`` gives the Authentik client. Under ``test`` a reachable
    Authentik is enough (the Authentik step, before Caddy, would make what is missing);
    otherwise every route must be :func:`readiness`-ready. An unreachable Authentik (or
    a missing connection) holds every protected route.
    """
    if not auths:
        return {}
    try:
        client = connect()
        if test:
            client.version()
            return {}
        return readiness(client, auths, env)
    except (hecate_http.Unreachable, hak.AuthentikError, salt.exceptions.SaltException) as exc:
        reason = f"Authentik could not be asked ({exc})"
        return {auth.route: reason for auth in auths}
