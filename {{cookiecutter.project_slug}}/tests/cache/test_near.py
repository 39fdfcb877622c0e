"""The near cache (cache/near.py): each worker's memory in front of a shared backend.

The behaviour tests every backend passes (common.py) run again here with the near cache in its
TTL mode on memcached, filesystem and upstash; redis runs them in test_redis.py, where tracking
is on by default. The tests below prove what the near cache adds: hits served from memory, every
change made elsewhere seen (at once with tracking, within CACHE_NEAR_TTL without), its bounds,
and what happens when the server refuses tracking or the tracking connection is lost.
"""

import inspect
import os
import threading
import time
import uuid
from functools import partial
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis
from flask_caching.backends.base import BaseCache
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from {{ cookiecutter.package_name }}.cache.near import (
    HEARTBEAT,
    MAX_ENTRY_BYTES,
    MAX_RETRY_TRACKING,
    PING_AFTER,
    RETRY_TRACKING,
    Near,
)

from .common import ClearTests, CommonTests, OutageTests
from .conftest import host_and_port
from .relay import Relay

# How long a change made by another client may take to reach a worker over loopback: the
# server's notice crosses the machine in microseconds; the margin is for a loaded CI machine.
NOTICE = 0.05


def near_of(cache) -> Near:
    assert isinstance(cache.guarded, Near), "the near cache is in front of the backend"
    return cache.guarded


def seen_within(read, expected, seconds: float = NOTICE) -> bool:
    """Whether ``read()`` gives ``expected`` before ``seconds`` have passed."""
    deadline = time.monotonic() + seconds
    while read() != expected:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.001)
    return True


def tracking_mode(cache) -> str:
    """The near cache's mode after a read."""
    cache.get("a read")
    return cache.status()["near"]["mode"]


def count_reads(near: Near, monkeypatch) -> list[str]:
    """The reads that reach the backend past the near cache, by name."""
    calls: list[str] = []
    for name in ("get", "get_with_ttl", "get_many", "has"):
        if hasattr(near.server, name):
            original = getattr(near.server, name)

            def counted(*args, _original=original, _name=name):
                calls.append(_name)
                return _original(*args)

            monkeypatch.setattr(near.server, name, counted)
    return calls


# The common behaviour, with the near cache in its TTL mode.
NEAR_TTL = "30"


class TestMemcachedNearTtl(CommonTests, ClearTests, OutageTests):
    pytestmark = pytest.mark.memcached
    backend, settings = "memcached", {"CACHE_NEAR_TTL": NEAR_TTL}

    @pytest.fixture
    def cache_factory(self, new_app_cache, server_settings):
        return partial(new_app_cache, **server_settings("memcached"), CACHE_NEAR_TTL=NEAR_TTL)


class TestFilesystemNearTtl(CommonTests, ClearTests):
    @pytest.fixture
    def cache_factory(self, new_app_cache, server_settings):
        return partial(new_app_cache, **server_settings("filesystem"), CACHE_NEAR_TTL=NEAR_TTL)


class TestUpstashNearTtl(CommonTests, ClearTests):
    pytestmark = pytest.mark.redis

    @pytest.fixture
    def cache_factory(self, new_app_cache, server_settings):
        return partial(new_app_cache, **server_settings("upstash"), CACHE_NEAR_TTL=NEAR_TTL)


# What the near cache is, whatever the backend.
def test_near_answers_every_call_of_the_cache_api_itself():
    """A call Near inherited from BaseCache would answer a miss or do nothing: every public one is
    its own (and reaches the backend, or forgets the keys it writes)."""
    public = [name for name, _ in inspect.getmembers(BaseCache, inspect.isfunction)]
    inherited = [
        name
        for name in public
        if not name.startswith("_") and getattr(Near, name) is getattr(BaseCache, name)
    ]
    assert inherited == []


@pytest.mark.parametrize(
    "backend, settings",
    [
        pytest.param("redis", {}, marks=pytest.mark.redis),  # tracking
        pytest.param("upstash", {"CACHE_NEAR_TTL": NEAR_TTL}, marks=pytest.mark.redis),
        pytest.param("memcached", {"CACHE_NEAR_TTL": NEAR_TTL}, marks=pytest.mark.memcached),
        pytest.param("filesystem", {"CACHE_NEAR_TTL": NEAR_TTL}),
    ],
)
def test_locks_pass_the_near_cache_to_the_server(new_app_cache, server_settings, backend, settings):
    """A lock is the server's, whatever memory holds: each call goes to it, nothing is kept."""
    shared = {**server_settings(backend), **settings, "CACHE_KEY_PREFIX": f"{uuid.uuid4()}:"}
    mine, theirs = new_app_cache(**shared), new_app_cache(**shared)
    for _ in range(3):
        assert mine.lock("page.lock", 60)
        assert not mine.lock("page.lock", 60) and not theirs.lock("page.lock", 60)
        mine.unlock("page.lock")
    assert theirs.lock("page.lock", 60) and not mine.lock("page.lock", 60)
    assert near_of(mine).entries == {} and near_of(theirs).entries == {}
    assert mine.status()["breaker"] == theirs.status()["breaker"] == "closed"


@pytest.mark.parametrize(
    "backend, settings, mode",
    [
        pytest.param("redis", {}, "tracking", marks=pytest.mark.redis),
        pytest.param("redis", {"CACHE_NEAR_TRACKING": "off"}, "off", marks=pytest.mark.redis),
        pytest.param(
            "redis",
            {"CACHE_NEAR_TRACKING": "off", "CACHE_NEAR_TTL": "2"},
            "ttl",
            marks=pytest.mark.redis,
        ),
        pytest.param("memcached", {}, "off", marks=pytest.mark.memcached),
        pytest.param("memcached", {"CACHE_NEAR_TTL": "0.5"}, "ttl", marks=pytest.mark.memcached),
        pytest.param("upstash", {}, "off", marks=pytest.mark.redis),
        pytest.param("upstash", {"CACHE_NEAR_TTL": "2"}, "ttl", marks=pytest.mark.redis),
        ("filesystem", {"CACHE_NEAR_TTL": "2"}, "ttl"),
        ("simple", {"CACHE_NEAR_TTL": "2"}, "off"),
    ],
)
def test_health_says_the_mode_and_why(tmp_path, server_settings, backend, settings, mode):
    from .conftest import make_app

    client = make_app(tmp_path, **server_settings(backend), **settings).test_client()
    client.get("/health")  # with tracking, it starts; the next call reads the server's yes
    near = client.get("/health").get_json()["cache"]["near"]
    assert near["mode"] == mode
    assert near["why"], "it says why"


# Redis: tracking.
@pytest.fixture
def redis_cache(new_app_cache, server_settings):
    """make(**settings): an app's cache on the test Redis, with tracking (the default), started:
    as in a worker, by its first read, which goes to the server."""

    def make(**more):
        cache = new_app_cache(**server_settings("redis"), **more)
        # The first read starts tracking; a later call reads the server's confirmation.
        assert seen_within(lambda: tracking_mode(cache), "tracking", 1), cache.status()["near"]
        return cache

    return make


@pytest.fixture
def other(new_app_cache, server_settings):
    """other(cache): another process writing the same keys (no near cache of its own)."""
    return lambda cache: new_app_cache(
        **server_settings("redis"),
        CACHE_KEY_PREFIX=cache.server.key_prefix,
        CACHE_NEAR_TRACKING="off",
    )


@pytest.fixture
def server(redis_url):
    return redis.Redis.from_url(redis_url)


@pytest.mark.redis
def test_a_repeated_hit_is_served_from_memory(redis_cache, monkeypatch):
    cache = redis_cache()
    cache.set("page", "<p>hello</p>")
    assert cache.get("page") == "<p>hello</p>"  # read once from Redis, with its TTL
    reads = count_reads(near_of(cache), monkeypatch)
    assert [cache.get("page") for _ in range(100)] == ["<p>hello</p>"] * 100
    assert cache.has("page")
    assert reads == [], "no round trip"
    assert cache.status()["near"]["mode"] == "tracking"


@pytest.mark.redis
def test_a_value_a_caller_changes_is_not_changed_in_memory(redis_cache):
    cache = redis_cache()
    cache.set("list", [1, 2])
    cache.get("list").append(3)
    assert cache.get("list") == [1, 2]
    cache.get("list").append(3)  # now from memory
    assert cache.get("list") == [1, 2]


# Another client's changes, generated: after each step, the app reads what Redis holds, within
# the notice's time, whatever it had in memory.
KEYS = st.sampled_from(["a", "b", "c"])
STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("read"), KEYS),
        st.tuples(st.just("set"), KEYS, st.integers(0, 9)),
        st.tuples(st.just("other set"), KEYS, st.integers(0, 9)),
        st.tuples(st.just("other delete"), KEYS),
        st.tuples(st.just("raw delete"), KEYS),
        st.tuples(st.just("other clear")),
        st.tuples(st.just("plant"), KEYS),
    ),
    max_size=25,
)


@pytest.mark.redis
@settings(max_examples=30, deadline=None, derandomize=True, database=None)
@given(steps=STEPS)
def test_every_change_made_elsewhere_is_seen_at_the_next_read(redis_url, tmp_path_factory, steps):
    from .conftest import cache_behind, make_app

    tmp = tmp_path_factory.mktemp("near")
    cache = cache_behind(make_app(tmp, CACHE_TYPE="redis", REDIS_URL=redis_url))
    prefix = cache.server.key_prefix
    writer = cache_behind(
        make_app(
            tmp,
            CACHE_TYPE="redis",
            REDIS_URL=redis_url,
            CACHE_KEY_PREFIX=prefix,
            CACHE_NEAR_TRACKING="off",
        )
    )
    raw = redis.Redis.from_url(redis_url)
    for key in "abc":
        cache.get(key)
    for step in steps:
        action, key = step[0], step[1] if len(step) > 1 else None
        if action == "read":
            cache.get(key)
        elif action == "set":
            cache.set(key, step[2])
        elif action == "other set":
            writer.set(key, step[2])
        elif action == "other delete":
            writer.delete(key)
        elif action == "raw delete":
            raw.delete(prefix + key)
        elif action == "other clear":
            writer.clear()
        else:  # someone with write access puts an unsigned value there: a miss
            raw.set(prefix + key, b"12")
        for name in "abc":
            truth = writer.get(name)
            assert seen_within(lambda name=name: cache.get(name), truth), (step, name, truth)
    writer.clear()


@pytest.mark.redis
def test_threads_never_keep_a_value_older_than_the_last_change(redis_cache, other):
    """Reads that fetched a value just before another client changed it race with the notice of
    that change: none may leave the old value in memory once the notice was applied."""
    cache = redis_cache()
    writer = other(cache)
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            cache.get("k")

    readers = [threading.Thread(target=read) for _ in range(4)]
    for thread in readers:
        thread.start()
    stale = []
    try:
        for value in range(300):
            writer.set("k", value)
            if not seen_within(lambda: cache.get("k"), value):
                stale.append(value)
    finally:
        stop.set()
        for thread in readers:
            thread.join()
    assert stale == []


@pytest.mark.redis
def test_an_entry_ends_when_its_key_expires_on_the_server(redis_cache, other, clock):
    cache = redis_cache()
    near = near_of(cache)
    near.clock = clock
    other(cache).set("k", "soon gone", timeout=5)
    assert cache.get("k") == "soon gone"
    expires, _ = near.entries["k"]
    assert clock.now + 4 < expires <= clock.now + 5, "memory keeps it no longer than Redis does"
    clock.advance(5)
    assert "k" in near.entries
    cache.get("k")  # past its expiry: read from Redis again (which still has it: real time)
    assert near.entries["k"][0] > clock.now


def tracking_client(server, near: Near) -> dict:
    """This worker's tracking connection, as the server lists it."""
    host, port = near.tracking.conn._sock.getsockname()[:2]
    local = f"{host}:{port}"
    [client] = [c for c in server.client_list() if c["addr"] == local]
    return client


@pytest.mark.redis
def test_the_tracking_connection_is_named_and_tracks_the_prefix(redis_cache, server):
    cache = redis_cache()
    cache.get("k")
    client = tracking_client(server, near_of(cache))
    assert client["name"] == "near-cache"
    assert "t" in client["flags"] and client["resp"] == "3"


@pytest.mark.redis
def test_a_lost_tracking_connection_empties_memory_until_it_is_back(
    new_app_cache, server_settings, other, server, clock
):
    cache = new_app_cache(**server_settings("redis"))
    near = near_of(cache)
    near.tracking.clock = clock  # before tracking starts: its heartbeat is on this clock
    assert seen_within(lambda: tracking_mode(cache), "tracking", 1)
    writer = other(cache)
    writer.set("k", "old")
    assert cache.get("k") == "old" and "k" in near.entries
    server.client_kill_filter(_id=tracking_client(server, near)["id"])
    writer.set("k", "new")  # no notice can reach this worker now
    assert seen_within(lambda: cache.get("k"), "new")
    assert near.entries == {}
    assert cache.status()["near"]["mode"] == "off"
    assert "lost" in cache.status()["near"]["why"]
    writer.set("k", "newer")
    assert cache.get("k") == "newer", "read from Redis while tracking is off"
    clock.advance(RETRY_TRACKING)
    assert cache.get("k") == "newer"  # tracking starts again on this call
    assert seen_within(lambda: tracking_mode(cache), "tracking", 1)
    writer.set("k", "newest")
    assert seen_within(lambda: cache.get("k"), "newest")


@pytest.mark.redis
def test_a_silently_dropped_tracking_connection_costs_at_most_the_heartbeat(
    new_app_cache, server_settings, redis_url, other, clock
):
    """A NAT or firewall that forgets a connection drops what the server sends, and says
    nothing: no invalidation arrives, and no error either. Memory serves only while a PING sent
    less than HEARTBEAT seconds ago was answered."""
    relay = Relay(*host_and_port(redis_url))
    try:
        cache = new_app_cache(
            **server_settings("redis", port=relay.port),
            CACHE_SOCKET_TIMEOUT="0.2",
            CACHE_RETRY_AFTER="0",
        )
        near = near_of(cache)
        near.tracking.clock = clock
        cache.get("first read")  # tracking starts, through the relay
        writer = other(cache)  # straight to Redis, past the relay
        writer.set("k", "old")
        assert cache.get("k") == cache.get("k") == "old"
        relay.freeze()
        writer.set("k", "new")  # its invalidation is held
        clock.advance(PING_AFTER - 0.1)
        assert cache.get("k") == "old", "the documented window: less than HEARTBEAT"
        clock.advance(HEARTBEAT - PING_AFTER + 0.1)
        assert cache.get("k") != "old", "past it, memory serves nothing (Redis is out of reach)"
        clock.advance(HEARTBEAT)
        assert cache.get("k") != "old"
        assert near.tracking.conn is None, "a PING unanswered for HEARTBEAT loses the link"
        assert "no answer to a PING" in near.tracking.why_off
        relay.thaw()
        clock.advance(RETRY_TRACKING)
        assert seen_within(lambda: cache.get("k"), "new", 2.0)
        assert seen_within(lambda: tracking_mode(cache), "tracking", 2.0)
    finally:
        relay.thaw()
        relay.cut()


@pytest.mark.redis
def test_after_a_quiet_spell_memory_serves_once_the_server_answered(
    new_app_cache, server_settings, clock, monkeypatch
):
    cache = new_app_cache(**server_settings("redis"))
    near = near_of(cache)
    near.tracking.clock = clock
    cache.set("k", 1)
    assert cache.get("k") == cache.get("k") == 1  # tracking started, then kept in memory
    reads = count_reads(near, monkeypatch)
    clock.advance(3600)  # nobody asked for an hour: the link may have died meanwhile
    assert cache.get("k") == 1
    assert reads == ["get"], "read from Redis while a PING asks whether the link lives"

    def from_memory() -> bool:
        before = len(reads)
        assert cache.get("k") == 1
        return len(reads) == before

    assert seen_within(from_memory, True), "its answer lets memory serve again"
    assert cache.status()["near"]["mode"] == "tracking"


@pytest.mark.redis
def test_a_key_that_is_not_str_is_invalidated_in_memory(redis_cache, other):
    """The server knows the key 42 as "42": so does memory, or an invalidation misses it."""
    cache = redis_cache()
    writer = other(cache)
    assert cache.set(42, "old") and cache.get(42) == "old" and cache.get(42) == "old"
    writer.delete("42")  # another process, by the name the server has
    assert seen_within(lambda: cache.get(42), None), "served after it was deleted"
    assert not cache.has(42)


@pytest.mark.redis
def test_a_flush_empties_memory(redis_cache):
    cache = redis_cache()
    near = near_of(cache)
    cache.set("k", 1)
    cache.get("k")
    near.tracking._invalidated([b"invalidate", None])  # what FLUSHDB sends every tracker
    assert near.entries == {}


def with_db(url: str, db: int) -> str:
    """``url`` on database ``db``, its options (a TLS run's CA file) kept."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{db}"))


@pytest.fixture
def swappable(redis_url, server):
    """(mine, spare): two databases of the test server that no other test uses, to SWAPDB while
    holding a lock key in the suite's own database. SWAPDB swaps whole databases for every client
    of the server, so never the one TEST_REDIS_URL names (every other test's): the two highest of
    a default server's 16 but that one. The lock keeps two runs that share the server (xdist, CI
    jobs) from swapping at once. A server that refuses SWAPDB (ACLs, a proxy) skips the test."""
    used = server.connection_pool.connection_kwargs.get("db", 0)
    mine, spare = [db for db in (15, 14, 13) if db != used][:2]
    token = uuid.uuid4().hex
    deadline = time.monotonic() + 60
    while not server.set("test-near:swapdb-lock", token, nx=True, ex=30):
        assert time.monotonic() < deadline, "another run held the SWAPDB lock for a minute"
        time.sleep(0.05)
    try:
        server.swapdb(mine, spare)
        server.swapdb(mine, spare)
    except redis.ResponseError as error:
        server.delete("test-near:swapdb-lock")
        pytest.skip(f"the test server refuses SWAPDB: {error}")
    yield with_db(redis_url, mine), with_db(redis_url, spare)
    if server.get("test-near:swapdb-lock") == token.encode():
        server.delete("test-near:swapdb-lock")


@pytest.mark.redis
def test_after_a_swapdb_memory_serves_the_old_value(swappable, new_app_cache, clock):
    """SWAPDB sends tracking no notice (Redis 7.0; FLUSHDB, FLUSHALL, MOVE, COPY and RENAME do,
    test_a_move_copy_or_rename_is_seen): a worker whose database is swapped under it serves
    what it held in memory, not what the server now holds, for as long as its heartbeat is
    answered, and again after a quiet spell's PING is answered. Only a reload reads the new
    database. docs/caching.md ("The near cache") says so: hosted Redis serves db 0 only and has
    no SWAPDB; on your own server, do not SWAPDB under a live app's database, or reload it."""
    mine, spare = swappable
    prefix = f"swap-{uuid.uuid4().hex[:12]}:"
    settings = {"CACHE_TYPE": "redis", "CACHE_KEY_PREFIX": prefix}
    plain = {**settings, "CACHE_NEAR_TRACKING": "off"}
    # First the value the swap brings in: its write's notice goes to every tracker of the prefix,
    # in any database (tracking goes by key name), so it comes before the worker reads.
    new_app_cache(**plain, REDIS_URL=spare).set("page", "new")
    cache = new_app_cache(**settings, REDIS_URL=mine)
    near = near_of(cache)
    near.tracking.clock = clock
    cache.set("page", "old")
    assert cache.get("page") == cache.get("page") == "old"  # tracking started, kept in memory
    assert cache.status()["near"]["mode"] == "tracking"
    server = redis.Redis.from_url(mine)
    try:
        server.swapdb(int(urlsplit(mine).path[1:]), int(urlsplit(spare).path[1:]))
        assert new_app_cache(**plain, REDIS_URL=mine).get("page") == "new", "the server's now"
        time.sleep(NOTICE)  # time for a notice, had the server sent one
        assert [cache.get("page") for _ in range(3)] == ["old"] * 3
        assert cache.status()["near"]["mode"] == "tracking", "nothing tells it"
        clock.advance(3600)  # a quiet spell: the next read goes to Redis while it PINGs
        assert cache.get("page") == "new"
        # Reads go to Redis until the PONG is in; then memory serves what it held.
        assert seen_within(lambda: cache.get("page"), "old", 2.0), "memory serves again"
        assert new_app_cache(**settings, REDIS_URL=mine).get("page") == "new", "a reload does"
    finally:
        server.swapdb(int(urlsplit(mine).path[1:]), int(urlsplit(spare).path[1:]))
        for url in (mine, spare):
            redis.Redis.from_url(url).delete(f"{prefix}page")


@pytest.mark.redis
@pytest.mark.parametrize("command", ["MOVE", "COPY", "RENAME"])
def test_a_move_copy_or_rename_is_seen(swappable, new_app_cache, command):
    """Unlike SWAPDB, these send a notice for the keys they change (Redis 7.0): memory never
    serves the old value after them."""
    mine, spare = swappable
    prefix = f"moved-{uuid.uuid4().hex[:12]}:"
    settings = {"CACHE_TYPE": "redis", "CACHE_KEY_PREFIX": prefix}
    if command == "COPY":  # the value to copy in, before the worker reads (as for SWAPDB)
        new_app_cache(**settings, REDIS_URL=spare, CACHE_NEAR_TRACKING="off").set("page", "new")
    cache = new_app_cache(**settings, REDIS_URL=mine)
    cache.set("draft", "a draft")
    cache.set("page", "old")
    assert cache.get("page") == cache.get("page") == "old"
    assert cache.status()["near"]["mode"] == "tracking"
    here, there = redis.Redis.from_url(mine), redis.Redis.from_url(spare)
    spare_db = int(urlsplit(spare).path[1:])
    try:
        if command == "MOVE":
            here.move(f"{prefix}page", spare_db)  # gone from this database
        elif command == "COPY":
            there.copy(f"{prefix}page", f"{prefix}page", int(urlsplit(mine).path[1:]), True)
        else:
            here.rename(f"{prefix}draft", f"{prefix}page")  # signed for "draft": a miss here
        expected = {"MOVE": None, "COPY": "new", "RENAME": None}[command]
        assert seen_within(lambda: cache.get("page"), expected)
    finally:
        for server in (here, there):
            server.delete(f"{prefix}page", f"{prefix}draft")


@pytest.fixture
def refusing_user(server, redis_url):
    """A REDIS_URL for a user whose ACL denies CLIENT (so CLIENT TRACKING), as a hosted Redis or
    a proxy in front of one may."""
    name, password = f"near-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    server.acl_setuser(
        name, enabled=True, passwords=[f"+{password}"], keys=["*"], commands=["+@all", "-client"]
    )
    parts = urlsplit(redis_url)
    yield urlunsplit(parts._replace(netloc=f"{name}:{password}@{parts.hostname}:{parts.port}"))
    server.acl_deluser(name)


@pytest.mark.redis
@pytest.mark.parametrize("ttl, mode", [("0", "off"), ("2", "ttl")])
def test_a_server_that_refuses_tracking_gets_plain_reads(
    new_app_cache, refusing_user, caplog, ttl, mode
):
    cache = new_app_cache(CACHE_TYPE="redis", REDIS_URL=refusing_user, CACHE_NEAR_TTL=ttl)
    assert cache.set("k", 1) and cache.get("k") == 1 and cache.get("k") == 1
    status = cache.status()
    assert status["breaker"] == "closed"
    assert status["near"]["mode"] == mode
    refused = [r.getMessage() for r in caplog.records if "without tracking" in r.getMessage()]
    assert len(refused) == 1 and "NoPermissionError" in refused[0]
    assert urlsplit(refusing_user).password not in refused[0]
    # Without a TTL (Upstash has no CLIENT TRACKING), both point to the setting that helps.
    pointed = "set CACHE_NEAR_TTL" in refused[0] and "set CACHE_NEAR_TTL" in status["near"]["why"]
    assert pointed == (ttl == "0"), (refused[0], status["near"])


@pytest.mark.redis
def test_a_server_at_its_connection_limit_gets_plain_reads_and_one_line(
    new_app_cache, server_settings, redis_url, other, clock, caplog
):
    """A hosted plan's connection limit (Redis Cloud free: 30) refuses the tracking connection
    while the data connection works: plain reads, a closed breaker, one log line, and asked
    again less and less often until a slot is free."""
    relay = Relay(*host_and_port(redis_url), max_clients=1)  # room for the data connection only
    try:
        cache = new_app_cache(**server_settings("redis", port=relay.port))
        near = near_of(cache)
        near.tracking.clock = clock
        writer = other(cache)
        for value in range(5):
            writer.set("k", value)
            assert cache.get("k") == value, "plain reads: every change is seen at once"
            clock.advance(MAX_RETRY_TRACKING)  # every try is due: each one is refused
        # Over TLS the refusal comes before the handshake ends: the client sees it fail.
        plain = redis_url.startswith("redis:")
        refusal = "max number of clients reached" if plain else "tracking could not start"
        status = cache.status()
        assert (status["breaker"], status["near"]["mode"]) == ("closed", "off")
        assert refusal in status["near"]["why"]
        said = [r.getMessage() for r in caplog.records if "without tracking" in r.getMessage()]
        assert len(said) == 1 and refusal in said[0], said
        relay.max_clients = 2  # a slot is free again
        clock.advance(MAX_RETRY_TRACKING)
        assert cache.get("k") == 4
        assert seen_within(lambda: tracking_mode(cache), "tracking", 1)
        writer.set("k", "after")
        assert seen_within(lambda: cache.get("k"), "after")
    finally:
        relay.cut()


@pytest.mark.redis
def test_cache_status_says_what_the_tracking_connection_really_does(
    tmp_path, server_settings, monkeypatch
):
    """A client library whose reads of the tracking socket fail (redis-py before 8.0 has no
    read_response(timeout=...)) starts tracking, then loses it at the first read: `flask cache
    status` makes that round trip before it says the mode."""
    from redis.connection import Connection

    from .conftest import make_app

    app = make_app(tmp_path, **server_settings("redis"))
    runner = app.test_cli_runner()
    result = runner.invoke(args=["cache", "status"])
    assert result.exit_code == 0 and "near cache: tracking: " in result.output, result.output
    read_response = Connection.read_response

    def before_8(self, *args, **kwargs):
        if "timeout" in kwargs:
            raise TypeError("read_response() got an unexpected keyword argument 'timeout'")
        return read_response(self, *args, **kwargs)

    monkeypatch.setattr(Connection, "read_response", before_8)
    runner = make_app(tmp_path, **server_settings("redis")).test_cli_runner()
    result = runner.invoke(args=["cache", "status"])
    assert result.exit_code == 0, result.output
    assert "near cache: off: the tracking connection was lost (TypeError)" in result.output


@pytest.mark.redis
def test_memory_holds_at_most_the_threshold(redis_cache):
    cache = redis_cache(CACHE_THRESHOLD="10")
    for n in range(50):
        cache.set(f"k{n}", n)
    assert [cache.get(f"k{n}") for n in range(50)] == list(range(50))
    assert [cache.get(f"k{n}") for n in range(50)] == list(range(50))
    assert 0 < len(near_of(cache).entries) <= 10


@pytest.mark.redis
def test_a_value_over_the_size_limit_is_read_from_the_server_each_time(redis_cache, monkeypatch):
    cache = redis_cache()
    cache.set("big", b"x" * MAX_ENTRY_BYTES)
    reads = count_reads(near_of(cache), monkeypatch)
    assert cache.get("big") == cache.get("big") == b"x" * MAX_ENTRY_BYTES
    assert len(reads) == 2


@pytest.mark.redis
def test_a_forked_worker_tracks_on_its_own_connection(redis_cache, other):
    """uWSGI loads the app, then forks the workers: each must open its own tracking connection,
    and none may close its parent's."""
    cache = redis_cache()
    writer = other(cache)
    writer.set("k", "before")
    assert cache.get("k") == "before"
    parent_conn = near_of(cache).tracking.conn
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report, and leave without running pytest's exit handlers
        try:  # no at-fork hook runs under uWSGI: the first call notices the new pid
            ok = cache.get("k") == "before"
            ok = ok and near_of(cache).tracking.conn not in (None, parent_conn)
            writer.set("k", "from the child")
            ok = ok and seen_within(lambda: cache.get("k"), "from the child")
            os.write(write, b"ok" if ok else b"no")
        finally:
            os._exit(0)
    os.close(write)
    assert os.read(read, 2) == b"ok"
    os.waitpid(pid, 0)
    assert near_of(cache).tracking.conn is parent_conn
    writer.set("k", "after")
    assert seen_within(lambda: cache.get("k"), "after"), "the parent still tracks"


def test_redis_py_still_has_what_tracking_relies_on():
    """Private names of redis-py that cache/near.py uses, as its own client-side cache does."""
    from redis.connection import Connection

    connection = Connection(protocol=3)
    assert callable(connection._parser.set_invalidation_push_handler)
    assert hasattr(connection, "_sock")
    parameters = inspect.signature(connection.read_response).parameters
    assert {"push_request", "timeout", "disconnect_on_error"} <= set(parameters)


# Everything else: a TTL.
@pytest.mark.parametrize(
    "backend",
    [
        pytest.param("memcached", marks=pytest.mark.memcached),
        "filesystem",
        pytest.param("upstash", marks=pytest.mark.redis),
        pytest.param("redis", marks=pytest.mark.redis),
    ],
)
def test_a_change_made_elsewhere_is_seen_within_the_ttl(
    new_app_cache, server_settings, clock, backend
):
    shared = {
        **server_settings(backend),
        "CACHE_KEY_PREFIX": f"test-{uuid.uuid4().hex[:12]}:",  # one app, two workers
        **({"CACHE_NEAR_TRACKING": "off"} if backend == "redis" else {}),
        "CACHE_SOCKET_TIMEOUT": "5",  # a loaded machine must not open a breaker here
    }
    worker = new_app_cache(**shared, CACHE_NEAR_TTL="5")
    near = near_of(worker)
    near.clock = clock
    another = new_app_cache(**shared)
    another.set("k", "old")
    assert worker.get("k") == "old"
    another.delete("k")
    clock.advance(4.9)
    assert worker.get("k") == "old", "the documented staleness: up to CACHE_NEAR_TTL"
    clock.advance(0.1)
    assert worker.get("k") is None, "never longer"
    worker.set("k", "mine")
    assert worker.get("k") == "mine", "this worker's own change: at once"


OWN_STEPS = st.lists(
    st.one_of(
        st.tuples(st.sampled_from(["set", "add"]), KEYS, st.integers(0, 9)),
        st.tuples(st.just("set_many"), st.dictionaries(KEYS, st.integers(0, 9), max_size=3)),
        st.tuples(st.sampled_from(["delete", "inc", "dec", "get"]), KEYS),
        st.tuples(st.just("delete_many"), st.lists(KEYS, max_size=3)),
        st.tuples(st.just("clear")),
    ),
    max_size=15,
)


@pytest.mark.parametrize(
    "backend",
    [pytest.param("memcached", marks=pytest.mark.memcached), "filesystem"],
)
@settings(
    max_examples=20,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(steps=OWN_STEPS)
@example(steps=[("get", "a"), ("set", "a", 1), ("inc", "a"), ("set_many", {"a": 2}), ("clear",)])
@example(steps=[("get", "b"), ("dec", "b"), ("delete", "a"), ("delete_many", ["b", "c"])])
def test_this_workers_own_changes_take_effect_at_once(
    tmp_path_factory, server_settings, backend, steps
):
    """Whatever this worker writes, through any call, it reads back at once: memory never keeps
    what the worker itself replaced (the TTL only bounds what others change)."""
    from .conftest import cache_behind, make_app

    cache = cache_behind(
        make_app(tmp_path_factory.mktemp("own"), **server_settings(backend), CACHE_NEAR_TTL="3600")
    )
    model: dict[str, int] = {}
    for key in "abc":
        cache.set(key, -1)
        model[key] = -1
    for step in steps:
        action = step[0]
        if action in ("set", "add"):
            getattr(cache, action)(step[1], step[2])
            model[step[1]] = step[2] if action == "set" or step[1] not in model else model[step[1]]
        elif action == "set_many":
            cache.set_many(step[1])
            model.update(step[1])
        elif action in ("inc", "dec"):
            getattr(cache, action)(step[1])
            model[step[1]] = model.get(step[1], 0) + (1 if action == "inc" else -1)
        elif action == "delete":
            cache.delete(step[1])
            model.pop(step[1], None)
        elif action == "delete_many":
            cache.delete_many(*step[1])
            for key in step[1]:
                model.pop(key, None)
        elif action == "clear":
            cache.clear()
            model.clear()
        else:
            cache.get(step[1])
        assert [cache.get(key) for key in "abc"] == [model.get(key) for key in "abc"], step
    cache.clear()
