"""The Flask-Caching object the app uses: Flask-Caching's Cache, whose cached() and memoize()
serve one regeneration per expiry (regenerate.py), HTTP caching and pages that are never shared
between visitors (conditional.py), with a cheaper key for the usual @cache.cached view.

The decorated function is Flask-Caching's, for its keys and attributes (make_cache_key,
uncached, cache_timeout, delete_cached, delete_memoized), wrapped by one that reads and stores
the entries itself. Where the app's cache is not this package's chain (a Cache set up by
Flask-Caching's own init_app), or with an option only Flask-Caching's code knows (OWN_PATH), the
call goes to Flask-Caching's function as it is.

Flask-Caching's key function inspects the view's signature on every request: a few microseconds
of every hit. For the usual view (a string key_prefix with %s, no option that changes the key), a
request's key, "view/%s" % request.path, is made directly; any other call of view.make_cache_key
goes to Flask-Caching's. So assigning view.make_cache_key, CACHE_SOURCE_CHECK, delete_cached()
(2.5) and query strings work as documented (tests/cache/test_views.py compares the keys).

Flask-Caching has no public way to hand it a cache object (CACHE_TYPE names a class it imports):
_set_cache, which its init_app calls last, stores chain.build()'s where Cache.cache reads it,
app.extensions["cache"][self], in 2.4 and 2.5 alike. tests/cache/test_extension.py pins both.
"""

import functools
import importlib
import inspect
import math
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, cast

import flask_caching
from flask import Flask, Response, after_this_request, current_app, request
from flask_caching import CachedResponse
from werkzeug.exceptions import HTTPException

from . import conditional, regenerate
from .backends import Backend
from .breaker import Breaker
from .chain import build

if TYPE_CHECKING:  # the type of a cached view, as Flask-Caching 2.5 annotates its own cached()
    # (2.4, the last release for Python 3.10, has none: Any there)
    from flask_caching import (  # type: ignore[attr-defined, unused-ignore]
        _CachedFunction,
        _MemoizedFunction,
    )

P = ParamSpec("P")
R = TypeVar("R")

# The options of cached() that change the key: with any of them, Flask-Caching makes every key.
KEY_OPTIONS = ("make_cache_key", "query_string", "source_check", "hash_method")
CHAIN = (Backend, Breaker)  # what chain.build() makes: the cache the decorators below serve from
signals: Any = None  # Flask-Caching 2.5's signals and generator joining; 2.4 (Python 3.10) has
join_generator: Callable[[Any], Any] = list  # neither, and makes a generator a list
try:
    signals = importlib.import_module("flask_caching.signals")
    join_generator = importlib.import_module("flask_caching.utils").join_generator
except (ImportError, AttributeError):
    pass
CACHES_HTTP_EXCEPTIONS = hasattr(flask_caching.Cache, "_call_fn_or_exception")  # 2.5 and later
HIT, MISS = 0, 1
SIGNALS = {  # by memoize or not: the names of the hit and miss signals in flask_caching.signals
    False: ("cache_view_hit", "cache_view_miss"),
    True: ("cache_memoize_hit", "cache_memoize_miss"),
}
APP: Any = current_app  # a LocalProxy, typed as what it stands for (conditional.REQUEST too)


class Cache(flask_caching.Cache):
    def _set_cache(self, app: Flask, config: dict[str, Any]) -> None:
        if "CACHE_BACKEND" not in config:  # not set up by cache.init_app: as Flask-Caching does
            super()._set_cache(app, config)  # type: ignore[no-untyped-call, unused-ignore]
            return
        app.extensions.setdefault("cache", {})[self] = build(app, config)
        self.app = app

    def get(self, *args: Any, **kwargs: Any) -> Any:
        """A key's value, as Flask-Caching gives it: a decorator's entry gives the value it
        holds while fresh (the decorators read the entry itself, from cache.cache)."""
        got = super().get(*args, **kwargs)
        if not regenerate.is_entry(got):
            return got
        found = regenerate.fresh(got)
        return found[1] if found is not None else None

    def cached(
        self,
        timeout: Any = None,
        key_prefix: Any = "view/%s",
        *args: Any,
        grace: int | None = None,
        per_visitor: bool = False,
        **options: Any,
    ) -> "Callable[[Callable[P, R]], _CachedFunction[P, R]]":
        """Flask-Caching's cached(), served as regenerate.py and conditional.py say. ``grace``:
        the seconds past its timeout an entry may be served while it is regenerated (default
        CACHE_STALE_GRACE; 0: no lock and no stale value). ``per_visitor``: one entry per
        session, for a page that differs per visitor."""
        decorator = super().cached(timeout, key_prefix, *args, **options)
        if args or any(options.get(name) for name in OWN_PATH):
            if per_visitor:
                raise TypeError(f"per_visitor=True does not combine with {', '.join(OWN_PATH)}")
            return decorator  # Flask-Caching's own path, as it documents those options
        usual = isinstance(key_prefix, str) and "%s" in key_prefix
        page = usual or (isinstance(key_prefix, str) and bool(options.get("query_string")))
        keyed = not (args or not usual or any(options.get(name) for name in KEY_OPTIONS))

        def decorate(f: Callable[P, R]) -> "_CachedFunction[P, R]":
            view = decorator(f)
            make_cache_key: Any = None
            if keyed:
                flask_caching_key: Callable[..., str] = view.make_cache_key

                def make_cache_key(*key_args: Any, **key_kwargs: Any) -> str:
                    # What Flask-Caching computes for a request, unless the app checks sources.
                    if key_kwargs.get("use_request") and not self.source_check:
                        return str(key_prefix % request.path)
                    return flask_caching_key(*key_args, **key_kwargs)

                make_cache_key.flask_caching_key = flask_caching_key
                view.make_cache_key = make_cache_key
            own_key = options.get("make_cache_key")
            served: Any  # what the decorator returns: its attributes are the app's to set

            def key_of(*a: Any, **kw: Any) -> str:
                if callable(own_key):
                    key = str(own_key(*a, **kw))
                elif served.make_cache_key is make_cache_key and not self.source_check:
                    key = key_prefix % conditional.REQUEST._get_current_object().path  # the usual
                else:
                    key = str(served.make_cache_key(*a, use_request=True, **kw))
                return f"{key}\0visitor:{conditional.visitor()}" if per_visitor else key

            served = self._serving(view, f, key_of, grace, page, per_visitor, options)
            return cast("_CachedFunction[P, R]", served)

        return cast("Callable[[Callable[P, R]], _CachedFunction[P, R]]", decorate)

    def memoize(
        self, timeout: Any = None, make_name: Any = None, *args: Any, grace: int | None = None,
        **options: Any,
    ) -> "Callable[[Callable[P, R]], _MemoizedFunction[P, R]]":  # fmt: skip
        """Flask-Caching's memoize(), served as regenerate.py says (``grace``: as cached())."""
        decorator = super().memoize(timeout, make_name, *args, **options)
        if args or any(options.get(name) for name in OWN_PATH):
            return decorator

        def decorate(f: Callable[P, R]) -> "_MemoizedFunction[P, R]":
            view = decorator(f)
            served: Any

            def key_of(*a: Any, **kw: Any) -> str:
                return str(served.make_cache_key(f, *a, **kw))

            served = self._serving(view, f, key_of, grace, False, False, options, memoized=True)
            return cast("_MemoizedFunction[P, R]", served)

        return cast("Callable[[Callable[P, R]], _MemoizedFunction[P, R]]", decorate)

    def _serving(
        self,
        view: Any,
        f: Callable[..., Any],
        key_of: Callable[..., str],
        grace: int | None,
        page: bool,
        per_visitor: bool,
        options: dict[str, Any],
        memoized: bool = False,
    ) -> Any:
        """The decorated function: Flask-Caching's ``view`` where the app's cache is not this
        package's chain, and otherwise regenerate.py's reads and writes."""
        accepts = options.get("response_filter")
        name = f"{f.__module__}.{f.__qualname__}"
        told: list[str] = []  # why this function is not shared, once known (in this worker)

        def serve(*a: Any, **kw: Any) -> Any:
            try:  # Cache.cache in one lookup (a hit's path): the proxy's own method
                app = APP._get_current_object()
            except RuntimeError:  # no app context: as Flask-Caching, the app of init_app
                app = self.app
            store = app.extensions["cache"][self]
            chain = isinstance(store, CHAIN)  # (a name, not a narrowing: store stays Any)
            if not chain:  # set up by Flask-Caching's own init_app
                view.cache_timeout = served.cache_timeout
                view.make_cache_key = served.make_cache_key
                return view(*a, **kw)
            if told:
                return _not_shared(f(*a, **kw)) if page and _is_the_view(served) else f(*a, **kw)
            try:
                key = key_of(*a, **kw)
                got = store.get(key)
            except Exception:  # as Flask-Caching: a broken key function serves uncached
                if app.debug:
                    raise
                app.logger.exception("Exception possibly due to cache backend.")
                return f(*a, **kw)
            found = regenerate.fresh(got)
            if found is None:
                allowed = app.config.get("CACHE_STALE_GRACE", 0) if grace is None else grace
                state, found = regenerate.claim(store, key, regenerate.as_entry(got), allowed)
                if found is None or state not in (regenerate.FRESH, regenerate.STALE):
                    locked = state == regenerate.MINE
                    as_page = page and _is_the_view(served)
                    if getattr(self, "enable_signals", False):
                        signal(MISS, key, a, kw)
                    return compute(app, store, key, found, allowed, locked, as_page, a, kw)
            if getattr(self, "enable_signals", False):
                signal(HIT, key, a, kw)
            if found[3] is not None:  # a page's entry has its ETag
                return conditional.respond(found, per_visitor)
            if isinstance(found[1], HTTPException):  # Flask-Caching 2.5 caches abort()s
                raise found[1]
            return found[1]

        def signal(kind: int, key: str, a: tuple[Any, ...], kw: dict[str, Any]) -> None:
            """Flask-Caching 2.5's signals, sent as its own decorators send them."""
            if signals is not None:
                extra = {"f": f} if memoized else {}
                sent = SIGNALS[memoized][kind]
                getattr(signals, sent).send(cache=self, cache_key=key, args=a, kwargs=kw, **extra)

        def compute(
            app: Flask, store: Any, key: str, found: Any, allowed: int, locked: bool, as_page: bool,
            a: tuple[Any, ...], kw: dict[str, Any],
        ) -> Any:  # fmt: skip
            """A miss's path: compute the value, then store it unless it must not be shared."""

            def release() -> None:
                if locked:
                    regenerate.unlock(store, key)

            timeout = _seconds(served.cache_timeout, store.default_timeout)
            before = conditional.session_accessed()
            try:
                rv = f(*a, **kw)
            except HTTPException as error:
                if not CACHES_HTTP_EXCEPTIONS:
                    release()
                    raise
                rv = error  # stored as Flask-Caching 2.5 does, raised again on each hit
            except Exception as error:
                if found is None or not allowed:
                    release()
                    raise
                # Stale-if-error: the lock stays, so the next attempt waits for it to expire.
                app.logger.warning(
                    "cache: regenerating %s failed (%s: %s): serving its previous value, "
                    "for %s s at most",
                    name, type(error).__name__, error, allowed,
                )  # fmt: skip
                return conditional.respond(found, per_visitor) if as_page else found[1]
            if isinstance(rv, CachedResponse):
                timeout = _seconds(rv.timeout, timeout)
            if inspect.isgenerator(rv):  # as Flask-Caching: joined, then stored
                rv = join_generator(rv)

            def keep(value: Any, etag: str | None = None) -> None:
                try:
                    shown = value.get_response() if isinstance(value, HTTPException) else value
                    if value is not None and (accepts is None or accepts(shown)):
                        kept = regenerate.entry(value, timeout, etag)
                        store.set(key, kept, timeout=regenerate.stored_for(timeout, allowed))
                finally:
                    release()

            if not as_page and not before and conditional.session_accessed():
                told.append(_tell(name, "reads the session"))
                release()
                return rv
            if not as_page or isinstance(rv, HTTPException):
                keep(rv)
                if isinstance(rv, HTTPException):
                    raise rv
                return rv

            @after_this_request
            def store_if_shared(response: Response) -> Response:
                # After the view's own after_this_request callbacks: its cookies are seen.
                reason = conditional.why_not_shared(response, per_visitor)
                if reason:
                    told.append(_tell(name, reason))
                    release()
                    return _not_shared(response)
                own = response.headers.get("Cache-Control")
                etag = conditional.etag_of(response)
                keep(rv, etag)
                if etag:
                    response.headers["ETag"] = etag
                response.headers["Cache-Control"] = own or conditional.cache_control(
                    timeout or math.inf, per_visitor
                )
                return response

            return current_app.make_response(rv)

        # Flask-Caching's attributes too (uncached, cache_timeout, make_cache_key...): an app may
        # set them on what the decorator returned, so each call reads them there.
        served: Any = functools.wraps(view)(serve)
        return served


# Options that keep Flask-Caching's own decorated function (no lock, stale value or ETag): each
# changes when it reads or stores, which only its own code knows.
OWN_PATH = ("unless", "forced_update", "is_stale", "cache_none", "response_hit_indication")


def _is_the_view(served: Callable[..., Any]) -> bool:
    """Whether ``served`` is this request's view (or what its other decorators wrap): only then
    is its value the page, to which ETag and Cache-Control belong."""
    view = current_app.view_functions.get(request.endpoint) if request.endpoint else None
    for _ in range(4):
        if view is None or view is served:
            return view is served
        view = getattr(view, "__wrapped__", None)
    return False


def _seconds(timeout: Any, default: int) -> int:
    if timeout is None:
        return int(default)
    if isinstance(timeout, timedelta):
        return math.ceil(timeout.total_seconds())
    return int(timeout)


def _not_shared(rv: Any) -> Response:
    response: Response = current_app.make_response(rv)
    response.headers.setdefault("Cache-Control", conditional.NOT_SHARED)
    return response


def _tell(name: str, reason: str) -> str:
    current_app.logger.warning("%s", conditional.fix(name, reason))
    return reason


cache = Cache()  # the app's: init_app() connects it to the backend .env names
