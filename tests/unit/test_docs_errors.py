"""
Every message hecate shows an operator is in the troubleshooting table of
docs/operations.md, with its cause and fix.

The messages are read from the code (AST), not listed by hand, so a new message fails here
until the table has it:

- the first argument of every exception hecate raises or builds that is (or derives from)
  ``CommandExecutionError``/``SaltInvocationError`` (``hecate_http.HTTPError``/``Unreachable``,
  ``RouteDataError`` ... included), and the text their ``__init__`` passes to ``super()``;
- state comments on failure: ``ret.update(result=False, comment=...)``, ``{"result": False,
  "comment": ...}``, and what a block sets or collects after ``ret["result"] = False``;
- pillar validation messages: the ``(key_path, message)`` pairs of ``_utils`` (every
  ``check_pillar``, ``hecate_schema``'s own) and strings added to ``errors``/``problems``/
  ``missing`` lists.

A message is its constant text with ``<…>`` for the variable parts (a local variable, a
module constant or a helper function that returns the text is followed). It is covered when
its leading constant piece (:func:`fragment`; case, backticks, backslashes and spacing
ignored) appears in the table. Messages with fewer than three words of constant text, or no
piece of two words, are too generic to look up and are skipped.
"""

import ast
import os
import re

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DIRS = ("_modules", "_states", "_runners", "_utils")
DOC = os.path.join(REPO, "docs", "operations.md")
BASE_ERRORS = {"CommandExecutionError", "SaltInvocationError"}
LISTS = ("errors", "problems", "missing")
FRAGMENT_WORDS = 8
VAR = None  # a variable part of a message

# Messages an operator cannot meet through hecate's states, runners, execution functions or
# pillar: they guard hecate's own internal calls (reaching one is a bug in hecate, not
# something an operator can fix). Key: the message's fragment; value: why it is internal.
ALLOW = {
    "a lock needs a holder name (who takes": (
        "hecate_consul_client.Client.lock_acquire: hecate_consul.lock_acquire defaults the holder to the "
        "minion id and the runner always names it, so only a bug in hecate reaches it"
    ),
}


def _name(func):
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


class Source:
    """The parsed code: module string constants, functions, exception classes."""

    def __init__(self):
        self.trees = {}
        for folder in DIRS:
            for filename in sorted(os.listdir(os.path.join(REPO, folder))):
                if filename.endswith(".py"):
                    rel = f"{folder}/{filename}"
                    with open(os.path.join(REPO, rel), encoding="utf-8") as fh:
                        self.trees[rel] = ast.parse(fh.read(), rel)
        self.consts, self.funcs, self.errors = {}, {}, set(BASE_ERRORS)
        for tree in self.trees.values():
            for node in tree.body:
                if (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
                        and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)):
                    self.consts[node.targets[0].id] = node.value.value
                if isinstance(node, ast.FunctionDef):
                    self.funcs[node.name] = node
        grown = True
        while grown:  # the code's own exception classes, transitively
            grown = False
            for tree in self.trees.values():
                for node in ast.walk(tree):
                    if (isinstance(node, ast.ClassDef) and node.name not in self.errors
                            and any(_name(base) in self.errors for base in node.bases)):
                        self.errors.add(node.name)
                        grown = True

    def parts(self, node, scope=None, depth=0):
        """The constant pieces of a string expression (VAR for variable parts), or None."""
        if depth > 6 or node is None:
            return None
        if isinstance(node, ast.Constant):
            return [node.value] if isinstance(node.value, str) else None
        if isinstance(node, ast.JoinedStr):
            return [v.value if isinstance(v, ast.Constant) else VAR for v in node.values]
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            left, right = self.parts(node.left, scope, depth + 1), self.parts(node.right, scope, depth + 1)
            return None if left is None and right is None else (left or [VAR]) + (right or [VAR])
        if isinstance(node, ast.IfExp):
            one, two = self.parts(node.body, scope, depth + 1), self.parts(node.orelse, scope, depth + 1)
            return None if one is None and two is None else (one or []) + [VAR] + (two or [])
        if isinstance(node, (ast.Name, ast.Attribute)):
            key = node.id if isinstance(node, ast.Name) else node.attr
            if key in self.consts:
                return [self.consts[key]]
            if isinstance(node, ast.Name) and scope is not None:
                return self._local(node.id, scope, depth)
            return None
        if isinstance(node, ast.Call):
            fname = _name(node.func)
            if fname == "scrub" and node.args:  # hecate_secrets.scrub(message, secrets)
                return self.parts(node.args[0], scope, depth + 1)
            if fname in self.funcs and fname != "str":  # a helper that returns the message
                out = [p + [VAR] for p in self.alternatives(node, scope, depth)]
                return [x for p in out for x in p] or None
        return None

    def alternatives(self, node, scope=None, depth=0):
        """The messages an expression may be: one per ``return`` of a helper, else one."""
        fname = _name(node.func) if isinstance(node, ast.Call) else None
        if fname == "scrub" and node.args:
            return self.alternatives(node.args[0], scope, depth + 1)
        if fname in self.funcs and fname != "str" and depth <= 6:
            helper = self.funcs[fname]
            returns = [sub.value for sub in ast.walk(helper) if isinstance(sub, ast.Return)]
            return [p for p in (self.parts(value, helper, depth + 1) for value in returns) if p]
        got = self.parts(node, scope, depth)
        return [got] if got else []

    def _local(self, name, scope, depth):
        """A local variable that holds the message: ``msg = f"..."``, ``msg += "..."``."""
        out = []
        for sub in ast.walk(scope):
            if not isinstance(sub, (ast.Assign, ast.AugAssign)):
                continue
            targets = sub.targets if isinstance(sub, ast.Assign) else [sub.target]
            if not any(isinstance(t, ast.Name) and t.id == name for t in targets):
                continue
            got = self.parts(sub.value, None, depth + 1)
            out += (got + [VAR]) if got else []
        return out or None


def _is_result_false(stmt):
    """``ret["result"] = False``"""
    return (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Subscript)
            and isinstance(stmt.targets[0].slice, ast.Constant) and stmt.targets[0].slice.value == "result"
            and isinstance(stmt.value, ast.Constant) and stmt.value.value is False)


def _after_failure(node):
    """Expressions a block sets or collects after ``ret["result"] = False`` (the comment)."""
    for field in ("body", "orelse", "finalbody"):
        block = getattr(node, field, None)
        if not isinstance(block, list):
            continue
        failing = False
        for stmt in block:
            failing = failing or _is_result_false(stmt)
            if not failing:
                continue
            for sub in ast.walk(stmt):
                if not isinstance(sub, (ast.Assign, ast.AugAssign, ast.Expr)):
                    continue
                value = sub.value
                items = value.elts if isinstance(value, (ast.List, ast.Tuple)) else [value]
                if isinstance(value, ast.Call):
                    items = value.args if _name(value.func) in ("append", "extend") else []
                yield from items


def _path_like(node):
    """The first element of a ``(key_path, message)`` pair."""
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str) and ":" in node.value
    return isinstance(node, (ast.JoinedStr, ast.Name, ast.Attribute, ast.Subscript, ast.BinOp, ast.BoolOp, ast.Call))


def _found(rel, node):
    """``(kind, expression)`` of the messages at one AST node."""
    out = []
    if isinstance(node, ast.Call) and node.args:
        fname = _name(node.func)
        if fname in SOURCE.errors:
            out.append(("error", node.args[0]))
        if fname == "__init__" and isinstance(node.func.value, ast.Call) and _name(node.func.value.func) == "super":
            out.append(("error", node.args[0]))
        target = node.func.value if isinstance(node.func, ast.Attribute) else None
        if fname == "append" and isinstance(target, ast.Name) and target.id in LISTS \
                and not isinstance(node.args[0], ast.Tuple):
            out.append(("check", node.args[0]))
    if isinstance(node, ast.Call) and _name(node.func) == "update":
        kw = {k.arg: k.value for k in node.keywords}
        if isinstance(kw.get("result"), ast.Constant) and kw["result"].value is False and "comment" in kw:
            out.append(("comment", kw["comment"]))
    if isinstance(node, ast.Dict):
        keys = [k.value if isinstance(k, ast.Constant) else None for k in node.keys]
        if "result" in keys and "comment" in keys:
            res = node.values[keys.index("result")]
            if isinstance(res, ast.Constant) and res.value is False:
                out.append(("comment", node.values[keys.index("comment")]))
    if (isinstance(node, ast.Assign) and isinstance(node.value, ast.ListComp)
            and any(isinstance(t, ast.Name) and t.id in LISTS for t in node.targets)):
        out.append(("check", node.value.elt))
    out.extend(("comment", expr) for expr in _after_failure(node))
    if rel.startswith("_utils/") and isinstance(node, ast.Tuple) and len(node.elts) == 2 and _path_like(node.elts[0]):
        out.append(("check", node.elts[1]))
    return out


def messages():
    """``[(where, kind, parts)]`` of every message found."""
    out = []
    for rel, tree in SOURCE.trees.items():
        for func in ast.walk(tree):
            if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(func):
                for kind, expr in _found(rel, node):
                    for got in SOURCE.alternatives(expr, func):
                        out.append((f"{rel}:{getattr(expr, 'lineno', '?')}", kind, got))
    return out


def normalise(text):
    text = " ".join(str(text).replace("`", "").replace("\\", "").split()).lower()
    return text.strip(" .,;:'\"()[]{}-")


def fragment(parts):
    """
    What the table must contain of a message: its leading constant piece (pieces split at
    variable parts and line breaks) of three words or more, else its longest piece of two;
    at most its first eight words. "" when no piece has two words.
    """
    pieces = [normalise(line) for part in parts if part is not VAR for line in part.split("\n")]
    pieces = [p for p in pieces if len(p.split()) >= 2]
    if not pieces:
        return ""
    lead = next((p for p in pieces if len(p.split()) >= 3), None) or max(pieces, key=len)
    return normalise(" ".join(lead.split()[:FRAGMENT_WORDS]))


def template(parts):
    return "".join("<…>" if part is VAR else part for part in parts)


def checked():
    """``{fragment: [(where, template)]}`` of the messages specific enough to look up."""
    out = {}
    for where, _kind, parts in messages():
        total = " ".join(p for p in parts if p is not VAR)
        frag = fragment(parts)
        if len(total.split()) < 3 or not frag:
            continue
        out.setdefault(frag, []).append((where, " ".join(template(parts).split())))
    return out


def table_text():
    """The troubleshooting table of docs/operations.md, normalised."""
    with open(DOC, encoding="utf-8") as fh:
        text = fh.read()
    section = text.split("## Troubleshooting", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")]
    return normalise(" ".join(rows)), rows


SOURCE = Source()


def test_the_extractor_finds_the_known_kinds_of_message():
    """The AST walk sees each kind of message (so a change in the code's style cannot empty it)."""
    found = checked()
    for expected in (
        "sent no etag header",  # hecate_caddy_client: raise CommandExecutionError(f"...")
        "is unreachable",  # hecate_http.Unreachable via a helper
        "invalid caddy route data (nothing was written",  # RouteDataError.__init__ -> super()
        "nomad cannot place job",  # nomad_job: ret.update(result=False, comment=...)
        "is not working after",  # wireguard: ret["result"] = False; ret["comment"] = ...
        "same vault path and key as",  # hecate_vault_schema.check_pillar (path, message)
        "unknown key (not in the schema",  # hecate_schema.format_error
        "does not match the expected format",  # hecate_schema._message, a helper
    ):
        assert any(expected in frag for frag in found), expected
    assert len(found) > 250, len(found)


def test_every_message_is_in_the_troubleshooting_table():
    text, rows = table_text()
    assert len(rows) > 100
    missing = {frag: where for frag, where in checked().items() if frag not in text and frag not in ALLOW}
    report = "\n".join(
        f"  {where[0][0]}: {where[0][1]!r}\n      -> the table must contain: {frag!r}"
        for frag, where in sorted(missing.items(), key=lambda kv: kv[1][0][0])
    )
    assert not missing, (
        f"{len(missing)} message(s) hecate shows an operator are not in the troubleshooting table of "
        "docs/operations.md. Add a row (| `message, variable parts as <...>` | cause and fix |) whose message "
        "contains the quoted text, or, for a message only a bug in hecate can produce, an ALLOW entry in "
        f"this file saying why:\n{report}"
    )


def test_allow_list_is_current():
    """An allow-listed message that no longer exists in the code is dropped from ALLOW."""
    stale = sorted(set(ALLOW) - set(checked()))
    assert not stale, f"ALLOW names messages the code no longer has: {stale}"


def test_the_table_has_one_cause_and_fix_per_row():
    _, rows = table_text()
    header, rule, *body = rows
    assert header.count("|") == 3 and set(rule.replace("|", "")) <= {"-", " "}
    bad = [row for row in body if row.count("|") - row.count("\\|") != 3 or not row.split("|")[2].strip()]
    assert not bad, "rows without exactly two cells or with an empty cause and fix:\n" + "\n".join(bad)
    empty = [row for row in body if re.search(r"(?<!\\)\|[ \t]*\|", row)]
    assert not empty, "rows with an empty cell:\n" + "\n".join(empty)
