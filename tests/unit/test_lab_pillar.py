"""
The lab's pillar tree (lab/pillar/) and the guard that keeps tests off the operator's pillar/
(tests/conftest.py: an audit hook on ``open`` plus a check of the salt-master's pillar_roots).
"""

import os
import shutil

import pytest
import yaml

from lab import topology
from tests import conftest, pillar_files


def test_the_lab_reads_its_own_pillar_tree(tmp_path):
    roots = topology.pillar_roots(str(tmp_path))
    assert roots == {"base": [topology.PILLAR_DIR, str(tmp_path)]}
    assert os.path.join(topology.REPO, "lab", "pillar") == topology.PILLAR_DIR
    conftest.assert_lab_pillar_roots({"pillar_roots": roots})
    with pytest.raises(AssertionError, match="operator's pillar"):
        conftest.assert_lab_pillar_roots({"pillar_roots": {"base": [topology.OPERATOR_PILLAR_DIR]}})


def test_a_test_cannot_read_the_operators_pillar(operator_pillar_guard, tmp_path):
    """Every route a test could take in-process is refused, and recorded even if swallowed."""
    start = len(operator_pillar_guard.reads)
    top = os.path.join(topology.OPERATOR_PILLAR_DIR, "top.sls")
    try:
        with pytest.raises(PermissionError, match="operator's pillar"), open(top, encoding="utf-8") as fh:
            yaml.safe_load(fh)
        with pytest.raises(PermissionError):
            os.open(top, os.O_RDONLY)
        with pytest.raises(shutil.Error, match="operator's pillar"):  # copytree collects the refusals
            shutil.copytree(topology.OPERATOR_PILLAR_DIR, tmp_path / "copy")
        with pytest.raises(PermissionError):  # through a path that is not spelt like REPO/pillar
            open(os.path.join(topology.REPO, "lab", "..", "pillar", "hecate.sls"), "rb").close()
        assert len(operator_pillar_guard.reads) - start >= 4
        # the lab's tree and other files are not affected
        with open(os.path.join(topology.PILLAR_DIR, "top.sls"), encoding="utf-8") as fh:
            assert "lab_runtime" in fh.read()
    finally:
        del operator_pillar_guard.reads[start:]  # this test's refusals were expected


@pytest.mark.operator_pillar
def test_a_marked_test_may_read_it(operator_pillar_guard):
    assert operator_pillar_guard.allowed is True
    with open(os.path.join(topology.OPERATOR_PILLAR_DIR, "top.sls"), encoding="utf-8") as fh:
        assert fh.read()


def test_the_lab_overlay_and_its_runtime_hooks_are_the_labs():
    """What belongs to the lab only: its overlay (test users, hcwg0, nothing installed) and the
    per-session pillar files its top file includes."""
    lab = pillar_files.compiled("lab")
    users = lab["bionicgpt"]["authentik"]["test_users"]
    assert set(users) == set(topology.LAB_USERS)
    mount, path = topology.LAB_USERS_PATH
    assert all(u["password"] == {"vault": f"{mount}/{path}", "key": name} for name, u in users.items())
    assert lab["bionicgpt"]["wireguard"]["interface"] == "hcwg0"
    with open(os.path.join(topology.PILLAR_DIR, "top.sls"), encoding="utf-8") as fh:
        top = fh.read()
    assert "- lab_runtime" in top and "- lab_overrides" in top
    for env in ("dev", "staging", "prod"):
        assert "test_users" not in pillar_files.compiled(env)["bionicgpt"]["authentik"], env


def test_lab_chat_domain_is_the_lab_pillars():
    """The lab probes the chat route by Host header: the domain of the lab's pillar."""
    assert pillar_files.compiled("lab")["bionicgpt"]["domain"] == topology.LAB_CHAT_DOMAIN


def test_lab_membership_comes_from_the_runtime_pillar():
    """The lab's overlay lists no members; lab_runtime.sls does, from the minions the lab starts."""
    assert "members" not in pillar_files.render("env/lab.sls").get("hecate", {})
    runtime = topology.runtime_pillar({})
    assert runtime["hecate"]["members"] == {"hecate-edge": ["cloud"], "bionicgpt-node": ["local"]}
