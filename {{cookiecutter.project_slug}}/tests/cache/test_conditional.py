"""HTTP caching from the cache entry (cache/conditional.py): a cached page's ETag and max-age,
304 without running the view, HEAD, and the page's own Cache-Control."""

import uuid

import pytest
from flask import Blueprint, make_response
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from {{ cookiecutter.package_name }}.cache import cache, regenerate

from .conftest import SERVERS, make_app

BACKENDS = ["simple", pytest.param("redis", marks=SERVERS["redis"][2])]
TIMEOUT = 60


@pytest.fixture
def site(request, tmp_path, server_settings, monkeypatch):
    """An app with a cached page (/page), one that sets its own Cache-Control (/own), and the
    number of times each view ran; the clock of the entries under the test's control."""
    now = [1_000_000.0]
    monkeypatch.setattr(regenerate, "clock", lambda: now[0])
    ran = {"page": 0, "own": 0}
    bp = Blueprint(f"conditional_{uuid.uuid4().hex}", __name__)

    @bp.get("/page")
    @cache.cached(timeout=TIMEOUT)
    def page() -> str:
        ran["page"] += 1
        return f"<p>page {ran['page']}</p>"

    @bp.get("/own")
    @cache.cached(timeout=TIMEOUT)
    def own():
        ran["own"] += 1
        response = make_response(f"own {ran['own']}")
        response.headers["Cache-Control"] = "public, max-age=5"
        return response

    app = make_app(tmp_path, **server_settings(request.param))
    app.register_blueprint(bp)
    return app.test_client(), ran, now


@pytest.mark.parametrize("site", BACKENDS, indirect=True)
def test_a_cached_page_says_its_etag_and_how_long_it_stays_fresh(site):
    client, ran, now = site
    first = client.get("/page")
    assert first.headers["Cache-Control"] == f"max-age={TIMEOUT}"
    etag = first.headers["ETag"]
    assert etag.startswith('"') and len(etag) > 10
    now[0] += 20
    hit = client.get("/page")
    assert (hit.headers["ETag"], hit.headers["Cache-Control"]) == (etag, "max-age=40")
    assert hit.get_data() == first.get_data() and ran["page"] == 1


@pytest.mark.parametrize("site", BACKENDS, indirect=True)
def test_a_browser_holding_the_page_gets_304_without_the_view_running(site):
    client, ran, now = site
    etag = client.get("/page").headers["ETag"]
    for method in ("GET", "HEAD"):
        response = client.open("/page", method=method, headers={"If-None-Match": etag})
        assert response.status_code == 304, method
        assert response.get_data() == b""
        assert response.headers["ETag"] == etag
        assert response.headers["Cache-Control"] == f"max-age={TIMEOUT}"
    head = client.head("/page")
    assert head.status_code == 200 and head.get_data() == b"" and head.headers["ETag"] == etag
    assert ran["page"] == 1  # the first GET only


@pytest.mark.parametrize("site", BACKENDS, indirect=True)
def test_a_regenerated_page_gets_a_new_etag_and_the_old_one_a_full_page(site):
    client, ran, now = site
    old = client.get("/page").headers["ETag"]
    now[0] += TIMEOUT  # expired: this request regenerates it
    response = client.get("/page", headers={"If-None-Match": old})
    assert response.status_code == 200 and response.get_data() == b"<p>page 2</p>"
    assert response.headers["ETag"] != old


@pytest.mark.parametrize("site", BACKENDS, indirect=True)
def test_the_pages_own_cache_control_wins(site):
    client, ran, now = site
    first = client.get("/own")
    etag = first.headers["ETag"]
    assert first.headers["Cache-Control"] == "public, max-age=5"
    assert client.get("/own").headers["Cache-Control"] == "public, max-age=5"
    not_modified = client.get("/own", headers={"If-None-Match": etag})
    assert not_modified.status_code == 304
    assert not_modified.headers["Cache-Control"] == "public, max-age=5"
    assert ran["own"] == 1


@pytest.mark.parametrize("site", ["simple"], indirect=True)
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(asked=st.text(st.characters(codec="latin-1", exclude_characters="\r\n"), max_size=80))
@example(asked="*")
@example(asked='W/"x", *')
def test_any_if_none_match_gets_the_page_or_a_304(site, asked):
    client, ran, now = site
    etag = client.get("/page").headers["ETag"]
    before = ran["page"]
    response = client.get("/page", headers={"If-None-Match": asked})
    assert response.status_code in (200, 304)
    assert ran["page"] == before  # never runs the view: the entry is fresh
    if response.status_code == 304:
        assert response.get_data() == b""
        # Only a list naming this ETag (weakly or not), or "*", makes a 304.
        assert etag.strip('"') in asked or "*" in asked
    else:
        assert response.get_data().startswith(b"<p>page")
