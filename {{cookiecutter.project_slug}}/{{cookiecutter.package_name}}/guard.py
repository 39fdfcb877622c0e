"""A circuit breaker around the cache backend: a failing cache never fails a request.

While the backend works, every call goes to it. When a call fails with a connection error, the
breaker opens: for CACHE_RETRY_AFTER seconds calls go to an in-process SimpleCache, then the
next call alone probes the backend. Each change of state is logged once. Keys written or
deleted while open are remembered and deleted from the backend before it serves again, so it
cannot serve a value that was invalidated during the outage. The state is per worker process.
"""

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone

from cachelib import BaseCache, SimpleCache

MAX_PENDING_KEYS = 10_000  # past this, recovery clears this app's keys instead of replaying


class GuardedCache(BaseCache):
    def __init__(
        self,
        backend: BaseCache,
        *,
        name: str,
        where: str,
        connection_errors: tuple[type[BaseException], ...],
        retry_after: float,
        threshold: int,
        default_timeout: int,
        logger: logging.Logger,
        clock: Callable[[], float] = time.monotonic,
    ):
        super().__init__(default_timeout)
        self.backend = backend
        self.local = SimpleCache(threshold=threshold, default_timeout=default_timeout)
        self.name, self.where = name, where
        self.connection_errors = connection_errors
        self.retry_after = retry_after
        self.clock, self.log = clock, logger
        self.open_until: float | None = None  # None: the backend serves
        self.last_error: dict | None = None
        self.pending_deletes: set[str] = set()
        self.pending_clear = False
        self._probe = threading.Lock()

    @property
    def serving(self) -> str:
        return self.name if self.open_until is None else "simple"

    def status(self) -> dict:
        return {
            "active": self.serving,
            "breaker": "closed" if self.open_until is None else "open",
            "last_error": self.last_error,
        }

    # The cache API: each call names the keys it writes or deletes (or clears all of them).
    def get(self, key):
        return self._call("get", key)

    def get_many(self, *keys):
        return self._call("get_many", *keys)

    def get_dict(self, *keys):
        return self._call("get_dict", *keys)

    def has(self, key):
        return self._call("has", key)

    def set(self, key, value, timeout=None):
        return self._call("set", key, value, timeout, writes=(key,))

    def add(self, key, value, timeout=None):
        return self._call("add", key, value, timeout, writes=(key,))

    def set_many(self, mapping, timeout=None):
        return self._call("set_many", mapping, timeout, writes=tuple(mapping))

    def delete(self, key):
        return self._call("delete", key, writes=(key,))

    def delete_many(self, *keys):
        return self._call("delete_many", *keys, writes=keys)

    unlink = delete_many

    def inc(self, key, delta=1):
        return self._call("inc", key, delta, writes=(key,))

    def dec(self, key, delta=1):
        return self._call("dec", key, delta, writes=(key,))

    def clear(self):
        return self._call("clear", clears=True)

    # The breaker.
    def _call(self, method: str, *args, writes=(), clears=False):
        if self.open_until is not None:
            if self.clock() < self.open_until or not self._probe.acquire(blocking=False):
                return self._fallback(method, args, writes, clears)
            try:  # this call alone probes the backend
                return self._probe_call(method, args, writes, clears)
            finally:
                self._probe.release()
        try:
            return getattr(self.backend, method)(*args)
        except self.connection_errors as error:
            self._trip(error)
        except Exception as error:  # a bad value or key: a miss for this call, not an outage
            return self._miss(method, args, error)
        return self._fallback(method, args, writes, clears)

    def _probe_call(self, method, args, writes, clears):
        try:
            self._replay()
            result = getattr(self.backend, method)(*args)
        except self.connection_errors as error:
            self._note(error)
            self.open_until = self.clock() + self.retry_after
            return self._fallback(method, args, writes, clears)
        except Exception as error:
            result = self._miss(method, args, error)
        self.open_until = None
        self.local.clear()
        self.log.warning("cache: %s at %s is back; serving from it again", self.name, self.where)
        return result

    def _miss(self, method, args, error: Exception):
        self.log.warning("cache: %s(...) failed on %s: %r", method, self.name, error)
        return _MISS[method](args)

    def _replay(self) -> None:
        """Apply to the backend what was invalidated while it was away."""
        if self.pending_clear:
            self.backend.clear()
        elif self.pending_deletes:
            keys = list(self.pending_deletes)
            for start in range(0, len(keys), 500):
                self.backend.delete_many(*keys[start : start + 500])
        self.pending_clear, self.pending_deletes = False, set()

    def _fallback(self, method, args, writes, clears):
        if clears:
            self.pending_clear, self.pending_deletes = True, set()
        elif not self.pending_clear:
            self.pending_deletes.update(writes)
            if len(self.pending_deletes) > MAX_PENDING_KEYS:
                self.pending_clear, self.pending_deletes = True, set()
        return getattr(self.local, method)(*args)

    def _trip(self, error: BaseException) -> None:
        self._note(error)
        self.open_until = self.clock() + self.retry_after
        self.local.clear()  # nothing left over from an earlier outage
        self.log.error(
            "cache: %s at %s failed (%s: %s); serving from the in-process simple cache, "
            "next try in %ss",
            self.name,
            self.where,
            type(error).__name__,
            error,
            self.retry_after,
        )

    def _note(self, error: BaseException) -> None:
        self.last_error = {
            "type": type(error).__name__,
            "at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }


# What a call that failed for a reason other than an outage returns: a miss, or "not done".
_MISS: dict[str, Callable] = {
    "get": lambda args: None,
    "get_many": lambda args: [None] * len(args),
    "get_dict": lambda args: dict.fromkeys(args),
    "has": lambda args: False,
    "set": lambda args: False,
    "add": lambda args: False,
    "set_many": lambda args: [],
    "delete": lambda args: False,
    "delete_many": lambda args: [],
    "inc": lambda args: None,
    "dec": lambda args: None,
    "clear": lambda args: False,
}
