"""The answers by axis (conftest.CASES), each baked once and checked as a user would meet it.

Every bake: no template syntax left, ruff, the rendered constants, and the WSGI file serving
/health from a fake /var/www. Each backend's bake (BACKEND_CASES) also gets the expensive
proofs: its whole baked suite on real servers, its requirements.txt alone in a fresh virtualenv,
and, for redis, its tests again over TLS, for upstash over HTTPS through a proxy. (uWSGI with 1
and 2 workers, per backend: test_web_workers.py.)
"""

import filecmp
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from . import servers, where_users_run
from .conftest import BACKEND_CASES, CASES, CHOICES, TEMPLATE, answers, case_id

# A leftover of cookiecutter's own syntax; Flask's Jinja templates may use {% and {{ themselves.
# (.cookiecutter.json, the answers file deploy.py reads, is a name, not syntax.)
COOKIECUTTER_LEFTOVER = re.compile(r"\{\{-?\s*cookiecutter|\{%-?\s*(raw|endraw)|(?<!\.)cookiecutter\.")
JINJA_STATEMENT = re.compile(r"\{%|\{#")
# Flask's own templates: the app's, the cache package's error pages, the tests' sample page.
FLASK_TEMPLATES = sorted((TEMPLATE / "{{cookiecutter.project_slug}}").rglob("templates/*.html"))

SERVE_HEALTH = """
import json, os, runpy, sys
from werkzeug.test import Client
application = runpy.run_path(sys.argv[1])["application"]
response = Client(application).get("/health")
print(json.dumps({"status": response.status_code, "body": response.get_json(), "pid": os.getpid()}))
"""

every_case = pytest.mark.parametrize("case", CASES, ids=case_id)
every_backend = pytest.mark.parametrize("case", BACKEND_CASES, ids=case_id)


def run(command, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, **kwargs)


# What tools write into a bake when other tests run them there (in any order): not baked files.
TOOL_CACHES = {"__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache", ".hypothesis"}


def baked_files(project: Path):
    return [path for path in project.rglob("*") if path.is_file() and not TOOL_CACHES & set(path.parts)]


def backend_env(project: Path, redis_url: str, memcached_servers: str) -> dict[str, str]:
    """The deployed app's environment, pointing .env's backend at our servers."""
    return servers.app_env(
        project,
        REDIS_URL=redis_url,
        MEMCACHED_SERVERS=memcached_servers,
        **servers.upstash_settings(project, redis_url),
    )


def wsgi_file_name(case: dict) -> str:
    region = "_eu" if case["pythonanywhere_region"] == "eu" else ""
    return f"yourname{region}_pythonanywhere_com_wsgi.py"


def run_baked_suite(
    python: str | Path, project: Path, env: dict[str, str], *args: str, prefix: list[str] = ()
):
    """The baked project's pytest, run by ``python`` in ``project``: the one command every run
    of a baked suite goes through. ``prefix`` goes before it (where_users_run.clock_prefix)."""
    command = [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", *args]
    return run([*prefix, *command], cwd=project, env=env)


def baked_suite(
    project: Path,
    env: dict[str, str],
    *selection: str,
    python: str | Path = sys.executable,
    prefix: list[str] = (),
) -> None:
    """Run the baked project's own tests (or the ``selection``) with ``python``: every one must
    pass, none skipped."""
    collect = run_baked_suite(python, project, env, *selection, "--collect-only", prefix=prefix)
    collected = collect.stdout.splitlines()[-1]
    count = int(re.match(r"(\d+)(?:/\d+)? tests? collected", collected).group(1))
    result = run_baked_suite(python, project, env, *selection, prefix=prefix)
    command = " ".join(map(str, result.args))  # with its random seed, if any
    assert result.returncode == 0, f"{command}\n{result.stdout[-4000:]}{result.stderr[-2000:]}"
    summary = result.stdout.splitlines()[-1]
    assert re.match(rf"{count} passed", summary) and "skipped" not in summary, summary
    assert count >= 20, collected  # a selection that still selects the tests it is for


def test_the_leftover_pattern_finds_syntax_not_the_answers_file_name():
    for leftover in ("{{ cookiecutter.package_name }}", "{{cookiecutter.project_slug}}", "cookiecutter.x"):
        assert COOKIECUTTER_LEFTOVER.search(leftover), leftover
    assert not COOKIECUTTER_LEFTOVER.search('json.loads((PROJECT / ".cookiecutter.json").read_text())')


@every_case
def test_no_template_syntax_is_left(bake, case):
    project = bake(**case)
    for path in baked_files(project):
        if path.name == ".cookiecutter.json":
            continue
        text = path.read_text(errors="replace")
        assert not COOKIECUTTER_LEFTOVER.search(text), f"unrendered template syntax in {path}"
        if path.parent.name != "templates":
            assert not JINJA_STATEMENT.search(text), f"unrendered Jinja statement in {path}"
    # Flask's own templates reach the project byte for byte.
    assert len(FLASK_TEMPLATES) >= 6, FLASK_TEMPLATES
    for source in FLASK_TEMPLATES:
        where = source.relative_to(TEMPLATE / "{{cookiecutter.project_slug}}")
        baked = project / str(where).replace("{{cookiecutter.package_name}}", project.name)
        assert baked.read_bytes() == source.read_bytes()


@every_case
def test_ruff_is_clean(bake, case):
    project = bake(**case)
    for command in (["check", "."], ["format", "--check", "."]):
        result = run([sys.executable, "-m", "ruff", *command, "--no-cache"], cwd=project)
        assert result.returncode == 0, result.stdout + result.stderr


@every_case
def test_the_answers_are_rendered_where_they_belong(bake, case):
    project = bake(**case)
    deploy = (project / "deploy.py").read_text()
    assert f'PYTHON_VERSION = "{case["python_version"]}"' in deploy
    assert f'REGION = "{case["pythonanywhere_region"]}"' in deploy
    workflow = yaml.safe_load((project / ".github" / "workflows" / "ci.yml").read_text())
    setup = [step for step in workflow["jobs"]["test"]["steps"] if "setup-python" in step.get("uses", "")]
    assert setup[0]["with"]["python-version"] == case["python_version"]
    env = (project / ".env").read_text().splitlines()
    assert f"CACHE_TYPE={case['cache_backend']}" in env


@every_case
def test_wsgi_file_serves_from_another_directory(bake, case, tmp_path, redis_url, memcached_servers):
    project = bake(**case)
    var_www = tmp_path / "var" / "www"
    var_www.mkdir(parents=True)
    wsgi = var_www / wsgi_file_name(case)
    shutil.copy(project / "pythonanywhere_wsgi.py", wsgi)
    assert f"/var/www/{wsgi.name}" in wsgi.read_text(), "the WSGI file names where it goes"
    env = backend_env(project, redis_url, memcached_servers)
    result = run([sys.executable, "-c", SERVE_HEALTH, str(wsgi)], cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    backend = case["cache_backend"]  # read from the baked .env: the environment has no CACHE_TYPE
    served = json.loads(result.stdout)
    near = served["body"]["cache"].pop("near")
    assert (served["status"], served["body"]) == (
        200,
        {
            "status": "ok",
            "worker": served["pid"],
            "cache": {"backend": backend, "active": backend, "breaker": "closed", "last_error": None},
        },
    )
    # redis tracks changes; an upstash bake's .env starts with CACHE_NEAR_TTL=30 (the hook's table).
    assert near["mode"] == {"redis": "tracking", "upstash": "ttl"}.get(backend, "off"), near


def test_the_baked_python_is_the_same_for_every_backend(bake):
    """The backend is chosen in .env at run time: one baked suite run proves the same code for
    all, and each backend's own run below proves its .env and requirements.txt."""
    first, *others = (bake(**case) for case in BACKEND_CASES)
    python = sorted(
        path.relative_to(first) for path in first.rglob("*.py") if "__pycache__" not in path.parts
    )
    for other in others:
        assert (
            sorted(p.relative_to(other) for p in other.rglob("*.py") if "__pycache__" not in p.parts)
            == python
        )
        _, mismatch, errors = filecmp.cmpfiles(first, other, python, shallow=False)
        assert mismatch == errors == [], f"{other.name}: {mismatch} differ"


def test_the_zip_command_in_the_docs_leaves_the_virtualenv_out(bake, tmp_path):
    project = tmp_path / bake().name
    shutil.copytree(bake(), project, ignore=shutil.ignore_patterns(".venv"))
    for junk in (".venv/lib/site.py", "pkg/__pycache__/x.pyc", ".pytest_cache/v", "instance/cache/k"):
        (project / junk).parent.mkdir(parents=True, exist_ok=True)
        (project / junk).write_text("junk")
    (project / ".venv" / "pyvenv.cfg").write_text("home = /usr/bin\n")
    command = next(
        line for line in (project / "docs" / "deploy.md").read_text().splitlines()
        if line.strip().startswith("zip -r ")
    )  # fmt: skip
    run(["bash", "-c", command], cwd=tmp_path, check=True)
    listed = run(["unzip", "-Z1", f"{project.name}.zip"], cwd=tmp_path, check=True).stdout.split()
    assert f"{project.name}/.env" in listed and f"{project.name}/deploy.py" in listed
    kept_out = (".venv/", "__pycache__/", "_cache/", "instance/")
    assert [name for name in listed if any(part in name for part in kept_out)] == []


def test_the_free_account_caveat_is_explained_once_and_linked(bake):
    project = bake()
    docs = {p: p.read_text() for p in [project / "README.md", *(project / "docs").glob("*.md")]}
    explained = [p.name for p, text in docs.items() if "403 Forbidden**" in text]
    assert explained == ["upstash.md"]
    heading = "## Free accounts: the proxy and its allowlist"
    assert heading in docs[project / "docs" / "upstash.md"]
    anchor = "upstash.md#" + re.sub(r"[^a-z0-9 -]", "", heading[3:].lower()).replace(" ", "-")
    for linking in (project / "README.md", project / "docs" / "deploy.md"):
        assert anchor in docs[linking], linking.name


def test_the_docs_say_what_pythonanywhere_and_the_hosted_redis_services_do(bake):
    """Claims checked against the providers' own pages (sources cited in docs/caching.md)."""
    project = bake()
    caching = (project / "docs" / "caching.md").read_text()
    example = (project / ".env.example").read_text()
    wsgi = (project / "pythonanywhere_wsgi.py").read_text()
    # PythonAnywhere: the Hacker plan has 2 web workers; web apps get API_TOKEN and the proxy
    # settings, but none of a console's variables.
    assert "smallest paid plans" not in caching and "Hacker" in caching
    assert "does not pass environment variables" not in wsgi and "API_TOKEN" in wsgi
    # Each provider's URL form, in the docs and in .env.example: Redis Cloud's free plan has no
    # TLS, Upstash has nothing else.
    for text in (caching, example):
        assert "redis://default:PASSWORD@HOST:PORT" in text  # Redis Cloud, free
        assert "rediss://default:PASSWORD@HOST.upstash.io:6379" in text
        assert "as Upstash and Redis Cloud serve it" not in text
    # The connection budget and where tracking exists.
    assert "**2 per worker**" in caching and "30" in caching
    assert "Redis 7.4 or later" in caching and "set `CACHE_NEAR_TTL`" in caching


def test_without_servers_the_baked_tests_skip_in_a_few_quiet_lines(bake):
    """A newcomer's first `pytest`, with no server: the summary says once per missing server what
    was skipped, the upstash tests saying no account is needed; and a test that needs a server
    skips before its Hypothesis examples run, so even `-rs` shows no "Failing explicit example"
    blocks. (The upstash and config tests: the ones with the most server-backed examples.)"""
    env = {k: v for k, v in servers.app_env(None).items() if not k.startswith(("TEST_", "CI"))}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "0"]
    modules = ["tests/cache/test_upstash.py", "tests/cache/test_config.py"]
    result = run([*command, *modules], cwd=bake(), env=env)
    assert result.returncode == 0, result.stdout[-3000:]
    lines = result.stdout.splitlines()
    assert len(lines) < 20, result.stdout[-3000:]
    skipped = [line for line in lines if re.fullmatch(r"\d+ skipped: .*", line)]
    assert len(skipped) == 2, lines  # one line per missing server
    assert any("TEST_REDIS_URL is not set" in s and "no Upstash account needed" in s for s in skipped)
    every_reason = run([*command, "-rs", *modules], cwd=bake(), env=env).stdout
    assert "SKIPPED" in every_reason and "Failing explicit example" not in every_reason


@every_backend
def test_env_example_starts_with_the_baked_backend(bake, case):
    """`cp .env.example .env` (the fallback in the docs) runs the backend chosen at bake time."""
    project = bake(**case)
    example = (project / ".env.example").read_text()
    assert re.findall(r"^CACHE_TYPE=(.*)$", example, flags=re.M) == [case["cache_backend"]]
    assert re.findall(r"^CACHE_TYPE=(.*)$", (project / ".env").read_text(), flags=re.M) == [
        case["cache_backend"]
    ]
    # Upstash counts every read against its monthly quota: its bake starts with the near cache.
    near_ttl = "30" if case["cache_backend"] == "upstash" else ""
    for text in (example, (project / ".env").read_text()):
        assert re.findall(r"^CACHE_NEAR_TTL=(.*)$", text, flags=re.M) == [near_ttl]


# The redis bake's suite runs in test_the_template_owns_what_holds_when_the_demo_is_replaced,
# with the demo replaced (the demo's own tests run in every other case).
@pytest.mark.parametrize("case", [c for c in BACKEND_CASES if c["cache_backend"] != "redis"], ids=case_id)
def test_baked_tests_pass_with_real_servers(bake, case, server_env):
    baked_suite(bake(**case), server_env)


# A user's own site in place of the demo: one blueprint (a page, and a page with a bug), an index
# in the site's layout, the demo's other template and its tests gone.
OWN_VIEWS = """from flask import Blueprint, render_template

bp = Blueprint("main", __name__)


@bp.get("/")
def index() -> str:
    return render_template("index.html")


@bp.get("/bug")
def bug() -> str:
    raise RuntimeError("a bug in my own view")
"""
OWN_INDEX = """{% extends "base.html" %}
{% block content %}<h1>My own home page</h1>{% endblock %}
"""


def test_the_template_owns_what_holds_when_the_demo_is_replaced(bake, server_env, tmp_path):
    """views.py, index.html and example.html are the user's: with a site of their own in their
    place, /health, the styled 404 and 500 pages and the footer's cache report still work, and the
    template's own tests (tests/cache) pass against the real servers, none skipped."""
    project = tmp_path / "my_flask_app"
    shutil.copytree(bake(cache_backend="redis"), project, ignore=shutil.ignore_patterns(*TOOL_CACHES))
    package = project / "my_flask_app"
    (package / "views.py").write_text(OWN_VIEWS)
    (package / "templates" / "index.html").write_text(OWN_INDEX)
    (package / "templates" / "example.html").unlink()
    (project / "tests" / "test_demo.py").unlink()
    paths = ("/", "/health", "/no-such-page", "/bug")
    served = servers.served(project, *paths, REDIS_URL=server_env["TEST_REDIS_URL"])
    assert served["/"][0] == 200 and "<h1>My own home page</h1>" in served["/"][1]
    assert "Cache: <code>redis</code>" in served["/"][1], "the footer's cache report"
    assert served["/health"][0] == 200
    health = json.loads(served["/health"][1])["cache"]
    assert (health["backend"], health["active"], health["breaker"]) == ("redis", "redis", "closed")
    assert served["/no-such-page"][0] == 404 and "<title>Page not found · " in served["/no-such-page"][1]
    assert served["/bug"][0] == 500 and "<title>Something went wrong · " in served["/bug"][1]
    for _, page in served.values():
        assert '<a class="brand" href="/">' in page or page.startswith("{"), "in the site's layout"
    baked_suite(project, server_env, "tests/cache")


def test_baked_redis_tests_pass_over_tls_on_a_machine_up_for_40_days(bake, server_env, redis_tls_url):
    """The redis and upstash tests over TLS, on a machine whose clocks say it booted 40 days
    ago (a time namespace): the young machine is test_lowest_versions.py's."""
    env = {**server_env, "TEST_REDIS_URL": redis_tls_url}
    old = where_users_run.clock_prefix(where_users_run.OLD)
    baked_suite(bake(cache_backend="redis"), env, "-m", "redis", prefix=old)


def test_baked_upstash_tests_pass_over_https_through_a_proxy(bake, server_env, https_proxy, tmp_path):
    """As on a free PythonAnywhere account: Upstash over HTTPS, through an HTTP proxy."""
    project = bake(cache_backend="upstash")
    ca, key, cert = servers.make_certificates(tmp_path)
    proxy, log = https_proxy
    env = {
        **server_env, "TEST_UPSTASH_TLS_CERT": str(cert), "TEST_UPSTASH_TLS_KEY": str(key),
        "REQUESTS_CA_BUNDLE": str(ca), "HTTPS_PROXY": proxy, "https_proxy": proxy,
    }  # fmt: skip
    env = {k: v for k, v in env.items() if k.lower() != "no_proxy"}
    tunnels_before = log.read_text().count("CONNECT 127.0.0.1:") if log and log.exists() else 0
    baked_suite(project, env, "-m", "redis", "-k", "upstash")
    if log is not None:
        assert log.read_text().count("CONNECT 127.0.0.1:") > tunnels_before, "not through the proxy"


@pytest.mark.parametrize("backend", CHOICES["cache_backend"])
def test_runtime_requirements_are_enough_in_a_fresh_virtualenv(
    bake, backend, tmp_path, redis_url, memcached_servers
):
    """requirements.txt alone (no dev tools) installs an app that serves from the chosen backend."""
    project = bake(cache_backend=backend)
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    install = run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--disable-pip-version-check",
         "-r", "requirements.txt"],
        cwd=project,
    )  # fmt: skip
    assert install.returncode == 0, install.stderr[-3000:]
    env = backend_env(project, redis_url, memcached_servers)
    result = run(
        [str(python), "-c", SERVE_HEALTH, str(project / "pythonanywhere_wsgi.py")], cwd=tmp_path, env=env
    )
    assert result.returncode == 0, result.stderr
    cache = json.loads(result.stdout)["body"]["cache"]
    assert (cache["backend"], cache["active"]) == (backend, backend)


def test_two_bakes_get_different_secret_keys(cookies):
    keys = []
    for _ in range(2):
        result = cookies.bake(extra_context=answers())
        assert result.exit_code == 0, result.exception
        env = (Path(result.project_path) / ".env").read_text()
        (key,) = re.findall(r"^SECRET_KEY=(\w+)$", env, flags=re.M)
        assert len(bytes.fromhex(key)) >= 32
        keys.append(key)
        shutil.rmtree(result.project_path)
    assert keys[0] != keys[1]


def test_env_is_ignored_by_git_in_the_baked_project(bake):
    project = bake()
    run(["git", "init", "-q"], cwd=project, check=True)
    assert run(["git", "check-ignore", "-q", ".env"], cwd=project).returncode == 0
    assert run(["git", "check-ignore", "-q", ".env.example"], cwd=project).returncode == 1
    shutil.rmtree(project / ".git")


def test_answers_are_kept_without_secrets(bake):
    project = bake(cache_backend="redis", pythonanywhere_region="eu")
    kept = json.loads((project / ".cookiecutter.json").read_text())
    assert kept["cache_backend"] == "redis"
    assert kept["pythonanywhere_region"] == "eu"
    secret = re.search(r"^SECRET_KEY=(\w+)$", (project / ".env").read_text(), flags=re.M).group(1)
    assert secret not in (project / ".cookiecutter.json").read_text()


def test_an_answer_key_missing_from_cookiecutter_json_fails_the_test():
    with pytest.raises(AssertionError, match="no answer named"):
        answers(cache="redis")


def test_every_value_of_every_choice_is_baked():
    for key, values in CHOICES.items():
        assert {case[key] for case in CASES} == set(values), key
    assert len(CASES) == 1 + sum(len(values) - 1 for values in CHOICES.values())
