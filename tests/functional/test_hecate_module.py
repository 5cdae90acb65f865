"""The hecate execution module's own functions through Salt's loaders."""

import re


def test_new_run_id_is_sortable_time_and_unique(loaders):
    mod = loaders.modules.hecate
    ids = [mod.new_run_id() for _ in range(20)]
    for run_id in ids:
        assert re.fullmatch(r"\d{8}T\d{6}Z-[0-9a-f]{6}", run_id), run_id
    assert len(set(ids)) == len(ids)
    assert sorted(ids, key=lambda i: i.split("-")[0]) == ids  # time first: sorts by when
