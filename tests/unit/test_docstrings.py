"""
Every public function of an execution module, state module and runner documents how it
is called - the module reference (docs/reference/) is built from these docstrings:

- execution modules: ``CLI Example:`` with a ``salt``/``salt-call`` line calling it;
- runners: ``CLI Example:`` with a ``salt-run`` line calling it;
- states: an SLS example (``.. code-block:: yaml``) that uses it.

Examples target minions the way an operator's fleet is targeted, by grain (``-G``, ``-C
'G@...'``) or ``'*'``, never by the lab's minion names (``salt cloud ...``).
"""

import ast
import os
import re
import shlex

import pytest
import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KINDS = ("_modules", "_states", "_runners")
# salt's targeting options that take the target as their argument (and are not a minion id)
TARGET_OPTIONS = {"-G", "--grain", "-C", "--compound", "-P", "--grain-pcre", "-I", "--pillar",
                  "-N", "--nodegroup"}
ANY_MINION = {"*"}


def _modules():
    for kind in KINDS:
        for name in sorted(os.listdir(os.path.join(REPO, kind))):
            if name.endswith(".py"):
                yield kind, name


def _parse(kind, name):
    with open(os.path.join(REPO, kind, name), encoding="utf-8") as fh:
        return ast.parse(fh.read())


def _assigned(tree, target):
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == target for t in node.targets):
            return ast.literal_eval(node.value)
    return None


def public_functions():
    """``(kind, file, virtualname, exposed name, docstring, params)`` as the loader exposes them."""
    out = []
    for kind, name in _modules():
        tree = _parse(kind, name)
        virtualname = _assigned(tree, "__virtualname__") or name[:-3]
        aliases = _assigned(tree, "__func_alias__") or {}
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
                exposed = aliases.get(node.name, node.name)
                args = node.args
                params = {a.arg for a in args.args + args.kwonlyargs}
                if args.kwarg:
                    params.add("**")
                out.append((kind, name, virtualname, exposed, ast.get_docstring(node) or "", params))
    return out


FUNCTIONS = public_functions()


def _ids():
    return [f"{kind}/{name}:{fun}" for kind, name, _, fun, _, _ in FUNCTIONS]


def _block(doc, language):
    """The text of every ``.. code-block:: <language>`` in ``doc``."""
    blocks = []
    lines = doc.splitlines()
    for idx, line in enumerate(lines):
        if line.strip() == f".. code-block:: {language}":
            indent = len(line) - len(line.lstrip())
            body = []
            for nxt in lines[idx + 1:]:
                if nxt.strip() and len(nxt) - len(nxt.lstrip()) <= indent:
                    break
                body.append(nxt)
            blocks.append("\n".join(body))
    return blocks


def _commands(doc):
    """The command lines of the ``bash`` blocks, continuation lines (``\\``) joined."""
    out = []
    for block in _block(doc, "bash"):
        pending = ""
        for line in block.splitlines():
            line = pending + line.strip()
            if line.endswith("\\"):
                pending = line[:-1]
                continue
            pending = ""
            if line:
                out.append(line)
    return out


def bad_targets(text):
    """The ``salt`` command lines of ``text`` that target a minion by name."""
    bad = []
    for line in _commands(text):
        words = shlex.split(line.split(" #", 1)[0])
        if not words or words[0] != "salt":
            continue
        rest = words[1:]
        target = None
        while rest:
            word = rest.pop(0)
            if word in TARGET_OPTIONS:
                target = "option"
                rest.pop(0)
                break
            if word.startswith("-"):
                continue
            target = word
            break
        if target not in ("option",) and target not in ANY_MINION:
            bad.append(line)
    return bad


# requisites and the like, which every state takes
GLOBAL_ARGS = {"name", "names", "require", "watch", "onchanges", "onfail", "prereq", "order", "unless",
               "onlyif", "require_in", "watch_in"}


def _sls_uses(example, call):
    """The arguments ``example`` (an SLS) passes to ``call``, or None when it does not use it."""
    for body in (yaml.safe_load(example) or {}).values():
        if isinstance(body, str) and body == call:
            return []
        if isinstance(body, dict) and call in body:
            return [key for arg in body[call] or [] for key in arg]
    return None


@pytest.mark.parametrize("kind,name,virtualname,fun,doc,params", FUNCTIONS, ids=_ids())
def test_public_function_shows_how_to_call_it(kind, name, virtualname, fun, doc, params):
    call = f"{virtualname}.{fun}"
    if kind == "_states":
        uses = [u for u in (_sls_uses(ex, call) for ex in _block(doc, "yaml")) if u is not None]
        assert uses, f"{kind}/{name}: {fun}'s docstring needs an SLS example (.. code-block:: yaml) using {call}"
        if "**" not in params:
            unknown = {arg for args in uses for arg in args} - params - GLOBAL_ARGS
            assert not unknown, f"{kind}/{name}: {fun}'s SLS example passes {sorted(unknown)}, not parameters"
        return
    assert "CLI Example:" in doc, f"{kind}/{name}: {fun}'s docstring has no 'CLI Example:'"
    command = "salt-run" if kind == "_runners" else r"salt(?:-call)?"
    assert any(re.match(rf"^{command}\b.*\s{re.escape(call)}(\s|$)", line) for line in _commands(doc)), (
        f"{kind}/{name}: {fun}'s CLI Example never calls {call}"
    )


@pytest.mark.parametrize("kind,name", list(_modules()), ids=[f"{k}/{n}" for k, n in _modules()])
def test_examples_target_by_grain_or_every_minion(kind, name):
    tree = _parse(kind, name)
    docs = [ast.get_docstring(tree) or ""]
    docs += [ast.get_docstring(n) or "" for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]
    bad = [line for doc in docs for line in bad_targets(doc)]
    assert not bad, f"{kind}/{name}: target by grain (-G/-C 'G@...') or '*':\n  " + "\n  ".join(bad)


def test_the_target_check_itself():
    doc = ".. code-block:: bash\n\n    salt cloud caddy.drift\n    salt '*' hecate.version\n" \
          "    salt -G 'roles:hecate-edge' caddy.drift\n" \
          "    salt -C 'G@roles:bionicgpt-node and G@hecate_env:prod' nomad.job_status x\n" \
          "    salt --out=json local nomad.plan\n    salt-call hecate.new_run_id\n"
    assert bad_targets(doc) == ["salt cloud caddy.drift", "salt --out=json local nomad.plan"]
