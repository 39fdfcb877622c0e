"""Behaviour tests every backend passes, shaped like cachelib's own: each test_<backend>.py
mixes in the classes that apply to it and provides a ``cache_factory`` fixture, which returns a
new app's cache backend as its views use it (behind the breaker, for a shared backend).
"""

import logging
import os
import pickle
import socket
import time
import uuid
from datetime import datetime, timezone

from .conftest import cache_of, make_app

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

    def test_a_page_planted_under_a_views_key_is_computed_again(self, raw, settings_for, tmp_path):
        app = make_app(tmp_path, **settings_for(self.backend))
        client = app.test_client()
        first = client.get("/example").get_data(as_text=True)
        marker = tmp_path / "planted-code-ran"
        raw.set(cache_of(app), "view//example", raw.frame + pickle.dumps(Planted(marker)))

        second = client.get("/example").get_data(as_text=True)
        assert not marker.exists(), "the planted pickle was unpickled"
        assert second != first, "the planted entry is a miss: the page is computed again"
        assert client.get("/example").get_data(as_text=True) == second, "and cached again"

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
        shared = {"CACHE_KEY_PREFIX": f"rotation-{uuid.uuid4().hex}:", "CACHE_DIR": str(tmp_path)}
        old = cache_factory(CACHE_SIGNING_KEY="old key", **shared)
        old.set_many({"a": "one", "b": "two"})
        assert cache_factory(CACHE_SIGNING_KEY="old key", **shared).get("a") == "one"
        new = cache_factory(CACHE_SIGNING_KEY="new key", **shared)
        assert new.get_many("a", "b") == [None, None]
        warnings = [r for r in caplog.records if "failed its signature check" in r.getMessage()]
        assert len(warnings) == 1

    def test_secret_key_signs_when_no_signing_key_is_set(self, cache_factory, tmp_path):
        shared = {"CACHE_KEY_PREFIX": f"secret-{uuid.uuid4().hex}:", "CACHE_DIR": str(tmp_path)}
        cache_factory(**shared).set("a", "one")
        assert cache_factory(**shared).get("a") == "one"
        assert cache_factory(SECRET_KEY="another secret", **shared).get("a") is None


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
        assert cache.status() | {"last_error": None} == {
            "active": cache.name,
            "breaker": "closed",
            "last_error": None,
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

    def test_unreachable_from_the_start(self, make_cache, settings_for):
        with socket.socket() as probe:  # a port nothing listens on
            probe.bind(("127.0.0.1", 0))
            closed = probe.getsockname()[1]
        cache = make_cache(**settings_for(self.backend, port=closed))
        assert cache.get("key") is None
        assert cache.set("key", 1) and cache.get("key") == 1
        assert cache.status()["active"] == "simple"

    def test_a_hung_server_costs_one_timeout_per_window(
        self, make_cache, settings_for, hung_server
    ):
        cache = make_cache(
            **settings_for(self.backend, port=hung_server.getsockname()[1]),
            CACHE_SOCKET_TIMEOUT="0.2",
            CACHE_RETRY_AFTER="0.5",
        )
        waits = []
        deadline = time.monotonic() + 1.2  # about two and a half windows
        while time.monotonic() < deadline:
            started = time.monotonic()
            cache.get("key")
            waits.append(time.monotonic() - started)
            time.sleep(0.01)
        assert max(waits) < 0.2 + 0.25, "no call waits much longer than one timeout"
        assert sum(wait > 0.15 for wait in waits) <= 3, "one slow call per window"
