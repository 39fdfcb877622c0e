"""The near cache: what each worker read from a shared backend, kept in its own memory, so that a
hit costs a dictionary lookup instead of a network round trip.

It sits between the breaker and the backend (breaker.py -> Near -> backends/), holds at most
CACHE_THRESHOLD entries per worker, and serves from memory in one of two modes:

- tracking (redis): a connection of each worker's own asks the server for the key of every write
  under the prefix, by any client (``CLIENT TRACKING ON BCAST PREFIX <CACHE_KEY_PREFIX>``, Redis 6
  or later, RESP3); before each read from memory the worker applies what has arrived, without
  waiting. So a change is seen once its invalidation has crossed the network: under a
  millisecond on one machine, the one-way latency to a hosted Redis. An entry also ends when its
  key expires on the server (its PTTL is read with it). Memory serves only while a PING sent less
  than HEARTBEAT seconds ago was answered, and serves nothing from when the connection is lost
  until tracking is back. Tracking starts after a worker's first read from the server succeeds.
  A server that refuses tracking (older than Redis 6, an ACL without CLIENT, a proxy or a server
  without BCAST, Upstash) gets plain reads, or the ttl mode when CACHE_NEAR_TTL is set, logged
  once; one that refuses the tracking connection (a plan's "max number of clients reached") or
  hangs gets plain reads, and is asked again after CACHE_RETRY_AFTER seconds, then twice that, up
  to MAX_RETRY_TRACKING apart.
- ttl (memcached, upstash, filesystem; redis without tracking), when CACHE_NEAR_TTL > 0: an entry
  is served from memory for at most CACHE_NEAR_TTL seconds after it was read, so a change made
  elsewhere is seen at most that long after; this worker's own writes and deletes at once.

Memory holds the pickle of a value this worker read back from the backend, its signature checked
there (signing.py): a hit costs one unpickling, as a simple-cache hit does, and a caller that
changes the value it got cannot change what the next caller gets.

Races: every change applied (a write in this worker, an invalidation, a lost connection) moves
``version`` on, and a fetched value is kept only if ``version`` did not move while it was fetched.
"""

import logging
import math
import pickle
import select
import sys
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from flask_caching.backends.base import BaseCache

from .errors import format_error

if sys.platform != "win32":  # FIONREAD, read by _waiting() on each reply
    import fcntl
    import termios

NAME = "near-cache"  # the tracking connection's, in CLIENT LIST
RETRY_TRACKING = 1.0  # seconds between attempts to start tracking again after it failed
MAX_RETRY_TRACKING = 60.0  # the longest wait before asking a server that refused tracking again
# A tracking connection that dies silently (a NAT or firewall forgetting it) delivers nothing, and
# says nothing either. So memory serves only while the server answered a PING sent less than
# HEARTBEAT seconds ago: its PONG comes after every invalidation sent before it, so a change is
# missed for HEARTBEAT seconds at most. A PING goes after PING_AFTER seconds without one, on a
# cache call (an idle worker sends none); one unanswered for HEARTBEAT seconds loses the link.
HEARTBEAT = 5.0
PING_AFTER = HEARTBEAT / 2
# A worker reads at most this many replies, or finds at most this many bytes waiting, on a
# call; more (it was idle while others wrote a lot under the prefix: Redis buffers it without
# limit, and sends all the keys one command wrote, a script's included, in one notice) costs it
# its connection and its memory, not seconds of parsing.
MAX_NOTICES = 1000
MAX_BACKLOG_BYTES = 32 * 1024  # well under the 128 KiB an unread socket holds on Linux
MAX_TTL = 3600.0  # CACHE_NEAR_TTL's maximum: past an hour, stale is the rule, not the exception
# A larger value is read from the backend each time: memory holds up to CACHE_THRESHOLD entries
# in every worker, and a few huge ones must not be what fills it.
MAX_ENTRY_BYTES = 1024 * 1024
# The modes in which memory does not serve: reads go to the server.
FROM_SERVER = ("off", "untracked")


class Tracking:
    """The invalidations a Redis server sends for the keys under a prefix, read without waiting.
    ``connect()`` makes a redis-py Connection (protocol 3), not connected yet. ``forget`` is
    called with the keys (the prefix taken off) that changed, or None for all of them (a flush,
    a lost connection, a new one), with the caller's lock held: poll() runs under it."""

    def __init__(self, connect: Callable[[], Any], prefix: str, log: logging.Logger):
        self.connect, self.prefix, self.log = connect, prefix, log
        self.forget: Callable[[Iterable[str] | None], None] = lambda keys: None  # set by Near
        self.clock: Callable[[], float] = time.monotonic
        self.retry_after = RETRY_TRACKING  # after a failed start (set by near_cache())
        self.conn: Any = None  # the tracking connection, while tracking is on
        self.refused: str | None = None  # why the server will never track: plain reads
        self.why_off = "no cache call yet in this worker"  # why it does not track now
        self.hint = ""  # what the user can do when the server will not track (set by near_cache())
        self._next_try = -math.inf
        self._failed_starts = 0  # attempts to start that failed since tracking last ran
        self._ready: Callable[[], bool] = lambda: False
        self.verified = -math.inf  # when the last PING answered was sent (or tracking started)
        self._pinged: float | None = None  # when the PING not answered yet was sent

    def poll(self) -> bool:
        """Apply the invalidations that have arrived; whether memory may serve now."""
        if self.conn is None or (self._ready() and not self._read()):
            return False
        now = self.clock()
        if self._pinged is not None and now - self._pinged >= HEARTBEAT:
            self._lose(f"no answer to a PING in {HEARTBEAT:g} s")
            return False
        if self._pinged is None and now - self.verified >= PING_AFTER and not self._ping(now):
            return False
        return now - self.verified < HEARTBEAT

    def _ping(self, now: float) -> bool:
        """Send a PING, its PONG read with the invalidations; False if the connection is lost."""
        try:
            self.conn.send_command("PING", check_health=False)
        except Exception as error:
            self._lose(f"the tracking connection was lost ({type(error).__name__})")
            return False
        self._pinged = now
        return True

    def nothing_pending(self) -> bool:
        """Whether poll() would find nothing to do: no data, no PING due (no lock needed)."""
        if self.conn is None or self.clock() - self.verified >= PING_AFTER:
            return False
        return not self._ready()

    def confirm(self) -> None:
        """A PING on the tracking connection, its answer read as invalidations are, waiting up
        to the connection's timeout: a connection that only seemed to start (a client library
        whose reads fail) shows as lost. For `flask cache status`, never for a request."""
        if self.conn is None or (self._pinged is None and not self._ping(self.clock())):
            return
        deadline = time.monotonic() + (self.conn.socket_timeout or HEARTBEAT)
        while self.conn is not None and self._pinged is not None and self._read():
            if time.monotonic() >= deadline:
                self._lose("no answer to a PING")
                return
            select.select([self.conn._sock], [], [], 0.01)

    def start_if_due(self) -> None:
        if self.conn is None and self.refused is None and self.clock() >= self._next_try:
            self._start()

    def _read(self) -> bool:
        """Read what has arrived; a backlog (MAX_NOTICES says why) drops the connection."""
        read = 0
        try:
            # Everything that has arrived; an invalidation half arrived waits for the next poll.
            while self.conn.can_read(0):
                # Checked before each reply: redis-py parses a whole one, however large.
                if read == MAX_NOTICES or _waiting(self.conn._sock) > MAX_BACKLOG_BYTES:
                    self._lose("a backlog of invalidations was waiting")
                    return False
                reply = self.conn.read_response(
                    push_request=True, timeout=0, disconnect_on_error=False
                )  # an invalidation is applied by _invalidated, and answers None
                read += 1
                if reply in (b"PONG", "PONG") and self._pinged is not None:
                    self.verified, self._pinged = self._pinged, None
        except Exception as error:
            from redis.exceptions import TimeoutError

            if isinstance(error, TimeoutError):  # the rest of a message is not here yet
                return True
            self._lose(f"the tracking connection was lost ({type(error).__name__})")
            return False
        return True

    def _start(self) -> None:
        """Connect (HELLO, and AUTH, as for any redis-py connection) and ask for tracking; until
        it runs, plain reads."""
        from redis.exceptions import ResponseError

        conn = None
        try:
            conn = self.connect()
            conn.connect()  # HELLO 3 (with AUTH): a round trip
            # Both in one round trip; CLIENT LIST names the connection.
            conn.send_command("CLIENT", "SETNAME", NAME)
            conn.send_command("CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", self.prefix)
            for _ in range(2):
                conn.read_response()
            # redis-py's own client-side cache hooks the parser the same way (and refuses
            # servers before 7.4); tests/cache/test_near.py pins these private names.
            conn._parser.set_invalidation_push_handler(self._invalidated)
            ready = _readable(conn._sock)
        except Exception as error:
            if conn is not None:
                conn.disconnect()
            if isinstance(error, ResponseError):  # HELLO or CLIENT refused: it will not track
                self._refuse(error)
            else:
                self._failed(f"tracking could not start ({format_error(error, ())})")
            return
        if self._failed_starts:
            self.log.warning("cache: near cache tracking again")
        self._failed_starts = 0
        self.forget(None)  # read while untracked: nothing in memory can be trusted
        self.conn, self._ready, self.why_off = conn, ready, ""
        self.verified, self._pinged = self.clock(), None

    def _refuse(self, error: BaseException) -> None:
        """The server refused tracking (_start's): plain reads from now on, said once."""
        refusal = format_error(error, ())  # redis-py's errors quote no password
        self.refused = self.why_off = f"the server refused tracking ({refusal}){self.hint}"
        self.log.warning("cache: near cache without tracking: %s", self.refused)

    def _failed(self, why: str) -> None:
        """A start failed: asked again less and less often; said once until tracking runs."""
        self._failed_starts += 1
        longest = max(MAX_RETRY_TRACKING, self.retry_after)
        wait = min(self.retry_after * 2 ** (self._failed_starts - 1), longest)
        self._next_try = self.clock() + wait
        self.why_off = f"{why}; retrying in {wait:g} s"
        if self._failed_starts == 1:
            self.log.warning(
                "cache: near cache without tracking for now, plain reads: %s (each worker "
                "tries again, at most every %g s; docs/caching.md, Hosted Redis)",
                why,
                longest,
            )

    def _invalidated(self, message: list[Any]) -> None:
        """A push ``["invalidate", [key, ...]]``, or ``["invalidate", None]`` after a flush."""
        keys = message[1]
        if keys is None:
            self.forget(None)
            return
        start = len(self.prefix)
        self.forget([key.decode("utf-8", "replace")[start:] for key in keys])

    def _lose(self, why: str) -> None:
        conn, self.conn = self.conn, None
        self.why_off, self._next_try = f"{why}; retrying", self.clock() + RETRY_TRACKING
        self.forget(None)
        self.log.info("cache: near cache off until tracking is back: %s", why)
        if conn is not None:
            conn.disconnect()  # redis-py shuts the socket down only in the process that opened it

    def forked(self) -> None:
        """In a new process: the socket is the parent's (dropped here, never shut down, which
        would cut the parent off); this process starts its own."""
        self.conn, self._next_try, self._pinged = None, -math.inf, None
        self.why_off, self._failed_starts = "no cache call yet in this worker", 0


def _waiting(sock: Any) -> int:
    """How many bytes have arrived on ``sock`` unread (FIONREAD); 0 where the system cannot say."""
    if sys.platform == "win32":
        return 0
    try:
        answer = fcntl.ioctl(sock.fileno(), termios.FIONREAD, bytes(4))
    except (OSError, ValueError):
        return 0
    return int.from_bytes(answer, sys.byteorder, signed=True)


def _readable(sock: Any) -> Callable[[], bool]:
    """Whether ``sock`` has something to read, without waiting: poll() where there is one, with
    a poll object per thread (one object polled by two threads at once raises RuntimeError)."""
    if not hasattr(select, "poll"):  # Windows
        return lambda: bool(select.select([sock], [], [], 0)[0])
    local = threading.local()

    def ready() -> bool:
        poller = getattr(local, "poller", None)
        if poller is None:
            poller = local.poller = select.poll()
            poller.register(sock, select.POLLIN)
        return bool(poller.poll(0))

    return ready


class Near(BaseCache):
    """The near cache in front of ``server`` (a shared backend). Every call of BaseCache's API is
    its own (tests/cache/test_near.py checks): a read may be served from memory."""

    def __init__(
        self,
        server: Any,
        *,
        threshold: int,
        ttl: float,
        tracking: Tracking | None = None,
    ):
        super().__init__(server.default_timeout)  # type: ignore[no-untyped-call, unused-ignore]
        self.server = server
        self.threshold, self.ttl, self.tracking = threshold, ttl, tracking
        self.clock: Callable[[], float] = time.monotonic
        self.entries: dict[str, tuple[float, bytes]] = {}  # key: (expires, pickle)
        self.version = 0
        self._lock = threading.Lock()
        if tracking is not None:
            tracking.forget = self._forget_locked

    # When memory may serve, and for how long.
    def _mode(self) -> str:
        """tracking, untracked (tracking not started yet, lost, or not heard from lately: reads
        go to the server, then start it when due: _start_tracking_if_due), ttl or off."""
        tracking = self.tracking
        if tracking is not None and tracking.refused is None:
            # Nothing arrived, and no thread is applying what did (it may have drained the
            # socket): nothing to wait for. In this order: a thread that takes the lock after
            # the check finds only what arrived after this read began.
            if tracking.nothing_pending() and not self._lock.locked():
                return "tracking"
            with self._lock:
                return "tracking" if tracking.poll() else "untracked"
        return "ttl" if self.ttl > 0 else "off"

    def status(self) -> dict[str, Any]:
        """The server's status, its "near" {"mode": tracking, ttl or off, "why": ...} this near
        cache's: as of the last call, touching no server."""
        return {**self.server.status(), "near": self._near_status()}

    def _near_status(self) -> dict[str, str]:
        tracking = self.tracking
        if tracking is not None and tracking.conn is not None:
            return {"mode": "tracking", "why": "the server reports every change (CLIENT TRACKING)"}
        if self.ttl > 0 and (tracking is None or tracking.refused):
            why = f"entries are served from memory for up to {self.ttl:g} s (CACHE_NEAR_TTL)"
            return {"mode": "ttl", "why": why}
        return {"mode": "off", "why": tracking.why_off if tracking else "CACHE_NEAR_TTL is 0"}

    def check(self) -> None:
        """Apply what has arrived, start tracking if it is due, and confirm it with a round trip
        on its connection: `flask cache status` asks the server now, before it shows status()."""
        self._start_tracking_if_due(self._mode())
        if self.tracking is not None:
            with self._lock:
                self.tracking.confirm()

    # Reads: from memory, or past it (off, or tracking not on: untracked).
    def get(self, key: str) -> Any:
        mode = self._mode()
        if mode in FROM_SERVER:
            value = self.server.get(key)
            self._start_tracking_if_due(mode)
            return value
        now = self.clock()
        entry = self.entries.get(key)  # _pickle_in_memory(), inlined: this is a hit's path
        if entry is not None and now < entry[0]:
            return pickle.loads(entry[1])  # noqa: S301 - this process's own pickle
        version = self.version
        if mode == "tracking":
            value, lifetime = self.server.get_with_ttl(key)
        else:
            value, lifetime = self.server.get(key), self.ttl
        if value is not None and lifetime > 0:
            self._keep(key, value, now + lifetime, version)
        return value

    def has(self, key: str) -> bool:
        mode = self._mode()
        if mode in FROM_SERVER:
            found = bool(self.server.has(key))
            self._start_tracking_if_due(mode)
            return found
        return self._pickle_in_memory(key, self.clock()) is not None or bool(self.server.has(key))

    def get_many(self, *keys: str) -> list[Any]:
        mode = self._mode()
        if mode in FROM_SERVER:
            values = list(self.server.get_many(*keys))
            self._start_tracking_if_due(mode)
            return values
        now = self.clock()
        kept = {key: self._pickle_in_memory(key, now) for key in keys}
        found = {key: pickle.loads(data) for key, data in kept.items() if data is not None}  # noqa: S301
        missing = [key for key in keys if key not in found]
        if missing:
            found.update(zip(missing, self.server.get_many(*missing), strict=True))
        return [found[key] for key in keys]

    def get_dict(self, *keys: str) -> dict[str, Any]:
        return dict(zip(keys, self.get_many(*keys), strict=True))

    def _start_tracking_if_due(self, mode: str) -> None:
        """Untracked, after a read from the server that succeeded: start tracking if it is due.
        After the read, so a server that hangs costs the breaker's probe one timeout, not one
        for the data and one more for tracking."""
        if mode == "untracked":
            with self._lock:
                self.tracking.start_if_due()  # type: ignore[union-attr]

    def _pickle_in_memory(self, key: str, now: float) -> bytes | None:
        entry = self.entries.get(key)
        return entry[1] if entry is not None and now < entry[0] else None

    def _keep(self, key: str, value: Any, expires: float, version: int) -> None:
        try:
            data = pickle.dumps(value, pickle.HIGHEST_PROTOCOL)
        except Exception:  # unpicklable once loaded (rare): served from the backend only
            return
        if len(data) > MAX_ENTRY_BYTES:
            return
        with self._lock:
            if version != self.version:  # something changed while it was fetched
                return
            if key not in self.entries and len(self.entries) >= self.threshold:
                self._make_room()
            self.entries[key] = (expires, data)

    def _make_room(self) -> None:
        """Drop expired entries, then the oldest kept, down to 90% of the threshold."""
        now = self.clock()
        for key in [key for key, (expires, _) in self.entries.items() if expires <= now]:
            del self.entries[key]
        excess = len(self.entries) - int(self.threshold * 0.9)
        for key in list(self.entries)[: max(excess, 0)]:
            del self.entries[key]

    # Writes: the server's call, then its keys are forgotten, whatever the call did.
    def set(self, key: str, value: Any, timeout: Any = None) -> Any:
        return self._write([key], "set", key, value, timeout)

    def add(self, key: str, value: Any, timeout: Any = None) -> Any:
        return self._write([key], "add", key, value, timeout)

    def set_many(self, mapping: dict[str, Any], timeout: Any = None) -> Any:
        return self._write(mapping, "set_many", mapping, timeout)

    def delete(self, key: str) -> Any:
        return self._write([key], "delete", key)

    def delete_many(self, *keys: str) -> Any:
        return self._write(keys, "delete_many", *keys)

    def unlink(self, *keys: str) -> Any:
        return self._write(keys, "unlink", *keys)

    def inc(self, key: str, delta: int = 1) -> Any:
        return self._write([key], "inc", key, delta)

    def dec(self, key: str, delta: int = 1) -> Any:
        return self._write([key], "dec", key, delta)

    def clear(self) -> Any:
        return self._write(None, "clear")

    # Locks: the server's, always; nothing of them is kept in memory.
    def lock(self, key: str, seconds: float) -> bool:
        return bool(self.server.lock(key, seconds))

    def unlock(self, key: str) -> None:
        self.server.unlock(key)

    def _write(self, keys: Iterable[str] | None, method: str, *args: Any) -> Any:
        try:
            return getattr(self.server, method)(*args)
        finally:
            self.forget(keys)

    def forget(self, keys: Iterable[str] | None) -> None:
        """Drop ``keys`` from memory, or everything (None)."""
        with self._lock:
            self._forget_locked(keys)

    def forked(self) -> None:
        """In a new process (breaker.py notices it): memory and tracking of its own."""
        self._lock = threading.Lock()
        self._forget_locked(None)
        if self.tracking is not None:
            self.tracking.forked()
        self.server.forked()

    def _forget_locked(self, keys: Iterable[str] | None) -> None:
        self.version += 1
        if keys is None:
            self.entries.clear()
            return
        for key in keys:
            self.entries.pop(key, None)


def near_cache(server: Any, config: dict[str, Any], log: logging.Logger) -> "Near | None":
    """The near cache in front of ``server`` that CACHE_NEAR_TTL and CACHE_NEAR_TRACKING ask for;
    None, with the reason in ``server.why_no_near_cache`` (its status() says it), if none."""
    ttl, tracked = config["CACHE_NEAR_TTL"], config["CACHE_NEAR_TRACKING"]  # from_env's
    tracking = server.tracking(log) if tracked and server.tracks else None
    if tracking is None and ttl <= 0:
        off = "" if tracked else " and CACHE_NEAR_TRACKING is off"
        server.why_no_near_cache = f"CACHE_NEAR_TTL is 0{off}"
        return None
    if tracking is not None:
        tracking.retry_after = max(config["CACHE_RETRY_AFTER"], RETRY_TRACKING)
        if ttl <= 0:
            tracking.hint = (
                "; set CACHE_NEAR_TTL to serve hits from memory for that many seconds instead "
                "(docs/caching.md)"
            )
    return Near(server, threshold=config["CACHE_THRESHOLD"], ttl=ttl, tracking=tracking)
