"""Fixtures: the app (as Flask's tutorial builds it for tests), caches on each backend, and the
servers they need, named by TEST_REDIS_URL and TEST_MEMCACHED_SERVERS.

Without those variables the tests that need a server are skipped; with CI=true they fail.
"""

import math
import os
import socket
import threading
import time
import uuid
from fractions import Fraction
from urllib.parse import urlsplit, urlunsplit

import pytest

from {{ cookiecutter.package_name }} import create_app
from {{ cookiecutter.package_name }}.cache import cache

from . import sample_pages, upstash_redis, upstash_server
from .relay import Relay

# Each backend with a server: the setting that names it, the fixture that gives its test value,
# and the mark of the tests that need it (`-m redis` selects them).
SERVERS = {
    "redis": ("REDIS_URL", "redis_url", pytest.mark.redis),
    "memcached": ("MEMCACHED_SERVERS", "memcached_servers", pytest.mark.memcached),
    "upstash": ("UPSTASH_REDIS_REST_URL", "upstash_url", pytest.mark.redis),
}


def needed_server(variable: str, what: str) -> str:
    """The address in ``variable``; skip without it, or fail under CI."""
    address = os.environ.get(variable)
    if not address:
        message = f"{variable} is not set: no {what} to test against"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{message} (CI=true: a missing server is a failure)")
        pytest.skip(message)
    return address


def pytest_terminal_summary(terminalreporter):
    """Tests skipped for want of a server, counted per reason: a line each, not one per test
    (pyproject.toml's -r lists failures and errors only)."""
    reasons: dict[str, int] = {}
    for report in terminalreporter.stats.get("skipped", []):
        reason = str(report.longrepr[-1]) if isinstance(report.longrepr, tuple) else ""
        reasons[reason] = reasons.get(reason, 0) + 1
    for reason, count in sorted(reasons.items()):
        terminalreporter.write_line(f"{count} skipped: {reason.removeprefix('Skipped: ')}")


@pytest.fixture(scope="session")
def redis_url() -> str:
    # The upstash tests need it too: they run against a local stand-in for Upstash's REST API.
    return needed_server(
        "TEST_REDIS_URL",
        "Redis server (for the redis and upstash tests; no Upstash account needed)",
    )


@pytest.fixture(scope="session")
def memcached_servers() -> str:
    return needed_server("TEST_MEMCACHED_SERVERS", "memcached server")


@pytest.fixture(autouse=True)
def server_of_the_mark(request):
    """A test marked redis or memcached is skipped (or fails, under CI) before it starts when its
    server is not set: once, not once per Hypothesis example inside it."""
    for mark, fixture in (("redis", "redis_url"), ("memcached", "memcached_servers")):
        if request.node.get_closest_marker(mark):
            request.getfixturevalue(fixture)


@pytest.fixture(scope="session")
def upstash_url(redis_url) -> str:
    """A local server that follows Upstash's REST API (upstash_server.py), storing into Redis:
    no Upstash account needed."""
    return upstash_server.upstash_url(redis_url)


def make_app(tmp_path, **settings):
    """The project's app, with the tests' own pages (sample_pages.py) added."""
    app = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "test",
            "CACHE_DIR": str(tmp_path / "cache"),
            # A fresh prefix per app: runs never see each other's keys on a shared server.
            "CACHE_KEY_PREFIX": f"test-{uuid.uuid4().hex[:12]}:",
            "UPSTASH_REDIS_REST_TOKEN": upstash_server.TOKEN,
            **settings,
        },
        environ={},  # only what the test says, not the developer's shell or .env
    )
    app.register_blueprint(sample_pages.bp)
    return app


def cache_behind(app):
    """What is behind the app's ``cache``: the breaker in front of a shared backend (and its near
    cache), or the backend itself."""
    with app.app_context():
        return cache.cache


def moved(address: str, port: int) -> str:
    """A server address (a URL, or memcached's host:port list) moved to 127.0.0.1:``port``."""
    if "://" not in address:
        return f"127.0.0.1:{port}"
    parts = urlsplit(address)
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = f"{userinfo}@127.0.0.1:{port}" if userinfo else f"127.0.0.1:{port}"
    return urlunsplit(parts._replace(netloc=netloc))


def host_and_port(address: str) -> tuple[str, int]:
    if "://" not in address:
        host, _, port = address.split(",")[0].rpartition(":")
        return host, int(port)
    parts = urlsplit(address)
    return parts.hostname, parts.port or {"https": 443, "http": 80}.get(parts.scheme, 6379)


@pytest.fixture
def server_settings(request):
    """server_settings(backend, port=None): CACHE_TYPE=backend, pointed at its test server (or at
    127.0.0.1:port, for a relay or a hung server in front of it)."""

    def server_settings(backend: str, port: int | None = None) -> dict[str, str]:
        if backend not in SERVERS:
            return {"CACHE_TYPE": backend}
        setting, fixture, _ = SERVERS[backend]
        address = request.getfixturevalue(fixture)
        return {"CACHE_TYPE": backend, setting: address if port is None else moved(address, port)}

    return server_settings


@pytest.fixture
def new_app_cache(tmp_path):
    """new_app_cache(**settings): cache_behind() a new app with ``settings``. Each backend's
    test module makes its ``cache_factory`` (cachelib's name, for its common tests) from it."""
    return lambda **settings: cache_behind(make_app(tmp_path, **settings))


@pytest.fixture
def app(tmp_path):
    return make_app(tmp_path, CACHE_TYPE="simple")


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


class Clock:
    """A clock that moves only when a test says (no sleeping). It starts at a whole second past
    time.monotonic(), so a time the code read before the test installed it stays in the past
    however long the machine has been up (a CI runner may have booted seconds ago); install it
    before the code's first call anyway. The time moved is kept exactly (2.4 + 2.6 is 5), and
    added to the whole-second start once: a test that steps onto a bound (HEARTBEAT after a
    PING) lands on it, not a rounding error before it."""

    def __init__(self) -> None:
        self.start = float(math.ceil(time.monotonic()))
        self.moved = Fraction(0)

    @property
    def now(self) -> float:
        return self.start + float(self.moved)

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.moved += Fraction(repr(seconds))  # the decimal the test wrote, exactly


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def outage_prefix() -> str:
    """The CACHE_KEY_PREFIX of the outage fixture's app: another process on its server uses it
    to share its keys."""
    return f"test-{uuid.uuid4().hex[:12]}:"


@pytest.fixture
def outage(request, new_app_cache, server_settings, clock, outage_prefix):
    """(cache, relay, clock): a cache on the test class's backend, whose server (as server_settings
    names it) it reaches through a relay the test can cut and restore, with the test's clock in
    its breaker."""
    backend = request.cls.backend
    relay = Relay(*host_and_port(server_settings(backend)[SERVERS[backend][0]]))
    cache = new_app_cache(
        **server_settings(backend, port=relay.port),
        CACHE_RETRY_AFTER=str(request.cls.RETRY_AFTER),
        **getattr(request.cls, "settings", {}),  # the class's own, e.g. CACHE_NEAR_TTL
        CACHE_KEY_PREFIX=outage_prefix,
    )
    cache.clock = clock
    yield cache, relay, clock
    relay.cut()


class HungServer:
    """A server that accepts every connection and never answers: a hung one. It counts the
    connections, so a test counts the calls that paid a timeout instead of timing them."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.05)
        self.port = self.listener.getsockname()[1]
        self.held: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                self.held.append(self.listener.accept()[0])
            except OSError:
                continue

    @property
    def connections(self) -> int:
        """Connections accepted so far (each one a call that waited for its answer in vain)."""
        return len(self.held)

    def settled(self) -> int:
        """The connections, once no new one has arrived for a while."""
        seen = -1
        while seen != self.connections:
            seen = self.connections
            time.sleep(0.2)
        return seen

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        for sock in [*self.held, self.listener]:
            sock.close()


@pytest.fixture
def over_quota(request, redis_url):
    """(settings, quota): the test class's backend pointed at a stand-in for Upstash of its own,
    in front of the test Redis: its REST API (upstash_server.py) for upstash, its Redis protocol
    (upstash_redis.py) for redis. The test uses up the monthly ``quota`` and resets it."""
    quota = upstash_server.Quota()
    if request.cls.backend == "upstash":
        server = upstash_server.UpstashServer(redis_url, quota)
        settings = {"CACHE_TYPE": "upstash", "UPSTASH_REDIS_REST_URL": server.url}
    else:
        server = upstash_redis.UpstashRedis(redis_url, quota)
        settings = {"CACHE_TYPE": "redis", "REDIS_URL": server.url}
    yield settings, quota
    server.close()


@pytest.fixture
def hung_server():
    server = HungServer()
    yield server
    server.close()
