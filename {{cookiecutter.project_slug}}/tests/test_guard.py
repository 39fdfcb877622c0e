"""The circuit breaker against real servers cut off by a relay: no cache failure reaches a view."""

import re
import socket
import time

import pytest

from {{ cookiecutter.package_name }} import create_app
from {{ cookiecutter.package_name }}.cache import cache

from .conftest import make_app, server_settings
from .relay import Relay, relayed_url, server_address

RETRY_AFTER = 0.3


# The setting that names each backend's server: the relay takes its place.
ADDRESS = {
    "redis": "REDIS_URL",
    "memcached": "MEMCACHED_SERVERS",
    "upstash": "UPSTASH_REDIS_REST_URL",
}


@pytest.fixture(params=["redis", "memcached", "upstash"])
def outage(request, tmp_path):
    """(app, relay): the app on a real server, reached through a relay the test can cut."""
    backend = request.param
    settings = server_settings(backend)
    name = ADDRESS[backend]
    relay = Relay(*server_address(settings[name], backend))
    if backend == "memcached":
        relayed = f"127.0.0.1:{relay.port}"
    else:
        relayed = relayed_url(settings[name], relay)
    app = make_app(
        tmp_path,
        CACHE_TYPE=backend,
        CACHE_RETRY_AFTER=str(RETRY_AFTER),
        **{**settings, name: relayed},
    )
    yield app, relay
    relay.cut()


def health(app) -> dict:
    response = app.test_client().get("/health")
    assert response.status_code == 200
    return response.get_json()["cache"]


def recover(relay) -> None:
    relay.restore()
    time.sleep(RETRY_AFTER + 0.05)


def test_every_cache_call_survives_an_outage(outage):
    app, relay = outage
    with app.app_context():
        assert cache.set("key", "before")
        relay.cut()
        assert cache.get("key") is None  # the fallback starts empty
        assert cache.set("key", "during")
        assert cache.get("key") == "during"
        assert cache.has("key")
        assert not cache.add("key", "again")
        assert cache.set_many({"a": 1, "b": 2})
        assert cache.get_many("a", "b") == [1, 2]
        assert cache.get_dict("a") == {"a": 1}
        assert cache.cache.inc("n") == 1  # Flask-Caching exposes inc/dec on .cache only
        assert cache.cache.dec("n") == 0
        assert cache.delete("key")
        cache.delete_many("a", "b")
        assert cache.clear()
    status = health(app)
    assert (status["active"], status["breaker"]) == ("simple", "open")
    assert status["backend"] == app.config["CACHE_TYPE"]
    assert status["last_error"]["type"]
    assert re.match(r"\d{4}-\d\d-\d\dT", status["last_error"]["at"])


def test_views_survive_an_outage_in_debug_mode(outage):
    app, relay = outage
    app.debug = True  # Flask-Caching's decorators re-raise backend errors in debug mode
    relay.cut()
    client = app.test_client()
    first, second = client.get("/example"), client.get("/example")
    assert first.status_code == second.status_code == 200
    assert first.data == second.data  # cached in the fallback meanwhile


def test_the_backend_serves_again_after_retry_after(outage):
    app, relay = outage
    with app.app_context():
        relay.cut()
        cache.set("key", 1)
        assert health(app)["active"] == "simple"
        recover(relay)
        assert cache.set("key", 2)  # this call probes, finds the server back, and uses it
        assert health(app) | {"last_error": None} == {
            "backend": app.config["CACHE_TYPE"],
            "active": app.config["CACHE_TYPE"],
            "breaker": "closed",
            "last_error": None,
        }
        assert cache.get("key") == 2


def test_no_invalidation_is_lost_in_an_outage(outage):
    app, relay = outage
    with app.app_context():
        cache.set("deleted", "old")
        cache.set("rewritten", "old")
        cache.set("cleared", "old")
        relay.cut()
        cache.delete("deleted")
        cache.set("rewritten", "new, only in this worker")
        recover(relay)
        assert cache.get("deleted") is None
        assert cache.get("rewritten") is None
        assert cache.get("cleared") == "old"
        relay.cut()
        cache.clear()
        recover(relay)
        assert cache.get("cleared") is None


def test_each_change_of_state_is_logged_once(outage, caplog):
    app, relay = outage
    with app.app_context():
        relay.cut()
        for _ in range(20):
            cache.get("key")
        time.sleep(RETRY_AFTER + 0.05)
        for _ in range(20):
            cache.get("key")  # one probe fails; still open, nothing new to say
        recover(relay)
        for _ in range(20):
            cache.get("key")
    failed = [r for r in caplog.records if "serving from the in-process simple cache" in r.message]
    back = [r for r in caplog.records if "is back; serving from it again" in r.message]
    assert (len(failed), len(back)) == (1, 1)
    assert "127.0.0.1" in failed[0].message


@pytest.mark.parametrize(
    "settings",
    [
        {"CACHE_TYPE": "redis", "REDIS_URL": "redis://127.0.0.1:{closed}/0"},
        {"CACHE_TYPE": "redis", "REDIS_URL": "redis://no-such-host.invalid:6379/0"},
        {"CACHE_TYPE": "memcached", "MEMCACHED_SERVERS": "127.0.0.1:{closed}"},
        {"CACHE_TYPE": "upstash", "UPSTASH_REDIS_REST_URL": "http://127.0.0.1:{closed}"},
        {"CACHE_TYPE": "upstash", "UPSTASH_REDIS_REST_URL": "https://no-such-host.invalid"},
    ],
)
def test_an_unreachable_server_from_the_start_serves_on_simple(tmp_path, settings):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    settings = {k: v.format(closed=closed) for k, v in settings.items()}
    app = make_app(tmp_path, UPSTASH_REDIS_REST_TOKEN="token", **settings)
    client = app.test_client()
    assert client.get("/example").status_code == 200
    assert client.get("/").status_code == 200
    assert health(app)["active"] == "simple"


@pytest.fixture
def hung_server():
    """A server that accepts connections and never answers."""
    listener = socket.create_server(("127.0.0.1", 0))
    yield listener
    listener.close()


def test_create_app_opens_no_connection(hung_server):
    port = hung_server.getsockname()[1]
    create_app(
        {"SECRET_KEY": "x", "CACHE_TYPE": "redis", "REDIS_URL": f"redis://127.0.0.1:{port}/0"}
    )
    create_app(
        {"SECRET_KEY": "x", "CACHE_TYPE": "memcached", "MEMCACHED_SERVERS": f"127.0.0.1:{port}"}
    )
    create_app(
        {
            "SECRET_KEY": "x",
            "CACHE_TYPE": "upstash",
            "UPSTASH_REDIS_REST_URL": f"http://127.0.0.1:{port}",
            "UPSTASH_REDIS_REST_TOKEN": "token",
        }
    )
    hung_server.settimeout(0.2)
    with pytest.raises(TimeoutError):
        hung_server.accept()


@pytest.mark.parametrize("backend", ["redis", "memcached", "upstash"])
def test_a_hung_server_costs_one_timeout_per_window(tmp_path, hung_server, backend):
    port = hung_server.getsockname()[1]
    app = make_app(
        tmp_path,
        CACHE_TYPE=backend,
        REDIS_URL=f"redis://127.0.0.1:{port}/0",
        MEMCACHED_SERVERS=f"127.0.0.1:{port}",
        UPSTASH_REDIS_REST_URL=f"http://127.0.0.1:{port}",
        UPSTASH_REDIS_REST_TOKEN="token",
        CACHE_SOCKET_TIMEOUT="0.2",
        CACHE_RETRY_AFTER="0.5",
    )
    waits = []
    with app.app_context():
        deadline = time.monotonic() + 1.2  # about two and a half windows
        while time.monotonic() < deadline:
            started = time.monotonic()
            cache.get("key")
            waits.append(time.monotonic() - started)
            time.sleep(0.01)
    assert max(waits) < 0.2 + 0.25, "no call waits much longer than one timeout"
    assert sum(wait > 0.15 for wait in waits) <= 3, "one slow call per window"
