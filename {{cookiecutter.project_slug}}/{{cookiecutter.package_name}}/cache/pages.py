"""The pages every baked site has, whatever you do to views.py and templates/: /health, the 404
and 500 pages, the footer's cache report, and a version on every static file's URL. init_app
registers them.

Restyle the error pages by putting your own 404.html or 500.html in templates/: Flask looks
there first. They extend your base.html, as these do.
"""

import hashlib
import os
import stat
from typing import Any

from flask import Blueprint, Response, current_app, render_template
from werkzeug.exceptions import HTTPException
from werkzeug.security import safe_join

from .extension import cache

bp = Blueprint("cache", __name__, template_folder="templates")

HEALTH_KEY = "health"  # one entry, rewritten by every /health
HEALTH_TIMEOUT = 60
VERSION_LENGTH = 8  # hex digits of a static file's hash in its URL's ?v=


def status() -> dict[str, Any]:
    """Which backend .env asks for, which one serves, and the breaker's state: no URL, no secret."""
    serving: Any = cache.cache  # a backend, or the breaker in front of one (chain.py)
    return {"backend": current_app.config["CACHE_TYPE"], **serving.status()}


@bp.app_context_processor
def cache_report() -> dict[str, object]:
    # base.html's footer names the backend that serves.
    return {"cache_status": status()}


@bp.get("/health")
def health() -> dict[str, object]:
    # One round trip through the breaker, so that "active" and "breaker" say what the cache does
    # now, not at the last cached view. Each call waits at most CACHE_SOCKET_TIMEOUT; while the
    # breaker is open it touches no server (one probe per CACHE_RETRY_AFTER), and never fails.
    cache.set(HEALTH_KEY, os.getpid(), timeout=HEALTH_TIMEOUT)
    cache.get(HEALTH_KEY)
    # worker: the process that answered; each web worker has its own breaker and simple cache.
    return {"status": "ok", "worker": os.getpid(), "cache": status()}


@bp.get("/favicon.ico")
def favicon() -> Response:
    # Browsers ask for /favicon.ico on pages with no <link rel="icon"> (/health's JSON).
    return current_app.send_static_file("favicon.svg")


# deploy.py lets browsers keep /static/ files for a year without asking again, so a changed file
# must get a new URL: url_for("static", filename="style.css") gives /static/style.css?v=<hash of
# its content>. The file served is the same whatever the query string: a static files mapping
# maps a URL path to a folder (help.pythonanywhere.com/pages/StaticFiles), as Flask's route does.
_versions: dict[str, tuple[int, int, str]] = {}  # path -> (mtime_ns, size, version), per process


@bp.app_url_defaults
def static_version(endpoint: str, values: dict[str, Any]) -> None:
    filename, folder = values.get("filename"), current_app.static_folder
    if endpoint != "static" or "v" in values or not isinstance(filename, str) or not folder:
        return
    path = safe_join(folder, filename)  # None for a name that leaves the folder
    version = file_version(path) if path else None
    if version:
        values["v"] = version


def file_version(path: str) -> str | None:
    """A short hash of the file's content, read again only when its mtime or size changes;
    None if it is not a file this process can read."""
    try:
        found = os.stat(path)
        if not stat.S_ISREG(found.st_mode):
            return None
        known = _versions.get(path)
        if known and known[:2] == (found.st_mtime_ns, found.st_size):
            return known[2]
        digest = hashlib.sha256()
        with open(path, "rb") as file:
            while chunk := file.read(1 << 16):
                digest.update(chunk)
    except (OSError, ValueError):  # ValueError: a NUL in the name
        return None
    version = digest.hexdigest()[:VERSION_LENGTH]
    _versions[path] = (found.st_mtime_ns, found.st_size, version)
    return version


@bp.app_errorhandler(404)
def not_found(error: HTTPException) -> tuple[str, int]:
    return render_template("404.html"), 404


@bp.app_errorhandler(500)
def server_error(error: HTTPException) -> tuple[str, int]:
    # Rendered without the context processors (the footer's cache report): this page must not
    # depend on the cache, which may be what failed.
    return current_app.jinja_env.get_template("500.html").render(), 500
