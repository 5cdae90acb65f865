"""
Consul client figures against the lab simulator: KV round trips, CAS writes, lock
acquire+release, and how many requests a converged external-service check costs.

    python -m bench consul [--keys N | --smoke]
"""

import argparse
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

import hecate_consul_client as hc  # noqa: E402
from bench import common  # noqa: E402
from lab.sim import SimHandle  # noqa: E402


def _timed(func, n):
    samples = []
    for i in range(n):
        started = time.perf_counter()
        func(i)
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples), max(samples)


def main(argv):
    parser = argparse.ArgumentParser(prog="bench_consul")
    parser.add_argument("--keys", type=int, default=200)
    parser.add_argument("--smoke", action="store_true", help="10 keys, 5 locks")
    args = parser.parse_args(argv)
    n, locks = (10, 5) if args.smoke else (args.keys, 50)
    print(f"Consul simulator, hecate_consul_client; {common.machine()}")
    with tempfile.TemporaryDirectory() as tmp:
        sim = SimHandle("consul", tmp, {"session_ttl_min": "1s"}).start()
        try:
            client = hc.ConsulClient({"url": sim.url})
            med, worst = _timed(lambda i: client.kv_put(f"bench/kv/{i}", {"i": i}), n)
            print(f"kv put            median {med:6.2f} ms  max {worst:6.2f} ms  ({n} keys)")
            med, worst = _timed(lambda i: client.get_json(f"bench/kv/{i}"), n)
            print(f"kv get (json)     median {med:6.2f} ms  max {worst:6.2f} ms")

            def cas(i):
                _, entry = client.kv_get(f"bench/kv/{i}")
                client.kv_put_cas(f"bench/kv/{i}", {"i": i + 1}, entry["ModifyIndex"])

            med, worst = _timed(cas, n)
            print(f"kv read+cas write median {med:6.2f} ms  max {worst:6.2f} ms")

            def lock(i):
                session = client.lock_acquire("bench/lock", f"bench-{i}", ttl="10s", lock_delay="0s")
                client.lock_release("bench/lock", session)

            med, worst = _timed(lock, locks)
            print(f"lock acquire+release median {med:6.2f} ms  max {worst:6.2f} ms (6 requests each)")
            before = dict(client.stats)
            client.kv_list("bench/kv/")
            print(f"list {n} keys: {sum(client.stats.values()) - sum(before.values())} request(s)")
        finally:
            sim.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
