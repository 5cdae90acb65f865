"""
The API clients of a loader module (execution module, state or runner), built from its
loader dunders. Every module gets them the same way, at the call site::

    client = hecate_clients.authentik(__opts__, __pillar__, __context__, __salt__)
    jobs = hecate_clients.nomad(__opts__, __pillar__, __context__, __salt__, namespace="prod")

Settings come from ``hecate:connections:<system>`` (:func:`hecate_config.connection`: minion
opts win over pillar). Secrets in them (``token``, ``secret_id``) are ``sdb://`` URIs, read with
``__salt__["sdb.get"]`` on a minion (``salt_funcs``) or Salt's sdb on the master (runners pass
no ``salt_funcs``), or Vault references, resolved by :class:`hecate_vault_client.Resolver`.
Each client is cached in ``__context__`` for the run.
"""

import salt.utils.sdb

import hecate_authentik_client
import hecate_caddy_client
import hecate_consul_client
import hecate_dns_client
import hecate_nomad_client
import hecate_vault_client


def sdb_get(opts, salt_funcs=None):
    """How ``sdb://`` URIs are read: the minion's ``sdb.get``, or Salt's sdb on the master."""
    if salt_funcs is not None:
        return salt_funcs.get("sdb.get")
    return lambda uri: salt.utils.sdb.sdb_get(uri, opts)


def authentik(opts, pillar, context, salt_funcs=None):
    """:class:`hecate_authentik_client.AuthentikClient` for ``hecate:connections:authentik``."""
    return hecate_authentik_client.from_config(opts, pillar, sdb_get(opts, salt_funcs), context)


def caddy(opts, pillar):
    """:class:`hecate_caddy_client.CaddyAdmin` for ``hecate:connections:caddy`` (no secrets)."""
    return hecate_caddy_client.CaddyAdmin.from_config(opts, pillar)


def consul(opts, pillar, context, salt_funcs=None):
    """:class:`hecate_consul_client.ConsulClient` for ``hecate:connections:consul``."""
    return hecate_consul_client.from_config(opts, pillar, sdb_get(opts, salt_funcs), context)


def dns(opts, pillar, context, salt_funcs=None):
    """:class:`hecate_dns_client.DNSClient` for ``hecate:connections:hetzner_dns`` (Hetzner DNS)."""
    return hecate_dns_client.from_config(opts, pillar, sdb_get(opts, salt_funcs), context)


def nomad(opts, pillar, context, salt_funcs=None, namespace=None, region=None):
    """:class:`hecate_nomad_client.NomadClient`; ``namespace``/``region`` override the settings."""
    return hecate_nomad_client.from_config(
        opts, pillar, sdb_get(opts, salt_funcs), context,
        overrides={"namespace": namespace, "region": region},
    )


def vault(opts, pillar, context, salt_funcs=None):
    """:class:`hecate_vault_client.VaultKV` for ``hecate:connections:vault``."""
    return hecate_vault_client.from_config(opts, pillar, sdb_get(opts, salt_funcs), context)


def resolver(opts, pillar, context, salt_funcs=None):
    """A :class:`hecate_vault_client.Resolver` for the secret references a module hands to an API."""
    return hecate_vault_client.Resolver(opts, pillar, sdb_get(opts, salt_funcs), context)
