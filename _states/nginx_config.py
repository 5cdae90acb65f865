"""
nginx_config: the edge's nginx stream proxies from pillar, checked by nginx before they
go live.

``managed`` renders nginx's whole main configuration (``events`` and one ``stream``
block) from ``hecate:reverse_proxy:nginx`` and, when it differs from the live file:

1. writes it to a candidate file next to the live one and runs ``nginx -t`` on it; if
   nginx rejects it, the candidate is removed, the live file and the running nginx are
   untouched, and the state fails with nginx's message (naming the stream);
2. renames the candidate over the live file and reloads nginx (``nginx -s reload``, or
   ``service.reload`` when ``service`` is set) - never a restart - then waits for the
   master to run new workers. If nginx refuses the new configuration at reload time (a
   port held by another process), the previous file is put back, so the file on disk is
   always what nginx serves, and the state fails with nginx's ``[emerg]`` lines.

With ``test=True`` the candidate is checked with ``nginx -t`` in a private temporary
directory (its logs too), nothing is written, and ``changes`` holds the same unified
diff a real run reports.

``absent`` (the teardown) stops nginx and removes the file, only when hecate wrote it: its
first line is the header ``managed`` writes. A file without it is left alone, and nginx too.

Streams whose backends come from Consul (``consul_service``) are looked up with
``hecate_consul.service_addresses(name, passing=True)``.

.. code-block:: yaml

    hecate nginx streams:
      nginx_config.managed:
        - name: /etc/nginx/nginx.conf
"""

import copy
import logging
import re

import salt.exceptions

import hecate_config
import hecate_files
import hecate_loader
import hecate_nginx_process
import hecate_nginx_render
import hecate_nginx_schema
import hecate_state

log = logging.getLogger(__name__)

__virtualname__ = "nginx_config"

# The start of the first line of every file ``managed`` writes: what ``absent`` takes as
# hecate's (the rest of the header may change between releases).
MARK = hecate_nginx_render.HEADER.split(",", 1)[0]


def __virtual__():
    return hecate_loader.virtual(__virtualname__, libs=("jsonschema",))


def _pillar_with(key, raw):
    """This minion's pillar with ``raw`` at ``key`` (for the port-clash checks)."""
    pillar = copy.deepcopy(dict(__pillar__))
    node = pillar
    parts = key.split(":")
    for part in parts[:-1]:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[parts[-1]] = raw
    return pillar


def _service_addresses(name, passing=True):
    # looked up only when a stream needs Consul: a miss makes the loader load every module
    if "hecate_consul.service_addresses" not in __salt__:
        raise hecate_nginx_render.ConsulUnavailable(name)
    return __salt__["hecate_consul.service_addresses"](name, passing=passing)


def _running(settings):
    if settings["service"]:
        return bool(__salt__["service.status"](settings["service"]))
    return hecate_nginx_process.master_pid(settings["pid_file"]) is not None


def _start(settings):
    if settings["service"]:
        if not __salt__["service.start"](settings["service"]):
            raise salt.exceptions.CommandExecutionError(
                f"service.start {settings['service']} failed (see its journal)"
            )
        return
    hecate_nginx_process.start(settings)


def _reload(settings):
    pid = hecate_nginx_process.master_pid(settings["pid_file"])
    if pid is None:
        raise salt.exceptions.CommandExecutionError(
            f"no running nginx master found through {settings['pid_file']} "
            "(hecate:reverse_proxy:nginx:pid_file)"
        )
    before = hecate_nginx_process.workers(pid)
    offset = hecate_nginx_process.log_size(settings["error_log"])
    if settings["service"]:
        if not __salt__["service.reload"](settings["service"]):
            raise salt.exceptions.CommandExecutionError(
                f"service.reload {settings['service']} failed (see its journal)"
            )
    else:
        hecate_nginx_process.signal_reload(settings)
    ok, why = hecate_nginx_process.confirm_reload(
        pid, before, settings["error_log"], offset, settings["reload_timeout"]
    )
    if not ok:
        raise salt.exceptions.CommandExecutionError(
            f"nginx did not apply the new configuration:\n{why}"
        )


def _describe(changes, name, test):
    parts = []
    if "diff" in changes:
        parts.append(f"{'write' if test else 'wrote'} {name} (nginx -t passed)")
    for key in ("mode", "user", "group"):
        if key in changes:
            parts.append(f"set {key} of {name} to {changes[key]['new']}")
    service = changes.get("service")
    if service == "reloaded":
        parts.append("reload nginx" if test else "reloaded nginx (new workers running)")
    elif service == "started":
        parts.append("start nginx" if test else "started nginx")
    text = ", ".join(parts)
    return f"would {text}" if test else text[:1].upper() + text[1:]


@hecate_state.guard
def managed(name, config=None):
    """
    Render nginx's stream configuration from pillar into ``name``, check it with
    ``nginx -t`` before it replaces the live file, and reload nginx when it changed.

    name
        The nginx main configuration file (``hecate:reverse_proxy:nginx:config_file``,
        default ``/etc/nginx/nginx.conf``). hecate owns the whole file.

    config
        The settings, in the shape of pillar ``hecate:reverse_proxy:nginx`` (streams in
        ``tcp_proxies``). Default: this minion's pillar at that key.

    Returns result False, with the live configuration and the running nginx untouched,
    when the pillar is invalid (every error with its key path), a Consul service has no
    instances, ``nginx -t`` rejects the candidate, or nginx refuses it at reload.

    .. code-block:: yaml

        hecate nginx streams:
          nginx_config.managed:
            - name: /etc/nginx/nginx.conf
    """
    test = bool(__opts__.get("test"))
    raw = config if config is not None else hecate_config.traverse(__pillar__, hecate_nginx_schema.PILLAR_KEY, {})
    settings = hecate_nginx_schema.normalise(raw, _pillar_with(hecate_nginx_schema.PILLAR_KEY, raw))
    settings["config_file"] = name
    ret = hecate_state.new(name)

    notes = hecate_files.check_owner(settings["file_user"], settings["file_group"], test)
    hecate_nginx_process.check_dirs(settings)
    load = hecate_nginx_process.stream_module(settings)
    streams = hecate_nginx_render.resolve_streams(settings, _service_addresses)
    text = hecate_nginx_render.render(settings, streams, load)

    old, st = hecate_files.current(name)
    changes = {}
    if old != text:
        changes["diff"] = hecate_files.unified_diff(old, text, name)
    changes.update(
        hecate_files.meta_changes(st, settings["file_mode"], settings["file_user"], settings["file_group"])
    )
    manage = settings["manage_service"]
    running = _running(settings) if manage else None
    if manage and not running:
        changes["service"] = "started"
    elif manage and "diff" in changes:
        changes["service"] = "reloaded"

    if not changes:
        ret["comment"] = (
            f"{name} is in the desired state ({len(streams)} stream(s))"
            + ("; nginx is running" if manage else "")
        )
        return ret
    if test:
        if "diff" in changes:
            hecate_nginx_process.check_preview(
                settings, lambda paths: hecate_nginx_render.render(settings, streams, load, paths), name
            )
        return hecate_state.result(
            ret, changes, True, "; ".join([_describe(changes, name, True)] + notes), None
        )

    if "diff" in changes:
        hecate_files.write_atomic(
            name,
            text,
            settings["file_mode"],
            settings["file_user"],
            settings["file_group"],
            check=lambda candidate: hecate_nginx_process.check_config(
                settings["binary"], candidate, name, text
            ),
        )
        log.info("nginx_config: %s replaced (%d stream(s), nginx -t passed)", name, len(streams))
    elif any(k in changes for k in ("mode", "user", "group")):
        hecate_files.fix_meta(name, settings["file_mode"], settings["file_user"], settings["file_group"])
    if manage:
        try:
            if not running:
                _start(settings)
            elif "diff" in changes:
                _reload(settings)
        except salt.exceptions.CommandExecutionError as exc:
            if "diff" not in changes:
                raise
            try:
                hecate_files.restore(name, old, st)
            except salt.exceptions.CommandExecutionError as restore_exc:
                raise salt.exceptions.CommandExecutionError(
                    f"{exc}\nand restoring the previous {name} failed: {restore_exc}"
                ) from None
            kept = (
                "the previous configuration keeps serving"
                if running
                else "nginx is not running"
            )
            raise salt.exceptions.CommandExecutionError(
                f"{exc}\n{name} was restored to its previous version; {kept}"
            ) from None
    return hecate_state.result(ret, changes, False, None, _describe(changes, name, False))


def _stop(settings, pid_file):
    """Stop nginx (the service, or the master of ``pid_file``); fail when it keeps running."""
    if settings["service"]:
        if not __salt__["service.stop"](settings["service"]):
            raise salt.exceptions.CommandExecutionError(
                f"service.stop {settings['service']} failed (see its journal)"
            )
        return
    pid = hecate_nginx_process.master_pid(pid_file)
    hecate_nginx_process.stop(pid_file, timeout=settings["reload_timeout"])
    if hecate_nginx_process.master_pid(pid_file) is not None:
        raise salt.exceptions.CommandExecutionError(
            f"nginx (master pid {pid}, {pid_file}) did not stop within {settings['reload_timeout']}s"
        )


def _written(text):
    """Streams and pid file of a file ``managed`` wrote: ``([names], pid_file or None)``."""
    names = re.findall(r"^\s*# stream '([^']*)' \(", text, re.M)
    pid = re.search(r"^pid (\S+);$", text, re.M)
    return names, pid.group(1) if pid else None


@hecate_state.guard
def absent(name, config=None):
    """
    Remove the stream configuration hecate wrote: stop nginx (it would have no
    configuration left), then remove ``name``. Only a file whose first line is the header
    ``managed`` writes is hecate's; any other file at ``name`` is left as it is, and the
    nginx that runs it too. nginx's packages stay installed.

    name
        The nginx main configuration file (``hecate:reverse_proxy:nginx:config_file``).

    config
        The settings, in the shape of pillar ``hecate:reverse_proxy:nginx``
        (``manage_service``, ``service``, ``pid_file``). Default: this minion's pillar at
        that key. With ``manage_service: false`` nginx is not stopped, only the file removed.

    ``changes``: ``file`` (removed), ``streams`` (those the file carried), ``service:
    stopped``; ``test=True`` reports the same and changes nothing.

    .. code-block:: yaml

        hecate nginx streams removed:
          nginx_config.absent:
            - name: /etc/nginx/nginx.conf
    """
    test = bool(__opts__.get("test"))
    raw = config if config is not None else hecate_config.traverse(__pillar__, hecate_nginx_schema.PILLAR_KEY, {})
    settings = hecate_nginx_schema.normalise(raw)
    ret = hecate_state.new(name)
    text, _ = hecate_files.current(name)
    if text is None:
        ret["comment"] = f"{name} is absent"
        return ret
    if not text.startswith(MARK):
        ret["comment"] = (f"{name} was not written by hecate (its first line is not {MARK!r}...): "
                          "left as it is, and nginx with it")
        return ret
    streams, pid_file = _written(text)
    # the pid file the live configuration names is the one its nginx wrote
    pid_file = pid_file or settings["pid_file"]
    changes = {"file": {"old": name, "new": None}, "streams": {"removed": streams}}
    manage = settings["manage_service"]
    if manage and (_running(dict(settings, pid_file=pid_file))):
        changes["service"] = "stopped"
    which = f"{name} ({len(streams)} stream(s): {', '.join(streams) or 'none'})"
    note = "" if manage else "; nginx is not hecate's to stop (manage_service: false)"
    if test:
        stop = "stop nginx and " if "service" in changes else ""
        return hecate_state.result(ret, changes, True, f"would {stop}remove {which}{note}", None)
    if "service" in changes:
        _stop(settings, pid_file)
    hecate_files.remove(name)
    log.info("nginx_config: %s removed (%d stream(s))", name, len(streams))
    stopped = "Stopped nginx and removed" if "service" in changes else "Removed"
    return hecate_state.result(ret, changes, False, None, f"{stopped} {which}{note}")
