"""
The pillar of the BionicGPT jobs on Nomad, ``bionicgpt:nomad`` and ``bionicgpt:jobs``: its
schema, and the check a schema cannot express (images pinned by tag outside lab/dev).
"""

import hecate_schema

# -- pillar schema (bionicgpt:nomad and bionicgpt:jobs) -------------------------------------------
_IMAGE = {"type": "string", "minLength": 1, "pattern": r"^[^\s]+$"}
_RESOURCES = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "cpu": {"type": "integer", "minimum": 1},
        "memory": {"type": "integer", "minimum": 10},
        "memory_max": {"type": "integer", "minimum": 10},
    },
}
_PORT = {
    "type": "object",
    "additionalProperties": False,
    "required": ["to"],
    "properties": {
        "to": {"type": "integer", "minimum": 1, "maximum": 65535},
        "static": {"type": ["integer", "null"], "minimum": 1, "maximum": 65535},
    },
}
_TASK = {
    "type": "object",
    "additionalProperties": False,
    "required": ["image"],
    "properties": {
        "image": _IMAGE,
        "resources": _RESOURCES,
        "port": _PORT,
        "health_path": {"type": "string", "pattern": "^/"},
        "env": {"type": "object", "additionalProperties": {"type": ["string", "number", "boolean"]}},
        "args": {"type": "array", "items": {"type": "string"}},
        "volume": {"type": "string", "minLength": 1},
        "models": {"type": "array", "items": {"type": "string", "minLength": 1}},
    },
}
_VAULT_REF = {
    "type": "object",
    "required": ["vault", "key"],
    "additionalProperties": False,
    "properties": {"vault": {"type": "string"}, "key": {"type": "string"}},
}
_JOB_COMMON = {
    "count": {"type": "integer", "minimum": 0, "maximum": 10},
    "auto_revert": {"type": "boolean"},
    "min_healthy_time": {"type": "string", "pattern": r"^\d+(ms|s|m|h)$"},
    "healthy_deadline": {"type": "string", "pattern": r"^\d+(ms|s|m|h)$"},
    "progress_deadline": {"type": "string", "pattern": r"^\d+(ms|s|m|h)$"},
}


def _job(tasks, extra=None):
    props = dict(_JOB_COMMON)
    props.update({name: _TASK for name in tasks})
    props.update(extra or {})
    return {"type": "object", "additionalProperties": False, "required": list(tasks), "properties": props}


PILLAR_SCHEMA = {
    # where users reach BionicGPT: oauth2-proxy's redirect URL and cookie domain in the
    # application job (https://<domain>/oauth2/callback)
    "bionicgpt:domain": {"type": "string", "pattern": hecate_schema.HOSTNAME},
    "bionicgpt:nomad": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "datacenters": {"type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1}},
            "namespace": {"type": "string", "pattern": r"^[a-zA-Z0-9-]{1,128}$"},
            "region": {"type": "string"},
            "node_location": {"type": "string", "minLength": 1},
            "job_prefix": {"type": "string", "pattern": r"^[a-z0-9-]*$"},
            "vault_role": {"type": ["string", "null"]},
            "deploy_timeout": {"type": "integer", "minimum": 10, "maximum": 7200},
            "revert_on_failure": {"type": "boolean"},
            "jobs": {"type": "array", "items": {"enum": ["database", "llm", "application"]}},
        },
    },
    "bionicgpt:jobs": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "database": _job(
                ["postgres"],
                {
                    "db_name": {"type": "string", "pattern": r"^[a-z_][a-z0-9_]*$"},
                    "db_user": {"type": "string", "pattern": r"^[a-z_][a-z0-9_]*$"},
                    "password": _VAULT_REF,
                    "service": {"type": "string"},
                },
            ),
            "application": _job(
                ["bionicgpt", "migrations", "oauth2_proxy", "wait"],
                {
                    # BionicGPT's migrations create and grant to this role, under this name only
                    "app_user": {"enum": ["bionic_application"]},
                    "app_password": _VAULT_REF,
                    "oidc_issuer_url": {"type": "string", "pattern": r"^https?://[^/]+/"},
                    # the identity provider's end-session URL (default: <issuer>end-session/)
                    "logout_url": {"type": "string", "pattern": r"^https?://"},
                    "upstream_timeout": {"type": "string", "pattern": r"^\d+(ms|s|m|h)$"},
                    "allow_unverified_email": {"type": "boolean"},
                    "chunking_service": {"type": "string"},
                    # the document pipeline and its chunking engine (optional tasks)
                    "pipeline_job": _TASK,
                    "chunking_engine": _TASK,
                    "client_id": _VAULT_REF,
                    "client_secret": _VAULT_REF,
                    "cookie_secret": _VAULT_REF,
                    "service": {"type": "string"},
                    "proxy_service": {"type": "string"},
                },
            ),
            "llm": _job(
                ["litellm", "ollama"],
                {
                    "master_key": _VAULT_REF,
                    "azure": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "api_base": _VAULT_REF,
                            "api_key": _VAULT_REF,
                            "deployment": _VAULT_REF,
                            "api_version": {"type": "string"},
                            "model_name": {"type": "string"},
                        },
                    },
                    "embedding_model": {"type": "string"},
                },
            ),
        },
    },
}

LATEST_OK_ENVS = ("lab", "dev")


def image_tag(image):
    """The tag of an image reference (None when untagged; digests count as pinned)."""
    if "@" in image:
        return image.split("@", 1)[1]
    name = image.rsplit("/", 1)[-1]
    return name.split(":", 1)[1] if ":" in name else None


def check_pillar(pillar, env):
    """Images pinned by tag (``latest`` or no tag only in lab/dev)."""
    errors = []
    jobs = ((pillar.get("bionicgpt") or {}).get("jobs")) or {}
    if not isinstance(jobs, dict):
        return errors
    for job_name, job in jobs.items():
        if not isinstance(job, dict):
            continue
        for task_name, task in job.items():
            if not isinstance(task, dict) or not isinstance(task.get("image"), str):
                continue
            tag = image_tag(task["image"])
            path = f"bionicgpt:jobs:{job_name}:{task_name}:image"
            if env not in LATEST_OK_ENVS and (tag is None or tag == "latest"):
                errors.append(
                    (path, f"{task['image']!r} is not pinned: use an explicit tag (':latest' and "
                           f"untagged images are allowed only in {', '.join(LATEST_OK_ENVS)})")
                )
    return errors
