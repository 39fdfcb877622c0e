import os

from {{ cookiecutter.package_name }} import PROJECT_NAME


def test_index_shows_the_name_and_the_cache(client):
    response = client.get("/")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert f"<h1>{PROJECT_NAME}</h1>" in page.replace("&#39;", "'").replace("&amp;", "&")
    assert "<strong>simple</strong> cache backend" in page
    assert 'href="/static/style.css"' in page


def test_static_css_is_served(client):
    response = client.get("/static/style.css")
    assert response.status_code == 200
    assert response.mimetype == "text/css"


def test_health(client):
    response = client.get("/health")
    assert response.status_code == 200
    assert response.get_json() == {
        "status": "ok",
        "worker": os.getpid(),
        "cache": {"backend": "simple", "active": "simple", "breaker": "closed", "last_error": None},
    }


def test_unknown_page_is_404(client):
    assert client.get("/nope").status_code == 404


def test_memoized_square(client):
    assert client.get("/example/square/12").get_json() == {"n": 12, "square": 144}
    assert client.get("/example/square/12").get_json() == {"n": 12, "square": 144}
