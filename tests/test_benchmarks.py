"""What the benchmarks' figures rest on, checked without timing anything (CI never times):
relay.py carries every byte, and the unsigned variant of the app really stores unsigned entries."""

import importlib.util
import socket
import sys
import threading
import uuid

import pytest
import redis
from cachelib.serializers import RedisSerializer
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks.run import relay
from benchmarks.unsigned import unsign

from . import servers


@pytest.fixture(scope="module")
def echo_port():
    """A server that sends back what it reads, then ends its side when the client ends its."""
    listener = socket.create_server(("127.0.0.1", 0))

    def echo(conn: socket.socket) -> None:
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data)
            conn.shutdown(socket.SHUT_WR)

    def accept() -> None:
        while True:
            try:
                conn = listener.accept()[0]
            except OSError:  # closed: the module is done
                return
            threading.Thread(target=echo, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    with listener:
        yield listener.getsockname()[1]


@pytest.fixture(scope="module")
def relayed(echo_port):
    with relay(f"redis://127.0.0.1:{echo_port}/0", 1) as url:
        yield int(url.rsplit(":", 1)[1].split("/")[0])


@settings(max_examples=20, deadline=None, derandomize=True)
@given(chunks=st.lists(st.binary(min_size=1, max_size=200_000), min_size=1, max_size=6))
def test_relay_carries_every_byte_in_order_both_ways(relayed, chunks):
    with socket.create_connection(("127.0.0.1", relayed), timeout=10) as sock:
        writer = threading.Thread(target=lambda: [sock.sendall(chunk) for chunk in chunks])
        writer.start()  # writes while the echo comes back: neither side's buffer can fill up
        received = b""
        while len(received) < sum(map(len, chunks)):
            data = sock.recv(65536)
            assert data, "the relay closed the connection early"
            received += data
        writer.join()
        sock.shutdown(socket.SHUT_WR)
        assert sock.recv(1) == b""  # the end crosses too, after the data
    assert received == b"".join(chunks)


def test_relay_ends_a_connection_whose_target_is_down():
    port = servers.free_port()  # nothing listens there
    with relay(f"redis://127.0.0.1:{port}/0", 1) as url:
        relay_port = int(url.rsplit(":", 1)[1].split("/")[0])
        with socket.create_connection(("127.0.0.1", relay_port), timeout=10) as sock:
            assert sock.recv(1) == b""  # closed at once: a client sees the outage, not a hang


@pytest.fixture(scope="module")
def unsigned_app(bake, redis_url):
    """The baked app with redis and its near cache on (the default), made unsigned as the
    benchmarks make it; loaded under a name of its own so no other bake's package is reused."""
    project = bake()
    package_dir = next(p for p in project.iterdir() if (p / "cache" / "near.py").is_file())
    name = f"baked_{uuid.uuid4().hex}"
    spec = importlib.util.spec_from_file_location(
        name, package_dir / "__init__.py", submodule_search_locations=[str(package_dir)]
    )
    package = importlib.util.module_from_spec(spec)
    sys.modules[name] = package
    spec.loader.exec_module(package)
    cache_package = sys.modules[f"{name}.cache"]
    prefix = f"unsigned-{uuid.uuid4().hex[:8]}:"
    app = package.create_app(
        {"SECRET_KEY": "x", "CACHE_TYPE": "redis", "REDIS_URL": redis_url, "CACHE_KEY_PREFIX": prefix},
        environ={},
    )
    with app.app_context():
        cache_package.cache.get("start")  # starts tracking
        assert cache_package.status()["near"]["mode"] == "tracking"
    unsign(app, cache_package.cache, "redis")
    yield app, cache_package.cache, redis.Redis.from_url(redis_url), prefix


VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text() | st.binary(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=10,
)


@settings(max_examples=30, deadline=None, derandomize=True)
@given(value=VALUES)
def test_the_unsigned_app_stores_cachelibs_own_pickles_behind_the_near_cache(unsigned_app, value):
    app, cache, client, prefix = unsigned_app
    with app.app_context():
        cache.set("key", value)
        assert client.get(f"{prefix}key") == RedisSerializer().dumps(value)  # no MAC in front
        assert cache.get("key") == value  # and it reads back (from the near cache)
        assert cache.get("key") == value
