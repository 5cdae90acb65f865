"""The pillar schema of bionicgpt:authentik and its semantic checks, on the shipped pillar."""

import copy

import pytest

import hecate_schema
from tests import pillar_files


def compiled(env):
    """The lab's pillar files (lab/pillar/) merged like its top.sls does."""
    return pillar_files.compiled(env)


@pytest.mark.parametrize("env", ["lab", "dev", "staging", "prod"])
def test_shipped_pillar_is_valid(env):
    assert hecate_schema.validate(compiled(env), env) == []


def test_shipped_pillar_carries_the_plan():
    ak = compiled("prod")["bionicgpt"]["authentik"]
    assert ak["group_prefix"] == "bionicgpt-"
    assert set(ak["groups"]) == {"bionicgpt-superadmin", "bionicgpt-demo-tenant"}
    assert ak["provider"]["credentials"] == "secret/bionicgpt/oauth"
    assert ak["provider"]["redirect_uris"] == ["https://chat.codemonkey.ai/oauth2/callback"]
    assert ak["application"]["slug"] == "bionicgpt"
    assert "test_users" not in ak  # lab overlay only
    lab = compiled("lab")["bionicgpt"]["authentik"]
    assert set(lab["test_users"]) == {"henry", "demo"}
    assert lab["test_users"]["henry"]["password"] == {"vault": "secret/bionicgpt/lab-users", "key": "henry"}


def errors_for(mutate, env="lab"):
    pillar = copy.deepcopy(compiled(env))
    mutate(pillar["bionicgpt"]["authentik"], pillar)
    return hecate_schema.validate(pillar, env)


def test_groups_and_bindings_must_carry_the_prefix():
    def mutate(ak, _):
        ak["groups"]["admins"] = {}
        ak["bindings"]["groups"].append("everyone")
        ak["scope_mapping"]["superadmin_group"] = "bionicgpt-root"

    errors = errors_for(mutate)
    assert "bionicgpt:authentik:groups:admins: group name must start with the prefix 'bionicgpt-'" in errors
    assert any(e.startswith("bionicgpt:authentik:bindings:groups:2: 'everyone' does not carry") for e in errors)
    assert ("bionicgpt:authentik:scope_mapping:superadmin_group: 'bionicgpt-root' is not defined "
            "under bionicgpt:authentik:groups") in errors


def test_prod_refuses_plain_http_and_test_users():
    def mutate(ak, pillar):
        pillar["hecate"]["connections"]["authentik"]["url"] = "http://auth.example.com"
        ak["provider"]["redirect_uris"].append("http://chat.example.com/cb")
        ak["test_users"] = {"x": {"groups": []}}

    errors = errors_for(mutate, "prod")
    assert any(e.startswith("hecate:connections:authentik:url: plain http is refused in prod") for e in errors)
    assert "bionicgpt:authentik:provider:redirect_uris:1: plain http redirect URIs are refused in prod" in errors
    assert any(e.startswith("bionicgpt:authentik:test_users: test users belong in the lab overlay") for e in errors)


def test_values_are_checked_with_key_paths():
    def mutate(ak, _):
        ak["provider"]["access_token_validity"] = "hourz=1"
        ak["provider"]["refresh_token_validity"] = "seconds=0"
        ak["provider"]["redirect_uris"].append({"url": "(", "matching_mode": "regex"})
        ak["provider"]["credentials"] = "oauth"
        ak["application"]["slug"] = "not a slug"
        ak["test_users"]["demo"]["password"] = "hunter2"
        ak["provider"]["colour"] = "red"

    errors = errors_for(mutate)
    joined = "\n".join(errors)
    assert "bionicgpt:authentik:provider:access_token_validity: 'hourz=1' is not an Authentik duration" in joined
    assert "bionicgpt:authentik:provider:refresh_token_validity: must be longer than zero" in errors
    assert "bionicgpt:authentik:provider:redirect_uris:2:url: invalid regular expression" in joined
    assert "bionicgpt:authentik:provider:credentials: 'oauth' does not match the expected format" in errors
    assert "bionicgpt:authentik:application:slug: 'not a slug' does not match the expected format" in errors
    assert any(e.startswith("bionicgpt:authentik:test_users:demo:password: secret given as a literal")
               for e in errors)
    assert "bionicgpt:authentik:provider:colour: unknown key (not in the schema)" in errors


def test_reserved_application_slugs_are_refused():
    """
    Application.reserved_slugs (authentik/core/models.py) clash with the OAuth2
    endpoints; the API refuses them only from 2025.10 (ApplicationSerializer.validate_slug),
    so the pillar check refuses them for every release.
    """
    def mutate(ak, _):
        ak["application"]["slug"] = "authorize"

    assert "bionicgpt:authentik:application:slug: 'authorize' is reserved by Authentik " \
           "(it clashes with the OAuth2 endpoints)" in errors_for(mutate)
