"""
Sphinx directives of hecate's docs.

``.. hecate-pillar-reference::`` renders the pillar schema that ``hecate.validate`` checks
(``hecate_schema.schema()``: the base plus every system's fragment) as one table per
section: every key with its type, default, example and description. With
``hecate_require_descriptions = True`` in conf.py a key without a ``description`` is a
warning, which ``make docs`` (``-W``) turns into an error.
"""

import importlib
import json
import os
import re

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import nested_parse_with_titles

LOG = logging.getLogger(__name__)


def _types(node):
    if "type" in node:
        kind = node["type"]
        return " or ".join(kind) if isinstance(kind, list) else kind
    for combo in ("oneOf", "anyOf"):
        if combo in node:
            parts = []
            for sub in node[combo]:
                if _is_vault_ref(sub):
                    parts.append("Vault reference")
                elif sub.get("pattern") == "^sdb://":
                    parts.append("sdb:// URI")
                else:
                    parts.append(_types(sub))
            return " or ".join(dict.fromkeys(p for p in parts if p))
    if "enum" in node:
        return "one of " + ", ".join(json.dumps(v) for v in node["enum"])
    if "const" in node:
        return json.dumps(node["const"])
    return ""


def _is_vault_ref(node):
    return isinstance(node, dict) and set(node.get("required", [])) == {"vault", "key"}


# Patterns shared by many keys, named in words (a 100-character regex tells an operator little).
def _pattern_words():
    names = {}
    for module, attr, words in (
        ("hecate_schema", "HOSTNAME", "a host name"),
        ("hecate_schema", "DOMAIN", "a domain name (*. allowed)"),
        ("hecate_nginx_schema", "HOSTPORT", "host:port"),
        ("hecate_nginx_schema", "PATH", "an absolute path"),
        ("hecate_coturn_schema", "PATH", "an absolute path"),
        ("hecate_dns_schema", "RECORD_NAME", "a record name (_ labels and *. allowed)"),
    ):
        names[getattr(importlib.import_module(f"saltext.hecate.utils.{module}"), attr)] = words
    schema_mod = importlib.import_module("saltext.hecate.utils.hecate_schema")
    names[schema_mod.URL["pattern"]] = "an http(s) URL"
    names[schema_mod.VAULT_REF["properties"]["vault"]["pattern"]] = "a Vault path <mount>/<path>"
    return names


def _constraints(node, words=None):
    out = []
    if "enum" in node and "type" in node:
        out.append("one of " + ", ".join(f"`{json.dumps(v)}`" for v in node["enum"]))
    for key, word in (("minimum", "≥"), ("maximum", "≤"), ("exclusiveMinimum", ">"),
                      ("exclusiveMaximum", "<")):
        if key in node:
            out.append(f"{word} {node[key]}")
    if "pattern" in node and node["pattern"] != "^sdb://":
        named = (words or {}).get(node["pattern"])
        out.append(_escape(named) if named else f"pattern `{node['pattern']}`")
    return out


_MARKUP = re.compile(r"([\\`*_<>\[\]])")


def _escape(text):
    """Plain text for MyST: markup characters escaped, except inside `code spans`."""
    parts = str(text).split("`")
    for idx in range(0, len(parts), 2):  # even parts lie outside code spans
        parts[idx] = _MARKUP.sub(r"\\\1", parts[idx])
    return "`".join(parts) if len(parts) % 2 else _MARKUP.sub(r"\\\1", str(text))


def walk(node, path, rows, required=False):
    """Rows ``(path, node, required)`` for every documented key below ``node``."""
    if not isinstance(node, dict):
        return
    if path:
        rows.append((path, node, required))
    if _is_vault_ref(node):
        return
    needed = set(node.get("required", []))
    for key, sub in (node.get("properties") or {}).items():
        walk(sub, f"{path}:{key}" if path else key, rows, key in needed)
    for pattern, sub in (node.get("patternProperties") or {}).items():
        walk(sub, f"{path}:<{_placeholder(pattern)}>", rows)
    extra = node.get("additionalProperties")
    if isinstance(extra, dict) and (extra.get("properties") or extra.get("patternProperties")):
        walk(extra, f"{path}:<name>", rows)
    items = node.get("items")
    if isinstance(items, dict) and (items.get("properties") or items.get("items")):
        walk(items, f"{path}:<n>", rows)
    for combo in ("oneOf", "anyOf"):
        for sub in node.get(combo) or []:
            if isinstance(sub, dict) and sub.get("properties") and not _is_vault_ref(sub):
                for key, inner in sub["properties"].items():
                    walk(inner, f"{path}:{key}", rows, key in set(sub.get("required", [])))


def _placeholder(pattern):
    return "name" if len(pattern) > 12 else pattern.strip("^$")


def _cell(text):
    return " ".join(str(text).split()) if text not in (None, "") else ""


def _literal(value):
    return f"`{json.dumps(value)}`"


class PillarReference(SphinxDirective):
    """``.. hecate-pillar-reference::`` with an optional section (``hecate:reverse_proxy``)."""

    optional_arguments = 1

    def run(self):
        schema_mod = importlib.import_module("saltext.hecate.utils.hecate_schema")
        schema = schema_mod.schema()
        rows = []
        walk(schema, "", rows)
        prefix = self.arguments[0] if self.arguments else None
        if prefix:
            rows = [r for r in rows if r[0] == prefix or r[0].startswith(prefix + ":")]
        require = self.config.hecate_require_descriptions
        words = _pattern_words()
        # MyST, the markup of the page this directive sits in
        lines = ["```{list-table}", ":header-rows: 1", ":widths: 30 14 14 42", "",
                 "* - key", "  - type", "  - default / example", "  - description"]
        for path, node, required in rows:
            description = node.get("description")
            if not description and require:
                LOG.warning("pillar key %s has no description in the schema", path,
                            location=self.get_location())
            facts = _constraints(node, words)
            if required:
                facts.insert(0, "**required**")
            detail = _escape(_cell(description or ""))
            if facts:
                detail = (detail + " " if detail else "") + "(" + "; ".join(facts) + ")"
            values = []
            if "default" in node:
                values.append("default " + _literal(node["default"]))
            for example in node.get("examples", [])[:1]:
                values.append("e.g. " + _literal(example))
            lines += [f"* - `{path}`", f"  - {_escape(_cell(_types(node)))}",
                      f"  - {_cell('; '.join(values))}", f"  - {detail}"]
        lines.append("```")
        container = nodes.container()
        self.state.nested_parse(StringList(lines, source=self.get_source_info()[0]),
                                self.content_offset, container)
        return container.children


class ModuleIndex(SphinxDirective):
    """
    ``.. hecate-module-reference:: modules|states|runners``: every loader module of that
    kind (each file of ``_modules/`` ...), documented from its docstrings, so a new module
    appears without editing the docs.
    """

    required_arguments = 1

    def run(self):
        kind = self.arguments[0]
        folder = os.path.join(os.path.dirname(self.env.srcdir), f"_{kind}")
        lines = []
        for filename in sorted(os.listdir(folder)):
            if not filename.endswith(".py") or filename.startswith("_"):
                continue
            name = filename[:-3]
            # autodoc writes reStructuredText (and the docstrings are RST): eval-rst
            lines += [f"## {name}", "", "```{eval-rst}", f".. automodule:: saltext.hecate.{kind}.{name}",
                      "```", ""]
        container = nodes.section()
        nested_parse_with_titles(self.state, StringList(lines, source=self.get_source_info()[0]),
                                 container)
        return container.children


class VaultPrerequisites(SphinxDirective):
    """
    ``.. hecate-vault-prerequisites:: <env>``: the Vault secrets an operator must store
    before a first run, read from the shipped pillar (base files + the overlay of
    ``<env>``, rendered with Jinja as Salt does: the files import their names from
    ``hecate.sls``): every Vault reference that hecate does not produce itself, with the pillar
    key that names it. What ``hecate.validate`` checks, so the list cannot drift from it.
    """

    required_arguments = 1

    def run(self):
        import jinja2  # pylint: disable=import-outside-toplevel
        import yaml  # pylint: disable=import-outside-toplevel

        config = importlib.import_module("saltext.hecate.utils.hecate_config")
        preflight = importlib.import_module("saltext.hecate.utils.hecate_preflight")
        secrets = importlib.import_module("saltext.hecate.utils.hecate_secrets")
        root = os.path.join(os.path.dirname(self.env.srcdir), "pillar")
        templates = jinja2.Environment(loader=jinja2.FileSystemLoader(root),
                                       undefined=jinja2.StrictUndefined)
        grains = {"hecate_env": self.arguments[0]}
        pillar = {}
        for name in ("hecate.sls", "bionicgpt.sls", f"env/{self.arguments[0]}.sls"):
            text = templates.get_template(name).render(grains=grains)
            pillar = config.deep_merge(pillar, yaml.safe_load(text) or {})
            self.env.note_dependency(os.path.join(root, name))
        produced = preflight.produced_by_hecate(pillar)
        wanted = {}
        for key_path, ref in secrets.find_refs({k: pillar.get(k) for k in ("hecate", "bionicgpt")}):
            mount, path, key = secrets.parse_ref(ref, key_path)
            if (f"{mount}/{path}", key) not in produced:
                wanted.setdefault((f"{mount}/{path}", key), []).append(key_path)
        lines = ["```{list-table}", ":header-rows: 1", "", "* - Vault path", "  - key",
                 "  - named by"]
        for (path, key), users in sorted(wanted.items()):
            lines += [f"* - `{path}`", f"  - `{key}`", "  - " + ", ".join(f"`{u}`" for u in users)]
        lines.append("```")
        container = nodes.container()
        self.state.nested_parse(StringList(lines, source=self.get_source_info()[0]),
                                self.content_offset, container)
        return container.children


def setup(app):
    app.add_directive("hecate-vault-prerequisites", VaultPrerequisites)
    app.add_directive("hecate-module-reference", ModuleIndex)
    app.add_config_value("hecate_require_descriptions", False, "env")
    app.add_directive("hecate-pillar-reference", PillarReference)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
