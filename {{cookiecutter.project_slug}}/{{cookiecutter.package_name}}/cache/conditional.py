"""What a cached page's response says to browsers, and which pages may be shared at all.

- A page served from its entry carries the entry's ETag and ``Cache-Control: max-age=N``, N
  the seconds the entry stays fresh (``no-cache`` for an entry without expiry: the browser
  asks each time, and gets a 304). A page that sets its own Cache-Control keeps it.
- A GET or HEAD whose If-None-Match names the entry's ETag gets 304 with no body, and the view
  does not run.
- A page that reads or changes the session, sets a cookie or sends Vary: Cookie differs per
  visitor: it is not stored in the shared entry, it is sent ``Cache-Control: private,
  no-store``, and the log says so once per worker, with the fix. ``per_visitor=True`` stores
  one entry per session instead (its key carries a hash of the session), sent ``private``.
"""

import hashlib
import math
from typing import Any

from flask import Response, current_app, has_request_context, request, session
from flask.globals import request_ctx
from werkzeug.http import parse_etags

from . import regenerate
from .regenerate import Entry

NOT_SHARED = "private, no-store"
REQUEST: Any = request  # a LocalProxy, typed as what it stands for


def respond(found: Entry, private: bool) -> Response:
    """The response for the entry ``found`` of a page: a 304 when the browser holds its ETag.
    The usual page, made from text, costs what Flask's own response would, plus two headers:
    this is a hit's path, written for speed (benchmarks --part hits)."""
    _, value, fresh_until, etag = found
    if etag is None:  # not a page's entry (the callers check)
        return current_app.make_response(value)
    environ = REQUEST._get_current_object().environ  # the proxy's own method: one lookup
    asked = environ.get("HTTP_IF_NONE_MATCH")
    holds = bool(asked) and environ.get("REQUEST_METHOD") in ("GET", "HEAD")
    if holds:  # a GET or HEAD whose If-None-Match names the ETag (or is "*")
        holds = parse_etags(asked).contains_weak(etag.strip('"'))
    said = cache_control(fresh_until - regenerate.clock(), private)
    if type(value) is str:  # no header of its own
        response: Response = current_app.response_class(None if holds else value)
        if holds:
            response.status_code = 304
        response.headers.add("ETag", etag)
        response.headers.add("Cache-Control", said)
        return response
    page = current_app.make_response(value)
    own = page.headers.get("Cache-Control")
    response = current_app.response_class(status=304) if holds else page
    response.headers["ETag"] = etag
    response.headers["Cache-Control"] = own or said
    return response


def cache_control(fresh_for: float, private: bool) -> str:
    """What to say of a page fresh for ``fresh_for`` more seconds (inf: until it changes)."""
    said = "no-cache" if fresh_for == math.inf else f"max-age={max(0, int(fresh_for))}"
    return f"private, {said}" if private else said


def etag_of(response: Response) -> str | None:
    """A strong ETag of the body, for a complete 200 response."""
    if response.status_code != 200 or response.is_streamed or response.direct_passthrough:
        return None
    return f'"{hashlib.sha256(response.get_data()).hexdigest()[:32]}"'


def session_accessed() -> bool:
    """Whether this request has read or changed the session so far (Flask tracks it)."""
    found = _session_unmarked()
    return bool(getattr(found, "accessed", True)) if found is not None else False


def _session_unmarked() -> Any:
    """This request's session, or None, read without marking it accessed. From Flask 3.1.3 on,
    touching the session proxy marks it, even to read ``accessed``; the request context keeps
    the session in ``_session`` there and in ``session`` before (tests/cache/test_sessions.py
    pins both)."""
    if not has_request_context():
        return None
    proxy: Any = request_ctx
    ctx = vars(proxy._get_current_object())
    return ctx.get("_session", ctx.get("session"))


def why_not_shared(response: Response, per_visitor: bool) -> str | None:
    """Why ``response`` must not be stored where other visitors would get it, or None."""
    if response.headers.get("Set-Cookie"):
        return "sets a cookie"
    if "cookie" in response.vary:
        return "sends Vary: Cookie"
    if per_visitor:
        return "changes the session" if getattr(_session_unmarked(), "modified", False) else None
    return "reads the session" if session_accessed() else None


def visitor() -> str:
    """A name for this visitor's session: a hash of its content (no session: one for all)."""
    if not has_request_context() or not session:
        return "none"
    serializer = getattr(current_app.session_interface, "serializer", None)
    content = serializer.dumps(dict(session)) if serializer else repr(dict(session))
    return hashlib.sha256(str(content).encode()).hexdigest()[:32]


def fix(name: str, reason: str) -> str:
    return (
        f"cache: {name} {reason}, so it differs per visitor: it is served fresh, not stored in "
        "the shared cache. To keep one copy per visitor, use @cache.cached(per_visitor=True); "
        "or remove @cache.cached (docs/caching.md)"
    )
