"""
Nomad simulator: one server+client agent (a "dev agent") with the HTTP API hecate uses.

What it does, as Nomad does it (see shared/api-notes/hashicorp.md and the Go sources cited
there; jobspec handling is in :mod:`lab.sim.nomad_jobspec`):

- ``/v1/jobs/parse`` (real HCL2 parser, strict schema, hcl diagnostics with line numbers),
  ``/v1/validate/job``, ``/v1/job/:id/plan`` (diff + scheduler annotations + placement
  failures), register with ``EnforceIndex`` (errors and status codes as Nomad's), versions
  (an unchanged spec makes no new version and no deployment, but still an evaluation),
  revert (``EnforcePriorVersion``), stop and purge, evaluations, allocations, deployments
  (statuses and descriptions of nomad/structs/deployment.go, auto-revert to the latest
  stable version; ``update.max_parallel``; canaries placed beside the running allocations,
  promoted by ``POST /v1/deployment/promote/:id`` or ``auto_promote`` once healthy, then
  replacing them), variables with CAS, blocking queries on ``X-Nomad-Index``
  (``?index=&wait=``, ``Invalid wait time`` / ``Invalid index``), plain-text errors.
- A simulated client node (``meta.location``, datacenter, drivers, host volumes, CPU and
  memory capacity) runs allocations through pending -> running -> healthy with task
  events. Durations of the jobspec (restart delay, min_healthy_time, healthy_deadline,
  progress_deadline) are multiplied by ``time_scale`` so tests take seconds.
- Each running allocation serves a loopback stand-in HTTP server on each of its service
  ports: the health-check path answers 200 (500 for services listed in
  ``unhealthy_services``), any other path answers a body naming the task, so real HTTP can
  be routed to the "running" stack. With ``consul_url`` the services are registered in
  Consul (``PUT /v1/agent/service/register``) and deregistered on stop, as Nomad's Consul
  integration does.
- Failure knobs for tests: ``refuse_images`` (glob patterns: the docker driver fails to
  pull them), ``unhealthy_services``; a docker ``port_map`` next to group network ports
  fails at task start with the docker driver's own message.
- The servers' side of a registration (nomad/job_endpoint.go NewJobEndpoints): the
  admission mutators (structs Job.Canonicalize: ``Datacenters ["*"]``, empty lists to null,
  default workload identity; the node pool; jobImpliedConstraints: Vault, signals, Nomad
  and Consul service discovery, bridge CNI; implicit Vault identities), the validators, and
  Job.Warnings; validateJobUpdate (no type changes); SpecChanged with ``NomadTokenID``.
- ACLs (``acl``, or the short ``token``: one management token) as Nomad 1.7+ enforces them
  per endpoint: namespace capabilities, variables paths, host volumes, agent/node/operator;
  the answers to unknown and non-UUID tokens; ``/v1/acl/policy``, ``/v1/acl/token`` for
  tests that make their own.
- Tasks (:mod:`lab.sim.nomad_tasks`): ``template`` blocks are rendered before a task starts
  (Vault with ``vault.token`` at ``vault.url``, Consul's passing instances), a missing
  secret holds the task with the template runner's ``Missing: vault.read(...)`` event;
  ``task_runners`` stand a task in with a real part by image: the real Caddy binary
  (``caddy_binary``) with the task's own command, the Authentik simulator bootstrapped
  from the task's environment, a PostgreSQL stand-in with the image's start-up checks.
  Their files live under ``data_dir`` (task directories; host volumes without a path).
- A periodic job is registered without an evaluation (nomad/job_endpoint.go: only its
  launches are scheduled; the lab has no clock of its own and never launches them on their
  cron); ``/v1/job/:id/periodic/force`` launches one now, as nomad/periodic.go does: the
  child job ``<id>/periodic-<unix time>`` (job IDs with ``/`` are routed as Nomad's
  JobSpecificRequest does, by suffix), evaluated and run like a batch job.
- Batch jobs and lifecycle hooks run to completion: a task's process (a runner) that exits
  0 is dead and not failed, otherwise its restart policy applies; an allocation whose tasks
  are all dead is ``complete`` (or ``failed``), as the client's getClientStatus says.
  ``poststop`` tasks start once the main tasks are dead. A task no runner stands in for
  finishes at once (exit 0).

Options (``--config`` JSON)::

    {"token": null, "acl": {"enabled": true, "tokens": {"<uuid>": {"name": "hecate",
                            "policies": [<rules, see NomadToken>]} | "management"},
                            "anonymous": null},
     "version": "2.0.5", "region": "global", "datacenter": "dc1", "node_name": "lab-local",
     "node_meta": {"location": "local"}, "drivers": ["docker", "exec", "raw_exec"],
     "host_volumes": null, "cpu": 16000, "memory": 32768, "time_scale": 0.01,
     "refuse_images": [], "unhealthy_services": [], "stand_ins": true,
     "advertise_address": "127.0.0.1", "consul_url": null, "consul_token": null,
     "consul_version": null, "namespaces": ["default"],
     "vault": {"enabled": false, "version": null, "default_identity": null, "url": null, "token": null},
     "memory_oversubscription": false, "node_class": "", "task_runners": [], "caddy_binary": "caddy",
     "data_dir": null, "render_templates": true}

``consul_version`` (default: 1.22.0 when ``consul_url`` is set) is what the client
fingerprints as ``attr.consul.version``: without it no group with a Consul service can be
placed, as on a Nomad client that has no Consul. ``host_volumes`` null accepts any host
volume; a list is the client's ``host_volume`` blocks.

``vault.enabled`` is the servers' ``vault { enabled = true }``: without it a job with a
``vault`` block is refused (``Vault "default" not enabled but used in the job``,
nomad/job_endpoint_hook_vault.go); ``vault.version`` is what the client fingerprints as
``attr.vault.version``, which the constraint Nomad adds to such jobs requires
(nomad/job_endpoint_hooks.go ``jobImpliedConstraints``). ``memory_oversubscription`` is the
scheduler configuration's ``memory_oversubscription_enabled``: off (Nomad's default), a
task's ``memory_max`` draws a warning and is ignored (``memoryOversubscriptionValidate``).
"""

import contextlib
import copy
import fnmatch
import http.server
import json
import os
import re
import socket
import threading
import time
import urllib.error
import urllib.request
import uuid

import hcl2
from werkzeug.routing import Rule

from lab import procs

try:
    from lab.sim import nomad_jobspec as js
    from lab.sim import nomad_tasks as ntasks
    from lab.sim import pg
    from lab.sim.base import Simulator
except ImportError:  # pragma: no cover
    import nomad_jobspec as js  # type: ignore
    import nomad_tasks as ntasks  # type: ignore
    import pg  # type: ignore
    from base import Simulator  # type: ignore

VERSION = "2.0.5"  # the release the simulator follows (hashicorp/nomad read at aa026cc, 2.0.x)
CONSUL_VERSION = "1.22.0"  # what the client fingerprints from the lab's Consul (agent/self)
# client/fingerprint/signal.go: the signals of the host (consul-template/signals on Linux)
OS_SIGNALS = ("SIGABRT,SIGALRM,SIGBUS,SIGCHLD,SIGCONT,SIGFPE,SIGHUP,SIGILL,SIGINT,SIGIO,SIGIOT,SIGKILL,"
              "SIGPIPE,SIGPROF,SIGQUIT,SIGSEGV,SIGSTOP,SIGSYS,SIGTERM,SIGTRAP,SIGTSTP,SIGTTIN,SIGTTOU,"
              "SIGURG,SIGUSR1,SIGUSR2,SIGWINCH,SIGXCPU,SIGXFSZ")
TERMINAL = ("complete", "failed", "lost")
# nomad/structs/deployment.go Deployment.Active
ACTIVE_DEPLOYMENT = ("running", "paused", "blocked", "unblocking", "initializing", "pending")
NOT_NEEDED = "alloc not needed due to job update"  # scheduler/structs StatusAllocNotNeeded
# nomad/structs/structs.go PeriodicLaunchSuffix: a periodic job's children are <id>/periodic-<unix time>
PERIODIC_LAUNCH_SUFFIX = "/periodic-"
TRACKED_VERSIONS = 6
# nomad/structs/structs.go: MaxBlockingRPCQueryTime and DefaultBlockingRPCQueryTime
# (QueryOptions.TimeToBlock caps ?wait= at 300s; no or a zero wait blocks 300s), plus
# up to wait/JitterFraction (16) of jitter (nomad/rpc.go blockingRPC)
MAX_WAIT = 300.0
DEFAULT_WAIT = 300.0
JITTER_FRACTION = 16
VAR_PATH = re.compile(r"^[a-zA-Z0-9\-_~/]{1,128}$")
MAX_VARIABLE_SIZE = 65536


class APIError(Exception):
    def __init__(self, status, text):
        super().__init__(text)
        self.status, self.text = status, text


# -- ACLs (acl/policy.go, acl/acl.go, nomad/auth/auth.go) -------------------------------------
# acl/policy.go expandNamespacePolicy: what `policy = "read"` / `"write"` grant in a namespace
NS_READ = ("list-jobs", "parse-job", "read-job", "csi-list-volume", "csi-read-volume", "read-job-scaling",
           "list-scaling-policies", "read-scaling-policy", "host-volume-read")
NS_WRITE = NS_READ + ("scale-job", "submit-job", "dispatch-job", "read-logs", "read-fs", "alloc-exec",
                      "alloc-lifecycle", "csi-mount-volume", "csi-write-volume", "submit-recommendation",
                      "host-volume-create")
LEVELS = {"deny": -1, "read": 1, "write": 2}
ANONYMOUS_ACCESSOR = "anonymous"  # structs.AnonymousACLToken
UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
# command/agent/http.go ResolveToken wraps what nomad/auth/auth.go Authenticate says of a
# secret that is not a UUID (ErrTokenInvalid, then Encrypter.VerifyClaim: go-jose's parse error);
# the text does not end in "Permission denied", so errCodeFromHandler leaves it a 500
NOT_A_JWT = ("ACL token not found or invalid workload identity: failed to parse signed token: "
             "go-jose/go-jose: compact JWS format must have three parts")


def _closest_glob(patterns, name):
    """acl/acl.go findClosestMatchingGlob: an exact key, else the matching glob with the
    fewest characters left over."""
    if name in patterns:
        return patterns[name]
    found = [(len(name) - len(p.replace("*", "")), p) for p in patterns
             if "*" in p and fnmatch.fnmatchcase(name, p)]
    return patterns[min(found)[1]] if found else None


def _uq(value):
    """python-hcl2 keeps string literals quoted."""
    return json.loads(value) if isinstance(value, str) and value.startswith('"') else value


def parse_policy(text):
    """
    An ACL policy's ``Rules`` (acl/policy.go Parse, the parts the simulator enforces) ->
    :class:`NomadToken`'s rule dict. A syntax error is Nomad's ``Failed to parse ACL Policy``.
    """
    try:
        raw = hcl2.loads(text or "")
    except Exception as exc:  # pylint: disable=broad-except  # lark/hcl2 errors
        raise APIError(400, f"Failed to parse ACL Policy: {exc}") from None
    rules = {}
    for block in raw.get("namespace") or []:
        for name, body in block.items():
            spec = {}
            if "policy" in body:
                spec["policy"] = _uq(body["policy"])
            if "capabilities" in body:
                spec["capabilities"] = [_uq(c) for c in body["capabilities"]]
            for vblock in body.get("variables") or []:
                for pblock in vblock.get("path") or []:
                    for path, pbody in pblock.items():
                        spec.setdefault("variables", {})[_uq(path)] = [_uq(c) for c in pbody.get("capabilities") or []]
            rules.setdefault("namespace", {})[_uq(name)] = spec
    for block in raw.get("host_volume") or []:
        for name, body in block.items():
            rules.setdefault("host_volume", {})[_uq(name)] = {
                "policy": _uq(body.get("policy")), "capabilities": [_uq(c) for c in body.get("capabilities") or []]}
    for kind in ("agent", "node", "operator"):
        for block in raw.get(kind) or []:
            if block.get("policy"):
                rules[kind] = _uq(block["policy"])
    return rules


class NomadToken:
    """
    An ACL token: ``management`` or the merged rules of its policies, in the policy
    language's JSON shape::

        {"namespace": {"default": {"policy": "read", "capabilities": ["submit-job"],
                                   "variables": {"nomad/jobs/*": ["read", "list"]}}},
         "host_volume": {"data": "write"}, "agent": "read", "node": "read", "operator": "read"}

    Capabilities of several policies add up; ``deny`` wins (acl/acl.go NewACL).
    """

    def __init__(self, name, accessor, management=False, policies=(), policy_names=()):
        self.name, self.accessor, self.management = name, accessor, management
        self.policy_names = list(policy_names)
        self.create_time = _rfc3339()
        self.namespaces, self.variables, self.levels, self.host_volumes = {}, {}, {}, {}
        for rules in policies:
            for name, spec in (rules.get("host_volume") or {}).items():
                spec = {"policy": spec} if isinstance(spec, str) else spec
                caps = set(spec.get("capabilities") or [])
                caps.update({"deny": ("deny",), "read": ("mount-readonly",),  # expandHostVolumePolicy
                             "write": ("mount-readonly", "mount-readwrite")}.get(spec.get("policy"), ()))
                self.host_volumes.setdefault(name, set()).update(caps)
            for ns, spec in (rules.get("namespace") or {}).items():
                caps = set(spec.get("capabilities") or [])
                if spec.get("policy") == "deny":
                    caps.add("deny")
                caps.update({"read": NS_READ, "write": NS_WRITE}.get(spec.get("policy"), ()))
                self.namespaces.setdefault(ns, set()).update(caps)
                for path, vcaps in (spec.get("variables") or {}).items():
                    vcaps = set(vcaps)
                    if "read" in vcaps:
                        vcaps.add("list")  # acl/policy.go expandVariablesCapabilities
                    self.variables.setdefault(ns, {}).setdefault(path, set()).update(vcaps)
            for kind in ("agent", "node", "operator"):
                if rules.get(kind):
                    old = self.levels.get(kind)
                    new = LEVELS[rules[kind]]
                    self.levels[kind] = -1 if -1 in (old, new) else max(old or 0, new)

    @classmethod
    def from_spec(cls, spec):
        if spec == "management":
            return cls("management", str(uuid.uuid4()), management=True)
        if not isinstance(spec, dict):
            raise ValueError(f"a Nomad ACL token is 'management' or a dict, not {spec!r}")
        policies = spec.get("policies") or []
        if isinstance(policies, dict):
            policies = [policies]
        return cls(spec.get("name") or "token", spec.get("accessor") or str(uuid.uuid4()),
                   management=spec.get("type") == "management" or bool(spec.get("management")),
                   policies=policies)

    def allow_ns(self, ns, *capabilities):
        """AllowNsOpAnyOf: any of ``capabilities`` in namespace ``ns``."""
        if self.management:
            return True
        caps = _closest_glob(self.namespaces, ns)
        if not caps or "deny" in caps:
            return False
        return any(c in caps for c in capabilities)

    def allow_any_ns(self, capability):
        """acl/acl.go anyNamespaceAllowsOp: some namespace rule (glob or not) grants ``capability``."""
        return self.management or any("deny" not in caps and capability in caps for caps in self.namespaces.values())

    def allow_variable(self, ns, path, capability):
        """AllowVariableOperation (matchingVariablesCapabilitySet: namespace, then path)."""
        if self.management:
            return True
        paths = _closest_glob(self.variables, ns)
        caps = _closest_glob(paths, path) if paths else None
        if not caps or "deny" in caps:
            return False
        return capability in caps

    def allow_host_volume(self, source, capability):
        """AllowHostVolumeOperation."""
        if self.management:
            return True
        caps = _closest_glob(self.host_volumes, source)
        return bool(caps) and "deny" not in caps and capability in caps

    def allow(self, kind, level="read"):
        """AllowAgentRead, AllowNodeRead, AllowOperatorRead (and their writes)."""
        return self.management or (self.levels.get(kind) or 0) >= LEVELS[level]


def _now_ns():
    return time.time_ns()


def _rfc3339(ns=None):
    ns = ns or _now_ns()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns / 1e9)) + f".{ns % 1_000_000_000:09d}Z"


def _ci(body, key, default=None):
    """Go's encoding/json matches field names case-insensitively."""
    if not isinstance(body, dict):
        return default
    if key in body:
        return body[key]
    low = key.lower()
    for k, v in body.items():
        if isinstance(k, str) and k.lower() == low:
            return v
    return default


def _version_tuple(text):
    nums = re.findall(r"\d+", text.split("+")[0].split("-")[0])[:3]
    return tuple(int(n) for n in nums) + (0,) * (3 - len(nums))


def _version_ok(actual, constraint):
    """A version/semver constraint (">= 0.6.1, < 2") against a version string."""
    ops = {">=": lambda a, b: a >= b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b,
           "<": lambda a, b: a < b, "!=": lambda a, b: a != b, "=": lambda a, b: a == b}
    have = _version_tuple(actual)
    for part in constraint.split(","):
        m = re.fullmatch(r"\s*(>=|<=|!=|>|<|=)?\s*(\S+)\s*", part)
        if not m or not re.match(r"\d", m.group(2)):
            return False
        if not ops[m.group(1) or "="](have, _version_tuple(m.group(2))):
            return False
    return True


def _parse_wait(text):
    try:
        return js.parse_duration(text) / 1e9
    except ValueError:
        raise APIError(400, "Invalid wait time") from None


def _parse_per_page(request):
    """command/agent/http.go parsePagination: ``per_page`` is strconv.ParseInt(raw, 10, 32)."""
    raw = request.args.get("per_page", "")
    if not raw:
        return 0
    if not re.fullmatch(r"[+-]?[0-9]+", raw) or not -2**31 <= int(raw) < 2**31:
        raise APIError(400, "Expect a number for `per_page` query string parameter")
    return int(raw)


_BEXPR_TOKEN = re.compile(r'\s*(?:(==|!=|\(|\))|"((?:[^"\\]|\\.)*)"|`([^`]*)`|([A-Za-z0-9_.+-]+))')


class _Filter:
    """
    The part of hashicorp/go-bexpr (the ``filter`` query parameter, read by the paginator of
    nomad/state/paginator NewPaginator and evaluated on the raw state object) that the
    simulator evaluates: ``==``, ``!=``, ``is [not] empty``, ``[not] in``, ``[not] contains``,
    ``[not] matches``, ``and``, ``or``, ``not`` and parentheses over dotted selectors. Anything
    else is refused as a malformed expression (a 400, as Nomad answers one), never ignored.
    """

    def __init__(self, text):
        self.toks, pos = [], 0
        while pos < len(text.rstrip()):
            m = _BEXPR_TOKEN.match(text, pos)
            if not m or m.end() == pos:
                raise ValueError(f"unexpected {text[pos:pos + 10]!r} at {pos}")
            op, quoted, raw, word = m.groups()
            if op:
                self.toks.append(("op", op))
            elif word is not None:
                self.toks.append(("word", word))
            else:
                self.toks.append(("str", raw if raw is not None else json.loads(f'"{quoted}"')))
            pos = m.end()
        self.pos = 0
        self.tree = self._or()
        if self.pos != len(self.toks):
            raise ValueError(f"unexpected {self.toks[self.pos][1]!r}")

    def _peek(self, *words):
        if self.pos >= len(self.toks):
            return None
        tok = self.toks[self.pos]
        return tok if tok[0] in ("word", "op") and tok[1] in words else None

    def _take(self, *words):
        if self.pos >= len(self.toks):
            raise ValueError("unexpected end of expression")
        tok = self.toks[self.pos]
        if words and not (tok[0] in ("word", "op") and tok[1] in words):
            raise ValueError(f"unexpected {tok[1]!r}, expected {' or '.join(words)}")
        self.pos += 1
        return tok

    def _or(self):
        node = self._and()
        while self._peek("or"):
            self.pos += 1
            node = ("or", node, self._and())
        return node

    def _and(self):
        node = self._not()
        while self._peek("and"):
            self.pos += 1
            node = ("and", node, self._not())
        return node

    def _not(self):
        if self._peek("not"):
            self.pos += 1
            return ("not", self._not())
        if self._peek("("):
            self.pos += 1
            node = self._or()
            self._take(")")
            return node
        return self._match()

    def _value(self):
        kind, text = self._take()
        if kind == "op":
            raise ValueError(f"unexpected {text!r}")
        return text

    def _match(self):
        first = self._take()
        if first[0] == "op":
            raise ValueError(f"unexpected {first[1]!r}")
        nxt = self.toks[self.pos + 1] if self._peek("not") and self.pos + 1 < len(self.toks) else None
        if first[0] == "str" or self._peek("in") or (nxt and nxt[1] == "in"):  # Value [not] in Selector
            negate = bool(self._peek("not")) and self._take("not")
            self._take("in")
            node = ("in", first[1], self._selector())
            return ("not", node) if negate else node
        sel = first[1]
        if self._peek("==", "!="):
            op = self._take()[1]
            node = ("eq", sel, self._value())
            return ("not", node) if op == "!=" else node
        if self._peek("is"):
            self.pos += 1
            negate = bool(self._peek("not")) and self._take("not")
            self._take("empty")
            return ("not", ("empty", sel)) if negate else ("empty", sel)
        negate = bool(self._peek("not")) and self._take("not")
        node = (self._take("contains", "matches")[1], sel, self._value())
        return ("not", node) if negate else node

    def _selector(self):
        kind, text = self._take()
        if kind != "word":
            raise ValueError(f"unexpected {text!r}, expected a selector")
        return text

    @staticmethod
    def _get(obj, sel):
        """mitchellh/pointerstructure Pointer.Get: struct fields by name (no promotion of embedded ones), map keys."""
        parts = sel.split(".")
        parent = ""
        for i, part in enumerate(parts):
            if not isinstance(obj, dict) or part not in obj:
                why = (f"couldn't find key {json.dumps(part)}" if parent.endswith("Meta")
                       else f"couldn't find struct field with name {json.dumps(part)}")
                raise LookupError(f"error finding value in datum: /{'/'.join(parts)} at part {i}: {why}")
            obj, parent = obj[part], part
        return obj

    @staticmethod
    def _same(field, value):
        if isinstance(field, bool):
            return value == ("true" if field else "false")
        if isinstance(field, (int, float)):
            try:
                return field == type(field)(value)
            except ValueError:
                return False
        return (field or "") == value

    def _eval(self, node, obj):
        kind = node[0]
        if kind == "or":
            return self._eval(node[1], obj) or self._eval(node[2], obj)
        if kind == "and":
            return self._eval(node[1], obj) and self._eval(node[2], obj)
        if kind == "not":
            return not self._eval(node[1], obj)
        if kind == "empty":
            return not self._get(obj, node[1])
        if kind == "eq":
            return self._same(self._get(obj, node[1]), node[2])
        if kind in ("in", "contains"):
            field, value = (self._get(obj, node[2]), node[1]) if kind == "in" else (self._get(obj, node[1]), node[2])
            if isinstance(field, str):
                return value in field
            if isinstance(field, dict):
                return value in field
            return any(self._same(f, value) for f in field or [])
        field = self._get(obj, node[1])  # matches
        return isinstance(field, str) and re.search(node[2], field) is not None

    def __call__(self, obj):
        return self._eval(self.tree, obj)


def _filtered(request, items, view=lambda i: i):
    """``?filter=``: Paginator.next evaluates it on the raw object before the page is cut."""
    text = request.args.get("filter", "")
    if not text:
        return items
    try:
        match = _Filter(text)
    except (ValueError, json.JSONDecodeError) as exc:
        raise APIError(400, f"failed to create result paginator: failed to read filter expression: {exc}") from None
    try:
        return [i for i in items if match(view(i))]
    except (LookupError, re.error) as exc:
        raise APIError(400, f"failed to read result page: {exc}") from None


def _paginate(request, items, token, reverse_order=False, view=lambda i: i):
    """
    nomad/state/paginator Paginator.Page over ``items`` already in the state iterator's order
    and already selected (prefix, ACL): skip those whose token sorts before ``next_token``
    (after it with ``reverse=true``), keep ``per_page`` (0 = all; a negative one keeps none),
    and leave the token of the first item left out for the X-Nomad-NextToken header.
    ``reverse_order``: whether the iterator itself honours ``reverse`` (Jobs do through
    state.QueryOptionSort; Variables.List's GetVariablesByNamespaceAndPrefix does not).
    """
    per_page = _parse_per_page(request)
    items = _filtered(request, items, view)
    target = request.args.get("next_token", "")
    reverse = request.args.get("reverse") == "true"
    items = list(items)
    if reverse and reverse_order:
        items.reverse()
    if target:
        items = [i for i in items if not (token(i) > target if reverse else token(i) < target)]
    if per_page != 0 and len(items) > max(per_page, 0):
        keep = max(per_page, 0)
        request.environ["nomad.next_token"] = token(items[keep])
        items = items[:keep]
    return items


def _var_problem(path, items, ns="default"):
    """nomad/structs/variables.go VariableDecrypted.Validate (namespace "*", size, then ValidatePath)."""
    if ns == "*":
        return 'can not target wildcard ("*")namespace'
    if sum(len(k.encode()) + len(v.encode()) for k, v in items.items()) > MAX_VARIABLE_SIZE:
        return "variables are limited to 64KiB in total size"
    if not VAR_PATH.match(path):
        return f'invalid path "{path}"'
    parts = path.split("/")
    if parts[0] != "nomad":
        return None
    if len(parts) == 1:
        return ('"nomad" is a reserved top-level directory path, but you may write variables to '
                '"nomad/jobs", "nomad/job-templates", "nomad/sentinel", or below')
    if parts[1] in ("jobs", "sentinel") or (parts[1] == "job-templates" and len(parts) == 3):
        return None
    if parts[1] == "job-templates":
        return ('"nomad/job-templates" is a reserved directory path, but you may write variables at the '
                'level below it, for example, "nomad/job-templates/template-name"')
    return ('only paths at "nomad/jobs" or "nomad/job-templates" and below are valid paths under the '
            'top-level "nomad" directory')


# -- what the servers do to a job before storing it ------------------------------------------
# structs.WorkloadIdentity's JSON with nothing set (nomad/structs/workload_id.go)
IDENTITY_ZERO = {"Name": "", "Audience": None, "ChangeMode": "", "ChangeSignal": "", "Env": False,
                 "File": False, "Filepath": "", "ServiceName": "", "TTL": 0, "ExtraClaims": None}


def _nil_if_empty(obj, *keys):
    for key in keys:
        if not obj.get(key):
            obj[key] = None


def _server_service(svc, job, group, task_name):
    """nomad/structs/services.go Service.Canonicalize (task_name "group" for group services)."""
    _nil_if_empty(svc, "Tags", "CanaryTags", "Checks", "TaggedAddresses")
    if not svc.get("TaskName") and task_name != "group":
        svc["TaskName"] = task_name
    svc["Provider"] = svc.get("Provider") or "consul"
    if svc["Provider"] == "nomad":
        svc["Namespace"] = job["Namespace"]
    elif not svc.get("Namespace"):
        svc["Namespace"] = "default"


def server_canonicalize(job):
    """
    nomad/structs/structs.go Job.Canonicalize, TaskGroup.Canonicalize, Task.Canonicalize and
    NetworkResource.Canonicalize (the jobCanonicalizer admission mutator) on top of the api's:
    ``Datacenters`` defaults to ``["*"]``, empty lists and maps become null, task-level
    services get their task's name, Consul services the namespace "default", ports the host
    network "default", and every task the default workload identity (``Task.Identity``).
    """
    _nil_if_empty(job, "Meta", "Constraints", "Affinities", "Spreads")
    job["Namespace"] = job.get("Namespace") or "default"
    if not job.get("Datacenters"):
        job["Datacenters"] = ["*"]
    job["Priority"] = job.get("Priority") or 50  # the servers' job_default_priority
    for group in job.get("TaskGroups") or []:
        _nil_if_empty(group, "Meta", "Constraints", "Affinities", "Spreads")
        for svc in group.get("Services") or []:
            _server_service(svc, job, group, "group")
        for net in group.get("Networks") or []:
            _nil_if_empty(net, "ReservedPorts", "DynamicPorts")
            for port in (net.get("ReservedPorts") or []) + (net.get("DynamicPorts") or []):
                port["HostNetwork"] = port.get("HostNetwork") or "default"
        for task in group.get("Tasks") or []:
            _nil_if_empty(task, "Meta", "Config", "Env", "Constraints", "Affinities", "VolumeMounts")
            for svc in task.get("Services") or []:
                _server_service(svc, job, group, task["Name"])
            identities = []
            for wid in task.get("Identities") or []:
                wid = dict(IDENTITY_ZERO, **wid)
                wid["Name"] = wid["Name"] or "default"
                if wid["Name"] == "default":
                    task["Identity"] = dict(wid, Audience=["nomadproject.io"])
                else:
                    identities.append(wid)
            task["Identities"] = identities or None
            if not task.get("Identity"):
                task["Identity"] = dict(IDENTITY_ZERO, Name="default", Audience=["nomadproject.io"])
    return job


def _add_constraint(owner, constraint, left_only):
    """nomad/job_endpoint_hooks.go mutateConstraint: constraintMatcherLeft (an existing
    constraint on the same LTarget wins) or constraintMatcherFull (an equal one)."""
    for con in owner.get("Constraints") or []:
        if con.get("LTarget") == constraint["LTarget"] and (
                left_only or (con.get("RTarget") == constraint["RTarget"]
                              and (con.get("Operand") or "=") == constraint["Operand"])):
            return
    owner["Constraints"] = list(owner.get("Constraints") or []) + [dict(constraint)]


CONSUL_CONSTRAINT = {"LTarget": "${attr.consul.version}", "RTarget": ">= 1.8.0", "Operand": "semver"}
VAULT_CONSTRAINT = {"LTarget": "${attr.vault.version}", "RTarget": ">= 0.6.1", "Operand": "semver"}
NOMAD_SD_CONSTRAINT = {"LTarget": "${attr.nomad.service_discovery}", "RTarget": "true", "Operand": "="}
NOMAD_SD_CHECKS_CONSTRAINT = {"LTarget": "${attr.nomad.version}", "RTarget": ">= 1.4.0", "Operand": "semver"}
CNI_PLUGINS = ("bridge", "firewall", "host-local", "loopback", "portmap")


def _required_signals(task):
    """nomad/structs/structs.go Job.RequiredSignals for one task."""
    signals = set()
    vault = task.get("Vault")
    if vault is not None and vault.get("ChangeMode") == "signal":
        signals.add(vault.get("ChangeSignal") or "")
    if task.get("KillSignal"):
        signals.add(task["KillSignal"])
    for tmpl in task.get("Templates") or []:
        if tmpl.get("ChangeMode") == "signal":
            signals.add(tmpl.get("ChangeSignal") or "")
    return sorted(signals)


def implied_constraints(job):
    """
    nomad/job_endpoint_hooks.go jobImpliedConstraints.Mutate: per group, the Vault
    constraint (vaultConstraintFn), the signal constraint (getSignalConstraint, in
    nomad/job_endpoint.go), Nomad service discovery (and its checks), the Consul
    constraint for Consul services (consulConstraintFn: on the group for group services,
    on the task for task services) and the CNI plugins of bridge networking.
    """
    for group in job.get("TaskGroups") or []:
        tasks = group.get("Tasks") or []
        for task in sorted((t for t in tasks if t.get("Vault") is not None), key=lambda t: t["Name"]):
            cluster = task["Vault"].get("Cluster") or "default"
            _add_constraint(group, VAULT_CONSTRAINT if cluster == "default" else {
                "LTarget": f"${{attr.vault.{cluster}.version}}", "RTarget": ">= 1.11.0", "Operand": "semver"},
                left_only=True)
        signals = sorted({sig for task in tasks for sig in _required_signals(task)})
        if signals:
            _add_constraint(group, {"LTarget": "${attr.os.signals}", "RTarget": ",".join(signals),
                                    "Operand": "set_contains"}, left_only=False)
        services = list(group.get("Services") or []) + [s for t in tasks for s in t.get("Services") or []]
        native = [s for s in services if s.get("Provider") == "nomad"]
        if native:
            _add_constraint(group, NOMAD_SD_CONSTRAINT, left_only=False)
        if any(s.get("Checks") for s in native):
            _add_constraint(group, NOMAD_SD_CHECKS_CONSTRAINT, left_only=False)
        if any((s.get("Provider") or "consul") == "consul" for s in services):
            for svc in group.get("Services") or []:
                if (svc.get("Provider") or "consul") == "consul":
                    _add_constraint(group, _consul_constraint(svc), left_only=True)
            for task in tasks:
                for svc in task.get("Services") or []:
                    if (svc.get("Provider") or "consul") == "consul":
                        _add_constraint(task, _consul_constraint(svc), left_only=True)
        if any(net.get("Mode") == "bridge" for net in group.get("Networks") or []):
            for plugin in CNI_PLUGINS:
                _add_constraint(group, {"LTarget": f"${{attr.plugins.cni.version.{plugin}}}",
                                        "RTarget": ">= 0.4.0", "Operand": "semver"}, left_only=True)
    return job


def _consul_constraint(svc):
    cluster = svc.get("Cluster") or "default"
    if cluster == "default":
        return CONSUL_CONSTRAINT
    return {"LTarget": f"${{attr.consul.{cluster}.version}}", "RTarget": ">= 1.8.0", "Operand": "semver"}


def _go_json_kind(value):
    """The JSON kind encoding/json names in an UnmarshalTypeError."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "string" if isinstance(value, str) else "null"


def _parse_bool(request, name):
    """A query parameter read with Go's strconv.ParseBool (an error is a plain 500)."""
    text = request.args.get(name, "")
    if text in ("", "0", "f", "F", "FALSE", "false", "False"):
        return False
    if text in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    raise APIError(500, f'Failed to parse value of "{name}" ({text}) as a bool: strconv.ParseBool: '
                        f'parsing {js.go_q(text)}: invalid syntax')


def _is_periodic(job):
    return job.get("Periodic") is not None


def _is_parameterized(job):
    return job.get("ParameterizedJob") is not None and not job.get("Dispatched")


def _job_update_problem(old, new):
    """nomad/job_endpoint.go validateJobUpdate (a plain error: 500)."""
    if old is None:
        return "job can't be submitted with 'Dispatched' set" if new.get("Dispatched") else None
    if old.get("Type") != new.get("Type"):
        return f"cannot update job from type {js.go_q(old.get('Type'))} to {js.go_q(new.get('Type'))}"
    for what, test in (("periodic", _is_periodic), ("parameterized", _is_parameterized)):
        if test(old) and not test(new):
            return f"cannot update {what} job to being non-{what}"
        if test(new) and not test(old):
            return f"cannot update non-{what} job to being {what}"
    if bool(old.get("Dispatched")) != bool(new.get("Dispatched")):
        return "field 'Dispatched' is read-only"
    return None


class StandIn:
    """A loopback HTTP server standing in for one service port of one allocation."""

    def __init__(self, address, port, describe, health_paths, unhealthy):
        self.describe, self.health_paths, self.unhealthy = describe, set(health_paths), unhealthy
        stand_in = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self):
                path = self.path.split("?", 1)[0]
                if path in stand_in.health_paths:
                    status = 500 if stand_in.unhealthy else 200
                    body = b"unhealthy\n" if stand_in.unhealthy else b"ok\n"
                else:
                    status = 200
                    body = (f"{stand_in.describe} answered {self.command} {path}\n").encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("X-Hecate-Sim", "nomad")
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _answer

            def log_message(self, *args):  # quiet
                pass

        self.server = http.server.ThreadingHTTPServer((address, port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        with contextlib.suppress(Exception):
            self.server.shutdown()
            self.server.server_close()


# Go's strconv.ParseBool spellings
_GO_TRUE, _GO_FALSE = ("1", "t", "T", "TRUE", "true", "True"), ("0", "f", "F", "FALSE", "false", "False")


def _distinct_hosts(constraints):
    """
    Whether ``constraints`` hold an enforced distinct_hosts, as Nomad's
    hasDistinctHostsConstraint (scheduler/feasible.go) reads it: the first such constraint
    decides; an empty RTarget is true, a ParseBool false turns it off, anything unparsable
    enforces it.
    """
    for con in constraints or []:
        if con.get("Operand") == "distinct_hosts":
            return str(con.get("RTarget") or "") not in _GO_FALSE
    return False


class NomadSim(Simulator):
    name = "nomad"
    fault_mimetype = "text/plain"

    def __init__(self, options=None):
        super().__init__(options)
        opt = self.options
        self.version_text = str(opt.get("version") or VERSION)
        self.version = _version_tuple(self.version_text)
        acl = opt.get("acl") or {}
        tokens = dict(acl.get("tokens") or {})
        if opt.get("token"):  # the short form: one management token
            tokens.setdefault(opt["token"], "management")
        self.acl_enabled = bool(acl.get("enabled") or tokens)
        self.acl_tokens = {secret: NomadToken.from_spec(spec) for secret, spec in tokens.items()}
        # the anonymous policy: none after `nomad acl bootstrap` (everything is denied)
        self.anonymous = NomadToken("anonymous", ANONYMOUS_ACCESSOR, policies=[acl["anonymous"]]
                                    if acl.get("anonymous") else [])
        self.acls_disabled = NomadToken("acls-disabled", "acls-disabled", management=True)
        self.acl_policies = {}  # name -> {"Name", "Description", "Rules", "_rules", indexes}
        self.region = opt.get("region", "global")
        self.datacenter = opt.get("datacenter", "dc1")
        self.namespaces = set(opt.get("namespaces") or ["default"])
        self.time_scale = float(opt.get("time_scale", 0.01))
        self.address = opt.get("advertise_address", "127.0.0.1")
        self.node = {
            "ID": str(uuid.uuid4()),
            "Name": opt.get("node_name", "lab-local"),
            "Datacenter": self.datacenter,
            "NodeClass": opt.get("node_class", ""),
            "NodePool": "default",
            "Meta": dict(opt.get("node_meta") or {"location": "local"}),
            # what the client fingerprints (client/fingerprint/*.go): nomad.go (version,
            # service_discovery), signal.go (os.signals), consul.go (consul.version, only
            # when the agent reaches a Consul), vault.go (vault.version)
            "Attributes": {"kernel.name": "linux", "cpu.arch": "amd64", "unique.hostname": "lab-local",
                           "nomad.version": self.version_text, "nomad.service_discovery": "true",
                           "os.signals": OS_SIGNALS, "driver.docker": "1"},
            "Drivers": list(opt.get("drivers") or ["docker", "exec", "raw_exec"]),
            "HostVolumes": opt.get("host_volumes"),
            "CPU": int(opt.get("cpu", 16000)),
            "MemoryMB": int(opt.get("memory", 32768)),
        }
        vault = opt.get("vault") or {}
        self.vault_enabled = bool(vault.get("enabled"))
        if vault.get("version"):
            self.node["Attributes"].update({"vault.version": str(vault["version"]), "vault.accessible": "true"})
        # the servers' vault { default_identity { aud, ttl } } (nomad/config.go VaultIdentityConfig)
        ident = vault.get("default_identity") if self.vault_enabled else None
        self.vault_identity = None
        if ident is not None:
            self.vault_identity = {"Audience": list(ident.get("aud") or []) or None,
                                   "TTL": int(js.parse_duration(ident["ttl"])) if ident.get("ttl") else 0}
        self.memory_oversubscription = bool(opt.get("memory_oversubscription", False))
        self.refuse_images = list(opt.get("refuse_images") or [])
        self.unhealthy_services = set(opt.get("unhealthy_services") or [])
        self.stand_ins_enabled = opt.get("stand_ins", True)
        self.consul_url = (opt.get("consul_url") or "").rstrip("/") or None
        self.consul_token = opt.get("consul_token")
        consul_version = opt.get("consul_version") or (CONSUL_VERSION if self.consul_url else None)
        if consul_version:
            self.node["Attributes"]["consul.version"] = str(consul_version)
        self.vault_url = vault.get("url")
        self.vault_token = vault.get("token")
        self.task_runners = list(opt.get("task_runners") or [])
        self.caddy_binary = opt.get("caddy_binary") or "caddy"
        # templates are rendered when the client has a Vault to read from (the lab's clients do)
        self.render_templates = opt.get("render_templates", bool(self.vault_url))
        self.data_dir = opt.get("data_dir")
        if not self.data_dir:
            import tempfile  # pylint: disable=import-outside-toplevel
            self.data_dir = tempfile.mkdtemp(prefix="nomad-sim-")
        self.handles = {}  # alloc id -> {task: ntasks.Handle}
        self.index = 10
        self.tables = {t: 1 for t in ("jobs", "job_version", "evals", "allocs", "deployment", "variables")}
        self.jobs = {}  # (ns, id) -> job
        self.versions = {}  # (ns, id) -> [job, ...] newest first
        self.evals = {}
        self.allocs = {}
        self.deployments = {}
        self.variables = {}  # (ns, path) -> var
        self.runtime = {}  # alloc id -> client-side bookkeeping
        self.stand_ins = {}  # alloc id -> [StandIn]
        self.consul_registered = {}  # service id -> registration body
        self.consul_errors = []
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._client_loop, name="nomad-sim-client", daemon=True)
        self.thread.start()

    # -- routing -------------------------------------------------------------------------
    def rules(self):
        r = Rule
        return [
            r("/v1/status/leader", endpoint="leader", methods=["GET"]),
            r("/v1/agent/self", endpoint="agent_self", methods=["GET"]),
            r("/v1/nodes", endpoint="nodes", methods=["GET"]),
            r("/v1/operator/scheduler/configuration", endpoint="scheduler_config", methods=["GET"]),
            r("/v1/jobs/parse", endpoint="parse", methods=["POST", "PUT"]),
            r("/v1/validate/job", endpoint="validate", methods=["POST", "PUT"]),
            r("/v1/jobs", endpoint="jobs", methods=["GET", "POST", "PUT"]),
            r("/v1/job/<path:job_id>", endpoint="job", methods=["GET", "POST", "PUT", "DELETE"]),
            r("/v1/job/<path:job_id>/plan", endpoint="plan", methods=["POST", "PUT"]),
            r("/v1/job/<path:job_id>/versions", endpoint="versions", methods=["GET"]),
            r("/v1/job/<path:job_id>/allocations", endpoint="job_allocs", methods=["GET"]),
            r("/v1/job/<path:job_id>/evaluations", endpoint="job_evals", methods=["GET"]),
            r("/v1/job/<path:job_id>/deployment", endpoint="job_deployment", methods=["GET"]),
            r("/v1/job/<path:job_id>/deployments", endpoint="job_deployments", methods=["GET"]),
            r("/v1/job/<path:job_id>/revert", endpoint="revert", methods=["POST", "PUT"]),
            r("/v1/job/<path:job_id>/summary", endpoint="job_summary", methods=["GET"]),
            r("/v1/job/<path:job_id>/periodic/force", endpoint="periodic_force", methods=["POST", "PUT"]),
            r("/v1/evaluation/<eval_id>", endpoint="evaluation", methods=["GET"]),
            r("/v1/evaluation/<eval_id>/allocations", endpoint="eval_allocs", methods=["GET"]),
            r("/v1/deployment/<dep_id>", endpoint="deployment", methods=["GET"]),
            r("/v1/deployment/allocations/<dep_id>", endpoint="deployment_allocs", methods=["GET"]),
            r("/v1/deployment/promote/<dep_id>", endpoint="deployment_promote", methods=["PUT", "POST"]),
            r("/v1/allocation/<alloc_id>", endpoint="allocation", methods=["GET"]),
            r("/v1/vars", endpoint="vars", methods=["GET"]),
            r("/v1/var/", endpoint="var_root", methods=["GET", "PUT", "POST", "DELETE"]),
            r("/v1/var/<path:path>", endpoint="var", methods=["GET", "PUT", "POST", "DELETE"]),
            r("/v1/acl/policy/<name>", endpoint="acl_policy", methods=["GET", "PUT", "POST", "DELETE"]),
            r("/v1/acl/token", endpoint="acl_token_create", methods=["PUT", "POST"]),
            r("/v1/acl/token/self", endpoint="acl_token_self", methods=["GET"]),
            r("/v1/acl/token/<accessor>", endpoint="acl_token", methods=["GET", "DELETE"]),
        ]

    # Nomad's HTTP server: unknown paths get Go's mux 404, errors are plain text
    def not_found(self, request):
        return self.text("404 page not found\n", status=404)

    def method_not_allowed(self, request):
        return self.text("Invalid method", status=405)

    def handle_error(self, request, exc):
        return self.text(f"internal error: {type(exc).__name__}: {exc}", status=500)

    def dispatch(self, request):
        try:
            return super().dispatch(request)
        except APIError as exc:  # raised before a handler returned (e.g. from a helper)
            return self.text(exc.text, status=exc.status)

    # -- helpers -----------------------------------------------------------------------
    def _bump(self, *tables):
        self.index += 1
        for table in tables:
            self.tables[table] = self.index
        self.changed()
        return self.index

    @staticmethod
    def _secret(request):
        """command/agent/http.go parseToken: X-Nomad-Token, else Authorization: Bearer."""
        tok = request.headers.get("X-Nomad-Token")
        auth = request.headers.get("Authorization", "")
        if not tok and auth.startswith("Bearer "):
            tok = auth[7:]
        return tok or None

    def identity(self, request):
        """The request's token by name, for the request log (never the secret)."""
        if not self.acl_enabled:
            return None
        secret = self._secret(request)
        if not secret:
            return "anonymous"
        token = self.acl_tokens.get(secret)
        return token.name if token is not None else "unknown"

    def _auth(self, request, http_side=False):
        """
        Who is asking (a :class:`NomadToken`), as Nomad 1.7+ authenticates: no token is the
        anonymous token; an unknown UUID is ``403 Permission denied`` everywhere (RPCs:
        nomad/auth/auth.go Authenticate's "bogus token" answer; endpoints the agent resolves
        itself, ``http_side`` - command/agent/http.go ResolveToken - wrap that error and
        errCodeFromHandler keeps its "Permission denied" suffix); a secret that is not a UUID
        is tried as a workload identity JWT: the RPCs answer ``403 Permission denied``, the
        agent-resolved endpoints a 500 with go-jose's parse error.
        """
        if not self.acl_enabled:
            return self.acls_disabled
        secret = self._secret(request)
        if not secret:
            return self.anonymous
        token = self.acl_tokens.get(secret)
        if token is not None:
            return token
        if not UUID_RE.match(secret) and http_side:
            raise APIError(500, NOT_A_JWT)
        raise APIError(403, "Permission denied")

    @staticmethod
    def _require(allowed):
        """structs.ErrPermissionDenied unless ``allowed``."""
        if not allowed:
            raise APIError(403, "Permission denied")

    def _ns(self, request):
        return request.args.get("namespace") or "default"

    def _body(self, request):
        """command/agent/http.go decodeBody: no body at all is "Request body is empty", then
        encoding/json's errors (the common ones in Go's words)."""
        raw = request.get_data(cache=True)
        if not raw:
            raise APIError(400, "Request body is empty")
        try:
            return json.loads(raw)
        except ValueError as exc:
            text = raw.decode("utf-8", "replace")
            if not text.strip():
                raise APIError(400, "EOF") from None
            if exc.msg == "Expecting value" and exc.pos < len(text):
                raise APIError(400, f"invalid character {text[exc.pos]!r} looking for beginning of value") from None
            raise APIError(400, f"invalid character in request body: {exc.msg}") from None

    def _read(self, request, table, produce, check=None, http_side=False):
        """
        GET with blocking-query support: wait while the table index <= ?index. The agent
        parses ``?wait``/``?index`` first (command/agent/http.go parse: 400s), then the RPC
        authenticates and ``check(token)`` decides (403) before the query blocks; ``produce``
        finds the token with :meth:`_token_of` where it filters by it.
        """
        # http.go parse: parseConsistency, parsePagination, then parseWait
        if request.args.get("stale", "") not in ("", "0", "f", "F", "FALSE", "false", "False",
                                                 "1", "t", "T", "TRUE", "true", "True"):
            raise APIError(400, "Expect `true` or `false` for `stale` query string parameter")
        _parse_per_page(request)
        wait = 0.0
        if request.args.get("wait"):
            wait = _parse_wait(request.args["wait"])
        min_index = 0
        if request.args.get("index"):
            raw = request.args["index"]  # strconv.ParseUint(idx, 10, 64)
            if not re.fullmatch(r"[0-9]+", raw) or int(raw) >= 2**64:
                raise APIError(400, "Invalid index")
            min_index = int(raw)
        token = self._auth(request, http_side=http_side)
        request.environ["nomad.token"] = token
        if check is not None:
            self._require(check(token))
        if wait <= 0:
            wait = DEFAULT_WAIT
        wait = min(wait, MAX_WAIT)
        wait += wait / JITTER_FRACTION * (uuid.uuid4().int % 1000) / 1000.0
        if min_index > 0:
            self.wait_for_change(lambda: self.tables[table], min_index, wait)
        body = produce()
        resp = self.json(body)
        resp.headers["X-Nomad-Index"] = str(self.tables[table])
        resp.headers["X-Nomad-KnownLeader"] = "true"
        resp.headers["X-Nomad-LastContact"] = "0"
        if request.environ.get("nomad.next_token"):
            resp.headers["X-Nomad-NextToken"] = request.environ["nomad.next_token"]  # http.go setNextToken
        return resp

    @staticmethod
    def _token_of(request):
        return request.environ["nomad.token"]

    def _read_job(self, request):
        """The read-job check on the request's namespace (Job.GetJob and its siblings)."""
        ns = self._ns(request)
        return lambda token: token.allow_ns(ns, "read-job")

    def _write_resp(self, body, index, status=200):
        resp = self.json(body, status=status)
        resp.headers["X-Nomad-Index"] = str(index)
        return resp

    def _wrap(self, func, request, *args):
        try:
            return func(request, *args)
        except APIError as exc:
            return self.text(exc.text, status=exc.status)

    def scaled(self, ns, floor=0.01):
        return max(floor, (ns or 0) / 1e9 * self.time_scale)

    # -- status ------------------------------------------------------------------------------
    def on_leader(self, request):
        return self.json(f"{self.address}:4647")

    def on_agent_self(self, request):
        def handle(req):
            # command/agent/agent_endpoint.go AgentSelfRequest: ResolveToken, then agent:read
            self._require(self._auth(req, http_side=True).allow("agent"))
            return self.json({
                "config": {"Region": self.region, "Datacenter": self.datacenter,
                           "Version": {"Version": self.version_text},
                           # command/agent/config.go Config.Vaults (DefaultConfig has "default", Enabled unset)
                           "Vaults": [{"Name": "default", "Enabled": True if self.vault_enabled else None}],
                           "ACL": {"Enabled": self.acl_enabled}},
                "member": {"Name": f"{self.node['Name']}.{self.region}", "Addr": self.address,
                           "Tags": {"region": self.region, "dc": self.datacenter}},
                "stats": {}})
        return self._wrap(handle, request)

    def on_scheduler_config(self, request):
        """GET /v1/operator/scheduler/configuration (Operator.SchedulerGetConfiguration: operator:read)."""
        def produce():
            return {"SchedulerConfig": {
                "SchedulerAlgorithm": "binpack",
                "PreemptionConfig": {"SystemSchedulerEnabled": True, "SysBatchSchedulerEnabled": False,
                                     "BatchSchedulerEnabled": False, "ServiceSchedulerEnabled": False},
                "MemoryOversubscriptionEnabled": self.memory_oversubscription,
                "RejectJobRegistration": False, "PauseEvalBroker": False,
                "CreateIndex": 5, "ModifyIndex": 5},
                "Index": 5, "KnownLeader": True, "LastContact": 0, "NextToken": ""}
        return self._wrap(lambda req: self._read(req, "jobs", produce, check=lambda t: t.allow("operator")),
                          request)

    def on_nodes(self, request):
        """GET /v1/nodes (Node.List: node:read)."""
        def produce():
            n = self.node
            return [{"ID": n["ID"], "Name": n["Name"], "Datacenter": n["Datacenter"], "NodeClass": n["NodeClass"],
                     "NodePool": n["NodePool"], "Status": "ready", "SchedulingEligibility": "eligible",
                     "Drain": False, "Version": self.version_text, "Address": self.address}]
        return self._wrap(lambda req: self._read(req, "jobs", produce, check=lambda t: t.allow("node")), request)

    # -- parse / validate ----------------------------------------------------------------------
    def on_parse(self, request):
        def handle(req):
            # command/agent/job_endpoint.go JobsParseRequest: ResolveToken, parse-job or
            # submit-job in ?namespace=, then the body
            token = self._auth(req, http_side=True)
            self._require(token.allow_ns(self._ns(req), "parse-job", "submit-job"))
            body = self._body(req)
            hcl = _ci(body, "JobHCL") or ""
            if not hcl:
                raise APIError(400, "Job spec is empty")
            try:
                job = js.parse(hcl, variables=_ci(body, "Variables"))
            except js.JobspecError as exc:
                raise APIError(400, f"Failed to parse job: {exc}") from None
            if _ci(body, "Canonicalize"):
                js.canonicalize(job)
            return self.json(job)
        return self._wrap(handle, request)

    def on_validate(self, request):
        def handle(req):
            # command/agent/job_endpoint.go ValidateJobRequest: the body (400s), then the RPC
            # in the job's own namespace (nomad/job_endpoint.go Job.Validate: mutators,
            # read-job, validators into ValidationErrors; DriverConfigValidated is always
            # true once the RPC answers)
            body = self._body(req)
            job = _ci(body, "Job")
            if not isinstance(job, dict):
                raise APIError(400, "Job must be specified")
            token = self._auth(req)
            job = js.canonicalize(copy.deepcopy(job))
            self._require(token.allow_ns(job.get("Namespace") or "default", "read-job"))
            job, errors, warnings = self._admit(job)
            return self.json({
                "DriverConfigValidated": True,
                "ValidationErrors": errors or None,
                "Error": js.multierror(errors) if errors else "",
                "Warnings": js.merge_warnings(warnings),
            })
        return self._wrap(handle, request)

    # -- jobs ----------------------------------------------------------------------------------
    def on_jobs(self, request):
        if request.method == "GET":
            ns = self._ns(request)
            prefix = request.args.get("prefix", "")
            # nomad/job_endpoint.go Job.List: list-jobs in the namespace (403); namespace=*
            # passes when any namespace grants it (acl.go AllowNamespaceOperation), and lists
            # the jobs of the namespaces that allow it
            check = ((lambda t: t.allow_any_ns("list-jobs") or t.allow_ns(ns, "list-jobs")) if ns == "*"
                     else (lambda t: t.allow_ns(ns, "list-jobs")))
            # paged by NamespaceIDTokenizer ("<namespace>.<job ID>") in the jobs table's order
            return self._wrap(lambda req: self._read(req, "jobs", lambda: [
                self._job_stub(j) for j in _paginate(req, [
                    j for (jns, jid), j in sorted(self.jobs.items())
                    if (ns == "*" or jns == ns) and jid.startswith(prefix)
                    and self._token_of(req).allow_ns(jns, "list-jobs")],
                    lambda j: f"{j['Namespace']}.{j['ID']}", reverse_order=True,
                    view=lambda j: {**j, "Status": self._job_status(j)})], check=check), request)
        return self._wrap(self._register_request, request, None)

    def on_job(self, request, job_id):
        if request.method == "GET":
            return self._wrap(lambda req: self._read(req, "jobs", lambda: self._job_view(self._job_or_404(req, job_id)),
                                                     check=self._read_job(req)), request)
        if request.method == "DELETE":
            return self._wrap(self._deregister, request, job_id)
        return self._wrap(self._register_request, request, job_id)

    def _job_or_404(self, request, job_id):
        job = self.jobs.get((self._ns(request), job_id))
        if job is None:
            raise APIError(404, "job not found")
        return job

    def _job_status(self, job):
        """nomad/state/state_store.go getJobStatus."""
        if job.get("Type") == "system" or job.get("Periodic") or job.get("ParameterizedJob"):
            return "dead" if job.get("Stop") else "running"
        key = (job["Namespace"], job["ID"])
        if any(d["Status"] not in ("successful", "failed", "cancelled") for d in self.deployments.values()
               if (d["Namespace"], d["JobID"]) == key):
            return "running"
        # Allocation.TerminalStatus: desired stop/evict, or a terminal client status
        if any(a["DesiredStatus"] == "run" and a["ClientStatus"] not in TERMINAL for a in self.allocs.values()
               if (a["Namespace"], a["JobID"]) == key):
            return "running"
        evals = [e for e in self.evals.values() if (e["Namespace"], e["JobID"]) == key]
        if any(e["Status"] not in ("complete", "failed", "canceled") for e in evals):
            return "pending"
        return "dead" if evals or job.get("Stop") else "pending"

    def _job_view(self, job):
        view = copy.deepcopy(job)
        view["Status"] = self._job_status(job)
        return view

    def _job_stub(self, job):
        return {"ID": job["ID"], "ParentID": job.get("ParentID", ""), "Name": job["Name"],
                "Namespace": job["Namespace"], "Datacenters": job.get("Datacenters"), "NodePool": job.get("NodePool"),
                "Type": job["Type"],
                "Priority": job["Priority"], "Periodic": _is_periodic(job), "ParameterizedJob": _is_parameterized(job),
                "Stop": job.get("Stop", False), "Status": self._job_status(job), "StatusDescription": "",
                "JobSummary": self._summary(job), "CreateIndex": job["CreateIndex"],
                "ModifyIndex": job["ModifyIndex"], "JobModifyIndex": job["JobModifyIndex"],
                "SubmitTime": job.get("SubmitTime"),
                # structs.JobListStub: Multiregion a pointer, Meta omitempty
                "Multiregion": job.get("Multiregion"), **({"Meta": job["Meta"]} if job.get("Meta") else {})}

    def _summary(self, job):
        summary = {}
        for group in job.get("TaskGroups") or []:
            counts = {"Queued": 0, "Complete": 0, "Failed": 0, "Running": 0, "Starting": 0, "Lost": 0, "Unknown": 0}
            for alloc in self.allocs.values():
                if alloc["JobID"] == job["ID"] and alloc["TaskGroup"] == group["Name"]:
                    key = {"pending": "Starting", "running": "Running", "complete": "Complete",
                           "failed": "Failed", "lost": "Lost"}.get(alloc["ClientStatus"], "Unknown")
                    counts[key] += 1
            summary[group["Name"]] = counts
        # JobSummary.Children of a periodic or parameterized job: its children by status
        children = {"Pending": 0, "Running": 0, "Dead": 0}
        for (cns, _), child in self.jobs.items():
            if cns == job["Namespace"] and child.get("ParentID") == job["ID"]:
                children[self._job_status(child).capitalize()] += 1
        return {"JobID": job["ID"], "Namespace": job["Namespace"], "Summary": summary,
                "Children": children,
                "CreateIndex": job["CreateIndex"], "ModifyIndex": job["ModifyIndex"]}

    def on_job_summary(self, request, job_id):
        return self._wrap(lambda req: self._read(req, "jobs", lambda: self._summary(self._job_or_404(req, job_id)),
                                                 check=self._read_job(req)), request)

    def _register_request(self, request, job_id):
        # command/agent/job_endpoint.go jobUpdate: the body's checks (400) come before the
        # RPC authenticates (nomad/job_endpoint.go Job.Register)
        body = self._body(request)
        job = _ci(body, "Job")
        if not isinstance(job, dict):
            raise APIError(400, "Job must be specified")
        if _ci(job, "ID") is None:
            raise APIError(400, "Job ID hasn't been provided")
        if job_id is not None and _ci(job, "ID") != job_id:
            raise APIError(400, "Job ID does not match name")
        token = self._auth(request)
        ns = self._job_namespace(request, body, job)
        reply = self._register(ns, job, bool(_ci(body, "EnforceIndex")),
                               int(_ci(body, "JobModifyIndex") or 0), token=token,
                               policy_override=bool(_ci(body, "PolicyOverride")))
        return self._write_resp(reply, reply["Index"])

    def _check_submit(self, token, ns, job, permissions, policy_override=False):
        """doRegister's permission checks, after the admission controllers: submit-job (or
        the caller's finer capability), host volumes mounted read-write need
        ``mount-readwrite`` (read-only ones either), sentinel-override for PolicyOverride."""
        self._require(token.allow_ns(ns, "submit-job", *permissions))
        for group in job.get("TaskGroups") or []:
            for vol in (group.get("Volumes") or {}).values():
                if vol.get("Type") != "host":
                    self._require(vol.get("Type") == "csi" and token.allow_ns(ns, "csi-mount-volume"))
                    continue
                ok = token.allow_host_volume(vol.get("Source") or "", "mount-readwrite")
                if vol.get("ReadOnly"):
                    ok = ok or token.allow_host_volume(vol.get("Source") or "", "mount-readonly")
                self._require(ok)
            if policy_override:
                self._require(token.allow_ns(ns, "sentinel-override"))

    def _job_namespace(self, request, body, job):
        """command/agent/job_endpoint.go namespaceForJob: ?namespace=, then the request
        body's Namespace, then the job's, then "default"."""
        return (request.args.get("namespace") or _ci(body, "Namespace") or _ci(job, "Namespace")
                or "default")

    def _admit(self, job):
        """
        Nomad's admission controllers (nomad/job_endpoint.go NewJobEndpoints) on an
        api-canonicalized job: the mutators in their order (jobCanonicalizer, jobVaultHook,
        jobImpliedConstraints, jobNodePoolMutatingHook, jobImplicitIdentitiesHook), then the
        validators (Vault hook, namespace check, job.Validate and Job.Warnings, memory
        oversubscription). Returns ``(job, errors, warnings)``.
        """
        errors, warnings = [], []
        server_canonicalize(job)
        vault_groups = []
        for group in job.get("TaskGroups") or []:
            for task in group.get("Tasks") or []:
                if task.get("Vault") is not None:
                    task["Vault"]["Cluster"] = task["Vault"].get("Cluster") or "default"
                    if group not in vault_groups:
                        vault_groups.append(group)
        implied_constraints(job)
        # nomad/job_endpoint_hook_node_pool_ce.go jobNodePoolMutatingHook.Mutate
        job["NodePool"] = job.get("NodePool") or "default"
        self._implicit_identities(job)
        # jobVaultHook.Validate: the first block whose cluster is not enabled
        for group in vault_groups:
            cluster = next((t["Vault"]["Cluster"] for t in group["Tasks"] if t.get("Vault") is not None
                            and not (self.vault_enabled and t["Vault"]["Cluster"] == "default")), None)
            if cluster is not None:
                errors.append(f'Vault "{cluster}" not enabled but used in the job')
                break
        # jobNamespaceConstraintCheckHook (nomad/job_endpoint_validators.go)
        if job.get("Namespace") not in self.namespaces:
            errors.append(f'job "{job.get("ID")}" is in nonexistent namespace "{job.get("Namespace")}"')
        errors.extend(js.validate(job))
        # jobValidate.Validate's own checks, after job.Validate's (nomad/job_endpoint_hooks.go)
        if not 1 <= (job.get("Priority") or 0) <= 100:
            errors.append("job priority must be between [1, 100]")
        warnings.extend(js.warnings(job, shutdown_delay=self.version >= (2, 0, 1)))
        if not self.memory_oversubscription:
            for group in job.get("TaskGroups") or []:
                for task in group.get("Tasks") or []:
                    if (task.get("Resources") or {}).get("MemoryMaxMB"):
                        warnings.append(f'Memory oversubscription is not enabled; Task "{group["Name"]}.'
                                        f'{task["Name"]}" memory_max value will be ignored. Update the '
                                        f'Scheduler Configuration to allow oversubscription.')
        return job, errors, warnings

    def _implicit_identities(self, job):
        """
        nomad/job_endpoint_hook_implicit_identities.go jobImplicitIdentitiesHook.Mutate for
        Vault (the servers' ``vault { default_identity {...} }``): a task with a vault block
        gets the identity ``vault_<cluster>`` and its group the client version constraint
        (appended, not deduplicated, as Nomad does).
        """
        if self.vault_identity is None:
            return
        for group in job.get("TaskGroups") or []:
            has_identity = False
            for task in group.get("Tasks") or []:
                vault = task.get("Vault")
                if vault is not None:
                    name = f"vault_{vault.get('Cluster') or 'default'}"
                    if not any(w.get("Name") == name for w in task.get("Identities") or []):
                        ident = dict(IDENTITY_ZERO, **self.vault_identity, Name=name)
                        task["Identities"] = list(task.get("Identities") or []) + [ident]
                has_identity = has_identity or bool(task.get("Identities"))
            if has_identity:
                group["Constraints"] = list(group.get("Constraints") or []) + [
                    {"LTarget": "${attr.nomad.version}", "RTarget": ">= 1.7.0-a", "Operand": "semver"}]

    def _register(self, ns, job, enforce=False, modify_index=0, triggered_by="job-register", keep_stable=False,
                  admit=True, token=None, permissions=("register-job",), policy_override=False):
        """
        Job.Register (nomad/job_endpoint.go doRegister): admission controllers, permission
        checks, EnforceIndex, validateJobUpdate, then a new version unless the spec is
        unchanged (Job.SpecChanged: NomadTokenID counts, hashicorp/nomad#26810 - the
        accessor of the token that registers is stamped on the job). ``admit=False``: the
        deployment watcher's rollback, which upserts the stable version as stored, without
        the admission controllers (nomad/deploymentwatcher/deployment_watcher.go
        upsertDeploymentStatusUpdate).
        """
        job = js.canonicalize(copy.deepcopy(job))
        job["Namespace"] = ns
        warnings = []
        if admit:
            job, errors, warnings = self._admit(job)
            if errors:
                raise APIError(500, js.multierror(errors))
        if token is not None:
            self._check_submit(token, ns, job, permissions, policy_override)
            if token.accessor != "acls-disabled":
                job["NomadTokenID"] = token.accessor
        key = (ns, job["ID"])
        existing = self.jobs.get(key)
        if enforce:
            prefix = "Enforcing job modify index"
            if existing is not None:
                if modify_index == 0:
                    raise APIError(500, f"{prefix} 0: job already exists")
                if modify_index != existing["JobModifyIndex"]:
                    raise APIError(500, f"{prefix} {modify_index}: job exists with conflicting job modify "
                                        f"index: {existing['JobModifyIndex']}")
            elif modify_index != 0:
                raise APIError(500, f"{prefix} {modify_index}: job does not exist")
        problem = _job_update_problem(existing, job)
        if problem:
            raise APIError(500, problem)
        now = _now_ns()
        # periodic and parameterized jobs get no evaluation at registration
        evaluate = not (_is_periodic(job) or _is_parameterized(job))
        if existing is not None and not js.spec_changed(existing, job):
            reply = {"EvalID": "", "EvalCreateIndex": 0, "JobModifyIndex": existing["ModifyIndex"],
                     "Warnings": js.merge_warnings(warnings), "Index": existing["ModifyIndex"],
                     "KnownLeader": False, "LastContact": 0, "NextToken": ""}
            if evaluate:
                evaluation = self._new_eval(existing, triggered_by)
                index = self._bump("evals")
                evaluation["CreateIndex"] = evaluation["ModifyIndex"] = index
                reply.update(EvalID=evaluation["ID"], EvalCreateIndex=index, Index=index)
            return reply
        index = self._bump("jobs", "job_version", "evals" if evaluate else "jobs")
        job["SubmitTime"] = now
        job["Stable"] = False
        job["Status"] = "pending"
        job["ModifyIndex"] = job["JobModifyIndex"] = index
        if existing is not None:
            job["CreateIndex"] = existing["CreateIndex"]
            job["Version"] = existing["Version"] + 1
        else:
            job["CreateIndex"] = index
            job["Version"] = 0
        self.jobs[key] = job
        self.versions.setdefault(key, []).insert(0, copy.deepcopy(job))
        del self.versions[key][TRACKED_VERSIONS:]
        reply = {"EvalID": "", "EvalCreateIndex": 0, "JobModifyIndex": index,
                 "Warnings": js.merge_warnings(warnings), "Index": index,
                 "KnownLeader": False, "LastContact": 0, "NextToken": ""}
        if not evaluate:
            # a periodic or parameterized job is a template: its status is running while it is
            # registered (nomad/structs Job.Status; only its launches are evaluated)
            job["Status"] = "running"
        if evaluate:
            evaluation = self._new_eval(job, triggered_by)
            evaluation["CreateIndex"] = evaluation["ModifyIndex"] = index
            reply.update(EvalID=evaluation["ID"], EvalCreateIndex=index)
        return reply

    def _new_eval(self, job, triggered_by, status="pending"):
        now = _now_ns()
        evaluation = {
            "ID": str(uuid.uuid4()), "Namespace": job["Namespace"], "Priority": job.get("Priority", 50),
            "Type": job.get("Type", "service"), "TriggeredBy": triggered_by, "JobID": job["ID"],
            "JobModifyIndex": job.get("JobModifyIndex", 0), "NodeID": "", "NodeModifyIndex": 0,
            "DeploymentID": "", "Status": status, "StatusDescription": "", "Wait": 0, "WaitUntil": None,
            "NextEval": "", "PreviousEval": "", "BlockedEval": "", "RelatedEvals": None,
            "FailedTGAllocs": None, "ClassEligibility": None, "EscapedComputedClass": False,
            "AnnotatePlan": False, "QueuedAllocations": None, "LeaderACL": "", "SnapshotIndex": 0,
            "CreateIndex": 0, "ModifyIndex": 0, "CreateTime": now, "ModifyTime": now,
            "_due": time.monotonic() + self.scaled(0, floor=0.02),
        }
        self.evals[evaluation["ID"]] = evaluation
        return evaluation

    def _deregister(self, request, job_id):
        # command/agent/job_endpoint.go jobDelete: ?purge= with strconv.ParseBool, then
        # Job.Deregister: submit-job or purge-job (or deregister-job to stop), then the
        # lookup; a missing job is no error and index 0
        purge = _parse_bool(request, "purge")
        token = self._auth(request)
        ns = self._ns(request)
        caps = ("submit-job", "purge-job") + (() if purge else ("deregister-job",))
        self._require(token.allow_ns(ns, *caps))
        key = (ns, job_id)
        job = self.jobs.get(key)
        if job is None:
            return self._write_resp({"EvalID": "", "EvalCreateIndex": 0, "JobModifyIndex": 0,
                                     "VolumeEvalID": "", "VolumeEvalIndex": 0, "Index": 0,
                                     "LastContact": 0, "KnownLeader": False, "NextToken": ""}, 0)
        if purge:
            index = self._bump("jobs", "job_version", "evals")
            del self.jobs[key]
            self.versions.pop(key, None)
        else:
            stopped = copy.deepcopy(job)
            stopped["Stop"] = True
            index = self._bump("jobs", "job_version", "evals")
            stopped["Version"] = job["Version"] + 1
            stopped["Stable"] = False
            stopped["ModifyIndex"] = stopped["JobModifyIndex"] = index
            stopped["SubmitTime"] = _now_ns()
            self.jobs[key] = stopped
            self.versions.setdefault(key, []).insert(0, copy.deepcopy(stopped))
            del self.versions[key][TRACKED_VERSIONS:]
        eval_id = ""
        if not (_is_periodic(job) or _is_parameterized(job)):
            evaluation = self._new_eval(job, "job-deregister")
            evaluation["Type"] = "service"  # Job.Deregister makes every deregister eval a service eval
            evaluation["CreateIndex"] = evaluation["ModifyIndex"] = index
            eval_id = evaluation["ID"]
        return self._write_resp({"EvalID": eval_id, "EvalCreateIndex": index, "JobModifyIndex": index,
                                 "VolumeEvalID": "", "VolumeEvalIndex": 0, "Index": index,
                                 "LastContact": 0, "KnownLeader": False, "NextToken": ""}, index)

    def on_plan(self, request, job_id):
        def handle(req):
            # command/agent/job_endpoint.go jobPlan (400s), then nomad/job_endpoint.go
            # Job.Plan: admission controllers, then submit-job or plan-job. The plan's job
            # carries no NomadTokenID: on a cluster with ACLs the spec of a registered job
            # always reads as changed here (allocations "in-place update") while the diff,
            # which filters NomadTokenID (nomad/structs/diff.go), is "None"
            body = self._body(req)
            job = _ci(body, "Job")
            if not isinstance(job, dict):
                raise APIError(400, "Job must be specified")
            if _ci(job, "ID") is None:
                raise APIError(400, "Job must have a valid ID")
            if _ci(job, "ID") != job_id:
                raise APIError(400, "Job ID does not match")
            token = self._auth(req)
            ns = self._job_namespace(req, body, job)
            job = js.canonicalize(copy.deepcopy(job))
            job["Namespace"] = ns
            job, errors, warnings = self._admit(job)
            if errors:
                raise APIError(500, js.multierror(errors))
            self._require(token.allow_ns(ns, "submit-job", "plan-job"))
            if _ci(body, "PolicyOverride"):
                self._require(token.allow_ns(ns, "sentinel-override"))
            existing = self.jobs.get((ns, job_id))
            if existing is not None and not js.spec_changed(existing, job):
                job = copy.deepcopy(existing)
            elif existing is not None:
                job["JobModifyIndex"] = existing["JobModifyIndex"] + 1
                job["Version"] = existing["Version"] + 1
                job["CreateIndex"] = existing["CreateIndex"]
            plan = self._schedule(job, existing, dry_run=True)
            diff = None
            if _ci(body, "Diff"):
                diff = js.job_diff(existing, job) if existing is not None else js.job_diff(None, job)
                js.annotate(diff, plan["desired"])
            return self._write_resp({
                "Annotations": {"DesiredTGUpdates": plan["desired"], "PreemptedAllocs": None},
                "CreatedEvals": None, "Diff": diff, "FailedTGAllocs": plan["failed"] or None,
                "JobModifyIndex": existing["JobModifyIndex"] if existing else 0,
                "NextPeriodicLaunch": "0001-01-01T00:00:00Z",
                "Warnings": js.merge_warnings(warnings),
                # Job.Plan answers the existing job's modify index (0 for a new job)
                "Index": existing["JobModifyIndex"] if existing else 0,
            }, existing["JobModifyIndex"] if existing else 0)
        return self._wrap(handle, request)

    def on_versions(self, request, job_id):
        def handle(req):
            # command/agent/job_endpoint.go jobVersions: ?diffs= with strconv.ParseBool
            diffs = _parse_bool(req, "diffs")

            def produce():
                versions = self.versions.get((self._ns(req), job_id))
                if not versions:
                    raise APIError(404, "job versions not found")
                found = None
                if diffs:
                    found = [js.job_diff(versions[i + 1], versions[i]) for i in range(len(versions) - 1)]
                return {"Versions": copy.deepcopy(versions), "Diffs": found}
            return self._read(req, "job_version", produce, check=self._read_job(req))
        return self._wrap(handle, request)

    def on_revert(self, request, job_id):
        def handle(req):
            body = self._body(req)
            # command/agent/job_endpoint.go jobRevert (400s), then nomad/job_endpoint.go
            # Job.Revert: submit-job or revert-job, the versions, then doRegister
            if not _ci(body, "JobID"):
                raise APIError(400, "JobID must be specified")
            if _ci(body, "JobID") != job_id:
                raise APIError(400, "Job ID does not match")
            token = self._auth(req)
            ns = self._ns(req)
            self._require(token.allow_ns(ns, "submit-job", "revert-job"))
            cur = self.jobs.get((ns, job_id))
            if cur is None:
                raise APIError(500, f'job "{job_id}" not found')
            version = int(_ci(body, "JobVersion") or 0)
            if version == cur["Version"]:
                raise APIError(500, "can't revert to current version")
            target = next((v for v in self.versions.get((ns, job_id), []) if v["Version"] == version), None)
            if target is None:
                raise APIError(500, f'job "{job_id}" in namespace "{ns}" at version {version} not found')
            enforce = _ci(body, "EnforcePriorVersion")
            modify_index = 0
            if enforce is not None:
                if int(enforce) != cur["Version"]:
                    raise APIError(500, f"Current job has version {cur['Version']}; enforcing version {int(enforce)}")
                modify_index = cur["JobModifyIndex"]
            reply = self._register(ns, copy.deepcopy(target), enforce=enforce is not None,
                                   modify_index=modify_index, triggered_by="job-register", token=token,
                                   permissions=("revert-job",))
            return self._write_resp(reply, reply["Index"])
        return self._wrap(handle, request)

    def on_periodic_force(self, request, job_id):
        def handle(req):
            # command/agent/job_endpoint.go periodicForceRequest (no body), then
            # nomad/periodic_endpoint.go Periodic.Force: dispatch-job or submit-job in the
            # namespace, the job ("job not found"), periodic ("can't force launch non-periodic
            # job"), then PeriodicDispatch.ForceEval: only a tracked job launches, and Add
            # tracks only IsPeriodicActive jobs (periodic, enabled, not stopped, not
            # parameterized). Plain errors are 500s (command/agent/http.go).
            token = self._auth(req)
            ns = self._ns(req)
            self._require(token.allow_ns(ns, "dispatch-job", "submit-job"))
            job = self.jobs.get((ns, job_id))
            if job is None:
                raise APIError(500, "job not found")
            if not _is_periodic(job):
                raise APIError(500, "can't force launch non-periodic job")
            if job.get("Stop") or job["Periodic"].get("Enabled") is False or _is_parameterized(job):
                raise APIError(500, f"force launch for job {js.go_q(job_id)} failed: can't force run "
                                    f"non-tracked job {js.go_q(job_id)} ({ns})")
            evaluation = self._launch_periodic(job, int(time.time()))
            return self._write_resp({"EvalID": evaluation["ID"], "EvalCreateIndex": evaluation["CreateIndex"],
                                     "Index": evaluation["CreateIndex"]}, evaluation["CreateIndex"])
        return self._wrap(handle, request)

    def _launch_periodic(self, job, launch):
        """
        nomad/periodic.go createEval: the child job (deriveJob: a copy with ParentID, ID and
        Name ``<id>/periodic-<unix launch time>``, no Periodic, empty Status) registered as the
        leader's DispatchJob does it (a raft JobRegisterRequest with its evaluation, triggered
        by ``periodic-job``: no admission controllers, no permission checks of its own).
        """
        child = copy.deepcopy(self._public(job))
        for key in ("Version", "Stable", "CreateIndex", "ModifyIndex", "JobModifyIndex", "SubmitTime", "Status"):
            child.pop(key, None)
        child.update(ParentID=job["ID"], ID=f"{job['ID']}{PERIODIC_LAUNCH_SUFFIX}{launch}", Periodic=None,
                     StatusDescription="")
        child["Name"] = child["ID"]
        self._register(job["Namespace"], child, triggered_by="periodic-job", admit=False)
        evaluation = next(e for e in sorted(self.evals.values(), key=lambda e: -e["CreateIndex"])
                          if e["JobID"] == child["ID"] and e["Namespace"] == job["Namespace"])
        return evaluation

    # -- evaluations, allocations, deployments ---------------------------------------------------
    @staticmethod
    def _public(obj):
        return {k: copy.deepcopy(v) for k, v in obj.items() if not k.startswith("_")}

    def on_job_evals(self, request, job_id):
        ns = self._ns(request)
        return self._wrap(lambda req: self._read(req, "evals", lambda: [
            self._public(e) for e in sorted(self.evals.values(), key=lambda e: -e["CreateIndex"])
            if e["JobID"] == job_id and e["Namespace"] == ns], check=self._read_job(req)), request)

    def _by_id(self, request, table, obj, what):
        """
        Eval.GetEval, Alloc.GetAlloc, Deployment.GetDeployment: read-job in the request's
        namespace before the lookup, then in the object's own (acl.NamespaceValidator); a
        missing object is a 404 (command/agent: "eval not found", ...).
        """
        if obj is None:
            raise APIError(404, f"{what} not found")
        self._require(self._token_of(request).allow_ns(obj["Namespace"], "read-job"))
        return self._public(obj)

    def on_evaluation(self, request, eval_id):
        return self._wrap(lambda req: self._read(
            req, "evals", lambda: self._by_id(req, "evals", self.evals.get(eval_id), "eval"),
            check=self._read_job(req)), request)

    def on_eval_allocs(self, request, eval_id):
        def produce(req):
            evaluation = self.evals.get(eval_id)
            if evaluation is not None:
                self._require(self._token_of(req).allow_ns(evaluation["Namespace"], "read-job"))
            return [self._alloc_stub(a) for a in self.allocs.values() if a["EvalID"] == eval_id]
        return self._wrap(lambda req: self._read(req, "allocs", lambda: produce(req), check=self._read_job(req)),
                          request)

    def _alloc_stub(self, alloc):
        stub = {k: copy.deepcopy(v) for k, v in alloc.items()
                if k not in ("Job", "AllocatedResources", "Resources") and not k.startswith("_")}
        stub["JobType"] = alloc["Job"]["Type"]
        return stub

    def on_job_allocs(self, request, job_id):
        ns = self._ns(request)
        return self._wrap(lambda req: self._read(req, "allocs", lambda: [
            self._alloc_stub(a) for a in sorted(self.allocs.values(), key=lambda a: -a["CreateIndex"])
            if a["JobID"] == job_id and a["Namespace"] == ns], check=self._read_job(req)), request)

    def on_allocation(self, request, alloc_id):
        return self._wrap(lambda req: self._read(
            req, "allocs", lambda: self._by_id(req, "allocs", self.allocs.get(alloc_id), "alloc"),
            check=self._read_job(req)), request)

    def _job_deployments(self, ns, job_id):
        return sorted([d for d in self.deployments.values() if d["JobID"] == job_id and d["Namespace"] == ns],
                      key=lambda d: -d["CreateIndex"])

    @staticmethod
    def _deployment_view(dep):
        """The deployment as the API shows it (the simulator's own bookkeeping left out)."""
        if dep is None:
            return None
        view = {k: copy.deepcopy(v) for k, v in dep.items() if not k.startswith("_")}
        view["TaskGroups"] = {name: {k: v for k, v in tg.items() if not k.startswith("_")}
                              for name, tg in (view.get("TaskGroups") or {}).items()}
        return view

    def on_job_deployment(self, request, job_id):
        ns = self._ns(request)
        return self._wrap(lambda req: self._read(req, "deployment", lambda: (
            self._deployment_view(self._job_deployments(ns, job_id)[0]) if self._job_deployments(ns, job_id)
            else None), check=self._read_job(req)), request)

    def on_job_deployments(self, request, job_id):
        ns = self._ns(request)
        return self._wrap(lambda req: self._read(req, "deployment", lambda: [
            self._deployment_view(d) for d in self._job_deployments(ns, job_id)], check=self._read_job(req)), request)

    def on_deployment(self, request, dep_id):
        return self._wrap(lambda req: self._read(
            req, "deployment", lambda: self._deployment_view(
                self._by_id(req, "deployment", self.deployments.get(dep_id), "deployment")),
            check=self._read_job(req)), request)

    def on_deployment_allocs(self, request, dep_id):
        def produce(req):
            dep = self.deployments.get(dep_id)
            if dep is not None:
                self._require(self._token_of(req).allow_ns(dep["Namespace"], "read-job"))
            return [self._alloc_stub(a) for a in self.allocs.values() if a.get("DeploymentID") == dep_id]
        return self._wrap(lambda req: self._read(req, "allocs", lambda: produce(req), check=self._read_job(req)),
                          request)

    # -- variables -------------------------------------------------------------------------------
    def on_vars(self, request):
        """Variables.List: no 403, the variables the token may ``list`` (by namespace and path)."""
        ns = self._ns(request)
        prefix = request.args.get("prefix", "")
        # paged by NamespaceIDTokenizer ("<namespace>.<path>")
        return self._wrap(lambda req: self._read(req, "variables", lambda: [
            {k: v for k, v in var.items() if k != "Items"}
            for var in _paginate(req, [
                var for (vns, path), var in sorted(self.variables.items())
                if (ns == "*" or vns == ns) and path.startswith(prefix)
                and self._token_of(req).allow_variable(vns, path, "list")],
                lambda v: f"{v['Namespace']}.{v['Path']}",
                # the filter sees a VariableEncrypted: its metadata is the embedded VariableMetadata
                view=lambda v: {"VariableMetadata": {k: x for k, x in v.items() if k != "Items"},
                                "VariableData": {"Data": "", "KeyID": ""}})]), request)

    def on_var(self, request, path):
        def handle(req):
            ns = self._ns(req)
            if req.method == "GET":
                # Variables.Read: read on the path before the lookup
                def produce():
                    var = self.variables.get((ns, path))
                    if var is None:
                        raise APIError(404, "variable not found")
                    return copy.deepcopy(var)
                return self._read(req, "variables", produce,
                                  check=lambda token: token.allow_variable(ns, path, "read"))
            if req.method == "DELETE":
                # command/agent/variable_endpoint.go variableDelete: ?cas, then Variables.Apply
                cas = self._var_cas(req)
                token = self._auth(req)
                self._require(token.allow_variable(ns, path, "destroy"))
                current = self.variables.get((ns, path))
                if cas is not None and (current or {}).get("ModifyIndex", 0) != cas:
                    return self._conflict(current, ns, path)
                if current is not None:
                    index = self._bump("variables")
                    del self.variables[(ns, path)]
                else:
                    index = self.index
                resp = self.text("", status=204)
                resp.headers["X-Nomad-Index"] = str(index)
                return resp
            # command/agent/variable_endpoint.go variableUpsert: the body, Items, ?cas; then
            # the RPC (nomad/variables_endpoint.go Apply): the body's Namespace wins over the
            # request's, write permission on it, then canonicalizeAndValidate, whose error is
            # a 400 RPC error that Apply wraps once more, so the text keeps one
            # "RPC Error:: 400," after the HTTP layer unwraps the outer one
            body = self._body(req)
            items = _ci(body, "Items")
            if not items:
                raise APIError(400, "variable missing required Items object")
            if not isinstance(items, dict) or not all(isinstance(v, str) for v in items.values()):
                kind = next((_go_json_kind(v) for v in (items.values() if isinstance(items, dict) else [items])
                             if not isinstance(v, str)), "object")
                raise APIError(400, f"json: cannot unmarshal {kind} into Go struct field VariableDecrypted.Items "
                                    "of type string")
            cas = self._var_cas(req)
            token = self._auth(req)
            ns = _ci(body, "Namespace") or ns
            self._require(token.allow_variable(ns, path, "write"))
            problem = _var_problem(path, items, ns)
            if problem:
                raise APIError(400, f"RPC Error:: 400,{problem}")
            key = (ns, path)
            current = self.variables.get(key)
            if cas is not None and (current or {}).get("ModifyIndex", 0) != cas:
                return self._conflict(current, ns, path)
            now = _now_ns()
            index = self._bump("variables")
            var = {"Namespace": ns, "Path": path, "CreateIndex": (current or {}).get("CreateIndex", index),
                   "ModifyIndex": index, "CreateTime": (current or {}).get("CreateTime", now),
                   "ModifyTime": now, "Items": dict(items)}
            self.variables[key] = var
            return self._write_resp(copy.deepcopy(var), index)
        return self._wrap(handle, request)

    @staticmethod
    def _var_cas(req):
        """command/agent/variable_endpoint.go parseCAS: None, or the index (0 = create only)."""
        cas = req.args.get("cas")
        if not cas:
            return None
        try:
            if not cas.isdigit():
                raise ValueError
            return int(cas)
        except ValueError:
            raise APIError(400, f'can not parse cas: strconv.ParseUint: parsing "{cas}": invalid syntax') from None

    def on_var_root(self, request):
        return self.text("missing variable path", status=400)

    def _conflict(self, current, ns, path):
        body = copy.deepcopy(current) if current else {
            "Namespace": ns, "Path": path, "CreateIndex": 0, "ModifyIndex": 0, "CreateTime": 0,
            "ModifyTime": 0, "Items": None}
        return self._write_resp(body, body["ModifyIndex"], status=409)

    # -- ACL policies and tokens (command/agent/acl_endpoint.go, nomad/acl_endpoint.go) ----------
    # Enough of the API for contract tests to make a token with a policy of their own, on the
    # simulator as on a real Nomad (`nomad acl policy apply`, `nomad acl token create`).
    def _acl_write(self, request):
        self._require(self._auth(request).management)  # ACL.UpsertPolicies/UpsertTokens: management

    def on_acl_policy(self, request, name):
        def handle(req):
            if req.method == "GET":
                self._require(self._auth(req).management)
                policy = self.acl_policies.get(name)
                if policy is None:
                    raise APIError(404, "ACL policy not found")
                return self.json({k: v for k, v in policy.items() if not k.startswith("_")})
            if req.method == "DELETE":
                self._acl_write(req)
                self.acl_policies.pop(name, None)
                self._rebuild_tokens(name)
                return self._write_resp(None, self._bump("jobs"))
            body = self._body(req)
            self._acl_write(req)
            rules = parse_policy(_ci(body, "Rules") or "")
            index = self._bump("jobs")
            old = self.acl_policies.get(name) or {"CreateIndex": index}
            self.acl_policies[name] = {"Name": name, "Description": _ci(body, "Description") or "",
                                       "Rules": _ci(body, "Rules") or "", "_rules": rules,
                                       "CreateIndex": old["CreateIndex"], "ModifyIndex": index}
            self._rebuild_tokens(name)
            return self._write_resp(None, index)
        return self._wrap(handle, request)

    def _rebuild_tokens(self, policy_name):
        for secret, token in list(self.acl_tokens.items()):
            if policy_name in token.policy_names:
                self.acl_tokens[secret] = self._token(token.name, token.accessor, token.policy_names)

    def _token(self, name, accessor, policy_names):
        rules = [self.acl_policies[n]["_rules"] for n in policy_names if n in self.acl_policies]
        return NomadToken(name, accessor, policies=rules, policy_names=policy_names)

    def _token_json(self, secret, token):
        return {"AccessorID": token.accessor, "SecretID": secret, "Name": token.name,
                "Type": "management" if token.management else "client",
                "Policies": list(token.policy_names) or None, "Roles": None, "Global": False,
                "CreateTime": token.create_time, "ExpirationTime": None, "ExpirationTTL": 0,
                "CreateIndex": 1, "ModifyIndex": 1}

    def on_acl_token_create(self, request):
        def handle(req):
            body = self._body(req)
            self._acl_write(req)
            kind = _ci(body, "Type") or "client"
            names = list(_ci(body, "Policies") or [])
            if kind == "client" and not names:
                raise APIError(500, "1 error occurred:\n\t* client type token must be associated with at least "
                                    "one policy or role\n\n")
            secret, accessor = str(uuid.uuid4()), str(uuid.uuid4())
            if kind == "management":
                token = NomadToken(_ci(body, "Name") or "", accessor, management=True)
            else:
                token = self._token(_ci(body, "Name") or "", accessor, names)
            self.acl_tokens[secret] = token
            return self._write_resp(self._token_json(secret, token), self._bump("jobs"))
        return self._wrap(handle, request)

    def on_acl_token_self(self, request):
        def handle(req):
            token = self._auth(req)
            secret = self._secret(req)
            if not self.acl_enabled:
                raise APIError(400, "ACL support disabled")
            if token is self.anonymous:
                raise APIError(404, "ACL token not found")
            return self.json(self._token_json(secret, token))
        return self._wrap(handle, request)

    def on_acl_token(self, request, accessor):
        def handle(req):
            self._acl_write(req)
            found = next((sec for sec, tok in self.acl_tokens.items() if tok.accessor == accessor), None)
            if req.method == "DELETE":
                self.acl_tokens.pop(found, None)
                return self._write_resp(None, self._bump("jobs"))
            if found is None:
                raise APIError(404, "ACL token not found")
            return self.json(self._token_json(found, self.acl_tokens[found]))
        return self._wrap(handle, request)

    # -- scheduler -------------------------------------------------------------------------------
    def _live_allocs(self, job):
        return [a for a in self.allocs.values()
                if a["JobID"] == job["ID"] and a["Namespace"] == job["Namespace"]
                and a["DesiredStatus"] == "run" and a["ClientStatus"] not in TERMINAL]

    def _constraint_ok(self, con):
        target = con.get("LTarget", "")
        value = con.get("RTarget", "")
        operand = con.get("Operand") or "="
        m = re.fullmatch(r"\$\{(meta|attr|node)\.(.+)\}", target)
        actual = None
        if m:
            kind, name = m.groups()
            if kind == "meta":
                actual = self.node["Meta"].get(name)
            elif kind == "attr":
                actual = self.node["Attributes"].get(name)
            else:
                actual = {"datacenter": self.node["Datacenter"], "unique.name": self.node["Name"],
                          "unique.id": self.node["ID"], "class": self.node["NodeClass"],
                          "pool": self.node["NodePool"]}.get(name)
        else:
            actual = target
        if operand in ("=", "==", "is"):
            return actual is not None and str(actual) == value
        if operand in ("!=", "not"):
            return actual is None or str(actual) != value
        if operand == "is_set":
            return actual is not None
        if operand == "is_not_set":
            return actual is None
        if operand == "regexp":
            return actual is not None and re.search(value, str(actual)) is not None
        if operand in ("semver", "version"):
            return actual is not None and _version_ok(str(actual), value)
        if operand in ("set_contains", "set_contains_all"):
            have = {s.strip() for s in str(actual or "").split(",")}
            return all(v.strip() in have for v in value.split(","))
        if operand == "set_contains_any":
            have = {s.strip() for s in str(actual or "").split(",")}
            return any(v.strip() in have for v in value.split(","))
        return True

    def _placement_failure(self, job, group, new_allocs_resources, keeps_running=False):
        """
        AllocMetric of a failed placement, or None when the node fits. ``keeps_running``: the
        group's running allocations stay (canaries are placed beside them), so the static
        ports they hold are taken.
        """
        metric = {"NodesEvaluated": 1, "NodesFiltered": 0, "NodesInPool": 1, "NodePool": "default",
                  "NodesAvailable": {self.datacenter: 1}, "ClassFiltered": None, "ConstraintFiltered": None,
                  "NodesExhausted": 0, "ClassExhausted": None, "DimensionExhausted": None,
                  "QuotaExhausted": None, "ResourcesExhausted": None, "Scores": None, "ScoreMetaData": None,
                  "AllocationTime": 1000, "CoalescedFailures": max(0, group["Count"] - 1)}
        dcs = job.get("Datacenters") or ["*"]
        if not any(fnmatch.fnmatch(self.datacenter, dc) for dc in dcs):
            metric["NodesEvaluated"] = 0
            metric["NodesAvailable"] = {dc: 0 for dc in dcs}
            return metric
        filtered = {}
        for con in (job.get("Constraints") or []) + (group.get("Constraints") or []) + [
                c for t in group.get("Tasks") or [] for c in (t.get("Constraints") or [])]:
            if not self._constraint_ok(con):
                key = f"{con.get('LTarget')} {con.get('Operand') or '='} {con.get('RTarget')}".replace("  ", " ")
                filtered[key] = 1
        # distinct_hosts (Nomad's DistinctHostsIterator, filtered as "distinct_hosts"): at most one
        # allocation of the group per node, and this simulator has one node. Nomad would place one
        # and fail the rest; the simulator refuses the group whole (stricter, never looser).
        if group.get("Count", 1) > 1 and (_distinct_hosts(job.get("Constraints"))
                                          or _distinct_hosts(group.get("Constraints"))):
            filtered["distinct_hosts"] = 1
        for task in group.get("Tasks") or []:
            if task.get("Driver") not in self.node["Drivers"]:
                filtered["missing drivers"] = 1
        wanted_volumes = [v for v in (group.get("Volumes") or {}).values() if v.get("Type") == "host"]
        if wanted_volumes and self.node["HostVolumes"] is not None and any(
            v.get("Source") not in self.node["HostVolumes"] for v in wanted_volumes
        ):
            filtered["missing compatible host volumes"] = 1
        if filtered:
            metric["NodesFiltered"] = 1
            metric["ConstraintFiltered"] = filtered
            return metric
        cpu = sum(r[0] for r in new_allocs_resources)
        mem = sum(r[1] for r in new_allocs_resources)
        dims = {}
        if cpu > self.node["CPU"]:
            dims["cpu"] = 1
        if mem > self.node["MemoryMB"]:
            dims["memory"] = 1
        for net in group.get("Networks") or []:
            for port in net.get("ReservedPorts") or []:
                if port.get("Value") and not self._port_free(port["Value"], job, group, replacing=not keeps_running):
                    dims[f"network: reserved port collision {port['Label']}={port['Value']}"] = 1
        if dims:
            metric["NodesExhausted"] = 1
            metric["DimensionExhausted"] = dims
            return metric
        return None

    def _port_free(self, port, job=None, group=None, replacing=True):
        for alloc in self.allocs.values():
            if alloc["ClientStatus"] in TERMINAL or alloc["DesiredStatus"] != "run":
                continue
            held = any(p["Value"] == port for p in alloc["AllocatedResources"]["Shared"]["Ports"] or [])
            if (replacing and job is not None and alloc["JobID"] == job["ID"]
                    and alloc["TaskGroup"] == (group or {}).get("Name")):
                if held:
                    return True  # will be replaced (its own process may be listening there)
                continue
            if held:
                return False
        with contextlib.closing(socket.socket()) as sock:
            # as a program that binds it would (Go's listeners, Python's servers): the
            # TIME_WAIT leftovers of a stopped program's connections do not count, a listener does
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((self.address, port))
            except OSError:
                return False
        return True

    def _group_resources(self, group):
        cpu = sum((t.get("Resources") or {}).get("CPU") or 0 for t in group.get("Tasks") or [])
        mem = sum((t.get("Resources") or {}).get("MemoryMB") or 0 for t in group.get("Tasks") or [])
        return cpu, mem

    def _deployment_context(self, job):
        """
        ``(old, current)``: the job's latest deployment as the reconciler sees it
        (scheduler/reconciler/reconcile_cluster.go cancelUnneededServiceDeployments): one of
        another job version or create index is old (cancelled if still active), a successful
        one is old too (no longer current), any other (running, paused, failed) is current.
        """
        if job.get("CreateIndex") is None:
            return None, None
        deps = self._job_deployments(job["Namespace"], job["ID"])
        if not deps:
            return None, None
        latest = deps[0]
        if latest["JobCreateIndex"] != job["CreateIndex"] or latest["JobVersion"] != job.get("Version"):
            return latest, None
        if latest["Status"] == "successful":
            return latest, None
        return None, latest

    @staticmethod
    def _zero_counts():
        return {"Ignore": 0, "Place": 0, "Migrate": 0, "Stop": 0, "InPlaceUpdate": 0, "DestructiveUpdate": 0,
                "Canary": 0, "Preemptions": 0, "RescheduleNow": 0, "RescheduleLater": 0, "Disconnect": 0,
                "Reconnect": 0}

    @staticmethod
    def _alloc_index(alloc):
        match = re.search(r"\[(\d+)\]$", alloc.get("Name") or "")
        return int(match.group(1)) if match else 0

    def _schedule(self, job, existing, dry_run):
        """
        The reconciler for this one node (scheduler/reconciler/reconcile_cluster.go
        computeGroup): per group, what to stop, update in place, replace and place, with
        ``update.max_parallel`` (computeUnderProvisionedBy), canaries (``update.canary``:
        requiresCanaries/computeCanaries; while they are not promoted nothing else of the
        group is replaced, and the unpromoted canaries of an older or failed deployment are
        stopped: cancelUnneededCanaries), and placement failures (a canary keeps the old
        allocation running, so its static ports are taken). Returns ``{"desired", "failed",
        "actions", "old", "current", "groups" (the states of a deployment to create),
        "canaries" ({group: DesiredCanaries} for the current one), "complete"
        (isDeploymentComplete)}``. ``dry_run``: a plan, nothing changes either way.
        """
        desired, failed, actions = {}, {}, []
        live = self._live_allocs(job) if existing is not None else []
        old, current = self._deployment_context(job) if existing is not None else (None, None)
        dep_failed = current is not None and current["Status"] == "failed"
        dep_paused = current is not None and current["Status"] in ("paused", "pending", "initializing")
        used = [self._group_resources(self._alloc_group(a))
                for a in self.allocs.values() if a["ClientStatus"] not in TERMINAL
                and a["DesiredStatus"] == "run" and a["JobID"] != job["ID"]]
        groups = {g["Name"]: g for g in job.get("TaskGroups") or []}
        unwanted = set()
        for dep in (old, current if dep_failed else None):
            for dstate in ((dep or {}).get("TaskGroups") or {}).values():
                if not dstate["Promoted"]:
                    unwanted.update(dstate.get("PlacedCanaries") or [])
        placed_canaries = {c for d in ((current or {}).get("TaskGroups") or {}).values()
                           for c in d.get("PlacedCanaries") or []}
        new_groups, canary_updates, complete = {}, {}, True
        for name, group in groups.items():
            counts = self._zero_counts()
            desired[name] = counts
            upd = group.get("Update") or {}
            mine = sorted([a for a in live if a["TaskGroup"] == name], key=self._alloc_index)
            if job.get("Stop"):
                counts["Stop"] = len(mine)
                actions += [("stop", a, NOT_NEEDED) for a in mine]
                continue
            # (a failed canary too: the reconciler filters out server-terminal allocations only)
            for alloc in [a for a in self.allocs.values() if a["ID"] in unwanted and a["TaskGroup"] == name
                          and a["DesiredStatus"] == "run"]:
                counts["Stop"] += 1
                actions.append(("stop", alloc, NOT_NEEDED))
            mine = [a for a in mine if a["ID"] not in unwanted]
            dstate = ((current or {}).get("TaskGroups") or {}).get(name)
            canaries = [a for a in mine if a["ID"] in placed_canaries]
            canarying = bool(dstate and dstate["DesiredCanaries"] and not dstate["Promoted"])
            # computeStop: unpromoted canaries are not counted; once promoted, the allocations
            # that share a canary's name go first
            working = [a for a in mine if not (canarying and a in canaries)]
            remove = len(working) - group["Count"]
            stopped = []
            if remove > 0:
                names = {a["Name"] for a in canaries} if not canarying else set()
                first = [a for a in working if a not in canaries and a["Name"] in names]
                rest = sorted([a for a in working if a not in first], key=self._alloc_index, reverse=True)
                stopped = (first + rest)[:remove]
                for alloc in stopped:
                    counts["Stop"] += 1
                    actions.append(("stop", alloc, NOT_NEEDED))
            untainted = [a for a in mine if a not in stopped]
            # computeUpdates (scheduler/util.go genericAllocUpdateFn): the same job modify index
            # is ignored, otherwise destructive if tasksUpdated, else in place
            inplace, destructive = [], []
            for alloc in untainted:
                if alloc["Job"]["JobModifyIndex"] == job["JobModifyIndex"]:
                    counts["Ignore"] += 1
                elif js.task_group_update_kind(self._alloc_group(alloc), group) == "destructive":
                    destructive.append(alloc)
                else:
                    inplace.append(alloc)
                    counts["InPlaceUpdate"] += 1
                    actions.append(("inplace", alloc, None))
            if canarying:
                untainted = [a for a in untainted if a not in canaries]
            total = len(destructive) + len(inplace)
            promoted = bool(dstate and dstate["Promoted"])
            wanted = int(upd.get("Canary") or 0)
            requires_canaries = bool(wanted and destructive and len(canaries) < wanted and not promoted)
            canary_names = []
            if requires_canaries:
                canary_updates[name] = wanted
                canarying = True
                if not dep_paused and not dep_failed:
                    counts["Canary"] += wanted - len(canaries)
                    # AllocNameIndex.NextCanaries: the names of the allocations being replaced first
                    taken = {a["Name"] for a in canaries}
                    pool = [a["Name"] for a in sorted(destructive, key=self._alloc_index) if a["Name"] not in taken]
                    i = 0
                    while len(canary_names) < counts["Canary"]:
                        if pool:
                            canary_names.append(pool.pop(0))
                            continue
                        candidate = f"{job['ID']}.{name}[{i}]"
                        if candidate not in taken and candidate not in canary_names:
                            canary_names.append(candidate)
                        i += 1
            place = max(0, group["Count"] - len(untainted))
            if dstate is None:
                total += place
            ready = not dep_paused and not dep_failed and not canarying
            limit = self._update_limit(group, current, untainted, destructive, ready)
            if ready:
                counts["Place"] += place
                limit -= min(place, limit)
            n_destructive = min(len(destructive), limit) if ready else 0
            counts["DestructiveUpdate"] += n_destructive
            counts["Ignore"] += len(destructive) - n_destructive
            replaced = sorted(destructive, key=self._alloc_index)[:n_destructive]
            new_allocs = (place if ready else 0) + n_destructive + len(canary_names)
            if new_allocs:
                resources = used + [self._group_resources(group)] * new_allocs
                metric = self._placement_failure(job, group, resources, keeps_running=bool(canary_names))
                if metric is not None:
                    # the plan's annotations keep what the reconciler wanted (generic_sched.go
                    # sets them before placing); FailedTGAllocs says what could not be placed
                    failed[name] = metric
                    canary_names, replaced = [], []
                    place = 0 if ready else place
                else:
                    used += [self._group_resources(group)] * new_allocs
            actions += [("destructive", a, None) for a in replaced]
            actions += [("canary", name, n) for n in canary_names]
            if ready and name not in failed:
                actions += [("place", name, None)] * place
            # createDeployment: a group joins a new deployment when it has an update block and
            # something to do, unless it only re-runs the version it already ran
            had_running = any(a["JobVersion"] == job.get("Version") and a["Job"].get("CreateIndex") ==
                              job.get("CreateIndex") for a in self.allocs.values()
                              if a["JobID"] == job["ID"] and a["Namespace"] == job["Namespace"]
                              and a["TaskGroup"] == name)
            if current is None and upd.get("MaxParallel") and total > 0 and not (
                    had_running and not (destructive or inplace)):
                new_groups[name] = {"total": total, "canaries": wanted if requires_canaries else 0, "update": upd}
            # isDeploymentComplete
            pending = bool(destructive or inplace or place or requires_canaries)
            short = dstate is not None and (
                dstate["HealthyAllocs"] < max(dstate["DesiredTotal"], dstate["DesiredCanaries"])
                or (dstate["DesiredCanaries"] and not dstate["Promoted"]))
            complete = complete and not pending and not short
        for alloc in live:
            if alloc["TaskGroup"] not in groups:
                desired.setdefault(alloc["TaskGroup"], self._zero_counts())["Stop"] += 1
                actions.append(("stop", alloc, NOT_NEEDED))
        complete = complete and current is not None and current["Status"] == "running"
        return {"desired": desired, "failed": failed, "actions": actions, "old": old, "current": current,
                "groups": new_groups, "canaries": canary_updates, "complete": complete}

    @staticmethod
    def _update_limit(group, current, untainted, destructive, ready):
        """
        computeUnderProvisionedBy: how many allocations may be replaced now. No update block
        or nothing to replace: the count; no deployment yet: max_parallel; paused, failed or
        canarying: none; otherwise max_parallel less the deployment's allocations that are not
        healthy yet (none at all while one is unhealthy).
        """
        upd = group.get("Update") or {}
        if not upd.get("MaxParallel") or not destructive:
            return group["Count"]
        if current is None:
            return upd["MaxParallel"]
        if not ready:
            return 0
        limit = upd["MaxParallel"]
        for alloc in untainted:
            if alloc.get("DeploymentID") != current["ID"]:
                continue
            healthy = (alloc.get("DeploymentStatus") or {}).get("Healthy")
            if healthy is False:
                return 0
            if healthy is not True:
                limit -= 1
        return max(0, limit)

    def _alloc_group(self, alloc):
        return next((g for g in alloc["Job"].get("TaskGroups") or [] if g["Name"] == alloc["TaskGroup"]), {})

    def _process_eval(self, evaluation):
        key = (evaluation["Namespace"], evaluation["JobID"])
        job = self.jobs.get(key)
        now = _now_ns()
        index = self._bump("evals", "allocs", "deployment", "jobs")
        evaluation.update(Status="complete", ModifyIndex=index, ModifyTime=now, SnapshotIndex=index - 1)
        if job is None:  # purged: stop everything that is left
            for alloc in self.allocs.values():
                if alloc["JobID"] == evaluation["JobID"] and alloc["Namespace"] == evaluation["Namespace"]:
                    self._stop_alloc(alloc, NOT_NEEDED, index)
            for dep in self.deployments.values():
                if dep["JobID"] == evaluation["JobID"] and dep["Status"] in ACTIVE_DEPLOYMENT:
                    self._set_deployment(dep, "cancelled", "Cancelled because job is stopped", index)
            return
        plan = self._schedule(job, job, dry_run=False)
        evaluation["QueuedAllocations"] = {g: 0 for g in plan["desired"]}
        if job.get("Stop"):
            for dep in self.deployments.values():
                if (dep["JobID"] == job["ID"] and dep["Namespace"] == job["Namespace"]
                        and dep["Status"] in ACTIVE_DEPLOYMENT):
                    self._set_deployment(dep, "cancelled", "Cancelled because job is stopped", index)
        elif plan["old"] is not None and plan["old"]["Status"] in ACTIVE_DEPLOYMENT:
            self._set_deployment(plan["old"], "cancelled", "Cancelled due to newer version of job", index)
        deployment = plan["current"]
        if plan["groups"] and deployment is None and job["Type"] == "service" and not job.get("Stop"):
            deployment = self._new_deployment(job, plan["groups"], index)
        if deployment is not None:
            for group_name, wanted in plan["canaries"].items():
                if group_name in deployment["TaskGroups"]:
                    deployment["TaskGroups"][group_name]["DesiredCanaries"] = wanted
        for kind, target, extra in plan["actions"]:
            if kind == "stop":
                self._stop_alloc(target, extra, index)
            elif kind == "destructive":
                self._stop_alloc(target, "alloc is being updated due to job update", index)
                self._place(job, target["TaskGroup"], evaluation, deployment, index, name=target["Name"])
            elif kind == "inplace":
                target["Job"] = copy.deepcopy(job)
                target["JobVersion"] = job["Version"]
                target["ModifyIndex"] = target["AllocModifyIndex"] = index
                if deployment is not None and target["TaskGroup"] in deployment["TaskGroups"]:
                    target["DeploymentID"] = deployment["ID"]
                    target["DeploymentStatus"] = None
                    self.runtime[target["ID"]]["health_since"] = None
                    self.runtime[target["ID"]]["deadline"] = None
                    deployment["TaskGroups"][target["TaskGroup"]]["PlacedAllocs"] += 1
            elif kind == "canary":
                self._place(job, target, evaluation, deployment, index, name=extra, canary=True)
            elif kind == "place":
                self._place(job, target, evaluation, deployment, index)
        if deployment is not None:
            evaluation["DeploymentID"] = deployment["ID"]
        if plan["complete"]:
            self._set_deployment(plan["current"], "successful", "Deployment completed successfully", index)
            self._mark_stable(plan["current"])
        if plan["failed"]:
            evaluation["FailedTGAllocs"] = plan["failed"]
            blocked = self._new_eval(job, evaluation["TriggeredBy"], status="blocked")
            blocked.update(PreviousEval=evaluation["ID"], CreateIndex=index, ModifyIndex=index,
                           StatusDescription="created due to placement conflicts", _due=None)
            evaluation["BlockedEval"] = blocked["ID"]
            evaluation["QueuedAllocations"] = {g: (job_group["Count"] if g in plan["failed"] else 0)
                                               for g, job_group in ((gg["Name"], gg) for gg in job["TaskGroups"])}

    def _new_deployment(self, job, groups, index):
        """
        structs.NewDeployment with a DeploymentState per group that has something to do
        (reconcile_cluster.go initializeDeploymentState/createDeployment); its description
        says when canaries wait for a promotion (setDeploymentStatusAndUpdates).
        """
        now = _now_ns()
        states = {}
        for name, spec in groups.items():
            upd = spec["update"]
            progress = upd.get("ProgressDeadline") or 0
            states[name] = {
                "AutoRevert": bool(upd.get("AutoRevert")), "AutoPromote": bool(upd.get("AutoPromote")),
                "ProgressDeadline": progress, "Promoted": False,
                "PlacedCanaries": None, "DesiredCanaries": spec["canaries"],
                "DesiredTotal": spec["total"], "PlacedAllocs": 0, "HealthyAllocs": 0, "UnhealthyAllocs": 0,
                "RequireProgressBy": _rfc3339(now + int(progress)),
                "_deadline": time.monotonic() + self.scaled(progress or 10 * js.MIN),
                "_progress_ns": progress,
            }
        dep = {"ID": str(uuid.uuid4()), "Namespace": job["Namespace"], "JobID": job["ID"],
               "JobVersion": job["Version"], "JobModifyIndex": job["JobModifyIndex"],
               "JobSpecModifyIndex": job["JobModifyIndex"], "JobCreateIndex": job["CreateIndex"],
               "IsMultiregion": False, "TaskGroups": states, "Status": "running",
               "StatusDescription": "Deployment is running", "EvalPriority": job.get("Priority", 50),
               "CreateIndex": index, "ModifyIndex": index, "CreateTime": now, "ModifyTime": now}
        if self._requires_promotion(dep):
            dep["StatusDescription"] = ("Deployment is running pending automatic promotion"
                                        if self._has_auto_promote(dep) else
                                        "Deployment is running but requires manual promotion")
        self.deployments[dep["ID"]] = dep
        return dep

    @staticmethod
    def _requires_promotion(dep):
        """structs.Deployment.RequiresPromotion."""
        return dep["Status"] == "running" and any(
            tg["DesiredCanaries"] > 0 and not tg["Promoted"] for tg in dep["TaskGroups"].values())

    @staticmethod
    def _has_auto_promote(dep):
        """structs.Deployment.HasAutoPromote: every group with canaries has auto_promote."""
        return dep["Status"] == "running" and bool(dep["TaskGroups"]) and all(
            tg["AutoPromote"] for tg in dep["TaskGroups"].values() if tg["DesiredCanaries"] > 0)

    def _set_deployment(self, dep, status, description, index):
        dep.update(Status=status, StatusDescription=description, ModifyIndex=index, ModifyTime=_now_ns())

    def _place(self, job, group_name, evaluation, deployment, index, name=None, canary=False):
        group = next(g for g in job["TaskGroups"] if g["Name"] == group_name)
        used_names = {a["Name"] for a in self._live_allocs(job)}
        if name is None:
            i = 0
            while f"{job['ID']}.{group_name}[{i}]" in used_names:
                i += 1
            name = f"{job['ID']}.{group_name}[{i}]"
        ports, networks = [], []
        for net in group.get("Networks") or []:
            dyn, res = [], []
            for port in net.get("ReservedPorts") or []:
                res.append({"Label": port["Label"], "Value": port["Value"], "To": port.get("To") or 0,
                            "HostNetwork": port.get("HostNetwork") or "default"})
            for port in net.get("DynamicPorts") or []:
                dyn.append({"Label": port["Label"], "Value": self._free_port(), "To": port.get("To") or 0,
                            "HostNetwork": port.get("HostNetwork") or "default"})
            for port in res + dyn:
                ports.append({"Label": port["Label"], "Value": port["Value"], "To": port["To"] or port["Value"],
                              "HostIP": self.address})
            networks.append({"Mode": net.get("Mode") or "host", "IP": self.address, "ReservedPorts": res or None,
                             "DynamicPorts": dyn or None, "MBits": 0, "DNS": net.get("DNS")})
        task_ports = {}
        for task in group.get("Tasks") or []:
            for net in (task.get("Resources") or {}).get("Networks") or []:
                for port in (net.get("ReservedPorts") or []) + (net.get("DynamicPorts") or []):
                    value = port.get("Value") or self._free_port()
                    task_ports.setdefault(task["Name"], []).append(
                        {"Label": port["Label"], "Value": value, "To": value, "HostIP": self.address})
        now = _now_ns()
        alloc = {
            "ID": str(uuid.uuid4()), "Namespace": job["Namespace"], "EvalID": evaluation["ID"], "Name": name,
            "NodeID": self.node["ID"], "NodeName": self.node["Name"], "JobID": job["ID"],
            "Job": copy.deepcopy(job), "JobVersion": job["Version"], "TaskGroup": group_name,
            "DesiredStatus": "run", "DesiredDescription": "", "DesiredTransition": {},
            "ClientStatus": "pending", "ClientDescription": "No tasks have started", "TaskStates": None,
            "DeploymentID": deployment["ID"] if deployment else "",
            # a canary is marked at placement (scheduler/generic_sched.go computePlacements)
            "DeploymentStatus": ({"Healthy": None, "Timestamp": _rfc3339(), "Canary": True, "ModifyIndex": index}
                                 if canary and deployment else None),
            "FollowupEvalID": "", "PreviousAllocation": "", "NextAllocation": "", "RescheduleTracker": None,
            "AllocatedResources": {"Tasks": {t["Name"]: {"Cpu": {"CpuShares": t["Resources"]["CPU"]},
                                                         "Memory": {"MemoryMB": t["Resources"]["MemoryMB"]},
                                                         "Networks": [{"IP": self.address, "DynamicPorts":
                                                                       task_ports.get(t["Name"])}]
                                                         if task_ports.get(t["Name"]) else None}
                                             for t in group["Tasks"]},
                                   "Shared": {"Networks": networks or None, "Ports": ports or None,
                                              "DiskMB": group["EphemeralDisk"]["SizeMB"]}},
            "CreateIndex": index, "ModifyIndex": index, "AllocModifyIndex": index,
            "CreateTime": now, "ModifyTime": now,
        }
        self.allocs[alloc["ID"]] = alloc
        self.runtime[alloc["ID"]] = {"started": time.monotonic(), "tasks": {}, "health_since": None,
                                     "deadline": None, "checks_ok": None, "task_ports": task_ports}
        if deployment is not None and group_name in deployment["TaskGroups"]:
            dstate = deployment["TaskGroups"][group_name]
            dstate["PlacedAllocs"] += 1
            if canary:
                dstate["PlacedCanaries"] = list(dstate["PlacedCanaries"] or []) + [alloc["ID"]]
        elif deployment is not None:
            alloc["DeploymentID"] = ""
        return alloc

    def _free_port(self):
        """A dynamic port as a Nomad client gives one: from its min_dynamic_port..max_dynamic_port
        (20000-32000 by default, client config), which also keeps it out of the kernel's
        ephemeral range, where an outgoing connection could take it before the task binds it."""
        with contextlib.closing(socket.socket()) as sock:
            return procs.bind_free(sock, self.address, low=20000, high=32001)

    def _stop_alloc(self, alloc, reason, index):
        if alloc["DesiredStatus"] == "stop":
            return
        alloc.update(DesiredStatus="stop", DesiredDescription=reason, ModifyIndex=index,
                     AllocModifyIndex=index, ModifyTime=_now_ns())

    # -- simulated client ------------------------------------------------------------------------
    def _client_loop(self):
        while not self._stop.is_set():
            time.sleep(0.02)
            try:
                with self.cond:
                    effects = self._tick()
                for effect in effects:
                    try:
                        effect()
                    except Exception as exc:  # pylint: disable=broad-except
                        self.consul_errors.append(f"{type(exc).__name__}: {exc}")
                self._prepare_tasks()
                self._probe_health()
            except Exception as exc:  # pylint: disable=broad-except  # keep the client alive
                self.consul_errors.append(f"client loop: {type(exc).__name__}: {exc}")

    def _event(self, etype, message="", **extra):
        event = {"Type": etype, "Time": _now_ns(), "DisplayMessage": message, "Message": "",
                 "Details": {}, "FailsTask": False, "RestartReason": "", "SetupError": "",
                 "DriverError": "", "DriverMessage": "", "ExitCode": 0, "Signal": 0,
                 "KillReason": "", "KillTimeout": 0, "KillError": "", "StartDelay": 0,
                 "DownloadError": "", "ValidationError": "", "DiskLimit": 0, "FailedSibling": "",
                 "VaultError": "", "TaskSignalReason": "", "TaskSignal": "", "GenericSource": ""}
        event.update(extra)
        return event

    def _task_state(self, alloc, task_name):
        states = alloc["TaskStates"] = alloc["TaskStates"] or {}
        if task_name not in states:
            states[task_name] = {"State": "pending", "Failed": False, "Restarts": 0, "LastRestart": None,
                                 "StartedAt": None, "FinishedAt": None, "Events": [], "TaskHandle": None}
        return states[task_name]

    def _driver_error(self, alloc, task):
        config = task.get("Config") or {}
        image = str(config.get("image", ""))
        if task.get("Driver") == "docker":
            for pattern in self.refuse_images:
                if fnmatch.fnmatch(image, pattern):
                    return (f'Failed to pull `{image}`: Error response from daemon: manifest for {image} not '
                            f'found: manifest unknown: manifest unknown')
            group = self._alloc_group(alloc)
            group_ports = any((n.get("DynamicPorts") or n.get("ReservedPorts")) for n in group.get("Networks") or [])
            if config.get("port_map") and group_ports:
                return "'port_map' cannot map group network ports, use 'ports' instead"
            for label in config.get("ports") or []:
                known = {p["Label"] for n in group.get("Networks") or []
                         for p in (n.get("DynamicPorts") or []) + (n.get("ReservedPorts") or [])}
                if label not in known:
                    return f'Port "{label}" not found, check network block'
        return None

    def _tick(self):
        """Advance every allocation and deployment one step; return side effects to run unlocked."""
        effects = []
        now = time.monotonic()
        changed = False
        for evaluation in list(self.evals.values()):
            if evaluation["Status"] == "pending" and evaluation.get("_due") and evaluation["_due"] <= now:
                self._process_eval(evaluation)
                changed = True
        for alloc in list(self.allocs.values()):
            rt = self.runtime.get(alloc["ID"])
            if rt is None:
                continue
            if alloc["DesiredStatus"] != "run" and alloc["ClientStatus"] not in TERMINAL:
                changed |= self._kill(alloc, effects)
                continue
            if alloc["ClientStatus"] in TERMINAL:
                continue
            changed |= self._advance(alloc, rt, now, effects)
        changed |= self._watch_deployments(now)
        if changed:
            self._bump("allocs", "deployment", "evals", "jobs")
        return effects

    def _main_tasks(self, group):
        return [t for t in group.get("Tasks") or [] if not t.get("Lifecycle")
                or (t["Lifecycle"].get("Hook") == "prestart" and t["Lifecycle"].get("Sidecar"))]

    def _advance(self, alloc, rt, now, effects):
        group = self._alloc_group(alloc)
        tasks = group.get("Tasks") or []
        changed = False
        step = self.scaled(js.SEC, floor=0.02)
        for task in tasks:
            st = self._task_state(alloc, task["Name"])
            trt = rt["tasks"].setdefault(task["Name"], {"next": rt["started"], "phase": "received", "restarts": 0})
            if trt["next"] > now or st["State"] == "dead":
                continue
            hook = (task.get("Lifecycle") or {}).get("Hook")
            sidecar = (task.get("Lifecycle") or {}).get("Sidecar")
            if trt["phase"] == "received":
                st["Events"].append(self._event("Received", "Task received by client"))
                st["Events"].append(self._event("Task Setup", "Building Task Directory",
                                                Message="Building Task Directory"))
                trt["phase"] = "waiting" if hook != "prestart" else "start"
                trt["next"] = now + step
                changed = True
                continue
            if trt["phase"] == "waiting":
                prestart = [t for t in tasks if (t.get("Lifecycle") or {}).get("Hook") == "prestart"]
                ready = all(
                    (
                        alloc["TaskStates"].get(t["Name"], {}).get("State") == "dead"
                        and not alloc["TaskStates"][t["Name"]]["Failed"]
                    )
                    or (
                        t["Lifecycle"].get("Sidecar")
                        and alloc["TaskStates"].get(t["Name"], {}).get("State") == "running"
                    )
                    for t in prestart
                )
                if hook == "poststart":
                    ready = ready and all(alloc["TaskStates"].get(t["Name"], {}).get("State") == "running"
                                          for t in self._main_tasks(group))
                if hook == "poststop":
                    # client/allocrunner/task_hook_coordinator.go: poststop tasks start once
                    # every main task has finished (successfully or not)
                    ready = all(alloc["TaskStates"].get(t["Name"], {}).get("State") == "dead"
                                for t in self._main_tasks(group))
                if not ready:
                    continue
                trt["phase"] = "start"
            if trt["phase"] == "start" and self._needs_prepare(task) and "prepared" not in trt:
                trt["phase"] = "prepare"  # templates and runner context, outside the lock
                continue
            if trt["phase"] == "prepare":
                continue
            if trt["phase"] == "start":
                error = trt.pop("prepare_error", None) or self._driver_error(alloc, task)
                runner = ntasks.runner_for(task, self.task_runners) if not error else None
                if runner is not None:
                    try:
                        ntasks.check(runner["run"], trt["prepared"]["ctx"])
                    except ntasks.RunnerError as exc:
                        error = str(exc)
                if task.get("Driver") == "docker":
                    st["Events"].append(self._event("Driver", "Downloading image", DriverMessage="Downloading image"))
                if error:
                    st["Events"].append(self._event("Driver Failure", error, DriverError=error))
                    if not self._restart_or_fail(alloc, group, task, st, trt, now, effects):
                        return True
                    changed = True
                    continue
                if runner is not None:
                    effects.append(self._spawn_effect(alloc["ID"], task["Name"], runner, trt["prepared"]["ctx"]))
                st["Events"].append(self._event("Started", "Task started by client"))
                st.update(State="running", StartedAt=st["StartedAt"] or _rfc3339())
                trt["phase"] = "running"
                trt["next"] = now + step
                changed = True
                continue
            handle = self.handles.get(alloc["ID"], {}).get(task["Name"])
            # a task that is meant to end: any task of a batch job, a lifecycle hook that is no sidecar
            finite = alloc["Job"].get("Type") in ("batch", "sysbatch") or (hook is not None and not sidecar)
            if trt["phase"] == "running" and handle is not None and handle.poll() is not None:
                code = handle.poll()
                message = handle.exit_message()
                if finite:
                    self.handles.get(alloc["ID"], {}).pop(task["Name"], None)
                    st["Events"].append(self._event("Terminated", f"Exit Code: {code}", ExitCode=code))
                    if code == 0:
                        st.update(State="dead", FinishedAt=_rfc3339())
                        trt["phase"] = "done"
                        changed = True
                        continue
                    if not self._restart_or_fail(alloc, group, task, st, trt, now, effects, message):
                        return True
                    changed = True
                    continue
                st["Events"].append(self._event("Terminated", message, ExitCode=code or 0))
                st["Events"].append(self._event("Not Restarting", "the lab does not restart a stand-in process",
                                                FailsTask=True))
                st.update(State="dead", Failed=True, FinishedAt=_rfc3339())
                self._fail_alloc(alloc, task["Name"], effects)
                return True
            if (trt["phase"] == "running" and finite and handle is None
                    and ntasks.runner_for(task, self.task_runners) is None):
                # nothing stands in for it: it ends at once
                st["Events"].append(self._event("Terminated", "Exit Code: 0", ExitCode=0))
                st.update(State="dead", FinishedAt=_rfc3339())
                trt["phase"] = "done"
                changed = True
        main = self._main_tasks(group)
        if alloc["ClientStatus"] == "pending" and main and all(
                alloc["TaskStates"].get(t["Name"], {}).get("State") in ("running", "dead") for t in main) and any(
                alloc["TaskStates"].get(t["Name"], {}).get("State") == "running" for t in main):
            alloc.update(ClientStatus="running", ClientDescription="Tasks are running", ModifyTime=_now_ns())
            rt["running_since"] = now
            effects.append(self._start_services(alloc))
            changed = True
        if tasks and all((alloc["TaskStates"] or {}).get(t["Name"], {}).get("State") == "dead" for t in tasks):
            # client/allocrunner/alloc_runner.go getClientStatus: every task dead, none failed
            alloc.update(ClientStatus="complete", ClientDescription="All tasks have completed",
                         ModifyTime=_now_ns())
            effects.append(self._stop_services(alloc))
            return True
        if alloc["DeploymentID"] and (alloc["DeploymentStatus"] or {}).get("Healthy") is None:
            changed |= self._track_health(alloc, rt, group, now)
        return changed

    def _track_health(self, alloc, rt, group, now):
        upd = group.get("Update") or {}
        if rt.get("deadline") is None:
            rt["deadline"] = now + self.scaled(upd.get("HealthyDeadline") or 5 * js.MIN)
        min_healthy = self.scaled(upd.get("MinHealthyTime") or 10 * js.SEC)
        mode = upd.get("HealthCheck") or "checks"
        if mode == "manual":
            return False
        if alloc["ClientStatus"] == "running":
            ok = True if mode == "task_states" else rt.get("checks_ok")
            if ok:
                rt["health_since"] = rt.get("health_since") or now
                if now - rt["health_since"] >= min_healthy:
                    self._set_health(alloc, True)
                    return True
            else:
                rt["health_since"] = None
        if now > rt["deadline"]:
            what = "Task not running for min_healthy_time of %s by healthy_deadline of %s" if mode == "task_states" \
                or alloc["ClientStatus"] != "running" else "Services not healthy by deadline of %s"
            args = (js.format_duration(upd.get("MinHealthyTime")), js.format_duration(upd.get("HealthyDeadline"))) \
                if what.count("%s") == 2 else (js.format_duration(upd.get("HealthyDeadline")),)
            message = what % args
            for task in self._main_tasks(group):
                self._task_state(alloc, task["Name"])["Events"].append(self._event("Alloc Unhealthy", message))
            self._set_health(alloc, False)
            return True
        return False

    def _set_health(self, alloc, healthy):
        """The client's health report (AllocDeploymentStatus); a canary stays marked as one."""
        canary = bool((alloc["DeploymentStatus"] or {}).get("Canary"))
        alloc["DeploymentStatus"] = {"Healthy": healthy, "Timestamp": _rfc3339(), "Canary": canary,
                                     "ModifyIndex": self.index}

    def _restart_or_fail(self, alloc, group, task, st, trt, now, effects, message=None):
        """
        The restart policy after a failed start or a non-zero exit (client/allocrunner/
        taskrunner/restarts): restart after ``delay`` while attempts remain (or in mode
        ``delay``), else the task fails and with it the allocation. False when it failed.
        """
        trt.pop("prepared", None)  # a restart renders its templates again
        policy = task.get("RestartPolicy") or group.get("RestartPolicy") or {}
        if trt["restarts"] < (policy.get("Attempts") or 0) or policy.get("Mode") == "delay":
            trt["restarts"] += 1
            st["Restarts"] = trt["restarts"]
            delay = policy.get("Delay") or 15 * js.SEC
            st["Events"].append(self._event(
                "Restarting", f"Task restarting in {js.format_duration(delay)}",
                RestartReason="Restart within policy", StartDelay=delay))
            st["LastRestart"] = _rfc3339()
            st["State"] = "pending"
            trt["phase"] = "start"
            trt["next"] = now + self.scaled(delay)
            return True
        msg = (f"Exceeded allowed attempts {policy.get('Attempts')} in interval "
               f"{js.format_duration(policy.get('Interval'))} and mode is \"{policy.get('Mode')}\"")
        if message:
            st["Events"].append(self._event("Driver", message, DriverMessage=message))
        st["Events"].append(self._event("Not Restarting", msg, FailsTask=True, RestartReason=msg))
        st.update(State="dead", Failed=True, FinishedAt=_rfc3339())
        self._fail_alloc(alloc, task["Name"], effects)
        return False

    def _fail_alloc(self, alloc, failed_task, effects):
        for name, st in (alloc["TaskStates"] or {}).items():
            if name != failed_task and st["State"] != "dead":
                st["Events"].append(self._event("Sibling Task Failed", f"Task's sibling {failed_task!r} failed",
                                                FailedSibling=failed_task))
                st["Events"].append(self._event("Killing", "Sent interrupt. Waiting 5s before force killing"))
                st["Events"].append(self._event("Killed", "Task successfully killed"))
                st.update(State="dead", FinishedAt=_rfc3339())
        alloc.update(ClientStatus="failed", ClientDescription="Failed tasks", ModifyTime=_now_ns())
        if alloc["DeploymentID"] and (alloc["DeploymentStatus"] or {}).get("Healthy") is None:
            for st in alloc["TaskStates"].values():
                if st["State"] == "dead" and st["Failed"]:
                    st["Events"].append(self._event("Alloc Unhealthy", "Unhealthy because of failed task"))
            self._set_health(alloc, False)
        effects.append(self._stop_services(alloc))

    def _kill(self, alloc, effects):
        """
        Stop an allocation the servers want stopped. As a Nomad client, the allocation is
        terminal (``complete``) only once its tasks have exited: their processes (runners) are
        stopped and their services deregistered first, so that a port it held is free when the
        allocation reads as stopped. True when the stop started now.
        """
        rt = self.runtime.setdefault(alloc["ID"], {})
        if rt.get("killing"):
            return False
        rt["killing"] = True
        for st in (alloc["TaskStates"] or {}).values():
            if st["State"] != "dead":
                st["Events"].append(self._event("Killing", "Sent interrupt. Waiting 5s before force killing"))
        stop = self._stop_services(alloc)
        alloc_id = alloc["ID"]

        def effect():
            stop()
            with self.cond:
                live = self.allocs.get(alloc_id)
                if live is None:
                    return
                for st in (live["TaskStates"] or {}).values():
                    if st["State"] != "dead":
                        st["Events"].append(self._event("Killed", "Task successfully killed"))
                        st.update(State="dead", FinishedAt=_rfc3339())
                live.update(ClientStatus="complete", ClientDescription="All tasks have completed",
                            ModifyTime=_now_ns())
                self._bump("allocs", "deployment", "evals", "jobs")
        effects.append(effect)
        return True

    def _watch_deployments(self, now):
        """
        The deployment watcher (nomad/deploymentwatcher/deployment_watcher.go): count the
        allocations' health reports, fail the deployment on an unhealthy one or at the
        progress deadline (shouldFail: while canaries await promotion, enough healthy
        canaries is progress enough), promote when every group with canaries has
        auto_promote and all its canaries are healthy (autoPromoteDeployment), and create an
        evaluation when an allocation became healthy, so the scheduler continues the rollout
        and marks the deployment successful once it is complete.
        """
        changed = False
        for dep in list(self.deployments.values()):
            if dep["Status"] != "running":
                continue
            allocs = [a for a in self.allocs.values() if a.get("DeploymentID") == dep["ID"]]
            unhealthy = 0
            progressed = False
            for name, tg in dep["TaskGroups"].items():
                mine = [a for a in allocs if a["TaskGroup"] == name]
                h = sum(1 for a in mine if (a["DeploymentStatus"] or {}).get("Healthy") is True)
                u = sum(1 for a in mine if (a["DeploymentStatus"] or {}).get("Healthy") is False)
                if (h, u) != (tg["HealthyAllocs"], tg["UnhealthyAllocs"]):
                    if h > tg["HealthyAllocs"]:
                        tg["_deadline"] = now + self.scaled(tg["_progress_ns"] or 10 * js.MIN)
                        tg["RequireProgressBy"] = _rfc3339(_now_ns() + int(tg["_progress_ns"]))
                        progressed = True
                    tg["HealthyAllocs"], tg["UnhealthyAllocs"] = h, u
                    changed = True
                unhealthy += u
            if unhealthy:
                self._fail_deployment(dep, "Failed due to unhealthy allocations")
                changed = True
                continue
            if self._auto_promote(dep, allocs):
                changed = True
                continue  # the promotion made its own evaluation
            if progressed:
                self._watcher_eval(dep)
                continue
            if any(now > tg["_deadline"] and not self._group_done(tg, allocs, name)
                   and tg["HealthyAllocs"] < (tg["DesiredCanaries"] if tg["DesiredCanaries"] and not tg["Promoted"]
                                              else tg["DesiredTotal"])
                   for name, tg in dep["TaskGroups"].items()):
                self._fail_deployment(dep, "Failed due to progress deadline")
                changed = True
        return changed

    @staticmethod
    def _group_done(tg, allocs, name):
        """deploymentWatcher.doneGroups: promoted (or no canaries) and enough healthy running allocations."""
        if tg["DesiredCanaries"] and not tg["Promoted"]:
            return False
        healthy = sum(1 for a in allocs if a["TaskGroup"] == name and a["ClientStatus"] not in TERMINAL
                      and a["DesiredStatus"] == "run" and (a["DeploymentStatus"] or {}).get("Healthy") is True)
        return healthy >= tg["DesiredTotal"]

    def _watcher_eval(self, dep):
        """deploymentWatcher.getEval: an evaluation of the job, triggered by the deployment watcher."""
        job = self.jobs.get((dep["Namespace"], dep["JobID"]))
        if job is None:
            return None
        evaluation = self._new_eval(job, "deployment-watcher")
        evaluation["DeploymentID"] = dep["ID"]
        evaluation["CreateIndex"] = evaluation["ModifyIndex"] = self.index + 1
        return evaluation

    def _auto_promote(self, dep, allocs):
        """
        deploymentWatcher.autoPromoteDeployment: when every group with canaries has
        auto_promote, all its canaries placed and healthy, promote them all.
        """
        if not self._requires_promotion(dep) or not any(tg["PlacedCanaries"] for tg in dep["TaskGroups"].values()):
            return False
        health = {a["ID"]: (a["DeploymentStatus"] or {}).get("Healthy") for a in allocs}
        for tg in dep["TaskGroups"].values():
            if tg["DesiredCanaries"] < 1:
                continue
            placed = tg["PlacedCanaries"] or []
            if not tg["AutoPromote"] or len(placed) < tg["DesiredCanaries"]:
                return False
            if sum(1 for c in placed if health.get(c) is True) != tg["DesiredCanaries"]:
                return False
        self._promote(dep, promote_all=True, groups=())
        return True

    def _promote(self, dep, promote_all, groups):
        """
        nomad/state/state_store.go UpdateDeploymentPromotion: every promoted group needs
        DesiredCanaries healthy canaries that still run (else ``Task group %q has %d/%d
        healthy allocations``); then the groups are Promoted, their progress deadline starts
        again, the canaries lose their canary mark, the description drops "requires
        promotion", and an evaluation lets the scheduler replace the old allocations.
        """
        wanted = set(groups or ())
        chosen = [g for g in dep["TaskGroups"] if promote_all or g in wanted]
        canaries = {c for tg in dep["TaskGroups"].values() for c in tg["PlacedCanaries"] or []}
        healthy = {}
        promotable = []
        for alloc in self.allocs.values():
            if alloc["ID"] not in canaries or alloc["TaskGroup"] not in chosen:
                continue
            if alloc["ClientStatus"] in TERMINAL or alloc["DesiredStatus"] != "run":
                continue
            if (alloc["DeploymentStatus"] or {}).get("Healthy") is not True:
                continue
            healthy[alloc["TaskGroup"]] = healthy.get(alloc["TaskGroup"], 0) + 1
            promotable.append(alloc)
        errors = [f'Task group "{g}" has {healthy.get(g, 0)}/{tg["DesiredCanaries"]} healthy allocations'
                  for g, tg in dep["TaskGroups"].items()
                  if g in chosen and tg["DesiredCanaries"] and healthy.get(g, 0) < tg["DesiredCanaries"]]
        if errors:
            raise APIError(500, js.multierror(errors))
        index = self._bump("deployment", "allocs", "evals")
        now = time.monotonic()
        for name in chosen:
            tg = dep["TaskGroups"][name]
            if tg["ProgressDeadline"] > 0:
                tg["_deadline"] = now + self.scaled(tg["_progress_ns"])
                tg["RequireProgressBy"] = _rfc3339(_now_ns() + int(tg["ProgressDeadline"]))
            tg["Promoted"] = True
        if not self._requires_promotion(dep) and dep["Status"] == "running":
            dep["StatusDescription"] = "Deployment is running"
        dep.update(ModifyIndex=index, ModifyTime=_now_ns())
        for alloc in promotable:
            alloc["DeploymentStatus"] = dict(alloc["DeploymentStatus"], Canary=False, ModifyIndex=index)
            alloc["ModifyIndex"] = alloc["AllocModifyIndex"] = index
        evaluation = self._watcher_eval(dep)
        evaluation["CreateIndex"] = evaluation["ModifyIndex"] = index
        return {"EvalID": evaluation["ID"], "EvalCreateIndex": index, "DeploymentModifyIndex": index,
                "RevertedJobVersion": None, "Index": index}

    def on_deployment_promote(self, request, dep_id):
        """
        PUT/POST /v1/deployment/promote/:id (command/agent/deployment_endpoint.go
        deploymentPromote: the body's DeploymentID, 400s), then nomad/deployment_endpoint.go
        Deployment.Promote: the deployment ("deployment not found"), submit-job or
        promote-deployment in its namespace, an active one ("can't promote terminal
        deployment"), then the promotion itself (:meth:`_promote`).
        """
        def handle(req):
            body = self._body(req)
            given = _ci(body, "DeploymentID")
            if not given:
                raise APIError(400, "DeploymentID must be specified")
            if given != dep_id:
                raise APIError(400, "Deployment ID does not match")
            token = self._auth(req)
            dep = self.deployments.get(dep_id)
            if dep is None:
                raise APIError(500, "deployment not found")
            self._require(token.allow_ns(dep["Namespace"], "submit-job", "promote-deployment"))
            if dep["Status"] not in ACTIVE_DEPLOYMENT:
                raise APIError(500, "can't promote terminal deployment")
            reply = self._promote(dep, bool(_ci(body, "All")), _ci(body, "Groups") or ())
            return self._write_resp(reply, reply["Index"])
        return self._wrap(handle, request)

    def _mark_stable(self, dep):
        key = (dep["Namespace"], dep["JobID"])
        for version in self.versions.get(key, []):
            if version["Version"] == dep["JobVersion"]:
                version["Stable"] = True
        job = self.jobs.get(key)
        if job is not None and job["Version"] == dep["JobVersion"]:
            job["Stable"] = True

    def _fail_deployment(self, dep, description):
        """
        The watcher fails the deployment: with auto_revert it registers the latest stable
        version (unless that has the failed version's spec), and its evaluation stops the
        failed deployment's unpromoted canaries (cancelUnneededCanaries); allocations of the
        failed deployment that still run keep running until the rollback replaces them.
        """
        key = (dep["Namespace"], dep["JobID"])
        job = self.jobs.get(key)
        rollback = None
        if any(tg["AutoRevert"] for tg in dep["TaskGroups"].values()) and job is not None:
            stable = next((v for v in self.versions.get(key, []) if v["Stable"]), None)
            if stable is None:
                description += " - no stable job version to auto revert to"
            elif not js.spec_changed(job, stable):
                description += (f" - not rolling back to stable job version {stable['Version']} as current job "
                                "has same specification")
            else:
                description += f" - rolling back to job version {stable['Version']}"
                rollback = stable
        dep.update(Status="failed", StatusDescription=description, ModifyTime=_now_ns())
        if rollback is not None:
            try:
                self._register(dep["Namespace"], copy.deepcopy(rollback), triggered_by="deployment-watcher",
                               admit=False)
                return
            except APIError as exc:
                self.consul_errors.append(f"auto-revert of {dep['JobID']}: {exc.text}")
        self._watcher_eval(dep)

    # -- stand-ins and Consul -----------------------------------------------------------------------
    def _service_ports(self, alloc):
        """[(service, task_name, port_value)] for the alloc's services with a port."""
        group = self._alloc_group(alloc)
        shared = {p["Label"]: p["Value"] for p in alloc["AllocatedResources"]["Shared"]["Ports"] or []}
        rt = self.runtime.get(alloc["ID"], {})
        out = []
        for svc in group.get("Services") or []:
            task = svc.get("TaskName") or next(
                (t["Name"] for t in self._main_tasks(group) if svc.get("PortLabel") in
                 ((t.get("Config") or {}).get("ports") or [])), (self._main_tasks(group) or [{}])[0].get("Name"))
            out.append((svc, task, "group", shared.get(svc.get("PortLabel"))))
        for task in group.get("Tasks") or []:
            tports = {p["Label"]: p["Value"] for p in rt.get("task_ports", {}).get(task["Name"], [])}
            for svc in task.get("Services") or []:
                label = svc.get("PortLabel")
                out.append((svc, task["Name"], "task", tports.get(label, shared.get(label))))
        return out

    def _start_services(self, alloc):
        alloc_id = alloc["ID"]
        entries = []
        for svc, task, level, port in self._service_ports(alloc):
            if not port:
                continue
            checks = []
            health_paths = set()
            for idx, check in enumerate(svc.get("Checks") or []):
                cport = port
                cname = check.get("Name") or f'service: "{svc["Name"]}" check'
                body = {"CheckID": f"_nomad-check-{alloc_id[:8]}-{svc['Name']}-{idx}", "Name": cname,
                        "Interval": js.format_duration(check.get("Interval")),
                        "Timeout": js.format_duration(check.get("Timeout"))}
                if check.get("Type") == "http":
                    body["HTTP"] = f"{check.get('Protocol') or 'http'}://{self.address}:{cport}{check.get('Path')}"
                    if check.get("Method"):
                        body["Method"] = check["Method"]
                    health_paths.add(check.get("Path"))
                elif check.get("Type") == "tcp":
                    body["TCP"] = f"{self.address}:{cport}"
                checks.append(body)
            service_id = (
                f"_nomad-task-{alloc_id}-{task}-{svc['Name']}-{svc.get('PortLabel')}"
                if level == "task"
                else f"_nomad-task-{alloc_id}-group-{alloc['TaskGroup']}-{svc['Name']}-{svc.get('PortLabel')}"
            )
            meta = {"external-source": "nomad"}
            meta.update(svc.get("Meta") or {})
            registration = {"ID": service_id, "Name": svc["Name"], "Tags": list(svc.get("Tags") or []),
                            "Address": self.address, "Port": port, "Meta": meta, "Checks": checks or None}
            describe = (f"hecate nomad simulator: task {task} (service {svc['Name']}, group {alloc['TaskGroup']}, "
                        f"job {alloc['JobID']} v{alloc['JobVersion']}, alloc {alloc_id[:8]})")
            served = self._served_by_runner(alloc, task)
            entries.append((registration, None if served else port, describe, health_paths,
                            svc["Name"] in self.unhealthy_services))

        def effect():
            servers = []
            for registration, port, describe, health_paths, unhealthy in entries:
                if self.stand_ins_enabled and port is not None:
                    try:
                        servers.append(StandIn(self.address, port, describe, health_paths, unhealthy))
                    except OSError as exc:
                        self.consul_errors.append(f"stand-in on port {port}: {exc}")
                if self.consul_url:
                    self._consul("PUT", "/v1/agent/service/register?replace-existing-checks=true",
                                 {k: v for k, v in registration.items() if v is not None})
                    self.consul_registered[registration["ID"]] = registration
            with self.cond:
                self.stand_ins.setdefault(alloc_id, []).extend(servers)
                self.runtime.setdefault(alloc_id, {})["registrations"] = [e[0] for e in entries]
        return effect

    def _stop_services(self, alloc):
        alloc_id = alloc["ID"]

        def effect():
            with self.cond:
                servers = self.stand_ins.pop(alloc_id, [])
                registrations = self.runtime.get(alloc_id, {}).pop("registrations", [])
                handles = self.handles.pop(alloc_id, {})
            for server in servers:
                server.stop()
            for handle in handles.values():
                handle.stop()
            if self.consul_url:
                for registration in registrations:
                    self._consul("PUT", f"/v1/agent/service/deregister/{registration['ID']}", None)
                    self.consul_registered.pop(registration["ID"], None)
        return effect

    def _consul(self, method, path, body):
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"}
        if self.consul_token:
            headers["X-Consul-Token"] = self.consul_token
        req = urllib.request.Request(self.consul_url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:  # noqa: S310 (loopback lab)
                resp.read()
        except urllib.error.HTTPError as exc:
            self.consul_errors.append(f"consul {method} {path.split('?')[0]}: {exc.code} "
                                      f"{exc.read().decode('utf-8', 'replace')[:200]}")
        except OSError as exc:
            self.consul_errors.append(f"consul {method} {path.split('?')[0]}: {exc}")

    def _probe_health(self):
        """Run the service checks of allocations awaiting health (outside the lock)."""
        with self.cond:
            todo = []
            for alloc in self.allocs.values():
                if alloc["ClientStatus"] != "running" or (alloc["DeploymentStatus"] or {}).get("Healthy") is not None:
                    continue
                targets = []
                for svc, _task, _level, port in self._service_ports(alloc):
                    for check in svc.get("Checks") or []:
                        if port:
                            targets.append((check.get("Type"), port, check.get("Path")))
                todo.append((alloc["ID"], targets))
        results = {}
        for alloc_id, targets in todo:
            ok = True
            for ctype, port, path in targets:
                try:
                    if ctype == "http":
                        with urllib.request.urlopen(f"http://{self.address}:{port}{path}", timeout=1) as resp:  # noqa: S310
                            ok = ok and resp.status < 400
                    else:
                        with contextlib.closing(socket.create_connection((self.address, port), timeout=1)):
                            pass
                except (OSError, urllib.error.URLError):
                    ok = False
            results[alloc_id] = ok
        if results:
            with self.cond:
                for alloc_id, ok in results.items():
                    if alloc_id in self.runtime:
                        self.runtime[alloc_id]["checks_ok"] = ok

    # -- task preparation and runners (lab.sim.nomad_tasks) ------------------------------------------
    def _needs_prepare(self, task):
        return bool((self.render_templates and task.get("Templates"))
                    or ntasks.runner_for(task, self.task_runners))

    def _served_by_runner(self, alloc, task_name):
        """Whether a runner's own process serves the task's ports (no in-process stand-in then)."""
        group = self._alloc_group(alloc)
        task = next((t for t in group.get("Tasks") or [] if t["Name"] == task_name), None)
        runner = ntasks.runner_for(task or {}, self.task_runners)
        return runner is not None and runner["run"] in ("caddy", "authentik")

    def _host_volume_path(self, name):
        vols = self.node["HostVolumes"]
        if isinstance(vols, dict) and isinstance(vols.get(name), dict):
            path = vols[name].get("Path") or vols[name].get("path")
            if path:
                return path
        return os.path.join(self.data_dir, "volumes", name)

    def _task_paths(self, alloc, group, task):
        alloc_dir = os.path.join(self.data_dir, "allocs", alloc["ID"])
        task_dir = os.path.join(alloc_dir, task["Name"])
        mounts, read_only = {}, set()
        for mount in task.get("VolumeMounts") or []:
            volume = (group.get("Volumes") or {}).get(mount.get("Volume")) or {}
            if volume.get("Type") == "host" and mount.get("Destination"):
                mounts[mount["Destination"]] = self._host_volume_path(volume.get("Source"))
                if mount.get("ReadOnly") or volume.get("ReadOnly"):
                    read_only.add(mount["Destination"])
        return task_dir, ntasks.Paths(task_dir, os.path.join(alloc_dir, "alloc"), mounts, read_only)

    def _nomad_env(self, alloc, task):
        # client/taskenv/env.go: NOMAD_JOB_ID and NOMAD_JOB_NAME differ for a periodic job's child
        # only in name (deriveJob gives it Name = ID); NOMAD_JOB_PARENT_ID is its parent
        env = {"NOMAD_ALLOC_ID": alloc["ID"], "NOMAD_ALLOC_NAME": alloc["Name"],
               "NOMAD_JOB_ID": alloc["JobID"], "NOMAD_JOB_NAME": alloc["Job"].get("Name") or alloc["JobID"],
               "NOMAD_GROUP_NAME": alloc["TaskGroup"], "NOMAD_TASK_NAME": task["Name"], "NOMAD_TASK_DIR": "/local",
               "NOMAD_SECRETS_DIR": "/secrets", "NOMAD_ALLOC_DIR": "/alloc", "NOMAD_DC": self.datacenter,
               "NOMAD_REGION": self.region, "NOMAD_NAMESPACE": alloc["Namespace"]}
        if alloc["Job"].get("ParentID"):
            env["NOMAD_JOB_PARENT_ID"] = alloc["Job"]["ParentID"]
        for port in alloc["AllocatedResources"]["Shared"]["Ports"] or []:
            label = port["Label"].replace("-", "_")
            env[f"NOMAD_PORT_{label}"] = env[f"NOMAD_HOST_PORT_{label}"] = str(port["Value"])
            env[f"NOMAD_IP_{label}"] = port["HostIP"]
            env[f"NOMAD_ADDR_{label}"] = f"{port['HostIP']}:{port['Value']}"
        return env

    def _node_vars(self):
        """The node's variables a task's env and config may interpolate (client/taskenv/env.go)."""
        out = {"node.unique.id": self.node["ID"], "node.unique.name": self.node["Name"],
               "node.datacenter": self.node["Datacenter"], "node.class": self.node["NodeClass"],
               "node.pool": self.node["NodePool"], "node.region": self.region}
        out.update({f"attr.{k}": v for k, v in self.node["Attributes"].items()})
        out.update({f"meta.{k}": v for k, v in self.node["Meta"].items()})
        return out

    RERENDER_EVERY = 3.0

    def _rerender_running(self):
        """
        Nomad's template runner keeps watching a running task's dependencies and, when a rendered
        template changes, applies its ``change_mode`` (``restart``: the task restarts with the new
        files and environment). The lab does it every few seconds for the tasks that run a real
        part (a restart of an in-process stand-in would change nothing anyone sees).
        """
        now = time.monotonic()
        with self.cond:
            todo = []
            for alloc in self.allocs.values():
                rt = self.runtime.get(alloc["ID"])
                if rt is None or alloc["ClientStatus"] != "running" or alloc["DesiredStatus"] != "run":
                    continue
                group = self._alloc_group(alloc)
                for task in group.get("Tasks") or []:
                    trt = rt["tasks"].get(task["Name"]) or {}
                    prepared = trt.get("prepared") or {}
                    if (trt.get("phase") != "running" or not prepared.get("templates")
                            or task["Name"] not in self.handles.get(alloc["ID"], {})
                            or trt.get("rerender_at", 0) > now):
                        continue
                    trt["rerender_at"] = now + self.RERENDER_EVERY
                    todo.append((copy.deepcopy(alloc), copy.deepcopy(group), copy.deepcopy(task),
                                 prepared["templates"]))
        for alloc, group, task, before in todo:
            outcome = self._prepare(alloc, group, task)
            after = outcome.get("templates")
            if after is None:
                continue  # missing or failing now: Nomad keeps the task running on what it has
            changed = sorted(dest for dest, (mode, text) in after.items()
                             if before.get(dest, (None, None))[1] != text and mode == "restart")
            if not changed:
                continue
            with self.cond:
                handle = self.handles.get(alloc["ID"], {}).pop(task["Name"], None)
            if handle is not None:
                handle.stop()
            with self.cond:
                live = self.allocs.get(alloc["ID"])
                rt = self.runtime.get(alloc["ID"])
                if live is None or rt is None or live["DesiredStatus"] != "run":
                    continue
                trt = rt["tasks"][task["Name"]]
                st = self._task_state(live, task["Name"])
                st["Events"].append(self._event("Restart Signaled", f"Template with change_mode restart re-rendered "
                                                                    f"({', '.join(changed)})"))
                st["Restarts"] += 1
                st["LastRestart"] = _rfc3339()
                trt["prepared"] = outcome
                trt["phase"] = "start"
                trt["next"] = time.monotonic()
                self._bump("allocs")

    def _prepare_tasks(self):
        """Render templates and build runner contexts of tasks about to start (outside the lock)."""
        self._rerender_running()
        with self.cond:
            todo = []
            for alloc in self.allocs.values():
                rt = self.runtime.get(alloc["ID"])
                if rt is None or alloc["ClientStatus"] in TERMINAL or alloc["DesiredStatus"] != "run":
                    continue
                group = self._alloc_group(alloc)
                for task in group.get("Tasks") or []:
                    trt = rt["tasks"].get(task["Name"]) or {}
                    if trt.get("phase") == "prepare" and trt.get("next", 0) <= time.monotonic():
                        todo.append((copy.deepcopy(alloc), copy.deepcopy(group), copy.deepcopy(task)))
        for alloc, group, task in todo:
            outcome = self._prepare(alloc, group, task)
            with self.cond:
                rt = self.runtime.get(alloc["ID"])
                live = self.allocs.get(alloc["ID"])
                if rt is None or live is None:
                    continue
                trt = rt["tasks"].get(task["Name"])
                if trt is None or trt.get("phase") != "prepare":
                    continue
                st = self._task_state(live, task["Name"])
                if "missing" in outcome:
                    message = f"Missing: {outcome['missing']}"
                    if trt.get("last_missing") != message:
                        st["Events"].append(self._event("Template", message))
                        trt["last_missing"] = message
                    trt["next"] = time.monotonic() + 0.2
                    continue
                if "error" in outcome:
                    trt["prepare_error"] = outcome["error"]
                    trt["prepared"] = None
                else:
                    trt["prepared"] = outcome
                trt["phase"] = "start"
                self._bump("allocs")

    def _prepare(self, alloc, group, task):
        task_dir, paths = self._task_paths(alloc, group, task)
        nomad_env = self._nomad_env(alloc, task)
        env = dict(nomad_env)
        node_vars = self._node_vars()
        env.update({k: ntasks.interpolate(str(v), nomad_env, node_vars) for k, v in (task.get("Env") or {}).items()})
        try:
            for sub in ("local", "secrets"):
                os.makedirs(os.path.join(task_dir, sub), exist_ok=True)
            texts = {}
            if self.render_templates and task.get("Templates"):
                lookups = ntasks.Lookups(self.vault_url, self.vault_token, self.consul_url, self.consul_token,
                                        vault=task.get("Vault") is not None)
                rendered, texts = ntasks.render_task_templates_full(task, task_dir, lookups, env)
                env.update(rendered)
        except ntasks.TemplateMissing as exc:
            return {"missing": str(exc)}
        except (ntasks.TemplateError, OSError) as exc:
            return {"error": f"Template failed: {exc}"}
        config = task.get("Config") or {}
        runner = ntasks.runner_for(task, self.task_runners) or {}
        port = next((p["Value"] for p in alloc["AllocatedResources"]["Shared"]["Ports"] or []
                     if p.get("To") == 9000), None)
        ctx = {"task": task["Name"], "task_dir": task_dir, "paths": paths, "env": env, "config": config,
               "image": str(config.get("image", "")), "address": self.address, "port": port,
               "caddy_binary": self.caddy_binary, "image_env": runner.get("image_env") or {}}
        if runner.get("run") == "authentik" and env.get("AUTHENTIK_POSTGRESQL__PORT"):
            pgdata = self._pg_servers().get(f"{env.get('AUTHENTIK_POSTGRESQL__HOST')}:"
                                            f"{env['AUTHENTIK_POSTGRESQL__PORT']}")
            if pgdata:
                name = env.get("AUTHENTIK_POSTGRESQL__NAME") or "authentik"
                ctx["state_file"] = pg.relation_path(pgdata, name, pg.AUTHENTIK_RELATION)
                ctx["database"] = ntasks.read_initdb(pgdata)
        if runner.get("run") == "sh":
            ctx.update(pg_servers=self._pg_servers(), node_vars=node_vars, programs=runner.get("programs") or [])
        return {"ctx": ctx, "templates": texts}

    def _pg_servers(self):
        """
        ``{"host:port": data directory}`` of the running PostgreSQL stand-ins: who serves which
        address. Authentik's data is kept in its database there, so it outlives Authentik's
        restarts and reschedules exactly as long as the database does (and a dump has it), and
        the role and password it was initialised with are there; pg_dump and pg_restore
        (lab/sim/pg.py) "connect" through it.
        """
        out = {}
        with self.cond:
            for alloc in self.allocs.values():
                if alloc["ClientStatus"] in TERMINAL or alloc["DesiredStatus"] != "run":
                    continue
                group = self._alloc_group(alloc)
                for task in group.get("Tasks") or []:
                    runner = ntasks.runner_for(task, self.task_runners)
                    if runner and runner["run"] == "postgres":
                        _, paths = self._task_paths(alloc, group, task)
                        pgdata = paths.host((task.get("Env") or {}).get("PGDATA") or "/var/lib/postgresql/data")
                        for port in alloc["AllocatedResources"]["Shared"]["Ports"] or []:
                            out[f"{port['HostIP']}:{port['Value']}"] = pgdata
        return out

    def _spawn_effect(self, alloc_id, task_name, runner, ctx):
        def effect():
            try:
                handle = ntasks.start(runner["run"], ctx)
            except (ntasks.RunnerError, OSError) as exc:
                handle = ntasks.FailedHandle(f"{runner['run']} did not start: {exc}")
            with self.cond:
                if alloc_id in self.runtime and self.allocs.get(alloc_id, {}).get("DesiredStatus") == "run":
                    self.handles.setdefault(alloc_id, {})[task_name] = handle
                    return
            handle.stop()  # stopped meanwhile
        return effect

    # -- lab state -------------------------------------------------------------------------------------
    def snapshot(self):
        return {
            "index": self.index,
            "jobs": {f"{ns}/{jid}": {"Version": j["Version"], "Stable": j["Stable"], "Stop": j.get("Stop"),
                                     "Status": self._job_status(j), "JobModifyIndex": j["JobModifyIndex"],
                                     "Versions": [v["Version"] for v in self.versions.get((ns, jid), [])]}
                     for (ns, jid), j in self.jobs.items()},
            "allocations": [{"ID": a["ID"], "JobID": a["JobID"], "JobVersion": a["JobVersion"],
                             "TaskGroup": a["TaskGroup"], "ClientStatus": a["ClientStatus"],
                             "DesiredStatus": a["DesiredStatus"], "DeploymentStatus": a["DeploymentStatus"],
                             "Ports": a["AllocatedResources"]["Shared"]["Ports"]}
                            for a in self.allocs.values()],
            "deployments": [{"ID": d["ID"], "JobID": d["JobID"], "JobVersion": d["JobVersion"],
                             "Status": d["Status"], "StatusDescription": d["StatusDescription"]}
                            for d in self.deployments.values()],
            "variables": sorted(f"{ns}/{p}" for ns, p in self.variables),
            "consul_registered": sorted(self.consul_registered),
            "errors": list(self.consul_errors[-50:]),
        }
