"""Sphinx configuration of hecate's docs (``make docs``; warnings are errors)."""

import os
import sys
import types

DOCS = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(DOCS)
sys.path.insert(0, os.path.join(DOCS, "_ext"))
# the utils import each other as top-level modules (hecate_loader explains why)
sys.path.insert(0, os.path.join(REPO, "_utils"))


def _package_view():
    """
    Make the tree importable as the pip package is (``saltext.hecate.modules.caddy``...),
    without installing it: autodoc then documents the same module names the loader uses.
    """
    for name, path in (("saltext", None), ("saltext.hecate", None)):
        mod = sys.modules.setdefault(name, types.ModuleType(name))
        mod.__path__ = [] if path is None else [path]
    for kind, folder in (("modules", "_modules"), ("states", "_states"),
                         ("runners", "_runners"), ("utils", "_utils")):
        pkg = types.ModuleType(f"saltext.hecate.{kind}")
        pkg.__path__ = [os.path.join(REPO, folder)]
        sys.modules[pkg.__name__] = pkg
        setattr(sys.modules["saltext.hecate"], kind, pkg)
    sys.modules["saltext"].hecate = sys.modules["saltext.hecate"]


_package_view()

project = "hecate"
author = "hecate developers"
copyright = "2026, hecate developers"  # noqa: A001
release = "0.1.0"

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "hecate_docs",
]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3
exclude_patterns = ["_build"]
html_theme = "furo"
html_title = "hecate"

autodoc_default_options = {"members": True, "undoc-members": False}
autodoc_member_order = "bysource"
# Salt's loader injects these at load time; autodoc imports the files as plain modules.
autodoc_mock_imports = []
nitpicky = False

# Every pillar key in the reference (docs/pillar.md) has a description: a key without one is a
# warning, an error under -W (tests/unit/test_schema_descriptions.py fails on it sooner).
hecate_require_descriptions = True
