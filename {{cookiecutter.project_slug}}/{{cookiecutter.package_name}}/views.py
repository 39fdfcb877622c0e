"""The demo pages: an index, a cached page and a memoized function. Rewrite or delete them.

Your own pages go here (or in blueprints of your own, registered in create_app). /health, the
error pages and the footer's cache report come from the cache package, so they keep working
whatever you do to this file, index.html and example.html.
"""

import os
import re
from datetime import datetime, timezone

from flask import Blueprint, render_template

from .cache import cache

bp = Blueprint("main", __name__)

EXAMPLE_TIMEOUT = 60  # seconds the example page is served from the cache
SQUARE_MAX = 1_000_000  # bounds the entries a visitor can add to the cache (and the digits)


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
