"""The backends with no server: each worker's own memory (simple), and none at all (null)."""

import threading
import time
from collections.abc import Callable
from typing import Any

import cachelib
from flask_caching.backends.nullcache import NullCache
from flask_caching.backends.simplecache import SimpleCache

from .base import Backend, lock_seconds

# Held locks past which taking a new one first drops the expired ones: a lock nobody released
# (its holder failed) goes then, not at every call.
LOCKS_BEFORE_SWEEP = 1000


class LocalLocks:
    """Locks in this process's memory, each held until released or ``seconds`` after it was
    taken; safe across threads. Kept apart from the entries: never read, counted or pruned as
    one (a pruned lock would let a second holder in)."""

    def __init__(self) -> None:
        self.clock: Callable[[], float] = time.monotonic  # tests put a fake clock here
        self._expires: dict[str, float] = {}
        self._guard = threading.Lock()

    def lock(self, key: str, seconds: float) -> bool:
        seconds = lock_seconds(seconds)
        with self._guard:
            now = self.clock()
            if self._expires.get(key, now) > now:
                return False
            if len(self._expires) >= LOCKS_BEFORE_SWEEP:
                self._expires = {k: t for k, t in self._expires.items() if t > now}
            self._expires[key] = now + seconds
            return True

    def unlock(self, key: str) -> None:
        with self._guard:
            self._expires.pop(key, None)

    def holds(self, key: str) -> bool:
        """Whether the lock ``key`` is held here now."""
        return self._expires.get(key, -1.0) > self.clock()


class Simple(Backend, SimpleCache):
    """Each worker's own memory (Flask-Caching's factory reads CACHE_THRESHOLD); its locks too,
    as its entries are: per worker."""

    name = "simple"
    why_no_near_cache = "the cache is in each worker's memory already"

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)  # type: ignore[no-untyped-call, unused-ignore]
        self.locks = LocalLocks()

    def delete_many(self, *keys: str) -> list[Any]:
        return cachelib.SimpleCache.delete_many(self, *keys)  # the comment in Backend says why

    def lock(self, key: str, seconds: float) -> bool:
        return self.locks.lock(key, seconds)

    def unlock(self, key: str) -> None:
        self.locks.unlock(key)


class Null(Backend, NullCache):
    """No caching at all: to compare, or to debug."""

    name = "null"
    why_no_near_cache = "caching is off"
    offered = False

    def lock(self, key: str, seconds: float) -> bool:
        lock_seconds(seconds)
        return True  # nothing is cached: every caller computes anyway

    def unlock(self, key: str) -> None:
        pass
