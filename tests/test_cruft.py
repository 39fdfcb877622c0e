"""Template updates with cruft: a project baked with `cruft create` takes a later template change
to the cache package with `cruft update`, keeping the user's own edits and .env byte for byte."""

import io
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from . import servers
from .conftest import TEMPLATE

GIT = {
    "GIT_AUTHOR_NAME": "Test", "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "Test", "GIT_COMMITTER_EMAIL": "test@example.com",
}  # fmt: skip
CACHE_CLI = Path("{{cookiecutter.package_name}}") / "cache" / "cli.py"


def run(*command: str, cwd: Path) -> str:
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, env={**os.environ, **GIT})
    assert result.returncode == 0, f"{command}: {result.stdout}{result.stderr}"
    return result.stdout


def commit_all(repo: Path, message: str) -> None:
    run("git", "add", "-A", cwd=repo)
    run("git", "commit", "-q", "-m", message, cwd=repo)


def copy_the_template(where: Path) -> None:
    """The template's files as they are now (committed or not), as a clone has them."""
    files = run("git", "ls-files", "-co", "--exclude-standard", cwd=TEMPLATE).splitlines()
    for name in files:
        if (TEMPLATE / name).is_file():
            (where / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(TEMPLATE / name, where / name)


def clone_of_the_template(where: Path) -> Path:
    """A git repository holding the template as it is now, as a clone would."""
    copy_the_template(where)
    run("git", "init", "-q", cwd=where)
    commit_all(where, "template")
    return where


def cruft(*args: str, cwd: Path) -> str:
    return run(sys.executable, "-m", "cruft", *args, cwd=cwd)


def test_cruft_update_brings_a_cache_fix_and_keeps_the_users_files(tmp_path):
    template = clone_of_the_template(tmp_path / "template")
    out = str(tmp_path / "out")
    created = cruft("create", str(template), "--no-input", "--output-dir", out, cwd=tmp_path)
    assert (created.count("Baked my_flask_app"), created.count("Next steps:")) == (1, 1)
    project = tmp_path / "out" / "my_flask_app"
    run("git", "init", "-q", cwd=project)
    commit_all(project, "baked")
    env_before = (project / ".env").read_bytes()

    views = project / "my_flask_app" / "views.py"
    views.write_text(views.read_text() + '\n\n@bp.get("/about")\ndef about() -> str:\n    return "mine"\n')
    commit_all(project, "a page of my own")

    fixed = template / "{{cookiecutter.project_slug}}" / CACHE_CLI
    fixed.write_text(fixed.read_text() + "\n# A fix made in the template after the bake.\n")
    commit_all(template, "a fix in the cache package")

    updated = cruft("update", "-y", cwd=project)
    # cruft renders the old and the new template to diff them: neither is a bake to announce.
    assert (updated.count("Baked "), updated.count("Next steps:")) == (0, 0)

    assert (
        "# A fix made in the template after the bake." in (project / "my_flask_app/cache/cli.py").read_text()
    )
    assert 'def about() -> str:\n    return "mine"' in views.read_text()
    assert (project / ".env").read_bytes() == env_before
    assert list(project.rglob("*.rej")) == []
    cruft("check", cwd=project)


# The release before the two rooms: /health, the error pages and the footer's cache report lived
# in the user's views.py, the 404 and 500 pages in the user's templates/, the tests in tests/.
BEFORE_THE_ROOMS = "8bcc8b5"
# A page of the user's own, added after the index (in an update from before the two rooms, one
# added at the very end meets the template's removal of /health there: the baked README says
# what to do).
MY_PAGE = '@bp.get("/about")\ndef about() -> str:\n    return "mine"\n\n\n'
BEFORE_MY_PAGE = "def readable("


def test_cruft_update_from_the_release_before_the_two_rooms_keeps_the_users_views(tmp_path):
    """This release moves files between the user's room and the template's: an update keeps the
    user's own views.py, .env and tests, takes the template's pages out of views.py, and leaves
    no .rej; the site then serves the user's page, /health and the styled 404."""
    found = subprocess.run(["git", "cat-file", "-e", f"{BEFORE_THE_ROOMS}^{{commit}}"], cwd=TEMPLATE)
    if found.returncode != 0:
        pytest.skip(f"this clone of the template lacks {BEFORE_THE_ROOMS} (a shallow clone)")
    template = tmp_path / "template"
    template.mkdir()
    archive = run_bytes("git", "archive", BEFORE_THE_ROOMS, cwd=TEMPLATE)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(template, filter="data")
    run("git", "init", "-q", cwd=template)
    commit_all(template, "the release before the two rooms")
    cruft("create", str(template), "--no-input", "--output-dir", str(tmp_path / "out"), cwd=tmp_path)
    project = tmp_path / "out" / "my_flask_app"
    run("git", "init", "-q", cwd=project)
    commit_all(project, "baked")
    env_before = (project / ".env").read_bytes()
    views = project / "my_flask_app" / "views.py"
    views.write_text(views.read_text().replace(BEFORE_MY_PAGE, MY_PAGE + BEFORE_MY_PAGE))
    commit_all(project, "a page of my own")

    run("git", "rm", "-rq", ".", cwd=template)
    copy_the_template(template)
    commit_all(template, "this release")
    cruft("update", "-y", cwd=project)

    assert list(project.rglob("*.rej")) == []
    assert (project / ".env").read_bytes() == env_before
    mine = views.read_text()
    assert MY_PAGE + BEFORE_MY_PAGE in mine, mine
    assert '"/health"' not in mine and "errorhandler" not in mine and "<<<<<<<" not in mine
    assert (project / "tests" / "cache" / "test_views.py").exists()
    assert not (project / "tests" / "test_views.py").exists()
    served = servers.served(project, "/about", "/health", "/", "/nope")
    assert served["/about"] == [200, "mine"]
    assert served["/health"][0] == 200 and served["/"][0] == 200
    assert served["/nope"][0] == 404 and "<title>Page not found · " in served["/nope"][1]
    cruft("check", cwd=project)


def run_bytes(*command: str, cwd: Path) -> bytes:
    return subprocess.run(command, cwd=cwd, capture_output=True, check=True).stdout
