"""The Caddy benchmark runs (small), and its request counts hold; time is never asserted."""

import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from bench import bench_caddy  # noqa: E402


def test_bench_caddy_small(capsys):
    assert bench_caddy.main(["--routes", "20", "--repeat", "1"]) == 0
    out = capsys.readouterr().out
    lines = {line.split("  ")[1].strip(): line for line in out.splitlines() if line.startswith("  ") and " req " in line}
    assert " 2 req      1 writes" in lines["hecate apply (read, diff, 1 write)"]
    assert " 1 req      0 writes" in lines["hecate converged re-run"]
    assert "20 req     20 writes" in lines["(a) one POST per route (draft)"]
