"""
Prerequisite checks before an orchestration writes anything: can this minion reach the
APIs it will call (with its credentials), and do the secrets that hecate does not make
itself exist in Vault. Everything here only reads.
"""

import salt.exceptions

try:
    import hecate_authentik_client
    import hecate_config
    import hecate_dns_client
    import hecate_dns_records
    import hecate_http
    import hecate_secrets
    import hecate_vault_client
except ImportError:  # installed with pip
    from saltext.hecate.utils import (
        hecate_authentik_client,
        hecate_config,
        hecate_dns_client,
        hecate_dns_records,
        hecate_http,
        hecate_secrets,
        hecate_vault_client,
    )

DURATION = {"type": "string", "pattern": r"^[0-9]+(s|m|h)$"}
PILLAR_SCHEMA = {
    # the orchestration's own settings
    "hecate:orchestration": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "lock_ttl": DURATION,
            "lock_wait": {"type": "number", "minimum": 0},
        },
    },
    # what step 10 checks after a deployment
    "bionicgpt:verify": {
        "type": "object",
        "additionalProperties": False,
        "required": ["services"],
        "properties": {
            "services": {"type": "array", "items": {"type": "string", "minLength": 1}},
            "timeout": {"type": "number", "exclusiveMinimum": 0},
            "probe": {
                "type": "object",
                "additionalProperties": False,
                "required": ["url"],
                "properties": {
                    "url": {"type": "string", "pattern": r"^https?://[^\s/]+(/\S*)?$"},
                    "host": {"type": ["string", "null"]},
                    "ca_bundle": {"type": ["string", "null"]},
                },
            },
        },
    },
}

# system -> (settings key holding the URL, a read-only endpoint that needs the token,
#            the header the token goes in, how the token is sent)
ENDPOINTS = {
    "caddy": ("admin_url", "/config/apps/http/servers", None, None),
    "authentik": ("url", "/api/v3/admin/version/", "Authorization", "Bearer {}"),
    "consul": ("url", "/v1/status/leader", "X-Consul-Token", "{}"),
    "nomad": ("url", "/v1/status/leader", "X-Nomad-Token", "{}"),
    "vault": ("url", "/v1/auth/token/lookup-self", "X-Vault-Token", "{}"),
}


def reach(system, opts, pillar, sdb_get=None, context=None):
    """
    One authenticated read against ``system``; returns a short description, raises
    ``CommandExecutionError`` naming the system and why it is not usable.
    """
    if system == "hetzner_dns":
        return reach_dns(opts, pillar, sdb_get, context)
    if system not in ENDPOINTS:
        raise salt.exceptions.SaltInvocationError(
            f"unknown system '{system}'; one of {', '.join(sorted(ENDPOINTS) + ['hetzner_dns'])}"
        )
    url_key, path, header, fmt = ENDPOINTS[system]
    settings = hecate_config.connection(system, opts, pillar)
    url = settings.get(url_key)
    if not url:
        raise salt.exceptions.SaltInvocationError(f"hecate:connections:{system}:{url_key} is not set")
    if system == "authentik":
        hecate_authentik_client.check_transport(url, hecate_authentik_client.environment(opts, pillar))
    headers = {}
    if system == "caddy" and settings.get("origin"):
        headers["Origin"] = settings["origin"]
    if header and settings.get("token"):
        resolve = hecate_vault_client.Resolver(opts, pillar, sdb_get, context)
        token = resolve(settings["token"], f"hecate:connections:{system}:token")
        headers[header] = fmt.format(token.reveal())
    client = hecate_http.Client(
        url,
        system.capitalize() if system != "caddy" else "Caddy admin API",
        headers=headers,
        timeout=min(float(settings.get("timeout", 10)), 10.0),
        retries=1,
        **hecate_config.tls_args(settings, system),
    )
    try:
        resp = client.request("GET", path, ok=range(200, 300))
    except hecate_http.HTTPError as exc:
        if exc.status in (401, 403):
            raise salt.exceptions.CommandExecutionError(
                f"{system}: token invalid or lacks permission ({exc})"
            ) from None
        raise
    finally:
        client.close()
    return f"{system} at {url}: reachable ({resp.status_code})"


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
    produced = set(hecate_vault_client.generated_specs(pillar))
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
