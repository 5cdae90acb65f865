"""
Simulator of the Hetzner Cloud API's DNS part: Zones, RRSets and their Actions
(https://docs.hetzner.cloud/reference/cloud#zones, #zone-rrsets, #zone-rrset-actions).

What it reproduces, each from hcloud-python 2.27 (``hcloud/zones``, ``hcloud/actions``,
``hcloud/_client.py``, ``hcloud/core``) and the reference's general sections (Errors,
Labels, Label Selector, Pagination, Rate Limiting, Actions):

- ``Authorization: Bearer <token>``; anything else is ``401 unauthorized``.
- the response roots hcloud reads: ``zone``/``zones``, ``rrset``/``rrsets``, ``action``,
  ``meta.pagination`` (page, per_page, previous_page, next_page, last_page,
  total_entries) and a ``Link`` header; ``per_page`` 25 by default, at most 50.
- RRSets: ``id`` ``<name>/<type>``, ``zone`` (the zone's id), ``ttl`` (null = the zone's),
  ``labels``, ``protection.change``, ``records`` [{value, comment}]; names relative to the
  zone (``@`` the apex, ``*``/``*.x`` wildcards); a new zone has SOA and three NS at ``@``.
- writes return an Action (``running`` when created; ``success`` once ``action_seconds``
  have passed) that ``GET /actions/{id}`` (what ``BoundAction.reload`` reads) and
  ``GET /zones/actions/{id}`` return; ``POST /_lab/action_faults`` makes the next matching
  action fail (``status: error`` with an error code and message) or never finish.
- errors ``{"error": {"code", "message", "details"}}`` with the reference's statuses:
  ``json_error`` 400, ``unauthorized`` 401, ``not_found`` 404, ``uniqueness_error`` 409,
  ``invalid_input`` 422 (with ``details.fields``), ``incorrect_zone_mode`` 422,
  ``protected`` 423, ``rate_limit_exceeded`` 429; every answer carries
  ``RateLimit-Limit/-Remaining/-Reset``.
- request bodies are checked strictly (unknown fields, types, label syntax, TTL range,
  values per record type, CNAME exclusivity): a simulator that accepts anything would
  hide a client's misreading.
"""

import datetime
import ipaddress
import json
import re
import threading
import time
import urllib.parse

from werkzeug.routing import Rule

from lab.sim.base import Simulator

TYPES = ("A", "AAAA", "CAA", "CNAME", "DS", "HINFO", "HTTPS", "MX", "NS", "PTR", "RP", "SOA",
         "SRV", "SVCB", "TLSA", "TXT")  # hcloud.zones.domain.ZoneRRSetType
NAMESERVERS = ("hydrogen.ns.hetzner.com.", "oxygen.ns.hetzner.com.", "helium.ns.hetzner.de.")
TTL_MIN, TTL_MAX = 60, 2147483647
# POST /zones/{z}/rrsets/{name}/{type}/actions/<path> -> the Action's command
ACTION_COMMANDS = {
    "set_records": "set_rrset_records",
    "add_records": "add_rrset_records",
    "remove_records": "remove_rrset_records",
    "update_records": "update_rrset_records",
    "change_ttl": "change_rrset_ttl",
    "change_protection": "change_rrset_protection",
}
PER_PAGE, PER_PAGE_MAX = 25, 50
# reference "Labels": <prefix>/<name>, name <= 63 chars, alnum at both ends, - _ . inside
_LABEL_NAME = r"[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?"
LABEL_KEY = re.compile(rf"^([a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*/)?{_LABEL_NAME}$")
LABEL_VALUE = re.compile(rf"^({_LABEL_NAME})?$")
_RR_LABEL = r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?"
RRSET_NAME = re.compile(rf"^(@|\*|(\*\.)?{_RR_LABEL}(\.{_RR_LABEL})*)$")
_HOST_LABEL = r"[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
HOST = re.compile(rf"^({_HOST_LABEL}\.)*{_HOST_LABEL}\.?$")
TXT_STRINGS = re.compile(r'^"(?:[^"\\]|\\.)*"(\s+"(?:[^"\\]|\\.)*")*$')


class APIError(Exception):
    def __init__(self, status, code, message, details=None):
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details


def _invalid(fields):
    """``invalid_input`` naming each field: ``{"records[0].value": ["..."]}``."""
    names = ", ".join(fields)
    return APIError(422, "invalid_input", f"invalid input in field(s) {names}",
                    {"fields": [{"name": k, "messages": v} for k, v in fields.items()]})


def _now():
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()


def _txt_strings(value):
    return re.findall(r'"((?:[^"\\]|\\.)*)"', value)


def check_value(rtype, value):
    """Why a record value is not valid for its type (None when it is)."""
    if rtype == "A":
        try:
            ipaddress.IPv4Address(value)
        except ValueError:
            return "is not an IPv4 address"
    elif rtype == "AAAA":
        try:
            ipaddress.IPv6Address(value)
        except ValueError:
            return "is not an IPv6 address"
    elif rtype in ("CNAME", "NS", "PTR"):
        if not HOST.match(value):
            return "is not a host name"
    elif rtype == "MX":
        parts = value.split()
        if len(parts) != 2 or not parts[0].isdigit() or not HOST.match(parts[1]):
            return "must be '<priority> <host>'"
    elif rtype == "TXT":
        # the reference: one or many quoted strings of at most 255 characters
        if not TXT_STRINGS.match(value):
            return "must be one or more quoted strings"
        if any(len(s.replace('\\"', '"').encode()) > 255 for s in _txt_strings(value)):
            return "a string is longer than 255 characters"
    elif rtype == "CAA" and (not re.match(r'^\d{1,3} [a-z0-9]+ "[^"]*"$', value) or int(value.split()[0]) > 255):
        return "must be '<flags> <tag> \"<value>\"'"
    return None


def parse_selector(text):
    """The reference's label selector: ``k=v``/``k==v``, ``k!=v``, ``k``, ``!k``,
    ``k in (a,b)``, ``k notin (a,b)``, ANDed with commas outside parentheses."""
    terms, depth, cur = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            terms.append(cur.strip())
            cur = ""
        else:
            cur += ch
    terms.append(cur.strip())
    out = []
    for term in terms:
        match = re.match(r"^([^\s!=(),]+)\s+(in|notin)\s+\(([^)]*)\)$", term)
        if match:
            values = {v.strip() for v in match.group(3).split(",") if v.strip()}
            out.append((match.group(2), match.group(1), values))
            continue
        match = re.match(r"^([^\s!=(),]+)\s*(==|=|!=)\s*([^\s!=(),]*)$", term)
        if match:
            out.append(({"==": "eq", "=": "eq", "!=": "ne"}[match.group(2)], match.group(1), match.group(3)))
            continue
        match = re.match(r"^(!?)([^\s!=(),]+)$", term)
        if match:
            out.append(("absent" if match.group(1) else "present", match.group(2), None))
            continue
        raise _invalid({"label_selector": [f"invalid label selector term {term!r}"]})
    return out


def selector_matches(terms, labels):
    for op, key, val in terms:
        have = labels.get(key)
        if op == "eq":
            ok = have == val
        elif op == "ne":
            ok = have != val
        elif op == "present":
            ok = key in labels
        elif op == "absent":
            ok = key not in labels
        elif op == "in":
            ok = have in val
        else:  # notin
            ok = have not in val
        if not ok:
            return False
    return True


class HetznerSim(Simulator):
    name = "hetzner"

    def __init__(self, options=None):
        super().__init__(options)
        opts = self.options
        self.token = opts.get("token")
        self.action_seconds = float(opts.get("action_seconds", 0.0))
        self.rate_limit = int(opts.get("rate_limit", 3600))
        self.remaining = float(self.rate_limit)
        self.refilled = time.monotonic()
        self.zones = {}
        self.actions = {}
        self.action_faults = []
        self.next_zone = 1000
        self.next_action = 5000
        self.lock = threading.Lock()
        for spec in opts.get("zones") or []:
            self._seed_zone(spec)

    # -- routing -----------------------------------------------------------------------------------
    def rules(self):
        z = "/v1/zones/<zone>"
        r = z + "/rrsets/<rr_name>/<rr_type>"
        return [
            Rule("/v1/zones", methods=["GET"], endpoint="zones"),
            Rule("/v1/zones/actions/<int:action_id>", methods=["GET"], endpoint="action"),
            Rule("/v1/actions/<int:action_id>", methods=["GET"], endpoint="action"),
            Rule(z, methods=["GET"], endpoint="zone"),
            Rule(z + "/actions/<int:action_id>", methods=["GET"], endpoint="zone_action"),
            Rule(z + "/rrsets", methods=["GET"], endpoint="rrsets"),
            Rule(z + "/rrsets", methods=["POST"], endpoint="create_rrset"),
            Rule(r, methods=["GET"], endpoint="rrset"),
            Rule(r, methods=["PUT"], endpoint="update_rrset"),
            Rule(r, methods=["DELETE"], endpoint="delete_rrset"),
            Rule(r + "/actions/<command>", methods=["POST"], endpoint="rrset_action"),
        ]

    def dispatch(self, request):
        headers = self._rate_headers()
        if self.remaining < 1:
            return self._error(APIError(429, "rate_limit_exceeded", "limit of requests per hour reached"), headers)
        if self.token and request.headers.get("Authorization") != f"Bearer {self.token}":
            return self._error(APIError(401, "unauthorized", "unable to authenticate"), headers)
        resp = super().dispatch(request)
        for key, val in headers.items():
            resp.headers[key] = val
        return resp

    def _rate_headers(self):
        with self.lock:
            now = time.monotonic()
            per_second = self.rate_limit / 3600.0
            self.remaining = min(self.rate_limit, self.remaining + (now - self.refilled) * per_second)
            self.refilled = now
            if self.remaining >= 1:
                self.remaining -= 1
            missing = self.rate_limit - self.remaining
            reset = int(time.time() + missing / per_second)
            return {"RateLimit-Limit": str(self.rate_limit), "RateLimit-Remaining": str(int(self.remaining)),
                    "RateLimit-Reset": str(reset)}

    def _error(self, err, headers=None):
        body = {"error": {"code": err.code, "message": err.message, "details": err.details}}
        return self.json(body, status=err.status, headers=headers)

    def not_found(self, request):
        return self._error(APIError(404, "not_found", "not found"))

    def method_not_allowed(self, request):
        return self._error(APIError(405, "method_not_allowed", "method not allowed"))

    def handle_error(self, request, exc):
        if isinstance(exc, APIError):
            return self._error(exc)
        return self._error(APIError(500, "server_error", f"internal error: {type(exc).__name__}: {exc}"))

    def _control(self, request):
        if request.path == "/_lab/action_faults":
            with self.cond:
                if request.method == "DELETE":
                    self.action_faults.clear()
                elif request.method == "POST":
                    self.action_faults.append(request.get_json(force=True))
                return self.json(self.action_faults)
        return super()._control(request)

    # -- state -------------------------------------------------------------------------------------
    def _seed_zone(self, spec):
        zid = spec.get("id") or self.next_zone
        self.next_zone = max(self.next_zone, zid) + 1
        zone = {
            "id": zid,
            "name": spec["name"],
            "created": _now(),
            "mode": spec.get("mode", "primary"),
            "ttl": spec.get("ttl", 3600),
            "labels": dict(spec.get("labels") or {}),
            "protection": {"delete": bool(spec.get("protected", False))},
            "status": "ok",
            "registrar": "other",
            "primary_nameservers": [],
            "authoritative_nameservers": {
                "assigned": list(NAMESERVERS),
                "delegated": list(NAMESERVERS),
                "delegation_last_check": _now(),
                "delegation_status": "valid",
            },
            "serial": 1,
            "rrsets": {},
        }
        self.zones[zid] = zone
        soa = f"{NAMESERVERS[0]} dns.hetzner.com. {time.strftime('%Y%m%d')}01 86400 10800 3600000 3600"
        self._put(zone, "@", "SOA", None, {}, [soa])
        self._put(zone, "@", "NS", None, {}, list(NAMESERVERS))
        for rr in spec.get("rrsets") or []:
            records = [r if isinstance(r, str) else r["value"] for r in rr.get("records", [])]
            self._put(zone, rr["name"], rr["type"], rr.get("ttl"), rr.get("labels") or {}, records,
                      protected=rr.get("protected", False))
        return zone

    @staticmethod
    def _put(zone, name, rtype, ttl, labels, values, protected=False):
        zone["rrsets"][(name, rtype)] = {
            "name": name, "type": rtype, "ttl": ttl, "labels": dict(labels),
            "protection": {"change": bool(protected)},
            "records": [{"value": v, "comment": ""} for v in values],
        }

    def _zone(self, id_or_name, rrsets=False):
        zone = None
        if str(id_or_name).isdigit():
            zone = self.zones.get(int(id_or_name))
        else:
            zone = next((z for z in self.zones.values() if z["name"] == id_or_name), None)
        if zone is None:
            raise APIError(404, "not_found", f"zone with ID or name {id_or_name} not found")
        if rrsets and zone["mode"] != "primary":
            raise APIError(422, "incorrect_zone_mode", "This operation is not supported for this Zone's mode.")
        return zone

    def _rrset(self, zone, name, rtype):
        rrset = zone["rrsets"].get((name, rtype))
        if rrset is None:
            raise APIError(404, "not_found", f"rrset {name}/{rtype} not found")
        return rrset

    def _changed(self, zone):
        zone["serial"] += 1
        soa = zone["rrsets"][("@", "SOA")]
        parts = soa["records"][0]["value"].split()
        parts[2] = str(int(parts[2]) + 1)
        soa["records"][0]["value"] = " ".join(parts)

    # -- representations (the fields of hcloud's Zone / ZoneRRSet / Action models) ------------------
    @staticmethod
    def zone_json(zone):
        out = {k: v for k, v in zone.items() if k not in ("rrsets", "serial")}
        out["record_count"] = sum(len(r["records"]) for r in zone["rrsets"].values())
        return json.loads(json.dumps(out))

    @staticmethod
    def rrset_json(zone, rrset):
        out = dict(rrset, id=f"{rrset['name']}/{rrset['type']}", zone=zone["id"])
        return json.loads(json.dumps(out))

    def action_json(self, action):
        return {k: v for k, v in action.items() if not k.startswith("_")}

    def _action(self, zone, command, rrset_key=None):
        """A new Action; the fault matching it (if any) decides how it ends."""
        fault = self._take_action_fault(command, rrset_key)
        self.next_action += 1
        action = {
            "id": self.next_action,
            "command": command,
            "status": "running",
            "progress": 0,
            "started": _now(),
            "finished": None,
            "resources": [{"id": zone["id"], "type": "zone"}],
            "error": None,
            "_ready": time.monotonic() + self.action_seconds,
            "_outcome": (fault or {}).get("outcome", "success"),
            "_error": (fault or {}).get("error") or {"code": "action_failed", "message": "action failed"},
        }
        self.actions[action["id"]] = action
        return action

    def _take_action_fault(self, command, rrset_key):
        for fault in self.action_faults:
            if fault.get("command") and fault["command"] != command:
                continue
            if fault.get("rrset") and rrset_key and fault["rrset"] != f"{rrset_key[0]}/{rrset_key[1]}":
                continue
            if fault.get("times") is not None:
                if fault["times"] <= 0:
                    continue
                fault["times"] -= 1
            return fault
        return None

    def _refresh(self, action):
        if action["status"] != "running":
            return
        if action["_outcome"] == "stuck" or time.monotonic() < action["_ready"]:
            action["progress"] = 50 if action["_outcome"] == "stuck" else 0
            return
        action["finished"] = _now()
        action["progress"] = 100
        if action["_outcome"] == "error":
            action["status"] = "error"
            action["error"] = dict(action["_error"])
        else:
            action["status"] = "success"

    # -- request parsing ---------------------------------------------------------------------------
    @staticmethod
    def _body(request, allowed, required=()):
        try:
            body = json.loads(request.get_data() or b"null")
        except ValueError:
            raise APIError(400, "json_error", "invalid JSON in the request body") from None
        if not isinstance(body, dict):
            raise APIError(400, "json_error", "the request body must be a JSON object")
        fields = {}
        for key in body:
            if key not in allowed:
                fields[key] = ["unknown field"]
        for key in required:
            if key not in body:
                fields[key] = ["is required"]
        if fields:
            raise _invalid(fields)
        return body

    @staticmethod
    def _check_labels(labels, fields):
        if not isinstance(labels, dict):
            fields["labels"] = ["must be an object"]
            return
        for key, val in labels.items():
            if not isinstance(val, str):
                fields[f"labels.{key}"] = ["value must be a string"]
            elif key.startswith("hetzner.cloud/"):
                fields[f"labels.{key}"] = ["the hetzner.cloud/ prefix is reserved"]
            elif not LABEL_KEY.match(key) or len(key.split("/")[0]) > 253:
                fields[f"labels.{key}"] = ["invalid label key"]
            elif not LABEL_VALUE.match(val):
                fields[f"labels.{key}"] = ["invalid label value"]

    @staticmethod
    def _check_ttl(ttl, fields, nullable=True):
        if ttl is None and nullable:
            return
        if not isinstance(ttl, int) or isinstance(ttl, bool) or not TTL_MIN <= ttl <= TTL_MAX:
            fields["ttl"] = [f"must be an integer between {TTL_MIN} and {TTL_MAX}"]

    @staticmethod
    def _check_records(rtype, records, fields, allow_empty=False):
        if not isinstance(records, list) or (not records and not allow_empty):
            fields["records"] = ["must be a non-empty list"]
            return []
        values = []
        for idx, rec in enumerate(records):
            if not isinstance(rec, dict) or set(rec) - {"value", "comment"} or not isinstance(rec.get("value"), str):
                fields[f"records[{idx}]"] = ["must be {value: string, comment?: string}"]
                continue
            if "comment" in rec and not isinstance(rec["comment"], str):
                fields[f"records[{idx}].comment"] = ["must be a string"]
            why = check_value(rtype, rec["value"])
            if why:
                fields[f"records[{idx}].value"] = [f"{rec['value']!r} {why}"]
            values.append(rec)
        if rtype == "CNAME" and len(records) > 1:
            fields["records"] = ["a CNAME RRSet has exactly one record"]
        return values

    def _page(self, request, items, root, serialise):
        args = request.args
        try:
            page = int(args.get("page", 1))
            per_page = int(args.get("per_page", PER_PAGE))
        except ValueError:
            raise _invalid({"page": ["must be an integer"]}) from None
        if page < 1 or not 1 <= per_page <= PER_PAGE_MAX:
            raise _invalid({"per_page": [f"must be between 1 and {PER_PAGE_MAX}"], "page": ["must be >= 1"]})
        total = len(items)
        last = max(1, -(-total // per_page))
        chunk = items[(page - 1) * per_page: page * per_page]
        pagination = {
            "page": page, "per_page": per_page,
            "previous_page": page - 1 if page > 1 else None,
            "next_page": page + 1 if page < last else None,
            "last_page": last, "total_entries": total,
        }
        links = []
        base = request.base_url
        for rel, num in (("prev", pagination["previous_page"]), ("next", pagination["next_page"]), ("last", last)):
            if num:
                query = dict(args.items(multi=False), page=str(num), per_page=str(per_page))
                links.append(f'<{base}?{urllib.parse.urlencode(query)}>; rel="{rel}"')
        body = {root: [serialise(i) for i in chunk], "meta": {"pagination": pagination}}
        return self.json(body, headers={"Link": ", ".join(links)} if links else None)

    @staticmethod
    def _sorted(items, request, fields):
        for spec in reversed(request.args.getlist("sort")):
            field, _, direction = spec.partition(":")
            if field not in fields or direction not in ("", "asc", "desc"):
                raise _invalid({"sort": [f"cannot sort by {spec!r}"]})
            items = sorted(items, key=lambda i, f=field: (i.get(f) is None, i.get(f)), reverse=direction == "desc")
        return items

    # -- zones -------------------------------------------------------------------------------------
    def on_zones(self, request):
        zones = sorted(self.zones.values(), key=lambda z: z["id"])
        if request.args.get("name"):
            zones = [z for z in zones if z["name"] == request.args["name"]]
        if request.args.get("mode"):
            zones = [z for z in zones if z["mode"] == request.args["mode"]]
        if request.args.get("label_selector"):
            terms = parse_selector(request.args["label_selector"])
            zones = [z for z in zones if selector_matches(terms, z["labels"])]
        zones = self._sorted(zones, request, ("id", "name", "created"))
        return self._page(request, zones, "zones", self.zone_json)

    def on_zone(self, request, zone):
        return self.json({"zone": self.zone_json(self._zone(zone))})

    def on_action(self, request, action_id):
        action = self.actions.get(action_id)
        if action is None:
            raise APIError(404, "not_found", f"action with ID {action_id} not found")
        self._refresh(action)
        return self.json({"action": self.action_json(action)})

    def on_zone_action(self, request, zone, action_id):
        self._zone(zone)
        return self.on_action(request, action_id)

    # -- rrsets ------------------------------------------------------------------------------------
    def on_rrsets(self, request, zone):
        zone = self._zone(zone, rrsets=True)
        items = sorted(zone["rrsets"].values(), key=lambda r: (r["name"], r["type"]))
        if request.args.get("name"):
            items = [r for r in items if r["name"] == request.args["name"]]
        types = request.args.getlist("type")
        bad = [t for t in types if t not in TYPES]
        if bad:
            raise _invalid({"type": [f"unknown type(s) {', '.join(bad)}"]})
        if types:
            items = [r for r in items if r["type"] in types]
        if request.args.get("label_selector"):
            terms = parse_selector(request.args["label_selector"])
            items = [r for r in items if selector_matches(terms, r["labels"])]
        items = self._sorted(items, request, ("id", "name", "type", "ttl"))
        return self._page(request, items, "rrsets", lambda r: self.rrset_json(zone, r))

    def on_rrset(self, request, zone, rr_name, rr_type):
        zone = self._zone(zone, rrsets=True)
        return self.json({"rrset": self.rrset_json(zone, self._rrset(zone, rr_name, rr_type))})

    def on_create_rrset(self, request, zone):
        zone = self._zone(zone, rrsets=True)
        body = self._body(request, ("name", "type", "ttl", "labels", "records"), ("name", "type"))
        fields = {}
        name, rtype = body["name"], body["type"]
        if not isinstance(name, str) or not RRSET_NAME.match(name) or name.endswith("." + zone["name"]):
            fields["name"] = [f"{name!r} is not a name relative to the zone (@ for the apex)"]
        if rtype not in TYPES:
            fields["type"] = [f"{rtype!r} is not one of {', '.join(TYPES)}"]
        elif rtype == "SOA":
            fields["type"] = ["the SOA RRSet is created with the zone"]
        self._check_ttl(body.get("ttl"), fields)
        self._check_labels(body.get("labels", {}), fields)
        records = self._check_records(rtype, body.get("records", []), fields)
        if fields:
            raise _invalid(fields)
        if (name, rtype) in zone["rrsets"]:
            raise APIError(409, "uniqueness_error", f"rrset {name}/{rtype} already exists",
                           {"fields": [{"name": "name"}, {"name": "type"}]})
        others = {t for (n, t) in zone["rrsets"] if n == name}
        if others and (rtype == "CNAME" or "CNAME" in others):
            raise _invalid({"type": [f"a CNAME cannot share the name {name!r} with other records"]})
        action = self._action(zone, "create_rrset", (name, rtype))
        rrset = {"name": name, "type": rtype, "ttl": body.get("ttl"), "labels": dict(body.get("labels") or {}),
                 "protection": {"change": False},
                 "records": [{"value": r["value"], "comment": r.get("comment", "")} for r in records]}
        if action["_outcome"] == "success":
            zone["rrsets"][(name, rtype)] = rrset
            self._changed(zone)
        return self.json({"rrset": self.rrset_json(zone, rrset), "action": self.action_json(action)}, status=201)

    def on_update_rrset(self, request, zone, rr_name, rr_type):
        zone = self._zone(zone, rrsets=True)
        rrset = self._rrset(zone, rr_name, rr_type)
        body = self._body(request, ("labels",))
        fields = {}
        if "labels" in body:
            self._check_labels(body["labels"], fields)
        if fields:
            raise _invalid(fields)
        if "labels" in body:
            rrset["labels"] = dict(body["labels"])
        return self.json({"rrset": self.rrset_json(zone, rrset)})

    def on_delete_rrset(self, request, zone, rr_name, rr_type):
        zone = self._zone(zone, rrsets=True)
        rrset = self._rrset(zone, rr_name, rr_type)
        if rr_type == "SOA" or (rr_name == "@" and rr_type == "NS"):
            raise _invalid({"type": [f"the zone apex {rr_type} RRSet cannot be deleted"]})
        self._protected(rrset)
        action = self._action(zone, "delete_rrset", (rr_name, rr_type))
        if action["_outcome"] == "success":
            del zone["rrsets"][(rr_name, rr_type)]
            self._changed(zone)
        return self.json({"action": self.action_json(action)})

    @staticmethod
    def _protected(rrset):
        if rrset["protection"]["change"]:
            raise APIError(423, "protected", f"rrset {rrset['name']}/{rrset['type']} is protected")

    def on_rrset_action(self, request, zone, rr_name, rr_type, command):
        zone = self._zone(zone, rrsets=True)
        rrset = self._rrset(zone, rr_name, rr_type)
        spec = {
            "set_records": (("records",), ("records",)),
            "add_records": (("records", "ttl"), ("records",)),
            "remove_records": (("records",), ("records",)),
            "update_records": (("records",), ("records",)),
            "change_ttl": (("ttl",), ("ttl",)),
            "change_protection": (("change",), ()),
        }.get(command)
        if spec is None:
            raise APIError(404, "not_found", f"no action {command}")
        body = self._body(request, *spec)
        if command != "change_protection":
            self._protected(rrset)
        fields = {}
        if "ttl" in body:
            self._check_ttl(body["ttl"], fields)
        records = []
        if "records" in body:
            records = self._check_records(rr_type, body["records"], fields)
        if "change" in body and not isinstance(body["change"], bool):
            fields["change"] = ["must be a boolean"]
        if fields:
            raise _invalid(fields)
        action = self._action(zone, ACTION_COMMANDS[command], (rr_name, rr_type))
        if action["_outcome"] == "success":
            self._apply(zone, rrset, command, body, records)
        return self.json({"action": self.action_json(action)}, status=201)

    def _apply(self, zone, rrset, command, body, records):
        have = {r["value"]: r for r in rrset["records"]}
        if command == "set_records":
            rrset["records"] = [{"value": r["value"], "comment": r.get("comment", "")} for r in records]
        elif command == "add_records":
            for rec in records:
                have.setdefault(rec["value"], {"value": rec["value"], "comment": rec.get("comment", "")})
            rrset["records"] = list(have.values())
            if "ttl" in body:
                rrset["ttl"] = body["ttl"]
        elif command == "remove_records":
            drop = {r["value"] for r in records}
            rrset["records"] = [r for r in rrset["records"] if r["value"] not in drop]
        elif command == "update_records":
            for rec in records:
                if rec["value"] in have:
                    have[rec["value"]]["comment"] = rec.get("comment", "")
        elif command == "change_ttl":
            rrset["ttl"] = body["ttl"]
        elif command == "change_protection" and "change" in body:
            rrset["protection"]["change"] = body["change"]
        self._changed(zone)

    def snapshot(self):
        return {
            "zones": {
                z["name"]: {f"{n}/{t}": self.rrset_json(z, r) for (n, t), r in sorted(z["rrsets"].items())}
                for z in self.zones.values()
            },
            "actions": len(self.actions),
        }
