"""`flask cache status|clear|bench`, on each backend and with the server down."""

import importlib.util
import sys
import uuid

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from {{ cookiecutter.package_name }}.cache import BACKENDS

from .conftest import SERVERS, make_app
from .test_views import EVERY_BACKEND

STORING = [backend for backend in EVERY_BACKEND if backend.values != ("null",)]
SHARED = [backend for backend in EVERY_BACKEND if BACKENDS[backend.values[0]].shared]


@pytest.fixture(params=STORING)
def cli_app(request, tmp_path, server_settings):
    return make_app(tmp_path, **server_settings(request.param))


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
    tmp_path, server_settings, backend, settings, said
):
    result = invoke(make_app(tmp_path, **server_settings(backend), **settings), "status")
    assert result.exit_code == 0, result.output
    assert f"near cache: {said}" in result.output


@pytest.mark.parametrize("backend", SHARED)
def test_cache_clear_command(tmp_path, server_settings, backend):
    from {{ cookiecutter.package_name }}.cache import cache

    cli_app = make_app(tmp_path, **server_settings(backend))
    with cli_app.app_context():
        cache.set("mine", 1)
    result = invoke(cli_app, "clear")
    assert result.exit_code == 0, result.output
    assert "cleared this app's entries" in result.output
    with cli_app.app_context():
        assert cache.get("mine") is None


@pytest.mark.parametrize("backend", ["simple", "null"])
def test_cache_clear_says_the_site_is_not_cleared_where_it_cannot_be(tmp_path, backend):
    """A console is not a web worker: on simple, each worker's memory is its own, and only a
    reload empties it. Nothing failed (exit 0), but nothing on the site was cleared either."""
    result = invoke(make_app(tmp_path, CACHE_TYPE=backend), "clear")
    assert result.exit_code == 0, result.output
    assert "cleared this app's entries" not in result.output
    assert result.output.startswith("nothing ")
    if backend == "simple":
        assert "each web worker's own memory, which this console cannot reach" in result.output
        assert "reload the web app" in result.output
        assert "Reload button on the Web tab" in result.output
    else:
        assert "CACHE_TYPE=null caches nothing" in result.output


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


@pytest.mark.parametrize("command", [["status"], ["clear"], ["bench", "-n", "5"]])
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


COMMANDS = [["status"], ["clear"], ["bench", "-n", "5"]]
WITH_A_CLIENT = [name for name, backend in BACKENDS.items() if backend.requires]


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("backend", WITH_A_CLIENT)
def test_commands_fail_when_the_client_library_is_missing(tmp_path, monkeypatch, backend, command):
    """init_app serves from the simple cache then; the commands must not ping or clear that as if
    it were the backend .env names: one line naming the package and the pip command, exit 1."""
    package = BACKENDS[backend].requires
    monkeypatch.setitem(sys.modules, package, None)  # as if it were not installed
    assert importlib.util.find_spec(package) is None
    nowhere = {"redis": "redis://127.0.0.1:1/0", "upstash": "https://127.0.0.1:1"}
    settings = {SERVERS[backend][0]: nowhere.get(backend, "127.0.0.1:1")}
    result = invoke(make_app(tmp_path, CACHE_TYPE=backend, **settings), *command)
    assert result.exit_code == 1, result.output
    assert "ping:       ok" not in result.output and "round trips" not in result.output
    assert f"needs the {package} package, which is not installed" in result.output
    assert f"pip install {package}" in result.output


@pytest.mark.parametrize("command", COMMANDS)
def test_commands_fail_when_the_server_is_not_set_yet_in_development(tmp_path, command):
    """`flask --debug cache status` on a fresh redis bake: the simple cache serves (CACHE_FALLBACK),
    which is not what .env asks for."""
    app = make_app(tmp_path, DEBUG=True, CACHE_TYPE="redis")
    assert app.config["CACHE_FALLBACK"]
    result = invoke(app, *command)
    assert result.exit_code == 1, result.output
    assert "ping:       ok" not in result.output and "round trips" not in result.output
    assert "CACHE_TYPE=redis but REDIS_URL is not set" in result.output
    if command == ["status"]:
        assert "configured: redis" in result.output
        assert "serving:    simple" in result.output


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
