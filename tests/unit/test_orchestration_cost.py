"""
What keeps a converged orchestration cheap (issue #19; ``python -m bench orch`` measures it):

- the client libraries are imported when a client is made, not when a module is loaded
  (every Salt job is a new process that loads its modules again);
- a minion validates the same pillar once, not once per step (``hecate_schema.validate_once``);
- the master compiles an environment's pillar once per orchestration run
  (``hecate_pillar.compile_for_env`` with the run id of ``hecate.new_run_id``).
"""

import collections
import json
import os
import re
import stat
import subprocess
import sys
import textwrap

import pytest
import salt.pillar

import hecate_loader
import hecate_pillar
import hecate_schema
from tests.unit.states.conftest import load
from tests.unit.test_schema_and_state import base_pillar

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LIBRARIES = ("consul", "hcloud", "hvac", "jsonschema")


# -- lazy libraries ----------------------------------------------------------------------------
def test_loading_every_module_imports_no_client_library():
    """A fresh process that loads all of hecate's modules and utils has none of them imported."""
    script = textwrap.dedent(f"""
        import glob, importlib.util, os, sys
        sys.path.insert(0, {os.path.join(REPO, "_utils")!r})
        for kind in ("_utils", "_modules", "_states", "_runners"):
            for path in sorted(glob.glob(os.path.join({REPO!r}, kind, "*.py"))):
                spec = importlib.util.spec_from_file_location("t_" + kind + os.path.basename(path)[:-3], path)
                spec.loader.exec_module(importlib.util.module_from_spec(spec))
        print(sorted(set({LIBRARIES!r}) & set(sys.modules)))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_lazy_module_imports_on_first_attribute():
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {os.path.join(REPO, "_utils")!r})
        import hecate_loader
        lib = hecate_loader.lazy("json", "json.decoder")
        before = "json.decoder" in sys.modules
        print(before, lib.dumps({{"a": 1}}), lib.decoder.JSONDecodeError.__name__, repr(lib))
    """)
    out = subprocess.run([sys.executable, "-S", "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", '{"a":', '1}', "JSONDecodeError", "<hecate_loader.LazyModule", "json>"]


def test_available_answers_without_importing():
    assert hecate_loader.available("jsonschema") is True
    assert hecate_loader.available("no_such_library_hecate") is False
    assert hecate_loader.available("no_such_package_hecate.sub") is False
    assert hecate_loader.virtual("x", libs=("no_such_library_hecate",))[0] is False


def test_a_missing_library_fails_at_use_naming_it():
    lib = hecate_loader.lazy("no_such_library_hecate")
    with pytest.raises(ImportError, match="no_such_library_hecate"):
        assert lib.Client is None


# -- one validation per pillar on a minion -----------------------------------------------------
@pytest.fixture
def counted(monkeypatch):
    calls = []
    real = hecate_schema.validate

    def validate(pillar, env=None):
        calls.append(env)
        return real(pillar, env)

    monkeypatch.setattr(hecate_schema, "validate", validate)
    return calls


def test_a_pillar_that_passed_is_not_validated_again(tmp_path, counted):
    pillar = base_pillar()
    assert hecate_schema.validate_once(pillar, "lab", str(tmp_path)) == []
    assert hecate_schema.validate_once(json.loads(json.dumps(pillar)), "lab", str(tmp_path)) == []
    assert counted == ["lab"]
    path = tmp_path / hecate_schema.VALIDATED_FILE
    # digests only, readable by the minion's user only
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "cybermonkey" not in path.read_text()


def test_another_run_of_the_same_pillar_is_not_validated_again(tmp_path, counted):
    """Only the hecate and bionicgpt trees are validated: each run's hecate_run differs."""
    for run in ("run-1", "run-2"):
        pillar = dict(base_pillar(), hecate_run={"id": run, "env": "lab"}, master="x")
        assert hecate_schema.validate_once(pillar, "lab", str(tmp_path)) == []
    assert counted == ["lab"]
    # what is left out is what validate never looked at
    bad = dict(base_pillar(domain="not a domain"), hecate_run={"id": "r"}, other={"token": "literal"})
    assert hecate_schema.validate_once(bad, "lab", None) == hecate_schema.validate(bad, "lab") != []


def test_another_pillar_env_or_code_is_validated(tmp_path, counted, monkeypatch):
    cache = str(tmp_path)
    hecate_schema.validate_once(base_pillar(), "lab", cache)
    hecate_schema.validate_once(base_pillar(domain="example.org"), "lab", cache)
    hecate_schema.validate_once(base_pillar(), "dev", cache)  # an error: dev pillar says lab
    hecate_schema.validate_once(base_pillar(), "dev", cache)
    assert counted == ["lab", "lab", "dev", "dev"]
    monkeypatch.setattr(hecate_schema, "_code_digest", ["another version of the code"])
    hecate_schema.validate_once(base_pillar(), "lab", cache)
    assert counted[-1] == "lab" and len(counted) == 5


def test_errors_are_found_every_time_and_never_remembered(tmp_path, counted):
    bad = base_pillar(domain="not a domain")
    for _ in range(2):
        assert hecate_schema.validate_once(bad, "lab", str(tmp_path)) == [
            "hecate:global:domain: 'not a domain' does not match the expected format"]
    assert len(counted) == 2 and not (tmp_path / hecate_schema.VALIDATED_FILE).exists()


def test_no_cache_dir_or_an_unreadable_cache_validates(tmp_path, counted):
    hecate_schema.validate_once(base_pillar(), "lab", None)
    path = tmp_path / hecate_schema.VALIDATED_FILE
    path.parent.mkdir()
    path.write_text("{not json")
    assert hecate_schema.validate_once(base_pillar(), "lab", str(tmp_path)) == []
    assert len(counted) == 2 and len(json.loads(path.read_text())) == 1
    # a pillar that does not serialise canonically (keys that cannot be sorted) is validated
    assert hecate_schema.pillar_digest({"hecate": {1: "a", "b": 2}}, "lab") is None


def test_only_the_latest_digests_are_kept(tmp_path, monkeypatch):
    monkeypatch.setattr(hecate_schema, "VALIDATED_KEEP", 3)
    for n in range(5):
        hecate_schema.validate_once(base_pillar(domain=f"d{n}.example.org"), "lab", str(tmp_path))
    kept = json.loads((tmp_path / hecate_schema.VALIDATED_FILE).read_text())
    assert kept == [hecate_schema.pillar_digest(base_pillar(domain=f"d{n}.example.org"), "lab") for n in (2, 3, 4)]


def _dunders(monkeypatch, module, **values):
    for name, value in values.items():
        monkeypatch.setattr(module, f"__{name}__", value, raising=False)


def test_the_validated_state_checks_a_pillar_once_per_minion(tmp_path, counted, monkeypatch):
    state = load("states", "hecate")
    _dunders(monkeypatch, state, pillar=base_pillar(), grains={"hecate_env": "lab"},
             opts={"cachedir": str(tmp_path), "test": False})
    for test in (True, False, False):
        state.__opts__["test"] = test
        ret = state.validated(name="pillar")
        assert ret["result"] is True and ret["comment"] == "pillar for environment 'lab' is valid"
    assert counted == ["lab"]


# -- one pillar compilation per orchestration run on the master ---------------------------------
@pytest.fixture
def compiles(monkeypatch):
    """A fake Pillar that counts compilations; hecate_pillar's run memory emptied."""
    calls = []

    class Pillar:  # pylint: disable=too-few-public-methods
        def __init__(self, opts, grains, mid, saltenv, pillarenv=None):
            self.grains = grains

        def compile_pillar(self):
            calls.append(self.grains["hecate_env"])
            return {"hecate": {"global": {"environment": self.grains["hecate_env"]}}, "_errors": []}

    monkeypatch.setattr(salt.pillar, "Pillar", Pillar)
    monkeypatch.setattr(hecate_pillar, "_runs", collections.deque(maxlen=hecate_pillar.RUNS_KEPT))
    monkeypatch.setattr(hecate_pillar, "_run_pillars", {})
    return calls


def test_a_run_started_here_compiles_its_pillar_once(compiles):
    hecate_pillar.start_run("run-1")
    first, errors = hecate_pillar.compile_for_env({}, "lab", run_id="run-1")
    first["hecate"]["changed"] = True  # a caller's change does not reach the next caller
    again, _ = hecate_pillar.compile_for_env({}, "lab", run_id="run-1")
    assert compiles == ["lab"] and errors == [] and "changed" not in again["hecate"]
    hecate_pillar.compile_for_env({}, "dev", run_id="run-1")
    assert compiles == ["lab", "dev"]


def test_no_run_or_a_run_of_another_process_compiles_every_time(compiles):
    for run_id in (None, None, "manual", "manual"):
        hecate_pillar.compile_for_env({}, "lab", run_id=run_id)
    assert compiles == ["lab"] * 4


def test_only_the_latest_runs_are_remembered(compiles):
    for n in range(hecate_pillar.RUNS_KEPT + 1):
        hecate_pillar.start_run(f"run-{n}")
        hecate_pillar.compile_for_env({}, "lab", run_id=f"run-{n}")
    assert {key[0] for key in hecate_pillar._run_pillars} == {  # pylint: disable=protected-access
        f"run-{n}" for n in range(1, hecate_pillar.RUNS_KEPT + 1)}
    hecate_pillar.compile_for_env({}, "lab", run_id="run-0")
    assert len(compiles) == hecate_pillar.RUNS_KEPT + 2


def test_new_run_id_starts_a_run_whose_targets_and_runner_share_the_pillar(compiles, monkeypatch):
    module = load("modules", "hecate")
    runner = load("runners", "hecate")
    opts = {"__role": "master", "id": "master"}
    _dunders(monkeypatch, module, opts=opts, grains={}, pillar={}, context={})
    _dunders(monkeypatch, runner, opts=opts)
    run_id = module.new_run_id()
    assert run_id in hecate_pillar._runs  # pylint: disable=protected-access
    module.target("hecate-edge", env="lab", run_id=run_id)
    runner._env_pillar("lab", run_id)  # pylint: disable=protected-access
    runner._env_pillar("lab", run_id)  # pylint: disable=protected-access
    assert compiles == ["lab"]


def test_the_master_validates_an_environment_once_but_checks_references_every_time(tmp_path, counted, monkeypatch):
    refs = []
    monkeypatch.setattr(hecate_pillar, "compile_for_env", lambda opts, env, run_id=None: (base_pillar(), []))
    monkeypatch.setattr(hecate_pillar, "membership_errors", lambda opts, env, pillar: [])
    monkeypatch.setattr(hecate_pillar, "check_references", lambda opts, pillar: refs.append(1) or [])
    for _ in range(2):
        assert hecate_pillar.validate_env({"cachedir": str(tmp_path)}, "lab", check_refs=True) == []
    assert counted == ["lab"] and refs == [1, 1]


# -- Salt's own state arguments ----------------------------------------------------------------
def test_no_sls_passes_a_state_argument_salt_reserves():
    """
    Salt reads some state arguments itself whatever the state: ``provider`` swaps execution
    modules and reloads every module before the state (~0.1 s a state in an orchestration).
    """
    found = []
    for root, _, files in os.walk(os.path.join(REPO, "salt")):
        for name in files:
            if name.endswith((".sls", ".jinja")):
                with open(os.path.join(root, name), encoding="utf-8") as fh:
                    for lineno, line in enumerate(fh, 1):
                        if re.match(r"\s*- provider\s*:", line):
                            found.append(f"{os.path.relpath(os.path.join(root, name), REPO)}:{lineno}")
    assert not found, found


# -- one mine read per WireGuard state run ------------------------------------------------------
class FakeMine:
    """``mine.get`` on the master's mine; counts the requests (each a new channel)."""

    def __init__(self, keys):
        self.keys, self.calls = dict(keys), []

    def get(self, tgt, fun, tgt_type="glob"):
        self.calls.append((tgt, tgt_type))
        if tgt_type == "glob":
            return {tgt: self.keys[tgt]} if tgt in self.keys else {}
        # the mesh: every member of the environment, and this minion
        assert tgt == ("( G@hecate_env:lab and ( ( G@roles:hecate-edge and ( cloud ) ) or "
                       "( G@roles:bionicgpt-node and ( local* or a or b or c ) ) ) ) or L@cloud")
        return dict(self.keys)  # this minion and its peers

    def send(self, fun, mine_function=None):
        self.keys["cloud"] = self.public


def test_wireguard_states_read_the_mine_once_per_state_run(tmp_path, monkeypatch):
    import hecate_wireguard_keys  # pylint: disable=import-outside-toplevel
    from tests.unit.test_wireguard import CLOUD_GRAINS, pillar  # pylint: disable=import-outside-toplevel

    state = load("states", "wireguard")
    public, _ = hecate_wireguard_keys.ensure_key(str(tmp_path / "wg0.key"))
    local = hecate_wireguard_keys.public_from_private(hecate_wireguard_keys.new_private_key())
    mine = FakeMine({"cloud": public, "local": local})
    mine.public = public
    context = {}
    _dunders(monkeypatch, state, pillar=pillar(tmp_path), grains=CLOUD_GRAINS, context=context,
             opts={"test": True}, salt={"mine.get": mine.get, "mine.send": mine.send})
    assert state.mine_published("wg0")["comment"] == "the mine has the current public key"
    ret = state.configured("wg0")
    diff = ret["changes"]["config"]["diff"]
    assert ret["result"] is None and f"PublicKey = {local}" in diff and f"PublicKey = {public}" not in diff
    assert len(mine.calls) == 1
    # a new key published: read again
    context.clear()
    mine.keys["cloud"] = "stale"
    state.__opts__["test"] = False
    assert state.mine_published("wg0")["changes"]["mine"] == {"old": "stale", "new": public}
    assert mine.calls[-1] == ("cloud", "glob") and len(mine.calls) == 3
    assert not any(isinstance(k, tuple) for k in context)
