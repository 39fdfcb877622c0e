"""A circuit breaker around a shared backend: a failing cache never fails a request.

A Flask-Caching backend in front of the one it guards (chain.build()), in one of three states.
CLOSED: calls go to the backend. A call failing with one of its "unreachable" errors, or with one
of its refusals (Backend.errors(): Upstash past its quota refuses every command), makes it
OPEN: for CACHE_RETRY_AFTER seconds an in-process SimpleCache (the fallback) serves; then one call
is PROBING the backend while the others use the fallback. Each change of state is logged once.

No invalidation is lost: keys set or deleted while open are remembered, and deleted with UNLINK
(which does not re-check) before the backend serves again; it closes only once nothing is left to
replay, a delete made during the probe included. inc, dec and add are not remembered: they build
on the server's value or leave it, and deleting it would lose a shared counter or another
process's lock. So while open, counts are this worker's only and never reach the server's (the
fallback is emptied on close), and a lock taken with add() holds in this worker only.

lock() and unlock() go to the server while it serves (past the near cache), and to the fallback's
locks, this worker's own, while it does not, or when the server failed the call (whatever the
error): then the lock holds in this worker only, and is never replayed. A lock taken there is
this worker's until it expires: a lock() of its name is refused without asking the server, and
its unlock() stays here too, even after the server is back, where it would release the lock of
whoever holds that name on the server.

A delete or clear the server refuses (READONLY during a failover) opens it like an outage, and so
does a refused set whose key cannot then be deleted: its old value must not be served. Other
errors (a value too large, a wrong type) are a miss for that call, logged at most once a minute.
Errors show by type and message, the backend's secrets replaced by *** (in status(), which
/health shows, its host names too), never by repr, which can quote a password or token.

State is per worker process, changed atomically across its threads. A process forked after the
master read the cache is noticed by its pid at its first call (uWSGI runs no at-fork hook): it
gets its own fallback and locks, and the backend and near cache drop the parent's connections.

Every key is first mapped to the name the backend stores it under (keys.py), so that no key fails
at every call or keeps the replay failing.
"""

import enum
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timezone
from typing import Any

from flask_caching.backends.base import BaseCache

from .backends.base import Backend, lock_seconds
from .backends.simple import Simple
from .errors import advised, error_message, format_error, says, scrub
from .near import Near

MAX_PENDING_KEYS = 10_000  # past this, recovery clears this app's keys instead of replaying
REPLAY_BATCH = 500  # keys per UNLINK while replaying
MAX_NAMES = 4096  # str keys whose stored name is remembered (key_name())
QUIET_SECONDS = 60.0  # a per-call error is logged at most once in this window
DELETES = frozenset({"delete", "delete_many"})
# Not replayed (the module's docstring says why); each is one atomic write: a failed one wrote
# nothing to undo.
BUILD_ON_THE_SERVER = frozenset({"inc", "dec", "add"})
LOCKS = frozenset({"lock", "unlock"})  # in this worker's memory when the server fails them
Refusals = Mapping[type[BaseException], tuple[str, ...]]


class ReplayLater(Exception):
    """The backend refused a delete, or a write that could not be undone: replay it later. Its
    __cause__ is the backend's own error, which the log line and status() show."""


class State(enum.Enum):
    CLOSED = "closed"  # the backend serves
    OPEN = "open"  # the fallback serves, until retry_at
    PROBING = "probing"  # one call tries the backend; the others use the fallback meanwhile


CLOSED = State.CLOSED  # a global lookup on a hit's path, not an attribute of the enum


class Breaker(BaseCache):
    def __init__(
        self,
        guarded: BaseCache,
        *,
        name: str,
        location: str,
        unreachable: tuple[type[BaseException], ...],
        closed: tuple[type[BaseException], ...] = (),
        refusals: Refusals | None = None,
        retry_after: float,
        threshold: int,
        default_timeout: int,
        logger: logging.Logger,
        secrets: Iterable[str] = (),
        hosts: Iterable[str] = (),
        storable: Callable[[Any], str] = str,
        alone: bool = False,
    ):
        super().__init__(default_timeout)  # type: ignore[no-untyped-call, unused-ignore]
        self.guarded: Any = guarded  # a backend, or the near cache in front of one (near.py)
        # The backend itself, past the near cache: `flask cache` talks to it.
        self.server: Any = guarded.server if isinstance(guarded, Near) else guarded
        self.storable = storable  # a key as the backend stores it
        self._names: dict[str, str] = {}  # storable() of recent str keys: a hit maps in a lookup
        self.threshold = threshold
        self.fallback = Simple(threshold=threshold, default_timeout=default_timeout)
        self.name = name
        self.unreachable: tuple[type[BaseException], ...] = (*unreachable, ReplayLater)
        self.closed = closed  # a kept connection closed meanwhile: tried once more (Errors)
        self.refusals: Refusals = refusals or {}
        self.retry_after = retry_after
        self.clock: Callable[[], float] = time.monotonic  # tests put a fake clock here
        self.log = logger
        self.secrets = list(secrets)
        self.hosts = [host for host in hosts if host]  # hidden in status() too: /health is public
        self.location = scrub(location, self.secrets)
        self.state = CLOSED
        self.retry_at = 0.0  # while OPEN: when the next call probes the backend
        self.last_error: dict[str, str] | None = None
        self.pending_deletes: set[str] = set()
        self.pending_clear = False
        self._lock = threading.Lock()  # guards the state above and the fallback
        # The only web worker (chain.one_web_worker): its locks need no server, nor its quota.
        self.alone = alone
        self._pid = os.getpid()
        self._quiet_until = -float("inf")
        self._quieted = 0

    def status(self) -> dict[str, Any]:
        """What it guards says while it serves; while open, the fallback serves."""
        if self.state is CLOSED:
            return {**self.guarded.status(), "last_error": self.last_error}
        return {
            "active": "simple",
            "breaker": "open",
            "last_error": self.last_error,
            "near": {"mode": "off", "why": "the breaker is open"},
        }

    # The cache API: each call maps its keys, and names those it writes or deletes (or clears
    # all of them).
    def key_name(self, key: Any) -> str:
        """The name ``key`` is stored under (keys.py), remembered for the last MAX_NAMES str
        keys: a hit costs this lookup, not an encoding and a check per call."""
        if type(key) is not str:  # 1, 1.0 and True are one dict key, but not one name
            return self.storable(key)
        found = self._names.get(key)
        if found is None:
            if len(self._names) >= MAX_NAMES:
                self._names.clear()
            found = self._names[key] = self.storable(key)
        return found

    def get(self, key: Any) -> Any:
        # A hit's path: key_name() and, closed and in this process, _call() inlined.
        name = self._names.get(key) if type(key) is str else None
        if name is None:
            name = self.key_name(key)
        if self.state is not CLOSED or self._pid != _getpid():
            return self._call("get", name)
        try:
            return self.guarded.get(name)
        except Exception as error:
            try:
                return self._failed("get", (name,), (), False, error)
            except Exception as failure:
                return self._trip(failure, "get", (name,), (), False)

    def get_many(self, *keys: Any) -> list[Any]:
        return self._call("get_many", *map(self.key_name, keys))  # type: ignore[no-any-return]

    def has(self, key: Any) -> bool:
        return bool(self._call("has", self.key_name(key)))

    def set(self, key: Any, value: Any, timeout: Any = None) -> Any:
        name = self.key_name(key)
        return self._call("set", name, value, timeout, writes=(name,))

    def add(self, key: Any, value: Any, timeout: Any = None) -> bool:
        name = self.key_name(key)
        return bool(self._call("add", name, value, timeout, writes=(name,)))

    def set_many(self, mapping: dict[Any, Any], timeout: Any = None) -> list[Any]:
        names = {self.key_name(key): key for key in mapping}
        stored = {name: mapping[key] for name, key in names.items()}
        done = self._call("set_many", stored, timeout, writes=tuple(names))
        return [names[name] for name in done]

    def delete(self, key: Any) -> bool:
        name = self.key_name(key)
        return bool(self._call("delete", name, writes=(name,)))

    def delete_many(self, *keys: Any) -> list[Any]:
        names = {self.key_name(key): key for key in keys}
        done = self._call("delete_many", *names, writes=tuple(names))
        return [names.get(name, name) for name in done]

    def inc(self, key: Any, delta: int = 1) -> Any:
        name = self.key_name(key)
        return self._call("inc", name, delta, writes=(name,))

    def dec(self, key: Any, delta: int = 1) -> Any:
        name = self.key_name(key)
        return self._call("dec", name, delta, writes=(name,))

    def clear(self) -> bool:
        return bool(self._call("clear", clears=True))

    def lock(self, key: Any, seconds: float) -> bool:
        seconds, name = lock_seconds(seconds), self.key_name(key)
        if self.alone:
            return self.fallback.lock(name, seconds)
        if self._pid == _getpid() and self.fallback.locks.holds(name):
            return False  # this worker holds it (taken while the server was away)
        return bool(self._call("lock", name, seconds))

    def unlock(self, key: Any) -> None:
        name = self.key_name(key)
        if self.alone or (self._pid == _getpid() and self.fallback.locks.holds(name)):
            self.fallback.unlock(name)  # this worker's, not the server's: the docstring says why
            return
        self._call("unlock", name)

    # The breaker.
    def _call(
        self, method: str, *args: Any, writes: tuple[str, ...] = (), clears: bool = False
    ) -> Any:
        if self._pid != _getpid():
            self._forked()
        if self.state is not CLOSED:
            with self._lock:
                probe = self.state is State.OPEN and self.clock() >= self.retry_at
                if probe:
                    self.state = State.PROBING  # this call alone probes the backend
                elif self.state is not CLOSED:
                    return self._fallback(method, args, writes, clears)
            if probe:
                return self._probe(method, args, writes, clears)
        try:
            return self._attempt(method, args, writes, clears)
        except Exception as error:
            return self._trip(error, method, args, writes, clears)

    def _forked(self) -> None:
        """In a new process, before its first call (one thread: the one that forked)."""
        self._pid, self._lock = os.getpid(), threading.Lock()
        if self.state is State.PROBING:  # the probing thread is the parent's
            self.state = State.OPEN
        self.fallback = Simple(threshold=self.threshold, default_timeout=self.default_timeout)
        self.guarded.forked()

    def cannot_serve(self, error: BaseException) -> bool:
        """Whether ``error`` opens the breaker: one of the backend's unreachable errors or
        refusals (backends/base.py, Errors), or a ReplayLater."""
        if isinstance(error, self.unreachable):
            return True
        return any(
            isinstance(error, kind) and says(str(error), starts)
            for kind, starts in self.refusals.items()
        )

    def _attempt(
        self, method: str, args: tuple[Any, ...], writes: tuple[str, ...], clears: bool
    ) -> Any:
        try:
            return getattr(self.guarded, method)(*args)
        except Exception as error:
            return self._failed(method, args, writes, clears, error)

    def _failed(
        self,
        method: str,
        args: tuple[Any, ...],
        writes: tuple[str, ...],
        clears: bool,
        error: Exception,
    ) -> Any:
        """The call failed with ``error``. Raises an error it cannot serve with (cannot_serve),
        or ReplayLater when what it refused must be replayed; any other failure is a miss for this
        call. A connection the client kept, closed meanwhile, is tried once more on a new one."""
        if isinstance(error, self.closed):
            try:
                return getattr(self.guarded, method)(*args)
            except Exception as again:
                error = again
        if self.cannot_serve(error):
            raise error
        if clears or method in DELETES:
            raise ReplayLater(method) from error
        if writes and method not in BUILD_ON_THE_SERVER:
            # A set failed, maybe part-way: the key must not keep serving its old value.
            try:
                self.guarded.unlink(*writes)
            except Exception:
                raise ReplayLater(method) from error
        if method in LOCKS:
            where = "held in this worker only"
            self._warn_quietly(f"cache: {method}(...) failed on {self.name}, {where}: %s", error)
            return getattr(self.fallback, method)(*args)
        self._warn_quietly(f"cache: {method}(...) failed on {self.name}, a miss: %s", error)
        return _MISS[method](args)

    def _probe(
        self, method: str, args: tuple[Any, ...], writes: tuple[str, ...], clears: bool
    ) -> Any:
        """Replay what is pending, make this call, then close, once nothing is left to replay."""
        try:
            self._replay()
            result = self._attempt(method, args, writes, clears)
            while self._replay(close=True):
                pass
        except Exception as error:  # anything, even a bug: the breaker must not stay half-open
            with self._lock:
                self.state, self.retry_at = State.OPEN, self.clock() + self.retry_after
                result = self._fallback(method, args, writes, clears)
            self._record_error(error)
            if not self.cannot_serve(error):
                self._warn_quietly(f"cache: replaying onto {self.name} failed: %s", error)
            return result
        self.log.warning("cache: %s at %s is back; serving from it again", self.name, self.location)
        return result

    def _replay(self, close: bool = False) -> bool:
        """Delete what was invalidated while away (pending again on failure); whether there was
        anything. With ``close``, close the breaker when there was not."""
        with self._lock:
            clear, keys = self.pending_clear, sorted(self.pending_deletes)
            self.pending_clear, self.pending_deletes = False, set()
            if close and not (clear or keys):
                self.state = CLOSED
                self.fallback.clear()
                return False
        try:
            if clear:
                self.guarded.clear()
            for start in range(0, 0 if clear else len(keys), REPLAY_BATCH):
                self.guarded.unlink(*keys[start : start + REPLAY_BATCH])
        except BaseException:
            with self._lock:
                self._remember(keys, clear)
            raise
        return bool(clear or keys)

    def _fallback(
        self, method: str, args: tuple[Any, ...], writes: tuple[str, ...], clears: bool
    ) -> Any:
        """The call on the in-process cache, the keys it writes remembered (lock held)."""
        self._remember(() if method in BUILD_ON_THE_SERVER else writes, clears)
        return getattr(self.fallback, method)(*args)

    def _remember(self, writes: Iterable[str], clears: bool) -> None:
        if clears or self.pending_clear:
            self.pending_clear, self.pending_deletes = True, set()
            return
        self.pending_deletes.update(writes)
        if len(self.pending_deletes) > MAX_PENDING_KEYS:
            self.pending_clear, self.pending_deletes = True, set()

    def _trip(
        self,
        error: Exception,
        method: str,
        args: tuple[Any, ...],
        writes: tuple[str, ...],
        clears: bool,
    ) -> Any:
        """What _attempt raised: an outage opens the breaker, and the call is served from the
        fallback; anything else is raised again."""
        if not self.cannot_serve(error):
            raise error
        with self._lock:
            opened = self.state is CLOSED  # not already opened by another thread
            if opened:
                self.state, self.retry_at = State.OPEN, self.clock() + self.retry_after
                self.fallback.clear()  # nothing left over from an earlier outage
                if isinstance(self.guarded, Near):
                    # Nothing it holds is served while open, and the probe must ask the server.
                    self.guarded.forget(None)
            result = self._fallback(method, args, writes, clears)
        self._record_error(error)
        if opened:
            self.log.error(
                "cache: %s at %s failed (%s); serving from the in-process simple cache, "
                "next try in %ss",
                self.name,
                self.location,
                self.format(error),
                self.retry_after,
            )
        return result

    def _record_error(self, error: BaseException) -> None:
        """What status() says of the error: the server's own (not ReplayLater), type and message,
        its secrets and host names replaced by ***."""
        cause = underlying(error)
        message = error_message(cause, [*self.secrets, *self.hosts])
        self.last_error = {
            "type": type(cause).__name__,
            "message": advised(message, self._advice(cause)),
            "at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }

    def format(self, error: BaseException) -> str:
        cause = underlying(error)
        return advised(format_error(cause, self.secrets), self._advice(cause))

    def _advice(self, error: BaseException) -> str:
        return self.server.advice(error) if isinstance(self.server, Backend) else ""

    def _warn_quietly(self, template: str, error: BaseException) -> None:
        """Log a per-call failure: the first, then at most one per QUIET_SECONDS."""
        with self._lock:
            now = self.clock()
            if now < self._quiet_until:
                self._quieted += 1
                return
            quieted, self._quieted = self._quieted, 0
            self._quiet_until = now + QUIET_SECONDS
        more = f" ({quieted} more since the last line)" if quieted else ""
        self.log.warning(template + more, self.format(error))


_getpid = os.getpid  # a call per cache call: no attribute lookup


def underlying(error: BaseException) -> BaseException:
    """The backend's own error behind a ReplayLater."""
    while isinstance(error, ReplayLater) and error.__cause__ is not None:
        error = error.__cause__
    return error


# What a call that failed for a reason other than an outage returns: a miss, or "not done".
_MISS: dict[str, Callable[[tuple[Any, ...]], Any]] = {
    "get": lambda args: None,
    "get_many": lambda args: [None] * len(args),
    "has": lambda args: False,
    "set": lambda args: False,
    "add": lambda args: False,
    "set_many": lambda args: [],
    "inc": lambda args: None,
    "dec": lambda args: None,
}
