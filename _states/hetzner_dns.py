"""
hetzner_dns: hecate's records in Hetzner DNS (Hetzner Cloud API, Zones/RRSets).

.. code-block:: yaml

    hecate dns records:
      hetzner_dns.managed: []            # everything from pillar hecate:dns

    www.cybermonkey.dev:
      hetzner_dns.present:
        - type: A
        - values: [203.0.113.10]

    old.cybermonkey.dev:
      hetzner_dns.absent:
        - type: A

    hecate dns records removed:
      hetzner_dns.cleared: []            # teardown: none of this environment's RRSets left

``managed`` reads each zone of ``hecate:dns`` once, compares the RRSets hecate owns
(label ``managed-by=hecate``, ``hecate-env`` = this environment) with what pillar wants
(A/AAAA to the edge for every route domain, the extra records, CAA) and reports every
RRSet it creates, changes or deletes with its old and new TTL and values. Foreign RRSets
and the apex NS/SOA are never touched; a desired record colliding with a foreign one fails
the state naming both, before anything is written. ``test=True`` reports the same changes
and writes nothing; a converged zone gets no write at all. If a write fails, the RRSets
the run already changed are put back.

Routes taken from Consul (``hecate:reverse_proxy:caddy:consul_routes``) get their records
too, from the same discovery as the Caddy state of the run (:mod:`hecate_consul_routes`); a
discovered domain whose name a foreign RRSet holds is reported and left out, never failing
the state.
"""

import hecate_clients
import hecate_consul_routes
import hecate_dns_client
import hecate_dns_edges
import hecate_dns_records
import hecate_loader
import hecate_state

__virtualname__ = "hetzner_dns"


def __virtual__():
    return hecate_loader.virtual(__virtualname__, libs=("hcloud",))



def _finish(ret, ops, conflicts, would, did):
    """Conflicts fail before any write; otherwise preview (test) or apply."""
    if conflicts:
        ret.update(result=False, changes={}, comment="nothing was written:\n" + "\n".join(conflicts))
        return ret
    test = bool(__opts__.get("test"))
    changes = hecate_dns_records.changes_of(ops)
    if changes and not test:
        env = hecate_dns_records.environment(__pillar__, __grains__)
        try:
            hecate_dns_client.apply(hecate_clients.dns(__opts__, __pillar__, __context__, __salt__), ops, env)
        except hecate_dns_client.ApplyFailed as exc:
            left = hecate_dns_records.changes_of(exc.left)
            ret.update(result=False, changes=left, comment=str(exc))
            return ret
    counted = hecate_dns_records.count(ops)
    return hecate_state.result(ret, changes, test, would.format(counted), did.format(counted))


@hecate_state.guard
def managed(name, zones=None, phase="all"):
    """
    Make hecate's RRSets in the zones of ``hecate:dns`` exactly what pillar says.

    name
        State ID (free text).
    zones
        Only these zones (default: every zone in ``hecate:dns:zones``).
    phase
        ``all`` (default): everything. ``add``: creations and changes only (and a deletion
        a creation needs); ``prune``: the deletions of RRSets no longer in pillar. The
        orchestration runs ``add`` before the Caddy routes and ``prune`` after them.

    Without ``hecate:dns`` in pillar (or with ``enabled: false``) the state does nothing.
    With ``hecate:reverse_proxy:caddy:consul_routes`` the domains of the routes taken from
    Consul get records too (read through ``hecate_consul.catalog_services`` and
    ``hecate_consul.service_health``, once per state run and once per orchestration run).
    With ``hecate:dns:edges`` the route records carry the addresses of the edges whose Caddy
    passes its Consul checks (``hecate_consul.service_health``); the comment names every edge
    left out and why, and says so when no edge is healthy (then every address is kept).

    .. code-block:: yaml

        hecate-dns-records:
          hetzner_dns.managed:
            - phase: add
    """
    ret = hecate_state.new(name)
    if not hecate_dns_records.enabled(__pillar__):
        ret["comment"] = "hecate:dns is not configured (or enabled: false): no DNS record managed"
        return ret
    env = hecate_dns_records.environment(__pillar__, __grains__)
    discovery = hecate_consul_routes.for_states(__pillar__, __salt__, __opts__, __context__)
    found = discovery.dns_domains() if discovery is not None else ()
    health = hecate_dns_edges.read(__pillar__, __salt__)
    wanted, notes = hecate_dns_records.desired(__pillar__, __grains__, env, discovered=found, edge_health=health)
    rrsets = hecate_consul_routes.memo(hecate_clients.dns(__opts__, __pillar__, __context__, __salt__).rrsets)
    if found:
        wanted, left_out = hecate_consul_routes.dns_without_clashes(wanted, rrsets, env, discovery.sources())
        notes = notes + left_out
    ops, conflicts, counted = hecate_dns_records.plan_zones(wanted, rrsets, env, zones)
    chosen = hecate_dns_records.select(ops, phase)
    deferred = len(ops) - len(chosen)
    # a protected RRSet that pillar no longer wants concerns the deletions only
    if phase == "prune":
        conflicts = [c for c in conflicts if "no longer in pillar" in c]
    elif phase == "add":
        conflicts = [c for c in conflicts if "no longer in pillar" not in c]
    ops = chosen
    where = ", ".join(z for z in sorted(wanted) if not zones or z in zones)
    ret = _finish(
        ret, ops, conflicts,
        would=f"would update the hecate RRSets of {where} ({{}}); nothing written",
        did=f"updated the hecate RRSets of {where} ({{}})",
    )
    if ret["result"] is not False and not ret["changes"]:
        ret["comment"] = (f"the {counted} hecate RRSets of {where} are as in pillar" if not deferred else
                          f"nothing to {'add or change' if phase == 'add' else 'delete'} in {where}")
    if deferred and phase == "add":
        ret["comment"] += f"\n{deferred} hecate RRSet(s) no longer in pillar: deleted by the prune phase"
    if notes:
        ret["comment"] += "\n" + "\n".join(notes)
    return ret


@hecate_state.guard
def cleared(name, zones=None):
    """
    Delete every RRSet hecate owns for this environment (label ``managed-by=hecate``,
    ``hecate-env`` = this environment) in the zones of ``hecate:dns``, whatever pillar wants:
    the records of the route domains, the extra records, CAA. The teardown of an environment
    (``ensure: absent``), after the Caddy routes are gone. Foreign RRSets, another
    environment's and the apex NS/SOA are never touched; a protected RRSet of hecate's fails
    the state naming it, before anything is written.

    name
        State ID (free text).
    zones
        Only these zones (default: every zone in ``hecate:dns:zones``).

    Without ``hecate:dns`` in pillar (or with ``enabled: false``) the state does nothing.

    .. code-block:: yaml

        hecate dns records removed:
          hetzner_dns.cleared
    """
    ret = hecate_state.new(name)
    if not hecate_dns_records.enabled(__pillar__):
        ret["comment"] = "hecate:dns is not configured (or enabled: false): no DNS record managed"
        return ret
    env = hecate_dns_records.environment(__pillar__, __grains__)
    dns = hecate_dns_records.dns_settings(__pillar__) or {}
    names = sorted({str(z.get("name", "")).lower().rstrip(".") for z in dns.get("zones") or []})
    rrsets = hecate_clients.dns(__opts__, __pillar__, __context__, __salt__).rrsets
    ops, conflicts, _ = hecate_dns_records.plan_zones({zone: {} for zone in names}, rrsets, env, zones)
    where = ", ".join(z for z in names if not zones or z in zones)
    ret = _finish(
        ret, ops, conflicts,
        would=f"would delete the hecate RRSets of environment '{env}' in {where} ({{}}); nothing written",
        did=f"deleted the hecate RRSets of environment '{env}' in {where} ({{}})",
    )
    if ret["result"] is not False and not ret["changes"]:
        ret["comment"] = f"{where} hold(s) no hecate RRSet of environment '{env}'"
    return ret


def _one(name, rtype, values, ttl, zone):
    dns = hecate_dns_records.dns_settings(__pillar__) or {}
    zone_names = [str(z.get("name", "")).lower().rstrip(".") for z in dns.get("zones") or []]
    zone_name, rel = hecate_dns_records.locate(name, zone, zone_names)
    env = hecate_dns_records.environment(__pillar__, __grains__)
    live = hecate_clients.dns(__opts__, __pillar__, __context__, __salt__).rrset(zone_name, rel, str(rtype).upper())
    return hecate_dns_records.plan_record(zone_name, rel, rtype, values, ttl, live, env)


@hecate_state.guard
def present(name, type, values, ttl=None, zone=None):  # pylint: disable=redefined-builtin
    """
    One RRSet, owned by hecate, with exactly ``values``.

    name
        Fully qualified name (``www.cybermonkey.dev``; the zone's name for the apex).
    type
        A, AAAA, CNAME, TXT, MX or CAA.
    values
        The values (list).
    ttl
        Seconds (default 300).
    zone
        The zone (default: the longest of ``hecate:dns:zones`` holding ``name``).

    An RRSet of that name and type that hecate does not own is never taken over: the
    state fails naming it.

    .. code-block:: yaml

        www.example.com:
          hetzner_dns.present:
            - type: A
            - values: [203.0.113.10]
            - ttl: 300
            - zone: example.com
    """
    ret = hecate_state.new(name)
    ops, conflicts = _one(name, type, values, ttl, zone)
    return _finish(ret, ops, conflicts, would="would apply: {} (nothing written)", did="applied: {}")


@hecate_state.guard
def absent(name, type, zone=None):  # pylint: disable=redefined-builtin
    """
    No hecate RRSet ``name``/``type``. One hecate does not own is an error, not deleted.

    name
        Fully qualified name.
    type
        The record type.
    zone
        The zone (default: the longest of ``hecate:dns:zones`` holding ``name``).

    .. code-block:: yaml

        old.example.com:
          hetzner_dns.absent:
            - type: A
            - zone: example.com
    """
    ret = hecate_state.new(name)
    ops, conflicts = _one(name, type, None, None, zone)
    return _finish(ret, ops, conflicts, would="would apply: {} (nothing written)", did="applied: {}")
