"""The WSGI file as PythonAnywhere runs it, on a free plan (1 worker) and a paid one (2 workers).

deploy.py's own wsgi_source() writes /var/www/<domain>_wsgi.py (here, a fake /var/www); uWSGI
serves it with no environment of its own, so every setting comes from the project's .env. With
2 workers, what one worker cached must be seen by the other on filesystem, redis, memcached and
upstash, and must not be on simple: what docs/caching.md says about workers, shown.
"""

import http.client
import importlib.util
import json
import re
import shutil
import uuid

import pytest

from . import servers
from .conftest import CHOICES
from .test_deploy import set_env


def load(path):
    """deploy.py of the baked project, by file."""
    spec = importlib.util.spec_from_file_location(f"baked_{uuid.uuid4().hex}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def get(connection: http.client.HTTPConnection, path: str) -> tuple[int, str]:
    connection.request("GET", path)
    response = connection.getresponse()
    return response.status, response.read().decode()


def computed_by(page: str) -> int:
    return int(re.search(r'<code class="pid">(\d+)</code>', page).group(1))


@pytest.mark.parametrize("processes", [1, 2], ids=["free-1-worker", "paid-2-workers"])
@pytest.mark.parametrize("backend", CHOICES["cache_backend"])
def test_wsgi_file_as_pythonanywhere_runs_it(
    bake, backend, processes, tmp_path, redis_url, memcached_servers
):
    source = bake(cache_backend=backend)  # the backend's own bake (conftest.BACKEND_CASES)
    project = tmp_path / "home" / "yourname" / source.name
    shutil.copytree(source, project)
    set_env(
        project / ".env",
        CACHE_KEY_PREFIX=f"workers-{uuid.uuid4().hex[:8]}:",  # apart from other tests' keys
        REDIS_URL=redis_url,
        MEMCACHED_SERVERS=memcached_servers,
        **servers.upstash_settings(project, redis_url),  # Upstash's REST API, on our Redis
    )
    wsgi = tmp_path / "var" / "www" / "yourname_pythonanywhere_com_wsgi.py"
    wsgi.parent.mkdir(parents=True)
    wsgi.write_text(load(project / "deploy.py").wsgi_source())

    env = servers.app_env(None)  # no PROJECT_HOME, no CACHE_*: as a web app on PythonAnywhere
    with servers.uwsgi(wsgi, env, tmp_path / "uwsgi.log", processes=processes) as url:
        port = int(url.rpartition(":")[2])
        first = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        status, body = get(first, "/health")
        assert status == 200
        health = json.loads(body)
        assert health["cache"]["backend"] == health["cache"]["active"] == backend  # from .env
        status, page = get(first, "/example")
        assert status == 200 and computed_by(page) == health["worker"]
        if processes == 1:
            return

        # The first worker is held by the open keep-alive connection, so the other one answers.
        second = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        status, body = get(second, "/health")
        other = json.loads(body)["worker"]
        assert other != health["worker"], "both requests went to one worker"
        status, page = get(second, "/example")
        assert status == 200
        if backend == "simple":
            assert computed_by(page) == other, "simple is per worker: the second computes its own"
        else:
            assert computed_by(page) == health["worker"], f"{backend} is shared between workers"
        first.close()
        second.close()


VISITOR_PAGES = """

from flask import request, session


@bp.get("/login")
def login() -> str:
    session["name"] = request.args["name"]
    return "ok"


@bp.get("/hello")
@cache.cached(timeout=60)
def hello() -> str:  # a beginner's mistake: a cached page that greets the visitor by name
    return f"Hello, {session.get('name', 'stranger')}!"
"""


def visit(port: int, path: str, cookie: str = "") -> tuple[str, str, dict]:
    """GET ``path`` on a connection of its own (a kept-alive one would hold a worker)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("GET", path, headers={"Cookie": cookie} if cookie else {})
    response = connection.getresponse()
    body = response.read().decode()
    connection.close()
    given = response.getheader("Set-Cookie", "").split(";")[0]
    return body, given or cookie, dict(response.getheaders())


@pytest.mark.parametrize(
    ("backend", "processes"), [("simple", 1), ("redis", 2)], ids=["simple-1-worker", "redis-2-workers"]
)
def test_a_cached_page_never_shows_one_visitors_page_to_another(
    bake, backend, processes, tmp_path, redis_url
):
    """Alice logs in and gets /hello, cached, greeting her by name; Bob, with no cookie, must not
    see "alice", and Alice must not see Bob's page: under uWSGI as PythonAnywhere runs it, on the
    per-worker cache (one worker serves both) and on a shared one (either worker serves Bob)."""
    source = bake(cache_backend=backend)
    project = tmp_path / "home" / "yourname" / source.name
    shutil.copytree(source, project)
    views = project / source.name.replace("-", "_") / "views.py"
    views.write_text(views.read_text() + VISITOR_PAGES)
    set_env(project / ".env", CACHE_KEY_PREFIX=f"visitors-{uuid.uuid4().hex[:8]}:", REDIS_URL=redis_url)
    wsgi = tmp_path / "var" / "www" / "yourname_pythonanywhere_com_wsgi.py"
    wsgi.parent.mkdir(parents=True)
    wsgi.write_text(load(project / "deploy.py").wsgi_source())
    with servers.uwsgi(wsgi, servers.app_env(None), tmp_path / "uwsgi.log", processes=processes) as url:
        port = int(url.rpartition(":")[2])
        _, cookie, _ = visit(port, "/login?name=alice")
        greeting, _, headers = visit(port, "/hello", cookie)
        assert greeting == "Hello, alice!"
        for _ in range(2 * processes):  # Bob, on either worker
            page, _, _ = visit(port, "/hello")
            assert "alice" not in page and page == "Hello, stranger!"
        assert visit(port, "/hello", cookie)[0] == "Hello, alice!"
        assert headers["Cache-Control"] == "private, no-store"  # no browser or proxy keeps it
    log = (tmp_path / "uwsgi.log").read_text()
    assert "hello reads the session" in log and "per_visitor=True" in log
