"""
``caddy.certificates`` against a Caddy that serves TLS: started from a Caddyfile as production
is, certificates from Caddy's ``internal`` CA (lab/caddy.py ``caddyfile_config``), hecate's
route added to the Caddyfile's server ``srv0`` by ``caddy_routes.managed``. The internal CA
issues certificates for 12 hours, so the 14-day warning is really raised by a real handshake.
"""

import os
import time

import pytest
import yaml
from saltfactories.utils.functional import Loaders

from lab import caddy as lab_caddy
from tests import caddy_helpers as ch

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CADDYFILE = 'site.test {\n\trespond "site"\n}\n'


@pytest.fixture(scope="module")
def tls_caddy(tmp_path_factory):
    proc = lab_caddy.Caddy(str(tmp_path_factory.mktemp("caddy-tls")), caddyfile=CADDYFILE).start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def backend():
    out = ch.Backend("cert").start()
    yield out
    out.stop()


@pytest.fixture(scope="module")
def loaders(salt_factories, tls_caddy, backend, tmp_path_factory):
    roots = tmp_path_factory.mktemp("caddy-certs")
    (roots / "states").mkdir()
    (roots / "pillar").mkdir()
    (roots / "pillar" / "top.sls").write_text("base:\n  '*':\n    - certs\n")
    (roots / "pillar" / "certs.sls").write_text(yaml.safe_dump({"hecate": {"reverse_proxy": {"caddy": {
        "server": "srv0", "default_policies": [],
        "routes": [{"domain": "cert.test", "backend": backend.dial, "service": "cert"}],
    }}}}))
    overrides = {
        "file_client": "local",
        "module_dirs": [REPO],
        "file_roots": {"base": [str(roots / "states")]},
        "pillar_roots": {"base": [str(roots / "pillar")]},
        "hecate": {"connections": {"caddy": {"admin_url": tls_caddy.admin_url, "state_dir": str(roots / "state")}}},
    }
    factory = salt_factories.salt_minion_daemon("caddy-certs", overrides=overrides)
    return Loaders(factory.config.copy(), loaded_base_name=f"{__name__}.loaded")


def issued(mod, domain, timeout=30.0, **kwargs):
    """caddy.certificates once Caddy has obtained the certificate (it does so in the background)."""
    deadline = time.monotonic() + timeout
    while True:
        got = mod.certificates(**kwargs)
        if "issuer" in got["domains"].get(domain, {}) or time.monotonic() > deadline:
            return got
        time.sleep(0.2)


def test_the_certificate_of_each_route_domain_from_a_tls_handshake(loaders, tls_caddy):
    ret = loaders.states.caddy_routes.managed("routes")
    assert ret.result is True and set(ret.changes["added"]) == {"cert"}
    mod = loaders.modules.caddy
    got = issued(mod, "cert.test")
    # the hecate route's domain only (the Caddyfile's site is not hecate's), on srv0's TLS listener
    assert got["server"] == "srv0" and list(got["domains"]) == ["cert.test"]
    assert got["listener"] == f"127.0.0.1:{tls_caddy.https_port}"
    entry = got["domains"]["cert.test"]
    assert entry["issuer"] == "Caddy Local Authority - ECC Intermediate"
    assert entry["names"] == ["cert.test"] and entry["covers_domain"] is True
    assert 0 < entry["days_left"] < 1 and entry["not_after"].endswith("+00:00")
    # a 12-hour certificate is under the default 14 days: flagged
    assert got["warn_days"] == 14 and entry["expiring"] is True and entry["ok"] is False
    assert got["expiring"] == ["cert.test"] and got["ok"] is False
    assert entry["problem"].startswith("expires in 0.")
    fine = mod.certificates(warn_days=0)
    assert fine["ok"] is True and fine["domains"]["cert.test"]["ok"] is True and fine["expiring"] == []


def test_a_tls_listener_without_a_certificate_for_a_domain_fails_it(loaders):
    mod = loaders.modules.caddy
    got = issued(mod, "site.test", domains="site.test,nothing.test", warn_days=0)
    assert got["domains"]["site.test"]["ok"] is True
    missing = got["domains"]["nothing.test"]
    assert missing["ok"] is False and missing["problem"].startswith("no certificate for nothing.test on 127.0.0.1:")
    assert "TLS alert" in missing["problem"] and got["ok"] is False
