"""Refuse, before anything is written, every answer that cannot make a working project.

The logic is plain Python (unit-tested in tests/test_hooks.py); only the last line is rendered by
cookiecutter, with the answers passed through tojson so that no quote in an answer can break it.
"""

import json
import keyword
import re
import shlex
import sys
import unicodedata
from pathlib import Path

# Top-level modules the baked app or its tests import: a package of the same name would shadow one.
APP_IMPORTS = {
    "flask", "flask_caching", "cachelib", "werkzeug", "jinja2", "click", "itsdangerous",
    "markupsafe", "blinker", "dotenv", "redis", "pymemcache", "requests", "pytest", "test",
    "tests", "conftest", "pythonanywhere_wsgi", "deploy", "pythonanywhere_core", "ruff", "pip",
    "setuptools",
}  # fmt: skip

# lowercase letter first, then lowercase letters, digits and underscores: a directory, a
# virtualenv name and an importable package all at once.
NAME = re.compile(r"[a-z][a-z0-9_]*\Z")
# PythonAnywhere usernames are letters and digits; it is a DNS label in <user>.pythonanywhere.com.
USERNAME = re.compile(r"[A-Za-z0-9]{1,63}\Z")
# Longer names push lines of the baked code (imports, paths) past ruff's 100 columns.
MAX_NAME = 40

# Free text, written into the site, pyproject.toml, the README and Python string literals. Any
# printable character works (accents, emoji, quotes, backslashes); these cannot:
TEXT_ANSWERS = ("project_name", "description", "author_name")
# line breaks and control characters (a one-line answer), lone surrogates (not encodable), and
LINE_BREAKING = {"Cc", "Cs", "Zl", "Zp"}
# Jinja's delimiters: cookiecutter renders answers given as --no-input/extra context, and cruft's
# update renders the kept answers again, so they would become template code on the next bake.
# (Spelled in two halves: cookiecutter renders this file too.)
JINJA = ("{" + "{", "{" + "%", "{" + "#")
# `PROJECT_NAME = "..."` fits ruff's 100 columns even if every character is double width.
MAX_PROJECT_NAME = 40


def shown(value: str) -> str:
    """The answer as the message shows it: quoted, escaped, and cut short if long."""
    return repr(value if len(value) <= 50 else value[:50] + "…")


def text_problem(key: str, value: str) -> str:
    """What is wrong with a free-text answer, or "" when it can be baked."""
    for char in value:
        if unicodedata.category(char) in LINE_BREAKING:
            return (
                f"{key}={shown(value)} contains U+{ord(char):04X}, a line break or control "
                "character: use one line of printable text"
            )
    for delimiter in JINJA:
        if delimiter in value:
            return (
                f"{key}={shown(value)} contains {delimiter!r}, which cookiecutter and cruft read "
                "as template code when they bake or update again: remove it"
            )
    if value != value.strip():
        return f"{key}={shown(value)} starts or ends with a space: remove it"
    if key == "project_name" and not value:
        return f"{key}={shown(value)} is empty: give the name shown on the site"
    if key == "project_name" and len(value) > MAX_PROJECT_NAME:
        return (
            f"{key}={shown(value)} is {len(value)} characters long: use at most "
            f"{MAX_PROJECT_NAME} (the site's title, and a line of Python)"
        )
    return ""


def problems(answers: dict) -> list[str]:
    """One message per unusable answer; empty when the project can be baked."""
    # An answer outside a choice's list never gets here: cookiecutter refuses it, naming both.
    found = []
    for key in TEXT_ANSWERS:
        problem = text_problem(key, str(answers.get(key, "")))
        if problem:
            found.append(problem)
    for key in ("project_slug", "package_name"):
        value = str(answers.get(key, ""))
        if not NAME.match(value) or keyword.iskeyword(value):
            found.append(
                f"{key}={shown(value)} is not allowed: use lowercase letters, digits and "
                "underscores, starting with a letter (e.g. my_site)"
            )
        elif len(value) > MAX_NAME:
            found.append(f"{key}={shown(value)} is {len(value)} characters long: use at most {MAX_NAME}")
        elif value in APP_IMPORTS or value in getattr(sys, "stdlib_module_names", ()):
            found.append(
                f"{key}={value!r} is the name of a module the app imports and would shadow it: "
                f"choose another name (e.g. {value}_site)"
            )
    username = str(answers.get("pythonanywhere_username", ""))
    if not USERNAME.match(username):
        found.append(
            f"pythonanywhere_username={shown(username)} cannot be a PythonAnywhere username: use "
            "letters and digits only, as in <username>.pythonanywhere.com and /home/<username>"
        )
    return found


def replay_dir() -> Path:
    """Where cookiecutter writes its replay files, as its user config says (the hook runs with
    cookiecutter's own Python); its default without one."""
    try:
        from cookiecutter.config import get_user_config

        return Path(get_user_config()["replay_dir"])
    except Exception:  # noqa: BLE001 - an unreadable config: its default, checked below anyway
        return Path.home() / ".cookiecutter_replay"


def replay_of(answers: dict) -> Path | None:
    """The replay file cookiecutter wrote with these very answers before running this hook (it
    names it after the template's folder), or None (cruft, the Python API, another config)."""
    if not all(answers.get(key) for key in ("_repo_dir", "_template", "_output_dir")):
        return None
    path = replay_dir() / f"{Path(str(answers['_repo_dir'])).name}.json"
    try:
        kept = json.loads(path.read_text())["cookiecutter"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    given = {key: value for key, value in answers.items() if not key.startswith("_")}
    return path if {k: v for k, v in kept.items() if not k.startswith("_")} == given else None


def bake_again(answers: dict, replay: Path) -> str:
    """The command that bakes again with the answers kept in ``replay``, once corrected there."""
    command = ["cookiecutter", "--replay-file", str(replay), str(answers["_template"])]
    if answers.get("_checkout"):
        command += ["--checkout", str(answers["_checkout"])]
    command += ["--output-dir", str(answers["_output_dir"])]
    return (
        f"Your answers are kept in {replay}: correct the ones named above there, then bake "
        f"again with them:\n  {shlex.join(command)}"
    )


def main(answers: dict) -> None:
    found = problems(answers)
    if found:
        replay = replay_of(answers)
        again = f"\n{bake_again(answers, replay)}" if replay else ""
        sys.exit("Cannot bake this project:\n  " + "\n  ".join(found) + again)


if __name__ == "__main__":
    main(json.loads(r"""{{ cookiecutter | tojson }}"""))
