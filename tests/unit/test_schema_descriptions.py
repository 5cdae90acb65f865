"""
Every key of the pillar schema has a ``description``: docs/pillar.md renders the schema as the
pillar reference, and a key without one would be an undocumented setting (``make docs`` fails on
it too; this test fails sooner, in ``make test-quick``).
"""

import hecate_loader
import hecate_schema


def _is_vault_ref(node):
    return isinstance(node, dict) and set(node.get("required", [])) == {"vault", "key"}


def _walk(node, path, out):
    """``(path, node)`` of every key below ``node``, as the pillar reference lists them."""
    if not isinstance(node, dict) or _is_vault_ref(node):
        return
    for key, sub in (node.get("properties") or {}).items():
        out.append((f"{path}:{key}" if path else key, sub))
        _walk(sub, f"{path}:{key}" if path else key, out)
    for pattern, sub in (node.get("patternProperties") or {}).items():
        out.append((f"{path}:<{pattern}>", sub))
        _walk(sub, f"{path}:<{pattern}>", out)
    extra = node.get("additionalProperties")
    if isinstance(extra, dict) and (extra.get("properties") or extra.get("patternProperties")):
        out.append((f"{path}:<name>", extra))
        _walk(extra, f"{path}:<name>", out)
    items = node.get("items")
    if isinstance(items, dict) and (items.get("properties") or items.get("items")):
        out.append((f"{path}:<n>", items))
        _walk(items, f"{path}:<n>", out)
    for combo in ("oneOf", "anyOf", "allOf"):
        for sub in node.get(combo) or []:
            _walk(sub, path, out)


def _owner(path):
    """The module whose PILLAR_SCHEMA places ``path`` (longest registered prefix)."""
    best, owner = "", "_utils/hecate_schema.py (BASE_SCHEMA)"
    for name in hecate_schema.SYSTEM_MODULES:
        for where in getattr(hecate_loader.import_util(name), "PILLAR_SCHEMA", {}):
            if (path == where or path.startswith(where + ":")) and len(where) > len(best):
                best, owner = where, f"_utils/{name}.py"
    return owner


def test_every_pillar_key_has_a_description():
    rows = []
    _walk(hecate_schema.schema(), "", rows)
    assert len(rows) > 500, "the walk found too few keys: is the schema assembled?"
    missing = {}
    for path, node in rows:
        text = node.get("description") if isinstance(node, dict) else None
        if not isinstance(text, str) or not text.strip():
            missing.setdefault(_owner(path), []).append(path)
    report = "\n".join(
        f"  {owner}:\n" + "\n".join(f"    {p}" for p in paths) for owner, paths in sorted(missing.items())
    )
    assert not missing, (
        "pillar keys without a description (add \"description\": what the key does, its units, "
        "what happens when it is absent; plus \"default\" when the code has one, e.g. with "
        "hecate_schema.described(fragment, ...)):\n" + report
    )


def test_descriptions_do_not_change_validation():
    """``described`` copies: the shared fragment keeps no description of one use."""
    node = hecate_schema.described(hecate_schema.URL, "x", default="http://a", examples=["http://b"])
    assert node["description"] == "x" and "description" not in hecate_schema.URL
    assert hecate_schema.validate({"hecate": {"global": {"domain": "example.com", "environment": "lab"}}},
                                  "lab") == []


def test_defaults_and_examples_are_valid_values():
    """A documented default or example must itself pass the key's schema."""
    import jsonschema  # pylint: disable=import-outside-toplevel

    rows = []
    _walk(hecate_schema.schema(), "", rows)
    bad = []
    for path, node in rows:
        bare = {k: v for k, v in node.items() if k not in ("default", "examples", "description")}
        for label, values in (("default", [node["default"]] if "default" in node else []),
                              ("example", node.get("examples") or [])):
            for value in values:
                if value is None:
                    continue  # "absent" defaults (null): the key is optional
                errors = list(jsonschema.Draft202012Validator(bare).iter_errors(value))
                if errors:
                    bad.append(f"{path}: {label} {value!r}: {errors[0].message}")
    assert not bad, "\n".join(bad)
