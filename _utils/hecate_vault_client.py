"""
Vault KV v2 access for hecate, on hvac, over the shared HTTP session (same TLS, timeouts
and retries as every other hecate client).

Authentication: a token (literal in minion config, ``sdb://`` URI, or ``VAULT_TOKEN`` is
NOT read implicitly), or AppRole ``{role_id, secret_id}``. Errors become
``CommandExecutionError`` naming the mount and path, never the URL with a query or a
value.
"""

import requests
import salt.exceptions

import hecate_config
import hecate_http
import hecate_loader
import hecate_secrets

# imported when the first client is made (hecate_loader.LazyModule: most steps make none)
hvac = hecate_loader.lazy("hvac", "hvac.exceptions")
HAS_HVAC = hecate_loader.available("hvac")  # a missing one is reported by __virtual__ of the modules


class CASConflict(salt.exceptions.CommandExecutionError):
    """check-and-set did not match: someone wrote the secret meanwhile."""


class VaultKV:
    """A KV v2 client bound to one Vault server."""

    def __init__(self, settings, sdb_get=None):
        if not HAS_HVAC:
            raise salt.exceptions.CommandExecutionError("the hvac library is not installed")
        if not settings.get("url"):
            raise salt.exceptions.SaltInvocationError(
                "hecate:connections:vault:url is not set (minion config or pillar)"
            )
        self.settings = settings
        http = hecate_http.Client(
            settings["url"],
            "Vault",
            timeout=settings.get("timeout", 30),
            retries=settings.get("retries", 3),
            **hecate_config.tls_args(settings, "vault"),
        )
        self.http = http
        self.client = hvac.Client(
            url=settings["url"],
            session=http.session,
            verify=http.session.verify,
            timeout=settings.get("timeout", 30),
            namespace=settings.get("namespace"),
        )
        self._sdb_get = sdb_get
        self._approle = False
        self._login(sdb_get)

    def _login(self, sdb_get):
        token = hecate_secrets.resolve(
            self.settings.get("token"), sdb_get=sdb_get, where="hecate:connections:vault:token"
        )
        if token:
            self.client.token = token.reveal()
            return
        approle = self.settings.get("approle") or {}
        if approle:
            secret_id = hecate_secrets.resolve(
                approle.get("secret_id"),
                sdb_get=sdb_get,
                where="hecate:connections:vault:approle:secret_id",
            )
            self._call(
                "AppRole login",
                "auth/approle",
                lambda: self.client.auth.approle.login(
                    role_id=approle.get("role_id"),
                    secret_id=secret_id.reveal() if secret_id else None,
                    mount_point=approle.get("mount", "approle"),
                ),
                relogin=False,
            )
            self._approle = True
            return
        raise salt.exceptions.SaltInvocationError(
            "hecate:connections:vault needs a token or approle {role_id, secret_id}"
        )

    def _call(self, what, where, func, missing_ok=False, relogin=True):
        try:
            return func()
        except hvac.exceptions.InvalidPath as exc:
            if missing_ok:
                return None
            raise salt.exceptions.CommandExecutionError(
                f"Vault: {what} {where}: not found{_errors(exc, prefix=': ')}"
            ) from None
        except hvac.exceptions.Forbidden as exc:
            # an AppRole token lives for the role's token_ttl; past it Vault answers 403
            # "permission denied" to everything. A long-lived process (a minion, a runner
            # following a long deployment) logs in again, once, and retries - the refused
            # request changed nothing; a token that lacks the policy is refused again
            if relogin and self._approle:
                self._login(self._sdb_get)
                return self._call(what, where, func, missing_ok, relogin=False)
            raise self._vault_error(what, where, exc) from None
        except hvac.exceptions.VaultError as exc:
            raise self._vault_error(what, where, exc) from None
        except salt.exceptions.CommandExecutionError:
            raise
        except requests.exceptions.SSLError as exc:
            # requests errors surface through hvac untranslated
            raise hecate_http.Unreachable(
                hecate_http.tls_failed("Vault", self.settings["url"], exc, "hecate:connections:vault")
            ) from None
        except requests.exceptions.RequestException as exc:
            raise hecate_http.Unreachable(
                f"Vault at {self.settings['url']} is unreachable: "
                f"{hecate_http._reason(exc)}"  # pylint: disable=protected-access
            ) from None
        except Exception as exc:  # pylint: disable=broad-except
            raise hecate_http.Unreachable(
                f"Vault at {self.settings['url']} is unreachable: {type(exc).__name__}"
            ) from None

    @staticmethod
    def _vault_error(what, where, exc):
        errors = _errors(exc) or type(exc).__name__
        if "check-and-set" in errors:
            return CASConflict(f"Vault: {what} {where}: {errors}")
        if isinstance(exc, hvac.exceptions.Forbidden):
            errors = f"permission denied (token invalid or policy lacks access): {errors}"
        elif isinstance(exc, hvac.exceptions.VaultDown):
            errors = f"Vault is sealed or unavailable: {errors}"
        return salt.exceptions.CommandExecutionError(f"Vault: {what} {where}: {errors}")

    def lookup_self(self):
        """The token's own data (policies, ttl, ...): proves the login/token works."""
        resp = self._call("look up its token", "auth/token/lookup-self", self.client.auth.token.lookup_self)
        return (resp or {}).get("data") or {}

    def read(self, mount, path, version=None):
        """
        ``(data, metadata)`` of a secret; ``(None, None)`` when it does not exist or its
        latest version is deleted or destroyed.
        """
        resp = self._call(
            "read",
            f"{mount}/{path}",
            lambda: self.client.secrets.kv.v2.read_secret_version(
                path, version=version, mount_point=mount, raise_on_deleted_version=True
            ),
            missing_ok=True,
        )
        data = (resp or {}).get("data") or {}
        return data.get("data"), data.get("metadata")

    def read_data(self, mount, path):
        """Only the key/value data (or None): the shape :func:`hecate_secrets.resolve` wants."""
        return self.read(mount, path)[0]

    def write(self, mount, path, data, cas=None):
        """Write a new version; ``cas`` is the version expected to be current (0 = create)."""
        return self._call(
            "write",
            f"{mount}/{path}",
            lambda: self.client.secrets.kv.v2.create_or_update_secret(
                path, secret=data, cas=cas, mount_point=mount
            ),
        )

    def read_for_update(self, mount, path):
        """
        ``(data, version)`` to base a check-and-set write on: ``version`` is the current
        version (0 when the secret never existed) and ``data`` what that version holds
        (None when absent or deleted). A secret created between the reads is seen, not
        overwritten: the CAS version always belongs to the data returned.
        """
        data, meta = self.read(mount, path)
        if data is not None:
            return data, (meta or {}).get("version", 0)
        version = self._version(mount, path)
        if version:
            again, meta = self.read(mount, path, version=version)
            if again is not None:
                return again, (meta or {}).get("version", version)
        return None, version

    def merge(self, mount, path, data):
        """
        Set ``data``'s keys in the secret, keeping its other keys; written with CAS on
        the version read, so a concurrent writer makes this fail instead of being lost.
        Returns True when a new version was written, False when nothing differed.
        """
        current, version = self.read_for_update(mount, path)
        merged = dict(current or {})
        merged.update(data)
        if current == merged:
            return False
        self.write(mount, path, merged, cas=version)
        return True

    def delete_latest(self, mount, path):
        """Soft-delete the latest version (recoverable with undelete; metadata stays)."""
        return self._call(
            "delete",
            f"{mount}/{path}",
            lambda: self.client.secrets.kv.v2.delete_latest_version_of_secret(path, mount_point=mount),
        )

    def list(self, mount, path=""):
        """Keys below ``path`` (sub-folders end with '/'); [] when there are none."""
        resp = self._call(
            "list",
            f"{mount}/{path}",
            lambda: self.client.secrets.kv.v2.list_secrets(path, mount_point=mount),
            missing_ok=True,
        )
        return ((resp or {}).get("data") or {}).get("keys") or []

    def _version(self, mount, path):
        meta = self.metadata(mount, path)
        return (meta or {}).get("current_version", 0)

    def metadata(self, mount, path):
        """Secret metadata (versions, current_version) or None when absent."""
        resp = self._call(
            "read metadata",
            f"{mount}/{path}",
            lambda: self.client.secrets.kv.v2.read_secret_metadata(path, mount_point=mount),
            missing_ok=True,
        )
        return (resp or {}).get("data")


def from_config(opts, pillar, sdb_get=None, context=None):
    """
    The Vault client for this minion's ``hecate:connections:vault`` settings, cached in
    ``context`` (pass ``__context__``) so one run logs in once.
    """
    settings = hecate_config.connection("vault", opts, pillar)
    key = ("hecate_vault_client", settings.get("url"))
    if context is not None and key in context:
        return context[key]
    client = VaultKV(settings, sdb_get=sdb_get)
    if context is not None:
        context[key] = client
    return client


class Resolver:
    """
    Resolve configured values (Vault references, ``sdb://`` URIs, literals) to
    :class:`hecate_secrets.Secret`, connecting to Vault only when a reference needs it.

    ``resolve = Resolver(__opts__, __pillar__, __salt__.get("sdb.get"), __context__)``
    ``token = resolve(settings["token"], "hecate:connections:authentik:token")``
    """

    def __init__(self, opts, pillar, sdb_get=None, context=None):
        self.opts, self.pillar, self.sdb_get, self.context = opts, pillar, sdb_get, context
        self.resolved = []  # every Secret handed out, for scrubbing error text

    def vault(self):
        return from_config(self.opts, self.pillar, self.sdb_get, self.context)

    def __call__(self, value, where="secret"):
        secret = hecate_secrets.resolve(
            value,
            vault=lambda mount, path: self.vault().read_data(mount, path),
            sdb_get=self.sdb_get,
            where=where,
        )
        if secret is not None:
            self.resolved.append(secret)
        return secret


def _errors(exc, prefix=""):
    text = "; ".join(str(e) for e in (exc.errors or []))
    return prefix + text if text else ""



def split_path(path, where="path"):
    """``"secret/bionicgpt/db"`` -> ``("secret", "bionicgpt/db")`` (first segment is the mount)."""
    if not isinstance(path, str) or not hecate_secrets._PATH_RE.match(path):  # pylint: disable=protected-access
        raise salt.exceptions.SaltInvocationError(
            f"{where}: expected '<mount>/<path>' (e.g. secret/bionicgpt/db), got {path!r}"
        )
    mount, _, rest = path.partition("/")
    return mount, rest
