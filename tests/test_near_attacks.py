"""Attacks on the near cache and the breaker under uWSGI as PythonAnywhere runs it (2 workers
forked from a master that imported the app; no lazy-apps, no py-call-osafterfork), from issue 18:

1. A read before the fork (a warm-up in the WSGI file): each worker must still have its own
   connections. Redis: one tracking connection per worker, held by that worker alone, and a
   change made elsewhere reaches both workers. Memcached and Upstash: two workers reading at
   once each get their own answers, and no breaker opens.
2. Keys no backend can store: a @cache.cached view at /t/blog/<slug>, with any slug a URL path
   carries, answers 200, is served from the shared cache the second time, and leaves every
   breaker closed; a non-str key written during a Redis outage does not keep it open after.
3. An idle worker's invalidation backlog: after another client's many writes under the prefix,
   a worker's next request drops its flooded tracking connection instead of parsing it.
6. A tracking connection that hangs costs each worker at most one request per CACHE_RETRY_AFTER.

Which worker answers is known (servers.Workers); which process holds a connection the server
lists is read from /proc (servers.socket_holders)."""

import itertools
import json
import secrets
import threading
import time
from contextlib import contextmanager
from urllib.parse import quote

import pytest
from hypothesis import strategies as st

from . import servers
from .test_near import (
    NEAR_WSGI,
    RedisApp,
    baked_module,
    hold_in_memory,
    play,
    query,
    signed_serializer,
    wait_for_tracking,
)

# test_near's routes (/t/near, /t/set, /t/delete), a read of the cache at import time when
# T_WARM_UP is set (before uWSGI forks, as a warm-up or site settings loaded at start would),
# an ordinary cached view, and a write of a key that is not a str.
ATTACK_WSGI = (
    NEAR_WSGI
    + """
import itertools
made = itertools.count()

@application.get("/t/blog/<path:slug>")
@cache.cached()
def blog(slug):
    return {"slug": slug, "made": f"{os.getpid()}-{next(made)}"}

@application.get("/t/set-int")
def set_int():
    cache.set(42, "x")
    return {"pid": os.getpid()}

if os.environ.get("T_WARM_UP"):
    with application.app_context():
        cache.get("warm-up")
"""
)


@pytest.fixture(scope="module")
def project(bake):
    return bake()


@contextmanager
def attack_app(project, workdir, warm_up: bool, **settings):
    """The app under uWSGI (2 workers) with its own prefix and signing key; yield (url, prefix,
    signing key)."""
    prefix, key = f"attack-{secrets.token_hex(4)}:", secrets.token_hex(32)
    (workdir / "attack_wsgi.py").write_text(ATTACK_WSGI)
    extra = {"T_WARM_UP": "1"} if warm_up else {}
    env = servers.app_env(project, CACHE_KEY_PREFIX=prefix, CACHE_SIGNING_KEY=key, **extra, **settings)
    with servers.uwsgi(workdir / "attack_wsgi.py", env, workdir / "uwsgi.log") as url:
        yield url, prefix, key


@contextmanager
def redis_process(*extra: str):
    """(port, a restartable redis-server of the test's own)."""
    port = servers.free_port()
    server = [servers.start_server("redis", port, *extra)]
    try:
        yield port, server
    finally:
        server[0].kill()
        server[0].wait()


def ask(workers, worker: int, path: str) -> tuple[int, bytes]:
    """(status, body) of a request to worker ``worker``, whatever the body is."""
    conn = workers.conns[worker]
    conn.request("GET", path)
    response = conn.getresponse()
    return response.status, response.read()


def health(workers, worker: int) -> dict:
    return workers.get(worker, "/health")[1]["cache"]


def tracking_clients(client, workers) -> dict[int, list[dict]]:
    """Each worker's near-cache connections on the server: those its process holds alone."""
    master = servers.parent_pid(workers.pids[0])
    pids = [master, *workers.pids]
    mine: dict[int, list[dict]] = {worker: [] for worker in range(len(workers.pids))}
    for entry in client.client_list():
        if entry["name"] != "near-cache":
            continue
        holders = servers.socket_holders(int(entry["addr"].rsplit(":", 1)[1]), pids)
        for worker, pid in enumerate(workers.pids):
            if holders == {pid}:
                mine[worker].append(entry)
    return mine


def describe_clients(client, workers) -> str:
    master = servers.parent_pid(workers.pids[0])
    pids = [master, *workers.pids]
    said = []
    for entry in client.client_list():
        if entry["name"] == "near-cache":
            holders = servers.socket_holders(int(entry["addr"].rsplit(":", 1)[1]), pids)
            names = sorted(
                "master" if pid == master else f"worker {workers.pids.index(pid)}" for pid in holders
            )
            said.append(f"id {entry['id']} omem {entry['omem']} held by {', '.join(names) or 'nobody'}")
    return "; ".join(said) or "none"


# 1. A read before the fork.


@pytest.fixture(scope="module")
def warm_redis(project, tmp_path_factory):
    with redis_process() as (port, _):
        settings = {"CACHE_TYPE": "redis", "REDIS_URL": f"redis://127.0.0.1:{port}/0"}
        workdir = tmp_path_factory.mktemp("attack-warm-redis")
        with attack_app(project, workdir, warm_up=True, **settings) as (url, prefix, key):
            yield RedisApp(url, port, prefix, signed_serializer(project, key), baked_module(project, "keys"))


@pytest.mark.xdist_group("attack-warm-redis")
def test_redis_read_before_the_fork_each_worker_tracks_on_a_connection_of_its_own(warm_redis):
    """After both workers served a cache read, the server lists a near-cache connection for
    each worker that this worker's process alone holds: not one the master opened at import,
    which both children inherited and read in turn."""
    with servers.Workers(warm_redis.url) as workers:
        warm_redis.write("k", "v")
        hold_in_memory(workers, ["k"], [repr("v")])
        mine = tracking_clients(warm_redis.client, workers)
        assert all(len(mine[worker]) == 1 for worker in range(2)), (
            f"near-cache connections: {describe_clients(warm_redis.client, workers)}"
        )


@pytest.mark.xdist_group("attack-warm-redis")
def test_redis_read_before_the_fork_a_change_reaches_both_workers(warm_redis):
    """Both workers hold a key in memory; another client changes it: each worker serves the
    new value within STALE_BOUND (on a shared tracking connection, only the worker that reads
    first gets the notice, and the other serves the old value on)."""
    with servers.Workers(warm_redis.url) as workers:
        for n in range(3):
            old, new = f"old {n}", f"new {n}"
            warm_redis.write("shared", old)
            hold_in_memory(workers, ["shared"], [repr(old)])
            warm_redis.write("shared", new)
            written = time.monotonic()
            for worker in range(2):
                while True:
                    body = workers.get(worker, f"/t/near?{query(['shared'])}")[1]
                    if body["values"] == [repr(new)]:
                        break
                    waited = time.monotonic() - written
                    assert waited < STALE_BOUND, (
                        f"round {n}: worker {worker} still served {body['values']} ({body['memory']} "
                        f"from memory) {waited:.2f}s after the change; tracking: "
                        f"{describe_clients(warm_redis.client, workers)}"
                    )
                    time.sleep(0.01)


STALE_BOUND = 0.5  # seconds: loopback delivers a notice in well under a millisecond
READS = 150  # requests per worker, both at once


def read_at_once(workers, keys: dict[int, list[str]], expected: dict[str, str]) -> list[str]:
    """Each worker reads its own keys READS times, both workers at once; the wrong answers."""
    wrong: list[str] = []

    def reader(worker: int) -> None:
        path = f"/t/near?{query(keys[worker])}"
        want = [repr(expected[key]) for key in keys[worker]]
        for n in range(READS):
            status, body = ask(workers, worker, path)
            answer = json.loads(body)["values"] if status == 200 else body[:200]
            if answer != want:
                wrong.append(f"worker {worker}, read {n}: {status} {answer} for {keys[worker]}")

    threads = [threading.Thread(target=reader, args=(worker,)) for worker in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return wrong


def concurrent_reads_after_a_warm_up(project, workdir, **settings) -> None:
    """Both workers, forked after a read at import, read different keys many times at once:
    every answer is its keys' values, and both breakers stay closed."""
    with (
        attack_app(project, workdir, warm_up=True, **settings) as (url, _, _),
        servers.Workers(url) as workers,
    ):
        keys = {worker: [f"w{worker}-{i}" for i in range(5)] for worker in range(2)}
        expected = {key: f"value of {key}" for worker in keys for key in keys[worker]}
        assert workers.get(0, f"/t/set?{query(expected, expected.values())}")[0] == 200
        wrong = read_at_once(workers, keys, expected)
        caches = [health(workers, worker) for worker in range(2)]
    assert not wrong, f"{len(wrong)} wrong answers of {2 * READS}, e.g. {wrong[:3]}; /health: {caches}"
    assert [cache["breaker"] for cache in caches] == ["closed", "closed"], caches


def test_memcached_read_before_the_fork_workers_reading_at_once_get_their_own_answers(
    project, tmp_path, memcached_servers
):
    settings = {"CACHE_TYPE": "memcached", "MEMCACHED_SERVERS": memcached_servers, "CACHE_NEAR_TTL": "0"}
    concurrent_reads_after_a_warm_up(project, tmp_path, **settings)


def test_upstash_read_before_the_fork_workers_reading_at_once_get_their_own_answers(
    project, tmp_path, redis_url
):
    settings = {"CACHE_TYPE": "upstash", **servers.upstash_settings(project, redis_url)}
    concurrent_reads_after_a_warm_up(project, tmp_path, **settings)


# 2. Keys no backend can store.

# Any text a URL path carries, sent percent-encoded (UTF-8). Not "/" first or twice in a row
# (Flask redirects such a path to its merged form before any view runs), nor a newline (no
# <path:...> route matches it: werkzeug's path converter is ".*" without DOTALL).
SLUGS = st.text(
    st.characters(exclude_categories=["Cs"], exclude_characters="\n"), min_size=1, max_size=40
).filter(lambda slug: not slug.startswith("/") and "//" not in slug)
# Drawn first, every time: what the issue saw, and keys past memcached's 250 bytes.
KNOWN_SLUGS = ["café", "a b", "hello!", "tab\there", "\x00\x01\x7f", "é" * 130, "a" * 300]


def cached_view_rounds(project, workdir, examples: int, **settings) -> tuple[list[str], int]:
    """Each slug: worker 0 makes the page, worker 1 and worker 0 again are served the same one
    from the cache, and both breakers stay closed. (failures, rounds played)."""
    counter = itertools.count()

    def round_(slug: str) -> None:
        next(counter)
        path = "/t/blog/" + quote(slug, safe="")
        answers = [ask(workers, worker, path) for worker in (0, 1, 0)]
        assert all(status == 200 for status, _ in answers), f"{path}: {[(s, b[:200]) for s, b in answers]}"
        caches = [health(workers, worker) for worker in range(2)]
        said = [(c["breaker"], c["last_error"]) for c in caches]
        assert [c["breaker"] for c in caches] == ["closed", "closed"], f"after {path}: {said}"
        made = [json.loads(body) for _, body in answers]
        assert made[0]["slug"] == slug, f"{path} reached the view as {made[0]['slug']!r}"
        assert made[1] == made[2] == made[0], f"{path}: not served from the cache: {made}"

    with (
        attack_app(project, workdir, warm_up=False, **settings) as (url, _, _),
        servers.Workers(url) as workers,
    ):
        failures: list[str] = []
        for slug in KNOWN_SLUGS:
            try:
                round_(slug)
            except AssertionError as error:
                failures.append(f"{error} (slug {slug!r})")
                break
        if not failures:
            failures = play(round_, examples, slug=SLUGS)
    return failures, next(counter)


def test_memcached_a_cached_view_takes_any_url_path(project, tmp_path, memcached_servers):
    settings = {"CACHE_TYPE": "memcached", "MEMCACHED_SERVERS": memcached_servers}
    failures, rounds = cached_view_rounds(project, tmp_path, 40, **settings)
    assert not failures, f"round {rounds}: {failures[0]}"


def test_redis_a_cached_view_takes_any_url_path(project, tmp_path, redis_url):
    settings = {"CACHE_TYPE": "redis", "REDIS_URL": redis_url}
    failures, rounds = cached_view_rounds(project, tmp_path, 40, **settings)
    assert not failures, f"round {rounds}: {failures[0]}"


def test_redis_a_non_str_key_written_during_an_outage_does_not_keep_the_breaker_open(project, tmp_path):
    """cache.set(42, ...) while the server is down; once it is back, within CACHE_RETRY_AFTER
    and slack, both workers' breakers are closed and the cache stores again."""
    retry_after = 1.0
    with redis_process() as (port, server):
        settings = {
            "CACHE_TYPE": "redis",
            "REDIS_URL": f"redis://127.0.0.1:{port}/0",
            "CACHE_RETRY_AFTER": str(retry_after),
            "CACHE_SOCKET_TIMEOUT": "0.5",
        }
        with attack_app(project, tmp_path, warm_up=False, **settings) as (url, prefix, _):
            with servers.Workers(url) as workers:
                assert [health(workers, w)["breaker"] for w in range(2)] == ["closed", "closed"]
                server[0].kill()
                server[0].wait()
                for worker in range(2):
                    assert workers.get(worker, "/t/set-int")[0] == 200
                    assert health(workers, worker)["breaker"] == "open"
                server[0] = servers.start_server("redis", port)
                back = time.monotonic()
                deadline = back + retry_after + 3
                while time.monotonic() < deadline:
                    caches = [health(workers, worker) for worker in range(2)]
                    if [c["breaker"] for c in caches] == ["closed", "closed"]:
                        break
                    time.sleep(0.1)
                assert [c["breaker"] for c in caches] == ["closed", "closed"], (
                    f"{time.monotonic() - back:.1f}s after the server came back: {caches}"
                )
                assert workers.get(0, f"/t/set?{query(['after'], ['stored'])}")[0] == 200
                assert servers_key_exists(port, prefix + "after")


def servers_key_exists(port: int, name: str) -> bool:
    import redis

    return bool(redis.Redis(port=port).exists(name))


# 3. The invalidation backlog of an idle worker.

FLOOD = 200_000  # writes under the prefix by another client, while both workers are idle
FLOODED = 1024 * 1024  # bytes: a tracking connection's output buffer this large is the attack


def test_redis_an_idle_workers_backlog_of_invalidations_is_dropped_not_parsed(project, tmp_path):
    """Both workers track; another client writes FLOOD keys under the prefix (one Lua call);
    the notices pile up in each tracking connection's output buffer on the server. The next
    request to each worker drops that connection (the server no longer lists its id) rather
    than parse the backlog, and no flooded near-cache connection is left."""
    with redis_process() as (port, _):
        settings = {"CACHE_TYPE": "redis", "REDIS_URL": f"redis://127.0.0.1:{port}/0"}
        with attack_app(project, tmp_path, warm_up=False, **settings) as (url, prefix, key):
            app = RedisApp(url, port, prefix, signed_serializer(project, key), baked_module(project, "keys"))
            with servers.Workers(url) as workers:
                wait_for_tracking(workers, seconds=3)
                before = tracking_clients(app.client, workers)
                assert all(len(before[w]) == 1 for w in range(2)), describe_clients(app.client, workers)
                flood = "for i = 1, tonumber(ARGV[2]) do redis.call('SET', ARGV[1] .. i, '1') end"
                app.client.eval(flood, 0, f"{prefix}flood:", FLOOD)
                omem = {c["id"]: int(c["omem"]) for c in app.near_clients()}
                assert all(omem[before[w][0]["id"]] > FLOODED for w in range(2)), omem
                took = []
                for worker in range(2):
                    old = before[worker][0]["id"]
                    sent = time.monotonic()
                    assert workers.get(worker, "/health")[0] == 200
                    took.append(time.monotonic() - sent)
                    deadline = time.monotonic() + 1  # the server sees the close at once
                    while old in {c["id"] for c in app.near_clients()} and time.monotonic() < deadline:
                        time.sleep(0.02)
                    ids = {c["id"] for c in app.near_clients()}
                    assert old not in ids, (
                        f"worker {worker}'s flooded tracking connection (id {old}) is still there "
                        f"after its request, which took {took[-1]:.2f}s: "
                        f"{describe_clients(app.client, workers)}"
                    )
                flooded = [c for c in app.near_clients() if int(c["omem"]) > FLOODED]
                assert not flooded, flooded
                assert max(took) < 30, took  # a hang guard, not a speed claim


# 6. A tracking connection that hangs.


def test_a_hung_tracking_connection_costs_each_worker_one_request_per_retry_window(project, tmp_path):
    """The data connections work; the tracking connection is held unanswered by a relay (each
    attempt costs its request one CACHE_SOCKET_TIMEOUT). Requests to both workers for SPELL
    seconds, CACHE_RETRY_AFTER 5: each worker opens at most one tracking connection per window
    (the first, and one after 5 s), and its breaker stays closed."""
    retry_after, spell = 5.0, 6.5
    with redis_process() as (port, _):
        relay = servers.TrackingHungRelay(port)
        try:
            settings = {
                "CACHE_TYPE": "redis",
                "REDIS_URL": f"redis://127.0.0.1:{relay.port}/0",
                "CACHE_RETRY_AFTER": str(retry_after),
                "CACHE_SOCKET_TIMEOUT": "0.5",
            }
            with attack_app(project, tmp_path, warm_up=False, **settings) as (url, _, _):
                started = time.monotonic()  # the first attempts: at Workers()'s first requests
                with servers.Workers(url) as workers:
                    served: dict[int, list[int]] = {0: [], 1: []}

                    def load(worker: int) -> None:
                        while time.monotonic() - started < spell:
                            served[worker].append(ask(workers, worker, f"/t/near?{query(['k'])}")[0])
                            time.sleep(0.01)  # a site's steady traffic, not a flood

                    threads = [threading.Thread(target=load, args=(worker,)) for worker in range(2)]
                    for thread in threads:
                        thread.start()
                    for thread in threads:
                        thread.join(timeout=60)
                    caches = [health(workers, worker) for worker in range(2)]
                    spent = time.monotonic() - started
                    pids = list(workers.pids)
        finally:
            relay.close()
    assert all(set(statuses) == {200} for statuses in served.values()), served
    assert [c["breaker"] for c in caches] == ["closed", "closed"], caches
    per_worker = {w: sum(held == {pid} for held in relay.held_by) for w, pid in enumerate(pids)}
    windows = int(spent // retry_after) + 1
    assert len(relay.hung) <= 2 * windows and all(n <= windows for n in per_worker.values()), (
        f"{len(relay.hung)} tracking connections held in {spent:.1f}s (per worker: {per_worker}; "
        f"{sum(map(len, served.values()))} requests), for {windows} windows of {retry_after:g}s"
    )
