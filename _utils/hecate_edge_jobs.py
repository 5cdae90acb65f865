"""
The edge's own Nomad jobs (issue 13): which jobs run, their settings with defaults, the
secrets they need generated, Caddy's bootstrap config, and whether Authentik still needs
Redis. The job files are salt/hecate/edge/jobs/*.nomad.hcl.j2; they call these functions
through the ``hecate_edge`` execution module, so the logic lives (and is tested) here.

Jobs, in deployment order (``hecate:nomad:jobs`` lists which of the three main ones run):

- ``hecate-postgresql``: PostgreSQL for Authentik (pinned major version, host volume);
- ``hecate-redis``: Redis, only for Authentik releases before 2025.10 (2025.10 "fully
  removed the need for Redis", its release notes, website/docs/releases/2025/v2025.10.md);
- ``hecate-authentik``: Authentik's server and worker;
- ``hecate-caddy``: the stock Caddy binary, ``caddy run --resume --config <bootstrap>``;
- ``hecate-backup``: a periodic job, when ``hecate:backup:enabled`` (orch.hecate deploys it in
  the database step, before Authentik: an Authentik upgrade backs the database up with it; its
  archives, records and restore: ``hecate_backups``, docs/backups.md).

How a new version replaces a running one (``hecate:deployment``) is :func:`update_block`;
which strategies each job can take is :func:`two_copies_problem` (docs/upgrades.md).
"""

import json
import re

import hecate_config
import hecate_members

JOBS = ("postgresql", "authentik", "caddy")
ORDER = ("postgresql", "redis", "authentik", "caddy", "backup")
REDIS_REMOVED = (2025, 10)
# Caddy's image tag when hecate:reverse_proxy:caddy:version does not say (the release
# hecate's admin-API handling is tested with: ETags, --resume; lab/caddy.py's binary)
DEFAULT_CADDY_VERSION = "2.11"
DEFAULT_PREFIX = "hecate-"

DEFAULTS = {
    "postgresql": {"image": "postgres:16-alpine", "volume": "hecate_postgres", "service": "hecate-postgresql"},
    "redis": {"image": "redis:7.4-alpine", "service": "hecate-redis"},
    "caddy": {"image": "caddy", "data_volume": "hecate_caddy_data", "config_volume": "hecate_caddy_config",
              "service": "hecate-caddy", "automatic_https": True, "check_port": "https"},
    "backup": {"volume": "hecate_backups", "nginx_volume": "hecate_nginx_config"},
}
AUTHENTIK_DEFAULTS = {
    "image": "ghcr.io/goauthentik/server",
    "service": "hecate-authentik-server",
    "log_level": "info",
    "database": {"name": "authentik", "user": "authentik"},
    "ports": {"http": 9000, "https": 9443},
    "bootstrap": {},
}
RESOURCE_DEFAULTS = {
    "reverse_proxy": {"cpu": 500, "memory": 256},
    "authentik": {"cpu": 1000, "memory": 1024},
    "authentik_worker": {"cpu": 500, "memory": 512},
    "postgresql": {"cpu": 500, "memory": 512},
    "redis": {"cpu": 200, "memory": 256},
    "backup": {"cpu": 200, "memory": 256},
}
DEPLOYMENT_DEFAULTS = {
    "strategy": "rolling",
    "health_check_interval": 10,
    "health_check_timeout": 5,
    "max_parallel_updates": 1,
    "auto_rollback": True,
    "min_healthy_time": "10s",
    "healthy_deadline": "5m",
    "progress_deadline": "10m",
}
STRATEGIES = ("rolling", "canary", "blue-green")
# every task group of the edge's service jobs runs one allocation
GROUP_COUNT = 1
BACKUP_DEFAULTS = {"enabled": False, "schedule": "0 3 * * *", "retention_days": 30,
                   "targets": ["authentik_database", "caddy_data"], "image": "alpine:3.20",
                   "record_image": "curlimages/curl:8.11.1", "consul_url": None, "consul_token": None,
                   "before_upgrade": True}
# What each backup target writes onto the backups volume: <prefix><backup id><suffix>, by which
# task of the backup job, in which format. The backup id is the run's launch time in UTC
# (20260101T030000Z), the same for every target of one run.
BACKUP_TARGETS = {
    "authentik_database": {"task": "authentik-database", "prefix": "authentik-", "suffix": ".dump",
                           "format": "pg_dump custom"},
    "caddy_data": {"task": "files", "prefix": "caddy-", "suffix": ".tar.gz", "format": "tar.gz"},
    "nginx_configs": {"task": "files", "prefix": "nginx-", "suffix": ".tar.gz", "format": "tar.gz"},
}
# Consul KV: the record of each backup, written by the backup job itself
BACKUP_RECORDS = "hecate/backups"

# What hecate generates for Authentik when it deploys it: read ONCE by their consumer
# (PostgreSQL's initdb, Authentik's first start), so never rotated by a `rotate` run.
# secret_key: Authentik's docs make it with `openssl rand 60 | base64` (60+ characters).
GENERATED = {
    "authentik_secret_key": ("secret_key", 64, "Authentik's AUTHENTIK_SECRET_KEY"),
    "authentik_db_password": ("database:password", 32, "PostgreSQL password of Authentik's database role"),
    "authentik_bootstrap_password": ("bootstrap:password", 32, "akadmin's password (AUTHENTIK_BOOTSTRAP_PASSWORD)"),
    "authentik_api_token": ("bootstrap:token", 64, "hecate's Authentik API token (AUTHENTIK_BOOTSTRAP_TOKEN)"),
}


# -- which jobs ---------------------------------------------------------------------------------
def enabled_jobs(pillar):
    """The main jobs ``hecate:nomad:jobs`` lists (in deployment order); [] when none."""
    listed = hecate_config.traverse(pillar, "hecate:nomad:jobs") or []
    if not isinstance(listed, list):
        return []
    return [j for j in JOBS if j in listed]


def release(version):
    """``'2025.10.3'`` -> ``(2025, 10)``; None when it does not look like a release."""
    match = re.match(r"^(\d{4})\.(\d{1,2})(\.|$)", str(version or ""))
    return (int(match.group(1)), int(match.group(2))) if match else None


def needs_redis(version):
    """Whether an Authentik release still uses Redis (every release before 2025.10)."""
    rel = release(version)
    return rel is not None and rel < REDIS_REMOVED


def deploy_order(pillar):
    """Every job hecate runs on the edge, in order (Redis and backup decided by pillar)."""
    main = enabled_jobs(pillar)
    out = []
    for name in ORDER:
        if name == "redis":
            if "authentik" in main and needs_redis(hecate_config.traverse(pillar, "hecate:authentik:version")):
                out.append(name)
        elif name == "backup":
            if main and backup_settings(pillar)["enabled"]:
                out.append(name)
        elif name in main:
            out.append(name)
    return out


def job_id(pillar, name):
    prefix = hecate_config.traverse(pillar, "hecate:nomad:job_prefix")
    return (DEFAULT_PREFIX if prefix is None else prefix) + name


# -- settings -------------------------------------------------------------------------------------
def _with_defaults(defaults, pillar, path):
    """The pillar dict at ``path`` merged over ``defaults``."""
    return hecate_config.deep_merge(defaults, hecate_config.traverse(pillar, path) or {})


NOMAD_DEFAULTS = {"datacenters": ["dc1"], "namespace": "default", "node_class": "hecate-edge",
                  "job_prefix": DEFAULT_PREFIX, "vault_role": None, "deploy_timeout": 900,
                  "revert_on_failure": True, "wait_timeout": 300, "jobs": []}


def nomad_settings(pillar):
    """``hecate:nomad`` with defaults (the agent left out)."""
    conf = {k: v for k, v in (hecate_config.traverse(pillar, "hecate:nomad") or {}).items() if k != "agent"}
    return hecate_config.deep_merge(NOMAD_DEFAULTS, conf)


def agent_pillar(pillar):
    return hecate_config.traverse(pillar, "hecate:nomad:agent")


def job_settings(pillar, name):
    """``hecate:jobs:<name>`` with defaults."""
    return _with_defaults(DEFAULTS.get(name, {}), pillar, f"hecate:jobs:{name}")


def authentik_settings(pillar):
    """``hecate:authentik`` with defaults (references left as they are)."""
    return _with_defaults(AUTHENTIK_DEFAULTS, pillar, "hecate:authentik")


def resources(pillar, name):
    return _with_defaults(RESOURCE_DEFAULTS.get(name, {}), pillar, f"hecate:resources:{name}")


def deployment(pillar):
    return _with_defaults(DEPLOYMENT_DEFAULTS, pillar, "hecate:deployment")


# -- updates: hecate:deployment onto each job's update blocks -----------------------------------
DURATION = re.compile(r"^(\d+)(ms|s|m|h)$")
UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}


def seconds(duration):
    """``"5m"`` -> 300.0 (the pillar's durations); None when it does not parse."""
    match = DURATION.match(str(duration or ""))
    return int(match.group(1)) * UNIT_SECONDS[match.group(2)] if match else None


def update_block(pillar, name):
    """
    The ``update`` block of job ``name``'s task groups from ``hecate:deployment``: ``rolling``
    replaces ``max_parallel_updates`` allocations at a time (Nomad stops each old allocation
    as it places its replacement); ``canary`` places one canary beside the running
    allocation and Nomad promotes it once healthy (``auto_promote``); ``blue-green`` places as
    many canaries as the group runs (``canary = count``) and hecate's nomad_job state promotes
    them once all are healthy. ``auto_rollback`` is ``auto_revert``. hecate.validate refuses
    canary and blue-green for the jobs that cannot run two copies at once
    (:func:`two_copies_problem`), so what renders is what Nomad can place.
    """
    dep = deployment(pillar)
    out = {"max_parallel": int(dep["max_parallel_updates"]), "canary": 0, "auto_promote": False,
           "auto_revert": bool(dep["auto_rollback"]), "min_healthy_time": dep["min_healthy_time"],
           "healthy_deadline": dep["healthy_deadline"], "progress_deadline": dep["progress_deadline"]}
    if dep["strategy"] == "canary":
        out.update(canary=1, auto_promote=True)
    elif dep["strategy"] == "blue-green":
        out.update(canary=GROUP_COUNT, auto_promote=False)
    return out


def two_copies_problem(pillar, name):
    """
    Why job ``name`` cannot run its new version beside the old one on the edge (what canary
    and blue-green need: a second allocation while the first still runs), or None.
    """
    if name == "postgresql":
        volume = job_settings(pillar, "postgresql")["volume"]
        return (f"two PostgreSQL servers must never open one data directory (host volume {volume}), so it is "
                "always replaced stop-then-start")
    if name == "caddy":
        ports = caddy_ports(pillar)
        return (f"Caddy holds the edge's own ports {ports['http']}/{ports['https']} (static host ports: the "
                f"Internet reaches the edge there) and its admin API on 127.0.0.1:{ports['admin']}; a second "
                "Caddy cannot bind them beside the running one, and a Caddy on another node would not be this "
                "edge (its certificates and autosave are on this node's host volumes, its DNS records name this "
                "node)")
    if name == "authentik":
        ports = authentik_settings(pillar)["ports"]
        return (f"its server holds static ports {ports['http']}/{ports['https']} on the edge's loopback "
                "(hecate:authentik:ports), where Caddy's route and hecate's API calls reach it: a second server "
                "cannot bind them beside the running one, and on another node neither would reach it; its "
                "worker has no ports, but a canary worker alone would run the new release's database "
                "migrations while the old server keeps serving")
    return None


def update_problems(pillar, jobs=None):
    """
    ``[(key path, message)]``: the update settings Nomad would not accept, or could not
    carry out, for the edge's jobs (``jobs``: default :func:`deploy_order`).
    """
    dep = deployment(pillar)
    jobs = deploy_order(pillar) if jobs is None else jobs
    errors = []
    strategy = dep["strategy"]
    if strategy in ("canary", "blue-green"):
        for name in jobs:
            problem = two_copies_problem(pillar, name)
            if problem:
                errors.append(("hecate:deployment:strategy", (
                    f"{strategy!r} cannot update {job_id(pillar, name)}: {problem}. Use 'rolling' (Nomad stops the "
                    "old allocation as it places the new one and, with hecate:deployment:auto_rollback, reverts "
                    "to the last stable version when the new one does not become healthy)")))
    durations = {key: seconds(dep[key]) for key in ("min_healthy_time", "healthy_deadline", "progress_deadline")}
    if None in durations.values():
        return errors  # the schema names the malformed one
    first_check = dep["health_check_interval"] + dep["health_check_timeout"]
    if durations["healthy_deadline"] <= durations["min_healthy_time"] + first_check:
        errors.append(("hecate:deployment:healthy_deadline", (
            f"{dep['healthy_deadline']!r} leaves no time to become healthy: Consul runs the first check within "
            f"health_check_interval ({dep['health_check_interval']}s) and waits up to health_check_timeout "
            f"({dep['health_check_timeout']}s), then the checks must pass for min_healthy_time "
            f"({dep['min_healthy_time']}); make it longer than {int(durations['min_healthy_time'] + first_check)}s")))
    if durations["progress_deadline"] and durations["healthy_deadline"] >= durations["progress_deadline"]:
        errors.append(("hecate:deployment:progress_deadline", (
            f"{dep['progress_deadline']!r} must be longer than healthy_deadline ({dep['healthy_deadline']}): "
            "Nomad refuses the update block otherwise (\"Healthy deadline must be less than progress deadline\")")))
    return errors


def backup_settings(pillar):
    """``hecate:backup`` with defaults; ``consul_url`` defaults to hecate's Consul connection."""
    out = _with_defaults(BACKUP_DEFAULTS, pillar, "hecate:backup")
    if not out.get("consul_url"):
        out["consul_url"] = (hecate_config.traverse(pillar, "hecate:connections:consul:url")
                             or "http://127.0.0.1:8500").rstrip("/")
    return out


def environment(pillar):
    """The environment the edge belongs to (``hecate:global:environment``), or None."""
    return hecate_config.traverse(pillar, "hecate:global:environment")


def backup_file(target, backup_id):
    """The archive's file name on the backups volume."""
    spec = BACKUP_TARGETS[target]
    return f"{spec['prefix']}{backup_id}{spec['suffix']}"


def backup_key(env, target=None, backup_id=None):
    """Consul KV key of a backup record (or the prefix of an environment's, a target's records)."""
    key = f"{BACKUP_RECORDS}/{env}/"
    if target:
        key += f"{target}/"
        if backup_id:
            key += backup_id
    return key


def caddy_settings(pillar):
    return hecate_config.traverse(pillar, "hecate:reverse_proxy:caddy") or {}


def caddy_count(pillar):
    """
    ``(count, problem)``: how many Caddy allocations the ``hecate-caddy`` job runs - one per
    edge, since every edge serves the sites on its own ports and admin API. ``hecate:jobs:caddy:count``
    when given; else the number of ``hecate:members:hecate-edge`` ids (1 when pillar lists
    none). A glob among the edges cannot be counted: then ``problem`` says to set the count.
    """
    given = (hecate_config.traverse(pillar, "hecate:jobs:caddy") or {}).get("count")
    if given is not None:
        return int(given), None
    edges = hecate_members.members(pillar)["hecate-edge"]
    globs = [e for e in edges if hecate_members.is_glob(e)]
    if globs:
        return 1, (f"hecate:members:hecate-edge has the glob(s) {', '.join(map(repr, globs))}, so hecate cannot "
                   "tell how many edges run Caddy: set hecate:jobs:caddy:count to the number of edges (one Caddy "
                   "allocation on each, never two on one node)")
    return max(1, len(edges)), None


def caddy_ports(pillar):
    ports = caddy_settings(pillar).get("ports") or {}
    return {"http": int(ports.get("http", 80)), "https": int(ports.get("https", 443)),
            "admin": int(ports.get("admin", 2019))}


def image_tag(image):
    """The tag of an image reference (None when untagged; a digest counts as a tag)."""
    if "@" in image:
        return image.split("@", 1)[1]
    last = image.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else None


def images(pillar, jobs=None):
    """``{pillar path: image reference}`` of the jobs' images (for the pinning check)."""
    jobs = enabled_jobs(pillar) if jobs is None else jobs
    out = {}
    if "postgresql" in jobs:
        out["hecate:jobs:postgresql:image"] = job_settings(pillar, "postgresql")["image"]
    if "authentik" in jobs:
        ak = authentik_settings(pillar)
        out["hecate:authentik:version"] = f"{ak['image']}:{ak.get('version') or ''}".rstrip(":")
        if needs_redis(ak.get("version")):
            out["hecate:jobs:redis:image"] = job_settings(pillar, "redis")["image"]
    if "caddy" in jobs:
        out["hecate:reverse_proxy:caddy:version"] = caddy_image(pillar)
    return out


def caddy_image(pillar):
    version = caddy_settings(pillar).get("version") or DEFAULT_CADDY_VERSION
    return f"{job_settings(pillar, 'caddy')['image']}:{version}"


def required_volumes(pillar, jobs=None):
    """``{host volume: why}`` the edge's Nomad client must declare for the jobs."""
    jobs = enabled_jobs(pillar) if jobs is None else jobs
    out = {}
    if "postgresql" in jobs:
        out[job_settings(pillar, "postgresql")["volume"]] = "PostgreSQL's data"
    if "caddy" in jobs:
        caddy = job_settings(pillar, "caddy")
        out[caddy["data_volume"]] = "Caddy's /data: certificates"
        out[caddy["config_volume"]] = "Caddy's /config: the autosave of its config"
    if jobs and backup_settings(pillar)["enabled"]:
        backup = job_settings(pillar, "backup")
        out[backup["volume"]] = "the backup archives"
        if "nginx_configs" in backup_settings(pillar)["targets"]:
            out[backup["nginx_volume"]] = "nginx's config directory (backup target nginx_configs)"
    return out


# -- generated secrets ------------------------------------------------------------------------------
def generated_secrets(pillar):
    """
    ``{name: spec}`` (the shape of ``hecate:secrets``) of the Authentik secrets hecate generates
    when it deploys Authentik: where the ``hecate:authentik`` references point. Each is
    ``rotatable: False``: its consumer reads it once (initdb, Authentik's first start).
    """
    if "authentik" not in enabled_jobs(pillar):
        return {}
    ak = hecate_config.traverse(pillar, "hecate:authentik") or {}
    out = {}
    for name, (path, length, what) in GENERATED.items():
        ref = hecate_config.traverse(ak, path)
        if isinstance(ref, dict) and isinstance(ref.get("vault"), str) and isinstance(ref.get("key"), str):
            out[name] = {"path": ref["vault"], "key": ref["key"], "length": length, "alphabet": "alnum",
                         "rotatable": False, "description": what}
    return out


# -- Caddy's bootstrap config -------------------------------------------------------------------------
def caddy_bootstrap(pillar):
    """
    The config Caddy starts from when no autosave exists (``caddy run --resume --config``):
    the admin API on loopback only, with its config persisted (the autosave, on the config
    host volume), and the empty ``hecate`` server that the routes are written into.
    """
    caddy = caddy_settings(pillar)
    ports = caddy_ports(pillar)
    job = job_settings(pillar, "caddy")
    server = {"listen": list(caddy.get("listen") or [f":{ports['https']}"]), "routes": []}
    if not job["automatic_https"]:
        server["automatic_https"] = {"disable": True}
    return {
        "admin": {"listen": f"127.0.0.1:{ports['admin']}", "config": {"persist": True}},
        "apps": {"http": {"http_port": ports["http"], "https_port": ports["https"],
                          "servers": {caddy.get("server") or "hecate": server}}},
    }


def hcl_heredoc_text(text):
    """``text`` for an HCL heredoc: ``${`` and ``%{`` would be HCL interpolation, so doubled."""
    return text.replace("${", "$${").replace("%{", "%%{")


def caddy_bootstrap_text(pillar):
    """:func:`caddy_bootstrap` as indented JSON, ready for the job's template heredoc."""
    return hcl_heredoc_text(json.dumps(caddy_bootstrap(pillar), indent=2, sort_keys=True))


# -- what the orchestration needs to know ---------------------------------------------------------------
def vault_path(ref):
    """``{vault: secret/hecate/x, key: k}`` -> ``secret/hecate/x#k`` (for messages)."""
    if isinstance(ref, dict):
        return f"{ref.get('vault')}#{ref.get('key')}"
    return str(ref)
