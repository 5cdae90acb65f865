"""
Apply 1,000 Caddy routes: hecate's guarded apply vs the draft's one request per route vs
a bare ``POST /load`` of the same JSON, against the real Caddy on loopback.

``python -m bench caddy`` (or ``python bench/bench_caddy.py [--routes N] [--policies]
[--repeat K] [--skip-per-route]``). Prints requests and wall time; asserts nothing.

- hecate: build the routes from a pillar-shaped dict, read ``/config/`` with its ETag,
  diff, save the snapshot, one ``PATCH`` guarded by ``If-Match`` (``hecate_caddy_routes.apply``)
- converged: the same again with nothing to change (0 writes expected)
- bare load: one ``POST /load`` of the config hecate wrote (the lower bound)
- per route: one ``POST .../routes`` per route, as the draft orchestration did
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
for _path in (REPO, os.path.join(REPO, "_utils")):
    if _path not in sys.path:
        sys.path.insert(0, _path)

import requests  # noqa: E402

import hecate_caddy_client  # noqa: E402
import hecate_caddy_routes  # noqa: E402
from lab import caddy as lab_caddy  # noqa: E402

ROUTES_PATH = "/config/apps/http/servers/hecate/routes"


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


def _reset(caddy, initial):
    requests.post(
        caddy.admin_url + "/load",
        data=json.dumps(initial),
        headers={"Content-Type": "application/json", "Cache-Control": "must-revalidate"},
        timeout=120,
    ).raise_for_status()


def _writes(caddy):
    return len(caddy.admin_writes())


def run_hecate(caddy, data, state_dir):
    admin = hecate_caddy_client.CaddyAdmin({"admin_url": caddy.admin_url, "timeout": 300})
    store = hecate_caddy_client.SnapshotStore(state_dir)
    w0 = _writes(caddy)
    started = time.perf_counter()
    desired = hecate_caddy_routes.build(data)
    out = hecate_caddy_routes.apply(
        admin, "hecate", lambda live: hecate_caddy_routes.plan_set(live, desired), test=False, store=store
    )
    elapsed = time.perf_counter() - started
    return {
        "seconds": elapsed,
        "requests": sum(admin.stats.values()),
        "writes": _writes(caddy) - w0,
        "changed": bool(out["changes"]),
    }


def run_bare_load(caddy, full_config):
    body = json.dumps(full_config)
    w0 = _writes(caddy)
    started = time.perf_counter()
    requests.post(
        caddy.admin_url + "/load", data=body, headers={"Content-Type": "application/json"}, timeout=300
    ).raise_for_status()
    return {"seconds": time.perf_counter() - started, "requests": 1, "writes": _writes(caddy) - w0}


def run_per_route(caddy, routes):
    session = requests.Session()
    w0 = _writes(caddy)
    started = time.perf_counter()
    for route in routes:
        session.post(
            caddy.admin_url + ROUTES_PATH,
            data=json.dumps(route),
            headers={"Content-Type": "application/json"},
            timeout=300,
        ).raise_for_status()
    return {"seconds": time.perf_counter() - started, "requests": len(routes), "writes": _writes(caddy) - w0}


def _line(name, res, base=None):
    ratio = f"{res['seconds'] / base:6.2f}x" if base else "       "
    print(f"  {name:<34} {res['requests']:>6} req {res['writes']:>6} writes {res['seconds']:>9.3f} s  {ratio}")


def main(argv):
    parser = argparse.ArgumentParser(prog="bench_caddy", description=__doc__.split("\n")[1])
    parser.add_argument("--routes", type=int, default=1000)
    parser.add_argument("--policies", action="store_true", help="give every route the security+common policies")
    parser.add_argument("--repeat", type=int, default=3, help="runs of the fast variants (median shown)")
    parser.add_argument("--skip-per-route", action="store_true")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench-caddy-") as tmp:
        caddy = lab_caddy.Caddy(os.path.join(tmp, "caddy")).start()
        try:
            with open(caddy.config_path, encoding="utf-8") as fh:
                initial = json.load(fh)
            data = pillar(args.routes, args.policies)
            desired = hecate_caddy_routes.build(data)
            full = json.loads(json.dumps(initial))
            full["apps"]["http"]["servers"]["hecate"]["routes"] = [r.json for r in desired]
            size = len(json.dumps(full))
            print(
                f"Caddy {args.routes} routes ({'with' if args.policies else 'without'} policies), "
                f"config {size / 1e6:.2f} MB, median of {args.repeat}"
            )

            bare, hecate, converged = [], [], []
            for i in range(args.repeat):
                _reset(caddy, initial)
                bare.append(run_bare_load(caddy, full))
                _reset(caddy, initial)
                hecate.append(run_hecate(caddy, data, os.path.join(tmp, f"state{i}")))
                converged.append(run_hecate(caddy, data, os.path.join(tmp, f"state{i}")))

            def median(runs):
                best = dict(runs[0])
                best["seconds"] = statistics.median(r["seconds"] for r in runs)
                best["requests"] = max(r["requests"] for r in runs)
                best["writes"] = max(r["writes"] for r in runs)
                return best

            base = median(bare)["seconds"]
            _line("(b) bare POST /load", median(bare), base)
            _line("hecate apply (read, diff, 1 write)", median(hecate), base)
            _line("hecate converged re-run", median(converged), base)
            if not args.skip_per_route:
                _reset(caddy, initial)
                per_route = run_per_route(caddy, [r.json for r in desired])
                _line("(a) one POST per route (draft)", per_route, base)
            ok = median(hecate)["requests"] <= 3 and median(converged)["writes"] == 0
            print(
                f"  aim: <= 3 requests, <= 1.5x bare load, converged 0 writes -> "
                f"{median(hecate)['requests']} requests, "
                f"{median(hecate)['seconds'] / base:.2f}x, {median(converged)['writes']} writes"
                + ("" if ok else "  (MISSED)")
            )
        finally:
            caddy.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
