"""`flask cache status|clear|bench`, on each backend and with the server down."""

import uuid

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

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


@pytest.mark.parametrize(
    "backend, settings, said",
    [
        pytest.param("redis", {}, "tracking: the server reports", marks=pytest.mark.redis),
        pytest.param("memcached", {}, "off: CACHE_NEAR_TTL is 0", marks=pytest.mark.memcached),
        (
            "filesystem",
            {"CACHE_NEAR_TTL": "3"},
            "ttl: entries are served from memory for up to 3 s",
        ),
        ("simple", {}, "off: the cache is in each worker's memory already"),
    ],
)
def test_cache_status_says_whether_workers_keep_hits_in_memory(
    tmp_path, settings_for, backend, settings, said
):
    result = invoke(make_app(tmp_path, **settings_for(backend), **settings), "status")
    assert result.exit_code == 0, result.output
    assert f"near cache: {said}" in result.output


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


@pytest.mark.parametrize("command", [["status"], ["clear"]])
@pytest.mark.parametrize(
    "where", ["redis://:{}@127.0.0.1:1/0", "redis://127.0.0.1:1/0?password={}"]
)
def test_commands_never_show_a_password_an_error_quotes(tmp_path, monkeypatch, command, where):
    """Errors are formatted in one place (errors.format_error), secrets replaced by ***."""
    import redis

    secret = "pa55-" + uuid.uuid4().hex
    app = make_app(tmp_path, CACHE_TYPE="redis", REDIS_URL=where.format(secret))

    def refuse(*args, **options):
        raise redis.exceptions.ConnectionError(f"AUTH {secret} refused by 127.0.0.1:1")

    monkeypatch.setattr(redis.Redis, "execute_command", refuse)
    result = invoke(app, *command)
    assert result.exit_code == 1
    assert "ConnectionError: AUTH *** refused" in result.output
    assert secret not in result.output


# Whatever follows `flask cache <command>` on a console: a usage error (exit 2) whose message is
# one line, naming the option when a value is wrong; never a traceback, never an endless bench.

words = st.text(max_size=12) | st.sampled_from(["-n", "--count", "--count=", "--", "-h", "-nn"])
numbers = st.integers(-(10**30), 10**30).map(str) | st.sampled_from(["1e3", "nan", "0x10", "٣"])


@settings(
    max_examples=100,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],  # one app serves every example
)
@example(command="bench", args=["-n", "20001"])  # (-n 10**12 was accepted, and ran for days)
@given(
    command=st.sampled_from(["status", "clear", "bench"]) | st.text(max_size=8),
    args=st.lists(words | numbers, max_size=4),
)
def test_any_arguments_get_a_one_line_answer(runner, command, args):
    result = runner.invoke(args=["cache", command, *args])

    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert result.exit_code in (0, 2), result.output
    if result.exit_code == 2:
        last = result.output.strip().splitlines()[-1]
        assert last.startswith("Error: "), result.output  # the whole message is on that line
        if "Invalid value" in last:
            assert "'-n' / '--count'" in last
    elif command == "bench" and "Usage:" not in result.output:  # --help shows the usage
        count = int(result.output.split(" round trips")[0].rsplit(" ", 1)[1])
        assert 2 <= count <= 10_000
