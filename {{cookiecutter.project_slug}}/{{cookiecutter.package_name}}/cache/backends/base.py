"""What every backend class says about itself (Backend), and what several of them share.

Each backend (a module beside this one, listed in BACKENDS in __init__.py) is a Flask-Caching
backend (its ``factory`` builds it from the app's config, as Flask-Caching's own do) that also
says what the rest of the package asks of it: its .env settings, parsed and checked; the client
library it needs; what its errors mean (Errors); a description fit for a log line; its hosts.

Values are signed (signing.py), integers included, so no backend can use the server's own
INCR: inc() and dec() read the signed value, add, and write a new one only if nobody wrote in
between (Redis and Upstash: a compare-and-set script; memcached: gets/cas), retrying if someone
did: atomic, as cachelib promises "for supporting caches". The filesystem's (and the simple
cache's) stay cachelib's read-modify-write: not atomic across workers.

Locks (lock() and unlock(), for one regeneration of an entry at a time): each backend takes one
with its own atomic operation, and each expires by itself, its holder dead or not: SET NX PX on
Redis (one REST request on Upstash), add on memcached, an exclusive create on the filesystem,
this worker's memory for the simple cache. A lock's name is a key like an entry's (the caller
picks one no entry has); reading it as an entry is a miss.

Flask-Caching's own clear() runs KEYS (or FLUSHDB with an empty prefix) on Redis, flush_all on
memcached, and deletes every file in the cache directory: each can wipe another app's data. The
clear() of each class here removes this app's entries only.
"""

import math
import os
import random
import time
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar, NamedTuple

from .. import keys
from ..config import Env
from ..errors import says

Config = Mapping[str, Any]
# Races an inc()/dec() may lose to other writers of its key before it gives up and answers None
# (cachelib's "backend error"); each lost race means another worker's write went through.
COUNTER_ATTEMPTS = 50


def attempts() -> Iterator[int]:
    """The tries of a compare-and-set. After each lost race, a random pause of up to 2, 4, 8 ..
    32 ms, so that workers counting on one key stop colliding in step: without it, workers that
    lost a race retry together, and one can lose every race."""
    for attempt in range(COUNTER_ATTEMPTS):
        if attempt:
            time.sleep(random.uniform(0, 0.001 * 2 ** min(attempt, 5)))  # noqa: S311 - jitter
        yield attempt


def added(current: Any, delta: int, key: str) -> int:
    """inc()/dec()'s new value. None (missing, or not this app's: a miss) counts from 0."""
    if current is None:
        return delta
    if type(current) is not int:  # as Redis INCR refuses: a counter is an int, never a bool
        raise TypeError(f"inc/dec of {key!r}: it holds a {type(current).__name__}, not an int")
    return current + delta


def lock_seconds(seconds: float) -> float:
    """``seconds`` checked for lock(): a lock must expire, so a finite number above 0."""
    if not (isinstance(seconds, int | float) and math.isfinite(seconds) and seconds > 0):
        raise ValueError(f"a lock lasts a number of seconds above 0, not {seconds!r}")
    return float(seconds)


class Errors(NamedTuple):
    """What a backend's errors mean to the breaker in front of it (breaker.py)."""

    #: the backend cannot serve now: they open the breaker
    unreachable: tuple[type[BaseException], ...] = ()
    #: a connection the client kept between calls was closed by the other end (a server's idle
    #: timeout, a NAT that forgot it): the client drops it, and the breaker tries the call once
    #: more, on a new one, before it counts an outage. A server that is down refuses that new one
    #: at once; one that hangs is not among these.
    closed: tuple[type[BaseException], ...] = ()
    #: answers that mean the server will refuse every command for a while (a quota used up), by
    #: error type and the start of the message (after its Redis error code, if any): they open
    #: the breaker too, so that a worker sends one command per CACHE_RETRY_AFTER until the
    #: server serves again, instead of one per call, each a miss
    refusals: Mapping[type[BaseException], tuple[str, ...]] = {}


class Backend:
    """What a backend says about itself; the Flask-Caching class it also is does the caching."""

    name: ClassVar[str]
    #: the client library: its import name and its pip name; None: nothing to install
    requires: ClassVar[str | None] = None
    #: entries outside the worker's memory, shared by every worker: signed, behind the breaker
    shared: ClassVar[bool] = False
    #: reached over raw TCP, which free PythonAnywhere accounts cannot open (they have a proxy)
    needs_paid_account: ClassVar[bool] = False
    #: offered as a cache_backend answer when baking the project
    offered: ClassVar[bool] = True
    #: its server reports every change to the near cache (near.py): tracking() makes the link
    tracks: ClassVar[bool] = False
    #: the .env variables of this backend alone (.env.example documents each); for a backend
    #: with a server, the first one names it
    variables: ClassVar[tuple[str, ...]] = ()
    #: those of them that may stay empty (the others: settings() raises NotSet when empty)
    optional: ClassVar[tuple[str, ...]] = ()
    # Each class's delete_many is cachelib's own, as Flask-Caching 2.5 calls it: every key given
    # is deleted. Flask-Caching 2.4 (the last release for Python 3.10) puts its own in front,
    # which stops at the first key that was not there, leaving the others cached, and on
    # memcached answers True instead of the keys.

    @classmethod
    def settings(cls, env: Env) -> dict[str, object]:
        """This backend's own settings, parsed and checked (only when CACHE_TYPE names it)."""
        return {}

    @classmethod
    def errors(cls) -> Errors:
        """What its client library's errors mean: imported only when this backend serves."""
        return Errors()

    @classmethod
    def refused(cls, kind: str, message: str) -> bool:
        """Whether an error reported by type name and message, as /health gives them, is one of
        its refusals: deploy.py then says to wait for the quota, not to fix a setting."""
        return any(
            kind == error.__name__ and says(message, starts)
            for error, starts in cls.errors().refusals.items()
        )

    @classmethod
    def describe(cls, config: Config) -> str:
        """Where the entries live, fit for a log line: never a password."""
        return "memory of this worker process"

    @classmethod
    def hosts(cls, config: Config) -> list[str]:
        """The hosts it connects to (deploy.py refuses this machine: PythonAnywhere runs none)."""
        return []

    @classmethod
    def advice(cls, error: BaseException) -> str:
        """What to change in .env when ``error`` means a setting is wrong ("" when it does not):
        the breaker's log line, status() and `flask cache` add it to the server's words."""
        return ""

    @classmethod
    def secrets(cls, config: Config) -> list[str]:
        """Its passwords and tokens: errors.format_error replaces them by *** in any error."""
        return []

    #: why no near cache is in front of it (near.near_cache() says why for a shared one)
    why_no_near_cache = "no near cache in front of it"

    def status(self) -> dict[str, Any]:
        """This backend serving, as /health and `flask cache status` show it (the near cache and
        the breaker in front of it replace their parts)."""
        near = {"mode": "off", "why": self.why_no_near_cache}
        return {"active": self.name, "breaker": "closed", "last_error": None, "near": near}

    def storable(self, key: Any) -> str:
        """``key`` as this backend stores it (keys.py): the breaker maps every key with it."""
        return keys.storable(key, self.fits)

    def fits(self, key: str) -> bool:
        """Whether this backend stores the text ``key`` as it is."""
        return keys.utf8(key)

    def lock(self, key: str, seconds: float) -> bool:
        """Take the lock named ``key`` if nobody holds it, atomically, for ``seconds``: then it
        expires by itself, even if its holder dies. Whether this caller got it."""
        raise NotImplementedError

    def unlock(self, key: str) -> None:
        """Release the lock named ``key`` (whoever holds it); nothing if nobody does."""
        raise NotImplementedError

    def forked(self) -> None:
        """Called in a new process (a uWSGI worker forked from the master; the breaker compares
        os.getpid(), as redis-py's pools do) before its first call: drop the parent's sockets."""


def readable_file(path: str) -> bool:
    return os.path.isabs(path) and os.path.isfile(path) and os.access(path, os.R_OK)
