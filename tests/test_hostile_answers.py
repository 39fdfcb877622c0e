"""Hostile answers to the free-text prompts: each one bakes a project that works, or is refused.

Works: every page answers 200 and shows the name (HTML-escaped), PROJECT_NAME, pyproject.toml,
the README and the kept answers hold the answers exactly, the workflow YAML parses, and ruff is
clean. Refused: the bake stops with the pre-gen hook's message, one line per answer naming it, and
nothing is left in the output directory. Baking is cheap (~0.1 s) and done per example; serving
the pages and ruff run once over all the bakes, at the end.
"""

import ast
import itertools
import json
import operator
import subprocess
import sys
from pathlib import Path
from unittest import mock

import tomllib
import yaml
from cookiecutter import prompt
from cookiecutter.exceptions import FailedHookException
from cookiecutter.main import cookiecutter
from hypothesis import example, given, settings
from hypothesis import strategies as st
from markupsafe import escape

import local_extensions

from .conftest import COOKIECUTTER_JSON, TEMPLATE

TEXT = ("project_name", "description", "author_name")

# Characters that break string literals, TOML, YAML, Markdown, HTML or Jinja, and some that need
# more than one UTF-16 unit or byte: mixed into short text, as Hypothesis rarely draws them.
BREAKERS = list("\"'\\\n\r\t\x00\x7f\x1b{}%#<>&` éß😀👩‍👩‍👧中\u202e\u2028\u00a0\ufeff")
one_line = st.characters(exclude_categories=("Cc", "Cs", "Zl", "Zp"))  # what one can type on a line
text = st.one_of(
    st.text(one_line, min_size=1, max_size=40),
    st.text(max_size=45),  # any code point but a lone surrogate (Hypothesis leaves those out)
    st.text(st.sampled_from(BREAKERS), max_size=20),
    st.builds(operator.mul, st.text(one_line, min_size=1, max_size=8), st.integers(10, 600)),  # long
)
# Typed instead of the derived names: valid ones, and any text. A project_slug is a directory that
# cookiecutter creates before any hook runs, so "", "/", NUL, "." and ".." are its to refuse.
identifier = st.from_regex(r"[a-z][a-z0-9_]{0,45}", fullmatch=True)
any_slug = st.text(st.characters(exclude_characters="/\x00"), max_size=45).filter(
    lambda typed: typed not in {"", ".", ".."}
)
username = st.from_regex(r"[A-Za-z0-9]{1,64}", fullmatch=True)
DEFAULT = st.none()  # the prompt's default is taken


def typed(**answers: str | None) -> dict[str, str]:
    return {key: value for key, value in answers.items() if value is not None}


# Each answer typed or left at its default; a branch listed twice is drawn twice as often.
hostile = st.builds(
    typed,
    project_name=text,
    description=st.one_of(DEFAULT, text, text),
    author_name=st.one_of(DEFAULT, text, text),
    project_slug=st.one_of(DEFAULT, identifier, identifier, any_slug),
    package_name=st.one_of(DEFAULT, DEFAULT, identifier, st.text(max_size=45)),
    pythonanywhere_username=st.one_of(DEFAULT, username, username, text),
)

# What a user may well type; each must bake (the old tojson made the first two fail: a 500 on
# every page, an invalid pyproject.toml).
MUST_BAKE = [
    {"project_name": "Café 😀"},
    {"project_name": "😀 🎉"},  # no letter to make a slug from: my_site
    {"project_name": "My Flask App", "description": "Fast 🚀", "author_name": "Zoë 😀 O'Brien"},
    {"project_name": 'Say "hi" \\ it\'s <b>&amp;', "description": 'a "quoted" \\path\\ \u202e'},
    {"project_name": "中" * 40, "pythonanywhere_username": "A" * 63, "description": "长" * 3000},
    {"project_name": "👩‍👩‍👧 " * 5 + "x", "project_slug": "s" * 40, "package_name": "p" * 40},
]

# Serve every route of each baked app with its own .env, in one process: each package is imported
# from its own directory, and forgotten before the next (two bakes may share a package name).
SERVE_EVERY_ROUTE = """
import json, sys
from dotenv import dotenv_values
served = []
for project, package in json.load(sys.stdin):
    for name in [m for m in sys.modules if m == package or m.startswith(package + ".")]:
        del sys.modules[name]
    sys.path.insert(0, project)
    app = __import__(package).create_app(environ=dotenv_values(project + "/.env"))
    sys.path.remove(project)
    adapter = app.url_map.bind("localhost")
    client = app.test_client()
    pages = {}
    for rule in app.url_map.iter_rules():
        url = adapter.build(rule.endpoint, {"n": 3, "filename": "style.css"}, append_unknown=False)
        response = client.get(url)
        pages[url] = [response.status_code, response.get_data(as_text=True)]
        response.close()
    served.append({"name": app.config["PROJECT_NAME"], "pages": pages})
print(json.dumps(served))
"""


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(value=st.text() | st.text(st.sampled_from(BREAKERS)))
def test_the_literal_filters_read_back_exactly(value):
    # Any text, line breaks and control characters included (the hook refuses those, but the
    # filters stay exact without it). tojson failed this for every character outside the BMP.
    assert ast.literal_eval(local_extensions.python_string(value)) == value
    assert tomllib.loads(f"v = {local_extensions.toml_string(value)}")["v"] == value


def bake_typed(answers: dict[str, str], output_dir: Path, config_file: Path) -> Path:
    """Bake as a user who types ``answers`` at the prompts and takes every other default.

    Not extra_context: cookiecutter renders those values as Jinja before any hook sees them, so
    "{{ 7*7 }}" would arrive as "49". Typed answers reach the hook as typed."""
    unknown = set(answers) - set(COOKIECUTTER_JSON)
    assert not unknown, f"cookiecutter.json has no answer named {sorted(unknown)}"

    def as_typed(var_name, default_value, prompts=None, prefix=""):
        return answers.get(var_name, default_value)

    def first(var_name, options, prompts=None, prefix=""):
        return options[0]

    with (
        mock.patch.object(prompt, "read_user_variable", as_typed),
        mock.patch.object(prompt, "read_user_choice", first),
    ):
        return Path(cookiecutter(str(TEMPLATE), output_dir=str(output_dir), config_file=str(config_file)))


def check_baked(project: Path, answers: dict[str, str]) -> None:
    """What can be read without running anything: each answer reads back exactly where it went."""
    expected = {key: answers.get(key, COOKIECUTTER_JSON[key]) for key in TEXT}
    answers_kept = kept(project)
    assert {key: answers_kept[key] for key in TEXT} == expected
    package = project / answers_kept["package_name"]
    init = ast.parse((package / "__init__.py").read_text(encoding="utf-8"))
    (name,) = [
        ast.literal_eval(node.value)
        for node in init.body
        if isinstance(node, ast.Assign) and ast.unparse(node.targets[0]) == "PROJECT_NAME"
    ]
    assert name == expected["project_name"]
    pyproject = tomllib.loads((project / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert pyproject["description"] == expected["description"]
    assert pyproject["authors"] == [{"name": expected["author_name"]}]
    readme = (project / "README.md").read_text(encoding="utf-8").splitlines()
    assert readme[0] == f"# {expected['project_name']}"
    assert expected["description"] in readme
    for workflow in (project / ".github" / "workflows").iterdir():
        assert isinstance(yaml.safe_load(workflow.read_text(encoding="utf-8")), dict)


def check_refused(stderr: str, output_dir: Path) -> None:
    """The hook's message: a heading, then one line per refused answer, each naming it."""
    heading = "Cannot bake this project:\n"
    assert heading in stderr, stderr
    lines = stderr.split(heading, 1)[1].splitlines()
    assert lines and lines[0].startswith("  "), stderr
    for line in itertools.takewhile(lambda line: line.startswith("  "), lines):
        key = line.strip().split("=", 1)[0]
        assert key in COOKIECUTTER_JSON, f"a line naming no answer: {line!r}"
        # Shown cut at 50 characters: at most 10 columns each once escaped, however long it was.
        assert len(line) < 1000, f"a long answer is cut short in its message: {line!r}"
    assert list(output_dir.iterdir()) == [], "a refused bake left files"


# Each must be refused (the hook's rules: one line of text; no Jinja; a name of at most 40).
MUST_REFUSE = [
    {"project_name": "Two\nlines"},
    {"project_name": "x", "description": "a {{ 7*7 }}"},
    {"project_name": "x" * 41},
]


def test_hostile_answers_bake_a_working_project_or_are_refused(tmp_path_factory, capfd):
    root = tmp_path_factory.mktemp("hostile")
    config = root / "config.yaml"  # keeps cookiecutter's replay files out of the home directory
    config.write_text(f"replay_dir: {json.dumps(str(root / 'replay'))}\n")
    outputs = (root / f"out{n}" for n in itertools.count())
    baked: list[tuple[dict[str, str], Path]] = []
    refused: list[dict[str, str]] = []

    def bake_or_refuse(answers):
        output_dir = next(outputs)
        output_dir.mkdir()
        capfd.readouterr()
        try:
            project = bake_typed(answers, output_dir, config)
        except FailedHookException:
            check_refused(capfd.readouterr().err, output_dir)
            refused.append(answers)
            return
        check_baked(project, answers)
        baked.append((answers, project))

    for answers in MUST_BAKE + MUST_REFUSE:
        bake_or_refuse = example(answers=answers)(bake_or_refuse)
    settings(max_examples=60, deadline=None, derandomize=True, database=None)(
        given(answers=hostile)(bake_or_refuse)
    )()
    assert [must for must in MUST_BAKE if must not in refused] == MUST_BAKE
    assert [must for must in MUST_REFUSE if must in refused] == MUST_REFUSE

    # The slow checks, once over every bake.
    projects = [project for _, project in baked]
    for command in (["check"], ["format", "--check"]):
        lint = subprocess.run(
            [sys.executable, "-m", "ruff", *command, "--no-cache", *map(str, projects)],
            capture_output=True,
            text=True,
        )
        assert lint.returncode == 0, lint.stdout[-4000:] + lint.stderr[-2000:]
    order = json.dumps([[str(project), kept(project)["package_name"]] for project in projects])
    served = subprocess.run(
        [sys.executable, "-c", SERVE_EVERY_ROUTE], input=order, capture_output=True, text=True
    )
    assert served.returncode == 0, served.stderr[-4000:]
    for (answers, _), app in zip(baked, json.loads(served.stdout), strict=True):
        name = answers["project_name"]
        assert app["name"] == name
        for url, (status, _) in app["pages"].items():
            assert status == 200, f"{answers}: {url} answered {status}"
        home = app["pages"]["/"][1]
        assert f"<title>{escape(name)}</title>" in home, answers
        assert f"<h1>{escape(name)}</h1>" in home, answers


def kept(project: Path) -> dict[str, str]:
    """The answers the post-gen hook kept in the project."""
    return json.loads((project / ".cookiecutter.json").read_text())
