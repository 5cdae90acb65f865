"""
Prerequisite checks before an orchestration writes anything: can this minion reach the
APIs it will call (with its credentials), and do the secrets that hecate does not make
itself exist in Vault. Everything here only reads.
"""

import urllib.parse

import salt.exceptions

import hecate_authentik_client
import hecate_caddy_client
import hecate_config
import hecate_dns_client
import hecate_dns_records
import hecate_edge_jobs
import hecate_http
import hecate_secrets
import hecate_vault_client
import hecate_vault_schema

# Consul's probe: a key read under hecate/ (locks and deployment records live there). A
# single-key read is checked against key:read before Consul looks the key up
# (agent/consul/kvs_endpoint.go KVS.Get), so 404 means "allowed, not written yet" and a
# token that is unknown or lacks the permission gets 403; /v1/status/leader needs no ACL.
CONSUL_PROBE_KEY = "hecate/deployments"
DEFAULT_JOB_PREFIX = "bionicgpt-"

# system -> (settings key holding the URL, the header the token goes in, how it is sent)
ENDPOINTS = {
    "caddy": ("admin_url", None, None),
    "authentik": ("url", "Authorization", "Bearer {}"),
    "consul": ("url", "X-Consul-Token", "{}"),
    "nomad": ("url", "X-Nomad-Token", "{}"),
    "vault": ("url", None, None),  # logs in as the Vault client does (token or AppRole)
}


def _probe(system, settings, pillar):
    """``(path, acceptable statuses, what a success proves)`` of one read that needs the token."""
    if system == "caddy":
        return "/config/apps/http/servers", range(200, 300), "admin API answers"
    if system == "authentik":
        return "/api/v3/admin/version/", range(200, 300), "token accepted"
    if system == "consul":
        query = {"dc": settings["datacenter"]} if settings.get("datacenter") else {}
        path = f"/v1/kv/{CONSUL_PROBE_KEY}" + (f"?{urllib.parse.urlencode(query)}" if query else "")
        return path, (200, 404), f"token may read {CONSUL_PROBE_KEY}"
    # Nomad: the job list for hecate's prefix needs list-jobs in the namespace (nomad/
    # job_endpoint.go Job.List); an unknown token or one without the capability is 403
    # "Permission denied" ("ACL token not found" before Nomad 1.7; command/agent/http.go
    # errCodeFromHandler); /v1/status/leader needs no token at all
    prefix = hecate_config.traverse(pillar or {}, "bionicgpt:nomad:job_prefix")
    query = {"prefix": DEFAULT_JOB_PREFIX if prefix is None else prefix,
             "namespace": settings.get("namespace") or "default"}
    if settings.get("region"):
        query["region"] = settings["region"]
    return f"/v1/jobs?{urllib.parse.urlencode(query)}", range(200, 300), f"token may list jobs {query['prefix']}*"


def reach(system, opts, pillar, sdb_get=None, context=None):
    """
    One authenticated read against ``system`` with the credentials the modules use: the
    read needs the token (Consul: a key under hecate/, Nomad: the job list for hecate's
    prefix, Vault: the client's own login then ``lookup-self``). Returns a short
    description, raises ``CommandExecutionError`` naming the system and the setting to fix.
    """
    if system == "hetzner_dns":
        return reach_dns(opts, pillar, sdb_get, context)
    if system not in ENDPOINTS:
        raise salt.exceptions.SaltInvocationError(
            f"unknown system '{system}'; one of {', '.join(sorted(ENDPOINTS) + ['hetzner_dns'])}"
        )
    url_key, header, fmt = ENDPOINTS[system]
    settings = hecate_config.connection(system, opts, pillar)
    url = settings.get(url_key)
    if not url:
        raise salt.exceptions.SaltInvocationError(f"hecate:connections:{system}:{url_key} is not set")
    if system == "vault":
        return _reach_vault(settings, sdb_get)
    if system == "authentik":
        hecate_authentik_client.check_transport(url, hecate_authentik_client.environment(opts, pillar))
    headers = {}
    if system == "caddy" and settings.get("origin"):
        headers["Origin"] = settings["origin"]
    if header and settings.get("token"):
        resolve = hecate_vault_client.Resolver(opts, pillar, sdb_get, context)
        token = resolve(settings["token"], f"hecate:connections:{system}:token")
        headers[header] = fmt.format(token.reveal())
    path, accepted, proves = _probe(system, settings, pillar)
    client = hecate_http.Client(
        url,
        system.capitalize() if system != "caddy" else "Caddy admin API",
        headers=headers,
        timeout=min(float(settings.get("timeout", 10)), 10.0),
        retries=1,
        **hecate_config.tls_args(settings, system),
    )
    try:
        resp = client.request("GET", path, ok=accepted)
    except hecate_http.HTTPError as exc:
        hint = hecate_caddy_client.refusal_hint(settings, str(exc)) if system == "caddy" else None
        if hint:  # Caddy's admin API has no token: a 403 is its Host or Origin check
            raise salt.exceptions.CommandExecutionError(f"{exc}. {hint}") from None
        if exc.status in (401, 403) and header:
            key = f"hecate:connections:{system}:token"
            which = key if settings.get("token") else f"no token ({key} is not set)"
            raise salt.exceptions.CommandExecutionError(
                f"{system}: token invalid or lacks permission: {which} ({exc})"
            ) from None
        raise
    finally:
        client.close()
    return f"{system} at {url}: reachable ({resp.status_code}), {proves}"


def _reach_vault(settings, sdb_get):
    """Log in exactly as :class:`hecate_vault_client.VaultKV` does, then look the token up."""
    settings = dict(settings, timeout=min(float(settings.get("timeout") or 10), 10.0), retries=1)
    key = "hecate:connections:vault:" + ("token" if settings.get("token") or not settings.get("approle") else "approle")
    try:
        vault = hecate_vault_client.VaultKV(settings, sdb_get=sdb_get)
        info = vault.lookup_self()
    except hecate_http.Unreachable:
        raise
    except salt.exceptions.CommandExecutionError as exc:
        raise salt.exceptions.CommandExecutionError(f"vault: {key}: {exc}") from None
    how = "AppRole login" if key.endswith("approle") else "token"
    policies = ", ".join(info.get("policies") or []) or "none"
    return f"vault at {settings['url']}: reachable, {how} accepted (policies: {policies})"


def reach_dns(opts, pillar, sdb_get=None, context=None):
    """Hetzner DNS (through hcloud, as the DNS states call it): every zone of hecate:dns is
    readable with the token and is a primary zone."""
    if not hecate_dns_client.HAS_HCLOUD:
        raise salt.exceptions.CommandExecutionError(
            "hetzner_dns: the hcloud library is not installed on this minion (pip install 'hcloud>=2.27')"
        )
    client = hecate_dns_client.from_config(opts, pillar, sdb_get, context)
    zones = [str(z.get("name", "")).lower().rstrip(".")
             for z in (hecate_dns_records.dns_settings(pillar) or {}).get("zones") or []]
    for zone in zones:
        client.zone(zone)
    return f"hetzner_dns at {client.endpoint}: reachable, zones {', '.join(zones) or '(none)'} readable"


def produced_by_hecate(pillar):
    """``{(path, key)}`` of secrets that hecate itself writes during a run."""
    produced = set(hecate_vault_schema.generated_specs(pillar))
    # the Authentik secrets hecate generates when it deploys Authentik (hecate:authentik refs)
    produced |= {(spec["path"], spec["key"]) for spec in hecate_edge_jobs.generated_secrets(pillar).values()}
    creds = hecate_config.traverse(pillar, "bionicgpt:authentik:provider:credentials")
    if isinstance(creds, str):
        produced |= {(creds, "client_id"), (creds, "client_secret")}
    return produced


def missing_references(pillar, vault):
    """
    ``[(key_path, message)]`` for each Vault reference in the hecate/bionicgpt pillar
    that hecate does not produce and that Vault does not have. ``vault`` is a
    :class:`hecate_vault_client.VaultKV`; values are read to see their keys and dropped.
    """
    produced = produced_by_hecate(pillar)
    tree = {k: pillar.get(k) for k in ("hecate", "bionicgpt") if pillar.get(k) is not None}
    if "authentik" not in hecate_edge_jobs.enabled_jobs(pillar) and isinstance(tree.get("hecate"), dict):
        # Authentik's own secrets matter only when hecate deploys it (hecate:nomad:jobs)
        tree["hecate"] = {k: v for k, v in tree["hecate"].items() if k != "authentik"}
    if "backup" not in hecate_edge_jobs.deploy_order(pillar) and isinstance(tree.get("hecate"), dict):
        # the backup job's Consul token matters only when hecate deploys the job
        tree["hecate"] = {k: v for k, v in tree["hecate"].items() if k != "backup"}
    keys_at = {}
    errors = []
    for key_path, ref in hecate_secrets.find_refs(tree):
        try:
            mount, path, key = hecate_secrets.parse_ref(ref, key_path)
        except salt.exceptions.SaltInvocationError:
            continue  # the schema check reports malformed references
        if (f"{mount}/{path}", key) in produced:
            continue
        if (mount, path) not in keys_at:
            data = vault.read_data(mount, path)
            keys_at[(mount, path)] = set(data or {})
        if key not in keys_at[(mount, path)]:
            errors.append(
                (key_path, f"Vault has no key '{key}' at {mount}/{path} (hecate does not create it: "
                           "store it before deploying)")
            )
    return errors
