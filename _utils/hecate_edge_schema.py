"""
Pillar schema of the edge's own Nomad jobs (issue 13): Authentik (server, worker) and its
PostgreSQL (and Redis for releases before 2025.10), Caddy, the backup job, and the Nomad
client of the ``hecate-edge`` role. The user's keys ``hecate:authentik``,
``hecate:resources``, ``hecate:deployment`` and ``hecate:backup`` live here.

Every property has a ``description``: docs/pillar.md is generated from them.
Semantic checks (``check_pillar``) that a JSON Schema cannot express: secrets only as
Vault references (with the reason, for the user's ``{{ salt['vault.read_secret'](...) }}``
lines), a strategy each job can take (``hecate_edge_jobs.update_problems``), pinned images,
the Caddy admin API on loopback, host volumes the jobs mount.
"""

import ipaddress
import re
import urllib.parse

import hecate_agents_schema
import hecate_edge_jobs

PORT = {"type": "integer", "minimum": 1, "maximum": 65535}
VAULT_REF = {
    "type": "object",
    "required": ["vault", "key"],
    "additionalProperties": False,
    "description": "A Vault KV v2 reference: `{vault: <mount>/<path>, key: <key>}`.",
    "properties": {
        "vault": {"type": "string", "pattern": r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.@-]+)+$",
                  "description": "The secret's mount and path, e.g. `secret/hecate/authentik`."},
        "key": {"type": "string", "minLength": 1, "description": "The key inside the secret."},
    },
}
IMAGE = {"type": "string", "minLength": 1}


def _d(schema, text):
    out = dict(schema)
    out["description"] = text
    return out


def _secret(text):
    # the type check comes from check_pillar (a literal gets the explanation, not a schema error)
    return {"description": text + " A Vault reference `{vault: ..., key: ...}`, never the value: "
                                  "Nomad reads it through a template block at run time."}


RESOURCES = {
    "type": "object",
    "additionalProperties": False,
    "description": "CPU (MHz), memory (MB) and ephemeral disk (MB) of one task group.",
    "properties": {
        "cpu": _d({"type": "integer", "minimum": 10}, "CPU in MHz (Nomad `resources.cpu`)."),
        "memory": _d({"type": "integer", "minimum": 16}, "Memory in MB (Nomad `resources.memory`)."),
        "memory_max": _d({"type": "integer", "minimum": 16},
                         "Memory limit in MB when the cluster oversubscribes memory (`memory_max`)."),
        "disk": _d({"type": "integer", "minimum": 10},
                   "Ephemeral disk of the group in MB (Nomad `ephemeral_disk.size`); persistent data "
                   "lives on host volumes, not here."),
    },
}

JOB_NAMES = list(hecate_edge_jobs.JOBS)

PILLAR_SCHEMA = {
    "hecate:authentik": {
        "type": "object",
        "additionalProperties": False,
        "description": "Authentik on the edge, deployed by hecate as the Nomad job `hecate-authentik` "
                       "(server and worker) when `hecate:nomad:jobs` lists `authentik`.",
        "properties": {
            "version": _d({"type": "string", "pattern": r"^\d{4}\.\d{1,2}\.\d+(-rc\d+)?$"},
                          "Authentik release (image tag), e.g. `2025.10.3`. It decides whether Redis "
                          "is deployed: releases before 2025.10 need it, 2025.10 removed it."),
            "image": _d(IMAGE, "Image without tag (default `ghcr.io/goauthentik/server`)."),
            "service": _d({"type": "string", "pattern": r"^[a-z0-9-]+$"},
                          "Consul service of the server (default `hecate-authentik-server`)."),
            "log_level": _d({"enum": ["trace", "debug", "info", "warning", "error"]},
                            "AUTHENTIK_LOG_LEVEL (default `info`)."),
            "database": {
                "type": "object",
                "additionalProperties": False,
                "description": "Authentik's PostgreSQL database (job `hecate-postgresql`).",
                "properties": {
                    "name": _d({"type": "string", "pattern": r"^[a-z_][a-z0-9_]*$"},
                               "Database name (default `authentik`)."),
                    "user": _d({"type": "string", "pattern": r"^[a-z_][a-z0-9_]*$"},
                               "Database role (default `authentik`)."),
                    "password": _secret("The role's password; hecate generates it when Vault lacks it."),
                },
            },
            "secret_key": _secret("AUTHENTIK_SECRET_KEY (signs sessions and tokens); generated when "
                                  "Vault lacks it, never rotated by hecate."),
            "ports": {
                "type": "object",
                "additionalProperties": False,
                "description": "Static ports of the server on the edge's loopback interface (Caddy and "
                               "hecate reach Authentik there; never a public address).",
                "properties": {
                    "http": _d(PORT, "HTTP port (Authentik's 9000)."),
                    "https": _d(PORT, "HTTPS port (Authentik's 9443, self-signed certificate)."),
                },
            },
            "bootstrap": {
                "type": "object",
                "additionalProperties": False,
                "description": "Authentik's first start (AUTHENTIK_BOOTSTRAP_*: read only on the first "
                               "start, with an empty database): akadmin's password and e-mail, and the "
                               "API token hecate uses. Generated into Vault once, never rotated.",
                "properties": {
                    "email": _d({"type": "string", "pattern": r"^[^@\s]+@[^@\s]+$"},
                                "AUTHENTIK_BOOTSTRAP_EMAIL: akadmin's e-mail address."),
                    "password": _secret("AUTHENTIK_BOOTSTRAP_PASSWORD: akadmin's password."),
                    "token": _secret("AUTHENTIK_BOOTSTRAP_TOKEN: the API token of akadmin that hecate "
                                     "uses (must be the same reference as "
                                     "hecate:connections:authentik:token)."),
                },
            },
        },
    },
    "hecate:resources": {
        "type": "object",
        "additionalProperties": False,
        "description": "Resources of the edge's jobs, per task group.",
        "properties": {
            "reverse_proxy": _d(RESOURCES, "Caddy (job `hecate-caddy`)."),
            "authentik": _d(RESOURCES, "Authentik's server (job `hecate-authentik`, group `server`)."),
            "authentik_worker": _d(RESOURCES, "Authentik's worker (group `worker`; default 500 MHz, 512 MB)."),
            "postgresql": _d(RESOURCES, "PostgreSQL (job `hecate-postgresql`; default 500 MHz, 512 MB)."),
            "redis": _d(RESOURCES, "Redis (job `hecate-redis`, Authentik before 2025.10 only)."),
            "backup": _d(RESOURCES, "The backup job's tasks (default 200 MHz, 256 MB)."),
            "applications": {
                "type": "object",
                "description": "Resources of the user's own application jobs, by name. Accepted and kept "
                               "for those jobs; hecate deploys none of them.",
                "additionalProperties": RESOURCES,
            },
        },
    },
    "hecate:deployment": {
        "type": "object",
        "additionalProperties": False,
        "description": "How a new version of the edge's jobs replaces the running one (each task group's "
                       "`update` block and the service checks; docs/upgrades.md).",
        "properties": {
            "strategy": _d({"enum": list(hecate_edge_jobs.STRATEGIES)},
                           "`rolling` (default): `update.max_parallel = max_parallel_updates`; Nomad stops each "
                           "old allocation as it places the new one. `canary`: `canary = 1`, `auto_promote = "
                           "true` (Nomad promotes once the canary is healthy). `blue-green`: `canary` = the "
                           "group's count, hecate promotes once all are healthy. Canary and blue-green run the "
                           "new version beside the old one: hecate.validate refuses them, naming the job, for "
                           "each edge job that cannot run two copies - PostgreSQL (one data directory), Caddy "
                           "(the edge's static ports 80/443), Authentik (its server's static loopback ports; a "
                           "canary worker alone would migrate the database under the old server)."),
            "health_check_interval": _d({"type": "integer", "minimum": 1, "maximum": 3600},
                                        "Seconds between health checks: every service check's `interval` "
                                        "(default 10)."),
            "health_check_timeout": _d({"type": "integer", "minimum": 1, "maximum": 600},
                                       "Seconds before a health check times out: every service check's `timeout` "
                                       "(default 5). `healthy_deadline` must exceed `min_healthy_time` plus one "
                                       "interval and timeout (the first check)."),
            "max_parallel_updates": _d({"type": "integer", "minimum": 1, "maximum": 10},
                                       "Allocations replaced at once (`update.max_parallel`, default 1)."),
            "auto_rollback": _d({"type": "boolean"},
                                "Nomad reverts a failed deployment to the last stable version "
                                "(`update.auto_revert`, default true). A revert after Authentik migrated its "
                                "database runs the old release on the migrated schema: see docs/upgrades.md."),
            "min_healthy_time": _d({"type": "string", "pattern": r"^\d+(ms|s|m|h)$"},
                                   "How long an allocation's checks must pass before it counts as healthy "
                                   "(`update.min_healthy_time`, default `10s`)."),
            "healthy_deadline": _d({"type": "string", "pattern": r"^\d+(ms|s|m|h)$"},
                                   "Deadline for a new allocation to become healthy (`update.healthy_deadline`, "
                                   "default `5m`); longer than min_healthy_time + health_check_interval + "
                                   "health_check_timeout."),
            "progress_deadline": _d({"type": "string", "pattern": r"^\d+(ms|s|m|h)$"},
                                    "Deadline for the deployment to make progress (`update.progress_deadline`, "
                                    "default `10m`); longer than healthy_deadline, `0s` for none."),
        },
    },
    "hecate:backup": {
        "type": "object",
        "additionalProperties": False,
        "description": "Periodic backups by the Nomad job `hecate-backup` onto the `backups` host volume.",
        "properties": {
            "enabled": _d({"type": "boolean"}, "Deploy the backup job (default false)."),
            "schedule": _d({"type": "string", "pattern": r"^\S+( \S+){4}$"},
                           "Cron expression (5 fields, the edge's time zone), e.g. `0 3 * * *`."),
            "retention_days": _d({"type": "integer", "minimum": 1, "maximum": 3650},
                                 "Backups older than this are deleted by the job."),
            "targets": {
                "type": "array",
                "uniqueItems": True,
                "description": "What is backed up: `authentik_database` (pg_dump), `caddy_data` "
                               "(certificates and autosave), `nginx_configs` (the nginx config directory).",
                "items": {"enum": ["authentik_database", "caddy_data", "nginx_configs"]},
            },
            "image": _d(IMAGE, "Image of the archive tasks (default `alpine:3.20`)."),
            "record_image": _d(IMAGE, "Image of the task that records each backup in Consul KV and applies "
                                      "the retention: it needs `sh`, `curl`, `sha256sum` (default "
                                      "`curlimages/curl:8.11.1`)."),
            "consul_url": _d({"type": "string", "pattern": r"^https?://[^\s/]+/?$"},
                             "Consul's HTTP API as the backup job reaches it on the edge (host network; "
                             "default `hecate:connections:consul:url`)."),
            "consul_token": _secret("The Consul ACL token the backup job writes its records with: "
                                    "`key_prefix \"hecate/backups/<env>/\" { policy = \"write\" }` is enough. "
                                    "Required when backups are enabled."),
            "before_upgrade": _d({"type": "boolean"},
                                 "Back up Authentik's database (a run of the backup job) before a deploy that "
                                 "changes `hecate:authentik:version`, and restore it when that deployment fails "
                                 "(default true)."),
        },
    },
    "hecate:verify": {
        "type": "object",
        "additionalProperties": False,
        "description": "What orch.hecate checks at its end: a request through Caddy to Authentik.",
        "properties": {
            "timeout": _d({"type": "number", "exclusiveMinimum": 0},
                          "Seconds to keep trying the probe (default 120)."),
            "probe": {
                "type": "object",
                "additionalProperties": False,
                "required": ["url"],
                "description": "The HTTP request made from the edge.",
                "properties": {
                    "url": _d({"type": "string", "pattern": r"^https?://[^\s/]+(/\S*)?$"},
                              "URL of Authentik's health endpoint through Caddy, e.g. "
                              "`https://hera.cybermonkey.dev/-/health/live/`."),
                    "host": _d({"type": ["string", "null"]}, "Host header to send (when the URL is an address)."),
                    "ca_bundle": _d({"type": ["string", "null"]}, "CA bundle to verify Caddy's certificate with."),
                },
            },
        },
    },
    "hecate:nomad": {
        "type": "object",
        "additionalProperties": False,
        "description": "The edge's Nomad jobs and the Nomad client of the `hecate-edge` role.",
        "properties": {
            "jobs": {
                "type": "array",
                "uniqueItems": True,
                "description": "The jobs hecate deploys on the edge, in order. Empty: the edge is run by "
                               "other means (e.g. docker compose) and hecate only configures it.",
                "items": {"enum": JOB_NAMES},
            },
            "datacenters": {"type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1},
                            "description": "Datacenters of the jobs (default `[dc1]`)."},
            "namespace": _d({"type": "string", "pattern": r"^[a-zA-Z0-9-]{1,128}$"},
                            "Nomad namespace of the jobs (default `default`)."),
            "region": _d({"type": "string"}, "Nomad region of the jobs."),
            "node_class": _d({"type": "string", "pattern": r"^[A-Za-z0-9_.-]+$"},
                             "The jobs run only on clients of this node class (default `hecate-edge`); the "
                             "edge's client config sets it."),
            "job_prefix": _d({"type": "string", "pattern": r"^[a-z0-9-]*$"},
                             "Prefix of the job IDs (default `hecate-`)."),
            "vault_role": _d({"type": ["string", "null"]},
                             "Nomad's Vault role for the jobs' templates (workload identity)."),
            "deploy_timeout": _d({"type": "integer", "minimum": 10, "maximum": 7200},
                                 "Seconds hecate follows each deployment (default 900)."),
            "revert_on_failure": _d({"type": "boolean"},
                                    "Revert to the last stable version when a deployment fails and Nomad "
                                    "does not auto-revert (default true)."),
            "wait_timeout": _d({"type": "integer", "minimum": 5, "maximum": 3600},
                               "Seconds to wait for Authentik's API and Caddy's admin API after their "
                               "deployments (default 300)."),
            "agent": _d(hecate_agents_schema.PILLAR_SCHEMA[hecate_agents_schema.NOMAD_PATH],
                        "The edge's Nomad agent config (client; same keys as bionicgpt:nomad:agent)."),
        },
    },
    "hecate:jobs": {
        "type": "object",
        "additionalProperties": False,
        "description": "Settings of each edge job beyond hecate:authentik and hecate:resources.",
        "properties": {
            "postgresql": {
                "type": "object",
                "additionalProperties": False,
                "description": "PostgreSQL for Authentik.",
                "properties": {
                    "image": _d(IMAGE, "Image with a pinned major version (default `postgres:16-alpine`, the "
                                       "user's compose); a new major needs a dump and restore."),
                    "volume": _d({"type": "string"}, "Client host volume of the data (default `hecate_postgres`)."),
                    "service": _d({"type": "string"}, "Consul service (default `hecate-postgresql`)."),
                },
            },
            "redis": {
                "type": "object",
                "additionalProperties": False,
                "description": "Redis for Authentik releases before 2025.10.",
                "properties": {
                    "image": _d(IMAGE, "Image (default `redis:7.4-alpine`)."),
                    "service": _d({"type": "string"}, "Consul service (default `hecate-redis`)."),
                },
            },
            "caddy": {
                "type": "object",
                "additionalProperties": False,
                "description": "Caddy: `caddy run --resume` with a bootstrap config used only when no autosave "
                               "exists; image tag from hecate:reverse_proxy:caddy:version.",
                "properties": {
                    "image": _d(IMAGE, "Image without tag (default `caddy`)."),
                    "data_volume": _d({"type": "string"},
                                      "Host volume of /data: certificates (default `hecate_caddy_data`)."),
                    "config_volume": _d({"type": "string"},
                                        "Host volume of /config: the autosave (default `hecate_caddy_config`)."),
                    "service": _d({"type": "string"}, "Consul service (default `hecate-caddy`)."),
                    "count": _d({"type": "integer", "minimum": 1}, (
                        "Caddy allocations, one per edge on distinct nodes (default: the number of "
                        "hecate:members:hecate-edge ids, 1 without members; required when an edge is given "
                        "as a glob).")),
                    "automatic_https": _d({"type": "boolean"},
                                          "Caddy's automatic HTTPS on the `hecate` server (default true)."),
                    "check_port": _d({"enum": ["http", "https"]},
                                     "Port label of the TCP health check (default `https`)."),
                },
            },
            "backup": {
                "type": "object",
                "additionalProperties": False,
                "description": "Where the backup job writes.",
                "properties": {
                    "volume": _d({"type": "string"}, "Host volume of the archives (default `hecate_backups`)."),
                    "nginx_volume": _d({"type": "string"},
                                       "Host volume of nginx's config directory (default `hecate_nginx_config`)."),
                },
            },
        },
    },
}

VAULT_READ = re.compile(r"vault\.read_secret|\{\{|\{%")
REF_FORM = ("write the Vault reference {vault: <mount>/<path>, key: <key>} (e.g. "
            "{vault: secret/hecate/authentik, key: secret_key}); hecate hands it to Nomad's template "
            "block, which reads it at run time, so the value never passes through Salt")


def literal_secret_message(value):
    """Why a secret value in pillar is refused, and what to write instead (never the value)."""
    if isinstance(value, str) and VAULT_READ.search(value):
        return ("a {{ salt['vault.read_secret'](...) }} line copies the secret into pillar (pillar.items, "
                "the job cache, every minion's pillar cache); " + REF_FORM)
    return "secret given as a value; " + REF_FORM


def _secret_paths(pillar):
    ak = (pillar.get("hecate") or {}).get("authentik") or {}
    if not isinstance(ak, dict):
        return []
    db = ak.get("database") if isinstance(ak.get("database"), dict) else {}
    boot = ak.get("bootstrap") if isinstance(ak.get("bootstrap"), dict) else {}
    backup = (pillar.get("hecate") or {}).get("backup")
    backup = backup if isinstance(backup, dict) else {}
    return [
        ("hecate:backup:consul_token", backup.get("consul_token"), "consul_token" in backup),
        ("hecate:authentik:database:password", db.get("password"), "password" in db),
        ("hecate:authentik:secret_key", ak.get("secret_key"), "secret_key" in ak),
        ("hecate:authentik:bootstrap:password", boot.get("password"), "password" in boot),
        ("hecate:authentik:bootstrap:token", boot.get("token"), "token" in boot),
    ]


def _is_ref(value):
    return (isinstance(value, dict) and set(value) == {"vault", "key"}
            and all(isinstance(v, str) and v for v in value.values()))


def check_pillar(pillar, env=None):
    """``[(key_path, message)]``: what the schema cannot say about the edge's jobs."""
    errors = []
    hecate = pillar.get("hecate") or {}
    if not isinstance(hecate, dict):
        return errors
    for path, value, given in _secret_paths(pillar):
        if given and not _is_ref(value):
            if value is None:
                errors.append((path, "no value: " + REF_FORM))
            elif isinstance(value, dict):
                errors.append((path, "not a Vault reference: " + REF_FORM))
    jobs = hecate_edge_jobs.enabled_jobs(pillar)
    if not jobs:
        return errors
    errors.extend(hecate_edge_jobs.update_problems(pillar))
    errors.extend(_check_images(pillar, env, jobs))
    errors.extend(_check_caddy(pillar, jobs))
    errors.extend(_check_authentik(pillar, jobs))
    errors.extend(_check_volumes(pillar, jobs))
    errors.extend(_check_backup(pillar))
    return errors


def _check_backup(pillar):
    backup = hecate_edge_jobs.backup_settings(pillar)
    if not backup["enabled"]:
        return []
    errors = []
    if "consul_token" not in ((pillar.get("hecate") or {}).get("backup") or {}):
        errors.append(("hecate:backup:consul_token", "required when backups are enabled: the backup job records "
                                                     "each backup in Consul KV with it; " + REF_FORM))
    if not hecate_edge_jobs.environment(pillar):
        errors.append(("hecate:global:environment", "required when backups are enabled: the records live under "
                                                    "hecate/backups/<environment>/"))
    return errors


def _check_images(pillar, env, jobs):
    errors = []
    for path, image in hecate_edge_jobs.images(pillar, jobs).items():
        tag = hecate_edge_jobs.image_tag(image)
        if env not in ("lab", "dev") and (tag is None or tag == "latest"):
            errors.append((path, f"{image!r} is not pinned: use an explicit tag (':latest' and untagged "
                                 "images are allowed only in lab, dev)"))
    if "postgresql" in jobs:
        image = hecate_edge_jobs.job_settings(pillar, "postgresql")["image"]
        tag = hecate_edge_jobs.image_tag(image) or ""
        if not re.match(r"^\d+", tag):
            errors.append(("hecate:jobs:postgresql:image", (
                f"{image!r}: pin PostgreSQL's major version in the tag (e.g. postgres:16-alpine): a new major "
                "version cannot open the old data directory (dump and restore instead)")))
    return errors


def _loopback_host(host):
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _check_caddy(pillar, jobs):
    if "caddy" not in jobs:
        return []
    errors = []
    _, problem = hecate_edge_jobs.caddy_count(pillar)
    if problem:
        errors.append(("hecate:jobs:caddy:count", problem))
    caddy = ((pillar.get("hecate") or {}).get("reverse_proxy") or {}).get("caddy") or {}
    ports = caddy.get("ports") or {}
    admin = ports.get("admin", 2019)
    url = (((pillar.get("hecate") or {}).get("connections") or {}).get("caddy") or {}).get("admin_url")
    if url:
        parts = urllib.parse.urlsplit(url)
        if not _loopback_host(parts.hostname or "") or parts.port != admin:
            errors.append(("hecate:connections:caddy:admin_url", (
                f"{url!r}: the Caddy job's admin API listens on 127.0.0.1:{admin} only "
                "(hecate:reverse_proxy:caddy:ports:admin), never on a public address; point admin_url there")))
    return errors


def _check_authentik(pillar, jobs):
    if "authentik" not in jobs:
        return []
    errors = []
    hecate = pillar.get("hecate") or {}
    ak = hecate.get("authentik") or {}
    if not ak.get("version"):
        errors.append(("hecate:authentik:version", "required: the Authentik release the job runs"))
    for key in ("secret_key",):
        if key not in ak:
            errors.append((f"hecate:authentik:{key}", "required: " + REF_FORM))
    if "password" not in (ak.get("database") or {}):
        errors.append(("hecate:authentik:database:password", "required: " + REF_FORM))
    boot = ak.get("bootstrap") or {}
    for key in ("password", "token"):
        if key not in boot:
            errors.append((f"hecate:authentik:bootstrap:{key}", "required: " + REF_FORM))
    conn = (hecate.get("connections") or {}).get("authentik") or {}
    if boot.get("token") and conn.get("token") and conn.get("token") != boot.get("token"):
        errors.append(("hecate:connections:authentik:token", (
            "must be the same Vault reference as hecate:authentik:bootstrap:token: hecate deploys Authentik "
            "with that token and then calls its API with it")))
    if "caddy" in jobs and not ((hecate.get("verify") or {}).get("probe") or {}).get("url"):
        errors.append(("hecate:verify:probe:url", "required: the URL of Authentik's health endpoint through "
                                                  "Caddy (https://<authentik domain>/-/health/live/)"))
    return errors


def _check_volumes(pillar, jobs):
    errors = []
    agent = hecate_edge_jobs.agent_pillar(pillar)
    if not isinstance(agent, dict):
        return [("hecate:nomad:agent", "required when hecate:nomad:jobs is set: the edge's Nomad client")]
    have = agent.get("host_volumes") or {}
    for name, why in hecate_edge_jobs.required_volumes(pillar, jobs).items():
        if name not in have:
            errors.append((f"hecate:nomad:agent:host_volumes:{name}", f"required host volume is missing ({why})"))
    return errors
