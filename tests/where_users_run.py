"""Commands run as on our users' machines, not as on ours: the baked suite must pass there.

Our machines are long-running, we are root, and our locale, time zone and umask are friendly.
A baked project's own CI runs on a runner that booted a minute ago, as an ordinary user, often
with LANG=C; a console on PythonAnywhere is an ordinary user too. ``user_prefix`` goes before a
command to run it with all of these at once:

- a machine booted ``uptime`` seconds ago: a time namespace (util-linux ``unshare --time``)
  whose CLOCK_MONOTONIC and CLOCK_BOOTTIME read about that much (code or tests that assume a
  large monotonic clock fail there: a fake clock starting at 1000.0 did);
- an ordinary user: ``nobody`` when we are root (file permissions then apply), else ourselves,
  in a user namespace that maps us to ourselves (no privilege gained);
- ``LANG=C`` and ``LC_ALL=C``, and ``TZ`` fourteen hours ahead of UTC (a POSIX rule: no tzdata
  needed), so a time shown as UTC must really be UTC;
- ``umask 077``: every file it makes is private to it.

``random_order`` adds pytest-randomly's options with a new seed, which stays in the command, so
a failure can be replayed with that ``--randomly-seed``.
"""

import os
import pwd
import random
import shutil
import stat
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

YOUNG = 30  # seconds since boot: a CI runner's VM, started for this job
OLD = 40 * 24 * 3600  # forty days: a server that was never rebooted
FAR_ZONE = "LINT-14"  # UTC+14 (Line Islands), as a POSIX TZ rule
ORDINARY_USER = "nobody"


def _ordinary() -> pwd.struct_passwd | None:
    """The user to become, or None when we are not root (we are ordinary already)."""
    return pwd.getpwnam(ORDINARY_USER) if os.geteuid() == 0 else None


def clock_prefix(uptime: float) -> list[str]:
    """``unshare`` and its options, for a machine booted ``uptime`` seconds ago."""
    booted = float(Path("/proc/uptime").read_text().split()[0])
    offset = str(int(uptime - booted))
    options = ["--time", "--monotonic", offset, "--boottime", offset]
    if os.geteuid() != 0:
        options.insert(0, "--map-current-user")  # a time namespace needs a user namespace
    return [shutil.which("unshare") or "unshare", *options, "--"]


def user_prefix(home: Path, uptime: float = YOUNG) -> list[str]:
    """What goes before a command to run it as a user's machine would (module docstring), with
    ``home`` (the user's: ``workspace``) as its HOME."""
    prefix = clock_prefix(uptime)
    user = _ordinary()
    if user is not None:
        prefix += [
            shutil.which("setpriv") or "setpriv",
            *(f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups", "--"),
        ]
    settings = [f"HOME={home}", "LANG=C", "LC_ALL=C", f"TZ={FAR_ZONE}"]
    umask = ["sh", "-c", 'umask 077 && exec "$@"', "sh"]  # not preexec_fn: we run threads
    return [*prefix, "env", *settings, *umask]


def random_order() -> list[str]:
    """pytest-randomly's options, with a new seed."""
    return ["-p", "randomly", f"--randomly-seed={random.SystemRandom().randrange(2**32)}"]


@contextmanager
def workspace() -> Iterator[Path]:
    """A folder the ordinary user can reach (pytest's own are private to us), removed after.
    Its ``home`` is the user's; anything put in it for the user to write goes through
    ``hand_over``."""
    folder = Path(tempfile.mkdtemp(prefix="where-users-run-"))
    try:
        folder.chmod(0o755)
        (folder / "home").mkdir()
        hand_over(folder / "home")
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def hand_over(path: Path) -> None:
    """Make ``path`` and everything in it the ordinary user's, as a user's checkout is."""
    user = _ordinary()
    if user is None:
        return
    for folder, dirs, files in os.walk(path):
        for name in [folder, *(os.path.join(folder, n) for n in dirs + files)]:
            os.lchown(name, user.pw_uid, user.pw_gid)


def interpreter() -> str | None:
    """A Python of this version that the ordinary user can run, for its virtualenv: this one,
    unless a folder on its path keeps others out (pyenv's, under /root), else the system's."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    ours = os.path.realpath(getattr(sys, "_base_executable", sys.executable))
    for candidate in (ours, f"/usr/bin/{version}", f"/usr/local/bin/{version}"):
        if _open_to_others(Path(candidate)):
            return candidate
    return None


def _open_to_others(path: Path) -> bool:
    """Whether a user who is neither owner nor in the group can reach and run ``path``."""
    if _ordinary() is None:
        return os.access(path, os.X_OK)  # we are that user
    try:
        modes = [os.stat(folder).st_mode for folder in path.parents] + [os.stat(path).st_mode]
    except OSError:
        return False
    return all(mode & stat.S_IXOTH for mode in modes)
