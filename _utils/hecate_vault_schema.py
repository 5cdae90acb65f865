"""
The pillar of the secrets hecate generates into Vault, ``hecate:secrets`` and
``bionicgpt:secrets`` (where and how, never values): its schema, the check a schema cannot
express (two entries sharing one Vault path and key), and the lookups the states and
preflight use (:func:`generated_specs`, :func:`secret_ref`).
"""

import hecate_secrets

GENERATED_SECRET = {
    "type": "object",
    "required": ["path", "key"],
    "additionalProperties": False,
    "description": (
        "One secret hecate generates into Vault: a random value is written when the key is absent "
        "and never changed afterwards unless a run names it in pillar rotate."
    ),
    "properties": {
        "path": {"type": "string", "pattern": r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.@-]+)+$",
                 "examples": ["secret/bionicgpt/db"],
                 "description": ("Vault KV v2 path of the secret, its first segment the mount; other keys "
                                 "there are kept.")},
        "key": {"type": "string", "pattern": r"^[A-Za-z0-9_.-]+$", "examples": ["password"],
                "description": "The key inside that secret; references elsewhere name the same path and key."},
        "length": {"type": "integer", "minimum": 8, "maximum": 4096, "default": 32,
                   "description": "Characters of the random value (bytes for bytes_base64, 16 to 1024), "
                                  "not counting prefix."},
        "alphabet": {"type": "string",
                     "enum": sorted(hecate_secrets.ALPHABETS) + [hecate_secrets.BYTES_BASE64],
                     "default": "alnum",
                     "description": "Characters the value is drawn from; bytes_base64 makes length random "
                                    "bytes in base64 (a Consul gossip key)."},
        "prefix": {"type": "string", "pattern": r"^[A-Za-z0-9_.-]*$", "default": "",
                   "description": "Fixed text put before the random part (LiteLLM wants sk-)."},
        "description": {"type": "string",
                        "description": "What the secret is for, for the operator; not written to Vault."},
    },
}
# Secrets hecate generates into Vault (never values: where and how): bionicgpt:secrets on the
# local node, hecate:secrets (the edge's: Consul gossip key, coturn secret) on the cloud node.
GENERATED_PATHS = ("hecate:secrets", "bionicgpt:secrets")
_WHERE = {
    "hecate:secrets": "on the cloud node (hecate.secrets: the Consul gossip key, coturn's secret)",
    "bionicgpt:secrets": "on the local node (bionicgpt.secrets: database passwords, cookie and master keys)",
}
PILLAR_SCHEMA = {
    path: {
        "type": "object",
        "propertyNames": {"pattern": r"^[a-z][a-z0-9_]*$"},
        "additionalProperties": GENERATED_SECRET,
        "description": (
            f"Secrets hecate generates into Vault {_WHERE[path]}, by name (the name is what "
            "pillar rotate lists). Only where and how, never values."
        ),
    }
    for path in GENERATED_PATHS
}


def generated_specs(pillar):
    """``{(path, key): "<pillar key path>"}`` of every secret hecate generates."""
    out = {}
    for root in GENERATED_PATHS:
        top, sub = root.split(":")
        specs = ((pillar.get(top) or {}).get(sub)) or {}
        if not isinstance(specs, dict):
            continue
        for name, spec in specs.items():
            if isinstance(spec, dict) and "path" in spec and "key" in spec:
                out.setdefault((spec["path"], spec["key"]), []).append(f"{root}:{name}")
    return out


def check_pillar(pillar, env=None):
    """Two generated secrets must not share one Vault path and key."""
    errors = []
    for where in generated_specs(pillar).values():
        for dup in where[1:]:
            errors.append((dup, f"same Vault path and key as {where[0]}"))
    return errors


def secret_ref(spec):
    """The pillar reference ``{vault: <path>, key: <key>}`` of a bionicgpt:secrets entry."""
    return {"vault": spec["path"], "key": spec["key"]}
