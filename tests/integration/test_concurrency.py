"""
Concurrency (issue 10, item 4): no lost update when Caddy is edited while hecate applies
its routes, and exactly one of several concurrent deployments takes the environment lock.

Caddy: the real binary (an instance of its own, so the other tests' Caddy is untouched),
driven the way ``caddy_routes.managed`` drives it - ``hecate_caddy_routes.build`` from
pillar data, then ``hecate_caddy_apply.apply`` (one read with the ETag, diff, snapshot,
one ``PATCH`` guarded by ``If-Match``, re-read and retry on 412). In every trial 1-3
outside writers edit Caddy through its Admin API - an unmanaged route appended, one
inserted in front, an unmanaged route changed in place by @id, a server setting changed -
released by a hook right after hecate's read, so the first edit lands between hecate's
read and its write; the others race hecate's write and its retries freely. After each
trial the live config must hold every outside edit made so far AND exactly hecate's
desired routes: either side's change missing is a lost update and fails the test.
412s are counted by hecate and cross-checked against Caddy's own admin log.

Two Caddy facts this brought up (Caddy 2.11): Caddy replaces its admin endpoint on every
config change and drops requests that arrive meanwhile (connection reset / closed without
a response) - hecate's write included, which ``apply`` now resolves by reading again
instead of failing; and Caddy resolves an ``/id/`` path to an index before it locks its
config, so an unguarded ``/id/`` write can land on another object when a concurrent change
moves it - hence the outside writer's guarded ``/id/`` edit, and hecate's ``write_id``.

``HECATE_RACE_TRIALS`` changes the number of trials (default 100).

The orchestration-level "two runs at once" is tests/integration/test_orchestration.py::
test_two_orchestrations_at_once_one_fails_with_the_lock_holder (one round of two real
orchestrations, ~30 s). What decides it is the Consul lock, so the rounds here race
``lock_acquire`` itself - four contenders per round, each with its own client - which
is cheap enough to repeat.
"""

import json
import os
import random
import threading
import time

import pytest
import requests

import hecate_caddy_apply
import hecate_caddy_client
import hecate_caddy_routes
import hecate_config
import hecate_consul_client
import hecate_http
import hecate_secrets
from tests import caddy_helpers as ch

TRIALS = int(os.environ.get("HECATE_RACE_TRIALS", "100"))
SERVER = "hecate"
SERVER_PATH = f"/config/apps/http/servers/{SERVER}"
ROUTES_PATH = f"{SERVER_PATH}/routes"
JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def race_caddy(tmp_path_factory):
    proc = ch.new_caddy(str(tmp_path_factory.mktemp("race-caddy")))
    yield proc
    proc.stop()


def desired_data(trial):
    """
    Pillar data that differs from the previous trial's: a route changed, one added, one
    removed, and the number of routes varies (hecate's block grows and shrinks, moving
    the index of every route after it).
    """
    routes = [
        {"domain": "web.race.test", "service": "web", "backend": f"127.0.0.1:{9000 + trial % 7}"},
        {"domain": f"t{trial}.race.test", "service": f"t{trial}", "backend": "127.0.0.1:9200"},
    ]
    routes += [{"domain": f"x{k}.race.test", "service": f"x{k}", "backend": "127.0.0.1:9300"}
               for k in range(trial % 3)]
    return {"server": SERVER, "default_policies": [], "routes": routes}


def static_route(route_id, host, body):
    return {"@id": route_id, "match": [{"host": [host]}],
            "handle": [{"handler": "static_response", "body": body}]}


class Outside:
    """
    Someone else editing Caddy through the Admin API, with single unconditional requests
    (as an operator's curl would), and the model of what those edits must leave behind.
    """

    def __init__(self, caddy):
        self.caddy = caddy
        self.routes = {}  # @id -> route hecate must keep
        self.setting = None  # the server's read_header_timeout, last value written
        self.lock = threading.Lock()
        self.dropped = 0  # requests of ours Caddy dropped (not errors: see _send)
        self.conflicts = 0  # 412s of the guarded outside edits

    def _send(self, method, path, value, landed=None):
        """
        One edit. Caddy may drop a request that coincides with another config change
        (it replaces its admin endpoint on every change): then the edit is sent again,
        unless ``landed()`` shows it was applied after all (a second append would
        duplicate the route).
        """
        for _ in range(20):
            try:
                resp = requests.request(method, self.caddy.admin_url + path, data=json.dumps(value),
                                        headers=JSON, timeout=30)
            except requests.exceptions.ConnectionError:
                with self.lock:
                    self.dropped += 1
                if landed is not None and self._retry(landed):
                    return
                continue
            assert resp.status_code == 200, (method, path, resp.status_code, resp.text)
            return
        raise AssertionError(f"{method} {path}: dropped 20 times")

    def _guarded_id_patch(self, path, value):
        """
        A change by ``@id`` with ``If-Match``, retried on 412. Unguarded, such a write is
        unsafe next to ANY concurrent change: Caddy resolves the @id to an index before it
        takes its config lock, so when another change (hecate's, or another operator's)
        moves that index in between, it lands on a different object - seen in this test
        before it was guarded ("[.../routes/7/handle/0/body] key does not exist"). That
        is Caddy's race, on the outside writer's side; hecate's own /id/ writes
        (caddy.route_replace/route_delete) are always guarded for that reason.
        """
        for _ in range(50):
            try:
                etag = requests.get(self.caddy.admin_url + "/config/", timeout=30).headers["Etag"]
                resp = requests.patch(self.caddy.admin_url + path, data=json.dumps(value),
                                      headers=dict(JSON, **{"If-Match": etag}), timeout=30)
            except requests.exceptions.ConnectionError:
                with self.lock:
                    self.dropped += 1
                continue  # idempotent: just send it again
            if resp.status_code == 412:
                with self.lock:
                    self.conflicts += 1
                continue
            assert resp.status_code == 200, (path, resp.status_code, resp.text)
            return
        raise AssertionError(f"PATCH {path}: no success in 50 attempts")

    def _retry(self, func):
        for _ in range(20):
            try:
                return func()
            except requests.exceptions.ConnectionError:
                continue
        raise AssertionError("Caddy kept dropping a read")

    def _has(self, route_id):
        return lambda: requests.get(f"{self.caddy.admin_url}/id/{route_id}", timeout=30).status_code == 200

    def seed(self, route_id, host):
        route = static_route(route_id, host, "v0")
        self._send("POST", ROUTES_PATH, route)
        self.routes[route["@id"]] = route

    def edit(self, kind, trial, n):
        if kind == "append":  # a new unmanaged route at the end
            route = static_route(f"ops.{trial}.{n}", f"ops{trial}-{n}.race.test", f"ops {trial}")
            self._send("POST", ROUTES_PATH, route, landed=self._has(route["@id"]))
        elif kind == "front":  # a new unmanaged route inserted before everything else
            route = static_route(f"front.{trial}.{n}", f"front{trial}-{n}.race.test", f"front {trial}")
            self._send("PUT", ROUTES_PATH + "/0", route, landed=self._has(route["@id"]))
        elif kind == "change":  # an existing unmanaged route changed in place (by @id, guarded)
            body = f"v{trial}"
            self._guarded_id_patch("/id/ops.static/handle/0/body", body)
            route = static_route("ops.static", "static.race.test", body)
        else:  # "setting": a server setting
            value = f"{trial + 1}s"
            self._send("POST", SERVER_PATH + "/read_header_timeout", value)
            with self.lock:
                self.setting = value
            return
        with self.lock:
            self.routes[route["@id"]] = route


KINDS = ("append", "change", "front", "setting")


def run_trial(caddy, outside, trial, store, rng):
    """One apply with 1-3 outside writers; returns hecate's attempts and the writers' errors."""
    desired = hecate_caddy_routes.build(desired_data(trial))
    writers = 1 + trial % 3  # at most 3 edits: each can spoil at most one read, retries=3 covers them
    kinds = [KINDS[(trial + n) % len(KINDS)] for n in range(writers)]
    go, first_done = threading.Event(), threading.Event()
    errors = []

    def writer(n, kind):
        go.wait(30)
        if n:
            time.sleep(rng.uniform(0, 0.02))  # the others race hecate's write and retries
        try:
            outside.edit(kind, trial, n)
        except BaseException as exc:  # pylint: disable=broad-except
            errors.append(repr(exc))
        finally:
            if n == 0:
                first_done.set()

    threads = [threading.Thread(target=writer, args=(n, k), daemon=True) for n, k in enumerate(kinds)]
    for thread in threads:
        thread.start()

    # the state's settings: hecate's defaults for Caddy (timeouts, retries) + the admin URL
    admin = hecate_caddy_client.CaddyAdmin(hecate_config.connection("caddy", overrides={"admin_url": caddy.admin_url}))
    read = admin.get

    def hooked_get(*parts, **kwargs):
        value = read(*parts, **kwargs)
        if not parts and not go.is_set():
            go.set()  # hecate has read: let the outside edits go ...
            assert first_done.wait(30)  # ... and the first one land before hecate writes
        return value

    admin.get = hooked_get
    out = hecate_caddy_apply.apply(
        admin, SERVER, lambda live: hecate_caddy_routes.plan_set(live, desired),
        test=False, store=store, retries=3, run_id=f"race-{trial}",
        known=[r.json for r in desired],  # read as the state reads: live routes equal to ours are ours
    )
    for thread in threads:
        thread.join(30)
    return desired, out, errors


def lost_updates(caddy, outside, desired):
    """Every way the live config disagrees with both sides' changes (empty: nothing lost)."""
    config = json.loads(ch.raw_config(caddy))
    server = config["apps"]["http"]["servers"][SERVER]
    routes = server.get("routes") or []
    problems = []
    unmanaged = {r.get("@id"): r for r in routes if not str(r.get("@id", "")).startswith("hecate.")}
    with outside.lock:
        expected, setting = dict(outside.routes), outside.setting
    for rid, route in expected.items():
        if unmanaged.get(rid) != route:
            problems.append(f"outside route {rid}: {'changed' if rid in unmanaged else 'lost'}")
    for rid in set(unmanaged) - set(expected):
        problems.append(f"unexpected unmanaged route {rid}")
    if setting is not None and server.get("read_header_timeout") != setting:
        problems.append(f"outside setting read_header_timeout: {server.get('read_header_timeout')!r} != {setting!r}")
    managed = [r for r in routes if str(r.get("@id", "")).startswith("hecate.")]
    if [r.get("@id") for r in managed] != [r.id for r in desired]:
        problems.append(f"hecate routes {[r.get('@id') for r in managed]} != {[r.id for r in desired]}")
    _, changes = hecate_caddy_routes.plan_set(routes, desired)
    if changes:
        problems.append(f"hecate routes differ from the desired ones: {changes}")
    return problems


def caddy_412s(caddy):
    """412 answers in Caddy's own log (its admin API logs every error it returns)."""
    count = 0
    with open(caddy.log_path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if '"request error"' in line and '"status_code":412' in line:
                count += 1
    return count


def test_concurrent_edits_during_apply_lose_nothing(race_caddy, tmp_path):
    caddy = race_caddy
    outside = Outside(caddy)
    store = hecate_caddy_client.SnapshotStore(str(tmp_path / "state"), keep=3)
    # before the trials: an unmanaged route, hecate's block, the unmanaged route the
    # "change" edits address by @id (its index moves whenever hecate's block changes size)
    outside.seed("ops.first", "first.race.test")
    first = hecate_caddy_routes.build(desired_data(-1))
    admin = hecate_caddy_client.CaddyAdmin(hecate_config.connection("caddy", overrides={"admin_url": caddy.admin_url}))
    assert hecate_caddy_apply.apply(admin, SERVER, lambda live: hecate_caddy_routes.plan_set(live, first),
                                     test=False)["written"]
    outside.seed("ops.static", "static.race.test")
    rng = random.Random(10)
    patches_before = caddy.admin_writes().count(("PATCH", ROUTES_PATH))
    caddy_412_before = caddy_412s(caddy)

    stats = {"trials": 0, "412": 0, "dropped": 0, "attempts": {}, "outside_edits": 0, "lost": 0}
    failures = []
    for trial in range(TRIALS):
        desired, out, errors = run_trial(caddy, outside, trial, store, rng)
        assert not errors, f"trial {trial}: an outside edit failed: {errors}"
        assert out["written"] is True and out["changes"], f"trial {trial}: {out}"
        # the first outside edit landed between hecate's read and write: that write was
        # refused (412), or dropped by Caddy while it swapped its admin endpoint
        assert out["conflicts"] + out["dropped"] >= 1, f"trial {trial}: no 412 and no drop: {out}"
        assert out["attempts"] == 1 + out["conflicts"] + out["dropped"]
        assert out["snapshot"] in store.pending().get(SERVER, []), f"trial {trial}: no rollback point"
        stats["trials"] += 1
        stats["412"] += out["conflicts"]
        stats["dropped"] += out["dropped"]
        stats["attempts"][out["attempts"]] = stats["attempts"].get(out["attempts"], 0) + 1
        stats["outside_edits"] += 1 + trial % 3
        problems = lost_updates(caddy, outside, desired)
        if problems:
            stats["lost"] += 1
            failures.append((trial, problems))
        store.clear_pending(SERVER)

    # Caddy's side: the 412s it answered are the ones hecate and the guarded outside edit
    # counted (a dropped answer may have been one more), and every guarded PATCH of
    # hecate's it logged was refused or applied.
    caddy_412 = caddy_412s(caddy) - caddy_412_before
    patches = caddy.admin_writes().count(("PATCH", ROUTES_PATH)) - patches_before
    print(f"\ncaddy race: {stats['trials']} trials, {stats['outside_edits']} outside edits "
          f"({outside.dropped} outside requests dropped by Caddy and re-sent), "
          f"{stats['412']} x 412 seen by hecate (+{outside.conflicts} by the guarded outside edit; "
          f"{caddy_412} logged by Caddy), "
          f"{stats['dropped']} hecate writes dropped by Caddy, "
          f"attempts per apply {dict(sorted(stats['attempts'].items()))}, "
          f"{patches} guarded PATCHes logged by Caddy, {stats['lost']} lost updates")
    assert failures == [], failures[:5]
    assert stats["lost"] == 0
    assert stats["412"] + outside.conflicts <= caddy_412 <= (
        stats["412"] + outside.conflicts + stats["dropped"] + outside.dropped)
    assert TRIALS + stats["412"] <= patches <= TRIALS + stats["412"] + stats["dropped"]
    # the end state still holds every outside edit of all the trials
    assert len(outside.routes) > TRIALS // 2
    assert lost_updates(caddy, outside, desired) == []


# -- a write Caddy drops (it replaces its admin endpoint on every config change) ----------------------
def _reset(caddy):
    ch.reset(caddy)
    return hecate_caddy_client.CaddyAdmin(hecate_config.connection("caddy", overrides={"admin_url": caddy.admin_url}))


def _drop_first_write(admin, deliver):
    """The first write raises Unreachable, after (``deliver``) or instead of reaching Caddy."""
    real, calls = admin.write, []

    def write(*args, **kwargs):
        calls.append(args[:2])
        if len(calls) == 1:
            if deliver:
                real(*args, **kwargs)
            raise hecate_http.Unreachable("Caddy admin API at http://127.0.0.1 is unreachable: RemoteDisconnected")
        return real(*args, **kwargs)

    admin.write = write
    return calls


@pytest.mark.parametrize("landed", [True, False], ids=["answer-lost", "request-lost"])
def test_a_dropped_write_is_checked_not_guessed(race_caddy, tmp_path, landed):
    caddy = race_caddy
    admin = _reset(caddy)
    store = hecate_caddy_client.SnapshotStore(str(tmp_path / "state"))
    desired = hecate_caddy_routes.build(desired_data(1))
    calls = _drop_first_write(admin, deliver=landed)
    patches = caddy.admin_writes().count(("PATCH", ROUTES_PATH))
    out = hecate_caddy_apply.apply(admin, SERVER, lambda live: hecate_caddy_routes.plan_set(live, desired),
                                    test=False, store=store, known=[r.json for r in desired])
    assert out["written"] is True and out["dropped"] == 1 and out["conflicts"] == 0
    assert set(out["changes"]["added"]) == {"web", "t1", "x0"}  # reported as this run's change
    # landed: the next read showed it, nothing sent again; lost: sent again once
    assert len(calls) == (1 if landed else 2)
    assert caddy.admin_writes().count(("PATCH", ROUTES_PATH)) - patches == 1  # applied once
    assert store.pending()[SERVER] == [out["snapshot"]]  # exactly one rollback point, the live one
    assert lost_updates(caddy, Outside(caddy), desired) == []
    # and the rollback point undoes exactly that write
    assert len(hecate_caddy_apply.rollback(admin, store)["restored"]) == 1
    assert json.loads(ch.raw_config(caddy))["apps"]["http"]["servers"][SERVER]["routes"] == []


def test_dropped_writes_have_their_own_budget_and_fail_clearly(race_caddy):
    caddy = race_caddy
    admin = _reset(caddy)
    desired = hecate_caddy_routes.build(desired_data(1))
    admin.write = lambda *a, **k: (_ for _ in ()).throw(hecate_http.Unreachable("dropped"))
    with pytest.raises(hecate_http.Unreachable, match="dropped hecate's write 4 times.*nothing was written"):
        hecate_caddy_apply.apply(admin, SERVER, lambda live: hecate_caddy_routes.plan_set(live, desired),
                                  test=False, retries=3)
    assert json.loads(ch.raw_config(caddy))["apps"]["http"]["servers"][SERVER]["routes"] == []


def test_route_replace_by_id_is_guarded_against_a_concurrent_move(race_caddy):
    """
    ``caddy.route_replace``/``route_delete`` address a route by @id, which Caddy resolves
    to an index before it locks its config: they always send If-Match, so a change in
    between (here: a route inserted in front, moving every index) makes Caddy refuse and
    hecate retry on a fresh read, instead of replacing whatever then sits at that index.
    """
    caddy = race_caddy
    admin = _reset(caddy)
    outside = Outside(caddy)
    outside.seed("ops.a", "a.race.test")
    outside.seed("ops.b", "b.race.test")
    real_get, moved = admin.get, []

    def get(*parts):
        value = real_get(*parts)
        if not moved:
            moved.append(True)
            outside.edit("front", 0, 0)  # lands between hecate's read and its write
        return value

    admin.get = get
    refused = caddy_412s(caddy)
    new_b = static_route("ops.b", "b.race.test", "replaced")
    admin.write_id("PATCH", "ops.b", new_b)
    routes = {r["@id"]: r for r in json.loads(ch.raw_config(caddy))["apps"]["http"]["servers"][SERVER]["routes"]}
    assert routes["ops.b"] == new_b
    assert routes["ops.a"] == outside.routes["ops.a"] and routes["front.0.0"] == outside.routes["front.0.0"]
    assert caddy_412s(caddy) - refused == 1  # the first try, refused by Caddy; the retry applied
    # with the caller's own (stale) ETag a 412 is the caller's to handle
    _, stale = real_get()
    outside.edit("append", 1, 0)
    with pytest.raises(hecate_caddy_client.PreconditionFailed):
        admin.write_id("DELETE", "ops.b", etag=stale)
    admin.write_id("DELETE", "ops.b")
    assert "ops.b" not in {
        r["@id"] for r in json.loads(ch.raw_config(caddy))["apps"]["http"]["servers"][SERVER]["routes"]
    }


# -- two deployments at once: the environment lock ---------------------------------------------------
ROUNDS = 10
CONTENDERS = 4


def test_concurrent_lock_attempts_exactly_one_wins(consul_sim):
    """
    ``hecate.lock`` is ``lock_acquire`` on ``hecate/locks/<env>``: race it. In every round
    exactly one contender gets the lock; each other one fails with the winner's name.
    """
    key = "hecate/locks/race"
    settings = {"url": consul_sim.url, "retries": 0}
    token = hecate_secrets.Secret(consul_sim.token)
    winners_per_round = []
    for rnd in range(ROUNDS):
        clients = [hecate_consul_client.ConsulClient(settings, token=token) for _ in range(CONTENDERS)]
        barrier = threading.Barrier(CONTENDERS)
        results = [None] * CONTENDERS

        def contend(i, client=None, rnd=rnd, barrier=barrier, results=results):
            barrier.wait(10)
            try:
                # as the runner's hecate.lock takes it (ttl LOCK_TTL, default lock-delay, no wait)
                results[i] = ("won", client.lock_acquire(key, f"runner-{i} run r{rnd}", ttl="20m"))
            except Exception as exc:  # noqa: B023  pylint: disable=broad-except
                results[i] = ("lost", exc)  # noqa: B023 (its own except variable)

        threads = [threading.Thread(target=contend, args=(i,), kwargs={"client": c}) for i, c in enumerate(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        won = [i for i, r in enumerate(results) if r and r[0] == "won"]
        winners_per_round.append(len(won))
        assert len(won) == 1, (rnd, results)
        winner = won[0]
        for i, (_outcome, exc) in enumerate(results):
            if i == winner:
                continue
            assert isinstance(exc, hecate_consul_client.LockHeld), (rnd, i, exc)
            assert f"held by runner-{winner} run r{rnd} since" in str(exc), str(exc)
        info = clients[winner].lock_info(key)
        assert info["held"] and info["holder"] == f"runner-{winner} run r{rnd}"
        clients[winner].lock_release(key, results[winner][1])
        assert clients[winner].lock_info(key)["held"] is False
    print(f"\nlock race: {ROUNDS} rounds x {CONTENDERS} contenders, winners per round {winners_per_round}")
