"""The parts of deploy.py that run without PythonAnywhere. (The template's own tests run all of it
against a stand-in for PythonAnywhere's API and web servers.)"""

import sys

import pytest
from hypothesis import assume, given
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


def test_no_test_only_option_is_advertised(capsys):
    with pytest.raises(SystemExit):
        deploy.main(["--help"])
    shown = capsys.readouterr().out
    assert "--dry-run" in shown and "--root" not in shown
    assert "DEPLOY_TEST" not in (deploy.PROJECT / "deploy.py").read_text()  # no switch by env


# deploy.py checks .env by building the app from its values: each value start-up refuses stops
# deploy.py with the same one line (exit 1) before the API is called, and no output shows a
# password or token.
SERVER = "cache.example.com"  # not this machine, so deploy.py's own host check passes
CASES = {
    "CACHE_SOCKET_TIMEOUT": ({}, NUMBERS),
    "CACHE_DEFAULT_TIMEOUT": ({}, NUMBERS),
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
