"""The Flask-Caching object the app uses: Flask-Caching's Cache, with a cheaper key for the usual
@cache.cached view.

Flask-Caching's key function inspects the view's signature on every request: a few microseconds
of every hit. For the usual view (a string key_prefix with %s, no option that changes the key), a
request's key, "view/%s" % request.path, is made directly; any other call of view.make_cache_key
goes to Flask-Caching's. So assigning view.make_cache_key, CACHE_SOURCE_CHECK, delete_cached()
(2.5) and query strings work as documented (tests/cache/test_views.py compares the keys).

Flask-Caching has no public way to hand it a cache object (CACHE_TYPE names a class it imports):
_set_cache, which its init_app calls last, stores chain.build()'s where Cache.cache reads it,
app.extensions["cache"][self], in 2.4 and 2.5 alike. tests/cache/test_extension.py pins both.
"""

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, cast

import flask_caching
from flask import Flask, request

from .chain import build

if TYPE_CHECKING:  # the type of a cached view, as Flask-Caching 2.5 annotates its own cached()
    # (2.4, the last release for Python 3.10, has none: Any there)
    from flask_caching import _CachedFunction  # type: ignore[attr-defined, unused-ignore]

P = ParamSpec("P")
R = TypeVar("R")

# The options of cached() that change the key: with any of them, Flask-Caching makes every key.
KEY_OPTIONS = ("make_cache_key", "query_string", "source_check", "hash_method")


class Cache(flask_caching.Cache):
    def _set_cache(self, app: Flask, config: dict[str, Any]) -> None:
        if "CACHE_BACKEND" not in config:  # not set up by cache.init_app: as Flask-Caching does
            super()._set_cache(app, config)  # type: ignore[no-untyped-call, unused-ignore]
            return
        app.extensions.setdefault("cache", {})[self] = build(app, config)
        self.app = app

    def cached(
        self, timeout: Any = None, key_prefix: Any = "view/%s", *args: Any, **options: Any
    ) -> "Callable[[Callable[P, R]], _CachedFunction[P, R]]":
        decorator = super().cached(timeout, key_prefix, *args, **options)
        usual = isinstance(key_prefix, str) and "%s" in key_prefix
        if args or not usual or any(options.get(name) for name in KEY_OPTIONS):
            return decorator

        def decorate(f: Callable[P, R]) -> "_CachedFunction[P, R]":
            view = decorator(f)
            flask_caching_key: Callable[..., str] = view.make_cache_key

            def make_cache_key(*key_args: Any, **key_kwargs: Any) -> str:
                # What Flask-Caching computes for a request, unless the app checks sources.
                if key_kwargs.get("use_request") and not self.source_check:
                    return str(key_prefix % request.path)
                return flask_caching_key(*key_args, **key_kwargs)

            make_cache_key.flask_caching_key = flask_caching_key  # type: ignore[attr-defined]
            view.make_cache_key = make_cache_key
            return view

        return cast("Callable[[Callable[P, R]], _CachedFunction[P, R]]", decorate)


cache = Cache()  # the app's: init_app() connects it to the backend .env names
