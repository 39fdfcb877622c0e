"""A circuit breaker around a shared backend: a failing cache never fails a request.

It is itself a Flask-Caching backend, whose factory builds the backend it guards. While that
backend works, every call goes to it. When a call fails with one of the backend's "unreachable"
errors, the breaker opens: for CACHE_RETRY_AFTER seconds calls go to an in-process SimpleCache,
then the next call alone probes the backend. Each change of state is logged once. Keys written or
deleted while open are remembered and deleted from the backend before it serves again, so it
cannot serve a value that was invalidated during the outage. The state is per worker process.
"""

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from cachelib import SimpleCache
from flask import Flask
from flask_caching.backends.base import BaseCache

MAX_PENDING_KEYS = 10_000  # past this, recovery clears this app's keys instead of replaying


class Breaker(BaseCache):
    def __init__(
        self,
        backend: BaseCache,
        *,
        name: str,
        where: str,
        unreachable: tuple[type[BaseException], ...],
        retry_after: float,
        threshold: int,
        default_timeout: int,
        logger: logging.Logger,
    ):
        super().__init__(default_timeout)
        self.backend = backend
        self.local = SimpleCache(threshold=threshold, default_timeout=default_timeout)
        self.name, self.where = name, where
        self.unreachable = unreachable
        self.retry_after = retry_after
        self.clock: Callable[[], float] = time.monotonic  # tests put a fake clock here
        self.log = logger
        self.open_until: float | None = None  # None: the backend serves
        self.last_error: dict[str, str] | None = None
        self.pending_deletes: set[str] = set()
        self.pending_clear = False
        self._probe = threading.Lock()

    @classmethod
    def factory(
        cls, app: Flask, config: dict[str, Any], args: list[Any], kwargs: dict[str, Any]
    ) -> "Breaker":
        """Build the backend class in CACHE_BACKEND (cache/backends.py) and guard it."""
        backend = config["CACHE_BACKEND"]
        return cls(
            backend.factory(app, config, args, kwargs),
            name=backend.name,
            where=backend.describe(config),
            unreachable=backend.unreachable(),
            retry_after=config["CACHE_RETRY_AFTER"],
            threshold=config["CACHE_THRESHOLD"],
            default_timeout=kwargs["default_timeout"],
            logger=app.logger,
        )

    def status(self) -> dict[str, Any]:
        return {
            "active": self.name if self.open_until is None else "simple",
            "breaker": "closed" if self.open_until is None else "open",
            "last_error": self.last_error,
        }

    # The cache API: each call names the keys it writes or deletes (or clears all of them).
    def get(self, key: str) -> Any:
        return self._call("get", key)

    def get_many(self, *keys: str) -> list[Any]:
        return self._call("get_many", *keys)  # type: ignore[no-any-return]

    def get_dict(self, *keys: str) -> dict[str, Any]:
        return self._call("get_dict", *keys)  # type: ignore[no-any-return]

    def has(self, key: str) -> bool:
        return bool(self._call("has", key))

    def set(self, key: str, value: Any, timeout: Any = None) -> Any:
        return self._call("set", key, value, timeout, writes=(key,))

    def add(self, key: str, value: Any, timeout: Any = None) -> bool:
        return bool(self._call("add", key, value, timeout, writes=(key,)))

    def set_many(self, mapping: dict[str, Any], timeout: Any = None) -> list[Any]:
        return self._call("set_many", mapping, timeout, writes=tuple(mapping))  # type: ignore[no-any-return]

    def delete(self, key: str) -> bool:
        return bool(self._call("delete", key, writes=(key,)))

    def delete_many(self, *keys: str) -> list[Any]:
        return self._call("delete_many", *keys, writes=keys)  # type: ignore[no-any-return]

    unlink = delete_many

    def inc(self, key: str, delta: int = 1) -> Any:
        return self._call("inc", key, delta, writes=(key,))

    def dec(self, key: str, delta: int = 1) -> Any:
        return self._call("dec", key, delta, writes=(key,))

    def clear(self) -> bool:
        return bool(self._call("clear", clears=True))

    # The breaker.
    def _call(
        self, method: str, *args: Any, writes: tuple[str, ...] = (), clears: bool = False
    ) -> Any:
        if self.open_until is not None:
            if self.clock() < self.open_until or not self._probe.acquire(blocking=False):
                return self._fallback(method, args, writes, clears)
            try:  # this call alone probes the backend
                return self._probe_call(method, args, writes, clears)
            finally:
                self._probe.release()
        try:
            return getattr(self.backend, method)(*args)
        except self.unreachable as error:
            self._trip(error)
        except Exception as error:  # a bad value or key: a miss for this call, not an outage
            return self._miss(method, args, error)
        return self._fallback(method, args, writes, clears)

    def _probe_call(
        self, method: str, args: tuple[Any, ...], writes: tuple[str, ...], clears: bool
    ) -> Any:
        try:
            self._replay()
            result = getattr(self.backend, method)(*args)
        except self.unreachable as error:
            self._note(error)
            self.open_until = self.clock() + self.retry_after
            return self._fallback(method, args, writes, clears)
        except Exception as error:
            result = self._miss(method, args, error)
        self.open_until = None
        self.local.clear()
        self.log.warning("cache: %s at %s is back; serving from it again", self.name, self.where)
        return result

    def _miss(self, method: str, args: tuple[Any, ...], error: Exception) -> Any:
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

    def _fallback(
        self, method: str, args: tuple[Any, ...], writes: tuple[str, ...], clears: bool
    ) -> Any:
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
_MISS: dict[str, Callable[[tuple[Any, ...]], Any]] = {
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
