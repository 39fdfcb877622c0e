"""The demo pages' tests (views.py, index.html, example.html): yours, like the demo. Rewrite or
delete them with it; the cache's and the template's own tests are in tests/cache/."""

import re
from datetime import datetime, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from markupsafe import escape

from {{ cookiecutter.package_name }} import PROJECT_NAME, create_app
from {{ cookiecutter.package_name }}.views import readable


@pytest.fixture
def client(tmp_path):
    # As Flask's tutorial does: the settings a test gives, none from .env or the shell.
    app = create_app(
        {"TESTING": True, "SECRET_KEY": "test", "CACHE_DIR": str(tmp_path)}, environ={}
    )
    return app.test_client()


def test_index_shows_the_name_and_the_cache(client):
    page = client.get("/").get_data(as_text=True)
    assert f"<h1>{escape(PROJECT_NAME)}</h1>" in page  # as Jinja escapes it: quotes, <, >, &
    assert "<strong>simple</strong> cache backend" in page
    assert 'href="/example"' in page


def test_the_example_page_is_cached_and_shows_its_time_both_ways(client):
    page = client.get("/example").get_data(as_text=True)
    assert client.get("/example").get_data(as_text=True) == page, "served from the cache"
    machine, shown = re.search(r'datetime="([^"]+)">([^<]+)</time>', page).groups()
    assert shown == readable(datetime.fromisoformat(machine))


@settings(max_examples=200, deadline=None, derandomize=True)
@given(moment=st.datetimes(datetime(2000, 1, 1), timezones=st.just(timezone.utc)))
def test_the_examples_time_reads_as_a_date_and_round_trips(moment):
    text = readable(moment)
    assert "T" not in text.replace("UTC", "")  # not ISO 8601's 2026-11-26T10:41:07
    parsed = datetime.strptime(text, "%d %B %Y, %H:%M:%S UTC").replace(tzinfo=timezone.utc)
    assert parsed == moment.replace(microsecond=0)


@pytest.mark.parametrize("n", ["0", "12", "1000000"])
def test_the_square_of_a_whole_number(client, n):
    for _ in range(2):  # computed, then from the cache
        assert client.get(f"/example/square/{n}").get_json() == {"n": int(n), "square": int(n) ** 2}


@pytest.mark.parametrize("n", ["-1", "1000001", "abc", "1.5", "٣"])
def test_a_bad_number_is_refused_with_a_reason(client, n):
    response = client.get(f"/example/square/{n}")
    assert response.status_code == 400
    assert response.get_json() == {"error": "n must be a whole number from 0 to 1,000,000"}
