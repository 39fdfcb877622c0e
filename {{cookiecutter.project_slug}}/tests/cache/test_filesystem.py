"""CACHE_TYPE=filesystem: files in CACHE_DIR, shared by the web app's workers."""

import contextlib
import hashlib
import logging
import math
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from {{ cookiecutter.package_name }}.cache import ConfigError
from {{ cookiecutter.package_name }}.cache.backends.filesystem import Filesystem

try:
    import resource
except ImportError:  # Windows
    resource = None

from .common import (
    PLANTED,
    ClearTests,
    CommonTests,
    KeyTests,
    LockTests,
    SignedTests,
    race,
    races_until_won,
)
from .conftest import Clock, make_app


@pytest.fixture
def cache_factory(new_app_cache, server_settings):
    return partial(new_app_cache, **server_settings("filesystem"))


def entry_file(cache, key: str) -> Path:
    # An entry is named by the sha256 of its key (the backend asks cachelib for it, relies on it).
    return Path(cache.server.directory) / hashlib.sha256(key.encode()).hexdigest()


def lock_file(cache, key: str) -> Path:
    """A lock is a file of its own beside the entries: the entry's name, and ".lock"."""
    entry = entry_file(cache, key)
    return entry.with_name(entry.name + ".lock")


def lock_files(folder: Path) -> list[str]:
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if ".lock" in p.name)


@pytest.fixture
def wall_clock() -> Clock:
    """A clock for the filesystem's locks, whose expiry is a Unix time: it starts at the next
    whole second of time.time(), and moves only when the test says."""
    clock = Clock()
    clock.start = float(math.ceil(time.time()))
    return clock


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


class TestFilesystem(CommonTests, ClearTests, SignedTests, KeyTests, LockTests):
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

    def test_add_stores_over_an_expired_entry(self, cache_factory):
        # cachelib's add() refused while any file had the entry's name, expired or not.
        cache = cache_factory()
        cache.set("key", "old", timeout=100)
        entry = entry_file(cache, "key")
        entry.write_bytes(struct.pack("I", int(time.time()) - 1) + entry.read_bytes()[4:])
        assert cache.add("key", "new") and cache.get("key") == "new"
        assert not cache.add("key", "newer") and cache.get("key") == "new"


# Disk trouble: a full disk, a read-only folder, a deleted one, a file where the folder should be.
# Each is real: a file size limit of 0 bytes on this process (RLIMIT_FSIZE: every write fails
# with EFBIG, as on a full disk; Python ignores SIGXFSZ), a chmod (where permissions apply: not for
# root), rmtree, a file. They are on only around the cache's calls.
OUTAGES = ("full", "blocked", "read-only")


def permissions_apply() -> bool:
    """False for root, whom a folder's mode does not stop."""
    with tempfile.TemporaryDirectory() as where:
        os.chmod(where, 0o500)
        try:
            Path(where, "probe").touch()
        except PermissionError:
            return True
        finally:
            os.chmod(where, 0o700)
    return False


FAULTS = ["ok", "deleted", "blocked"]
FAULTS += ["full"] if resource is not None else []  # no RLIMIT_FSIZE on Windows
FAULTS += ["read-only"] if permissions_apply() else []


@contextmanager
def fault(folder: Path, kind: str):
    if kind == "deleted":
        shutil.rmtree(folder, ignore_errors=True)
    elif kind == "blocked":
        shutil.rmtree(folder, ignore_errors=True)
        folder.write_text("a file where the cache folder should be")
    elif kind == "read-only":
        folder.mkdir(exist_ok=True)
        folder.chmod(0o500)
    elif kind == "full":
        assert signal.getsignal(signal.SIGXFSZ) == signal.SIG_IGN
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.setrlimit(resource.RLIMIT_FSIZE, (0, hard))
    try:
        yield
    finally:
        if kind == "blocked":
            folder.unlink()
        elif kind == "read-only":
            folder.chmod(0o700)
        elif kind == "full":
            resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


def temp_files(folder: Path) -> list[str]:
    if not folder.is_dir():
        return []
    return [p.name for p in folder.iterdir() if p.name.endswith(".__wz_cache")]


KEYS = st.text(st.characters(exclude_categories=("Cs",)), max_size=20)
VALUES = st.one_of(st.binary(max_size=3000), st.text(max_size=200), st.integers())
WRITES = st.lists(st.tuples(KEYS, VALUES), min_size=1, max_size=4)
SMALL = settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


@SMALL
@given(
    steps=st.lists(
        st.tuples(st.sampled_from(FAULTS), WRITES),
        min_size=1,
        max_size=6,
    )
)
def test_disk_trouble_is_one_outage_logged_once_that_heals_itself(
    steps, new_app_cache, clock, caplog, tmp_path
):
    caplog.clear()
    caplog.set_level(logging.WARNING)
    cache = new_app_cache(
        CACHE_TYPE="filesystem", CACHE_DIR=tempfile.mkdtemp(dir=tmp_path), CACHE_RETRY_AFTER="30"
    )
    cache.clock = clock
    folder = Path(cache.server.directory)
    outages, was_out = 0, False
    for kind, writes in steps:
        with fault(folder, kind):
            for key, value in writes:
                clock.advance(30)  # every call may probe: none may close the breaker too early
                assert cache.set(key, value)
                assert cache.get(key) == value
                assert temp_files(folder) == []
        outages += kind in OUTAGES and not was_out
        was_out = kind in OUTAGES
        assert cache.status()["breaker"] == ("open" if was_out else "closed"), kind
        if kind == "deleted":
            assert entry_file(cache, writes[-1][0]).is_file(), "the folder is made again"

    clock.advance(30)
    assert cache.set("after", "on disk again") and cache.get("after") == "on disk again"
    assert cache.status()["breaker"] == "closed"
    assert entry_file(cache, "after").is_file()
    assert temp_files(folder) == []
    messages = [r.getMessage() for r in caplog.records]
    failed = [m for m in messages if "serving from the in-process simple cache" in m]
    back = [m for m in messages if "is back; serving from it again" in m]
    assert len(failed) == len(back) == outages, messages
    assert len(messages) == 2 * outages, messages
    assert not any(r.exc_info for r in caplog.records), "no traceback"


@pytest.mark.skipif(resource is None, reason="no RLIMIT_FSIZE on Windows")
def test_a_shared_counter_and_another_process_lock_survive_a_full_disk(
    new_app_cache, clock, tmp_path
):
    """As OutageTests' test for servers: inc() and add() made while the disk is full count and
    lock in this worker's memory only; the counter and the other process's lock on disk stay
    (docs/caching.md, "When the server is down")."""
    shared = {"CACHE_TYPE": "filesystem", "CACHE_DIR": str(tmp_path / "shared")}
    shared |= {"CACHE_KEY_PREFIX": "shared:", "CACHE_RETRY_AFTER": "30"}
    cache, other = new_app_cache(**shared), new_app_cache(**shared)
    cache.clock = clock
    assert other.inc("counter", 1000) == 1000
    assert other.add("lock", "held by another process")
    with fault(Path(cache.server.directory), "full"):
        assert cache.set("page", "a write the full disk refuses")
        assert cache.status()["breaker"] == "open"
        assert cache.inc("counter") == 1, "counted in this worker's memory"
        assert cache.add("lock", "this worker's"), "a lock in this worker's memory"
    clock.advance(30)
    assert cache.inc("counter") == 1001  # the probe, on disk
    assert cache.status()["breaker"] == "closed"
    assert other.get_many("counter", "lock") == [1001, "held by another process"]


def test_a_folder_that_cannot_be_made_stops_start_up_in_one_line(new_app_cache, tmp_path):
    """A configuration error, not an outage: start-up says so (a folder deleted later is made
    again: test_disk_trouble_is_one_outage_logged_once_that_heals_itself)."""
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the cache's parent folder should be")
    with pytest.raises(ConfigError) as refused:
        new_app_cache(CACHE_TYPE="filesystem", CACHE_DIR=str(blocked / "cache"))
    assert str(refused.value).startswith("CACHE_DIR=") and "\n" not in str(refused.value)


@SMALL
@given(garbage=st.binary(max_size=3))
def test_a_truncated_entry_is_a_miss_and_is_removed(garbage, cache_factory, caplog):
    caplog.clear()
    cache = cache_factory()
    cache.set("key", "value")
    entry_file(cache, "key").write_bytes(garbage)
    assert cache.get("key") is None
    assert not entry_file(cache, "key").exists()
    cache.set("key", "value")
    entry_file(cache, "key").write_bytes(garbage)
    assert not cache.has("key")
    assert not entry_file(cache, "key").exists()
    assert caplog.records == []


class Gone:
    """A class the app pickled, then removed in a later version."""


def test_an_entry_whose_class_is_gone_is_a_miss_and_is_removed(cache_factory, monkeypatch, caplog):
    cache = cache_factory()
    cache.set("key", Gone())
    monkeypatch.delattr(sys.modules[__name__], "Gone")
    assert cache.get("key") is None
    assert not entry_file(cache, "key").exists()
    assert caplog.records == []


ENTRY_NAMES = st.binary(min_size=32, max_size=32).map(bytes.hex)


@SMALL
@given(
    truncated=st.dictionaries(ENTRY_NAMES, st.binary(max_size=3), max_size=6),
    folders=st.sets(ENTRY_NAMES, max_size=2),
)
def test_pruning_removes_unreadable_entries_first(
    truncated, folders, new_app_cache, caplog, tmp_path
):
    caplog.clear()
    cache = new_app_cache(
        CACHE_TYPE="filesystem", CACHE_DIR=tempfile.mkdtemp(dir=tmp_path), CACHE_THRESHOLD="10"
    )
    folder = Path(cache.server.directory)
    for i in range(9):
        cache.set(f"keep{i}", i, timeout=0)
    for name, data in truncated.items():
        (folder / name).write_bytes(data)
    for name in folders - set(truncated):  # an entry name that os.remove cannot remove
        (folder / name).mkdir()
    for i in range(3):
        cache.set(f"new{i}", i)
    assert not any((folder / name).is_file() for name in truncated), "unreadable entries stay"
    assert all(cache.has(f"keep{i}") for i in range(8))
    stuck = [r for r in caplog.records if "cannot remove" in r.getMessage()]
    assert len(stuck) == (1 if folders - set(truncated) else 0), "logged once per process"


def test_clear_and_writes_remove_stale_temp_files(cache_factory, tmp_path):
    cache = cache_factory()
    cache.set("key", 1)
    folder = tmp_path / "cache"
    stale = ["tmpab_cd1x9.__wz_cache", "cache-write-0a1b2c3d.__wz_cache"]  # cachelib's, ours
    fresh = folder / "cache-write-inflight.__wz_cache"  # another worker's write in progress
    for name in stale:
        (folder / name).write_bytes(b"left by a failed write")
        os.utime(folder / name, (time.time() - 3600,) * 2)
    fresh.write_bytes(b"")
    assert cache.clear()
    assert sorted(p.name for p in folder.iterdir()) == [fresh.name]
    (folder / stale[0]).write_bytes(b"")
    os.utime(folder / stale[0], (time.time() - 3600,) * 2)
    cache.set("key", 2)
    assert not (folder / stale[0]).exists()


@pytest.mark.skipif(resource is None, reason="no RLIMIT_FSIZE on Windows")
def test_cache_status_says_when_the_disk_is_full(tmp_path):
    app = make_app(tmp_path, CACHE_TYPE="filesystem")
    with fault(tmp_path / "cache", "full"):
        result = app.test_cli_runner().invoke(args=["cache", "status"])
    assert result.exit_code == 1
    assert "ping:       FAILED (OSError: [Errno 27] File too large" in result.output
    assert temp_files(tmp_path / "cache") == []


def test_an_unreadable_entry_is_a_miss_at_once(cache_factory, caplog, monkeypatch):
    # cachelib retried a PermissionError with backoff, 16 s for one get (measured), and logged a
    # traceback for any other error. Root reads any file: for root, a folder in the entry's place.
    slept: list[float] = []
    for sleep in ("time.sleep", "cachelib.file.sleep"):  # a backoff sleeps: counted, not timed
        monkeypatch.setattr(sleep, slept.append)
    cache = cache_factory()
    cache.set("key", "value")
    entry = entry_file(cache, "key")
    if permissions_apply():
        entry.chmod(0)
    else:
        entry.unlink()
        entry.mkdir()
    assert cache.get("key") is None
    assert not cache.has("key")
    assert slept == [], "no retry, no backoff"
    assert not entry.is_file(), "an unreadable file is removed"
    assert caplog.records == []


# Whoever can write to CACHE_DIR can put anything under an entry's name (the sha256 of a key). No
# timeout applies to a file: a FIFO made a get() wait for a writer forever, and a link to
# /dev/zero read without end. Each must be a miss, at once, and go (a folder cannot: it stays,
# never read). The calls run in a thread joined with a timeout: a guard, so that a hang fails the
# test instead of the run; the assertions are on what the calls answer.
HANG_GUARD = 30  # seconds


def promptly(call, *args, release=None):
    """What ``call(*args)`` answers, or a failed test if it never returns (then ``release()``
    frees the stuck thread)."""
    answers = []
    worker = threading.Thread(target=lambda: answers.append(call(*args)), daemon=True)
    worker.start()
    worker.join(HANG_GUARD)
    if worker.is_alive():
        if release is not None:
            release()
        pytest.fail(f"{call.__name__}{args!r} hung")
    return answers[0]


def release_fifo(path: Path) -> None:
    """Open a FIFO for writing and close it: a reader blocked in open() goes on, at its end."""
    with contextlib.suppress(OSError):
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))


def plant(kind: str, path: Path, outside: Path) -> None:
    """Put ``kind`` at ``path`` (an entry's name), in place of whatever is there."""
    if path.exists() and kind == "link outside":
        shutil.copy(path, outside)  # the entry itself, served through a link: still not ours
    if path.is_dir() and not path.is_symlink():
        path.rmdir()
    path.unlink(missing_ok=True)
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "link to /dev/zero":
        path.symlink_to("/dev/zero")
    elif kind == "link outside":
        outside.touch()
        path.symlink_to(outside)
    elif kind == "folder":
        path.mkdir()


PLANTS = ["fifo", "link to /dev/zero", "link outside", "folder"]
needs_fifos = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on Windows")


@needs_fifos
@pytest.mark.parametrize("kind", PLANTS)
def test_something_planted_under_an_entry_name_is_a_miss_at_once(
    kind, cache_factory, tmp_path, caplog
):
    cache = cache_factory()
    cache.set("key", "value")
    entry = entry_file(cache, "key")
    plant(kind, entry, tmp_path / "outside")
    release = partial(release_fifo, entry)

    assert promptly(cache.has, "key", release=release) is False  # read only its first 4 bytes
    assert promptly(cache.get, "key", release=release) is None
    assert promptly(cache.get_many, "key", "other", release=release) == [None, None]
    if kind == "folder":
        assert entry.is_dir(), "a folder cannot be removed: it is left, and never read"
    else:
        assert not os.path.lexists(entry), "the planted file is removed"

    plant(kind, entry, tmp_path / "outside")
    stored = kind != "folder"  # a folder in its place: the write is a miss, not an outage
    assert promptly(cache.add, "key", "added", release=release) is stored
    assert promptly(cache.get, "key", release=release) == ("added" if stored else None)
    plant(kind, entry, tmp_path / "outside")
    assert promptly(cache.set, "key", "new", release=release) is stored
    assert promptly(cache.get, "key", release=release) == ("new" if stored else None)
    if stored:
        assert entry.is_file() and not entry.is_symlink()
    assert promptly(cache.delete, "key", release=release)
    assert promptly(cache.clear, release=release)
    assert cache.status()["breaker"] == "closed", "the cache still serves: no outage"
    if kind == "link outside":
        assert (tmp_path / "outside").is_file(), "a link is removed, never what it points to"
    assert not [r for r in caplog.records if "signature" in r.getMessage()], "never read"


@needs_fifos
def test_a_full_cache_skips_and_removes_planted_entries(new_app_cache, tmp_path):
    """A write to a full cache reads every entry's expiry (pruning): a FIFO there hung it."""
    cache = new_app_cache(CACHE_TYPE="filesystem", CACHE_THRESHOLD="10")
    folder = Path(cache.server.directory)
    for i in range(9):
        cache.set(f"keep{i}", i, timeout=0)
    fifo, zero = folder / ("0" * 64), folder / ("f" * 64)
    os.mkfifo(fifo)
    zero.symlink_to("/dev/zero")

    assert promptly(cache.set, "new", "value", release=partial(release_fifo, fifo)) is True
    assert cache.get("new") == "value"
    assert not os.path.lexists(fifo) and not os.path.lexists(zero), "pruned first"
    assert all(cache.has(f"keep{i}") for i in range(9)), "only what was planted is pruned"
    assert cache.status()["breaker"] == "closed"


def test_a_huge_file_under_an_entry_name_is_not_read(cache_factory, caplog):
    """A regular file too large to be an entry (sparse: no disk used) is a miss, and goes."""
    cache = cache_factory()
    cache.set("key", "value")
    entry = entry_file(cache, "key")
    with entry.open("r+b") as file:
        file.truncate(Filesystem.MAX_ENTRY + 1)
    assert cache.has("key") is False
    assert cache.get("key") is None
    assert not entry.exists()
    assert not [r for r in caplog.records if "signature" in r.getMessage()], "never read"


def test_a_value_too_large_for_an_entry_is_a_miss_for_that_call(
    cache_factory, monkeypatch, tmp_path
):
    """What could never be read back is not written: a miss, not an outage; no temp file left."""
    monkeypatch.setattr(Filesystem, "MAX_ENTRY", 4096)
    cache = cache_factory()
    cache.set("big", "old")
    assert cache.set("big", "x" * 5000) is False
    assert cache.get("big") is None, "the old value does not stay"
    assert cache.set("small", "x" * 100) and cache.get("small") == "x" * 100
    assert cache.status()["breaker"] == "closed"
    assert temp_files(tmp_path / "cache") == []


# Locks: files beside the entries (backends/filesystem.py says how they work).
def test_locks_are_never_counted_pruned_or_cleared_as_entries(new_app_cache, tmp_path):
    shared = {"CACHE_TYPE": "filesystem", "CACHE_DIR": str(tmp_path / "shared")}
    cache, other = new_app_cache(**shared, CACHE_THRESHOLD="10"), new_app_cache(**shared)
    names = [f"page{i}.lock" for i in range(8)]
    assert all(cache.lock(name, 600) for name in names)
    for i in range(40):
        assert cache.set(f"k{i}", i)
    folder = tmp_path / "shared"
    assert len([p for p in folder.iterdir() if Filesystem._ENTRY.match(p.name)]) <= 10
    assert cache.get("k39") == 39
    assert not any(other.lock(name, 600) for name in names), "no lock was pruned"
    assert cache.clear() and cache.get("k39") is None
    assert not any(other.lock(name, 600) for name in names), "clear() leaves live locks"
    assert len(lock_files(folder)) == len(names)


def test_dead_locks_nobody_asks_for_go_with_clear_and_when_full(
    new_app_cache, tmp_path, wall_clock
):
    """A lock whose holder died and that nobody asks for again would stay forever: clear(), and
    a write to a full cache, remove it once expired."""
    cache = new_app_cache(CACHE_TYPE="filesystem", CACHE_THRESHOLD="5")
    cache.server.wall_clock = wall_clock
    folder = Path(cache.server.directory)
    assert cache.lock("dead.lock", 10) and cache.lock("live.lock", 600)
    wall_clock.advance(11)
    for i in range(3):
        cache.set(f"k{i}", i)
    assert len(lock_files(folder)) == 2, "the cache is not full: nothing read"
    for i in range(3, 6):
        cache.set(f"k{i}", i)
    assert lock_files(folder) == [lock_file(cache, "live.lock").name]
    assert cache.lock("dead.lock", 10)
    wall_clock.advance(11)
    assert cache.clear()
    assert lock_files(folder) == [lock_file(cache, "live.lock").name]
    assert not cache.lock("live.lock", 600)


DIE_HOLDING = """
import os, signal, sys
from {{ cookiecutter.package_name }}.cache.backends.filesystem import Filesystem
assert Filesystem(sys.argv[1], limit=100).lock(sys.argv[2], float(sys.argv[3]))
os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="no SIGKILL on Windows")
def test_a_killed_processs_lock_is_taken_by_one_worker_once_it_expires(new_app_cache, tmp_path):
    folder = tmp_path / "shared"
    racers = [new_app_cache(CACHE_TYPE="filesystem", CACHE_DIR=str(folder)) for _ in range(4)]
    project, started = Path(__file__).parents[2], time.monotonic()
    died = subprocess.run(
        [sys.executable, "-c", DIE_HOLDING, str(folder), "page.lock", "2"],
        cwd=project, capture_output=True, text=True,
    )  # fmt: skip
    assert died.returncode == -signal.SIGKILL, died.stderr
    assert lock_files(folder) == [lock_file(racers[0], "page.lock").name], "left behind"
    winners = races_until_won(racers, "page.lock", 60)
    if time.monotonic() - started < 2:  # (a stalled machine may take longer)
        assert winners[0] == 0, "held until it expires"
    assert winners[-1] == 1, winners


def test_workers_taking_over_one_dead_lock_at_once_leave_one_holder(
    new_app_cache, tmp_path, wall_clock
):
    """Every racer finds the same dead lock; one removes it and makes its own, which another
    must not then remove as the dead one. Rounds interleave them at random."""
    shared = {"CACHE_TYPE": "filesystem", "CACHE_DIR": str(tmp_path / "shared")}
    holder, *racers = [new_app_cache(**shared) for _ in range(5)]
    for cache in (holder, *racers):
        cache.server.wall_clock = wall_clock
    sys.setswitchinterval(1e-6)
    try:
        winners = []
        for n in range(40):
            assert holder.lock(f"round-{n}.lock", 10)  # and never released
            wall_clock.advance(11)
            winners.append(race(racers, f"round-{n}.lock", 60))
    finally:
        sys.setswitchinterval(0.005)
    assert winners == [1] * 40
    assert not list(Path(shared["CACHE_DIR"]).glob("*.takeover")), "no takeover left behind"


def test_a_takeover_never_removes_the_lock_another_worker_made_in_its_place(
    new_app_cache, tmp_path, wall_clock, monkeypatch
):
    """The race, step by step: this worker finds the lock dead; before it removes it, another
    worker takes it over and makes its own lock there. That one stays, and is the only one."""
    shared = {"CACHE_TYPE": "filesystem", "CACHE_DIR": str(tmp_path / "shared")}
    holder, slow, fast = (new_app_cache(**shared) for _ in range(3))
    for cache in (holder, slow, fast):
        cache.server.wall_clock = wall_clock
    assert holder.lock("page.lock", 10)
    wall_clock.advance(11)
    read_lock = slow.server._lock_state
    overtaken = []

    def then_overtaken(path):
        found = read_lock(path)
        if not overtaken:  # it has just found the lock dead
            overtaken.append(fast.lock("page.lock", 60))
        return found

    monkeypatch.setattr(slow.server, "_lock_state", then_overtaken)
    assert not slow.lock("page.lock", 60)
    assert overtaken == [True]
    assert not holder.lock("page.lock", 60), "the fast worker's lock is there"
    fast.unlock("page.lock")
    assert holder.lock("page.lock", 60)


def test_a_lock_file_being_written_is_never_taken_over(cache_factory, wall_clock):
    """A lock file is made empty, then written: one found empty is held until STALE_TEMP after
    it was made, by the file's own time, whatever the locks' clock says; then its writer died."""
    cache = cache_factory()
    cache.server.wall_clock = wall_clock
    path = lock_file(cache, "page.lock")
    path.touch()  # made, not written yet
    wall_clock.advance(3600)
    assert not cache.lock("page.lock", 60)
    os.utime(path, (time.time() - Filesystem.STALE_TEMP - 1,) * 2)
    assert cache.lock("page.lock", 60), "its writer died: taken over"
    assert float(path.read_text()) == wall_clock.now + 60


def test_a_takeover_whose_worker_died_goes_after_a_while(cache_factory, wall_clock):
    cache = cache_factory()
    cache.server.wall_clock = wall_clock
    assert cache.lock("page.lock", 10)
    wall_clock.advance(11)
    takeover = lock_file(cache, "page.lock").with_suffix(".lock.takeover")
    takeover.touch()  # its worker died within it
    assert not cache.lock("page.lock", 60), "a takeover is under way"
    os.utime(takeover, (time.time() - Filesystem.STALE_TEMP - 1,) * 2)
    assert cache.lock("page.lock", 60), "taken over, the dead takeover removed"
    assert not takeover.exists()
    stale = takeover.with_name("0" * 64 + ".lock.takeover")  # another dead one, of a lock gone
    stale.touch()
    os.utime(stale, (time.time() - Filesystem.STALE_TEMP - 1,) * 2)
    cache.set("key", 1)
    assert not stale.exists(), "writes remove it, as they do stale temp files"


@pytest.mark.parametrize("kind", FAULTS)
def test_disk_trouble_never_fails_a_lock(kind, new_app_cache, clock, tmp_path):
    """A full disk, a read-only, blocked or deleted folder: lock() answers, in this worker's
    memory while the breaker is open, and leaves no file; then the disk serves locks again."""
    shared = {"CACHE_TYPE": "filesystem", "CACHE_DIR": str(tmp_path / "shared")}
    cache = new_app_cache(**shared, CACHE_RETRY_AFTER="30")
    cache.clock = clock
    folder = tmp_path / "shared"
    outage = kind in OUTAGES
    with fault(folder, kind):
        assert cache.lock("page.lock", 60)
        assert not cache.lock("page.lock", 60)
        assert cache.status()["breaker"] == ("open" if outage else "closed")
        on_disk = lock_files(folder)
    assert on_disk == ([] if outage else [lock_file(cache, "page.lock").name])
    assert temp_files(folder) == []
    cache.unlock("page.lock")
    clock.advance(30)
    assert cache.lock("page.lock", 60)
    assert cache.status()["breaker"] == "closed"
    assert not new_app_cache(**shared).lock("page.lock", 60), "on disk, for every worker"


@needs_fifos
@pytest.mark.parametrize("kind", PLANTS)
def test_something_planted_as_a_lock_file_is_no_lock(kind, cache_factory, tmp_path, caplog):
    """Not a lock of ours: removed and taken over at once, without following a link or waiting
    on a FIFO. A folder cannot be removed: the lock is then this worker's, said in the log."""
    cache = cache_factory()
    path = lock_file(cache, "page.lock")
    plant(kind, path, tmp_path / "outside")
    release = partial(release_fifo, path)
    assert promptly(cache.lock, "page.lock", 60, release=release) is True
    assert promptly(cache.lock, "page.lock", 60, release=release) is False
    assert cache.status()["breaker"] == "closed"
    if kind == "folder":
        assert path.is_dir()
        assert len([r for r in caplog.records if "held in this worker only" in r.message]) == 1
    else:
        assert path.is_file() and not path.is_symlink(), "a lock file of ours in its place"
    if kind == "link outside":
        assert (tmp_path / "outside").is_file(), "a link is removed, never what it points to"
    cache.unlock("page.lock")
    assert cache.lock("page.lock", 60)
