"""
The PostgreSQL stand-in of the lab's Nomad (lab/sim/nomad_tasks.py): its data directory and
the client programs the edge's backup and restore jobs run against it, ``pg_dump`` and
``pg_restore``, with the semantics hecate relies on.

Data directory (``PGDATA``), as the ``postgres`` task runner's "initdb" leaves it::

    PG_VERSION           the server's major version (the image tag's)
    lab-initdb.json      role, database and password hash it was initialised with
    base/<database>/     one file per relation of the database ("a table")

The Authentik simulator run by the Nomad job keeps its data as the relation
``authentik_state`` of its database (``base/<AUTHENTIK_POSTGRESQL__NAME>/``): what a real
Authentik keeps in PostgreSQL lives and dies with the PostgreSQL stand-in's data, is dumped by
``pg_dump`` and comes back with ``pg_restore``.

The programs (run by a task's shell through small ``pg_dump``/``pg_restore`` shims on its
``PATH``, ``python -m lab.sim.pg pg_dump ...``) take the options and libpq environment
variables hecate's job files use (PostgreSQL's docs, "pg_dump", "pg_restore", "Environment
Variables"): ``PGHOST``/``-h``, ``PGPORT``/``-p``, ``PGUSER``/``-U``, ``PGPASSWORD``,
``PGDATABASE``/``-d``. They reach the server over TCP at host:port (``Connection refused``
when nothing listens) and find the stand-in serving that address in ``LAB_PG_SERVERS``
(``{"host:port": pgdata}``, given by the simulator); the role, its password and the database
must be those of initdb (libpq's FATAL messages otherwise).

- ``pg_dump --format=custom [--file=F] [dbname]``: an archive of every relation, starting with
  the custom format's magic ``PGDMP`` (the stand-in's body is JSON, not PostgreSQL's binary
  TOC: only this pg_restore reads it). Other formats are refused (hecate writes custom only).
- ``pg_restore --dbname=D [--clean [--if-exists]] [--single-transaction] [--exit-on-error]
  [--no-owner] FILE``: a file without the magic is "not a valid archive"; each relation is
  dropped first with ``--clean`` (a missing one is an error unless ``--if-exists``) and
  created from the archive (one that exists is an error: "already exists"). Errors are
  reported and skipped, the exit status is 1 ("errors ignored on restore: N");
  ``--exit-on-error`` stops at the first; ``--single-transaction`` (implies it) applies
  nothing unless everything succeeds. ``--if-exists`` without ``--clean`` is refused.
"""

import base64
import json
import os
import socket
import sys

MAGIC = b"PGDMP"
LAB_FORMAT = b"hecate-lab-custom 1\n"
INITDB = "lab-initdb.json"
AUTHENTIK_RELATION = "authentik_state"


class PgError(Exception):
    """What the program prints before it exits with status 1."""


# -- the data directory ----------------------------------------------------------------------------
def database_dir(pgdata, database):
    """The directory of ``database``'s relations."""
    return os.path.join(pgdata, "base", database)


def relation_path(pgdata, database, relation):
    return os.path.join(database_dir(pgdata, database), relation)


def relations(pgdata, database):
    """``{relation: bytes}`` of a database."""
    path = database_dir(pgdata, database)
    out = {}
    for name in sorted(os.listdir(path)):
        full = os.path.join(path, name)
        if os.path.isfile(full) and not name.endswith(".tmp"):
            with open(full, "rb") as fh:
                out[name] = fh.read()
    return out


def read_initdb(pgdata):
    try:
        with open(os.path.join(pgdata, INITDB), encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


def _sha256(value):
    import hashlib  # pylint: disable=import-outside-toplevel

    return hashlib.sha256((value or "").encode()).hexdigest()


# -- connecting (libpq's environment and messages) --------------------------------------------------
class Conn:
    """A "connection": the stand-in's data directory and the database, once authenticated."""

    def __init__(self, pgdata, database):
        self.pgdata, self.database = pgdata, database


def connect(opts, env):
    host = opts.get("host") or env.get("PGHOST")
    port = str(opts.get("port") or env.get("PGPORT") or 5432)
    user = opts.get("username") or env.get("PGUSER") or "root"
    database = opts.get("dbname") or env.get("PGDATABASE") or user
    if not host or host.startswith("/"):
        sock = f"{host or '/var/run/postgresql'}/.s.PGSQL.{port}"
        raise PgError(f'connection to server on socket "{sock}" failed: No such file or directory\n'
                      "\tIs the server running locally and accepting connections on that socket?")
    where = f'connection to server at "{host}", port {port} failed'
    try:
        with socket.create_connection((host, int(port)), timeout=3):
            pass
    except (OSError, ValueError):
        raise PgError(f"{where}: Connection refused\n\tIs the server running on that host and accepting "
                      "TCP/IP connections?") from None
    servers = json.loads(env.get("LAB_PG_SERVERS") or "{}")
    pgdata = servers.get(f"{host}:{port}")
    initdb = read_initdb(pgdata) if pgdata else None
    if initdb is None:
        raise PgError(f"{where}: lab: what listens there is not a PostgreSQL stand-in of this lab")
    if user != initdb.get("user"):
        raise PgError(f'{where}: FATAL:  role "{user}" does not exist')
    if _sha256(env.get("PGPASSWORD")) != initdb.get("password_sha256"):
        raise PgError(f'{where}: FATAL:  password authentication failed for user "{user}"')
    if not os.path.isdir(database_dir(pgdata, database)):
        raise PgError(f'{where}: FATAL:  database "{database}" does not exist')
    return Conn(pgdata, database)


# -- options -----------------------------------------------------------------------------------------
def _parse(prog, argv, flags, valued, short):
    """getopt_long as PostgreSQL's programs use it: ``--opt=v``, ``--opt v``, ``-xv``, ``-x v``."""
    opts, args = {}, []
    i = 0
    while i < len(argv):
        arg = argv[i]
        name = value = None
        if arg.startswith("--"):
            name, eq, value = arg[2:].partition("=")
            if not eq:
                value = None
        elif arg.startswith("-") and len(arg) > 1:
            letter = arg[1]
            if letter not in short:
                raise PgError(f"invalid option -- '{letter}'\nTry \"{prog} --help\" for more information.")
            name = short[letter]
            value = arg[2:] or None
        else:
            args.append(arg)
            i += 1
            continue
        if name in flags:
            if value is not None and arg.startswith("--"):
                raise PgError(f"option '--{name}' doesn't allow an argument")
            opts[name] = True
        elif name in valued:
            if value is None:
                i += 1
                if i >= len(argv):
                    raise PgError(f"option requires an argument -- '{name}'")
                value = argv[i]
            opts[name] = value
        else:
            raise PgError(f"unrecognized option '{arg}'\nTry \"{prog} --help\" for more information.")
        i += 1
    return opts, args


CONNECTION = ("host", "port", "username", "dbname")
CONN_SHORT = {"h": "host", "p": "port", "U": "username", "d": "dbname", "w": "no-password", "W": "password"}


# -- pg_dump ----------------------------------------------------------------------------------------------
def pg_dump(argv, env, stdout):
    short = dict(CONN_SHORT, F="format", f="file", v="verbose", Z="compress")
    opts, args = _parse("pg_dump", argv, ("verbose", "no-password", "password", "no-owner"),
                        CONNECTION + ("format", "file", "compress"), short)
    if args:
        opts.setdefault("dbname", args.pop(0))
    if args:
        raise PgError(f'too many command-line arguments (first is "{args[0]}")')
    fmt = (opts.get("format") or "p").lower()
    if fmt not in ("c", "custom"):
        raise PgError(f"lab: the PostgreSQL stand-in's pg_dump writes the custom format only (--format=custom), "
                      f"not {opts.get('format') or 'plain'!r}")
    conn = connect(opts, env)
    body = {"database": conn.database,
            "server_version": _server_version(conn.pgdata),
            "relations": {name: base64.b64encode(data).decode() for name, data in
                          relations(conn.pgdata, conn.database).items()}}
    data = MAGIC + LAB_FORMAT + json.dumps(body, sort_keys=True).encode()
    if opts.get("file"):
        try:
            with open(opts["file"], "wb") as fh:
                fh.write(data)
        except OSError as exc:
            raise PgError(f'could not open output file "{opts["file"]}": {exc.strerror}') from None
    else:
        stdout.write(data)
    return 0


def _server_version(pgdata):
    try:
        with open(os.path.join(pgdata, "PG_VERSION"), encoding="utf-8") as fh:
            return fh.read().strip()
    except OSError:
        return "?"


# -- pg_restore -----------------------------------------------------------------------------------------
def read_archive(path, stdin=None):
    try:
        if path:
            with open(path, "rb") as fh:
                data = fh.read()
        else:
            data = stdin.read()
    except OSError as exc:
        raise PgError(f'could not open input file "{path}": {exc.strerror}') from None
    if not data.startswith(MAGIC):
        raise PgError("input file does not appear to be a valid archive")
    if not data[len(MAGIC):].startswith(LAB_FORMAT):
        raise PgError("lab: an archive of a real pg_dump: the PostgreSQL stand-in reads its own dumps only")
    body = json.loads(data[len(MAGIC) + len(LAB_FORMAT):])
    return {name: base64.b64decode(text) for name, text in body["relations"].items()}


def pg_restore(argv, env, stdin, stderr):
    short = dict(CONN_SHORT, c="clean", e="exit-on-error", O="no-owner", v="verbose", F="format")
    short["1"] = "single-transaction"
    opts, args = _parse("pg_restore", argv, ("clean", "if-exists", "single-transaction", "exit-on-error",
                                             "no-owner", "verbose", "no-password", "password"),
                        CONNECTION + ("format",), short)
    if len(args) > 1:
        raise PgError(f'too many command-line arguments (first is "{args[1]}")')
    if opts.get("if-exists") and not opts.get("clean"):
        raise PgError("option --if-exists requires option -c/--clean")
    if not opts.get("dbname"):
        raise PgError("lab: the PostgreSQL stand-in's pg_restore restores into a database only (-d/--dbname)")
    archive = read_archive(args[0] if args else None, stdin)
    conn = connect(opts, env)
    atomic = bool(opts.get("single-transaction"))
    stop_at_first = atomic or bool(opts.get("exit-on-error"))
    present = set(relations(conn.pgdata, conn.database))
    errors, drops, writes = [], [], {}
    for name in sorted(archive):
        problem = None
        if opts.get("clean"):
            if name in present:
                drops.append(name)
                present.discard(name)
            elif not opts.get("if-exists"):
                problem = f'relation "{name}" does not exist'
        if problem is None and name in present:
            problem = f'relation "{name}" already exists'
        if problem is not None:
            errors.append(f"could not execute query: ERROR:  {problem}")
            stderr.write(f"pg_restore: error: {errors[-1]}\n")
            if stop_at_first:
                break
            continue
        writes[name] = archive[name]
    if errors and atomic:
        return 1  # the transaction rolled back: nothing changed
    for name in drops:
        os.unlink(relation_path(conn.pgdata, conn.database, name))
    for name, data in writes.items():
        path = relation_path(conn.pgdata, conn.database, name)
        tmp = path + ".tmp"
        with open(tmp, "wb") as fh:
            os.fchmod(fh.fileno(), 0o600)
            fh.write(data)
        os.replace(tmp, path)
    if errors:
        if not stop_at_first:
            stderr.write(f"pg_restore: warning: errors ignored on restore: {len(errors)}\n")
        return 1
    return 0


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    prog = argv.pop(0) if argv else ""
    try:
        if prog == "pg_dump":
            return pg_dump(argv, os.environ, sys.stdout.buffer)
        if prog == "pg_restore":
            return pg_restore(argv, os.environ, sys.stdin.buffer, sys.stderr)
        raise PgError(f"lab: no such program {prog!r} (pg_dump, pg_restore)")
    except PgError as exc:
        sys.stderr.write(f"{prog}: error: {exc}\n")
        return 1


if __name__ == "__main__":
    sys.exit(main())
