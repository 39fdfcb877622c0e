"""The template's pages (/health, the error pages) and the cache decorators as Flask-Caching
documents them, on every backend, with the tests' own pages (sample_pages.py) standing in for the
project's."""

import os
import re
import socket
import sys
import threading
import time

import flask_caching
import pytest
from flask import request
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from markupsafe import escape
from werkzeug.exceptions import NotFound

from {{ cookiecutter.package_name }}.cache import BACKENDS, cache

from . import sample_pages
from .conftest import SERVERS, cache_behind, make_app

# Flask-Caching 2.5 added cache.delete_cached(view, path), which asks the view's make_cache_key
# for the key of ``path`` outside a request. 2.4, the last release for Python 3.10, has neither.
DELETE_CACHED = hasattr(flask_caching.Cache, "delete_cached")

# Every backend, those with a server carrying its mark (so `-m redis` selects their cases too).
EVERY_BACKEND = [
    pytest.param(name, marks=SERVERS[name][2:] if name in SERVERS else ()) for name in BACKENDS
]


def computed_at(response) -> str:
    """The example's time, as its <time datetime> gives it: ISO 8601 to the microsecond."""
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    return re.search(r'<time class="computed-at" datetime="([^"]+)">', page).group(1)


@pytest.fixture(params=EVERY_BACKEND)
def backend_app(request, tmp_path, server_settings):
    """The app on each backend in turn, against a real server where one is needed."""
    return make_app(tmp_path, **server_settings(request.param))


def test_static_css_is_served(client):
    response = client.get("/static/style.css")
    assert response.status_code == 200
    assert response.mimetype == "text/css"


def test_links_are_in_the_accent_colour(client):
    css = client.get("/static/style.css").get_data(as_text=True)
    rules = dict(re.findall(r"^([^{}\n]+?)\s*\{([^}]*)\}", css, flags=re.M))
    assert "color: var(--accent)" in rules["a"]  # every link, not only the header's


def test_unknown_page_is_404(client):
    assert client.get("/nope").status_code == 404


def in_the_sites_layout(page: str) -> bool:
    return '<a class="brand" href="/">' in page and 'href="/static/style.css?v=' in page


# Path segments a visitor may type, markup and quotes included (the client percent-encodes them).
typed_segments = st.text(
    st.characters(codec="ascii", min_codepoint=33, exclude_characters="/?#%\\"), min_size=1
)


@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],  # the app: read only
)
@given(segments=st.lists(typed_segments, min_size=1, max_size=3))
def test_an_unknown_page_gets_the_sites_404_page(app, segments):
    path = "/" + "/".join(segments)
    try:
        app.url_map.bind("localhost").match(path)
    except NotFound:
        pass
    else:
        return  # a page that exists
    response = app.test_client().get(path)
    page = response.get_data(as_text=True)
    assert response.status_code == 404 and response.mimetype == "text/html"
    assert "<title>Page not found · " in page and in_the_sites_layout(page)
    assert f"There is no page at <code>{escape(path)}</code>" in page  # escaped, never markup


def failing_app(tmp_path):
    """An app with a view that raises, served as in production (exceptions become the 500 page
    instead of reaching the test)."""
    app = make_app(tmp_path, PROPAGATE_EXCEPTIONS=False)

    @app.get("/fails")
    def fails():
        raise RuntimeError("password=hunter2 in a message that must stay in the log")

    return app


def test_a_failing_view_gets_the_500_page_without_the_cache(tmp_path, monkeypatch):
    import {{ cookiecutter.package_name }}.cache.pages as pages

    def broken_status():
        raise ConnectionError("the cache is down")

    app = failing_app(tmp_path)
    monkeypatch.setattr(pages, "status", broken_status)  # the footer's cache status fails too
    response = app.test_client().get("/fails")
    page = response.get_data(as_text=True)
    assert response.status_code == 500 and response.mimetype == "text/html"
    assert "<title>Something went wrong · " in page and in_the_sites_layout(page)
    assert "hunter2" not in page and "Traceback" not in page


def test_the_favicon_is_served_where_browsers_look(client):
    page = client.get("/sample/plain").get_data(as_text=True)
    icon = re.search(r'<link rel="icon" href="([^"]+)"', page).group(1)
    for url in (icon, "/favicon.ico"):  # /favicon.ico: what a browser asks on /health's JSON
        response = client.get(url)
        assert response.status_code == 200 and response.mimetype.startswith("image/"), url


def test_no_page_links_to_a_missing_asset(tmp_path):
    client = failing_app(tmp_path).test_client()
    seen = set()
    for path in ("/sample/plain", "/sample", "/no-such-page", "/fails"):
        page = client.get(path).get_data(as_text=True)
        for url in re.findall(r'(?:href|src)="(/[^"]*)"', page):
            seen.add(url.partition("?")[0])  # a static file's ?v= (test_static.py)
            assert client.get(url).status_code == 200, f"{path} links to {url}"
    assert {"/static/style.css", "/static/favicon.svg"} <= seen


def test_example_page_is_served_from_the_cache(backend_app):
    client = backend_app.test_client()
    first, second = computed_at(client.get("/sample")), computed_at(client.get("/sample"))
    if backend_app.config["CACHE_TYPE"] == "null":
        assert first != second, "null caches nothing"
    else:
        assert first == second


def test_health_reports_the_serving_backend(backend_app):
    backend = backend_app.config["CACHE_TYPE"]
    backend_app.test_client().get("/health")  # redis: tracking starts; the next call reads yes
    response = backend_app.test_client().get("/health")
    assert response.status_code == 200
    answer = response.get_json()
    near = answer["cache"].pop("near")
    assert answer == {
        "status": "ok",
        "worker": os.getpid(),
        "cache": {"backend": backend, "active": backend, "breaker": "closed", "last_error": None},
    }
    # redis keeps hits in each worker's memory, told of every change; the others do not (their
    # CACHE_NEAR_TTL is 0 by default), and each says why.
    assert near["mode"] == ("tracking" if backend == "redis" else "off")
    assert near["why"]


def test_memoize_computes_once_per_argument(backend_app):
    calls = []

    @cache.memoize(timeout=30)
    def double(n):
        calls.append(n)
        return 2 * n

    with backend_app.app_context():
        assert [double(3), double(3), double(4), double(4)] == [6, 6, 8, 8]
    assert calls == ([3, 3, 4, 4] if backend_app.config["CACHE_TYPE"] == "null" else [3, 4])


@pytest.mark.parametrize("backend", [name for name, b in BACKENDS.items() if b.requires])
def test_a_missing_client_library_falls_back_to_simple(tmp_path, monkeypatch, caplog, backend):
    package = BACKENDS[backend].requires
    monkeypatch.setitem(sys.modules, package, None)  # as if it were not installed
    nowhere = {"redis": "redis://127.0.0.1:1/0", "upstash": "https://127.0.0.1:1"}
    app = make_app(
        tmp_path, CACHE_TYPE=backend, **{SERVERS[backend][0]: nowhere.get(backend, "h:1")}
    )
    status = app.test_client().get("/health").get_json()["cache"]
    assert (status["backend"], status["active"]) == (backend, "simple")
    assert f"pip install {package}" in caplog.text


@pytest.mark.parametrize("backend", list(SERVERS))
def test_pages_survive_an_unreachable_server_in_debug_mode(tmp_path, server_settings, backend):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    app = make_app(tmp_path, **server_settings(backend, port=closed))
    app.debug = True  # Flask-Caching's decorators re-raise backend errors in debug mode
    client = app.test_client()
    for path in ("/sample/plain", "/sample", "/sample", "/sample/square/4", "/health"):
        assert client.get(path).status_code == 200


def test_create_app_opens_no_connection(tmp_path, server_settings, hung_server):
    for backend in SERVERS:
        make_app(tmp_path, **server_settings(backend, port=hung_server.port))
    time.sleep(0.2)  # a connection attempt made in the background would have arrived
    assert hung_server.connections == 0


def test_cached_views_use_flask_cachings_own_key(app):
    app.test_client().get("/sample")
    with app.test_request_context("/sample"):
        # Flask-Caching's own key function, which ours stands in for
        key = sample_pages.cached.make_cache_key.flask_caching_key(use_request=True)
    assert key == "view//sample"
    with app.app_context():
        assert cache.get(key) is not None
        assert cache.delete(key)


@pytest.mark.parametrize(
    "path", ["/sample", "/a b", "/%s%d", "/ünïcode/ø", "/trailing/", "/x/./y", "/q?a=1&b=2"]
)
@pytest.mark.parametrize("source_check", [False, True])
def test_a_views_key_is_flask_cachings_own(tmp_path, path, source_check):
    """cache.cached makes a request's key itself only where it is Flask-Caching's key."""
    app = make_app(tmp_path, CACHE_SOURCE_CHECK=source_check)

    @app.get("/<path:anything>")
    @cache.cached(timeout=60)
    def anything(anything):
        return anything

    with app.test_request_context(path):
        ours = anything.make_cache_key(use_request=True, anything=path.lstrip("/"))
        theirs = anything.make_cache_key.flask_caching_key(use_request=True, anything=path)
    assert ours == theirs
    if DELETE_CACHED:
        with app.app_context():  # delete_cached()'s call: Flask-Caching's own function answers
            key = anything.make_cache_key(path="/p")
            assert key == anything.make_cache_key.flask_caching_key(path="/p")


def test_an_assigned_make_cache_key_is_honoured(app):
    # Flask-Caching documents a cached view's make_cache_key as writable.
    @app.get("/q")
    @cache.cached(timeout=60)
    def by_query():
        return request.args.get("foo", "")

    by_query.make_cache_key = lambda *args, **kwargs: "q/" + request.full_path
    client = app.test_client()
    assert client.get("/q?foo=a").get_data(as_text=True) == "a"
    assert client.get("/q?foo=b").get_data(as_text=True) == "b"


def test_delete_cached_finds_the_entry_with_source_check(tmp_path):
    app = make_app(tmp_path, CACHE_TYPE="simple", CACHE_SOURCE_CHECK=True)
    client = app.test_client()
    first = computed_at(client.get("/sample"))
    assert computed_at(client.get("/sample")) == first
    with app.test_request_context("/sample"):
        if DELETE_CACHED:
            assert cache.delete_cached(sample_pages.cached, "/sample")
        else:  # Flask-Caching 2.4: the key its make_cache_key gives a request for the page
            assert cache.delete(sample_pages.cached.make_cache_key(use_request=True))
    assert computed_at(client.get("/sample")) != first


# What a visitor controls: the method, the path, the query string and the headers. Every request
# gets an answer below 500; the square example answers its number or says what n may be.

segments = (
    st.text(max_size=12)
    | st.integers(-5, 10**8).map(str)
    | st.sampled_from(["9" * 3000, "9" * 4400])  # a square too long to print; too long to parse
)
headers = st.dictionaries(
    st.sampled_from(["Accept", "Accept-Encoding", "Cookie", "Host", "If-None-Match",
                     "If-Modified-Since", "Range", "X-Forwarded-For", "Content-Type"]),
    st.text(st.characters(min_codepoint=32, max_codepoint=255), max_size=20),
)  # fmt: skip
visits = st.fixed_dictionaries(
    {
        "method": st.sampled_from(["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"]),
        "segments": st.tuples(st.sampled_from(["", "example", "health", "static"]))
        | st.tuples(st.just("example"), st.just("square"), segments)
        | st.lists(segments, max_size=4),
        "query": st.binary(max_size=30) | st.text(max_size=30).map(str.encode),  # raw bytes
        "headers": headers,
    }
)


@pytest.mark.parametrize("backend", ["simple", pytest.param("redis", marks=pytest.mark.redis)])
@settings(
    max_examples=80,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],  # tmp_path: only a folder
)
@given(visit=visits)
def test_any_request_gets_an_answer_below_500(tmp_path, server_settings, backend, visit):
    app = make_app(tmp_path, **server_settings(backend))
    path = "/" + "/".join(visit["segments"])
    response = app.test_client().open(
        method=visit["method"],
        headers=visit["headers"],
        # As a WSGI server passes them: the path decoded, both as bytes in latin-1 strings.
        environ_overrides={
            "PATH_INFO": path.encode("utf-8", "surrogatepass").decode("latin-1"),
            "QUERY_STRING": visit["query"].decode("latin-1"),
        },
    )
    assert response.status_code < 500, (path, response.get_data(as_text=True)[:300])
    square = re.fullmatch(r"/sample/square/([^/]+)", path)
    if square and visit["method"] == "GET" and response.status_code != 304:
        n = square.group(1)
        if re.fullmatch(r"[0-9]{1,7}", n) and int(n) <= 1_000_000:
            assert response.get_json() == {"n": int(n), "square": int(n) ** 2}
        else:
            assert response.status_code == 400
            assert response.get_json() == {"error": "n must be a whole number from 0 to 1,000,000"}


class DeadServer:
    """A server that accepts each connection and closes it at once: it has died, and the test can
    count the requests that reached for it."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.connections = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return  # closed
            self.connections += 1
            conn.close()


@pytest.fixture
def dead_server():
    server = DeadServer()
    yield server
    server.listener.close()


# What a monitor does: ask /health now and then, with pauses (in the breaker's retry windows).
health_checks = st.lists(
    st.sampled_from(["/health", "wait 0.5", "wait 1.0", "wait 0.1"]), max_size=12
)


@pytest.mark.parametrize("backend", list(SERVERS))
@settings(
    max_examples=10,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],  # the server is reset per example
)
@given(steps=health_checks)
def test_health_tells_a_dead_server_at_once_and_probes_it_once_per_window(
    tmp_path, server_settings, dead_server, clock, backend, steps
):
    retry_after = 1.0
    app = make_app(
        tmp_path,
        **server_settings(backend, port=dead_server.port),
        CACHE_RETRY_AFTER=str(retry_after),
    )
    cache_behind(app).clock = clock
    client = app.test_client()
    # The first request of all, on a page that uses no cached view: /health says so already.
    response = client.get("/health")
    assert response.status_code == 200
    assert response.get_json()["cache"] == {
        "backend": backend,
        "active": "simple",
        "breaker": "open",
        "last_error": response.get_json()["cache"]["last_error"],
        "near": {"mode": "off", "why": "the breaker is open"},
    }
    assert response.get_json()["cache"]["last_error"]["type"]
    probe_due = clock.now + retry_after
    for step in steps:
        if step.startswith("wait"):
            clock.advance(float(step.split()[1]))
            continue
        before = dead_server.connections
        response = client.get("/health")
        assert response.status_code == 200
        assert response.get_json()["cache"]["active"] == "simple"
        reached = dead_server.connections > before
        # The breaker's retry window holds for /health too: no hammering of a dead server.
        assert reached == (clock.now >= probe_due), (step, clock.now, probe_due)
        if reached:
            probe_due = clock.now + retry_after
