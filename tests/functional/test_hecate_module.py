"""The hecate execution module's own functions through Salt's loaders."""

import re

import pytest


def test_new_run_id_is_sortable_time_and_unique(loaders):
    mod = loaders.modules.hecate
    ids = [mod.new_run_id() for _ in range(20)]
    for run_id in ids:
        assert re.fullmatch(r"\d{8}T\d{6}Z-[0-9a-f]{6}", run_id), run_id
    assert len(set(ids)) == len(ids)
    assert sorted(ids, key=lambda i: i.split("-")[0]) == ids  # time first: sorts by when


def test_target_is_the_members_of_the_role_on_this_minions_environment(minion_opts, tmp_path):
    """hecate.target: the role and environment grains AND the ids/globs pillar lists."""
    import textwrap

    from saltfactories.utils.functional import Loaders

    (tmp_path / "top.sls").write_text("base:\n  '*':\n    - members\n")
    (tmp_path / "members.sls").write_text(textwrap.dedent("""\
        hecate:
          members:
            hecate-edge: [edge-1]
            bionicgpt-node: [gpu-1, 'gpu-2*']
        """))
    loaders = Loaders(dict(minion_opts, pillar_roots={"base": [str(tmp_path)]}))
    try:
        loaders.grains["hecate_env"] = "prod"  # what the minion claims; pillar says who belongs
        mod = loaders.modules.hecate
        assert mod.target("bionicgpt-node") == (
            "G@roles:bionicgpt-node and G@hecate_env:prod and ( gpu-1 or gpu-2* )"
        )
        assert mod.target("hecate-edge") == "G@roles:hecate-edge and G@hecate_env:prod and ( edge-1 )"
        # one edge listed; several nodes may match (a glob): shared systems are written from one
        assert mod.several("hecate-edge") is False and mod.several("bionicgpt-node") is True
        try:
            mod.target("web")
        except Exception as exc:  # noqa: BLE001 - the loader wraps nothing here
            assert "role must be one of" in str(exc)
        else:
            raise AssertionError("an unknown role was accepted")
    finally:
        loaders.reset_state()



def test_one_member_is_refused_on_a_minion(loaders):
    """hecate.one_member reads the master's grains cache: on a minion it says so. (Its choice is
    shown in tests/unit/test_members.py with a master's cache, and in test_multinode, where the
    orchestration's shared steps run on node-1 and edge-1.)"""
    import salt.exceptions

    with pytest.raises(salt.exceptions.SaltInvocationError, match="on the master only"):
        loaders.modules.hecate.one_member("bionicgpt-node", env="prod")
