import logging

import pytest
import salt.exceptions

import hecate_secrets as hs


def test_secret_never_prints_itself(caplog):
    secret = hs.Secret("s3cr3t-value")
    caplog.set_level(logging.DEBUG)
    logging.getLogger("t").debug("value %s %r", secret, secret)
    assert "s3cr3t-value" not in caplog.text
    assert f"{secret}" == str(secret) == repr(secret) == hs.REDACTED
    assert secret.reveal() == "s3cr3t-value"


def test_parse_ref():
    assert hs.parse_ref({"vault": "secret/bionicgpt/oauth", "key": "client_secret"}) == (
        "secret", "bionicgpt/oauth", "client_secret")


@pytest.mark.parametrize(
    "ref,msg",
    [
        ({"vault": "secret", "key": "k"}, "'vault' must be '<mount>/<path>'"),
        ({"vault": "secret/a", "key": ""}, "'key' must be a non-empty string"),
        ({"vault": "secret/a", "key": "k", "extra": 1}, "unknown field(s) extra"),
    ],
)
def test_parse_ref_errors_name_the_key(ref, msg):
    with pytest.raises(salt.exceptions.SaltInvocationError) as err:
        hs.parse_ref(ref, "bionicgpt:oauth:client_secret")
    assert str(err.value).startswith("bionicgpt:oauth:client_secret: ")
    assert msg in str(err.value)


def test_resolve_forms():
    vault = {("secret", "app"): {"k": "v1"}}
    assert hs.resolve({"vault": "secret/app", "key": "k"}, vault=lambda m, p: vault[(m, p)]).reveal() == "v1"
    assert hs.resolve("sdb://osenv/X", sdb_get=lambda uri: "from-sdb").reveal() == "from-sdb"
    assert hs.resolve("literal").reveal() == "literal"
    assert hs.resolve(None) is None
    with pytest.raises(salt.exceptions.CommandExecutionError, match="has no key 'nope'"):
        hs.resolve({"vault": "secret/app", "key": "nope"}, vault=lambda m, p: vault[(m, p)])
    with pytest.raises(salt.exceptions.CommandExecutionError, match="resolved to nothing"):
        hs.resolve("sdb://osenv/UNSET", sdb_get=lambda uri: None)


def test_scrub_and_find_refs():
    assert hs.scrub("boom: abcd1234 leaked", [hs.Secret("abcd1234")]) == f"boom: {hs.REDACTED} leaked"
    data = {"a": {"token": {"vault": "secret/x", "key": "t"}}, "l": [{"vault": "secret/y", "key": "k"}]}
    assert dict(hs.find_refs(data)) == {"a:token": data["a"]["token"], "l:0": data["l"][0]}
    assert hs.describe(data["a"]["token"]) == "vault:secret/x#t"
    assert not hs.is_ref({"vault": {"url": "https://v"}})
