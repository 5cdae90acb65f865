"""
The nginx binary and the running nginx, for ``nginx_config.managed``: the stream module of
this build (``nginx -V``), ``nginx -t`` on a candidate file (and on a preview, in a private
directory), the running master (pid file, worker processes), start, reload, and
confirmation that a reload took effect.
"""

import contextlib
import os
import re
import signal
import subprocess
import tempfile
import time

import salt.exceptions

import hecate_nginx_schema


# -- the nginx binary -----------------------------------------------------------------------
def _run(argv, timeout=60):
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except FileNotFoundError:
        raise salt.exceptions.CommandExecutionError(
            f"nginx not found at {argv[0]}: install nginx (Debian: nginx, libnginx-mod-stream; "
            "see hecate:reverse_proxy:nginx:packages) or set hecate:reverse_proxy:nginx:binary"
        ) from None
    except subprocess.TimeoutExpired:
        raise salt.exceptions.CommandExecutionError(
            f"{' '.join(argv[:3])} did not finish within {timeout}s"
        ) from None
    return proc.returncode, (proc.stdout or "") + (proc.stderr or "")


def build_info(binary):
    """``nginx -V``: ``{"version": "1.22.1", "configure": "--prefix=... --with-stream=dynamic ..."}``."""
    code, out = _run([binary, "-V"])
    if code != 0:
        raise salt.exceptions.CommandExecutionError(f"{binary} -V failed: {out.strip()}")
    version = re.search(r"nginx/([0-9.]+)", out)
    configure = re.search(r"configure arguments:(.*)", out)
    return {
        "version": version.group(1) if version else None,
        "configure": configure.group(1).strip() if configure else "",
    }


def stream_module(settings):
    """
    The ``load_module`` path for the stream module, or None when it is built in.
    ``stream_module: auto`` reads ``nginx -V``.
    """
    wanted = settings["stream_module"]
    if wanted == "builtin":
        return None
    if wanted != "auto":
        if not os.path.exists(wanted):
            raise salt.exceptions.CommandExecutionError(
                f"{hecate_nginx_schema.PILLAR_KEY}:stream_module: {wanted} does not exist"
            )
        return wanted
    info = build_info(settings["binary"])
    args = info["configure"]
    if re.search(r"--with-stream=dynamic(\s|$)", args):
        found = re.search(r"--modules-path=(\S+)", args)
        if found:
            modules = found.group(1).strip("'\"")
        else:
            prefix = re.search(r"--prefix=(\S+)", args)
            modules = os.path.join(prefix.group(1).strip("'\"") if prefix else "/usr/share/nginx",
                                   "modules")
        path = os.path.join(modules, "ngx_stream_module.so")
        if not os.path.exists(path):
            raise salt.exceptions.CommandExecutionError(
                f"nginx's stream module is not installed: {path} is missing (Debian: "
                "libnginx-mod-stream; see hecate:reverse_proxy:nginx:packages)"
            )
        return path
    if re.search(r"--with-stream(\s|$)", args):
        return None
    raise salt.exceptions.CommandExecutionError(
        f"{settings['binary']} (nginx {info['version']}) is built without the stream module"
    )


def _stream_at(text, lineno):
    """The ``# stream`` comment above line ``lineno`` of a rendered config, if any."""
    found = None
    for idx, line in enumerate(text.splitlines(), start=1):
        if idx > lineno:
            break
        match = re.match(r"\s*# stream ('[^']*'|\"[^\"]*\") \(([^)]+)\)", line)
        if match:
            found = f"stream {match.group(1)} ({match.group(2)})"
        elif line.strip() == "}" and not line.startswith(" "):
            found = None
    return found


def check_config(binary, candidate, live_path, text=None):
    """
    ``nginx -t`` on ``candidate``; raise ``CommandExecutionError`` with nginx's message
    (the candidate's name replaced by ``live_path``, and the stream the failing line
    belongs to) when nginx rejects it.
    """
    code, out = _run([binary, "-t", "-q", "-c", candidate])
    if code == 0:
        return
    message = "\n".join(
        _strip_log_prefix(line) for line in out.strip().replace(candidate, f"{live_path} (candidate)").splitlines()
    )
    where = None
    if text is not None:
        line = re.search(r"\(candidate\):([0-9]+)", message)
        if line:
            where = _stream_at(text, int(line.group(1)))
    raise salt.exceptions.CommandExecutionError(
        f"nginx -t rejected the new configuration for {live_path}"
        + (f" in {where}" if where else "")
        + f"; {live_path} was left unchanged:\n{message}"
    )


def check_preview(settings, text_for, live_path):
    """
    ``nginx -t`` for a preview (test=True): the candidate goes to a private temporary
    directory, and the log and pid files it opens too, so nothing is created at the real
    paths. ``text_for(paths)`` renders the configuration with those paths.
    """
    with tempfile.TemporaryDirectory(prefix="hecate-nginx-preview-") as tmp:
        paths = {
            "error_log": os.path.join(tmp, "error.log"),
            "pid_file": os.path.join(tmp, "nginx.pid"),
        }
        if settings["access_log"]:
            paths["access_log"] = os.path.join(tmp, "access.log")
        candidate = os.path.join(tmp, "nginx.conf")
        text = text_for(paths)
        with open(candidate, "w", encoding="utf-8") as fh:
            fh.write(text)
        check_config(settings["binary"], candidate, live_path, text)


def check_dirs(settings):
    """The directories the config names must exist (nginx would fail on them later)."""
    for key in ("pid_file", "error_log", "access_log"):
        path = settings.get(key)
        if path and not os.path.isdir(os.path.dirname(path)):
            raise salt.exceptions.CommandExecutionError(
                f"{hecate_nginx_schema.PILLAR_KEY}:{key}: directory {os.path.dirname(path)} does not exist"
            )


# -- the running nginx ----------------------------------------------------------------------
def master_pid(pid_file):
    """The pid of the running nginx master named by ``pid_file``, or None."""
    try:
        with open(pid_file, encoding="ascii") as fh:
            pid = int(fh.read().strip())
    except (OSError, ValueError):
        return None
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            cmdline = fh.read()
    except OSError:
        return None
    return pid if b"nginx" in cmdline else None


def workers(pid):
    """Pids of the processes whose parent is ``pid`` (the master's workers)."""
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as fh:
                fields = fh.read().rpartition(")")[2].split()
        except OSError:
            continue
        if len(fields) > 1 and fields[1] == str(pid):
            found.add(int(entry))
    return found


def log_size(path):
    try:
        return os.path.getsize(path)
    except OSError:
        return None


def _log_since(path, offset):
    if offset is None:
        return ""
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            return fh.read().decode("utf-8", "replace")
    except OSError:
        return ""


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def confirm_reload(pid, before, error_log, offset, timeout):
    """
    Wait until the master runs new workers and the old ones stopped accepting (they set
    their title to "worker process is shutting down" and close the listeners). Returns
    ``(True, "")`` or ``(False, reason)`` with nginx's ``[emerg]`` lines when the master
    refused the configuration (a port taken by another process, ...), kept its old
    workers, or did not react within ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    failed_at = None
    while time.monotonic() < deadline:
        if not _alive(pid):
            return False, "the nginx master exited"
        if workers(pid) - before and not _serving(before):
            return True, ""
        log = _log_since(error_log, offset)
        emerg = [line for line in log.splitlines() if "[emerg]" in line]
        retrying = log.rstrip().endswith("try again to bind() after 500ms")
        if emerg and not retrying:
            # nginx gave up and keeps the old workers; give it a moment to be sure
            failed_at = failed_at or time.monotonic()
            if time.monotonic() - failed_at > 0.5:
                return False, "\n".join(_strip_log_prefix(line) for line in emerg[-3:])
        time.sleep(0.05)
    return False, f"nginx did not start new workers within {timeout}s"


def _serving(old_workers):
    """Old workers still accepting connections (alive and not yet "shutting down")."""
    serving = set()
    for wpid in old_workers:
        try:
            with open(f"/proc/{wpid}/cmdline", "rb") as fh:
                title = fh.read()
        except OSError:
            continue
        if title and b"shutting down" not in title:
            serving.add(wpid)
    return serving


def _strip_log_prefix(line):
    """``2026/01/02 10:00:00 [emerg] 12#12: msg`` -> ``nginx: [emerg] msg``."""
    return re.sub(r"^[0-9/]+ [0-9:]+ \[(\w+)\] [0-9]+#[0-9]+: ", r"nginx: [\1] ", line)


def start(settings):
    """Start nginx directly (no service manager); it binds before daemonising."""
    code, out = _run([settings["binary"], "-c", settings["config_file"]])
    if code != 0:
        raise salt.exceptions.CommandExecutionError(f"nginx did not start:\n{out.strip()}")


def signal_reload(settings):
    """``nginx -s reload`` against the managed configuration (its ``pid`` file)."""
    code, out = _run([settings["binary"], "-c", settings["config_file"], "-s", "reload"])
    if code != 0:
        raise salt.exceptions.CommandExecutionError(f"nginx -s reload failed:\n{out.strip()}")


def stop(pid_file, timeout=10):
    """Stop the master of ``pid_file`` (tests and the lab); True when one was running."""
    pid = master_pid(pid_file)
    if pid is None:
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.05)
    return True
