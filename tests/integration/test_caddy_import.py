"""
``salt-run hecate.import_caddyfile`` through the lab's real master: the user's Caddyfile
(tests/fixtures/user-Caddyfile) becomes the ten sites the lab serves from its pillar
(lab/pillar/hecate.sls, a copy of the shipped one), adapted on the master (the ``caddy``
binary next to its Python) or on the cloud minion's Caddy (``caddy.adapt``, the admin API),
from a file or from text.
"""

import copy
import os

import salt.config
import salt.runner
import yaml

import hecate_caddy_routes
from tests import pillar_files

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CADDYFILE = os.path.join(REPO, "tests", "fixtures", "user-Caddyfile")


def run(salt_run_cli, *args):
    ret = salt_run_cli.run("hecate.import_caddyfile", *args)
    assert isinstance(ret.data, dict), ret
    return ret, ret.data


def sites(caddy_block):
    """What Caddy gets per domain (route JSON without the @id, which holds the route's name)."""
    out = {}
    for route in hecate_caddy_routes.build(caddy_block, resolve_service=None):
        obj = copy.deepcopy(route.json)
        obj.pop("@id")
        out[tuple(route.domains)] = obj
    return out


def imported(data):
    return yaml.safe_load(data["pillar"])["hecate"]["reverse_proxy"]["caddy"]


def lab_sites():
    """The static sites of the lab's pillar (lab/pillar/hecate.sls, which the lab's master serves)."""
    block = pillar_files.render("hecate.sls")["hecate"]["reverse_proxy"]["caddy"]
    return sites(dict(block, routes=[r for r in block["routes"] if "backend" in r]))  # not the Consul route


def test_the_user_caddyfile_becomes_the_labs_ten_sites(salt_run_cli):
    ret, data = run(salt_run_cli, f"path={CADDYFILE}")
    assert ret.returncode == 0 and data["result"] is True, data
    assert data["adapted_on"].startswith("master (") and data["source"] == f"master:{CADDYFILE}"
    assert data["routes"] == 10
    ours, lab = sites(pillar_files.on_the_edge(imported(data))), lab_sites()
    assert len(lab) == 10 and ours == lab
    assert [c["line"] for c in data["corrected"]] and all(c["line"] for c in data["corrected"])
    assert [u["directive"] for u in data["unsupported"]] == ["log {"]  # the global log


def test_adapted_by_the_edges_caddy_the_same(salt_run_cli, cloud_call):
    _, on_master = run(salt_run_cli, f"path={CADDYFILE}")
    ret, data = run(salt_run_cli, f"path={CADDYFILE}", "env=lab", "adapt_on=edge")
    assert ret.returncode == 0 and data["result"] is True, data
    assert data["adapted_on"] == "edge cloud"
    assert data["pillar"] == on_master["pillar"]
    assert data["unsupported"] == on_master["unsupported"] and data["corrected"] == on_master["corrected"]
    assert any("not formatted" in w for w in data["warnings"])  # the adapter's own warning


def test_text_given_inline(salt_master, salt_run_cli):
    """``text=`` as an orchestration's salt.runner step passes it: through the Python API."""
    with open(CADDYFILE, encoding="utf-8") as fh:
        text = fh.read()
    _, on_master = run(salt_run_cli, f"path={CADDYFILE}")
    runner = salt.runner.RunnerClient(salt.config.master_config(salt_master.config_file))
    data = runner.cmd("hecate.import_caddyfile", kwarg={"text": text}, print_event=False, full_return=False)
    assert data["result"] is True, data
    assert data["source"] == "text" and data["pillar"] == on_master["pillar"]
    # on the command line Salt hands a multi-line text= over as a positional argument: refused, clearly
    ret, data = run(salt_run_cli, f"text={text}")
    assert ret.returncode != 0 and "give the Caddyfile as path=<file>" in data["comment"]


def test_bad_input_fails_with_a_clear_message(salt_run_cli, cloud_call, tmp_path):
    ret, data = run(salt_run_cli, "path=/nonexistent/Caddyfile")
    assert ret.returncode != 0 and data["result"] is False
    assert "is not a file on the master; give env=<env>" in data["comment"]
    ret, data = run(salt_run_cli, "path=/nonexistent/Caddyfile", "env=lab")
    assert ret.returncode != 0 and "neither on the master nor on an edge of environment 'lab'" in data["comment"]
    bad = tmp_path / "Caddyfile"
    bad.write_text("a.example {\n\treverse_proxy x:1 {\n\t\tbogus\n\t}\n}\n")
    for extra in ([], ["env=lab", "adapt_on=edge"]):
        ret, data = run(salt_run_cli, f"path={bad}", *extra)
        assert ret.returncode != 0 and data["result"] is False
        assert "bogus" in data["comment"], data["comment"]
    ret, data = run(salt_run_cli)
    assert ret.returncode != 0 and "path=<file> or text=<Caddyfile>" in data["comment"]
