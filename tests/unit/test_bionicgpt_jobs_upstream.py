"""
The BionicGPT job templates against the images they run (issue 18, item 14).

The three job files are rendered with Salt's own Jinja renderer from a pillar of this
test (not pillar/), parsed into Nomad's API shape (lab/sim/nomad_jobspec.py), and every
name a container reads - image, command, port, environment variable, migration step,
health endpoint - is checked against the upstream file that defines it. Sources read:

- BIONIC: github.com/bionic-gpt/bionic-gpt at 006bb4647d5217499af76bc57973cd73c105d10d
  ("Update Sha256 hashes for 1.8.18", the release commit right after tag v1.8.18 that pins
  the 1.8.18 images): infra-as-code/docker-compose.yml, Earthfile,
  crates/web-server/src/config.rs, crates/web-server/src/auth.rs,
  crates/web-pages/logout_form.rs, crates/pipeline-job/src/config.rs,
  crates/db/migrations/20220410155201_initial_setup.sql,
  crates/k8s-operator/src/services/{bionic,oauth2_proxy,pipeline_job,chunking_engine}.rs
- OAUTH2_PROXY: github.com/oauth2-proxy/oauth2-proxy tag v7.6.0
  (7af1e42788e599c2e05f0e66211c33c33287c0dc): pkg/apis/options/*.go (``cfg:`` tags),
  docs/versioned_docs/version-7.6.x/configuration/overview.md ("Environment variables")
- LITELLM: github.com/BerriAI/litellm docs/my-website/docs/proxy/configs.md (model_list,
  litellm_params, ``os.environ/NAME``, general_settings.master_key) and
  docs/my-website/docs/proxy/config_settings.md (model_info.mode)
- OLLAMA: github.com/ollama/ollama server/routes.go (``GET /`` answers "Ollama is running";
  the CLI's ``ollama pull`` speaks /api/pull), envconfig (OLLAMA_HOST), port 11434
- UNSTRUCTURED: github.com/Unstructured-IO/unstructured-api prepline_general/api/app.py
  (``GET /healthcheck``), port 8000 as in BIONIC's chunking_engine.rs
- AUTHENTIK: github.com/goauthentik/authentik authentik/providers/oauth2/urls.py
  (``<slug>/end-session/`` under /application/o/) and blueprints/system/providers-oauth2.yaml
  (the default 'email' scope mapping sends ``email_verified: False``)
"""

import os
import re
import tempfile

import jsonschema
import pytest
import salt.config
import salt.utils.templates
import yaml

import hecate_agents_schema
import hecate_nomad_schema
from lab.sim import nomad_jobspec as js

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ISSUER = "https://sso.example.test/application/o/bionicgpt/"
VERSION = "1.8.18"

PILLAR = {
    "bionicgpt": {
        "domain": "chat.example.test",
        "nomad": {"datacenters": ["dc1"], "vault_role": "bionicgpt"},
        "jobs": {
            "database": {
                "db_name": "bionicgpt", "db_user": "bionicgpt", "service": "bionicgpt-postgres",
                "password": {"vault": "secret/bionicgpt/db", "key": "password"},
                "postgres": {"image": "pgvector/pgvector:0.8.0-pg16"},  # volume: the template's default
            },
            "llm": {
                "master_key": {"vault": "secret/bionicgpt/litellm", "key": "master_key"},
                "embedding_model": "nomic-embed-text",
                "azure": {
                    "model_name": "gpt-4",
                    "api_base": {"vault": "secret/bionicgpt/azure", "key": "endpoint"},
                    "api_key": {"vault": "secret/bionicgpt/azure", "key": "api_key"},
                    "deployment": {"vault": "secret/bionicgpt/azure", "key": "chat_deployment"},
                    "api_version": "2024-02-15-preview",
                },
                "litellm": {"image": "ghcr.io/berriai/litellm:main-v1.55.8", "port": {"to": 4000},
                            "health_path": "/health/liveliness"},
                "ollama": {"image": "ollama/ollama:0.5.4", "port": {"to": 11434}, "health_path": "/",
                           "models": ["nomic-embed-text"]},
            },
            "application": {
                "app_user": "bionic_application",
                "app_password": {"vault": "secret/bionicgpt/db", "key": "app_password"},
                "oidc_issuer_url": ISSUER,
                "client_id": {"vault": "secret/bionicgpt/oauth", "key": "client_id"},
                "client_secret": {"vault": "secret/bionicgpt/oauth", "key": "client_secret"},
                "cookie_secret": {"vault": "secret/bionicgpt/oauth", "key": "cookie_secret"},
                "bionicgpt": {"image": f"ghcr.io/bionic-gpt/bionicgpt:{VERSION}", "port": {"to": 7703}},
                "migrations": {"image": f"ghcr.io/bionic-gpt/bionicgpt-db-migrations:{VERSION}"},
                "pipeline_job": {"image": f"ghcr.io/bionic-gpt/bionicgpt-pipeline-job:{VERSION}"},
                "chunking_engine": {"image": "downloads.unstructured.io/unstructured-io/unstructured-api:4ffd8bc",
                                    "port": {"to": 8000}, "health_path": "/healthcheck"},
                "oauth2_proxy": {"image": "quay.io/oauth2-proxy/oauth2-proxy:v7.6.0", "port": {"to": 4180},
                                 "health_path": "/ping"},
                "wait": {"image": "busybox:1.36.1"},
            },
        },
    }
}

# OAUTH2_PROXY v7.6.0, pkg/apis/options: the ``cfg`` name of every flag the job sets; the
# environment variable is OAUTH2_PROXY_ + that name upper-cased (overview.md, "Environment
# variables": list flags take the plural cfg name, e.g. --email-domain -> EMAIL_DOMAINS)
OAUTH2_PROXY_CFG = {
    "http_address", "upstreams", "upstream_timeout", "provider", "provider_display_name",
    "oidc_issuer_url", "redirect_url", "cookie_domains", "cookie_secure", "cookie_secret", "email_domains",
    "scope", "set_xauthrequest", "pass_user_headers", "reverse_proxy", "skip_provider_button", "client_id",
    "client_secret", "whitelist_domains", "skip_auth_routes", "insecure_oidc_allow_unverified_email",
    "code_challenge_method", "oidc_groups_claim", "allowed_groups",
}


def render(name, pillar=None):
    opts = salt.config.minion_config(None)
    opts.update({"file_client": "local", "file_roots": {"base": [os.path.join(REPO, "salt")]},
                 "cachedir": tempfile.mkdtemp(prefix="hecate-render-")})
    path = os.path.join(REPO, "salt", "bionicgpt", "jobs", f"{name}.nomad.hcl.j2")
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    return salt.utils.templates.render_jinja_tmpl(
        text, {"opts": opts, "saltenv": "base", "pillar": pillar or PILLAR, "job_id": f"bionicgpt-{name}"})


@pytest.fixture(scope="module")
def jobs():
    return {name: js.parse(render(name)) for name in ("database", "llm", "application")}


def group(job):
    (grp,) = job["TaskGroups"]
    return grp


def task(job, name):
    return next(t for t in group(job)["Tasks"] if t["Name"] == name)


def service(job, task_name):
    return next(s for s in group(job)["Services"] if s["TaskName"] == task_name)


def port_to(job, label):
    ports = group(job)["Networks"][0]["DynamicPorts"]
    return next(p["To"] for p in ports if p["Label"] == label)


def env_names(tsk):
    """Every environment variable a task gets: its env block and its env templates."""
    names = set(tsk["Env"] or {})
    for tmpl in tsk["Templates"] or []:
        if tmpl["Envvars"]:
            names |= set(re.findall(r"^([A-Z_][A-Z0-9_]*)=", tmpl["EmbeddedTmpl"], re.M))
    return names


def env_template(tsk, name):
    """The template line of an env-file variable (secrets stay Vault lookups)."""
    for tmpl in tsk["Templates"] or []:
        match = re.search(rf"^{name}=(.*)$", tmpl["EmbeddedTmpl"], re.M)
        if tmpl["Envvars"] and match:
            return match.group(1)
    raise AssertionError(f"{name} is not in an env template of {tsk['Name']}")


def image_repo(tsk):
    return tsk["Config"]["image"].rsplit(":", 1)[0]


def test_the_test_pillar_is_valid():
    for key in ("bionicgpt:jobs",):
        jsonschema.validate(PILLAR["bionicgpt"]["jobs"], hecate_nomad_schema.PILLAR_SCHEMA[key])


def test_bionicgpt_server(jobs):
    app = jobs["application"]
    server = task(app, "bionicgpt")
    # BIONIC docker-compose.yml (service app) and k8s-operator bionic.rs: ghcr.io/bionic-gpt/bionicgpt:<version>
    assert image_repo(server) == "ghcr.io/bionic-gpt/bionicgpt"
    # BIONIC crates/web-server/src/config.rs: PORT (default 7703); the app reads APP_DATABASE_URL
    assert server["Env"]["PORT"] == str(port_to(app, "http")) == "7703"
    assert "APP_DATABASE_URL" in env_names(server)
    # BIONIC docker-compose.yml and initial_setup.sql: the application connects as bionic_application
    assert env_template(server, "APP_DATABASE_URL").startswith('"postgresql://bionic_application:')
    # BIONIC crates/web-pages/logout_form.rs: the form posts to SIGNOUT_URL (oauth2-proxy's
    # sign-out) with rd=LOGOUT_URL, the identity provider's logout; AUTHENTIK urls.py: end-session
    assert server["Env"]["SIGNOUT_URL"] == "/oauth2/sign_out"
    assert server["Env"]["LOGOUT_URL"] == ISSUER + "end-session/"
    # BIONIC web-server has no health route (only /static/*, the app and /v1 API): TCP check
    assert service(app, "bionicgpt")["Checks"][0]["Type"] == "tcp"
    # BIONIC crates/web-server/src/auth.rs reads X-Forwarded-User / X-Forwarded-Email, which
    # oauth2-proxy sends with pass_user_headers (OAUTH2_PROXY overview.md)
    assert task(app, "oauth2-proxy")["Env"]["OAUTH2_PROXY_PASS_USER_HEADERS"] == "true"


def test_migrations(jobs):
    app = jobs["application"]
    mig = task(app, "migrations")
    # BIONIC docker-compose.yml (service migrations) and bionic.rs (init container): same version as the app
    assert mig["Config"]["image"] == f"ghcr.io/bionic-gpt/bionicgpt-db-migrations:{VERSION}"
    assert mig["Lifecycle"]["Hook"] == "prestart" and not mig["Lifecycle"]["Sidecar"]
    # BIONIC docker-compose.yml: DATABASE_URL as the database owner (postgres there), not the app role
    assert env_template(mig, "DATABASE_URL").startswith('"postgresql://bionicgpt:')
    # BIONIC Earthfile (migration-container): alpine with dbmate and postgresql-client, CMD dbmate up
    script = " ".join(mig["Config"]["args"])
    assert mig["Config"]["command"] == "/bin/sh" and "dbmate --wait up" in script
    # BIONIC initial_setup.sql: CREATE ROLE bionic_application ... PASSWORD 'testpassword' when
    # absent; the job sets the role's password from Vault (psql) after the migrations
    assert "ALTER ROLE bionic_application WITH LOGIN PASSWORD :'app_password'" in script
    assert 'psql' in script and 'app_password="$APP_DB_PASSWORD"' in script
    assert '"app_password"' in env_template(mig, "APP_DB_PASSWORD")  # a Vault lookup, not a value


def test_pipeline_job_and_chunking_engine(jobs):
    app = jobs["application"]
    pipe = task(app, "pipeline-job")
    # BIONIC docker-compose.yml (service pipeline-job) and pipeline_job.rs
    assert image_repo(pipe) == "ghcr.io/bionic-gpt/bionicgpt-pipeline-job"
    # BIONIC crates/pipeline-job/src/config.rs: APP_DATABASE_URL, CHUNKING_ENGINE
    assert {"APP_DATABASE_URL", "CHUNKING_ENGINE"} <= env_names(pipe)
    assert pipe["Env"]["CHUNKING_ENGINE"] == "http://${NOMAD_ADDR_chunking}"
    chunk = task(app, "chunking-engine")
    # BIONIC docker-compose.yml (chunking-engine) and chunking_engine.rs: unstructured-api, port 8000
    assert image_repo(chunk) == "downloads.unstructured.io/unstructured-io/unstructured-api"
    assert port_to(app, "chunking") == 8000
    # UNSTRUCTURED prepline_general/api/app.py: GET /healthcheck
    check = service(app, "chunking-engine")["Checks"][0]
    assert (check["Type"], check["Path"]) == ("http", "/healthcheck")


def test_without_the_pipeline_the_application_job_has_no_such_tasks():
    pillar = yaml.safe_load(yaml.safe_dump(PILLAR))
    for key in ("pipeline_job", "chunking_engine"):
        del pillar["bionicgpt"]["jobs"]["application"][key]
    job = js.parse(render("application", pillar))
    assert {t["Name"] for t in group(job)["Tasks"]} == {"wait-for-dependencies", "migrations", "bionicgpt",
                                                        "oauth2-proxy"}


def test_oauth2_proxy(jobs):
    app = jobs["application"]
    proxy = task(app, "oauth2-proxy")
    env = proxy["Env"]
    assert proxy["Config"]["image"] == "quay.io/oauth2-proxy/oauth2-proxy:v7.6.0"
    # OAUTH2_PROXY options: every variable is OAUTH2_PROXY_<cfg name>
    names = {n for n in env_names(proxy) if n.startswith("OAUTH2_PROXY_")}
    assert names == env_names(proxy)
    unknown = {n for n in names if n[len("OAUTH2_PROXY_"):].lower() not in OAUTH2_PROXY_CFG}
    assert not unknown, unknown
    # listens where the group port points; the health path is ping_path's default
    assert env["OAUTH2_PROXY_HTTP_ADDRESS"] == f"0.0.0.0:{port_to(app, 'proxy')}"
    check = service(app, "oauth2-proxy")["Checks"][0]
    assert (check["Type"], check["Path"]) == ("http", "/ping")
    assert env["OAUTH2_PROXY_UPSTREAMS"] == "http://${NOMAD_ADDR_http}"
    # upstream_timeout defaults to 30s, too short for streamed chat answers; BIONIC
    # k8s-operator oauth2_proxy.rs sets OAUTH2_PROXY_UPSTREAM_TIMEOUT=600s
    assert env["OAUTH2_PROXY_UPSTREAM_TIMEOUT"] == "600s"
    # the logout redirect (rd=LOGOUT_URL) leaves for Authentik: its host must be whitelisted
    assert env["OAUTH2_PROXY_WHITELIST_DOMAINS"] == "sso.example.test"
    # AUTHENTIK's default email mapping says email_verified: False, which oauth2-proxy refuses
    # unless told otherwise (BIONIC oauth2_proxy.rs sets the same for its Keycloak)
    assert env["OAUTH2_PROXY_INSECURE_OIDC_ALLOW_UNVERIFIED_EMAIL"] == "true"
    assert env["OAUTH2_PROXY_PROVIDER"] == "oidc" and env["OAUTH2_PROXY_OIDC_ISSUER_URL"] == ISSUER
    assert {"OAUTH2_PROXY_CLIENT_ID", "OAUTH2_PROXY_CLIENT_SECRET", "OAUTH2_PROXY_COOKIE_SECRET"} <= names
    assert not {"OAUTH2_PROXY_CLIENT_ID", "OAUTH2_PROXY_CLIENT_SECRET", "OAUTH2_PROXY_COOKIE_SECRET"} & set(env)


def test_litellm(jobs):
    llm = jobs["llm"]
    lite = task(llm, "litellm")
    assert image_repo(lite) == "ghcr.io/berriai/litellm"
    # the image's entrypoint is litellm; --config and --port as in LITELLM's docs
    args = lite["Config"]["args"]
    assert args[args.index("--config") + 1] == "/local/litellm_config.yaml"
    assert args[args.index("--port") + 1] == str(port_to(llm, "litellm"))
    check = service(llm, "litellm")["Checks"][0]
    assert (check["Type"], check["Path"]) == ("http", "/health/liveliness")
    config_tmpl = next(t for t in lite["Templates"] if t["DestPath"] == "local/litellm_config.yaml")
    config = yaml.safe_load(re.sub(r"\[\[.*?\]\]", "X", config_tmpl["EmbeddedTmpl"]))
    assert set(config) == {"model_list", "litellm_settings", "general_settings"}
    chat, embed = config["model_list"]
    assert chat["model_name"] == "gpt-4" and chat["litellm_params"]["model"].startswith("azure/")
    # LITELLM configs.md: secrets as os.environ/NAME; the file in local/ holds none
    assert chat["litellm_params"]["api_key"] == "os.environ/AZURE_API_KEY"
    assert chat["litellm_params"]["api_base"] == "os.environ/AZURE_API_BASE"
    assert chat["litellm_params"]["api_version"] == "2024-02-15-preview"
    assert config["general_settings"]["master_key"] == "os.environ/LITELLM_MASTER_KEY"
    assert "api_key" not in config_tmpl["EmbeddedTmpl"].split("os.environ/AZURE_API_KEY")[1]
    assert {"AZURE_API_KEY", "AZURE_API_BASE", "LITELLM_MASTER_KEY"} <= env_names(lite)
    secrets = next(t for t in lite["Templates"] if t["Envvars"])
    assert secrets["DestPath"].startswith("secrets/")
    # LITELLM: the ollama/ provider with the Ollama server as api_base; config_settings.md model_info.mode
    assert embed["litellm_params"] == {"model": "ollama/nomic-embed-text", "api_base": "http://X"}
    assert embed["model_info"] == {"mode": "embedding"}
    assert 'env "NOMAD_ADDR_ollama"' in config_tmpl["EmbeddedTmpl"]


def test_ollama(jobs):
    llm = jobs["llm"]
    oll = task(llm, "ollama")
    assert image_repo(oll) == "ollama/ollama"
    # OLLAMA envconfig: OLLAMA_HOST is where `ollama serve` listens (default 127.0.0.1:11434)
    assert oll["Env"]["OLLAMA_HOST"] == "0.0.0.0:11434" and port_to(llm, "ollama") == 11434
    # OLLAMA server/routes.go: GET / answers 200 "Ollama is running"
    check = service(llm, "ollama")["Checks"][0]
    assert (check["Type"], check["Path"]) == ("http", "/")
    # models live under the root user's ~/.ollama in the image
    assert oll["VolumeMounts"][0]["Destination"] == "/root/.ollama"
    pull = task(llm, "ollama-pull")
    assert pull["Lifecycle"]["Hook"] == "poststart" and pull["Config"]["image"] == oll["Config"]["image"]
    assert "ollama pull" in pull["Config"]["args"][0] and "nomic-embed-text" in pull["Config"]["args"][0]
    assert pull["Env"]["OLLAMA_HOST"] == "http://${NOMAD_ADDR_ollama}"


def test_host_volumes_are_the_ones_the_agent_declares(jobs):
    """By default the jobs mount the host volumes the Nomad agent state requires (hecate_agents_schema)."""
    sources = {vol["Source"] for job in jobs.values() for vol in (group(job)["Volumes"] or {}).values()}
    assert sources == set(hecate_agents_schema.REQUIRED_VOLUMES)


def test_postgres(jobs):
    db = jobs["database"]
    pg = task(db, "postgres")
    # BIONIC docker-compose.yml (service postgres: pgvector image, POSTGRES_* variables)
    assert image_repo(pg) == "pgvector/pgvector"
    assert {"POSTGRES_USER", "POSTGRES_DB", "POSTGRES_PASSWORD", "PGDATA"} <= env_names(pg)
    assert pg["VolumeMounts"][0]["Destination"] == "/var/lib/postgresql/data"
    assert port_to(db, "db") == 5432
