"""`flask cache status|clear|bench`, on each backend and with the server down."""

import pytest

from .conftest import make_app
from .test_views import EVERY_BACKEND

STORING = [backend for backend in EVERY_BACKEND if backend.values != ("null",)]


@pytest.fixture(params=STORING)
def cli_app(request, tmp_path, settings_for):
    return make_app(tmp_path, **settings_for(request.param))


def invoke(app, *args):
    return app.test_cli_runner().invoke(args=["cache", *args])


def test_cache_status_pings_the_backend(cli_app):
    result = invoke(cli_app, "status")
    assert result.exit_code == 0, result.output
    backend = cli_app.config["CACHE_TYPE"]
    assert f"configured: {backend}" in result.output
    assert f"serving:    {backend} (" in result.output
    assert "ping:       ok, set+get in" in result.output
    assert "test-upstash-token" not in result.output


def test_cache_clear_command(cli_app):
    from {{ cookiecutter.package_name }}.cache import cache

    with cli_app.app_context():
        cache.set("mine", 1)
    result = invoke(cli_app, "clear")
    assert result.exit_code == 0, result.output
    assert "cleared this app's entries" in result.output
    with cli_app.app_context():
        assert cache.get("mine") is None


def test_cache_bench_command(cli_app):
    result = invoke(cli_app, "bench", "-n", "20")
    assert result.exit_code == 0, result.output
    assert "20 round trips" in result.output
    assert result.output.count(" ms, p99 ") == 2


def test_cache_bench_refuses_a_count_it_cannot_measure(app):
    result = invoke(app, "bench", "-n", "1")
    assert result.exit_code == 2
    assert "Invalid value for '-n' / '--count'" in result.output


@pytest.mark.parametrize("command", [["status"], ["clear"], ["bench", "-n", "5"]])
def test_commands_fail_clearly_when_the_backend_is_down(tmp_path, command):
    app = make_app(tmp_path, CACHE_TYPE="redis", REDIS_URL="redis://:hunter2@127.0.0.1:1/0")
    result = invoke(app, *command)
    assert result.exit_code == 1
    assert "ConnectionError" in result.output
    assert "redis://:***@127.0.0.1:1/0" in result.output or command == ["status"]
    assert "hunter2" not in result.output
