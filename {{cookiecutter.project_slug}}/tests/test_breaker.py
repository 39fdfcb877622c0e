"""The breaker's logic, against a stub backend that fails on demand and a clock that moves only
when told: no servers, no sleeping. (OutageTests in common.py cut real servers.)"""

import logging
import threading

import pytest
from cachelib import SimpleCache

from {{ cookiecutter.package_name }}.cache.breaker import MAX_PENDING_KEYS, Breaker

RETRY_AFTER = 30
METHODS = ("get", "get_many", "get_dict", "has", "set", "add", "set_many", "delete")
METHODS += ("delete_many", "inc", "dec", "clear")


class Down(ConnectionError):
    """What the stub raises while it is down: one of the breaker's "unreachable" errors."""


class Stub(SimpleCache):
    """A working cache that raises ``fault`` on every call while one is set, and logs its calls."""

    def __init__(self):
        super().__init__()
        self.fault: Exception | None = None
        self.calls: list[str] = []


def _recorded(name):
    def method(self, *args, **kwargs):
        self.calls.append(name)
        if self.fault is not None:
            raise self.fault
        return getattr(SimpleCache, name)(self, *args, **kwargs)

    return method


for _name in METHODS:
    setattr(Stub, _name, _recorded(_name))


@pytest.fixture
def breaker(clock):
    guarded = Breaker(
        Stub(),
        name="stub",
        where="stub://example",
        unreachable=(Down,),
        retry_after=RETRY_AFTER,
        threshold=100,
        default_timeout=300,
        logger=logging.getLogger("test.breaker"),
    )
    guarded.clock = clock
    return guarded


def trip(breaker):
    breaker.backend.fault = Down("refused")
    breaker.get("trip")


def records(caplog, text):
    return [r for r in caplog.records if text in r.getMessage()]


def test_while_the_backend_works_every_call_goes_to_it(breaker):
    assert breaker.set("key", 1) and breaker.get("key") == 1
    assert breaker.backend.calls == ["set", "get"]
    assert breaker.status() == {"active": "stub", "breaker": "closed", "last_error": None}


def test_the_first_unreachable_error_opens_it_and_logs_once(breaker, caplog):
    breaker.set("key", "from the backend")
    breaker.backend.fault = Down("refused")
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
    calls = len(breaker.backend.calls)
    clock = breaker.clock
    clock.advance(RETRY_AFTER - 0.001)
    for _ in range(10):
        breaker.get("key")
    assert len(breaker.backend.calls) == calls


def test_one_call_probes_per_window_and_a_failed_probe_keeps_it_open(breaker, caplog):
    trip(breaker)
    calls = len(breaker.backend.calls)
    breaker.clock.advance(RETRY_AFTER)
    for _ in range(5):
        breaker.get("key")
    assert len(breaker.backend.calls) == calls + 1, "exactly one probe"
    assert breaker.status()["breaker"] == "open"
    assert len(records(caplog, "serving from the in-process simple cache")) == 1


def test_a_good_probe_closes_it_and_the_fallback_is_emptied(breaker, caplog):
    trip(breaker)
    breaker.set("key", "written during the outage")
    breaker.backend.fault = None
    breaker.clock.advance(RETRY_AFTER)
    assert breaker.get("other") is None  # the probe
    assert breaker.status()["breaker"] == "closed"
    assert breaker.local.get("key") is None
    assert len(records(caplog, "stub at stub://example is back")) == 1


def test_writes_and_deletes_made_while_open_are_deleted_before_it_serves(breaker):
    breaker.set_many({"deleted": "old", "rewritten": "old", "kept": "old", "counted": 1})
    breaker.backend.fault = Down("refused")
    breaker.delete("deleted")
    breaker.set("rewritten", "new, in this worker only")
    breaker.inc("counted")
    breaker.backend.fault = None
    breaker.clock.advance(RETRY_AFTER)
    assert breaker.get("deleted") is None
    assert breaker.get_many("rewritten", "counted", "kept") == [None, None, "old"]


def test_a_clear_made_while_open_is_replayed_as_a_clear(breaker):
    breaker.set("key", "old")
    breaker.backend.fault = Down("refused")
    breaker.clear()
    breaker.backend.fault = None
    breaker.clock.advance(RETRY_AFTER)
    assert breaker.get("key") is None
    assert "clear" in breaker.backend.calls


def test_too_many_pending_deletes_are_replayed_as_a_clear(breaker):
    breaker.set("untouched", "old")
    trip(breaker)
    for i in range(MAX_PENDING_KEYS + 1):
        breaker.delete(f"k{i}")
    breaker.backend.fault = None
    breaker.clock.advance(RETRY_AFTER)
    assert breaker.get("untouched") is None
    assert breaker.backend.calls.count("clear") == 1


def test_other_errors_are_a_miss_for_that_call_only(breaker, caplog):
    breaker.set("key", 1)
    breaker.backend.fault = ValueError("value too large")
    assert breaker.get("key") is None
    assert breaker.set("key", 2) is False
    assert breaker.status()["breaker"] == "closed"
    assert len(records(caplog, "failed on stub: ValueError('value too large')")) == 2
    breaker.backend.fault = None
    assert breaker.get("key") == 1


def test_while_one_thread_probes_the_others_serve_from_the_fallback(breaker):
    trip(breaker)
    breaker.backend.fault = None
    breaker.clock.advance(RETRY_AFTER)
    probing, release = threading.Event(), threading.Event()
    original = breaker.backend.get

    def slow_get(key):
        probing.set()
        release.wait(5)
        return original(key)

    breaker.backend.get = slow_get
    prober = threading.Thread(target=breaker.get, args=("key",))
    prober.start()
    assert probing.wait(5)
    calls = len(breaker.backend.calls)
    assert breaker.set("other", 1) and breaker.get("other") == 1  # the fallback, no waiting
    assert len(breaker.backend.calls) == calls
    release.set()
    prober.join(5)
    assert breaker.status()["breaker"] == "closed"
