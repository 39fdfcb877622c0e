"""Every case of the answer matrix, baked once and checked as a user would meet it."""

import json
import re
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from . import servers
from .conftest import CASES, CHOICES, TEMPLATE, answers, case_id

# A leftover of cookiecutter's own syntax; Flask's Jinja templates may use {% and {{ themselves.
COOKIECUTTER_LEFTOVER = re.compile(r"\{\{-?\s*cookiecutter|\{%-?\s*(raw|endraw)|cookiecutter\.")
JINJA_STATEMENT = re.compile(r"\{%|\{#")
FLASK_TEMPLATES = TEMPLATE / "{{cookiecutter.project_slug}}" / "{{cookiecutter.package_name}}" / "templates"

SERVE_HEALTH = """
import json, os, runpy, sys
from werkzeug.test import Client
application = runpy.run_path(sys.argv[1])["application"]
response = Client(application).get("/health")
print(json.dumps({"status": response.status_code, "body": response.get_json(), "pid": os.getpid()}))
"""

case = pytest.mark.parametrize("case", CASES, ids=case_id)


def run(command, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, **kwargs)


def baked_files(project: Path):
    return [path for path in project.rglob("*") if path.is_file() and "__pycache__" not in path.parts]


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


@case
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
    for source in FLASK_TEMPLATES.iterdir():
        baked = project / project.name / "templates" / source.name
        assert baked.read_bytes() == source.read_bytes()


@case
def test_ruff_is_clean(bake, case):
    project = bake(**case)
    for command in (["check", "."], ["format", "--check", "."]):
        result = run([sys.executable, "-m", "ruff", *command, "--no-cache"], cwd=project)
        assert result.returncode == 0, result.stdout + result.stderr


@case
def test_baked_tests_pass_with_real_servers(bake, case, server_env):
    project = bake(**case)
    result = run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=project, env=server_env
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " skipped" not in result.stdout.splitlines()[-1], result.stdout[-2000:]


@case
def test_baked_redis_tests_pass_over_tls(bake, case, server_env, redis_tls_url):
    project = bake(**case)
    env = {**server_env, "TEST_REDIS_URL": redis_tls_url}
    result = run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "redis"], cwd=project, env=env
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    summary = result.stdout.splitlines()[-1]
    passed = int(re.search(r"(\d+) passed", summary).group(1))
    assert passed >= 6 and "skipped" not in summary, summary  # every redis-backed test ran


@pytest.mark.parametrize("case", [c for c in CASES if c["cache_backend"] == "upstash"], ids=case_id)
def test_baked_upstash_tests_pass_over_https_through_a_proxy(bake, case, server_env, https_proxy, tmp_path):
    """As on a free PythonAnywhere account: Upstash over HTTPS, through an HTTP proxy."""
    project = bake(**case)
    ca, key, cert = servers.make_certificates(tmp_path)
    proxy, log = https_proxy
    env = {
        **server_env, "TEST_UPSTASH_TLS_CERT": str(cert), "TEST_UPSTASH_TLS_KEY": str(key),
        "REQUESTS_CA_BUNDLE": str(ca), "HTTPS_PROXY": proxy, "https_proxy": proxy,
    }  # fmt: skip
    env = {k: v for k, v in env.items() if k.lower() != "no_proxy"}
    tunnels_before = log.read_text().count("CONNECT 127.0.0.1:") if log and log.exists() else 0
    result = run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "upstash"],
        cwd=project,
        env=env,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    summary = result.stdout.splitlines()[-1]
    passed = int(re.search(r"(\d+) passed", summary).group(1))
    assert passed >= 15 and "skipped" not in summary, summary
    if log is not None:
        assert log.read_text().count("CONNECT 127.0.0.1:") > tunnels_before, "not through the proxy"


@case
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
    assert (served["status"], served["body"]) == (
        200,
        {
            "status": "ok",
            "worker": served["pid"],
            "cache": {"backend": backend, "active": backend, "breaker": "closed", "last_error": None},
        },
    )


def get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status, response.read()


@case
def test_served_by_uwsgi_with_two_processes(bake, case, tmp_path, redis_url, memcached_servers):
    project = bake(**case)
    wsgi = tmp_path / wsgi_file_name(case)
    shutil.copy(project / "pythonanywhere_wsgi.py", wsgi)
    env = backend_env(project, redis_url, memcached_servers)
    log = tmp_path / "uwsgi.log"
    with servers.uwsgi(wsgi, env, log) as url:
        status, body = get(f"{url}/health")
        assert status == 200
        backend = case["cache_backend"]
        cache = json.loads(body)["cache"]
        assert (cache["backend"], cache["active"], cache["breaker"]) == (backend, backend, "closed")
        assert get(f"{url}/example")[0] == 200
    assert "spawned uWSGI worker 2" in log.read_text()


@pytest.mark.parametrize("backend", CHOICES["cache_backend"])
def test_runtime_requirements_are_enough_in_a_fresh_virtualenv(
    bake, backend, tmp_path, redis_url, memcached_servers
):
    """requirements.txt alone (no dev tools) installs an app that serves from the chosen backend."""
    project = bake(cache_backend=backend)
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    install = run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", "-r", "requirements.txt"],
        cwd=project,
    )
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
