"""CACHE_TYPE=redis, against a real Redis server (TEST_REDIS_URL)."""

import uuid
from functools import partial
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis

from .common import (
    PLANTED,
    AtomicCounterTests,
    ClearTests,
    CommonTests,
    KeyTests,
    LockTests,
    OutageTests,
    QuotaTests,
    SignedTests,
)
from .conftest import cache_behind, make_app
from .upstash_redis import UpstashRedis
from .upstash_server import UpstashServer

pytestmark = pytest.mark.redis


@pytest.fixture
def cache_factory(new_app_cache, server_settings):
    return partial(new_app_cache, **server_settings("redis"))


class RawRedis:
    """The stored bytes of a key, read and written past the app, as another client would."""

    frame = b"!"  # cachelib's mark for a pickle

    def __init__(self, url: str):
        self.server = redis.Redis.from_url(url)

    def get(self, cache, key: str) -> bytes:
        return self.server.get(cache.server.key_prefix + key)

    def set(self, cache, key: str, data: bytes) -> None:
        self.server.set(cache.server.key_prefix + key, data)

    def planted(self):
        """What an attacker can store under a key (the ``plant`` argument)."""
        return PLANTED

    def plant(self, cache, key: str, data: bytes) -> None:
        self.server.set(cache.server.key_prefix + key, data)


@pytest.fixture
def raw(redis_url):
    return RawRedis(redis_url)


class TestRedis(
    CommonTests,
    ClearTests,
    SignedTests,
    AtomicCounterTests,
    KeyTests,
    LockTests,
    OutageTests,
    QuotaTests,
):
    backend = "redis"

    def test_keys_carry_the_prefix(self, cache_factory, raw):
        cache = cache_factory(CACHE_KEY_PREFIX="myapp:")
        cache.set("page", "x", timeout=60)
        assert raw.server.exists("myapp:page")
        assert 0 < raw.server.ttl("myapp:page") <= 60
        raw.server.delete("myapp:page")

    def test_an_unknown_host_serves_from_simple(self, new_app_cache):
        cache = new_app_cache(CACHE_TYPE="redis", REDIS_URL="redis://no-such-host.invalid:6379/0")
        assert cache.set("key", 1) and cache.get("key") == 1
        assert cache.status()["active"] == "simple"


@pytest.mark.parametrize("backend", ["redis", "upstash"])
def test_an_add_the_server_refuses_writes_nothing(
    new_app_cache, server_settings, redis_url, backend
):
    """add() is one command (SET NX EX): one whose expiry Redis refuses leaves no key behind,
    where SETNX then EXPIRE left one that never expires. The breaker undoes no add (a failed
    add must not delete another process's lock): the add itself must write all or nothing."""
    prefix = f"refused-add-{uuid.uuid4().hex[:12]}:"
    cache = new_app_cache(**server_settings(backend), CACHE_KEY_PREFIX=prefix)
    assert cache.add("lock", "mine", timeout=10**16) is False  # past Redis's longest expiry
    assert cache.status()["breaker"] == "closed"
    assert redis.Redis.from_url(redis_url).exists(f"{prefix}lock") == 0
    assert cache.add("lock", "mine", timeout=60) and cache.get("lock") == "mine"
    assert not cache.add("lock", "another's", timeout=60)
    cache.delete("lock")


@pytest.mark.parametrize("backend", ["redis", "upstash"])
def test_a_lock_is_one_command_and_a_key_the_server_expires(tmp_path, redis_url, backend):
    """lock() is SET NX PX, one command (over REST, one request, as Upstash's own SDK sends
    it): the server holds the key with the lock's time to live, and refuses a second SET NX.
    Counted by a stand-in for Upstash in front of the test Redis, over its Redis protocol
    (upstash_redis.py) or its REST API (upstash_server.py)."""
    if backend == "redis":
        server = UpstashRedis(redis_url)
        settings = {"CACHE_TYPE": "redis", "REDIS_URL": server.url}
    else:
        server = UpstashServer(redis_url)
        settings = {"CACHE_TYPE": "upstash", "UPSTASH_REDIS_REST_URL": server.url}
    prefix = f"lock-{uuid.uuid4().hex[:12]}:"
    try:
        app = make_app(tmp_path, **settings, CACHE_KEY_PREFIX=prefix, CACHE_NEAR_TRACKING="off")
        cache = cache_behind(app)
        assert cache.set("page", "cached")  # the connection is made
        sent, requests = server.commands, getattr(server, "requests", 0)
        assert cache.lock("page.lock", 60.5)
        assert server.commands - sent == 1
        assert getattr(server, "requests", 1) - requests == 1
        left = redis.Redis.from_url(redis_url).pttl(f"{prefix}page.lock")
        assert 0 < left <= 60_500, left
        assert not cache.lock("page.lock", 60.5)
        cache.unlock("page.lock")
        assert server.commands - sent == 3
        assert redis.Redis.from_url(redis_url).exists(f"{prefix}page.lock") == 0
        assert cache.status()["breaker"] == "closed", cache.status()["last_error"]
    finally:
        server.close()


@pytest.mark.parametrize("near_ttl, mode", [("0", "off"), ("5", "ttl")])
def test_on_upstash_plain_reads_unless_near_ttl(tmp_path, redis_url, clock, near_ttl, mode):
    """Upstash's Redis protocol has no CLIENT TRACKING (upstash_redis.py): the near cache cannot
    track there, so every hit is a command, unless CACHE_NEAR_TTL keeps hits in memory."""
    server = UpstashRedis(redis_url)
    try:
        app = make_app(tmp_path, CACHE_TYPE="redis", REDIS_URL=server.url, CACHE_NEAR_TTL=near_ttl)
        cache_behind(
            app
        ).guarded.clock = clock  # the near cache's: no entry ages while the test runs
        client = app.test_client()
        for _ in range(2):  # a miss, then a hit read from the server (tracking is tried, refused)
            assert client.get("/sample").status_code == 200
        near = client.get("/health").get_json()["cache"]["near"]
        assert near["mode"] == mode, near
        if mode == "off":
            assert near["why"].startswith("the server refused tracking"), near
        sent = server.commands
        for _ in range(10):
            assert client.get("/sample").status_code == 200
        assert server.commands - sent == (10 if mode == "off" else 0)
    finally:
        server.close()


def test_a_refused_login_says_to_check_the_password_in_redis_url(tmp_path, redis_url, caplog):
    """Redis refuses a user or password it does not know (WRONGPASS): /health, the error log and
    `flask cache status` name the setting to check and how to write it, never the password."""
    secret = f"wrong-{uuid.uuid4().hex}"
    parts = urlsplit(redis_url)
    url = urlunsplit(parts._replace(netloc=f"nobody:{secret}@{parts.hostname}:{parts.port}"))
    app = make_app(tmp_path, CACHE_TYPE="redis", REDIS_URL=url)
    said = app.test_client().get("/health").get_json()["cache"]["last_error"]["message"]
    status = app.test_cli_runner().invoke(args=["cache", "status"]).output
    for text in (said, caplog.text, status):
        assert "check the password in REDIS_URL" in text and "percent-encoded" in text, text
        assert secret not in text
