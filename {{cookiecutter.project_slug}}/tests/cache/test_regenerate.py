"""One regeneration per expiry (cache/regenerate.py): on every backend, whatever the order of
requests, expiries and failed regenerations, one caller regenerates an expired entry and the
others get the previous value, or wait for the new one when there is none."""

import sys
import threading
import types
import uuid

import pytest
from flask import Blueprint
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from {{ cookiecutter.package_name }}.cache import cache, regenerate

from .conftest import SERVERS, cache_behind, make_app

BACKENDS = [
    pytest.param(name, marks=SERVERS[name][2]) if name in SERVERS else name
    for name in ("simple", "filesystem", "redis", "memcached", "upstash")
]
TIMEOUT = 60


class Counted:
    """The value a page or function computes: the number of its computation; raising when told."""

    def __init__(self) -> None:
        self.count = 0
        self.fail = False
        self.during: list[threading.Thread] = []  # requests made while a computation runs
        self.lock = threading.Lock()

    def __call__(self) -> str:
        with self.lock:
            self.count += 1
            number = self.count
            during, self.during = self.during, []
        for thread in during:
            thread.start()
        for thread in during:
            thread.reached.wait(10)  # type: ignore[attr-defined]
        if self.fail:
            raise RuntimeError("the database is down")
        return f"value {number}"


def blueprint(counted: Counted) -> Blueprint:
    bp = Blueprint(f"regenerate_{uuid.uuid4().hex}", __name__)

    @bp.get("/regenerated/<name>")
    @cache.cached(timeout=TIMEOUT)
    def page(name: str) -> str:
        return counted()

    @cache.memoize(timeout=TIMEOUT)
    def function(name: str) -> str:
        return counted()

    @bp.get("/memoized/<name>")
    def memoized(name: str) -> str:
        return function(name)

    return bp


@pytest.fixture
def workers(request, tmp_path, server_settings, monkeypatch):
    """workers(n): n apps sharing the backend as web workers do (separate processes; for the
    simple cache, threads of one), the computation they share, and a clock of their own."""
    now = [1_000_000.0]
    monkeypatch.setattr(regenerate, "clock", lambda: now[0])
    # A kept lock (stale-if-error) outlives any example, however slow the machine.
    monkeypatch.setattr(regenerate, "LOCK_SECONDS", 300.0)
    counted = Counted()
    prefix = f"test-{uuid.uuid4().hex[:12]}:"
    backend = request.param
    apps: list = []

    def make(n: int) -> list:
        while len(apps) < (1 if backend == "simple" else n):
            app = make_app(
                tmp_path, CACHE_KEY_PREFIX=prefix, CACHE_STALE_GRACE="600",
                # Without tracking's notices, which arrive a moment after a write, each read
                # sees the last write: the model below can say what every request gets.
                CACHE_NEAR_TRACKING="off", **server_settings(backend),
            )  # fmt: skip
            app.register_blueprint(blueprint(counted))
            apps.append(app)
        return [apps[i % len(apps)] for i in range(n)]

    return make, counted, now


def get(app, path: str) -> tuple[int, str]:
    response = app.test_client().get(path)
    return response.status_code, response.get_data(as_text=True)


def during(app, path: str, results: list) -> threading.Thread:
    """A request made while another worker computes: it ends, or waits for that computation
    (regenerate.sleep): either way the computation may then end."""
    reached = threading.Event()

    def run() -> None:
        def sleep(seconds: float) -> None:
            reached.set()
            _sleep(seconds)

        local.sleep = sleep
        try:
            results.append(get(app, path))
        finally:
            reached.set()

    thread = threading.Thread(target=run)
    thread.reached = reached  # type: ignore[attr-defined]
    return thread


local = threading.local()


@pytest.fixture(autouse=True)
def per_thread_sleep(monkeypatch):
    monkeypatch.setattr(regenerate, "sleep", lambda s: getattr(local, "sleep", _sleep)(s))


_sleep = regenerate.sleep

# A step: move the clock, or a request by one worker while 0-3 others request the same page.
STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("advance"), st.sampled_from([1, TIMEOUT - 1, TIMEOUT, 2 * TIMEOUT])),
        st.tuples(st.just("request"), st.integers(0, 3), st.integers(0, 3), st.booleans()),
    ),
    min_size=1,
    max_size=8,
)


@pytest.mark.parametrize("workers", BACKENDS, indirect=True)
@pytest.mark.parametrize("kind", ["regenerated", "memoized"])
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@given(steps=STEPS)
def test_one_regeneration_per_expiry_whatever_the_interleaving(workers, kind, steps):
    make, counted, now = workers
    apps = make(4)
    path = f"/{kind}/{uuid.uuid4().hex}"
    counted.count, counted.fail = 0, False
    value, fresh_until, held = None, None, False  # the model: the entry, and the kept lock
    for step in steps:
        if step[0] == "advance":
            now[0] += step[1]
            continue
        _, worker, others, fail = step
        results: list = []
        previous = value
        before = counted.count
        fresh = value is not None and now[0] < fresh_until
        regenerates = not fresh and not held
        counted.fail = fail and regenerates and value is not None  # stale-if-error needs one
        threads = [during(apps[(worker + i + 1) % 4], path, results) for i in range(others)]
        counted.during = list(threads) if regenerates else []
        status, body = get(apps[worker], path)
        for thread in threads if regenerates else []:
            thread.join(10)
        assert status == 200
        if regenerates:
            assert counted.count == before + 1  # this request regenerated, no other did
            if counted.fail:
                held = True  # stale-if-error: the lock stays until it expires
                assert body == value
            else:
                value, fresh_until = f"value {counted.count}", now[0] + TIMEOUT
                assert body == value
        else:
            assert counted.count == before
            assert body == value
        # Those who came meanwhile got the previous value, or waited for the new one.
        meanwhile = value if previous is None else previous
        assert len(results) == (others if regenerates else 0)
        assert all(result == (200, meanwhile) for result in results), (results, meanwhile)


def expire(app, path: str, now: list) -> None:
    """Serve ``path`` once (it is computed and stored), then move the clock past its timeout."""
    assert get(app, path)[0] == 200
    now[0] += TIMEOUT


@pytest.mark.parametrize("workers", BACKENDS, indirect=True)
def test_a_dead_holders_lock_expires_by_itself_and_another_regenerates(workers, monkeypatch):
    make, counted, now = workers
    monkeypatch.setattr(regenerate, "LOCK_SECONDS", 0.5)
    first, second = make(2)
    path = f"/regenerated/{uuid.uuid4().hex}"
    expire(first, path, now)
    with first.app_context():  # a worker takes the lock to regenerate, and dies
        assert cache.cache.lock(regenerate.lock_name(f"view/{path}"), regenerate.LOCK_SECONDS)
    assert get(second, path) == (200, "value 1")  # the previous value while the lock is held
    assert counted.count == 1
    _sleep(0.6 if "memcached" not in str(first.config["CACHE_TYPE"]) else 2.1)  # whole seconds
    assert get(second, path) == (200, "value 2")
    assert counted.count == 2


@pytest.mark.parametrize("workers", BACKENDS, indirect=True)
def test_a_failed_regeneration_serves_the_previous_value_and_says_so(workers, caplog):
    make, counted, now = workers
    first, second = make(2)
    path = f"/regenerated/{uuid.uuid4().hex}"
    expire(first, path, now)
    counted.fail = True
    assert get(first, path) == (200, "value 1")
    assert get(second, path) == (200, "value 1")  # the lock stays: no second attempt yet
    assert counted.count == 2
    told = [r.getMessage() for r in caplog.records if "regenerating" in r.getMessage()]
    assert len(told) == 1 and "page failed (RuntimeError: the database is down)" in told[0]


@pytest.mark.parametrize("workers", BACKENDS, indirect=True)
def test_without_a_previous_value_a_failure_is_the_callers(workers):
    make, counted, now = workers
    (app,) = make(1)
    counted.fail = True
    path = f"/regenerated/{uuid.uuid4().hex}"
    with pytest.raises(RuntimeError):  # TESTING: Flask lets it through, as a 500 otherwise
        get(app, path)
    counted.fail = False
    assert get(app, path) == (200, "value 2")  # the lock was released: the next caller computes


@pytest.mark.parametrize("workers", ["simple"], indirect=True)
def test_grace_zero_opts_out_every_caller_computes(workers, monkeypatch):
    make, counted, now = workers
    (app,) = make(1)
    app.config["CACHE_STALE_GRACE"] = 0
    path = f"/regenerated/{uuid.uuid4().hex}"
    expire(app, path, now)
    others: list = []
    counted.during = [thread := during(app, path, others)]
    assert get(app, path) == (200, "value 2")
    thread.join(10)
    assert others == [(200, "value 3")]  # no lock: the request meanwhile computed its own
    assert counted.count == 3


@pytest.mark.redis
def test_an_entry_is_kept_for_its_timeout_plus_the_grace(tmp_path, redis_url):
    import redis

    prefix = f"test-{uuid.uuid4().hex[:12]}:"
    app = make_app(tmp_path, CACHE_TYPE="redis", REDIS_URL=redis_url, CACHE_KEY_PREFIX=prefix,
                   CACHE_STALE_GRACE="45", CACHE_NEAR_TRACKING="off")  # fmt: skip
    app.register_blueprint(blueprint(Counted()))
    path = f"/regenerated/{uuid.uuid4().hex}"
    assert get(app, path) == (200, "value 1")
    left = redis.Redis.from_url(redis_url).pttl(f"{prefix}view/{path}")
    assert (TIMEOUT + 45 - 2) * 1000 < left <= (TIMEOUT + 45) * 1000


@pytest.mark.redis
@pytest.mark.parametrize(("numproc", "on_the_server"), [(1, False), (2, True), (None, True)])
def test_the_only_web_worker_keeps_its_locks_in_its_memory(
    tmp_path, redis_url, monkeypatch, numproc, on_the_server
):
    """Under uWSGI with one worker (a free account) no other worker regenerates: the lock is
    the worker's own, and costs the server nothing. With two, or outside uWSGI, it is Redis's."""
    import redis

    if numproc is not None:  # uWSGI's Python API, as the uwsgi module gives it to the app
        monkeypatch.setitem(sys.modules, "uwsgi", types.SimpleNamespace(numproc=numproc, opt={}))
    prefix = f"test-{uuid.uuid4().hex[:12]}:"
    app = make_app(tmp_path, CACHE_TYPE="redis", REDIS_URL=redis_url, CACHE_KEY_PREFIX=prefix)
    server = redis.Redis.from_url(redis_url)
    path = f"/locked/{uuid.uuid4().hex}"
    seen = []
    bp = Blueprint(f"alone_{uuid.uuid4().hex}", __name__)

    @bp.get("/locked/<name>")
    @cache.cached(timeout=TIMEOUT)
    def locked(name: str) -> str:
        seen.append(server.exists(f"{prefix}{regenerate.lock_name(f'view/{path}')}"))
        return "made"

    app.register_blueprint(bp)
    assert get(app, path) == (200, "made")
    assert seen == [int(on_the_server)]


SHARED = [name for name in BACKENDS if (getattr(name, "values", [name])[0]) != "simple"]


@pytest.mark.parametrize("workers", SHARED, indirect=True)
@pytest.mark.parametrize("previous", [False, True], ids=["no-entry", "expired"])
def test_a_caller_that_gets_the_lock_just_after_another_regenerated_serves_that(
    workers, previous, monkeypatch
):
    """Worker B reads no fresh entry; before it asks for the lock, worker A regenerates the page,
    stores it and releases the lock: B gets the lock, but must serve A's page, not make its own."""
    make, counted, now = workers
    first, second = make(2)
    path = f"/regenerated/{uuid.uuid4().hex}"
    if previous:
        expire(first, path, now)
    store = cache_behind(second)
    take = store.lock

    def late(name, seconds):
        monkeypatch.setattr(store, "lock", take)  # once
        assert get(first, path)[0] == 200  # A, meanwhile
        return take(name, seconds)

    monkeypatch.setattr(store, "lock", late)
    made = counted.count + 1  # by A
    assert get(second, path) == (200, f"value {made}")
    assert counted.count == made


def test_a_memoized_function_works_outside_an_app_context_as_with_flask_caching(tmp_path):
    counted = Counted()
    app = make_app(tmp_path, CACHE_TYPE="simple")  # the app init_app saw last: Cache.app

    @cache.memoize(timeout=TIMEOUT)
    def function(name: str) -> str:
        return counted()

    assert function("a") == function("a") == "value 1"  # no app context: Cache.app's cache
    with app.app_context():
        assert function("a") == "value 1"
