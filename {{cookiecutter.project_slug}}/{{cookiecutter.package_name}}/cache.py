"""The cache: one Flask-Caching object, and a table of the backends CACHE_TYPE can name.

A backend is a row of BACKENDS: the Flask-Caching class, the client library it needs and the
options built from the app's settings. Flask-Caching 2.5 dropped its lowercase names, so the
friendly names used in .env are mapped here.
"""

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field

from flask import Flask
from flask_caching import Cache

cache = Cache()


@dataclass(frozen=True)
class Backend:
    cache_class: str  # Flask-Caching backend class
    options: Callable[[dict], dict] = field(default=lambda config: {})
    client_module: str | None = None  # imported by the backend; None for built-in backends
    client_package: str | None = None  # what `pip install` needs for it


def _threshold(config: dict) -> dict:
    return {"CACHE_THRESHOLD": config["CACHE_THRESHOLD"]}


def _filesystem(config: dict) -> dict:
    return {"CACHE_DIR": config["CACHE_DIR"], **_threshold(config)}


def _redis(config: dict) -> dict:
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    timeout = config["CACHE_SOCKET_TIMEOUT"]
    return {
        "CACHE_REDIS_URL": config["REDIS_URL"],
        "CACHE_OPTIONS": {
            "socket_timeout": timeout,
            "socket_connect_timeout": timeout,
            # redis-py retries failed calls by default, multiplying the timeout a request waits.
            "retry": Retry(NoBackoff(), 0),
        },
    }


def _memcached(config: dict) -> dict:
    from pymemcache import serde
    from pymemcache.client.hash import HashClient

    timeout = config["CACHE_SOCKET_TIMEOUT"]
    # Flask-Caching only knows pymemcache through a ready client object. Without pickle_serde
    # values come back as bytes; with noreply, has() and add() always answer True.
    client = HashClient(
        config["MEMCACHED_SERVERS"],
        serde=serde.pickle_serde,
        default_noreply=False,
        connect_timeout=timeout,
        timeout=timeout,
        retry_attempts=0,
    )
    return {"CACHE_MEMCACHED_SERVERS": client}


BACKENDS: dict[str, Backend] = {
    "simple": Backend("SimpleCache", _threshold),
    "filesystem": Backend("FileSystemCache", _filesystem),
    "redis": Backend("RedisCache", _redis, client_module="redis", client_package="redis"),
    "memcached": Backend(
        "MemcachedCache", _memcached, client_module="pymemcache", client_package="pymemcache"
    ),
    "null": Backend("NullCache", lambda config: {"CACHE_NO_NULL_WARNING": True}),
}


def init_app(app: Flask) -> None:
    """Connect ``cache`` to the backend named by CACHE_TYPE. Opens no connection."""
    configured = active = app.config["CACHE_TYPE"]
    backend = BACKENDS[configured]
    if backend.client_module and importlib.util.find_spec(backend.client_module) is None:
        app.logger.warning(
            "CACHE_TYPE=%s needs the %s package, which is not installed: serving from the "
            "simple cache instead. Fix: pip install %s, then reload the app.",
            configured,
            backend.client_package,
            backend.client_package,
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
    app.extensions["cache_status"] = {"backend": configured, "active": active}


def cache_status(app: Flask) -> dict:
    """Which backend .env asks for and which one serves; safe to show (no URLs, no secrets)."""
    return dict(app.extensions["cache_status"])
