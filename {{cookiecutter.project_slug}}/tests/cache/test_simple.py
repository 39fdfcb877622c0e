"""CACHE_TYPE=simple: the memory of each worker process."""

from functools import partial

import pytest

from .common import ClearTests, CommonTests, LockTests


@pytest.fixture
def cache_factory(new_app_cache, server_settings):
    return partial(new_app_cache, **server_settings("simple"))


class TestSimple(CommonTests, ClearTests, LockTests):
    backend = "simple"
    per_worker = True  # each worker's memory: its threads compete

    def test_keeps_at_most_its_threshold(self, cache_factory):
        cache = cache_factory(CACHE_THRESHOLD="20")
        for i in range(100):
            cache.set(f"k{i}", i)
        # cachelib prunes once it holds more than the threshold: at most one more.
        assert sum(cache.has(f"k{i}") for i in range(100)) <= 20 + 1
        assert cache.get("k99") == 99
