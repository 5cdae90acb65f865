"""
Nomad client against the simulator: how long a converged check (parse + validate + plan)
takes and how many requests it makes, a register followed to a successful deployment,
and how fast a blocking query wakes up after a write. Prints figures; asserts nothing.
"""

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
for _path in (REPO, os.path.join(REPO, "_utils")):
    if _path not in sys.path:
        sys.path.insert(0, _path)

import hecate_nomad_client as hn  # noqa: E402
from bench import common  # noqa: E402
from lab import topology  # noqa: E402
from lab.sim import SimHandle  # noqa: E402

HCL = """
job "bench" {
  datacenters = ["dc1"]
  group "g" {
    network {
      port "http" {
        to = 80
      }
    }
    service {
      name = "bench"
      port = "http"
      check {
        type     = "http"
        path     = "/health"
        interval = "10s"
        timeout  = "2s"
      }
    }
    task "t" {
      driver = "docker"
      config {
        image = "nginx:%s"
        ports = ["http"]
      }
    }
  }
}
"""


def main(argv):
    parser = argparse.ArgumentParser(prog="bench_nomad")
    parser.add_argument("--checks", type=int, default=20, help="converged checks timed")
    parser.add_argument("--smoke", action="store_true", help="3 converged checks")
    args = parser.parse_args(argv)
    checks = 3 if args.smoke else args.checks
    print(f"Nomad simulator, hecate_nomad_client; {common.machine()}")
    with tempfile.TemporaryDirectory() as workdir:
        # the lab's Nomad: ACLs on, hecate's own token (topology.NOMAD_POLICY)
        secrets = topology.new_lab_secrets()
        sim = SimHandle("nomad", workdir, topology.nomad_options(lab_secrets=secrets)).start()
        try:
            client = hn.NomadClient({"url": sim.url}, secrets["nomad_token"])
            job = client.parse(HCL % "1.27")
            started = time.monotonic()
            reply = client.register(job, modify_index=0)
            outcome = hn.Rollout(client, "bench", timeout=60).follow(reply["EvalID"], 0, expect_deployment=True)
            print(f"register -> deployment {outcome['status']}: {time.monotonic() - started:.3f}s "
                  f"(simulated time scale 0.01)")
            timings = []
            sim.clear_requests()
            for _ in range(checks):
                started = time.monotonic()
                parsed = client.parse(HCL % "1.27")
                client.validate(parsed)
                plan = client.plan(parsed)
                timings.append(time.monotonic() - started)
                if plan["Diff"]["Type"] != "None":
                    raise RuntimeError(f"the plan of an unchanged job is not empty: {plan['Diff']['Type']}")
            print(f"converged check (parse+validate+plan): median {statistics.median(timings) * 1000:.1f} ms, "
                  f"{len(sim.requests()) / checks:.0f} requests each, 0 writes")
            _, index = client.get("/v1/jobs")
            woke = {}

            def block():
                _, woke["index"] = client.get("/v1/jobs", index=index, wait=10)
                woke["at"] = time.monotonic()

            reader = threading.Thread(target=block)
            reader.start()
            newer = client.parse(HCL % "1.28")
            modify_index = client.job("bench")["JobModifyIndex"]
            time.sleep(0.3)
            written = time.monotonic()
            client.register(newer, modify_index=modify_index)
            reader.join()
            print(f"blocking query woke up {(woke['at'] - written) * 1000:.1f} ms after the register call started "
                  f"(index {index} -> {woke['index']})")
        finally:
            sim.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
