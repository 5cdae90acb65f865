"""
The edge's own Nomad jobs (issue 13): pillar checks, the job files rendered with Salt's Jinja
renderer from the lab's copy of the shipped pillar (lab/pillar/*.sls, prod overlay: the
operator's pillar/ is theirs to edit; tests/functional/test_operator_pillar.py validates it
through hecate.validate) and parsed into Nomad's API shape (lab/sim/nomad_jobspec.py),
checked against what the images expect. Sources:

- AUTHENTIK_INSTALL: docs.goauthentik.io/install-config/automated-install ("Automated
  install": AUTHENTIK_BOOTSTRAP_PASSWORD / _TOKEN / _EMAIL, "Only read on the first
  startup", set on the worker container);
- AUTHENTIK_MONITORING: docs.goauthentik.io/sys-mgmt/ops/monitoring (/-/health/live/,
  /-/health/ready/: 200 "if a PostgreSQL connection can be established");
- AUTHENTIK_2025_10: github.com/goauthentik/authentik website/docs/releases/2025/v2025.10.md
  ("Removed Redis dependency: authentik no longer uses Redis at all");
- AUTHENTIK_COMPOSE: the user's docker-compose (reference/hecate-framework.md), Authentik's
  own: `command: server` / `worker`, AUTHENTIK_SECRET_KEY, AUTHENTIK_POSTGRESQL__HOST/USER/
  NAME/PASSWORD, AUTHENTIK_REDIS__HOST, ports 9000/9443;
- CADDY_IMAGE: the official image sets XDG_CONFIG_HOME=/config, XDG_DATA_HOME=/data; `caddy
  run --resume` uses the autosave ($XDG_CONFIG_HOME/caddy/autosave.json) over --config.
"""

import copy
import importlib.util
import json
import os
import re
import tempfile
import time

import pytest
import salt.config
import salt.utils.templates

import hecate_edge_jobs
import hecate_schema
from lab.sim import nomad_jobspec as js
from lab.sim import nomad_tasks
from tests import pillar_files

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _merge(base, over):
    out = copy.deepcopy(base)
    for key, val in over.items():
        out[key] = _merge(out[key], val) if isinstance(val, dict) and isinstance(out.get(key), dict) else val
    return out


def shipped_pillar(env="prod"):
    """The lab's copy of the shipped pillar (lab/pillar/), compiled for ``env``."""
    return pillar_files.compiled(env)


def edge_module(pillar):
    spec = importlib.util.spec_from_file_location("hecate_edge_exec", os.path.join(REPO, "_modules", "hecate_edge.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.__pillar__ = pillar
    return mod


def render(name, pillar, context=None):
    """The job file as nomad_job.running renders it (Salt's Jinja, the hecate_edge functions)."""
    mod = edge_module(pillar)
    funcs = {f"hecate_edge.{n}": getattr(mod, n) for n in ("settings", "caddy_bootstrap", "jobs", "secrets")}
    opts = salt.config.minion_config(None)
    opts.update({"file_client": "local", "file_roots": {"base": [os.path.join(REPO, "salt")]},
                 "cachedir": tempfile.mkdtemp(prefix="hecate-render-")})
    with open(os.path.join(REPO, "salt", "hecate", "edge", "jobs", f"{name}.nomad.hcl.j2"), encoding="utf-8") as fh:
        text = fh.read()
    return salt.utils.templates.render_jinja_tmpl(text, dict(context or {}, opts=opts, saltenv="base", pillar=pillar,
                                                             salt=funcs))


def job(name, pillar=None):
    return js.parse(render(name, pillar or shipped_pillar()))


def group(job_, name):
    return next(g for g in job_["TaskGroups"] if g["Name"] == name)


def task(job_, group_name, name):
    return next(t for t in group(job_, group_name)["Tasks"] if t["Name"] == name)


def env_template(tsk):
    (tmpl,) = [t for t in tsk["Templates"] if t["Envvars"]]
    return tmpl["EmbeddedTmpl"]


def test_the_shipped_pillar_is_valid_and_deploys_the_edge():
    pillar = shipped_pillar()
    assert hecate_schema.validate(pillar, "prod") == []
    assert hecate_edge_jobs.deploy_order(pillar) == ["postgresql", "authentik", "caddy", "backup"]


@pytest.mark.parametrize("version,redis", [("2025.6.1", True), ("2025.8.4", True), ("2025.10.0", False),
                                           ("2025.10.3", False), ("2026.5.1", False)])
def test_redis_only_for_releases_that_use_it(version, redis):
    # AUTHENTIK_2025_10: 2025.10 removed Redis; every earlier release needs it
    pillar = shipped_pillar()
    pillar["hecate"]["authentik"]["version"] = version
    assert hecate_edge_jobs.needs_redis(version) is redis
    assert ("redis" in hecate_edge_jobs.deploy_order(pillar)) is redis
    server = task(job("authentik", pillar), "server", "server")
    assert ("AUTHENTIK_REDIS__HOST" in env_template(server)) is redis
    if redis:
        redis_job = job("redis", pillar)
        assert task(redis_job, "redis", "redis")["Config"]["image"] == "redis:7.4-alpine"
        (svc,) = group(redis_job, "redis")["Services"]
        assert svc["Name"] == "hecate-redis" and svc["Checks"][0]["Type"] == "tcp"


def test_authentik_job_server_and_worker():
    ak = job("authentik")
    assert ak["ID"] == "hecate-authentik"
    assert ak["Constraints"][0]["LTarget"] == "${node.class}" and ak["Constraints"][0]["RTarget"] == "hecate-edge"
    server, worker = task(ak, "server", "server"), task(ak, "worker", "worker")
    # AUTHENTIK_COMPOSE: the image's commands, at the pillar's release
    assert server["Config"]["image"] == worker["Config"]["image"] == "ghcr.io/goauthentik/server:2025.10.3"
    assert server["Config"]["args"] == ["server"] and worker["Config"]["args"] == ["worker"]
    for tsk in (server, worker):
        text = env_template(tsk)
        # secrets only through the Vault template, never in the job's env
        for name, key in (("AUTHENTIK_SECRET_KEY", "secret_key"), ("AUTHENTIK_POSTGRESQL__PASSWORD", "db_password"),
                          ("AUTHENTIK_BOOTSTRAP_PASSWORD", "bootstrap_password"),
                          ("AUTHENTIK_BOOTSTRAP_TOKEN", "api_token")):
            assert re.search(rf'^{name}="\[\[ with secret "secret/data/hecate/authentik" \]\]'
                             rf'\[\[ index \.Data\.data "{key}" \]\]\[\[ end \]\]"$', text, re.M), name
            assert name not in (tsk["Env"] or {})
        # the database found through Consul
        assert '[[ range service "hecate-postgresql" ]]AUTHENTIK_POSTGRESQL__HOST="[[ .Address ]]"' in text
        assert tsk["Env"]["AUTHENTIK_POSTGRESQL__NAME"] == "authentik"
        assert tsk["Env"]["AUTHENTIK_POSTGRESQL__USER"] == "authentik"
        assert tsk["Env"]["AUTHENTIK_BOOTSTRAP_EMAIL"] == "admin@cybermonkey.dev"
        assert tsk["Vault"]["Role"] == "hecate"
        assert next(t for t in tsk["Templates"] if t["Envvars"])["ChangeMode"] == "restart"
    # the server's ports: static, on the edge's loopback host network, Authentik's 9000/9443
    ports = {p["Label"]: p for p in group(ak, "server")["Networks"][0]["ReservedPorts"]}
    assert (ports["http"]["Value"], ports["http"]["To"], ports["http"]["HostNetwork"]) == (9000, 9000, "loopback")
    assert (ports["https"]["Value"], ports["https"]["To"]) == (9443, 9443)
    # AUTHENTIK_MONITORING: readiness means the database answers
    (svc,) = group(ak, "server")["Services"]
    assert svc["Name"] == "hecate-authentik-server"
    assert (svc["Checks"][0]["Type"], svc["Checks"][0]["Path"]) == ("http", "/-/health/ready/")
    assert group(ak, "worker")["Update"]["HealthCheck"] == "task_states"
    assert group(ak, "server")["Update"]["AutoRevert"] is True
    # hecate:resources:authentik
    assert (server["Resources"]["CPU"], server["Resources"]["MemoryMB"]) == (1000, 1024)


def test_postgresql_job():
    pg = job("postgresql")
    tsk = task(pg, "postgresql", "postgres")
    assert tsk["Config"]["image"] == "postgres:16-alpine"  # the user's compose: major 16, pinned
    assert tsk["Env"]["POSTGRES_USER"] == "authentik" and tsk["Env"]["POSTGRES_DB"] == "authentik"
    assert "POSTGRES_PASSWORD" not in tsk["Env"]
    assert 'POSTGRES_PASSWORD="[[ with secret "secret/data/hecate/authentik" ]]' in env_template(tsk)
    assert tsk["VolumeMounts"][0]["Destination"] == "/var/lib/postgresql/data"
    assert group(pg, "postgresql")["Volumes"]["data"]["Source"] == "hecate_postgres"
    (svc,) = group(pg, "postgresql")["Services"]
    assert (svc["Name"], svc["Checks"][0]["Type"]) == ("hecate-postgresql", "tcp")
    # hecate:deployment: interval/timeout of the checks
    assert svc["Checks"][0]["Interval"] == 30 * js.SEC and svc["Checks"][0]["Timeout"] == 5 * js.SEC


def test_caddy_job_runs_the_stock_binary_from_its_bootstrap():
    caddy = job("caddy")
    tsk = task(caddy, "caddy", "caddy")
    assert tsk["Config"]["image"] == "caddy:2.11"
    assert [tsk["Config"]["command"]] + tsk["Config"]["args"] == ["caddy", "run", "--resume", "--config",
                                                                  "/local/caddy.json"]
    assert tsk["Config"]["network_mode"] == "host"
    assert {m["Destination"] for m in tsk["VolumeMounts"]} == {"/data", "/config"}  # CADDY_IMAGE
    grp = group(caddy, "caddy")
    assert {v["Source"] for v in grp["Volumes"].values()} == {"hecate_caddy_data", "hecate_caddy_config"}
    assert {p["Label"]: p["Value"] for p in grp["Networks"][0]["ReservedPorts"]} == {"http": 80, "https": 443}
    (tmpl,) = tsk["Templates"]
    assert tmpl["DestPath"] == "local/caddy.json" and tmpl["ChangeMode"] == "noop"
    boot = json.loads(tmpl["EmbeddedTmpl"])
    assert boot["admin"] == {"listen": "127.0.0.1:2019", "config": {"persist": True}}  # never public
    assert boot["apps"]["http"]["servers"] == {"hecate": {"listen": [":443"], "routes": []}}
    assert grp["Services"][0]["PortLabel"] == "https"


def test_caddy_runs_once_on_every_edge():
    """One Caddy allocation per edge pillar lists (each serves the sites on its own ports), never two on one node."""
    (grp,) = job("caddy")["TaskGroups"]
    assert grp["Count"] == 1 and not grp["Constraints"]  # one edge: nothing to spread
    two = _merge(shipped_pillar(), {"hecate": {"members": {"hecate-edge": ["edge-1", "edge-2"]}}})
    grp = group(job("caddy", two), "caddy")
    assert grp["Count"] == 2
    assert [(c["Operand"], c["RTarget"]) for c in grp["Constraints"]] == [("distinct_hosts", "true")]
    given = _merge(two, {"hecate": {"jobs": {"caddy": {"count": 3}}}})
    assert group(job("caddy", given), "caddy")["Count"] == 3


def test_edges_given_by_glob_need_the_caddy_count():
    pillar = _merge(shipped_pillar(), {"hecate": {"members": {"hecate-edge": ["edge-*"]}}})
    errors = [e for e in hecate_schema.validate(pillar, "prod") if e.startswith("hecate:jobs:caddy:count")]
    assert errors == ["hecate:jobs:caddy:count: hecate:members:hecate-edge has the glob(s) 'edge-*', so hecate "
                      "cannot tell how many edges run Caddy: set hecate:jobs:caddy:count to the number of edges "
                      "(one Caddy allocation on each, never two on one node)"]
    pillar["hecate"].setdefault("jobs", {}).setdefault("caddy", {})["count"] = 2
    assert not [e for e in hecate_schema.validate(pillar, "prod") if e.startswith("hecate:jobs:caddy")]
    assert group(job("caddy", pillar), "caddy")["Count"] == 2


def test_backup_job_is_periodic_and_keeps_its_retention():
    backup = job("backup")
    assert backup["Type"] == "batch" and backup["Periodic"]["Specs"] == ["0 3 * * *"]
    grp = group(backup, "backup")
    db = task(backup, "backup", "authentik-database")
    assert db["Config"]["image"] == "postgres:16-alpine"  # pg_dump of the server's own major version
    assert 'pg_dump --format=custom --file="/backups/$f.part"' in db["Config"]["args"][1]
    assert 'PGPASSWORD="[[ with secret' in env_template(db)
    files = task(backup, "backup", "files")
    assert {m["Destination"] for m in files["VolumeMounts"]} == {"/backups", "/src/caddy-data", "/src/caddy-config",
                                                                 "/src/nginx"}
    assert grp["Volumes"]["caddy_data"]["ReadOnly"] is True
    # the poststop task records every archive of the run in Consul KV and applies the retention:
    # an archive older than retention_days goes with its record
    record = task(backup, "backup", "record")
    assert record["Lifecycle"] == {"Hook": "poststop", "Sidecar": False} and record["User"] == "root"
    script = record["Config"]["args"][1]
    assert '-X PUT --data-binary "@/alloc/data/record-$target.json" "$kv/$target/$id"' in script
    assert 'kv="$CONSUL_HTTP_ADDR/v1/kv/hecate/backups/prod"' in script
    assert "find /backups -maxdepth 1 -name 'authentik-*.dump' -mtime +30" in script
    assert 'consul -X DELETE "$kv/authentik_database/$id"' in script
    assert record["Templates"][0]["DestPath"] == "secrets/consul.headers"
    assert 'X-Consul-Token: [[ with secret "secret/data/hecate/backup" ]]' in record["Templates"][0]["EmbeddedTmpl"]
    assert "CONSUL_HTTP_TOKEN" not in json.dumps(record)  # the token only in the header file
    assert record["Config"]["network_mode"] == "host" and record["Env"]["HECATE_NODE"] == "${node.unique.name}"
    # no HCL interpolation sequence in the scripts: Nomad would read ${...} as a variable
    for tsk in (db, files, record):
        assert "${" not in tsk["Config"]["args"][1] and "%{" not in tsk["Config"]["args"][1]


def test_backups_need_a_consul_token_for_their_records():
    pillar = shipped_pillar()
    del pillar["hecate"]["backup"]["consul_token"]
    errors = hecate_schema.validate(pillar, "prod")
    assert any(e.startswith("hecate:backup:consul_token: required when backups are enabled") for e in errors), errors
    pillar["hecate"]["backup"]["consul_token"] = "a-token-value"
    errors = hecate_schema.validate(pillar, "prod")
    assert any(e.startswith("hecate:backup:consul_token: secret given as a") for e in errors), errors
    assert not any("a-token-value" in e for e in errors)
    pillar["hecate"]["backup"]["enabled"] = False
    del pillar["hecate"]["backup"]["consul_token"]
    assert hecate_schema.validate(pillar, "prod") == []


def test_the_restore_job_checks_the_archive_and_restores_with_clean():
    record = {"id": "20260101T030000Z", "file": "authentik-20260101T030000Z.dump", "sha256": "a" * 64,
              "node": "edge-1", "volume": "hecate_backups"}
    restore = js.parse(render("restore", shipped_pillar(), context={"restore": record}))
    assert restore["ID"] == "hecate-restore" and restore["Type"] == "batch" and restore["Periodic"] is None
    # a constraint without an operator parses as "=" (jobspec2/hcl_conversions.go decodeConstraint)
    assert {"LTarget": "${node.unique.name}", "RTarget": "edge-1", "Operand": "="} in restore["Constraints"]
    grp = group(restore, "restore")
    assert grp["Volumes"]["backups"] == {**grp["Volumes"]["backups"], "Source": "hecate_backups", "ReadOnly": True}
    (tsk,) = grp["Tasks"]
    assert tsk["Config"]["image"] == "postgres:16-alpine"
    script = tsk["Config"]["args"][1]
    assert f'echo "{"a" * 64}  $f" | sha256sum -c -' in script
    assert ('pg_restore --clean --if-exists --single-transaction --no-owner --dbname="$PGDATABASE" "$f"'
            in script)
    assert grp["RestartPolicy"]["Attempts"] == 0


def test_lab_edge_pillar_is_valid_and_keeps_caddy_on_loopback():
    from lab import topology  # pylint: disable=import-outside-toplevel

    ports = topology.edge_job_ports()
    pillar = _merge(shipped_pillar("lab"), topology.edge_jobs_pillar(dict(ports, vault_path="secret/hecate/edge-t")))
    pillar["hecate"]["members"] = topology.members()
    assert hecate_schema.validate(pillar, "lab") == []
    boot = hecate_edge_jobs.caddy_bootstrap(pillar)
    assert boot["admin"]["listen"] == f"127.0.0.1:{ports['caddy_admin']}"
    assert boot["apps"]["http"]["servers"]["hecate"] == {
        "listen": [f"127.0.0.1:{ports['caddy_http']}"], "routes": [], "automatic_https": {"disable": True}}
    route = next(r for r in pillar["hecate"]["reverse_proxy"]["caddy"]["routes"] if r["service"] == "authentik")
    assert route["backend"] == f"127.0.0.1:{ports['authentik_http']}"


# -- the user's pillar (reference/hecate-framework.md hecate.sls) -------------------------------------
def test_the_users_keys_are_accepted_with_vault_references_only():
    pillar = shipped_pillar()
    pillar["hecate"]["global"]["environment"] = "production"
    pillar["hecate"]["authentik"].update({
        "version": "2025.6.1",
        "database": {"name": "authentik", "user": "authentik",
                     "password": "{{ salt['vault.read_secret']('secret/hecate/authentik/db_password') }}"},
        "secret_key": "s3cret-literal-value",
    })
    pillar["hecate"]["deployment"]["strategy"] = "blue-green"
    errors = hecate_schema.validate(pillar, "prod")
    text = "\n".join(errors)
    assert "s3cret-literal-value" not in text  # never the value
    assert any(e.startswith("hecate:authentik:database:password: a {{ salt['vault.read_secret'](...) }} line "
                            "copies the secret into pillar") for e in errors), errors
    assert any(e.startswith("hecate:authentik:secret_key: secret given as a literal; use the Vault reference "
                            "{vault: <mount>/<path>, key: <key>}") for e in errors), errors
    assert ("hecate:global:environment: 'production' is not an environment name: hecate's environments are "
            "lab, dev, staging, prod") in text and "write environment: prod" in text
    assert any(e.startswith("hecate:deployment:strategy: 'blue-green' cannot update hecate-authentik: its server "
                            "holds static ports 9000/9443 on the edge's loopback") for e in errors), errors
    # the rest of the user's keys are accepted as written
    assert not [e for e in errors if "unknown key" in e], errors


def test_caddy_admin_url_must_be_the_jobs_loopback_listener():
    pillar = shipped_pillar()
    pillar["hecate"]["connections"]["caddy"]["admin_url"] = "http://10.0.0.5:2019"
    errors = hecate_schema.validate(pillar, "prod")
    assert any(e.startswith("hecate:connections:caddy:admin_url: 'http://10.0.0.5:2019': the Caddy job's admin "
                            "API listens on 127.0.0.1:2019 only") for e in errors), errors


def test_unpinned_images_and_missing_volumes_are_refused():
    pillar = shipped_pillar()
    pillar["hecate"]["reverse_proxy"]["caddy"]["version"] = "latest"
    pillar["hecate"]["jobs"] = {"postgresql": {"image": "postgres:alpine"}}
    del pillar["hecate"]["nomad"]["agent"]["host_volumes"]["hecate_caddy_config"]
    errors = hecate_schema.validate(pillar, "prod")
    assert "hecate:reverse_proxy:caddy:version: 'caddy:latest' is not pinned: use an explicit tag (':latest' " \
           "and untagged images are allowed only in lab, dev)" in errors
    assert any(e.startswith("hecate:jobs:postgresql:image: 'postgres:alpine': pin PostgreSQL's major version")
               for e in errors)
    assert any(e.startswith("hecate:nomad:agent:host_volumes:hecate_caddy_config: required host volume is missing")
               for e in errors)


def test_an_edge_run_by_hand_needs_no_authentik_secrets():
    pillar = shipped_pillar()
    pillar["hecate"]["nomad"]["jobs"] = []
    assert hecate_edge_jobs.generated_secrets(pillar) == {}
    assert hecate_edge_jobs.deploy_order(pillar) == []
    assert hecate_schema.validate(pillar, "prod") == []
    generated = hecate_edge_jobs.generated_secrets(shipped_pillar())
    assert {(s["path"], s["key"]) for s in generated.values()} == {
        ("secret/hecate/authentik", k) for k in ("secret_key", "db_password", "bootstrap_password", "api_token")}
    assert all(s["rotatable"] is False for s in generated.values())


def test_hcl_heredoc_text_escapes_interpolation():
    assert hecate_edge_jobs.hcl_heredoc_text('{"a": "${x} %{y}"}') == '{"a": "$${x} %%{y}"}'


# -- upgrades: hecate:deployment onto the update blocks (docs/upgrades.md) ------------------------------
def with_deployment(**dep):
    pillar = shipped_pillar()
    pillar["hecate"]["deployment"].update(dep)
    return pillar


@pytest.mark.parametrize("strategy,canary,auto_promote", [("rolling", 0, False), ("canary", 1, True),
                                                          ("blue-green", 1, False)])
def test_the_strategy_maps_onto_every_groups_update_block(strategy, canary, auto_promote):
    pillar = with_deployment(strategy=strategy, max_parallel_updates=2, auto_rollback=False,
                             health_check_interval=15, health_check_timeout=3)
    for name, groups in (("authentik", ("server", "worker")), ("caddy", ("caddy",)), ("postgresql", ("postgresql",))):
        rendered = js.canonicalize(job(name, pillar))
        for gname in groups:
            upd = group(rendered, gname)["Update"]
            assert (upd["MaxParallel"], upd["Canary"], upd["AutoPromote"], upd["AutoRevert"]) == (
                2, canary, auto_promote, False), (name, gname)
            # Nomad's defaults for what hecate:deployment leaves alone; the durations of the pillar
            assert (upd["MinHealthyTime"], upd["HealthyDeadline"], upd["ProgressDeadline"]) == (
                10 * js.SEC, 5 * js.MIN, 10 * js.MIN)
            for svc in group(rendered, gname)["Services"] or []:
                assert (svc["Checks"][0]["Interval"], svc["Checks"][0]["Timeout"]) == (15 * js.SEC, 3 * js.SEC)
    assert group(job("authentik", pillar), "worker")["Update"]["HealthCheck"] == "task_states"
    assert group(job("authentik", pillar), "server")["Update"]["HealthCheck"] == "checks"


@pytest.mark.parametrize("strategy", ["canary", "blue-green"])
def test_canary_and_blue_green_are_refused_per_job_with_the_reason(strategy):
    errors = hecate_schema.validate(with_deployment(strategy=strategy), "prod")
    refused = [e for e in errors if e.startswith("hecate:deployment:strategy: ")]
    assert sorted(e.split(": ", 2)[1] for e in refused) == [f"{strategy!r} cannot update hecate-authentik",
                                                            f"{strategy!r} cannot update hecate-caddy",
                                                            f"{strategy!r} cannot update hecate-postgresql"]
    text = "\n".join(refused)
    assert "two PostgreSQL servers must never open one data directory (host volume hecate_postgres)" in text
    assert "Caddy holds the edge's own ports 80/443 (static host ports" in text
    assert "its server holds static ports 9000/9443 on the edge's loopback (hecate:authentik:ports)" in text
    assert "a canary worker alone would run the new release's database migrations" in text
    assert all("Use 'rolling'" in e for e in refused)
    assert errors == refused  # nothing else is wrong with the shipped pillar
    # an edge run by other means deploys nothing: the strategy has nothing to refuse
    pillar = with_deployment(strategy=strategy)
    pillar["hecate"]["nomad"]["jobs"] = []
    assert hecate_schema.validate(pillar, "prod") == []
    # only the jobs hecate deploys are named
    pillar["hecate"]["nomad"]["jobs"] = ["caddy"]
    assert [e.split(": ", 2)[1] for e in hecate_schema.validate(pillar, "prod")
            if e.startswith("hecate:deployment:strategy")] == [f"{strategy!r} cannot update hecate-caddy"]


def test_what_is_refused_is_what_nomad_cannot_place():
    """
    The agreement of the refusals with Nomad: a canary of the Caddy job or of Authentik's
    server cannot be placed beside the running allocation on the edge (the lab's Nomad: the
    reconciler's canary and its reserved port collision), while the rolling update of the
    same change can; the worker alone would place. A plan is what nomad_job.running checks
    before it registers anything.
    """
    from werkzeug.test import Client  # pylint: disable=import-outside-toplevel

    from lab.sim import nomad as nsim  # pylint: disable=import-outside-toplevel

    ports = {"http": 28080 + os.getpid() % 500, "https": 28600 + os.getpid() % 500}
    base = {"reverse_proxy": {"caddy": {"ports": {"http": ports["http"], "https": ports["https"]}}},
            "authentik": {"ports": {"http": ports["http"] + 1, "https": ports["https"] + 1}}}
    sim = nsim.NomadSim({"time_scale": 0.01, "stand_ins": False, "node_class": "hecate-edge",
                         "consul_version": "1.22.0", "vault": {"enabled": True, "version": "1.21.0"},
                         "host_volumes": None})
    client = Client(sim)
    try:
        for name, static_group in (("caddy", "caddy"), ("authentik", "server")):
            running = _merge(shipped_pillar(), {"hecate": base})
            spec = js.canonicalize(job(name, running))
            assert client.post(f"/v1/job/{spec['ID']}", json={"Job": spec}).status_code == 200
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and len(
                    client.get(f"/v1/job/{spec['ID']}/allocations").json) < len(spec["TaskGroups"]):
                time.sleep(0.05)
            bumped = {"hecate": dict(base, authentik=dict(base["authentik"], version="2025.10.4"),
                                     reverse_proxy={"caddy": dict(base["reverse_proxy"]["caddy"], version="2.11.2")})}
            for strategy, fails in (("blue-green", True), ("canary", True), ("rolling", False)):
                pillar = _merge(shipped_pillar(), _merge(bumped, {"hecate": {"deployment": {"strategy": strategy}}}))
                new = js.canonicalize(job(name, pillar))
                plan = client.post(f"/v1/job/{new['ID']}/plan", json={"Job": new, "Diff": True}).json
                failed = plan["FailedTGAllocs"] or {}
                assert (static_group in failed) is fails, (name, strategy, failed)
                if fails:
                    assert list(failed[static_group]["DimensionExhausted"])[0].startswith(
                        "network: reserved port collision")
                    # refused before anything runs, with the job named
                    assert any(f"cannot update {new['ID']}" in e for e in hecate_schema.validate(pillar, "prod"))
                if name == "authentik":
                    assert "worker" not in failed  # no ports: its canary would place
    finally:
        sim._stop.set()  # pylint: disable=protected-access  # its client loop


def test_healthy_deadline_must_leave_room_for_the_checks():
    errors = hecate_schema.validate(with_deployment(health_check_interval=60, health_check_timeout=10,
                                                    healthy_deadline="1m"), "prod")
    assert any(e.startswith("hecate:deployment:healthy_deadline: '1m' leaves no time to become healthy: Consul runs "
                            "the first check within health_check_interval (60s)") for e in errors), errors
    assert any("make it longer than 80s" in e for e in errors)
    errors = hecate_schema.validate(with_deployment(healthy_deadline="15m"), "prod")
    assert any(e.startswith("hecate:deployment:progress_deadline: '10m' must be longer than healthy_deadline (15m)")
               for e in errors), errors
    assert hecate_schema.validate(with_deployment(progress_deadline="0s"), "prod") == []


# -- the lab's Nomad: templates and runners (lab/sim/nomad_tasks.py) -----------------------------------
def lookup_from(secrets=None, services=None):
    def lookup(kind, arg):
        if kind == "secret":
            if arg not in (secrets or {}):
                raise nomad_tasks.TemplateMissing(f"vault.read({arg})")
            return {"Data": {"data": secrets[arg]}}
        return (services or {}).get(arg, [])
    return lookup


def test_templates_render_secrets_and_services_as_consul_template_does():
    text = ('A="[[ with secret "secret/data/x" ]][[ index .Data.data "k" ]][[ end ]]"\n'
            '[[ range service "db" ]]H=[[ .Address ]]\nP=[[ .Port ]]\n[[ end ]]'
            'B=[[ with secret "secret/data/x" ]][[ .Data.data.k ]][[- end ]]\n')
    out = nomad_tasks.render(text, lookup_from({"secret/data/x": {"k": "v"}},
                                               {"db": [{"Address": "10.0.0.1", "Port": 5432}]}), "[[", "]]")
    assert nomad_tasks.parse_env_file(out) == {"A": "v", "H": "10.0.0.1", "P": "5432", "B": "v"}
    with pytest.raises(nomad_tasks.TemplateMissing, match=r"vault.read\(secret/data/y\)"):
        nomad_tasks.render('[[ with secret "secret/data/y" ]]x[[ end ]]', lookup_from(), "[[", "]]")
    with pytest.raises(nomad_tasks.TemplateError, match="not supported"):
        nomad_tasks.render("[[ key \"a/b\" ]]", lookup_from(), "[[", "]]")


def test_the_authentik_runner_refuses_what_authentik_refuses(tmp_path):
    paths = nomad_tasks.Paths(str(tmp_path), str(tmp_path / "alloc"), {})
    env = {"AUTHENTIK_POSTGRESQL__HOST": "127.0.0.1", "AUTHENTIK_POSTGRESQL__NAME": "authentik",
           "AUTHENTIK_POSTGRESQL__USER": "authentik", "AUTHENTIK_POSTGRESQL__PASSWORD": "pw"}
    ctx = {"env": dict(env), "image": "ghcr.io/goauthentik/server:2025.10.3", "port": 9000, "paths": paths}
    with pytest.raises(nomad_tasks.RunnerError, match="AUTHENTIK_SECRET_KEY is not set"):
        nomad_tasks.check("authentik", ctx)
    ctx["env"]["AUTHENTIK_SECRET_KEY"] = "k"
    nomad_tasks.check("authentik", ctx)
    ctx["image"] = "ghcr.io/goauthentik/server:2025.6.1"
    with pytest.raises(nomad_tasks.RunnerError, match="releases before 2025.10 need Redis"):
        nomad_tasks.check("authentik", ctx)
    pg = {"env": {"PGDATA": "/var/lib/postgresql/data/pgdata"}, "image": "postgres:16-alpine", "paths":
          nomad_tasks.Paths(str(tmp_path), str(tmp_path / "alloc"), {"/var/lib/postgresql/data": str(tmp_path / "v")})}
    with pytest.raises(nomad_tasks.RunnerError, match="POSTGRES_PASSWORD"):
        nomad_tasks.check("postgres", pg)
    pg["env"].update(POSTGRES_PASSWORD="pw", POSTGRES_USER="authentik", POSTGRES_DB="authentik")
    pg["task_dir"], pg["task"] = str(tmp_path), "postgres"
    nomad_tasks.start("postgres", pg)
    initdb = nomad_tasks.read_initdb(str(tmp_path / "v" / "pgdata"))
    assert initdb["user"] == "authentik" and "pw" not in json.dumps(initdb)
