"""
The edge's own Nomad jobs (Caddy, Authentik, its PostgreSQL and, before Authentik 2025.10,
Redis): what hecate deploys on this edge, Caddy's bootstrap config, the Authentik secrets
hecate generates, and whether Authentik's API and Caddy's admin API answer (these read only);
and the edge's backups: run the backup job now, list its records, restore Authentik's
database from one (``_utils/hecate_backups.py``, docs/backups.md).

The job files (salt/hecate/edge/jobs/*.nomad.hcl.j2) and SLS (salt/hecate/edge/*.sls) call
these functions; the logic is in ``_utils/hecate_edge_jobs.py``.

CLI Example:

.. code-block:: bash

    salt -G roles:hecate-edge hecate_edge.jobs
    salt -G roles:hecate-edge hecate_edge.authentik_status
    salt -G roles:hecate-edge hecate_edge.job_status
    salt -G roles:hecate-edge hecate_edge.backups
"""

import salt.exceptions

import hecate_authentik_client
import hecate_backups
import hecate_caddy_client
import hecate_clients
import hecate_config
import hecate_edge_jobs
import hecate_edge_status
import hecate_http
import hecate_loader

__virtualname__ = "hecate_edge"


def __virtual__():
    return hecate_loader.virtual(__virtualname__)


def jobs():
    """
    The jobs hecate deploys on the edge, in order: ``[{"name", "job_id"}]`` (Redis only for
    Authentik releases that still use it, the backup job only when ``hecate:backup:enabled``).

    CLI Example:

    .. code-block:: bash

        salt -G roles:hecate-edge hecate_edge.jobs
    """
    return [{"name": name, "job_id": hecate_edge_jobs.job_id(__pillar__, name)}
            for name in hecate_edge_jobs.deploy_order(__pillar__)]


def needs_redis(version=None):
    """
    Whether Authentik ``version`` (default: ``hecate:authentik:version``) still uses Redis:
    every release before 2025.10 (whose release notes say it "fully removed" Redis).

    CLI Example:

    .. code-block:: bash

        salt -G roles:hecate-edge hecate_edge.needs_redis 2025.6.1
    """
    if version is None:
        version = hecate_config.traverse(__pillar__, "hecate:authentik:version")
    return hecate_edge_jobs.needs_redis(version)


def settings(job):
    """
    The settings the job file ``job`` is rendered with (pillar with hecate's defaults):
    ``job`` is ``postgresql``, ``redis``, ``authentik``, ``caddy``, ``backup`` or ``nomad``.
    Vault references are returned as they are (never values).

    CLI Example:

    .. code-block:: bash

        salt -G roles:hecate-edge hecate_edge.settings authentik
    """
    pillar = __pillar__
    if job == "nomad":
        return hecate_edge_jobs.nomad_settings(pillar)
    if job not in hecate_edge_jobs.ORDER:
        raise salt.exceptions.SaltInvocationError(
            f"unknown edge job {job!r}; one of {', '.join(hecate_edge_jobs.ORDER)} or nomad")
    out = {
        "job_id": hecate_edge_jobs.job_id(pillar, job),
        "deployment": hecate_edge_jobs.deployment(pillar),
        "nomad": hecate_edge_jobs.nomad_settings(pillar),
    }
    out.update(hecate_edge_jobs.job_settings(pillar, job))
    if job != "backup":
        out["update"] = hecate_edge_jobs.update_block(pillar, job)
    if job == "authentik":
        out["authentik"] = hecate_edge_jobs.authentik_settings(pillar)
        out["redis"] = hecate_edge_jobs.needs_redis(out["authentik"].get("version"))
        out["postgresql"] = hecate_edge_jobs.job_settings(pillar, "postgresql")
        out["redis_settings"] = hecate_edge_jobs.job_settings(pillar, "redis")
        out["resources"] = hecate_edge_jobs.resources(pillar, "authentik")
        out["worker_resources"] = hecate_edge_jobs.resources(pillar, "authentik_worker")
    elif job == "postgresql":
        out["authentik"] = hecate_edge_jobs.authentik_settings(pillar)
        out["resources"] = hecate_edge_jobs.resources(pillar, "postgresql")
    elif job == "redis":
        out["resources"] = hecate_edge_jobs.resources(pillar, "redis")
    elif job == "caddy":
        out["image_ref"] = hecate_edge_jobs.caddy_image(pillar)
        out["count"] = hecate_edge_jobs.caddy_count(pillar)[0]
        out["ports"] = hecate_edge_jobs.caddy_ports(pillar)
        out["resources"] = hecate_edge_jobs.resources(pillar, "reverse_proxy")
    elif job == "backup":
        out["backup"] = hecate_edge_jobs.backup_settings(pillar)
        out["targets"] = {t: hecate_edge_jobs.BACKUP_TARGETS[t] for t in out["backup"]["targets"]}
        out["env"] = hecate_edge_jobs.environment(pillar)
        out["key_prefix"] = hecate_edge_jobs.backup_key(out["env"])
        out["authentik"] = hecate_edge_jobs.authentik_settings(pillar)
        out["postgresql"] = hecate_edge_jobs.job_settings(pillar, "postgresql")
        out["caddy"] = hecate_edge_jobs.job_settings(pillar, "caddy")
        out["resources"] = hecate_edge_jobs.resources(pillar, "backup")
    return out


def caddy_bootstrap():
    """
    Caddy's bootstrap config (JSON text, escaped for the job's HCL heredoc): the admin API on
    127.0.0.1 only, config persisted (the autosave), the empty ``hecate`` server. Caddy reads
    it only when no autosave exists (``caddy run --resume``).

    CLI Example:

    .. code-block:: bash

        salt -G roles:hecate-edge hecate_edge.caddy_bootstrap
    """
    return hecate_edge_jobs.caddy_bootstrap_text(__pillar__)


def secrets():
    """
    The Authentik secrets hecate generates into Vault when it deploys Authentik (where and
    how, never values): ``{name: {path, key, length, alphabet, rotatable}}``.

    CLI Example:

    .. code-block:: bash

        salt -G roles:hecate-edge hecate_edge.secrets
    """
    return hecate_edge_jobs.generated_secrets(__pillar__)


def authentik_status():
    """
    Whether Authentik answers on ``hecate:connections:authentik:url``: its readiness
    endpoint (``/-/health/ready/``, 200 once its database answers) and an authenticated read
    with hecate's API token. ``{"ready": bool, "token": bool|None, "comment": str}``.

    CLI Example:

    .. code-block:: bash

        salt -G roles:hecate-edge hecate_edge.authentik_status
    """
    return _authentik_check(__opts__, __pillar__, __salt__.get("sdb.get"), __context__)


def caddy_status():
    """
    Whether Caddy's admin API answers on ``hecate:connections:caddy:admin_url``:
    ``{"answers": bool, "servers": [names], "comment": str}``.

    CLI Example:

    .. code-block:: bash

        salt -G roles:hecate-edge hecate_edge.caddy_status
    """
    return _caddy_check(__opts__, __pillar__)


def job_status():
    """
    The edge's own Nomad jobs as ``salt-run hecate.status`` shows them (reads Nomad only):
    ``{"ok", "jobs": [{"job", "version", "stable", "images", "tags", "deployment": {id,
    job_version, status, description}, "canaries": {group: {desired, placed, healthy,
    promoted}}, "ok", "comment"}]}``. ``ok``: every job runs a version whose deployment
    succeeded (the backup job: registered).

    CLI Example:

    .. code-block:: bash

        salt -G roles:hecate-edge hecate_edge.job_status
    """
    client = hecate_clients.nomad(__opts__, __pillar__, __context__, __salt__)
    return hecate_edge_status.job_rows(client, __pillar__)


# -- backups (docs/backups.md; the logic is in _utils/hecate_backups.py) ----------------------------
RESTORE_JOB = "salt://hecate/edge/jobs/restore.nomad.hcl.j2"


def _clients():
    return (hecate_clients.nomad(__opts__, __pillar__, __context__, __salt__),
            hecate_clients.consul(__opts__, __pillar__, __context__, __salt__))


def backup(target=None, timeout=600):
    """
    Run the backup job (``hecate-backup``) now - Nomad's periodic force - and wait for the run:
    its id (the launch time, UTC), its child job and the records it wrote in Consul KV
    (``hecate/backups/<env>/<target>/<id>``: when, size, sha256, file, volume, node, job,
    allocation); ``record`` is ``target``'s.

    CLI Example:

    .. code-block:: bash

        salt -G roles:hecate-edge hecate_edge.backup target=authentik_database
    """
    nomad, consul = _clients()
    return hecate_backups.run(nomad, consul, __pillar__, target=target, timeout=float(timeout))


def backups(target=None):
    """
    The backup records of this edge's environment (of ``target``), newest first.

    CLI Example:

    .. code-block:: bash

        salt -G roles:hecate-edge hecate_edge.backups target=authentik_database
    """
    _, consul = _clients()
    return hecate_backups.records(consul, hecate_backups.environment(__pillar__), target)


def restore(target=None, backup=None, stop_authentik=False, test=False, timeout=900):  # pylint: disable=redefined-outer-name
    """
    Restore ``target`` (``authentik_database``) from the backup with id ``backup``: refused
    while Authentik's job runs unless ``stop_authentik=True`` (then it is stopped, the one-off
    job ``hecate-restore`` runs ``pg_restore --clean`` on the node holding the archive, and
    Authentik is started again on the version it ran). ``test=True``: what it would do.

    CLI Example:

    .. code-block:: bash

        salt -G roles:hecate-edge hecate_edge.restore target=authentik_database backup=20260101T030000Z test=True
    """
    if not target or not backup:
        raise salt.exceptions.SaltInvocationError("target=<backup target> and backup=<backup id> are required")
    nomad, consul = _clients()

    def render(record):
        return __salt__["nomad.render"](RESTORE_JOB, context={"restore": record})

    return hecate_backups.restore(nomad, consul, __pillar__, target, backup, render,
                                  stop_authentik=_truthy(stop_authentik), test=_truthy(test), timeout=float(timeout))


def upgrade_check():
    """
    Whether this deploy upgrades Authentik: ``hecate:authentik:version`` against the release the
    running ``hecate-authentik`` job runs (an upgrade migrates its database, so the edge deploy
    backs it up first).

    CLI Example:

    .. code-block:: bash

        salt -G roles:hecate-edge hecate_edge.upgrade_check
    """
    nomad, _ = _clients()
    return hecate_backups.upgrade_check(nomad, __pillar__)


def _truthy(value):
    return value is True or str(value).lower() in ("true", "1", "yes")




# -- shared with the hecate_edge states --------------------------------------------------------------
def _authentik_check(opts, pillar, sdb_get=None, context=None):
    settings = hecate_config.connection("authentik", opts, pillar)
    url = (settings.get("url") or "").rstrip("/")
    if not url:
        raise salt.exceptions.SaltInvocationError("hecate:connections:authentik:url is not set")
    probe = hecate_http.Client(url, "Authentik", retries=0, timeout=5,
                               **hecate_config.tls_args(settings, "authentik"))
    try:
        resp = probe.request("GET", "/-/health/ready/", ok=range(100, 600))
    except hecate_http.Unreachable as exc:
        return {"ready": False, "token": None, "comment": str(exc)}
    finally:
        probe.close()
    if resp.status_code >= 300:
        return {"ready": False, "token": None,
                "comment": f"Authentik at {url}: /-/health/ready/ answered {resp.status_code} "
                           "(not ready: its database does not answer yet)"}
    try:
        client = hecate_authentik_client.from_config(opts, pillar, sdb_get, context)
        version = client.call("GET", "/admin/version/")
    except hecate_authentik_client.Forbidden as exc:
        return {"ready": True, "token": False, "comment": _token_refused(pillar, url, exc)}
    except salt.exceptions.CommandExecutionError as exc:
        return {"ready": True, "token": None, "comment": f"Authentik at {url} is ready, but: {exc}"}
    return {"ready": True, "token": True,
            "comment": f"Authentik {((version or {}).get('version_current') or '?')} at {url} is ready and "
                       "accepts hecate's API token"}


def _token_refused(pillar, url, exc):
    ref = hecate_config.traverse(pillar, "hecate:connections:authentik:token")
    where = hecate_edge_jobs.vault_path(ref) if ref else "hecate:connections:authentik:token"
    return (f"Authentik at {url} refuses hecate's API token ({where}): {exc}. AUTHENTIK_BOOTSTRAP_TOKEN is "
            "read only on Authentik's first start, with an empty database; an Authentik whose database "
            "existed before keeps the tokens it has. Create an API token for akadmin in Authentik "
            "(Directory > Tokens and App passwords, intent API) and store its key at that Vault path; "
            "hecate never regenerates or rotates it.")


def _caddy_check(opts, pillar):
    settings = hecate_config.connection("caddy", opts, pillar)
    try:
        admin = hecate_caddy_client.CaddyAdmin(dict(settings, retries=0, timeout=5))
        servers = admin.config("apps", "http", "servers")
    except hecate_http.HTTPError as exc:
        return {"answers": False, "servers": [], "comment": str(exc)}
    except hecate_http.Unreachable as exc:
        return {"answers": False, "servers": [], "comment": str(exc)}
    names = sorted((servers or {}).keys()) if isinstance(servers, dict) else []
    return {"answers": True, "servers": names,
            "comment": (f"Caddy's admin API at {settings.get('admin_url')} answers "
                        f"(servers: {', '.join(names) or 'none'})")}
