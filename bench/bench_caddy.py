"""
Caddy at 1,000 and 10,000 routes: hecate's guarded apply vs one request per route (the
draft orchestration) vs a bare ``POST /load`` of the same JSON, against the real Caddy on
loopback. Prints requests, writes, wall time, Caddy's memory and the module's memory;
asserts nothing.

    python -m bench caddy                          # 100, 1,000 and 10,000 routes
    python -m bench.bench_caddy --routes 1000 --policies --repeat 5
    python -m bench.bench_caddy --smoke            # tiny sizes, for the test suite

Variants (each measured on a freshly started Caddy holding only the empty ``hecate`` server,
so its memory figures are not inflated by an earlier variant):

- (b) bare load: one ``POST /load`` of the whole config hecate writes (the lower bound);
- hecate apply: build the routes from a pillar-shaped dict, read ``/config/`` with its ETag
  (holding the built routes, ``known=``), diff, save the rollback snapshot, one ``PATCH``
  guarded by ``If-Match`` (``hecate_caddy_apply.apply``, what ``caddy_routes.managed`` runs);
- hecate converged re-run: the same with nothing to change (1 request, 0 writes);
- (a) one ``POST .../routes`` per route. Every Admin API change makes Caddy reload its whole
  config, so the n-th POST costs about a load of n routes and the total grows with n^2/2.
  Up to ``--per-route-full`` routes (default 1,000) every POST is made and timed. Above it
  the total is EXTRAPOLATED: ``--per-route-samples`` POSTs are timed at five fill levels
  (Caddy first loaded with 0, n/4, n/2, 3n/4 and n-samples routes), and the total is the sum
  over k < n of the cost of the k-th POST, interpolated linearly between the per-level
  medians. The same samples are also used to predict the fully measured size, so the error
  of the extrapolation can be judged.

After the sizes: one table, routes -> wall time, requests, writes and memory of the bare load,
the apply and the converged re-run, and the targets of issue #19 ("Cost as the work grows":
at 10,000 routes the apply <= 1.3x a bare load, the converged re-run <= 0.3x, the module's
memory during the apply <= 50 MB) with the figures of the largest size beside them.

Memory: Caddy's RSS (``/proc/<pid>/status`` VmRSS) before, its peak (VmHWM since the fresh
start; reset with ``/proc/<pid>/clear_refs`` for the converged run, which follows the apply)
and after; the module's memory is the peak of Python allocations (``tracemalloc``) during
the same call, measured in a separate untimed pass because tracing slows Python down.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
for _path in (REPO, os.path.join(REPO, "_utils")):
    if _path not in sys.path:
        sys.path.insert(0, _path)

import requests  # noqa: E402

import hecate_caddy_apply  # noqa: E402
import hecate_caddy_client  # noqa: E402
import hecate_caddy_routes  # noqa: E402
from bench import common  # noqa: E402
from lab import caddy as lab_caddy  # noqa: E402

ROUTES_PATH = "/config/apps/http/servers/hecate/routes"
JSON = {"Content-Type": "application/json"}


def pillar(n, policies):
    routes = []
    for i in range(n):
        route = {
            "domain": f"r{i}.bench.test",
            "service": f"r{i}",
            "backend": f"127.0.0.1:{20000 + i % 40000}",
        }
        if not policies:
            route["policies"] = []
        routes.append(route)
    return {"server": "hecate", "routes": routes}


# -- Caddy process ------------------------------------------------------------------------------
class Bench:
    """One Caddy, restarted empty before each measured variant."""

    def __init__(self, workdir, restart=True):
        self.workdir = workdir
        self.restart = restart
        self.caddy = lab_caddy.Caddy(os.path.join(workdir, "caddy")).start()
        with open(self.caddy.config_path, encoding="utf-8") as fh:
            self.initial = json.load(fh)
        self.state_runs = 0

    @property
    def pid(self):
        return self.caddy.proc.pid

    def load(self, config, timeout=600):
        requests.post(self.caddy.admin_url + "/load", data=json.dumps(config), headers=JSON,
                      timeout=timeout).raise_for_status()

    def fresh(self):
        """Empty the server, then restart Caddy (``--resume`` brings back the empty config)."""
        self.load(self.initial)
        if self.restart:
            self.caddy.restart()

    def writes(self):
        return len(self.caddy.admin_writes())

    def state_dir(self):
        self.state_runs += 1
        return os.path.join(self.workdir, f"state{self.state_runs}")

    def stop(self):
        self.caddy.stop()


def full_config(initial, desired):
    full = json.loads(json.dumps(initial))
    full["apps"]["http"]["servers"]["hecate"]["routes"] = [r.json for r in desired]
    return full


# -- variants -----------------------------------------------------------------------------------
def hecate_apply(bench, data, state_dir):
    admin = hecate_caddy_client.CaddyAdmin({"admin_url": bench.caddy.admin_url, "timeout": 600})
    store = hecate_caddy_client.SnapshotStore(state_dir)
    desired = hecate_caddy_routes.build(data)
    out = hecate_caddy_apply.apply(
        admin, "hecate", lambda live: hecate_caddy_routes.plan_set(live, desired), test=False, store=store,
        known=[r.json for r in desired],
    )
    return sum(admin.stats.values()), bool(out["changes"])


def bare_load(bench, full):
    requests.post(bench.caddy.admin_url + "/load", data=json.dumps(full), headers=JSON,
                  timeout=600).raise_for_status()
    return 1, True


def timed(bench, func, *args, reset_peak=False):
    """Run ``func`` once: wall time, requests, writes seen by Caddy, Caddy's memory."""
    peak_known = common.reset_peak(bench.pid) if reset_peak else True
    before = common.memory(bench.pid)
    w0 = bench.writes()
    started = time.perf_counter()
    reqs, _ = func(bench, *args)
    seconds = time.perf_counter() - started
    after = common.memory(bench.pid)
    return {
        "seconds": seconds,
        "requests": reqs,
        "writes": bench.writes() - w0,
        "caddy_before_mb": before.get("VmRSS"),
        "caddy_peak_mb": after.get("VmHWM") if peak_known else None,
        "caddy_after_mb": after.get("VmRSS"),
    }


def traced(func, *args):
    """Peak of Python allocations (MB) while ``func`` runs (untimed pass)."""
    tracemalloc.start()
    try:
        func(*args)
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def post_routes(bench, routes):
    """One POST per route, each on its own connection: Caddy replaces its admin server on every
    config change, so a kept-alive connection can be reset under the next request."""
    samples = []
    headers = dict(JSON, Connection="close")
    for route in routes:
        started = time.perf_counter()
        requests.post(bench.caddy.admin_url + ROUTES_PATH, data=json.dumps(route), headers=headers,
                      timeout=600).raise_for_status()
        samples.append(time.perf_counter() - started)
    return samples


def per_route_full(bench, desired):
    bench.fresh()
    before = common.memory(bench.pid)
    w0 = bench.writes()
    started = time.perf_counter()
    post_routes(bench, [r.json for r in desired])
    seconds = time.perf_counter() - started
    after = common.memory(bench.pid)
    return {"seconds": seconds, "requests": len(desired), "writes": bench.writes() - w0, "measured": True,
            "caddy_before_mb": before.get("VmRSS"), "caddy_peak_mb": after.get("VmHWM"),
            "caddy_after_mb": after.get("VmRSS")}


def per_route_model(bench, desired, samples):
    """Time ``samples`` POSTs at five fill levels; fit seconds-per-POST = a + b * routes present."""
    n = len(desired)
    levels = sorted({0, n // 4, n // 2, (3 * n) // 4, max(n - samples, 0)})
    points, peak, w0, posts = [], 0, bench.writes(), 0
    for level in levels:
        bench.fresh()
        bench.load(full_config(bench.initial, desired[:level]))
        extra = desired[level:level + samples]
        times = post_routes(bench, [r.json for r in extra])
        posts += len(times)
        points.append((level + (len(times) - 1) / 2, statistics.median(times)))
        peak = max(peak, common.memory(bench.pid).get("VmHWM") or 0)
    return {"n": n, "points": points, "posts": posts, "peak_mb": peak,
            "writes": bench.writes() - w0 - len(levels) * 2}  # minus the fresh() and level loads


def per_post(points, k):
    """Seconds of the POST made with ``k`` routes present: linear between the sampled levels."""
    points = sorted(points)
    if k <= points[0][0]:
        return points[0][1]
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        if k <= x1:
            return y0 + (y1 - y0) * (k - x0) / (x1 - x0) if x1 > x0 else y1
    return points[-1][1]


def model_total(model, n):
    """Sum over k < n of the interpolated cost of the POST made with k routes present."""
    return sum(per_post(model["points"], k) for k in range(n))


def median_of(runs):
    out = dict(runs[0])
    for key in ("seconds", "caddy_before_mb", "caddy_peak_mb", "caddy_after_mb"):
        vals = [r[key] for r in runs if r.get(key) is not None]
        out[key] = statistics.median(vals) if vals else None
    out["requests"] = max(r["requests"] for r in runs)
    out["writes"] = max(r["writes"] for r in runs)
    return out


# -- one size ---------------------------------------------------------------------------------------
def measure(bench, n, repeat=3, policies=False, per_route_full_max=1000, samples=3, per_route=True):
    """All variants for ``n`` routes; returns ``{variant: figures}`` (figures as printed)."""
    data = pillar(n, policies)
    desired = hecate_caddy_routes.build(data)
    full = full_config(bench.initial, desired)
    result = {"routes": n, "config_mb": len(json.dumps(full)) / 1e6, "repeat": repeat}
    bare, apply_, converged = [], [], []
    for _ in range(repeat):
        bench.fresh()
        bare.append(timed(bench, bare_load, full))
        bench.fresh()
        state_dir = bench.state_dir()
        apply_.append(timed(bench, hecate_apply, data, state_dir))
        converged.append(timed(bench, hecate_apply, data, state_dir, reset_peak=True))
    result["bare"], result["apply"], result["converged"] = median_of(bare), median_of(apply_), median_of(converged)
    # the module's memory, untimed: bare load's Python side is serialising the config
    bench.fresh()
    result["bare"]["py_peak_mb"] = traced(bare_load, bench, full)
    bench.fresh()
    state_dir = bench.state_dir()
    result["apply"]["py_peak_mb"] = traced(hecate_apply, bench, data, state_dir)
    result["converged"]["py_peak_mb"] = traced(hecate_apply, bench, data, state_dir)
    if per_route:
        if n <= per_route_full_max:
            result["per_route"] = per_route_full(bench, desired)
        else:
            model = per_route_model(bench, desired, samples)
            result["model"] = model
            result["per_route"] = {"seconds": model_total(model, n), "requests": n, "writes": n,
                                   "measured": False, "caddy_peak_mb": model["peak_mb"]}
    bench.fresh()
    return result


# -- output ---------------------------------------------------------------------------------------
def _mb(value):
    return "-" if value is None else f"{value:.0f}"


def report(res):
    base = res["bare"]["seconds"]
    print(f"  {res['routes']:,} routes, config {res['config_mb']:.2f} MB, median of {res['repeat']}")
    print(f"    {'variant':<36} {'req':>6} {'writes':>6} {'wall s':>10} {'vs load':>8}"
          f"  {'Caddy RSS MB before/peak/after':>30}  {'py peak MB':>10}")
    rows = [("(b) bare POST /load", res["bare"]), ("hecate apply (read, diff, 1 write)", res["apply"]),
            ("hecate converged re-run", res["converged"])]
    if "per_route" in res:
        label = "(a) one POST per route" + ("" if res["per_route"]["measured"] else " EXTRAPOLATED")
        rows.append((label, res["per_route"]))
    for name, fig in rows:
        mem = f"{_mb(fig.get('caddy_before_mb'))}/{_mb(fig.get('caddy_peak_mb'))}/{_mb(fig.get('caddy_after_mb'))}"
        py_mb = fig.get("py_peak_mb")
        print(f"    {name:<36} {fig['requests']:>6} {fig['writes']:>6} {fig['seconds']:>10.3f}"
              f" {fig['seconds'] / base:>7.2f}x  {mem:>30}  {'-' if py_mb is None else f'{py_mb:.1f}':>10}")
    if "model" in res:
        model = res["model"]
        pts = ", ".join(f"{k:.0f}: {s:.3f}s" for k, s in model["points"])
        print(f"    (a) is EXTRAPOLATED from {model['posts']} POSTs timed at fill levels (routes present: median "
              f"seconds per POST) {pts}; total = sum over k < n of the POST cost interpolated linearly between them")


# The targets (#19, "Cost as the work grows") for the largest size measured.
TARGETS = {"apply": 1.3, "converged": 0.3, "memory_mb": 50}
TARGET_ROUTES = 10_000


def _ratio(res, variant):
    return res[variant]["seconds"] / res["bare"]["seconds"]


def scale_table(results):
    """routes -> wall time, requests, writes, memory of bare load, apply and converged re-run."""
    print("  routes -> wall time, requests, writes, memory (median wall time; module MB: peak of Python "
          "allocations during the call; Caddy MB: its peak RSS)")
    print(f"    {'routes':>7} {'config MB':>9} | {'bare load s':>11} | {'apply s':>8} {'x load':>6} {'req':>3} "
          f"{'wr':>2} {'module MB':>9} | {'converged s':>11} {'x load':>6} {'req':>3} {'wr':>2} {'module MB':>9} | "
          f"{'Caddy MB':>8}")
    for res in results:
        app, conv = res["apply"], res["converged"]
        print(f"    {res['routes']:>7,} {res['config_mb']:>9.2f} | {res['bare']['seconds']:>11.3f} | "
              f"{app['seconds']:>8.3f} {_ratio(res, 'apply'):>5.2f}x {app['requests']:>3} {app['writes']:>2} "
              f"{app.get('py_peak_mb', 0):>9.1f} | {conv['seconds']:>11.3f} {_ratio(res, 'converged'):>5.2f}x "
              f"{conv['requests']:>3} {conv['writes']:>2} {conv.get('py_peak_mb', 0):>9.1f} | "
              f"{_mb(app.get('caddy_peak_mb')):>8}")


def targets(res):
    """One line per target of the issue, for the size ``res``: figure, target, met or not."""
    rows = [
        ("apply", _ratio(res, "apply"), TARGETS["apply"], "x a bare POST /load"),
        ("converged re-run", _ratio(res, "converged"), TARGETS["converged"], "x a bare POST /load"),
        ("module memory of the apply", res["apply"].get("py_peak_mb") or 0, TARGETS["memory_mb"], " MB"),
    ]
    scope = "" if res["routes"] == TARGET_ROUTES else f"; the targets are set for {TARGET_ROUTES:,}"
    print(f"  targets at {res['routes']:,} routes ({common.machine()}{scope}):")
    for name, value, target, unit in rows:
        fmt = ".1f" if unit == " MB" else ".2f"
        verdict = "met" if value <= target else "NOT MET"
        print(f"    {name:<27} {value:>6{fmt}}{unit:<20} (target <= {target:{fmt}}{unit}): {verdict}")
    print(f"    module memory of the converged re-run: {res['converged'].get('py_peak_mb') or 0:.1f} MB")


def main(argv):
    run(argv)
    return 0


def run(argv):
    """Measure and print; returns the figures of each size (the smoke test checks them)."""
    parser = argparse.ArgumentParser(prog="bench_caddy", description=__doc__.split("\n\n")[0])
    parser.add_argument("--routes", default="100,1000,10000", help="comma-separated route counts")
    parser.add_argument("--policies", action="store_true", help="give every route the security+common policies")
    parser.add_argument("--repeat", type=int, default=3, help="runs of the fast variants (median shown)")
    parser.add_argument("--per-route-full", type=int, default=1000,
                        help="largest route count for which every per-route POST is made (above: extrapolated)")
    parser.add_argument("--per-route-samples", type=int, default=3, help="POSTs timed per fill level")
    parser.add_argument("--skip-per-route", action="store_true")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny sizes (20 measured, 40 extrapolated), 1 run, no Caddy restarts "
                             "(memory figures meaningless)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.routes, args.repeat, args.per_route_full, args.per_route_samples = "20,40", 1, 20, 2
    sizes = [int(s) for s in args.routes.split(",") if s.strip()]

    version = subprocess.run([lab_caddy.caddy_binary(), "version"], capture_output=True, text=True,
                             check=False).stdout.split(" ")[0].strip()
    print(f"Caddy {version} on loopback, routes {'with' if args.policies else 'without'} the "
          f"security+common policies; {common.machine()}")
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-caddy-") as tmp:
        bench = Bench(tmp, restart=not args.smoke)
        try:
            for n in sizes:
                res = measure(bench, n, args.repeat, args.policies, args.per_route_full,
                              args.per_route_samples, per_route=not args.skip_per_route)
                report(res)
                results.append(res)
            scale_table(results)
            targets(max(results, key=lambda r: r["routes"]))
            measured = [r for r in results if r.get("per_route", {}).get("measured")]
            models = [r["model"] for r in results if "model" in r]
            if measured and models:
                for res in measured:
                    print(f"  check of the extrapolation: the samples taken for {models[-1]['n']:,} routes give "
                          f"{model_total(models[-1], res['routes']):.2f} s for {res['routes']:,} per-route POSTs, "
                          f"measured {res['per_route']['seconds']:.2f} s")
        finally:
            bench.stop()
    return results


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
