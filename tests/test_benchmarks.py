"""What the benchmarks' figures rest on, checked without timing anything (CI never times):
relay.py carries every byte, the unsigned variant of the app really stores unsigned entries, the
upstash part counts the commands a view costs, key expiry and the near cache included, and the
memcached round trips are counted."""

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

from benchmarks.run import relay, run_script, upstash_runs
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


def test_the_upstash_part_counts_what_each_view_costs(bake, redis_url):
    """upstash_commands.py with 12 views per row: the counts its simulated clock must give.
    /example is cached 60 s; a miss is a GET and a SET, a hit a GET; the near cache keeps what a
    GET read for CACHE_NEAR_TTL seconds (a write only forgets it)."""
    project = bake()
    env = servers.app_env(project, BENCH_MODE="ours", BENCH_PACKAGE=project.name, REDIS_URL=redis_url)
    [rows] = upstash_runs(env, 12, 1)
    counts = {(row["page"], row["near_ttl"], row["gap"]): row["commands"] for row in rows}
    assert counts["/example", 0, 0.001] == 2 + 11  # one miss, then hits
    assert counts["/example", 0, 60.0] == 2 * 12  # the page expired at each view: all misses
    assert counts["/example", 5, 0.001] == 2 + 1  # a miss, one read kept, then memory
    assert counts["/example", 5, 1.0] == 2 + 3  # read again at 1, 6 and 11 s
    assert counts["/example", 30, 10.0] == 8  # expired at 60 s: read at 10, 40, 70 (a miss), 80, 110
    assert counts["/health", 0, 60.0] == counts["/health", 5, 60.0] == 2 * 12  # a SET and a GET
    assert {row["near_mode"] for row in rows if row["near_ttl"]} == {"ttl"}
    assert {row["near_mode"] for row in rows if not row["near_ttl"]} == {"off"}
    assert not any(row["breaker_opened"] for row in rows)


def test_the_memcached_round_trips_are_counted(bake, memcached_servers):
    """memcached_round_trips.py: a hit is one multi-key get (the generation and the page), a miss
    adds the page's set, and a worker's first request after another's clear() reads again under
    the new generation."""
    project = bake()
    env = servers.app_env(
        project, BENCH_MODE="ours", BENCH_PACKAGE=project.name, MEMCACHED_SERVERS=memcached_servers
    )
    figures = run_script("memcached_round_trips.py", env, 20)
    assert figures == {"miss": 2, "hit": 1, "after another worker's clear()": 3}
