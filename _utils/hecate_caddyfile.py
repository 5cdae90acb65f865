"""
A Caddyfile's text, read only to find where things are: its global options, snippets and
site blocks, and each directive's line (with the snippets a site imports expanded), so the
importer (``hecate_caddy_import``) can name the Caddyfile line of what it maps or cannot map.
What the Caddyfile *means* always comes from Caddy's own adapter (``caddy adapt``), never
from this reader.

Tokens follow Caddy's lexer (caddyconfig/caddyfile/lexer.go): whitespace separates them, a
``#`` at the start of a token starts a comment to the end of the line, ``"..."`` (``\\"``
escapes a quote) and backticks quote, a ``\\`` before a newline continues the line, and
``<<MARKER`` starts a heredoc. A directive is the tokens on one line; one that ends with
``{`` has a block up to its matching ``}``.
"""

import re


class Token:
    __slots__ = ("text", "line", "quoted")

    def __init__(self, text, line, quoted=False):
        self.text, self.line, self.quoted = text, line, quoted

    def is_(self, text):
        return self.text == text and not self.quoted


def tokens(text):
    """The tokens of a Caddyfile text, each with the line it starts on."""
    out = []
    i, n, line, skipped = 0, len(text), 1, 0
    if text.startswith("\ufeff"):
        i = 1
    while i < n:
        ch = text[i]
        if ch == "\n":
            line += 1 + skipped
            skipped = 0
            i += 1
        elif ch.isspace():
            i += 1
        elif ch == "\\" and i + 1 < n and text[i + 1] == "\n":  # escaped newline: same line for Caddy
            i += 2
            skipped += 1
        elif ch == "#":
            while i < n and text[i] != "\n":
                i += 1
        elif ch in "\"`":
            start, i, val = line, i + 1, []
            while i < n and text[i] != ch:
                if ch == '"' and text[i] == "\\" and i + 1 < n and text[i + 1] == '"':
                    i += 1
                if text[i] == "\n":
                    line += 1
                val.append(text[i])
                i += 1
            out.append(Token("".join(val), start, True))
            i += 1
        elif text.startswith("<<", i) and re.match(r"<<[A-Za-z0-9_-]+\n", text[i:]):
            marker = re.match(r"<<([A-Za-z0-9_-]+)\n", text[i:]).group(1)
            end = text.find(marker, text.index("\n", i) + 1)
            end = n if end < 0 else end + len(marker)
            out.append(Token(text[i:end], line, True))
            line += text.count("\n", i, end)
            i = end
        else:
            start = i
            while i < n and not text[i].isspace():
                if text[i] == "\\" and i + 1 < n and text[i + 1] == "\n":
                    break
                i += 1
            out.append(Token(text[start:i], line))
    return out


class Directive:
    """One directive: ``name``, ``args``, ``line``, ``text`` (its tokens), ``block`` (inner directives)."""

    def __init__(self, toks, block=None, via=None):
        self.name = toks[0].text
        self.args = [t.text for t in toks[1:]]
        self.line = toks[0].line
        self.text = " ".join(_show(t) for t in toks)
        self.block = block or []
        self.via = via  # the snippet it came from (by import), or None

    def __repr__(self):
        return f"Directive({self.text!r}, line {self.line})"


def _show(tok):
    if not tok.quoted:
        return tok.text
    return '"' + tok.text.replace('"', '\\"') + '"' if "\n" not in tok.text else '"..."'


def _end_line(tok):
    """The line a token ends on (a quoted one may hold newlines)."""
    return tok.line + (tok.text.count("\n") if tok.quoted else 0)


def _body(toks, i):
    """Directives from ``toks[i]`` up to the matching ``}`` (or the end): ``(directives, next i)``."""
    out = []
    n = len(toks)
    while i < n:
        tok = toks[i]
        if tok.is_("}"):
            return out, i + 1
        j = i + 1
        while j < n and toks[j].line == _end_line(toks[j - 1]) and not toks[j].is_("}"):
            j += 1
        line_toks = toks[i:j]
        if len(line_toks) > 1 and line_toks[-1].is_("{"):
            block, j = _body(toks, j)
            item = Directive(line_toks[:-1], block)
            item.text += " {"
            out.append(item)
        else:
            out.append(Directive(line_toks))
        i = j
    return out, i


class Block:
    """A top-level block: ``kind`` (global, snippet, named_route, site), ``keys``, ``line``, ``directives``."""

    def __init__(self, kind, keys, line, directives):
        self.kind, self.keys, self.line, self.directives = kind, keys, line, directives
        self.name = keys[0][1:-1] if kind == "snippet" else None


def blocks(text):
    """The top-level blocks of a Caddyfile, in order."""
    toks = tokens(text)
    out, i, n = [], 0, len(toks)
    if i < n and toks[i].is_("{"):
        body, i = _body(toks, i + 1)
        out.append(Block("global", [], toks[0].line, body))
    while i < n:
        start = toks[i]
        keys = [start.text]
        j = i + 1
        # keys: the tokens of the first line (and lines continued by a trailing comma)
        while j < n and not toks[j].is_("{") and (toks[j].line == toks[j - 1].line or keys[-1].endswith(",")):
            keys.append(toks[j].text)
            j += 1
        if j < n and toks[j].is_("{"):
            body, j = _body(toks, j + 1)
        else:  # a single site without braces: the rest of the file
            body, j = _body(toks, j)
        keys = [k for key in keys for k in key.split(",") if k]
        if re.match(r"^\(.+\)$", keys[0]):
            kind = "snippet"
        elif keys[0].startswith("&("):
            kind = "named_route"
        else:
            kind = "site"
        out.append(Block(kind, keys, start.line, body))
        i = j
    return out


def host_of(address):
    """The host a site address serves (``https://a.example:443`` -> ``a.example``; None: any)."""
    addr = re.sub(r"^[a-z][a-z0-9+.-]*://", "", address.strip().lower())
    addr = addr.split("/", 1)[0]
    if addr.startswith("["):
        host = addr[1:addr.find("]")] if "]" in addr else addr
    else:
        host = addr.rsplit(":", 1)[0] if addr.count(":") == 1 else addr
    return host or None


class Caddyfile:
    """
    A Caddyfile's text as blocks: ``options`` (global), ``snippets`` by name, ``sites``;
    :meth:`site_for` finds a site by its hosts, :meth:`directives` lists a site's directives
    with its imports expanded.
    """

    def __init__(self, text):
        self.text = text
        self.blocks = blocks(text)
        self.options = next((b.directives for b in self.blocks if b.kind == "global"), [])
        self.snippets = {b.name: b for b in self.blocks if b.kind == "snippet"}
        self.sites = [b for b in self.blocks if b.kind == "site"]

    def comment_before(self, line):
        """The comment line just above ``line`` (without ``#``), or None."""
        lines = self.text.splitlines()
        if 2 <= line <= len(lines) + 1:
            above = lines[line - 2].strip()
            if above.startswith("#"):
                return above.lstrip("#").strip() or None
        return None

    def site_for(self, hosts):
        want = {h.lower() for h in hosts}
        for site in self.sites:
            if {host_of(k) for k in site.keys} == want:
                return site
        return None

    def directives(self, block, _seen=()):
        """The directives of ``block`` in order, each ``import <snippet>`` replaced by the snippet's."""
        out = []
        for item in block.directives:
            snippet = self.snippets.get(item.args[0]) if item.name == "import" and item.args else None
            if snippet is not None and snippet.name not in _seen:
                for inner in self.directives(snippet, _seen + (snippet.name,)):
                    inner.via = inner.via or snippet.name
                    out.append(inner)
            else:
                out.append(item)
        return out

    def unresolved_imports(self, block):
        return [d for d in self.directives(block) if d.name == "import"]


class Lines:
    """
    Line finder for one site: :meth:`take` hands out the next not yet taken directive of a
    name, so three ``respond`` directives get three lines, in order.
    """

    def __init__(self, caddyfile, site):
        self.caddyfile, self.site = caddyfile, site
        self.items = caddyfile.directives(site) if site is not None else []
        self.taken = set()

    def find(self, names, pred=None):
        for idx, item in enumerate(self.items):
            if item.name in names and (pred is None or pred(item)):
                return idx, item
        return None, None

    def take(self, names, pred=None):
        for idx, item in enumerate(self.items):
            if idx not in self.taken and item.name in names and (pred is None or pred(item)):
                self.taken.add(idx)
                return item
        return None

    def matcher(self, name):
        """The definition of the named matcher ``@name`` (a snippet's too), or None."""
        _, item = self.find((f"@{name}",))
        return item

    def sub(self, item, names):
        """The first line of ``item``'s block with one of ``names``, or None."""
        for inner in item.block if item is not None else []:
            if inner.name in names:
                return inner
        return None
