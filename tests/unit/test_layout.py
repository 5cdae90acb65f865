"""
The code layout conventions (docs/lab-and-development.md, "Developing"), checked on the
source so that a copied pattern cannot creep back in.
"""

import ast
import os

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DIRS = ("_modules", "_states", "_runners", "_utils")
UTILS = {name[:-3] for name in os.listdir(os.path.join(REPO, "_utils")) if name.endswith(".py")}


def _sources():
    for folder in DIRS:
        for name in sorted(os.listdir(os.path.join(REPO, folder))):
            if name.endswith(".py"):
                yield f"{folder}/{name}"


SOURCES = list(_sources())


def _tree(rel):
    with open(os.path.join(REPO, rel), encoding="utf-8") as fh:
        return ast.parse(fh.read(), rel)


def _imported(node):
    """Module names an import statement brings in."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom):
        base = node.module or ""
        return [base] + [f"{base}.{alias.name}" for alias in node.names]
    return []


@pytest.mark.parametrize("rel", SOURCES)
def test_utils_are_imported_one_way(rel):
    """``import hecate_x`` at module top: no ImportError fallback, no package path."""
    problems = []
    for node in ast.walk(_tree(rel)):
        if isinstance(node, ast.Try):
            guarded = [name for stmt in node.body for sub in ast.walk(stmt) for name in _imported(sub)]
            if any(name.split(".")[0] in UTILS for name in guarded):
                problems.append(f"line {node.lineno}: a try/except around an import of hecate's utils")
        for name in _imported(node):
            if name.startswith("saltext.hecate"):
                problems.append(f"line {node.lineno}: imports {name} (use the top-level name)")
    assert not problems, f"{rel}:\n  " + "\n  ".join(problems)


def test_every_util_import_names_an_existing_util():
    missing = []
    for rel in SOURCES:
        for node in ast.walk(_tree(rel)):
            for name in _imported(node):
                if name.startswith("hecate_") and name.split(".")[0] not in UTILS:
                    missing.append(f"{rel}:{node.lineno}: {name}")
    assert not missing, "\n".join(missing)
