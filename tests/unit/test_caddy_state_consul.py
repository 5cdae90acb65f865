"""
caddy_routes.managed with a Consul upstream, its loader dunders patched: the route's
upstreams come from ``__salt__["hecate_consul.service_addresses"](name, passing=True)``
(built by the Consul module, not on this branch). Real Caddy.
"""

import importlib.util
import os

import pytest

import hecate_caddy_routes
from tests import caddy_helpers as ch

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def state_mod():
    spec = importlib.util.spec_from_file_location(
        "caddy_routes_under_test", os.path.join(REPO, "_states", "caddy_routes.py")
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def backend():
    b = ch.Backend("chat").start()
    yield b
    b.stop()


@pytest.fixture
def run(state_mod, caddy, tmp_path):
    ch.reset(caddy)
    pillar = {
        "hecate": {
            "reverse_proxy": {
                "caddy": {
                    "server": "hecate",
                    "routes": [
                        {
                            "domain": "chat.test",
                            "service": "chat",
                            "upstream": {"consul_service": "oauth2-proxy"},
                            "policies": [],
                        }
                    ],
                }
            }
        }
    }
    opts = {"hecate": {"connections": {"caddy": {"admin_url": caddy.admin_url, "state_dir": str(tmp_path / "s")}}}}

    def call(salt_funcs, test):
        state_mod.__salt__ = salt_funcs
        state_mod.__pillar__ = pillar
        state_mod.__opts__ = dict(opts, test=test)
        state_mod.__context__ = {}  # a fresh state run
        return state_mod.managed("caddy routes")

    return call


@pytest.mark.parametrize("test", [True, False])
def test_consul_service_becomes_the_upstreams(run, caddy, backend, test):
    calls = []

    def service_addresses(name, passing=False):
        calls.append((name, passing))
        return [backend.dial]

    raw, w0 = ch.raw_config(caddy), ch.writes(caddy)
    ret = run({"hecate_consul.service_addresses": service_addresses}, test)
    assert calls == [("oauth2-proxy", True)]
    assert ret["changes"] == {"added": {"chat": {"domains": ["chat.test"], "upstreams": [backend.dial]}}}
    if test:
        assert ret["result"] is None
        assert ch.raw_config(caddy) == raw and ch.writes(caddy) == w0
    else:
        assert ret["result"] is True, ret["comment"]
        assert ch.through(caddy, "chat.test").json()["backend"] == "chat"
        # same instances -> converged, no write
        w1 = ch.writes(caddy)
        assert run({"hecate_consul.service_addresses": service_addresses}, False)["changes"] == {}
        assert ch.writes(caddy) == w1


def test_instances_moving_is_a_change(run, caddy, backend):
    assert run({"hecate_consul.service_addresses": lambda name, passing=False: [backend.dial]}, False)["result"]
    moved = run({"hecate_consul.service_addresses": lambda name, passing=False: ["10.9.9.9:4180", backend.dial]}, True)
    assert moved["result"] is None
    assert moved["changes"] == {"changed": {"chat": {"upstreams": {"added": ["10.9.9.9:4180"], "removed": []}}}}


NO_INSTANCES = {"hecate_consul.service_addresses": lambda name, passing=False: []}


@pytest.mark.parametrize(
    "salt_funcs,fragment,test",
    [
        ({}, "Consul module not available", True),
        ({}, "Consul module not available", False),
        (NO_INSTANCES, "Consul service 'oauth2-proxy' has no passing instances", False),
    ],
)
def test_consul_failures_fail_the_route_and_write_nothing(run, caddy, salt_funcs, fragment, test):
    raw, w0 = ch.raw_config(caddy), ch.writes(caddy)
    ret = run(salt_funcs, test)
    assert ret["result"] is False and ret["changes"] == {}
    assert "route 'chat'" in ret["comment"] and fragment in ret["comment"]
    assert "hecate:reverse_proxy:caddy:routes:0:upstream:consul_service" in ret["comment"]
    assert ch.raw_config(caddy) == raw and ch.writes(caddy) == w0


def test_preview_before_the_service_runs_shows_a_pending_upstream(run, caddy):
    """An orchestration previews the Caddy step before Nomad has started the service:
    the preview names the service it will resolve instead of failing; nothing is written."""
    raw, w0 = ch.raw_config(caddy), ch.writes(caddy)
    ret = run(NO_INSTANCES, True)
    assert ret["result"] is None, ret["comment"]
    pending = hecate_caddy_routes.PENDING_UPSTREAM.format("oauth2-proxy")
    assert ret["changes"] == {"added": {"chat": {"domains": ["chat.test"], "upstreams": [pending]}}}
    assert ch.raw_config(caddy) == raw and ch.writes(caddy) == w0
