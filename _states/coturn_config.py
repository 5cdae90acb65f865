"""
coturn_config: coturn's turnserver.conf from pillar, with its shared secret from Vault.

``managed`` renders ``hecate:reverse_proxy:coturn`` (realm, ports, relay range, TLS
certificate paths, denied peer networks) into ``name``. The TURN REST API secret
(``static_auth_secret: {vault: secret/hecate/coturn, key: static_auth_secret}``) is read
from Vault on the minion at that moment and goes into the file only: the file is
created with its final mode and owner (default root:turnserver 0640) before the secret is
written to it, and ``changes``, comments and logs never hold the file's content - they
say ``content changed (contains secrets, not shown)`` and list the non-secret settings
that differ.

``absent`` (the teardown) stops coturn and removes the file, only when hecate wrote it (its
first line is the header ``managed`` writes); any other file is left alone, and coturn too.

coturn cannot reload its configuration; restart it when the file changes:

.. code-block:: yaml

    hecate coturn config:
      coturn_config.managed:
        - name: /etc/turnserver.conf

    hecate coturn service:
      service.running:
        - name: coturn
        - watch:
          - coturn_config: hecate coturn config
"""

import copy
import logging
import os

import salt.exceptions

import hecate_clients
import hecate_config
import hecate_coturn_render
import hecate_coturn_schema
import hecate_files
import hecate_loader
import hecate_nginx_schema
import hecate_secrets
import hecate_state
import hecate_vault_schema

log = logging.getLogger(__name__)

__virtualname__ = "coturn_config"

# The start of the first line of every file ``managed`` writes: what ``absent`` takes as hecate's.
MARK = hecate_coturn_render.HEADER.split(",", 1)[0]
CHANGED = "content changed (contains secrets, not shown)"
REMOVED = "file removed (contains secrets, not shown)"
CREATED = "file created (contains secrets, not shown)"
# Options hecate renders; a settings diff only ever shows these (the old file may hold
# other options with secret values - user=, cli-password=, pkey-pwd=, *-userdb=).
SHOWN = frozenset(
    {
        "listening-port", "tls-listening-port", "listening-ip", "relay-ip", "external-ip",
        "min-port", "max-port", "realm", "fingerprint", "use-auth-secret", "stale-nonce",
        "cert", "pkey", "no-tlsv1", "no-tlsv1_1", "no-tls", "no-dtls", "no-cli",
        "no-multicast-peers", "no-rfc5780", "no-stun-backward-compatibility",
        "response-origin-only-with-rfc5780", "denied-peer-ip", "allowed-peer-ip", "syslog",
        "log-file", "simple-log", "verbose", "pidfile",
    }
)


def __virtual__():
    return hecate_loader.virtual(__virtualname__, libs=("jsonschema",))


def _settings_diff(old_text, new_text):
    old = hecate_coturn_render.parse(old_text)
    new = hecate_coturn_render.parse(new_text)
    diff = hecate_state.diff(
        {k: v for k, v in old.items() if k in SHOWN or k == hecate_coturn_render.SECRET_KEY},
        {k: v for k, v in new.items() if k in SHOWN or k == hecate_coturn_render.SECRET_KEY},
        secret_keys=(hecate_coturn_render.SECRET_KEY,),
    )
    dropped = sorted(k for k in old if k not in SHOWN and k != hecate_coturn_render.SECRET_KEY)
    if dropped:
        diff["other options removed (values not shown)"] = dropped
    return diff


def _pillar_with(raw):
    pillar = copy.deepcopy(dict(__pillar__))
    rp = pillar.setdefault("hecate", {}).setdefault("reverse_proxy", {})
    rp["coturn"] = raw
    return pillar



def _generated_by_this_run(ref, resolver):
    """The reference is a secret hecate generates (hecate:secrets) that Vault lacks so far."""
    if not isinstance(ref, dict):
        return False
    if (ref.get("vault"), ref.get("key")) not in hecate_vault_schema.generated_specs(dict(__pillar__)):
        return False
    mount, _, path = str(ref["vault"]).partition("/")
    return ref["key"] not in (resolver.vault().read_data(mount, path) or {})

@hecate_state.guard
def managed(name, config=None):
    """
    Render coturn's configuration into ``name`` with the static auth secret resolved
    from Vault, readable by root and the coturn group only.

    name
        The turnserver configuration file (``hecate:reverse_proxy:coturn:config_file``,
        default ``/etc/turnserver.conf``).

    config
        Settings in the shape of pillar ``hecate:reverse_proxy:coturn``. Default: this
        minion's pillar at that key.

    .. code-block:: yaml

        hecate coturn config:
          coturn_config.managed:
            - name: /etc/turnserver.conf
    """
    test = bool(__opts__.get("test"))
    raw = config if config is not None else hecate_config.traverse(__pillar__, hecate_coturn_schema.PILLAR_KEY)
    settings = hecate_coturn_schema.normalise(raw)
    clashes = [
        e for e in hecate_nginx_schema.port_clashes(_pillar_with(raw))
        if e[0].startswith(hecate_coturn_schema.PILLAR_KEY)
    ]
    if clashes:
        raise salt.exceptions.SaltInvocationError(
            "invalid coturn pillar:\n" + "\n".join(f"{p}: {m}" for p, m in clashes)
        )
    owner_notes = hecate_files.check_owner(settings["file_user"], settings["file_group"], test)
    ret = hecate_state.new(name)

    resolver = hecate_clients.resolver(__opts__, __pillar__, __context__, __salt__)
    ref = settings["static_auth_secret"]
    where = f"{hecate_coturn_schema.PILLAR_KEY}:static_auth_secret ({hecate_secrets.describe(ref)})"
    try:
        if test and _generated_by_this_run(ref, resolver):
            # a preview from a bare edge: the secrets step of the same run generates it
            old, _ = hecate_files.current(name)
            changes = {"content": CHANGED if old is not None else CREATED}
            hecate_state.result(ret, changes, True, f"would {'write' if old is not None else 'create'} {name} "
                                f"(mode {settings['file_mode']}) with the secret hecate generates into "
                                f"{hecate_secrets.describe(ref)} in this run", None)
            return ret
        secret = resolver(ref, where)
        if secret is None:
            raise salt.exceptions.CommandExecutionError(f"{where}: not set")
        hecate_coturn_render.check_secret(secret, where)
        text = hecate_coturn_render.render(settings, secret)
        old, st = hecate_files.current(name)
        changes = {}
        if old != text:
            changes["content"] = CHANGED if old is not None else CREATED
            settings_diff = _settings_diff(old, text)
            if settings_diff:
                changes["settings"] = settings_diff
        changes.update(
            hecate_files.meta_changes(
                st, settings["file_mode"], settings["file_user"], settings["file_group"]
            )
        )
        notes = owner_notes + [
            f"{key} {settings[key]} does not exist yet: coturn will serve no TLS/DTLS until it does"
            for key in ("cert", "pkey")
            if settings[key] and not os.path.exists(settings[key])
        ]
        if not changes:
            ret["comment"] = "; ".join([f"{name} is in the desired state"] + notes)
            return ret
        verb = "write" if old is not None else "create"
        if test:
            would = f"would {verb} {name} (mode {settings['file_mode']}; secret from Vault, not shown)"
            if "content" not in changes:
                would = f"would set mode/owner of {name}"
            hecate_state.result(ret, changes, True, "; ".join([would] + notes), None)
            return ret
        if "content" in changes:
            hecate_files.write_atomic(
                name, text, settings["file_mode"], settings["file_user"], settings["file_group"]
            )
            did = (
                f"{'wrote' if old is not None else 'created'} {name} "
                f"(mode {settings['file_mode']}; secret from Vault, not shown)"
            )
        else:
            hecate_files.fix_meta(
                name, settings["file_mode"], settings["file_user"], settings["file_group"]
            )
            did = f"set mode/owner of {name}"
        log.info("coturn_config: %s updated (content not logged)", name)
        return hecate_state.result(ret, changes, False, None, "; ".join([did] + notes))
    except salt.exceptions.SaltException as exc:
        # defence in depth: no resolved value may leave through an error message
        kind = (
            salt.exceptions.SaltInvocationError
            if isinstance(exc, salt.exceptions.SaltInvocationError)
            else salt.exceptions.CommandExecutionError
        )
        raise kind(hecate_secrets.scrub(str(exc), resolver.resolved)) from None


def _absent_settings(raw):
    """``manage_service``/``service`` for ``absent``: pillar checked when given, defaults without."""
    if raw is None:
        return dict(hecate_coturn_schema.DEFAULTS)
    return hecate_coturn_schema.normalise(raw)


def _service_changes(service):
    """What stopping hecate's coturn takes: ``{"service": "stopped", "enabled": {...}}``."""
    changes = {}
    if __salt__["service.status"](service):
        changes["service"] = "stopped"
    if __salt__["service.enabled"](service):
        # hecate.coturn enabled it (service.running, enable: True)
        changes["enabled"] = {"old": True, "new": False}
    return changes


@hecate_state.guard
def absent(name, config=None):
    """
    Remove the turnserver configuration hecate wrote: stop coturn and disable its service
    (``hecate.coturn`` enabled it), then remove ``name``. Only a file whose first line is the
    header ``managed`` writes is hecate's; any other file at ``name`` is left as it is, and
    coturn too. The file's content (it holds the TURN secret) is never read into a return.
    The secret stays in Vault; the packages stay installed.

    name
        The turnserver configuration file (``hecate:reverse_proxy:coturn:config_file``).

    config
        Settings in the shape of pillar ``hecate:reverse_proxy:coturn`` (``manage_service``,
        ``service``). Default: this minion's pillar at that key, or hecate's defaults when it
        has none. With ``manage_service: false`` only the file is removed.

    .. code-block:: yaml

        hecate coturn config removed:
          coturn_config.absent:
            - name: /etc/turnserver.conf
    """
    test = bool(__opts__.get("test"))
    raw = config if config is not None else hecate_config.traverse(__pillar__, hecate_coturn_schema.PILLAR_KEY)
    settings = _absent_settings(raw)
    ret = hecate_state.new(name)
    text, _ = hecate_files.current(name)
    if text is None:
        ret["comment"] = f"{name} is absent"
        return ret
    if not text.startswith(MARK):
        ret["comment"] = (f"{name} was not written by hecate (its first line is not {MARK!r}...): "
                          "left as it is, and coturn with it")
        return ret
    changes = {"file": {"old": name, "new": None}, "content": REMOVED}
    service = settings["service"] if settings["manage_service"] else None
    if service:
        changes.update(_service_changes(service))
    steps = [s for s, key in ((f"stop {service}", "service"), (f"disable {service}", "enabled")) if key in changes]
    note = "" if service else "; coturn is not hecate's to stop (manage_service: false)"
    if test:
        return hecate_state.result(ret, changes, True, f"would {', '.join(steps + [f'remove {name}'])}{note}", None)
    if "service" in changes and not __salt__["service.stop"](service):
        raise salt.exceptions.CommandExecutionError(
            f"service.stop {service} failed (see its journal); {name} was kept")
    if "enabled" in changes and not __salt__["service.disable"](service):
        raise salt.exceptions.CommandExecutionError(
            f"service.disable {service} failed (it is stopped); {name} was kept")
    hecate_files.remove(name)
    log.info("coturn_config: %s removed (content not logged)", name)
    done = [d for d, key in ((f"stopped {service}", "service"), (f"disabled {service}", "enabled")) if key in changes]
    did = ", ".join(done + [f"removed {name}"])
    return hecate_state.result(ret, changes, False, None, did[:1].upper() + did[1:] + note)
