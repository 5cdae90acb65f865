"""
The PostgreSQL stand-in's pg_dump and pg_restore (lab/sim/pg.py): what hecate's backup and
restore jobs rely on, as PostgreSQL documents it (pg_dump: "-F c ... custom-format archive
suitable for input into pg_restore"; pg_restore: "-c --clean: drop database objects before
recreating them", "--if-exists: use conditional commands (IF EXISTS) when cleaning; not valid
unless --clean is also specified", "-1 --single-transaction: ... either all the commands
complete successfully, or no changes are applied", "-e --exit-on-error", and without it "errors
ignored on restore"), libpq's environment variables and its connection failures.
"""

import io
import json
import os
import socket
import threading

import pytest

from lab.sim import nomad_tasks, pg

PASSWORD = "s3cret-pw"


@pytest.fixture
def server(tmp_path):
    """A PostgreSQL stand-in's data directory (initdb done) and a TCP listener standing for it."""
    pgdata = str(tmp_path / "pgdata")
    paths = nomad_tasks.Paths(str(tmp_path), str(tmp_path / "alloc"), {"/var/lib/postgresql/data": pgdata})
    nomad_tasks.start("postgres", {"env": {"PGDATA": "/var/lib/postgresql/data", "POSTGRES_USER": "authentik",
                                           "POSTGRES_DB": "authentik", "POSTGRES_PASSWORD": PASSWORD},
                                   "image": "postgres:16-alpine", "paths": paths, "task_dir": str(tmp_path),
                                   "task": "postgres"})
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    stop = threading.Event()

    def accept():
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
                conn.close()
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    port = sock.getsockname()[1]
    env = {"PGHOST": "127.0.0.1", "PGPORT": str(port), "PGUSER": "authentik", "PGPASSWORD": PASSWORD,
           "PGDATABASE": "authentik", "LAB_PG_SERVERS": json.dumps({f"127.0.0.1:{port}": pgdata})}
    yield pgdata, env
    stop.set()
    thread.join(2)
    sock.close()


def run(prog, argv, env, stdin=b""):
    out, err = io.BytesIO(), io.StringIO()
    try:
        if prog == "pg_dump":
            code = pg.pg_dump(argv, env, out)
        else:
            code = pg.pg_restore(argv, env, io.BytesIO(stdin), err)
    except pg.PgError as exc:
        return 1, out.getvalue(), f"{prog}: error: {exc}\n"
    return code, out.getvalue(), err.getvalue()


def write(pgdata, name, data):
    with open(pg.relation_path(pgdata, "authentik", name), "wb") as fh:
        fh.write(data)


def read(pgdata, name):
    path = pg.relation_path(pgdata, "authentik", name)
    if not os.path.exists(path):
        return None
    with open(path, "rb") as fh:
        return fh.read()


def test_initdb_makes_the_databases(server):
    pgdata, _ = server
    assert os.path.isdir(pg.database_dir(pgdata, "authentik")) and os.path.isdir(pg.database_dir(pgdata, "postgres"))
    assert pg.read_initdb(pgdata)["user"] == "authentik"


def test_dump_in_custom_format_and_restore_with_clean(server, tmp_path):
    pgdata, env = server
    write(pgdata, "authentik_state", b'{"groups": ["backup-canary"]}')
    write(pgdata, "other", b"x")
    dump = str(tmp_path / "a.dump")
    code, _, err = run("pg_dump", ["--format=custom", f"--file={dump}"], env)
    assert code == 0, err
    with open(dump, "rb") as fh:
        assert fh.read(5) == b"PGDMP"
    write(pgdata, "authentik_state", b'{"groups": []}')
    os.unlink(pg.relation_path(pgdata, "authentik", "other"))
    write(pgdata, "not_in_the_dump", b"kept")
    code, _, err = run("pg_restore", ["--clean", "--if-exists", "--single-transaction", "--no-owner",
                                      "--dbname=authentik", dump], env)
    assert code == 0, err
    assert read(pgdata, "authentik_state") == b'{"groups": ["backup-canary"]}'
    assert read(pgdata, "other") == b"x"
    assert read(pgdata, "not_in_the_dump") == b"kept"  # --clean drops only what the dump holds


def test_restore_without_clean_reports_what_exists(server, tmp_path):
    pgdata, env = server
    write(pgdata, "authentik_state", b"old")
    dump = str(tmp_path / "a.dump")
    assert run("pg_dump", ["-Fc", "-f", dump], env)[0] == 0
    write(pgdata, "authentik_state", b"new")
    code, _, err = run("pg_restore", ["-d", "authentik", dump], env)
    assert code == 1
    assert 'pg_restore: error: could not execute query: ERROR:  relation "authentik_state" already exists' in err
    assert "pg_restore: warning: errors ignored on restore: 1" in err
    assert read(pgdata, "authentik_state") == b"new"
    # --clean without --if-exists: a relation that is not there is an error too
    os.unlink(pg.relation_path(pgdata, "authentik", "authentik_state"))
    code, _, err = run("pg_restore", ["-c", "-d", "authentik", dump], env)
    assert code == 1 and 'relation "authentik_state" does not exist' in err


def test_a_single_transaction_applies_nothing_unless_all_succeeds(server, tmp_path):
    pgdata, env = server
    write(pgdata, "a", b"1")
    write(pgdata, "b", b"2")
    dump = str(tmp_path / "a.dump")
    assert run("pg_dump", ["--format=custom", "--file", dump], env)[0] == 0
    os.unlink(pg.relation_path(pgdata, "authentik", "a"))
    write(pgdata, "b", b"changed")
    code, _, err = run("pg_restore", ["--clean", "--single-transaction", "-d", "authentik", dump], env)
    assert code == 1 and 'relation "a" does not exist' in err
    assert read(pgdata, "a") is None and read(pgdata, "b") == b"changed"  # rolled back


def test_connection_and_option_errors_as_libpq_and_the_programs_say_them(server, tmp_path):
    pgdata, env = server
    dump = str(tmp_path / "a.dump")
    code, _, err = run("pg_dump", ["--format=custom", f"--file={dump}"], dict(env, PGPASSWORD="wrong"))
    assert code == 1 and 'FATAL:  password authentication failed for user "authentik"' in err
    code, _, err = run("pg_dump", ["--format=custom", f"--file={dump}"], dict(env, PGDATABASE="nope"))
    assert 'FATAL:  database "nope" does not exist' in err
    code, _, err = run("pg_dump", ["--format=custom", f"--file={dump}"], dict(env, PGUSER="postgres"))
    assert 'FATAL:  role "postgres" does not exist' in err
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    code, _, err = run("pg_dump", ["-Fc"], dict(env, PGPORT=str(port)))
    assert f'connection to server at "127.0.0.1", port {port} failed: Connection refused' in err
    code, _, err = run("pg_dump", ["--format=plain"], env)
    assert code == 1 and "custom format only" in err
    code, _, err = run("pg_restore", ["--if-exists", "-d", "authentik", dump], env)
    assert "option --if-exists requires option -c/--clean" in err
    with open(tmp_path / "plain.sql", "w", encoding="utf-8") as fh:
        fh.write("CREATE TABLE x ();")
    code, _, err = run("pg_restore", ["-d", "authentik", str(tmp_path / "plain.sql")], env)
    assert code == 1 and "input file does not appear to be a valid archive" in err
    code, _, err = run("pg_restore", ["--bogus"], env)
    assert "unrecognized option '--bogus'" in err


def test_the_programs_run_as_commands(server, tmp_path):
    """As a task's shell runs them (the sh runner's shims): ``python -m lab.sim.pg pg_dump ...``."""
    import subprocess  # pylint: disable=import-outside-toplevel
    import sys  # pylint: disable=import-outside-toplevel

    pgdata, env = server
    write(pgdata, "authentik_state", b"row")
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    penv = dict(env, PYTHONPATH=repo, PATH=os.environ.get("PATH", ""))
    dump = str(tmp_path / "x.dump")
    done = subprocess.run([sys.executable, "-m", "lab.sim.pg", "pg_dump", "--format=custom", f"--file={dump}"],
                          env=penv, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    done = subprocess.run([sys.executable, "-m", "lab.sim.pg", "pg_restore", "-d", "authentik", dump],
                          env=dict(penv, PGPASSWORD="x"), capture_output=True, text=True, check=False)
    assert done.returncode == 1 and done.stderr.startswith("pg_restore: error: connection to server at")
