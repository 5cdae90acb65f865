"""
Consul for hecate: KV with check-and-set, service registration, health, catalog,
sessions and locks.

Named ``hecate_consul`` so that it never shadows Salt's or saltext-consul's ``consul``
module. Connection settings come from ``hecate:connections:consul`` (minion config wins
over pillar): ``url``, ``token`` (literal in the minion config, ``sdb://`` URI or Vault
reference; always sent as the ``X-Consul-Token`` header and preferred over
``CONSUL_HTTP_TOKEN``), ``datacenter``, ``verify``, ``ca_bundle``, ``timeout``, ``retries``.

CLI Example:

.. code-block:: bash

    salt -G 'roles:hecate-edge' hecate_consul.kv_get hecate/deployments/prod/latest decode=json
    salt -G 'roles:hecate-edge' hecate_consul.service_addresses bionicgpt-oauth2-proxy
    salt -G 'roles:hecate-edge' hecate_consul.lock_info hecate/locks/prod
"""

import salt.exceptions

import hecate_clients
import hecate_consul_client
import hecate_loader

__virtualname__ = "hecate_consul"


def __virtual__():
    return hecate_loader.virtual(__virtualname__, libs=("consul",))


# -- KV -------------------------------------------------------------------------------------------
def kv_get(key, decode="text", meta=False, recurse=False):
    """
    Read a key. ``decode``: ``text`` (default), ``json``, ``auto`` (JSON when it parses) or
    ``raw``. With ``meta=True`` returns the entry (Key, Value, Flags, ModifyIndex,
    CreateIndex, LockIndex, Session). With ``recurse=True`` returns ``{key: value}`` of
    every key under the prefix. A missing key gives None.

    CLI Example:

    .. code-block:: bash

        salt -G 'roles:hecate-edge' hecate_consul.kv_get hecate/deployments/prod/latest decode=json
        salt -G 'roles:hecate-edge' hecate_consul.kv_get hecate/deployments/prod recurse=True decode=auto
    """
    client = hecate_clients.consul(__opts__, __pillar__, __context__, __salt__)
    if recurse:
        return {
            e["Key"]: _entry(e, decode) if meta else hecate_consul_client.decode_value(e["Value"], decode)
            for e in client.kv_list(key)
        }
    _, entry = client.kv_get(key)
    if entry is None:
        return None
    if meta:
        return _entry(entry, decode)
    return hecate_consul_client.decode_value(entry["Value"], decode)


def _entry(entry, decode):
    out = {k: entry.get(k) for k in ("Key", "Flags", "CreateIndex", "ModifyIndex", "LockIndex")}
    out["Session"] = entry.get("Session") or None
    out["Value"] = hecate_consul_client.decode_value(entry.get("Value"), decode)
    return out


def kv_put(key, value, cas=None, flags=None):
    """
    Write a key. Dicts and lists are stored as canonical JSON, strings as UTF-8.
    ``cas``: the ModifyIndex the key must still have (0 = only create it); a mismatch
    raises an error naming the key and its current index instead of overwriting.

    CLI Example:

    .. code-block:: bash

        salt -G 'roles:hecate-edge' hecate_consul.kv_put hecate/config/motd 'hello'
        salt -G 'roles:hecate-edge' hecate_consul.kv_put hecate/deployments/lab/latest '{"version": 3}' cas=0
    """
    client = hecate_clients.consul(__opts__, __pillar__, __context__, __salt__)
    if cas is not None:
        return client.kv_put_cas(key, value, int(cas), flags=flags)
    return client.kv_put(key, value, flags=flags)


def kv_delete(key, cas=None, recurse=False):
    """
    Delete a key (``recurse=True``: every key under the prefix). With ``cas`` the key is
    deleted only if its ModifyIndex still matches; a mismatch raises an error.

    CLI Example:

    .. code-block:: bash

        salt -G 'roles:hecate-edge' hecate_consul.kv_delete hecate/tmp/x
        salt -G 'roles:hecate-edge' hecate_consul.kv_delete hecate/tmp recurse=True
    """
    client = hecate_clients.consul(__opts__, __pillar__, __context__, __salt__)
    done = client.kv_delete(key, cas=None if cas is None else int(cas), recurse=bool(recurse))
    if not done and cas is not None:
        raise hecate_consul_client.CASConflict(
            f"Consul: key {key} changed since ModifyIndex {cas}; not deleted"
        )
    return done


def kv_keys(prefix="", separator=None):
    """
    Keys under ``prefix`` (with ``separator='/'``: one level, folders end with '/').

    CLI Example:

    .. code-block:: bash

        salt -G 'roles:hecate-edge' hecate_consul.kv_keys hecate/deployments/ separator=/
    """
    return hecate_clients.consul(__opts__, __pillar__, __context__, __salt__).kv_keys(prefix, separator=separator)


# -- services ------------------------------------------------------------------------------------
def service_register(
    service_id,
    name=None,
    address=None,
    port=None,
    tags=None,
    meta=None,
    checks=None,
    weights=None,
    enable_tag_override=False,
):
    """
    Register (or replace) a service on the agent this minion talks to; checks not listed
    are removed (``replace-existing-checks``). Checks use lower-case keys: ``http``/
    ``tcp``/``ttl``, ``interval``, ``timeout``, ``id``, ``name``, ``header``, ``method``,
    ``tls_skip_verify``, ``deregister_critical_service_after``...

    CLI Example:

    .. code-block:: bash

        salt -G 'roles:hecate-edge' hecate_consul.service_register jenkins-master address=100.65.138.128 port=8059 \\
            checks='[{"http": "http://100.65.138.128:8059/login", "interval": "30s", "timeout": "5s"}]'
    """
    spec = {"name": name, "address": address, "port": port, "tags": tags, "meta": meta,
            "checks": checks, "weights": weights, "enable_tag_override": enable_tag_override}
    client = hecate_clients.consul(__opts__, __pillar__, __context__, __salt__)
    return client.service_register(hecate_consul_client.service_definition(service_id, spec))


def service_deregister(service_id):
    """
    Remove a service (by ID) from the agent. Returns False when it was not registered.

    CLI Example:

    .. code-block:: bash

        salt -G 'roles:hecate-edge' hecate_consul.service_deregister jenkins-master
    """
    return hecate_clients.consul(__opts__, __pillar__, __context__, __salt__).service_deregister(service_id)


def services():
    """
    The services registered on the agent (by ID).

    CLI Example:

    .. code-block:: bash

        salt -G 'roles:hecate-edge' hecate_consul.services
    """
    return hecate_clients.consul(__opts__, __pillar__, __context__, __salt__).agent_services()


def service_health(name, passing=True, tag=None):
    """
    Health entries of a service (``{Node, Service, Checks}``), only instances whose checks
    all pass unless ``passing=False``, only those carrying ``tag`` when given (Consul's
    ``?tag=`` filter).

    CLI Example:

    .. code-block:: bash

        salt -G 'roles:hecate-edge' hecate_consul.service_health bionicgpt passing=False
        salt -G 'roles:hecate-edge' hecate_consul.service_health whoami passing=False tag=hecate-route
    """
    client = hecate_clients.consul(__opts__, __pillar__, __context__, __salt__)
    return client.health_service(name, passing=_bool(passing), tag=tag)


def service_addresses(name, passing=True):
    """
    ``["address:port", ...]`` of a service's instances (passing only by default): what the
    Caddy route state uses to resolve an upstream through Consul.

    CLI Example:

    .. code-block:: bash

        salt -G 'roles:hecate-edge' hecate_consul.service_addresses bionicgpt-oauth2-proxy
    """
    client = hecate_clients.consul(__opts__, __pillar__, __context__, __salt__)
    return client.service_addresses(name, passing=_bool(passing))


def catalog_services():
    """
    Every service in the catalog with its tags.

    CLI Example:

    .. code-block:: bash

        salt -G 'roles:hecate-edge' hecate_consul.catalog_services
    """
    return hecate_clients.consul(__opts__, __pillar__, __context__, __salt__).catalog_services()


# -- sessions and locks ---------------------------------------------------------------------------
def session_create(name, ttl="15s", lock_delay="15s", behavior="release"):
    """
    Create a session; returns its ID. Renew it within ``ttl`` or it expires.

    CLI Example:

    .. code-block:: bash

        salt -G 'roles:hecate-edge' hecate_consul.session_create deploy ttl=30s
    """
    client = hecate_clients.consul(__opts__, __pillar__, __context__, __salt__)
    return client.session_create(name, ttl=ttl, lock_delay=lock_delay, behavior=behavior)


def session_renew(session_id):
    """
    Renew a session (error when it already expired).

    CLI Example:

    .. code-block:: bash

        salt -G 'roles:hecate-edge' hecate_consul.session_renew 1f0c...
    """
    return hecate_clients.consul(__opts__, __pillar__, __context__, __salt__).session_renew(session_id)


def session_destroy(session_id):
    """
    Destroy a session; the locks it held are released.

    CLI Example:

    .. code-block:: bash

        salt -G 'roles:hecate-edge' hecate_consul.session_destroy 1f0c...
    """
    return hecate_clients.consul(__opts__, __pillar__, __context__, __salt__).session_destroy(session_id)


def session_info(session_id):
    """
    A session, or None when it does not exist.

    CLI Example:

    .. code-block:: bash

        salt -G 'roles:hecate-edge' hecate_consul.session_info 1f0c...
    """
    return hecate_clients.consul(__opts__, __pillar__, __context__, __salt__).session_info(session_id)


def session_list():
    """
    Every session.

    CLI Example:

    .. code-block:: bash

        salt -G 'roles:hecate-edge' hecate_consul.session_list
    """
    return hecate_clients.consul(__opts__, __pillar__, __context__, __salt__).session_list()


def lock_acquire(key, holder=None, ttl="15s", lock_delay="15s", wait=0):
    """
    Take a lock: returns the session ID that holds it. Fails with "lock <key> is held by
    <holder> since <time>" when someone else has it (after waiting ``wait`` seconds for
    it). Keep it with ``lock_renew`` within ``ttl``; give it back with ``lock_release``.
    ``holder`` defaults to this minion's ID.

    CLI Example:

    .. code-block:: bash

        salt -G 'roles:hecate-edge' hecate_consul.lock_acquire hecate/locks/prod holder='alice via salt' ttl=60s
    """
    holder = holder or f"minion {__opts__.get('id')}"
    client = hecate_clients.consul(__opts__, __pillar__, __context__, __salt__)
    return client.lock_acquire(key, holder, ttl=ttl, lock_delay=lock_delay, wait=float(wait or 0))


def lock_renew(session_id):
    """
    Keep a lock: renew the session holding it.

    CLI Example:

    .. code-block:: bash

        salt -G 'roles:hecate-edge' hecate_consul.lock_renew 1f0c...
    """
    hecate_clients.consul(__opts__, __pillar__, __context__, __salt__).lock_renew(session_id)
    return True


def lock_release(key, session_id):
    """
    Release a lock held by ``session_id`` and destroy the session.

    CLI Example:

    .. code-block:: bash

        salt -G 'roles:hecate-edge' hecate_consul.lock_release hecate/locks/prod 1f0c...
    """
    return hecate_clients.consul(__opts__, __pillar__, __context__, __salt__).lock_release(key, session_id)


def lock_info(key):
    """
    Who holds a lock and since when (``held``, ``holder``, ``since``, ``session``).

    CLI Example:

    .. code-block:: bash

        salt -G 'roles:hecate-edge' hecate_consul.lock_info hecate/locks/prod
    """
    return hecate_clients.consul(__opts__, __pillar__, __context__, __salt__).lock_info(key)


def _bool(value):
    if isinstance(value, str):
        if value.lower() in ("1", "true", "yes", "on"):
            return True
        if value.lower() in ("0", "false", "no", "off"):
            return False
        raise salt.exceptions.SaltInvocationError(f"expected true or false, got {value!r}")
    return bool(value)
