"""
``python tests/shards.py [pytest args]``: the suite in two fixed shards run side by side.

Most of the suite's time is Salt processes (CLI start-up, job publication, minion pillar
compilation) and simulators waiting on each other, one core at a time; two pytest sessions,
each with its own salt-master, minions, Caddy and simulators, use both cores of a CI machine.
The shards are fixed lists of files, not a dynamic scheduler, so every run executes the same
files in the same order in each session (tests that share a session's simulators see the same
predecessors every time). Each shard gets its own ``--basetemp``; their outputs are printed
one after the other when both have finished, and the exit status is the worse of the two.
"""

import os
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The end-to-end orchestration files (about half of the suite's time) in one shard...
SHARD_A = [
    "tests/integration/test_orchestration.py",
    "tests/integration/test_faults.py",
    "tests/integration/test_malformed_pillar.py",
    "tests/integration/test_runner_lock_record.py",
    "tests/integration/test_packaging.py",
    "tests/integration/test_caddy_import.py",  # reads only: safe beside the orchestration files
]
# ...and everything else in the other (pytest's own order: contract, functional, integration, unit).
SHARD_B_IGNORES = [f"--ignore={path}" for path in SHARD_A]


def main(args):
    tmp = tempfile.mkdtemp(prefix="hecate-shards-")
    shards = {"A": SHARD_A, "B": SHARD_B_IGNORES + ["tests"]}
    procs = {}
    started = time.monotonic()
    for name, paths in shards.items():
        log = open(os.path.join(tmp, f"shard-{name}.log"), "w+", encoding="utf-8")  # noqa: SIM115
        cmd = [sys.executable, "-m", "pytest", f"--basetemp={os.path.join(tmp, name)}", *args, *paths]
        print(f"shard {name}: {' '.join(cmd[1:])}", flush=True)
        procs[name] = (subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT), log)  # noqa: S603
    codes = {}
    for name, (proc, log) in procs.items():
        codes[name] = proc.wait()
        log.seek(0)
        print(f"\n===== shard {name} (exit {codes[name]}) =====", flush=True)
        sys.stdout.write(log.read())
        log.close()
    print(f"\nshards: {', '.join(f'{n} exit {c}' for n, c in codes.items())}; "
          f"{time.monotonic() - started:.0f} s in all", flush=True)
    # pytest: 0 passed, 5 nothing collected (a shard deselected entirely), anything else failed
    bad = [c for c in codes.values() if c not in (0, 5)]
    return max(bad) if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
