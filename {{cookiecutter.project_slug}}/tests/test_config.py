"""Settings from the environment: a value the app cannot use stops it at start, in one line."""

import os

import pytest

from {{ cookiecutter.package_name }} import create_app
from {{ cookiecutter.package_name }}.cache import ConfigError


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"CACHE_TYPE": "mongo"}, "CACHE_TYPE='mongo' is not valid: use one of simple, filesystem"),
        (
            {"CACHE_DEFAULT_TIMEOUT": "5m"},
            "CACHE_DEFAULT_TIMEOUT='5m' is not valid: use a whole number",
        ),
        ({"CACHE_DEFAULT_TIMEOUT": "-1"}, "CACHE_DEFAULT_TIMEOUT='-1' is not valid"),
        (
            {"CACHE_SOCKET_TIMEOUT": "fast"},
            "CACHE_SOCKET_TIMEOUT='fast' is not valid: use a number",
        ),
        ({"CACHE_SOCKET_TIMEOUT": "nan"}, "CACHE_SOCKET_TIMEOUT='nan' is not valid"),
        ({"CACHE_THRESHOLD": "0"}, "CACHE_THRESHOLD='0' is not valid"),
        (
            {"CACHE_TYPE": "filesystem", "CACHE_DIR": "cache"},
            "CACHE_DIR='cache' is not valid: use an absolute path",
        ),
        ({"TESTING": "maybe"}, "TESTING='maybe' is not valid"),
        ({"CACHE_TYPE": "redis", "REDIS_URL": ""}, "REDIS_URL is not set but CACHE_TYPE=redis"),
        (
            {"CACHE_TYPE": "redis", "REDIS_URL": "localhost:6379"},
            "REDIS_URL='localhost:6379' is not valid",
        ),
        ({"CACHE_TYPE": "redis", "REDIS_URL": "http://h:1"}, "use redis://"),
        (
            {"CACHE_TYPE": "redis", "REDIS_URL": "redis://h:port"},
            "REDIS_URL='redis://h:port' is not valid",
        ),
        (
            {"CACHE_TYPE": "redis", "REDIS_URL": "redis://h:1/x"},
            "REDIS_URL='redis://h:1/x' is not valid",
        ),
        ({"CACHE_TYPE": "memcached", "MEMCACHED_SERVERS": ""}, "MEMCACHED_SERVERS is not set"),
        (
            {"CACHE_TYPE": "memcached", "MEMCACHED_SERVERS": "h:1,h"},
            "MEMCACHED_SERVERS='h:1,h' is not valid",
        ),
        (
            {"CACHE_TYPE": "memcached", "MEMCACHED_SERVERS": "h:99999"},
            "use comma-separated host:port",
        ),
        (
            {"CACHE_TYPE": "upstash", "UPSTASH_REDIS_REST_TOKEN": "t"},
            "UPSTASH_REDIS_REST_URL is not set but CACHE_TYPE=upstash",
        ),
        (
            {"CACHE_TYPE": "upstash", "UPSTASH_REDIS_REST_URL": "rediss://default:pw@h:6379"},
            "UPSTASH_REDIS_REST_URL='rediss://default:***@h:6379' is not valid: use the database's",
        ),
        (
            {"CACHE_TYPE": "upstash", "UPSTASH_REDIS_REST_URL": "https://h.upstash.io"},
            "UPSTASH_REDIS_REST_TOKEN is not set but CACHE_TYPE=upstash",
        ),
    ],
)
def test_bad_values_stop_start_up_naming_the_variable(settings, message):
    with pytest.raises(ConfigError) as error:
        create_app({"SECRET_KEY": "x", **settings}, environ={})
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_a_bad_redis_url_is_reported_without_its_password():
    with pytest.raises(ConfigError) as error:
        create_app(
            {"SECRET_KEY": "x", "CACHE_TYPE": "redis", "REDIS_URL": "rediss://default:hunter2@h:x"},
            environ={},
        )
    assert "hunter2" not in str(error.value)
    assert "rediss://default:***@h:x" in str(error.value)


def test_secret_key_is_required_outside_debug_and_testing(monkeypatch):
    with pytest.raises(ConfigError, match="SECRET_KEY is not set"):
        create_app(environ={})
    assert create_app({"TESTING": True}, environ={}).secret_key
    monkeypatch.setenv("FLASK_DEBUG", "1")  # as `flask run --debug` sets it
    assert create_app(environ={}).secret_key


def test_settings_come_from_the_environment(monkeypatch, tmp_path):
    for name in list(os.environ):
        if name.startswith(("CACHE_", "REDIS_", "MEMCACHED_", "UPSTASH_", "SECRET_KEY")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("SECRET_KEY", "from-env")
    monkeypatch.setenv("CACHE_TYPE", "FileSystem")
    monkeypatch.setenv("CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("CACHE_DEFAULT_TIMEOUT", " 60 ")
    app = create_app()
    assert app.secret_key == "from-env"
    assert (app.config["CACHE_TYPE"], app.config["CACHE_DIR"]) == ("filesystem", str(tmp_path))
    assert app.config["CACHE_DEFAULT_TIMEOUT"] == 60


def test_defaults():
    app = create_app({"SECRET_KEY": "x"}, environ={})
    assert app.config["CACHE_TYPE"] == "simple"
    assert app.config["CACHE_KEY_PREFIX"] == "{{ cookiecutter.package_name }}:"
    assert app.config["CACHE_DIR"] == os.path.join(app.instance_path, "cache")
    assert os.path.isabs(app.config["CACHE_DIR"])
    assert app.config["CACHE_SOCKET_TIMEOUT"] == 0.5
    assert app.config["CACHE_DEFAULT_TIMEOUT"] == 300
    assert app.config["CACHE_RETRY_AFTER"] == 30


def test_unused_backend_settings_are_not_checked():
    app = create_app(
        {"SECRET_KEY": "x", "CACHE_TYPE": "simple", "REDIS_URL": "nonsense", "CACHE_DIR": "rel"},
        environ={},
    )
    assert app.config["CACHE_TYPE"] == "simple"
