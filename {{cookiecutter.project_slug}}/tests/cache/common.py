"""Behaviour tests every backend passes, shaped like cachelib's own: each test_<backend>.py
mixes in the classes that apply to it and provides a ``cache_factory`` fixture, which returns a
new app's cache backend as its views use it (behind the breaker, for a shared backend).
"""

import logging
import os
import pickle
import re
import socket
import threading
import time
import uuid
from datetime import datetime, timezone

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from .conftest import cache_behind, make_app
from .sample_pages import square
from .upstash_server import TOKEN

# cachelib's sample values, and some that are hard for a backend that stores text: bytes that
# are not UTF-8, non-ASCII text, an aware datetime.
SAMPLE = {
    "128": False,
    "beef": True,
    "crevettes": {},
    "1024": "spam",
    "sausage": 2048,
    "3072": [],
    "brandy": [{}, "fried eggs"],
    "4096": {"sauce": [], 256: "truffle"},
    "every-byte": bytes(range(256)),
    "text": "héllo wörld ✓",
    "when": datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc),
}
NUMBERS = [0, 10, 1024000, 9, 5000000000000, 99, 738, 2000000]

# Hostile input, from the attacker's side: few examples, derandomized so CI is stable (and no
# example database, so the mixins' tests, run by each backend's class, cannot mix them up); the
# app and its cache are built once per test, not once per example.
ATTACK = settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.differing_executors],
)
# What another writer can leave under a key: cachelib's unsigned forms (an integer's digits,
# "!" and a pickle), anything behind that "!" mark, and any bytes at all.
DIGITS = st.integers().map(lambda n: str(n).encode())
PLANTED = st.one_of(
    DIGITS,
    st.builds(lambda value: b"!" + pickle.dumps(value), st.integers() | st.text(max_size=20)),
    st.binary(max_size=80).map(lambda data: b"!" + data),
    st.binary(max_size=200),
)
# Every key an app can make: a view's from any URL path (Werkzeug decodes it to any text), a
# memoized function's from its name and the repr of its arguments, and whatever is passed to
# cache.get/set: text with lone surrogates, controls, spaces and '!', long or empty, and objects
# that are not str at all.
_SURROGATES = st.integers(0xD800, 0xDFFF).map(chr)
_ANY_CHARACTER = st.characters() | _SURROGATES | st.sampled_from(" !\x00\n\x7f")
_LONG = st.text(_ANY_CHARACTER, min_size=240, max_size=1100)
_ANY_TEXT = st.text(_ANY_CHARACTER, max_size=30) | _LONG
KEYS = st.one_of(
    _ANY_TEXT,
    _ANY_TEXT.map(lambda path: f"view//blog/{path}"),
    st.builds(repr, st.text() | st.integers() | st.binary(max_size=10)),
    st.integers() | st.floats() | st.booleans() | st.none() | st.binary(max_size=20),
    st.tuples(st.integers(), st.text(max_size=5)),
)


class CommonTests:
    """get, set, add and delete, single and many; has; inc and dec."""

    def test_set_get(self, cache_factory):
        cache = cache_factory()
        for key, value in SAMPLE.items():
            assert cache.set(key, value)
            assert cache.get(key) == value
        assert cache.get("missing") is None

    def test_set_get_many(self, cache_factory):
        cache = cache_factory()
        assert cache.set_many(SAMPLE) == list(SAMPLE)
        assert cache.get_many(*SAMPLE) == list(SAMPLE.values())
        assert cache.get_many("missing", "128") == [None, False]

    def test_get_dict(self, cache_factory):
        cache = cache_factory()
        cache.set_many(SAMPLE)
        assert cache.get_dict(*SAMPLE) == SAMPLE

    def test_has(self, cache_factory):
        cache = cache_factory()
        cache.set_many(SAMPLE)
        assert all(cache.has(key) for key in SAMPLE)
        assert not cache.has("missing")
        assert cache.get_many(*SAMPLE) == list(SAMPLE.values()), "has() changes nothing"

    def test_add_never_overwrites(self, cache_factory):
        cache = cache_factory()
        cache.set_many(SAMPLE)
        for key in SAMPLE:
            assert not cache.add(key, "updated")
        assert cache.get_many(*SAMPLE) == list(SAMPLE.values())
        assert cache.add("new", 1)
        assert cache.get("new") == 1

    def test_delete(self, cache_factory):
        cache = cache_factory()
        for key, value in SAMPLE.items():
            cache.set(key, value)
            assert cache.delete(key)
            assert cache.get(key) is None
            assert not cache.has(key)

    def test_delete_many(self, cache_factory):
        cache = cache_factory()
        cache.set_many(SAMPLE)
        assert cache.delete_many(*SAMPLE) == list(SAMPLE)
        assert cache.get_many(*SAMPLE) == [None] * len(SAMPLE)

    def test_delete_many_deletes_every_key_after_a_missing_one(self, cache_factory):
        # Flask-Caching 2.4 (the last for Python 3.10) stopped at the missing key.
        cache = cache_factory()
        cache.set_many(SAMPLE)
        cache.delete_many("never-set", *SAMPLE)
        assert cache.get_many(*SAMPLE) == [None] * len(SAMPLE)

    def test_inc_dec(self, cache_factory):
        cache = cache_factory()
        for n in NUMBERS:
            assert cache.inc(f"{n}-inc", n) == n
            assert cache.get(f"{n}-inc") == n
            assert cache.dec(f"{n}-dec", n) == -n
            assert cache.dec(f"{n}-inc", 5) == n - 5

    def test_inc_dec_after_set(self, cache_factory):
        cache = cache_factory()
        assert cache.set("count", 10)
        assert cache.inc("count", 5) == 15
        assert cache.dec("count", 3) == 12
        assert cache.get("count") == 12


class ClearTests:
    """clear() removes this app's entries, and nobody else's."""

    def test_clear_keeps_other_apps_entries(self, cache_factory, tmp_path):
        # Glob characters in the prefix: an unescaped SCAN pattern would match the other app's.
        mine = cache_factory(CACHE_KEY_PREFIX="te*t:", CACHE_THRESHOLD="5000")
        other = cache_factory(CACHE_KEY_PREFIX="tenant:", CACHE_DIR=str(tmp_path / "other"))
        other.set("kept", "theirs")
        mine.set_many({f"k{i}": i for i in range(600)})  # more than one SCAN/UNLINK batch
        assert mine.clear()
        assert mine.get_many("k0", "k599") == [None, None]
        assert other.get("kept") == "theirs"
        assert mine.set("k0", "again") and mine.get("k0") == "again"


class Planted:
    """Unpickling this creates a folder: the proof that planted code ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


class SignedTests:
    """A value the app did not write is a miss, never unpickled. Needs a ``raw`` fixture: the
    stored bytes of a key, read and written past the app, as another writer would."""

    def test_a_planted_pickle_is_never_run(self, cache_factory, raw, tmp_path):
        cache = cache_factory()
        cache.set("key", "mine")
        marker = tmp_path / "planted-code-ran"
        planted = pickle.dumps(Planted(marker))
        raw.set(cache, "key", raw.frame + planted)

        assert cache.get("key") is None
        assert not marker.exists(), "the planted pickle was unpickled"
        pickle.loads(planted)  # noqa: S301 - the control: this payload does run when unpickled
        assert marker.exists()

    def test_a_page_planted_under_a_views_key_is_computed_again(
        self, raw, server_settings, tmp_path
    ):
        app = make_app(tmp_path, **server_settings(self.backend))
        client = app.test_client()
        first = client.get("/sample").get_data(as_text=True)
        marker = tmp_path / "planted-code-ran"
        raw.set(cache_behind(app), "view//sample", raw.frame + pickle.dumps(Planted(marker)))

        second = client.get("/sample").get_data(as_text=True)
        assert not marker.exists(), "the planted pickle was unpickled"
        assert second != first, "the planted entry is a miss: the page is computed again"
        assert client.get("/sample").get_data(as_text=True) == second, "and cached again"

    def test_one_flipped_byte_is_a_miss(self, cache_factory, raw):
        cache = cache_factory()
        cache.set("key", {"a": "value"})
        stored = bytearray(raw.get(cache, "key"))
        stored[len(stored) // 2] ^= 0x01
        raw.set(cache, "key", bytes(stored))
        assert cache.get("key") is None

    def test_a_new_signing_key_turns_entries_into_misses_logged_once(
        self, cache_factory, tmp_path, caplog
    ):
        prefix = f"rotation-{uuid.uuid4().hex[:8]}:"  # a fresh one: no entry from another run
        shared = {"CACHE_KEY_PREFIX": prefix, "CACHE_DIR": str(tmp_path / "shared")}
        old = cache_factory(CACHE_SIGNING_KEY="old key", **shared)
        old.set_many({"a": "one", "b": "two"})
        assert cache_factory(CACHE_SIGNING_KEY="old key", **shared).get("a") == "one"
        new = cache_factory(CACHE_SIGNING_KEY="new key", **shared)
        assert new.get_many("a", "b") == [None, None]
        warnings = [r for r in caplog.records if "failed its signature check" in r.getMessage()]
        assert len(warnings) == 1

    def test_secret_key_signs_when_no_signing_key_is_set(self, cache_factory, tmp_path):
        prefix = f"secret-{uuid.uuid4().hex[:8]}:"  # a fresh one: no entry from another run
        shared = {"CACHE_KEY_PREFIX": prefix, "CACHE_DIR": str(tmp_path / "shared")}
        cache_factory(**shared).set("a", "one")
        assert cache_factory(**shared).get("a") == "one"
        assert cache_factory(SECRET_KEY="another secret", **shared).get("a") is None

    def test_an_integer_is_stored_signed(self, cache_factory, raw):
        cache = cache_factory()
        cache.set("count", 41)
        stored = raw.get(cache, "count")
        assert not re.fullmatch(rb"-?\d+", stored), "an integer is signed, not plain digits"
        assert cache.inc("count") == 42
        stored = bytearray(raw.get(cache, "count"))
        stored[-1] ^= 0x01
        raw.set(cache, "count", bytes(stored))
        assert cache.get("count") is None

    def test_inc_of_a_value_that_is_not_a_number_is_refused(self, cache_factory):
        cache = cache_factory()
        cache.set("text", "x")
        assert cache.inc("text") is None, "as Redis INCR refuses it: None, cachelib's not done"
        assert cache.get("text") == "x", "a refused inc wrote nothing: the value is kept"

    @pytest.fixture
    def attacked(self, tmp_path, server_settings):
        """An app on this backend and its cache, built once for all of a test's examples."""
        app = make_app(tmp_path, **server_settings(self.backend))
        return app, cache_behind(app)

    @pytest.fixture
    def patient(self, tmp_path, server_settings):
        """As ``attacked``, with the longest socket timeout: the test needs the app's own entry
        on the server, which a slow answer on a loaded machine would send to the fallback."""
        app = make_app(tmp_path, CACHE_SOCKET_TIMEOUT="5", **server_settings(self.backend))
        return app, cache_behind(app)

    @ATTACK
    @given(data=st.data())
    def test_whatever_is_planted_under_a_pages_key_the_page_is_served(self, attacked, raw, data):
        app, cache = attacked
        planted = data.draw(raw.planted(), label="planted")
        client = app.test_client()
        client.get("/sample")
        raw.plant(cache, "view//sample", planted)

        response = client.get("/sample")
        assert response.status_code == 200
        page = response.get_data(as_text=True)
        assert "<h1>Cached page</h1>" in page
        assert client.get("/sample").get_data(as_text=True) == page, "and cached again"

    @ATTACK
    @given(data=st.data())
    def test_whatever_is_planted_under_a_memoized_key_the_real_result_is_returned(
        self, attacked, raw, data
    ):
        app, cache = attacked
        n = data.draw(st.integers(0, 10**6), label="n")
        planted = data.draw(raw.planted(), label="planted")
        client = app.test_client()
        assert client.get(f"/sample/square/{n}").get_json() == {"n": n, "square": n * n}
        with app.app_context():
            key = square.make_cache_key(square.uncached, n)
        raw.plant(cache, key, planted)

        response = client.get(f"/sample/square/{n}")
        assert response.status_code == 200
        assert response.get_json() == {"n": n, "square": n * n}

    @ATTACK
    @given(m=st.integers(0, 10**6), n=st.integers(0, 10**6))
    def test_an_entry_the_app_wrote_copied_under_another_key_is_a_miss(self, patient, raw, m, n):
        """Signed with the name it is stored under: the app's own memoized number copied under
        a page's key, or under another argument's, is recomputed, never served."""
        assume(m != n)
        app, cache = patient
        client = app.test_client()
        for path in (f"/sample/square/{m}", f"/sample/square/{n}", "/sample"):
            assert client.get(path).status_code == 200
        with app.app_context():
            number = raw.get(cache, square.make_cache_key(square.uncached, m))
            assert number, "the app's own entry is on the server"
            raw.set(cache, square.make_cache_key(square.uncached, n), number)
        raw.set(cache, "view//sample", number)

        page = client.get("/sample")
        assert page.status_code == 200
        assert "<h1>Cached page</h1>" in page.get_data(as_text=True)
        assert client.get(f"/sample/square/{n}").get_json() == {"n": n, "square": n * n}

    @ATTACK
    @given(data=st.data(), deltas=st.lists(st.integers(-(2**40), 2**40), max_size=4))
    def test_a_planted_counter_counts_from_zero(self, attacked, raw, data, deltas):
        _, cache = attacked
        planted = data.draw(raw.planted(), label="planted")
        cache.delete("count")
        raw.plant(cache, "count", planted)
        assert cache.get("count") is None, "a value the app did not write is a miss"
        total = 0
        for delta in deltas:
            total += delta
            if delta >= 0:
                assert cache.inc("count", delta) == total
            else:
                assert cache.dec("count", -delta) == total
        assert cache.get("count") == (total if deltas else None)


class AtomicCounterTests:
    """inc and dec are atomic across workers: each worker here is an app of its own."""

    WORKERS, INCREMENTS = 4, 25

    def test_concurrent_increments_are_all_counted(self, cache_factory):
        shared = {"CACHE_KEY_PREFIX": f"counter-{uuid.uuid4().hex[:8]}:"}
        workers = [cache_factory(**shared) for _ in range(self.WORKERS)]
        seen: list[int] = []
        start = threading.Barrier(self.WORKERS)

        def work(cache):
            start.wait()
            seen.extend(cache.inc("hits") for _ in range(self.INCREMENTS))

        threads = [threading.Thread(target=work, args=(cache,)) for cache in workers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        total = self.WORKERS * self.INCREMENTS
        assert sorted(seen) == list(range(1, total + 1)), "each increment counted, once"
        assert workers[0].get("hits") == total
        assert workers[0].dec("hits", total) == 0


def race(racers, name: str, seconds: float) -> int:
    """Each of ``racers`` (caches) asks for the lock ``name`` in a thread of its own, all
    released together: how many got it."""
    start, won = threading.Barrier(len(racers)), []

    def take(cache):
        start.wait()
        won.append(cache.lock(name, seconds))

    threads = [threading.Thread(target=take, args=(cache,)) for cache in racers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(won) == len(racers), "every racer answered"
    for cache in racers:
        assert cache.status()["breaker"] == "closed", cache.status()["last_error"]
    return sum(won)


def races_until_won(racers, name: str, seconds: float) -> list[int]:
    """race() again and again, all racers together, until one of them gets the lock: the number
    of winners of each race. A guard fails the test if none ever does."""
    deadline, winners = time.monotonic() + 30, []
    while not (winners and winners[-1]):
        assert time.monotonic() < deadline, "the lock never expired"
        if winners:
            time.sleep(0.02)
        winners.append(race(racers, name, seconds))
    return winners


class LockTests:
    """lock() and unlock(): taken atomically with the backend's own operation, refused while
    held, expiring by itself. The test class says whether its locks are ``per_worker`` (the
    simple cache: its worker's threads compete) or shared by the workers of an app (each worker
    here an app of its own on the same keys). A lock's expiry is waited out, never timed."""

    per_worker = False
    RACERS, ROUNDS = 4, 20
    SHORT = 1.0  # seconds of a lock that a test waits out

    @pytest.fixture
    def lockers(self, cache_factory):
        """lockers(count): the caches of ``count`` workers competing for the same locks. With
        the longest socket timeout: on a loaded machine, a slow answer would open a breaker,
        and its worker would lock in its own memory (as it must), a second winner."""

        def lockers(count: int) -> list:
            if self.per_worker:
                return [cache_factory()] * count
            prefix = f"locks-{uuid.uuid4().hex[:8]}:"
            return [
                cache_factory(CACHE_KEY_PREFIX=prefix, CACHE_SOCKET_TIMEOUT="5")
                for _ in range(count)
            ]

        return lockers

    def test_a_held_lock_is_refused_until_released(self, lockers):
        mine, theirs = lockers(2)
        assert mine.lock("page.lock", 60)
        assert not mine.lock("page.lock", 60) and not theirs.lock("page.lock", 60)
        assert theirs.lock("other.lock", 60), "each name is a lock of its own"
        mine.unlock("page.lock")
        assert theirs.lock("page.lock", 60) and not mine.lock("page.lock", 60)
        theirs.unlock("page.lock")
        theirs.unlock("page.lock")  # released already: nothing happens
        mine.unlock("never.lock")
        assert mine.lock("page.lock", 60)
        assert mine.status()["breaker"] == "closed", mine.status()["last_error"]

    def test_of_workers_racing_for_a_lock_exactly_one_gets_it(self, lockers):
        racers = lockers(self.RACERS)
        winners = [race(racers, f"race-{n}.lock", 60) for n in range(self.ROUNDS)]
        assert winners == [1] * self.ROUNDS

    def test_a_dead_holders_lock_expires_and_one_worker_takes_it(self, lockers):
        """Its holder never releases it (it died): refused until it expires by itself, then
        exactly one of the workers racing for it gets it."""
        holder, *racers = lockers(1 + self.RACERS)
        started = time.monotonic()
        assert holder.lock("page.lock", self.SHORT)
        first = race(racers, "page.lock", 60)
        if time.monotonic() - started < self.SHORT:  # (a stalled machine may take longer)
            assert first == 0, "held until it expires"
        winners = [first] if first else races_until_won(racers, "page.lock", 60)
        assert winners[-1] == 1, winners
        assert race([holder, *racers], "page.lock", 60) == 0, "the winner holds it"

    def test_a_lock_is_never_read_as_an_entry(self, cache_factory, caplog):
        cache = cache_factory()
        cache.set("page", "cached")
        assert cache.lock("page.lock", 60)
        assert cache.get("page.lock") is None
        assert cache.get_many("page", "page.lock") == ["cached", None]
        assert not [r for r in caplog.records if "signature" in r.getMessage()], "no warning"
        cache.unlock("page.lock")
        assert cache.get("page") == "cached"
        assert cache.status()["breaker"] == "closed", cache.status()["last_error"]

    @pytest.mark.parametrize("seconds", [0, -1, float("nan"), float("inf"), "10"])
    def test_a_lock_that_would_never_expire_is_refused(self, cache_factory, seconds):
        cache = cache_factory()
        with pytest.raises(ValueError, match="a lock lasts a number of seconds above 0"):
            cache.lock("page.lock", seconds)
        assert cache.lock("page.lock", 60), "nothing was taken"


class KeyTests:
    """Every key an app can make works on the backend, and reads back under its str(): a key no
    backend could store must not fail its calls, nor open the breaker (cache/keys.py)."""

    @pytest.fixture
    def keyed(self, cache_factory):
        return cache_factory()  # one app for all of a test's examples

    @ATTACK
    @given(key=KEYS)
    def test_every_key_an_app_can_make_is_stored_read_and_deleted(self, keyed, key):
        cache = keyed
        assert cache.set(key, "value")
        assert cache.get(key) == "value" and cache.has(key)
        assert cache.get(str(key)) == "value", "a key is its str(), as on the server"
        assert cache.get_many(key) == ["value"] and cache.get_dict(key) == {key: "value"}
        assert cache.set_many({key: "many"}) == [key] and cache.get(key) == "many"
        assert cache.delete(key) and cache.get(key) is None and not cache.has(key)
        assert cache.add(key, 1) and cache.inc(key) == 2 and cache.dec(key) == 1
        cache.delete_many(key)
        assert cache.get(key) is None
        assert cache.status()["breaker"] == "closed", cache.status()["last_error"]

    @ATTACK
    @given(key=KEYS)
    def test_every_key_an_app_can_make_names_a_lock(self, keyed, key):
        cache = keyed
        assert cache.lock(key, 60) and not cache.lock(key, 60)
        assert not cache.lock(str(key), 60), "a lock is named by its key's str(), as an entry"
        assert cache.get(key) is None, "a lock is not an entry"
        cache.unlock(key)
        assert cache.lock(str(key), 60)
        cache.unlock(str(key))
        assert cache.status()["breaker"] == "closed", cache.status()["last_error"]


class OutageTests:
    """A server that goes away, hangs or never was: no call fails, no invalidation is lost.
    The test class names its ``backend``; the ``outage`` fixture puts a relay in front of its
    server that the test cuts and restores, and the breaker's clock is the test's."""

    RETRY_AFTER = 30

    def test_every_call_survives_an_outage(self, outage):
        cache, relay, clock = outage
        assert cache.set("key", "before")
        relay.cut()
        assert cache.get("key") is None  # the fallback starts empty
        assert cache.set("key", "during") and cache.get("key") == "during"
        assert cache.has("key")
        assert not cache.add("key", "again")
        assert cache.set_many({"a": 1, "b": 2}) and cache.get_many("a", "b") == [1, 2]
        assert cache.get_dict("a") == {"a": 1}
        assert cache.inc("n") == 1 and cache.dec("n") == 0
        assert cache.delete("key")
        cache.delete_many("a", "b")
        assert cache.clear()
        status = cache.status()
        assert (status["active"], status["breaker"]) == ("simple", "open")
        assert status["last_error"]["type"]
        assert isinstance(status["last_error"]["message"], str)  # pymemcache's may be empty
        # /health is public: the server's address is hidden (the log line keeps it).
        assert "127.0.0.1" not in status["last_error"]["message"]

    def test_the_server_serves_again_after_retry_after(self, outage):
        cache, relay, clock = outage
        relay.cut()
        cache.set("key", 1)
        relay.restore()
        clock.advance(self.RETRY_AFTER - 1)
        cache.get("key")
        assert cache.status()["breaker"] == "open", "no probe before CACHE_RETRY_AFTER"
        clock.advance(1)
        assert cache.set("key", 2)  # this call probes, finds the server back, and uses it
        assert cache.status() | {"last_error": None, "near": None} == {
            "active": cache.name,
            "breaker": "closed",
            "last_error": None,
            "near": None,
        }
        assert cache.get("key") == 2

    def test_no_invalidation_is_lost_in_an_outage(self, outage):
        cache, relay, clock = outage
        cache.set_many({"deleted": "old", "rewritten": "old", "cleared": "old"})
        relay.cut()
        cache.delete("deleted")
        cache.set("rewritten", "new, only in this worker")
        relay.restore()
        clock.advance(self.RETRY_AFTER)
        assert cache.get("deleted") is None
        assert cache.get("rewritten") is None
        assert cache.get("cleared") == "old"
        relay.cut()
        cache.clear()
        relay.restore()
        clock.advance(self.RETRY_AFTER)
        assert cache.get("cleared") is None

    @ATTACK
    @given(keys=st.lists(KEYS, min_size=1, max_size=4))
    def test_any_key_written_in_an_outage_is_replayed_and_the_server_serves_again(
        self, outage, keys
    ):
        """A key the backend could not store would fail its replay at every probe: the breaker
        would stay open, the worker cut off from the shared cache until a reload."""
        cache, relay, clock = outage
        assert cache.set(keys[0], "before") and cache.get(keys[0]) == "before"
        relay.cut()
        for key in keys:
            assert cache.set(key, "during")
        relay.restore()
        clock.advance(self.RETRY_AFTER)
        assert cache.get(keys[0]) is None, "the value written in the outage is deleted"
        assert cache.status()["breaker"] == "closed", cache.status()["last_error"]
        assert cache.set(keys[0], "after") and cache.get(keys[0]) == "after"

    @pytest.mark.parametrize("reset", [False, True], ids=["closed", "reset"])
    def test_a_connection_closed_while_idle_is_not_an_outage(self, outage, caplog, reset):
        """A server's idle timeout (memcached's -o idle_timeout, Redis's timeout, a hosted
        plan's) closes the connection a worker kept between requests, or a firewall that forgot
        it resets it: its next call opens a new one, and the site keeps its shared cache."""
        cache, relay, clock = outage
        assert cache.set("key", "value") and cache.get("key") == "value"
        relay.cut(reset=reset)  # every open connection closed or reset...
        relay.restore()  # ...while the server is still there
        assert cache.get("key") == "value"
        assert cache.status()["breaker"] == "closed", cache.status()["last_error"]
        assert not [r for r in caplog.records if "serving from the in-process" in r.message]

    def test_the_probe_asks_the_server_not_the_near_cache(self, outage):
        """With CACHE_NEAR_TTL, a value read before the outage is in the worker's memory: a probe
        it answered would count a dead server as back."""
        cache, relay, clock = outage
        assert cache.set("key", "before") and cache.get("key") == "before"
        assert cache.get("key") == "before"  # from memory, with a near cache
        relay.cut()
        assert cache.get("another") is None  # from the server: it fails, the breaker opens
        clock.advance(self.RETRY_AFTER)
        cache.get("key")  # the probe
        assert cache.status()["breaker"] == "open", "the server is still away"

    def test_a_shared_counter_and_another_process_lock_survive_an_outage(
        self, outage, outage_prefix, new_app_cache, server_settings
    ):
        """During an outage inc() counts and add() locks in this worker's memory only: once the
        server is back, it still holds its counter and another process's lock, and this worker
        counts on from the server's value (docs/caching.md, "When the server is down")."""
        cache, relay, clock = outage
        other = new_app_cache(  # another process, on the same server and keys
            **server_settings(self.backend),
            CACHE_KEY_PREFIX=outage_prefix,
            CACHE_NEAR_TRACKING="off",
        )
        assert other.inc("counter", 1000) == 1000
        assert other.add("lock", "held by another process")
        relay.cut()
        assert cache.inc("counter") == 1, "counted in this worker's memory"
        assert cache.add("lock", "this worker's"), "a lock in this worker's memory"
        assert cache.status()["breaker"] == "open"
        relay.restore()
        clock.advance(self.RETRY_AFTER)
        assert cache.inc("counter") == 1001  # the probe, on the server
        assert cache.status()["breaker"] == "closed"
        assert cache.get("lock") == "held by another process"
        assert not cache.add("lock", "this worker's")
        assert other.get_many("counter", "lock") == [1001, "held by another process"]

    def test_in_an_outage_locks_are_this_workers_and_never_reach_the_server(
        self, outage, outage_prefix, new_app_cache, server_settings
    ):
        """While the breaker is open, a lock is taken in this worker's memory: refused to its
        other requests, unknown to the server, never replayed; released there too, after the
        server is back, where it would release another process's lock."""
        cache, relay, clock = outage
        other = new_app_cache(  # another process, on the same server and keys
            **server_settings(self.backend),
            CACHE_KEY_PREFIX=outage_prefix,
            CACHE_NEAR_TRACKING="off",
        )
        assert other.lock("theirs.lock", 600)
        relay.cut()
        assert cache.lock("theirs.lock", 600), "a lock in this worker's memory"
        assert not cache.lock("theirs.lock", 600)
        assert cache.lock("mine.lock", 600)
        assert cache.status()["breaker"] == "open"
        relay.restore()
        clock.advance(self.RETRY_AFTER)
        assert cache.get("probe") is None
        assert cache.status()["breaker"] == "closed"
        assert not cache.lock("mine.lock", 600), "still held by this worker"
        cache.unlock("theirs.lock")
        cache.unlock("mine.lock")
        assert not other.lock("theirs.lock", 600), "the other process still holds it"
        assert not cache.lock("theirs.lock", 600), "asked of the server now: held there"
        assert other.lock("mine.lock", 600), "a lock taken in the outage never reached it"

    def test_each_change_of_state_is_logged_once(self, outage, caplog):
        cache, relay, clock = outage
        caplog.set_level(logging.WARNING)
        relay.cut()
        for _ in range(20):
            cache.get("key")
        clock.advance(self.RETRY_AFTER)
        for _ in range(20):
            cache.get("key")  # one probe fails; still open, nothing new to say
        relay.restore()
        clock.advance(self.RETRY_AFTER)
        for _ in range(20):
            cache.get("key")
        failed = [r for r in caplog.records if "serving from the in-process simple" in r.message]
        back = [r for r in caplog.records if "is back; serving from it again" in r.message]
        assert (len(failed), len(back)) == (1, 1)
        assert "127.0.0.1" in failed[0].message

    def test_unreachable_from_the_start(self, new_app_cache, server_settings):
        with socket.socket() as probe:  # a port nothing listens on
            probe.bind(("127.0.0.1", 0))
            closed = probe.getsockname()[1]
        cache = new_app_cache(**server_settings(self.backend, port=closed))
        assert cache.get("key") is None
        assert cache.set("key", 1) and cache.get("key") == 1
        assert cache.status()["active"] == "simple"

    def test_a_hung_server_costs_one_timeout_per_window(
        self, new_app_cache, server_settings, hung_server, clock
    ):
        """Counted, not timed: each call that waits on the server is a connection it accepted."""
        cache = new_app_cache(
            **server_settings(self.backend, port=hung_server.port),
            CACHE_SOCKET_TIMEOUT="0.1",
            CACHE_RETRY_AFTER="30",
        )
        cache.clock = clock
        waits = []
        for _window in range(3):
            for _call in range(10):
                started = time.monotonic()
                assert cache.get("key") is None
                waits.append(time.monotonic() - started)
            assert cache.status()["breaker"] == "open"
            clock.advance(30)
        assert hung_server.settled() == 3, "one call per window waited on the server, once"
        assert max(waits) < 5, "no call hangs (the clients' own timeouts and retries are off)"


class QuotaTests:
    """Upstash past its monthly quota answers every command with an error, over REST and over the
    Redis protocol alike (upstash_server.py, upstash_redis.py): the site stays up, /health gives
    the server's message, each worker sends one command per CACHE_RETRY_AFTER while it lasts,
    and the cache serves again once the quota resets. The ``over_quota`` fixture points the test
    class's backend at a stand-in whose commands are counted; the breakers' clock is the test's,
    installed before their first call."""

    RETRY_AFTER = 30
    WORKERS = 2
    PAGES = ("/sample", "/sample/square/3", "/sample/plain", "/health")

    @pytest.fixture
    def workers(self, over_quota, tmp_path, clock):
        """(clients, quota): WORKERS apps sharing a prefix on the stand-in, as web workers."""
        settings, quota = over_quota
        prefix = f"quota-{uuid.uuid4().hex[:8]}:"
        clients = []
        for number in range(self.WORKERS):
            app = make_app(
                tmp_path / str(number),
                **settings,
                CACHE_KEY_PREFIX=prefix,
                CACHE_RETRY_AFTER=str(self.RETRY_AFTER),
            )
            cache_behind(app).clock = clock
            clients.append(app.test_client())
        return clients, quota

    def visit_all(self, clients, times: int = 3) -> None:
        for _ in range(times):
            for client in clients:
                for path in self.PAGES:
                    assert client.get(path).status_code == 200, path

    def test_past_the_quota_the_site_serves_and_health_says_why(self, workers, clock, caplog):
        clients, quota = workers
        self.visit_all(clients, times=1)  # served from Upstash
        assert all(c.get("/health").get_json()["cache"]["breaker"] == "closed" for c in clients)
        caplog.clear()
        quota.use_up()
        sent = quota.commands

        self.visit_all(clients)

        assert quota.commands - sent == self.WORKERS, "one command each, the one refused"
        for client in clients:
            health = client.get("/health")
            cache = health.get_json()["cache"]
            assert (cache["active"], cache["breaker"]) == ("simple", "open")
            error = cache["last_error"]
            assert error["type"] in ("ResponseError", "UpstashCommandError")
            assert re.fullmatch(
                r"(ERR )?max requests limit exceeded\. Limit: \d+, Usage: \d+\. See "
                r"https://upstash\.com/docs/redis/troubleshooting/max_requests_limit for details",
                error["message"],
            ), error["message"]
            assert TOKEN not in health.get_data(as_text=True)
            assert "127.0.0.1" not in health.get_data(as_text=True)
        logged = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == self.WORKERS, logged  # one line per worker, and nothing else
        assert all("max requests limit exceeded" in r.getMessage() for r in errors), logged
        assert not [line for line in logged if "a miss" in line], logged

    def test_over_quota_each_worker_sends_one_command_per_window(self, workers, clock):
        clients, quota = workers
        self.visit_all(clients, times=1)
        quota.use_up()
        self.visit_all(clients)  # each worker's breaker opens
        for _ in range(3):
            sent = quota.commands
            clock.advance(self.RETRY_AFTER - 1)
            self.visit_all(clients)
            assert quota.commands == sent, "no command before CACHE_RETRY_AFTER"
            clock.advance(1)
            self.visit_all(clients)
            assert quota.commands - sent == self.WORKERS, "one probe per worker"

    def test_reads_alone_cost_one_command_per_window_too(self, over_quota, tmp_path, clock):
        """A worker that only reads (every page a hit) must not send a refused command per read,
        each one a miss, for the rest of the month: the first refusal opens the breaker."""
        settings, quota = over_quota
        cache = cache_behind(
            make_app(tmp_path, **settings, CACHE_RETRY_AFTER=str(self.RETRY_AFTER))
        )
        cache.clock = clock
        cache.set("page", "cached")
        quota.use_up()
        sent = quota.commands
        for _ in range(20):
            cache.get("page")
        assert quota.commands - sent == 1
        assert cache.status()["breaker"] == "open"
        quota.new_month()
        clock.advance(self.RETRY_AFTER)
        assert cache.get("page") == "cached", "served from Upstash again, where it stayed"

    def test_a_batch_the_quota_cuts_short_leaves_no_old_value(self, over_quota, tmp_path, clock):
        """set_many() is one pipeline: the quota may run out inside it, its first SET done and
        the others refused. None of the old values may be served afterwards."""
        settings, quota = over_quota
        cache = cache_behind(
            make_app(tmp_path, **settings, CACHE_RETRY_AFTER=str(self.RETRY_AFTER))
        )
        cache.clock = clock
        cache.set_many({"a": "old", "b": "old", "c": "old"})
        quota.use_up(but=1)
        cache.set_many({"a": "new", "b": "new", "c": "new"})
        assert cache.status()["breaker"] == "open"
        assert cache.get_many("a", "b", "c") == ["new"] * 3  # this worker's memory, meanwhile
        quota.new_month()
        clock.advance(self.RETRY_AFTER)
        assert cache.get_many("a", "b", "c") == [None] * 3, "deleted on Upstash before it serves"

    def test_once_the_quota_resets_the_cache_serves_again(self, workers, clock, caplog):
        clients, quota = workers
        self.visit_all(clients, times=1)
        quota.use_up()
        self.visit_all(clients)
        quota.new_month()
        clock.advance(self.RETRY_AFTER)
        self.visit_all(clients, times=2)  # each worker probes, replays and closes
        for client in clients:
            cache = client.get("/health").get_json()["cache"]
            assert (cache["breaker"], cache["active"]) == ("closed", cache["backend"])
        pages = {client.get("/sample").get_data(as_text=True) for client in clients}
        assert len(pages) == 1, "every worker serves the page from the shared cache"
        assert len([r for r in caplog.records if "is back" in r.getMessage()]) == self.WORKERS

    def test_cache_status_shows_the_servers_error(self, over_quota, tmp_path):
        settings, quota = over_quota
        quota.use_up()
        app = make_app(tmp_path, **settings)
        result = app.test_cli_runner().invoke(args=["cache", "status"])
        assert result.exit_code == 1
        [line] = [line for line in result.output.splitlines() if line.startswith("ping:")]
        assert "Error: " in line and "max requests limit exceeded. Limit: " in line, line
        assert TOKEN not in result.output
