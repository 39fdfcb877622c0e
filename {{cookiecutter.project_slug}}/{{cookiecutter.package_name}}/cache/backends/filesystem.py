"""CACHE_TYPE=filesystem: files in CACHE_DIR, shared by the workers of the web app."""

import contextlib
import hashlib
import logging
import math
import os
import re
import stat
import struct
import tempfile
import time
from collections.abc import Callable
from functools import partial
from io import BytesIO
from typing import Any, BinaryIO

import cachelib
from flask import Flask
from flask_caching.backends.filesystemcache import FileSystemCache

from ..config import Env
from ..signing import SignedFileSerializer, signer
from .base import Backend, Config, Errors, lock_seconds

log = logging.getLogger(__name__)


class NotAnEntry(OSError):
    """A file under an entry's name that is not a regular file, or is too large to read."""


class Filesystem(Backend, FileSystemCache):
    """Files in CACHE_DIR, shared by the workers of the web app.

    cachelib keeps its entry count in a counter file that concurrent workers overwrite, so its
    threshold is off (threshold=0, cachelib's documented "no threshold"): every write lists the
    directory instead and, when full, prunes to 90% of CACHE_THRESHOLD: unreadable entries first,
    then expired ones, then those that expire soonest. clear() removes entry files only.

    Disk trouble is an outage, never a flood: on a full disk or a read-only folder cachelib logs a
    traceback and leaves its temp file behind on every write, and never makes a deleted folder
    again. So the file calls are this class's own, in cachelib's format (a 4-byte struct "I"
    expiry, 0 = never, then the serializer's bytes, in cachelib 0.14 to 0.17;
    tests/cache/test_filesystem.py pins it): a failed write removes its temp file and raises its
    OSError, which opens the breaker; a deleted folder is made again. After a failed write, every
    call first tests a write: a probe that only reads would close the breaker on a disk that still
    fails, and the next write would open it again, two log lines per retry window.

    Anyone who can write to CACHE_DIR can put something else under an entry's name: a FIFO (a
    read waits for a writer, forever), a link to /dev/zero or to any file, a folder, a huge file.
    No timeout applies to a file, so entries are opened without following a link and without
    blocking (cachelib's add() and pruning included), and read only if they are regular files of
    at most MAX_ENTRY bytes; anything else, or an entry that cannot be read, is a miss and is
    removed. A value that would make a larger entry is refused: it could never be read back.

    A lock is a file of its own beside the entries, "<entry name>.lock", made with an exclusive
    create (O_CREAT | O_EXCL, atomic over NFS too) and holding its expiry (a Unix time, as
    text: the workers and consoles that share the folder share no other clock). It is never
    counted, pruned or cleared as an entry. A lock past its expiry (its holder died, or forgot)
    is taken over: removed, then made again by an exclusive create. Two workers may find it
    dead at once, and one may have made its own lock in its place before the other removes it:
    so a dead lock is removed only inside a takeover ("<lock>.takeover", itself made by an
    exclusive create), after checking that the lock there is still the one found dead (same
    inode, same bytes). A takeover whose worker died within it goes after STALE_TEMP seconds;
    dead locks that nobody asks for again go with clear(), and when the folder is full.
    """

    name = "filesystem"
    shared = True
    variables = ("CACHE_DIR",)
    serializer: SignedFileSerializer  # set by factory()
    # Entry files are named by the sha256 hex digest of their key; other files are left alone.
    _ENTRY = re.compile(r"[0-9a-f]{64}\Z")
    # Temp files: ours, and those cachelib's mkstemp ("tmp" prefix) left behind on failed writes.
    _TEMP_PREFIX, _TEMP_SUFFIX = "cache-write-", FileSystemCache._fs_transaction_suffix
    _TEMP = re.compile(rf"(?:tmp|{_TEMP_PREFIX})\w+{re.escape(_TEMP_SUFFIX)}\Z")
    STALE_TEMP = 60  # seconds: an older temp file belongs to no write in progress; it is removed
    PROBE_SIZE = 4096  # bytes written to test a disk that failed: a page, more than most entries
    MAX_ENTRY = 64 * 1024 * 1024  # bytes of an entry file: what one read may hold in memory
    # How an entry is opened: not through a link, not waiting for a FIFO's writer, not inherited
    # by a child process. Windows has neither O_NOFOLLOW nor O_NONBLOCK, and needs O_BINARY.
    _OPEN_ENTRY: int = (
        os.O_RDONLY
        | getattr(os, "O_NOFOLLOW", 0)
        | getattr(os, "O_NONBLOCK", 0)
        | getattr(os, "O_CLOEXEC", 0)
        | getattr(os, "O_BINARY", 0)
    )

    # Locks: "<entry name>.lock", and the takeover of a dead one, "<entry name>.lock.takeover".
    _LOCK_SUFFIX, _TAKEOVER_SUFFIX = ".lock", ".takeover"
    _LOCK = re.compile(r"[0-9a-f]{64}\.lock\Z")
    _TAKEOVER = re.compile(r"[0-9a-f]{64}\.lock\.takeover\Z")
    LOCK_BYTES = 64  # read of a lock file: its expiry as text is about 20
    # How a lock (or a takeover) is made: only if no file, link or anything else has its name.
    _CREATE_LOCK: int = (
        os.O_WRONLY
        | os.O_CREAT
        | os.O_EXCL
        | getattr(os, "O_NOFOLLOW", 0)
        | getattr(os, "O_CLOEXEC", 0)
        | getattr(os, "O_BINARY", 0)
    )

    @classmethod
    def settings(cls, env: Env) -> dict[str, object]:
        return {"CACHE_DIR": env.directory("CACHE_DIR")}  # None: init_app's default

    def __init__(self, directory: str, *, limit: int, **kwargs: Any):
        # cachelib makes the folder last thing in __init__ (threshold=0: nothing after it) and
        # raises if it cannot: a full disk must not stop the app; the first write makes it.
        # sha256 names (_ENTRY): Flask-Caching 2.4 (the last for Python 3.10) defaults to md5.
        with contextlib.suppress(OSError):
            super().__init__(  # type: ignore[no-untyped-call, unused-ignore]
                directory, threshold=0, hash_method=hashlib.sha256, **kwargs
            )
        self.directory, self.limit = directory, limit
        self.failed_write: OSError | None = None  # set from a failed write until one succeeds
        self._reported_stuck = False
        self.wall_clock: Callable[[], float] = time.time  # locks' expiry; tests put a fake here

    @classmethod
    def factory(
        cls, app: Flask, config: dict[str, Any], args: list[Any], kwargs: dict[str, Any]
    ) -> "Filesystem":
        cache = cls(config["CACHE_DIR"], limit=config["CACHE_THRESHOLD"], **kwargs)
        cache.serializer = SignedFileSerializer(signer(config))
        return cache

    @classmethod
    def errors(cls) -> Errors:
        return Errors(unreachable=(OSError,))

    @classmethod
    def describe(cls, config: Config) -> str:
        return str(config["CACHE_DIR"])

    # Reads: a missing or unreadable entry is a miss; one that cannot be removed, an outage.
    def get(self, key: str) -> Any:
        return self._read(key, partial(self.serializer.load, name=key))

    def has(self, key: str) -> bool:
        return self._read(key, None) is True

    def _read(self, key: str, load: Callable[[BinaryIO], Any] | None) -> Any:
        """The entry's value (``load`` reads it from the bytes after the expiry), or True for
        a live entry if ``load`` is None; None for a miss."""
        self._test_writes()
        path = self._get_filename(key)
        try:
            data = self._read_entry(path, 4 if load is None else self.MAX_ENTRY)
            (expires,) = struct.unpack("I", data[:4])
            if expires != 0 and expires < time.time():
                return None
            if load is None:
                return True
            value = BytesIO(data)
            value.seek(4)
            return load(value)
        except FileNotFoundError:
            return None
        except OSError:  # unreadable, or not an entry at all (a FIFO, a link, a folder ...)
            with contextlib.suppress(FileNotFoundError, IsADirectoryError):
                os.remove(path)  # fails too when the folder is at fault: raised, an outage
            return None
        except Exception:  # a truncated file, or a pickle whose class is gone: a miss
            with contextlib.suppress(OSError):
                os.remove(path)
            return None

    def _read_entry(self, path: str, size: int) -> bytes:
        """Up to ``size`` bytes of the entry file at ``path``; an OSError (NotAnEntry) if it is
        anything but a regular file of at most MAX_ENTRY bytes (a link is not followed)."""
        fd = os.open(path, self._OPEN_ENTRY)  # a FIFO opens at once: O_NONBLOCK
        try:
            found = os.fstat(fd)
            if not stat.S_ISREG(found.st_mode) or found.st_size > self.MAX_ENTRY:
                raise NotAnEntry(path)
            chunks, left = [], min(size, found.st_size)  # a file growing meanwhile stops there
            while left > 0 and (chunk := os.read(fd, left)):
                chunks.append(chunk)
                left -= len(chunk)
            return b"".join(chunks)
        finally:
            os.close(fd)

    # Writes: each raises its OSError, after removing its temp file.
    def set(self, key: str, value: Any, timeout: Any = None, mgmt_element: bool = False) -> bool:
        expires = struct.pack("I", self._normalize_timeout(timeout))
        path = self._get_filename(key)

        def write(file: BinaryIO) -> None:
            file.write(expires)
            self.serializer.dump(value, file, name=key)
            if file.tell() > self.MAX_ENTRY:  # a miss for this call (the breaker logs it)
                raise ValueError(f"the entry would be over {self.MAX_ENTRY} bytes")

        try:
            self._make_room()
            self._write_temp(write, path)
        except OSError as error:
            self.failed_write = error
            raise
        self.failed_write = None
        return True

    def add(self, key: str, value: Any, timeout: Any = None) -> bool:
        # Not cachelib's (any file under the name, even expired or planted, refused it forever).
        return not self.has(key) and self.set(key, value, timeout)

    def delete(self, key: str, mgmt_element: bool = False) -> bool:
        self._test_writes()
        self._delete_entry(self._get_filename(key))
        return True

    def delete_many(self, *keys: str) -> list[Any]:
        return cachelib.FileSystemCache.delete_many(self, *keys)  # the comment in Backend says why

    def unlink(self, *keys: str) -> None:
        """The breaker's replay: delete each key, raising when a file cannot be removed."""
        for key in keys:
            self.delete(key)

    def clear(self) -> bool:
        self._test_writes()
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return True
        self._remove_stale_temps(names)
        self._remove_dead_locks(names)
        for name in names:
            if self._ENTRY.match(name):
                self._delete_entry(os.path.join(self.directory, name))
        return True

    # Locks (the class's docstring says how they work).
    def lock(self, key: str, seconds: float) -> bool:
        seconds = lock_seconds(seconds)
        self._test_writes()
        path = self._get_filename(key) + self._LOCK_SUFFIX
        if self._make_lock(path, seconds):
            return True
        return self._remove_dead_lock(path) and self._make_lock(path, seconds)

    def unlock(self, key: str) -> None:
        self._test_writes()
        self._delete_entry(self._get_filename(key) + self._LOCK_SUFFIX)

    def _make_lock(self, path: str, seconds: float) -> bool:
        """Make the lock file at ``path``, expiring in ``seconds``: False if anything has its name.
        A folder that cannot take it (read-only, full) raises its OSError: an outage."""
        expires = repr(self.wall_clock() + seconds).encode()
        try:
            try:
                fd = os.open(path, self._CREATE_LOCK, self._mode or 0o600)
            except FileNotFoundError:  # the folder was deleted: made again, as for a write
                os.makedirs(self.directory, exist_ok=True)
                fd = os.open(path, self._CREATE_LOCK, self._mode or 0o600)
        except FileExistsError:
            return False
        except OSError as error:
            self.failed_write = error
            raise
        try:
            try:
                os.write(fd, expires)  # a full disk fails here: made empty, written now
            finally:
                os.close(fd)
        except OSError as error:
            with contextlib.suppress(OSError):
                os.remove(path)
            self.failed_write = error
            raise
        return True

    def _lock_state(self, path: str) -> tuple[tuple[int, int, bytes], bool] | None:
        """What is at the lock file's ``path`` (inode, modification time and bytes: no later
        lock has all three) and whether it is dead; None if nothing is. Anything but a regular
        file (a link, a FIFO, a folder) is not a lock: dead. A lock whose expiry cannot be read
        (being written: it is made empty; or not ours) is dead STALE_TEMP after it was made, by
        the clock of the file's time (as a temp file is): never while it is being written."""
        try:
            fd = os.open(path, self._OPEN_ENTRY)  # a link is not followed, a FIFO not waited on
        except FileNotFoundError:
            return None
        except OSError:  # a link (O_NOFOLLOW refuses it), or what cannot be opened
            try:
                found = os.lstat(path)
            except FileNotFoundError:
                return None
            return (found.st_ino, found.st_mtime_ns, b""), True
        try:
            found = os.fstat(fd)
            regular = stat.S_ISREG(found.st_mode)
            data = os.read(fd, self.LOCK_BYTES) if regular else b""
        finally:
            os.close(fd)
        identity = (found.st_ino, found.st_mtime_ns, data)
        if not regular:
            return identity, True
        try:
            expires = float(data.decode("ascii"))
        except ValueError:
            expires = math.nan
        if not math.isfinite(expires):
            return identity, found.st_mtime < time.time() - self.STALE_TEMP
        return identity, expires <= self.wall_clock()

    def _remove_dead_lock(self, path: str) -> bool:
        """Remove the lock at ``path`` if it is dead; whether it is gone (removed here, or by its
        holder), so that a new one may be made. Inside a takeover, the class's docstring says
        why; False while another worker's takeover runs."""
        found = self._lock_state(path)
        if found is None:
            return True
        identity, dead = found
        if not dead:
            return False
        takeover = path + self._TAKEOVER_SUFFIX
        if not self._start_takeover(takeover):
            return False
        try:
            again = self._lock_state(path)
            if again is not None and again[0] == identity:  # still the lock found dead
                try:
                    os.remove(path)
                except IsADirectoryError:  # planted: no lock here, but no outage either
                    raise ValueError("a folder is in the place of its lock file") from None
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.remove(takeover)
        return True

    def _start_takeover(self, takeover: str) -> bool:
        """Make the takeover file: False while another worker's is under way. One older than
        STALE_TEMP is a dead worker's: removed, and made anew."""
        for _ in range(2):
            try:
                os.close(os.open(takeover, self._CREATE_LOCK, 0o600))
                return True
            except FileExistsError:
                if not self._remove_if_stale(takeover):
                    return False
        return False

    def _remove_dead_locks(self, names: list[str]) -> None:
        """Remove the locks among ``names`` (the folder's) that expired: nobody asked for them
        again since their holders died. Live ones stay."""
        for name in names:
            if self._LOCK.match(name):
                with contextlib.suppress(ValueError):
                    self._remove_dead_lock(os.path.join(self.directory, name))

    def _delete_entry(self, path: str) -> None:
        """Delete an entry file; gone already is fine, and so is a (planted) folder in its place.
        Any other failure is the folder's: raised, an outage (_remove() only reports it)."""
        try:
            os.remove(path)
        except (FileNotFoundError, IsADirectoryError):
            pass
        except OSError as error:
            self.failed_write = error
            raise

    def _write_temp(self, write: Callable[[BinaryIO], object], path: str | None = None) -> str:
        """A new temp file in the folder (made again if it was deleted), written and closed, then
        moved to ``path`` if given."""
        try:
            fd, temp = tempfile.mkstemp(self._TEMP_SUFFIX, self._TEMP_PREFIX, self.directory)
        except FileNotFoundError:
            os.makedirs(self.directory, exist_ok=True)
            fd, temp = tempfile.mkstemp(self._TEMP_SUFFIX, self._TEMP_PREFIX, self.directory)
        try:
            with os.fdopen(fd, "wb") as file:  # closing flushes: a full disk may fail only here
                write(file)
            if path is not None:
                os.chmod(temp, self._mode or 0o600)
                try:
                    os.replace(temp, path)
                except IsADirectoryError:  # planted: a miss for this call, not a disk outage
                    raise ValueError("a folder is in the place of its entry file") from None
        except BaseException:
            with contextlib.suppress(OSError):
                os.remove(temp)
            raise
        return temp

    def _test_writes(self) -> None:
        """After a failed write: a test write, raising its error while the disk still fails."""
        if self.failed_write is None:
            return
        try:
            os.remove(self._write_temp(lambda file: file.write(bytes(self.PROBE_SIZE))))
        except OSError as error:
            self.failed_write = error
            raise
        self.failed_write = None

    def _make_room(self) -> None:
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:  # deleted: _write_temp makes it again
            return
        self._remove_stale_temps(names)
        entries = [os.path.join(self.directory, n) for n in names if self._ENTRY.match(n)]
        if len(entries) < self.limit:
            return
        self._remove_dead_locks(names)
        now = time.time()
        ranked = []
        for path in entries:
            try:
                (expires,) = struct.unpack("I", self._read_entry(path, 4))
            except FileNotFoundError:
                continue  # removed meanwhile
            except (OSError, struct.error):
                ranked.append((0, 0.0, path))  # unreadable: it can never be served; first out
                continue
            # Expired next (0 = never expires, so it sorts last), then the soonest to expire.
            if 0 < expires < now:
                ranked.append((1, float(expires), path))
            else:
                ranked.append((2, float(expires) if expires else float("inf"), path))
        ranked.sort()
        for _, _, path in ranked[: max(len(ranked) - int(self.limit * 0.9), 0)]:
            self._remove(path)

    def _remove_stale_temps(self, names: list[str]) -> None:
        """Temp files and takeovers (of locks) older than STALE_TEMP: their workers died."""
        for name in names:
            if self._TEMP.match(name) or self._TAKEOVER.match(name):
                self._remove_if_stale(os.path.join(self.directory, name))

    def _remove_if_stale(self, path: str) -> bool:
        """Remove the file at ``path`` if it is older than STALE_TEMP; whether it is gone."""
        try:
            if os.stat(path).st_mtime >= time.time() - self.STALE_TEMP:
                return False
        except FileNotFoundError:
            return True
        self._remove(path)
        return not os.path.lexists(path)

    def _remove(self, path: str) -> None:
        """Remove a file the cache no longer wants; one that stays is reported once."""
        try:
            os.remove(path)
        except FileNotFoundError:
            pass
        except OSError as error:
            if not self._reported_stuck:
                self._reported_stuck = True
                log.warning(
                    "cache: cannot remove %s (%s: %s); the cache folder may hold more than "
                    "CACHE_THRESHOLD files. Later ones are not logged",
                    path,
                    type(error).__name__,
                    error.strerror,
                )
