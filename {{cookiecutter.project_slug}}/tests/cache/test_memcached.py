"""CACHE_TYPE=memcached, against a real memcached (TEST_MEMCACHED_SERVERS)."""

import logging
import pickle
import re
import socket
import threading
import time
import uuid
from functools import partial

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pymemcache.client.base import Client

from .common import (
    ATTACK,
    DIGITS,
    PLANTED,
    AtomicCounterTests,
    ClearTests,
    CommonTests,
    KeyTests,
    LockTests,
    OutageTests,
    SignedTests,
)
from .conftest import host_and_port

pytestmark = pytest.mark.memcached


@pytest.fixture
def cache_factory(new_app_cache, server_settings):
    return partial(new_app_cache, **server_settings("memcached"))


class RawMemcached:
    """The stored bytes of a key, read and written past the app, as another client would."""

    frame = b""

    def __init__(self, servers: str):
        self.server = Client(host_and_port(servers))

    def get(self, cache, key: str) -> bytes:
        return self.server.get(cache.server.key_prefix + key)  # with the current generation

    def set(self, cache, key: str, data: bytes) -> None:
        # flags=1: pymemcache's mark for a pickle; noreply=False: stored before we go on.
        self.server.set(cache.server.key_prefix + key, data, flags=1, noreply=False)

    def planted(self):
        """Stored bytes and memcached flags: pymemcache's own (0 bytes, 1 pickle, 2 integer,
        4 long, 8 compressed, 16 text) or any 32-bit ones."""
        flags = st.sampled_from([0, 1, 2, 4, 8, 16]) | st.integers(0, 2**32 - 1)
        pickled = st.builds(pickle.dumps, st.integers() | st.text(max_size=20))
        return st.tuples(DIGITS, st.just(2)) | st.tuples(PLANTED | pickled, flags)

    def plant(self, cache, key: str, planted: tuple[bytes, int]) -> None:
        data, flags = planted
        self.server.set(cache.server.key_prefix + key, data, flags=flags, noreply=False)


@pytest.fixture
def raw(memcached_servers):
    return RawMemcached(memcached_servers)


class TestMemcached(
    CommonTests, ClearTests, SignedTests, AtomicCounterTests, KeyTests, LockTests, OutageTests
):
    backend = "memcached"

    def test_clear_moves_to_a_new_generation(self, cache_factory, raw):
        # Pins what clear() relies on: cachelib prefixes each key with the key_prefix attribute
        # read at the time of the call, and ours names the generation.
        prefix = f"gen-test-{uuid.uuid4().hex[:8]}:"  # its own: runs share the server
        cache = cache_factory(CACHE_KEY_PREFIX=prefix)
        cache.set("key", "old")
        before = cache.server.key_prefix
        assert raw.server.get(f"{before}key") is not None
        assert cache.clear()
        after = cache.server.key_prefix
        assert before.startswith(prefix) and after.startswith(prefix)
        assert int(after.split(":")[1]) == int(before.split(":")[1]) + 1
        assert cache.get("key") is None
        assert raw.server.get(f"{before}key") is not None, "old entries are orphaned, not flushed"

    def test_a_value_memcached_refuses_is_a_miss_for_that_call_only(self, cache_factory, caplog):
        """memcached refuses items over 1 MiB (SERVER_ERROR object too large for cache): a miss
        for that call, and the key's old value goes, since the caller meant to replace it."""
        cache = cache_factory()
        cache.set_many({"big": "old", "other": "kept"})
        assert cache.set("big", "x" * 2_000_000) is False
        assert cache.status()["breaker"] == "closed"
        assert cache.get_many("big", "other") == [None, "kept"]
        assert len([r for r in caplog.records if "object too large" in r.getMessage()]) == 1

    def test_the_replay_deletes_in_one_round_trip_per_server(self, cache_factory, monkeypatch):
        """Pins HashClient._get_client (pymemcache 4), which unlink() groups keys by."""
        cache = cache_factory()
        cache.set_many({f"k{i}": "old" for i in range(300)})
        batches = []
        delete_many = Client.delete_many

        def counted(self, keys, **options):
            batches.append(len(keys))
            return delete_many(self, keys, **options)

        monkeypatch.setattr(Client, "delete_many", counted)
        keys = [*(f"k{i}" for i in range(300)), "not storable " * 30]
        cache.server.unlink(*map(cache.storable, keys))  # the breaker maps keys (keys.py)
        assert batches == [301]
        assert cache.get_many(*(f"k{i}" for i in range(300))) == [None] * 300

    @ATTACK
    @given(data=st.data())
    def test_whatever_is_planted_as_the_generation_the_cache_works_and_clears(
        self, cache_factory, raw, data
    ):
        (stored, flags), value = data.draw(raw.planted(), label="planted"), data.draw(st.text())
        cache = cache_factory()
        generation = f"{cache.server._base_prefix}generation"
        raw.server.set(generation, stored, flags=flags, noreply=False)
        assert cache.set("key", value) and cache.get("key") == value
        assert cache.inc("count") == 1
        assert cache.clear() and cache.get("key") is None and cache.get("count") is None


def time_to_live(servers: str, name: str) -> int | None:
    """The seconds memcached gives the item ``name`` to live (-1: forever), read with a meta
    get (memcached 1.6); None if it holds no such item."""
    with socket.create_connection(host_and_port(servers), timeout=5) as connection:
        connection.sendall(f"mg {name} t\r\n".encode())
        answer = connection.recv(1024)
    found = re.match(rb"HD t(-?\d+)\r\n", answer)
    assert found or answer == b"EN\r\n", answer
    return int(found.group(1)) if found else None


@pytest.mark.memcached
def test_a_lock_is_an_item_on_the_server_that_lives_whole_seconds(cache_factory, memcached_servers):
    """add() with an expiry in whole seconds: a fraction rounded up, and one second more, since
    memcached's clock ticks once a second (an item given 1 s lived 0.09 to 0.87 s, measured).
    Never 0, which memcached reads as "never expires"."""
    cache = cache_factory()
    name, started = cache.server.key_prefix + "page.lock", time.monotonic()
    assert cache.lock("page.lock", 0.2)
    left = time_to_live(memcached_servers, name)
    if time.monotonic() - started < 1:  # (a stalled machine may take longer)
        assert left in (1, 2)
    assert left != -1, "it expires"
    cache.unlock("page.lock")
    assert time_to_live(memcached_servers, name) is None
    assert cache.lock("page.lock", 3600)
    assert time_to_live(memcached_servers, name) in (3600, 3601)
    cache.unlock("page.lock")
    forty_days = 40 * 24 * 3600  # past 30 days memcached reads a Unix time: sent as one
    assert cache.lock("page.lock", forty_days)
    # memcached turns it back into seconds by its own clock, a second or two apart from ours
    assert forty_days - 3 <= time_to_live(memcached_servers, name) <= forty_days + 3


class ClosingServer:
    """A server that reads each request and closes the connection without an answer, as a
    memcached that restarts or is killed mid-request: pymemcache raises
    MemcacheUnexpectedCloseError(), with no message."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                connection = self.listener.accept()[0]
            except OSError:
                return  # closed
            with connection:
                connection.recv(65536)  # read first: closing on unread bytes would reset


def test_an_outage_is_logged_saying_what_happened(new_app_cache, caplog):
    server = ClosingServer()
    try:
        cache = new_app_cache(CACHE_TYPE="memcached", MEMCACHED_SERVERS=f"127.0.0.1:{server.port}")
        caplog.set_level(logging.WARNING)
        assert cache.get("key") is None
    finally:
        server.listener.close()
    failed = [r.getMessage() for r in caplog.records if " failed (" in r.getMessage()]
    assert len(failed) == 1, caplog.records
    assert "failed (MemcacheUnexpectedCloseError: the server closed the connection)" in failed[0]
    last_error = cache.status()["last_error"]
    assert (last_error["type"], last_error["message"]) == (
        "MemcacheUnexpectedCloseError",
        "the server closed the connection",
    )
