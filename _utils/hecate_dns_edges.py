"""
Which edges' addresses the route records carry, from their Caddy's health in Consul.

With several edges, ``hecate:dns:edges`` lists each edge's public addresses by minion id.
The edge's Caddy runs as a Nomad job whose service (``hecate:jobs:caddy:service``, default
``hecate-caddy``) Nomad registers in Consul with a check, on the Consul node of the edge, and
the Consul node names are the minion ids (``hecate_agents_config.consul_config``:
``node_name`` = the ``id`` grain). So one read of ``/v1/health/service/<service>`` (all
instances, ``passing`` not set) says per edge whether its Caddy is healthy:

- an edge is **healthy** when Consul has at least one instance of the service on its node
  and every check of every such instance passes (the rule of Consul's ``?passing`` filter:
  the node's own checks, such as ``serfHealth``, count too; ``warning`` is not passing);
- an edge Consul has no instance for is **unhealthy** (unknown) and named as such;
- the records carry the addresses of the healthy edges only; when **no** edge is healthy,
  they keep every listed address: hecate never empties the sites' records on a health
  signal, since DNS pointing at edges that may be down beats DNS pointing nowhere.

The ``hecate-caddy`` job runs one allocation per edge (``hecate_edge_jobs.caddy_count``, on
distinct nodes), so each edge's Caddy registers that service on its own node; an operator may
judge the edges by another service instead (``hecate:dns:health_service``).

The flat ``hecate:dns:edge`` is the single-edge form: its addresses are never filtered.
The functions here are pure; the states and execution functions read Consul through
``hecate_consul.service_health`` (:func:`read`).
"""

import collections

import salt.exceptions

import hecate_config
import hecate_edge_jobs

PATH = "hecate:dns:edges"
Selection = collections.namedtuple("Selection", "ipv4 ipv6 kept left_out all_down service")
"""``ipv4``/``ipv6``: the addresses the route records get; ``kept``: the ids whose addresses
they carry because the edge is healthy; ``left_out``: ``{id: why}`` of the unhealthy ones;
``all_down``: no edge is healthy (every address kept)."""


def listed(dns):
    """``{minion id: {"ipv4": [...], "ipv6": [...]}}`` of ``hecate:dns:edges`` (``{}`` unset)."""
    edges = (dns or {}).get("edges")
    if not isinstance(edges, dict):
        return {}
    return {str(mid): {"ipv4": list((spec or {}).get("ipv4") or []), "ipv6": list((spec or {}).get("ipv6") or [])}
            for mid, spec in edges.items()}


def service_name(pillar):
    """
    The Consul service of the edges' Caddy: ``hecate:dns:health_service``, else the
    ``hecate-caddy`` job's (``hecate:jobs:caddy:service``).
    """
    own = hecate_config.traverse(pillar, "hecate:dns:health_service")
    return str(own or hecate_edge_jobs.job_settings(pillar, "caddy")["service"])


def health_by_node(entries):
    """
    ``{node: [problem, ...]}`` from the entries of ``/v1/health/service/<name>`` read without
    ``?passing``: every node with an instance; an empty list means every check passes.
    """
    out = {}
    for entry in entries or []:
        node = str((entry.get("Node") or {}).get("Node") or "")
        if not node:
            continue
        problems = out.setdefault(node, [])
        for chk in entry.get("Checks") or []:
            status = chk.get("Status")
            if status == "passing":
                continue
            name = chk.get("Name") or chk.get("CheckID") or "?"
            output = " ".join(str(chk.get("Output") or "").split())[:160]
            text = f"check '{name}' is {status}" + (f" ({output})" if output else "")
            if text not in problems:
                problems.append(text)
    return out


def select(edges, health, service):
    """
    The :class:`Selection` for ``edges`` (:func:`listed`) given ``health``
    (:func:`health_by_node`) of ``service``.
    """
    kept, left_out = [], {}
    for mid in sorted(edges):
        if mid not in health:
            left_out[mid] = f"Consul has no instance of service '{service}' on node {mid}"
        elif health[mid]:
            left_out[mid] = "; ".join(health[mid])
        else:
            kept.append(mid)
    all_down = not kept
    use = sorted(edges) if all_down else kept
    v4, v6 = [], []
    for mid in use:
        v4.extend(a for a in edges[mid]["ipv4"] if a not in v4)
        v6.extend(a for a in edges[mid]["ipv6"] if a not in v6)
    return Selection(v4, v6, kept, left_out, all_down, service)


def _addresses(spec):
    return ", ".join(spec["ipv4"] + spec["ipv6"]) or "no address"


def notes(selection, edges):
    """The lines a state comment gets: which edge is left out of the route records and why."""
    if selection is None or not selection.left_out:
        return []
    if selection.all_down:
        why = "; ".join(f"{mid}: {selection.left_out[mid]}" for mid in sorted(selection.left_out))
        return [f"no edge's Caddy is healthy in Consul (service '{selection.service}'): the route records "
                f"keep every edge's address rather than none ({why})"]
    return [f"edge {mid} ({_addresses(edges[mid])}) left out of the route records: its Caddy is not healthy "
            f"in Consul: {why}" for mid, why in sorted(selection.left_out.items())]


def summary(selection):
    """A plain view for ``hetzner_dns.resolution`` and ``hecate.status``."""
    if selection is None:
        return None
    return {"service": selection.service, "in_records": sorted(selection.left_out) if selection.all_down
            else list(selection.kept), "healthy": list(selection.kept),
            "left_out": dict(sorted(selection.left_out.items())) if not selection.all_down else {},
            "unhealthy": dict(sorted(selection.left_out.items())), "all_down": selection.all_down}


def read(pillar, salt_funcs):
    """
    ``{node: [problem, ...]}`` of the edges' Caddy service as Consul answers now, or None
    when ``hecate:dns:edges`` is not set (nothing to filter). A Consul that cannot be read
    is an error (the DNS state then writes nothing): hecate never guesses an edge's health.
    """
    dns = hecate_config.traverse(pillar, "hecate:dns")
    if not isinstance(dns, dict) or not listed(dns) or dns.get("routes", True) is False:
        return None
    service = service_name(pillar)
    fun = "hecate_consul.service_health"
    if fun not in salt_funcs:
        raise salt.exceptions.CommandExecutionError(
            f"Consul module not available ({fun} is not loaded on this minion); cannot read the health of "
            f"the edges' Caddy (service '{service}') that {PATH} filters on"
        )
    try:
        entries = salt_funcs[fun](service, passing=False)
    except salt.exceptions.CommandExecutionError as exc:
        raise salt.exceptions.CommandExecutionError(
            f"cannot read the health of the edges' Caddy (Consul service '{service}') that {PATH} filters on; "
            f"nothing was written: {exc}"
        ) from None
    return health_by_node(entries)
