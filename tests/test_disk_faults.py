"""Proof on a real filesystem: the baked app under uWSGI with 2 workers, its filesystem cache on a
full disk, in a read-only folder and in a folder deleted while it serves.

Every page must still answer, the log must stay at one line per worker and change of state, no
temp file may stay behind, and the cache must serve from disk again by itself once the cause is
gone. A real full disk is a 1 MiB tmpfs, filled up; a read-only folder is that tmpfs remounted
read-only. Where mount is not allowed (CI runs as a user), a full disk is a file size limit of 0
bytes on the server's processes (RLIMIT_FSIZE: writes fail with EFBIG), and a read-only folder
is chmod 555, or, for root, which ignores permissions, the same file size limit. The test id
names what was used.
"""

import errno
import json
import os
import re
import resource
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest

from . import servers
from .test_outages import fetch, wait_until_serving

RETRY_AFTER = 0.5  # short, so that many probes meet the fault: none may add a log line
REQUESTS = 300
ENTRY = re.compile(r"[0-9a-f]{64}\Z")
STOPPING = "SIGINT/SIGTERM received...killing workers..."


def can_mount() -> bool:
    if os.geteuid() != 0 or not shutil.which("mount"):
        return False
    with tempfile.TemporaryDirectory() as where:
        mount = ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", where]
        if subprocess.run(mount, capture_output=True).returncode != 0:
            return False
        subprocess.run(["umount", where], check=True)
    return True


def permissions_apply() -> bool:
    """False for root (CAP_DAC_OVERRIDE): a folder's mode does not stop it writing there."""
    with tempfile.TemporaryDirectory() as where:
        os.chmod(where, 0o500)
        try:
            Path(where, "probe").touch()
        except PermissionError:
            return True
        finally:
            os.chmod(where, 0o700)
    return False


MOUNT = can_mount()
FULL = "tmpfs" if MOUNT else "rlimit-fsize"
READ_ONLY = "tmpfs-remount-ro" if MOUNT else "chmod-555" if permissions_apply() else "rlimit-fsize"


@pytest.fixture(scope="module")
def project(bake):
    return bake()


@contextmanager
def tmpfs(path: Path):
    path.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(path)], check=True)
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


def server_pids(url: str) -> list[int]:
    """The uWSGI master and its workers: the processes whose command line names the server's port."""
    address = url.removeprefix("http://").encode()
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if address in (proc / "cmdline").read_bytes().split(b"\0"):
                    pids.append(int(proc.name))
            except OSError:
                continue
    return pids


def limit_file_size(url: str, limit: int) -> None:
    pids = server_pids(url)
    assert len(pids) == 3, f"expected uWSGI's master and 2 workers, found {pids}"
    for pid in pids:
        _, hard = resource.prlimit(pid, resource.RLIMIT_FSIZE)
        resource.prlimit(pid, resource.RLIMIT_FSIZE, (hard if limit < 0 else limit, hard))


def fill(path: Path) -> None:
    with path.open("wb") as filler:
        try:
            while True:
                filler.write(bytes(65536))
                filler.flush()
        except OSError as error:
            assert error.errno == errno.ENOSPC


class Disk:
    """The cache folder, and the fault a test turns on and off with ``mechanism``."""

    def __init__(self, root: Path, mechanism: str):
        self.root, self.cache, self.mechanism = root, root / "cache", mechanism
        self.url = ""

    def break_(self) -> None:
        {
            "tmpfs": lambda: fill(self.root / "filler"),
            "tmpfs-remount-ro": lambda: self.remount("ro"),
            "chmod-555": lambda: self.cache.chmod(0o555),
            "rlimit-fsize": lambda: limit_file_size(self.url, 0),
            "deleted": lambda: shutil.rmtree(self.cache),
        }[self.mechanism]()

    def mend(self) -> None:
        {
            "tmpfs": lambda: (self.root / "filler").unlink(),
            "tmpfs-remount-ro": lambda: self.remount("rw"),
            "chmod-555": lambda: self.cache.chmod(0o755),
            "rlimit-fsize": lambda: limit_file_size(self.url, -1),
            "deleted": lambda: None,  # nothing: the app makes the folder again itself
        }[self.mechanism]()

    def remount(self, mode: str) -> None:
        subprocess.run(["mount", "-o", f"remount,{mode}", str(self.root)], check=True)

    def entries(self) -> int:
        return sum(bool(ENTRY.match(name)) for name in os.listdir(self.cache))

    def leftovers(self) -> list[str]:
        return [name for name in os.listdir(self.cache) if not ENTRY.match(name)]


@pytest.fixture
def disk(request, tmp_path):
    kind, mechanism = request.param
    if mechanism == "rlimit-fsize" and not hasattr(resource, "prlimit"):
        servers.missing("prlimit (Linux only), to limit the file size of a running server")
    root = tmp_path / "disk"
    if mechanism.startswith("tmpfs"):
        with tmpfs(root):
            yield kind, Disk(root, mechanism)
    else:
        root.mkdir()
        yield kind, Disk(root, mechanism)


def hammer(url: str, numbers: range) -> list[tuple[int, int, bytes]]:
    """GET /example/square/<n> for each n (a distinct cache key each) from 4 threads."""

    def get(n: int) -> tuple[int, int, bytes]:
        status, body, _ = fetch(f"{url}/example/square/{n}")
        return n, status, body

    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(get, numbers))


def wrong(answers: list[tuple[int, int, bytes]]) -> list[tuple[int, int, bytes]]:
    return [(n, s, b) for n, s, b in answers if s != 200 or json.loads(b) != {"n": n, "square": n * n}]


@pytest.mark.parametrize(
    "disk",
    [("full disk", FULL), ("read-only folder", READ_ONLY), ("deleted folder", "deleted")],
    ids=[f"full-disk-{FULL}", f"read-only-folder-{READ_ONLY}", "deleted-folder"],
    indirect=True,
)
def test_disk_trouble_costs_a_few_log_lines_and_heals_itself(project, tmp_path, disk):
    kind, disk = disk
    log = tmp_path / "uwsgi.log"
    env = servers.app_env(
        project,
        CACHE_TYPE="filesystem",
        CACHE_DIR=str(disk.cache),
        CACHE_RETRY_AFTER=str(RETRY_AFTER),
    )
    with servers.uwsgi(project / "pythonanywhere_wsgi.py", env, log, limitable=True) as url:
        disk.url = url
        assert wrong(hammer(url, range(20))) == []
        healthy = disk.entries()
        assert healthy > 20, "the cache writes to disk before the fault"  # and @memoize's version
        before = len(log.read_text().splitlines())

        disk.break_()
        answers = hammer(url, range(1000, 1000 + REQUESTS))
        assert wrong(answers) == [], f"{kind}: pages failed: {wrong(answers)[:3]}"
        during = disk.entries() if disk.cache.exists() else 0
        leftovers = disk.leftovers() if disk.cache.exists() else []
        disk.mend()

        wait_until_serving(url, "filesystem", seconds=RETRY_AFTER + 5)  # no restart
        assert wrong(hammer(url, range(5000, 5020))) == []
        after = disk.entries()

    lines = log.read_text().splitlines()[before:]
    lines = lines[: lines.index(STOPPING)] if STOPPING in lines else lines  # uWSGI's own, at the end
    failed = [line for line in lines if "cache: filesystem at" in line and "failed" in line]
    back = [line for line in lines if "cache: filesystem at" in line and "is back" in line]
    assert leftovers == [], f"{kind}: files left in the cache folder: {leftovers[:5]}"
    assert disk.leftovers() == []
    if kind == "deleted folder":
        assert lines == [], f"a deleted folder is made again, no outage: {lines[:5]}"
        assert during >= REQUESTS, "the folder was made again and filled"
    else:
        assert len(lines) <= 4, f"{kind}: {len(lines)} log lines, e.g. {lines[:6]}"
        assert 1 <= len(failed) == len(back) <= 2 and len(lines) == 2 * len(failed), lines
        assert during == healthy, f"{kind}: {during} entries written on a disk that cannot take them"
    assert after >= during + 20, f"{kind}: the cache does not write to disk again"
