"""
Every public function of every execution module is exercised by at least one test.

The functions are enumerated the way Salt's loader exposes them
(salt/loader/lazy.py ``LazyLoader._load_module``): the names in ``__load__``, else
``__all__``, else ``dir(module)``; no leading underscore; plain functions (or
``functools.partial``) defined in the module itself; renamed by ``__func_alias__``;
under the module's ``__virtualname__``.

A function counts as exercised when a test file (tests/**/*.py, this file excepted)
calls it, in one of the ways hecate's tests call execution modules:

- an attribute call on the loader's module object:
  ``loaders.modules.<virtualname>.<function>(...)``, or on a name assigned from such a
  module object (``mod = env.loaders.modules.authentik`` ... ``mod.group_create(...)``);
- the function's full name where a salt CLI takes the function: the first positional
  string argument that is not an option, of a ``.run(...)`` call
  (``cloud_call.run("nomad.plan", ...)``, ``salt_cli.run("-G", "hecate.version", ...)``,
  ``out.run(salt_cli, "hecate_vault.read", ...)``); in
  ``salt_cli.run("state.apply", "wireguard.verify")`` the function is ``state.apply`` and
  ``wireguard.verify`` an SLS name, which does not count;
- a ``salt['<name>']`` / ``__salt__["<name>"]`` lookup inside a template string.

A mere mention (a comment, a docstring, a name inside a longer string) does not count.
(Runner functions are called the same way; hecate's runner shares no function name with
its execution module, so a runner call is never counted for it.)
"""

import ast
import functools
import importlib.util
import inspect
import os
import re

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODULES = os.path.join(REPO, "_modules")
TESTS = os.path.join(REPO, "tests")
THIS = os.path.abspath(__file__)


def _import(path):
    name = "hecate_exec_" + os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def exposed_functions(directory=MODULES):
    """``{"<virtualname>.<name>": "<file>:<def name>"}`` as Salt's loader would expose them."""
    out = {}
    for fname in sorted(os.listdir(directory)):
        if not fname.endswith(".py") or fname.startswith("_"):
            continue
        mod = _import(os.path.join(directory, fname))
        virtualname = getattr(mod, "__virtualname__", os.path.splitext(fname)[0])
        aliases = getattr(mod, "__func_alias__", {})
        names = getattr(mod, "__load__", None) or getattr(mod, "__all__", None) or dir(mod)
        for attr in names:
            if attr.startswith("_"):
                continue
            func = getattr(mod, attr)
            if not inspect.isfunction(func) and not isinstance(func, functools.partial):
                continue
            if getattr(func, "__module__", None) != mod.__name__:
                continue  # imported, not defined here: the loader skips it
            out[f"{virtualname}.{aliases.get(attr, attr)}"] = f"_modules/{fname}:{attr}"
    return out


def _dotted(node):
    """``a.b.c`` for an Attribute/Name chain, else None."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    if isinstance(node, ast.Call):  # env.loaders().modules.x ...
        inner = _dotted(node.func)
        if inner:
            parts.append(inner + "()")
            return ".".join(reversed(parts))
    return None


def _module_of(node, virtualnames, aliases):
    """The virtual name ``node`` refers to as a loader module object, else None."""
    if isinstance(node, ast.Name) and node.id in aliases:
        return aliases[node.id]
    dotted = _dotted(node)
    if dotted:
        parts = dotted.split(".")
        if len(parts) >= 2 and parts[-2] == "modules" and parts[-1] in virtualnames:
            return parts[-1]
    return None


def _cli_function(call):
    """The function a salt CLI ``.run(...)`` call runs: its first non-option string argument."""
    if not (isinstance(call.func, ast.Attribute) and call.func.attr == "run"):
        return None
    for arg in call.args:
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
            if arg.value.startswith("-"):
                continue
            return arg.value
    return None


def _template_calls(text, names):
    """``salt['<name>']`` lookups in a template (inline SLS or Jinja) string."""
    found = set()
    for match in re.finditer(r"""(?:__)?salt(?:__)?\s*\[\s*['"]([A-Za-z0-9_]+\.[A-Za-z0-9_]+)['"]\s*\]""", text):
        if match.group(1) in names:
            found.add(match.group(1))
    return found


def _aliases(nodes, virtualnames, base=None):
    """Names bound to a loader module object in ``nodes``: ``mod = loaders.modules.caddy``."""
    aliases = dict(base or {})
    for node in nodes:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            vname = _module_of(node.value, virtualnames, {})
            if vname:
                aliases[node.targets[0].id] = vname
    return aliases


def _calls(nodes, names, virtualnames, aliases):
    found = set()
    for node in nodes:
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            vname = _module_of(node.func.value, virtualnames, aliases)
            if vname and f"{vname}.{node.func.attr}" in names:
                found.add(f"{vname}.{node.func.attr}")
            cli = _cli_function(node)
            if cli in names:
                found.add(cli)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            found |= _template_calls(node.value, names)
    return found


def called_in(path, names, virtualnames):
    """The exposed names a test file calls (aliases resolved per function)."""
    with open(path, encoding="utf-8") as fh:
        tree = ast.parse(fh.read(), filename=path)
    functions = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    inside = {id(n) for f in functions for n in ast.walk(f)}
    top = [n for n in ast.walk(tree) if id(n) not in inside]
    module_aliases = _aliases(top, virtualnames)
    found = _calls(top, names, virtualnames, module_aliases)
    for func in functions:
        body = list(ast.walk(func))
        found |= _calls(body, names, virtualnames, _aliases(body, virtualnames, module_aliases))
    return found


def test_the_enumeration_follows_the_loader(tmp_path):
    """The enumeration itself: aliases applied, private and imported names skipped."""
    (tmp_path / "fake.py").write_text(
        "import functools\nfrom os.path import join\n__virtualname__ = 'fakemod'\n"
        "__func_alias__ = {'list_': 'list'}\n"
        "def __virtual__():\n    return __virtualname__\n"
        "def _private():\n    return 1\n"
        "def list_():\n    return []\n"
        "def visible():\n    return 2\n"
        "CONSTANT = 3\n"
    )
    assert exposed_functions(str(tmp_path)) == {"fakemod.list": "_modules/fake.py:list_",
                                                "fakemod.visible": "_modules/fake.py:visible"}
    exposed = exposed_functions()
    assert "hecate_vault.list" in exposed and "hecate_vault.list_" not in exposed  # __func_alias__
    assert "authentik.brand_update" in exposed and "authentik._client" not in exposed
    assert not any(name.endswith(".__virtual__") for name in exposed)
    assert {name.split(".")[0] for name in exposed} == {
        "authentik", "caddy", "hecate", "hecate_consul", "hecate_edge", "hecate_vault", "hetzner_dns", "nomad",
        "wireguard"}
    # and the reference finder counts calls, not mentions
    names = {"caddy.drift", "nomad.plan", "hecate.version", "wireguard.verify"}

    def calls(code):
        found = set()
        for node in ast.walk(ast.parse(code)):
            if isinstance(node, ast.Call):
                found |= {_cli_function(node)} & names
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                found |= _template_calls(node.value, names)
        return found

    assert calls('cloud_call.run("caddy.drift", "server=x")') == {"caddy.drift"}
    assert calls('salt_cli.run("-G", "hecate.version", minion_tgt="x")') == {"hecate.version"}
    assert calls('out.run(salt_cli, "nomad.plan", minion_tgt="x")') == {"nomad.plan"}
    assert calls('salt_cli.run("state.apply", "wireguard.verify")') == set()  # an SLS name
    assert calls('x = "{{ salt[\'hecate.version\']() }}"') == {"hecate.version"}
    assert calls('x = "see caddy.drift for details"; y = "nomad.plan"') == set()
    # a name bound to a module object counts in its own function only
    code = ("def t1(loaders):\n    mod = loaders.modules.caddy\n    mod.drift()\n"
            "def t2(loaders):\n    mod = loaders.modules.nomad\n    mod.version()\n")
    tree_names = {"caddy.drift", "caddy.version", "nomad.drift", "nomad.version"}
    functions = [n for n in ast.walk(ast.parse(code)) if isinstance(n, ast.FunctionDef)]
    got = set()
    for func in functions:
        body = list(ast.walk(func))
        got |= _calls(body, tree_names, {"caddy", "nomad"}, _aliases(body, {"caddy", "nomad"}))
    assert got == {"caddy.drift", "nomad.version"}


def test_every_public_execution_module_function_is_called_by_a_test():
    exposed = exposed_functions()
    names = set(exposed)
    virtualnames = {name.split(".")[0] for name in names}
    called = set()
    for root, _, files in os.walk(TESTS):
        for fname in files:
            path = os.path.join(root, fname)
            if fname.endswith(".py") and os.path.abspath(path) != THIS:
                called |= called_in(path, names, virtualnames)
    missing = sorted(f"{name} ({exposed[name]})" for name in names - called)
    assert not missing, "execution module functions no test calls:\n  " + "\n  ".join(missing)
