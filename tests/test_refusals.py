"""Answers that cannot make a working project: the bake stops, says why, and leaves nothing."""

import json
import os
import pty
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from cookiecutter.main import cookiecutter

from .conftest import TEMPLATE, answers

REFUSED = [
    ({"project_slug": "my-site"}, "project_slug='my-site' is not allowed"),
    ({"project_slug": "My_Site"}, "project_slug='My_Site' is not allowed"),
    ({"project_slug": "2fast"}, "project_slug='2fast' is not allowed"),
    ({"project_slug": "flask"}, "project_slug='flask' is the name of a module the app imports"),
    ({"package_name": "redis"}, "package_name='redis' is the name of a module the app imports"),
    ({"package_name": "test"}, "package_name='test' is the name of a module the app imports"),
    ({"package_name": "json"}, "package_name='json' is the name of a module the app imports"),
    ({"package_name": "class"}, "package_name='class' is not allowed"),
    ({"package_name": "my app"}, "package_name='my app' is not allowed"),
    ({"pythonanywhere_username": "bob.smith"}, "pythonanywhere_username='bob.smith' cannot be"),
    ({"pythonanywhere_username": "bob/../x"}, "pythonanywhere_username='bob/../x' cannot be"),
    ({"pythonanywhere_username": ""}, "pythonanywhere_username='' cannot be"),
    ({"pythonanywhere_username": "a" * 64}, "cannot be a PythonAnywhere username"),
]

UNKNOWN_CHOICES = [
    {"cache_backend": "mongodb"},
    {"pythonanywhere_region": "asia"},
    {"python_version": "3.9"},
]


def bake_into(output_dir, overrides) -> str:
    """Bake and return what the user was told; the bake must fail."""
    with pytest.raises(Exception) as failure:  # noqa: B017 - cookiecutter's own errors vary
        cookiecutter(
            str(TEMPLATE), no_input=True, extra_context=answers(**overrides), output_dir=str(output_dir)
        )
    return str(failure.value)


@pytest.mark.parametrize("overrides, message", REFUSED, ids=[str(r[0]) for r in REFUSED])
def test_refused_answer_stops_the_bake_and_leaves_nothing(tmp_path, capfd, overrides, message):
    output_dir = tmp_path / "out"
    output_dir.mkdir()
    bake_into(output_dir, overrides)
    assert message in capfd.readouterr().err
    assert list(output_dir.iterdir()) == []


@pytest.mark.parametrize("overrides", UNKNOWN_CHOICES, ids=str)
def test_unknown_choice_is_refused_naming_it(tmp_path, capfd, overrides):
    output_dir = tmp_path / "out"
    output_dir.mkdir()
    said = bake_into(output_dir, overrides) + capfd.readouterr().err
    ((key, value),) = overrides.items()
    assert value in said and key in said
    assert list(output_dir.iterdir()) == []


def test_a_slug_with_a_slash_is_refused_and_leaves_no_file(tmp_path, capfd):
    # cookiecutter creates out/site/sub before the hook runs and removes only out/site/sub on
    # failure, so an empty out/site remains: that much is outside a hook's reach.
    output_dir = tmp_path / "out"
    output_dir.mkdir()
    bake_into(output_dir, {"project_slug": "site/sub"})
    assert "project_slug='site/sub' is not allowed" in capfd.readouterr().err
    assert [path for path in output_dir.rglob("*") if not path.is_dir()] == []


def typed_at_the_prompts(command: list[str], lines: list[str], env: dict[str, str]) -> str:
    """What a user at a terminal sees when running ``command`` and typing ``lines``: they wait in
    the terminal's input buffer until each prompt reads them."""
    pid, terminal = pty.fork()
    if pid == 0:  # the child: cookiecutter, on the terminal
        os.execve(command[0], command, env)
    os.write(terminal, "".join(line + "\r" for line in lines).encode())
    seen = b""
    while True:
        try:
            chunk = os.read(terminal, 65536)
        except OSError:  # the child has exited and closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    os.waitpid(pid, 0)
    return re.sub(r"\x1b\[[0-9;]*m", "", seen.decode(errors="replace")).replace("\r\n", "\n")


def test_a_refused_prompt_answer_says_why_without_a_traceback_and_keeps_the_answers(tmp_path):
    # cookiecutter writes its replay file before the hooks run; the pre-gen hook points at it.
    config = tmp_path / "config.yaml"
    config.write_text(f"replay_dir: {tmp_path / 'replay'}\ncookiecutters_dir: {tmp_path / 'cc'}\n")
    env = {**os.environ, "COOKIECUTTER_CONFIG": str(config), "TERM": "dumb"}
    output_dir = tmp_path / "out"
    cookiecutter_cli = str(Path(sys.executable).with_name("cookiecutter"))
    typed = ["My Site", "my-site", "", "", "", "Alice42", "", "", "3"]  # a dash in the slug
    said = typed_at_the_prompts([cookiecutter_cli, "-o", str(output_dir), str(TEMPLATE)], typed, env)

    assert "project_slug='my-site' is not allowed" in said
    assert "Traceback" not in said
    assert not output_dir.exists() or list(output_dir.iterdir()) == []
    again = said.split("then bake again with them:\n", 1)[1].splitlines()[0].strip()
    replay = tmp_path / "replay" / f"{TEMPLATE.name}.json"
    assert shlex.split(again) == [
        "cookiecutter", "--replay-file", str(replay), str(TEMPLATE), "--output-dir", str(output_dir),
    ]  # fmt: skip

    kept = json.loads(replay.read_text())
    kept["cookiecutter"].update(project_slug="my_site", package_name="my_site")
    replay.write_text(json.dumps(kept))
    baked = subprocess.run(
        [cookiecutter_cli, *shlex.split(again)[1:]], env=env, stdin=subprocess.DEVNULL,
        capture_output=True, text=True,
    )  # fmt: skip
    assert baked.returncode == 0, baked.stdout + baked.stderr
    assert "Baked my_site with the redis cache." in baked.stdout  # no answer typed again
    kept_answers = json.loads((output_dir / "my_site" / ".cookiecutter.json").read_text())
    assert (kept_answers["project_name"], kept_answers["pythonanywhere_username"]) == ("My Site", "Alice42")
