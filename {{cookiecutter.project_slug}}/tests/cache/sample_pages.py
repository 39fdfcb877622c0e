"""The pages the cache's tests serve, added by make_app: a cached page, a memoized function and a
plain page in the site's layout. They stand in for the project's own, so these tests hold
whatever the project does to views.py and its templates (the demo may be gone)."""

import os
import re
from datetime import datetime, timezone

from flask import Blueprint, render_template

from {{ cookiecutter.package_name }}.cache import cache

bp = Blueprint("sample", __name__, template_folder="templates")

TIMEOUT = 60
SQUARE_MAX = 1_000_000


def page(title: str) -> str:
    at = datetime.now(timezone.utc).isoformat(timespec="microseconds")
    return render_template("sample.html", title=title, at=at, pid=os.getpid())


@bp.get("/sample")
@cache.cached(timeout=TIMEOUT)
def cached() -> str:
    return page("Cached page")


@bp.get("/sample/plain")
def plain() -> str:
    return page("Plain page")


@cache.memoize(timeout=TIMEOUT)
def square(n: int) -> int:
    return n * n


@bp.get("/sample/square/<n>")
def square_page(n: str) -> tuple[dict[str, object], int]:
    if not re.fullmatch(r"[0-9]{1,7}", n) or int(n) > SQUARE_MAX:
        return {"error": f"n must be a whole number from 0 to {SQUARE_MAX:,}"}, 400
    return {"n": int(n), "square": square(int(n))}, 200
