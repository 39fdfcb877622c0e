"""Refuse, before anything is written, every answer that cannot make a working project.

The logic is plain Python (unit-tested in tests/test_hooks.py); only the last line is rendered by
cookiecutter, with the answers passed through tojson so that no quote in an answer can break it.
"""

import json
import keyword
import re
import sys

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


def problems(answers: dict) -> list[str]:
    """One message per unusable answer; empty when the project can be baked."""
    # An answer outside a choice's list never gets here: cookiecutter refuses it, naming both.
    found = []
    for key in ("project_slug", "package_name"):
        value = str(answers.get(key, ""))
        if not NAME.match(value) or keyword.iskeyword(value):
            found.append(
                f"{key}={value!r} is not allowed: use lowercase letters, digits and underscores, "
                "starting with a letter (e.g. my_site)"
            )
        elif value in APP_IMPORTS or value in getattr(sys, "stdlib_module_names", ()):
            found.append(
                f"{key}={value!r} is the name of a module the app imports and would shadow it: "
                f"choose another name (e.g. {value}_site)"
            )
        elif key == "package_name" and "cachelib" in value:
            # Flask-Caching builds a CACHE_TYPE whose dotted path contains "cachelib" as one of
            # cachelib's own classes, so the cache package's classes could not be used.
            found.append(
                f"{key}={value!r} contains 'cachelib', which Flask-Caching reserves for "
                "cachelib's own backends: choose another name"
            )
    username = str(answers.get("pythonanywhere_username", ""))
    if not USERNAME.match(username):
        found.append(
            f"pythonanywhere_username={username!r} cannot be a PythonAnywhere username: use "
            "letters and digits only, as in <username>.pythonanywhere.com and /home/<username>"
        )
    return found


def main(answers: dict) -> None:
    found = problems(answers)
    if found:
        sys.exit("Cannot bake this project:\n  " + "\n  ".join(found))


if __name__ == "__main__":
    main(json.loads(r"""{{ cookiecutter | tojson }}"""))
