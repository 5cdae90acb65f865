"""Small process helpers shared by the lab command and the test suite."""

import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# Ports the lab picks are bound minutes later by another process (nginx, Caddy, a simulator).
# A port the kernel hands out for port 0 lies in its ephemeral range, where any outgoing
# connection meanwhile may take it as its source port ("Address already in use" at the later
# bind, seen once in a full run). So the lab picks below that range.
PICK_LOW = 20000


def _ephemeral_low():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range", encoding="ascii") as fh:
            return int(fh.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def bind_free(sock, host="127.0.0.1", low=PICK_LOW, high=None, tries=200):
    """
    Bind ``sock`` to a free port of ``host`` in ``low``..``high`` (default: up to the ephemeral
    range); return the port.
    """
    high = min(high or 65536, _ephemeral_low())
    if high - low >= 1000:
        rng = random.SystemRandom()
        for _ in range(tries):
            port = rng.randrange(low, high)
            try:
                sock.bind((host, port))
                return port
            except OSError:
                continue
    sock.bind((host, 0))  # no room below the range: let the kernel pick
    return sock.getsockname()[1]


def free_port(kind=socket.SOCK_STREAM, host="127.0.0.1"):
    """A loopback port that is free right now (TCP by default), outside the ephemeral range."""
    with contextlib.closing(socket.socket(socket.AF_INET, kind)) as sock:
        return bind_free(sock, host)


def venv_bin(name):
    """An executable from the interpreter's own environment (``.venv/bin/<name>``)."""
    candidate = os.path.join(os.path.dirname(sys.executable), name)
    return candidate if os.path.exists(candidate) else name


def wait_http(url, timeout=20.0, ok=lambda status: status < 500, proc=None):
    """Poll ``url`` until it answers with a status ``ok`` accepts; raise on timeout."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process for {url} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 (loopback)
                if ok(resp.status):
                    return
        except urllib.error.HTTPError as exc:
            if ok(exc.code):
                return
            last = exc
        except OSError as exc:
            last = exc
        time.sleep(0.05)
    raise TimeoutError(f"{url} did not come up within {timeout}s: {last}")


def wait_port(port, timeout=20.0, host="127.0.0.1"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.closing(socket.socket()) as sock:
            sock.settimeout(0.5)
            if sock.connect_ex((host, port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"port {port} did not open within {timeout}s")


class Proc:
    """A background process with its output in a log file."""

    def __init__(self, name, argv, log_path, env=None, cwd=None):
        self.name = name
        self.argv = argv
        self.log_path = log_path
        os.makedirs(os.path.dirname(log_path), exist_ok=True)
        self._log = open(log_path, "ab")  # noqa: SIM115  (open for the process's life)  pylint: disable=consider-using-with
        full_env = dict(os.environ)
        full_env.update(env or {})
        self.popen = subprocess.Popen(  # pylint: disable=consider-using-with
            argv,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=full_env,
            cwd=cwd or REPO,
            start_new_session=True,
        )

    @property
    def pid(self):
        return self.popen.pid

    def poll(self):
        return self.popen.poll()

    def stop(self, timeout=10):
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout)
        self._log.close()

    def output(self):
        with open(self.log_path, "rb") as fh:
            return fh.read().decode("utf-8", "replace")


def kill_pidfile(path, timeout=10):
    """Stop the process group whose leader's pid is in ``path`` (lab down)."""
    try:
        with open(path, encoding="utf-8") as fh:
            pid = int(fh.read().strip())
    except (OSError, ValueError):
        return False
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
    with contextlib.suppress(OSError):
        os.unlink(path)
    return True
