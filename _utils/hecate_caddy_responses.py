"""
Answers a hecate route gives itself, without a backend: redirects (the Caddyfile's ``redir``)
and static responses (``respond``, ``abort``), as subroute entries of the route. Each builds
the Caddy JSON that ``caddy adapt`` makes of the same directive (checked against the real
binary in tests/functional/test_caddy_route_fields.py).

Pillar, on a route of ``hecate:reverse_proxy:caddy:routes`` (a mapping, or a list of them)::

    redirect: {to: "https://example.com{uri}", status: permanent}    # the whole site
    respond:
      - {path: /health, body: OK}                                    # a health endpoint
      - {match: {paths: ["/private/*"]}, status: 403}
      - {match: {headers: {User-Agent: "BadBot*"}}, abort: true}

``path`` (one path pattern) or ``match`` (a matcher as in a policy, or a list of them: any
one triggers) narrows an entry; an entry without either answers every request of the route.
The Caddyfile's placeholder shorthands (``{uri}``, ``{host}``, ``{header.X}``...) are
expanded as the Caddyfile adapter does.
"""

import re

# Caddy's Caddyfile shorthands (caddyconfig/httpcaddyfile/shorthands.go, placeholderShorthands
# and NewShorthandReplacer, v2.11): plain names first, then the ones with a user-defined tail.
SHORTHANDS = {
    "{host}": "{http.request.host}",
    "{hostport}": "{http.request.hostport}",
    "{port}": "{http.request.port}",
    "{orig_method}": "{http.request.orig_method}",
    "{orig_uri}": "{http.request.orig_uri}",
    "{orig_path}": "{http.request.orig_uri.path}",
    "{orig_dir}": "{http.request.orig_uri.path.dir}",
    "{orig_file}": "{http.request.orig_uri.path.file}",
    "{orig_query}": "{http.request.orig_uri.query}",
    "{orig_?query}": "{http.request.orig_uri.prefixed_query}",
    "{method}": "{http.request.method}",
    "{uri}": "{http.request.uri}",
    "{%uri}": "{http.request.uri_escaped}",
    "{path}": "{http.request.uri.path}",
    "{%path}": "{http.request.uri.path_escaped}",
    "{dir}": "{http.request.uri.path.dir}",
    "{file}": "{http.request.uri.path.file}",
    "{query}": "{http.request.uri.query}",
    "{%query}": "{http.request.uri.query_escaped}",
    "{?query}": "{http.request.uri.prefixed_query}",
    "{remote}": "{http.request.remote}",
    "{remote_host}": "{http.request.remote.host}",
    "{remote_port}": "{http.request.remote.port}",
    "{scheme}": "{http.request.scheme}",
    "{uuid}": "{http.request.uuid}",
    "{tls_cipher}": "{http.request.tls.cipher_suite}",
    "{tls_version}": "{http.request.tls.version}",
    "{tls_client_fingerprint}": "{http.request.tls.client.fingerprint}",
    "{tls_client_issuer}": "{http.request.tls.client.issuer}",
    "{tls_client_serial}": "{http.request.tls.client.serial}",
    "{tls_client_subject}": "{http.request.tls.client.subject}",
    "{tls_client_certificate_pem}": "{http.request.tls.client.certificate_pem}",
    "{tls_client_certificate_der_base64}": "{http.request.tls.client.certificate_der_base64}",
    "{upstream_hostport}": "{http.reverse_proxy.upstream.hostport}",
    "{client_ip}": "{http.vars.client_ip}",
}
_SIMPLE = re.compile("|".join(re.escape(k) for k in SHORTHANDS))
_PREFIXED = [
    (re.compile(r"{header\.([\w-]*)}"), r"{http.request.header.\1}"),
    (re.compile(r"{cookie\.([\w-]*)}"), r"{http.request.cookie.\1}"),
    (re.compile(r"{labels\.([\w-]*)}"), r"{http.request.host.labels.\1}"),
    (re.compile(r"{path\.([\w-]*)}"), r"{http.request.uri.path.\1}"),
    (re.compile(r"{file\.([\w-]*)}"), r"{http.request.uri.path.file.\1}"),
    (re.compile(r"{query\.([\w-]*)}"), r"{http.request.uri.query.\1}"),
    (re.compile(r"{re\.([\w.-]*)}"), r"{http.regexp.\1}"),
    (re.compile(r"{vars\.([\w-]*)}"), r"{http.vars.\1}"),
    (re.compile(r"{rp\.([\w.-]*)}"), r"{http.reverse_proxy.\1}"),
    (re.compile(r"{resp\.([\w.-]*)}"), r"{http.intercept.\1}"),
    (re.compile(r"{err\.([\w.-]*)}"), r"{http.error.\1}"),
    (re.compile(r"{file_match\.([\w-]*)}"), r"{http.matchers.file.\1}"),
]
REDIRECT_STATUS = {"permanent": 301, "temporary": 302}  # Caddy's redir keywords (html is not modelled)


def expand_shorthands(text):
    """``{uri}`` -> ``{http.request.uri}`` etc., as the Caddyfile adapter rewrites every token."""
    text = _SIMPLE.sub(lambda m: SHORTHANDS[m.group(0)], str(text))
    for pattern, full in _PREFIXED:
        text = pattern.sub(full, text)
    return text


def entries(value):
    """``[(suffix, entry)]`` of a mapping-or-list field (suffix ``""`` or ``":<index>"``)."""
    if value is None:
        return []
    if isinstance(value, list):
        return [(f":{i}", item) for i, item in enumerate(value)]
    return [("", value)]


def _match(entry, where, errors, matcher):
    """The ``match`` list of an entry (None: every request), from ``path`` or ``match``."""
    if "path" in entry and "match" in entry:
        errors.append((f"{where}:path", "set either path or match, not both"))
        return None
    if "path" in entry:
        path = entry["path"]
        if not isinstance(path, str) or not (path.startswith("/") or path.startswith("*")):
            errors.append((f"{where}:path", f"{path!r} must be a path pattern starting with / or *"))
            return None
        return [{"path": [path]}]
    if "match" in entry:
        spec = entry["match"]
        items = spec if isinstance(spec, list) else [spec]
        if not items:
            errors.append((f"{where}:match", "an empty list matches nothing: leave match out instead"))
            return None
        suffix = (lambda i: f":{i}") if isinstance(spec, list) else (lambda i: "")
        return [matcher(item, f"{where}:match{suffix(i)}", errors) for i, item in enumerate(items)]
    return None


def _item(handler, match):
    item = {"handle": [handler]}
    if match:
        item["match"] = match
    return item


def _known(entry, keys, where, errors):
    if not isinstance(entry, dict):
        errors.append((where, "expected a mapping"))
        return False
    for key in entry:
        if key not in keys:
            errors.append((f"{where}:{key}", f"unknown key (have: {', '.join(keys)})"))
    return True


def redirect_items(value, where, errors, matcher):
    """``redirect`` -> ``[(subroute entry, catches_all)]``; problems go to ``errors``."""
    out = []
    for suffix, entry in entries(value):
        here = f"{where}:redirect{suffix}"
        if not _known(entry, ("to", "status", "path", "match"), here, errors):
            continue
        to = entry.get("to")
        if not isinstance(to, str) or not to.strip():
            errors.append((f"{here}:to", "required key is missing (the URL or path to redirect to)"))
            continue
        status = entry.get("status", "temporary")
        status = REDIRECT_STATUS.get(status, status) if isinstance(status, str) else status
        if isinstance(status, bool) or not isinstance(status, int) or not 300 <= status <= 308:
            errors.append((f"{here}:status", f"{entry.get('status')!r} is not a 3xx status (300-308), "
                                             "permanent or temporary"))
            continue
        match = _match(entry, here, errors, matcher)
        handler = {"handler": "static_response", "headers": {"Location": [expand_shorthands(to)]},
                   "status_code": status}
        out.append((_item(handler, match), "path" not in entry and "match" not in entry))
    return out


def respond_items(value, where, errors, matcher):
    """``respond`` -> ``[(subroute entry, catches_all)]``; problems go to ``errors``."""
    out = []
    for suffix, entry in entries(value):
        here = f"{where}:respond{suffix}"
        if not _known(entry, ("status", "body", "close", "abort", "path", "match"), here, errors):
            continue
        if entry.get("abort"):
            extra = sorted(set(entry) & {"status", "body", "close"})
            if extra:
                errors.append((f"{here}:abort", f"abort closes the connection without a response: drop {extra}"))
                continue
            handler = {"handler": "static_response", "abort": True}
        else:
            handler = {"handler": "static_response"}
            if "body" in entry:
                if not isinstance(entry["body"], str):
                    errors.append((f"{here}:body", "must be a string"))
                    continue
                handler["body"] = expand_shorthands(entry["body"])
            if "status" in entry:
                status = entry["status"]
                if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
                    errors.append((f"{here}:status", f"{status!r} is not an HTTP status (100-599)"))
                    continue
                handler["status_code"] = status
            if entry.get("close"):
                handler["close"] = True
        match = _match(entry, here, errors, matcher)
        out.append((_item(handler, match), "path" not in entry and "match" not in entry))
    return out


def unreachable(items, where, field, errors):
    """An entry after one that answers every request never runs: name it."""
    for idx, (_, catches_all) in enumerate(items[:-1]):
        if catches_all:
            errors.append((f"{where}:{field}", f"entry {idx} answers every request: the entries after it never run"))
            return True
    return False
