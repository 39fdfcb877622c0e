"""The cache: one Flask-Caching object, a table of the backends CACHE_TYPE can name, and the
`flask cache` commands.

A backend is a row of BACKENDS: its Flask-Caching class, the options built from the app's
settings, the client library it needs and the errors that mean "the server is unreachable".
Flask-Caching 2.5 dropped its lowercase names, so the friendly names used in .env are mapped here.
A backend with a server behind it is wrapped in a circuit breaker (guard.py): when the server
fails, the app serves from an in-process cache instead of failing.
"""

import importlib.util
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import click
import flask_caching
from flask import Flask, current_app, request
from flask.cli import AppGroup

from .guard import GuardedCache
from .signing import SignedSerde, SignedSerializer, Signer


class Cache(flask_caching.Cache):
    """Flask-Caching's Cache, with a cheaper key for the usual @cache.cached view.

    Flask-Caching's default key function inspects the view's signature on every request (about
    25 us of a 200 us request here). For the default key, "view/" + the request path with no
    query string, this computes the same key directly, so make_cache_key() and delete() agree.
    """

    def cached(self, timeout=None, key_prefix="view/%s", *more, **options):
        plain_key = isinstance(key_prefix, str) and "%s" in key_prefix
        if plain_key and not more and not any(options.get(name) for name in _KEY_OPTIONS):
            options["make_cache_key"] = lambda *args, **kwargs: key_prefix % request.path
        return super().cached(timeout, key_prefix, *more, **options)


_KEY_OPTIONS = ("make_cache_key", "query_string", "source_check")

cache = Cache()

PACKAGE = __name__.rpartition(".")[0]


@dataclass(frozen=True)
class Backend:
    cache_class: str  # a Flask-Caching class, or one of ours in backends.py
    options: Callable[[dict], dict] = field(default=lambda config: {})
    client: str | None = None  # the client library: its import and its pip name; None: built in
    # The errors that mean the backend is unreachable; none: it cannot fail that way.
    connection_errors: Callable[[], tuple[type[BaseException], ...]] = field(default=lambda: ())
    where: Callable[[dict], str] = field(default=lambda config: "this process")
    # The .env variable naming the server, and the hosts it names (deploy.py refuses loopback:
    # PythonAnywhere runs no Redis or memcached, so 127.0.0.1 there is always a mistake).
    setting: str | None = None
    hosts: Callable[[dict], list[str]] = field(default=lambda config: [])


def _threshold(config: dict) -> dict:
    return {"CACHE_THRESHOLD": config["CACHE_THRESHOLD"]}


def _signer(config: dict) -> Signer:
    # Pickles that another writer planted are refused, not run (signing.py).
    return Signer(config["CACHE_SIGNING_KEY"] or config["SECRET_KEY"])


def _filesystem(config: dict) -> dict:
    return {
        "CACHE_DIR": config["CACHE_DIR"],
        "CACHE_SERIALIZER": SignedSerializer(_signer(config)),
        **_threshold(config),
    }


def _redis(config: dict) -> dict:
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    timeout = config["CACHE_SOCKET_TIMEOUT"]
    return {
        "CACHE_REDIS_URL": config["REDIS_URL"],
        "CACHE_SERIALIZER": SignedSerializer(_signer(config)),
        "CACHE_OPTIONS": {
            "socket_timeout": timeout,
            "socket_connect_timeout": timeout,
            # redis-py retries failed calls by default, multiplying the timeout a request waits.
            "retry": Retry(NoBackoff(), 0),
        },
    }


def _redis_errors() -> tuple[type[BaseException], ...]:
    from redis.exceptions import ConnectionError, TimeoutError

    return (ConnectionError, TimeoutError, OSError)


def _upstash(config: dict) -> dict:
    return {
        "CACHE_UPSTASH_URL": config["UPSTASH_REDIS_REST_URL"],
        "CACHE_UPSTASH_TOKEN": config["UPSTASH_REDIS_REST_TOKEN"],
        "CACHE_UPSTASH_TIMEOUT": config["CACHE_SOCKET_TIMEOUT"],
        "CACHE_SERIALIZER": SignedSerializer(_signer(config)),
    }


def _upstash_errors() -> tuple[type[BaseException], ...]:
    from .upstash import UpstashError

    return (UpstashError,)


def _memcached(config: dict) -> dict:
    from pymemcache.client.hash import HashClient

    timeout = config["CACHE_SOCKET_TIMEOUT"]
    # Flask-Caching only knows pymemcache through a ready client object. Without a pickling
    # serde values come back as bytes (ours signs them); with noreply, has() and add() always
    # answer True. The breaker decides when to retry a server, so the client neither retries
    # nor waits to.
    client = HashClient(
        config["MEMCACHED_SERVERS"],
        serde=SignedSerde(_signer(config)),
        default_noreply=False,
        connect_timeout=timeout,
        timeout=timeout,
        retry_attempts=0,
        dead_timeout=0,
    )
    return {"CACHE_MEMCACHED_SERVERS": client}


def _memcached_errors() -> tuple[type[BaseException], ...]:
    from pymemcache.exceptions import MemcacheServerError, MemcacheUnexpectedCloseError

    return (OSError, MemcacheUnexpectedCloseError, MemcacheServerError)


BACKENDS: dict[str, Backend] = {
    "simple": Backend("SimpleCache", _threshold),
    "filesystem": Backend(
        f"{PACKAGE}.backends.BoundedFileSystemCache",
        _filesystem,
        connection_errors=lambda: (OSError,),
        where=lambda config: config["CACHE_DIR"],
    ),
    "redis": Backend(
        f"{PACKAGE}.backends.ScopedRedisCache",
        _redis,
        client="redis",
        connection_errors=_redis_errors,
        where=lambda config: redact_url(config["REDIS_URL"]),
        setting="REDIS_URL",
        hosts=lambda config: [urlsplit(config["REDIS_URL"]).hostname or ""],
    ),
    "memcached": Backend(
        f"{PACKAGE}.backends.NamespacedMemcachedCache",
        _memcached,
        client="pymemcache",
        connection_errors=_memcached_errors,
        where=lambda config: ",".join(f"{h}:{p}" for h, p in config["MEMCACHED_SERVERS"]),
        setting="MEMCACHED_SERVERS",
        hosts=lambda config: [host for host, _ in config["MEMCACHED_SERVERS"]],
    ),
    "upstash": Backend(
        f"{PACKAGE}.backends.UpstashCache",
        _upstash,
        client="requests",
        connection_errors=_upstash_errors,
        where=lambda config: config["UPSTASH_REDIS_REST_URL"],
        setting="UPSTASH_REDIS_REST_URL",
        hosts=lambda config: [urlsplit(config["UPSTASH_REDIS_REST_URL"]).hostname or ""],
    ),
    "null": Backend("NullCache", lambda config: {"CACHE_NO_NULL_WARNING": True}),
}


def redact_url(url: str) -> str:
    """The URL as it may appear in a message or log: any password replaced by ***."""
    scheme, sep, rest = url.partition("://")
    userinfo, at, hostpart = rest.rpartition("@")
    if not at:
        return url
    user, colon, _ = userinfo.partition(":")
    hidden = f"{user}:***" if colon else "***"  # a lone userinfo is a password to redis-py
    return f"{scheme}{sep}{hidden}@{hostpart}"


def init_app(app: Flask) -> None:
    """Connect ``cache`` to the backend named by CACHE_TYPE. Opens no connection."""
    configured = active = app.config["CACHE_TYPE"]
    backend = BACKENDS[configured]
    if backend.client and importlib.util.find_spec(backend.client) is None:
        app.logger.warning(
            "CACHE_TYPE=%s needs the %s package, which is not installed: serving from the "
            "simple cache instead. Fix: pip install %s, then reload the app.",
            configured,
            backend.client,
            backend.client,
        )
        active, backend = "simple", BACKENDS["simple"]
    cache.init_app(
        app,
        config={
            "CACHE_TYPE": backend.cache_class,
            "CACHE_DEFAULT_TIMEOUT": app.config["CACHE_DEFAULT_TIMEOUT"],
            "CACHE_KEY_PREFIX": app.config["CACHE_KEY_PREFIX"],
            **backend.options(app.config),
        },
    )
    errors = backend.connection_errors()
    if errors:
        app.extensions["cache"][cache] = GuardedCache(
            app.extensions["cache"][cache],
            name=active,
            where=backend.where(app.config),
            connection_errors=errors,
            retry_after=app.config["CACHE_RETRY_AFTER"],
            threshold=app.config["CACHE_THRESHOLD"],
            default_timeout=app.config["CACHE_DEFAULT_TIMEOUT"],
            logger=app.logger,
        )
    app.extensions["cache_backend"] = {"backend": configured, "active": active}
    app.cli.add_command(cache_cli)


def cache_status(app: Flask) -> dict:
    """Which backend .env asks for, which one serves and the breaker; no URLs, no secrets."""
    status = {**app.extensions["cache_backend"], "breaker": "closed", "last_error": None}
    guard = app.extensions["cache"][cache]
    if isinstance(guard, GuardedCache):
        status.update(guard.status())
    return status


def _backend(app: Flask):
    """The backend itself, past the breaker: the commands below must see its errors."""
    guard = app.extensions["cache"][cache]
    return guard.backend if isinstance(guard, GuardedCache) else guard


def _describe(app: Flask) -> str:
    backend = BACKENDS[app.extensions["cache_backend"]["active"]]
    return f"{app.extensions['cache_backend']['active']} ({backend.where(app.config)})"


# `flask cache ...`: for a PythonAnywhere console, to see and measure the configured backend.
cache_cli = AppGroup("cache", help="See, clear and measure the cache backend.")


def _fail(message: str) -> None:
    click.echo(message, err=True)
    sys.exit(1)


@cache_cli.command("status")
def status_command():
    """Show the configured and serving backend, and ping it."""
    app = current_app
    state = app.extensions["cache_backend"]
    click.echo(f"configured: {state['backend']}")
    click.echo(f"serving:    {_describe(app)}")
    key = f"ping-{uuid.uuid4().hex}"
    try:
        started = time.perf_counter()
        _backend(app).set(key, 1, timeout=10)
        _backend(app).get(key)
        elapsed = (time.perf_counter() - started) * 1000
        _backend(app).delete(key)
    except Exception as error:
        _fail(f"ping:       FAILED ({type(error).__name__}: {error})")
    click.echo(f"ping:       ok, set+get in {elapsed:.2f} ms")


@cache_cli.command("clear")
def clear_command():
    """Delete this app's cache entries (and no one else's)."""
    app = current_app
    try:
        _backend(app).clear()
    except Exception as error:
        _fail(f"could not clear {_describe(app)}: {type(error).__name__}: {error}")
    click.echo(f"cleared this app's entries in {_describe(app)}")


@cache_cli.command("bench")
@click.option("-n", "--count", default=200, show_default=True, help="round trips of each kind")
def bench_command(count: int):
    """Time N set and N get round trips against the backend: p50/p99 in ms."""
    app = current_app
    backend, key, value = _backend(app), f"bench-{uuid.uuid4().hex}", "x" * 1024
    timings: dict[str, list[float]] = {"set": [], "get": []}
    try:
        for _ in range(count):
            started = time.perf_counter()
            backend.set(key, value)
            middle = time.perf_counter()
            backend.get(key)
            timings["set"].append((middle - started) * 1000)
            timings["get"].append((time.perf_counter() - middle) * 1000)
        backend.delete(key)
    except Exception as error:
        _fail(f"bench failed on {_describe(app)}: {type(error).__name__}: {error}")
    click.echo(f"{_describe(app)}, {count} round trips of a 1 KiB value:")
    for name, samples in timings.items():
        cuts = statistics.quantiles(samples, n=100, method="inclusive")
        click.echo(f"  {name}: p50 {cuts[49]:.3f} ms, p99 {cuts[98]:.3f} ms")
