"""
Routes from Consul: every Consul service tagged ``hecate-route`` (pillar
``hecate:reverse_proxy:caddy:consul_routes:tag``) whose instances carry
``meta.hecate_domain`` gets a Caddy route to its passing instances and, with ``hecate:dns``,
the DNS records of its domains.

One discovery serves Caddy and DNS alike. :func:`read_consul` reads Consul once (the catalog,
then the health of each tagged service); :func:`discover` turns that answer and the pillar
into the routes, built and checked by the pillar route model (:mod:`hecate_caddy_routes`),
and the services it skipped, each with its reason. The states (``caddy_routes.managed``,
``hetzner_dns.managed``) get it through :func:`for_states`, which reads Consul once per state
run (``__context__``) and, in an orchestration run, once per run: the first step of a run
pins the answer on the edge under the run's id and the later steps of the same run read it
back, so the Caddy step and both DNS steps see the same services.

Rules (docs/systems/caddy.md, "Routes from Consul"):

- A service's route is named ``consul.<service>`` (``@id: hecate.route.consul.<service>``);
  a pillar route name cannot contain a dot, so the two never collide, and
  ``caddy_routes.managed`` owns both kinds.
- Its upstreams are its instances that carry the tag and pass all their checks (sorted, so
  a reordered Consul answer changes nothing). A service with no passing instance has no
  route, unless ``keep_without_passing`` names it (or is true): then its route points at all
  its tagged instances.
- Its meta (``hecate_domain``: one domain or a comma-separated list, ``hecate_forward_auth``:
  true/false, ``hecate_policies``: a comma-separated list of policy names, ``none`` for
  none) must be the same on all its tagged instances and hold no other ``hecate_*`` key (a
  misspelt ``hecate_forward_auth`` must not publish a service without its login).
- A service whose data is wrong is skipped and reported, never breaking the other routes;
  so is one whose domain a pillar route (or a ``hecate:dns:records`` entry) has: pillar
  wins. Two services claiming one domain are both skipped.
"""

import collections
import datetime
import json
import os
import re
import tempfile
import time

import salt.exceptions

import hecate_caddy_routes
import hecate_config
import hecate_dns_records

PILLAR_PATH = "hecate:reverse_proxy:caddy:consul_routes"
DEFAULT_TAG = "hecate-route"
NAME_PREFIX = "consul."
ID_PREFIX = hecate_caddy_routes.ID_PREFIX + NAME_PREFIX
META_DOMAIN = "hecate_domain"
META_FORWARD_AUTH = "hecate_forward_auth"
META_POLICIES = "hecate_policies"
META_KEYS = (META_DOMAIN, META_FORWARD_AUTH, META_POLICIES)
META_PREFIX = "hecate_"
SERVICE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
TRUE, FALSE = ("true", "yes", "1", "on"), ("false", "no", "0", "off")
CONTEXT_KEY = "hecate_consul_routes"
PIN_DIR = "consul-routes"
PIN_KEEP_SECONDS = 86400

PILLAR_SCHEMA = {
    PILLAR_PATH: {
        "type": "object",
        "additionalProperties": False,
        "description": (
            "Routes from Consul: every service carrying the tag and meta.hecate_domain gets a Caddy "
            "route to its passing instances (and, with hecate:dns, its DNS records). Absent: no "
            "route comes from Consul."
        ),
        "properties": {
            "enabled": {
                "type": "boolean",
                "description": ("false keeps the settings but takes no route from Consul (and removes "
                                "those taken before)."),
            },
            "tag": {
                "type": "string",
                "minLength": 1,
                "description": "The Consul service tag that asks for a route (default hecate-route).",
            },
            "keep_without_passing": {
                "description": (
                    "Services whose route stays while none of their instances passes its checks (then "
                    "the route points at all their tagged instances): true for all, or a list of "
                    "service names. Default: none, the route goes away with the last passing instance."
                ),
                "oneOf": [
                    {"type": "boolean"},
                    {"type": "array", "items": {"type": "string", "minLength": 1}},
                ],
            },
            "allowed_domains": {
                "type": "array",
                "items": {"type": "string", "minLength": 1},
                "description": (
                    "When set, a service may only claim these domains or names below them "
                    "(e.g. apps.cybermonkey.dev allows x.apps.cybermonkey.dev); others are skipped."
                ),
            },
        },
    }
}


# -- settings ------------------------------------------------------------------------------------
def settings(data):
    """The ``consul_routes`` block of a Caddy pillar block, or None when it is absent or disabled."""
    conf = (data or {}).get("consul_routes") if isinstance(data, dict) else None
    if not isinstance(conf, dict) or conf.get("enabled") is False:
        return None
    return conf


def tag_of(conf):
    return str(conf.get("tag") or DEFAULT_TAG)


def _keeps(conf, service):
    keep = conf.get("keep_without_passing", False)
    if isinstance(keep, list):
        return service in keep
    return keep is True


# -- reading Consul --------------------------------------------------------------------------------
def read_consul(tag, catalog, health):
    """
    ``{service: [instance, ...]}`` of the services carrying ``tag``: ``catalog()`` is Consul's
    service catalog (``{name: [tags]}``), ``health(name, tag)`` the health entries of the
    service's instances that carry the tag, in any state. An instance is ``{"id", "node",
    "address", "port", "passing", "meta"}`` with only the ``hecate_*`` meta (nothing else of
    the service's meta is kept or pinned). Sorted, so the order Consul answers in never
    matters. A service whose instances all left between the two reads is left out.
    """
    out = {}
    services = catalog() or {}
    for name in sorted(services):
        if tag not in (services[name] or []):
            continue
        instances = []
        for entry in health(name, tag) or []:
            svc = entry.get("Service") or {}
            node = entry.get("Node") or {}
            instances.append({
                "id": str(svc.get("ID") or ""),
                "node": str(node.get("Node") or ""),
                "address": str(svc.get("Address") or node.get("Address") or ""),
                "port": svc.get("Port"),
                # the rule of Consul's ?passing filter: every check of the entry passes
                "passing": all(c.get("Status") == "passing" for c in entry.get("Checks") or []),
                "meta": {str(k): str(v) for k, v in (svc.get("Meta") or {}).items()
                         if str(k).startswith(META_PREFIX)},
            })
        if instances:
            out[name] = sorted(instances, key=lambda i: (i["address"], str(i["port"]), i["node"], i["id"]))
    return out


def salt_reader(salt_funcs):
    """``(catalog, health)`` for :func:`read_consul` over the hecate_consul execution module."""
    for fun in ("hecate_consul.catalog_services", "hecate_consul.service_health"):
        if fun not in salt_funcs:
            raise salt.exceptions.CommandExecutionError(
                f"Consul module not available ({fun} is not loaded on this minion); cannot read "
                f"the services {PILLAR_PATH} takes routes from"
            )

    def catalog():
        return salt_funcs["hecate_consul.catalog_services"]()

    def health(name, tag):
        return salt_funcs["hecate_consul.service_health"](name, passing=False, tag=tag)

    return catalog, health


class RunPin:
    """
    The Consul answer of one orchestration run, kept on the edge so that every step of the
    run uses the same one: ``<state_dir>/consul-routes/<run id>.json`` (directory 0700, file
    0600; only the tagged services' addresses, ports, health and ``hecate_*`` meta). Pins older
    than a day are deleted when a new one is written.
    """

    def __init__(self, state_dir, run_id):
        self.dir = os.path.join(os.path.abspath(state_dir), PIN_DIR)
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", str(run_id))
        self.path = os.path.join(self.dir, safe + ".json")

    def load(self, tag):
        try:
            with open(self.path, encoding="utf-8") as fh:
                doc = json.load(fh)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise salt.exceptions.CommandExecutionError(
                f"cannot read this run's Consul routes from {self.path}: {exc}"
            ) from None
        return (doc.get("answers") or {}).get(tag)

    def save(self, tag, answer):
        try:
            os.makedirs(self.dir, mode=0o700, exist_ok=True)
            doc = {"answers": {}}
            if os.path.exists(self.path):
                with open(self.path, encoding="utf-8") as fh:
                    doc = json.load(fh)
            doc.setdefault("answers", {})[tag] = answer
            doc["time"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
            fd, tmp = tempfile.mkstemp(dir=self.dir, prefix=".tmp-")
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                os.fchmod(fh.fileno(), 0o600)
                fh.write(json.dumps(doc, sort_keys=True))
            os.replace(tmp, self.path)
            self._prune()
        except (OSError, ValueError) as exc:
            raise salt.exceptions.CommandExecutionError(
                f"cannot keep this run's Consul routes in {self.dir}: {exc}"
            ) from None

    def _prune(self):
        cutoff = time.time() - PIN_KEEP_SECONDS
        for name in os.listdir(self.dir):
            path = os.path.join(self.dir, name)
            if path != self.path and name.endswith(".json") and os.path.getmtime(path) < cutoff:
                os.unlink(path)


def consul_answer(tag, salt_funcs, opts, pillar, context=None):
    """
    The Consul answer for ``tag`` in a state run: the one this state run already read
    (``context``), else the one this orchestration run pinned (pillar ``hecate_run:id``),
    else read now (and pinned, unless ``test``: a preview writes nothing, not even here).
    """
    key = f"{CONTEXT_KEY}:{tag}"
    if context is not None and key in context:
        return context[key]
    run = pillar.get("hecate_run")
    run_id = run.get("id") if isinstance(run, dict) else None
    pin = None
    if run_id:
        pin = RunPin(hecate_config.connection("caddy", opts, pillar)["state_dir"], run_id)
    answer = pin.load(tag) if pin else None
    if answer is None:
        answer = read_consul(tag, *salt_reader(salt_funcs))
        if pin is not None and not opts.get("test"):
            pin.save(tag, answer)
    if context is not None:
        context[key] = answer
    return answer


# -- the discovered set ----------------------------------------------------------------------------
Discovered = collections.namedtuple(
    "Discovered", "service route domains forward_auth policies upstreams passing kept"
)


class Discovery:
    """
    What Consul gives: ``routes`` (:class:`hecate_caddy_routes.Route`, by service name),
    ``services`` (``{service: Discovered}``), ``skipped`` (``{service: reason}``), ``notes``
    (instances left out), ``tag``.
    """

    def __init__(self, tag):
        self.tag = tag
        self.services = {}
        self.skipped = {}
        self.notes = []

    @property
    def routes(self):
        return [self.services[name].route for name in sorted(self.services)]

    def dns_domains(self):
        """``[(domain, source)]`` for :func:`hecate_dns_records.route_domains`."""
        return [(dom, source(name)) for name in sorted(self.services) for dom in self.services[name].domains]

    def sources(self):
        return {source(name) for name in self.services}

    def lines(self):
        """The report lines for a state comment: what was skipped and why, notes."""
        out = [f"Consul service '{name}' skipped: {why}" for name, why in sorted(self.skipped.items())]
        return out + list(self.notes)

    def report(self):
        """A plain view for the execution module (``caddy.consul_routes``)."""
        return {
            "tag": self.tag,
            "routes": {
                d.route.name: {
                    "service": d.service, "domains": list(d.domains), "upstreams": list(d.upstreams),
                    "forward_auth": d.forward_auth, "policies": d.policies, "passing": d.passing,
                    "kept_without_passing": d.kept,
                }
                for d in (self.services[n] for n in sorted(self.services))
            },
            "skipped": dict(sorted(self.skipped.items())),
            "notes": list(self.notes),
        }


def source(service):
    """How DNS and reports name where a discovered domain comes from."""
    return f"Consul service '{service}'"


def route_name(service):
    return NAME_PREFIX + service.lower()


def _claimed(pillar, data):
    """``{domain: who}`` of the domains pillar has: its routes and its extra DNS records."""
    claimed = {}
    routes = data.get("routes")
    for idx, spec in enumerate(routes if isinstance(routes, list) else []):
        if not isinstance(spec, dict) or spec.get("enabled") is False:
            continue
        name = hecate_caddy_routes.route_name(spec)
        for dom in _as_list(spec.get("domain")) + _as_list(spec.get("domains")):
            where = f"pillar route '{name}' ({hecate_caddy_routes.PILLAR_PATH}:routes:{idx})"
            claimed.setdefault(str(dom).lower().rstrip("."), where)
    records = (hecate_dns_records.dns_settings(pillar) or {}).get("records")
    for idx, rec in enumerate(records if isinstance(records, list) else []):
        if isinstance(rec, dict) and rec.get("name"):
            claimed.setdefault(str(rec["name"]).lower().rstrip("."), f"the DNS record hecate:dns:records:{idx}")
    return claimed


def _as_list(value):
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _bare(domain):
    return domain[2:] if domain.startswith("*.") else domain


def _allowed(domain, allowed):
    bare = _bare(domain)
    return any(bare == a or bare.endswith("." + a) for a in allowed)


def _meta(instances):
    """The service's hecate meta, or raise ValueError saying why it has none usable."""
    seen = collections.Counter(json.dumps(i["meta"], sort_keys=True) for i in instances)
    if len(seen) > 1:
        views = "; ".join(f"{text} on {count} instance(s)" for text, count in sorted(seen.items()))
        raise ValueError(f"its tagged instances disagree on their hecate_* meta ({views})")
    meta = instances[0]["meta"]
    unknown = sorted(k for k in meta if k not in META_KEYS)
    if unknown:
        raise ValueError(
            f"unknown meta key(s) {', '.join(unknown)} (hecate reads {', '.join(META_KEYS)}); "
            "a misspelt key could publish the service without what it asks for"
        )
    return meta


def _usable(instance):
    port = instance.get("port")
    return bool(instance.get("address")) and isinstance(port, int) and not isinstance(port, bool) and 0 < port < 65536


def _spec(service, instances, conf, allowed, claimed):
    """
    ``(route spec, passing, kept, left_out)`` of one service (``left_out``: instances without
    an address and a port); ValueError says why it gets no route.
    """
    if not SERVICE_NAME.match(service.lower()):
        raise ValueError("its name cannot name a route ([a-z0-9_-], at most 63 characters)")
    meta = _meta(instances)
    raw = meta.get(META_DOMAIN, "").strip()
    if not raw:
        raise ValueError(f"it carries the tag but no meta.{META_DOMAIN}")
    domains = [d.strip().lower().rstrip(".") for d in raw.split(",") if d.strip()]
    for dom in domains:
        if not hecate_caddy_routes.DOMAIN_RE.match(dom):
            raise ValueError(f"meta.{META_DOMAIN}: {dom!r} is not a valid domain")
        if allowed and not _allowed(dom, allowed):
            raise ValueError(f"meta.{META_DOMAIN}: {dom} is not in {PILLAR_PATH}:allowed_domains")
        if dom in claimed:
            raise ValueError(f"{dom} is already {claimed[dom]}: pillar wins")
    if len(set(domains)) != len(domains):
        raise ValueError(f"meta.{META_DOMAIN} lists a domain twice")
    spec = {"name": service.lower(), "domains": domains}
    if META_FORWARD_AUTH in meta:
        flag = meta[META_FORWARD_AUTH].strip().lower()
        if flag not in TRUE + FALSE:
            raise ValueError(f"meta.{META_FORWARD_AUTH} is {meta[META_FORWARD_AUTH]!r}, not true or false")
        spec["forward_auth"] = flag in TRUE
    if META_POLICIES in meta:
        names = [p.strip() for p in meta[META_POLICIES].split(",") if p.strip()]
        spec["policies"] = [] if names in ([], ["none"]) else names
    usable = [i for i in instances if _usable(i)]
    passing = [i for i in usable if i["passing"]]
    kept = not passing and _keeps(conf, service)
    chosen = passing or (usable if kept else [])
    if not chosen:
        raise ValueError("no passing instance" if usable else "no instance with an address and a port")
    spec["backend"] = sorted({_dial(i) for i in chosen})
    return spec, bool(passing), kept, len(instances) - len(usable)


def _dial(instance):
    addr = instance["address"]
    if ":" in addr and not addr.startswith("["):
        addr = f"[{addr}]"
    return f"{addr}:{instance['port']}"


def discover(pillar, answer, data=None, tag=None):
    """
    The :class:`Discovery` of a Consul ``answer`` (:func:`read_consul`) under ``pillar``;
    ``data`` is the Caddy pillar block (default ``hecate:reverse_proxy:caddy``). Deterministic:
    the same answer and pillar give the same routes, whatever order Consul answered in.
    """
    data = data if data is not None else hecate_caddy_routes.caddy_data(pillar)
    conf = settings(data) or {}
    found = Discovery(tag or tag_of(conf))
    allowed = [_bare(str(a).lower().rstrip(".")) for a in conf.get("allowed_domains") or []]
    claimed = _claimed(pillar, data)
    specs, owners, names = {}, collections.defaultdict(list), collections.defaultdict(list)
    for service in sorted(answer):
        instances = answer[service]
        try:
            spec, passing, kept, left_out = _spec(service, instances, conf, allowed, claimed)
        except ValueError as exc:
            found.skipped[service] = str(exc)
            continue
        if left_out:
            found.notes.append(
                f"Consul service '{service}': {left_out} instance(s) without an address and a port left out")
        specs[service] = (spec, passing, kept)
        names[spec["name"]].append(service)
        for dom in spec["domains"]:
            owners[dom].append(service)
    for dom, services in sorted(owners.items()):
        if len(services) > 1:
            for service in services:
                others = ", ".join(s for s in services if s != service)
                found.skipped.setdefault(service, f"{dom} is claimed by Consul service(s) {others} too")
    for _name, services in sorted(names.items()):
        if len(services) > 1:
            for service in services:
                others = ", ".join(s for s in services if s != service)
                found.skipped.setdefault(service, f"its route name {route_name(service)} is that of {others} too")
    cache = hecate_caddy_routes.PolicyCache(data)
    for service, (spec, passing, kept) in sorted(specs.items()):
        if service in found.skipped:
            continue
        errors = []
        try:
            route = hecate_caddy_routes.build_route(
                spec, source(service), data, None, ID_PREFIX, errors, cache
            )
        except (AttributeError, TypeError, ValueError) as exc:
            errors.append((source(service), f"{type(exc).__name__}: {exc}"))
            route = None
        if route is None:
            found.skipped[service] = "; ".join(_reason(path, msg, service) for path, msg in errors) or (
                "its route could not be built")
            continue
        route.name = route_name(service)
        found.services[service] = Discovered(
            service, route, tuple(spec["domains"]), bool(spec.get("forward_auth")),
            spec.get("policies"), tuple(spec["backend"]), passing, kept,
        )
        if kept:
            found.notes.append(f"Consul service '{service}' has no passing instance; its route is kept "
                               f"({PILLAR_PATH}:keep_without_passing)")
    return found


def _reason(path, msg, service):
    """A route model error about a discovered route, without the pillar-route wording."""
    msg = re.sub(r"^route '[^']*': ", "", msg)
    where = path[len(source(service)):].lstrip(":") if path.startswith(source(service)) else path
    meta = {"policies": META_POLICIES, "forward_auth": META_FORWARD_AUTH, "domain": META_DOMAIN,
            "domains": META_DOMAIN}.get(where.split(":")[0])
    return f"meta.{meta}: {msg}" if meta else (f"{where}: {msg}" if where else msg)


def for_states(pillar, salt_funcs, opts, context=None, data=None):
    """
    The :class:`Discovery` a state (Caddy or DNS) works with, or None when pillar takes no
    route from Consul. ``context`` is the state run's ``__context__`` (one Consul read per
    state run); execution functions pass None (and read Consul each call).
    """
    data = data if data is not None else hecate_caddy_routes.caddy_data(pillar)
    conf = settings(data)
    if conf is None:
        return None
    tag = tag_of(conf)
    return discover(pillar, consul_answer(tag, salt_funcs, opts, pillar, context), data, tag)


# -- Caddy -------------------------------------------------------------------------------------------
def planner(pillar_routes, discovery, held=None):
    """
    ``(compute, notes)``: ``compute(live)`` for :func:`hecate_caddy_apply.apply`, the plan of
    the server's hecate routes as pillar's plus the discovered ones (exact domains before
    wildcards; pillar's first). Pillar routes named in ``held`` (route -> why: protected
    routes whose Authentik side is not in place) stay as Caddy has them
    (:func:`hecate_caddy_routes.hold`). A discovered route that an earlier route hecate does not
    manage would shadow is left out (with a note in ``notes``) instead of failing the whole
    set; a shadowed pillar route still fails it, as without Consul.
    """
    notes = []

    def compute(live):
        del notes[:]
        extra = list(discovery.routes) if discovery is not None else []
        while True:
            kept = hecate_caddy_routes.hold(list(pillar_routes), held, live)
            routes = sorted(kept + extra, key=lambda r: r.wildcard)
            try:
                return hecate_caddy_routes.plan_set(live, routes)
            except hecate_caddy_routes.ShadowedRoutes as exc:
                mine = [hit for hit in exc.found if any(hit[0] is r for r in extra)]
                if len(mine) != len(exc.found):
                    raise
                for ours, domain, index, other, why in mine:
                    rid = other.get("@id") if isinstance(other, dict) else None
                    notes.append(
                        f"Consul route '{ours.name}' left out: route {index} of the server "
                        f"({'@id ' + rid if rid else 'no @id'}), not hecate's, takes every request for "
                        f"{domain} before it ({why})"
                    )
                extra = [r for r in extra if not any(hit[0] is r for hit in mine)]

    return compute, notes


# -- DNS ---------------------------------------------------------------------------------------------
def dns_without_clashes(wanted, list_rrsets, env, sources):
    """
    ``(wanted, notes)``: the records :func:`hecate_dns_records.desired` wants, without those of
    discovered routes (``sources``) whose name an RRSet hecate does not own already holds (a
    foreign A, AAAA or CNAME of that name: both address records are left out, so a name never
    points half at the edge). Those are reported, never written, and
    never fail the state: a Consul service cannot break the DNS step. ``list_rrsets(zone)``
    should be memoised (the plan reads the same zones).
    """
    out, notes = {}, []
    for zone, recs in wanted.items():
        mine = {key: rec for key, rec in recs.items() if rec.sources[0] in sources}
        if not mine:
            out[zone] = recs
            continue
        live = list_rrsets(zone)
        # a name's addresses come from one owner: a foreign A, AAAA or CNAME keeps the name
        foreign = [r for r in live if hecate_dns_records.owner(r, env) != "hecate"
                   and r["type"] in ("A", "AAAA", "CNAME")]
        keep = dict(recs)
        for (name, rtype), rec in sorted(mine.items()):
            hit = next((r for r in foreign if r["name"] == name), None)
            if hit is None:
                continue
            del keep[(name, rtype)]
            notes.append(
                f"{hecate_dns_records.key_of(name, rtype, zone)} (from {rec.sources[0]}) not made: the zone "
                f"already has {hecate_dns_records.key_of(hit['name'], hit['type'], zone)}, which hecate does "
                f"not own (labels {hit.get('labels') or {}}); Caddy serves the route, its name resolves "
                "wherever that record points"
            )
        out[zone] = keep
    return out, notes


def memo(list_rrsets):
    """``list_rrsets(zone)`` read once per zone."""
    seen = {}

    def read(zone):
        if zone not in seen:
            seen[zone] = list_rrsets(zone)
        return seen[zone]

    return read
