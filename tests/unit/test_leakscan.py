"""The leak scan itself finds a secret in the forms it takes on its way out."""

import base64
import json
import urllib.parse

import pytest

from tests.leakscan import LeakScan, variants

SECRET = 'Kn0wn/Secret+"value"=' + "x" * 12


@pytest.mark.parametrize("form", [
    lambda v: v,
    lambda v: json.dumps({"k": v}),
    lambda v: urllib.parse.quote(v, safe=""),
    lambda v: base64.b64encode(v.encode()).decode(),
    lambda v: base64.urlsafe_b64encode(v.encode()).decode(),
    lambda v: v[:20] + "...(truncated)",
    lambda v: "...(truncated)" + v[-20:],
], ids=["as-is", "json", "url", "base64", "base64url", "head", "tail"])
def test_a_secret_is_found_in_each_form(tmp_path, form):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "cache.p").write_text(f"prefix {form(SECRET)} suffix")
    scan = LeakScan()
    scan.add("clean", "nothing to see; XXX-REDACTED-XXX")
    assert scan.add_tree("cache", tmp_path) == 1
    hits = scan.hits({"the secret": SECRET})
    assert hits and all(h.startswith("the secret (") and " in cache " in h for h in hits), hits


def test_clean_places_and_needle_rules():
    scan = LeakScan()
    scan.add("output", "the value is XXX-REDACTED-XXX")
    assert scan.hits({"the secret": SECRET}) == []
    assert scan.contains("out", "REDACTED") and not scan.contains("log", "REDACTED")
    with pytest.raises(AssertionError, match="too short"):
        scan.hits({"pin": "1234"})
    assert len(set(variants(SECRET).values())) == len(variants(SECRET))
