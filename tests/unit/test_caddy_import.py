"""
The pieces of the Caddyfile import and of the new route fields that need no Caddy: the
Caddyfile reader (lines), the importer's helpers, the access-log plan (ownership), the one
write at a common ancestor, redirect/respond validation and the schema. What ``caddy adapt``
makes of a Caddyfile is tested with the real binary in tests/functional/test_caddy_import.py
and tests/functional/test_caddy_route_fields.py.
"""

import pytest

import hecate_caddy_apply
import hecate_caddy_import as imp
import hecate_caddy_logs
import hecate_caddy_responses
import hecate_caddy_routes
import hecate_caddyfile
import hecate_schema
from tests import pillar_files


# -- the Caddyfile reader ----------------------------------------------------------------------------
def test_tokens_follow_caddys_lexer():
    text = (
        "# comment line\n"
        'a.example { # trailing comment\n'
        '\trespond "say \\"hi\\"" 200\n'
        "\theader X-Raw `a \"b\" c`\n"
        "\treverse_proxy 10.0.0.1:80 \\\n"
        "\t\t10.0.0.2:80\n"
        "\trespond <<HTML\n"
        "\t\t<p>x</p>\n"
        "\t\tHTML 200\n"
        "\tredir x#y\n"
        "}\n"
    )
    toks = [(t.text, t.line) for t in hecate_caddyfile.tokens(text)]
    assert toks[:2] == [("a.example", 2), ("{", 2)]
    assert ('say "hi"', 3) in toks and ('a "b" c', 4) in toks
    assert ("10.0.0.2:80", 5) in toks  # an escaped newline continues the line ...
    (site,) = hecate_caddyfile.blocks(text)
    names = [(d.name, d.line, d.args) for d in site.directives]
    assert names[2] == ("reverse_proxy", 5, ["10.0.0.1:80", "10.0.0.2:80"])  # ... of the directive
    assert names[3][:2] == ("respond", 7) and names[3][2][1] == "200"  # a heredoc is one token
    assert names[4] == ("redir", 10, ["x#y"])  # '#' inside a token is no comment


def test_blocks_snippets_imports_and_lines():
    text = (
        "{\n\temail a@b.c\n}\n"
        "(common) {\n\tencode gzip\n\tlog\n}\n"
        "(outer) {\n\timport common\n\theader X-A b\n}\n"
        "a.example, https://b.example:443 {\n\timport outer\n\tlog {\n\t\toutput stderr\n\t}\n\treverse_proxy x:1\n}\n"
        "c.example\n"
    )
    cf = hecate_caddyfile.Caddyfile(text)
    assert [b.kind for b in cf.blocks] == ["global", "snippet", "snippet", "site", "site"]
    assert [d.name for d in cf.options] == ["email"]
    site = cf.site_for(["b.example", "A.example"])
    assert site is not None and site.line == 12
    items = cf.directives(site)
    assert [(d.name, d.line, d.via) for d in items] == [
        ("encode", 5, "common"), ("log", 6, "common"), ("header", 10, "outer"), ("log", 14, None),
        ("reverse_proxy", 17, None)]
    lines = hecate_caddyfile.Lines(cf, site)
    assert [lines.take(("log",)).line, lines.take(("log",)).line, lines.take(("log",))] == [6, 14, None]
    assert lines.sub(items[3], ("output",)).args == ["stderr"]
    assert cf.site_for(["c.example"]) is not None  # a site without braces
    assert hecate_caddyfile.host_of("http://[::1]:8080") == "::1"
    assert hecate_caddyfile.host_of(":443") is None


# -- the importer's helpers --------------------------------------------------------------------------
@pytest.mark.parametrize("ns,text", [(5_000_000_000, "5s"), (90_000_000_000, "1m30s"), (7_200_000_000_000, "2h"),
                                     (250_000_000, "250ms"), (1500, 1500), ("10s", "10s")])
def test_durations_read_back_as_caddyfile_text(ns, text):
    assert imp.fmt_duration(ns) == text
    if isinstance(text, str):
        assert hecate_caddy_routes.parse_duration(text) == hecate_caddy_routes.parse_duration(ns)


def test_a_query_in_a_path_regexp_becomes_a_query_matcher():
    pattern = r"(/(vendor|x)/|\.(sql|bak)$|\?rest_route=|[|(]\?no=)"
    sets, names = imp._split_query({"path_regexp": {"pattern": pattern, "name": "m"}})
    assert names == ["rest_route"]
    assert sets == [{"path_regexp": {"pattern": r"(/(vendor|x)/|\.(sql|bak)$|[|(]\?no=)", "name": "m"}},
                    {"query": {"rest_route": ["*"]}}]
    # nothing to split: kept as it is
    assert imp._split_query({"path_regexp": {"pattern": r"\.php$"}}) == ([{"path_regexp": {"pattern": r"\.php$"}}], [])
    assert imp._split_and({"path": ["/a"], "path_regexp": {"pattern": "b"}}) == [
        {"path": ["/a"]}, {"path_regexp": {"pattern": "b"}}]
    assert imp._split_and({"path": ["/a"], "method": ["POST"]}) == [{"path": ["/a"], "method": ["POST"]}]


@pytest.mark.parametrize("mset,fragment", [
    ({"not": [{"path": ["/x"]}]}, "the not matcher"),
    ({"header": {"X-A": None}}, "absent header"),
    ({"remote_ip": {"ranges": ["10.0.0.0/8"], "forwarded": True}}, "remote_ip with options"),
    ({}, "empty matcher"),
])
def test_matchers_hecate_cannot_hold(mset, fragment):
    with pytest.raises(imp.Unexpressible, match=fragment):
        imp.matcher_spec(mset)


def test_matchers_hecate_holds_round_trip_through_its_builder():
    mset = {"header": {"Cf-Ray": ["*"]}, "method": ["POST"], "query": {"a": ["1", "2"]},
            "remote_ip": {"ranges": ["10.0.0.0/8"]}, "header_regexp": {"User-Agent": {"pattern": "bot"}}}
    errors = []
    assert hecate_caddy_routes._matcher(imp.matcher_spec(mset), "x", errors) == mset and not errors


# -- the access-log plan -------------------------------------------------------------------------------
def routes(*specs):
    return hecate_caddy_routes.build({"default_policies": [], "routes": list(specs)})


WEB = {"domain": "web.test", "service": "web", "backend": "10.0.0.1:80", "access_log": {"file": "/var/log/web.log"}}
SERVER = ("apps", "http", "servers", "hecate")


def test_access_log_plan_creates_converges_and_removes():
    config = {"apps": {"http": {"servers": {"hecate": {"routes": []}}}}}
    edits, changes = hecate_caddy_logs.plan(config, "hecate", routes(WEB))
    assert edits[SERVER + ("logs",)] == {"logger_names": {"web.test": ["hecate.web.0"]}, "skip_unmapped_hosts": True}
    assert edits[("logging",)] == {"logs": {
        "hecate.web.0": {"writer": {"filename": "/var/log/web.log", "output": "file"},
                         "include": ["http.log.access.hecate.web.0"]},
        "default": {"exclude": ["http.log.access.hecate.web.0"]}}}
    assert list(changes) == ["access_logs"]
    _, _, applied = hecate_caddy_apply.one_write(config, edits)
    assert hecate_caddy_logs.plan(applied, "hecate", routes(WEB)) == ({}, {})
    edits, changes = hecate_caddy_logs.plan(applied, "hecate", routes(dict(WEB, access_log=None)))
    assert edits == {SERVER + ("logs",): None, ("logging",): None}  # back to nothing at all
    assert changes["access_logs"]["hecate.web.0"]["new"] is None


def test_access_log_plan_touches_only_hecates_names():
    config = {
        "logging": {"logs": {"default": {"level": "WARN", "exclude": ["http.log.access.ops"]},
                             "ops": {"include": ["http.log.access.ops"]},
                             "hecate.gone.0": {"include": ["http.log.access.hecate.gone.0"]}}},
        "apps": {"http": {"servers": {"hecate": {"routes": [], "logs": {
            "logger_names": {"ops.test": "ops", "web.test": ["ops"], "gone.test": ["hecate.gone.0"]},
            "should_log_credentials": True}}}}},
    }
    edits, _ = hecate_caddy_logs.plan(config, "hecate", routes(WEB))
    logs = edits[SERVER + ("logs",)]
    assert logs == {"logger_names": {"ops.test": "ops", "web.test": ["ops", "hecate.web.0"]},
                    "should_log_credentials": True}  # theirs as they were (a string too); no skip added
    logging_ = edits[("logging",)]["logs"]
    assert set(logging_) == {"default", "ops", "hecate.web.0"}  # hecate's old logger of gone.test removed
    assert logging_["default"] == {"level": "WARN", "exclude": ["http.log.access.ops", "http.log.access.hecate.web.0"]}


def test_access_log_entries_are_checked_by_key():
    errors = []
    spec = {"access_log": [{"file": "rel.log"}, {"output": "syslog"}, {"format": "logfmt", "level": "trace"},
                           {"file": "/a", "output": "stderr"}, {"roll": True}, "x"]}
    hecate_caddy_logs.loggers(spec, "web", "r", errors)
    assert [path for path, _ in errors] == ["r:access_log:0:file", "r:access_log:1:output", "r:access_log:2:format",
                                            "r:access_log:2:level", "r:access_log:3:output", "r:access_log:4:roll",
                                            "r:access_log:5"]
    assert hecate_caddy_logs.loggers({"access_log": True}, "web", "r", errors)[0] == (
        "hecate.web.0", {"include": ["http.log.access.hecate.web.0"]})


# -- one write for several places -------------------------------------------------------------------------
def test_one_write_goes_to_the_deepest_common_existing_ancestor():
    config = {"admin": {"listen": ":2019"}, "apps": {"http": {"servers": {"s": {"routes": [1], "listen": [":80"]}}}}}
    path, before, value = hecate_caddy_apply.one_write(config, {SERVER[:3] + ("s", "routes"): [2]})
    assert (path, before, value) == (("apps", "http", "servers", "s", "routes"), [1], [2])
    path, _, value = hecate_caddy_apply.one_write(config, {("apps", "http", "servers", "s", "routes"): [2],
                                                           ("apps", "http", "servers", "s", "logs"): {"a": 1}})
    assert path == ("apps", "http", "servers", "s") and value == {"routes": [2], "listen": [":80"], "logs": {"a": 1}}
    path, before, value = hecate_caddy_apply.one_write(config, {("apps", "http", "servers", "s", "routes"): [2],
                                                                ("logging",): {"logs": {}}})
    assert path == () and before is config and value["logging"] == {"logs": {}} and value["admin"] == config["admin"]
    path, _, value = hecate_caddy_apply.one_write(config, {("apps", "http", "servers", "s", "logs"): None})
    assert path == ("apps", "http", "servers", "s") and "logs" not in value
    assert config["apps"]["http"]["servers"]["s"] == {"routes": [1], "listen": [":80"]}  # not changed in place


# -- redirect and respond ------------------------------------------------------------------------------------
def test_shorthands_expand_as_the_caddyfile_adapter_does():
    assert hecate_caddy_responses.expand_shorthands("https://{host}{uri}?q={query.a}&h={header.X-Y}") == (
        "https://{http.request.host}{http.request.uri}?q={http.request.uri.query.a}&h={http.request.header.X-Y}")
    assert hecate_caddy_responses.expand_shorthands("{http.request.uri} {unknown}") == "{http.request.uri} {unknown}"


@pytest.mark.parametrize("route,fragments", [
    ({"redirect": {"status": 301}}, ["routes:0:redirect:to", "required key is missing"]),
    ({"redirect": [{"to": "/a", "path": "old"}], "backend": "10.0.0.1:80"},
     ["routes:0:redirect:0:path", "starting with / or *"]),
    ({"redirect": {"to": "/a", "match": []}, "backend": "10.0.0.1:80"}, ["routes:0:redirect:match", "matches nothing"]),
    ({"respond": {"abort": True, "status": 403}}, ["routes:0:respond:abort", "drop ['status']"]),
    ({"respond": {"status": 99}}, ["routes:0:respond:status", "not an HTTP status"]),
    ({"respond": {"body": 5}}, ["routes:0:respond:body", "must be a string"]),
    ({"respond": {"bogus": 1}}, ["routes:0:respond:bogus", "unknown key"]),
    ({"redirect": {"to": "/x"}, "respond": {"path": "/h", "body": "ok"}},
     ["routes:0:respond", "never used: the redirect answers every request"]),
    ({"respond": {"body": "x"}, "load_balancing": {"policy": "first"}},
     ["routes:0:load_balancing", "only applies to a route with a backend"]),
    ({"backend": "10.0.0.1:80", "response_header_timeout": "0s"}, ["routes:0:response_header_timeout", "more than 0"]),
    ({"respond": {"path": "/health", "body": "ok"}}, ["routes:0:backend", "required key is missing"]),
])
def test_bad_answer_fields_name_the_key(route, fragments):
    with pytest.raises(hecate_caddy_routes.RouteDataError) as err:
        hecate_caddy_routes.build({"routes": [dict(route, domain="a.test", service="a")]})
    for fragment in fragments:
        assert fragment in str(err.value)


def test_a_route_that_only_answers_needs_no_backend_and_reports_its_answer():
    (route,) = routes({"domain": "old.test", "redirect": {"to": "https://new.test{uri}", "status": 308}})
    assert hecate_caddy_routes.summary(route.json) == {
        "domains": ["old.test"], "upstreams": [],
        "redirect": {"to": "https://new.test{http.request.uri}", "status": 308}}
    view = hecate_caddy_routes.describe(route.json)
    assert view["redirect"] == [{"to": ["https://new.test{http.request.uri}"], "status": 308,
                                 "match": "(all requests)"}]
    other = routes({"domain": "old.test", "redirect": {"to": "https://other.test{uri}", "status": 308}})[0]
    assert "redirect" in str(hecate_caddy_routes.route_diff(route.json, other.json))


# -- the schema ---------------------------------------------------------------------------------------------
def lab_pillar():
    pillar = pillar_files.render("hecate.sls")
    pillar["hecate"]["global"]["environment"] = "lab"
    return pillar


def test_schema_accepts_the_new_fields():
    pillar = lab_pillar()
    pillar["hecate"]["reverse_proxy"]["caddy"]["routes"] += [
        {"domain": "www.cybermonkey.dev", "redirect": {"to": "https://cybermonkey.dev{uri}", "status": "permanent"}},
        {"domain": "status.cybermonkey.dev", "respond": [{"path": "/health", "body": "OK"}, {"status": 404}],
         "access_log": True},
        {"domain": "api.cybermonkey.dev", "backend": "10.0.0.1:80", "dial_timeout": "5s",
         "response_header_timeout": 30_000_000_000,
         "respond": {"match": [{"paths": ["/x"]}, {"methods": ["TRACE"]}], "abort": True},
         "access_log": [{"file": "/var/log/caddy/api.log", "format": "json", "level": "DEBUG"}, {"output": "stdout"}]},
    ]
    assert hecate_schema.validate(pillar, "lab") == []


def test_schema_errors_of_the_new_fields_name_the_key():
    pillar = lab_pillar()
    pillar["hecate"]["reverse_proxy"]["caddy"]["routes"] += [
        {"domain": "www.cybermonkey.dev", "redirect": {"to": "/x", "status": 200}},
        {"domain": "api.cybermonkey.dev", "backend": "10.0.0.1:80", "access_log": {"level": "verbose"}},
    ]
    errors = "\n".join(hecate_schema.validate(pillar, "lab"))
    assert "hecate:reverse_proxy:caddy:routes:11:redirect:status" in errors
    assert "hecate:reverse_proxy:caddy:routes:12:access_log:level" in errors


def test_every_new_schema_key_has_a_description():
    import hecate_caddy_schema  # pylint: disable=import-outside-toplevel

    def walk(node, path):
        if not isinstance(node, dict):
            return
        for key, sub in (node.get("properties") or {}).items():
            yield f"{path}:{key}", sub
            yield from walk(sub, f"{path}:{key}")
        for sub in node.get("oneOf") or []:
            yield from walk(sub, path)
        yield from walk(node.get("items"), path)

    new = ("redirect", "respond", "dial_timeout", "response_header_timeout", "access_log")
    route = hecate_caddy_schema.CADDY_SCHEMA["properties"]["routes"]["items"]
    missing = [path for key in new for path, sub in [(key, route["properties"][key])]
               + list(walk(route["properties"][key], key))
               if not sub.get("description") and ":match:" not in path]  # the policy matcher's keys are not new
    assert not missing, missing
