"""
The pillar of the orchestration's own settings: ``hecate:orchestration`` (the run lock) and
``bionicgpt:verify`` (what the health-check step probes after a deployment).
"""


DURATION = {"type": "string", "pattern": r"^[0-9]+(s|m|h)$"}
PILLAR_SCHEMA = {
    # the orchestration's own settings
    "hecate:orchestration": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "lock_ttl": DURATION,
            "lock_wait": {"type": "number", "minimum": 0},
        },
    },
    # what step 10 checks after a deployment
    "bionicgpt:verify": {
        "type": "object",
        "additionalProperties": False,
        "required": ["services"],
        "properties": {
            "services": {"type": "array", "items": {"type": "string", "minLength": 1}},
            "timeout": {"type": "number", "exclusiveMinimum": 0},
            "probe": {
                "type": "object",
                "additionalProperties": False,
                "required": ["url"],
                "properties": {
                    "url": {"type": "string", "pattern": r"^https?://[^\s/]+(/\S*)?$"},
                    "host": {"type": ["string", "null"]},
                    "ca_bundle": {"type": ["string", "null"]},
                },
            },
        },
    },
}
