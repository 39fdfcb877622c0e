"""The hooks' logic, tested directly, and their tables checked against cookiecutter.json."""

import hashlib
import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from dotenv import dotenv_values
from hypothesis import example, given, settings
from hypothesis import strategies as st

from .conftest import CHOICES, COOKIECUTTER_JSON, TEMPLATE

BAKED = TEMPLATE / "{{cookiecutter.project_slug}}"


def load_hook(name: str):
    # The unrendered hook is valid Python: only its __main__ block holds template syntax.
    spec = importlib.util.spec_from_file_location(name, TEMPLATE / "hooks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


pre_gen = load_hook("pre_gen_project")
post_gen = load_hook("post_gen_project")

GOOD = {
    "project_name": "My Site 😀",
    "description": 'A "quoted" description \\ with a backslash',
    "author_name": "Zoë O'Brien",
    "project_slug": "my_site",
    "package_name": "my_site",
    "pythonanywhere_username": "Alice42",
    "pythonanywhere_region": "us",
    "python_version": "3.13",
    "cache_backend": "simple",
}


def test_hook_choices_match_cookiecutter_json():
    assert list(post_gen.BACKENDS) == CHOICES["cache_backend"]
    assert set(post_gen.KEPT_ANSWERS) - {"_template"} == {
        key for key in COOKIECUTTER_JSON if not key.startswith("_")
    }


def test_good_answers_have_no_problems():
    assert pre_gen.problems(GOOD) == []


@pytest.mark.parametrize(
    "key, value",
    [
        ("project_slug", "My Site"),
        ("package_name", "import"),
        ("package_name", "flask_caching"),
        ("package_name", "secrets"),
        ("pythonanywhere_username", "al_ice"),
    ],
)
def test_each_bad_answer_is_named_in_its_message(key, value):
    (message,) = pre_gen.problems({**GOOD, key: value})
    assert message.startswith(f"{key}={value!r}")


def test_main_exits_with_every_problem(capsys):
    with pytest.raises(SystemExit) as stop:
        pre_gen.main({**GOOD, "project_slug": "x-y", "pythonanywhere_username": "a.b"})
    assert "project_slug='x-y'" in str(stop.value.code)
    assert "pythonanywhere_username='a.b'" in str(stop.value.code)


def test_client_requirements_match_the_dev_requirements():
    # The dev requirements install every client so the tests can exercise every backend.
    dev = (BAKED / "requirements-dev.txt").read_text().splitlines()
    for backend in post_gen.BACKENDS.values():
        assert backend["requirement"] is None or backend["requirement"] in dev


def copy_of_baked_inputs(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    project.mkdir()
    for name in (".env.example", "requirements.txt"):
        (project / name).write_text((BAKED / name).read_text())
    return project


def snapshot(project: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(project.iterdir())}


@pytest.mark.parametrize("backend", CHOICES["cache_backend"])
def test_post_gen_writes_env_requirements_and_answers(tmp_path, backend):
    project = copy_of_baked_inputs(tmp_path)
    steps = post_gen.main({**GOOD, "cache_backend": backend, "project_name": "X"}, project)
    env = (project / ".env").read_text()
    assert re.search(r"^SECRET_KEY=[0-9a-f]{64}$", env, flags=re.M)
    assert f"\nCACHE_TYPE={backend}\n" in env
    assert oct((project / ".env").stat().st_mode & 0o777) == "0o600"
    requirement = post_gen.BACKENDS[backend]["requirement"]
    lines = (project / "requirements.txt").read_text().splitlines()
    if requirement:
        assert requirement in lines
    clients = ("redis", "pymemcache", "requests")
    assert not any(line.startswith(clients) for line in lines if line != requirement)
    assert json.loads((project / ".cookiecutter.json").read_text())["cache_backend"] == backend
    assert ("paid PythonAnywhere account" in steps) == (backend in ("redis", "memcached"))
    # The row's settings, in .env and in .env.example alike (`cp .env.example .env` gives the same).
    example = (project / ".env.example").read_text()
    for name, value in post_gen.BACKENDS[backend]["env"].items():
        assert re.findall(rf"^{name}=(.*)$", env, flags=re.M) == [value]
        assert re.findall(rf"^{name}=(.*)$", example, flags=re.M) == [value]


def test_an_upstash_bake_starts_with_the_near_cache_and_keeps_an_existing_env(tmp_path):
    """Every Upstash read is a command counted against its monthly quota: an upstash bake starts
    with CACHE_NEAR_TTL=30 (docs/upstash.md says why); the others with the default, 0. A .env
    kept from an earlier bake is left as it is."""
    for backend in CHOICES["cache_backend"]:
        (tmp_path / backend).mkdir()
        project = copy_of_baked_inputs(tmp_path / backend)
        post_gen.main({**GOOD, "cache_backend": backend}, project)
        for name in (".env", ".env.example"):
            values = dotenv_values(project / name)
            assert values["CACHE_NEAR_TTL"] == ("30" if backend == "upstash" else ""), name
    (tmp_path / "kept").mkdir()
    project = copy_of_baked_inputs(tmp_path / "kept")
    (project / ".env").write_text("SECRET_KEY=mine\nCACHE_TYPE=upstash\n")
    post_gen.main({**GOOD, "cache_backend": "upstash"}, project)
    assert (project / ".env").read_text() == "SECRET_KEY=mine\nCACHE_TYPE=upstash\n"


def test_post_gen_run_again_changes_nothing(tmp_path):
    project = copy_of_baked_inputs(tmp_path)
    answers = {**GOOD, "cache_backend": "redis"}
    post_gen.main(answers, project)
    before = snapshot(project)
    post_gen.main(answers, project)
    assert snapshot(project) == before


def test_post_gen_never_overwrites_an_existing_env(tmp_path):
    project = copy_of_baked_inputs(tmp_path)
    (project / ".env").write_text("SECRET_KEY=mine\n")
    post_gen.main(GOOD, project)
    assert (project / ".env").read_text() == "SECRET_KEY=mine\n"


def test_post_gen_refuses_an_example_without_the_line_it_fills(tmp_path):
    with pytest.raises(SystemExit, match="exactly one SECRET_KEY= line"):
        post_gen.env_from_example("CACHE_TYPE=\n", {"SECRET_KEY": "x"})


def test_post_gen_prints_the_region_domain():
    project_steps = post_gen.site_domain({**GOOD, "pythonanywhere_region": "eu"})
    assert project_steps == "alice42.eu.pythonanywhere.com"


def test_template_code_is_ruff_clean():
    # The baked code is linted per bake (test_bake.py); here, the hooks, filters, tests and benchmarks.
    ours = ["hooks", "local_extensions.py", "tests", "benchmarks"]
    for command in (["check"], ["format", "--check"]):
        result = subprocess.run(
            [sys.executable, "-m", "ruff", *command, "--no-cache", *ours],
            cwd=TEMPLATE,
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, result.stdout + result.stderr


def test_a_package_name_with_cachelib_in_it_is_a_name_like_any_other():
    """Flask-Caching takes a CACHE_TYPE path containing "cachelib" for one of cachelib's classes;
    the baked app names none (its cache package builds the chain itself: test_extension.py)."""
    assert pre_gen.problems({**GOOD, "package_name": "my_cachelib", "project_slug": "cachelib_site"}) == []


# What a kept .env may say: a backend or a typo, bare, quoted, padded or with a comment after it.
# (A lone quote makes the line one python-dotenv skips: no value to compare with.)
KEPT_VALUES = st.builds(
    lambda value, form: form.format(value),
    st.sampled_from(CHOICES["cache_backend"]) | st.text(alphabet="abcdilmnoprsuy _-#\t", max_size=8),
    st.sampled_from(["{}", '"{}"', "'{}'", "{} # was redis", "  {}  ", '"{}" # a comment']),
)


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(kept=KEPT_VALUES | st.none(), backend=st.sampled_from(CHOICES["cache_backend"]))
@example(kept="redis", backend="filesystem")  # the re-bake
def test_a_rebake_says_which_cache_type_is_in_force(tmp_path_factory, kept, backend):
    project = copy_of_baked_inputs(tmp_path_factory.mktemp("rebake"))
    env_text = "SECRET_KEY=mine\n" + ("" if kept is None else f"CACHE_TYPE={kept}\n")
    (project / ".env").write_text(env_text)
    steps = post_gen.main({**GOOD, "cache_backend": backend}, project).splitlines()
    assert (project / ".env").read_text() == env_text  # kept
    in_force = (dotenv_values(project / ".env").get("CACHE_TYPE") or "").strip() or "simple"
    said = [line for line in steps if ".env was kept" in line]
    assert len(said) == 1
    assert f"CACHE_TYPE={in_force}" in said[0] or f"CACHE_TYPE={in_force!r}" in said[0]
    assert said[0].startswith("Warning: ") == (in_force != backend)


def test_a_fresh_bake_says_nothing_of_a_kept_env(tmp_path):
    steps = post_gen.main(GOOD, copy_of_baked_inputs(tmp_path))
    assert ".env was kept" not in steps and "Warning" not in steps


def test_the_placeholder_username_is_warned_at_bake_time(tmp_path):
    assert COOKIECUTTER_JSON["pythonanywhere_username"] == post_gen.PLACEHOLDER_USERNAME
    answers = {**GOOD, "pythonanywhere_username": COOKIECUTTER_JSON["pythonanywhere_username"]}
    warned = [line for line in post_gen.main(answers, copy_of_baked_inputs(tmp_path)).splitlines()
              if line.startswith("Warning: ")]  # fmt: skip
    assert len(warned) == 1 and "pythonanywhere_username" in warned[0]


# `python` followed by an argument, as a command a newcomer copies: stock Debian and Ubuntu have
# only `python3` until a virtualenv is active. (.venv/bin/python, python3 and python3.13 differ.)
BARE_PYTHON = re.compile(r"(?<![\w./{-])python(?= +[-\w])")


def test_every_command_a_newcomer_copies_says_python3(tmp_path):
    said = {"post-gen's next steps": post_gen.main(GOOD, copy_of_baked_inputs(tmp_path))}
    for path in [TEMPLATE / "README.md", *(TEMPLATE / "hooks").iterdir(), *BAKED.rglob("*")]:
        if path.is_file() and path.suffix != ".pyc":
            said[str(path.relative_to(TEMPLATE))] = path.read_text(errors="replace")
    bare = {where: BARE_PYTHON.findall(text) for where, text in said.items() if BARE_PYTHON.search(text)}
    assert bare == {}
    assert "python3 -m venv .venv" in said["post-gen's next steps"]


def test_a_refusal_points_at_the_replay_only_when_it_holds_these_answers(tmp_path, monkeypatch):
    monkeypatch.setattr(pre_gen, "replay_dir", lambda: tmp_path)
    where = {"_repo_dir": "/t/tmpl", "_template": "gh:o/tmpl", "_output_dir": "/o", "_checkout": "v2"}
    answers = {**GOOD, **where}
    assert pre_gen.replay_of(answers) is None  # none written (cruft, the Python API)
    (tmp_path / "tmpl.json").write_text(json.dumps({"cookiecutter": {**GOOD, "project_slug": "other"}}))
    assert pre_gen.replay_of(answers) is None  # an earlier bake's answers
    (tmp_path / "tmpl.json").write_text(json.dumps({"cookiecutter": {**GOOD, "_template": "x"}}))
    assert pre_gen.replay_of(answers) == tmp_path / "tmpl.json"
    again = pre_gen.bake_again(answers, tmp_path / "tmpl.json").splitlines()[-1].split()
    assert again == [
        "cookiecutter", "--replay-file", str(tmp_path / "tmpl.json"), "gh:o/tmpl",
        "--checkout", "v2", "--output-dir", "/o",
    ]  # fmt: skip
