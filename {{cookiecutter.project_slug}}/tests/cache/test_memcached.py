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
from pymemcache.client.rendezvous import RendezvousHash

from {{ cookiecutter.package_name }}.cache.signing import Signer

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
from .conftest import cache_behind, host_and_port, make_app
from .hostile import PROPERTY
from .relay import Relay

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


HITS = 5
KEYS = st.from_regex(r"[\x22-\x7e]{1,200}", fullmatch=True)  # as fits() keeps them


@pytest.fixture
def relayed_app(memcached_servers, server_settings, tmp_path):
    """An app whose memcached is reached through a relay that counts round trips."""
    relay = Relay(*host_and_port(memcached_servers))
    yield make_app(tmp_path, **server_settings("memcached", port=relay.port)), relay
    relay.cut()


def test_a_cached_page_is_served_in_one_round_trip(relayed_app):
    app, relay = relayed_app
    client = app.test_client()
    page = client.get("/sample").get_data()  # computed and cached
    assert client.get("/sample").get_data() == page
    before = relay.round_trips
    for _ in range(HITS):
        assert client.get("/sample").get_data() == page
    assert relay.round_trips - before == HITS, "one multi-key get: the generation and the page"


def test_many_keys_are_read_in_one_round_trip(relayed_app):
    app, relay = relayed_app
    cache = cache_behind(app)
    cache.set_many({"a": 1, "b": 2, "c": 3})
    before = relay.round_trips
    assert cache.get_many("a", "b", "c", "missing") == [1, 2, 3, None]
    assert [cache.has("a"), cache.get("missing")] == [True, None]
    assert relay.round_trips - before == 3


def test_with_several_servers_a_hit_costs_a_round_trip_per_server_asked(
    memcached_servers, tmp_path
):
    """HashClient groups a multi-key get by server: the generation and the page may live on two.
    Two relays to one memcached play two servers."""
    relays = [Relay(*host_and_port(memcached_servers)) for _ in range(2)]
    servers = ",".join(f"127.0.0.1:{relay.port}" for relay in relays)
    try:
        app = make_app(tmp_path, CACHE_TYPE="memcached", MEMCACHED_SERVERS=servers)
        client = app.test_client()
        page = client.get("/sample").get_data()
        assert client.get("/sample").get_data() == page
        before = sum(relay.round_trips for relay in relays)
        for _ in range(HITS):
            assert client.get("/sample").get_data() == page
        round_trips = sum(relay.round_trips for relay in relays) - before
        memcached = cache_behind(app).server
        names = (memcached._generation_key, f"{memcached.key_prefix}view//sample")
        assert round_trips == HITS * len({memcached.client._get_client(name) for name in names})
    finally:
        for relay in relays:
            relay.cut()


def test_a_clear_by_another_worker_is_seen_by_the_next_request(server_settings, tmp_path):
    """Two workers of one app (one prefix), and another app on the same server."""
    shared = {**server_settings("memcached"), "CACHE_KEY_PREFIX": f"two-{uuid.uuid4().hex[:8]}:"}
    first, second = (make_app(tmp_path, **shared).test_client() for _ in range(2))
    other = make_app(tmp_path, **server_settings("memcached")).test_client()
    page, theirs = first.get("/sample").get_data(), other.get("/sample").get_data()
    assert second.get("/sample").get_data() == page, "the workers share the entry"

    with second.application.test_request_context():
        assert cache_behind(second.application).clear()
    again = first.get("/sample").get_data()
    assert again != page, "the first worker's next request computes the page again"
    assert second.get("/sample").get_data() == again
    assert other.get("/sample").get_data() == theirs, "another prefix's entries are kept"


def test_a_cached_page_checks_one_signature(server_settings, tmp_path, monkeypatch):
    """The generation is read with every page, but its MAC is checked once per value: a hit
    costs the page's MAC alone, as on the other backends."""
    client = make_app(tmp_path, **server_settings("memcached")).test_client()
    page = client.get("/sample").get_data()
    checked = []
    mac = Signer.mac

    def counted(self, payload, name=""):
        checked.append(name)
        return mac(self, payload, name)

    monkeypatch.setattr(Signer, "mac", counted)
    for _ in range(HITS):
        assert client.get("/sample").get_data() == page
    assert len(checked) == HITS and all(name.endswith(":view//sample") for name in checked)


@PROPERTY
@given(ports=st.lists(st.integers(1, 65535), min_size=1, max_size=4, unique=True), key=KEYS)
def test_each_key_goes_to_the_server_pymemcache_picks(new_app_cache, ports, key):
    """One server takes every key, unhashed; with several, pymemcache's rendezvous hashing picks
    one, as it did before: what was cached before an update is found after it."""
    servers = ",".join(f"127.0.0.1:{port}" for port in ports)  # never contacted
    client = new_app_cache(CACHE_TYPE="memcached", MEMCACHED_SERVERS=servers).server.client
    theirs = RendezvousHash()
    for node in client.clients:
        theirs.add_node(node)
    assert client._get_client(key) is client.clients[theirs.get_node(key)]


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
