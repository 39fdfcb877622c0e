"""Proofs of the near cache (issue 12) under uWSGI with 2 workers and real servers, from a
client's side: what each worker answers over HTTP after a key changed somewhere else.

Each worker is reached through a connection of its own (servers.Workers), and the test WSGI
file's /t/near route says, with each value, whether the worker served it from its near memory.
So every round first sees BOTH workers serve the old value from memory, then changes it, then
watches what each serves: an invalidation that does not work shows as a stale answer.
Keys and values are made by hypothesis (derandomized, no shrinking: a server test stays fast)."""

import importlib.util
import itertools
import secrets
import statistics
import time
from contextlib import contextmanager
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from . import servers
from .test_outages import PACKAGE, RETRY_TRACKING, app_env

BOUND = 0.050  # redis: a change made elsewhere is served by both workers this soon (loopback)
ROUNDS = 1000
NEAR_TTL = 1.0  # memcached: CACHE_NEAR_TTL
SLACK = 0.25  # scheduling slack on top of it

# The default bake's app, with routes that read, write and delete keys given as repeated
# key= (and value=) arguments. /t/near answers each value's repr and whether it came from the
# near memory: the entry (expires, pickle) was fresh before the read and is the same object
# after it (a fetch from the server would have replaced it). With twice=1 each key is read once
# before, so the answer says whether the worker now holds it.
NEAR_WSGI = f"""
import os, sys, time
sys.path.insert(0, os.environ["PROJECT_HOME"])
from flask import request
from pythonanywhere_wsgi import application
from {PACKAGE}.cache import cache

def memory():
    return getattr(cache.cache.guarded, "entries", {{}})  # what the breaker guards: the near cache

@application.get("/t/near")
def read():
    values, served = [], []
    for key in request.args.getlist("key"):
        if request.args.get("twice"):
            cache.get(key)
        before = memory().get(cache.cache.storable(key))  # memory knows it as the server does
        fresh = before is not None and time.monotonic() < before[0]
        value = cache.get(key)
        values.append(repr(value))
        served.append(fresh and memory().get(cache.cache.storable(key)) is before)
    return {{"pid": os.getpid(), "values": values, "memory": served}}

@application.get("/t/set")
def write():
    for key, value in zip(request.args.getlist("key"), request.args.getlist("value"), strict=True):
        cache.set(key, value)
    return {{"pid": os.getpid()}}

@application.get("/t/delete")
def delete():
    for key in request.args.getlist("key"):
        cache.delete(key)
    return {{"pid": os.getpid()}}
"""

# Values as an app caches them (text, bytes, numbers, containers), tagged by the test so that
# old and new always differ. No sets: their repr depends on each process's hash seed.
VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20) | st.binary(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)
REDIS_KEYS = st.text(min_size=1, max_size=30)  # any text: controls, quotes, globs, emoji
# memcached (pymemcache) stores ASCII keys without spaces or controls only; the others are refused.
MEMCACHED_KEYS = st.text(st.characters(min_codepoint=0x22, max_codepoint=0x7E), min_size=1, max_size=30)
SERVER_TEST = settings(
    derandomize=True,
    database=None,
    deadline=None,
    phases=(Phase.explicit, Phase.generate),
    suppress_health_check=list(HealthCheck),
)


def play(round_, examples: int, **strategies) -> list[str]:
    """Play ``round_`` once per example hypothesis draws from ``strategies``; the failures. The
    first failure ends the game: hypothesis would replay a failing example to report it, but a
    round changes servers and workers, so a replay fails differently (or not at all)."""
    failures: list[str] = []

    @settings(SERVER_TEST, max_examples=examples)
    @given(**strategies)
    def one(**drawn):
        if not failures:
            try:
                round_(**drawn)
            except AssertionError as error:
                failures.append(f"{error} (drawn: {drawn!r})")

    one()
    return failures


@pytest.fixture(scope="module")
def project(bake):
    return bake()


@contextmanager
def near_app(project, workdir, **settings):
    """The app under uWSGI (2 workers), with its own prefix and signing key; yield
    (url, prefix, signing key)."""
    prefix, key = f"near-{secrets.token_hex(4)}:", secrets.token_hex(32)
    (workdir / "near_wsgi.py").write_text(NEAR_WSGI)
    env = app_env(project, CACHE_KEY_PREFIX=prefix, CACHE_SIGNING_KEY=key, **settings)
    with servers.uwsgi(workdir / "near_wsgi.py", env, workdir / "uwsgi.log") as url:
        yield url, prefix, key


def baked_module(project, name: str):
    """A module of the baked cache package that imports nothing of the app, loaded by file."""
    path = project / PACKAGE / "cache" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"near_{name}_{abs(hash(path))}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def signed_serializer(project, key: str):
    """The baked package's SignedRedisSerializer, keyed as the app is: what it writes, the app
    reads as its own."""
    module = baked_module(project, "signing")
    return module.SignedRedisSerializer(module.Signer(key))


def query(keys, values=(), **extra) -> str:
    return urlencode([*(("key", key) for key in keys), *(("value", v) for v in values), *extra.items()])


class RedisApp:
    """The app on a redis-server of its own (CLIENT KILL touches nothing else), and a client of
    that server outside the app, which writes as the app does."""

    def __init__(self, url, port, prefix, serializer, keys):
        import redis

        self.url, self.prefix, self.serializer, self.keys = url, prefix, serializer, keys
        self.client = redis.Redis(port=port)

    def write(self, key: str, value) -> None:
        """Set (signed as the app signs, under the full name the app gives the key: keys.py), or
        delete when value is None."""
        name = self.prefix + self.keys.storable(key, self.keys.utf8)
        if value is None:
            self.client.delete(name)
        else:
            self.client.set(name, self.serializer.dumps(value, name=name))

    def near_clients(self) -> list[dict]:
        return [c for c in self.client.client_list() if c["name"] == "near-cache"]


@pytest.fixture(scope="module")
def redis_app(project, tmp_path_factory):
    port = servers.free_port()
    server = servers.start_server("redis", port)
    workdir = tmp_path_factory.mktemp("near-redis")
    try:
        settings = {"CACHE_TYPE": "redis", "REDIS_URL": f"redis://127.0.0.1:{port}/0"}
        with near_app(project, workdir, **settings) as (url, prefix, key):
            yield RedisApp(url, port, prefix, signed_serializer(project, key), baked_module(project, "keys"))
    finally:
        server.kill()
        server.wait()


def hold_in_memory(workers, keys, expected: list[str]) -> None:
    """Each worker serves ``expected`` (reprs) for ``keys`` from its near memory."""
    for worker in range(2):
        for _ in range(5):  # an invalidation of the write just made may still be arriving
            status, body, _ = workers.get(worker, f"/t/near?{query(keys, twice=1)}")
            assert status == 200, body
            if body["values"] == expected and all(body["memory"]):
                break
        else:
            raise AssertionError(f"worker {worker} does not hold {expected} in memory: {body}")


def wait_for_tracking(workers, seconds: float) -> float:
    """Seconds until /health says near mode tracking in both workers."""
    started = time.monotonic()
    waiting = {0, 1}
    while waiting and time.monotonic() - started < seconds:
        for worker in sorted(waiting):
            if workers.get(worker, "/health")[1]["cache"]["near"]["mode"] == "tracking":
                waiting.discard(worker)
        time.sleep(0.02)
    assert not waiting, f"worker(s) {waiting} not tracking again within {seconds}s"
    return time.monotonic() - started


@pytest.mark.xdist_group("near-redis")
def test_redis_a_change_made_elsewhere_reaches_both_workers_within_50ms(redis_app):
    """1,000 rounds: both workers hold a key's old value in memory; the test (a process outside
    the app, writing signed values with redis-py) sets or deletes it; each worker's next request
    must serve the new value or a miss. A stale answer to a request sent more than BOUND after
    the write is a failure; one sent earlier is counted and reported."""
    counter = itertools.count()
    early_stale, latencies = [], []
    with servers.Workers(redis_app.url) as workers:
        wait_for_tracking(workers, seconds=3)

        def round_(key, old, new):
            n = next(counter)
            old = (n, "old", old)
            new = None if new is None else (n, "new", new)  # None: the test deletes the key
            redis_app.write(key, old)
            hold_in_memory(workers, [key], [repr(old)])
            redis_app.write(key, new)
            written = time.monotonic()
            for worker in range(2):
                while True:
                    _, body, sent = workers.get(worker, f"/t/near?{query([key])}")
                    if body["values"] == [repr(new)]:
                        latencies.append(time.monotonic() - written)
                        break
                    assert body["values"] == [repr(old)], body
                    assert sent - written <= BOUND, (
                        f"worker {worker} served {body['values']} {sent - written:.3f}s after "
                        f"{key!r} changed to {new!r}"
                    )
                    early_stale.append((n, worker))

        failures = play(round_, ROUNDS, key=REDIS_KEYS, old=VALUES, new=st.one_of(st.none(), VALUES))
    rounds = next(counter)
    latencies.sort()
    print(
        f"\nredis coherence: {rounds} rounds, {len(latencies)} fresh answers; stale within "
        f"{BOUND * 1000:.0f} ms: {len(early_stale)}; fresh answer received after the write: "
        f"median {statistics.median(latencies or [0]) * 1000:.2f} ms, max "
        f"{max(latencies or [0]) * 1000:.2f} ms"
    )
    assert not failures, f"round {rounds - 1}: {failures[0]}"
    assert rounds == ROUNDS


@pytest.mark.xdist_group("near-redis")
def test_redis_killed_tracking_connection_serves_nothing_stale_and_comes_back(redis_app):
    """The server drops the tracking connections (CLIENT KILL, of one worker or both): a write
    made right after is served by both workers at their next request, and each is tracking
    again (/health) within RETRY_TRACKING and a bit; then invalidations work again."""
    counter = itertools.count()
    back_in: list[float] = []
    with servers.Workers(redis_app.url) as workers:
        wait_for_tracking(workers, seconds=3)

        def round_(key, old, new, kill):
            n = next(counter)
            old, new, again = (n, "old", old), None if new is None else (n, "new", new), (n, "again")
            redis_app.write(key, old)
            hold_in_memory(workers, [key], [repr(old)])
            tracked = redis_app.near_clients()
            assert len(tracked) == 2, tracked  # one tracking connection per worker
            for client in tracked[:kill]:
                redis_app.client.client_kill_filter(_id=client["id"])
            redis_app.write(key, new)
            for worker in range(2):
                body = workers.get(worker, f"/t/near?{query([key])}")[1]
                assert body["values"] == [repr(new)], f"worker {worker} after CLIENT KILL: {body}"
            back_in.append(wait_for_tracking(workers, seconds=RETRY_TRACKING + 2))
            assert len(redis_app.near_clients()) == 2
            for worker in range(2):  # what memory held before the loss is not served again
                body = workers.get(worker, f"/t/near?{query([key])}")[1]
                assert body["values"] == [repr(new)], f"worker {worker} tracking again: {body}"
            # Tracking again: a change made elsewhere reaches both workers' memory again.
            redis_app.write(key, old)
            hold_in_memory(workers, [key], [repr(old)])
            redis_app.write(key, again)
            time.sleep(BOUND)
            for worker in range(2):
                body = workers.get(worker, f"/t/near?{query([key])}")[1]
                assert body["values"] == [repr(again)], f"worker {worker} after tracking came back: {body}"

        kills = st.sampled_from([1, 2])  # one worker's tracking connection, or both
        failures = play(round_, 3, key=REDIS_KEYS, old=VALUES, new=st.one_of(st.none(), VALUES), kill=kills)
    print(f"\ntracking killed {len(back_in)} times; back in {', '.join(f'{s:.2f}s' for s in back_in)}")
    assert not failures, failures[0]


def test_memcached_near_ttl_bounds_what_other_workers_serve(project, tmp_path, memcached_servers):
    """CACHE_NEAR_TTL on memcached: one worker sets or deletes keys through the app while both
    hold their old values in memory. That worker never serves an old value afterwards; the
    other may (memcached pushes nothing), but no worker does later than NEAR_TTL + SLACK after
    the change."""
    counter = itertools.count()
    report: list[str] = []
    settings_ = {
        "CACHE_TYPE": "memcached",
        "MEMCACHED_SERVERS": memcached_servers,
        "CACHE_NEAR_TTL": str(NEAR_TTL),
    }
    with near_app(project, tmp_path, **settings_) as (url, _, _), servers.Workers(url) as workers:
        assert workers.get(0, "/health")[1]["cache"]["near"]["mode"] == "ttl"

        def round_(changes, changer):
            n = next(counter)
            keys = list(changes)
            old = [f"{n} old {value}" for value, _ in changes.values()]
            new = {k: None if v is None else f"{n} new {v}" for k, (_, v) in changes.items()}
            assert workers.get(changer, f"/t/set?{query(keys, old)}")[0] == 200
            hold_in_memory(workers, keys, [repr(v) for v in old])
            sets = {k: v for k, v in new.items() if v is not None}
            assert workers.get(changer, f"/t/set?{query(sets, sets.values())}")[0] == 200
            assert workers.get(changer, f"/t/delete?{query([k for k in new if k not in sets])}")[0] == 200
            changed = time.monotonic()
            stale: dict[int, list[float]] = {0: [], 1: []}
            while time.monotonic() - changed < NEAR_TTL + SLACK + 0.2:
                for worker in range(2):
                    body, sent = workers.get(worker, f"/t/near?{query(keys)}")[1:]
                    for value, was, now in zip(body["values"], old, new.values(), strict=True):
                        if value == repr(was):
                            stale[worker].append(sent - changed)
                        else:
                            assert value == repr(now), body
                time.sleep(0.02)
            other = 1 - changer
            report.append(
                f"{len(keys)} keys: the other worker served old values for up to "
                f"{max(stale[other], default=0):.3f}s after the change"
            )
            assert stale[changer] == [], (
                f"the worker that changed them served old values {stale[changer][:3]}s after"
            )
            latest = max(stale[other], default=0)
            assert latest <= NEAR_TTL + SLACK, f"old values served {latest:.3f}s after the change"
            assert stale[other], "the other worker served from its near memory (else this proves nothing)"

        # Keys, each with its old value and its new one (None: deleted), changed by one worker.
        values = st.tuples(st.text(max_size=20), st.none() | st.text(max_size=20))
        changes = st.dictionaries(MEMCACHED_KEYS, values, min_size=1, max_size=8)
        failures = play(round_, 3, changes=changes, changer=st.sampled_from([0, 1]))
    print("\nmemcached near TTL:", "; ".join(report))
    assert not failures, failures[0]


def test_redis_at_its_connection_limit_serves_plain_reads_with_one_line_per_refused_worker(project, tmp_path):
    """A real redis-server with maxclients 3 and 2 workers, each wanting a data connection and
    a tracking one: whatever the order, the fourth connection is a tracking one (each worker's
    data connection comes first), so one worker tracks and the other is refused. That worker
    serves plain reads with a closed breaker, says why in /health, and logs it once, however
    often it asks again."""
    port = servers.free_port()
    server = servers.start_server("redis", port, "--maxclients", "3")
    try:
        settings = {"CACHE_TYPE": "redis", "REDIS_URL": f"redis://127.0.0.1:{port}/0"}
        with near_app(project, tmp_path, **settings) as (url, _, _), servers.Workers(url) as workers:
            health = [workers.get(worker, "/health")[1]["cache"] for worker in range(2)]
            assert sorted(h["near"]["mode"] for h in health) == ["off", "tracking"], health
            refused = next(w for w in range(2) if health[w]["near"]["mode"] == "off")
            tracking = 1 - refused
            for n in range(4):  # more than 3 s: it asked again at 1 and 2 s, and was refused
                value = f"value {n}"
                assert workers.get(tracking, f"/t/set?{query(['k'], [value])}")[0] == 200
                assert workers.get(refused, f"/t/near?{query(['k'])}")[1]["values"] == [repr(value)]
                time.sleep(1)
            cache = workers.get(refused, "/health")[1]["cache"]
            assert (cache["breaker"], cache["near"]["mode"]) == ("closed", "off"), cache
            assert "max number of clients reached" in cache["near"]["why"], cache
        log = (tmp_path / "uwsgi.log").read_text().splitlines()
        said = [line for line in log if "without tracking" in line]
        assert len(said) == 1 and "max number of clients reached" in said[0], said
    finally:
        server.kill()
        server.wait()
