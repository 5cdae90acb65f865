"""
The Caddyfile importer (``hecate_caddy_import``) on what the real ``caddy adapt`` makes of
Caddyfiles: the user's (tests/fixtures/user-Caddyfile) gives the ten sites of the lab's
pillar (lab/pillar/hecate.sls, the shipped pillar's copy), and for the route fields hecate has,
import-then-build gives back the routes Caddy's adapter made. What cannot be expressed, or is
deliberately not kept, is listed with its Caddyfile line.
"""

import os

import jsonschema
import pytest
import yaml

import hecate_caddy_import as imp
import hecate_caddy_routes
import hecate_caddy_schema
import hecate_schema
from tests import caddy_helpers as ch
from tests import pillar_files

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CADDYFILE = os.path.join(REPO, "tests", "fixtures", "user-Caddyfile")


def run(text, workdir):
    config = ch.lab_caddy.adapt(text, str(workdir))
    return imp.convert(config, text)


def line_of(text, fragment, start=1):
    """The (1-based) number of the first line at or after ``start`` that contains ``fragment``."""
    for number, line in enumerate(text.splitlines(), 1):
        if number >= start and fragment in line:
            return number
    raise AssertionError(f"{fragment!r} not in the Caddyfile")


def by_domain(caddy_block):
    """
    Route JSON (without @id) per domain, as hecate builds it from a pillar block; durations
    by value (hecate writes a pillar's "10s" as given, caddy adapt as nanoseconds: the same
    to Caddy and to hecate's diff).
    """
    out = {}
    for route in hecate_caddy_routes.build(caddy_block, resolve_service=None):
        out[tuple(route.domains)] = hecate_caddy_routes.normalise(ch.as_adapted(route.json))
    return out


def _unnamed(value):
    """Without the names the adapter gives regexps of a named matcher (only for {re.<name>.n} placeholders)."""
    if isinstance(value, dict):
        return {k: _unnamed(v) for k, v in value.items()
                if not (k == "name" and "pattern" in value)}
    if isinstance(value, list):
        return [_unnamed(v) for v in value]
    return value


def adapted_by_domain(text, workdir):
    return {tuple(r["match"][0]["host"]): hecate_caddy_routes.normalise(_unnamed(r))
            for r in ch.adapt(text, str(workdir))}


def pillar_of(result):
    """The importer's YAML, parsed, as ``hecate:reverse_proxy:caddy``."""
    return yaml.safe_load(imp.render(result))["hecate"]["reverse_proxy"]["caddy"]


def assert_valid(block):
    jsonschema.Draft202012Validator(hecate_caddy_schema.CADDY_SCHEMA).validate(block)
    hecate_caddy_routes.build(block)


# -- the user's Caddyfile ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def user(tmp_path_factory):
    with open(CADDYFILE, encoding="utf-8") as fh:
        text = fh.read()
    return text, run(text, tmp_path_factory.mktemp("import-user"))


def test_the_user_caddyfile_gives_the_ten_sites_of_the_pillar(user):
    _, result = user
    imported = pillar_of(result)
    assert_valid(imported)
    lab = pillar_files.render("hecate.sls")["hecate"]["reverse_proxy"]["caddy"]
    ours = by_domain(pillar_files.on_the_edge(imported))
    theirs = {k: v for k, v in by_domain(dict(lab, routes=[r for r in lab["routes"] if "backend" in r])).items()}
    assert len(ours) == 10 and set(ours) == set(theirs)
    for domains, route in ours.items():
        assert route == theirs[domains], domains  # backends, TLS, the security and common policies
    assert imported["default_policies"] == lab["default_policies"] == ["security", "common"]
    assert "policies" not in imported  # the snippets ARE the built-in policies


def test_the_user_caddyfile_keeps_its_access_logs(user):
    _, result = user
    logs = {r["domain"]: r["access_log"] for r in pillar_of(result)["routes"]}
    common = {"format": "json", "level": "INFO"}  # the snippet's log: every site, on stderr
    assert logs["hera.cybermonkey.dev"] == [common, {"file": "/var/log/caddy/hera-auth.log", "format": "json",
                                                     "level": "DEBUG"}]
    assert logs["delphi.cybermonkey.dev"] == [common, {"file": "/var/log/caddy/delphi-wazuh.log",
                                                       "format": "json", "level": "DEBUG"}]
    assert all(logs[d] == common for d in logs if d not in ("hera.cybermonkey.dev", "delphi.cybermonkey.dev"))


def test_the_user_caddyfile_corrections_are_reported_with_their_lines(user):
    text, result = user
    lines = {(c["line"], c["directive"].split()[0]) for c in result["corrected"]}
    scanners = line_of(text, "@scanners {")
    agents = line_of(text, "@suspicious_agents {")
    assert lines == {
        (scanners, "@scanners"),                                   # path + path_regexp: Caddy ANDs them
        (line_of(text, "path_regexp", scanners), "path_regexp"),   # \?rest_route= never matched a path
        (agents, "@suspicious_agents"),                            # header + header_regexp: ANDed
        (line_of(text, "respond @suspicious_agents 444"), "respond"),  # 444 is a status, not a close
        (line_of(text, "header {"), "header"),                     # not deferred in the Caddyfile
    }
    text_of = {c["directive"].split()[0]: c["correction"] for c in result["corrected"]}
    assert "ANDs its lines (path and path_regexp)" in text_of["@scanners"]
    assert "query matcher (rest_route)" in text_of["path_regexp"]
    assert "abort" in text_of["respond"]
    # the one thing left out: the global log (Caddy's default logger)
    assert result["unsupported"] == [{"line": line_of(text, "log {"), "directive": "log {",
                                      "why": result["unsupported"][0]["why"]}]
    assert "default logger" in result["unsupported"][0]["why"]


def test_the_yaml_names_each_route_s_caddyfile_line(user):
    text, result = user
    out = imp.render(result)
    assert f"# delphi.cybermonkey.dev (Caddyfile line {line_of(text, 'delphi.cybermonkey.dev {')}: Wazuh Web UI" in out
    errors = hecate_schema.validate({"hecate": yaml.safe_load(out)["hecate"]})
    assert not [e for e in errors if e.startswith("hecate:reverse_proxy")], errors


# -- import, then build: the routes Caddy's adapter made ------------------------------------------------
FIELDS = """\
www.example.com {
	redir https://example.com{uri} permanent
}

example.com {
	@blocked path /private/* /.git/*
	respond @blocked 403
	respond /health "OK" 200
	redir /old /new
	reverse_proxy 10.0.0.1:8080 10.0.0.2:8080 {
		lb_policy least_conn
		lb_try_duration 5s
		health_uri /ping
		health_interval 10s
		fail_duration 30s
		header_up X-Real-IP {remote_host}
		header_down -Server
		transport http {
			dial_timeout 3s
			response_header_timeout 2m
		}
	}
}

api.example.com, api2.example.com {
	reverse_proxy https://10.0.0.3:8443 {
		transport http {
			tls_insecure_skip_verify
			tls_server_name api.internal
		}
	}
}
"""


def test_import_then_build_gives_the_routes_caddy_adapt_made(tmp_path):
    result = run(FIELDS, tmp_path)
    assert result["unsupported"] == [] and result["corrected"] == []
    block = pillar_of(result)
    assert block["default_policies"] == []  # no snippets: hecate must add no policy either
    assert_valid(block)
    assert by_domain(block) == adapted_by_domain(FIELDS, tmp_path / "again")
    example = next(r for r in block["routes"] if r.get("domain") == "example.com")
    assert example["respond"] == [{"match": {"paths": ["/private/*", "/.git/*"]}, "status": 403},
                                  {"path": "/health", "status": 200, "body": "OK"}]
    assert example["load_balancing"] == {"policy": "least_conn", "try_duration": "5s"}
    assert example["response_header_timeout"] == "2m" and example["dial_timeout"] == "3s"


# -- what cannot be expressed ---------------------------------------------------------------------------
UNSUPPORTED = """\
{
	email ops@example.com
}

(custom) {
	header X-Robots-Tag "noindex"
	encode zstd gzip
}

files.example.com {
	import custom
	root * /srv/www
	file_server
}

legacy.example.com {
	import custom
	tls internal
	basic_auth {
		admin $2a$14$Zkx19XLiW6VYouLHR5NmfOFU0z2GTNmpkT/5qqR7hx4IjWJPDhjvG
	}
	log {
		output file /var/log/caddy/legacy.log {
			roll_size 10MiB
		}
	}
	handle /api/* {
		reverse_proxy 10.0.0.9:80
	}
	reverse_proxy 10.0.0.8:80 {
		header_up Host {upstream_hostport}
		flush_interval -1
	}
}

http://plain.example.com {
	reverse_proxy 10.0.0.7:80
}
"""


def test_what_cannot_be_expressed_is_listed_with_its_line(tmp_path):
    result = run(UNSUPPORTED, tmp_path)
    found = {(u["line"], u["directive"].split()[0]) for u in result["unsupported"]}
    line = lambda fragment: line_of(UNSUPPORTED, fragment)  # noqa: E731
    for expected in [
        (line("email ops"), "email"),              # a global option
        (line("file_server"), "file_server"),      # static files
        (line("root * /srv"), "root"),              # (its vars handler)
        (line("tls internal"), "tls"),
        (line("basic_auth"), "basic_auth"),
        (line("output file /var/log/caddy/legacy.log") - 1, "log"),  # roll_size is not modelled
        (line("handle /api/*"), "handle"),
        (line("reverse_proxy 10.0.0.8:80"), "reverse_proxy"),  # flush_interval
        (line("http://plain.example.com"), "http://plain.example.com"),  # another server (:80)
    ]:
        assert expected in found, (expected, sorted(found, key=str))
    for item in result["unsupported"]:
        assert item["why"] and (item["line"] is None or item["directive"])
    # what could be mapped still is: the legacy site's proxy and headers, the custom snippet as a policy
    block = pillar_of(result)
    legacy = next(r for r in block["routes"] if r.get("domain") == "legacy.example.com")
    assert legacy["backend"] == "10.0.0.8:80"
    assert legacy["headers"] == {"up": {"set": {"Host": "{http.reverse_proxy.upstream.hostport}"}}}
    assert legacy["access_log"] == {"file": "/var/log/caddy/legacy.log"}
    assert block["policies"] == {"custom": {"response_headers": {"X-Robots-Tag": "noindex"},
                                            "encode": ["zstd", "gzip"]}}
    assert legacy.get("policies", block["default_policies"]) == ["custom"]
    # not deferred in the Caddyfile, deferred in hecate's policy: said, with the line
    (deferred,) = [c for c in result["corrected"] if c["directive"].startswith("header")]
    assert deferred["line"] == line("header X-Robots-Tag")
    # a site with no backend of its own and nothing that answers is said to be incomplete
    assert any(u["why"].startswith("site files.example.com: no reverse_proxy") for u in result["unsupported"])


def test_a_block_snippet_that_is_not_hecates_security_policy_is_kept_as_it_is(tmp_path):
    text = """\
(guard) {
	@scanners {
		path /wp-admin/*
		path_regexp \\.php$
	}
	respond @scanners 404
	@agents header User-Agent *curl*
	respond @agents 444
}

site.example {
	import guard
	reverse_proxy 10.0.0.1:80
}
"""
    result = run(text, tmp_path)
    assert result["corrected"] == []  # nothing changed: Caddy's AND and its 444 are kept
    block = pillar_of(result)
    (route,) = block["routes"]
    assert block["default_policies"] == [] and "policies" not in route
    assert route["respond"] == [
        {"match": {"paths": ["/wp-admin/*"], "path_regexp": "\\.php$"}, "status": 404},
        {"match": {"headers": {"User-Agent": "*curl*"}}, "status": 444},
    ]
    assert by_domain(block) == adapted_by_domain(text, tmp_path / "a")


def test_a_caddyfile_caddy_refuses_is_an_error(tmp_path):
    binary = imp.caddy_binary()
    with pytest.raises(Exception, match="caddy adapt refused the Caddyfile: .*unrecognized subdirective bogus"):
        imp.adapt_with_binary(binary, "a.example {\n\treverse_proxy x:1 {\n\t\tbogus\n\t}\n}\n")
    config, warnings = imp.adapt_with_binary(binary, "a.example {\n    reverse_proxy x:1\n}\n")
    assert config["apps"]["http"]["servers"]["srv0"]["routes"]
    assert len(warnings) == 1 and warnings[0].startswith("line ") and "input is not formatted" in warnings[0]


def test_a_proxy_caddy_never_reached_is_left_out_and_said(tmp_path):
    text = "old.example {\n\tredir https://new.example{uri}\n\treverse_proxy 10.0.0.1:80\n}\n"
    result = run(text, tmp_path)
    (route,) = pillar_of(result)["routes"]
    assert "backend" not in route and route["redirect"] == {"to": "https://new.example{http.request.uri}",
                                                             "status": "temporary"}
    (item,) = result["unsupported"]
    assert item["line"] == 3 and "never ran" in item["why"]
    assert by_domain(pillar_of(result)) != {}  # valid for hecate: it builds
