import configparser
import os

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
    assert set(dirs) <= {"modules", "states", "runners"}
