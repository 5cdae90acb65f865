"""
caddy.load through Salt's loaders against the real Caddy (the session ``caddy``
fixture): the whole config replaced in one ``POST /load``, forced reloads, a config
Caddy refuses leaving the running one in place.
"""

import copy
import os

import pytest
import requests
from saltfactories.utils.functional import Loaders

from tests import caddy_helpers as ch

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def loaders(salt_factories, caddy, tmp_path_factory):
    state_dir = str(tmp_path_factory.mktemp("caddy-module-state"))
    overrides = {
        "file_client": "local",
        "module_dirs": [REPO],
        "hecate": {"connections": {"caddy": {"admin_url": caddy.admin_url, "state_dir": state_dir}}},
    }
    opts = salt_factories.salt_minion_daemon("caddy-module", overrides=overrides).config.copy()
    return Loaders(opts, loaded_base_name=f"{__name__}.loaded")


@pytest.fixture
def fresh(caddy):
    ch.reset(caddy)
    yield caddy
    ch.reset(caddy)


def test_load_replaces_the_whole_config(loaders, fresh):
    caddy = fresh
    mod = loaders.modules.caddy
    cfg = mod.config()
    new = copy.deepcopy(cfg)
    new["apps"]["http"]["servers"]["hecate"]["routes"] = [
        {"@id": "loaded.route", "match": [{"host": ["loaded.test"]}],
         "handle": [{"handler": "static_response", "body": "loaded"}]}]
    assert mod.load(new) is True
    assert ch.through(caddy, "loaded.test").text == "loaded"
    assert mod.route_get("loaded.route")["@id"] == "loaded.route"
    # the same config again, and forced (Cache-Control: must-revalidate): same result
    assert mod.load(new) is True
    assert mod.load(new, force=True) is True
    assert mod.config() == new
    assert [r["@id"] for r in mod.routes()] == ["loaded.route"]
    # JSON text is accepted as the CLI gives it
    assert mod.load(requests.get(caddy.admin_url + "/config/", timeout=10).text) is True


def test_load_refuses_what_is_not_a_config_and_keeps_the_running_one(loaders, fresh):
    caddy = fresh
    mod = loaders.modules.caddy
    running = mod.config()
    with pytest.raises(Exception, match="config must be a JSON object"):
        mod.load("[1, 2]")
    broken = copy.deepcopy(running)
    broken["apps"]["http"]["servers"]["hecate"]["routes"] = [{"handle": [{"handler": "no_such_handler"}]}]
    with pytest.raises(Exception, match="no_such_handler"):
        mod.load(broken)
    assert mod.config() == running  # Caddy restored the old config
    assert ch.through(caddy, "loaded.test").text == ""  # still serving, without the refused route
