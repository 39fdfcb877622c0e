"""CACHE_TYPE=filesystem: files in CACHE_DIR, shared by the web app's workers."""

import hashlib
import os
import struct
import time
from functools import partial
from pathlib import Path

import pytest

from .common import PLANTED, ClearTests, CommonTests, SignedTests


@pytest.fixture
def cache_factory(make_cache, settings_for):
    return partial(make_cache, **settings_for("filesystem"))


def entry_file(cache, key: str) -> Path:
    # An entry is named by the sha256 of its key (cachelib 0.17; the backend relies on it).
    return Path(cache.backend.directory) / hashlib.sha256(key.encode()).hexdigest()


class RawFiles:
    """The stored bytes of a key, as another writer on the machine would read and write them."""

    frame = b""

    def get(self, cache, key: str) -> bytes:
        return entry_file(cache, key).read_bytes()[4:]  # after the expiry time

    def set(self, cache, key: str, data: bytes) -> None:
        entry_file(cache, key).write_bytes(struct.pack("I", 0) + data)

    def planted(self):
        """A whole entry file: any bytes, or a header that never expires and planted bytes."""
        return PLANTED | PLANTED.map(lambda data: struct.pack("I", 0) + data)

    def plant(self, cache, key: str, data: bytes) -> None:
        entry_file(cache, key).write_bytes(data)


@pytest.fixture
def raw():
    return RawFiles()


class TestFilesystem(CommonTests, ClearTests, SignedTests):
    backend = "filesystem"

    def test_entries_are_files_in_cache_dir(self, cache_factory, tmp_path):
        cache = cache_factory(CACHE_DIR=str(tmp_path / "elsewhere"))
        cache.set("key", "value")
        assert entry_file(cache, "key").parent == tmp_path / "elsewhere"
        assert entry_file(cache, "key").is_file()

    def test_an_entry_file_starts_with_its_expiry(self, cache_factory):
        # Pins what pruning reads: cachelib's 4-byte expiry header (0 = never).
        cache = cache_factory()
        before = time.time()
        cache.set("expires", 1, timeout=100)
        cache.set("forever", 1, timeout=0)
        (expires,) = struct.unpack("I", entry_file(cache, "expires").read_bytes()[:4])
        (forever,) = struct.unpack("I", entry_file(cache, "forever").read_bytes()[:4])
        assert before + 99 <= expires <= time.time() + 101
        assert forever == 0

    def test_clear_keeps_files_that_are_not_entries(self, cache_factory, tmp_path):
        cache = cache_factory()
        notes = tmp_path / "cache" / "notes.txt"
        cache.set("mine", 1)
        notes.write_text("not a cache entry")
        assert cache.clear()
        assert cache.get("mine") is None
        assert notes.read_text() == "not a cache entry"

    def test_stays_under_its_threshold(self, cache_factory, tmp_path):
        cache = cache_factory(CACHE_THRESHOLD="20")
        for i in range(100):
            cache.set(f"k{i}", i)
        assert cache.get("k99") == 99
        assert len(os.listdir(tmp_path / "cache")) <= 20

    def test_pruning_drops_expired_entries_first(self, cache_factory):
        cache = cache_factory(CACHE_THRESHOLD="10")
        for i in range(9):
            cache.set(f"keep{i}", i, timeout=0)
        cache.set("expired", 1, timeout=100)
        entry = entry_file(cache, "expired")
        entry.write_bytes(struct.pack("I", int(time.time()) - 1) + entry.read_bytes()[4:])
        cache.set("new", 1)
        assert not entry.exists()
        assert all(cache.has(f"keep{i}") for i in range(9))
