"""CACHE_TYPE=upstash against a server that follows Upstash's REST contract (upstash_server.py),
storing into a real Redis. With HTTPS_PROXY set, every request goes through that proxy."""

import os

import redis

from {{ cookiecutter.package_name }}.cache import cache

from .conftest import make_app, server_settings


def test_entries_land_in_redis_under_the_prefix(tmp_path):
    app = make_app(tmp_path, CACHE_TYPE="upstash", **server_settings("upstash"))
    with app.app_context():
        cache.set("text", "héllo")
        cache.set("count", 41)
    server = redis.Redis.from_url(os.environ["TEST_REDIS_URL"])
    prefix = app.config["CACHE_KEY_PREFIX"]
    assert server.get(f"{prefix}count") == b"41", "integers stay digits, so INCRBY works"
    assert server.get(f"{prefix}text").startswith(b"b64:"), "pickles travel as base64 text"
    assert server.ttl(f"{prefix}text") > 0


def test_a_wrong_token_logs_one_clear_line_and_serves(tmp_path, caplog):
    settings = {**server_settings("upstash"), "UPSTASH_REDIS_REST_TOKEN": "not-the-token"}
    app = make_app(tmp_path, CACHE_TYPE="upstash", **settings)
    client = app.test_client()
    for path in ("/example", "/example", "/example/square/3", "/"):
        assert client.get(path).status_code == 200
    health = client.get("/health").get_json()["cache"]
    assert (health["active"], health["breaker"]) == ("simple", "open")
    logged = [record.getMessage() for record in caplog.records if record.levelname == "ERROR"]
    assert len(logged) == 1
    assert "Upstash refused the token (401): check UPSTASH_REDIS_REST_TOKEN" in logged[0]
    assert "not-the-token" not in caplog.text


def test_a_wrong_token_never_fails_a_page_in_debug_mode(tmp_path):
    settings = {**server_settings("upstash"), "UPSTASH_REDIS_REST_TOKEN": "not-the-token"}
    app = make_app(tmp_path, CACHE_TYPE="upstash", **settings)
    app.debug = True
    assert app.test_client().get("/example").status_code == 200


def test_cache_status_command_reaches_upstash(tmp_path):
    app = make_app(tmp_path, CACHE_TYPE="upstash", **server_settings("upstash"))
    result = app.test_cli_runner().invoke(args=["cache", "status"])
    assert result.exit_code == 0, result.output
    assert "upstash" in result.output
    assert server_settings("upstash")["UPSTASH_REDIS_REST_TOKEN"] not in result.output
