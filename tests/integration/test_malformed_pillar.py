"""
The malformed-pillar corpus (issue 10): every case is the lab's pillar (``lab/pillar/``, a
copy of the shipped one, never the operator's ``pillar/``) with one change, and each must fail
validation with an error that names the key path - and no system may receive a write request.

How a case reaches validation. A case's change is written, as a pillar SLS, into a
test-only pillar root placed before the lab's roots:

- environment ``lab``: as ``lab_overrides.sls``, the lab's own hook (``lab/pillar/top.sls``
  includes it last for ``hecate_env: lab``, after the lab's runtime addresses);
- other environments (the checks that only apply to staging or prod): as
  ``env/<env>.sls``, the lab's copy of that overlay with the change merged in, which shadows
  ``lab/pillar/env/<env>.sls`` for this validation only.

The function is the runner ``hecate.validate`` - the code ``salt-run hecate.validate env=..``
runs - loaded with the session master's own config (only ``pillar_roots`` gets the test root
in front), so the lab's top file, overlays, merge and Vault reference check apply. Each case
costs one pillar compile; a ``salt-run`` process costs ~4 s before it does anything (measured
here), which would make 60 cases a long test. The CLI path itself is proven on a subset:
``salt-run hecate.validate`` gives the same errors and a non-zero exit code, and the
orchestration (``state.orch orch.bionicgpt``, real and ``test=True``) stops at its first
step, with every simulator's and Caddy's write count at zero (one real run and the preview
in the default suite, ~45 s for the whole module there; three more real runs are ``long``). For the lab, references are
checked against the Vault simulator (``refs=True``, the runner's default); the other
environments' Vault is not reachable from here, so their cases use ``refs=False`` (the
schema and semantic checks run either way; references are only checked once they pass).
"""

import collections
import copy
import json
import os

import pytest
import salt.config
import salt.loader
import salt.utils.dictupdate

from tests import caddy_helpers, pillar_files
from tests.orch_helpers import clear, lock_holder, orch, steps, writes

Case = collections.namedtuple("Case", "id change path fragment env", defaults=("lab",))


def _route(**kw):
    spec = {"domain": "extra.cybermonkey.dev", "service": "extra", "backend": "127.0.0.1:9"}
    spec.update(kw)
    return spec


def _stream(**kw):
    spec = {"name": "extra", "listen_port": 7000, "backend": "10.0.0.1:7000"}
    spec.update(kw)
    return spec


def caddy(**kw):
    return {"hecate": {"reverse_proxy": {"caddy": kw}}}


def streams(*proxies):
    return {"hecate": {"reverse_proxy": {"nginx": {"tcp_proxies": list(proxies)}}}}


def coturn(**kw):
    return {"hecate": {"reverse_proxy": {"coturn": kw}}}


def wireguard(**kw):
    return {"bionicgpt": {"wireguard": kw}}


def authentik(**kw):
    return {"bionicgpt": {"authentik": kw}}


def jobs(**kw):
    return {"bionicgpt": {"jobs": kw}}


def consul_service(**kw):
    return {"hecate": {"consul": {"services": {"extra": kw}}}}


def consul_agent(**kw):
    return {"hecate": {"consul": {"agent": kw}}}


def nomad_agent(**kw):
    return {"bionicgpt": {"nomad": {"agent": kw}}}


POSTGRES = "pgvector/pgvector:0.8.0-pg16"
PROXY = "quay.io/oauth2-proxy/oauth2-proxy:v7.6.0"
LITERAL = "secret given as a literal"

CASES = [
    # -- missing required keys ---------------------------------------------------------------------
    Case("route-without-backend", caddy(routes=[{"domain": "extra.cybermonkey.dev", "service": "extra"}]),
         "hecate:reverse_proxy:caddy:routes:0:backend", "required key is missing"),
    Case("stream-without-listen-port", streams({"name": "extra", "backend": "10.0.0.1:7000"}),
         "hecate:reverse_proxy:nginx:tcp_proxies:0:listen_port", "required key is missing"),
    Case("wireguard-node-without-address", wireguard(nodes={"new-node-1": {"endpoint": "n1.example.com:51820"}}),
         "bionicgpt:wireguard:nodes:new-node-1:address", "required key is missing"),
    Case("generated-secret-without-key", {"hecate": {"secrets": {"extra": {"path": "secret/hecate/extra"}}}},
         "hecate:secrets:extra:key", "required key is missing"),
    Case("consul-service-without-address", consul_service(name="extra", port=80),
         "hecate:consul:services:extra:address", "required for an external service"),
    Case("route-upstream-without-service", caddy(routes=[{"domain": "extra.cybermonkey.dev", "service": "extra",
                                                            "upstream": {"scheme": "https"}}]),
         "hecate:reverse_proxy:caddy:routes:0:upstream:consul_service", "required key is missing"),
    Case("no-redirect-uris", authentik(provider={"redirect_uris": []}),
         "bionicgpt:authentik:provider:redirect_uris", "should be non-empty"),
    # -- wrong types ---------------------------------------------------------------------------------
    Case("routes-not-a-list", caddy(routes="chat.codemonkey.ai"),
         "hecate:reverse_proxy:caddy:routes", "expected array, got str"),
    Case("deploy-timeout-not-a-number", {"bionicgpt": {"nomad": {"deploy_timeout": "soon"}}},
         "bionicgpt:nomad:deploy_timeout", "expected integer, got str"),
    Case("wireguard-port-as-string", wireguard(listen_port="51820"),
         "bionicgpt:wireguard:listen_port", "expected integer, got str"),
    Case("datacenters-not-a-list", {"bionicgpt": {"nomad": {"datacenters": "dc1"}}},
         "bionicgpt:nomad:datacenters", "expected array, got str"),
    Case("consul-ui-not-a-bool", consul_agent(ui="yes"),
         "hecate:consul:agent:ui", "expected boolean, got str"),
    Case("probe-url-null", {"bionicgpt": {"verify": {"probe": {"url": None}}}},
         "bionicgpt:verify:probe:url", "expected string, got NoneType"),
    # -- unknown keys (typos): every one of an object is named, so one pass fixes them all -------------
    Case("unknown-caddy-keys", caddy(routez=[], servr="hecate"),
         ("hecate:reverse_proxy:caddy:routez", "hecate:reverse_proxy:caddy:servr"), "unknown key"),
    Case("misspelt-hecate-sections", {"hecate": {"reverse_proxi": {"caddy": {}}, "consull": {}}},
         ("hecate:reverse_proxi", "hecate:consull"), "unknown key"),
    Case("misspelt-bionicgpt-sections", {"bionicgpt": {"jobz": {}, "nomadd": {}}},
         ("bionicgpt:jobz", "bionicgpt:nomadd"), "unknown key"),
    Case("unknown-keys-of-a-route", caddy(routes=[_route(bakend="127.0.0.1:9", tls_skip=True)]),
         ("hecate:reverse_proxy:caddy:routes:0:bakend", "hecate:reverse_proxy:caddy:routes:0:tls_skip"),
         "unknown key"),
    # -- bad domains -----------------------------------------------------------------------------------
    Case("bad-global-domain", {"hecate": {"global": {"domain": "not a domain"}}},
         "hecate:global:domain", "does not match the expected format"),
    Case("bad-route-domain", caddy(routes=[_route(domain="bad_domain!.dev")]),
         "hecate:reverse_proxy:caddy:routes:0:domain", "is not a valid domain"),
    Case("wildcard-inside-route-domain", caddy(routes=[_route(domain="a.*.cybermonkey.dev")]),
         "hecate:reverse_proxy:caddy:routes:0:domain", "is not a valid domain"),
    Case("bad-bionicgpt-domain", {"bionicgpt": {"domain": "chat codemonkey"}},
         "bionicgpt:domain", "does not match the expected format"),
    Case("bad-coturn-realm", coturn(realm="not a realm"),
         "hecate:reverse_proxy:coturn:realm", "does not match the expected format"),
    # -- ports out of range ------------------------------------------------------------------------------
    Case("stream-port-above-65535", streams(_stream(listen_port=70000)),
         "hecate:reverse_proxy:nginx:tcp_proxies:0:listen_port", "out of range"),
    Case("wireguard-port-zero", wireguard(listen_port=0),
         "bionicgpt:wireguard:listen_port", "out of range"),
    Case("caddy-https-port-65536", caddy(ports={"https": 65536}),
         "hecate:reverse_proxy:caddy:ports:https", "out of range"),
    Case("job-port-zero", jobs(database={"postgres": {"image": POSTGRES, "port": {"to": 0}}}),
         "bionicgpt:jobs:database:postgres:port:to", "out of range"),
    Case("consul-service-port", consul_service(address="10.0.0.1", port=70000),
         "hecate:consul:services:extra:port", "out of range"),
    Case("stream-backend-port", streams(_stream(backend="10.0.0.1:99999")),
         "hecate:reverse_proxy:nginx:tcp_proxies:0:backend", "port 99999"),
    Case("coturn-relay-max", coturn(ports={"relay_max": 70000}),
         "hecate:reverse_proxy:coturn:ports:relay_max", "out of range"),
    Case("coturn-relay-range-reversed", coturn(ports={"relay_min": 50000, "relay_max": 49000}),
         "hecate:reverse_proxy:coturn:ports:relay_min", "above relay_max"),
    # -- port clashes on the edge ---------------------------------------------------------------------
    Case("stream-on-caddys-https-port", streams(_stream(listen_port=443)),
         "hecate:reverse_proxy:nginx:tcp_proxies:0:listen_port", "clashes with Caddy's https port"),
    Case("udp-stream-on-wireguards-port", streams(_stream(listen_port=51820, protocol="udp")),
         "hecate:reverse_proxy:nginx:tcp_proxies:0:listen_port", "clashes with WireGuard's listen port"),
    Case("coturn-on-caddys-https-port", coturn(ports={"listening": 443}),
         "hecate:reverse_proxy:coturn:ports:listening", "clashes with Caddy's https port"),
    # -- duplicates -------------------------------------------------------------------------------------
    Case("duplicate-route-domain", caddy(routes=[_route(), _route(service="extra-2")]),
         "hecate:reverse_proxy:caddy:routes:1:domain", "duplicate domain 'extra.cybermonkey.dev'"),
    Case("duplicate-route-name", caddy(routes=[_route(), _route(domain="extra-2.cybermonkey.dev")]),
         "hecate:reverse_proxy:caddy:routes:1:name", "name used twice"),
    Case("duplicate-stream-name", streams(_stream(), _stream(listen_port=7001)),
         "hecate:reverse_proxy:nginx:tcp_proxies:1:name", "already used"),
    Case("duplicate-tunnel-address", wireguard(local={"address": "10.88.0.1"}),
         "bionicgpt:wireguard:local:address", "already used by bionicgpt:wireguard:cloud:address"),
    Case("generated-secrets-share-a-key",
         {"hecate": {"secrets": {"extra": {"path": "secret/bionicgpt/db", "key": "password"}}}},
         "bionicgpt:secrets:db_password", "same Vault path and key as hecate:secrets:extra"),
    Case("host-volumes-share-a-path", nomad_agent(host_volumes={"ollama": {"path": "/srv/shared"},
                                                                "bionicgpt_postgres": {"path": "/srv/shared"}}),
         "bionicgpt:nomad:agent:host_volumes:ollama:path", "same path as host volume bionicgpt_postgres"),
    # -- environments -------------------------------------------------------------------------------------
    Case("unknown-environment", {}, "hecate:global:environment", "unknown environment 'nowhere'", "nowhere"),
    Case("overlay-claims-another-environment", {"hecate": {"global": {"environment": "prod"}}},
         "hecate:global:environment", "says it is 'prod'"),
    Case("image-latest-in-prod", jobs(database={"postgres": {"image": "pgvector/pgvector:latest"}}),
         "bionicgpt:jobs:database:postgres:image", "is not pinned", "prod"),
    Case("untagged-image-in-staging", jobs(llm={"ollama": {"image": "ollama/ollama"}}),
         "bionicgpt:jobs:llm:ollama:image", "is not pinned", "staging"),
    Case("plain-http-authentik-in-prod", {"hecate": {"connections": {"authentik": {"url": "http://hera.cybermonkey.dev"}}}},
         "hecate:connections:authentik:url", "plain http is refused in prod", "prod"),
    Case("plain-http-redirect-in-prod",
         authentik(provider={"redirect_uris": ["http://chat.codemonkey.ai/oauth2/callback"]}),
         "bionicgpt:authentik:provider:redirect_uris:0", "plain http redirect URIs are refused in prod", "prod"),
    Case("test-users-in-prod",
         authentik(test_users={"eve": {"name": "Eve",
                                       "password": {"vault": "secret/bionicgpt/lab-users", "key": "eve"}}}),
         "bionicgpt:authentik:test_users", "test users belong in the lab overlay only", "prod"),
    # -- Authentik groups and redirect URIs -----------------------------------------------------------------
    Case("group-without-the-prefix", authentik(groups={"other-admins": {}}),
         "bionicgpt:authentik:groups:other-admins", "must start with the prefix 'bionicgpt-'"),
    Case("binding-to-an-unprefixed-group", authentik(bindings={"groups": ["other-admins"]}),
         "bionicgpt:authentik:bindings:groups:0", "does not carry the group prefix"),
    Case("binding-to-an-undefined-group", authentik(bindings={"groups": ["bionicgpt-ghosts"]}),
         "bionicgpt:authentik:bindings:groups:0", "is not defined under bionicgpt:authentik:groups"),
    Case("superadmin-group-unprefixed", authentik(scope_mapping={"superadmin_group": "admins"}),
         "bionicgpt:authentik:scope_mapping:superadmin_group", "does not carry the group prefix"),
    Case("group-is-its-own-parent", authentik(groups={"bionicgpt-x": {"parent": "bionicgpt-x"}}),
         "bionicgpt:authentik:groups:bionicgpt-x:parent", "cannot be its own parent"),
    Case("redirect-uri-not-a-url", authentik(provider={"redirect_uris": ["chat.codemonkey.ai/oauth2/callback"]}),
         "bionicgpt:authentik:provider:redirect_uris:0", "is not an absolute http(s) URL"),
    Case("strict-redirect-uri-object-not-a-url",
         authentik(provider={"redirect_uris": [{"url": "chat.codemonkey.ai/cb", "matching_mode": "strict"}]}),
         "bionicgpt:authentik:provider:redirect_uris:0:url", "is not an absolute http(s) URL"),
    Case("regex-redirect-uri-invalid", authentik(provider={"redirect_uris": [{"url": "([", "matching_mode": "regex"}]}),
         "bionicgpt:authentik:provider:redirect_uris:0:url", "invalid regular expression"),
    Case("token-validity-zero", authentik(provider={"access_token_validity": "hours=0"}),
         "bionicgpt:authentik:provider:access_token_validity", "must be longer than zero"),
    # -- WireGuard -----------------------------------------------------------------------------------------
    Case("tunnel-address-outside-the-network", wireguard(local={"address": "10.99.0.2"}),
         "bionicgpt:wireguard:local:address", "outside the tunnel network 10.88.0.0/24"),
    Case("tunnel-network-not-cidr", wireguard(network="10.88.0.0/33"),
         "bionicgpt:wireguard:network", "not a network in CIDR form"),
    Case("peer-public-key-invalid",
         wireguard(extra_peers=[{"name": "laptop", "public_key": "nope", "allowed_ips": ["10.88.0.9/32"]}]),
         "bionicgpt:wireguard:extra_peers:0:public_key", "not a WireGuard public key"),
    Case("hub-endpoint-without-port", wireguard(cloud={"endpoint": "cloud.cybermonkey.dev"}),
         "bionicgpt:wireguard:cloud:endpoint", "expected host:port"),
    # -- secrets: literals and references --------------------------------------------------------------------
    Case("authentik-token-as-literal", {"hecate": {"connections": {"authentik": {"token": "ak-literal-token"}}}},
         "hecate:connections:authentik:token", LITERAL),
    Case("litellm-master-key-as-literal", jobs(llm={"master_key": "sk-literal-master-key"}),
         "bionicgpt:jobs:llm:master_key", LITERAL),
    Case("gossip-key-as-literal", consul_agent(gossip_key="c2VjcmV0LWdvc3NpcC1rZXk="),
         "hecate:consul:agent:gossip_key", LITERAL),
    Case("test-user-password-as-literal", authentik(test_users={"henry": {"password": "hunter2hunter2"}}),
         "bionicgpt:authentik:test_users:henry:password", LITERAL),
    Case("client-secret-in-a-task-env",
         jobs(application={"oauth2_proxy": {"image": PROXY, "env": {"OAUTH2_PROXY_CLIENT_SECRET": "literal-secret"}}}),
         "bionicgpt:jobs:application:oauth2_proxy:env:OAUTH2_PROXY_CLIENT_SECRET", "literal in a task's environment"),
    Case("numeric-password-in-a-task-env",
         jobs(database={"postgres": {"image": POSTGRES, "env": {"POSTGRES_PASSWORD": 12345678}}}),
         "bionicgpt:jobs:database:postgres:env:POSTGRES_PASSWORD", "literal in a task's environment"),
    Case("malformed-vault-reference", jobs(llm={"master_key": {"vault": "nomount", "key": "master_key"}}),
         "bionicgpt:jobs:llm:master_key", "'vault' must be '<mount>/<path>'"),
    Case("reference-to-a-missing-vault-key",
         jobs(llm={"azure": {"api_key": {"vault": "secret/bionicgpt/azure", "key": "api_key_v2"}}}),
         "bionicgpt:jobs:llm:azure:api_key", "Vault has no key 'api_key_v2' at secret/bionicgpt/azure"),
    Case("reference-to-a-missing-vault-path",
         {"hecate": {"connections": {"authentik": {
             "token": {"vault": "secret/hecate/authentik-old", "key": "api_token"}}}}},
         "hecate:connections:authentik:token", "Vault has no key 'api_token' at secret/hecate/authentik-old"),
    # -- the rest of what the systems check --------------------------------------------------------------------
    Case("stream-with-two-backends", streams(_stream(consul_service="wazuh-agents")),
         "hecate:reverse_proxy:nginx:tcp_proxies:0", "give exactly one of backend, backends, consul_service"),
    Case("tls-skip-verify-on-http", caddy(routes=[_route(tls_skip_verify=True)]),
         "hecate:reverse_proxy:caddy:routes:0:tls_skip_verify", "only applies to an https:// backend"),
    Case("unknown-route-policy", caddy(routes=[_route(policies=["strict"])]),
         "hecate:reverse_proxy:caddy:routes:0:policies", "unknown policy 'strict'"),
    Case("consul-check-of-two-kinds",
         consul_service(address="10.0.0.1",
                        checks=[{"tcp": "10.0.0.1:1", "http": "http://10.0.0.1/", "interval": "10s"}]),
         "hecate:consul:services:extra:checks:0", "exactly one of http, tcp or ttl"),
    Case("consul-reserved-meta", consul_service(address="10.0.0.1", meta={"consul-version": "1"}),
         "hecate:consul:services:extra:meta:consul-version", "reserved by Consul"),
    Case("consul-client-addr-not-an-ip", consul_agent(client_addr="localhost"),
         "hecate:consul:agent:client_addr", "is not an IP address"),
    Case("unknown-nomad-job", {"bionicgpt": {"nomad": {"jobs": ["database", "cache"]}}},
         "bionicgpt:nomad:jobs:1", "'cache' is not one of"),
    Case("oidc-issuer-not-a-url", jobs(application={"oidc_issuer_url": "hera.cybermonkey.dev"}),
         "bionicgpt:jobs:application:oidc_issuer_url", "does not match the expected format"),
    Case("coturn-config-world-readable", coturn(file_mode="0644"),
         "hecate:reverse_proxy:coturn:file_mode", "lets every user read the TURN secret"),
    Case("lock-ttl-in-words", {"hecate": {"orchestration": {"lock_ttl": "20 minutes"}}},
         "hecate:orchestration:lock_ttl", "does not match the expected format"),
]
BY_ID = {case.id: case for case in CASES}
assert len(BY_ID) == len(CASES) >= 30

# Cases also run through the real `salt-run` and the orchestration (lab overrides): one per
# kind of check - the Vault reference check, schema, a system's semantic check, the secrets
# check - and systems on both nodes. An orchestration run costs ~5 s: the default suite runs
# the first (the reference check, the last one validation does) and the preview; the others
# are `long`.
ORCHESTRATED = [
    "reference-to-a-missing-vault-key",
    pytest.param("duplicate-route-domain", marks=pytest.mark.long),
    pytest.param("tunnel-address-outside-the-network", marks=pytest.mark.long),
    pytest.param("client-secret-in-a-task-env", marks=pytest.mark.long),
]
PREVIEWED = ["stream-on-caddys-https-port", "unknown-caddy-keys"]


class Validator:
    """``hecate.validate`` with a case's change in a test-only pillar root."""

    def __init__(self, root, runners, sims_, caddy):
        self.root, self.runners, self.sims, self.caddy = root, runners, sims_, caddy

    def _clean(self):
        for dirpath, _, files in os.walk(self.root):
            for name in files:
                os.unlink(os.path.join(dirpath, name))

    def _write(self, rel, data):
        path = os.path.join(self.root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(data, fh)  # JSON is YAML

    def __call__(self, env, change):
        self._clean()
        if env == "lab":
            self._write("lab_overrides.sls", change)
        elif change:
            overlay = pillar_files.render(f"env/{env}.sls")
            self._write(os.path.join("env", f"{env}.sls"),
                        salt.utils.dictupdate.merge(overlay, copy.deepcopy(change),
                                                    strategy="smart", merge_lists=False))
        try:
            return self.runners["hecate.validate"](env=env, refs=env == "lab")
        finally:
            self._clean()


@pytest.fixture(scope="module")
def validate(salt_master, stack, tmp_path_factory):  # noqa: F811
    opts = salt.config.master_config(salt_master.config["conf_file"])
    root = str(tmp_path_factory.mktemp("corpus-pillar"))
    opts["pillar_roots"] = {"base": [root] + list(opts["pillar_roots"]["base"])}
    return Validator(root, salt.loader.runner(opts), stack["sims"], stack["caddy"])


def matching(errors, case):
    """The errors naming the case's key path(s) with its message; [] unless every path has one."""
    paths = case.path if isinstance(case.path, tuple) else (case.path,)
    found = [[e for e in errors if e.startswith(f"{path}: ") and case.fragment in e] for path in paths]
    return [e for hits in found for e in hits] if all(found) else []


def no_writes(stack, caddy_writes):  # noqa: F811
    for name, sim in stack["sims"].items():
        assert writes(name, sim) == [], name
    assert caddy_helpers.writes(stack["caddy"]) == caddy_writes


@pytest.mark.parametrize("env", ["lab", "dev", "staging", "prod"])
def test_the_unchanged_pillar_of_each_environment_is_valid(validate, env):
    """The baseline: every error of a case comes from its change."""
    ret = validate(env, {})
    assert ret["result"] is True and ret["errors"] == [], ret


def test_environment_checks_follow_the_environment(validate):
    """What prod refuses is accepted where it is allowed (lab/dev), so the prod cases test the rule."""
    for env, case in (("dev", "image-latest-in-prod"), ("lab", "plain-http-redirect-in-prod")):
        ret = validate(env, BY_ID[case].change)
        assert ret["result"] is True, (env, ret)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_malformed_pillar_fails_validation_naming_the_key(validate, stack, case):  # noqa: F811
    caddy_writes = clear(stack)
    ret = validate(case.env, case.change)
    assert ret["result"] is False and ret["retcode"] == 1, ret
    assert matching(ret["errors"], case), (case.path, case.fragment, ret["errors"])
    no_writes(stack, caddy_writes)


@pytest.mark.parametrize("case_id", ["duplicate-route-domain", "unknown-keys-of-a-route"])
def test_salt_run_gives_the_same_errors_and_exits_non_zero(salt_run_cli, stack, overrides, validate, case_id):  # noqa: F811
    case = BY_ID[case_id]
    in_process = validate("lab", case.change)["errors"]
    overrides(case.change)
    caddy_writes = clear(stack)
    ret = salt_run_cli.run("hecate.validate", "env=lab")
    assert ret.returncode != 0 and ret.data["result"] is False, ret
    assert ret.data["errors"] == in_process and matching(in_process, case)
    no_writes(stack, caddy_writes)


def stopped_at_validation(ret, case, errors):
    """The orchestration failed at its first step with exactly these errors; nothing else ran."""
    assert ret.returncode != 0
    got = steps(ret)
    validate_step = got.pop("validate")
    assert validate_step["result"] is False
    header, *lines = validate_step["comment"].splitlines()
    assert header == "pillar for environment 'lab' is invalid:" and lines == errors
    assert matching(lines, case), lines
    for name, step in got.items():
        assert step["result"] is False and not step["changes"], (name, step)


@pytest.mark.parametrize("case_id", ORCHESTRATED)
def test_the_orchestration_stops_at_validation_and_writes_nothing(
    salt_run_cli, stack, overrides, validate, case_id  # noqa: F811
):
    case = BY_ID[case_id]
    errors = validate("lab", case.change)["errors"]
    overrides(case.change)
    caddy_writes = clear(stack)
    stopped_at_validation(orch(salt_run_cli), case, errors)
    no_writes(stack, caddy_writes)
    assert lock_holder(stack["sims"]["consul"]) is None


@pytest.mark.parametrize("case_id", PREVIEWED)
def test_a_preview_stops_at_validation_too(salt_run_cli, stack, overrides, validate, case_id):  # noqa: F811
    """The hecate.validated step's comment lists every error, each with its key path."""
    case = BY_ID[case_id]
    errors = validate("lab", case.change)["errors"]
    overrides(case.change)
    caddy_writes = clear(stack)
    stopped_at_validation(orch(salt_run_cli, test=True), case, errors)
    no_writes(stack, caddy_writes)
