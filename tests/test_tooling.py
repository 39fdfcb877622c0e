"""The developer habits the baked project comes with: mypy --strict on its cache package,
pre-commit, Dependabot, a CI workflow that runs them, and files pre-commit's fixers leave alone."""

import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

from .conftest import TEMPLATE


def run(command: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True)


def test_mypy_strict_passes_on_the_cache_package(bake):
    project = bake()
    result = run([sys.executable, "-m", "mypy"], cwd=project)  # its pyproject: strict, cache/
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success: no issues found" in result.stdout


@pytest.mark.parametrize("where", ["template", "baked project"])
def test_pre_commit_runs_ruff_and_the_whitespace_fixers(bake, where):
    folder = TEMPLATE if where == "template" else bake()
    config = folder / ".pre-commit-config.yaml"
    result = run([sys.executable, "-m", "pre_commit", "validate-config", str(config)], cwd=folder)
    assert result.returncode == 0, result.stdout + result.stderr
    hooks = {hook["id"] for repo in yaml.safe_load(config.read_text())["repos"] for hook in repo["hooks"]}
    assert {"ruff-check", "ruff-format", "end-of-file-fixer", "trailing-whitespace"} <= hooks


def text_files(folder: Path):
    """The files git would track: a bake is no repository, so its .gitignore is read through an
    empty one (the tests may have left runtime files, cache entries, in the shared bake)."""
    with tempfile.TemporaryDirectory() as empty:
        run(["git", "init", "-q", "--bare", empty], cwd=folder)
        where = [] if (folder / ".git").exists() else [f"--git-dir={empty}", f"--work-tree={folder}"]
        listed = run(["git", *where, "ls-files", "-co", "--exclude-standard"], cwd=folder)
    assert listed.returncode == 0, listed.stderr
    for path in (folder / name for name in listed.stdout.splitlines()):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".png":
            yield path


@pytest.mark.parametrize("where", ["template", "baked project"])
def test_files_are_what_pre_commits_fixers_would_leave(bake, where):
    folder = TEMPLATE if where == "template" else bake()
    paths = list(text_files(folder))
    assert folder / "README.md" in paths and folder / ".gitignore" in paths
    for path in paths:
        text = path.read_text()
        assert not text or (text.endswith("\n") and not text.endswith("\n\n")), f"end of {path}"
        trailing = [n for n, line in enumerate(text.splitlines(), 1) if line != line.rstrip()]
        assert trailing == [], f"trailing whitespace in {path}, lines {trailing}"


def test_dependabot_watches_the_requirements_and_the_actions(bake):
    config = yaml.safe_load((bake() / ".github" / "dependabot.yml").read_text())
    assert config["version"] == 2
    assert {update["package-ecosystem"] for update in config["updates"]} == {"pip", "github-actions"}


def test_the_baked_ci_lints_type_checks_and_tests(bake):
    workflow = yaml.safe_load((bake() / ".github" / "workflows" / "ci.yml").read_text())
    commands = [step.get("run", "") for step in workflow["jobs"]["test"]["steps"]]
    assert any("ruff check" in c for c in commands)
    assert "mypy" in commands and "pytest" in commands
