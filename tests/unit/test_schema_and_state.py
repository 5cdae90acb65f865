import hecate_config
import hecate_schema
import hecate_state


def base_pillar(**global_):
    g = {"domain": "cybermonkey.dev", "environment": "lab"}
    g.update(global_)
    return {"hecate": {"global": g}, "bionicgpt": {}}


def test_valid_base_pillar():
    assert hecate_schema.validate(base_pillar(), "lab") == []


def test_errors_name_key_paths():
    pillar = base_pillar(domain="not a domain", colour="blue")
    del pillar["hecate"]["global"]["environment"]
    pillar["hecate"]["connections"] = {"vault": {"url": "ftp://x", "token": "hvs.literal"}}
    errors = hecate_schema.validate(pillar, "lab")
    assert "hecate:global:environment: required key is missing" in errors
    assert "hecate:global:colour: unknown key (not in the schema)" in errors
    assert "hecate:global:domain: 'not a domain' does not match the expected format" in errors
    assert "hecate:connections:vault:url: 'ftp://x' does not match the expected format" in errors
    assert any(e.startswith("hecate:connections:vault:token: secret given as a literal") for e in errors)
    assert any("unknown environment 'lab'" in e for e in errors)


def test_global_domain_is_a_host_name():
    """The zone the shipped pillar's names are made from (hera.<domain>...): no wildcard, no URL."""
    for bad in ("*.example.com", "https://example.com", "example", "example.com."):
        errors = hecate_schema.validate(base_pillar(domain=bad), "lab")
        assert errors == [f"hecate:global:domain: {bad!r} does not match the expected format"], errors
    assert hecate_schema.validate(base_pillar(domain="edge.example.co.uk"), "lab") == []
    del_domain = base_pillar()
    del del_domain["hecate"]["global"]["domain"]
    assert hecate_schema.validate(del_domain, "lab") == ["hecate:global:domain: required key is missing"]


def test_malformed_vault_reference():
    pillar = base_pillar()
    pillar["hecate"]["connections"] = {"authentik": {"token": {"vault": "secret", "key": "t"}}}
    errors = hecate_schema.validate(pillar, "lab")
    assert any(e.startswith("hecate:connections:authentik:token") for e in errors), errors


def test_connection_precedence():
    opts = {"hecate": {"connections": {"caddy": {"origin": "o"}}}}
    pillar = {"hecate": {"connections": {"caddy": {"admin_url": "http://p:1", "origin": "p"}}}}
    got = hecate_config.connection("caddy", opts, pillar)
    assert got["admin_url"] == "http://p:1" and got["origin"] == "o" and got["retries"] == 2


def test_diff_shapes():
    old = {"a": 1, "b": ["x", "y"], "c": {"d": "e"}, "secret": "old"}
    new = {"a": 2, "b": ["y", "z"], "c": {"d": "e"}, "secret": "new"}
    assert hecate_state.diff(old, new, secret_keys=("secret",)) == {
        "a": {"old": 1, "new": 2},
        "b": {"added": ["z"], "removed": ["x"]},
        "secret": {"old": "XXX-REDACTED-XXX", "new": "XXX-REDACTED-XXX"},
    }
    assert hecate_state.diff({"x": 1}, {"x": 1}) == {}


def test_fragments_merge_whatever_the_order():
    base = {"type": "object", "properties": {}}
    hecate_schema._set_fragment(base, "a:b:c", {"type": "object", "properties": {"x": {}}})
    hecate_schema._set_fragment(
        base, "a:b", {"type": "object", "additionalProperties": False, "properties": {"y": {}}}
    )
    b = base["properties"]["a"]["properties"]["b"]
    assert set(b["properties"]) == {"c", "y"} and b["additionalProperties"] is False


def test_secret_names_and_their_neighbours():
    for key in ("token", "api_key", "OAUTH2_PROXY_CLIENT_SECRET", "POSTGRES_PASSWORD", "LITELLM_MASTER_KEY",
                "agent_token", "static_auth_secret", "AZURE_API_KEY", "db-passwd"):
        assert hecate_schema.is_secret_key(key), key
    # keys that only sound like secrets: public halves, settings about tokens, Vault paths
    for key in ("public_key", "signing_key", "key", "secrets", "credentials", "access_token_validity",
                "enable_token_persistence", "tokens", 3):
        assert not hecate_schema.is_secret_key(key), key
    pillar = base_pillar()
    pillar["bionicgpt"] = {"jobs": {"database": {"postgres": {"env": {
        "POSTGRES_PASSWORD": 1234, "PGDATA": "/data", "POSTGRES_PASSWORD_FILE": "/secrets/pw"}}}}}
    errors = hecate_schema.check_secrets(pillar)
    assert [path for path, _ in errors] == ["bionicgpt:jobs:database:postgres:env:POSTGRES_PASSWORD"]


def test_every_unknown_key_of_an_object_is_reported_with_its_path():
    """
    ``additionalProperties: false`` gives ONE jsonschema error per object, naming all its
    unexpected keys ("Additional properties are not allowed ('b', 'c' were unexpected)");
    each key must come out as its own error with its full key path, so an operator
    migrating a pillar fixes them all in one pass - inside lists and oneOf branches too.
    """
    pillar = base_pillar(colour="blue", size="xl")
    pillar["hecate"]["reverse_proxy"] = {
        "caddy": {
            "routez": [],
            "servr": "hecate",
            "routes": [
                {"domain": "a.example.com", "service": "a", "backend": "10.0.0.1:80", "bogus": 1, "extra": 2},
                {"domain": "b.example.com", "service": "b", "backend": "10.0.0.2:80",
                 "forward_auth": {"copy_headers": ["X-A"], "copy_header": ["X-B"], "mode": "x"}},
            ],
        }
    }
    pillar["hecate"]["reverse_proxi"] = {}
    pillar["hecate"]["connections"] = {
        "authentik": {"token": {"vault": "secret/hecate/authentik", "key": "api_token", "value": "LEAKME-1"}}
    }
    errors = hecate_schema.validate(pillar, "lab")
    assert not any("LEAKME" in e for e in errors), errors  # a secret's value never shows up
    unknown = sorted(e.split(": ")[0] for e in errors if e.endswith(": unknown key (not in the schema)"))
    assert unknown == [
        "hecate:connections:authentik:token:value",
        "hecate:global:colour",
        "hecate:global:size",
        "hecate:reverse_proxi",
        "hecate:reverse_proxy:caddy:routes:0:bogus",
        "hecate:reverse_proxy:caddy:routes:0:extra",
        "hecate:reverse_proxy:caddy:routes:1:forward_auth:copy_header",
        "hecate:reverse_proxy:caddy:routes:1:forward_auth:mode",
        "hecate:reverse_proxy:caddy:routez",
        "hecate:reverse_proxy:caddy:servr",
    ], errors


def test_unknown_keys_with_odd_characters_are_named_exactly():
    """Keys are taken from the object, not parsed back out of jsonschema's message."""
    pillar = base_pillar(**{"it's": 1, "a (b)": 2, "x, y": 3})
    errors = hecate_schema.validate(pillar, "lab")
    for key in ("it's", "a (b)", "x, y"):
        assert f"hecate:global:{key}: unknown key (not in the schema)" in errors, errors
