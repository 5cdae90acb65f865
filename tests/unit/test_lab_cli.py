"""The lab command's summary of an orchestration return (``python -m lab orch``)."""

import pytest

from lab import cli


def state(changes=None, result=True):
    return {"result": result, "changes": changes or {}, "comment": "", "__id__": "x"}


def test_count_changes_of_state_function_and_direct_steps():
    # a salt.state step: changed states per minion; a minion's render errors are a list
    assert cli.count_changes({"out": "highstate", "ret": {
        "cloud": {"a": state({"x": 1}), "b": state()},
        "local": {"c": state({"y": 2})},
    }}) == 2
    # a salt.function step: the return is the function's own (here caddy.rollback's, whose
    # values are lists) - one per minion, never read as state returns
    assert cli.count_changes({"ret": {"cloud": {"restored": [], "skipped": [], "comment": "nothing"}}}) == 1
    assert cli.count_changes({"ret": {"local": ["render error"]}}) == 1
    assert cli.count_changes({"return": {"result": True}}) == 1  # a direct state / runner
    assert cli.count_changes({}) == 0


def test_print_summary_of_a_failed_run_with_a_function_step(capsys):
    data = {"retcode": 1, "data": {"master": {
        "salt_|-nomad_jobs_|-nomad_jobs_|-state": dict(
            state(result=False), __id__="nomad_jobs", __run_num__=0, comment="Run failed on minions: local",
            changes={"ret": {"local": {"j": state({"version": {"old": 0, "new": 1}}, result=False)}}}),
        "salt_|-caddy_rollback_|-caddy.rollback_|-function": dict(
            state(), __id__="caddy_rollback", __run_num__=1,
            changes={"ret": {"cloud": {"restored": [], "skipped": [], "comment": "nothing to roll back"}}}),
    }}}
    assert cli.print_summary(data, 1.5) == 1
    out = capsys.readouterr().out
    assert "nomad_jobs" in out and "FAILED" in out and "Run failed on minions: local" in out
    assert "caddy_rollback" in out and "retcode 1" in out


def test_up_refuses_fewer_than_one_edge_or_node(capsys):
    """`python -m lab up --edges 0` is refused before anything starts."""
    for argv in (["up", "--edges", "0"], ["up", "--nodes", "0"]):
        with pytest.raises(SystemExit) as exc:
            cli.main(argv + ["--dir", "/nonexistent/lab"])
        assert exc.value.code == 2
    assert "--edges and --nodes are at least 1" in capsys.readouterr().err
