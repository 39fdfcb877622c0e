"""CACHE_TYPE=memcached, against a real memcached (TEST_MEMCACHED_SERVERS)."""

from functools import partial

import pytest
from pymemcache.client.base import Client

from .common import ClearTests, CommonTests, OutageTests, SignedTests
from .conftest import host_and_port

pytestmark = pytest.mark.memcached


@pytest.fixture
def cache_factory(make_cache, settings_for):
    return partial(make_cache, **settings_for("memcached"))


class RawMemcached:
    """The stored bytes of a key, read and written past the app, as another client would."""

    frame = b""

    def __init__(self, servers: str):
        self.server = Client(host_and_port(servers))

    def get(self, cache, key: str) -> bytes:
        return self.server.get(cache.backend.key_prefix + key)  # with the current generation

    def set(self, cache, key: str, data: bytes) -> None:
        # flags=1: pymemcache's mark for a pickle; noreply=False: stored before we go on.
        self.server.set(cache.backend.key_prefix + key, data, flags=1, noreply=False)


@pytest.fixture
def raw(memcached_servers):
    return RawMemcached(memcached_servers)


class TestMemcached(CommonTests, ClearTests, SignedTests, OutageTests):
    backend = "memcached"

    def test_clear_moves_to_a_new_generation(self, cache_factory, raw):
        # Pins what clear() relies on: cachelib prefixes each key with the key_prefix attribute
        # read at the time of the call, and ours names the generation.
        cache = cache_factory(CACHE_KEY_PREFIX="gen-test:")
        cache.set("key", "old")
        before = cache.backend.key_prefix
        assert raw.server.get(f"{before}key") is not None
        assert cache.clear()
        after = cache.backend.key_prefix
        assert before.startswith("gen-test:") and after.startswith("gen-test:")
        assert int(after.split(":")[1]) == int(before.split(":")[1]) + 1
        assert cache.get("key") is None
        assert raw.server.get(f"{before}key") is not None, "old entries are orphaned, not flushed"
