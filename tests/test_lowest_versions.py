"""The lower bounds of the requirements, proven: the default bake installed at the lowest
versions its requirements-dev.txt allows (uv's --resolution lowest-direct: each requirement the
files name, at its floor), where its whole suite, its CI's ruff and mypy, and its app under uWSGI
must work as they do at the newest versions.

The suite runs there as on a user's machine, not ours (where_users_run.py): booted 30 s ago, as
an ordinary user, with LANG=C, a time zone far from UTC, umask 077 and a random test order. So
the virtualenv is made in a folder that user can reach, with a Python that user can run.

One virtualenv serves the module (an xdist group keeps its tests on one worker). The versions
uv installed are printed (pytest -rP, or -s, shows them).
"""

import os
import re
import secrets
import shutil
import subprocess
import sys

import pytest

from . import servers, where_users_run
from .conftest import CHOICES, TEMPLATE
from .test_bake import baked_suite
from .test_hooks import pre_gen

pytestmark = pytest.mark.xdist_group("lowest-versions")

ROUNDS = 3  # /health calls per worker once tracking has started


def run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, **kwargs)


def uv() -> list[str]:
    """uv, from the template's requirements-dev.txt: its binary beside this Python, or its module."""
    found = shutil.which("uv", path=os.path.dirname(sys.executable))
    if found:
        return [found]
    if run([sys.executable, "-m", "uv", "--version"]).returncode == 0:
        return [sys.executable, "-m", "uv"]
    servers.missing("uv (pip install -r requirements-dev.txt)")


def template_requirement(name: str) -> str:
    """The template's own requirement line for ``name`` (requirements-dev.txt)."""
    lines = (TEMPLATE / "requirements-dev.txt").read_text().splitlines()
    (line,) = [line for line in lines if re.match(rf"{re.escape(name)}\s*[<>=!~]", line)]
    return line


@pytest.fixture(scope="module")
def users_space():
    with where_users_run.workspace() as folder:
        yield folder


@pytest.fixture(scope="module")
def lowest(bake, users_space):
    """(project, its virtualenv's bin folder, what uv installed): the default bake, and a new
    virtualenv holding its requirements-dev.txt at the lowest versions allowed, pyuwsgi (the
    template's own floor) to serve it, and pytest-randomly (the template's) to shuffle."""
    project = bake()
    interpreter = where_users_run.interpreter()
    if interpreter is None:
        servers.missing(f"a python{sys.version_info.major}.{sys.version_info.minor} that user nobody can run")
    venv = users_space / "venv"
    run([*uv(), "venv", "--quiet", "--python", interpreter, str(venv)], check=True)
    python = venv / "bin" / "python"
    install = run(
        [*uv(), "pip", "install", "--python", str(python), "--resolution", "lowest-direct",
         "-r", "requirements-dev.txt", template_requirement("pyuwsgi"),
         template_requirement("pytest-randomly")],
        cwd=project,
    )  # fmt: skip
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]
    frozen = run([*uv(), "pip", "freeze", "--python", str(python)], check=True).stdout
    return project, venv / "bin", frozen


def test_the_lowest_versions_are_the_floors(lowest):
    """uv installed what the requirements files name at their floors (so the proofs below are
    proofs of the floors); the list is printed for the record."""
    project, _, frozen = lowest
    print(f"\nInstalled at the lowest versions allowed:\n{frozen}")
    installed = dict(line.split("==") for line in frozen.splitlines() if "==" in line)
    for name in ("requirements.txt", "requirements-deploy.txt", "requirements-dev.txt"):
        for line in (project / name).read_text().splitlines():
            found = re.match(r"([A-Za-z0-9._-]+)\s*>=\s*([0-9][0-9.]*)", line)
            if found:
                package, floor = found.group(1).lower(), found.group(2)
                version = installed[package]
                assert version == floor or version.startswith(f"{floor}."), (name, line, version)


def test_the_baked_suite_passes_at_the_lowest_versions_where_users_run_it(lowest, server_env, users_space):
    """On a machine booted 30 s ago, as an ordinary user, LANG=C, TZ=UTC+14, umask 077, in a
    random order (its seed is in the command shown on failure)."""
    project, bin_, _ = lowest
    checkout = users_space / project.name  # the user's own copy
    shutil.copytree(project, checkout, ignore=shutil.ignore_patterns("__pycache__"))
    where_users_run.hand_over(checkout)
    baked_suite(
        checkout,
        {**server_env, "CI": "true"},
        *where_users_run.random_order(),
        python=bin_ / "python",
        prefix=where_users_run.user_prefix(users_space / "home"),
    )


def test_the_baked_ci_lints_and_type_checks_at_the_lowest_versions(lowest, bake):
    """What the baked CI runs besides pytest (.github/workflows/ci.yml), with the lowest ruff
    and mypy, and pre-commit's check of its config; ruff on a bake with the longest names too
    (the longest lines)."""
    project, bin_, _ = lowest
    longest = "n" * pre_gen.MAX_NAME
    long_names = bake(project_slug=longest, package_name=longest)
    for command, where in (
        (["ruff", "check", "--no-cache", "."], project),
        (["ruff", "format", "--check", "--no-cache", "."], project),
        (["ruff", "check", "--no-cache", "."], long_names),
        (["ruff", "format", "--check", "--no-cache", "."], long_names),
        (["mypy"], project),
        (["pre-commit", "validate-config", ".pre-commit-config.yaml"], project),
    ):
        result = run([str(bin_ / command[0]), *command[1:]], cwd=where)
        assert result.returncode == 0, (command, where.name, result.stdout[-3000:] + result.stderr[-3000:])


def test_the_near_cache_tracks_in_both_uwsgi_workers_at_the_lowest_versions(lowest, redis_url, tmp_path):
    """The app under the lowest uWSGI with 2 workers, on Redis: each worker's near cache tracks,
    and still does after reads of its tracking connection (every /health writes a key, which
    the server reports to both workers, and reads it back); `flask cache status` says so too."""
    project, bin_, _ = lowest
    env = servers.app_env(
        project, CACHE_TYPE="redis", REDIS_URL=redis_url, CACHE_KEY_PREFIX=f"lowest-{secrets.token_hex(4)}:"
    )
    wsgi = project / "pythonanywhere_wsgi.py"
    with (
        servers.uwsgi(wsgi, env, tmp_path / "uwsgi.log", processes=2, binary=str(bin_ / "uwsgi")) as url,
        servers.Workers(url) as workers,  # each worker's first /health starts its tracking
    ):
        for _ in range(ROUNDS):
            for worker in range(2):
                status, body, _ = workers.get(worker, "/health")
                assert status == 200, body
                near = body["cache"]["near"]
                assert (body["cache"]["active"], near["mode"]) == ("redis", "tracking"), (
                    f"worker {worker}: {near}"
                )
    cli = run([str(bin_ / "flask"), "--app", project.name, "cache", "status"], cwd=project, env=env)
    assert cli.returncode == 0, cli.stdout + cli.stderr
    assert "near cache: tracking" in cli.stdout, cli.stdout


def test_the_baked_python_needs_no_newer_python_than_the_oldest_offered(bake):
    """The oldest python_version answer is the floor of pyproject.toml's requires-python and
    ruff's target-version, and vermin finds nothing in the app, its WSGI file or its tests that
    needs a newer Python (the suite here runs on one Python only). deploy.py has its own, older
    floor (test_deploy.py)."""
    oldest = min(CHOICES["python_version"], key=lambda version: tuple(map(int, version.split("."))))
    project = bake()
    pyproject = (project / "pyproject.toml").read_text()
    assert f'requires-python = ">={oldest}"' in pyproject
    assert f'target-version = "py{oldest.replace(".", "")}"' in pyproject
    checked = run(
        [sys.executable, "-c", "import sys, vermin; sys.exit(vermin.main())",
         "--eval-annotations", "--no-tips", "--violations", f"-t={oldest}-",
         project.name, "tests", "pythonanywhere_wsgi.py"],
        cwd=project, timeout=120,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "Minimum required versions: " in checked.stdout, checked.stdout  # it read them
