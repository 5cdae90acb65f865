"""
Packaging as a pip package: the built wheel loads through the salt.loader entry point, and
its modules, states and runners find the utils they import as top-level modules
(``import hecate_http``; see ``hecate_loader``).
"""

import glob
import json
import os
import site
import subprocess
import sys
import textwrap

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

PROBE = textwrap.dedent(
    """
    import json, sys
    import salt.config, salt.loader
    opts = salt.config.minion_config(None)
    opts.update({"file_client": "local", "root_dir": sys.argv[1], "cachedir": sys.argv[1],
                 "extension_modules": sys.argv[1] + "/extmods", "module_dirs": []})
    mods = salt.loader.minion_mods(opts)
    states = salt.loader.states(opts, mods, salt.loader.utils(opts), {})
    mopts = salt.config.master_config(None)
    mopts.update({"root_dir": sys.argv[1], "cachedir": sys.argv[1],
                  "extension_modules": sys.argv[1] + "/extmods-master", "module_dirs": []})
    runners = salt.loader.runner(mopts, utils=salt.loader.utils(mopts))

    def module_file(func):
        return sys.modules[func.__module__].__file__

    def util_file(func, util):
        return getattr(sys.modules[func.__module__], util).__file__

    import hecate_http as http
    import hecate_schema as schema
    consul_vault = [f for f in ("hecate_consul.kv_get", "hecate_vault.read") if f in mods] + [
        f for f in ("consul_kv.present", "consul_service.registered", "hecate_secret.generated") if f in states]
    bad = {"hecate": {"global": {"domain": "example.com", "environment": "lab"},
                      "consul": {"services": {"x": {"address": "a", "checks": [{"tcp": "a:1"}]}}}}}
    print(json.dumps({
        "consul_vault": consul_vault,
        "schema_errors": schema.validate(bad, "lab"),
        "version": mods["hecate.version"](),
        "module_file": sys.modules[mods["hecate.version"].__module__].__file__,
        "has_state": "hecate.validated" in states,
        "has_runner": "hecate.validate" in runners,
        "utils_file": http.__file__,
        # a state and a runner that import utils, and the utils they got
        "state_file": module_file(states["caddy_routes.managed"]),
        "state_util": util_file(states["caddy_routes.managed"], "hecate_caddy_routes"),
        "runner_file": module_file(runners["hecate.validate"]),
        "runner_util": util_file(runners["hecate.validate"], "hecate_pillar"),
    }))
    """
)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), REPO],
        check=True,
        capture_output=True,
    )
    (path,) = glob.glob(str(out / "*.whl"))
    return path


def test_wheel_loads_through_entry_point(wheel, tmp_path):
    venv = tmp_path / "scratch"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    # Dependencies come from the test venv (no network); hecate itself only from the wheel.
    purelib = subprocess.run(
        [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()
    with open(os.path.join(purelib, "deps.pth"), "w", encoding="utf-8") as fh:
        fh.write("\n".join(site.getsitepackages()) + "\n")
    subprocess.run(
        [str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-index", wheel],
        check=True, capture_output=True,
    )
    probe = subprocess.run(
        [str(py), "-c", PROBE, str(tmp_path / "salt")],
        check=True, capture_output=True, text=True, cwd=str(tmp_path),
    )
    data = json.loads(probe.stdout.strip().splitlines()[-1])
    assert data["version"]
    assert data["module_file"].startswith(purelib), data
    assert data["utils_file"].startswith(purelib), data
    assert data["has_state"] and data["has_runner"], data
    for key in ("state_file", "state_util", "runner_file", "runner_util"):
        assert data[key].startswith(purelib), (key, data)
    assert len(data["consul_vault"]) == 5, data
    assert data["schema_errors"] == ["hecate:consul:services:x:checks:0:interval: required for a tcp check"], data
