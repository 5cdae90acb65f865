"""
TLS (issue 10, item 5): every client hecate has verifies certificates by default, trusts
exactly the CA named by ``hecate:connections:<system>:ca_bundle``, and turns verification
off only for an explicit ``verify: false``; plain http to Authentik is refused in prod.

Each system's simulator is served over TLS with a certificate from a throwaway CA
(trustme). For every client - Caddy admin, Authentik, Nomad, Consul (py-consul over
hecate's session), Vault (hvac over hecate's session, token and AppRole), the preflight
probes, the verify step's ``hecate.http_ok`` and the runner's status probe - the test
shows it REFUSED without a CA bundle ("TLS verification failed ..."), and ACCEPTED with
the bundle set in minion config or in pillar, through the same ``from_config`` the
modules use.

Caddy's own admin endpoint is plain HTTP: its local listener (loopback or a unix socket)
has no TLS option, and its only TLS endpoint is the experimental remote admin, which
requires mutual TLS with client-certificate identities (caddy admin.go: ``RemoteAdmin``,
"a secure listener enforcing mutual TLS"), which hecate does not support. An operator may
still put a TLS proxy in front of the admin API and point ``admin_url`` at it: that is
tested here with the real Caddy serving its own admin API through a TLS server.
"""

import importlib.util
import logging
import os
import shutil
import uuid

import pytest
import requests
import salt.exceptions
import trustme
import yaml
from saltfactories.utils.functional import Loaders

import hecate_authentik_client as hak
import hecate_caddy_apply
import hecate_caddy_client
import hecate_caddy_routes
import hecate_config
import hecate_consul_client
import hecate_http
import hecate_nomad_client
import hecate_preflight
import hecate_vault_client
from lab import procs, topology
from lab.sim import SimHandle
from tests import caddy_helpers as ch

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SYSTEMS = ("caddy", "authentik", "nomad", "consul", "vault")
TLS_FAILED = r"TLS verification failed \(certificate verify failed[^)]*\); set hecate:connections:{}:ca_bundle"

ROOT = "root-" + uuid.uuid4().hex
CONSUL_TOKEN = str(uuid.uuid4())
AUTHENTIK_TOKEN = "ak-" + uuid.uuid4().hex
ROLE_ID, SECRET_ID = "hecate-role", "sid-" + uuid.uuid4().hex


# -- a throwaway PKI and the simulators behind it -------------------------------------------------------
@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    root = tmp_path_factory.mktemp("pki")
    ca, other = trustme.CA(), trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    paths = {n: str(root / f"{n}.pem") for n in ("cert", "key", "ca", "other_ca")}
    cert.cert_chain_pems[0].write_to_path(paths["cert"])
    for blob in cert.cert_chain_pems[1:]:
        blob.write_to_path(paths["cert"], append=True)
    cert.private_key_pem.write_to_path(paths["key"])
    ca.cert_pem.write_to_path(paths["ca"])
    other.cert_pem.write_to_path(paths["other_ca"])  # a valid CA, just not the one that signed
    return paths


@pytest.fixture(scope="module")
def sims(pki, tmp_path_factory):
    root = tmp_path_factory.mktemp("tls-sims")
    tls = (pki["cert"], pki["key"], pki["ca"])
    options = {
        "vault": {"root_token": ROOT, "mounts": ["secret"],
                  "approles": {ROLE_ID: {"secret_id": SECRET_ID, "policies": ["root"]}}},
        "consul": topology.consul_options({"consul_token": CONSUL_TOKEN}),
        "nomad": topology.nomad_options(),
        "authentik": {"version": topology.AUTHENTIK_VERSION, "token": AUTHENTIK_TOKEN, "strict": True},
    }
    started = {}
    try:
        for name, opts in options.items():
            started[name] = SimHandle(name, str(root / name), opts, tls=tls).start()
        # the Authentik token the production way: a Vault reference, in a Vault behind TLS
        kv = hecate_vault_client.VaultKV({"url": started["vault"].url, "token": ROOT, "ca_bundle": pki["ca"]})
        kv.write("secret", "hecate/authentik", {"api_token": AUTHENTIK_TOKEN})
        yield started
    finally:
        for handle in started.values():
            handle.stop()


@pytest.fixture(scope="module")
def caddy_tls(pki, tmp_path_factory):
    """
    The real Caddy, its admin API also served over TLS by a Caddy server of its own
    (certificate from the test CA, requests proxied to the admin listener): what an
    operator who wants TLS to the admin API would put in front of it.
    """
    caddy = ch.new_caddy(str(tmp_path_factory.mktemp("caddy-tls")))
    port = procs.free_port()
    admin = f"127.0.0.1:{caddy.admin_port}"
    front = {
        "listen": [f"127.0.0.1:{port}"],
        "automatic_https": {"disable": True},
        "tls_connection_policies": [{}],
        "routes": [{"handle": [{"handler": "reverse_proxy", "upstreams": [{"dial": admin}],
                                "headers": {"request": {"set": {"Host": [admin]}}}}]}],
    }
    for path, value in (("/config/apps/tls", {"certificates": {"load_files": [
                            {"certificate": pki["cert"], "key": pki["key"]}]}}),
                        ("/config/apps/http/servers/adminfront", front)):
        requests.post(caddy.admin_url + path, json=value, timeout=30).raise_for_status()
    caddy.tls_admin_url = f"https://127.0.0.1:{port}"
    yield caddy
    caddy.stop()


def urls(sims, caddy_tls):
    out = {name: handle.url for name, handle in sims.items()}
    out["caddy"] = caddy_tls.tls_admin_url
    return out


def settings(system, url, **extra):
    """A ``hecate:connections:<system>`` block: the URL and credentials, plus ``extra``."""
    block = {"caddy": {"admin_url": url, "state_dir": "/nonexistent"},
             "authentik": {"url": url, "token": AUTHENTIK_TOKEN},
             "nomad": {"url": url},
             "consul": {"url": url, "token": CONSUL_TOKEN},
             "vault": {"url": url, "token": ROOT}}[system]
    block = dict(block, retries=0, **extra)
    return {"hecate": {"connections": {system: block}}}


def use(system, opts, pillar):
    """One authenticated read (or write) through the client the modules use, from config."""
    if system == "caddy":
        return hecate_caddy_client.CaddyAdmin.from_config(opts, pillar).get()[1]  # the ETag
    if system == "authentik":
        return hak.from_config(opts, pillar, context={}).version()
    if system == "nomad":
        return hecate_nomad_client.from_config(opts, pillar).leader()
    if system == "consul":  # py-consul's GET and PUT paths, over hecate's session
        client = hecate_consul_client.from_config(opts, pillar)
        assert client.kv_put("tls/probe", "1") is True
        return client.kv_get("tls/probe")[1]["Value"]
    kv = hecate_vault_client.from_config(opts, pillar)  # hvac
    return kv.read_data("secret", "hecate/authentik")


def expect_refused(system, opts, pillar):
    with pytest.raises(salt.exceptions.CommandExecutionError, match=TLS_FAILED.format(system)) as err:
        use(system, opts, pillar)
    return str(err.value)


# -- every client: refused without the CA, accepted with it ---------------------------------------------
@pytest.mark.parametrize("system", SYSTEMS)
def test_verification_is_on_by_default(system, sims, caddy_tls):
    url = urls(sims, caddy_tls)[system]
    assert hecate_config.connection(system)["verify"] is True
    message = expect_refused(system, settings(system, url), {})
    # the message names the system and where it is, never a token
    assert url.split("//")[1] in message
    for secret in (ROOT, CONSUL_TOKEN, AUTHENTIK_TOKEN):
        assert secret not in message


@pytest.mark.parametrize("where", ["minion_config", "pillar"])
@pytest.mark.parametrize("system", SYSTEMS)
def test_ca_bundle_is_trusted(system, where, sims, caddy_tls, pki):
    conf = settings(system, urls(sims, caddy_tls)[system], ca_bundle=pki["ca"])
    opts, pillar = (conf, {}) if where == "minion_config" else ({}, conf)
    assert use(system, opts, pillar)


@pytest.mark.parametrize("system", SYSTEMS)
def test_a_bundle_of_another_ca_is_refused(system, sims, caddy_tls, pki):
    expect_refused(system, settings(system, urls(sims, caddy_tls)[system], ca_bundle=pki["other_ca"]), {})


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")  # the explicit opt-out
@pytest.mark.parametrize("system", SYSTEMS)
def test_verify_false_must_be_explicit(system, sims, caddy_tls, pki, caplog):
    url = urls(sims, caddy_tls)[system]
    # present but empty (YAML `verify:` is null): still verified. Before this test,
    # bool(None) turned verification off.
    expect_refused(system, settings(system, url, verify=None), {})
    # a string is refused, not guessed
    with pytest.raises(salt.exceptions.SaltInvocationError,
                       match=f"hecate:connections:{system}:verify must be true or false, got 'false'"):
        use(system, settings(system, url, verify="false"), {})
    # the explicit opt-out works, and says so in the log
    with caplog.at_level(logging.WARNING, logger="hecate_http"):
        assert use(system, settings(system, url, verify=False), {})
    assert "TLS certificate verification is OFF" in caplog.text
    # a CA bundle wins over verify: false
    expect_refused(system, settings(system, url, verify=False, ca_bundle=pki["other_ca"]), {})


def test_a_missing_ca_bundle_file_is_a_clear_error(sims, tmp_path):
    missing = str(tmp_path / "nope.pem")
    for system in ("authentik", "nomad", "consul", "vault"):
        with pytest.raises(salt.exceptions.SaltInvocationError,
                           match=f"hecate:connections:{system}:ca_bundle: {missing} does not exist"):
            use(system, settings(system, sims[system].url, ca_bundle=missing), {})


def test_environment_cannot_turn_verification_off(sims, caddy_tls, monkeypatch, pki):
    """The variables the libraries underneath honour are ignored: settings come from Salt."""
    for var, value in {"CURL_CA_BUNDLE": "", "REQUESTS_CA_BUNDLE": pki["ca"], "SSL_CERT_FILE": pki["ca"],
                       "CONSUL_HTTP_SSL_VERIFY": "false", "CONSUL_CACERT": pki["ca"],
                       "VAULT_SKIP_VERIFY": "true", "VAULT_CACERT": pki["ca"],
                       "NOMAD_SKIP_VERIFY": "true", "NOMAD_CACERT": pki["ca"]}.items():
        monkeypatch.setenv(var, value)
    for system in SYSTEMS:
        expect_refused(system, settings(system, urls(sims, caddy_tls)[system]), {})


def test_vault_approle_login_uses_the_bundle(sims, pki):
    """AppRole login is hvac's own request (the kind of path saltext-vault#34 missed)."""
    approle = {"role_id": ROLE_ID, "secret_id": SECRET_ID}
    base = {"url": sims["vault"].url, "approle": approle, "retries": 0}
    with pytest.raises(hecate_http.Unreachable, match=TLS_FAILED.format("vault")):
        hecate_vault_client.VaultKV(base)
    kv = hecate_vault_client.VaultKV(dict(base, ca_bundle=pki["ca"]))
    assert kv.read_data("secret", "hecate/authentik")["api_token"] == AUTHENTIK_TOKEN
    assert ("POST", "/v1/auth/approle/login") in {(r["method"], r["path"]) for r in sims["vault"].requests()}


def test_a_vault_reference_resolves_through_vaults_own_bundle(sims, pki):
    """The Authentik token is a Vault reference: resolving it needs Vault's CA, using it Authentik's."""
    ref = {"vault": "secret/hecate/authentik", "key": "api_token"}
    authentik = {"url": sims["authentik"].url, "token": ref, "ca_bundle": pki["ca"], "retries": 0}
    vault = {"url": sims["vault"].url, "token": ROOT, "retries": 0}
    opts = {"hecate": {"connections": {"authentik": authentik, "vault": vault}}}
    with pytest.raises(salt.exceptions.CommandExecutionError, match=TLS_FAILED.format("vault")):
        hak.from_config(opts, {}, context={})
    opts["hecate"]["connections"]["vault"]["ca_bundle"] = pki["ca"]
    assert hak.from_config(opts, {}, context={}).version()


def test_caddy_apply_through_an_https_admin_url(caddy_tls, pki, tmp_path):
    """A whole guarded apply (read with ETag, one PATCH with If-Match) over TLS."""
    admin = hecate_caddy_client.CaddyAdmin({"admin_url": caddy_tls.tls_admin_url, "ca_bundle": pki["ca"]})
    desired = hecate_caddy_routes.build({"server": "hecate", "default_policies": [], "routes": [
        {"domain": "tls.test", "service": "tls", "backend": "127.0.0.1:9"}]})
    out = hecate_caddy_apply.apply(admin, "hecate", lambda live: hecate_caddy_routes.plan_set(live, desired),
                                    test=False, store=hecate_caddy_client.SnapshotStore(str(tmp_path)))
    assert out["written"] is True and set(out["changes"]["added"]) == {"tls"}
    live = requests.get(caddy_tls.admin_url + "/config/apps/http/servers/hecate/routes", timeout=10).json()
    assert [r["@id"] for r in live] == ["hecate.route.tls"]


# -- the probes: preflight, the verify step, the runner's status ------------------------------------------
@pytest.mark.parametrize("system", SYSTEMS)
def test_preflight_reach(system, sims, caddy_tls, pki):
    url = urls(sims, caddy_tls)[system]
    with pytest.raises(salt.exceptions.CommandExecutionError, match=TLS_FAILED.format(system)):
        hecate_preflight.reach(system, settings(system, url), {})
    # Consul's probe is a key read under hecate/: 404 (not written yet) proves the read is allowed
    expected = {"consul": "reachable (404), token may read hecate/deployments",
                "vault": "reachable, token accepted (policies: root)"}.get(system, "reachable (200)")
    assert expected in hecate_preflight.reach(system, settings(system, url, ca_bundle=pki["ca"]), {})


def _runner_module():
    spec = importlib.util.spec_from_file_location(
        "hecate_runner_under_test", os.path.join(REPO, "_runners", "hecate.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_runner_status_probe(sims, pki):
    """``hecate.status``'s request through Caddy (``bionicgpt:verify:probe``: url, host, ca_bundle)."""
    probe = _runner_module()._probe  # pylint: disable=protected-access
    url = sims["vault"].url + "/v1/sys/health"
    refused = probe({"url": url})
    assert refused["ok"] is False and "TLS verification failed" in refused["error"]
    accepted = probe({"url": url, "ca_bundle": pki["ca"]})
    assert accepted["ok"] is True and accepted["status"] == 200


# -- through Salt's loaders: the verify step's state, and Authentik in prod at call time -------------------
@pytest.fixture(scope="module")
def plain_authentik(tmp_path_factory):
    """An Authentik simulator on plain http (a prod minion must never send it its token)."""
    handle = SimHandle("authentik", str(tmp_path_factory.mktemp("plain-authentik")),
                       {"version": topology.AUTHENTIK_VERSION, "token": AUTHENTIK_TOKEN, "strict": True}).start()
    yield handle
    handle.stop()


def _loaders(salt_factories, tmp_path_factory, env, authentik_url, name):
    root = tmp_path_factory.mktemp(f"tls-{name}")
    (root / "pillar").mkdir()
    (root / "pillar" / "top.sls").write_text("base:\n  '*':\n    - env\n")
    (root / "pillar" / "env.sls").write_text(yaml.safe_dump({"hecate": {"global": {"environment": env}}}))
    factory = salt_factories.salt_minion_daemon(
        f"tls-{name}-{uuid.uuid4().hex[:6]}",
        overrides={
            "file_client": "local",
            "module_dirs": [REPO],
            "file_roots": {"base": [os.path.join(REPO, "salt")]},
            "pillar_roots": {"base": [str(root / "pillar")]},
            "grains": {"hecate_env": env, "roles": ["hecate-edge"]},
            "hecate": {"connections": {"authentik": {"url": authentik_url, "token": AUTHENTIK_TOKEN,
                                                     "retries": 0}}},
        },
    )
    return Loaders(factory.config.copy(), loaded_base_name=f"{__name__}.{name}")


@pytest.fixture(scope="module")
def prod(salt_factories, tmp_path_factory, plain_authentik):
    # the simulator's port under a name off this host: plain http to the edge's own loopback
    # (Authentik as hecate's Nomad job) is allowed in prod, to any other host it is not
    url = plain_authentik.url.replace("://127.0.0.1:", "://authentik.hecate.internal:")
    assert url != plain_authentik.url
    loaders = _loaders(salt_factories, tmp_path_factory, "prod", url, "prod")
    yield loaders
    loaders.reset_state()


@pytest.fixture(scope="module")
def lab(salt_factories, tmp_path_factory, plain_authentik):
    loaders = _loaders(salt_factories, tmp_path_factory, "lab", plain_authentik.url, "lab")
    yield loaders
    loaders.reset_state()


@pytest.fixture(scope="module")
def loaders(lab):
    """What the functional conftest's autouse reset uses in this module."""
    return lab


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")  # verify=False below
def test_verify_state_http_ok(lab, sims, pki):
    url = sims["vault"].url + "/v1/sys/health"
    refused = lab.states.hecate.http_ok(name=url, timeout=0)
    assert refused.result is False and "TLS verification failed" in refused.comment
    assert lab.states.hecate.http_ok(name=url, ca_bundle=pki["ca"], timeout=0).result is True
    assert lab.states.hecate.http_ok(name=url, verify=False, timeout=0).result is True


def test_plain_http_authentik_is_refused_in_prod_at_call_time(prod, lab, plain_authentik):
    """
    The URL comes from minion config (which wins over pillar and is not validated), so
    the client itself refuses - before the token is resolved or anything is sent.
    """
    plain_authentik.clear_requests()
    with pytest.raises(salt.exceptions.SaltInvocationError,
                       match="hecate:connections:authentik:url: plain http is refused in prod"):
        prod.modules.authentik.version()
    ret = prod.states.authentik_group.present(name="hecate-tls-probe")
    assert ret.result is False and "plain http is refused in prod" in ret.comment
    reachable = prod.states.hecate.reachable(name="apis", systems=["authentik"])
    assert reachable.result is False and "plain http is refused in prod" in reachable.comment
    assert plain_authentik.requests() == []  # the token never left the minion
    # the same minion config outside prod works (the refusal is about prod, not the URL)
    assert lab.modules.authentik.version().startswith(topology.AUTHENTIK_VERSION)
    assert plain_authentik.requests()


def test_plain_http_authentik_fails_validate_env_prod(salt_factories, tmp_path_factory):
    """``hecate.validate env=prod`` (the runner, as the orchestration's first step calls it)."""
    root = tmp_path_factory.mktemp("validate-prod")
    pillar_root = root / "pillar"
    shutil.copytree(topology.PILLAR_DIR, pillar_root)  # the lab's copy of the shipped pillar
    factory = salt_factories.salt_master_daemon(
        f"tls-master-{uuid.uuid4().hex[:6]}",
        overrides={"module_dirs": [REPO], "pillar_roots": {"base": [str(pillar_root)]},
                   "file_roots": {"base": [os.path.join(REPO, "salt")]}},
    )
    opts = factory.config.copy()
    import salt.loader  # pylint: disable=import-outside-toplevel

    runners = salt.loader.runner(opts, utils=salt.loader.utils(opts), context={})

    def authentik_errors(env):
        ret = runners["hecate.validate"](env=env, refs=False)
        return ret, [e for e in ret["errors"] if e.startswith("hecate:connections:authentik:url")]

    ret, errors = authentik_errors("prod")
    assert errors == [], ret  # the (lab's copy of the) shipped prod pillar uses https
    # an operator's slip: the prod (and staging) overlay points at Authentik over http
    for env in ("prod", "staging"):
        (pillar_root / "env" / f"{env}.sls").write_text(yaml.safe_dump({"hecate": {
            "global": {"environment": env},
            "connections": {"authentik": {"url": "http://auth.example.com"}},
        }}))
    ret, errors = authentik_errors("prod")
    assert ret["result"] is False and ret["retcode"] == 1
    assert errors == ["hecate:connections:authentik:url: plain http is refused in prod: the API token "
                      "would cross the network in clear"], ret["errors"]
    assert authentik_errors("staging")[1] == []  # the rule is prod's
