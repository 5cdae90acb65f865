"""
Every benchmark runs in a tiny size (``--smoke``), so bench code does not rot. Request and
write counts are checked; time never is. The orchestration benchmark needs the whole lab
(minutes): here only its construction of the no-op twin is checked.
"""

import os
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from bench import __main__ as bench_main  # noqa: E402
from bench import bench_authentik, bench_caddy, bench_orch, bench_scale  # noqa: E402


def test_every_benchmark_is_listed():
    assert {"authentik", "caddy", "consul", "nginx_streams", "nomad", "orch", "scale"} <= set(bench_main.names())


def test_caddy_counts(capsys):
    small, extrapolated = bench_caddy.run(["--smoke"])
    out = capsys.readouterr().out
    assert "routes -> wall time, requests, writes, memory" in out
    assert "targets at 40 routes" in out and "module memory of the apply" in out
    assert (small["apply"]["requests"], small["apply"]["writes"]) == (2, 1)
    assert (small["converged"]["requests"], small["converged"]["writes"]) == (1, 0)
    assert (small["bare"]["requests"], small["bare"]["writes"]) == (1, 1)
    assert small["per_route"]["measured"] and small["per_route"]["writes"] == small["routes"] == 20
    assert not extrapolated["per_route"]["measured"]
    model = extrapolated["model"]
    assert len(model["points"]) == 5 and model["writes"] == model["posts"] == 10
    assert extrapolated["per_route"]["seconds"] > 0 and small["apply"]["py_peak_mb"] > 0


def test_authentik_counts():
    res = bench_authentik.run(["--smoke"])
    create, update, converged = res["create"], res["update"], res["converged"]
    assert create["failed"] == update["failed"] == converged["failed"] == 0
    assert create["changed"] == create["states"] == 10
    for kinds in create["per_kind"].values():
        assert kinds["POST"] == 5 and kinds["GET list page"] >= 1
    assert update["changed"] == 2
    assert [k.get("PATCH") for k in update["per_kind"].values()] == [1, 1]
    assert converged["changed"] == 0
    assert all(set(k) == {"GET list page"} for k in converged["per_kind"].values())


def test_scale_counts_and_report(capsys):
    figures = bench_scale.run(["--smoke"])
    out = capsys.readouterr().out
    # one GET and one PUT against the real Consul simulator: 2 requests, 1 write
    assert figures["counted"] == {"consul": (2, 1)}
    assert set(figures["ratios"]) == {"1e3n/1e1n"}
    assert "nodes x routes x objects -> wall time, requests, writes, memory" in out
    rows = figures["table"]
    assert [(r["nodes"], r["run"]) for r in rows] == [(1, "first"), (1, "converged"), (3, "first"), (3, "converged")]
    assert all((r["requests"], r["writes"]) == (2, 1) for r in rows)
    assert rows[0]["routes"] == len(bench_scale.topology.lab_routes()) and rows[0]["objects"] == 5
    # a fabricated minion log: the step's job received 0.05 s after the step began, its process 0.1 s later, returned
    # 0.2 s after that; the step (0.4 s) ended 0.05 s after the return
    spans = figures["spans"]["preflight"]
    assert spans["minions"] == 1
    assert [round(spans[k], 3) for k in ("publish", "spawn", "job", "gather")] == [0.05, 0.1, 0.2, 0.05]
    # and before it, a probe the step ran first (as Salt's subset does) that returned 0.04 s after the start
    assert round(spans["before"], 3) == 0.04 and spans["before_jobs"] == ["sys.list_functions"]
    assert "where a step's time goes" in out


@pytest.mark.parametrize("name", ["consul", "nomad", "nginx_streams"])
def test_other_benchmarks_run(name, capsys):
    assert bench_main.main(["--smoke", name]) == 0
    out = capsys.readouterr().out
    assert "FAILED" not in out and "Traceback" not in out


def test_orch_noop_twin_keeps_steps_targets_and_requisites():
    high = {
        "validate": {"hecate": [{"env": "lab"}, "validated", {"order": 1}], "__sls__": "orch.x", "__env__": "base"},
        "preflight": {"salt": [{"tgt": "G@roles:a"}, {"tgt_type": "compound"}, {"sls": ["hecate.preflight"]},
                               {"pillar": {"hecate_run": {"id": "r"}}}, {"queue": True},
                               {"require": [{"hecate": "validate"}]}, "state", {"order": 2}],
                      "__sls__": "orch.x", "__env__": "base"},
        "lock": {"salt": [{"name": "hecate.lock"}, {"env": "lab"}, {"require": [{"salt": "preflight"}]}, "runner"]},
        "rollback": {"salt": [{"name": "caddy.rollback"}, {"tgt": "G@roles:a"}, {"onfail": [{"salt": "preflight"}]},
                              "function"]},
    }
    files = bench_orch.noop_twin(high, {"preflight": {"cloud": (3, 0.5), "local": (2, 0.1)}})
    assert set(files) == {"bench_noop.orch", "bench_noop.preflight"}
    import yaml  # pylint: disable=import-outside-toplevel

    twin = yaml.safe_load(files["bench_noop.orch"])
    assert twin["validate"] == {"test": [{"env": "lab"}, {"order": 1}, "succeed_without_changes"]}
    assert twin["preflight"]["salt"] == [
        {"tgt": "G@roles:a"}, {"tgt_type": "compound"}, {"sls": ["bench_noop.preflight"]},
        {"pillar": {"hecate_run": {"id": "r"}}}, {"queue": True},
        {"require": [{"test": "validate"}]}, {"order": 2}, "state",
    ]
    assert twin["lock"]["salt"] == [
        {"name": "test.arg"}, {"env": "lab"}, {"require": [{"salt": "preflight"}]}, "runner",
    ]
    assert twin["rollback"]["salt"][0] == {"name": "test.arg"} and twin["rollback"]["salt"][-1] == "function"
    assert '{"cloud": 3, "local": 2}' in files["bench_noop.preflight"]
    assert "test.succeed_without_changes" in files["bench_noop.preflight"]
