"""
The DNS records hecate wants, from pillar, and how they differ from a zone's live RRSets.

- :func:`route_domains` is the one place that says which domains get records: today the
  routes of ``hecate:reverse_proxy:caddy:routes``; Consul-discovered routes join through
  its ``discovered`` argument.
- :func:`desired` turns ``hecate:dns`` plus those domains into RRSets per zone: A/AAAA to
  the edge for every route domain (``*.x`` routes get the wildcard RRSet ``*.x``), the
  extra records, CAA at the apex when asked.
- :func:`plan` compares them with the live RRSets of a zone. An RRSet is hecate's when it
  carries ``managed-by=hecate`` (and, when it has one, ``hecate-env`` = this environment);
  everything else is foreign: never changed or deleted, and a desired record that
  collides with one is an error naming both. The zone apex NS and SOA RRSets are never
  touched, whatever their labels.

Values are compared in a normal form (addresses canonical, host names absolute with a
trailing dot, TXT as quoted 255-byte strings as hcloud-go's ``zoneutil.FormatTXTRecord``
writes them, CAA as ``<flags> <tag> "<value>"``), so the API's spelling of an equivalent
value is not a difference.
"""

import collections
import ipaddress
import re

import salt.exceptions

import hecate_config
import hecate_dns_edges

OWNER_LABEL = ("managed-by", "hecate")
ENV_LABEL = "hecate-env"
EXTRA_TYPES = ("A", "AAAA", "CNAME", "TXT", "MX", "CAA")
DEFAULT_TTL = 300
ROUTES_PATH = "hecate:reverse_proxy:caddy:routes"
# Placeholders for hecate.validate, where the edge's grains are not known.
_CHECK_ADDRESSES = (["192.0.2.1"], ["2001:db8::1"])
_HOST = re.compile(r"^(?=.{1,253}$)([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9])?\.)*[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9])?$")


class DNSDataError(salt.exceptions.SaltInvocationError):
    """Bad ``hecate:dns`` data; ``errors`` is ``[(key_path, message)]``, the message lists all."""

    def __init__(self, errors):
        self.errors = list(errors)
        lines = [f"{path}: {msg}" for path, msg in self.errors]
        super().__init__("invalid hecate:dns data (nothing was written):\n" + "\n".join(lines))


Desired = collections.namedtuple("Desired", "zone name type ttl values sources")
Op = collections.namedtuple("Op", "kind zone name type old new writes live")
"""One RRSet to change: ``kind`` create|update|delete, ``old``/``new`` as reported in
changes, ``writes`` the API calls it takes, ``live`` the RRSet as read (None for create)."""


def key_of(name, rtype, zone):
    """How a record is named in changes and messages: ``www.cybermonkey.dev A``."""
    return f"{fqdn(name, zone)} {rtype}"


# -- pillar --------------------------------------------------------------------------------------


def dns_settings(pillar):
    """``hecate:dns`` or None when it is not configured."""
    dns = hecate_config.traverse(pillar, "hecate:dns")
    return dns if isinstance(dns, dict) and dns else None


def enabled(pillar):
    """Whether hecate manages DNS in this pillar (``hecate:dns`` set and not ``enabled: false``)."""
    dns = dns_settings(pillar)
    return bool(dns) and dns.get("enabled", True) is not False


def environment(pillar, grains=None):
    env = hecate_config.traverse(pillar, "hecate:global:environment") or (grains or {}).get("hecate_env")
    if not env:
        raise salt.exceptions.SaltInvocationError(
            "hecate:global:environment is not set: hecate labels its DNS records with the environment"
        )
    return str(env)


def _as_list(value):
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def route_domains(pillar, discovered=()):
    """
    ``[(domain, source)]``: every domain that gets A/AAAA records pointing at the edge;
    ``source`` is the pillar key path of the route (or what discovered it).

    The routes of ``hecate:reverse_proxy:caddy:routes`` (``domain``/``domains``; routes with
    ``enabled: false`` are skipped). ``discovered`` adds ``(domain, source)`` pairs found
    elsewhere (Consul-discovered routes); a domain pillar already has keeps pillar's source.
    """
    out, seen = [], set()
    routes = hecate_config.traverse(pillar, ROUTES_PATH) or []
    if not isinstance(routes, list):
        return out
    for idx, spec in enumerate(routes):
        if not isinstance(spec, dict) or spec.get("enabled") is False:
            continue
        for dom in _as_list(spec.get("domain")) + _as_list(spec.get("domains")):
            dom = str(dom).lower().rstrip(".")
            if dom and dom not in seen:
                seen.add(dom)
                out.append((dom, f"{ROUTES_PATH}:{idx}"))
    for dom, source in discovered or ():
        dom = str(dom).lower().rstrip(".")
        if dom and dom not in seen:
            seen.add(dom)
            out.append((dom, source))
    return out


def edge_addresses(dns, grains):
    """
    ``(ipv4, ipv6, origin)``: the edge's public addresses. Pillar (``hecate:dns:edge``) wins;
    without it, the global addresses in this minion's ``ipv4``/``ipv6`` grains.
    """
    edge = dns.get("edge") or {}
    v4, v6 = list(edge.get("ipv4") or []), list(edge.get("ipv6") or [])
    if v4 or v6:
        return v4, v6, "pillar hecate:dns:edge"
    if grains is None:
        return list(_CHECK_ADDRESSES[0]), list(_CHECK_ADDRESSES[1]), "placeholder"
    found = {4: [], 6: []}
    for addr in list(grains.get("ipv4") or []) + list(grains.get("ipv6") or []):
        try:
            ip = ipaddress.ip_address(str(addr).split("%")[0])
        except ValueError:
            continue
        if ip.is_global and str(ip) not in found[ip.version]:
            found[ip.version].append(str(ip))
    if not found[4] and not found[6]:
        raise DNSDataError([(
            "hecate:dns:edge",
            f"no public address for the edge: none in pillar (hecate:dns:edge:ipv4/ipv6) and none "
            f"in the grains ipv4/ipv6 of minion '{grains.get('id', '?')}' (only private or loopback "
            "addresses); list the edge's public addresses in pillar",
        )])
    return found[4], found[6], f"grains of minion '{grains.get('id', '?')}'"


def _edges_errors(dns):
    """Problems of ``hecate:dns:edges``: an edge without address, an invalid one, both forms set."""
    errors = []
    edges = hecate_dns_edges.listed(dns)
    if edges and ((dns.get("edge") or {}).get("ipv4") or (dns.get("edge") or {}).get("ipv6")):
        errors.append((hecate_dns_edges.PATH, "set either hecate:dns:edge (one edge, no health filtering) or "
                                              "hecate:dns:edges (addresses per edge minion id), not both"))
    for mid, spec in sorted(edges.items()):
        if not spec["ipv4"] and not spec["ipv6"]:
            errors.append((f"{hecate_dns_edges.PATH}:{mid}", "lists no address (ipv4 or ipv6)"))
        for rtype, key in (("A", "ipv4"), ("AAAA", "ipv6")):
            for idx, addr in enumerate(spec[key]):
                try:
                    normalise(rtype, addr, None)
                except ValueError:
                    errors.append((f"{hecate_dns_edges.PATH}:{mid}:{key}:{idx}",
                                   f"{addr!r} is not an IPv{key[-1]} address"))
    return errors


def route_addresses(pillar, dns, grains, edge_health=None):
    """
    ``(ipv4, ipv6, origin, selection)``: the addresses the route records point at. With
    ``hecate:dns:edges``, those of the edges whose Caddy is healthy in ``edge_health``
    (:func:`hecate_dns_edges.read`; every edge's when none is, or when ``edge_health`` is None:
    validation), ``selection`` saying which (:class:`hecate_dns_edges.Selection`); otherwise
    :func:`edge_addresses` and ``selection`` None.
    """
    edges = hecate_dns_edges.listed(dns)
    if not edges:
        return (*edge_addresses(dns, grains), None)
    if edge_health is None:
        sel = hecate_dns_edges.select(edges, {mid: [] for mid in edges}, hecate_dns_edges.service_name(pillar))
        return sel.ipv4, sel.ipv6, f"pillar {hecate_dns_edges.PATH}", None
    sel = hecate_dns_edges.select(edges, edge_health, hecate_dns_edges.service_name(pillar))
    return sel.ipv4, sel.ipv6, f"pillar {hecate_dns_edges.PATH} (edges with a healthy Caddy)", sel


def zone_of(domain, zone_names):
    """The longest zone name that ``domain`` lies in, or None."""
    best = None
    for zone in zone_names:
        inside = domain == zone or domain.endswith("." + zone)
        if inside and (best is None or len(zone) > len(best)):
            best = zone
    return best


def relative_name(domain, zone):
    """``www.cybermonkey.dev`` in ``cybermonkey.dev`` -> ``www``; the apex is ``@``."""
    if domain == zone:
        return "@"
    return domain[: -len(zone) - 1]


def fqdn(name, zone):
    return zone if name == "@" else f"{name}.{zone}"


# -- values ----------------------------------------------------------------------------------------
def _absolute(host, zone):
    """A host name as an absolute name with a trailing dot (relative ones lie in ``zone``)."""
    host = str(host).strip().lower()
    if host == "@":
        return zone + "."
    if host.endswith("."):
        name = host[:-1]
    elif zone and "." not in host:
        name = f"{host}.{zone}"  # zone-file semantics: a single label is relative
    else:
        name = host
    if not _HOST.match(name):
        raise ValueError(f"{host!r} is not a host name")
    return name + "."


def format_txt(text):
    """
    TXT data as the API wants it (hcloud-go's ``zoneutil.FormatTXTRecord``): strings of at
    most 255 bytes (RFC 1035 3.3), each quoted, quotes and backslashes escaped. Chunks are
    cut before escaping and never inside a UTF-8 character.
    """
    chunks, cur, size = [], [], 0
    for ch in text:
        width = len(ch.encode())
        if size + width > 255:
            chunks.append("".join(cur))
            cur, size = [], 0
        cur.append(ch)
        size += width
    chunks.append("".join(cur))
    return " ".join('"' + c.replace("\\", "\\\\").replace('"', '\\"') + '"' for c in chunks)


def parse_txt(value):
    """The text of a TXT value: quoted strings joined (unquoted words kept as they are)."""
    out, cur, quoted, escaped, started = [], [], False, False, False
    for ch in value:
        if escaped:
            cur.append(ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == '"':
            quoted = not quoted
            started = True
        elif ch.isspace() and not quoted:
            if cur or started:
                out.append("".join(cur))
            cur, started = [], False
        else:
            cur.append(ch)
    if cur or started:
        out.append("".join(cur))
    return "".join(out)


def _quoted(value):
    value = str(value)
    return value.startswith('"') and value.endswith('"') and len(value) >= 2


def normalise(rtype, value, zone):
    """The normal form of one record value; ``ValueError`` says what is wrong."""
    value = str(value).strip()
    if rtype == "A":
        return str(ipaddress.IPv4Address(value))
    if rtype == "AAAA":
        return ipaddress.IPv6Address(value).compressed
    if rtype in ("CNAME", "NS", "PTR"):
        return _absolute(value, zone)
    if rtype == "MX":
        parts = value.split()
        if len(parts) != 2 or not parts[0].isdigit() or int(parts[0]) > 65535:
            raise ValueError(f"{value!r}: expected '<priority> <host>', e.g. '10 mail.example.com'")
        return f"{int(parts[0])} {_absolute(parts[1], zone)}"
    if rtype == "TXT":
        return format_txt(parse_txt(value) if _quoted(value) else value)
    if rtype == "CAA":
        match = re.match(r'^(\d{1,3})\s+([A-Za-z0-9]+)\s+(.+)$', value)
        if not match or int(match.group(1)) > 255:
            raise ValueError(f"{value!r}: expected '<flags> <tag> \"<value>\"', e.g. '0 issue \"letsencrypt.org\"'")
        inner = match.group(3)
        inner = parse_txt(inner) if _quoted(inner) else inner
        return f'{int(match.group(1))} {match.group(2).lower()} "{inner}"'
    return value


def normalise_live(rtype, value, zone):
    """Like :func:`normalise` for a value read from the API; unparsable ones stay as they are."""
    try:
        return normalise(rtype, value, zone)
    except ValueError:
        return str(value)


# -- desired records ------------------------------------------------------------------------------
def _zone_ttl(dns, zone_spec):
    return zone_spec.get("ttl") or dns.get("ttl") or DEFAULT_TTL


def _caa_values(caa):
    values = [f'0 issue "{ca}"' for ca in caa.get("issue") or []]
    values += [f'0 issuewild "{ca}"' for ca in caa.get("issuewild") or []]
    if caa.get("iodef"):
        values.append(f'0 iodef "{caa["iodef"]}"')
    return values


def desired(pillar, grains, env, discovered=(), check_only=False, edge_health=None):
    """
    ``(records, notes)``: ``records`` is ``{zone: {(name, type): Desired}}`` (every
    managed zone present, possibly empty), ``notes`` what was left out and why (route
    domains outside the managed zones, edges left out of the route records as unhealthy).
    Raises :class:`DNSDataError` listing every problem. ``grains`` None (validation on the
    master) uses placeholder addresses when pillar has none. ``edge_health``: the health of
    the edges' Caddy (:func:`hecate_dns_edges.read`) that ``hecate:dns:edges`` is filtered by.
    """
    dns = dns_settings(pillar) or {}
    zones = {}
    errors, notes = [], []
    for idx, spec in enumerate(dns.get("zones") or []):
        name = str(spec.get("name", "")).lower().rstrip(".")
        if name in zones:
            errors.append((f"hecate:dns:zones:{idx}:name", f"zone {name} listed twice"))
        zones.setdefault(name, spec)
    records = {zone: {} for zone in zones}

    def add(zone, name, rtype, ttl, values, where):
        key = (name, rtype)
        have = records[zone].get(key)
        if have is not None:
            errors.append((where, f"{key_of(name, rtype, zone)} is defined twice: by {have.sources[0]} and here"))
            return
        records[zone][key] = Desired(zone, name, rtype, ttl, tuple(sorted(set(values))), (where,))

    if dns.get("routes", True) is not False:
        domains = route_domains(pillar, discovered)
        edges_errors = _edges_errors(dns)
        errors.extend(edges_errors)
        if domains:
            selection = None
            try:
                v4, v6, _, selection = route_addresses(pillar, dns, None if check_only else grains,
                                                       None if check_only else edge_health)
            except DNSDataError as exc:
                errors.extend(exc.errors)
                v4, v6 = [], []
            if selection is not None:
                notes.extend(hecate_dns_edges.notes(selection, hecate_dns_edges.listed(dns)))
            if hecate_dns_edges.listed(dns):
                v4, v6 = ([], []) if edges_errors else (v4, v6)  # reported per edge above
            for idx, addr in enumerate(v4):
                try:
                    normalise("A", addr, None)
                except ValueError:
                    errors.append((f"hecate:dns:edge:ipv4:{idx}", f"{addr!r} is not an IPv4 address"))
            for idx, addr in enumerate(v6):
                try:
                    normalise("AAAA", addr, None)
                except ValueError:
                    errors.append((f"hecate:dns:edge:ipv6:{idx}", f"{addr!r} is not an IPv6 address"))
            for domain, source in domains:
                zone = zone_of(domain, zones)
                if zone is None:
                    notes.append(f"{domain} ({source}) is in none of hecate:dns:zones: no record managed")
                    continue
                name = relative_name(domain, zone)
                ttl = _zone_ttl(dns, zones[zone])
                for rtype, addrs in (("A", v4), ("AAAA", v6)):
                    vals = []
                    for addr in addrs:
                        try:
                            vals.append(normalise(rtype, addr, zone))
                        except ValueError:
                            pass  # reported above
                    if vals:
                        add(zone, name, rtype, ttl, vals, source)

    for zone, spec in zones.items():
        caa = spec.get("caa") if spec.get("caa") is not None else dns.get("caa")
        if caa:
            vals = [normalise("CAA", v, zone) for v in _caa_values(caa)]
            if vals:
                where = f"hecate:dns:zones:{list(zones).index(zone)}:caa" if spec.get("caa") else "hecate:dns:caa"
                add(zone, "@", "CAA", caa.get("ttl") or _zone_ttl(dns, spec), vals, where)

    for idx, rec in enumerate(dns.get("records") or []):
        where = f"hecate:dns:records:{idx}"
        domain = str(rec.get("name", "")).lower().rstrip(".")
        rtype = str(rec.get("type", "")).upper()
        zone = zone_of(domain, zones)
        if zone is None:
            errors.append((f"{where}:name", f"{domain} is in none of hecate:dns:zones ({', '.join(zones) or 'none'})"))
            continue
        if rtype not in EXTRA_TYPES:
            errors.append((f"{where}:type", f"{rtype!r} is not one of {', '.join(EXTRA_TYPES)}"))
            continue
        raw = _as_list(rec.get("values")) + _as_list(rec.get("value"))
        if not raw:
            errors.append((f"{where}:values", "no value given (value or values)"))
            continue
        vals = []
        for vidx, value in enumerate(raw):
            try:
                vals.append(normalise(rtype, value, zone))
            except ValueError as exc:
                errors.append((f"{where}:values:{vidx}", f"invalid {rtype} value: {exc}"))
        name = relative_name(domain, zone)
        if rtype == "CNAME":
            if name == "@":
                errors.append((f"{where}:type", f"{domain}: a CNAME cannot be at the zone apex (it holds NS and SOA)"))
                continue
            if len(set(vals)) > 1:
                errors.append((f"{where}:values", f"{domain}: a CNAME has exactly one value"))
                continue
        if vals:
            add(zone, name, rtype, rec.get("ttl") or _zone_ttl(dns, zones[zone]), vals, where)

    for zone, recs in records.items():
        by_name = collections.defaultdict(list)
        for (name, _), rec in recs.items():
            by_name[name].append(rec)
        for name, recs_at in by_name.items():
            types = {r.type for r in recs_at}
            if "CNAME" in types and len(types) > 1:
                cname = next(r for r in recs_at if r.type == "CNAME")
                others = [r for r in recs_at if r.type != "CNAME"]
                errors.append((cname.sources[0], f"{fqdn(name, zone)}: a CNAME cannot share its name with other "
                               f"records ({', '.join(sorted(f'{r.type} from {r.sources[0]}' for r in others))})"))
    if errors:
        raise DNSDataError(errors)
    return records, notes


# -- ownership and plan ----------------------------------------------------------------------------
def labels(env):
    return {OWNER_LABEL[0]: OWNER_LABEL[1], ENV_LABEL: env}


def owner(rrset, env):
    """``"hecate"`` (this environment's), ``"hecate:<env>"`` (another's) or ``"foreign"``."""
    if is_apex_ns_soa(rrset):
        return "foreign"
    lab = rrset.get("labels") or {}
    if lab.get(OWNER_LABEL[0]) != OWNER_LABEL[1]:
        return "foreign"
    other = lab.get(ENV_LABEL)
    if other and other != env:
        return f"hecate:{other}"
    return "hecate"


def is_apex_ns_soa(rrset):
    return rrset.get("name") == "@" and rrset.get("type") in ("NS", "SOA")


def live_values(rrset, zone):
    return sorted({normalise_live(rrset["type"], r.get("value", ""), zone) for r in rrset.get("records") or []})


def _state(ttl, values, lab=None):
    out = {"ttl": ttl, "values": list(values)}
    if lab is not None:
        out["labels"] = dict(lab)
    return out


def _describe_foreign(rrset, zone):
    lab = rrset.get("labels") or {}
    return (f"{key_of(rrset['name'], rrset['type'], zone)} (labels {lab or '{}'}, "
            f"records {live_values(rrset, zone)})")


def plan(zone, wanted, live, env):
    """
    ``(ops, conflicts)`` to make ``zone``'s hecate-owned RRSets exactly ``wanted``
    (``{(name, type): Desired}``); ``live`` are the zone's RRSets as dicts (name, type,
    ttl, labels, protection, records). Deletions come first (a name may change from A to
    CNAME), then updates, then creations. ``conflicts`` are messages: a desired RRSet
    whose name/type (or CNAME name) is held by a foreign RRSet, or a hecate RRSet that
    must change but is protected.
    """
    want_labels = labels(env)
    by_key = {(r["name"], r["type"]): r for r in live}
    names = collections.defaultdict(list)
    for rrset in live:
        names[rrset["name"]].append(rrset)
    ops, conflicts = [], []
    deletes, updates, creates = [], [], []
    for key in sorted(wanted):
        want = wanted[key]
        name, rtype = key
        have = by_key.get(key)
        where = want.sources[0]
        if have is not None and owner(have, env) != "hecate":
            conflicts.append(
                f"{key_of(name, rtype, zone)} (from {where}) collides with an RRSet hecate does not own: "
                f"{_describe_foreign(have, zone)}; hecate never takes one over: delete it or label it "
                f"managed-by=hecate ({ENV_LABEL}={env}) if hecate should own it"
            )
            continue
        blocking = [r for r in names.get(name, []) if owner(r, env) != "hecate" and r["type"] != rtype
                    and ("CNAME" in (rtype, r["type"]))]
        if blocking:
            conflicts.append(
                f"{key_of(name, rtype, zone)} (from {where}) cannot coexist with "
                f"{_describe_foreign(blocking[0], zone)}: a CNAME shares its name with nothing else; "
                "hecate does not change RRSets it does not own"
            )
            continue
        new_state = _state(want.ttl, want.values)
        if have is None:
            creates.append(Op("create", zone, name, rtype, None, new_state, ("create",), None))
            continue
        have_vals = live_values(have, zone)
        have_labels = have.get("labels") or {}
        writes = []
        if have_vals != list(want.values):
            writes.append("set_records")
        if have.get("ttl") != want.ttl:
            writes.append("change_ttl")
        merged = dict(have_labels, **want_labels)
        if merged != have_labels:
            writes.append("labels")
        if not writes:
            continue
        if "labels" in writes:
            old, new = _state(have.get("ttl"), have_vals, have_labels), _state(want.ttl, want.values, merged)
        else:
            old, new = _state(have.get("ttl"), have_vals), new_state
        if (have.get("protection") or {}).get("change") and set(writes) - {"labels"}:
            conflicts.append(f"{key_of(name, rtype, zone)} must change ({', '.join(writes)}) but is protected "
                             "(protection.change); lift the protection in the Hetzner Console first")
            continue
        updates.append(Op("update", zone, name, rtype, old, new, tuple(writes), have))
    for key, have in sorted(by_key.items()):
        if key in wanted or owner(have, env) != "hecate":
            continue
        if (have.get("protection") or {}).get("change"):
            conflicts.append(f"{key_of(key[0], key[1], zone)} is no longer in pillar but is protected "
                             "(protection.change); lift the protection to let hecate delete it")
            continue
        deletes.append(Op("delete", zone, key[0], key[1],
                          _state(have.get("ttl"), live_values(have, zone)), None, ("delete",), have))
    ops = deletes + updates + creates
    return ops, conflicts


def changes_of(ops):
    """State ``changes``: ``{"<fqdn> <TYPE>": {"old": ..., "new": ...}}`` per RRSet."""
    return {key_of(op.name, op.type, op.zone): {"old": op.old, "new": op.new} for op in ops}


def count(ops):
    kinds = collections.Counter(op.kind for op in ops)
    words = {"create": "created", "update": "changed", "delete": "deleted"}
    return ", ".join(f"{kinds[k]} {words[k]}" for k in ("create", "update", "delete") if kinds[k])


# -- what the authoritative zone answers ---------------------------------------------------------
def answer(live, zone, domain, rtype):
    """
    What the zone's own data answers for ``domain``/``rtype`` (RFC 1034 4.3.2 with RFC 4592
    wildcards, within the zone): ``{"rrset": name, "values": [...], "via": "exact" |
    "wildcard" | "cname"}`` or ``{"values": [], "via": "nxdomain" | "nodata"}``.
    """
    name = relative_name(domain, zone)
    by_key = {(r["name"], r["type"]): r for r in live}
    existing = set()
    for rrset in live:
        parts = rrset["name"].split(".") if rrset["name"] != "@" else []
        for i in range(len(parts) + 1):
            existing.add(".".join(parts[i:]) or "@")
    if name in existing:
        hit = by_key.get((name, rtype))
        if hit:
            return {"rrset": name, "values": live_values(hit, zone), "via": "exact"}
        cname = by_key.get((name, "CNAME"))
        if cname:
            return {"rrset": name, "values": live_values(cname, zone), "via": "cname"}
        return {"values": [], "via": "nodata"}
    labels_ = name.split(".")
    for i in range(1, len(labels_) + 1):
        encloser = ".".join(labels_[i:]) or "@"
        if encloser in existing:
            wild = "*" if encloser == "@" else f"*.{encloser}"
            hit = by_key.get((wild, rtype)) or by_key.get((wild, "CNAME"))
            if hit:
                return {"rrset": wild, "values": live_values(hit, zone),
                        "via": "wildcard" if hit["type"] == rtype else "cname"}
            return {"values": [], "via": "nxdomain" if wild not in existing else "nodata"}
    return {"values": [], "via": "nxdomain"}


def plan_zones(wanted, list_rrsets, env, zones=None):
    """
    ``(ops, conflicts, counted)`` over every zone of ``wanted`` (or only ``zones``):
    ``list_rrsets(zone)`` reads a zone's RRSets once; ``counted`` is how many RRSets
    hecate wants there.
    """
    ops, conflicts, counted = [], [], 0
    for zone in sorted(wanted):
        if zones and zone not in zones:
            continue
        zone_ops, zone_conflicts = plan(zone, wanted[zone], list_rrsets(zone), env)
        ops.extend(zone_ops)
        conflicts.extend(zone_conflicts)
        counted += len(wanted[zone])
    return ops, conflicts, counted


def locate(name, zone, zone_names):
    """``(zone, relative name)`` of a fully qualified ``name`` (in ``zone`` if given)."""
    domain = str(name).lower().rstrip(".")
    zones = [str(zone).lower().rstrip(".")] if zone else list(zone_names)
    found = zone_of(domain, zones)
    if found is None:
        raise salt.exceptions.SaltInvocationError(
            f"{domain} is in none of the zones {', '.join(zones) or '(hecate:dns:zones is empty)'}; pass zone=<zone>"
        )
    return found, relative_name(domain, found)


def plan_record(zone, name, rtype, values, ttl, live, env):
    """
    ``(ops, conflicts)`` for one RRSet: present with ``values`` (a list), or absent when
    ``values`` is None. ``live`` is the RRSet as read (or None). A foreign RRSet and the
    apex NS/SOA are refused with ``CommandExecutionError``/``SaltInvocationError``.
    """
    rtype = str(rtype).upper()
    key = key_of(name, rtype, zone)
    if rtype == "SOA" or (name == "@" and rtype == "NS"):
        raise salt.exceptions.SaltInvocationError(f"{key}: hecate never manages the zone apex NS or SOA")
    if live is not None and owner(live, env) != "hecate":
        raise salt.exceptions.CommandExecutionError(
            f"{key} exists and hecate does not own it: {_describe_foreign(live, zone)}; "
            "hecate does not change or delete it"
        )
    wanted = {}
    if values is not None:
        if isinstance(values, str):  # a comma-separated list, except for text
            values = [values] if rtype in ("TXT", "CAA") else [v.strip() for v in values.split(",") if v.strip()]
        try:
            norm = [normalise(rtype, v, zone) for v in values]
        except ValueError as exc:
            raise salt.exceptions.SaltInvocationError(f"{key}: invalid {rtype} value: {exc}") from None
        if not norm:
            raise salt.exceptions.SaltInvocationError(f"{key}: no value given")
        if rtype == "CNAME" and (name == "@" or len(set(norm)) > 1):
            raise salt.exceptions.SaltInvocationError(f"{key}: a CNAME has one value and is never at the apex")
        wanted[(name, rtype)] = Desired(zone, name, rtype, int(ttl) if ttl is not None else DEFAULT_TTL,
                                        tuple(sorted(set(norm))), ("argument",))
    return plan(zone, wanted, [live] if live else [], env)


PHASES = ("all", "add", "prune")


def select(ops, phase="all"):
    """
    The ops of one phase. The orchestration writes DNS in two steps around the Caddy
    routes: ``add`` (creations and changes, before Caddy, so a new route resolves when
    Caddy asks for its certificate) and ``prune`` (deletions, after Caddy has dropped the
    routes, so a failed run never leaves a live route without its record). A deletion
    that a creation needs (an A giving way to a CNAME of the same name) belongs to ``add``.
    """
    if phase not in PHASES:
        raise salt.exceptions.SaltInvocationError(f"phase must be one of {', '.join(PHASES)}, got {phase!r}")
    if phase == "all":
        return list(ops)
    adding = [op for op in ops if op.kind != "delete"]
    cname_names = {(op.zone, op.name) for op in adding if op.type == "CNAME"}
    other_names = {(op.zone, op.name) for op in adding if op.type != "CNAME"}

    def needed(op):
        where = (op.zone, op.name)
        return (where in cname_names and op.type != "CNAME") or (where in other_names and op.type == "CNAME")

    if phase == "add":
        return [op for op in ops if op.kind != "delete" or needed(op)]
    return [op for op in ops if op.kind == "delete" and not needed(op)]
