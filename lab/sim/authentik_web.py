"""
The browser side of the Authentik simulator: the embedded outpost (forward auth for Caddy),
the OAuth2 authorize endpoint it sends browsers to, and the default authentication flow
through the flow executor API, enough for the lab's test users to sign in.

What the real server does, and where (goauthentik/authentik, tag version/2025.10.4):

- **Which requests the embedded outpost takes.** The server's web handler first asks the
  embedded outpost (internal/web/proxy.go configureProxy -> ProxyServer.HandleHost,
  internal/outpost/proxyv2/proxyv2.go): it looks the application up by host
  (``X-Forwarded-Host``, else ``Host``: internal/utils/web/host.go GetHost), directly by
  the external host's ``host[:port]`` (refresh.go keys ``ps.apps`` by ``externalHost.Host``),
  else for ``forward_domain`` providers by the longest cookie domain the host ends with
  (handlers.go lookupApp). It takes the request when an application is found and the path
  starts with ``/outpost.goauthentik.io`` (or the query carries the callback/logout
  signature: application.go ShouldHandleURL). Anything else goes to the core, where
  ``/outpost.goauthentik.io/auth/caddy`` is no URL: Django's HTML 404. So on the embedded
  outpost a host without a provider gets a 404, not the standalone outpost's 400 "no app
  for hostname" (handlers.go Handle). The outpost knows the proxy providers attached to it
  that have an application (providers/proxy/api.py ProxyOutpostConfigViewSet queryset
  ``application__isnull=False``).
- **Forward auth for Caddy** (application/mode_forward.go forwardHandleCaddy): the original
  URL is ``X-Forwarded-Proto://X-Forwarded-Host`` + ``X-Forwarded-Uri`` (mode_common.go
  getTraefikForwardUrl); a callback/logout signature in it is handled; a session with
  claims answers **200** with the ``X-authentik-*`` headers (mode_common.go getHeaders:
  username, groups joined by ``|``, entitlements, email, name, uid = ``sub``, jwt, and the
  meta headers outpost/provider/app/version/jwks); a path matching ``skip_path_regex``
  answers 200 without headers (utils.go IsAllowlisted: the path for forward_single, the
  whole URL for forward_domain); otherwise **302 to the provider's OAuth2 authorize URL**
  (oauth.go handleAuthStart, ``AuthCodeURL(state)``), after saving a session cookie
  ``authentik_proxy_<first 8 hex of sha256(client_id)>`` (application.go) that the state
  is bound to (oauth_state.go createState/stateFromRequest). The authorize URL's host is
  the embedded outpost's ``authentik_host`` (endpoint.go GetOIDCEndpoint).
- **Who gets in is decided at authorize**, not by the outpost: the authorize view is a
  PolicyAccessView (authentik/policies/views.py): not signed in -> 302 to
  ``/flows/-/default/authentication/?next=<the authorize URL>``; signed in but the
  application's policies deny -> ``AccessDeniedResponse`` (authentik/policies/denied.py, a
  TemplateResponse: status 200, "Access denied"); allowed -> the authorization flow
  (implicit consent has no stage the user sees) -> 302 to the redirect URI with
  ``code``/``state``. The outpost's callback (oauth_callback.go) redeems the code, stores
  the claims in its session and redirects to the original URL. A user outside the
  groups therefore never gets an outpost session: the protected site is never reached.
- **Signing in**: ``/flows/-/default/authentication/`` redirects to
  ``/if/flow/<the brand's authentication flow>/`` with the same query (flows/views/
  executor.py ToDefaultFlow); the page drives ``/api/v3/flows/executor/<slug>/?query=...``
  (session-authenticated): identification (``uid_field``), password ("Invalid password",
  code ``invalid``: stages/password/stage.py), user login, then ``xak-flow-redirect`` to
  ``next``. The session cookie is ``authentik_session``.

Simplified here: the authorization flow is passed through without stages (implicit
consent; an explicit-consent flow is treated the same), the code exchange and ID token
verification happen inside the simulator, header/bearer/basic authentication of the
outpost (``intercept_header_auth``) is not simulated, and sessions live in memory.
"""

import hashlib
import re
import secrets
import time
import urllib.parse

from werkzeug.wrappers import Response

OUTPOST_PREFIX = "/outpost.goauthentik.io"
CALLBACK_SIGNATURE = "X-authentik-auth-callback"
LOGOUT_SIGNATURE = "X-authentik-logout"
SESSION_COOKIE = "authentik_session"  # authentik/root/settings.py SESSION_COOKIE_NAME
OUTPOST_VERSION = "goauthentik.io/outpost/{release}"
# endpoint.go: a blank authentik_host leaves the browser URLs at what the outpost's API
# connection returned, for the embedded outpost its internal address
INTERNAL_HOST = "http://localhost:9000"
ACCESS_DENIED_PAGE = ("<!DOCTYPE html>\n<html><head><title>Access denied - authentik</title></head>"
                      "<body><h1>Access denied</h1><p>{message}</p></body></html>\n")
FLOW_PAGE = ("<!DOCTYPE html>\n<html><head><title>authentik</title></head>"
             "<body><ak-flow-executor flowSlug=\"{slug}\"></ak-flow-executor></body></html>\n")


def hash_password(password, salt=None):
    """A salted PBKDF2 hash (the simulator never keeps a password itself)."""
    salt = salt or secrets.token_bytes(16)
    return salt, hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, 20000)


def _seconds(text, default):
    """Authentik's ``hours=24;minutes=5`` in seconds."""
    units = {"weeks": 604800, "days": 86400, "hours": 3600, "minutes": 60, "seconds": 1}
    total = 0.0
    for part in str(text or "").split(";"):
        unit, _, amount = part.strip().partition("=")
        if unit in units:
            try:
                total += float(amount) * units[unit]
            except ValueError:
                pass
    return total or default


class EmbeddedOutpost:
    """Mixin of :class:`lab.sim.authentik.AuthentikSim`: sessions, outpost, authorize, login."""

    def init_web(self):
        self.web_sessions = {}  # authentik_session -> {"user": pk|None, "plans": {slug: plan}}
        self.proxy_sessions = {}  # outpost session id -> {"provider", "claims", "exp"}
        self.oauth_states = {}  # state -> {"sid", "redirect", "provider"}
        self.codes = {}  # code -> {"user", "provider", "redirect_uri", "exp"}

    # -- the embedded outpost ---------------------------------------------------------------------
    def embedded_outpost_obj(self):
        embedded = "goauthentik.io/outposts/embedded"
        return next((o for o in self.db["outpost"].values() if o.get("managed") == embedded), None)

    def outpost_apps(self):
        """``[(provider, application)]`` the embedded outpost serves (attached, with an app)."""
        outpost = self.embedded_outpost_obj()
        out = []
        for pk in (outpost or {}).get("providers", []):
            prov = self.db["provider_proxy"].get(pk)
            app = next((a for a in self.db["application"].values() if a.get("provider") == pk), None)
            if prov and app:
                out.append((prov, app))
        return out

    @staticmethod
    def request_host(request):
        return request.headers.get("X-Forwarded-Host") or request.host

    def lookup_app(self, host):
        """handlers.go lookupApp: the external host's host[:port], else the longest cookie domain."""
        apps = self.outpost_apps()
        for prov, app in apps:
            if urllib.parse.urlsplit(prov.get("external_host") or "").netloc == host:
                return prov, app
        best, length = None, 0
        for prov, app in apps:
            if prov.get("mode") != "forward_domain":
                continue
            cookie = str(prov.get("cookie_domain") or "").lstrip(".")
            if not host.endswith(cookie) or len(cookie) < length:
                continue
            best, length = (prov, app), len(cookie)
        return best if length else None

    def outpost_dispatch(self, request):
        """The embedded outpost's answer, or None when the request goes to the core."""
        with self.cond:
            found = self.lookup_app(self.request_host(request))
            if found is None:
                return None
            query = request.args
            signed = any(str(query.get(sig, "")).lower() == "true" for sig in (CALLBACK_SIGNATURE, LOGOUT_SIGNATURE))
            if not (request.path.startswith(OUTPOST_PREFIX) or signed):
                return None  # forward modes only take the outpost's paths (ShouldHandleURL)
            return self._outpost_handle(request, *found)

    def _outpost_handle(self, request, prov, app):
        path, query = request.path, request.args
        if str(query.get(CALLBACK_SIGNATURE, "")).lower() == "true":
            return self._callback(request, prov, query)
        if str(query.get(LOGOUT_SIGNATURE, "")).lower() == "true" or path == f"{OUTPOST_PREFIX}/sign_out":
            return self._sign_out(request, prov, app)
        if path == f"{OUTPOST_PREFIX}/callback":
            return self._callback(request, prov, query)
        if path == f"{OUTPOST_PREFIX}/start":
            return self._auth_start(request, prov, self._redirect_param(prov, query.get("rd")))
        if path in (f"{OUTPOST_PREFIX}/auth/caddy", f"{OUTPOST_PREFIX}/auth/traefik"):
            return self._forward_caddy(request, prov, app)
        if path.startswith(f"{OUTPOST_PREFIX}/ping"):
            return Response(status=204)
        return Response("404 page not found\n", status=404, mimetype="text/plain")  # gorilla mux

    @staticmethod
    def session_name(prov):
        digest = hashlib.sha256(prov["client_id"].encode("utf-8")).hexdigest()
        return f"authentik_proxy_{digest[:8]}"

    def _proxy_session(self, request, prov):
        sid = request.cookies.get(self.session_name(prov))
        session = self.proxy_sessions.get(sid) if sid else None
        if session is None or session["provider"] != prov["pk"]:
            return None, None
        if session.get("claims") and session["exp"] < time.time():
            session["claims"] = None
        return sid, session

    def _set_session_cookie(self, resp, prov, sid, max_age=None):
        host = prov.get("external_host") or ""
        secure = host.lower().startswith("https://")
        validity = int(_seconds(prov.get("access_token_validity"), 86400)) + 1
        resp.set_cookie(self.session_name(prov), sid, max_age=validity if max_age is None else max_age,
                        path="/", domain=(prov.get("cookie_domain") or None), secure=secure,
                        httponly=True, samesite="Lax")

    def _forward_caddy(self, request, prov, app):
        proto = request.headers.get("X-Forwarded-Proto", "")
        fwd = f"{proto}://{request.headers.get('X-Forwarded-Host', '')}{request.headers.get('X-Forwarded-Uri', '')}"
        parts = urllib.parse.urlsplit(fwd)
        fquery = urllib.parse.parse_qs(parts.query)
        if (fquery.get(CALLBACK_SIGNATURE) or [""])[0].lower() == "true":
            return self._callback(request, prov, {k: v[0] for k, v in fquery.items()})
        if (fquery.get(LOGOUT_SIGNATURE) or [""])[0].lower() == "true":
            return self._sign_out(request, prov, app)
        _, session = self._proxy_session(request, prov)
        if session and session.get("claims"):
            return Response(status=200, headers=self._identity_headers(prov, app, session["claims"]))
        if self._allowlisted(prov, fwd, parts.path):
            return Response(status=200)
        return self._auth_start(request, prov, fwd)

    @staticmethod
    def _allowlisted(prov, url, path):
        subject = path if prov.get("mode") in ("proxy", "forward_single") else url
        for pattern in str(prov.get("skip_path_regex") or "").split("\n"):
            if pattern and re.search(pattern, subject):
                return True
        return False

    def _redirect_param(self, prov, rd):
        """oauth_state.go checkRedirectParam: same host (single) or under the cookie domain."""
        if not rd:
            return ""
        parts = urllib.parse.urlsplit(rd)
        ext = urllib.parse.urlsplit(prov.get("external_host") or "")
        if prov.get("mode") in ("proxy", "forward_single"):
            if not parts.netloc:
                parts = parts._replace(scheme=ext.scheme, netloc=ext.netloc)
            return urllib.parse.urlunsplit(parts) if parts.netloc == ext.netloc else ""
        return rd if parts.netloc.endswith(prov.get("cookie_domain") or "\0") else ""

    def _authentik_host(self):
        outpost = self.embedded_outpost_obj() or {}
        return str((outpost.get("config") or {}).get("authentik_host") or INTERNAL_HOST).rstrip("/")

    def _auth_start(self, request, prov, fwd):
        sid, session = self._proxy_session(request, prov)
        if session is None:
            sid = secrets.token_urlsafe(32)
            self.proxy_sessions[sid] = {"provider": prov["pk"], "claims": None, "exp": 0}
        state = secrets.token_urlsafe(32)
        self.oauth_states[state] = {"sid": sid, "redirect": fwd, "provider": prov["pk"]}
        scopes = sorted({m["scope_name"] for pk in prov.get("property_mappings", [])
                         for m in [self.db["scope_mapping"].get(pk)] if m})
        params = urllib.parse.urlencode({
            "client_id": prov["client_id"], "redirect_uri": self._callback_url(prov),
            "response_type": "code", "scope": " ".join(scopes), "state": state})
        resp = Response(status=302, headers={"Location": f"{self._authentik_host()}/application/o/authorize/?{params}"})
        self._set_session_cookie(resp, prov, sid)
        return resp

    @staticmethod
    def _callback_url(prov):
        ext = urllib.parse.urlsplit(prov.get("external_host") or "")
        path = ext.path.rstrip("/") + "/outpost.goauthentik.io/callback"
        return urllib.parse.urlunsplit((ext.scheme, ext.netloc, path, f"{CALLBACK_SIGNATURE}=true", ""))

    def _callback(self, request, prov, query):
        state = self.oauth_states.get(query.get("state") or "")
        sid, session = self._proxy_session(request, prov)
        fallback = Response(status=302, headers={"Location": prov.get("external_host") or "/"})
        if state is None or session is None or state["sid"] != sid or state["provider"] != prov["pk"]:
            return Response(status=400)  # utils.go redirect: no valid state
        self.oauth_states.pop(query.get("state"), None)
        code = self.codes.pop(query.get("code") or "", None)
        if code is None or code["provider"] != prov["pk"] or code["exp"] < time.time():
            return fallback if not state["redirect"] else Response(
                status=302, headers={"Location": state["redirect"]})
        user = self.db["user"].get(code["user"])
        validity = _seconds(prov.get("access_token_validity"), 86400)
        session["claims"] = self._claims(user, prov, validity)
        session["exp"] = time.time() + validity
        resp = Response(status=302, headers={"Location": state["redirect"] or prov.get("external_host") or "/"})
        self._set_session_cookie(resp, prov, sid)
        return resp

    def _sign_out(self, request, prov, app):
        sid, _ = self._proxy_session(request, prov)
        self.proxy_sessions.pop(sid, None)
        resp = Response(status=302, headers={
            "Location": f"{self._authentik_host()}/application/o/{app['slug']}/end-session/"})
        self._set_session_cookie(resp, prov, "", max_age=0)
        return resp

    def _claims(self, user, prov, validity):
        groups = [self.db["group"][g]["name"] for g in user.get("groups", []) if g in self.db["group"]]
        return {"sub": self.user_uid(user["pk"]), "exp": int(time.time() + validity), "email": user.get("email", ""),
                "email_verified": False, "name": user.get("name", ""), "preferred_username": user["username"],
                "groups": groups, "entitlements": [], "sid": secrets.token_hex(16),
                "ak_proxy": {"user_attributes": {}, "is_superuser": self._is_superuser(user)},
                "raw_token": "lab." + secrets.token_urlsafe(24)}

    def _identity_headers(self, prov, app, claims):
        """mode_common.go getHeaders (Go's Header.Set canonicalises X-authentik-* to X-Authentik-*)."""
        outpost = self.embedded_outpost_obj() or {}
        return {
            "X-Authentik-Username": claims["preferred_username"],
            "X-Authentik-Groups": "|".join(claims["groups"]),
            "X-Authentik-Entitlements": "|".join(claims["entitlements"]),
            "X-Authentik-Email": claims["email"],
            "X-Authentik-Name": claims["name"],
            "X-Authentik-Uid": claims["sub"],
            "X-Authentik-Jwt": claims["raw_token"],
            "X-Authentik-Meta-Jwks": f"{self._authentik_host()}/application/o/{app['slug']}/jwks/",
            "X-Authentik-Meta-Outpost": outpost.get("name", ""),
            "X-Authentik-Meta-Provider": prov["name"],
            "X-Authentik-Meta-App": app["slug"],
            "X-Authentik-Meta-Version": OUTPOST_VERSION.format(release=self.openapi["release"]),
        }

    # -- the core's browser endpoints ---------------------------------------------------------------
    def _stage_kind(self, pk):
        for table, kind in (("stage_identification", "identification"), ("stage_password", "password"),
                            ("stage_user_login", "login")):
            if pk in self.db[table]:
                return kind, self.db[table][pk]
        return "other", self._stage(pk) or {"name": str(pk)}

    def _web_session(self, request, create=False):
        key = request.cookies.get(SESSION_COOKIE)
        if key in self.web_sessions:
            return key, self.web_sessions[key]
        if not create:
            return None, None
        key = secrets.token_urlsafe(32)
        self.web_sessions[key] = {"user": None, "plans": {}}
        return key, self.web_sessions[key]

    def on_authorize(self, request):
        """OAuth2 authorize (providers/oauth2/views/authorize.py, a PolicyAccessView)."""
        args = request.args
        prov = next((p for kind in ("provider_proxy", "provider_oauth2") for p in self.db[kind].values()
                     if p.get("client_id") == args.get("client_id")), None)
        if prov is None:
            return self.text("Invalid client identifier: client_id", status=400)
        if not any(u.get("url") == args.get("redirect_uri") for u in prov.get("redirect_uris") or []):
            return self.text("Redirect URI Error: the redirect URI is not one of the provider's", status=400)
        if args.get("response_type") != "code":
            return self.text("Invalid response type", status=400)
        app = next((a for a in self.db["application"].values() if a.get("provider") == prov["pk"]), None)
        if app is None:
            return Response(ACCESS_DENIED_PAGE.format(message="Failed to resolve application"),
                            status=200, mimetype="text/html")
        _, session = self._web_session(request)
        user = self.db["user"].get((session or {}).get("user"))
        if user is None or not user.get("is_active", True):
            full = request.full_path.rstrip("?")
            return Response(status=302, headers={
                "Location": "/flows/-/default/authentication/?" + urllib.parse.urlencode({"next": full})})
        if not self._app_allows(app, user):
            return Response(ACCESS_DENIED_PAGE.format(message="Permission denied"), status=200, mimetype="text/html")
        code = secrets.token_urlsafe(24)
        self.codes[code] = {"user": user["pk"], "provider": prov["pk"], "exp": time.time() + 60,
                            "redirect_uri": args.get("redirect_uri")}
        target = args.get("redirect_uri")
        sep = "&" if "?" in target else "?"
        return Response(status=302, headers={
            "Location": target + sep + urllib.parse.urlencode({"code": code, "state": args.get("state", "")})})

    def on_default_flow(self, request, designation):
        """ToDefaultFlow: the brand's flow of that designation, the query kept."""
        brand = next((b for b in self.db["brand"].values() if b.get("default")), {})
        flow = self.db["flow"].get(brand.get(f"flow_{designation}") or "")
        if flow is None:
            return self.not_found(request)
        qs = request.query_string.decode("latin-1")
        return Response(status=302, headers={"Location": f"/if/flow/{flow['slug']}/" + (f"?{qs}" if qs else "")})

    def on_flow_page(self, request, slug):
        if not any(f["slug"] == slug for f in self.db["flow"].values()):
            return self.not_found(request)
        return Response(FLOW_PAGE.format(slug=slug), mimetype="text/html")

    def on_executor(self, request, slug):
        """``/api/v3/flows/executor/<slug>/``: identification -> password -> user login."""
        flow = next((f for f in self.db["flow"].values() if f["slug"] == slug), None)
        if flow is None:
            return self.detail(404, "No Flow matches the given query.")
        op = self.operation("/flows/executor/{flow_slug}/", request.method)
        bad = self._check_params(request, op)
        if bad:
            return bad
        key, session = self._web_session(request, create=True)
        stages = [self._stage_kind(b["stage"]) for b in sorted(self.db["flow_binding"].values(),
                                                                key=lambda b: b["order"])
                  if b["target"] == flow["pk"]]
        unsupported = [obj.get("name") for kind, obj in stages if kind not in ("identification", "password", "login")]
        if unsupported:
            return self.json({"detail": f"lab: the simulator runs identification, password and user login "
                                        f"stages only; flow '{slug}' has {', '.join(unsupported)}"}, status=501)
        plan = session["plans"].get(slug)
        if plan is None or request.method == "GET" and plan.get("done"):
            plan = session["plans"][slug] = {"index": 0, "pending": None, "done": False}
        query = urllib.parse.parse_qs(request.args.get("query", ""))
        errors = None
        if request.method == "POST":
            body = request.get_json(silent=True)
            challenge = self._component(stages, plan)
            schema = {"identification": "IdentificationChallengeResponseRequest",
                      "password": "PasswordChallengeResponseRequest"}.get(challenge)
            if not isinstance(body, dict) or schema is None:
                return self.json({"non_field_errors": ["Invalid challenge response"]}, status=400)
            found, _ = self.validator.validate({"$ref": f"#/components/schemas/{schema}"}, body)
            if found:
                return self.json(found, status=400)
            errors = self._solve(stages, plan, challenge, body)
        resp = self.json(self._challenge(stages, plan, flow, session, query, errors))
        resp.set_cookie(SESSION_COOKIE, key, path="/", httponly=True, samesite="Lax")
        return resp

    @staticmethod
    def _component(stages, plan):
        """What the plan's current stage is: identification, password, login, done."""
        if plan["index"] >= len(stages):
            return "done"
        return stages[plan["index"]][0]

    def _solve(self, stages, plan, challenge, body):
        if challenge == "identification":
            uid = str(body.get("uid_field", ""))
            stage = stages[plan["index"]][1]
            fields = stage.get("user_fields") or ["username"]
            plan["pending"] = next((u["pk"] for u in self.db["user"].values()
                                    if any(str(u.get(f, "")) == uid and uid for f in fields)), None)
            if plan["pending"] is None and not stage.get("pretend_user_exists", True):
                return {"uid_field": [{"string": "Failed to authenticate.", "code": "invalid"}]}
            plan["pending_uid"] = uid
            plan["index"] += 1
            return None
        stored = self.passwords.get(plan.get("pending"))
        ok = isinstance(stored, tuple) and hash_password(str(body.get("password", "")), stored[0])[1] == stored[1]
        if not ok:
            return {"password": [{"string": "Invalid password", "code": "invalid"}]}
        plan["index"] += 1
        return None

    def _challenge(self, stages, plan, flow, session, query, errors):
        info = {"title": flow.get("title", ""), "layout": "stacked", "cancel_url": "/flows/-/cancel/"}
        while self._component(stages, plan) == "login":  # no challenge: the user is logged in
            user = self.db["user"].get(plan.get("pending"))
            if user is not None and user.get("is_active", True):
                session["user"] = user["pk"]
            plan["index"] += 1
        kind = self._component(stages, plan)
        if kind == "identification":
            stage = stages[plan["index"]][1]
            out = {"component": "ak-stage-identification", "flow_info": info, "flow_designation": flow["designation"],
                   "user_fields": stage.get("user_fields") or [], "password_fields": False,
                   "primary_action": "Log in", "show_source_labels": False, "sources": []}
        elif kind == "password":
            user = self.db["user"].get(plan.get("pending")) or {}
            out = {"component": "ak-stage-password", "flow_info": info,
                   "pending_user": user.get("username") or plan.get("pending_uid", ""),
                   "pending_user_avatar": "data:image/svg+xml;base64,"}
        else:
            plan["done"] = True
            nxt = (query.get("next") or ["/"])[0]
            if urllib.parse.urlsplit(nxt).netloc:  # only local redirects (is_url_absolute check)
                nxt = "/"
            out = {"component": "xak-flow-redirect", "flow_info": info, "to": nxt}
        if errors:
            out["response_errors"] = errors
        return out
