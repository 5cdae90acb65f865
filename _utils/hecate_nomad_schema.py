"""
The pillar of the BionicGPT jobs on Nomad, ``bionicgpt:nomad`` and ``bionicgpt:jobs``: its
schema, and the check a schema cannot express (images pinned by tag outside lab/dev).
"""

import hecate_schema

# -- pillar schema (bionicgpt:nomad and bionicgpt:jobs) -------------------------------------------
_IMAGE = {"type": "string", "minLength": 1, "pattern": r"^[^\s]+$"}
_DEADLINE = {"type": "string", "pattern": r"^\d+(ms|s|m|h)$"}
_RESOURCES = {
    "type": "object",
    "additionalProperties": False,
    "description": "What Nomad reserves for the task; absent values take the job file's per-task defaults.",
    "properties": {
        "cpu": {"type": "integer", "minimum": 1, "description": "CPU in MHz."},
        "memory": {"type": "integer", "minimum": 10, "description": "Memory in MB the task is placed with."},
        "memory_max": {
            "type": "integer",
            "minimum": 10,
            "description": (
                "Memory in MB the task may burst to; honoured only with the scheduler's memory "
                "oversubscription on (bionicgpt:nomad:agent:server:memory_oversubscription)."
            ),
        },
    },
}
_PORT = {
    "type": "object",
    "additionalProperties": False,
    "required": ["to"],
    "description": "The task's group port; Nomad picks a dynamic host port on the tunnel interface.",
    "properties": {
        "to": {"type": "integer", "minimum": 1, "maximum": 65535,
               "description": "The port the container listens on."},
        "static": {"type": ["integer", "null"], "minimum": 1, "maximum": 65535, "default": None,
                   "description": "A fixed host port instead of a dynamic one; null: dynamic (found through Consul)."},
    },
}
_TASK = {
    "type": "object",
    "additionalProperties": False,
    "required": ["image"],
    "description": "One task of the job (a docker container).",
    "properties": {
        "image": hecate_schema.described(
            _IMAGE,
            "Container image, pinned by tag (':latest' and untagged images only in lab and dev).",
            examples=["pgvector/pgvector:0.8.0-pg16"],
        ),
        "resources": _RESOURCES,
        "port": _PORT,
        "health_path": {"type": "string", "pattern": "^/",
                        "description": "HTTP path of the service's Consul check; absent: the job file's default "
                                       "(a TCP check where it has none)."},
        "env": {"type": "object", "additionalProperties": {"type": ["string", "number", "boolean"]},
                "default": {},
                "description": "Extra environment variables of the task (stored in clear in the job: "
                               "never a secret)."},
        "args": {"type": "array", "items": {"type": "string"},
                 "description": "Accepted but not used: the job files set each task's command line."},
        "volume": {"type": "string", "minLength": 1,
                   "description": "Host volume the task mounts (postgres: default bionicgpt_postgres; "
                                  "ollama: default ollama); other tasks mount none."},
        "models": {"type": "array", "items": {"type": "string", "minLength": 1},
                   "description": "Ollama only: models pulled after it starts (default: the embedding model)."},
    },
}


def _task(description):
    return hecate_schema.described(_TASK, description)


_VAULT_REF = {
    "type": "object",
    "required": ["vault", "key"],
    "additionalProperties": False,
    "properties": {"vault": {"type": "string"}, "key": {"type": "string"}},
}


def _ref(description):
    return hecate_schema.described(_VAULT_REF, description)


_JOB_COMMON = {
    "count": {"type": "integer", "minimum": 0, "maximum": 10, "default": 1,
              "description": "Instances of the job's group; 0 stops it."},
    "auto_revert": {"type": "boolean", "default": True,
                    "description": "Nomad rolls back to the last stable version when a deployment fails."},
    "min_healthy_time": hecate_schema.described(
        _DEADLINE, "How long an allocation must be healthy to count as healthy.", default="10s"),
    "healthy_deadline": hecate_schema.described(
        _DEADLINE, "How long an allocation has to become healthy before it is unhealthy.", default="5m"),
    "progress_deadline": hecate_schema.described(
        _DEADLINE, "How long a deployment may go without an allocation turning healthy before it fails.",
        default="10m"),
    "node_meta": {
        "type": ["object", "null"], "additionalProperties": {"type": "string"},
        "examples": [{"gpu": "true"}],
        "description": (
            "Client meta the job's nodes must have (a constraint ${meta.<key>} = <value> each, "
            "besides node_location); set by node in bionicgpt:nomad:agent:nodes:<id>:client:meta. "
            "Absent: none, except for llm when a node says gpu = \"true\": Ollama (and LiteLLM, "
            "its group) then runs on a gpu node; {} lets it run on any node."
        ),
    },
}


def _job(tasks, description, extra=None):
    props = dict(_JOB_COMMON)
    props.update(tasks)
    props.update(extra or {})
    return {"type": "object", "additionalProperties": False, "required": list(tasks), "properties": props,
            "description": description}


_SERVICE_TEXT = "Consul service name of {} (default {}); the other jobs and the verify step look it up."

PILLAR_SCHEMA = {
    # where users reach BionicGPT: oauth2-proxy's redirect URL and cookie domain in the
    # application job (https://<domain>/oauth2/callback)
    "bionicgpt:domain": {
        "type": "string",
        "pattern": hecate_schema.HOSTNAME,
        "examples": ["chat.example.com"],
        "description": (
            "The host name users reach BionicGPT at: oauth2-proxy's redirect URL "
            "(https://<domain>/oauth2/callback) and cookie domain."
        ),
    },
    "bionicgpt:nomad": {
        "type": "object",
        "additionalProperties": False,
        "description": "How the BionicGPT jobs are registered in Nomad (bionicgpt.jobs, on the local node).",
        "properties": {
            "datacenters": {"type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1},
                            "default": ["dc1"], "description": "Datacenters the jobs may run in."},
            "namespace": {"type": "string", "pattern": r"^[a-zA-Z0-9-]{1,128}$",
                          "description": "Nomad namespace of the jobs; absent: the connection's namespace."},
            "region": {"type": "string", "description": "Nomad region of the jobs; absent: the connection's."},
            "node_location": {"type": "string", "minLength": 1, "default": "local",
                              "description": "The jobs run only on clients whose meta.location is this."},
            "job_prefix": {"type": "string", "pattern": r"^[a-z0-9-]*$", "default": "bionicgpt-",
                           "description": "Prefix of the job names (bionicgpt-database ...)."},
            "vault_role": {"type": ["string", "null"], "default": None,
                           "description": "Vault role the tasks' vault blocks name (workload identity); "
                                          "null: they name none and Nomad's configured default applies."},
            "deploy_timeout": {"type": "integer", "minimum": 10, "maximum": 7200, "default": 900,
                               "description": "Seconds the state follows each job's deployment; a deployment "
                                              "still running then is reported, not reverted."},
            "revert_on_failure": {"type": "boolean", "default": True,
                                  "description": "When a deployment fails without Nomad's auto_revert, hecate "
                                                 "reverts the job to its newest stable version."},
            "jobs": {"type": "array", "items": {"enum": ["database", "llm", "application"]},
                     "default": ["database", "llm", "application"],
                     "description": "Jobs registered, in order; each waits for the previous deployment."},
        },
    },
    "bionicgpt:jobs": {
        "type": "object",
        "additionalProperties": False,
        "description": (
            "The BionicGPT jobs on Nomad: per job its tasks and the Vault references of its secrets "
            "(rendered as template blocks Nomad resolves at run time)."
        ),
        "properties": {
            "database": _job(
                {"postgres": _task("PostgreSQL with pgvector (port 5432, 1000 MHz, 2048 MB, host volume "
                                   "bionicgpt_postgres by default).")},
                "The database job: PostgreSQL with pgvector.",
                {
                    "db_name": {"type": "string", "pattern": r"^[a-z_][a-z0-9_]*$", "default": "bionicgpt",
                                "description": "Database name."},
                    "db_user": {"type": "string", "pattern": r"^[a-z_][a-z0-9_]*$", "default": "bionicgpt",
                                "description": "The database owner (the migrations run as it)."},
                    "password": _ref("The owner's password (e.g. the generated bionicgpt:secrets:db_password)."),
                    "service": {"type": "string", "default": "bionicgpt-postgres",
                                "description": _SERVICE_TEXT.format("PostgreSQL", "bionicgpt-postgres")},
                },
            ),
            "application": _job(
                {
                    "bionicgpt": _task("The BionicGPT server (port 7703, 2000 MHz, 4096 MB by default; "
                                       "TCP check unless health_path is set)."),
                    "migrations": _task("Prestart task: BionicGPT's database migrations, then the "
                                        "application role's password (200 MHz, 256 MB by default)."),
                    "oauth2_proxy": _task("oauth2-proxy in front of BionicGPT, what Caddy routes to (port "
                                          "4180, health path /ping, 500 MHz, 256 MB by default)."),
                    "wait": _task("Prestart task that waits until PostgreSQL and LiteLLM answer (an image "
                                  "with sh and nc, e.g. busybox; 50 MHz, 32 MB by default)."),
                },
                "The application job: BionicGPT behind oauth2-proxy (OIDC with Authentik).",
                {
                    # BionicGPT's migrations create and grant to this role, under this name only
                    "app_user": {"enum": ["bionic_application"], "default": "bionic_application",
                                 "description": "BionicGPT's application database role; its migrations create "
                                                "it under this name only."},
                    "app_password": _ref("The application role's password, set by the migrations task "
                                         "(e.g. the generated bionicgpt:secrets:db_app_password)."),
                    "oidc_issuer_url": {"type": "string", "pattern": r"^https?://[^/]+/",
                                        "examples": ["https://hera.example.com/application/o/bionicgpt/"],
                                        "description": "The OIDC issuer oauth2-proxy logs in with (Authentik: "
                                                       "https://<host>/application/o/<slug>/)."},
                    # the identity provider's end-session URL (default: <issuer>end-session/)
                    "logout_url": {"type": "string", "pattern": r"^https?://",
                                   "description": "The identity provider's logout page BionicGPT's logout "
                                                  "leads to; absent: <issuer>end-session/."},
                    "upstream_timeout": hecate_schema.described(
                        _DEADLINE, "How long oauth2-proxy waits for BionicGPT's answer.", default="600s"),
                    "allow_unverified_email": {"type": "boolean", "default": True,
                                               "description": "oauth2-proxy accepts users whose e-mail is not "
                                                              "verified (Authentik's default email mapping "
                                                              "says unverified)."},
                    "chunking_service": {"type": "string", "default": "bionicgpt-chunking",
                                         "description": _SERVICE_TEXT.format("the chunking engine",
                                                                             "bionicgpt-chunking")},
                    # the document pipeline and its chunking engine (optional tasks)
                    "pipeline_job": _task("Optional: BionicGPT's document pipeline, which chunks uploaded "
                                          "documents and stores their embeddings (500 MHz, 512 MB by default). "
                                          "Absent: uploads are not processed."),
                    "chunking_engine": _task("Optional: the chunking engine the pipeline uses, "
                                             "unstructured-api (port 8000, health path /healthcheck, "
                                             "1000 MHz, 2048 MB by default)."),
                    "client_id": _ref("The OAuth2 client id oauth2-proxy uses; hecate stores it where the "
                                      "Authentik provider's credentials say."),
                    "client_secret": _ref("The OAuth2 client secret, stored next to client_id."),
                    "cookie_secret": _ref("oauth2-proxy's cookie secret (32 characters; e.g. the generated "
                                          "bionicgpt:secrets:oauth2_proxy_cookie_secret)."),
                    "service": {"type": "string", "default": "bionicgpt",
                                "description": _SERVICE_TEXT.format("BionicGPT", "bionicgpt")},
                    "proxy_service": {"type": "string", "default": "bionicgpt-oauth2-proxy",
                                      "description": _SERVICE_TEXT.format(
                                          "oauth2-proxy, the service Caddy's route names",
                                          "bionicgpt-oauth2-proxy")},
                },
            ),
            "llm": _job(
                {
                    "litellm": _task("LiteLLM, the model gateway BionicGPT talks to (port 4000, health path "
                                     "/health/liveliness, 1000 MHz, 2048 MB by default)."),
                    "ollama": _task("Ollama for the embeddings (port 11434, health path /, 2000 MHz, "
                                    "4096 MB, host volume ollama by default)."),
                },
                "The llm job: LiteLLM (Azure OpenAI for chat, Ollama for embeddings) and Ollama.",
                {
                    "master_key": _ref("LiteLLM's master key (e.g. the generated "
                                       "bionicgpt:secrets:litellm_master_key)."),
                    "azure": {
                        "type": "object",
                        "additionalProperties": False,
                        "description": "The Azure OpenAI deployment LiteLLM sends chat requests to.",
                        "properties": {
                            "api_base": _ref("The Azure OpenAI endpoint URL."),
                            "api_key": _ref("The Azure OpenAI API key."),
                            "deployment": _ref("The name of the chat deployment in Azure."),
                            "api_version": {"type": "string", "default": "2024-02-15-preview",
                                            "description": "Azure OpenAI API version."},
                            "model_name": {"type": "string", "default": "gpt-4",
                                           "description": "The model name BionicGPT asks LiteLLM for."},
                        },
                    },
                    "embedding_model": {"type": "string", "default": "nomic-embed-text",
                                        "description": "Ollama model LiteLLM serves for embeddings (pulled "
                                                       "when Ollama starts)."},
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
