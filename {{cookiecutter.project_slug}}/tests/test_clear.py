"""clear() and `flask cache ...` touch this app's entries only."""

import os

import pytest

from {{ cookiecutter.package_name }}.cache import cache

from .conftest import make_app, server_settings


@pytest.mark.parametrize("backend", ["redis", "upstash"])
def test_redis_clear_keeps_other_apps_keys(tmp_path, backend):
    import redis

    # A prefix with glob characters: an unescaped SCAN pattern would match the other app's key.
    app = make_app(
        tmp_path,
        CACHE_TYPE=backend,
        CACHE_KEY_PREFIX="te*t:",
        CACHE_SOCKET_TIMEOUT="10",  # 1,200 keys in one pipeline: not a test of timeouts
        **server_settings(backend),
    )
    server = redis.Redis.from_url(os.environ["TEST_REDIS_URL"])  # upstash's store, too
    server.set("tenant:keep", b"other app")
    with app.app_context():
        cache.set_many({f"k{i}": i for i in range(1200)})  # more than one SCAN/UNLINK batch
        assert cache.clear()
        assert cache.get_many("k0", "k1199") == [None, None]
    assert server.get("tenant:keep") == b"other app"
    assert not list(server.scan_iter(match="te\\*t:*"))
    server.delete("tenant:keep")


def test_memcached_clear_keeps_other_apps_keys(tmp_path):
    from pymemcache.client.base import Client

    settings = server_settings("memcached")
    app = make_app(tmp_path, CACHE_TYPE="memcached", **settings)
    host, port = settings["MEMCACHED_SERVERS"].split(",")[0].rsplit(":", 1)
    other = Client((host, int(port)))
    other.set("other-app:key", b"kept")
    with app.app_context():
        cache.set("mine", 1)
        assert cache.clear()
        assert cache.get("mine") is None
        assert cache.set("mine", 2) and cache.get("mine") == 2
    assert other.get("other-app:key") == b"kept"
    other.delete("other-app:key")


def test_filesystem_clear_keeps_other_files(tmp_path):
    app = make_app(tmp_path, CACHE_TYPE="filesystem")
    cache_dir = tmp_path / "cache"
    (cache_dir / "notes.txt").write_text("not a cache entry")
    with app.app_context():
        cache.set("mine", 1)
        assert cache.clear()
        assert cache.get("mine") is None
    assert (cache_dir / "notes.txt").read_text() == "not a cache entry"


def test_filesystem_cache_stays_under_its_threshold(tmp_path):
    app = make_app(tmp_path, CACHE_TYPE="filesystem", CACHE_THRESHOLD="20")
    with app.app_context():
        for i in range(100):
            cache.set(f"k{i}", i)
        assert cache.get("k99") == 99
    assert len(list((tmp_path / "cache").iterdir())) <= 20


@pytest.fixture(params=["simple", "filesystem", "redis", "memcached"])
def cli_app(request, tmp_path):
    return make_app(tmp_path, CACHE_TYPE=request.param, **server_settings(request.param))


def test_cache_status_pings_the_backend(cli_app):
    result = cli_app.test_cli_runner().invoke(args=["cache", "status"])
    assert result.exit_code == 0, result.output
    backend = cli_app.config["CACHE_TYPE"]
    assert f"configured: {backend}" in result.output
    assert f"serving:    {backend}" in result.output
    assert "ping:       ok, set+get in" in result.output


def test_cache_clear_command(cli_app):
    with cli_app.app_context():
        cache.set("mine", 1)
    result = cli_app.test_cli_runner().invoke(args=["cache", "clear"])
    assert result.exit_code == 0, result.output
    assert "cleared this app's entries" in result.output
    with cli_app.app_context():
        assert cache.get("mine") is None


def test_cache_bench_command(cli_app):
    result = cli_app.test_cli_runner().invoke(args=["cache", "bench", "-n", "20"])
    assert result.exit_code == 0, result.output
    assert "20 round trips" in result.output
    assert result.output.count(" ms, p99 ") == 2


@pytest.mark.parametrize("command", [["status"], ["clear"], ["bench", "-n", "5"]])
def test_commands_fail_clearly_when_the_backend_is_down(tmp_path, command):
    app = make_app(tmp_path, CACHE_TYPE="redis", REDIS_URL="redis://:hunter2@127.0.0.1:1/0")
    result = app.test_cli_runner().invoke(args=["cache", *command])
    assert result.exit_code == 1
    assert "ConnectionError" in result.output
    assert "redis://:***@127.0.0.1:1/0" in result.output or command == ["status"]
    assert "hunter2" not in result.output
