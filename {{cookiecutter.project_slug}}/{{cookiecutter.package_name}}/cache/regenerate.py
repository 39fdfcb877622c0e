"""One regeneration per expiry for @cache.cached and @cache.memoize, stale while it happens.

What the decorators store is an entry, a tuple (ENTRY, value, fresh_until, etag): the value, the
time until which it is fresh (time.time(): workers and servers share it), and the ETag of the
page it makes (None for a function's value). It is stored for its timeout plus the grace period
(CACHE_STALE_GRACE, or the decorator's grace=), so the previous value is still there after it
expires:
- fresh: served as it is, at the cost of one comparison;
- expired: the caller that takes the entry's lock (the backend's own atomic operation: SET NX PX
  on Redis, add on memcached, an exclusive create on the filesystem) regenerates it, and every
  other caller gets the previous value meanwhile (stale-while-revalidate). A regeneration that
  raises serves the previous value (stale-if-error) and keeps the lock until it expires, so the
  next attempt comes LOCK_SECONDS later, not at every request;
- missing: the lock's holder computes it, and the others wait for its entry, polling; one that
  finds the lock free and still no entry (the holder stored nothing, or died and its lock
  expired) computes it, and after LOCK_SECONDS each computes its own.
A caller that gets the lock reads the entry once more: another may have stored it and released
the lock in between. A lock expires by itself after LOCK_SECONDS if its holder dies. While the
breaker is open, and in the only web worker of a site (chain.one_web_worker), each worker locks
in its own memory (breaker.py). With a grace of 0, there is no lock and no stale value: every
caller that finds no fresh entry computes one, as Flask-Caching does.
"""

import math
import time
from collections.abc import Iterator
from typing import Any

ENTRY = "cache-entry/1"  # marks what the decorators stored; bump it when the tuple changes
LOCK_SECONDS = 10.0  # a regeneration longer than this lets a second caller start another
POLL_SECONDS = (0.02, 0.04, 0.08, 0.16, 0.32)  # a waiter's pauses, then the last until the end

# What claim() tells a caller: serve the entry; serve it while another caller regenerates it;
# compute it, holding the lock (then unlock); compute it, holding nothing.
FRESH, STALE, MINE, ANYWAY = "fresh", "stale", "mine", "anyway"

clock = time.time
sleep = time.sleep

Entry = tuple[str, Any, float, str | None]


def entry(value: Any, timeout: int, etag: str | None = None) -> Entry:
    """What a decorator stores for ``value``, fresh for ``timeout`` seconds (0: for ever)."""
    return (ENTRY, value, clock() + timeout if timeout else math.inf, etag)


def is_entry(got: Any) -> bool:
    """Whether ``got`` (what the cache returned) is what a decorator stored."""
    return type(got) is tuple and len(got) == 4 and got[0] == ENTRY


def as_entry(got: Any) -> Entry | None:
    """``got`` as an entry: a value stored by a plain cache.set(), or by this template's
    releases before entries, is fresh until the backend expires it."""
    if is_entry(got):
        return got  # type: ignore[no-any-return]
    return None if got is None else (ENTRY, got, math.inf, None)


def lock_name(key: str) -> str:
    # No Flask-Caching key starts with a NUL, so no entry can take a lock's name.
    return f"\0lock:{key}"


def fresh(got: Any) -> Entry | None:
    """``got`` if it is an entry still fresh: a hit's whole check."""
    if type(got) is tuple and len(got) == 4 and got[0] == ENTRY and clock() < got[2]:
        return got
    return None


def claim(store: Any, key: str, found: Entry | None, grace: int) -> tuple[str, Entry | None]:
    """What to do for ``key``, whose entry ``found`` (as_entry) is not fresh: (STALE, found)
    while another caller regenerates it, (MINE or ANYWAY, the previous entry or None) to
    compute it, or (FRESH, entry) when a caller it waited for stored one."""
    if not grace:
        return ANYWAY, found
    if store.lock(lock_name(key), LOCK_SECONDS):
        return _locked(store, key, found)
    if found is not None:
        return STALE, found
    for pause in _pauses():  # no previous value: wait for the holder's
        sleep(pause)
        found = as_entry(store.get(key))
        if found is not None:
            return FRESH, found
        if store.lock(lock_name(key), LOCK_SECONDS):  # the holder stored nothing, or died
            return _locked(store, key, None)
    return ANYWAY, None


def _locked(store: Any, key: str, found: Entry | None) -> tuple[str, Entry | None]:
    """This caller holds the lock, taken after it read ``found``: another caller may have
    stored a fresh entry and released the lock in between, so read once more (not needed by
    the only web worker, whose locks no other process takes)."""
    if getattr(store, "alone", False):
        return MINE, found
    again = fresh(store.get(key))
    if again is None:
        return MINE, found
    unlock(store, key)
    return FRESH, again


def unlock(store: Any, key: str) -> None:
    store.unlock(lock_name(key))


def stored_for(timeout: int, grace: int) -> int:
    """The timeout an entry is stored with: its own, plus the grace period."""
    return timeout + grace if timeout else 0


def _pauses() -> Iterator[float]:
    waited, step = 0.0, 0
    while waited < LOCK_SECONDS:
        pause = POLL_SECONDS[min(step, len(POLL_SECONDS) - 1)]
        waited, step = waited + pause, step + 1
        yield pause
