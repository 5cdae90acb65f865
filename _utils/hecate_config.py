"""
Where hecate's modules find their connection settings.

Every system has one settings block, looked up the way Salt's ``config.get`` does
(minion opts win over pillar), merged over defaults:

.. code-block:: yaml

    # minion config (/etc/salt/minion.d/hecate.conf) or pillar
    hecate:
      connections:
        caddy:     {admin_url: http://127.0.0.1:2019, origin: null}
        authentik: {url: https://auth.example.com, token: {vault: secret/hecate/authentik, key: api_token}}
        nomad:     {url: http://127.0.0.1:4646, token: sdb://osenv/NOMAD_TOKEN}
        consul:    {url: http://127.0.0.1:8500}
        vault:     {url: https://vault.example.com:8200, token: sdb://osenv/VAULT_TOKEN}
        hetzner_dns: {token: {vault: secret/hecate/hetzner, key: dns_api_token}}

Values that are secrets (``token``, ``secret_id`` ...) may be ``sdb://`` URIs or Vault
references (see :mod:`hecate_secrets`); they are resolved by the caller at the moment
of use, never stored back into pillar or returned.
"""

import copy

DEFAULTS = {
    "caddy": {
        "admin_url": "http://127.0.0.1:2019",
        "origin": None,
        "verify": True,  # for an https admin_url (e.g. a TLS proxy in front of the API)
        "ca_bundle": None,
        "timeout": 30,
        "retries": 2,
        "state_dir": "/var/lib/hecate/caddy",
    },
    "authentik": {
        "url": None,
        "token": None,
        "verify": True,
        "ca_bundle": None,
        "timeout": 30,
        "retries": 3,
        "page_size": 100,
    },
    "nomad": {
        "url": "http://127.0.0.1:4646",
        "token": None,
        "namespace": "default",
        "region": None,
        "verify": True,
        "ca_bundle": None,
        "timeout": 30,
        "retries": 3,
    },
    "consul": {
        "url": "http://127.0.0.1:8500",
        "token": None,
        "datacenter": None,
        "verify": True,
        "ca_bundle": None,
        "timeout": 30,
        "retries": 3,
    },
    "hetzner_dns": {
        "api_endpoint": "https://api.hetzner.cloud/v1",
        "token": None,
        "verify": True,
        "ca_bundle": None,
        "timeout": 30,
        "retries": 5,
        "backoff": 1.0,
        "action_timeout": 120,
        "poll_interval": 1.0,
    },
    "vault": {
        "url": "https://127.0.0.1:8200",
        "token": None,
        "approle": None,
        "namespace": None,
        "verify": True,
        "ca_bundle": None,
        "timeout": 30,
        "retries": 3,
    },
}


def deep_merge(base, override):
    """Return a new dict: ``override`` merged recursively over ``base`` (lists replace)."""
    out = copy.deepcopy(base)
    for key, val in (override or {}).items():
        if isinstance(val, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], val)
        else:
            out[key] = copy.deepcopy(val)
    return out


def plain(node):
    """A deep copy as plain dicts/lists (``__pillar__`` values may be loader proxies)."""
    if hasattr(node, "items"):
        return {k: plain(v) for k, v in node.items()}
    if isinstance(node, (list, tuple)):
        return [plain(v) for v in node]
    return node


def traverse(data, path, default=None, delimiter=":"):
    """``traverse({"a": {"b": 1}}, "a:b") == 1``; missing keys give ``default``."""
    cur = data
    for part in path.split(delimiter):
        # duck-typed: __pillar__/__opts__ are loader-context proxies, not dict instances
        try:
            cur = cur[part]
        except (KeyError, TypeError, IndexError):
            return default
    return cur


def connection(system, opts=None, pillar=None, overrides=None):
    """
    Settings for ``system``: defaults < pillar < minion opts < explicit overrides.

    Returns a new dict; values are not resolved (a token may still be a reference).
    """
    if system not in DEFAULTS:
        raise KeyError(f"unknown hecate connection '{system}'")
    path = f"hecate:connections:{system}"
    merged = deep_merge(DEFAULTS[system], traverse(pillar or {}, path, {}) or {})
    merged = deep_merge(merged, traverse(opts or {}, path, {}) or {})
    merged = deep_merge(merged, {k: v for k, v in (overrides or {}).items() if v is not None})
    return merged


def tls_args(settings, system=None):
    """
    ``verify``/``ca_bundle`` (and the settings key TLS errors name) for
    :class:`hecate_http.Client` from the settings block of ``system``. A missing or null
    ``verify`` means verify: only ``verify: false`` turns it off.
    """
    args = {"verify": settings.get("verify", True), "ca_bundle": settings.get("ca_bundle")}
    if system:
        args["config_key"] = f"hecate:connections:{system}"
    return args
