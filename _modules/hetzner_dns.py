"""
Hetzner DNS for hecate: the records of the zones in ``hecate:dns``, through the Hetzner
Cloud API (Zones/RRSets) with Hetzner's ``hcloud`` library.

hecate owns the RRSets labelled ``managed-by=hecate`` (and ``hecate-env=<environment>``)
and never changes or deletes any other, nor the zone apex NS/SOA. Connection settings come
from ``hecate:connections:hetzner_dns`` (minion config wins over pillar): ``api_endpoint``,
``token`` (Vault reference or ``sdb://`` URI; ``hecate:dns:token`` when unset there),
``verify``, ``ca_bundle``, ``timeout``, ``retries``, ``backoff``, ``action_timeout``,
``poll_interval``.

CLI Example:

.. code-block:: bash

    salt -G roles:hecate-edge hetzner_dns.records zone=cybermonkey.dev
    salt -G roles:hecate-edge hetzner_dns.drift
    salt -G roles:hecate-edge hetzner_dns.present www.cybermonkey.dev A 203.0.113.10
"""

import salt.exceptions

import hecate_clients
import hecate_consul_routes
import hecate_dns_client
import hecate_dns_edges
import hecate_dns_records
import hecate_loader

__virtualname__ = "hetzner_dns"


def __virtual__():
    return hecate_loader.virtual(__virtualname__, libs=("hcloud",))



def _env():
    return hecate_dns_records.environment(__pillar__, __grains__)


def _zone_names():
    dns = hecate_dns_records.dns_settings(__pillar__) or {}
    return [str(z.get("name", "")).lower().rstrip(".") for z in dns.get("zones") or []]


def _discovery():
    """The routes taken from Consul (None without consul_routes), as the states take them."""
    return hecate_consul_routes.for_states(__pillar__, __salt__, __opts__)


def _found(discovery):
    return discovery.dns_domains() if discovery is not None else ()


def _row(rrset, zone, env):
    return {
        "name": hecate_dns_records.fqdn(rrset["name"], zone),
        "rrset": f"{rrset['name']}/{rrset['type']}",
        "type": rrset["type"],
        "ttl": rrset["ttl"],
        "values": [r["value"] for r in rrset["records"]],
        "labels": rrset["labels"],
        "owner": hecate_dns_records.owner(rrset, env),
        "protected": bool((rrset.get("protection") or {}).get("change")),
    }


def records(zone, type=None, name=None, owned=False):  # pylint: disable=redefined-builtin
    """
    The RRSets of a zone, each with its values, labels and owner (``hecate`` for this
    environment's, ``hecate:<env>`` for another environment's, ``foreign`` otherwise).

    zone
        The zone's name (e.g. ``cybermonkey.dev``).
    type
        Only RRSets of this type (A, AAAA, TXT ...).
    name
        Only the RRSet of this name (relative to the zone: ``www``, ``@``).
    owned
        Only hecate's RRSets (asks the API with the label selector ``managed-by=hecate``).

    CLI Example:

    .. code-block:: bash

        salt -G roles:hecate-edge hetzner_dns.records zone=cybermonkey.dev
        salt -G roles:hecate-edge hetzner_dns.records zone=cybermonkey.dev type=A owned=True
    """
    zone = str(zone).lower().rstrip(".")
    selector = "=".join(hecate_dns_records.OWNER_LABEL) if owned else None
    client = hecate_clients.dns(__opts__, __pillar__, __context__, __salt__)
    got = client.rrsets(zone, label_selector=selector, name=name, rtype=type.upper() if type else None)
    env = _env()
    return [_row(r, zone, env) for r in got]


def desired():
    """
    What hecate wants in each zone of ``hecate:dns`` (from the routes, those taken from
    Consul included, the extra records and CAA), and the route domains left out because no
    managed zone holds them.

    CLI Example:

    .. code-block:: bash

        salt -G roles:hecate-edge hetzner_dns.desired
    """
    if not hecate_dns_records.enabled(__pillar__):
        return {"zones": {}, "notes": ["hecate:dns is not configured (or enabled: false)"]}
    wanted, notes = hecate_dns_records.desired(__pillar__, __grains__, _env(), discovered=_found(_discovery()),
                                               edge_health=hecate_dns_edges.read(__pillar__, __salt__))
    zones = {
        zone: [{"name": hecate_dns_records.fqdn(d.name, zone), "type": d.type, "ttl": d.ttl,
                "values": list(d.values), "source": d.sources[0]} for _, d in sorted(recs.items())]
        for zone, recs in wanted.items()
    }
    return {"zones": zones, "notes": notes}


def drift():
    """
    How each zone of ``hecate:dns`` differs from pillar, without writing: the RRSets hecate
    would create, change or delete (old and new values), and the conflicts that would stop
    it (a foreign RRSet where hecate needs one, a protected one). ``in_sync`` is True when
    there is nothing to do.

    CLI Example:

    .. code-block:: bash

        salt -G roles:hecate-edge hetzner_dns.drift
    """
    if not hecate_dns_records.enabled(__pillar__):
        return {"in_sync": True, "changes": {}, "conflicts": [], "notes": ["hecate:dns is not configured"]}
    env = _env()
    discovery = _discovery()
    wanted, notes = hecate_dns_records.desired(__pillar__, __grains__, env, discovered=_found(discovery),
                                               edge_health=hecate_dns_edges.read(__pillar__, __salt__))
    rrsets = hecate_consul_routes.memo(hecate_clients.dns(__opts__, __pillar__, __context__, __salt__).rrsets)
    if _found(discovery):
        wanted, left_out = hecate_consul_routes.dns_without_clashes(wanted, rrsets, env, discovery.sources())
        notes = notes + left_out
    ops, conflicts, _ = hecate_dns_records.plan_zones(wanted, rrsets, env)
    return {
        "in_sync": not ops and not conflicts,
        "changes": {hecate_dns_records.key_of(op.name, op.type, op.zone): {"action": op.kind, "old": op.old,
                                                                            "new": op.new} for op in ops},
        "conflicts": conflicts,
        "notes": notes,
    }


def _record_plan(name, rtype, values, ttl, zone):
    zone_name, rel = hecate_dns_records.locate(name, zone, _zone_names())
    live = hecate_clients.dns(__opts__, __pillar__, __context__, __salt__).rrset(zone_name, rel, str(rtype).upper())
    return hecate_dns_records.plan_record(zone_name, rel, rtype, values, ttl, live, _env())


def _apply(ops, conflicts):
    if conflicts:
        raise salt.exceptions.CommandExecutionError("; ".join(conflicts))
    hecate_dns_client.apply(hecate_clients.dns(__opts__, __pillar__, __context__, __salt__), ops, _env())
    return hecate_dns_records.changes_of(ops)


def present(name, type, values, ttl=None, zone=None):  # pylint: disable=redefined-builtin
    """
    Make one RRSet hecate's and exactly ``values`` (creating it if missing). A foreign
    RRSet of that name and type is never taken over: that is an error.

    name
        Fully qualified name (``www.cybermonkey.dev``, the zone's name for the apex,
        ``*.apps.cybermonkey.dev`` for a wildcard).
    type
        A, AAAA, CNAME, TXT, MX or CAA.
    values
        One value or a comma-separated list (or a list); a TXT or CAA string is one value,
        commas included.
    ttl
        Seconds (default 300).
    zone
        The zone (default: the longest of ``hecate:dns:zones`` that holds ``name``).

    Returns the changes made (``{}`` when nothing differed).

    CLI Example:

    .. code-block:: bash

        salt -G roles:hecate-edge hetzner_dns.present www.cybermonkey.dev A 203.0.113.10,203.0.113.11 ttl=600
        salt -G roles:hecate-edge hetzner_dns.present _dmarc.cybermonkey.dev TXT 'v=DMARC1; p=reject'
    """
    return _apply(*_record_plan(name, type, values if values is not None else [], ttl, zone))


def absent(name, type, zone=None):  # pylint: disable=redefined-builtin
    """
    Delete one of hecate's RRSets; a foreign one is an error, a missing one is no change.

    CLI Example:

    .. code-block:: bash

        salt -G roles:hecate-edge hetzner_dns.absent old.cybermonkey.dev A
    """
    return _apply(*_record_plan(name, type, None, None, zone))


def resolution(domain=None):
    """
    For every route domain (those taken from Consul included): what the zone's authoritative
    data (read from the API, not the local resolver) answers for A and AAAA, the edge's
    addresses, and whether the answer is exactly the edge (``points_at_edge``). Domains in
    none of the managed zones are listed with ``zone: null``. With ``hecate:dns:edges``,
    ``edge`` holds the addresses of the edges whose Caddy is healthy in Consul and
    ``edges`` says which edges those are (``in_records``) and which are left out and why
    (``left_out``; none when no edge is healthy: ``all_down``, every address kept).

    domain
        Only this domain (answered even when no route has it: ``source`` then says so).

    CLI Example:

    .. code-block:: bash

        salt -G roles:hecate-edge hetzner_dns.resolution
        salt -G roles:hecate-edge hetzner_dns.resolution domain=chat.codemonkey.ai
    """
    if not hecate_dns_records.enabled(__pillar__):
        return {}
    dns = hecate_dns_records.dns_settings(__pillar__)
    v4, v6, origin, selection = hecate_dns_records.route_addresses(
        __pillar__, dns, __grains__, hecate_dns_edges.read(__pillar__, __salt__))
    edges = hecate_dns_edges.summary(selection)
    edge = {"A": sorted(hecate_dns_records.normalise("A", a, None) for a in v4),
            "AAAA": sorted(hecate_dns_records.normalise("AAAA", a, None) for a in v6)}
    zones = _zone_names()
    client = hecate_clients.dns(__opts__, __pillar__, __context__, __salt__)
    live = {}
    out = {}
    domains = hecate_dns_records.route_domains(__pillar__, _found(_discovery()))
    if domain is not None:
        wanted = str(domain).lower().rstrip(".")
        domains = [d for d in domains if d[0] == wanted] or [(wanted, "no route has this domain")]
    for name, source in domains:
        zone = hecate_dns_records.zone_of(name, zones)
        entry = {"zone": zone, "source": source, "edge": edge, "edge_from": origin}
        if edges is not None:
            entry["edges"] = edges
        if zone is None:
            entry.update(points_at_edge=None, note="in none of hecate:dns:zones: not managed by hecate")
            out[name] = entry
            continue
        if zone not in live:
            live[zone] = client.rrsets(zone)
        for rtype in ("A", "AAAA"):
            entry[rtype] = hecate_dns_records.answer(live[zone], zone, name, rtype)
        entry["points_at_edge"] = all(entry[t]["values"] == edge[t] for t in ("A", "AAAA"))
        out[name] = entry
    return out
