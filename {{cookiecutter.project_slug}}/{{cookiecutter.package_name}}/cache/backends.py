"""The backends CACHE_TYPE can name: one class each, and the registry BACKENDS at the end.

Each class is a Flask-Caching backend (its ``factory`` builds it from the app's config, as
Flask-Caching's own do) that also owns what the rest of the package asks of a backend: its .env
settings, parsed and checked; the client library it needs; the errors that mean "unreachable",
and the answers that mean "refusing every command for now" (a quota used up); a description fit
for a log line (no password); and the hosts it connects to. Adding a backend is a class here,
its line in BACKENDS, its row in the template's hooks table, and its docs.

Values are signed (signing.py), integers included, so no backend can use the server's own
INCR: inc() and dec() read the signed value, add, and write a new one only if nobody wrote in
between (Redis and Upstash: a compare-and-set script; memcached: gets/cas), retrying if someone
did. Both are atomic there, as cachelib promises "for supporting caches". The filesystem's (and
the simple cache's) stay cachelib's read-modify-write: not atomic across workers.

Flask-Caching's own clear() runs KEYS (or FLUSHDB with an empty prefix) on Redis, flush_all on
memcached, and deletes every file in the cache directory: each can wipe another app's data. The
clear() of each class here removes this app's entries only.
"""

import contextlib
import hashlib
import logging
import math
import os
import random
import re
import ssl
import stat
import struct
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from functools import partial
from io import BytesIO
from typing import Any, BinaryIO, ClassVar
from urllib.parse import parse_qsl, unquote, urlsplit

import cachelib
from flask import Flask, g, has_request_context
from flask_caching.backends.filesystemcache import FileSystemCache
from flask_caching.backends.memcache import MemcachedCache
from flask_caching.backends.nullcache import NullCache
from flask_caching.backends.rediscache import RedisCache
from flask_caching.backends.simplecache import SimpleCache

from . import keys
from .config import ConfigError, Env, is_host, is_port, redact_url, split_address
from .errors import says
from .near import Tracking
from .signing import SignedSerde, SignedSerializer, signer

Config = Mapping[str, Any]
CLEAR_BATCH = 500  # keys per SCAN page and per UNLINK
log = logging.getLogger(__name__)
# Races an inc()/dec() may lose to other writers of its key before it gives up and answers None
# (cachelib's "backend error"); each lost race means another worker's write went through.
COUNTER_ATTEMPTS = 50
# What Upstash answers to every command once a database has used its quota: the monthly one (the
# free tier's 500K commands; upstash.com/docs/redis/troubleshooting/max_requests_limit, in full
# "ERR max requests limit exceeded. Limit: 500000, Usage: 500000. See <that page> for details")
# and the older daily one (.../max_daily_request_limit). Both over REST and over the Redis
# protocol: until the quota resets, no command is served.
UPSTASH_QUOTA = ("max requests limit exceeded", "max daily request limit exceeded")


def _attempts() -> Iterator[int]:
    """The tries of a compare-and-set. After each lost race, a random pause of up to 2, 4, 8 ..
    32 ms, so that workers counting on one key stop colliding in step (without it, one worker
    lost 50 races in a row in a test of 4)."""
    for attempt in range(COUNTER_ATTEMPTS):
        if attempt:
            time.sleep(random.uniform(0, 0.001 * 2 ** min(attempt, 5)))  # noqa: S311 - jitter
        yield attempt


def _added(current: Any, delta: int, key: str) -> int:
    """inc()/dec()'s new value. None (missing, or not this app's: a miss) counts from 0."""
    if current is None:
        return delta
    if type(current) is not int:  # as Redis INCR refuses: a counter is an int, never a bool
        raise TypeError(f"inc/dec of {key!r}: it holds a {type(current).__name__}, not an int")
    return current + delta


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
    def unreachable(cls) -> tuple[type[BaseException], ...]:
        """The errors that mean the backend cannot serve now: they open the breaker."""
        return ()

    @classmethod
    def closed(cls) -> tuple[type[BaseException], ...]:
        """The errors that mean a connection the client kept between calls was closed by the
        other end (a server's idle timeout, a NAT that forgot it): the client drops it, and the
        breaker tries the call once more, on a new one, before it counts an outage. A server
        that is down refuses that new one at once; one that hangs is not among these."""
        return ()

    @classmethod
    def refusals(cls) -> dict[type[BaseException], tuple[str, ...]]:
        """Answers that mean the server will refuse every command for a while (a quota used up),
        by error type and the start of the message (after its Redis error code, if any): they
        open the breaker too, so that a worker sends one command per CACHE_RETRY_AFTER until
        the server serves again, instead of one per call, each a miss."""
        return {}

    @classmethod
    def refused(cls, kind: str, message: str) -> bool:
        """Whether an error reported by type name and message, as /health gives them, is one of
        refusals(): deploy.py then says to wait for the quota, not to fix a setting."""
        return any(
            kind == error.__name__ and says(message, starts)
            for error, starts in cls.refusals().items()
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
    def secrets(cls, config: Config) -> list[str]:
        """Its passwords and tokens: errors.format_error replaces them by *** in any error."""
        return []

    def storable(self, key: Any) -> str:
        """``key`` as this backend stores it (keys.py): the breaker maps every key with it."""
        return keys.storable(key, self.fits)

    def fits(self, key: str) -> bool:
        """Whether this backend stores the text ``key`` as it is."""
        return keys.utf8(key)

    def forked(self) -> None:
        """Called in a new process (a uWSGI worker forked from the master) before its first
        call: drop what belongs to the parent, its sockets above all. uWSGI runs no at-fork
        hook, so the breaker compares os.getpid() instead, as redis-py's pools do."""


class Simple(Backend, SimpleCache):
    """Each worker's own memory (Flask-Caching's factory reads CACHE_THRESHOLD)."""

    name = "simple"

    def delete_many(self, *keys: str) -> list[Any]:
        return cachelib.SimpleCache.delete_many(self, *keys)  # the comment in Backend says why


class Null(Backend, NullCache):
    """No caching at all: to compare, or to debug."""

    name = "null"
    offered = False


class NotAnEntry(OSError):
    """A file under an entry's name that is not a regular file, or is too large to read."""


class Filesystem(Backend, FileSystemCache):
    """Files in CACHE_DIR, shared by the workers of the web app.

    cachelib keeps its entry count in a counter file that concurrent workers overwrite, so its
    threshold was not enforced; it is turned off (threshold=0, cachelib's documented "no
    threshold"), and every write lists the directory instead (O(entries), bounded by the
    threshold) and, when full, prunes to 90% of it: unreadable entries first, then expired ones,
    then those that expire soonest. clear() removes entry files only, not everything in the
    directory.

    Disk trouble is an outage, never a flood. On a full disk or a read-only folder cachelib logs
    a traceback and leaves its temp file behind on every write, and a deleted folder is never
    made again. So the file calls are this class's own, in cachelib's format (a 4-byte expiry,
    0 = never, then the serializer's bytes; tests/test_filesystem.py pins it): a failed write
    removes its temp file and raises its OSError, which opens the breaker (one log line; each
    worker's memory serves meanwhile); a deleted folder is made again. After a failed write, every
    call first tests a write: a probe that only reads would find the disk fine and close the
    breaker, and the next write would open it again, a pair of log lines per retry window. An
    entry that cannot be read is a miss, and is removed.

    Anyone who can write to CACHE_DIR can put something else under an entry's name: a FIFO (a
    read waits for a writer, forever), a link to /dev/zero (endless bytes) or to any file, a
    folder, a huge file. No timeout applies to a file, so entries are opened without following
    a link and without blocking, and read only if they are regular files of at most MAX_ENTRY
    bytes; anything else is a miss, and is removed. No call opens an entry any other way
    (cachelib's add() and pruning included). A value that would make a larger entry is refused,
    a miss for that call: it could never be read back.
    """

    name = "filesystem"
    shared = True
    variables = ("CACHE_DIR",)
    serializer: SignedSerializer  # set by factory()
    # Entry files are named by the sha256 hex digest of their key; other files are left alone.
    _ENTRY = re.compile(r"[0-9a-f]{64}\Z")
    # Temp files: ours, and those cachelib's mkstemp ("tmp" prefix) left behind on failed writes.
    _TEMP_PREFIX, _TEMP_SUFFIX = "cache-write-", FileSystemCache._fs_transaction_suffix
    _TEMP = re.compile(rf"(?:tmp|{_TEMP_PREFIX})\w+{re.escape(_TEMP_SUFFIX)}\Z")
    STALE_TEMP = 60  # seconds: an older temp file belongs to no write in progress; it is removed
    PROBE_SIZE = 4096  # bytes written to test a disk that failed: a page, more than most entries
    MAX_ENTRY = 64 * 1024 * 1024  # bytes of an entry file: what one read may hold in memory
    # How an entry is opened: not through a link, not waiting for a FIFO's writer, not inherited
    # by a child process. Windows has neither O_NOFOLLOW nor O_NONBLOCK, and needs O_BINARY.
    _OPEN_ENTRY: int = (
        os.O_RDONLY
        | getattr(os, "O_NOFOLLOW", 0)
        | getattr(os, "O_NONBLOCK", 0)
        | getattr(os, "O_CLOEXEC", 0)
        | getattr(os, "O_BINARY", 0)
    )

    @classmethod
    def settings(cls, env: Env) -> dict[str, object]:
        return {"CACHE_DIR": env.directory("CACHE_DIR")}  # None: init_app's default

    def __init__(self, directory: str, *, limit: int, **kwargs: Any):
        # cachelib makes the folder last thing in __init__ (threshold=0: nothing after it) and
        # raises if it cannot: a full disk must not stop the app. The first write makes it, or
        # opens the breaker.
        # Entry files are named by sha256 (_ENTRY), which Flask-Caching 2.4 (the last release
        # for Python 3.10) does not default to: it hashes with md5.
        with contextlib.suppress(OSError):
            super().__init__(  # type: ignore[no-untyped-call, unused-ignore]
                directory, threshold=0, hash_method=hashlib.sha256, **kwargs
            )
        self.directory, self.limit = directory, limit
        self.failed_write: OSError | None = None  # set from a failed write until one succeeds
        self._reported_stuck = False

    @classmethod
    def factory(
        cls, app: Flask, config: dict[str, Any], args: list[Any], kwargs: dict[str, Any]
    ) -> "Filesystem":
        cache = cls(config["CACHE_DIR"], limit=config["CACHE_THRESHOLD"], **kwargs)
        cache.serializer = SignedSerializer(signer(config))
        return cache

    @classmethod
    def unreachable(cls) -> tuple[type[BaseException], ...]:
        return (OSError,)

    @classmethod
    def describe(cls, config: Config) -> str:
        return str(config["CACHE_DIR"])

    # Reads. A missing file or folder is a miss; so is an entry that cannot be read or loaded,
    # which is removed. Only if it cannot be removed either is it the folder's fault: raised.
    def get(self, key: str) -> Any:
        return self._read(key, partial(self.serializer.load, name=key))

    def has(self, key: str) -> bool:
        return self._read(key, None) is True

    def _read(self, key: str, load: Callable[[BinaryIO], Any] | None) -> Any:
        """The entry's value (``load`` reads it from the bytes after the expiry), or True for
        a live entry if ``load`` is None; None for a miss."""
        self._test_writes()
        path = self._get_filename(key)
        try:
            data = self._read_entry(path, 4 if load is None else self.MAX_ENTRY)
            (expires,) = struct.unpack("I", data[:4])
            if expires != 0 and expires < time.time():
                return None
            if load is None:
                return True
            value = BytesIO(data)
            value.seek(4)
            return load(value)
        except FileNotFoundError:
            return None
        except OSError:  # unreadable, or not an entry at all (a FIFO, a link, a folder ...)
            with contextlib.suppress(FileNotFoundError, IsADirectoryError):
                os.remove(path)  # fails too when the folder is at fault: raised, an outage
            return None
        except Exception:  # a truncated file, or a pickle whose class is gone: a miss
            with contextlib.suppress(OSError):
                os.remove(path)
            return None

    def _read_entry(self, path: str, size: int) -> bytes:
        """Up to ``size`` bytes of the entry file at ``path``; an OSError (NotAnEntry) if it is
        anything but a regular file of at most MAX_ENTRY bytes (a link is not followed)."""
        fd = os.open(path, self._OPEN_ENTRY)  # a FIFO opens at once: O_NONBLOCK
        try:
            found = os.fstat(fd)
            if not stat.S_ISREG(found.st_mode) or found.st_size > self.MAX_ENTRY:
                raise NotAnEntry(path)
            chunks, left = [], min(size, found.st_size)  # a file growing meanwhile stops there
            while left > 0 and (chunk := os.read(fd, left)):
                chunks.append(chunk)
                left -= len(chunk)
            return b"".join(chunks)
        finally:
            os.close(fd)

    # Writes: each raises its OSError, after removing its temp file.
    def set(self, key: str, value: Any, timeout: Any = None, mgmt_element: bool = False) -> bool:
        expires = struct.pack("I", self._normalize_timeout(timeout))
        path = self._get_filename(key)

        def write(file: BinaryIO) -> None:
            file.write(expires)
            self.serializer.dump(value, file, name=key)
            if file.tell() > self.MAX_ENTRY:  # a miss for this call (the breaker logs it)
                raise ValueError(f"the entry would be over {self.MAX_ENTRY} bytes")

        try:
            self._make_room()
            temp = self._write_temp(write)
            try:
                os.chmod(temp, self._mode or 0o600)
                try:
                    os.replace(temp, path)
                except IsADirectoryError:  # planted: a miss for this call, not a disk outage
                    raise ValueError("a folder is in the place of its entry file") from None
            except BaseException:
                with contextlib.suppress(OSError):
                    os.remove(temp)
                raise
        except OSError as error:
            self.failed_write = error
            raise
        self.failed_write = None
        return True

    def add(self, key: str, value: Any, timeout: Any = None) -> bool:
        # Not cachelib's (any file under the name, even expired or planted, refused it forever).
        return not self.has(key) and self.set(key, value, timeout)

    def delete(self, key: str, mgmt_element: bool = False) -> bool:
        self._test_writes()
        self._delete_entry(self._get_filename(key))
        return True

    def delete_many(self, *keys: str) -> list[Any]:
        return cachelib.FileSystemCache.delete_many(self, *keys)  # the comment in Backend says why

    def unlink(self, *keys: str) -> None:
        """The breaker's replay: delete each key, raising when a file cannot be removed."""
        for key in keys:
            self.delete(key)

    def clear(self) -> bool:
        self._test_writes()
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return True
        self._remove_stale_temps(names)
        for name in names:
            if self._ENTRY.match(name):
                self._delete_entry(os.path.join(self.directory, name))
        return True

    def _delete_entry(self, path: str) -> None:
        """Delete an entry file; gone already is fine, and so is a folder in its place (planted:
        never read as an entry). Any other failure is the folder's (raised: an outage, where
        _remove() below only reports it)."""
        try:
            os.remove(path)
        except (FileNotFoundError, IsADirectoryError):
            pass
        except OSError as error:
            self.failed_write = error
            raise

    def _write_temp(self, write: Callable[[BinaryIO], object]) -> str:
        """A new temp file in the folder (made again if it was deleted), written and closed."""
        try:
            fd, temp = tempfile.mkstemp(self._TEMP_SUFFIX, self._TEMP_PREFIX, self.directory)
        except FileNotFoundError:
            os.makedirs(self.directory, exist_ok=True)
            fd, temp = tempfile.mkstemp(self._TEMP_SUFFIX, self._TEMP_PREFIX, self.directory)
        try:
            with os.fdopen(fd, "wb") as file:  # closing flushes: a full disk may fail only here
                write(file)
        except BaseException:
            with contextlib.suppress(OSError):
                os.remove(temp)
            raise
        return temp

    def _test_writes(self) -> None:
        """After a failed write: a test write, raising its error while the disk still fails."""
        if self.failed_write is None:
            return
        try:
            os.remove(self._write_temp(lambda file: file.write(bytes(self.PROBE_SIZE))))
        except OSError as error:
            self.failed_write = error
            raise
        self.failed_write = None

    def _make_room(self) -> None:
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:  # deleted: _write_temp makes it again
            return
        self._remove_stale_temps(names)
        entries = [os.path.join(self.directory, n) for n in names if self._ENTRY.match(n)]
        if len(entries) < self.limit:
            return
        now = time.time()
        ranked = []
        for path in entries:
            # Checked against cachelib 0.14 to 0.17: an entry file starts with its expiry time, a
            # 4-byte struct "I" (0 = never); tests/test_filesystem.py pins it.
            try:
                (expires,) = struct.unpack("I", self._read_entry(path, 4))
            except FileNotFoundError:
                continue  # removed meanwhile
            except (OSError, struct.error):
                ranked.append((0, 0.0, path))  # unreadable: it can never be served; first out
                continue
            # Expired next (0 = never expires, so it sorts last), then the soonest to expire.
            if 0 < expires < now:
                ranked.append((1, float(expires), path))
            else:
                ranked.append((2, float(expires) if expires else float("inf"), path))
        ranked.sort()
        for _, _, path in ranked[: max(len(ranked) - int(self.limit * 0.9), 0)]:
            self._remove(path)

    def _remove_stale_temps(self, names: list[str]) -> None:
        cutoff = time.time() - self.STALE_TEMP
        for name in names:
            if self._TEMP.match(name):
                path = os.path.join(self.directory, name)
                with contextlib.suppress(FileNotFoundError):
                    if os.stat(path).st_mtime < cutoff:
                        self._remove(path)

    def _remove(self, path: str) -> None:
        """Remove a file the cache no longer wants; one that stays is reported once."""
        try:
            os.remove(path)
        except FileNotFoundError:
            pass
        except OSError as error:
            if not self._reported_stuck:
                self._reported_stuck = True
                log.warning(
                    "cache: cannot remove %s (%s: %s); the cache folder may hold more than "
                    "CACHE_THRESHOLD files. Later ones are not logged",
                    path,
                    type(error).__name__,
                    error.strerror,
                )


# What REDIS_URL's query may set. redis-py passes any other option to its connection, which
# fails at the first connection (an unknown name) or overrides a bounded setting (socket_timeout
# overrides CACHE_SOCKET_TIMEOUT).
REDIS_URL_FILES = ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile")
REDIS_URL_OPTIONS = (
    *("db", "username", "password", "ssl_cert_reqs", "ssl_check_hostname"),
    *REDIS_URL_FILES,
)
REDIS_DATABASES = 16  # a Redis server's default; hosted ones serve database 0 only
HOSTED_REDIS = (".upstash.io", ".redis-cloud.com", ".redislabs.com")


def _redis_url(env: Env, needed_by: str) -> str:
    accepted = (
        "use redis://[:password@]host:port/db, or rediss://... for TLS (Upstash; Redis Cloud "
        "when TLS is on)"
    )
    url = env.url("REDIS_URL", needed_by, schemes=("redis", "rediss"), accepted=accepted)
    parts = urlsplit(url)

    def refuse(problem: str) -> ConfigError:
        return ConfigError(f"REDIS_URL={redact_url(url)!r} is not valid: {problem}")

    database = parts.path.strip("/")
    if database and not (database.isascii() and database.isdigit()):
        raise refuse(accepted)  # redis-py would silently use database 0
    try:
        from redis.connection import ConnectionPool, parse_url
        from redis.exceptions import RedisError
    except ImportError:  # init_app says so and serves the simple cache; deploy.py refuses
        return url
    # redis-py's own reading of the URL, so what is checked is what it will use.
    try:
        options: dict[str, Any] = parse_url(url)  # type: ignore[no-untyped-call]
    except ValueError as error:  # "Invalid value for 'db' in connection URL."
        raise refuse(str(error).rstrip(".")) from None
    unknown = sorted(set(options) - {"host", "port", "connection_class", *REDIS_URL_OPTIONS})
    if unknown:
        raise refuse(
            f"this app does not take the option {unknown[0]!r}: use only "
            f"{', '.join(REDIS_URL_OPTIONS)} (CACHE_SOCKET_TIMEOUT sets the timeouts)"
        )
    hosted = (parts.hostname or "").endswith(HOSTED_REDIS)
    last = 0 if hosted else REDIS_DATABASES - 1
    if not 0 <= options.get("db", 0) <= last:
        where = "a hosted Redis serves database 0 only" if hosted else "a Redis server has 16"
        raise refuse(f"use a database number from 0 to {last} ({where})")
    if options.get("username") and not options.get("password"):
        raise refuse("it names a user but no password: use redis://[user]:password@host")
    tls_only = sorted(name for name in options if name.startswith("ssl_"))
    if tls_only and parts.scheme != "rediss":
        raise refuse(f"{tls_only[0]} is for rediss:// (TLS) URLs only")
    if options.get("ssl_cert_reqs", "none") not in ("none", "optional", "required"):
        raise refuse("use ssl_cert_reqs=none, optional or required")
    missing = [name for name in REDIS_URL_FILES if name in options and not _file(options[name])]
    if missing:  # read at the first connection, and at each one after
        raise refuse(f"{missing[0]} names no file this app can read: use an absolute path")
    try:  # the connection as the factory will make it, without connecting
        pool = ConnectionPool.from_url(url)
        pool.connection_class(**pool.connection_kwargs)
    except (TypeError, ValueError, RedisError) as error:
        raise refuse(f"redis-py refuses it ({type(error).__name__})") from None
    return url


def _file(path: str) -> bool:
    return os.path.isabs(path) and os.path.isfile(path) and os.access(path, os.R_OK)


class Redis(Backend, RedisCache):
    """A Redis server (Upstash, Redis Cloud) through redis-py: short timeouts, no retries."""

    name = "redis"
    requires = "redis"
    shared = needs_paid_account = tracks = True
    variables: ClassVar[tuple[str, ...]] = ("REDIS_URL",)
    serializer: SignedSerializer  # set by _signed()

    def __init__(self, client: Any, **kwargs: Any):
        super().__init__(host=client, **kwargs)  # type: ignore[no-untyped-call, unused-ignore]
        self.client = client  # ours, for clear(): cachelib keeps its own copy private

    @classmethod
    def settings(cls, env: Env) -> dict[str, object]:
        return {"REDIS_URL": _redis_url(env, f"CACHE_TYPE={cls.name}")}

    @classmethod
    def factory(
        cls, app: Flask, config: dict[str, Any], args: list[Any], kwargs: dict[str, Any]
    ) -> "Redis":
        import redis
        from redis.backoff import NoBackoff
        from redis.maint_notifications import MaintNotificationsConfig
        from redis.retry import Retry

        timeout = config["CACHE_SOCKET_TIMEOUT"]
        # redis-py retries failed calls by default, multiplying the time a request waits; the
        # breaker decides when to try again. A new connection (a worker's first request makes
        # one) costs only what it must: RESP2, so no HELLO (AUTH when there is a password); no
        # CLIENT SETINFO (a round trip, two with redis-py 8.0, for a name in CLIENT LIST); no
        # maintenance notifications (a round trip, and during a hosted Redis's maintenance they
        # relax every timeout to 10 s, past CACHE_SOCKET_TIMEOUT).
        client = redis.Redis.from_url(
            config["REDIS_URL"],
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
            protocol=2,
            driver_info=None,
            maint_notifications_config=MaintNotificationsConfig(enabled=False),
        )
        return cls._signed(client, config, kwargs)

    @classmethod
    def _signed(cls, client: Any, config: Config, kwargs: dict[str, Any]) -> "Redis":
        cache = cls(client, key_prefix=config["CACHE_KEY_PREFIX"], **kwargs)
        cache.serializer = SignedSerializer(signer(config))
        return cache

    @classmethod
    def unreachable(cls) -> tuple[type[BaseException], ...]:
        from redis.exceptions import ConnectionError, TimeoutError

        return (ConnectionError, TimeoutError, OSError)

    @classmethod
    def closed(cls) -> tuple[type[BaseException], ...]:
        # redis-py replaces a pooled connection the server closed (it reads the EOF first), not
        # one a NAT reset: "Connection reset by peer" comes with the next command. A timeout is
        # a TimeoutError, not one of these.
        from redis.exceptions import ConnectionError

        return (ConnectionError,)

    @classmethod
    def refusals(cls) -> dict[type[BaseException], tuple[str, ...]]:
        from redis.exceptions import ResponseError

        return {ResponseError: UPSTASH_QUOTA}  # Upstash's Redis protocol (rediss://)

    # Compare-and-set, run by the server as one step: KEYS[1] is the key; ARGV: what the caller
    # found ("present", with the exact bytes it read; "missing"; or "foreign", a value this app
    # did not write), the new value, and the timeout in seconds (0: none) for a new entry. A
    # present entry keeps its TTL, as INCR keeps it (KEEPTTL: Redis 6.0 or later; Upstash has
    # it). Returns 1 if written, 0 if someone wrote first. A script, not WATCH/MULTI: Upstash's
    # REST API has no connection to WATCH on, and this takes two round trips (GET, EVAL) where
    # WATCH takes three.
    SWAP = """
local current = redis.call('GET', KEYS[1])
if ARGV[1] == 'present' then
  if current ~= ARGV[2] then return 0 end
  redis.call('SET', KEYS[1], ARGV[3], 'KEEPTTL')
  return 1
end
if ARGV[1] == 'missing' and current then return 0 end
if tonumber(ARGV[4]) > 0 then
  redis.call('SET', KEYS[1], ARGV[3], 'EX', ARGV[4])
else
  redis.call('SET', KEYS[1], ARGV[3])
end
return 1
"""

    # cachelib's reads and writes, each value signed with the name it is stored under.
    def get(self, key: str) -> Any:
        name = f"{self._get_prefix()}{key}"
        return self.serializer.loads(self._read_client.get(name), name=name)

    def get_with_ttl(self, key: str) -> tuple[Any, float]:
        """The value and the seconds it has left (inf: no expiry), in one round trip: the near
        cache must not outlive an entry that expires (Redis may report its expiry late)."""
        name = f"{self._get_prefix()}{key}"
        pipe = self._read_client.pipeline(transaction=False)
        stored, left = pipe.get(name).pttl(name).execute()
        return self.serializer.loads(stored, name=name), math.inf if left == -1 else left / 1000

    def tracking(self, log: logging.Logger) -> Tracking:
        """A connection of its own, made as the client's are (URL, TLS, password, timeouts),
        speaking RESP3, to which the server sends the keys written under CACHE_KEY_PREFIX.
        Connecting sends HELLO alone (no name, no SETINFO, no SELECT: tracking goes by key
        name in every database): Tracking names it with CLIENT TRACKING, in one round trip."""
        pool = self.client.connection_pool
        options = {
            **pool.connection_kwargs,
            **{"protocol": 3, "client_name": None, "driver_info": None, "db": 0},
        }
        return Tracking(lambda: pool.connection_class(**options), str(self.key_prefix), log)

    def get_many(self, *keys: str) -> list[Any]:
        names = [f"{self._get_prefix()}{key}" for key in keys]
        stored = self._read_client.mget(names) if names else []
        pairs = zip(names, stored, strict=True)
        return [self.serializer.loads(data, name=name) for name, data in pairs]

    def set(self, key: str, value: Any, timeout: Any = None) -> Any:
        name = f"{self._get_prefix()}{key}"
        expires = self._normalize_timeout(timeout)
        dump = self.serializer.dumps(value, name=name)
        return self._write_client.set(name, dump, ex=expires if expires != -1 else None)

    def add(self, key: str, value: Any, timeout: Any = None) -> Any:
        # One command (cachelib's SETNX then EXPIRE can write a key that never expires, then
        # fail): an add that fails wrote nothing, which the breaker relies on (it undoes none).
        name = f"{self._get_prefix()}{key}"
        expires = self._normalize_timeout(timeout)
        dump = self.serializer.dumps(value, name=name)
        ex = expires if expires != -1 else None
        return bool(self._write_client.set(name, dump, ex=ex, nx=True))

    def set_many(self, mapping: dict[str, Any], timeout: Any = None) -> list[Any]:
        expires = self._normalize_timeout(timeout)
        pipe = self._write_client.pipeline(transaction=False)
        for key, value in mapping.items():
            name = f"{self._get_prefix()}{key}"
            dump = self.serializer.dumps(value, name=name)
            pipe.set(name, dump, ex=expires if expires != -1 else None)
        return [key for key, done in zip(mapping, pipe.execute(), strict=True) if done]

    def delete_many(self, *keys: str) -> list[Any]:
        return cachelib.RedisCache.delete_many(self, *keys)  # the comment in Backend says why

    def inc(self, key: str, delta: int = 1) -> int | None:
        """Atomic: a signed read, then a compare-and-set, retried when another writer won.

        A value this app did not write counts as 0 and is replaced without a compare (the stored
        form of a planted value cannot always be sent back for one through Upstash's JSON), so
        increments racing with that one replacement can be lost.
        """
        name = f"{self._get_prefix()}{key}"
        timeout = max(self._normalize_timeout(None), 0)
        for _ in _attempts():
            stored = self._read_client.get(name)
            current = self.serializer.loads(stored, name=name)
            new = _added(current, delta, key)
            found = "missing" if stored is None else "foreign" if current is None else "present"
            dump = self.serializer.dumps(new, name=name)
            if self._write_client.eval(self.SWAP, 1, name, found, stored or b"", dump, timeout):
                return new
        return None

    def dec(self, key: str, delta: int = 1) -> int | None:
        return self.inc(key, -delta)

    @classmethod
    def describe(cls, config: Config) -> str:
        return redact_url(config[cls.variables[0]])  # Upstash's: the token is never in its URL

    @classmethod
    def hosts(cls, config: Config) -> list[str]:
        return [urlsplit(config[cls.variables[0]]).hostname or ""]

    @classmethod
    def secrets(cls, config: Config) -> list[str]:
        parts = urlsplit(config[cls.variables[0]])
        # As written in the URL and as redis-py reads it (a lone userinfo is a password too).
        found = [parts.password or parts.username or ""]
        found += [v for k, v in parse_qsl(parts.query) if k.lower() == "password"]
        return [s for raw in found for s in {raw, unquote(raw)} if s]

    def clear(self) -> bool:
        """Remove the keys under this app's prefix: SCAN + UNLINK in batches, never KEYS/FLUSHDB."""
        pattern = re.sub(r"([*?\[\]\\])", r"\\\1", str(self.key_prefix)) + "*"
        batch = []
        for key in self.client.scan_iter(match=pattern, count=CLEAR_BATCH):
            batch.append(key)
            if len(batch) >= CLEAR_BATCH:
                self.client.unlink(*batch)
                batch.clear()
        if batch:
            self.client.unlink(*batch)
        return True


_VISIBLE_ASCII = re.compile(r"[\x21-\x7e]+\Z")


class Upstash(Redis):
    """The Redis backend, its scoped clear included, over Upstash's HTTPS REST API (upstash.py):
    the shared cache a free account can reach, through its proxy."""

    name = "upstash"
    requires = "requests"
    needs_paid_account = False
    tracks = False  # a REST API pushes nothing: CACHE_NEAR_TTL is its near cache
    variables = ("UPSTASH_REDIS_REST_URL", "UPSTASH_REDIS_REST_TOKEN")

    @classmethod
    def settings(cls, env: Env) -> dict[str, object]:
        """Upstash's own names for its REST URL and token (the database page, REST API section)."""
        needed_by = f"CACHE_TYPE={cls.name}"
        accepted = "use the database's REST URL, https://<name>.upstash.io"
        url = env.url(
            "UPSTASH_REDIS_REST_URL", needed_by, schemes=("https", "http"), accepted=accepted
        )
        parts = urlsplit(url)
        # Commands are POSTed to the URL and its paths: no user (a rediss:// URL pasted with
        # https://, its password showing), query or path of its own.
        if "@" in parts.netloc or parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ConfigError(
                f"UPSTASH_REDIS_REST_URL={redact_url(url)!r} is not valid: {accepted}"
            )
        token = env.required(
            "UPSTASH_REDIS_REST_TOKEN",
            needed_by,
            "copy the token from the database's REST API section on console.upstash.com",
        )
        if not _VISIBLE_ASCII.match(token):  # it goes in an HTTP header; never shown
            raise ConfigError(
                "UPSTASH_REDIS_REST_TOKEN is not valid: it may only have ASCII letters, digits "
                "and punctuation, and has another character (a space, a curly quote or an "
                "invisible one pasted with it?): copy it again from console.upstash.com"
            )
        return {"UPSTASH_REDIS_REST_URL": url, "UPSTASH_REDIS_REST_TOKEN": token}

    @classmethod
    def factory(
        cls, app: Flask, config: dict[str, Any], args: list[Any], kwargs: dict[str, Any]
    ) -> "Redis":
        from .upstash import UpstashRedis

        client = UpstashRedis(
            config["UPSTASH_REDIS_REST_URL"],
            config["UPSTASH_REDIS_REST_TOKEN"],
            config["CACHE_SOCKET_TIMEOUT"],
        )
        return cls._signed(client, config, kwargs)

    @classmethod
    def unreachable(cls) -> tuple[type[BaseException], ...]:
        from .upstash import UpstashError

        return (UpstashError,)

    @classmethod
    def closed(cls) -> tuple[type[BaseException], ...]:
        # urllib3 replaces a pooled connection it sees closed before it reuses it, not one that
        # is reset under the request.
        from .upstash import UpstashConnectionLost

        return (UpstashConnectionLost,)

    @classmethod
    def refusals(cls) -> dict[type[BaseException], tuple[str, ...]]:
        from .upstash import UpstashCommandError

        return {UpstashCommandError: UPSTASH_QUOTA}

    @classmethod
    def secrets(cls, config: Config) -> list[str]:
        return [config["UPSTASH_REDIS_REST_TOKEN"]]

    def forked(self) -> None:
        self.client.forked()  # redis-py's pools notice a new process themselves; requests' do not


def _memcached_servers(env: Env, needed_by: str) -> list[tuple[str, int]]:
    accepted = "use comma-separated host:port pairs, e.g. 127.0.0.1:11211 or [::1]:11211"
    raw = env.required("MEMCACHED_SERVERS", needed_by, accepted)
    servers = []
    for item in raw.split(","):
        try:
            host, port = split_address(item.strip())
        except ValueError:
            host, port = "", None
        if not (is_host(host) and port is not None and is_port(port)):
            raise ConfigError(f"MEMCACHED_SERVERS={raw!r} is not valid: {accepted}")
        servers.append((host, int(port)))
    return servers


# memcached keys are at most 250 bytes, without spaces or control characters (the protocol), and
# cachelib silently misses any key with a '!'. A key is this prefix, the generation (14
# characters) and Flask-Caching's key (about 40 for a memoized function; a view's path).
_MEMCACHED_PREFIX = re.compile(r"[\x22-\x7e]{1,100}\Z")
# MemCachier's login (cache/memcachier.py) sends the username as a key, so it is one: up to 250
# bytes, no spaces or control characters. The password is the value of that command, a line of
# its own: printable ASCII keeps it one line, and matches the hex of MemCachier's.
_MEMCACHED_USERNAME = re.compile(r"[\x21-\x7e]{1,250}\Z")
_MEMCACHED_PASSWORD = re.compile(r"[\x20-\x7e]+\Z")
_MEMCACHED_TLS_CA = (
    "use the absolute path of a PEM file of CA certificates this app can read, e.g. MemCachier's "
    "root CA saved as /home/<you>/<project>/MemCachierRootCA.pem (docs/caching.md)"
)


def _memcached_tls(env: Env) -> tuple[bool, str | None]:
    """MEMCACHED_TLS and MEMCACHED_TLS_CA, checked: a CA file must load."""
    tls = env.choice("MEMCACHED_TLS", "off", ("on", "off")) == "on"
    ca = env.text("MEMCACHED_TLS_CA") or None
    if ca and not tls:
        raise ConfigError(
            "MEMCACHED_TLS_CA is set but MEMCACHED_TLS is off: set MEMCACHED_TLS=on, or leave "
            "MEMCACHED_TLS_CA empty"
        )
    if ca:
        if not _file(ca):
            raise ConfigError(f"MEMCACHED_TLS_CA={ca!r} is not valid: {_MEMCACHED_TLS_CA}")
        try:
            ssl.create_default_context(cafile=ca)
        except (ssl.SSLError, ValueError):
            raise ConfigError(
                f"MEMCACHED_TLS_CA={ca!r} is not valid: it holds no PEM certificate; "
                f"{_MEMCACHED_TLS_CA}"
            ) from None
    return tls, ca


def _memcached_login(env: Env, tls: bool) -> dict[str, object]:
    """MEMCACHED_USERNAME and MEMCACHED_PASSWORD, checked; never shown in a message."""
    username, password = env.text("MEMCACHED_USERNAME"), env.text("MEMCACHED_PASSWORD")
    if username and not _MEMCACHED_USERNAME.match(username):
        raise ConfigError(
            "MEMCACHED_USERNAME is not valid: use the username MemCachier shows, up to 250 ASCII "
            "letters, digits and punctuation, without spaces (it is sent as a memcached key)"
        )
    if password and not _MEMCACHED_PASSWORD.match(password):
        raise ConfigError(
            "MEMCACHED_PASSWORD is not valid: it may only have ASCII letters, digits, punctuation "
            "and spaces, and has another character (a curly quote or an invisible one pasted "
            "with it?): copy it again from MemCachier's dashboard"
        )
    if bool(username) != bool(password):
        given, missing = (
            ("MEMCACHED_USERNAME", "MEMCACHED_PASSWORD")
            if username
            else ("MEMCACHED_PASSWORD", "MEMCACHED_USERNAME")
        )
        raise ConfigError(
            f"{given} is set but {missing} is not: a login needs both (MemCachier's dashboard "
            "shows them); for a memcached server without a login, leave both empty"
        )
    if password and not tls:
        raise ConfigError(
            "MEMCACHED_PASSWORD is set but MEMCACHED_TLS is off: no password is sent over a "
            "connection whose certificate and host name are not checked, and a plain one checks "
            "neither. MemCachier over the internet needs TLS: set MEMCACHED_TLS=on, with the TLS "
            "port in MEMCACHED_SERVERS (docs/caching.md)"
        )
    return {"MEMCACHED_USERNAME": username, "MEMCACHED_PASSWORD": password}


class Memcached(Backend, MemcachedCache):
    """memcached servers through pymemcache, MemCachier's included: with MEMCACHED_USERNAME and
    MEMCACHED_PASSWORD, each connection logs in (cache/memcachier.py), over TLS only
    (MEMCACHED_TLS, checked against the system's CAs or MEMCACHED_TLS_CA). Every key carries a
    generation number kept in memcached; clear() moves to the next one, since memcached cannot
    list keys and flush_all empties the whole server. Entries of older generations are never
    read again and age out under memcached's LRU.
    """

    name = "memcached"
    requires = "pymemcache"
    shared = needs_paid_account = True
    variables = (
        "MEMCACHED_SERVERS",
        *("MEMCACHED_USERNAME", "MEMCACHED_PASSWORD", "MEMCACHED_TLS", "MEMCACHED_TLS_CA"),
    )
    optional = variables[1:]

    def __init__(self, client: Any, **kwargs: Any):
        super().__init__(servers=client, **kwargs)  # type: ignore[no-untyped-call, unused-ignore]
        self.client = client  # ours, for the generation: cachelib keeps its own copy private

    @classmethod
    def settings(cls, env: Env) -> dict[str, object]:
        prefix = env.text("CACHE_KEY_PREFIX")
        if prefix and not _MEMCACHED_PREFIX.match(prefix):
            raise ConfigError(
                f"CACHE_KEY_PREFIX={prefix!r} is not valid with CACHE_TYPE=memcached: use up to "
                "100 ASCII letters, digits and punctuation other than '!' (no spaces)"
            )
        servers = _memcached_servers(env, f"CACHE_TYPE={cls.name}")
        tls, ca = _memcached_tls(env)
        login = _memcached_login(env, tls)
        return {"MEMCACHED_SERVERS": servers, "MEMCACHED_TLS": tls, "MEMCACHED_TLS_CA": ca, **login}

    @classmethod
    def factory(
        cls, app: Flask, config: dict[str, Any], args: list[Any], kwargs: dict[str, Any]
    ) -> "Memcached":
        from pymemcache.client.hash import HashClient

        timeout = config["CACHE_SOCKET_TIMEOUT"]
        # Flask-Caching only knows pymemcache through a ready client object. Without a pickling
        # serde values come back as bytes (ours signs them); with noreply, has() and add() always
        # answer True. The breaker decides when to retry a server, so the client neither retries
        # nor waits to. TLS: the certificate and host name are checked (the default context).
        tls = config.get("MEMCACHED_TLS")
        client = HashClient(
            [],
            serde=SignedSerde(signer(config)),
            default_noreply=False,
            connect_timeout=timeout,
            timeout=timeout,
            retry_attempts=0,
            dead_timeout=0,
            tls_context=ssl.create_default_context(cafile=config.get("MEMCACHED_TLS_CA"))
            if tls
            else None,
        )
        if config.get("MEMCACHED_USERNAME"):
            from .memcachier import LoginClient

            # HashClient's public hook: the class it builds each server's client with.
            login = (config["MEMCACHED_USERNAME"], config["MEMCACHED_PASSWORD"])
            client.client_class = partial(LoginClient, login=login)
        for server in config["MEMCACHED_SERVERS"]:
            client.add_server(tuple(server))
        return cls(client, key_prefix=config["CACHE_KEY_PREFIX"], **kwargs)

    @classmethod
    def unreachable(cls) -> tuple[type[BaseException], ...]:
        from pymemcache.exceptions import MemcacheUnexpectedCloseError

        # Not MemcacheServerError: memcached answers SERVER_ERROR for one value (over 1 MiB, or no
        # memory to store it), a miss for that call, not an outage. A refused login is one: a
        # MemcachedLoginError is an OSError, as is a TLS check that failed.
        return (OSError, MemcacheUnexpectedCloseError)

    @classmethod
    def closed(cls) -> tuple[type[BaseException], ...]:
        # pymemcache reuses a socket the server closed while idle (memcached's -o idle_timeout,
        # MemCachier's): the next command finds it closed, or reset (over TLS: an EOF).
        from pymemcache.exceptions import MemcacheUnexpectedCloseError

        return (
            *(MemcacheUnexpectedCloseError, ConnectionResetError, BrokenPipeError),
            ssl.SSLEOFError,
        )

    @classmethod
    def describe(cls, config: Config) -> str:
        user = f"{config['MEMCACHED_USERNAME']}@" if config.get("MEMCACHED_USERNAME") else ""
        where = ",".join(f"{user}{host}:{port}" for host, port in config["MEMCACHED_SERVERS"])
        return f"{where} (TLS)" if config.get("MEMCACHED_TLS") else where

    @classmethod
    def hosts(cls, config: Config) -> list[str]:
        return [host for host, _ in config["MEMCACHED_SERVERS"]]

    @classmethod
    def secrets(cls, config: Config) -> list[str]:
        return [config["MEMCACHED_PASSWORD"]] if config.get("MEMCACHED_PASSWORD") else []

    # cachelib reads the public key_prefix attribute on every call: each read names the current
    # generation (tests/test_memcached.py pins this).
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
            return int(g.cache_generation)
        generation = self.client.get(self._generation_key)
        if type(generation) is not int:  # never set, evicted, or not this app's
            generation = self._swap(self._generation_key, _generation_or_fresh, 0)
        if has_request_context():
            g.cache_generation = generation
        return int(generation)

    def delete_many(self, *keys: str) -> list[Any]:
        return cachelib.MemcachedCache.delete_many(self, *keys)  # the comment in Backend says why

    # A key memcached stores as it is (others are hashed, keys.py): printable ASCII without
    # spaces (pymemcache refuses the others) or '!' (cachelib misses it), the whole name within
    # memcached's 250 bytes with the longest generation, 20 digits and its ':'.
    _KEY = re.compile(r"[\x22-\x7e]+\Z")
    _GENERATION_CHARS = 21

    def fits(self, key: str) -> bool:
        length = len(self._base_prefix) + self._GENERATION_CHARS + len(key)
        return length <= 250 and self._KEY.match(key) is not None

    def forked(self) -> None:
        self.client.close()  # pymemcache closes this process's copy of each socket, no more

    def has(self, key: str) -> bool:
        # cachelib's appends an empty value, which pymemcache passes through the serde: a signed
        # pickle of b"", appended to the entry, which then never reads back. A read answers.
        return self.get(key) is not None

    def unlink(self, *keys: str) -> None:
        """Delete without checking afterwards (cachelib's delete_many re-reads every key, and
        fails when another worker has written one meanwhile): one round trip per server, where
        HashClient's own delete_many makes one per key. HashClient._get_client (pymemcache 4)
        names the server of a key; tests/test_memcached.py pins it."""
        by_server: dict[Any, list[str]] = {}
        prefix = self.key_prefix  # one read: it names the generation
        for key in keys:
            name = f"{prefix}{key}"
            by_server.setdefault(self.client._get_client(name), []).append(name)
        for server, names in by_server.items():
            server.delete_many(names, noreply=False)

    def clear(self) -> bool:
        """Start a new generation, orphaning this app's entries; never flush_all."""
        generation = self._swap(self._generation_key, lambda now: _generation_or_fresh(now) + 1, 0)
        if has_request_context():
            g.cache_generation = generation
        return True

    def inc(self, key: str, delta: int = 1) -> int | None:
        """Atomic: gets, then cas (add for a missing key), retried when another writer won.
        memcached cannot keep an entry's expiry on a write: each inc() restarts the counter's
        at the default timeout, as cachelib's inc() (a get, then a set) did."""
        try:
            return self._swap(
                self._normalize_key(key),
                partial(_added, delta=delta, key=key),
                self._normalize_timeout(None),
            )
        except _LostRaces:
            return None

    def dec(self, key: str, delta: int = 1) -> int | None:
        return self.inc(key, -delta)

    def _swap(self, name: str, change: Callable[[Any], int], expire: int) -> int:
        """Write change(current value) under ``name`` unless another writer came first, then
        retry: memcached's compare-and-set. A value this app did not write reads as None."""
        for _ in _attempts():
            current, token = self.client.gets(name) or (None, None)
            new = change(current)
            if token is None:
                done = self.client.add(name, new, expire)
            else:
                done = self.client.cas(name, new, token, expire)
            if done:
                return new
        raise _LostRaces(f"cache: {COUNTER_ATTEMPTS} writes to {name!r} lost to other writers")


class _LostRaces(RuntimeError):
    """A compare-and-set lost every attempt to other writers of its key."""


def _generation_or_fresh(current: Any) -> int:
    # A fresh, never-used number when the counter is missing (evicted) or not this app's.
    return current if type(current) is int else int(time.time() * 1000)


def _registry(*classes: type[Backend]) -> dict[str, type[Backend]]:
    return {backend.name: backend for backend in classes}


# The registry: CACHE_TYPE names one of these. Order is the order the docs and prompts use.
BACKENDS = _registry(Simple, Filesystem, Redis, Memcached, Upstash, Null)
