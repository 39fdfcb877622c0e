"""The README's two opening commands are the ones that work and the ones CI runs."""

import re
import subprocess

from .conftest import TEMPLATE


def opening_commands() -> list[str]:
    readme = (TEMPLATE / "README.md").read_text()
    block = re.search(r"```bash\n(.*?)```", readme, flags=re.S).group(1)
    return block.strip().splitlines()


def test_readme_starts_with_the_bake_and_test_commands():
    bake, test = opening_commands()
    assert "cookiecutter --no-input" in bake
    assert "pytest" in test


def test_ci_runs_the_readme_test_command():
    _, test = opening_commands()
    assert test in (TEMPLATE / ".ci" / "run").read_text().splitlines()


def test_the_readme_bake_command_bakes_the_defaults(tmp_path):
    bake, _ = opening_commands()
    command = bake.replace("--output-dir ..", f"--output-dir {tmp_path}")
    result = subprocess.run(command, shell=True, cwd=TEMPLATE, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    project = tmp_path / "my_flask_app"
    assert "CACHE_TYPE=simple" in (project / ".env").read_text().splitlines()
    assert (project / "pythonanywhere_wsgi.py").exists()
