"""
What the Nomad simulator's client does for a task beyond its state machine: render its
``template`` blocks (the consul-template subset hecate's job files use) and, for the tasks
the lab stands in with real parts, run them.

Templates, as Nomad's template runner (client/allocrunner/taskrunner/template) does:
``[[ with secret "secret/data/x" ]]`` reads Vault with the client's token (a task without a
``vault`` block has none), ``[[ range service "name" ]]`` lists the service's passing
instances from Consul (``.Address``, ``.Port``), ``[[ index .Data.data "key" ]]`` /
``[[ .Data.data.key ]]``, ``[[ env "NAME" ]]``, trim markers ``[[-``/``-]]``, custom
delimiters. A secret that does not exist blocks the task, with the template runner's own
event text (``Missing: vault.read(secret/data/x)``); an action outside the subset is an
error, never silently rendered. ``env = true`` templates are read as Nomad's env files
(``KEY=value`` lines, quotes removed).

Runners (``task_runners`` option, matched by image glob and optionally the args): a task
whose image matches one runs the real thing instead of the in-process stand-in:

- ``caddy``: the real Caddy binary with the task's own ``command``/``args`` (``caddy run
  --resume --config /local/caddy.json``), paths of the container (``/local``,
  ``/secrets``, volume mount destinations, the image's ``XDG_*`` env) mapped to the
  task and host-volume directories;
- ``authentik``: the Authentik simulator (``python -m lab.sim authentik``) on the task's
  port for container port 9000, bootstrapped from the task's environment as Authentik's
  first start is (``AUTHENTIK_BOOTSTRAP_TOKEN`` -> its API token, ``..._PASSWORD``,
  ``..._EMAIL``), ready only while its PostgreSQL (and Redis before 2025.10) accept
  connections, its data kept next to PostgreSQL's data (so a restart keeps it, and the
  bootstrap is not read again); refuses to start without ``AUTHENTIK_SECRET_KEY`` or the
  database settings, as Authentik does;
- ``postgres``: the image's entrypoint checks (``POSTGRES_PASSWORD`` required on an empty
  data directory), an "initdb" that marks ``PGDATA`` and makes its databases (lab/sim/pg.py:
  ``base/<database>/``, where Authentik's simulator keeps its data); the service port's
  stand-in answers its TCP check;
- ``sh``: a task that runs ``/bin/sh -c <script>`` (the backup and restore jobs' tasks) runs
  that script with the host's ``/bin/sh``: Nomad's interpolation applied, the container's
  paths in it mapped (a read-write volume mount is the host volume, a read-only one a copy,
  ``/alloc``/``/local``/``/secrets`` the allocation's and task's directories), no host
  environment, and the lab's stand-ins of the image's programs the host lacks first on
  ``PATH`` (``programs``: ``pg_dump``, ``pg_restore`` of lab/sim/pg.py, which reach the
  PostgreSQL stand-in serving ``PGHOST:PGPORT``). Its exit status is the task's.
"""

import fnmatch
import json
import os
import re
import shlex
import socket
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request

try:
    from lab.sim import pg
except ImportError:  # pragma: no cover
    import pg  # type: ignore

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class TemplateMissing(Exception):
    """A dependency has no data yet (the task waits, as consul-template blocks)."""


class TemplateError(Exception):
    """The template cannot be rendered (Nomad: ``Template failed: ...``, the task fails)."""


class RunnerError(Exception):
    """The task's program refuses to start (its message is the task's driver error)."""


# -- templates ---------------------------------------------------------------------------------
def _tokens(text, left, right):
    """Text and action tokens, with Go's trim markers applied."""
    out = []
    pos = 0
    pattern = re.compile(re.escape(left) + r"(-\s)?(.*?)(\s-)?" + re.escape(right), re.S)
    for match in pattern.finditer(text):
        chunk = text[pos:match.start()]
        if match.group(1) and out is not None:
            chunk = chunk.rstrip()
        out.append(("text", chunk))
        out.append(("action", match.group(2).strip(), bool(match.group(3))))
        pos = match.end()
    out.append(("text", text[pos:]))
    # a right trim marker eats the whitespace after it
    for i, tok in enumerate(out):
        if tok[0] == "action" and tok[2] and i + 1 < len(out):
            out[i + 1] = ("text", out[i + 1][1].lstrip())
    return out


def _parse(tokens, pos=0, stop=False):
    nodes = []
    while pos < len(tokens):
        tok = tokens[pos]
        if tok[0] == "text":
            nodes.append(("text", tok[1]))
            pos += 1
            continue
        action = tok[1]
        if action == "end":
            if not stop:
                raise TemplateError("unexpected {{end}}")
            return nodes, pos + 1
        block = re.fullmatch(r"(with|range)\s+(.*)", action)
        if block:
            body, pos = _parse(tokens, pos + 1, stop=True)
            nodes.append(("block", block.group(1), block.group(2).strip(), body))
            continue
        nodes.append(("expr", action))
        pos += 1
    if stop:
        raise TemplateError("unexpected EOF: a with/range block has no {{end}}")
    return nodes, pos


def _string_arg(expr, func):
    match = re.fullmatch(func + r'\s+"([^"]*)"', expr)
    if not match:
        raise TemplateError(f"function {expr.split()[0]!r} is not supported by the lab's template runner: {expr}")
    return match.group(1)


def _field(dot, path, expr):
    cur = dot
    for part in [p for p in path.split(".") if p]:
        if not isinstance(cur, dict) or part not in cur:
            return ""  # Go's missingkey=default: "<no value>"; hecate's templates never rely on it
        cur = cur[part]
    return cur


def _eval(expr, dot, lookup, env):
    if expr.startswith("."):
        return _field(dot, expr, expr)
    match = re.fullmatch(r'index\s+(\.\S*)\s+"([^"]*)"', expr)
    if match:
        container = _field(dot, match.group(1), expr)
        if not isinstance(container, dict) or match.group(2) not in container:
            raise TemplateError(f"error calling index: map has no entry for key {match.group(2)!r}")
        return container[match.group(2)]
    if expr.startswith("secret "):
        return lookup("secret", _string_arg(expr, "secret"))
    if expr.startswith("service "):
        return lookup("service", _string_arg(expr, "service"))
    if expr.startswith("env "):
        return env.get(_string_arg(expr, "env"), "")
    raise TemplateError(f"action not supported by the lab's template runner: {{{{{expr}}}}}")


def _render(nodes, dot, lookup, env):
    out = []
    for node in nodes:
        if node[0] == "text":
            out.append(node[1])
        elif node[0] == "expr":
            value = _eval(node[1], dot, lookup, env)
            out.append(str(value) if not isinstance(value, (dict, list)) else json.dumps(value))
        else:
            _, kind, expr, body = node
            value = _eval(expr, dot, lookup, env)
            if kind == "with":
                if value:
                    out.append(_render(body, value, lookup, env))
            else:
                for item in value or []:
                    out.append(_render(body, item, lookup, env))
    return "".join(out)


def render(text, lookup, left="{{", right="}}", env=None):
    """``text`` rendered; ``lookup(kind, arg)`` answers ``secret``/``service``."""
    nodes, _ = _parse(_tokens(text, left or "{{", right or "}}"))
    return _render(nodes, None, lookup, env or {})


def parse_env_file(text):
    """Nomad's env template format (go-envparse): ``KEY=value``, quotes removed, # comments."""
    out = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[7:].lstrip()
        key, sep, value = line.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.]*", key.strip()):
            raise TemplateError(f"invalid line in env template: {line.split('=')[0][:40]!r}")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        out[key.strip()] = value
    return out


class Lookups:
    """Vault and Consul reads of one task's templates (the client's tokens)."""

    def __init__(self, vault_url=None, vault_token=None, consul_url=None, consul_token=None, vault=True):
        self.vault_url, self.vault_token = vault_url, vault_token
        self.consul_url, self.consul_token = consul_url, consul_token
        self.vault = vault  # whether the task has a vault block

    def __call__(self, kind, arg):
        if kind == "secret":
            return self.secret(arg)
        return self.service(arg)

    @staticmethod
    def _get(url, headers):
        req = urllib.request.Request(url, headers=headers)
        with urllib.request.urlopen(req, timeout=5) as resp:  # noqa: S310 (loopback lab)
            return json.loads(resp.read() or b"null")

    def secret(self, path):
        if not self.vault:
            raise TemplateError(f"vault.read({path}): the task has no vault block, so no Vault token")
        if not self.vault_url:
            raise TemplateError(f"vault.read({path}): the client has no Vault configured")
        try:
            data = self._get(f"{self.vault_url.rstrip('/')}/v1/{path}", {"X-Vault-Token": self.vault_token or ""})
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                raise TemplateMissing(f"vault.read({path})") from None
            raise TemplateError(f"vault.read({path}): Vault answered {exc.code}") from None
        except OSError as exc:
            raise TemplateMissing(f"vault.read({path}) ({exc})") from None
        # consul-template's secret: .Data is the response's data (KV v2: .Data.data.<key>)
        return {"Data": (data or {}).get("data")}

    def service(self, name):
        if not self.consul_url:
            raise TemplateError(f"health.service({name}): the client has no Consul configured")
        url = f"{self.consul_url.rstrip('/')}/v1/health/service/{urllib.parse.quote(name)}?passing=1"
        try:
            entries = self._get(url, {"X-Consul-Token": self.consul_token or ""})
        except (OSError, urllib.error.HTTPError) as exc:
            raise TemplateMissing(f"health.service({name}) ({exc})") from None
        out = []
        for entry in entries or []:
            svc = entry.get("Service") or {}
            out.append({"Name": svc.get("Service"), "ID": svc.get("ID"), "Port": svc.get("Port"),
                        "Address": svc.get("Address") or (entry.get("Node") or {}).get("Address"),
                        "Tags": svc.get("Tags") or []})
        return out


def render_task_templates(task, task_dir, lookups, env):
    """
    Render every template of ``task`` into ``task_dir`` (``local/``, ``secrets/``); return the
    environment the ``env = true`` ones give. Raises :class:`TemplateMissing` /
    :class:`TemplateError`.
    """
    out_env, _ = render_task_templates_full(task, task_dir, lookups, env)
    return out_env


def render_task_templates_full(task, task_dir, lookups, env):
    """:func:`render_task_templates` plus ``{destination: (change mode, text)}`` of every template."""
    out_env = {}
    missing = []
    rendered = []
    for tmpl in task.get("Templates") or []:
        if tmpl.get("SourcePath") and not tmpl.get("EmbeddedTmpl"):
            raise TemplateError(f"template source {tmpl['SourcePath']}: only embedded templates in the lab")
        try:
            text = render(tmpl.get("EmbeddedTmpl") or "", lookups, tmpl.get("LeftDelim"), tmpl.get("RightDelim"),
                          env)
        except TemplateMissing as exc:
            missing.append(str(exc))
            continue
        rendered.append((tmpl, text))
    if missing:
        raise TemplateMissing(", ".join(missing))
    for tmpl, text in rendered:
        dest = os.path.normpath(os.path.join(task_dir, tmpl.get("DestPath") or "local/template"))
        if not dest.startswith(os.path.abspath(task_dir)):
            raise TemplateError(f"template destination {tmpl.get('DestPath')!r} escapes the task directory")
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        with open(dest, "w", encoding="utf-8") as fh:
            os.fchmod(fh.fileno(), 0o600)
            fh.write(text)
        if tmpl.get("Envvars"):
            out_env.update(parse_env_file(text))
    texts = {tmpl.get("DestPath"): (tmpl.get("ChangeMode") or "restart", text) for tmpl, text in rendered}
    return out_env, texts


# -- runners ---------------------------------------------------------------------------------------
def runner_for(task, runners):
    """The runner spec (from the ``task_runners`` option) that stands in for ``task``, or None."""
    config = task.get("Config") or {}
    image = str(config.get("image", ""))
    for spec in runners or []:
        if not fnmatch.fnmatch(image, spec.get("image", "")):
            continue
        if spec.get("args") is not None and list(config.get("args") or []) != list(spec["args"]):
            continue
        if "command" in spec and config.get("command") != spec["command"]:
            continue  # e.g. the image run with another command (a backup task's shell)
        return spec
    return None


def interpolate(value, nomad_env, node_vars=None):
    """
    Nomad's runtime interpolation in a task's env/config strings (client/taskenv/env.go
    ReplaceEnv): ``${NOMAD_...}`` variables and the node's (``${node.unique.name}``,
    ``${attr.x}``, ``${meta.x}``); anything else is left as it is, as Nomad leaves it.
    """
    known = dict(node_vars or {})
    known.update(nomad_env)
    return re.sub(r"\$\{([A-Za-z0-9_.\-]+)\}", lambda m: str(known.get(m.group(1), m.group(0))), value)


class Paths:
    """Container paths of a task mapped to the lab's directories."""

    def __init__(self, task_dir, alloc_dir, mounts, read_only=()):
        self.map = {"/local": os.path.join(task_dir, "local"), "/secrets": os.path.join(task_dir, "secrets"),
                    "/alloc": alloc_dir}
        self.map.update(mounts)
        self.mounts = dict(mounts)
        self.read_only = set(read_only)

    def host(self, path):
        for dest in sorted(self.map, key=len, reverse=True):
            if path == dest or path.startswith(dest.rstrip("/") + "/"):
                return self.map[dest] + path[len(dest.rstrip("/")):]
        return path

    def translate(self, value):
        return self.host(value) if isinstance(value, str) and value.startswith("/") else value

    def rewrite(self, text):
        """Every container path in ``text`` (a shell script) that starts with a mapped
        directory, as the host's path; one pass, so a host path is never mapped again."""
        dests = sorted(self.map, key=len, reverse=True)
        pattern = re.compile(r"(?<![\w.\-/~$])(" + "|".join(re.escape(d.rstrip("/")) for d in dests)
                             + r")(?=/|$|[^\w.\-])")
        return pattern.sub(lambda m: self.map.get(m.group(1)) or self.map[m.group(1) + "/"], text)


class Handle:
    """A running stand-in: a process (``proc``) or nothing (in-process)."""

    def __init__(self, proc=None, log_path=None, description=""):
        self.proc, self.log_path, self.description = proc, log_path, description

    def poll(self):
        return None if self.proc is None else self.proc.poll()

    def exit_message(self):
        text = ""
        if self.log_path and os.path.exists(self.log_path):
            with open(self.log_path, encoding="utf-8", errors="replace") as fh:
                text = fh.read()[-400:].strip()
        return f"{self.description} exited with {self.poll()}" + (f": {text.splitlines()[-1]}" if text else "")

    def stop(self, timeout=10):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout)


class FailedHandle(Handle):
    """A program that could not be started at all (exec failed)."""

    def __init__(self, message):
        super().__init__(None, None, message)

    def poll(self):
        return 127

    def exit_message(self):
        return self.description


def _spawn(argv, env, cwd, log_path, description):
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    with open(log_path, "ab") as log:
        # same process group as the simulator: stopping the simulator stops its tasks
        proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603
    return Handle(proc, log_path, description)


def check(kind, ctx):
    """Refuse to start as the real program would (``RunnerError``), before anything runs."""
    env = ctx["env"]
    if kind == "authentik":
        if not env.get("AUTHENTIK_SECRET_KEY"):
            raise RunnerError("authentik: AUTHENTIK_SECRET_KEY is not set (\"Secret key missing\")")
        for key in ("HOST", "NAME", "USER", "PASSWORD"):
            if not env.get(f"AUTHENTIK_POSTGRESQL__{key}"):
                raise RunnerError(f"authentik: AUTHENTIK_POSTGRESQL__{key} is not set: it cannot reach its database")
        release = authentik_release(ctx["image"])
        if release is None:
            raise RunnerError(f"lab: no Authentik simulator for image {ctx['image']!r}")
        if release < (2025, 10) and not env.get("AUTHENTIK_REDIS__HOST"):
            raise RunnerError(f"authentik {'.'.join(map(str, release))}: AUTHENTIK_REDIS__HOST is not set "
                              "(releases before 2025.10 need Redis)")
        if ctx.get("port") is None:
            raise RunnerError("authentik: no port for container port 9000")
    elif kind == "postgres":
        pgdata = ctx["paths"].host(env.get("PGDATA") or "/var/lib/postgresql/data")
        fresh = not os.path.exists(os.path.join(pgdata, "PG_VERSION"))
        if fresh and not env.get("POSTGRES_PASSWORD"):
            raise RunnerError("Database is uninitialized and superuser password is not specified. "
                              "You must specify POSTGRES_PASSWORD to a non-empty value for the superuser.")
    elif kind == "caddy":
        argv = [ctx["config"].get("command") or "caddy"] + list(ctx["config"].get("args") or [])
        if os.path.basename(argv[0]) != "caddy":
            raise RunnerError(f"lab: the caddy runner runs the caddy binary, not {argv[0]!r}")
    elif kind == "sh":
        _shell_script(ctx)
    else:
        raise RunnerError(f"lab: unknown task runner {kind!r}")


def _shell_script(ctx):
    """The script of a ``/bin/sh -c <script>`` task, or :class:`RunnerError`."""
    config = ctx["config"]
    command = config.get("command") or ""
    args = list(config.get("args") or [])
    if os.path.basename(command) != "sh" or len(args) != 2 or args[0] != "-c":
        raise RunnerError(f"lab: the sh runner runs `/bin/sh -c <script>`, not {shlex.join([command] + args)!r}")
    return args[1]


# What the sh runner gives a container: no host environment (the image's own, the task's), UTC
# as in an image without TZ, the image's programs from the host, plus the lab's stand-ins for
# those the host does not have (``programs`` of the runner spec: pg_dump, pg_restore).
SHELL_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
STAND_IN_PROGRAMS = {"pg_dump": "lab.sim.pg", "pg_restore": "lab.sim.pg"}


def _start_shell(ctx, log_path):
    """
    ``/bin/sh -c <script>`` as the container would run it, on the host: Nomad's runtime
    interpolation in the script (``${NOMAD_...}``, ``${node...}``), the container's paths in it
    (``/local``, ``/secrets``, ``/alloc``, volume mount destinations) mapped to the task's and
    host volumes' directories, the task's environment (paths in values mapped too), and the
    lab's stand-ins of the image's programs first on ``PATH``. The process's exit status is the
    task's.
    """
    env, task_dir = ctx["env"], ctx["task_dir"]
    paths = _container_root(ctx["paths"], os.path.join(task_dir, "lab-root"))
    script = interpolate(_shell_script(ctx), env, ctx.get("node_vars"))
    script = paths.rewrite(script)
    for sub in ("data", "logs", "tmp"):  # the shared alloc dir (client/allocdir)
        os.makedirs(os.path.join(paths.map["/alloc"], sub), exist_ok=True)
    bin_dir = os.path.join(task_dir, "lab-bin")
    os.makedirs(bin_dir, exist_ok=True)
    for program in ctx.get("programs") or ():
        module = STAND_IN_PROGRAMS.get(program)
        if module is None:
            raise RunnerError(f"lab: no stand-in for the program {program!r}")
        shim = os.path.join(bin_dir, program)
        with open(shim, "w", encoding="utf-8") as fh:
            fh.write(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} -m {module} {program} \"$@\"\n")
        os.chmod(shim, 0o755)
    penv = {"PATH": f"{bin_dir}:{SHELL_PATH}", "HOME": task_dir, "TZ": "UTC", "LANG": "C.UTF-8",
            "PYTHONPATH": REPO, "LAB_PG_SERVERS": json.dumps(ctx.get("pg_servers") or {})}
    for key, value in (ctx.get("image_env") or {}).items():
        penv[key] = paths.translate(value)
    penv.update({k: paths.translate(v) for k, v in env.items()})
    return _spawn(["/bin/sh", "-c", script], penv, task_dir, log_path, f"sh ({ctx['task']})")


def _container_root(paths, root):
    """
    The container's file tree for a script run on the host: a read-write volume mount is the
    host volume itself (what the task writes lands there); a read-only one is a copy of it
    made at start, under ``root`` (nothing the task does can change the volume); a directory
    that only holds mount points (``/src`` of ``/src/caddy-data``) is a directory under
    ``root``, so a script may ``cd`` there (``tar -C /src caddy-data``).
    """
    import shutil  # pylint: disable=import-outside-toplevel

    mapped = Paths.__new__(Paths)
    mapped.map = dict(paths.map)
    mapped.mounts, mapped.read_only = dict(paths.mounts), set(paths.read_only)
    if os.path.exists(root):
        shutil.rmtree(root)
    for dest, host in paths.mounts.items():
        os.makedirs(host, exist_ok=True)
        if dest in paths.read_only:
            copy = os.path.join(root, dest.strip("/"))
            shutil.copytree(host, copy, symlinks=True)
            mapped.map[dest] = copy
        parent = os.path.dirname(dest.rstrip("/"))
        while parent not in ("/", "") and parent not in paths.map:
            mapped.map[parent] = os.path.join(root, parent.strip("/"))
            os.makedirs(mapped.map[parent], exist_ok=True)
            parent = os.path.dirname(parent)
    for dest, host in paths.mounts.items():
        link = os.path.join(root, dest.strip("/"))
        if dest not in paths.read_only and os.path.isdir(os.path.dirname(link)) and not os.path.exists(link):
            os.symlink(host, link)  # reachable from its parent directory too (a relative path)
    return mapped


def authentik_release(image):
    from lab.sim import authentik as ak  # pylint: disable=import-outside-toplevel

    tag = image.rsplit(":", 1)[-1] if ":" in image.rsplit("/", 1)[-1] else ""
    match = re.match(r"^(\d{4})\.(\d{1,2})(\.|$)", tag)
    if not match or f"{int(match.group(1))}.{int(match.group(2))}" not in ak.RELEASES:
        return None
    return int(match.group(1)), int(match.group(2))


def start(kind, ctx):
    """Start the stand-in of ``kind`` for the task described by ``ctx``; a :class:`Handle`."""
    env, paths, task_dir = ctx["env"], ctx["paths"], ctx["task_dir"]
    log_path = os.path.join(task_dir, f"{ctx['task']}.log")
    if kind == "caddy":
        argv = [ctx["config"].get("command") or "caddy"] + list(ctx["config"].get("args") or [])
        argv = [ctx["caddy_binary"]] + [paths.translate(a) for a in argv[1:]]
        penv = dict(os.environ)
        for key, value in (ctx.get("image_env") or {}).items():
            penv[key] = paths.translate(value)
        penv.update({k: paths.translate(v) for k, v in env.items()})
        penv["HOME"] = task_dir
        return _spawn(argv, penv, task_dir, log_path, f"caddy ({shlex.join(argv[1:])})")
    if kind == "authentik":
        release = authentik_release(ctx["image"])
        deps = [[env["AUTHENTIK_POSTGRESQL__HOST"], int(env.get("AUTHENTIK_POSTGRESQL__PORT") or 5432)]]
        if release < (2025, 10):
            deps.append([env["AUTHENTIK_REDIS__HOST"], int(env.get("AUTHENTIK_REDIS__PORT") or 6379)])
        config = {
            "version": f"{release[0]}.{release[1]}",
            "strict": True,
            "token": None,
            "bootstrap": {"token": env.get("AUTHENTIK_BOOTSTRAP_TOKEN") or None,
                          "password": bool(env.get("AUTHENTIK_BOOTSTRAP_PASSWORD")),
                          "email": env.get("AUTHENTIK_BOOTSTRAP_EMAIL") or None},
            "ready_requires": deps,
        }
        if ctx.get("state_file"):
            config["state_file"] = ctx["state_file"]
        database = ctx.get("database")
        if database is not None:
            # the role, database and password PostgreSQL was initialised with: anything else
            # fails to log in, and Authentik never becomes ready
            config["database_ok"] = (database.get("user") == env.get("AUTHENTIK_POSTGRESQL__USER")
                                     and database.get("db") == env.get("AUTHENTIK_POSTGRESQL__NAME")
                                     and database.get("password_sha256")
                                     == _sha256(env.get("AUTHENTIK_POSTGRESQL__PASSWORD")))
        path = os.path.join(task_dir, "secrets", "authentik-sim.json")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as fh:
            os.fchmod(fh.fileno(), 0o600)
            json.dump(config, fh)
        argv = [sys.executable, "-m", "lab.sim", "authentik", "--host", ctx["address"], "--port", str(ctx["port"]),
                "--config", path]
        return _spawn(argv, dict(os.environ), REPO, log_path, f"authentik {release[0]}.{release[1]} (simulator)")
    if kind == "postgres":
        pgdata = paths.host(env.get("PGDATA") or "/var/lib/postgresql/data")
        os.makedirs(pgdata, exist_ok=True)
        marker = os.path.join(pgdata, "PG_VERSION")
        if not os.path.exists(marker):
            # initdb: POSTGRES_USER/_DB/_PASSWORD count on the first start only (the image's
            # docker-entrypoint.sh skips its init on a data directory that has PG_VERSION)
            tag = ctx["image"].rsplit(":", 1)[-1]
            user = env.get("POSTGRES_USER") or "postgres"
            database = env.get("POSTGRES_DB") or user
            with open(os.path.join(pgdata, INITDB), "w", encoding="utf-8") as fh:
                os.fchmod(fh.fileno(), 0o600)
                json.dump({"user": user, "db": database,
                           "password_sha256": _sha256(env.get("POSTGRES_PASSWORD"))}, fh)
            # initdb makes the "postgres" database; the entrypoint creates POSTGRES_DB
            for name in {"postgres", database}:
                os.makedirs(pg.database_dir(pgdata, name), exist_ok=True)
            with open(marker, "w", encoding="utf-8") as fh:
                fh.write((re.match(r"\d+", tag).group(0) if re.match(r"\d+", tag) else "lab") + "\n")
        return Handle(None, None, "postgres stand-in")
    if kind == "sh":
        return _start_shell(ctx, log_path)
    raise RunnerError(f"lab: unknown task runner {kind!r}")


INITDB = pg.INITDB


def _sha256(value):
    import hashlib  # pylint: disable=import-outside-toplevel

    return hashlib.sha256((value or "").encode()).hexdigest()


def read_initdb(pgdata):
    """What the PostgreSQL stand-in was initialised with (role, database, password hash), or None."""
    try:
        with open(os.path.join(pgdata, INITDB), encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


def tcp_open(host, port, timeout=1.0):
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            return True
    except OSError:
        return False
