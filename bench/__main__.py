"""
``python -m bench [--smoke] [name ...]``: run the benchmarks (all by default) and print figures.

Each ``bench/bench_<name>.py`` has ``main(argv)``; it starts what it needs (simulators, Caddy,
nginx, the lab) in a temporary directory and stops it again. ``--smoke`` runs each in a tiny
size (the orchestration benchmark has no tiny size and is skipped by ``--smoke``; the scale
benchmark's ``--smoke`` starts no Salt, only checks its counting and its report). A benchmark
that fails is reported and the others still run; the exit status says whether all passed.
"""

import importlib
import os
import pkgutil
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
for path in (REPO, os.path.join(REPO, "_utils")):
    if path not in sys.path:
        sys.path.insert(0, path)

NO_SMOKE = {"orch"}  # needs the whole lab: minutes, whatever the size


def names():
    return sorted(m.name[len("bench_"):] for m in pkgutil.iter_modules([HERE]) if m.name.startswith("bench_"))


def main(argv):
    smoke = "--smoke" in argv
    wanted = [a for a in argv if a != "--smoke"]
    have = names()
    unknown = set(wanted) - set(have)
    if unknown:
        sys.exit(f"unknown benchmark(s): {', '.join(sorted(unknown))}; have: {', '.join(have)}")
    wanted = wanted or [n for n in have if not (smoke and n in NO_SMOKE)]
    timings, failed = [], []
    started = time.monotonic()
    for name in wanted:
        print(f"== bench {name}", flush=True)
        t0 = time.monotonic()
        try:
            rc = importlib.import_module(f"bench.bench_{name}").main(["--smoke"] if smoke else [])
        except Exception:  # pylint: disable=broad-except
            traceback.print_exc()
            rc = 1
        timings.append((name, time.monotonic() - t0))
        if rc:
            failed.append(name)
        sys.stdout.flush()
    print("== " + ", ".join(f"{n} {t:.0f} s" for n, t in timings) + f"; total {time.monotonic() - started:.0f} s"
          + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
