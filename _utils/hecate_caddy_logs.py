"""
Per-site access logs of hecate's routes (the Caddyfile's ``log`` in a site block), which live
outside a server's routes: the server's ``logs.logger_names`` maps each domain to logger names,
and each named logger is ``logging.logs.<name>`` in Caddy's logging app. This is what
``caddy adapt`` makes of a site's ``log`` (checked against the real binary in
tests/functional/test_caddy_route_fields.py), with hecate's names.

Ownership (what :func:`plan` changes, nothing else):

- loggers named ``hecate.<route>.<n>`` (``logging.logs``), one per ``access_log`` entry;
- in the server's ``logs.logger_names``, those names (other names of a domain are kept);
- in ``logging.logs.default.exclude``, ``http.log.access.<those names>``: as the Caddyfile
  adapter does, so that access entries are not written to the default log as well;
- ``logs`` itself only when hecate creates it: then with ``skip_unmapped_hosts`` so that the
  server's other hosts, which logged nothing before, still log nothing. A ``logs`` someone
  else set keeps its settings (its unmapped hosts log as it says).

Containers left empty by a removal (``logger_names``, the ``logs`` hecate created, the
default logger's ``exclude``, an empty default logger) are removed: empty and absent mean the
same to Caddy. Caddy 2.10 or newer is needed (``logger_names`` values are lists since 2.10).
"""

import copy

import hecate_caddy_client

PREFIX = "hecate."
ACCESS = "http.log.access."


def logger_names(route_name, count):
    return [f"{PREFIX}{route_name}.{i}" for i in range(count)]


def _entries(value):
    if value is True:
        return [{}]
    if isinstance(value, list):
        return value
    return [value]


def loggers(spec, route_name, where, errors):
    """The route's ``access_log`` -> ``[(logger name, logger JSON)]``; problems go to ``errors``."""
    value = spec.get("access_log")
    if value in (None, False):
        return []
    items = _entries(value)
    out = []
    for idx, (name, entry) in enumerate(zip(logger_names(route_name, len(items)), items)):
        here = f"{where}:access_log" + (f":{idx}" if isinstance(value, list) else "")
        if not isinstance(entry, dict):
            errors.append((here, "expected true, a mapping or a list of mappings"))
            continue
        unknown = sorted(set(entry) - {"file", "output", "format", "level"})
        if unknown:
            errors.append((f"{here}:{unknown[0]}", "unknown key (have: file, output, format, level)"))
            continue
        log = {}
        if entry.get("file") and entry.get("output"):
            errors.append((f"{here}:output", "set either file or output, not both"))
        elif entry.get("file"):
            if not str(entry["file"]).startswith("/"):
                errors.append((f"{here}:file", f"{entry['file']!r} must be an absolute path"))
            log["writer"] = {"filename": str(entry["file"]), "output": "file"}
        elif entry.get("output"):
            if entry["output"] not in ("stderr", "stdout", "discard"):
                errors.append((f"{here}:output", f"{entry['output']!r} is not stderr, stdout or discard"))
            log["writer"] = {"output": entry["output"]}
        if entry.get("format"):
            if entry["format"] not in ("json", "console"):
                errors.append((f"{here}:format", f"{entry['format']!r} is not json or console"))
            log["encoder"] = {"format": entry["format"]}
        if entry.get("level"):
            level = str(entry["level"]).upper()
            if level not in ("DEBUG", "INFO", "WARN", "ERROR"):
                errors.append((f"{here}:level", f"{entry['level']!r} is not DEBUG, INFO, WARN or ERROR"))
            log["level"] = level
        log["include"] = [ACCESS + name]
        out.append((name, log))
    return out


def _ours(name):
    return isinstance(name, str) and name.startswith(PREFIX)


def plan(config, server, desired):
    """
    ``(edits, changes)``: the new server ``logs`` and ``logging`` objects (``{path: value}``,
    value None to remove it; only the paths that differ) for the access logs of ``desired``
    (:class:`hecate_caddy_routes.Route` with ``loggers``), and a readable change per logger.
    """
    parts = hecate_caddy_client.server_parts(server)
    live_logs = hecate_caddy_client.traverse(config, parts + ("logs",))
    live_logging = hecate_caddy_client.traverse(config, ("logging",))
    live_names = (live_logs or {}).get("logger_names") or {} if isinstance(live_logs, dict) else {}
    want_hosts = {}  # host -> our names
    want_loggers = {}
    for route in desired:
        names = [name for name, _ in getattr(route, "loggers", [])]
        want_loggers.update(getattr(route, "loggers", []))
        for host in route.domains if names else ():
            want_hosts[host] = names
    # names in play: ours that this server maps now, and the ones we want
    in_play = set(want_loggers)
    for names in live_names.values():
        in_play.update(n for n in _as_list(names) if _ours(n))

    logs = _new_logs(live_logs, live_names, want_hosts)
    logging_ = _new_logging(live_logging, want_loggers, in_play)
    edits = {}
    if logs != live_logs:
        edits[parts + ("logs",)] = logs
    if logging_ != live_logging:
        edits[("logging",)] = logging_
    if not edits:
        return {}, {}
    return edits, _changes(live_logs, live_logging, logs, logging_, in_play)


def _as_list(value):
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _new_logs(live_logs, live_names, want_hosts):
    names = {}
    for host, value in live_names.items():
        kept = [n for n in _as_list(value) if not _ours(n)]
        if host in want_hosts:
            kept += want_hosts[host]
        if kept:
            names[host] = kept if kept != _as_list(value) else value
    for host, ours in want_hosts.items():
        names.setdefault(host, list(ours))
    if not isinstance(live_logs, dict):
        return {"logger_names": names, "skip_unmapped_hosts": True} if names else live_logs
    logs = copy.deepcopy(live_logs)
    if names:
        logs["logger_names"] = names
    else:
        logs.pop("logger_names", None)
        if logs == {"skip_unmapped_hosts": True}:  # what hecate creates: now it means nothing
            return None
    return logs


def _new_logging(live, want_loggers, in_play):
    if not want_loggers and not in_play:
        return live
    logging_ = copy.deepcopy(live) if isinstance(live, dict) else {}
    logs = logging_.setdefault("logs", {})
    for name in list(logs):
        if name in in_play and name not in want_loggers:
            del logs[name]
    logs.update(copy.deepcopy(want_loggers))
    default = logs.get("default")
    exclude = [e for e in (default or {}).get("exclude") or []
               if not (e.startswith(ACCESS) and e[len(ACCESS):] in in_play)]
    exclude += sorted(ACCESS + name for name in want_loggers)
    if exclude:
        default = dict(default or {})
        if exclude != (default.get("exclude") or []):
            default["exclude"] = exclude
        logs["default"] = default
    elif isinstance(default, dict):
        default.pop("exclude", None)
        if default:
            logs["default"] = default
        else:
            del logs["default"]
    if not logs:
        del logging_["logs"]
    if not logging_ and not isinstance(live, dict):
        return live
    return logging_ or None


def _changes(live_logs, live_logging, logs, logging_, in_play):
    def view(logs_obj, logging_obj):
        out = {}
        for host, value in ((logs_obj or {}).get("logger_names") or {}).items():
            for name in _as_list(value):
                if name in in_play:
                    out.setdefault(name, {"domains": []})["domains"].append(host)
        for name in in_play:
            logger = (((logging_obj or {}).get("logs") or {}).get(name))
            if logger is not None:
                entry = out.setdefault(name, {"domains": []})
                entry.update({k: v for k, v in logger.items() if k != "include"})
        return out

    old, new = view(live_logs, live_logging), view(logs, logging_)
    changes = {}
    for name in sorted(set(old) | set(new)):
        if old.get(name) != new.get(name):
            changes[name] = {"old": old.get(name), "new": new.get(name)}
    out = {"access_logs": changes} if changes else {}
    old_ex = (((live_logging or {}).get("logs") or {}).get("default") or {}).get("exclude")
    new_ex = (((logging_ or {}).get("logs") or {}).get("default") or {}).get("exclude")
    if not changes and (old_ex != new_ex or live_logs != logs):
        out["access_log_settings"] = {"old": {"exclude": old_ex, "logs": live_logs},
                                      "new": {"exclude": new_ex, "logs": logs}}
    return out
