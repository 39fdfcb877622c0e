"""A cached page never serves one visitor's page to another (cache/conditional.py): a view
that reads the session, sets a cookie or sends Vary: Cookie is served fresh and logged once;
per_visitor=True keeps one entry per session."""

import logging
import uuid

import flask
import pytest
from flask import Blueprint, after_this_request, make_response, session

from {{ cookiecutter.package_name }}.cache import cache, conditional

from .conftest import SERVERS, make_app

BACKENDS = [
    "simple",
    "filesystem",
    pytest.param("redis", marks=SERVERS["redis"][2]),
    pytest.param("memcached", marks=SERVERS["memcached"][2]),
]


@pytest.fixture
def site(request, tmp_path, server_settings):
    """An app whose /login?name= keeps a name in the session, with cached pages that differ
    per visitor in each way a page can, and the number of times each ran."""
    ran: dict[str, int] = {}
    bp = Blueprint(f"sessions_{uuid.uuid4().hex}", __name__)

    def counted(name: str) -> None:
        ran[name] = ran.get(name, 0) + 1

    @bp.get("/login")
    def login() -> str:
        session["name"] = flask.request.args["name"]
        return "ok"

    @bp.get("/hello")
    @cache.cached(timeout=60)
    def hello() -> str:
        counted("hello")
        return f"Hello, {session.get('name', 'stranger')}!"

    @bp.get("/cookie")
    @cache.cached(timeout=60)
    def cookie():
        counted("cookie")
        response = make_response("a cookie for you")
        response.set_cookie("seen", uuid.uuid4().hex)
        return response

    @bp.get("/later-cookie")
    @cache.cached(timeout=60)
    def later_cookie() -> str:
        counted("later-cookie")

        @after_this_request
        def remember(response):
            response.set_cookie("seen", uuid.uuid4().hex)  # Flask's "deferred callbacks"
            return response

        return "a cookie, set later"

    @bp.get("/vary")
    @cache.cached(timeout=60)
    def vary():
        counted("vary")
        response = make_response("varies")
        response.vary.add("Cookie")
        return response

    @bp.get("/mine")
    @cache.cached(timeout=60, per_visitor=True)
    def mine() -> str:
        counted("mine")
        return f"Your page, {session.get('name', 'stranger')}"

    @bp.get("/public")
    @cache.cached(timeout=60)
    def public() -> str:
        counted("public")
        return "the same for everyone"

    app = make_app(tmp_path, **server_settings(request.param))
    app.register_blueprint(bp)
    return app, ran


def visitor(app, name: str | None):
    client = app.test_client()
    if name:
        client.get(f"/login?name={name}")
    return client


@pytest.mark.parametrize("site", BACKENDS, indirect=True)
def test_alice_and_bob_never_see_each_others_page(site, caplog):
    app, ran = site
    alice, bob = visitor(app, "alice"), app.test_client()
    first = alice.get("/hello")
    assert first.get_data(as_text=True) == "Hello, alice!"
    assert first.headers["Cache-Control"] == "private, no-store"
    assert "alice" not in bob.get("/hello").get_data(as_text=True)
    assert bob.get("/hello").get_data(as_text=True) == "Hello, stranger!"
    assert alice.get("/hello").get_data(as_text=True) == "Hello, alice!"
    assert ran["hello"] == 4  # served fresh each time
    told = [r.getMessage() for r in caplog.records if "hello reads the session" in r.getMessage()]
    assert len(told) == 1, told  # once, with the view's name and the fix
    assert "per_visitor=True" in told[0] and "remove @cache.cached" in told[0]


@pytest.mark.parametrize("site", BACKENDS, indirect=True)
@pytest.mark.parametrize(
    ("path", "reason"),
    [("/cookie", "sets a cookie"), ("/later-cookie", "sets a cookie"), ("/vary", "Vary: Cookie")],
)
def test_a_page_that_sets_a_cookie_or_varies_on_it_is_not_shared(site, path, reason, caplog):
    app, ran = site
    with caplog.at_level(logging.WARNING):
        first, second = app.test_client().get(path), app.test_client().get(path)
    assert first.headers["Cache-Control"] == second.headers["Cache-Control"] == "private, no-store"
    assert "ETag" not in second.headers
    assert ran[path.strip("/")] == 2
    assert sum(reason in r.getMessage() for r in caplog.records) == 1


@pytest.mark.parametrize("site", BACKENDS, indirect=True)
def test_per_visitor_keeps_one_entry_per_session(site):
    app, ran = site
    alice, bob, carol = visitor(app, "alice"), visitor(app, "bob"), app.test_client()
    for _ in range(2):
        assert alice.get("/mine").get_data(as_text=True) == "Your page, alice"
        assert bob.get("/mine").get_data(as_text=True) == "Your page, bob"
        assert carol.get("/mine").get_data(as_text=True) == "Your page, stranger"
    assert ran["mine"] == 3  # one entry each, then hits
    response = alice.get("/mine")
    assert response.headers["Cache-Control"].startswith("private, max-age=")
    assert (
        alice.get("/mine", headers={"If-None-Match": response.headers["ETag"]}).status_code == 304
    )


@pytest.mark.parametrize("site", ["simple"], indirect=True)
def test_a_page_that_never_touches_the_session_stays_shared(site):
    """Checking whether the session was read must not read it (Flask 3.1.3 marks the session
    accessed whenever its proxy is touched): this pins conditional._session_unmarked."""
    app, ran = site
    alice, bob = visitor(app, "alice"), app.test_client()
    first = alice.get("/public")
    assert "Vary" not in first.headers  # Flask adds Vary: Cookie once the session is accessed
    assert first.headers["Cache-Control"] == "max-age=60"
    assert bob.get("/public").get_data(as_text=True) == "the same for everyone"
    assert ran["public"] == 1
    with app.test_request_context("/"):
        assert conditional.session_accessed() is False
        session.get("name")
        assert conditional.session_accessed() is True
