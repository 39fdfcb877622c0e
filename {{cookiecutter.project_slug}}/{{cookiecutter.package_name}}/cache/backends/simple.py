"""The backends with no server: each worker's own memory (simple), and none at all (null)."""

from typing import Any

import cachelib
from flask_caching.backends.nullcache import NullCache
from flask_caching.backends.simplecache import SimpleCache

from .base import Backend


class Simple(Backend, SimpleCache):
    """Each worker's own memory (Flask-Caching's factory reads CACHE_THRESHOLD)."""

    name = "simple"
    why_no_near_cache = "the cache is in each worker's memory already"

    def delete_many(self, *keys: str) -> list[Any]:
        return cachelib.SimpleCache.delete_many(self, *keys)  # the comment in Backend says why


class Null(Backend, NullCache):
    """No caching at all: to compare, or to debug."""

    name = "null"
    why_no_near_cache = "caching is off"
    offered = False
