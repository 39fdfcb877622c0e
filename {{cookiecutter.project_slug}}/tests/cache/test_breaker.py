"""The breaker's logic, against a stub backend that fails on demand and a clock that moves only
when told: no servers, no sleeping. (OutageTests in common.py cut real servers.)"""

import logging
import os
import sys
import threading
import time
from contextlib import contextmanager

import pytest
from cachelib import SimpleCache
from hypothesis import example, given, settings
from hypothesis import strategies as st

from {{ cookiecutter.package_name }}.cache.backends import Backend
from {{ cookiecutter.package_name }}.cache.backends.simple import LocalLocks
from {{ cookiecutter.package_name }}.cache.breaker import MAX_PENDING_KEYS, Breaker
from {{ cookiecutter.package_name }}.cache.errors import MAX_MESSAGE, error_message

from .conftest import Clock

RETRY_AFTER = 30
METHODS = ("get", "get_many", "get_dict", "has", "set", "add", "set_many", "delete")
METHODS += ("delete_many", "inc", "dec", "clear")


class Down(ConnectionError):
    """What the stub raises while it is down: one of the breaker's "unreachable" errors."""


class Stub(Backend, SimpleCache):
    """A working cache that raises ``fault`` on every call while one is set, or ``faults[name]``
    on the calls so named, and logs its calls."""

    name = "stub"

    def __init__(self):
        super().__init__()
        self.fault: Exception | None = None
        self.faults: dict[str, Exception] = {}
        self.delay = 0.0  # seconds each call takes, as over a network
        self.calls: list[str] = []
        self.locks = LocalLocks()  # the server's locks, as another process sees them

    def lock(self, key, seconds):
        self._fail_if_asked("lock")
        return self.locks.lock(key, seconds)

    def unlock(self, key):
        self._fail_if_asked("unlock")
        self.locks.unlock(key)

    def _fail_if_asked(self, name):
        self.calls.append(name)
        if self.fault is not None or name in self.faults:
            raise self.fault or self.faults[name]

    def unlink(self, *keys):  # what the breaker replays with: a delete that does not re-check
        self.calls.append("unlink")
        if self.fault is not None or "unlink" in self.faults:
            raise self.fault or self.faults["unlink"]
        for key in keys:
            SimpleCache.delete(self, key)


def _recorded(name):
    def method(self, *args, **kwargs):
        self.calls.append(name)
        time.sleep(self.delay)
        if self.fault is not None or name in self.faults:
            raise self.fault or self.faults[name]
        return getattr(SimpleCache, name)(self, *args, **kwargs)

    return method


for _name in METHODS:
    setattr(Stub, _name, _recorded(_name))


def make_breaker(clock, **options):
    guarded = Breaker(
        Stub(),
        name="stub",
        location="stub://example",
        unreachable=(Down,),
        retry_after=RETRY_AFTER,
        threshold=100,
        default_timeout=300,
        logger=logging.getLogger("test.breaker"),
        **options,
    )
    guarded.clock = clock
    return guarded


@pytest.fixture
def breaker(clock):
    return make_breaker(clock)


def trip(breaker):
    breaker.guarded.fault = Down("refused")
    breaker.get("trip")


def records(caplog, text):
    return [r for r in caplog.records if text in r.getMessage()]


def test_while_the_backend_works_every_call_goes_to_it(breaker):
    assert breaker.set("key", 1) and breaker.get("key") == 1
    assert breaker.guarded.calls == ["set", "get"]
    assert breaker.status() == {
        "active": "stub",
        "breaker": "closed",
        "last_error": None,
        "near": {"mode": "off", "why": "no near cache in front of it"},
    }


def test_the_first_unreachable_error_opens_it_and_logs_once(breaker, caplog):
    breaker.set("key", "from the backend")
    breaker.guarded.fault = Down("refused")
    assert breaker.get("key") is None  # from the fallback, which starts empty
    assert breaker.set("key", "local") and breaker.get("key") == "local"
    status = breaker.status()
    assert (status["active"], status["breaker"], status["last_error"]["type"]) == (
        "simple",
        "open",
        "Down",
    )
    [logged] = records(caplog, "failed (Down: refused)")
    assert logged.levelname == "ERROR" and "stub at stub://example" in logged.getMessage()


@pytest.mark.parametrize("method", METHODS)
def test_no_call_fails_while_open(breaker, method):
    trip(breaker)
    args = {"get_many": ("a", "b"), "get_dict": ("a",), "set": ("a", 1), "add": ("a", 1)}
    args |= {"set_many": ({"a": 1},), "delete_many": ("a",), "clear": ()}
    getattr(breaker, method)(*args.get(method, ("a",)))  # no exception


def test_no_call_reaches_the_backend_until_retry_after(breaker):
    trip(breaker)
    calls = len(breaker.guarded.calls)
    clock = breaker.clock
    clock.advance(RETRY_AFTER - 0.001)
    for _ in range(10):
        breaker.get("key")
    assert len(breaker.guarded.calls) == calls


def test_one_call_probes_per_window_and_a_failed_probe_keeps_it_open(breaker, caplog):
    trip(breaker)
    calls = len(breaker.guarded.calls)
    breaker.clock.advance(RETRY_AFTER)
    for _ in range(5):
        breaker.get("key")
    assert len(breaker.guarded.calls) == calls + 1, "exactly one probe"
    assert breaker.status()["breaker"] == "open"
    assert len(records(caplog, "serving from the in-process simple cache")) == 1


def test_a_good_probe_closes_it_and_the_fallback_is_emptied(breaker, caplog):
    trip(breaker)
    breaker.set("key", "written during the outage")
    breaker.guarded.fault = None
    breaker.clock.advance(RETRY_AFTER)
    assert breaker.get("other") is None  # the probe
    assert breaker.status()["breaker"] == "closed"
    assert breaker.fallback.get("key") is None
    assert len(records(caplog, "stub at stub://example is back")) == 1


def test_writes_and_deletes_made_while_open_are_deleted_before_it_serves(breaker):
    breaker.set_many({"deleted": "old", "rewritten": "old", "kept": "old", "many": "old"})
    breaker.guarded.fault = Down("refused")
    breaker.delete("deleted")
    breaker.set("rewritten", "new, in this worker only")
    breaker.set_many({"many": "new"})
    breaker.guarded.fault = None
    breaker.clock.advance(RETRY_AFTER)
    assert breaker.get("deleted") is None
    assert breaker.get_many("rewritten", "many", "kept") == [None, None, "old"]


def test_counters_and_locks_made_while_open_leave_the_servers_alone(breaker):
    """inc, dec and add in the fallback did not change the server's value: nothing is deleted
    on recovery, so a shared counter and another process's lock survive; the worker's own
    counts are dropped with the fallback (docs/caching.md, "When the server is down")."""
    breaker.set_many({"hits": 1000, "stock": 5, "lock": "another process's"})
    trip(breaker)
    assert breaker.inc("hits") == 1, "counted in this worker's memory"
    assert breaker.dec("stock") == -1
    assert breaker.add("lock", "mine") and breaker.add("new lock", "mine")
    assert breaker.pending_deletes == set()
    breaker.guarded.fault = None
    breaker.clock.advance(RETRY_AFTER)
    assert breaker.inc("hits") == 1001  # the probe: on the server, counting on from its value
    assert breaker.status()["breaker"] == "closed"
    assert "unlink" not in breaker.guarded.calls
    assert breaker.get_many("stock", "lock", "new lock") == [5, "another process's", None]


def test_a_set_or_delete_after_an_inc_or_add_is_replayed(breaker):
    """A key set or deleted while open is deleted on the server, whatever came before: a lock
    released with delete() during the outage too (it cannot be told from an invalidation)."""
    breaker.set_many({"added, then set": "old", "counted, then set": 1, "released": "theirs"})
    trip(breaker)
    assert breaker.add("added, then set", "new")
    breaker.set("added, then set", "newer")
    breaker.inc("counted, then set")
    breaker.set_many({"counted, then set": 10})
    assert breaker.add("released", "mine")
    breaker.delete("released")
    breaker.guarded.fault = None
    breaker.clock.advance(RETRY_AFTER)
    assert breaker.get_many("added, then set", "counted, then set", "released") == [None] * 3


def test_locks_go_to_the_server_under_the_keys_stored_name(clock):
    breaker = make_breaker(clock, storable=lambda key: f"stored:{key}")
    assert breaker.lock(42, 60) and not breaker.lock("42", 60)
    assert breaker.guarded.locks.holds("stored:42")
    breaker.unlock(42)
    assert not breaker.guarded.locks.holds("stored:42")
    assert breaker.guarded.calls == ["lock", "lock", "unlock"]


def test_while_open_locks_are_this_workers_and_nothing_reaches_the_server(breaker):
    trip(breaker)
    calls = len(breaker.guarded.calls)
    assert breaker.lock("page.lock", 60), "held in this worker"
    assert not breaker.lock("page.lock", 60)
    breaker.unlock("page.lock")
    assert breaker.lock("page.lock", 60) and breaker.lock("other.lock", 60)
    assert len(breaker.guarded.calls) == calls, "no call reached the server"
    assert breaker.pending_deletes == set(), "nothing to replay"
    assert not breaker.guarded.locks.holds("page.lock")


@pytest.mark.parametrize("call", ["lock", "unlock"])
@pytest.mark.parametrize(
    "error",
    [Down("refused"), ValueError("OOM command not allowed"), RuntimeError("a bug")],
    ids=["outage", "refusal", "anything"],
)
def test_a_lock_call_the_server_fails_is_answered_in_this_worker(breaker, caplog, call, error):
    """Whatever the error, the call answers: an outage opens the breaker as for any call, any
    other error is logged; the lock is then this worker's."""
    assert breaker.lock("held.lock", 60)
    breaker.guarded.faults = {call: error}
    if call == "lock":
        assert breaker.lock("page.lock", 60), "taken in this worker"
    else:
        assert breaker.unlock("held.lock") is None
        assert breaker.lock("page.lock", 60)
    assert not breaker.lock("page.lock", 60)
    outage = isinstance(error, Down)
    assert breaker.status()["breaker"] == ("open" if outage else "closed")
    logged = "serving from the in-process" if outage else f"{call}(...) failed on stub, held in"
    assert len(records(caplog, logged)) == 1
    assert breaker.guarded.locks.holds("held.lock"), "the server's lock expires by itself"


def test_a_lock_taken_in_an_outage_is_released_in_this_worker_after_it(breaker):
    """The server is back while this worker holds a lock it took in its memory: the lock stays
    this worker's until released or expired, and its release is not sent to the server, where
    another process may hold that name."""
    assert breaker.guarded.locks.lock("page.lock", 60)  # another process's, on the server
    trip(breaker)
    assert breaker.lock("page.lock", 60), "this worker's"
    breaker.guarded.fault = None
    breaker.clock.advance(RETRY_AFTER)
    breaker.get("probe")
    assert breaker.status()["breaker"] == "closed"
    calls = len(breaker.guarded.calls)
    assert not breaker.lock("page.lock", 60), "still this worker's"
    breaker.unlock("page.lock")
    assert len(breaker.guarded.calls) == calls, "neither call reached the server"
    assert breaker.guarded.locks.holds("page.lock"), "the other process's lock is kept"
    assert not breaker.lock("page.lock", 60), "now asked of the server, where it is held"
    assert breaker.guarded.calls[-1] == "lock"


def test_a_forked_worker_holds_none_of_its_parents_locks(breaker):
    """uWSGI forks the workers after loading the app: a lock the parent holds in its memory is
    not the child's, which takes its own; the parent keeps it."""
    trip(breaker)
    assert breaker.lock("page.lock", 60)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report, and leave without running pytest's exit handlers
        try:
            ok = breaker.lock("page.lock", 60) and not breaker.lock("page.lock", 60)
            os.write(write, b"ok" if ok else b"no")
        finally:
            os._exit(0)
    os.close(write)
    assert os.read(read, 2) == b"ok"
    os.waitpid(pid, 0)
    assert not breaker.lock("page.lock", 60), "the parent's, still held"


@contextmanager
def probe_held(breaker):
    """A probe made by another thread, held inside the backend's get until the block ends."""
    probing, release = threading.Event(), threading.Event()
    original = breaker.guarded.get

    def slow_get(key):
        probing.set()
        release.wait(5)
        return original(key)

    breaker.guarded.get = slow_get
    prober = threading.Thread(target=breaker.get, args=("key",))
    prober.start()
    assert probing.wait(5)
    try:
        yield
    finally:
        release.set()
        prober.join(5)


def test_an_inc_made_while_another_thread_probes_leaves_the_counter_alone(breaker):
    breaker.set("hits", 1000)
    trip(breaker)
    breaker.guarded.fault = None
    breaker.clock.advance(RETRY_AFTER)
    with probe_held(breaker):
        assert breaker.inc("hits") == 1, "from the fallback, while the probe runs"
    assert breaker.status()["breaker"] == "closed"
    assert breaker.inc("hits") == 1001


CHANGES = st.sampled_from(["set", "set_many", "delete", "delete_many", "inc", "dec", "add"])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(CHANGES, st.sampled_from("abc")), max_size=12))
def test_recovery_deletes_exactly_the_keys_set_or_deleted_while_open(changes):
    """Any sequence of changes made in the fallback: each key set or deleted is gone from the
    server, any other key (counted, added, untouched) keeps the server's value."""
    breaker = make_breaker(Clock())
    breaker.set_many(dict.fromkeys("abc", 1000))
    trip(breaker)
    args = {"set": lambda key: (key, 7), "set_many": lambda key: ({key: 7},)}
    args |= {"add": lambda key: (key, 7)}
    for method, key in changes:
        getattr(breaker, method)(*args.get(method, lambda key: (key,))(key))
    breaker.guarded.fault = None
    breaker.clock.advance(RETRY_AFTER)
    breaker.get("probe")
    assert breaker.status()["breaker"] == "closed"
    replaced = {key for method, key in changes if method not in ("inc", "dec", "add")}
    assert breaker.get_many(*"abc") == [None if key in replaced else 1000 for key in "abc"]


def test_a_clear_made_while_open_is_replayed_as_a_clear(breaker):
    breaker.set("key", "old")
    breaker.guarded.fault = Down("refused")
    breaker.clear()
    breaker.guarded.fault = None
    breaker.clock.advance(RETRY_AFTER)
    assert breaker.get("key") is None
    assert "clear" in breaker.guarded.calls


def test_too_many_pending_deletes_are_replayed_as_a_clear(breaker):
    breaker.set("untouched", "old")
    trip(breaker)
    for i in range(MAX_PENDING_KEYS + 1):
        breaker.delete(f"k{i}")
    breaker.guarded.fault = None
    breaker.clock.advance(RETRY_AFTER)
    assert breaker.get("untouched") is None
    assert breaker.guarded.calls.count("clear") == 1


def test_other_errors_are_a_miss_for_that_call_only(breaker, caplog):
    breaker.set("key", 1)
    breaker.guarded.faults = {"get": ValueError("a wrong type")}
    assert breaker.get("key") is None
    assert breaker.status()["breaker"] == "closed"
    assert len(records(caplog, "get(...) failed on stub, a miss: ValueError: a wrong type")) == 1
    breaker.guarded.faults = {}
    assert breaker.get("key") == 1


def test_a_refused_write_leaves_no_old_value_behind(breaker):
    """A value the server refuses (memcached's 1 MiB limit, Redis OOM): a miss for that call,
    and the key's old value is deleted, since the caller meant to replace it."""
    breaker.set("key", "old")
    breaker.guarded.faults = {"set": ValueError("object too large for cache")}
    assert breaker.set("key", "x" * 2_000_000) is False
    assert breaker.status()["breaker"] == "closed"
    assert breaker.get("key") is None


@pytest.mark.parametrize("call", ["set", "delete", "delete_many", "clear"])
def test_a_change_the_server_refuses_is_replayed_once_it_accepts(breaker, caplog, call):
    """READONLY (a replica after a failover), MISCONF: neither the change nor a delete is
    accepted. The breaker opens as for an outage and replays once the server takes writes."""
    breaker.set_many({"key": "old", "other": "old"})
    readonly = ValueError("READONLY You can't write against a read only replica.")
    refused = ("set", "delete", "delete_many", "clear", "unlink")
    breaker.guarded.faults = dict.fromkeys(refused, readonly)
    args = {"set": ("key", "new"), "delete_many": ("key",), "clear": ()}
    getattr(breaker, call)(*args.get(call, ("key",)))
    assert breaker.status()["breaker"] == "open"
    assert breaker.get("key") != "old", "the old value is not served meanwhile"
    breaker.clock.advance(RETRY_AFTER)
    breaker.get("key")  # the probe: the replay is refused again
    assert breaker.status()["breaker"] == "open"
    breaker.guarded.faults = {}
    breaker.clock.advance(RETRY_AFTER)
    assert breaker.get("key") is None
    assert breaker.status()["breaker"] == "closed"
    assert breaker.get("other") == (None if call == "clear" else "old")
    assert len(records(caplog, "failed (ValueError: READONLY")) == 1
    # What the server said, not the breaker's own Unapplied.
    error = breaker.status()["last_error"]
    assert error["type"] == "ValueError"
    assert error["message"] == "READONLY You can't write against a read only replica."


@pytest.mark.parametrize("call", ["inc", "dec", "add"])
@pytest.mark.parametrize(
    "refusal",
    [
        TypeError("inc/dec of 'key': it holds a str, not an int"),  # as backends._added raises
        ValueError("OOM command not allowed when used memory > 'maxmemory'."),
        ValueError("READONLY You can't write against a read only replica."),
    ],
    ids=["not a counter", "OOM", "READONLY"],
)
def test_a_refused_inc_dec_or_add_deletes_nothing(breaker, caplog, call, refusal):
    """Nothing was written (each is one atomic write), so the key keeps its value: a value inc
    cannot count, another process's lock. A miss for that call; the breaker stays closed."""
    breaker.set("key", "another process's")
    breaker.guarded.faults = {call: refusal, "unlink": refusal}
    assert not getattr(breaker, call)(*{"add": ("key", "mine")}.get(call, ("key",)))
    assert breaker.status()["breaker"] == "closed"
    assert "unlink" not in breaker.guarded.calls
    assert len(records(caplog, f"cache: {call}(...) failed on stub, a miss")) == 1
    breaker.guarded.faults = {}
    assert breaker.get("key") == "another process's"


def test_an_inc_of_a_value_that_is_not_a_counter_keeps_the_value(breaker):
    breaker.set("key", "text")
    assert breaker.inc("key") is None  # SimpleCache's own TypeError
    assert breaker.get("key") == "text"


class Refused(Exception):
    """What a client raises for an error answer: redis-py's ResponseError, UpstashCommandError."""


QUOTA = "max requests limit exceeded. Limit: 500000, Usage: 500000. See https://upstash.com/..."


@pytest.mark.parametrize("message", [f"ERR {QUOTA}", QUOTA], ids=["over REST", "redis-py"])
def test_a_refusal_opens_it_like_an_outage(clock, caplog, message):
    """An answer the backend names as a refusal (Upstash past its quota: every command refused
    until the quota resets) is an outage: one probe per window, not a miss per call."""
    breaker = make_breaker(clock, refusals={Refused: ("max requests limit exceeded",)})
    breaker.set("key", "old")
    breaker.guarded.fault = Refused(message)
    calls = len(breaker.guarded.calls)
    for _ in range(10):
        breaker.get("key")
        breaker.set("key", "new")
    assert len(breaker.guarded.calls) - calls == 1
    assert breaker.status()["last_error"] | {"at": None} == {
        "type": "Refused",
        "message": message,
        "at": None,
    }
    [logged] = [r for r in caplog.records if r.levelname in ("WARNING", "ERROR")]
    assert f"failed (Refused: {message})" in logged.getMessage()
    breaker.clock.advance(RETRY_AFTER)
    breaker.get("key")
    assert len(breaker.guarded.calls) - calls == 2, "one probe"
    breaker.guarded.fault = None
    breaker.clock.advance(RETRY_AFTER)
    assert breaker.get("key") is None, "the write made meanwhile was replayed"
    assert breaker.status()["breaker"] == "closed"


@pytest.mark.parametrize(
    "message",
    ["ERR wrong number of arguments", "WRONGTYPE Operation", "ERR a: max requests limit exceeded"],
)
def test_another_answer_of_that_type_is_a_miss_for_that_call(clock, message):
    breaker = make_breaker(clock, refusals={Refused: ("max requests limit exceeded",)})
    breaker.guarded.faults = {"get": Refused(message)}
    assert breaker.get("key") is None
    assert breaker.status()["breaker"] == "closed"


def test_status_hides_secrets_and_hosts_the_log_hides_secrets(clock, caplog):
    """/health is public: the server's host names are hidden there too. The error log is not:
    it names the host, as it did before."""
    host = "eu1-example-12345.upstash.io"
    breaker = make_breaker(clock, secrets=["hunter2"], hosts=[host])
    breaker.guarded.fault = Down(f"AUTH hunter2 refused by {host}:6379\r\n\tsecond line \x1b[31m")
    breaker.get("key")
    message = breaker.status()["last_error"]["message"]
    assert message == "AUTH *** refused by ***:6379 second line \\x1b[31m"
    [logged] = records(caplog, "failed (Down: AUTH *** refused by")
    assert host in logged.getMessage() and "hunter2" not in logged.getMessage()


def test_per_call_errors_are_logged_at_most_once_a_minute(breaker, caplog):
    breaker.guarded.faults = {"get": ValueError("OOM command not allowed")}
    for _ in range(1000):
        breaker.get("key")
    assert len(records(caplog, "OOM")) == 1
    breaker.clock.advance(60)
    breaker.get("key")
    [_, later] = records(caplog, "OOM")
    assert "(999 more since the last line)" in later.getMessage()


def test_the_replay_deletes_without_rechecking(breaker):
    """cachelib's delete_many re-reads each key and raises if another worker re-cached one
    meanwhile, skipping the rest; the replay uses unlink (UNLINK/DEL), in batches."""
    breaker.set_many({f"k{i}": "old" for i in range(1200)})
    trip(breaker)
    for i in range(1200):
        breaker.delete(f"k{i}")
    breaker.guarded.fault = None
    breaker.guarded.faults = {"delete_many": RuntimeError("Failed to delete keys")}
    breaker.clock.advance(RETRY_AFTER)
    breaker.get("probe")
    assert breaker.status()["breaker"] == "closed"
    assert breaker.get_many(*(f"k{i}" for i in range(1200))) == [None] * 1200
    assert breaker.guarded.calls.count("unlink") == 3  # 1,200 keys in batches of 500


def test_a_failed_replay_keeps_it_open_with_every_key_pending(breaker, caplog):
    breaker.set_many({"a": "old", "b": "old"})
    trip(breaker)
    breaker.delete_many("a", "b")
    breaker.guarded.fault = None
    breaker.guarded.faults = {"unlink": Down("reset by peer")}
    breaker.clock.advance(RETRY_AFTER)
    breaker.get("probe")
    assert breaker.status()["breaker"] == "open"
    assert breaker.pending_deletes == {"a", "b"}
    breaker.guarded.faults = {}
    breaker.clock.advance(RETRY_AFTER)
    assert breaker.get_many("a", "b") == [None, None]
    assert breaker.status()["breaker"] == "closed"
    assert len(records(caplog, "serving from the in-process simple cache")) == 1


def test_errors_are_logged_without_the_backends_secrets(clock, caplog):
    """A non-Latin-1 character in a token: http.client's UnicodeEncodeError quotes the whole
    header in its repr; a password can be in a library's message too."""
    token = "AXr\u200bSecretToken123"
    secret_breaker = make_breaker(clock, secrets=[token, "hunter2"])
    header = f"Bearer {token}"
    secret_breaker.guarded.faults = {
        "get": UnicodeEncodeError("latin-1", header, 10, 11, "ordinal not in range(256)")
    }
    secret_breaker.get("key")
    secret_breaker.guarded.fault = Down(f"AUTH hunter2 refused for {header}")
    secret_breaker.get("key")
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert len(caplog.records) == 2
    assert token not in logged and "hunter2" not in logged and "SecretToken" not in logged


def test_while_one_thread_probes_the_others_serve_from_the_fallback(breaker):
    trip(breaker)
    breaker.guarded.fault = None
    breaker.clock.advance(RETRY_AFTER)
    with probe_held(breaker):
        calls = len(breaker.guarded.calls)
        assert breaker.set("other", 1) and breaker.get("other") == 1  # the fallback, no waiting
        assert len(breaker.guarded.calls) == calls
    assert breaker.status()["breaker"] == "closed"


def test_each_opening_and_closing_is_logged_once_under_threads(breaker, caplog):
    """Many threads fail at the same moment (a threaded server): one line when it opens, one
    when it closes."""
    threads = 8
    breaker.guarded.delay = 0.002  # each thread is inside its call when the others fail
    for _ in range(30):
        breaker.guarded.fault = Down("refused")
        run_together(threads, lambda: breaker.get("key"))
        breaker.guarded.fault = None
        breaker.clock.advance(RETRY_AFTER)
        run_together(threads, lambda: breaker.get("key"))
        assert breaker.status()["breaker"] == "closed"
    assert len(records(caplog, "serving from the in-process simple cache")) == 30
    assert len(records(caplog, "is back; serving from it again")) == 30


def test_a_delete_made_during_the_probe_is_never_lost(breaker):
    """Another thread deletes while one probes: the delete goes to the fallback and must be
    replayed before the breaker closes. Rounds interleave the two at random."""
    sys.setswitchinterval(1e-6)
    breaker.guarded.delay = 0.001
    try:
        for round_ in range(200):
            breaker.guarded.fault = None
            breaker.set(f"k{round_}", "old")
            trip(breaker)
            breaker.guarded.fault = None
            breaker.clock.advance(RETRY_AFTER)
            key = f"k{round_}"
            run_together(2, lambda: breaker.get("probe"), lambda key=key: breaker.delete(key))
            if breaker.status()["breaker"] == "open":  # the delete came first and probed
                breaker.clock.advance(RETRY_AFTER)
                breaker.get("probe")
            assert SimpleCache.get(breaker.guarded, key) is None, f"round {round_}"
    finally:
        sys.setswitchinterval(0.005)


def run_together(count, *targets):
    """``count`` threads, released together, calling one or two ``targets`` in turn."""
    targets = targets * 2
    together = threading.Barrier(count)

    def run(target):
        together.wait()
        target()

    workers = [threading.Thread(target=run, args=(targets[i % 2],)) for i in range(count)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(10)


# Any error message (what a server or a library says, a token or password in it): one line of
# printable ASCII, bounded, the secrets gone. The secrets are drawn from letters that backslash
# escapes never make (no hex digit, x, u, U), so that one cannot appear out of an escape.
SECRET_LETTERS = "ghijklmnopqrstvwyzGHIJKLMNOPQRSTVWYZ"


@settings(max_examples=60, deadline=None, derandomize=True)
@example(before="", secret="hunterghij", after="\n" * 3 + "é" * 400)
@example(before="\u2028\x00\x85", secret="qwertyzqwz", after="\r\n\t\x7f\U0001f600")
@given(
    before=st.text(max_size=200),
    secret=st.text(st.sampled_from(SECRET_LETTERS), min_size=8, max_size=40),
    after=st.text(max_size=200),
)
def test_an_error_message_is_one_bounded_line_without_secrets(before, secret, after):
    message = error_message(RuntimeError(before + secret + after), [secret])
    assert secret not in message
    assert message.isascii() and message.isprintable(), repr(message)
    assert len(message) <= MAX_MESSAGE + len("...")
