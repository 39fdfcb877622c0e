"""The backends CACHE_TYPE can name: one class each, and the registry BACKENDS at the end.

Each class is a Flask-Caching backend (its ``factory`` builds it from the app's config, as
Flask-Caching's own do) that also owns what the rest of the package asks of a backend: its .env
settings, parsed and checked; the client library it needs; the errors that mean "unreachable";
a description fit for a log line (no password); and the hosts it connects to. Adding a backend is
a class here, its line in BACKENDS, its row in the template's hooks table, and its docs.

Flask-Caching's own clear() runs KEYS (or FLUSHDB with an empty prefix) on Redis, flush_all on
memcached, and deletes every file in the cache directory: each can wipe another app's data. The
clear() of each class here removes this app's entries only.
"""

import contextlib
import os
import re
import struct
import time
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import urlsplit

from flask import Flask, g, has_request_context
from flask_caching.backends import (
    FileSystemCache,
    MemcachedCache,
    NullCache,
    RedisCache,
    SimpleCache,
)

from .config import ConfigError, Env, is_host, is_port, redact_url, split_address
from .signing import SignedSerde, SignedSerializer, signer

Config = Mapping[str, Any]
CLEAR_BATCH = 500  # keys per SCAN page and per UNLINK


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
    #: the .env variables of this backend alone (.env.example documents each); for a backend
    #: with a server, the first one names it
    variables: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def settings(cls, env: Env) -> dict[str, object]:
        """This backend's own settings, parsed and checked (only when CACHE_TYPE names it)."""
        return {}

    @classmethod
    def unreachable(cls) -> tuple[type[BaseException], ...]:
        """The errors that mean the backend cannot serve now: they open the breaker."""
        return ()

    @classmethod
    def describe(cls, config: Config) -> str:
        """Where the entries live, fit for a log line: never a password."""
        return "memory of this worker process"

    @classmethod
    def hosts(cls, config: Config) -> list[str]:
        """The hosts it connects to (deploy.py refuses this machine: PythonAnywhere runs none)."""
        return []


class Simple(Backend, SimpleCache):
    """Each worker's own memory (Flask-Caching's factory reads CACHE_THRESHOLD)."""

    name = "simple"


class Null(Backend, NullCache):
    """No caching at all: to compare, or to debug."""

    name = "null"
    offered = False


class Filesystem(Backend, FileSystemCache):
    """Files in CACHE_DIR, shared by the workers of the web app.

    cachelib keeps its entry count in a counter file that concurrent workers overwrite, so its
    threshold was not enforced; it is turned off (threshold=0, cachelib's documented "no
    threshold"), and every write lists the directory instead (O(entries), bounded by the
    threshold) and, when full, prunes to 90% of it: expired entries first, then those that expire
    soonest. clear() removes entry files only, not everything in the directory.
    """

    name = "filesystem"
    shared = True
    variables = ("CACHE_DIR",)
    # Entry files are named by the sha256 hex digest of their key; other files are left alone.
    _ENTRY = re.compile(r"[0-9a-f]{64}\Z")

    @classmethod
    def settings(cls, env: Env) -> dict[str, object]:
        return {"CACHE_DIR": env.directory("CACHE_DIR")}  # None: init_app's default

    def __init__(self, directory: str, *, limit: int, **kwargs: Any):
        super().__init__(directory, threshold=0, **kwargs)
        self.directory, self.limit = directory, limit

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

    def set(self, key: str, value: Any, timeout: Any = None, mgmt_element: bool = False) -> bool:
        self._make_room()
        return bool(super().set(key, value, timeout, mgmt_element))

    def clear(self) -> bool:
        for path in self._entries():
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)
        return True

    def _entries(self) -> list[str]:
        return [
            os.path.join(self.directory, n)
            for n in os.listdir(self.directory)
            if self._ENTRY.match(n)
        ]

    def _make_room(self) -> None:
        entries = self._entries()
        if len(entries) < self.limit:
            return
        expiries = []
        for path in entries:
            # Checked against cachelib 0.17: an entry file starts with its expiry time, a 4-byte
            # struct "I" (0 = never); tests/test_filesystem.py pins it.
            try:
                with open(path, "rb") as entry:
                    expiries.append((struct.unpack("I", entry.read(4))[0], path))
            except (OSError, struct.error):
                continue
        now = time.time()
        # Expired first (0 = never expires, so it sorts last), then the soonest to expire.
        expiries.sort(key=lambda item: (not (0 < item[0] < now), item[0] or float("inf")))
        for _, path in expiries[: max(len(expiries) - int(self.limit * 0.9), 0)]:
            with contextlib.suppress(OSError):
                os.remove(path)


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
        "use redis://[:password@]host:port/db, or rediss://... for TLS (Upstash, Redis Cloud)"
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
    shared = needs_paid_account = True
    variables: ClassVar[tuple[str, ...]] = ("REDIS_URL",)

    def __init__(self, client: Any, **kwargs: Any):
        super().__init__(host=client, **kwargs)
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
        from redis.retry import Retry

        timeout = config["CACHE_SOCKET_TIMEOUT"]
        # redis-py retries failed calls by default, multiplying the time a request waits; the
        # breaker decides when to try again.
        client = redis.Redis.from_url(
            config["REDIS_URL"],
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
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
    def describe(cls, config: Config) -> str:
        return redact_url(config[cls.variables[0]])  # Upstash's: the token is never in its URL

    @classmethod
    def hosts(cls, config: Config) -> list[str]:
        return [urlsplit(config[cls.variables[0]]).hostname or ""]

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


class Memcached(Backend, MemcachedCache):
    """memcached servers through pymemcache. Every key carries a generation number kept in
    memcached; clear() moves to the next one, since memcached cannot list keys and flush_all
    empties the whole server. Entries of older generations are never read again and age out
    under memcached's LRU.
    """

    name = "memcached"
    requires = "pymemcache"
    shared = needs_paid_account = True
    variables = ("MEMCACHED_SERVERS",)

    def __init__(self, client: Any, **kwargs: Any):
        super().__init__(servers=client, **kwargs)
        self.client = client  # ours, for the generation: cachelib keeps its own copy private

    @classmethod
    def settings(cls, env: Env) -> dict[str, object]:
        prefix = env.text("CACHE_KEY_PREFIX")
        if prefix and not _MEMCACHED_PREFIX.match(prefix):
            raise ConfigError(
                f"CACHE_KEY_PREFIX={prefix!r} is not valid with CACHE_TYPE=memcached: use up to "
                "100 ASCII letters, digits and punctuation other than '!' (no spaces)"
            )
        return {"MEMCACHED_SERVERS": _memcached_servers(env, f"CACHE_TYPE={cls.name}")}

    @classmethod
    def factory(
        cls, app: Flask, config: dict[str, Any], args: list[Any], kwargs: dict[str, Any]
    ) -> "Memcached":
        from pymemcache.client.hash import HashClient

        timeout = config["CACHE_SOCKET_TIMEOUT"]
        # Flask-Caching only knows pymemcache through a ready client object. Without a pickling
        # serde values come back as bytes (ours signs them); with noreply, has() and add() always
        # answer True. The breaker decides when to retry a server, so the client neither retries
        # nor waits to.
        client = HashClient(
            config["MEMCACHED_SERVERS"],
            serde=SignedSerde(signer(config)),
            default_noreply=False,
            connect_timeout=timeout,
            timeout=timeout,
            retry_attempts=0,
            dead_timeout=0,
        )
        return cls(client, key_prefix=config["CACHE_KEY_PREFIX"], **kwargs)

    @classmethod
    def unreachable(cls) -> tuple[type[BaseException], ...]:
        from pymemcache.exceptions import MemcacheServerError, MemcacheUnexpectedCloseError

        return (OSError, MemcacheUnexpectedCloseError, MemcacheServerError)

    @classmethod
    def describe(cls, config: Config) -> str:
        return ",".join(f"{host}:{port}" for host, port in config["MEMCACHED_SERVERS"])

    @classmethod
    def hosts(cls, config: Config) -> list[str]:
        return [host for host, _ in config["MEMCACHED_SERVERS"]]

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
        if generation is None:
            # A fresh, never-used number, even if the old counter was evicted.
            self.client.add(self._generation_key, int(time.time() * 1000), 0)
            generation = self.client.get(self._generation_key)
        if has_request_context():
            g.cache_generation = int(generation)
        return int(generation)

    def clear(self) -> bool:
        """Start a new generation, orphaning this app's entries; never flush_all."""
        current = self._generation()
        self.client.incr(self._generation_key, 1)
        if has_request_context():
            g.cache_generation = current + 1
        return True


def _registry(*classes: type[Backend]) -> dict[str, type[Backend]]:
    return {backend.name: backend for backend in classes}


# The registry: CACHE_TYPE names one of these. Order is the order the docs and prompts use.
BACKENDS = _registry(Simple, Filesystem, Redis, Memcached, Upstash, Null)
