"""The Authentik client against the simulator: pages, errors, retries, TLS, version."""

import pytest
import requests
import salt.exceptions
import trustme

import hecate_authentik_client as hak
import hecate_secrets
from lab.sim import SimHandle

TOKEN = "client-test-token-" + "x" * 20


@pytest.fixture(scope="module")
def sims(tmp_path_factory):
    started = {}

    def get(release):
        if release not in started:
            started[release] = SimHandle(
                "authentik", str(tmp_path_factory.mktemp(f"ak-{release}")),
                {"version": release, "token": TOKEN, "strict": True,
                 "tokens": {"weak": {"permissions": "none"}}},
            ).start()
        return started[release]

    yield get
    for handle in started.values():
        handle.stop()


def client(sim, token=TOKEN, **settings):
    settings.setdefault("retries", 2)
    return hak.AuthentikClient(dict({"url": sim.url}, **settings), hecate_secrets.Secret(token))


@pytest.fixture(autouse=True)
def _clean(sims):
    yield
    for release in ("2025.10",):
        sims(release).clear_faults()


@pytest.mark.parametrize("release,pages", [("2025.6", 3), ("2025.10", 3), ("2026.5", 3)])
def test_every_page_is_read(sims, release, pages):
    sim = sims(release)
    c = client(sim)
    for idx in range(250):
        c.create("group", {"name": f"many-{idx:03d}"})
    sim.clear_requests()
    groups = client(sim).list("group")
    names = {g["name"] for g in groups}
    assert {f"many-{idx:03d}" for idx in range(250)} <= names
    assert len(groups) == len(names) == 251  # + authentik Admins; no page read twice
    reads = sim.requests()
    assert [r["query"].split("page=")[-1] for r in reads] == [str(p) for p in range(1, pages + 1)]
    assert all("include_users=false" in r["query"] for r in reads)
    # a small page size still reaches the end
    sim.clear_requests()
    assert len(client(sim, page_size=7).list("group")) == 251
    assert len(sim.requests()) == 36
    assert not [r for r in sim.requests() if r.get("unknown_params")]


def test_find_uses_one_listing_and_reports_duplicates(sims):
    sim = sims("2025.10")
    c = client(sim)
    c.create("group", {"name": "twin"})
    # the API refuses a second one (GroupSerializer's UniqueValidator, "This field must be
    # unique."), but the 2025.10 database does not: older databases may hold duplicates
    with pytest.raises(hak.AuthentikError, match="name: This field must be unique"):
        c.create("group", {"name": "twin"})
    requests.post(f"{sim.url}/_lab/objects", json={"kind": "group", "object": {"name": "twin"}},
                  timeout=10).raise_for_status()
    sim.clear_requests()
    with pytest.raises(hak.AuthentikError, match="2 groups named 'twin'.*remove the duplicates"):
        c.find("group", "twin")
    assert c.find("group", "does-not-exist") is None
    assert c.find("group", "authentik Admins")["is_superuser"] is True
    # three lookups, one listing: each page of /core/groups/ read exactly once
    pages = [r["query"].split("page=")[-1] for r in sim.requests()]
    assert {r["path"] for r in sim.requests()} == {"/api/v3/core/groups/"}
    assert pages == [str(p) for p in range(1, len(pages) + 1)]


def test_403_says_token_invalid_or_lacks_permission(sims):
    sim = sims("2025.10")
    with pytest.raises(hak.Forbidden) as err:
        client(sim, token="not-the-token-at-all").list("group")
    msg = str(err.value)
    assert "token invalid or lacks permission" in msg and "Token invalid/expired" in msg
    assert "not-the-token-at-all" not in msg
    with pytest.raises(hak.Forbidden, match="You do not have permission"):
        client(sim, token="weak").get("flow", "default-authentication-flow")


def test_drf_errors_name_the_field(sims):
    sim = sims("2025.10")
    with pytest.raises(hak.AuthentikError) as err:
        client(sim).create("provider_oauth2", {"name": "incomplete"})
    msg = str(err.value)
    assert msg.startswith("Authentik: POST /providers/oauth2/ returned 400: ")
    assert "invalidation_flow: This field is required." in msg
    assert "redirect_uris: This field is required." in msg


def test_missing_objects_are_none_not_errors(sims):
    c = client(sims("2025.10"))
    akadmin = c.find("user", "akadmin")
    assert c.get("user", akadmin["pk"])["username"] == "akadmin"  # strict: no stray query params
    assert c.get("group", akadmin["groups"][0])["name"] == "authentik Admins"
    assert c.get("application", "nope") is None
    assert c.lookup("flow", "nope") is None
    with pytest.raises(hak.AuthentikError, match="Authentik has no flow 'nope'"):
        c.require("flow", "nope")
    assert c.delete("application", "nope") is False


def test_reads_are_retried_on_5xx_and_429_writes_are_not(sims):
    sim = sims("2025.10")
    sim.clear_requests()
    sim.fault(method="GET", path="/api/v3/flows/instances/", status=503, body={"detail": "busy"}, times=1)
    sim.fault(method="GET", path="/api/v3/flows/instances/", status=429, body={"detail": "slow down"},
              headers={"Retry-After": "0"}, times=1)
    sim.fault(method="GET", path="/api/v3/flows/instances/", status=500, body={"detail": "oops"}, times=1)
    c = client(sim, retries=3)
    c.http.session.adapters["http://"].max_retries.backoff_factor = 0
    assert c.get("flow", "default-authentication-flow")["slug"] == "default-authentication-flow"
    assert [r["status"] for r in sim.requests()] == [503, 429, 500, 200]
    sim.clear_requests()
    sim.fault(method="POST", path="/api/v3/core/groups/", status=503, body={"detail": "busy"}, times=1)
    with pytest.raises(hak.AuthentikError, match="returned 503: busy"):
        c.create("group", {"name": "not-retried"})
    assert len(sim.requests()) == 1


def test_version_and_group_parents_field(sims):
    for release, field in (("2025.6", "parent"), ("2025.10", "parent"), ("2026.5", "parents")):
        c = client(sims(release))
        assert c.version()[:2] == tuple(int(p) for p in release.split("."))
        assert c.parents_field == field
        parent = c.create("group", {"name": f"p-{release}"})
        child = c.create("group", dict({"name": f"c-{release}"}, **c.parents_body([parent["pk"]])))
        assert c.group_parents(child) == [parent["pk"]]


def test_version_probe_when_the_token_may_not_read_it(sims):
    sim = sims("2026.5")
    sim.fault(method="GET", path="/api/v3/admin/version/", status=403,
              body={"detail": "You do not have permission to perform this action."}, times=1)
    c = client(sim)
    assert c.version()[:2] >= hak.PARENTS_SINCE
    sim.clear_faults()


def test_tls_verification_and_ca_bundle(tmp_path):
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    paths = {n: str(tmp_path / f"{n}.pem") for n in ("cert", "key", "ca")}
    cert.cert_chain_pems[0].write_to_path(paths["cert"])
    for blob in cert.cert_chain_pems[1:]:
        blob.write_to_path(paths["cert"], append=True)
    cert.private_key_pem.write_to_path(paths["key"])
    ca.cert_pem.write_to_path(paths["ca"])
    sim = SimHandle("authentik", str(tmp_path / "sim"), {"token": TOKEN},
                    tls=(paths["cert"], paths["key"], paths["ca"])).start()
    try:
        with pytest.raises(salt.exceptions.CommandExecutionError, match="TLS verification failed"):
            client(sim, retries=0).version()
        assert client(sim, ca_bundle=paths["ca"]).version()[0] >= 2025
    finally:
        sim.stop()


def test_settings_are_required():
    with pytest.raises(salt.exceptions.SaltInvocationError, match="authentik:url is not set"):
        hak.AuthentikClient({"url": None}, hecate_secrets.Secret("t"))
    with pytest.raises(salt.exceptions.SaltInvocationError, match="authentik:token is not set"):
        hak.AuthentikClient({"url": "https://a"}, None)


@pytest.mark.parametrize("left,right", [("hours=1", "minutes=60"), ("days=1", "hours=24"),
                                        ("hours=1;minutes=30", "seconds=5400"), (3600, "hours=1"),
                                        ("weeks=1", "days=7")])
def test_durations_normalise(left, right):
    assert hak.duration_seconds(left) == hak.duration_seconds(right)


@pytest.mark.parametrize("bad", ["hourz=1", "1h", "hours", "", True])
def test_bad_durations_are_clear(bad):
    with pytest.raises(salt.exceptions.SaltInvocationError, match="duration"):
        hak.duration_seconds(bad, "access_token_validity")


def test_redirect_uris_normalise_to_strict_sorted_set():
    got = hak.redirect_uris(["https://b/cb", {"url": "^https://a/.*$", "matching_mode": "regex"}])
    assert got == [{"matching_mode": "regex", "url": "^https://a/.*$"},
                   {"matching_mode": "strict", "url": "https://b/cb"}]
    live = [{"matching_mode": "strict", "url": "https://b/cb", "redirect_uri_type": "authorization"},
            {"matching_mode": "regex", "url": "^https://a/.*$"}]
    assert hak.live_redirect_uris(live) == got
    with pytest.raises(salt.exceptions.SaltInvocationError, match="invalid regular expression"):
        hak.redirect_uris([{"url": "(", "matching_mode": "regex"}])


def test_group_expression_emits_only_prefixed_groups():
    expr = hak.group_scope_expression("bionicgpt-")

    class Group:
        def __init__(self, name):
            self.name = name

    class Groups:
        def all(self):
            return [Group("bionicgpt-superadmin"), Group("admins"), Group("bionicgpt-demo-tenant")]

    class User:
        ak_groups = Groups()

    class Request:
        user = User()

    body = "def mapping(request):\n" + "\n".join("    " + line for line in expr.splitlines())
    scope = {}
    exec(compile(body, "<expression>", "exec"), scope)  # noqa: S102 - our own generated text
    assert scope["mapping"](Request()) == {
        "groups": ["bionicgpt-superadmin", "bionicgpt-demo-tenant"],
        "is_superadmin": True,
    }
    assert hak.same_expression(expr, expr + "\n\n")


def test_application_list_is_the_full_list_not_the_cached_policy_view(sims):
    """
    Without superuser_full_list=true Authentik answers from a per-(user, page) cache that
    ignores filters (ApplicationViewSet.list, authentik/core/api/applications.py); the
    client asks for the full list, and reads single applications by slug.
    """
    sim = sims("2025.6")
    c = client(sim)
    for slug in ("list-a", "list-b"):
        c.create("application", {"name": slug, "slug": slug})
    url = f"{sim.url}/api/v3/core/applications/"
    headers = {"Authorization": f"Bearer {TOKEN}"}
    plain = requests.get(url, params={"slug": "list-a"}, headers=headers, timeout=10).json()["results"]
    again = requests.get(url, params={"slug": "list-b"}, headers=headers, timeout=10).json()["results"]
    assert [a["slug"] for a in plain] == [a["slug"] for a in again] == ["list-a"]  # the cache, not the filter
    sim.clear_requests()
    assert {"list-a", "list-b"} <= {a["slug"] for a in c.list("application")}
    assert all("superuser_full_list=true" in r["query"] for r in sim.requests())
    assert c.lookup("application", "list-b")["slug"] == "list-b"
