"""The README's two opening commands are the ones that work and the one CI runs."""

import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

from .conftest import TEMPLATE


def opening_commands() -> list[str]:
    readme = (TEMPLATE / "README.md").read_text()
    block = re.search(r"```bash\n(.*?)```", readme, flags=re.S).group(1)
    return block.strip().splitlines()


def test_readme_starts_with_the_bake_and_test_commands():
    bake, test = opening_commands()
    assert "python3 -m venv .venv" in bake and "cookiecutter --no-input" in bake  # PEP 668
    assert test == "bash .ci/run"


def test_ci_runs_the_readme_test_command():
    _, test = opening_commands()
    workflow = yaml.safe_load((TEMPLATE / ".github" / "workflows" / "ci.yml").read_text())
    assert [step["run"] for step in workflow["jobs"]["test"]["steps"] if "run" in step] == [test]
    ci_run = (TEMPLATE / ".ci" / "run").read_text()
    assert "python3 -m venv .venv" in ci_run and ".venv/bin/python -m pytest" in ci_run


def test_the_readme_bake_command_bakes_the_defaults(tmp_path):
    bake, _ = opening_commands()
    command = bake.replace("--output-dir ..", f"--output-dir {tmp_path}").replace(
        ".venv", str(tmp_path / "venv")
    )
    result = subprocess.run(command, shell=True, cwd=TEMPLATE, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    project = tmp_path / "my_flask_app"
    assert "CACHE_TYPE=simple" in (project / ".env").read_text().splitlines()
    assert (project / "pythonanywhere_wsgi.py").exists()


def section(title: str) -> str:
    readme = (TEMPLATE / "README.md").read_text()
    return re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## )", readme, flags=re.S | re.M).group(1)


def test_every_pip_install_in_the_readme_runs_in_a_virtualenv():
    # Debian and Ubuntu's own Python refuse a bare `pip install` (PEP 668): a newcomer's first error.
    readme = (TEMPLATE / "README.md").read_text()
    code = re.findall(r"```\w*\n(.*?)```", readme, flags=re.S) + re.findall(r"`([^`\n]+)`", readme)
    for snippet in code:
        for found in re.finditer(r"pip install (-\S+ )*[A-Za-z]", snippet):  # one that installs
            before = snippet[: found.start()]
            assert before.endswith("/bin/") or re.search(r"/bin/python3? -m $", before), snippet


def test_the_readme_bakes_from_the_published_repository_a_fork_or_a_clone(tmp_path):
    """Its `gh:<org>` is for the published repository; a git URL (a fork) and a clone's path
    are the forms anyone can run, and they bake."""
    from .test_cruft import clone_of_the_template, run

    commands = re.search(r"```sh\n(.*?)```", section("Bake a project"), flags=re.S).group(1)
    bakes = [line.split() for line in commands.splitlines() if line.startswith("pipx run cookiecutter")]
    sources = [words[3] for words in bakes]
    assert sources[0].startswith("gh:<org>/")
    [fork] = [words for words in bakes if words[3].startswith("https://")]
    [clone] = [words for words in bakes if words[3].startswith("./")]
    assert f"git clone {fork[3]}" in commands  # the clone the path form bakes from

    template = clone_of_the_template(tmp_path / "fork.git")  # cookiecutter wants .git
    run("git", "branch", "-M", "main", cwd=template)  # what a fork's default branch is called
    cookiecutter = str(Path(sys.executable).with_name("cookiecutter"))
    for words, source in ((fork, template.as_uri()), (clone, str(template))):
        output = tmp_path / words[3].split(":")[0].strip("./")
        command = [cookiecutter, source, *words[4:], "--no-input", "--output-dir", str(output)]
        result = subprocess.run(
            command, capture_output=True, text=True, env={**os.environ, "HOME": str(tmp_path)}
        )
        assert result.returncode == 0, result.stderr
        assert (output / "my_flask_app" / "pythonanywhere_wsgi.py").exists()
