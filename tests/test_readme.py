"""The README's two opening commands are the ones that work and the one CI runs."""

import re
import subprocess

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
