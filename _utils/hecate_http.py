"""
One HTTP client for every API hecate talks to (Caddy, Authentik, Nomad, Consul, Vault).

Why one: TLS verification, timeouts, retries and error messages must behave the same
everywhere, and secrets (tokens in headers) must never reach a log line or an exception.

- TLS verification is on by default; ``ca_bundle`` points at a CA file or directory.
- Retries with exponential backoff on connection errors and on 429/502/503/504 (and 500
  where the caller says the API uses it for transient errors), honouring Retry-After.
  Non-idempotent requests are retried only on connection errors before the request was
  sent: POST and PATCH, and every *conditional* write (``If-Match``, Consul's ``?cas=``,
  ``?acquire=``, ``?release=``, Nomad's variable ``?cas=``; the caller says so with
  ``idempotent=False``). Sent again after its answer was lost, a conditional write that
  was applied fails its own condition and reports a false conflict; the caller re-reads
  and decides instead (:func:`uncertain_write`).
- Errors become :class:`HTTPError` / :class:`Unreachable` (both ``CommandExecutionError``)
  whose message names the system, method, path and the API's own error text, and never
  a header, query string or request body.
"""

import json
import logging
import os
import re
import time
import urllib.parse

import requests
import salt.exceptions
import urllib3.util.retry
from requests.adapters import HTTPAdapter

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = (5.0, 30.0)  # connect, read (seconds)
RETRY_STATUSES = (429, 502, 503, 504)
IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
# headers that make a request conditional (RFC 9110 section 13): not idempotent in effect
CONDITIONAL_HEADERS = ("If-Match", "If-Unmodified-Since", "If-None-Match")


class HTTPError(salt.exceptions.CommandExecutionError):
    """The API answered with an error status."""

    def __init__(self, message, status=None, body=None):
        super().__init__(message)
        self.status = status
        # Parsed error body for callers that branch on it; never part of str(exc)
        # beyond the extracted error text.
        self.body = body


class Unreachable(salt.exceptions.CommandExecutionError):
    """No answer at all: connection refused, DNS, TLS handshake, timeout."""


def error_text(body):
    """
    Pull the human message out of the error bodies of the APIs we use:
    Caddy ``{"error": ...}``, Vault ``{"errors": [...]}``, DRF ``{"detail": ...}`` or
    field maps, Nomad/Consul plain text.
    """
    if body is None or body == "":
        return ""
    if isinstance(body, (bytes, bytearray)):
        body = body.decode("utf-8", "replace")
    if isinstance(body, str):
        try:
            body = json.loads(body)
        except ValueError:
            return body.strip()[:500]
    if isinstance(body, dict):
        if "error" in body and isinstance(body["error"], str):
            return body["error"]
        if "errors" in body and isinstance(body["errors"], list):
            return "; ".join(str(e) for e in body["errors"]) or "(no error text)"
        if "detail" in body and len(body) == 1:
            return str(body["detail"])
        return "; ".join(_field_errors(body))
    if isinstance(body, list):
        return "; ".join(str(item) for item in body)
    return str(body)[:500]


def _field_errors(body, prefix=""):
    """Flatten DRF-style ``{"field": ["msg"], "nested": {"f": ["msg"]}}`` into 'field: msg'."""
    out = []
    for key, val in body.items():
        path = f"{prefix}{key}"
        if isinstance(val, dict):
            out.extend(_field_errors(val, prefix=path + "."))
        elif isinstance(val, list):
            msgs = []
            for item in val:
                if isinstance(item, dict):
                    out.extend(_field_errors(item, prefix=path + "."))
                else:
                    msgs.append(str(item))
            if msgs:
                out.append(f"{path}: {' '.join(msgs)}")
        else:
            out.append(f"{path}: {val}")
    return out


class Client:
    """
    A ``requests.Session`` bound to one API base URL.

    ``system`` names the API in every message ("Caddy admin API", "Vault", ...).
    ``headers`` are sent with every request (tokens go here, never in the URL).
    ``stats`` counts requests per method so tests and benchmarks can count writes.
    """

    def __init__(
        self,
        base_url,
        system,
        headers=None,
        verify=True,
        ca_bundle=None,
        client_cert=None,
        timeout=DEFAULT_TIMEOUT,
        retries=3,
        backoff=0.3,
        retry_statuses=RETRY_STATUSES,
        config_key=None,
    ):
        self.base_url = base_url.rstrip("/")
        self.system = system
        self.config_key = config_key  # "hecate:connections:<system>", named in TLS errors
        self.timeout = _timeout(timeout)
        self.stats = {}
        verify = tls_verify(verify, ca_bundle, system, config_key)
        if verify is False and urllib.parse.urlsplit(self.base_url).scheme == "https":
            log.warning("%s: TLS certificate verification is OFF (verify: false)", system)
        # ``session`` retries idempotent requests (also after they were sent); ``once``
        # sends conditional writes, retried only when the connection failed before the
        # request went out. Both share headers, TLS settings and client certificate.
        self.session = _session(verify, client_cert, retries, backoff, retry_statuses, resend=True)
        self.session.headers.update(headers or {})
        self.once = _session(verify, client_cert, retries, backoff, (), resend=False)
        self.once.headers = self.session.headers

    def url(self, path):
        return self.base_url + "/" + path.lstrip("/")

    def request(self, method, path, ok=None, idempotent=None, **kwargs):
        """
        Send a request and return the ``requests.Response``.

        ``ok`` is a collection of acceptable status codes (default: any 2xx). Anything
        else raises :class:`HTTPError`. Connection failures raise :class:`Unreachable`.
        ``idempotent=False`` marks a conditional write (a CAS): it is not sent again once
        it went out (default: by method, and False when a conditional header is set).
        """
        method = method.upper()
        kwargs.setdefault("timeout", self.timeout)
        if idempotent is None:
            idempotent = method in IDEMPOTENT and not conditional(kwargs.get("headers"))
        session = self.session if idempotent else self.once
        self.stats[method] = self.stats.get(method, 0) + 1
        started = time.monotonic()
        try:
            resp = session.request(method, self.url(path), **kwargs)
        except requests.exceptions.SSLError as exc:
            raise Unreachable(tls_failed(self.system, self._where(), exc, self.config_key)) from None
        except requests.exceptions.Timeout:
            raise Unreachable(
                f"{self.system} at {self._where()}: {method} {_path_only(path)} timed out"
            ) from None
        except requests.exceptions.RequestException as exc:
            reason = _reason(exc)
            if reason == "timed out":
                # read timeouts retried until the retries ran out arrive as a ConnectionError
                # (MaxRetryError): say which request timed out, as for a single timeout
                raise Unreachable(
                    f"{self.system} at {self._where()}: {method} {_path_only(path)} timed out"
                ) from None
            raise Unreachable(
                f"{self.system} at {self._where()} is unreachable: {reason}"
            ) from None
        log.debug(
            "%s %s %s -> %s (%.3fs)",
            self.system,
            method,
            _path_only(path),
            resp.status_code,
            time.monotonic() - started,
        )
        accepted = ok if ok is not None else range(200, 300)
        if resp.status_code not in accepted:
            raise self.error(resp, method, path)
        return resp

    def error(self, resp, method, path):
        body = _body(resp)
        text = error_text(body)
        msg = f"{self.system}: {method} {_path_only(path)} returned {resp.status_code}"
        if text:
            msg += f": {text}"
        return HTTPError(msg, status=resp.status_code, body=body)

    def json(self, method, path, ok=None, **kwargs):
        """Like :meth:`request` but returns the decoded JSON body (None when empty)."""
        resp = self.request(method, path, ok=ok, **kwargs)
        if not resp.content:
            return None
        try:
            return resp.json()
        except ValueError:
            raise HTTPError(
                f"{self.system}: {method} {_path_only(path)} returned a body that is not JSON",
                status=resp.status_code,
            ) from None

    def _where(self):
        parts = urllib.parse.urlsplit(self.base_url)
        return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")

    def close(self):
        self.session.close()
        self.once.close()


def _session(verify, client_cert, retries, backoff, retry_statuses, resend):
    """
    A ``requests.Session`` with hecate's TLS settings whose retries back off
    exponentially and honour Retry-After: connection errors before the request was sent,
    always; with ``resend``, also requests of an idempotent method that were sent (read
    errors, ``retry_statuses``).
    """
    session = requests.Session()
    # Nothing from the environment applies: not proxies or netrc, and not the CA
    # settings requests would otherwise read (REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE):
    # what a client trusts comes from Salt's settings only.
    session.trust_env = False
    session.verify = verify
    if client_cert:
        session.cert = client_cert
    retry = urllib3.util.retry.Retry(
        total=retries,
        connect=retries,
        read=retries if resend else False,  # read errors: idempotent methods only
        status=retries,
        backoff_factor=backoff,
        status_forcelist=tuple(retry_statuses),
        allowed_methods=IDEMPOTENT,
        respect_retry_after_header=True,
        raise_on_status=False,
    )
    adapter = HTTPAdapter(max_retries=retry, pool_maxsize=8)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def conditional(headers):
    """True when ``headers`` make a request conditional (If-Match and the like)."""
    names = {str(k).lower() for k in (headers or {})}
    return any(h.lower() in names for h in CONDITIONAL_HEADERS)


def uncertain_write(what, send, landed, attempts=3):
    """
    A conditional write whose answer may be lost: the connection can drop after the
    server applied it (a restart, a proxy timeout). Sent again, an applied CAS fails its
    own check and reads as someone else's change; an applied session create leaves a
    second session behind. So it is never resent blindly:

    - ``send()`` performs the write (with ``idempotent=False``) and returns its result;
    - after a lost answer, ``landed()`` re-reads and decides: it returns the result to
      report when that is settled (the write is there; or someone else's change means it
      can no longer apply: the API's own "not applied" answer, or the caller's conflict
      error raised), and None when the write is not there and its guard still holds, so
      sending it again cannot apply it twice.

    At most ``attempts`` sends; an error while re-reading propagates (the write may have
    landed: the message says so).
    """
    for attempt in range(1, int(attempts) + 1):
        try:
            return send()
        except Unreachable as exc:
            lost = exc
        log.info("%s: the answer was lost (%s); re-reading to see whether it was applied", what, lost)
        try:
            result = landed()
        except Unreachable as exc:
            raise Unreachable(f"{exc}; {what} was sent but not answered and may have been applied") from None
        if result is not None:
            return result
        if attempt == int(attempts):
            break
    raise Unreachable(f"{what}: sent {int(attempts)} times without an answer and not applied: {lost}")


def tls_verify(verify=True, ca_bundle=None, system="API", config_key=None):
    """
    The ``requests`` ``verify`` value for hecate's settings: a CA bundle path when
    ``ca_bundle`` is set (it must exist), else True - unless ``verify`` is exactly
    ``False``. Verification is never turned off by a missing or empty value
    (``verify:`` with nothing after it is YAML null, not false), and anything but a
    boolean is refused instead of being guessed.
    """
    where = f"{config_key}:" if config_key else f"{system}: "
    if ca_bundle:
        if not isinstance(ca_bundle, str):
            raise salt.exceptions.SaltInvocationError(
                f"{where}ca_bundle must be the path of a CA file or directory, got {ca_bundle!r}"
            )
        if not os.path.exists(ca_bundle):
            raise salt.exceptions.SaltInvocationError(
                f"{where}ca_bundle: {ca_bundle} does not exist on this machine"
            )
        return ca_bundle
    if verify is None or verify is True:
        return True
    if verify is False:
        return False
    raise salt.exceptions.SaltInvocationError(
        f"{where}verify must be true or false, got {verify!r} (name a CA file with ca_bundle)"
    )


def tls_failed(system, where, exc=None, config_key=None):
    """The message for a certificate that does not verify."""
    reason = f" ({_reason(exc)})" if exc is not None else ""
    fix = f"set {config_key}:ca_bundle to the CA that signed it" if config_key else "set a CA bundle"
    return f"{system} at {where}: TLS verification failed{reason}; {fix} or fix the server certificate"


def _body(resp):
    if not resp.content:
        return None
    try:
        return resp.json()
    except ValueError:
        return resp.text


def _path_only(path):
    """Drop the query string: some APIs accept tokens there (salt#69071)."""
    return path.split("?", 1)[0]


def _reason(exc):
    """The innermost reason of a requests exception, without URLs that may hold queries."""
    inner = exc
    while getattr(inner, "__context__", None) is not None and inner.__context__ is not inner:
        inner = inner.__context__
    reason = getattr(exc, "args", [None])[0]
    reason = getattr(reason, "reason", reason)
    text = str(reason or inner)
    if "Connection refused" in text:
        return "connection refused"
    if "Name or service not known" in text or "nodename nor servname" in text:
        return "name does not resolve"
    if "CERTIFICATE_VERIFY_FAILED" in text:
        detail = re.search(r"certificate verify failed: ([^()\]'\"]+)", text)
        return "certificate verify failed" + (f": {detail.group(1).strip()}" if detail else "")
    if "timed out" in text:
        return "timed out"
    return type(inner).__name__


def _timeout(value):
    if isinstance(value, (list, tuple)):
        return (float(value[0]), float(value[1]))
    return (min(float(value), DEFAULT_TIMEOUT[0]), float(value))
