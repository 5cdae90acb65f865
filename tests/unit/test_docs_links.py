"""
README.md stays short, and every relative link in README.md and docs/ points at a file that
exists (``{doc}`` references are checked by the Sphinx build, ``make docs``; plain Markdown
links, which GitHub follows and Sphinx does not always check, are checked here).
"""

import os
import re

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
README_MAX_LINES = 150
FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)
INLINE_CODE = re.compile(r"(`+).+?\1", re.S)
LINK = re.compile(r"(?<!!)\[[^\]\n]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
IMAGE = re.compile(r"!\[[^\]\n]*\]\(\s*<?([^)\s>]+)>?\s*\)")
REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", re.M)


def _pages():
    pages = ["README.md"]
    for root, dirs, files in os.walk(os.path.join(REPO, "docs")):
        dirs[:] = [d for d in dirs if not d.startswith(("_", "."))]
        pages += [os.path.relpath(os.path.join(root, f), REPO) for f in sorted(files) if f.endswith(".md")]
    return sorted(pages)


def _prose(text):
    """The text without code: fenced blocks, indented blocks, inline code spans."""
    text = FENCE.sub("", text)
    lines, kept, in_block = text.splitlines(), [], False
    for idx, line in enumerate(lines):
        indented = line.startswith(("    ", "\t"))
        blank_before = idx == 0 or not lines[idx - 1].strip() or in_block
        in_block = indented and blank_before and not line.lstrip().startswith(("-", "*", "|"))
        kept.append("" if in_block else line)
    return INLINE_CODE.sub("", "\n".join(kept))


def links(text):
    prose = _prose(text)
    return LINK.findall(prose) + IMAGE.findall(prose) + REFERENCE.findall(prose)


def _is_file_link(target):
    return not re.match(r"^([a-z][a-z0-9+.-]*:|#|//)", target, re.I)


def test_readme_is_short():
    with open(os.path.join(REPO, "README.md"), encoding="utf-8") as fh:
        count = len(fh.read().splitlines())
    assert count <= README_MAX_LINES, f"README.md has {count} lines (at most {README_MAX_LINES}): move detail to docs/"


def test_the_link_finder_sees_links_and_skips_code():
    text = (
        "See [a](docs/a.md), ![img](pic.png) and [b](https://x.example/b).\n\n"
        "    [not](indented-code.md)\n\n"
        "```\n[not](fenced.md)\n```\n"
        "Call `f[x](y)` here.\n\n[ref]: docs/ref.md\n"
    )
    assert sorted(links(text)) == ["docs/a.md", "docs/ref.md", "https://x.example/b", "pic.png"]


@pytest.mark.parametrize("page", _pages())
def test_relative_links_point_at_files(page):
    with open(os.path.join(REPO, page), encoding="utf-8") as fh:
        text = fh.read()
    base = os.path.dirname(os.path.join(REPO, page))
    broken = []
    for target in links(text):
        if not _is_file_link(target):
            continue
        path = target.split("#", 1)[0].split("?", 1)[0]
        if path and not os.path.exists(os.path.normpath(os.path.join(base, path))):
            broken.append(target)
    assert not broken, f"{page} links to files that do not exist: {broken}"
