"""
``orch.bionicgpt`` on 1 edge + 1 node against 1 edge + 3 nodes: how the orchestration's wall
time, requests, writes and the Salt processes' CPU and memory grow with the nodes (issue #19:
from 1 to 3 local nodes the wall time grows <= 1.3x, the steps running on all targets at once).
Prints figures; asserts nothing.

    python -m bench scale                          # 1 and 3 nodes, 3 converged runs of each
    python -m bench.bench_scale --nodes 1,3 --runs 5 --edges 1

1. Starts one lab per size (``lab.cli.Lab``, the fast lab as ``python -m lab up --fast
   --edges E --nodes N``: simulators, a real Caddy per edge, a salt-master and the minions;
   1 edge + 1 node is the lab's ``cloud``/``local``, more are ``edge-1``/``node-1``...). All
   labs stay up together, so that their converged runs can alternate.
2. Runs ``orch.bionicgpt pillar='{"env": "lab"}'`` in each until a run changes nothing; the
   first run is the first deployment (from an empty Vault/Consul/Nomad/Authentik/Caddy).
3. Times ``--runs`` converged runs of each size, alternating (1 node, 3 nodes, 1 node, ...):
   load from other processes on the machine hits both alike, and the ratio is taken pair by
   pair (run i of N nodes / run i of 1 node), whose median holds when the machine's speed drifts.

Figures per run: the wall time of ``salt-run state.orch``; the requests and writes every
simulator (Vault, Consul, Nomad, Authentik, Hetzner DNS) logged and every Caddy's admin API
logged during the run; the CPU seconds of the Salt processes (salt-run, the master, the
minions and all they forked); their memory after the run (the sum of the resident sets of
the master's and minions' processes and the largest high-water mark of any one). Then per
step the median duration Salt reports at each size, with the slowest minion's time inside
hecate's states (from the job cache): where the time of a larger lab goes. Last, the ratio
against the target, and one table nodes x routes x objects -> wall time, requests, writes,
memory (the lab's own routes and objects; ``python -m bench caddy``/``authentik`` grow those).

``--smoke`` starts no Salt (a lab takes minutes at any size): it checks this benchmark's
request counting against one real simulator and prints its report of two small fabricated
orchestration returns, so that the code does not rot between real runs.
"""

import argparse
import contextlib
import io
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
for _path in (REPO, os.path.join(REPO, "_utils")):
    if _path not in sys.path:
        sys.path.insert(0, _path)

import hecate_plan  # noqa: E402
from bench import bench_orch, common  # noqa: E402
from lab import caddy as lab_caddy  # noqa: E402
from lab import sim as lab_sim  # noqa: E402
from lab import topology  # noqa: E402

ORCH = bench_orch.ORCH
SIMULATORS = ("vault", "consul", "nomad", "authentik", "hetzner")
WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")
# POSTs that only read, beyond lab.sim.READ_ONLY_POSTS (Vault's AppRole login): Nomad's HCL parse,
# job validation and plan (a scheduler dry-run), as tests/orch_helpers.py counts them
READ_ONLY_POSTS = {"nomad": (r"^/v1/jobs/parse$", r"^/v1/job/[^/]+/plan$", r"^/v1/validate/job$")}
TARGET = 1.3


# -- counting requests -------------------------------------------------------------------------------
def _sim_call(url, method):
    req = urllib.request.Request(url.rstrip("/") + "/_lab/requests", method=method)
    with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 (loopback simulator)
        return json.loads(resp.read() or b"null")


def sim_counts(name, url):
    """``(requests, writes)`` a simulator logged since it was last cleared (its read-only POSTs are reads)."""
    log = _sim_call(url, "GET") or []
    skip = lab_sim.READ_ONLY_POSTS.get(name, ()) + READ_ONLY_POSTS.get(name, ())
    writes = [r for r in log if r["method"] in WRITE_METHODS
              and not any(re.search(pattern, r["path"]) for pattern in skip)]
    return len(log), len(writes)


def clear_sim(url):
    _sim_call(url, "DELETE")


class Counters:
    """The request logs of one lab: its simulators' (cleared per run) and its Caddies' admin logs."""

    def __init__(self, lab):
        state = lab.load_state() or {}
        addresses = state.get("addresses", {})
        self.sims = {name: addresses[name] for name in SIMULATORS if name in addresses}
        self.caddies = [lab_caddy.Caddy(os.path.join(lab.workdir, name))
                        for name in sorted(state.get("pids", {})) if name == "caddy" or name.startswith("caddy-")]
        self._caddy_seen = [0] * len(self.caddies)

    def start(self):
        for url in self.sims.values():
            clear_sim(url)
        self._caddy_seen = [len(c.admin_requests()) for c in self.caddies]

    def read(self):
        """``{system: (requests, writes)}`` since :meth:`start`."""
        out = {name: sim_counts(name, url) for name, url in self.sims.items()}
        reqs = writes = 0
        for caddy, seen in zip(self.caddies, self._caddy_seen):
            log = caddy.admin_requests()[seen:]
            reqs += len(log)
            writes += sum(1 for method, _ in log if method not in ("GET", "HEAD", "OPTIONS"))
        if self.caddies:
            out["caddy"] = (reqs, writes)
        return out


# -- one lab per size --------------------------------------------------------------------------------
class Size:
    """One lab (``edges`` x ``nodes``) and its runs."""

    def __init__(self, tmp, edges, nodes):
        self.edges, self.nodes = edges, nodes
        self.label = f"{edges}e{nodes}n"
        self.counters = None
        self.first = None  # the first deployment's figures
        self.runs = []  # converged runs' figures
        self.lab = None
        if tmp is None:  # figures only (the smoke check of the report)
            return
        empty_root = os.path.join(tmp, f"empty-root-{self.label}")
        os.makedirs(empty_root, exist_ok=True)
        self.lab = bench_orch.BenchLab(os.path.join(tmp, f"lab-{self.label}"), empty_root)

    def up(self):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            rc = self.lab.up(run_orch=False, fast=True, edges=self.edges, nodes=self.nodes)
        if rc:
            raise RuntimeError(f"the {self.label} lab did not start (see {self.lab.workdir}/logs): "
                               f"{out.getvalue()[-2000:]}")
        self.counters = Counters(self.lab)

    def salt_pids(self):
        return [pid for name, pid in (self.lab.load_state() or {}).get("pids", {}).items()
                if name.startswith("salt-")]

    def run(self):
        """One ``orch.bionicgpt`` run: its figures (``data``, ``wall``, ``cpu``, ``requests``, ...)."""
        self.counters.start()
        data, wall, cpu = self.lab.orch_sls(ORCH)
        counts = self.counters.read()
        mem = common.tree_memory(self.salt_pids())
        bad = bench_orch.failures(data)
        if bad:
            raise RuntimeError(f"{ORCH} failed on the {self.label} lab: {'; '.join(bad)}")
        return {"data": data, "wall": wall, "cpu": cpu, "counts": counts,
                "requests": sum(r for r, _ in counts.values()), "writes": sum(w for _, w in counts.values()),
                "rss": mem["rss"], "peak": mem["peak"], "processes": mem["processes"],
                "changed": len(hecate_plan.rows(data))}

    def down(self):
        with contextlib.redirect_stdout(io.StringIO()):
            self.lab.down()


def minion_counts(size):
    minions = topology.minions(size.edges, size.nodes)
    return len(minions)


# -- where a step's time goes: the minions' logs ------------------------------------------------------
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d (\d\d):(\d\d):(\d\d),(\d{3}) .*?(?:Starting a new job (\d+) with PID"
                      r"|Executing command (\S+) with jid (\d+)|Returning information for job: (\d+))")


def _clock(hours, minutes, seconds, millis=0.0):
    return int(hours) * 3600 + int(minutes) * 60 + int(seconds) + float(millis)


def minion_logs(workdir):
    """``{minion: path}`` of the lab's minion logs (Salt puts a minion's log_file under its root_dir)."""
    out = {}
    for parent, _, files in os.walk(workdir):
        for name in files:
            if name.startswith("minion-") and name.endswith(".log"):
                out[name[len("minion-"):-len(".log")]] = os.path.join(parent, name)
    return out


def minion_log_times(workdir):
    """``{jid: {minion: {"start", "exec", "return"}}}`` (seconds of the day) from the lab's minion logs."""
    out = {}
    for minion, path in sorted(minion_logs(workdir).items()):
        with open(path, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                match = LOG_LINE.match(line)
                if not match:
                    continue
                hours, minutes, seconds, millis, started, fun, executing, returned = match.groups()
                # the minion logs "Executing command" when the job arrives, "Starting a new job"
                # from the job's own process once it runs, "Returning information" when done
                jid, event = ((executing, "start") if executing else (started, "exec") if started
                              else (returned, "return"))
                when = _clock(hours, minutes, seconds, int(millis) / 1000)
                out.setdefault(jid, {}).setdefault(minion, {}).setdefault(event, when)
                if fun:
                    out[jid][minion]["fun"] = fun
    return out


def step_spans(data, times):
    """
    Per ``salt.state`` step: ``{"publish", "spawn", "job", "gather", "minions"}`` seconds: from the
    step's start to the first minion receiving the job, the slowest minion's start of a job process
    (fork, module loading), the slowest minion's job (pillar, rendering, the states, the return),
    and from the last minion's return to the step's end (the master collecting the returns).
    """
    out = {}
    for sid, ret in bench_orch.steps(data).items():
        per_minion = times.get(str(ret.get("__jid__")), {})
        if not per_minion or "start_time" not in ret:
            continue
        hours, minutes, rest = ret["start_time"].split(":")
        begin = _clock(hours, minutes, 0, float(rest))
        end = begin + ret.get("duration", 0) / 1000
        marks = [m for m in per_minion.values() if {"start", "exec", "return"} <= set(m)]
        if not marks:
            continue
        first = min(m["start"] for m in marks)
        # other jobs the step ran before its own on the minions (Salt's ``subset`` asks every
        # target for ``sys.list_functions`` first, and waits for all of them)
        before = [m for jid, minions in times.items() if jid != str(ret.get("__jid__"))
                  for m in minions.values() if begin <= m.get("start", -1) < first and "return" in m]
        out[sid] = {"publish": first - begin,
                    "before": max((m["return"] for m in before), default=begin) - begin,
                    "before_jobs": sorted({m.get("fun", "?") for m in before}),
                    "spawn": max(m["exec"] - m["start"] for m in marks),
                    "job": max(m["return"] - m["exec"] for m in marks),
                    "gather": end - max(m["return"] for m in marks), "minions": len(marks)}
    return out


def span_table(sizes, spans):
    """Per step and size: publish / spawn / job / gather medians (see :func:`step_spans`)."""
    print("  where a step's time goes, from the minions' logs (medians of the converged runs): publish = step "
          "start -> first minion has the job, spawn = slowest job process start, job = slowest minion's "
          "job, gather = last return -> step end; (pre) = of publish, other jobs the step ran first, to their last "
          "return")
    head = "".join(f" | {s.label:<4} {'pub':>5} {'(pre)':>5} {'spawn':>5} {'job':>5} {'gath':>5}" for s in sizes)
    print(f"    {'step':<18}{head}")
    ids = [sid for sid in bench_orch.steps(sizes[0].runs[0]["data"]) if any(sid in r for r in spans[sizes[0].label])]
    for sid in ids:
        cells, jobs = "", set()
        for size in sizes:
            found = [r[sid] for r in spans.get(size.label, []) if sid in r]
            if not found:
                cells += f" | {'':<4} {'':>5} {'':>5} {'':>5} {'':>5} {'':>5}"
                continue
            cells += f" | {found[0]['minions']:>3}m" + "".join(
                f" {med([f[key] for f in found]):5.2f}" for key in ("publish", "before", "spawn", "job", "gather"))
            jobs.update(j for f in found for j in f["before_jobs"])
        print(f"    {sid:<18}{cells}" + (f"  (pre: {', '.join(sorted(jobs))})" if jobs else ""))


# -- output ------------------------------------------------------------------------------------------
def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def pair_ratios(base, other, key):
    return [b[key] / a[key] for a, b in zip(base, other) if a[key]]


def step_table(sizes, in_states):
    """Per step: median seconds at each size, the growth, and the slowest minion's time inside states."""
    base, *others = sizes
    ids = list(bench_orch.steps(base.runs[0]["data"]))
    head = "".join(f" {s.label + ' s':>8} {'in st.':>6}" for s in sizes)
    print(f"    {'step':<22}{head} {'growth s':>9}")
    for sid in ids:
        cells, values = "", []
        for size in sizes:
            value = med([bench_orch.steps(r["data"]).get(sid, {}).get("duration", 0) / 1000 for r in size.runs])
            values.append(value)
            per_minion = in_states.get(size.label, {}).get(sid, {})
            own = max((secs for _, secs in per_minion.values()), default=None)
            cells += f" {value:8.2f} {'' if own is None else f'{own:6.2f}':>6}"
        print(f"    {sid:<22}{cells} {values[-1] - values[0]:9.2f}")
    print("    ('in st.': the slowest minion's seconds inside the step's states, from the job cache of the last "
          "run; the rest of a step is Salt: publishing, pillar, module loading, rendering, returns)")
    for title, func in (("orchestration span", bench_orch.span),):
        values = [med([func(r["data"]) for r in s.runs]) for s in sizes]
        print(f"    {title:<22}" + "".join(f" {v:8.2f} {'':>6}" for v in values) + f" {values[-1] - values[0]:9.2f}")


def report(sizes, in_states=None, spans=None):
    """Print the figures of ``sizes`` (the first is the base); return the ratios and the table rows."""
    base = sizes[0]
    print(f"  runs: {len(base.runs)} converged of each size, alternating (medians)")
    print(f"    {'lab':<10} {'minions':>7} {'first s':>8} {'req':>5} {'writes':>6} | {'converged s':>11} "
          f"{'CPU s':>6} {'req':>5} {'writes':>6} {'Salt RSS MB':>11} {'peak MB':>7}")
    for size in sizes:
        first = size.first or {}
        print(f"    {size.label:<10} {minion_counts(size):>7} {first.get('wall', 0):8.1f} "
              f"{first.get('requests', 0):>5} {first.get('writes', 0):>6} | "
              f"{med([r['wall'] for r in size.runs]):11.1f} "
              f"{med([r['cpu'] for r in size.runs]):6.1f} {med([r['requests'] for r in size.runs]):>5.0f} "
              f"{med([r['writes'] for r in size.runs]):>6.0f} {med([r['rss'] for r in size.runs]):11.0f} "
              f"{max(r['peak'] for r in size.runs):7.0f}")
    systems = sorted({s for size in sizes for r in size.runs for s in r["counts"]})
    print("    requests/writes per system of a converged run (last run): " + "; ".join(
        f"{size.label} " + ", ".join(f"{s} {'/'.join(map(str, size.runs[-1]['counts'].get(s, (0, 0))))}"
                                     for s in systems) for size in sizes))
    step_table(sizes, in_states or {})
    if spans:
        span_table(sizes, spans)
    figures = {}
    for other in sizes[1:]:
        walls, cpus = pair_ratios(base.runs, other.runs, "wall"), pair_ratios(base.runs, other.runs, "cpu")
        key = f"{other.label}/{base.label}"
        figures[key] = {"wall": med(walls), "cpu": med(cpus)}
        verdict = "met" if figures[key]["wall"] <= TARGET else "MISSED"
        print(f"  {other.nodes} nodes / {base.nodes} node ({key}): {figures[key]['wall']:.2f}x wall "
              f"(pair by pair: {' '.join(f'{p:.2f}' for p in walls)}; issue #19 target <= {TARGET}x: {verdict}), "
              f"{figures[key]['cpu']:.2f}x CPU (pair by pair: {' '.join(f'{p:.2f}' for p in cpus)})")
    rows = table(sizes)
    return {"ratios": figures, "table": rows}


def table(sizes):
    """nodes x routes x objects -> wall time, requests, writes, memory (rows measured by this run)."""
    routes = len(topology.lab_routes())
    print("  nodes x routes x objects -> wall time, requests, writes, memory (measured by this run: the lab's own "
          "routes and objects; more routes: `python -m bench caddy`, more objects: `python -m bench authentik`)")
    print(f"    {'edges':>5} {'nodes':>5} {'routes':>6} {'objects':>7} {'run':<10} {'wall s':>7} {'req':>5} "
          f"{'writes':>6} {'Salt RSS MB':>11}")
    rows = []
    for size in sizes:
        objects = (size.first or {}).get("changed", 0)
        for kind, figs in (("first", [size.first] if size.first else []), ("converged", size.runs)):
            if not figs:
                continue
            row = {"edges": size.edges, "nodes": size.nodes, "routes": routes, "objects": objects, "run": kind,
                   "wall": med([f["wall"] for f in figs]), "requests": med([f["requests"] for f in figs]),
                   "writes": med([f["writes"] for f in figs]), "rss": med([f["rss"] for f in figs])}
            rows.append(row)
            print(f"    {row['edges']:>5} {row['nodes']:>5} {routes:>6} {objects:>7} {kind:<10} {row['wall']:7.1f} "
                  f"{row['requests']:>5.0f} {row['writes']:>6.0f} {row['rss']:11.0f}")
    print("    ('objects': what the first deployment created or changed, every system; requests and writes: "
          "all simulators and Caddies)")
    return rows


# -- main --------------------------------------------------------------------------------------------
def main(argv):
    run(argv)
    return 0


def run(argv):
    parser = argparse.ArgumentParser(prog="bench_scale", description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", default="1,3", help="node counts, the first is the base (default 1,3)")
    parser.add_argument("--edges", type=int, default=1)
    parser.add_argument("--runs", type=int, default=3, help="converged runs of each size")
    parser.add_argument("--max-converge", type=int, default=3, help="runs allowed to reach a converged state")
    parser.add_argument("--keep", metavar="DIR", help="run the labs in DIR/lab-<edges>e<nodes>n and leave them up "
                        "(python -m lab down --dir DIR/lab-...)")
    parser.add_argument("--smoke", action="store_true", help="no Salt: counting against one simulator, a "
                        "report of fabricated returns")
    args = parser.parse_args(argv)
    if args.smoke:
        return smoke()
    counts = [int(n) for n in args.nodes.split(",")]
    print(f"{ORCH} at {', '.join(f'{args.edges} edge(s) + {n} node(s)' for n in counts)} (fast lab: simulators, "
          f"real Caddy, salt-master + minions); {common.machine()}")
    tmp = os.path.abspath(args.keep) if args.keep else tempfile.mkdtemp(prefix="bench-scale-")
    # the lab's processes inherit this environment: let them cache bytecode (bench_orch's docstring)
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    sizes = [Size(tmp, args.edges, n) for n in counts]
    started = time.monotonic()
    try:
        for size in sizes:
            t0 = time.monotonic()
            size.up()
            print(f"  {size.label}: lab up in {time.monotonic() - t0:.1f} s", flush=True)
        for size in sizes:
            for attempt in range(1, args.max_converge + 1):
                fig = size.run()
                if attempt == 1:
                    size.first = fig
                print(f"  {size.label} run {attempt}: {fig['wall']:.1f} s, {fig['changed']} objects changed, "
                      f"{fig['requests']} requests, {fig['writes']} writes", flush=True)
                if not fig["changed"]:
                    size.runs.append(fig)
                    break
            else:
                raise RuntimeError(f"{ORCH} did not converge on the {size.label} lab in {args.max_converge} runs")
        while any(len(s.runs) < args.runs + 1 for s in sizes):
            for size in sizes:
                fig = size.run()
                if fig["changed"]:
                    raise RuntimeError(f"a converged {ORCH} run on the {size.label} lab changed {fig['changed']}")
                size.runs.append(fig)
        # the run that found the lab converged came before any pair: pairs start after it
        for size in sizes:
            size.runs = size.runs[1:]
        in_states = {s.label: bench_orch.state_counts(s.lab, s.runs[-1]["data"]) for s in sizes}
        spans = {}
        for size in sizes:
            times = minion_log_times(size.lab.workdir)
            spans[size.label] = [step_spans(r["data"], times) for r in size.runs]
        figures = report(sizes, in_states, spans)
        print(f"  bench total {time.monotonic() - started:.0f} s; {common.machine()}")
        return figures
    finally:
        if args.keep:
            print(f"  labs left up in {', '.join(s.lab.workdir for s in sizes)}")
        else:
            for size in sizes:
                size.down()
            shutil.rmtree(tmp, ignore_errors=True)


# -- smoke -------------------------------------------------------------------------------------------
SMOKE_JID = "20261205100000000001"
SMOKE_LOG = (  # what a minion logs at info level (salt/minion.py): a subset's probe, the step's job, a line to skip
    "2026-12-05 10:00:00,010 [salt.minion      :2454][INFO    ][11] User root Executing command sys.list_functions "
    "with jid 20261205100000000000\n"
    "2026-12-05 10:00:00,040 [salt.minion      :3798][INFO    ][13] Returning information for job: "
    "20261205100000000000\n"
    "2026-12-05 10:00:00,050 [salt.minion      :2454][INFO    ][11] User root Executing command state.sls with "
    "jid {jid}\n"
    "2026-12-05 10:00:00,150 [salt.minion      :3120][INFO    ][12] Starting a new job {jid} with PID 12\n"
    "2026-12-05 10:00:00,200 [salt.state       :321 ][INFO    ][12] Completed state [x] at time 10:00:00\n"
    "2026-12-05 10:00:00,350 [salt.minion      :3798][INFO    ][12] Returning information for job: {jid}\n"
)


def _fake_run(seconds, nodes, counts):
    """A fabricated orchestration return of two steps (the smoke check of the report only)."""
    data = {"data": {"master": {
        "salt_|-preflight_|-preflight_|-state": {"__id__": "preflight", "__run_num__": 0, "result": True,
                                                  "start_time": "10:00:00.000000", "duration": seconds * 400,
                                                  "changes": {}, "__jid__": SMOKE_JID},
        "salt_|-unlock_|-hecate.unlock_|-runner": {"__id__": "unlock", "__run_num__": 1, "result": True,
                                                    "start_time": "10:00:01.000000", "duration": seconds * 100,
                                                    "changes": {}},
    }}, "retcode": 0}
    return {"data": data, "wall": seconds + 0.1 * nodes, "cpu": seconds * nodes, "counts": counts,
            "requests": sum(r for r, _ in counts.values()), "writes": sum(w for _, w in counts.values()),
            "rss": 100.0 * (nodes + 1), "peak": 80.0, "processes": 4 + nodes, "changed": 0}


def smoke():
    """Counting against a real Consul simulator, then the report of fabricated returns."""
    tmp = tempfile.mkdtemp(prefix="bench-scale-smoke-")
    handle = lab_sim.SimHandle("consul", os.path.join(tmp, "consul"),
                               topology.consul_options(topology.new_lab_secrets()))
    try:
        handle.start()
        clear_sim(handle.url)
        for method, path in (("GET", "/v1/kv/bench?recurse=true"), ("PUT", "/v1/kv/bench/a")):
            req = urllib.request.Request(handle.url + path, data=b"x" if method == "PUT" else None, method=method)
            with contextlib.suppress(OSError):  # 403 without a token: still a logged request
                urllib.request.urlopen(req, timeout=5).close()  # noqa: S310 (loopback simulator)
        counted = {"consul": sim_counts("consul", handle.url)}
    finally:
        handle.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print("  smoke: no Salt; the report below is of fabricated returns (it checks the report code only)")
    print(f"  request counting against the Consul simulator: {counted['consul'][0]} requests, "
          f"{counted['consul'][1]} writes")
    log_dir = tempfile.mkdtemp(prefix="bench-scale-smoke-logs-")
    try:
        os.makedirs(os.path.join(log_dir, "salt", "node-1-root", "logs"))
        with open(os.path.join(log_dir, "salt", "node-1-root", "logs", "minion-node-1.log"), "w",
                  encoding="utf-8") as fh:
            fh.write(SMOKE_LOG.format(jid=SMOKE_JID))
        times = minion_log_times(log_dir)
    finally:
        shutil.rmtree(log_dir, ignore_errors=True)
    sizes, spans = [], {}
    for nodes in (1, 3):
        size = Size(None, 1, nodes)
        size.first = dict(_fake_run(3.0, nodes, counted), changed=5)
        size.runs = [_fake_run(1.0 + i, nodes, counted) for i in range(2)]
        sizes.append(size)
        spans[size.label] = [step_spans(r["data"], times) for r in size.runs]
    figures = report(sizes, {}, spans)
    figures["spans"] = spans["1e1n"][0]
    figures["counted"] = counted
    return figures


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
