"""Flask-Caching backends whose clear() removes this app's entries only, and Upstash over REST.

Flask-Caching's own clear() runs KEYS (or FLUSHDB with an empty prefix) on Redis, flush_all on
memcached, and deletes every file in the cache directory: each can wipe another app's data.
"""

import contextlib
import os
import re
import struct
import time

from flask import g, has_request_context
from flask_caching.backends import FileSystemCache, MemcachedCache, RedisCache

CLEAR_BATCH = 500  # keys per SCAN page and per UNLINK


class ScopedRedisCache(RedisCache):
    def clear(self) -> bool:
        """Remove the keys under this app's prefix: SCAN + UNLINK in batches, never KEYS/FLUSHDB."""
        client = self._write_client
        pattern = re.sub(r"([*?\[\]\\])", r"\\\1", self._get_prefix()) + "*"
        batch = []
        for key in client.scan_iter(match=pattern, count=CLEAR_BATCH):
            batch.append(key)
            if len(batch) >= CLEAR_BATCH:
                client.unlink(*batch)
                batch.clear()
        if batch:
            client.unlink(*batch)
        return True


class UpstashCache(ScopedRedisCache):
    """The Redis backend, its scoped clear included, over Upstash's REST API (upstash.py)."""

    @classmethod
    def factory(cls, app, config, args, kwargs):
        from .upstash import UpstashRedis

        client = UpstashRedis(
            config["CACHE_UPSTASH_URL"],
            config["CACHE_UPSTASH_TOKEN"],
            config["CACHE_UPSTASH_TIMEOUT"],
        )
        return cls(*args, host=client, key_prefix=config["CACHE_KEY_PREFIX"], **kwargs)


class NamespacedMemcachedCache(MemcachedCache):
    """Every key carries a generation number kept in memcached; clear() moves to the next one.

    memcached cannot list keys, and flush_all empties the whole server. Entries of older
    generations are never read again and age out under memcached's LRU.
    """

    @property
    def key_prefix(self) -> str:
        return f"{self._base_prefix}{self._generation()}:"

    @key_prefix.setter
    def key_prefix(self, value: str | None) -> None:
        self._base_prefix = value or ""

    @property
    def _generation_key(self) -> str:
        return f"{self._base_prefix}generation"

    def _generation(self) -> int:
        # Read once per request: one extra round trip, and every worker sees a clear() at once.
        if has_request_context() and "cache_generation" in g:
            return g.cache_generation
        with self._client_context() as client:
            generation = client.get(self._generation_key)
            if generation is None:
                # A fresh, never-used number, even if the old counter was evicted.
                client.add(self._generation_key, int(time.time() * 1000), 0)
                generation = client.get(self._generation_key)
        generation = int(generation)
        if has_request_context():
            g.cache_generation = generation
        return generation

    def clear(self) -> bool:
        """Start a new generation, orphaning this app's entries; never flush_all."""
        current = self._generation()
        with self._client_context() as client:
            client.incr(self._generation_key, 1)
        if has_request_context():
            g.cache_generation = current + 1
        return True


class BoundedFileSystemCache(FileSystemCache):
    """Counts the entries on disk instead of in a counter file that races between workers.

    cachelib keeps its entry count in a file that concurrent workers overwrite, so the threshold
    was not enforced. Here every write lists the directory (O(entries), bounded by the threshold)
    and, when full, prunes to 90% of it: expired entries first, then those that expire soonest.
    clear() removes entry files only, not everything in the directory.
    """

    _ENTRY = re.compile(r"[0-9a-f]{32,128}\Z")  # entry files are named by a hex digest

    def _list_dir(self):
        return (
            os.path.join(self._path, name)
            for name in os.listdir(self._path)
            if self._ENTRY.match(name)
        )

    def _update_count(self, delta=None, value=None) -> None:
        """The count is read from the directory; there is no counter file to keep."""

    def _prune(self) -> None:
        if not self._threshold:
            return
        entries = list(self._list_dir())
        if len(entries) < self._threshold:
            return
        keep = int(self._threshold * 0.9)
        expiries = []
        for path in entries:
            try:
                with open(path, "rb") as entry:
                    expiries.append((struct.unpack("I", entry.read(4))[0], path))
            except (OSError, struct.error):
                continue
        now = time.time()
        # Expired first (0 = never expires, so it sorts last), then the soonest to expire.
        expiries.sort(key=lambda item: (not (0 < item[0] < now), item[0] or float("inf")))
        for _, path in expiries[: max(len(expiries) - keep, 0)]:
            with contextlib.suppress(OSError):
                os.remove(path)
