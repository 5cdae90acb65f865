import configparser
import os
import sys

import hecate_loader

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_version_matches_setup_cfg():
    cfg = configparser.ConfigParser()
    cfg.read(os.path.join(REPO, "setup.cfg"))
    assert cfg.get("metadata", "version") == hecate_loader.__version__


def test_loader_dirs_point_at_package_kinds():
    dirs = hecate_loader.get_loader_dirs()
    # in the tree the kinds are _modules etc., so nothing is returned; only the
    # installed package (saltext/hecate/<kind>) has them
    assert set(dirs) <= {"modules", "states", "runners", "utils"}
    # the utils import each other as top-level modules: the entry point makes that possible
    assert hecate_loader.UTILS_DIR in sys.path


def test_import_util_returns_the_top_level_module():
    import hecate_schema  # pylint: disable=import-outside-toplevel

    assert hecate_loader.import_util("hecate_schema") is hecate_schema


def test_virtual_names_what_is_missing():
    assert hecate_loader.virtual("mod") == "mod"
    assert hecate_loader.virtual("mod", libs=("json",)) == "mod"
    ok, why = hecate_loader.virtual("mod", libs=("no_such_library_x", "json"))
    assert ok is False and why == "mod: the no_such_library_x library is not installed (pip install no_such_library_x)"
    ok, why = hecate_loader.virtual("nomad_job", salt_funcs={"test.ping": None}, functions=("nomad.parse",))
    assert ok is False and why == "nomad_job: the execution module function nomad.parse is not available"
    assert (
        hecate_loader.virtual("nomad_job", salt_funcs={"nomad.parse": None}, functions=("nomad.parse",)) == "nomad_job"
    )
