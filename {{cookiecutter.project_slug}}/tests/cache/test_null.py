"""CACHE_TYPE=null: no caching at all."""

from functools import partial

import pytest


@pytest.fixture
def cache_factory(new_app_cache, server_settings):
    return partial(new_app_cache, **server_settings("null"))


class TestNull:
    backend = "null"

    def test_stores_nothing(self, cache_factory):
        cache = cache_factory()
        cache.set("key", "value")
        assert cache.get("key") is None
        assert not cache.has("key")
        assert cache.get_many("key") == [None]

    def test_every_lock_is_granted(self, cache_factory):
        """Nothing is cached, so every caller computes anyway: no lock ever waits for another."""
        cache = cache_factory()
        assert cache.lock("page.lock", 60) and cache.lock("page.lock", 60)
        cache.unlock("page.lock")
        with pytest.raises(ValueError, match="a lock lasts a number of seconds above 0"):
            cache.lock("page.lock", 0)
