"""What the benchmarks' figures rest on, checked without timing anything (CI never times):
relay.py carries every byte, the unsigned variant of the app really stores unsigned entries,
the upstash part counts the commands a view costs, key expiry and the near cache included, the
stampede part counts regenerations, expiries and slow requests as its output says, and the
memcached round trips are counted."""

import importlib.util
import json
import math
import os
import socket
import subprocess
import sys
import threading
import uuid

import pytest
import redis
from cachelib.serializers import RedisSerializer
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks import stampede
from benchmarks.run import BENCH_WSGI, relay, run_script, upstash_runs
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
    # Read at 0 (a miss), 30, 60 (expired: regenerated, its previous value kept), 70 and 100.
    assert counts["/example", 30, 10.0] == 7
    assert counts["/health", 0, 60.0] == counts["/health", 5, 60.0] == 2 * 12  # a SET and a GET
    assert {row["near_mode"] for row in rows if row["near_ttl"]} == {"ttl"}
    assert {row["near_mode"] for row in rows if not row["near_ttl"]} == {"off"}
    assert not any(row["breaker_opened"] for row in rows)


@st.composite
def expiring(draw) -> tuple[int, list[tuple[float, float]]]:
    """(expiries, regenerations in any order): each expiry regenerated by 1 to 8 workers, each
    starting at most 0.4 s after the latest end so far in its expiry (the first while the
    others run, or a worker that waited for it and then made the page itself), and taking
    0.3 s to 1 s (a busy machine); the next expiry at least 1 s after the latest write, as a
    page written lives."""
    count = draw(st.integers(0, 6))
    fraction = st.floats(0, 1, allow_nan=False)
    regens: list[tuple[float, float]] = []
    start = draw(st.floats(0, 1e5, allow_nan=False))
    for _ in range(count):
        latest_end = start
        later = start
        for _ in range(draw(st.integers(1, 8))):
            ended = later + stampede.REGENERATION_SECONDS + 0.7 * draw(fraction)
            regens.append((later, ended))
            latest_end = max(latest_end, ended)
            later = draw(st.floats(later, latest_end + 0.4, allow_nan=False))
        start = latest_end + 1.0 + 3 * draw(fraction)
    return count, draw(st.permutations(regens))


@settings(max_examples=200, deadline=None, derandomize=True)
@given(case=expiring())
def test_the_stampede_part_counts_each_expiry_once_however_many_workers_regenerated(case):
    count, regens = case
    assert stampede.expiries(regens) == count


def drove(latencies: list[float], errors: int = 0) -> dict:
    return {"started": 0.0, "latencies": latencies, "errors": errors}


def test_the_stampede_part_reports_per_expiry_and_against_a_plain_hit():
    # Two expiries: the first regenerated by all 4 workers (8 clients waited), the second by one.
    regens = [(10.0, 10.3), (10.01, 10.31), (10.02, 10.32), (10.2, 10.5), (12.8, 13.1)]
    slow = drove([0.001] * 190 + [0.3] * 9 + [0.5], errors=1)
    hit = drove([0.001] * 99 + [0.002])
    figures = stampede.figures(slow, hit, regens)
    assert figures["expiries"] == 2
    assert figures["regenerations / expiry"] == 2.5
    assert figures["requests > 250 ms / expiry"] == 5.0
    assert figures["max ms"] == 500.0
    assert figures["requests"] == 200 and figures["errors"] == 1
    none = stampede.figures(drove([0.001] * 100), hit, [])  # no expiry: no ratio, not a crash
    assert none["expiries"] == 0 and math.isnan(none["regenerations / expiry"])

    runs = {
        ("redis", "ours"): [figures, none, {**figures, "regenerations / expiry": 1.0}],
        ("redis", "plain"): [figures] * 3,
    }
    lines = stampede.table(runs)
    [regens_line] = [line for line in lines if line.split()[:4] == ["regenerations", "/", "expiry", "1.75"]]
    assert regens_line.split()[-4:] == [
        "1.75",
        "(1-2.5)",
        "2.5",
        "(2.5-2.5)",
    ]  # the run with none is left out
    [goal] = [line for line in lines if "regenerations / expiry <=" in line]
    assert goal.split()[-2:] == ["1.75:", "misses"]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b'HTTP/1.0 304 NOT MODIFIED\r\nETag: "abc"\r\nCache-Control: max-age=60\r\n\r\n', 304),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", 200),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel", ValueError),  # cut short
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n", ValueError),  # no end of the headers
        (b"", ValueError),  # the server closed without an answer
    ],
)
def test_the_stampede_part_reads_a_whole_response_or_counts_an_error(raw, expected):
    if expected is ValueError:
        with pytest.raises(ValueError):
            stampede.parse(raw)
        return
    reply = stampede.parse(raw, sent=40)
    assert (reply.status, reply.received, reply.sent) == (expected, len(raw), 40)
    if expected == 304:
        assert reply.headers["etag"] == '"abc"' and reply.body == b""


# The bench app, plain Flask-Caching on the filesystem, called as WSGI: its slow view's log.
SLOW_VIEWS = """
import json, sys
from werkzeug.test import Client
sys.path.insert(0, sys.argv[1])
from bench_wsgi import application
client = Client(application)
print(json.dumps([client.get(path).status_code for path in sys.argv[2:]]))
"""


def test_the_bench_apps_slow_views_log_each_regeneration_once(tmp_path):
    log = tmp_path / "regenerations.log"
    env = {
        **os.environ, "PROJECT_HOME": str(tmp_path), "BENCH_MODE": "plain", "CACHE_TYPE": "filesystem",
        "CACHE_DIR": str(tmp_path / "cache"), "BENCH_REGEN_LOG": str(log),
    }  # fmt: skip
    paths = [stampede.SLOW_PATH] * 3 + [stampede.HIT_PATH] * 2
    command = [sys.executable, "-c", SLOW_VIEWS, str(BENCH_WSGI.parent), *paths]
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout) == [200] * 5
    slow = stampede.regenerations(log, "slow", since=0.0)
    assert len(slow) == 1 and len(stampede.regenerations(log, "slow-hit", since=0.0)) == 1
    assert stampede.regenerations(log, "slow", since=slow[0][0] + 1e-3) == []


def test_the_memcached_round_trips_are_counted(bake, memcached_servers):
    """memcached_round_trips.py: a hit is one multi-key get (the generation and the page), a miss
    adds the page's lock, a second read, the set and the unlock, and a worker's first request
    after another's clear() reads again under the new generation."""
    project = bake()
    env = servers.app_env(
        project, BENCH_MODE="ours", BENCH_PACKAGE=project.name, MEMCACHED_SERVERS=memcached_servers
    )
    figures = run_script("memcached_round_trips.py", env, 20)
    # A miss also takes the page's lock (add), reads the page once more (another worker may have
    # just stored it) and releases the lock (delete) after the page's set.
    assert figures == {"miss": 5, "hit": 1, "after another worker's clear()": 6}
