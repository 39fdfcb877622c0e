"""The chain .env names, built in one place: backend, then near cache, then breaker.

A backend with no server (simple, null) serves as it is. A shared one gets the near cache in
front of it when CACHE_NEAR_TTL or tracking ask for one (near.py), and the breaker around both
(breaker.py): a hit is Breaker.get -> Near.get -> memory, and a failing server never fails a
request. Cache._set_cache (extension.py) stores build()'s object as the app's cache.
"""

import importlib
from typing import Any

from flask import Flask
from flask_caching.backends.base import BaseCache

from .backends import Backend
from .breaker import Breaker
from .near import near_cache


def build(app: Flask, config: dict[str, Any]) -> BaseCache:
    """The cache for ``config`` (app.config, completed by init_app): CACHE_BACKEND is the
    backend class to serve from."""
    kind: type[Backend] = config["CACHE_BACKEND"]
    options = {"default_timeout": config["CACHE_DEFAULT_TIMEOUT"]}
    server: BaseCache = kind.factory(app, config, [], options)  # type: ignore[attr-defined]
    if not kind.shared:
        return server
    return Breaker(
        near_cache(server, config, app.logger) or server,
        name=kind.name,
        location=kind.describe(config),
        **kind.errors()._asdict(),  # unreachable, closed, refusals
        retry_after=config["CACHE_RETRY_AFTER"],
        threshold=config["CACHE_THRESHOLD"],
        default_timeout=options["default_timeout"],
        logger=app.logger,
        secrets=kind.secrets(config),
        hosts=kind.hosts(config),
        storable=server.storable,  # type: ignore[attr-defined]
        alone=one_web_worker(),
    )


def one_web_worker() -> bool:
    """Whether the app runs in uWSGI's only worker, one request at a time, as on a free
    PythonAnywhere account: no other worker regenerates its pages, so the lock that makes one
    regeneration per expiry (regenerate.py) can be this worker's own, and costs no command on
    the server (on Upstash, two per regeneration). uWSGI's Python API: numproc, opt["threads"]."""
    try:
        uwsgi = importlib.import_module("uwsgi")  # only inside uWSGI
    except ImportError:
        return False
    threads = uwsgi.opt.get("threads") or 1
    return uwsgi.numproc == 1 and int(threads) <= 1
