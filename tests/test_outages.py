"""Proof under real outages: the baked app served by uWSGI with 2 processes, driven over HTTP
while its cache server is killed, hung or absent."""

import contextlib
import json
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import pytest

from . import servers

RETRY_AFTER = 2.0
TIMEOUT = 0.5
RETRY_TRACKING = 1.0  # near.py's: a lost tracking connection is tried again once a second
PACKAGE = "my_flask_app"  # the default answers'


@pytest.fixture(scope="module")
def project(bake):
    return bake()  # the baked code is the same for every backend; .env picks it


def app_env(project, **settings) -> dict[str, str]:
    return servers.app_env(
        project, CACHE_RETRY_AFTER=str(RETRY_AFTER), CACHE_SOCKET_TIMEOUT=str(TIMEOUT), **settings
    )


@contextmanager
def served(project, tmp_path, **settings):
    with servers.uwsgi(
        project / "pythonanywhere_wsgi.py", app_env(project, **settings), tmp_path / "uwsgi.log"
    ) as url:
        yield url


def fetch(url: str) -> tuple[int, bytes, float]:
    started = time.monotonic()
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            status, body = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, body = error.code, error.read()
    return status, body, time.monotonic() - started


class Load:
    """Client threads requesting pages and checking every answer, until stopped (bounded)."""

    def __init__(self, url: str, threads: int = 3, seconds: float = 30):
        self.url, self.deadline = url, time.monotonic() + seconds
        self.results: list[tuple[float, str, int, bool, float]] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def __enter__(self):
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=15)

    def _run(self) -> None:
        rng = random.Random()
        while not self._stop.is_set() and time.monotonic() < self.deadline:
            n = rng.randrange(50)
            path = rng.choice([f"/example/square/{n}", "/example", "/health"])
            status, body, took = fetch(self.url + path)
            self.results.append((time.monotonic(), path, status, self._correct(path, n, body), took))

    @staticmethod
    def _correct(path: str, n: int, body: bytes) -> bool:
        if path.startswith("/example/square/"):
            return json.loads(body) == {"n": n, "square": n * n}
        if path == "/example":
            return b"Cached example" in body and b'class="computed-at"' in body
        return json.loads(body)["status"] == "ok"

    def errors(self) -> list:
        return [r for r in self.results if r[2] >= 500 or not r[3]]


def wait_until_serving(url: str, backend: str, seconds: float) -> float:
    """Seconds until /health said ``backend`` is active 10 times in a row (both workers)."""
    started = time.monotonic()
    streak = 0
    while time.monotonic() - started < seconds:
        status, body, _ = fetch(url + "/example/square/7")  # a cache call: lets a worker probe
        status, body, _ = fetch(url + "/health")
        streak = streak + 1 if json.loads(body)["cache"]["active"] == backend else 0
        if streak >= 10:
            return time.monotonic() - started
        time.sleep(0.02)
    raise AssertionError(f"{backend} was not serving again within {seconds}s")


@pytest.mark.parametrize("backend", ["redis", "memcached"])
def test_server_killed_under_load_and_restarted(project, tmp_path, backend):
    port = servers.free_port()
    server = servers.start_server(backend, port)
    settings = {
        "redis": {"CACHE_TYPE": "redis", "REDIS_URL": f"redis://127.0.0.1:{port}/0"},
        "memcached": {"CACHE_TYPE": "memcached", "MEMCACHED_SERVERS": f"127.0.0.1:{port}"},
    }[backend]
    try:
        with served(project, tmp_path, **settings) as url, Load(url) as load:
            time.sleep(1.5)
            server.send_signal(signal.SIGKILL)
            server.wait()
            time.sleep(3)
            assert json.loads(fetch(url + "/health")[1])["cache"]["active"] == "simple"
            server = servers.start_server(backend, port)
            # Back within a retry window (and slack for a busy machine); that the first probe
            # after CACHE_RETRY_AFTER closes the breaker is proved on a fake clock in the baked
            # suite (OutageTests.test_the_server_serves_again_after_retry_after).
            wait_until_serving(url, backend, seconds=RETRY_AFTER + 5)
            time.sleep(1)
        assert len(load.results) > 100
        assert load.errors() == [], load.errors()[:5]
    finally:
        server.kill()
        server.wait()


def test_a_hung_redis_costs_at_most_one_timeout_per_worker_per_window(project, tmp_path):
    """Counted, not timed: every request that waits on the hung server is a connection it
    accepted, and each worker makes at most one per CACHE_RETRY_AFTER window."""
    with servers.hung_server() as hung:
        redis_url = f"redis://127.0.0.1:{hung.port}/0"
        with served(project, tmp_path, CACHE_TYPE="redis", REDIS_URL=redis_url) as url:
            duration = 3 * RETRY_AFTER
            with Load(url, threads=2, seconds=duration) as load:
                time.sleep(duration)
        connections = hung.connections
    assert len(load.results) > 50
    assert load.errors() == [], load.errors()[:5]
    # The windows the requests spanned (however slowly this machine served them), per worker.
    span = max(end for end, *_ in load.results) - min(end - took for end, *_, took in load.results)
    windows = span / RETRY_AFTER + 1
    assert 1 <= connections <= 2 * windows, f"{connections} waits on the cache in {span:.1f}s"
    # A hang guard, not a speed claim: a client retry or a missing timeout would wait far longer.
    assert max(took for *_, took in load.results) < 5


@pytest.mark.parametrize("backend", ["redis", "memcached"])
def test_health_says_simple_at_the_first_request_after_the_server_dies(project, tmp_path, backend):
    # No cached view is asked for: /health alone must find out, in whichever worker answers.
    port = servers.free_port()
    server = servers.start_server(backend, port)
    address = f"redis://127.0.0.1:{port}/0" if backend == "redis" else f"127.0.0.1:{port}"
    setting = "REDIS_URL" if backend == "redis" else "MEMCACHED_SERVERS"
    try:
        with served(project, tmp_path, CACHE_TYPE=backend, **{setting: address}) as url:
            for _ in range(4):  # both workers have connected
                assert json.loads(fetch(url + "/health")[1])["cache"]["active"] == backend
            server.send_signal(signal.SIGKILL)
            server.wait()
            status, body, took = fetch(url + "/health")
            assert status == 200
            cache = json.loads(body)["cache"]
            assert (cache["backend"], cache["active"], cache["breaker"]) == (backend, "simple", "open")
            # A hang guard: that no client retries is counted in the hung-server test above.
            assert took < 5, f"/health waited {took:.2f}s"
    finally:
        server.kill()
        server.wait()


@pytest.mark.parametrize(
    "settings",
    [
        {"CACHE_TYPE": "redis", "REDIS_URL": "redis://127.0.0.1:{closed}/0"},
        {"CACHE_TYPE": "redis", "REDIS_URL": "redis://no-such-host.invalid:6379/0"},
        {"CACHE_TYPE": "memcached", "MEMCACHED_SERVERS": "127.0.0.1:{closed}"},
    ],
    ids=["refused", "unknown-host", "memcached-refused"],
)
def test_unreachable_from_the_first_request(project, tmp_path, settings):
    closed = servers.free_port()
    with served(project, tmp_path, **{k: v.format(closed=closed) for k, v in settings.items()}) as url:
        with Load(url, threads=2, seconds=2) as load:
            time.sleep(2)
        health = json.loads(fetch(url + "/health")[1])
    assert len(load.results) > 10
    assert load.errors() == []
    assert health["status"] == "ok"
    assert health["cache"]["active"] == "simple"


def flask(project, env, *args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "flask", "--app", PACKAGE, *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
    )


def run_in_app(project, env, code: str) -> str:
    script = "from dotenv import load_dotenv\nload_dotenv('.env')\n"  # as the WSGI file does
    script += f"from {PACKAGE} import create_app\nfrom {PACKAGE}.cache import cache\n"
    script += f"with create_app().app_context():\n    print({code})"
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=project, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_flask_cache_clear_keeps_other_apps_redis_keys(project, redis_url):
    import redis

    env = app_env(project, CACHE_TYPE="redis", REDIS_URL=redis_url)
    server = redis.Redis.from_url(redis_url)
    server.set("another_app:page", b"theirs")
    assert run_in_app(project, env, "cache.set('page', 'ours')") == "True"
    result = flask(project, env, "cache", "clear")
    assert result.returncode == 0, result.stderr
    assert "cleared this app's entries" in result.stdout
    assert run_in_app(project, env, "cache.get('page')") == "None"
    assert server.get("another_app:page") == b"theirs"
    server.delete("another_app:page")


def test_flask_cache_clear_keeps_other_apps_memcached_keys(project, memcached_servers):
    from pymemcache.client.base import Client

    env = app_env(project, CACHE_TYPE="memcached", MEMCACHED_SERVERS=memcached_servers)
    host, port = memcached_servers.split(",")[0].rsplit(":", 1)
    other = Client((host, int(port)))
    other.set("another_app:page", b"theirs")
    assert run_in_app(project, env, "cache.set('page', 'ours')") == "True"
    assert flask(project, env, "cache", "clear").returncode == 0
    assert run_in_app(project, env, "cache.get('page')") == "None"
    assert other.get("another_app:page") == b"theirs"
    other.delete("another_app:page")


def test_flask_cache_status_when_the_server_is_down(project):
    closed = servers.free_port()
    env = app_env(project, CACHE_TYPE="redis", REDIS_URL=f"redis://:secret@127.0.0.1:{closed}/0")
    result = flask(project, env, "cache", "status")
    assert result.returncode == 1
    assert "ping:       FAILED (ConnectionError" in result.stderr
    assert "secret" not in result.stdout + result.stderr


def test_filesystem_cache_stays_bounded_with_two_workers(project, tmp_path):
    cache_dir = tmp_path / "cache"
    threshold = 50
    with served(
        project, tmp_path, CACHE_TYPE="filesystem", CACHE_DIR=str(cache_dir), CACHE_THRESHOLD=str(threshold)
    ) as url:

        def write(numbers):
            for n in numbers:
                assert fetch(f"{url}/example/square/{n}")[0] == 200

        threads = [threading.Thread(target=write, args=(range(i, 600, 4),)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    entries = [p for p in cache_dir.iterdir() if not p.name.endswith(".__wz_cache")]
    assert len(entries) <= threshold + 4, f"{len(entries)} entries for a threshold of {threshold}"


# The app of the default bake, with routes that write, delete and read many keys at once,
# so a test can invalidate keys in one worker and watch what the others serve.
ROUTES_WSGI = f"""
import os, sys, time
sys.path.insert(0, os.environ["PROJECT_HOME"])
from flask import jsonify, request
from pythonanywhere_wsgi import application
from {PACKAGE}.cache import cache

def keys():
    return request.args["keys"].split(",")

@application.get("/t/set")
def set_keys():
    cache.set_many(dict.fromkeys(keys(), request.args["value"]))
    return {{"pid": os.getpid()}}

@application.get("/t/delete")
def delete_keys():
    cache.delete_many(*keys())
    return {{"pid": os.getpid()}}

@application.get("/t/get")
def get_keys():
    return jsonify(cache.get_many(*keys()))

@application.get("/t/get-each")
def get_each():
    # One get() per key, which fills the near cache (get_many reads past it), and how many came
    # from it: the entry (expires, pickle) was fresh before the read and is the same object after.
    memory = getattr(cache.cache.guarded, "entries", {{}})
    values, hits = [], 0
    for key in keys():
        before = memory.get(key)
        fresh = before is not None and time.monotonic() < before[0]
        values.append(cache.get(key))
        hits += fresh and memory.get(key) is before
    return jsonify(values=values, memory=hits)
"""


@contextmanager
def served_with_routes(project, tmp_path, threads=1, **settings):
    wsgi = tmp_path / "routes_wsgi.py"
    wsgi.write_text(ROUTES_WSGI)
    env = app_env(project, **settings)
    with servers.uwsgi(wsgi, env, tmp_path / "uwsgi.log", threads=threads) as url:
        yield url


def chunks(keys: list[str], size: int = 100) -> list[str]:
    return [",".join(keys[i : i + size]) for i in range(0, len(keys), size)]


def get_all(url: str, keys: list[str]) -> list:
    values = []
    for chunk in chunks(keys):
        status, body, _ = fetch(f"{url}/t/get?keys={chunk}")
        assert status == 200, body[:300]
        values += json.loads(body)
    return values


def cache_lines(log) -> list[str]:
    return [line for line in log.read_text().splitlines() if "cache:" in line]


@pytest.mark.parametrize("threads", [1, 4], ids=["processes", "threads"])
def test_no_invalidation_is_lost_while_another_worker_recaches(project, tmp_path, threads):
    """1,200 keys deleted during a real outage (redis killed, restarted from its AOF with the
    old values), while the other worker, back first, writes them again: once both serve from
    redis, no key holds its old value. Each worker logs the outage once, threads or not.
    The near cache is on (redis: tracking, the default): before the outage each worker holds
    every old value in its near memory, and after the recovery it tracks again."""
    port = servers.free_port()
    persist = ("--appendonly", "yes", "--appendfsync", "always", "--dir", str(tmp_path))
    server = servers.start_server("redis", port, *persist)
    keys = [f"k{i}" for i in range(1200)]
    settings = {
        "CACHE_TYPE": "redis",
        "REDIS_URL": f"redis://127.0.0.1:{port}/0",
        "CACHE_THRESHOLD": "2000",  # each worker's near memory holds all 1,200 keys
    }
    try:
        with served_with_routes(project, tmp_path, threads, **settings) as url:
            for chunk in chunks(keys):
                assert fetch(f"{url}/t/set?keys={chunk}&value=old")[0] == 200
            with servers.Workers(url) as workers:
                assert near_modes(workers) == ["tracking", "tracking"]
                assert held_in_memory(workers, keys) == [["old"] * len(keys)] * 2
            server.send_signal(signal.SIGKILL)
            server.wait()
            deletes = chunks(keys) * 2  # each to whichever worker answers: all trip and remember
            with ThreadPoolExecutor(4) as pool:  # at once: threads fail together
                assert set(pool.map(lambda chunk: fetch(f"{url}/t/delete?keys={chunk}")[0], deletes)) == {200}
            server = servers.start_server("redis", port, *persist)
            assert redis_client(port).get(f"{PACKAGE}:k0"), "the restart kept the old values"
            stop = threading.Event()
            hot = keys[::24]  # 50 keys, written again and again: the others keep "old" unless deleted

            def recache_through_the_app():
                rng = random.Random()
                while not stop.is_set():
                    chunk = ",".join(rng.sample(hot, 10))
                    fetch(f"{url}/t/set?keys={chunk}&value=new")

            def recache_directly():  # as a worker already back would, as fast as redis takes it
                client, rng = redis_client(port), random.Random()
                while not stop.is_set():
                    pipe = client.pipeline(transaction=False)
                    for key in rng.sample(hot, 10):
                        pipe.set(f"{PACKAGE}:{key}", b"recached")
                    pipe.execute()

            writers = [threading.Thread(target=recache_through_the_app) for _ in range(2)]
            writers.append(threading.Thread(target=recache_directly))
            for writer in writers:
                writer.start()
            try:
                wait_until_serving(url, "redis", seconds=RETRY_AFTER + 5)
                time.sleep(0.5)
            finally:
                stop.set()
                for writer in writers:
                    writer.join(10)
            seen = get_all(url, keys) + get_all(url, keys) + get_all(url, keys)  # both workers
            with servers.Workers(url) as workers:
                deadline = time.monotonic() + 3 * RETRY_TRACKING
                while near_modes(workers) != ["tracking", "tracking"] and time.monotonic() < deadline:
                    time.sleep(0.05)
                assert near_modes(workers) == ["tracking", "tracking"], "tracking again after the recovery"
                for values in held_in_memory(workers, keys):  # read twice: the second from memory
                    seen += values
        assert "old" not in seen, f"{seen.count('old')} old values served after the recovery"
        opened = [line for line in cache_lines(tmp_path / "uwsgi.log") if "failed (" in line]
        assert 1 <= len(opened) <= 2, opened  # once per worker process
    finally:
        server.kill()
        server.wait()


def caches(workers) -> list[dict]:
    """The "cache" part of each worker's /health (a cache call: a worker due to probe does)."""
    return [workers.get(worker, "/health")[1]["cache"] for worker in range(2)]


def near_modes(workers) -> list[str]:
    """The near cache's mode as each worker's /health says it."""
    return [cache["near"]["mode"] for cache in caches(workers)]


def actives(workers) -> list[str]:
    return [cache["active"] for cache in caches(workers)]


def worker_get_all(workers, worker: int, keys: list[str]) -> list:
    values = []
    for chunk in chunks(keys):
        status, body, _ = workers.get(worker, f"/t/get?keys={chunk}")
        assert status == 200, body
        values += body
    return values


def held_in_memory(workers, keys: list[str]) -> list[list]:
    """Each worker reads every key twice with get(): the first read fills its near memory, the
    second must serve every value found (a miss is not kept) from it. The second's values, per
    worker."""
    found = []
    for worker in range(2):
        for _ in range(2):
            values, hits = [], 0
            for chunk in chunks(keys):
                status, body, _ = workers.get(worker, f"/t/get-each?keys={chunk}")
                assert status == 200, body
                values, hits = values + body["values"], hits + body["memory"]
        held = len(keys) - values.count(None)
        assert hits == held, f"worker {worker} served {hits} of {held} values from memory"
        found.append(values)
    return found


def redis_client(port: int):
    import redis

    return redis.Redis(port=port)


def test_deletes_refused_by_a_read_only_replica_are_replayed_once_it_is_writable(project, tmp_path):
    """A failover: REDIS_URL names a server that is a replica (READONLY to every write). The
    deletes it refuses are remembered; once it is promoted, no worker serves the old values."""
    master_port, replica_port = servers.free_port(), servers.free_port()
    workdir = ("--dir", str(tmp_path))  # where the master writes the snapshot it syncs
    master = servers.start_server("redis", master_port, *workdir)
    replica = servers.start_server(
        "redis", replica_port, *workdir, "--replicaof", "127.0.0.1", str(master_port)
    )
    keys = [f"r{i}" for i in range(200)]
    try:
        # The old values, written by the app (signed with its key) to the master, reach the replica.
        env = app_env(project, CACHE_TYPE="redis", REDIS_URL=f"redis://127.0.0.1:{master_port}/0")
        assert run_in_app(project, env, f"len(cache.set_many(dict.fromkeys({keys!r}, 'old')))") == "200"
        deadline = time.monotonic() + 10
        while redis_client(replica_port).dbsize() < len(keys) and time.monotonic() < deadline:
            time.sleep(0.05)
        settings = {"CACHE_TYPE": "redis", "REDIS_URL": f"redis://127.0.0.1:{replica_port}/0"}
        # Each worker is sent its own requests: which one uWSGI picks depends on the machine's
        # load, and a worker that was sent no delete has nothing to replay.
        with served_with_routes(project, tmp_path, **settings) as url:
            assert set(get_all(url, keys)) == {"old"}
            workers = servers.Workers(url)  # its /health writes: READONLY opens each breaker
            for worker in range(2):
                for chunk in chunks(keys, 50):  # the worker remembers the deletes
                    assert workers.get(worker, f"/t/delete?keys={chunk}")[0] == 200
            redis_client(replica_port).replicaof("NO", "ONE")  # promoted: writable, data kept
            deadline = time.monotonic() + RETRY_AFTER + 5
            while actives(workers) != ["redis", "redis"] and time.monotonic() < deadline:
                time.sleep(0.05)
            assert actives(workers) == ["redis", "redis"], "both serve from redis again"
            seen = [value for worker in (0, 1, 0, 1) for value in worker_get_all(workers, worker, keys)]
            workers.close()
        assert "old" not in seen, f"{seen.count('old')} old values served after the promotion"
        lines = cache_lines(tmp_path / "uwsgi.log")
        assert any("ReadOnlyError" in line for line in lines), lines
        assert len(lines) <= 2 * 2, lines  # per worker: opened once, back once
    finally:
        for server in (master, replica):
            server.kill()
            server.wait()


def test_writes_refused_for_lack_of_memory_leave_no_old_value_and_little_log(project, tmp_path):
    """maxmemory with noeviction: every write is refused with OOM, deletes are not. A rewritten
    key must not keep serving its old value, and 300 refused writes log a line or two."""
    port = servers.free_port()
    server = servers.start_server("redis", port, "--maxmemory-policy", "noeviction")
    keys = [f"m{i}" for i in range(100)]
    try:
        settings = {"CACHE_TYPE": "redis", "REDIS_URL": f"redis://127.0.0.1:{port}/0"}
        with served_with_routes(project, tmp_path, **settings) as url:
            for chunk in chunks(keys):
                assert fetch(f"{url}/t/set?keys={chunk}&value=old")[0] == 200
            redis_client(port).config_set("maxmemory", 1)  # full: every write is refused
            for i in range(300):
                status, body, _ = fetch(f"{url}/t/set?keys={keys[i % 100]}&value=new")
                assert status == 200, body[:300]
            assert set(get_all(url, keys)) == {None}, "no old value, and the new one was refused"
            assert json.loads(fetch(url + "/health")[1])["cache"]["breaker"] == "closed"
            redis_client(port).config_set("maxmemory", 0)  # room again
            assert fetch(f"{url}/t/set?keys=m0&value=after")[0] == 200
            assert get_all(url, ["m0"]) == ["after"]
        lines = cache_lines(tmp_path / "uwsgi.log")
        assert any("OutOfMemoryError" in line for line in lines), lines
        assert not any("new" in line for line in lines), "no stored value is quoted"
        assert len(lines) <= 2 * 2, lines  # the first refusal per worker, then quiet for a minute
    finally:
        server.kill()
        server.wait()


@pytest.mark.parametrize(
    "settings",
    [
        {"CACHE_TYPE": "redis", "REDIS_URL": "redis://127.0.0.1:{closed}/0?password={secret}"},
        {"CACHE_TYPE": "redis", "REDIS_URL": "redis://user:{secret}@127.0.0.1:{closed}/0"},
        {
            "CACHE_TYPE": "upstash",
            "UPSTASH_REDIS_REST_URL": "http://127.0.0.1:{closed}",
            "UPSTASH_REDIS_REST_TOKEN": "AX\u200b{secret}",  # pasted with a zero-width space
        },
    ],
    ids=["redis-query-password", "redis-userinfo-password", "upstash-token-not-latin-1"],
)
def test_no_secret_reaches_the_uwsgi_log(project, tmp_path, settings):
    secret = "s3cr3t-" + "".join(random.choices("abcdefghijklmnop", k=16))
    closed = servers.free_port()
    settings = {k: v.format(closed=closed, secret=secret) for k, v in settings.items()}
    try:
        with served(project, tmp_path, **settings) as url:
            deadline = time.monotonic() + 2
            while time.monotonic() < deadline:
                for path in ("/example", "/example/square/3", "/health"):
                    with contextlib.suppress(OSError):  # refused at start-up: uWSGI stops
                        fetch(url + path)
    except RuntimeError:
        pass  # refused before it listened: the message is in the log as well
    log = (tmp_path / "uwsgi.log").read_text()
    said = [line for line in log.splitlines() if "cache: " in line or "_URL=" in line or "_TOKEN" in line]
    assert said, "the log says what happened to the cache"
    assert secret not in log


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"CACHE_TYPE": "redis\u200b"}, "CACHE_TYPE='redis\\u200b' is not valid: use one of simple"),
        ({"CACHE_SOCKET_TIMEOUT": "1e10"}, "CACHE_SOCKET_TIMEOUT='1e10' is not valid"),
    ],
)
def test_a_refused_setting_ends_the_uwsgi_log_in_one_line(project, tmp_path, settings, message):
    """What the web app's error log shows: the app's own lines end with the one-line message
    (after it, only uWSGI's own "unable to load app" lines)."""
    command = [
        servers.uwsgi_binary(), "--http11-socket", f"127.0.0.1:{servers.free_port()}", "--wsgi-file",
        str(project / "pythonanywhere_wsgi.py"), "--master", "--processes", "2", "--need-app",
    ]  # fmt: skip
    env = servers.app_env(project, SECRET_KEY="k" * 32, **settings)
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0  # --need-app: no app, no server
    lines = (result.stdout + result.stderr).splitlines()
    ours = [line for line in lines if not line.startswith(("unable to load app", "*** "))]
    assert ours[-1].startswith(f"{PACKAGE}.cache.config.ConfigError: {message}"), lines[-5:]
