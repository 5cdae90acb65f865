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
        "description": "The orchestration's own settings: its run lock in Consul (hecate/locks/<env>).",
        "properties": {
            "lock_ttl": {
                **DURATION,
                "default": "20m",
                "description": (
                    "TTL of the lock's Consul session. It is not renewed between steps, so it must "
                    "cover the longest run; a dead run's lock frees after twice this plus the lock-delay."
                ),
            },
            "lock_wait": {
                "type": "number",
                "minimum": 0,
                "default": 0,
                "description": "Seconds a run waits for a held lock before it fails; 0 fails at once.",
            },
        },
    },
    # what step 10 checks after a deployment
    "bionicgpt:verify": {
        "type": "object",
        "additionalProperties": False,
        "required": ["services"],
        "description": "What the verify step checks after a deployment (bionicgpt.verify, on the cloud node).",
        "properties": {
            "services": {
                "type": "array",
                "items": {"type": "string", "minLength": 1},
                "examples": [["bionicgpt-postgres", "bionicgpt-oauth2-proxy"]],
                "description": "Consul services that must all pass their checks.",
            },
            "timeout": {
                "type": "number",
                "exclusiveMinimum": 0,
                "default": 120,
                "description": "Seconds to wait for the services and the probe to be healthy.",
            },
            "probe": {
                "type": "object",
                "additionalProperties": False,
                "required": ["url"],
                "description": (
                    "A request through Caddy's route that must be answered (2xx or 3xx); absent: "
                    "no probe."
                ),
                "properties": {
                    "url": {
                        "type": "string",
                        "pattern": r"^https?://[^\s/]+(/\S*)?$",
                        "examples": ["https://chat.example.com/ping"],
                        "description": "URL requested (TLS verified); oauth2-proxy's /ping needs no login.",
                    },
                    "host": {
                        "type": ["string", "null"],
                        "default": None,
                        "description": (
                            "Host header to send instead of the URL's host (to probe the edge by "
                            "address before DNS points at it)."
                        ),
                    },
                    "ca_bundle": {
                        "type": ["string", "null"],
                        "default": None,
                        "description": "CA file trusted for the probe (e.g. a staging CA); null: the system store.",
                    },
                },
            },
        },
    },
}
