"""CACHE_TYPE=upstash, against a server that follows Upstash's REST API (upstash_server.py) and
stores into a real Redis (TEST_REDIS_URL). With HTTPS_PROXY set, every request goes through it."""

import base64
import socket
import sys
from functools import partial

import pytest
from hypothesis import strategies as st

from {{ cookiecutter.package_name }}.cache.backends.upstash_rest import UpstashRedis

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
from .conftest import make_app
from .test_redis import RawRedis
from .upstash_server import TOKEN

pytestmark = pytest.mark.redis


@pytest.fixture
def cache_factory(new_app_cache, server_settings):
    return partial(new_app_cache, **server_settings("upstash"))


class RawUpstash(RawRedis):
    """Stored bytes as the REST API keeps them in Redis: "b64:" and base64."""

    def get(self, cache, key: str) -> bytes:
        return base64.b64decode(super().get(cache, key).removeprefix(b"b64:"))

    def set(self, cache, key: str, data: bytes) -> None:
        super().set(cache, key, b"b64:" + base64.b64encode(data))

    def planted(self):
        # Stored as they are into Redis: plain, behind the "b64:" marker, or a broken one.
        return st.one_of(
            PLANTED,
            PLANTED.map(lambda data: b"b64:" + base64.b64encode(data)),
            st.binary(max_size=40).map(lambda data: b"b64:" + data),
        )


@pytest.fixture
def raw(redis_url):
    return RawUpstash(redis_url)


class TestUpstash(
    CommonTests,
    ClearTests,
    SignedTests,
    AtomicCounterTests,
    KeyTests,
    LockTests,
    OutageTests,
    QuotaTests,
):
    backend = "upstash"

    def test_entries_land_in_redis_under_the_prefix(self, cache_factory, raw):
        cache = cache_factory(CACHE_KEY_PREFIX="upstash-test:")
        cache.set("text", "héllo")
        cache.set("count", 41)
        assert raw.server.get("upstash-test:count").startswith(b"b64:"), "integers are signed"
        assert raw.server.get("upstash-test:text").startswith(b"b64:"), "pickles go as base64"
        assert raw.server.ttl("upstash-test:text") > 0
        raw.server.delete("upstash-test:count", "upstash-test:text")

    @pytest.mark.parametrize("debug", [False, True], ids=["production", "debug"])
    def test_a_wrong_token_logs_one_clear_line_and_serves(
        self, tmp_path, server_settings, caplog, debug
    ):
        app = make_app(
            tmp_path, **server_settings("upstash"), UPSTASH_REDIS_REST_TOKEN="not-the-token"
        )
        app.debug = debug  # Flask-Caching's decorators re-raise backend errors in debug mode
        client = app.test_client()
        for path in ("/sample", "/sample", "/sample/square/3", "/sample/plain"):
            assert client.get(path).status_code == 200
        health = client.get("/health").get_json()["cache"]
        assert (health["active"], health["breaker"]) == ("simple", "open")
        logged = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
        assert len(logged) == 1
        assert "Upstash refused the token (401): check UPSTASH_REDIS_REST_TOKEN" in logged[0]
        assert "not-the-token" not in caplog.text

    def test_an_unknown_host_serves_from_simple(self, new_app_cache):
        cache = new_app_cache(
            CACHE_TYPE="upstash", UPSTASH_REDIS_REST_URL="https://no-such-host.invalid"
        )
        assert cache.set("key", 1) and cache.get("key") == 1
        assert cache.status()["active"] == "simple"


def test_every_connection_sends_at_once_through_a_proxy_too():
    """urllib3 writes a request's headers, then its body; requests opens a proxy's connection
    without TCP_NODELAY, so there the body waited for the proxy's delayed ACK: 44 ms a command
    through tinyproxy, 0.7 ms with it (free accounts reach Upstash through a proxy). Pins
    requests' HTTPAdapter points that cache/backends/upstash_rest.py passes the option through."""
    session = UpstashRedis("https://example.upstash.io", TOKEN, 1).session
    adapter = session.get_adapter("https://example.upstash.io")
    nodelay = (socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    proxied = adapter.proxy_manager_for("http://127.0.0.1:3128")
    assert nodelay in proxied.connection_pool_kw["socket_options"], "through a proxy"
    assert nodelay in adapter.poolmanager.connection_pool_kw["socket_options"], "direct"


def test_without_redis_py_an_outage_is_reported_all_the_same(tmp_path, monkeypatch):
    """An upstash project installs requests, not redis-py: reporting an outage must not need it
    (deploy.py reads the error from /health to say what to fix)."""
    for name in [n for n in sys.modules if n.split(".")[0] == "redis"]:
        monkeypatch.setitem(sys.modules, name, None)  # as if it were not installed
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    app = make_app(
        tmp_path, CACHE_TYPE="upstash", UPSTASH_REDIS_REST_URL=f"http://127.0.0.1:{closed}"
    )
    cache = app.test_client().get("/health").get_json()["cache"]
    assert (cache["active"], cache["breaker"]) == ("simple", "open")
    assert cache["last_error"]["type"] == "UpstashError", cache["last_error"]
