"""The parts of deploy.py that run without PythonAnywhere. (The template's own tests run all of it
against a stand-in for PythonAnywhere's API and web servers.)"""

import contextlib
import http
import io
import json
import re
import sys
from urllib.parse import parse_qsl

import pytest
import requests
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

import deploy
from {{ cookiecutter.package_name }} import create_app
from {{ cookiecutter.package_name }}.cache import ConfigError

from .hostile import JUNK, NUMBERS, PROPERTY, memcached_lists, redis_urls
from .test_config import FORMS, FRAME, shows, url_with


def test_wsgi_file_points_at_this_project():
    text = deploy.wsgi_source()
    assert f'DEFAULT_HOME = "{deploy.PROJECT}"' in text
    compile(text, "wsgi.py", "exec")


def test_no_api_token_stops_before_anything(monkeypatch, capsys):
    monkeypatch.delenv("API_TOKEN", raising=False)
    monkeypatch.delenv(deploy.IN_VIRTUALENV, raising=False)
    assert deploy.main(["--dry-run"]) == 1
    assert capsys.readouterr().err.startswith("deploy.py: API_TOKEN is not set")


@pytest.mark.parametrize(
    "host, local",
    [("127.0.0.1", True), ("127.0.1.1", True), ("localhost", True), ("::1", True),
     ("eu1-example.upstash.io", False), ("redis-12345.c1.cloud.redislabs.com", False)],
)  # fmt: skip
def test_servers_on_this_machine_are_refused(host, local):
    assert deploy.is_local(host) is local


def test_an_unknown_api_host_is_named(monkeypatch, capsys):
    monkeypatch.setenv("API_TOKEN", "token")
    monkeypatch.setenv("PYTHONANYWHERE_SITE", "pythonanywhere.example")
    monkeypatch.delenv(deploy.IN_VIRTUALENV, raising=False)
    assert deploy.main(["--dry-run"]) == 1
    assert "PYTHONANYWHERE_SITE='pythonanywhere.example' is not a PythonAnywhere API host" in (
        capsys.readouterr().err
    )


def test_help_says_where_api_token_comes_from(capsys):
    with pytest.raises(SystemExit):
        deploy.main(["--help"])
    shown = " ".join(capsys.readouterr().out.split())
    assert "API_TOKEN: your PythonAnywhere API token, read from the environment" in shown
    assert "(not from .env)" in shown
    assert "create it on the Account page (API Token tab), then open a new Bash console" in shown


def test_a_dry_run_marks_each_failed_console_check_and_still_shows_the_plan(monkeypatch, capsys):
    monkeypatch.delenv("API_TOKEN", raising=False)
    monkeypatch.setenv("PYTHONANYWHERE_USERNAME", "alice")
    monkeypatch.delenv("PYTHONANYWHERE_SITE", raising=False)
    monkeypatch.delenv(deploy.IN_VIRTUALENV, raising=False)
    monkeypatch.setattr(deploy.shutil, "which", lambda name: None)
    monkeypatch.setattr(deploy, "PYTHON_VERSION", f"{sys.version_info[0]}.{sys.version_info[1]}")
    assert deploy.main(["--dry-run"]) == 1
    out, err = capsys.readouterr()
    assert [line.split(":")[1].strip() for line in err.splitlines()] == [
        "API_TOKEN is not set",
        f"python{deploy.PYTHON_VERSION} is not in this console",
    ]
    assert "==> Virtualenv" in out and "would create it" in out
    assert "==> Then .env, the web app, its WSGI file, /static/, the reload and /health" in out
    assert out.endswith('Dry run: 2 failed check(s), each on a line starting with "deploy.py:"; '
                        "fix them, then run this again\n")  # fmt: skip


def test_no_test_only_option_is_advertised(capsys):
    with pytest.raises(SystemExit):
        deploy.main(["--help"])
    shown = capsys.readouterr().out
    assert "--dry-run" in shown and "--root" not in shown
    assert "DEPLOY_TEST" not in (deploy.PROJECT / "deploy.py").read_text()  # no switch by env


# deploy.py against whatever PythonAnywhere's API (or a proxy, or a changed API) may answer. An
# honest API answers every call, except the one the test replaces with a drawn answer; deploy.py
# must then deploy, or stop with one short line and exit 1, never a traceback.

TOKEN = "test-api-token-0123456789abcdef"
USER = "alice"
SITE = f"{USER}.{deploy.REGIONS[deploy.REGION]['domain']}"
API = f"https://{deploy.REGIONS[deploy.REGION]['api_host']}/api/v0/user/{USER}/webapps/"
WEBAPP = {"id": 1, "domain_name": SITE, "python_version": deploy.PYTHON_VERSION,
          "source_directory": str(deploy.PROJECT), "force_https": True}  # fmt: skip
MAPPING = {"id": 7, "url": "/static/", "path": "/home/alice/old/static"}
HEADER = {"id": 9, "url": "/static/", "name": "Cache-Control", "value": "max-age=60"}
HEALTH = {"status": "ok", "worker": 1, "cache": {"backend": "simple", "active": "simple"}}
# deploy.py's refusals that quote a field of a well-formed answer instead of naming the call.
REFUSALS = ("already serves another app", "refused Python")
# What the real API answered to a GET of a web app that did not exist yet (FACTS.md).
DENIED = {"detail": "You do not have permission to perform this action."}


def honest(method: str, url: str, exists: bool) -> tuple[int, dict, object]:
    """What the API (and the app's /health) answers to each call deploy.py makes."""
    answers = {
        ("GET", API): (200, [WEBAPP] if exists else []),
        ("GET", f"{API}{SITE}/"): (200, WEBAPP) if exists else (403, DENIED),
        ("POST", API): (201, WEBAPP),
        ("PATCH", f"{API}{SITE}/"): (200, WEBAPP),
        ("GET", f"{API}{SITE}/static_files/"): (200, [MAPPING]),
        ("POST", f"{API}{SITE}/static_files/"): (201, MAPPING),
        ("PATCH", f"{API}{SITE}/static_files/7/"): (200, MAPPING),
        ("GET", f"{API}{SITE}/static_headers/"): (200, [HEADER]),
        ("POST", f"{API}{SITE}/static_headers/"): (201, HEADER),
        ("PATCH", f"{API}{SITE}/static_headers/9/"): (200, HEADER),
        ("POST", f"{API}{SITE}/reload/"): (200, {"status": "OK"}),
        ("GET", f"https://{SITE}/health"): (200, HEALTH),
    }
    if (method, url) not in answers and not url.startswith(API):  # where a redirect of /health led
        return 404, {"Content-Type": "text/html"}, b"<h1>Not Found</h1>"
    status, body = answers[method, url]
    return status, {"Content-Type": "application/json"}, json.dumps(body).encode()


def response_to(request, status: int, headers: dict, body: bytes) -> requests.Response:
    """A requests Response as its HTTP adapter would build it from the wire."""
    response = requests.Response()
    response.status_code, response.url, response.request = status, request.url, request
    response.headers = requests.structures.CaseInsensitiveDict(headers)
    response.encoding = requests.utils.get_encoding_from_headers(response.headers)
    known = status in http.HTTPStatus._value2member_map_
    response.reason = http.HTTPStatus(status).phrase if known else ""
    response._content, response._content_consumed = body, True
    return response


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)
# Objects with the fields deploy.py reads, of any JSON type, or missing.
fields = ("status", "python_version", "source_directory", "id", "url", "path", "cache", "detail")
field_objects = st.dictionaries(st.sampled_from(fields), json_values | st.just(TOKEN), max_size=5)
bodies = st.one_of(
    st.binary(max_size=40),  # invalid UTF-8, empty, anything
    (json_values | field_objects | st.lists(field_objects, max_size=2)).map(
        lambda value: json.dumps(value).encode()
    ),
    st.sampled_from([
        b"<!doctype html><title>Proxy login</title><p>Sign in to continue",
        b"[" * 100_000 + b"]" * 100_000,  # nested deeper than any parser recurses
        b"x" * 20_000_000,  # 20 MB
        json.dumps({"detail": f"bad token {TOKEN}", "error_message": TOKEN}).encode(),
        b"\n".join([b"line"] * 50) + b"\xe2\x80\xa8\x85\x1b[31m",
    ]),
)  # fmt: skip
header_text = st.text(st.characters(min_codepoint=32, max_codepoint=255), max_size=30)
answers = st.tuples(
    st.sampled_from([200, 201, 204, 301, 302, 307, 400, 403, 404, 405, 429, 500, 502, 503])
    | st.integers(200, 599),
    st.fixed_dictionaries(
        {},
        optional={
            "Content-Type": st.sampled_from(["application/json", "text/html; charset=utf-8"])
            | header_text,
            "Retry-After": st.sampled_from(["nan", "-1", "inf", "1e999", "99999999999999", "0"])
            | st.integers(-(10**12), 10**12).map(str)
            | st.datetimes().map(lambda d: d.strftime("%a, %d %b %Y %H:%M:%S GMT"))
            | header_text,
            "Location": st.sampled_from(["https://login.example/", f"/?t={TOKEN}"]) | header_text,
        },
    ),
    bodies,
)


def sleep(seconds: float) -> None:
    """time.sleep, which refuses nan and negative waits, without the waiting."""
    assert 0 <= seconds <= deploy.MAX_WAIT, seconds


JSON = {"Content-Type": "application/json"}


@settings(max_examples=120, deadline=None, derandomize=True)
# The answers of the issue's report, always tried: a list where an object was due, an HTML page,
# Retry-After: nan, a 20 MB error body, a 200 /health that is not JSON.
@example(exists=True, target=0, answer=(200, JSON, b"[]"), persistent=False)
@example(exists=False, target=0, answer=(200, {}, b"<html><p>Sign in</p>"), persistent=False)
@example(exists=True, target=1, answer=(429, {"Retry-After": "nan"}, b""), persistent=False)
@example(exists=False, target=2, answer=(500, {}, b"x" * 20_000_000), persistent=False)
@example(exists=True, target=8, answer=(200, {}, b"Hello from a default page"), persistent=False)
# The static headers, documented only as a table: an answer of another shape, and a refusal.
@example(exists=True, target=5, answer=(200, JSON, b'[{"id": 9, "value": {}}]'), persistent=True)
@example(exists=False, target=4, answer=(404, JSON, b'{"detail": "Not found."}'), persistent=False)
@given(
    exists=st.booleans(),
    target=st.integers(0, 8),  # the call whose answer is replaced, in the order deploy.py calls
    answer=answers,
    persistent=st.booleans(),  # the same answer again when deploy.py asks again (retries)
)
def test_any_answer_deploys_or_stops_with_one_clear_line(
    tmp_path_factory, exists, target, answer, persistent
):
    calls: list[tuple[str, str]] = []
    hostile: list[tuple[str, str]] = []

    def send(adapter, request, **kwargs):
        call = (request.method, request.url)
        calls.append(call)
        if len(calls) - 1 == target or (persistent and call in hostile):
            hostile.append(call)
            return response_to(request, *answer)
        return response_to(request, *honest(*call, exists))

    code, stdout, stderr = run_stage_two(tmp_path_factory, send)
    assert TOKEN not in stdout + stderr
    assert len(stdout) < 3000, stdout
    if code == 0:
        assert stderr == "" and f"Deployed: https://{SITE}/" in stdout
        # The one step that goes on past a refusal says so in one line.
        warnings = [line for line in stdout.splitlines() if "could not be set" in line]
        assert len(warnings) <= 1, stdout
        for warning in warnings:
            assert any("/static_headers/" in url for _, url in hostile), warning
            assert "static files are still served" in warning and len(warning) < 600, warning
        return
    assert code == 1
    first, *rest = stderr.splitlines()
    assert first.startswith("deploy.py: ") and len(first) < 600, stderr
    # then the error log follows
    assert not rest or first.endswith("after the reload") or "the reload failed" in first, stderr
    if hostile and not any(refusal in first for refusal in REFUSALS):  # it names the call
        method, url = hostile[0]
        assert (url if url.endswith("/health") else f"{method} {url}") in first, first


def run_stage_two(tmp_path_factory, send, *args, check_env=lambda: None) -> tuple[int, str, str]:
    """deploy.py's stage 2 with ``send`` in place of requests' HTTP adapter: (exit, out, err)."""
    root = tmp_path_factory.mktemp("root")
    (root / "var" / "www").mkdir(parents=True)
    (root / "var" / "log").mkdir(parents=True)
    environ = {"API_TOKEN": TOKEN, "PYTHONANYWHERE_USERNAME": USER, deploy.IN_VIRTUALENV: "1",
               "PYTHONANYWHERE_SITE": deploy.REGIONS[deploy.REGION]["api_host"]}  # fmt: skip
    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        for name, value in environ.items():
            patch.setenv(name, value)
        patch.setattr(requests.adapters.HTTPAdapter, "send", send)
        patch.setattr(deploy, "check_env", check_env)  # .env has its own tests
        patch.setattr(deploy.time, "sleep", sleep)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = deploy.main(["--root", str(root), "--wait", "0", *args])
    return code, out.getvalue(), err.getvalue()


def test_a_dry_run_marks_each_failed_check_and_plans_every_step(tmp_path_factory):
    """A .env the app refuses and a web app serving another folder: both marked, and the plan
    goes on to its last step; nothing but GETs reaches the API."""
    calls: list[tuple[str, str]] = []

    def send(adapter, request, **kwargs):
        calls.append((request.method, request.url))
        if (request.method, request.url) == ("GET", f"{API}{SITE}/"):
            blog = {**WEBAPP, "source_directory": "/home/alice/blog"}
            return response_to(request, 200, JSON, json.dumps(blog).encode())
        return response_to(request, *honest(request.method, request.url, exists=True))

    def check_env():
        raise deploy.DeployError(".env has no real SECRET_KEY")

    code, out, err = run_stage_two(tmp_path_factory, send, "--dry-run", check_env=check_env)
    assert code == 1
    assert err.splitlines() == [
        "deploy.py: .env has no real SECRET_KEY",
        f"deploy.py: {SITE} already serves another app (source directory /home/alice/blog): run "
        f"again with --force to point it at {deploy.PROJECT} (its WSGI file is backed up)",
    ]
    for planned in (
        f"would PATCH {API}{SITE}/ ",
        "would write it",
        f"would PATCH {API}{SITE}/static_files/7/",
        f"would POST {API}{SITE}/reload/",
        "would request it until it answers 200",
    ):
        assert planned in out, planned
    assert "Dry run: 2 failed check(s)" in out
    assert {method for method, _ in calls} == {"GET"}


PYTHON_CODE = "python" + deploy.PYTHON_VERSION.replace(".", "")  # as the create and PATCH take it


@settings(max_examples=60, deadline=None, derandomize=True)
@example(reported=deploy.PYTHON_VERSION)
@example(reported=PYTHON_CODE)
@example(reported="python38")
@example(reported="3.9")
@given(reported=st.from_regex(r"(python)?3\.?[0-9]{1,2}", fullmatch=True) | st.text(max_size=12))
def test_an_existing_web_app_on_another_python_is_switched(tmp_path_factory, reported):
    """The web app's python_version, in either form the sources show ("3.10" in
    pythonanywhere-core's tests, "python310" in helper_scripts' mocks) or any other text: the
    PATCH sets the project's Python exactly when the web app runs another one."""
    patches = []

    def send(adapter, request, **kwargs):
        call = (request.method, request.url)
        if call == ("PATCH", f"{API}{SITE}/"):
            patches.append(dict(parse_qsl(request.body)))
        if call == ("GET", f"{API}{SITE}/"):
            webapp = {**WEBAPP, "python_version": reported}
            return response_to(request, 200, JSON, json.dumps(webapp).encode())
        return response_to(request, *honest(*call, True))

    code, stdout, stderr = run_stage_two(tmp_path_factory, send)

    assert code == 0, stderr
    [patch] = patches
    version = deploy.PYTHON_VERSION
    if reported in (version, PYTHON_CODE, f"python{version}", version.replace(".", "")):
        assert "python_version" not in patch, patch
    else:
        assert patch["python_version"] == PYTHON_CODE, patch
        assert f"switching it to Python {version}" in stdout


# What Upstash answers to every command once the month's quota is used up (upstash_server.py).
QUOTA_ERROR = (
    "ERR max requests limit exceeded. Limit: 500000, Usage: 500000. See "
    "https://upstash.com/docs/redis/troubleshooting/max_requests_limit for details"
)


def health_after(error: object) -> bytes:
    """/health of a live app whose upstash backend failed: the breaker open, ``error`` its
    last_error (as the app reports it, or anything a broken one might)."""
    cache = {"backend": "upstash", "active": "simple", "breaker": "open", "last_error": error}
    return json.dumps({"status": "ok", "worker": 1, "cache": cache}).encode()


def deploy_with_health(tmp_path_factory, body: bytes) -> tuple[int, str, str]:
    def send(adapter, request, **kwargs):
        call = (request.method, request.url)
        if call == ("GET", f"https://{SITE}/health"):
            return response_to(request, 200, JSON, body)
        return response_to(request, *honest(*call, True))

    return run_stage_two(tmp_path_factory, send)


def test_a_live_app_over_its_upstash_quota_fails_naming_the_servers_error(tmp_path_factory):
    error = {"type": "UpstashCommandError", "message": QUOTA_ERROR, "at": "2026-12-06T10:00:00Z"}
    code, stdout, stderr = deploy_with_health(tmp_path_factory, health_after(error))

    assert code == 1
    assert "cache: backend upstash, active simple" in stdout
    first = stderr.splitlines()[0]
    assert first.startswith(
        "deploy.py: the live app serves from simple because upstash failed (UpstashCommandError: "
        "ERR max requests limit exceeded. Limit: 500000, Usage: 500000. See "
        "https://upstash.com/docs/redis/troubleshooting/max_requests_limit"
    ), first
    # No setting to fix: the quota resets (or is raised) on Upstash's side.
    assert "it refuses every command until its quota resets (docs/upstash.md)" in first
    assert "fix UPSTASH_REDIS_REST_URL" not in first


@settings(max_examples=40, deadline=None, derandomize=True)
@example(error={"type": "X" * 5000, "message": f"line\n{TOKEN}\r\n\x1b[31m" + "é" * 20_000})
@given(
    error=st.fixed_dictionaries(
        {}, optional={"type": st.text() | json_values, "message": st.text() | json_values}
    )
    | json_values
)
def test_whatever_last_error_holds_the_failure_is_one_bounded_line(tmp_path_factory, error):
    code, stdout, stderr = deploy_with_health(tmp_path_factory, health_after(error))

    assert code == 1
    first, *_ = stderr.splitlines()
    assert first.startswith("deploy.py: the live app serves from simple because upstash failed")
    assert len(first) < 800 and first.isprintable(), first
    assert TOKEN not in stdout + stderr


def test_an_older_python_names_the_one_to_run(monkeypatch, capsys):
    """Stage 1 on a python3 older than the project's (an old system image): one line."""
    running = f"{sys.version_info[0]}.{sys.version_info[1]}"
    newer = f"3.{sys.version_info[1] + 1}"
    monkeypatch.setattr(deploy, "PYTHON_VERSION", newer)
    monkeypatch.setattr(deploy.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setenv("API_TOKEN", TOKEN)
    monkeypatch.setenv("PYTHONANYWHERE_USERNAME", USER)
    monkeypatch.delenv("PYTHONANYWHERE_SITE", raising=False)
    monkeypatch.delenv(deploy.IN_VIRTUALENV, raising=False)
    assert deploy.main(["--dry-run"]) == 1
    assert capsys.readouterr().err == (
        f"deploy.py: this is Python {running}, older than the project's {newer}: "
        f"run python{newer} deploy.py\n"
    )


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    site=st.sampled_from(["", "www.pythonanywhere.com", "eu.pythonanywhere.com"]) | st.text(),
    user=st.text(min_size=1),
)
def test_the_console_settings_are_checked(site, user):
    """PYTHONANYWHERE_SITE and the user name, whatever they hold: used, or one short line."""
    if "\x00" in site + user:
        return  # no environment variable can hold it
    answers = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PYTHONANYWHERE_SITE", site)
        patch.setenv("PYTHONANYWHERE_USERNAME", user)
        for check in (deploy.api_host, deploy.username):
            try:
                answers[check.__name__] = check()
            except deploy.DeployError as error:
                assert len(str(error).splitlines()) == 1 and len(str(error)) < 400, str(error)
    if re.fullmatch(r"[A-Za-z0-9]{1,63}", user):
        assert answers["username"] == user
    else:
        assert "username" not in answers, "a user name that cannot be in a URL or a domain"


@pytest.mark.parametrize("value", ["nan", "inf", "-1", "3601", "soon", ""])
def test_wait_must_be_a_number_of_seconds(value, capsys):
    with pytest.raises(SystemExit) as stop:
        deploy.main(["--wait", value])
    assert stop.value.code == 2
    assert f"argument --wait: {value!r} is not a number of seconds" in capsys.readouterr().err


# deploy.py checks .env by building the app from its values: each value start-up refuses stops
# deploy.py with the same one line (exit 1) before the API is called, and no output shows a
# password or token.
SERVER = "cache.example.com"  # not this machine, so deploy.py's own host check passes
CASES = {
    "CACHE_SOCKET_TIMEOUT": ({}, NUMBERS),
    "CACHE_DEFAULT_TIMEOUT": ({}, NUMBERS),
    "CACHE_NEAR_TTL": ({}, NUMBERS),
    "CACHE_NEAR_TRACKING": (
        {"CACHE_TYPE": "redis", "REDIS_URL": f"redis://{SERVER}:6379/0"},
        st.text(max_size=5),
    ),
    "CACHE_KEY_PREFIX": (
        {"CACHE_TYPE": "memcached", "MEMCACHED_SERVERS": f"{SERVER}:11211"},
        st.text(max_size=260),
    ),
    "REDIS_URL": ({"CACHE_TYPE": "redis"}, redis_urls(f"redis://{SERVER}:6379/0")),
    "MEMCACHED_SERVERS": ({"CACHE_TYPE": "memcached"}, memcached_lists(f"{SERVER}:11211")),
    "CACHE_DIR": (
        {"CACHE_TYPE": "filesystem"},
        st.sampled_from(["/etc/passwd", "/dev/null", "/proc/1/cache-here", "cache", "/a\x00b"]),
    ),
    "UPSTASH_REDIS_REST_TOKEN": (
        {"CACHE_TYPE": "upstash", "UPSTASH_REDIS_REST_URL": f"https://{SERVER}"},
        st.builds(lambda a, b: f"{a}token-0123{b}456789", JUNK, JUNK),
    ),
}


@pytest.fixture
def checked_env(tmp_path, monkeypatch, capsys):
    """check_env(values) -> (exit status, stdout, stderr) of deploy.py's stage 2 run on a .env
    with ``values``, stopped where it would call the API."""
    import dotenv

    (tmp_path / ".env").write_text("")
    monkeypatch.setattr(deploy, "PROJECT", tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setenv(deploy.IN_VIRTUALENV, "1")
    monkeypatch.delenv("PYTHONANYWHERE_SITE", raising=False)

    class NoApi:
        def __init__(self, dry_run):
            raise deploy.DeployError("stopped where the API would be called")

    monkeypatch.setattr(deploy, "Api", NoApi)

    def check_env(values):
        monkeypatch.setattr(
            dotenv, "dotenv_values", lambda path: {"SECRET_KEY": "k" * 32, **values}
        )
        capsys.readouterr()
        status = deploy.main([])
        out, err = capsys.readouterr()
        return status, out, err

    return check_env


def refusal(values):
    """The ConfigError line start-up gives for ``values``, or None."""
    try:
        create_app(environ={"SECRET_KEY": "k" * 32, **values})
    except ConfigError as error:
        return str(error)
    return None


@pytest.mark.parametrize("variable", list(CASES))
@PROPERTY
@given(data=st.data())
def test_deploy_stops_on_every_value_start_up_refuses(checked_env, variable, data):
    settings, values = CASES[variable]
    value = data.draw(values)
    env = {**settings, variable: value}
    status, out, err = checked_env(env)
    expected = refusal(env)
    assert status == 1
    if expected is None:
        assert "SECRET_KEY set; CACHE_TYPE=" in out
        assert err == "deploy.py: stopped where the API would be called\n"
    else:
        assert err == f"deploy.py: {deploy.PROJECT / '.env'}: {expected}\n"
        assert variable in expected
    if variable == "UPSTASH_REDIS_REST_TOKEN":
        assert value.strip() not in out + err


@PROPERTY
@given(password=st.text(min_size=6, max_size=16), form=st.sampled_from(FORMS))
def test_deploy_never_shows_a_redis_password(checked_env, password, form):
    assume(not shows(FRAME, password))
    url = url_with(form, password).replace("h.example", SERVER)
    status, out, err = checked_env({"CACHE_TYPE": "redis", "REDIS_URL": url})
    assert status == 1 and err.count("\n") == 1
    assert not shows(out + err, password)


@pytest.mark.parametrize(
    "values",
    [
        {"CACHE_SOCKET_TIMEOUT": "inf"},
        {"CACHE_SOCKET_TIMEOUT": "1e10"},
        {"CACHE_DEFAULT_TIMEOUT": "99999999999"},
        {"CACHE_TYPE": "memcached", "MEMCACHED_SERVERS": f"{SERVER}:²"},
        {"CACHE_TYPE": "memcached", "MEMCACHED_SERVERS": f"{SERVER}:1", "CACHE_KEY_PREFIX": "a b"},
        {"CACHE_TYPE": "redis", "REDIS_URL": f"redis://{SERVER}:6379/99999"},
        {"CACHE_TYPE": "redis", "REDIS_URL": f"redis://{SERVER}:6379/0?db=abc"},
        {"CACHE_TYPE": "filesystem", "CACHE_DIR": "/etc/passwd"},
        {"CACHE_TYPE": "upstash", "UPSTASH_REDIS_REST_URL": f"https://{SERVER}",
         "UPSTASH_REDIS_REST_TOKEN": "token\u200b"},
    ],
)  # fmt: skip
def test_deploy_stops_on_the_values_from_the_issue(checked_env, values):
    status, out, err = checked_env(values)
    variable = [name for name in values if name != "CACHE_TYPE"][-1]
    assert status == 1
    assert err.startswith(f"deploy.py: {deploy.PROJECT / '.env'}: {variable}")
    assert err.count("\n") == 1


# A .env that starts with each backend (a server backend pointed at a hosted server).
STARTS = {
    "simple": {},
    "filesystem": {},
    "null": {},
    "redis": {"REDIS_URL": f"redis://{SERVER}:6379/0"},
    "memcached": {"MEMCACHED_SERVERS": f"{SERVER}:11211"},
    "upstash": {"UPSTASH_REDIS_REST_URL": f"https://{SERVER}", "UPSTASH_REDIS_REST_TOKEN": "t" * 9},
}


@PROPERTY
@given(in_env=st.sampled_from(list(STARTS)), baked=st.sampled_from(list(STARTS)) | JUNK)
def test_a_cache_type_other_than_the_baked_one_is_one_warning(checked_env, in_env, baked):
    """A redis bake whose .env says simple (e.g. a .env.example copied before the fix) deploys,
    with one line saying so; a .env that agrees gets no such line."""
    (deploy.PROJECT / ".cookiecutter.json").write_text(json.dumps({"cache_backend": baked}))
    status, out, err = checked_env({"CACHE_TYPE": in_env, **STARTS[in_env]})
    assert err == "deploy.py: stopped where the API would be called\n"  # the deploy went on
    warnings = [line for line in out.splitlines() if "warning:" in line]
    if in_env == baked or not baked:
        assert warnings == []
    else:
        assert warnings == [
            f"    warning: .env has CACHE_TYPE={in_env}, but this project was baked with "
            f"{deploy.excerpt(baked, quoted=False)}: edit CACHE_TYPE in .env if {in_env} is not "
            "what you want"
        ]


@pytest.mark.parametrize("backend", ["redis", "memcached", "upstash"])
def test_a_server_not_set_is_refused_even_from_a_debug_console(checked_env, monkeypatch, backend):
    """Development falls back to simple when the server is not set; the live app never does."""
    monkeypatch.setenv("FLASK_DEBUG", "1")
    status, out, err = checked_env({"CACHE_TYPE": backend})
    assert status == 1 and err.count("\n") == 1
    assert re.match(rf"deploy.py: \S+: [A-Z_]+ is not set but CACHE_TYPE={backend}: ", err)


@settings(max_examples=20, deadline=None, derandomize=True, database=None)
@given(user=st.from_regex(r"[A-Za-z0-9]{1,20}", fullmatch=True) | st.just(deploy.BAKED_USERNAME))
def test_a_console_user_other_than_the_baked_one_is_one_warning(user):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("API_TOKEN", "token")
        patch.setenv("PYTHONANYWHERE_USERNAME", user)
        patch.delenv("PYTHONANYWHERE_SITE", raising=False)
        patch.delenv(deploy.IN_VIRTUALENV, raising=False)
        patch.setattr(deploy.shutil, "which", lambda name: None)  # stops right after the check
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
            assert deploy.main(["--dry-run"]) == 1
    warnings = [line for line in out.getvalue().splitlines() if "warning:" in line]
    if user.lower() == deploy.BAKED_USERNAME.lower():
        assert warnings == []
    else:
        assert len(warnings) == 1
        assert f"baked for the user {deploy.BAKED_USERNAME}, not {user}" in warnings[0]
