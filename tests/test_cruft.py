"""Template updates with cruft: a project baked with `cruft create` takes a later template change
to the cache package with `cruft update`, keeping the user's own edits and .env byte for byte."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

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


def clone_of_the_template(where: Path) -> Path:
    """A git repository holding the template as it is now (committed or not), as a clone would."""
    files = run("git", "ls-files", "-co", "--exclude-standard", cwd=TEMPLATE).splitlines()
    for name in files:
        if (TEMPLATE / name).is_file():
            (where / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(TEMPLATE / name, where / name)
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
