"""
A converged ``orch.bionicgpt`` re-run vs the same orchestration made of no-op states
(Salt's own floor): what hecate itself costs per run; and its ``test=True`` preview vs the
converged run. Prints figures; asserts nothing.

    python -m bench orch                 # 3 runs of each, interleaved
    python -m bench.bench_orch --runs 5 --keep /tmp/orch-lab

1. Starts the lab (``lab.cli.Lab``, as the test suite's fast lab: simulators, real Caddy, the
   Authentik simulator, a salt-master and the cloud/local minions) in a temporary directory;
   the master gets one more file root, holding the no-op orchestration, so nothing of it
   lives under salt/ or orch/ (where it would ship). The lab's Salt processes may write
   Python's bytecode caches, as a minion does in production, whatever
   ``PYTHONDONTWRITEBYTECODE`` says here: without them every job of a minion compiles
   hecate's modules from source again (Salt's own come precompiled with its package), a
   cost of this machine's setting, not of hecate.
2. Runs ``orch.bionicgpt pillar='{"env": "lab"}'`` until a run changes nothing (a first
   deployment, then a converged run).
3. Builds the no-op twin from the orchestration Salt compiled (``state.orch_show_sls``): the
   same step ids, order, targets, pillar, ``queue``/``expect_minions`` and requisites
   (require, onfail, onchanges), with
   - every ``salt.state`` step applying ``bench_noop.<step>``: as many
     ``test.succeed_without_changes`` states on each minion as the real step ran there
     (counted in the master's job cache from the converged run);
   - the runner steps (lock, record, unlock) calling the runner ``test.arg`` with the same
     arguments, the ``salt.function`` step (caddy.rollback) calling ``test.arg`` on the
     same target, and the master-side ``hecate.validated`` being ``test.succeed_without_changes``.
4. Times ``--runs`` runs of each: converged, no-op, ``test=True``, converged, no-op, ...
   so that load from other processes on the machine hits all alike; medians are shown,
   and the ratios pair by pair (each converged run against the no-op run that follows it,
   each ``test=True`` run against the converged run before it), whose median holds when
   the machine's speed drifts.

Figures: the wall time of ``salt-run state.orch`` (the operator's view, including salt-run's
own start-up), the orchestration's span (first step start to last step end), the CPU time of
the Salt processes (salt-run, the master and the minions with every process they forked: on a
shared machine it drifts less than wall time), and per step the duration Salt reports for it,
hecate vs no-op vs ``test=True``; for hecate's steps also the time the states themselves took
on the minions (from the job cache: the rest of a step is Salt publishing the job, the minion
compiling pillar, loading modules, rendering the SLS and returning). Last, the two ratios of
issue #19: converged / no-op twin (target <= 1.2) and ``test=True`` / converged (<= 1.0).
"""

import argparse
import contextlib
import datetime
import io
import json
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
for _path in (REPO, os.path.join(REPO, "_utils")):
    if _path not in sys.path:
        sys.path.insert(0, _path)

import hecate_plan  # noqa: E402
from bench import common  # noqa: E402
from lab import cli as lab_cli  # noqa: E402
from lab import topology  # noqa: E402

NOOP_DIR = "bench_noop"
ORCH = "orch.bionicgpt"


class BenchLab(lab_cli.Lab):
    """The lab, with one more file root on the master (the no-op orchestration's)."""

    def __init__(self, workdir, extra_root):
        super().__init__(workdir)
        self.extra_root = extra_root

    def _write_conf(self, conf_dir, name, data):  # pylint: disable=arguments-differ
        if name == "master":
            data = dict(data)
            data["file_roots"] = {env: list(roots) for env, roots in data["file_roots"].items()}
            data["file_roots"].setdefault("base", []).append(self.extra_root)
        lab_cli.Lab._write_conf(conf_dir, name, data)

    def orch_sls(self, sls, test=False):
        """
        ``salt-run state.orch <sls> [test=True]``: (return, wall seconds, CPU seconds of
        salt-run, the salt-master and the minions with every process they forked).
        """
        args = ["state.orch", sls, json_pillar(), "--out=json"] + (["test=True"] if test else [])
        salt_pids = [pid for name, pid in (self.load_state() or {}).get("pids", {}).items()
                     if name.startswith("salt-")]
        cpu_before = common.tree_cpu(salt_pids) + _children_cpu()
        started = time.monotonic()
        out = self.salt_run(args, check=False)
        elapsed = time.monotonic() - started
        cpu = common.tree_cpu(salt_pids) + _children_cpu() - cpu_before
        try:
            return json.loads(out.stdout), elapsed, cpu
        except ValueError as exc:
            raise RuntimeError(f"state.orch {sls} printed no JSON: {out.stdout[-2000:]} {out.stderr[-2000:]}") from exc

    def show_sls(self, sls):
        out = self.salt_run(["state.orch_show_sls", sls, json_pillar(), "--out=json"], check=True)
        (high,) = json.loads(out.stdout).values()
        if not isinstance(high, dict):
            raise RuntimeError(f"state.orch_show_sls {sls}: {high}")
        return high

    def job_returns(self, jid):
        """``{minion: {state key: state return}}`` of one job, from the master's job cache."""
        import salt.config  # pylint: disable=import-outside-toplevel
        import salt.loader  # pylint: disable=import-outside-toplevel

        if not hasattr(self, "_returners"):
            opts = salt.config.master_config(os.path.join(self.master_conf, "master"))
            self._returners = salt.loader.returners(opts, {})  # pylint: disable=attribute-defined-outside-init
        found = self._returners["local_cache.get_jid"](jid) or {}
        return {minion: data.get("return") for minion, data in found.items()}


def _children_cpu():
    """CPU seconds of this process's reaped children (salt-run)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def json_pillar():
    return f"pillar={json.dumps({'env': topology.ENV})}"


# -- reading an orchestration return ------------------------------------------------------------
def steps(data):
    """``{step id: step return}`` in run order."""
    (master,) = data["data"].values()
    if not isinstance(master, dict):
        raise RuntimeError(f"orchestration failed: {master}")
    ordered = sorted(master.items(), key=lambda kv: kv[1].get("__run_num__", 0))
    return {ret.get("__id__", key.split("_|-")[1]): dict(ret, _key=key) for key, ret in ordered}


def span(data):
    """Seconds from the first step's start to the last step's end."""
    starts, ends = [], []
    for ret in steps(data).values():
        if "start_time" not in ret:
            continue
        start = datetime.datetime.strptime(ret["start_time"], "%H:%M:%S.%f")
        starts.append(start)
        ends.append(start + datetime.timedelta(milliseconds=ret.get("duration", 0)))
    if not starts:
        return 0.0
    total = (max(ends) - min(starts)).total_seconds()
    return total + 86400 if total < 0 else total  # ran across midnight


def ran_steps(data):
    return {sid for sid, ret in steps(data).items() if ret.get("__state_ran__", True) is not False}


def failures(data):
    out = [f"{sid}: {str(ret.get('comment'))[:300]}" for sid, ret in steps(data).items() if ret.get("result") is False]
    if data.get("retcode") and not out:
        out.append(f"retcode {data.get('retcode')}")
    return out


# -- the no-op twin --------------------------------------------------------------------------------
def state_counts(lab, data):
    """Per ``salt.state`` step of a converged run: ``{minion: (states, seconds in states)}``."""
    counts = {}
    for sid, ret in steps(data).items():
        if not ret["_key"].endswith("_|-state") or "__jid__" not in ret:
            continue
        per_minion = {}
        for minion, states in lab.job_returns(ret["__jid__"]).items():
            if isinstance(states, dict):
                secs = sum(s.get("duration", 0) for s in states.values() if isinstance(s, dict)) / 1000
                per_minion[minion] = (len(states), secs)
        counts[sid] = per_minion
    return counts


def noop_twin(high, counts):
    """The compiled orchestration ``high`` with every step made a no-op; ``{sls name: text}``."""
    files, twin, renamed = {}, {}, {}
    for sid, body in high.items():
        (module,) = [k for k in body if not k.startswith("__")]
        args = body[module]
        fun = next(a for a in args if isinstance(a, str))
        params = [a for a in args if isinstance(a, dict)]
        if (module, fun) == ("salt", "state"):
            sls = f"{NOOP_DIR}.{sid}"
            params = [{"sls": [sls]} if "sls" in p else p for p in params]
            files[sls] = noop_sls(sid, {m: n for m, (n, _) in counts.get(sid, {}).items()})
            new_module, new_fun = "salt", "state"
        elif (module, fun) in (("salt", "runner"), ("salt", "function")):
            params = [{"name": "test.arg"} if "name" in p else p for p in params]
            new_module, new_fun = "salt", fun
        else:  # hecate.validated on the master
            new_module, new_fun = "test", "succeed_without_changes"
        renamed[sid] = new_module
        twin[sid] = {new_module: params + [new_fun]}
    # requisites name (module, id): follow the one step whose module changed (validate)
    for body in twin.values():
        for param in next(iter(body.values())):
            if not isinstance(param, dict):
                continue
            for kind in ("require", "onfail", "onchanges", "watch", "prereq"):
                if kind in param:
                    param[kind] = [{renamed.get(ref, mod): ref} for req in param[kind] for mod, ref in req.items()]
    files[f"{NOOP_DIR}.orch"] = "#!yaml\n" + yaml.safe_dump(twin, default_flow_style=False, sort_keys=False)
    return files


def noop_sls(step_id, per_minion):
    """As many ``test.succeed_without_changes`` states on each minion as the real step had."""
    counts = json.dumps(per_minion or {})
    return (
        "#!jinja|yaml\n"
        f"{{%- set counts = {counts} %}}\n"
        "{%- for i in range(counts.get(grains['id'], 1)) %}\n"
        f"noop {step_id} {{{{ i }}}}:\n"
        "  test.succeed_without_changes: []\n"
        "{%- endfor %}\n"
    )


def write_files(root, files):
    for name, text in files.items():
        path = os.path.join(root, *name.split(".")) + ".sls"
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)


# -- output ----------------------------------------------------------------------------------------
def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def report(hecate_runs, noop_runs, counts, test_runs=()):
    def fmt(value):
        return "     -" if value is None else f"{value:6.2f}"

    print(f"  runs: {len(hecate_runs)} converged, {len(noop_runs)} no-op, {len(test_runs)} test=True (medians)")
    print(f"    {'step':<22} {'hecate s':>8} {'no-op s':>8} {'diff s':>7} {'test s':>7}  "
          f"{'states/minion':>14} {'in hecate states s':>19}")
    ids = list(steps(hecate_runs[0][0]))
    for sid in ids:
        h = med([steps(d)[sid].get("duration", 0) / 1000 for d, *_ in hecate_runs])
        n = med([steps(d).get(sid, {}).get("duration", 0) / 1000 for d, *_ in noop_runs])
        t = med([steps(d).get(sid, {}).get("duration", 0) / 1000 for d, *_ in test_runs])
        ran = steps(hecate_runs[0][0])[sid].get("__state_ran__", True)
        per_minion = counts.get(sid, {})
        nstates = "/".join(str(per_minion[m][0]) for m in sorted(per_minion)) if per_minion else ""
        own = "/".join(f"{per_minion[m][1]:.2f}" for m in sorted(per_minion)) if per_minion else ""
        note = "" if ran is not False else "  (not run: onfail/onchanges)"
        print(f"    {sid:<22} {fmt(h):>8} {fmt(n):>8} {fmt(h - n):>7} {fmt(t):>7}  {nstates:>14} {own:>19}{note}")
    if counts:
        minions = "/".join(sorted({m for c in counts.values() for m in c}))
        print(f"    ('states/minion' and 'in hecate states' are per minion, {minions}, from the job cache of "
              "the last hecate run)")

    def step_sum(data):
        return sum(r.get("duration", 0) for r in steps(data).values()) / 1000

    for title, func in (("sum of step durations", step_sum), ("orchestration span", span)):
        h, n = med([func(d) for d, *_ in hecate_runs]), med([func(d) for d, *_ in noop_runs])
        t = med([func(d) for d, *_ in test_runs])
        print(f"    {title:<22} {h:8.2f} {n:8.2f} {h - n:7.2f} {fmt(t):>7}")
    h, n, t = (med([r[1] for r in runs]) for runs in (hecate_runs, noop_runs, test_runs))
    print(f"    {'salt-run wall time':<22} {h:8.2f} {n:8.2f} {h - n:7.2f} {fmt(t):>7}   <- hecate's own cost per "
          f"converged run: {h - n:.1f} s ({(h - n) / h * 100:.0f}% of the run)")
    hc, nc, tc = (med([r[2] for r in runs]) for runs in (hecate_runs, noop_runs, test_runs))
    print(f"    {'CPU s (Salt processes)':<22} {hc:8.2f} {nc:8.2f} {hc - nc:7.2f} {fmt(tc):>7}   <- salt-run, the "
          "master and the minions with all they forked")
    figures = {"hecate_wall": h, "noop_wall": n, "test_wall": t, "hecate_cpu": hc, "noop_cpu": nc, "test_cpu": tc}
    figures.update(ratios(hecate_runs, noop_runs, test_runs))
    for key, title, target in (("converged_vs_noop", "converged / no-op twin", "issue #19 target <= 1.2x"),
                               ("test_vs_converged", "test=True / converged ", "target <= 1.0x")):
        if figures[key] is None:
            continue
        print(f"  {title}: {figures[key]:.2f}x wall (pair by pair: {figures[key + '_pairs']}; {target}), "
              f"{figures[key + '_cpu']:.2f}x CPU (pair by pair: {figures[key + '_cpu_pairs']})")
    return figures


def ratios(hecate_runs, noop_runs, test_runs=()):
    """
    Median ratios of wall times (``<key>``) and of CPU times (``<key>_cpu``), pair by pair:
    converged run i / no-op run i (run next to each other), ``test=True`` run i / converged
    run i; and the pairs, rounded, as text (``<key>_pairs``, ``<key>_cpu_pairs``).
    """
    out = {}
    for key, num, den in (("converged_vs_noop", hecate_runs, noop_runs),
                          ("test_vs_converged", test_runs, hecate_runs)):
        for suffix, index in (("", 1), ("_cpu", 2)):
            pairs = [a[index] / b[index] for a, b in zip(num, den) if b[index]]
            out[key + suffix] = statistics.median(pairs) if pairs else None
            out[f"{key}{suffix}_pairs"] = " ".join(f"{p:.2f}" for p in pairs)
    return out


# -- main --------------------------------------------------------------------------------------------
def main(argv):
    run(argv)
    return 0


def run(argv):
    parser = argparse.ArgumentParser(prog="bench_orch", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="converged runs of each orchestration")
    parser.add_argument("--keep", metavar="DIR",
                        help="run the lab in DIR and leave it up (python -m lab down --dir DIR)")
    parser.add_argument("--max-converge", type=int, default=3, help="runs allowed to reach a converged state")
    args = parser.parse_args(argv)
    print(f"orch.bionicgpt (lab: simulators, real Caddy, salt-master + 2 minions); {common.machine()}")
    tmp = tempfile.mkdtemp(prefix="bench-orch-")
    workdir = os.path.abspath(args.keep) if args.keep else os.path.join(tmp, "lab")
    noop_root = os.path.join(tmp, "noop-root")
    os.makedirs(noop_root)
    lab = BenchLab(workdir, noop_root)
    # the lab's processes inherit this environment: let them cache bytecode (module docstring)
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    started = time.monotonic()
    try:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            rc = lab.up(run_orch=False, fast=True)
        if rc:
            raise RuntimeError(f"the lab did not start (see {workdir}/logs): {out.getvalue()[-2000:]}")
        print(f"  lab up in {time.monotonic() - started:.1f} s")
        converged = None
        for attempt in range(1, args.max_converge + 1):
            data, wall, cpu = lab.orch_sls(ORCH)
            bad, changed = failures(data), hecate_plan.rows(data)
            print(f"  run {attempt}: {wall:.1f} s, {len(changed)} objects changed"
                  + (f", FAILED: {'; '.join(bad)}" if bad else ""))
            if bad:
                raise RuntimeError(f"{ORCH} failed in the lab: {'; '.join(bad)}")
            if not changed:
                converged = (data, wall, cpu)
                break
        if converged is None:
            raise RuntimeError(f"{ORCH} did not converge in {args.max_converge} runs")
        counts = state_counts(lab, converged[0])
        write_files(noop_root, noop_twin(lab.show_sls(ORCH), counts))
        # the master lists file roots through a cache (fileserver_list_cache_time)
        lab.salt_run(["fileserver.clear_file_list_cache"], check=False)
        hecate_runs, noop_runs, test_runs = [converged], [], []
        while len(noop_runs) < args.runs:
            data, wall, cpu = lab.orch_sls(f"{NOOP_DIR}.orch")
            bad = failures(data)
            if bad or any(r.get("changes") for r in steps(data).values()
                          if r["_key"].endswith("_|-state")):
                raise RuntimeError(f"the no-op orchestration did not run clean: {bad or 'changes'}")
            noop_runs.append((data, wall, cpu))
            data, wall, cpu = lab.orch_sls(ORCH, test=True)
            if failures(data) or hecate_plan.rows(data):
                raise RuntimeError(f"a test=True {ORCH} run of a converged lab predicted changes or failed: "
                                   f"{failures(data)}")
            test_runs.append((data, wall, cpu))
            if len(hecate_runs) < args.runs:
                data, wall, cpu = lab.orch_sls(ORCH)
                if failures(data) or hecate_plan.rows(data):
                    raise RuntimeError(f"a converged {ORCH} run changed something or failed: {failures(data)}")
                hecate_runs.append((data, wall, cpu))
        # same number of steps and the same ones ran (the recovery steps did not)
        ran, ran_noop = ran_steps(hecate_runs[-1][0]), ran_steps(noop_runs[-1][0])
        if ran != ran_noop:
            print(f"  NOTE: steps that ran differ: hecate only {sorted(ran - ran_noop)}, "
                  f"no-op only {sorted(ran_noop - ran)}")
        figures = report(hecate_runs, noop_runs, state_counts(lab, hecate_runs[-1][0]), test_runs)
        print(f"  bench total {time.monotonic() - started:.0f} s")
        return figures
    finally:
        if args.keep:
            print(f"  lab left up in {workdir}; the no-op orchestration is in {noop_root}")
        else:
            with contextlib.redirect_stdout(io.StringIO()):
                lab.down()
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
