"""The app's cache, used like any Flask extension: one object, one init_app.

    from .cache import cache      # Flask-Caching's Cache: @cache.cached, @cache.memoize, get/set
    cache.init_app(app)           # done by create_app()

You don't need to edit anything in this folder. CACHE_TYPE in .env picks the backend when the app
starts (simple, filesystem, redis, memcached, upstash or null; .env.example documents each
setting, docs/caching.md says which to choose), so moving to another one is an edit of .env and a
reload, never a code change. chain.py says what serves a call: a shared backend, behind a near
cache (near.py: repeated hits from each worker's memory) and a circuit breaker (breaker.py: a
failing server never fails a request).

This folder comes from the project template: `cruft update` brings the template's fixes here
(see the README), and never touches .env. Your code lives beside it (views.py, templates/,
static/, settings.py); none of it is needed here, so the demo pages can go.

The public face, all that your code and deploy.py use:
- ``cache``: the Flask-Caching object (extension.py);
- ``init_app(app, environ)``: reads the cache's settings from ``environ`` (.env), connects
  ``cache`` to that backend, and adds the template's pages (pages.py: /health, the error pages,
  the footer's cache report) and `flask cache`;
- ``from_env(env, debug=...)``: the cache's settings from the environment, parsed and checked;
- ``status()``: which backend serves now, as /health reports it (no URL, no secret);
- ``cli``: the `flask cache status|clear|bench` commands;
- ``Env`` and ``ConfigError``: checked reads of settings, for settings.py's own;
- ``BACKENDS``: the backend classes by CACHE_TYPE name.
"""

import importlib.util
import os
from collections.abc import Mapping

import click
from flask import Flask

from .backends import BACKENDS, Backend
from .backends.simple import Simple
from .cli import cli
from .config import ConfigError, Env, NotSet
from .extension import cache
from .near import MAX_TTL
from .pages import bp, status

__all__ = ["BACKENDS", "ConfigError", "Env", "cache", "cli", "from_env", "init_app", "status"]


# Bounds of the common settings: a value outside them fails or misbehaves on some backend.
# memcached takes an expiry as a signed 32-bit unix time (cachelib sends now + timeout), and
# cachelib's filesystem entries store it as a 4-byte "I": a year stays clear of both until 2037.
MAX_DEFAULT_TIMEOUT = 365 * 24 * 3600
# The filesystem cache lists its folder on every write, and the simple cache holds this many
# entries in each worker's memory.
MAX_THRESHOLD = 100_000
# A request waits up to about two timeouts (connect, then read) before the breaker opens, and a
# PythonAnywhere reload fails when the first request takes ~20 s. Below 50 ms even a nearby TLS
# server cannot answer.
SOCKET_TIMEOUT_RANGE = (0.05, 5.0)
MAX_RETRY_AFTER = 3600.0  # past an hour the cache is as good as switched off
MAX_GRACE = 86400  # a day past its timeout: a value that old is not "the previous one" any more


def from_env(env: Env, *, debug: bool = False) -> dict[str, object]:
    """The cache's settings as Flask config: the common ones, then the chosen backend's own.
    In development (``debug``), a backend whose server is not set yet keeps its CACHE_TYPE and
    CACHE_FALLBACK says what to set: init_app serves from the simple cache and logs it. Anywhere
    else (deploy.py builds the app without debug) it stops the app."""
    backend: type[Backend] = BACKENDS[env.choice("CACHE_TYPE", "simple", tuple(BACKENDS))]
    try:
        own = backend.settings(env)
    except NotSet:
        missing = [n for n in backend.variables if n not in backend.optional and not env.text(n)]
        if not (debug and missing):
            raise
        names, them = " and ".join(missing), "them" if len(missing) > 1 else "it"
        own = {
            "CACHE_FALLBACK": f"CACHE_TYPE={backend.name} but {names} "
            f"{'are' if len(missing) > 1 else 'is'} not set: serving from the simple cache "
            f"(in development only: the web app would not start). Set {them} in .env "
            "(.env.example says how), then restart `flask run`."
        }
    low, high = SOCKET_TIMEOUT_RANGE
    return {
        "CACHE_TYPE": backend.name,
        "CACHE_DEFAULT_TIMEOUT": env.integer(
            "CACHE_DEFAULT_TIMEOUT", 300, minimum=0, maximum=MAX_DEFAULT_TIMEOUT
        ),
        "CACHE_KEY_PREFIX": env.text("CACHE_KEY_PREFIX"),  # empty: init_app's default
        "CACHE_STALE_GRACE": env.integer("CACHE_STALE_GRACE", 30, minimum=0, maximum=MAX_GRACE),
        "CACHE_THRESHOLD": env.integer("CACHE_THRESHOLD", 500, minimum=1, maximum=MAX_THRESHOLD),
        "CACHE_SOCKET_TIMEOUT": env.number("CACHE_SOCKET_TIMEOUT", 0.5, minimum=low, maximum=high),
        "CACHE_RETRY_AFTER": env.number(
            "CACHE_RETRY_AFTER", 30.0, minimum=0, maximum=MAX_RETRY_AFTER
        ),
        "CACHE_SIGNING_KEY": env.text("CACHE_SIGNING_KEY"),
        "CACHE_NEAR_TTL": env.number("CACHE_NEAR_TTL", 0.0, minimum=0, maximum=MAX_TTL),
        "CACHE_NEAR_TRACKING": env.choice("CACHE_NEAR_TRACKING", "on", ("on", "off")) == "on",
        **own,
    }


def init_app(app: Flask, environ: Mapping[str, object] = os.environ) -> None:
    """Read the cache's settings from ``environ``, connect ``cache`` to that backend (opening no
    connection), and add the template's pages and `flask cache` to ``app``."""
    config = app.config
    config.from_mapping(from_env(Env(environ), debug=app.debug))
    config["CACHE_KEY_PREFIX"] = config.get("CACHE_KEY_PREFIX") or f"{app.import_name}:"
    config["CACHE_DIR"] = config.get("CACHE_DIR") or os.path.join(app.instance_path, "cache")
    backend: type[Backend] = BACKENDS[config["CACHE_TYPE"]]
    # The backend cannot be built yet: serve from the simple cache, saying why once.
    fallback = config.get("CACHE_FALLBACK")
    if not fallback and backend.requires and importlib.util.find_spec(backend.requires) is None:
        fallback = (
            f"CACHE_TYPE={backend.name} needs the {backend.requires} package, which is not "
            f"installed: serving from the simple cache instead. Fix: pip install "
            f"{backend.requires}, then reload the app."
        )
    if fallback:
        if not _reloader_parent(app):
            app.logger.warning("%s", fallback)
        config["CACHE_FALLBACK"] = fallback  # `flask cache` says it, and exits 1
        backend = Simple
    # Our Cache builds the chain (chain.py) in place of a class CACHE_TYPE would name.
    cache.init_app(app, config={"CACHE_BACKEND": backend, "CACHE_NO_NULL_WARNING": True})
    app.register_blueprint(bp)
    app.cli.add_command(cli)


def _reloader_parent(app: Flask) -> bool:
    """Whether this is `flask run`'s reloader process, which builds the app, then only watches
    the files while a child process builds it again and serves: the child says what it says."""
    context = click.get_current_context(silent=True)
    if context is None or context.info_name != "run" or os.environ.get("WERKZEUG_RUN_MAIN"):
        return False
    reload = context.params.get("reload")
    return bool(app.debug if reload is None else reload)  # flask run's own default
