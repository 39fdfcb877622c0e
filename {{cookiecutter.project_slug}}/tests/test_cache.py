import os
import re
import sys
from datetime import datetime, timezone

import pytest

from {{ cookiecutter.package_name }}.cache import cache

from .conftest import make_app, server_settings


def computed_at(response) -> str:
    return re.search(r'class="computed-at">([^<]+)<', response.get_data(as_text=True)).group(1)


def test_values_round_trip_unchanged(backend_app):
    value = {"text": "héllo", "bytes": b"\x00\xff", "when": datetime.now(timezone.utc), "n": [1, 2]}
    with backend_app.app_context():
        assert cache.get("missing") is None
        assert cache.set("key", value)
        assert cache.get("key") == value
        every_byte = bytes(range(256))  # Upstash's REST API carries JSON text: must survive
        assert cache.set("raw", every_byte) and cache.get("raw") == every_byte


def test_has_add_and_delete_tell_the_truth(backend_app):
    with backend_app.app_context():
        assert not cache.has("key")
        assert cache.add("key", 1)
        assert not cache.add("key", 2), "add() must refuse an existing key"
        assert cache.get("key") == 1
        assert cache.has("key")
        assert cache.delete("key")
        assert not cache.has("key")


def test_many_calls(backend_app):
    with backend_app.app_context():
        assert cache.set_many({"a": 1, "b": 2})
        assert cache.get_many("a", "b", "c") == [1, 2, None]
        assert cache.get_dict("a", "b") == {"a": 1, "b": 2}
        cache.delete_many("a", "b")
        assert cache.get_many("a", "b") == [None, None]


def test_memoize_computes_once_per_argument(backend_app):
    calls = []

    @cache.memoize(timeout=30)
    def square(n):
        calls.append(n)
        return n * n

    with backend_app.app_context():
        assert [square(3), square(3), square(4), square(4)] == [9, 9, 16, 16]
    assert calls == [3, 4]


def test_example_page_is_served_from_the_cache(backend_app):
    client = backend_app.test_client()
    first, second = client.get("/example"), client.get("/example")
    assert first.status_code == second.status_code == 200
    assert computed_at(first) == computed_at(second)


def test_health_reports_the_serving_backend(backend_app):
    backend = backend_app.config["CACHE_TYPE"]
    response = backend_app.test_client().get("/health")
    assert response.status_code == 200
    assert response.get_json() == {
        "status": "ok",
        "worker": os.getpid(),
        "cache": {"backend": backend, "active": backend, "breaker": "closed", "last_error": None},
    }


def test_redis_keys_carry_the_prefix(tmp_path):
    import redis

    app = make_app(tmp_path, CACHE_TYPE="redis", **server_settings("redis"))
    app.test_client().get("/example")
    server = redis.Redis.from_url(app.config["REDIS_URL"])
    prefix = app.config["CACHE_KEY_PREFIX"]
    assert server.exists(f"{prefix}view//example")
    server.delete(f"{prefix}view//example")


def test_filesystem_cache_writes_files_in_cache_dir(tmp_path):
    app = make_app(tmp_path, CACHE_TYPE="filesystem")
    app.test_client().get("/example")
    assert any((tmp_path / "cache").iterdir())


def test_null_backend_caches_nothing(tmp_path):
    client = make_app(tmp_path, CACHE_TYPE="null").test_client()
    assert computed_at(client.get("/example")) != computed_at(client.get("/example"))


@pytest.mark.parametrize("backend, package", [("redis", "redis"), ("memcached", "pymemcache")])
def test_missing_client_library_falls_back_to_simple(
    tmp_path, monkeypatch, caplog, backend, package
):
    monkeypatch.setitem(sys.modules, package, None)  # as if it were not installed
    app = make_app(
        tmp_path,
        CACHE_TYPE=backend,
        REDIS_URL="redis://127.0.0.1:1/0",
        MEMCACHED_SERVERS="127.0.0.1:1",
    )
    status = app.test_client().get("/health").get_json()["cache"]
    assert (status["backend"], status["active"]) == (backend, "simple")
    assert f"pip install {package}" in caplog.text


def test_cached_views_use_flask_cachings_own_key(app):
    from {{ cookiecutter.package_name }}.views import example

    app.test_client().get("/example")
    with app.test_request_context("/example"), app.app_context():
        key = example.make_cache_key(use_request=True)  # Flask-Caching's own key function
        assert key == "view//example"
        assert cache.get(key) is not None
        assert cache.delete(key)
    assert app.test_client().get("/example").status_code == 200
