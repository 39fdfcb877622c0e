"""The pages: an index, a cached example, a health check and the error pages. Add yours here."""

import os
import re
from datetime import datetime, timezone

from flask import Blueprint, Response, current_app, render_template
from werkzeug.exceptions import HTTPException

from .cache import cache, status

bp = Blueprint("main", __name__)

EXAMPLE_TIMEOUT = 60  # seconds the example page is served from the cache
SQUARE_MAX = 1_000_000  # bounds the entries a visitor can add to the cache (and the digits)
HEALTH_KEY = "health"  # one entry, rewritten by every /health


@bp.app_context_processor
def inject_cache_status() -> dict[str, object]:
    # Every page's footer names the backend that serves.
    return {"cache_status": status()}


@bp.get("/")
def index() -> str:
    return render_template("index.html")


def readable(moment: datetime) -> str:
    """A UTC time as a person reads it: "26 November 2026, 10:41:07 UTC"."""
    return f"{moment.day} {moment:%B %Y, %H:%M:%S} UTC"


@bp.get("/example")
@cache.cached(timeout=EXAMPLE_TIMEOUT)
def example() -> str:
    # Rendered at most once a minute; the time and process id show when and where it was made.
    now = datetime.now(timezone.utc)
    return render_template(
        "example.html",
        computed_at=now.isoformat(timespec="microseconds"),  # for <time datetime>: exact
        computed_at_text=readable(now),
        pid=os.getpid(),
        timeout=EXAMPLE_TIMEOUT,
    )


@cache.memoize(timeout=EXAMPLE_TIMEOUT)
def square(n: int) -> int:
    return n * n  # stands for any costly function of its arguments


@bp.get("/example/square/<n>")
def square_page(n: str) -> tuple[dict[str, object], int]:
    # Any path segment comes here, so a bad one gets a reason rather than a bare 404.
    if not re.fullmatch(r"[0-9]{1,7}", n) or int(n) > SQUARE_MAX:
        return {"error": f"n must be a whole number from 0 to {SQUARE_MAX:,}"}, 400
    # @memoize caches per argument: each n is computed once, then served from the cache.
    return {"n": int(n), "square": square(int(n))}, 200


@bp.get("/favicon.ico")
def favicon() -> Response:
    # Browsers ask for /favicon.ico on pages with no <link rel="icon"> (/health's JSON).
    return current_app.send_static_file("favicon.svg")


@bp.app_errorhandler(404)
def not_found(error: HTTPException) -> tuple[str, int]:
    return render_template("404.html"), 404


@bp.app_errorhandler(500)
def server_error(error: HTTPException) -> tuple[str, int]:
    # Rendered without the context processors (the footer's cache status): this page must not
    # depend on the cache, which may be what failed.
    return current_app.jinja_env.get_template("500.html").render(), 500


@bp.get("/health")
def health() -> dict[str, object]:
    # One round trip through the breaker, so that "active" and "breaker" say what the cache does
    # now, not at the last cached view. Each call waits at most CACHE_SOCKET_TIMEOUT; while the
    # breaker is open it touches no server (one probe per CACHE_RETRY_AFTER), and never fails.
    cache.set(HEALTH_KEY, os.getpid(), timeout=EXAMPLE_TIMEOUT)
    cache.get(HEALTH_KEY)
    # worker: the process that answered; each web worker has its own breaker and simple cache.
    return {"status": "ok", "worker": os.getpid(), "cache": status()}
