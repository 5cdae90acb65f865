"""
The route fields a migrated Caddyfile needs: ``redirect`` (redir), ``respond`` (respond,
abort), the transport timeouts (``dial_timeout``, ``response_header_timeout``) and
``access_log`` (a site's log).

Each is checked twice against the real Caddy: hecate builds the JSON that ``caddy adapt``
(the real binary) makes of the same Caddyfile, and ``caddy_routes.managed`` previews, applies
in one guarded write, converges, and serves it (requests through Caddy, the access log file).
"""

import json
import os
import shutil
import sys

import pytest
import requests
import yaml
from saltfactories.utils.functional import Loaders

import hecate_caddy_logs
import hecate_caddy_routes
from tests import caddy_helpers as ch

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SERVER = "/config/apps/http/servers/hecate"


# -- hecate's JSON is caddy adapt's ---------------------------------------------------------------
def built(route, data=None):
    """The route hecate builds (no policies), without its @id: what a Caddyfile site block adapts to."""
    (out,) = hecate_caddy_routes.build(dict(data or {}, routes=[dict(route, policies=[])]))
    return ch.as_adapted(out.json)


def adapted(body, workdir, host="site.example"):
    (route,) = ch.adapt(f"{host} {{\n{body}\n}}\n", str(workdir))
    return route


SAME_AS_ADAPT = [
    ("redir-site", "redir https://www.site.example{uri} permanent",
     {"redirect": {"to": "https://www.site.example{uri}", "status": "permanent"}}),
    ("redir-default-302", "redir /old /new\nreverse_proxy 10.0.0.1:80",
     {"redirect": {"path": "/old", "to": "/new"}, "backend": "10.0.0.1:80"}),
    ("redir-308", "redir * https://x.example{path}?from={host} 308",
     {"redirect": {"to": "https://x.example{path}?from={host}", "status": 308}}),
    ("redir-temporary", "redir https://x.example temporary", {"redirect": {"to": "https://x.example"}}),
    ("respond-health", 'respond /health "OK" 200\nreverse_proxy 10.0.0.1:8080',
     {"respond": {"path": "/health", "body": "OK", "status": 200}, "backend": "10.0.0.1:8080"}),
    ("respond-status-only", "respond 204", {"respond": {"status": 204}}),
    ("respond-body-only", 'respond "hello {remote_host} on {host}"',
     {"respond": {"body": "hello {remote_host} on {host}"}}),
    ("respond-close", 'respond "gone" 410 {\n\tclose\n}', {"respond": {"body": "gone", "status": 410, "close": True}}),
    ("abort-matcher", "@bad header User-Agent BadBot*\nabort @bad\nreverse_proxy 10.0.0.1:80",
     {"respond": {"match": {"headers": {"User-Agent": "BadBot*"}}, "abort": True}, "backend": "10.0.0.1:80"}),
    ("respond-named-matcher", "@private {\n\tpath /private/*\n\tmethod POST\n}\nrespond @private 403\n"
     "reverse_proxy 10.0.0.1:80",
     {"respond": {"match": {"paths": ["/private/*"], "methods": ["POST"]}, "status": 403}, "backend": "10.0.0.1:80"}),
    ("timeouts", "reverse_proxy 10.0.0.1:80 {\n\ttransport http {\n\t\tdial_timeout 5s\n"
     "\t\tresponse_header_timeout 1m30s\n\t}\n}",
     {"backend": "10.0.0.1:80", "dial_timeout": "5s", "response_header_timeout": "1m30s"}),
    ("timeouts-https-skip-verify", "reverse_proxy https://10.0.0.2 {\n\ttransport http {\n\t\ttls\n"
     "\t\ttls_insecure_skip_verify\n\t\tdial_timeout 2s\n\t}\n}",
     {"backend": "https://10.0.0.2", "tls_skip_verify": True, "dial_timeout": 2_000_000_000}),
    ("all-in-order", 'reverse_proxy 10.0.0.1:80\nrespond /health "up"\nredir /old /new 301',
     {"backend": "10.0.0.1:80", "respond": {"path": "/health", "body": "up"},
      "redirect": {"path": "/old", "to": "/new", "status": 301}}),
]


@pytest.mark.parametrize("name,caddyfile,route", SAME_AS_ADAPT, ids=[c[0] for c in SAME_AS_ADAPT])
def test_route_fields_build_what_caddy_adapt_makes(tmp_path, name, caddyfile, route):
    assert built(dict(route, domain="site.example")) == adapted(caddyfile, tmp_path)


def test_access_log_is_what_caddy_adapt_makes_of_a_site_log(tmp_path):
    caddyfile = (
        "site.example {\n\tlog {\n\t\toutput file /var/log/caddy/site.log\n\t\tformat json\n\t\tlevel DEBUG\n\t}\n"
        "\tlog {\n\t\toutput stderr\n\t\tformat console\n\t}\n\treverse_proxy 10.0.0.1:80\n}\n"
        "other.example {\n\treverse_proxy 10.0.0.2:80\n}\n"
    )
    config = ch.lab_caddy.adapt(caddyfile, str(tmp_path))
    (server,) = config["apps"]["http"]["servers"].values()
    adapted_logs = config["logging"]["logs"]
    desired = hecate_caddy_routes.build({"routes": [
        {"domain": "site.example", "backend": "10.0.0.1:80", "access_log": [
            {"file": "/var/log/caddy/site.log", "format": "json", "level": "DEBUG"},
            {"output": "stderr", "format": "console"}]},
        {"domain": "other.example", "backend": "10.0.0.2:80"},
    ]})
    live = {"apps": {"http": {"servers": {"srv0": {"listen": [":443"], "routes": []}}}}}
    edits, changes = hecate_caddy_logs.plan(live, "srv0", desired)
    logs, logging_ = edits[("apps", "http", "servers", "srv0", "logs")], edits[("logging",)]
    # the same hosts mapped to the same loggers, under hecate's names
    adapt_names = server["logs"]["logger_names"]["site.example"]
    ours = logs["logger_names"]["site.example"]
    assert ours == ["hecate.site-example.0", "hecate.site-example.1"] and len(adapt_names) == 2
    rename = dict(zip(adapt_names, ours))
    for theirs, mine in rename.items():
        want = dict(adapted_logs[theirs], include=[f"http.log.access.{mine}"])
        assert logging_["logs"][mine] == want
    # the default log leaves those entries out, as the adapter makes it
    assert sorted(logging_["logs"]["default"]["exclude"]) == sorted(
        e.replace(t, m) for e in adapted_logs["default"]["exclude"] for t, m in rename.items() if e.endswith(t))
    # a host without a log logs nothing: the adapter lists it in skip_hosts; hecate skips every
    # host it did not map (the server's other, not hecate's, hosts logged nothing before either)
    assert server["logs"]["skip_hosts"] == ["other.example"]
    assert logs["skip_unmapped_hosts"] is True and "other.example" not in logs["logger_names"]
    assert set(changes["access_logs"]) == set(ours)


# -- through the state, on the real Caddy --------------------------------------------------------
@pytest.fixture(scope="module")
def backend():
    out = ch.Backend("a").start()
    yield out
    out.stop()


@pytest.fixture(scope="module")
def state_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("caddy-fields-state") / "state")


@pytest.fixture(scope="module")
def log_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("caddy-fields-logs"))


def fields_pillar(backend, log_dir):
    return {
        "server": "hecate",
        "default_policies": [],
        "routes": [
            {"domain": "www.fields.test", "service": "www", "redirect": {"to": "https://fields.test{uri}",
                                                                        "status": "permanent"}},
            {"domain": "fields.test", "service": "app", "backend": backend.dial,
             "respond": [{"path": "/health", "body": "OK"}, {"path": "/maintenance", "status": 503, "body": "later"}],
             "dial_timeout": "2s", "response_header_timeout": "10s",
             "access_log": {"file": os.path.join(log_dir, "app.log"), "format": "json", "level": "INFO"}},
        ],
    }


@pytest.fixture(scope="module")
def loaders(salt_factories, caddy, backend, log_dir, state_dir, tmp_path_factory):
    roots = tmp_path_factory.mktemp("caddy-fields")
    (roots / "states").mkdir()
    (roots / "pillar").mkdir()
    (roots / "states" / "caddytest.sls").write_text("hecate caddy routes:\n  caddy_routes.managed: []\n")
    (roots / "pillar" / "top.sls").write_text("base:\n  '*':\n    - caddytest\n")
    (roots / "pillar" / "caddytest.sls").write_text(
        yaml.safe_dump({"hecate": {"reverse_proxy": {"caddy": fields_pillar(backend, log_dir)}}})
    )
    overrides = {
        "file_client": "local",
        "module_dirs": [REPO],
        "file_roots": {"base": [str(roots / "states")]},
        "pillar_roots": {"base": [str(roots / "pillar")]},
        "hecate": {"connections": {"caddy": {"admin_url": caddy.admin_url, "state_dir": state_dir}}},
    }
    factory = salt_factories.salt_minion_daemon("caddy-fields", overrides=overrides)
    return Loaders(factory.config.copy(), loaded_base_name=f"{__name__}.loaded")


@pytest.fixture
def fresh(caddy, state_dir, log_dir):
    ch.reset(caddy)
    shutil.rmtree(state_dir, ignore_errors=True)
    for name in os.listdir(log_dir):
        os.unlink(os.path.join(log_dir, name))
    return caddy


def managed(loaders, caddy_pillar=None, test=False):
    kwargs = {"test": test}
    if caddy_pillar is not None:
        kwargs["pillar"] = {"hecate": {"reverse_proxy": {"caddy": caddy_pillar}}}
    (result,) = list(loaders.modules.state.sls("caddytest", **kwargs))
    return result


def config(caddy):
    return requests.get(caddy.admin_url + "/config/", timeout=10).json()


def test_preview_apply_converge_and_serve(loaders, fresh, backend, log_dir):
    caddy = fresh
    raw0, w0 = ch.raw_config(caddy), ch.writes(caddy)
    preview = managed(loaders, test=True)
    assert preview.result is None, preview.comment
    assert preview.changes["added"]["www"] == {
        "domains": ["www.fields.test"], "upstreams": [],
        "redirect": {"to": "https://fields.test{http.request.uri}", "status": 301}}
    assert preview.changes["access_logs"] == {"hecate.app.0": {"old": None, "new": {
        "domains": ["fields.test"], "writer": {"filename": os.path.join(log_dir, "app.log"), "output": "file"},
        "encoder": {"format": "json"}, "level": "INFO"}}}
    assert "1 access log(s)" in preview.comment
    assert ch.raw_config(caddy) == raw0 and ch.writes(caddy) == w0

    applied = managed(loaders)
    assert applied.result is True, applied.comment
    assert applied.changes == preview.changes
    # routes, the server's logs and the logging app in ONE guarded write: their common ancestor
    assert caddy.admin_writes()[w0:] == [("PATCH", "/config/")]
    again = managed(loaders)
    assert again.result is True and again.changes == {}, again.changes
    assert ch.writes(caddy) == w0 + 1

    resp = ch.through(caddy, "www.fields.test", "/a/b?c=1")
    assert resp.status_code == 301 and resp.headers["Location"] == "https://fields.test/a/b?c=1"
    health = ch.through(caddy, "fields.test", "/health")
    assert (health.status_code, health.text) == (200, "OK")
    later = ch.through(caddy, "fields.test", "/maintenance")
    assert (later.status_code, later.text) == (503, "later")
    seen = len(backend.seen)
    assert ch.through(caddy, "fields.test", "/hello").json()["path"] == "/hello"
    assert len(backend.seen) == seen + 1  # only /hello reached the backend
    (proxy,) = [h for r in requests.get(caddy.admin_url + SERVER + "/routes", timeout=10).json()
                if r["@id"] == "hecate.route.app" for s in r["handle"][0]["routes"] for h in s["handle"]
                if h["handler"] == "reverse_proxy"]
    assert proxy["transport"] == {"protocol": "http", "dial_timeout": 2_000_000_000,
                                  "response_header_timeout": 10_000_000_000}
    # the access log has this site's requests, and only them
    log_file = os.path.join(log_dir, "app.log")

    def logged():
        if not os.path.exists(log_file):
            return []
        with open(log_file, encoding="utf-8") as fh:
            return [json.loads(line) for line in fh if line.strip()]

    assert ch.wait_for(lambda: any(e["request"]["uri"] == "/hello" for e in logged()))
    entries = logged()
    assert {e["request"]["host"] for e in entries} == {"fields.test"}
    assert {e["logger"] for e in entries} == {"http.log.access.hecate.app.0"}


def test_foreign_logging_is_kept_and_removal_restores_the_config(loaders, fresh, backend, log_dir):
    caddy = fresh
    # someone else's logger and host mapping, and their default logger settings
    requests.put(caddy.admin_url + "/config/logging/logs/ops", json={"level": "WARN"}, timeout=10).raise_for_status()
    requests.put(caddy.admin_url + SERVER + "/logs", json={"logger_names": {"ops.test": ["ops"]}},
                 timeout=10).raise_for_status()
    before = config(caddy)
    assert managed(loaders).result is True
    live = config(caddy)
    assert live["logging"]["logs"]["ops"] == {"level": "WARN"}
    assert live["apps"]["http"]["servers"]["hecate"]["logs"] == {
        "logger_names": {"ops.test": ["ops"], "fields.test": ["hecate.app.0"]}}  # their logs: no skip added
    assert live["logging"]["logs"]["default"] == {"level": "INFO", "exclude": ["http.log.access.hecate.app.0"]}

    pillar = fields_pillar(backend, log_dir)
    pillar["routes"] = pillar["routes"][:1]  # the route with the access log goes
    ret = managed(loaders, pillar)
    assert ret.result is True, ret.comment
    assert set(ret.changes["removed"]) == {"app"} and ret.changes["access_logs"]["hecate.app.0"]["new"] is None
    live = config(caddy)
    assert live["logging"] == before["logging"]
    assert live["apps"]["http"]["servers"]["hecate"]["logs"] == before["apps"]["http"]["servers"]["hecate"]["logs"]
    assert managed(loaders, pillar, test=True).changes == {}


def test_rollback_of_an_access_log_write_restores_exactly(loaders, fresh):
    caddy = fresh
    raw = ch.raw_config(caddy)
    assert managed(loaders).result is True
    w0 = ch.writes(caddy)
    out = loaders.modules.caddy.rollback()
    assert len(out["restored"]) == 1, out
    assert ch.raw_config(caddy) == raw
    assert caddy.admin_writes()[w0:] == [("PATCH", "/config/")]


def test_an_outside_change_during_the_write_is_kept(loaders, fresh, monkeypatch):
    caddy = fresh
    client = sys.modules["hecate_caddy_client"]
    original = client.CaddyAdmin.get
    made = []

    def get(self, *parts, **kwargs):
        value = original(self, *parts, **kwargs)
        if not parts and not made:
            requests.put(caddy.admin_url + "/config/logging/logs/ops", json={"level": "ERROR"},
                         timeout=10).raise_for_status()
            made.append(True)
        return value

    monkeypatch.setattr(client.CaddyAdmin, "get", get)
    w0 = ch.writes(caddy)
    ret = managed(loaders)
    assert ret.result is True and "after 1 retries" in ret.comment, ret.comment
    assert caddy.admin_writes()[w0:] == [("PUT", "/config/logging/logs/ops"), ("PATCH", "/config/"),
                                         ("PATCH", "/config/")]  # the first refused (412), then re-read
    assert config(caddy)["logging"]["logs"]["ops"] == {"level": "ERROR"}


@pytest.mark.parametrize(
    "mutate,fragments",
    [
        (lambda p: p["routes"][0]["redirect"].update(status=200),
         ["routes:0:redirect:status", "route 'www'", "not a 3xx status"]),
        (lambda p: p["routes"][0].update(backend="127.0.0.1:9"),
         ["routes:0:backend", "never used: its redirect answers every request"]),
        (lambda p: p["routes"][1]["respond"].append({"body": "x"}) or p["routes"][1]["respond"].append({"body": "y"}),
         ["routes:1:respond", "entry 2 answers every request: the entries after it never run"]),
        (lambda p: p["routes"][1].update(dial_timeout="soon"), ["routes:1:dial_timeout", "not a duration"]),
        (lambda p: p["routes"][1]["access_log"].update(file="app.log"),
         ["routes:1:access_log:file", "must be an absolute path"]),
        (lambda p: p["routes"][1]["respond"][0].update(match={"paths": ["/x"]}),
         ["routes:1:respond:0:path", "set either path or match"]),
    ],
)
def test_bad_field_data_names_the_key_and_writes_nothing(loaders, fresh, backend, log_dir, mutate, fragments):
    caddy = fresh
    raw, w0 = ch.raw_config(caddy), ch.writes(caddy)
    pillar = fields_pillar(backend, log_dir)
    mutate(pillar)
    ret = managed(loaders, pillar, test=False)
    assert ret.result is False and ret.changes == {}
    for fragment in fragments:
        assert fragment in ret.comment, ret.comment
    assert ch.raw_config(caddy) == raw and ch.writes(caddy) == w0


def test_adhoc_route_takes_the_answer_fields_but_not_access_logs(loaders, fresh):
    caddy = fresh
    ret = loaders.states.caddy_route.present(name="status", domain="status.test", policies=[],
                                             respond={"body": "fine"})
    assert ret.result is True and "added" in ret.changes, ret.comment
    assert ch.through(caddy, "status.test", "/").text == "fine"
    refused = loaders.states.caddy_route.present(name="status", domain="status.test", policies=[],
                                                 respond={"body": "fine"}, access_log=True)
    assert refused.result is False and "access_log is for pillar routes" in refused.comment
