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


LOADER_SOURCES = [rel for rel in SOURCES if not rel.startswith("_utils/")]


@pytest.mark.parametrize("rel", LOADER_SOURCES)
def test_virtual_is_the_shared_answer(rel):
    """``__virtual__`` asks ``hecate_loader.virtual`` (which names what is missing)."""
    funcs = {n.name: n for n in _tree(rel).body if isinstance(n, ast.FunctionDef)}
    virtual = funcs.get("__virtual__")
    assert virtual is not None, f"{rel} has no __virtual__"
    (stmt,) = virtual.body
    call = stmt.value if isinstance(stmt, ast.Return) else None
    assert isinstance(call, ast.Call) and ast.unparse(call.func) == "hecate_loader.virtual", (
        f"{rel}: __virtual__ must return hecate_loader.virtual(__virtualname__, ...)"
    )


# helpers that exist once, in the util named: a module-level copy is boilerplate
SHARED = {
    "_client": "hecate_clients", "_vault": "hecate_clients", "_consul": "hecate_clients",
    "_sdb_get": "hecate_clients.sdb_get", "_traverse": "hecate_config.traverse",
    "_merge": "hecate_config.deep_merge", "_deep_merge": "hecate_config.deep_merge",
    "_plain": "hecate_config.plain", "_err": "salt.exceptions.CommandExecutionError",
    "text_diff": "hecate_files.unified_diff", "write_private": "hecate_files.write_atomic",
}


@pytest.mark.parametrize("rel", SOURCES)
def test_no_copies_of_shared_helpers(rel):
    copies = [f"{n.name} (use {SHARED[n.name]})" for n in _tree(rel).body
              if isinstance(n, ast.FunctionDef) and n.name in SHARED]
    assert not copies, f"{rel} defines " + ", ".join(copies)
