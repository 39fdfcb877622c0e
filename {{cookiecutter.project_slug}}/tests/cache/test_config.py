"""Settings from the environment: a value the app cannot use stops it at start, in one line."""

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st
from redis.connection import parse_url

from {{ cookiecutter.package_name }} import create_app
from {{ cookiecutter.package_name }}.cache import BACKENDS, ConfigError, cache
from {{ cookiecutter.package_name }}.cache.config import redact_url

from .conftest import SERVERS, make_app
from .hostile import (
    MORE,
    NUMBERS,
    PROPERTY,
    check_refusal,
    memcached_lists,
    redis_urls,
    start,
    upstash_urls,
    with_tail,
)
from .upstash_server import TOKEN


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"CACHE_TYPE": "mongo"}, "CACHE_TYPE='mongo' is not valid: use one of simple, filesystem"),
        (
            {"CACHE_DEFAULT_TIMEOUT": "5m"},
            "CACHE_DEFAULT_TIMEOUT='5m' is not valid: use a whole number",
        ),
        ({"CACHE_DEFAULT_TIMEOUT": "-1"}, "CACHE_DEFAULT_TIMEOUT='-1' is not valid"),
        (
            {"CACHE_SOCKET_TIMEOUT": "fast"},
            "CACHE_SOCKET_TIMEOUT='fast' is not valid: use a number",
        ),
        ({"CACHE_SOCKET_TIMEOUT": "nan"}, "CACHE_SOCKET_TIMEOUT='nan' is not valid"),
        ({"CACHE_THRESHOLD": "0"}, "CACHE_THRESHOLD='0' is not valid"),
        (
            {"CACHE_TYPE": "filesystem", "CACHE_DIR": "cache"},
            "CACHE_DIR='cache' is not valid: use an absolute path",
        ),
        ({"TESTING": "maybe"}, "TESTING='maybe' is not valid"),
        ({"CACHE_TYPE": "redis", "REDIS_URL": ""}, "REDIS_URL is not set but CACHE_TYPE=redis"),
        (
            {"CACHE_TYPE": "redis", "REDIS_URL": "localhost:6379"},
            "REDIS_URL='localhost:6379' is not valid",
        ),
        ({"CACHE_TYPE": "redis", "REDIS_URL": "http://h:1"}, "use redis://"),
        (
            {"CACHE_TYPE": "redis", "REDIS_URL": "redis://h:port"},
            "REDIS_URL='redis://h:port' is not valid",
        ),
        (
            {"CACHE_TYPE": "redis", "REDIS_URL": "redis://h:1/x"},
            "REDIS_URL='redis://h:1/x' is not valid",
        ),
        ({"CACHE_TYPE": "memcached", "MEMCACHED_SERVERS": ""}, "MEMCACHED_SERVERS is not set"),
        (
            {"CACHE_TYPE": "memcached", "MEMCACHED_SERVERS": "h:1,h"},
            "MEMCACHED_SERVERS='h:1,h' is not valid",
        ),
        (
            {"CACHE_TYPE": "memcached", "MEMCACHED_SERVERS": "h:99999"},
            "use comma-separated host:port",
        ),
        (
            {"CACHE_TYPE": "upstash", "UPSTASH_REDIS_REST_TOKEN": "t"},
            "UPSTASH_REDIS_REST_URL is not set but CACHE_TYPE=upstash",
        ),
        (
            {"CACHE_TYPE": "upstash", "UPSTASH_REDIS_REST_URL": "rediss://default:pw@h:6379"},
            "UPSTASH_REDIS_REST_URL='rediss://default:***@h:6379' is not valid: use the database's",
        ),
        (
            {"CACHE_TYPE": "upstash", "UPSTASH_REDIS_REST_URL": "https://h.upstash.io"},
            "UPSTASH_REDIS_REST_TOKEN is not set but CACHE_TYPE=upstash",
        ),
        # urllib drops a tab or line break inside a URL; requests refuses the URL at each call.
        (
            {
                "CACHE_TYPE": "upstash",
                "UPSTASH_REDIS_REST_URL": "http://127.0.0.1\n:8080",
                "UPSTASH_REDIS_REST_TOKEN": "t",
            },
            "UPSTASH_REDIS_REST_URL='http://127.0.0.1\\n:8080' is not valid",
        ),
        (
            {"CACHE_TYPE": "redis", "REDIS_URL": "redis://h\t:6379/0"},
            "REDIS_URL='redis://h\\t:6379/0' is not valid",
        ),
    ],
)
def test_bad_values_stop_start_up_naming_the_variable(settings, message):
    with pytest.raises(ConfigError) as error:
        create_app({"SECRET_KEY": "x", **settings}, environ={})
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_a_bad_redis_url_is_reported_without_its_password():
    with pytest.raises(ConfigError) as error:
        create_app(
            {"SECRET_KEY": "x", "CACHE_TYPE": "redis", "REDIS_URL": "rediss://default:hunter2@h:x"},
            environ={},
        )
    assert "hunter2" not in str(error.value)
    assert "rediss://default:***@h:x" in str(error.value)


def test_secret_key_is_required_outside_debug_and_testing(monkeypatch):
    with pytest.raises(ConfigError, match="SECRET_KEY is not set"):
        create_app(environ={})
    assert create_app({"TESTING": True}, environ={}).secret_key
    monkeypatch.setenv("FLASK_DEBUG", "1")  # as `flask run --debug` sets it
    assert create_app(environ={}).secret_key


def test_settings_come_from_the_environment(monkeypatch, tmp_path):
    for name in list(os.environ):
        if name.startswith(("CACHE_", "REDIS_", "MEMCACHED_", "UPSTASH_", "SECRET_KEY")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("SECRET_KEY", "from-env")
    monkeypatch.setenv("CACHE_TYPE", "FileSystem")
    monkeypatch.setenv("CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("CACHE_DEFAULT_TIMEOUT", " 60 ")
    app = create_app()
    assert app.secret_key == "from-env"
    assert (app.config["CACHE_TYPE"], app.config["CACHE_DIR"]) == ("filesystem", str(tmp_path))
    assert app.config["CACHE_DEFAULT_TIMEOUT"] == 60


def test_defaults():
    app = create_app({"SECRET_KEY": "x"}, environ={})
    assert app.config["CACHE_TYPE"] == "simple"
    assert app.config["CACHE_KEY_PREFIX"] == "{{ cookiecutter.package_name }}:"
    assert app.config["CACHE_DIR"] == os.path.join(app.instance_path, "cache")
    assert os.path.isabs(app.config["CACHE_DIR"])
    assert app.config["CACHE_SOCKET_TIMEOUT"] == 0.5
    assert app.config["CACHE_DEFAULT_TIMEOUT"] == 300
    assert app.config["CACHE_RETRY_AFTER"] == 30


def test_unused_backend_settings_are_not_checked():
    app = create_app(
        {"SECRET_KEY": "x", "CACHE_TYPE": "simple", "REDIS_URL": "nonsense", "CACHE_DIR": "rel"},
        environ={},
    )
    assert app.config["CACHE_TYPE"] == "simple"


# The rule for every setting: a value start-up accepts works, any other stops start-up with one
# line naming the variable. Each test draws hostile values; `start` checks the rule.
STORING = [
    pytest.param(name, marks=SERVERS[name][2:] if name in SERVERS else ())
    for name in BACKENDS
    if name != "null"
]
NUMERIC = [
    "CACHE_DEFAULT_TIMEOUT",
    "CACHE_THRESHOLD",
    "CACHE_SOCKET_TIMEOUT",
    "CACHE_RETRY_AFTER",
    "CACHE_NEAR_TTL",
]


@pytest.mark.parametrize("backend", STORING)
@pytest.mark.parametrize("variable", NUMERIC)
@PROPERTY
@given(value=NUMBERS)
@example(value="inf")
@example(value="1e10")
@example(value="99999999999")
@example(value="١٢")
def test_numeric_settings_work_or_stop_start_up(
    tmp_path, server_settings, backend, variable, value
):
    start(tmp_path, variable, value, **server_settings(backend))


@pytest.mark.parametrize("backend", [pytest.param(n, marks=SERVERS[n][2:]) for n in SERVERS])
@PROPERTY
@given(prefix=st.text(max_size=300))
@example(prefix="my app:")
@example(prefix="x" * 251)
@example(prefix="pre!fix:")
def test_key_prefixes_work_or_stop_start_up(tmp_path, server_settings, backend, prefix):
    start(tmp_path, "CACHE_KEY_PREFIX", prefix, **server_settings(backend))


@pytest.mark.redis
@MORE
@given(data=st.data())
def test_redis_urls_work_or_stop_start_up(tmp_path, redis_url, data):
    url = data.draw(redis_urls(redis_url))
    start(tmp_path, "REDIS_URL", url, CACHE_TYPE="redis")


@pytest.mark.redis
@pytest.mark.parametrize(
    "path, query",
    [("/99999", ""), ("/16", ""), ("/0", "db=abc"), ("/0", "db=16"), ("/0", "socket_timeout=inf")],
)
def test_redis_urls_from_the_issue_stop_start_up(tmp_path, redis_url, path, query):
    url = with_tail(redis_url, path, query)
    assert start(tmp_path, "REDIS_URL", url, CACHE_TYPE="redis") is None


@pytest.mark.parametrize("host", ["eu1-x.upstash.io", "redis-1.c1.cloud.redislabs.com"])
def test_hosted_redis_has_database_0_only(host):
    with pytest.raises(ConfigError, match="serves database 0 only"):
        create_app(
            {"SECRET_KEY": "x", "CACHE_TYPE": "redis", "REDIS_URL": f"rediss://{host}/1"},
            environ={},
        )


@pytest.mark.parametrize("path", ["/no/such/ca.crt", "ca.crt", "/etc"])
def test_redis_tls_files_are_readable_files(path):
    url = f"rediss://cache.example.com/0?ssl_ca_certs={path}"
    with pytest.raises(ConfigError, match="ssl_ca_certs names no file this app can read"):
        create_app({"SECRET_KEY": "x", "CACHE_TYPE": "redis", "REDIS_URL": url}, environ={})


@pytest.mark.memcached
@MORE
@given(data=st.data())
def test_memcached_servers_work_or_stop_start_up(tmp_path, memcached_servers, data):
    servers = data.draw(memcached_lists(memcached_servers))
    start(tmp_path, "MEMCACHED_SERVERS", servers, CACHE_TYPE="memcached")


@pytest.mark.memcached
@pytest.mark.parametrize("port", ["²", "١١٢١١", "0", "65536"])
def test_memcached_ports_are_ascii_digits(tmp_path, port):
    servers = f"127.0.0.1:{port}"
    assert start(tmp_path, "MEMCACHED_SERVERS", servers, CACHE_TYPE="memcached") is None


@PROPERTY
@given(
    where=st.one_of(
        st.text(max_size=12).filter(lambda t: ".." not in t).map(lambda t: ("in tmp", t)),
        st.sampled_from(
            ["/etc/passwd", "/dev/null", "/proc/1/cache-here", "rel/dir", "/a\x00b"]
        ).map(lambda p: ("as is", p)),
    )
)
def test_cache_dirs_work_or_stop_start_up(tmp_path, where):
    kind, path = where
    value = f"{tmp_path}/dirs/{path}" if kind == "in tmp" else path
    start(tmp_path, "CACHE_DIR", value, CACHE_TYPE="filesystem")


def test_a_file_is_not_a_cache_dir(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match="it is a file, not a folder"):
        make_app(tmp_path, CACHE_TYPE="filesystem", CACHE_DIR=str(tmp_path / "file"))


@pytest.mark.redis
@PROPERTY
@given(
    at=st.integers(min_value=0, max_value=len(TOKEN)),
    pasted=st.text(alphabet="\u200b\u2019\u201c \t\xa0é\x00\x7f\ufeff", max_size=2),
)
@example(at=len(TOKEN), pasted="\u200b")
@example(at=3, pasted="\u2019")
def test_upstash_tokens_work_or_stop_start_up_unshown(tmp_path, upstash_url, at, pasted):
    token = TOKEN[:at] + pasted + TOKEN[at:]
    settings = {"CACHE_TYPE": "upstash", "UPSTASH_REDIS_REST_URL": upstash_url}
    start(tmp_path, "UPSTASH_REDIS_REST_TOKEN", token, secrets=(token, TOKEN), **settings)


@pytest.mark.redis
@MORE
@given(data=st.data())
def test_upstash_urls_work_or_stop_start_up(tmp_path, upstash_url, data):
    url = data.draw(upstash_urls(upstash_url))
    start(tmp_path, "UPSTASH_REDIS_REST_URL", url, CACHE_TYPE="upstash")


@pytest.mark.parametrize(
    "variable, values",
    [
        ("SECRET_KEY", st.text()),
        ("CACHE_SIGNING_KEY", st.text()),
        ("TESTING", st.text(max_size=6)),
        ("CACHE_NEAR_TRACKING", st.text(max_size=4) | st.sampled_from(["on", "OFF", "true"])),
    ],
)
@PROPERTY
@given(data=st.data())
def test_other_settings_work_or_stop_start_up(tmp_path, variable, values, data):
    start(tmp_path, variable, data.draw(values), CACHE_TYPE="filesystem")


@pytest.mark.redis
@pytest.mark.memcached
@PROPERTY
@given(name=st.text(max_size=12) | st.sampled_from(list(BACKENDS)).map(str.upper))
def test_cache_types_work_or_stop_start_up(
    tmp_path, redis_url, memcached_servers, upstash_url, name
):
    servers = {
        "REDIS_URL": redis_url,
        "MEMCACHED_SERVERS": memcached_servers,
        "UPSTASH_REDIS_REST_URL": upstash_url,
    }
    start(tmp_path, "CACHE_TYPE", name, **servers)


@pytest.mark.parametrize("variable", ["SECRET_KEY", "CACHE_SIGNING_KEY", "CACHE_KEY_PREFIX"])
def test_text_that_is_not_utf8_stops_start_up(tmp_path, variable):
    # os.environ keeps bytes that are not UTF-8 as lone surrogates: no library can encode them.
    start(tmp_path, variable, "key\udcff", CACHE_TYPE="filesystem")
    with pytest.raises(ConfigError, match=f"^{variable} is not valid: it is not UTF-8 text"):
        make_app(tmp_path, CACHE_TYPE="filesystem", **{variable: "key\udcff"})


# Redaction: a password, wherever redis-py reads one, never shows.
PASSWORDS = st.text(min_size=6, max_size=16)
FORMS = [
    "redis://:{quoted}@h.example:6379/0",
    "rediss://default:{quoted}@h.example:6379",
    "redis://h.example:6379/0?password={quoted}&db=1",
    "redis://user@h.example:6379/0?db=0&pass%77ord={quoted}",
    "redis://:{raw}@h.example:6379/0",
    "redis://h.example:6379/0?db=1&password={raw}",
]
FRAME = " ".join(FORMS) + " ***"  # what a password may not be part of for the test to tell


def url_with(form: str, password: str) -> str:
    return form.format(quoted=quote(password, safe=""), raw=password)


def shows(text: str, password: str) -> bool:
    return password in text or quote(password, safe="") in text


@PROPERTY
@given(password=PASSWORDS, form=st.sampled_from(FORMS))
def test_redact_url_hides_every_password(password, form):
    assume(not shows(FRAME, password))
    shown = redact_url(url_with(form, password))
    assert not shows(shown, password)
    if "{quoted}" in form:  # written as it should be: where it points still shows
        assert "h.example:6379" in shown


@pytest.mark.redis
@PROPERTY
@given(password=PASSWORDS, form=st.sampled_from(FORMS))
def test_describe_and_cache_status_hide_the_password(tmp_path, redis_url, password, form):
    assume(not shows(FRAME, password))
    server = urlsplit(redis_url).netloc
    url = url_with(form, password).replace("h.example:6379", server)
    try:
        app = make_app(tmp_path, CACHE_TYPE="redis", REDIS_URL=url)
    except ConfigError as error:
        check_refusal(error, "REDIS_URL", (password, quote(password, safe="")))
        return
    assert not shows(BACKENDS["redis"].describe(app.config), password)
    result = app.test_cli_runner().invoke(args=["cache", "status"])
    assert "serving:    redis (" in result.output
    assert not shows(result.output, password)


# What a user can type into .env: any text but NUL and lone surrogates (no environment holds them).
TYPED = st.text(alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"))


def flask_command(tmp_path: Path, *args: str, **settings: str) -> subprocess.CompletedProcess:
    """`flask --app <package> <args>` as a user runs it, with ``settings`` as in .env."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CACHE_", "SECRET_KEY"))}
    root = str(Path(__file__).resolve().parents[2])
    env.update(SECRET_KEY="k" * 32, FLASK_SKIP_DOTENV="1", PYTHONPATH=root)
    command = [sys.executable, "-m", "flask", "--app", create_app.__module__, *args]
    return subprocess.run(
        command, cwd=tmp_path, env={**env, **settings}, capture_output=True, text=True, timeout=60
    )


@settings(PROPERTY, max_examples=4)  # a process each
@given(
    variable=st.sampled_from(["CACHE_TYPE", "CACHE_SOCKET_TIMEOUT", "CACHE_THRESHOLD"]),
    value=TYPED | NUMBERS.filter(lambda value: "\x00" not in value),
)
@example(variable="CACHE_TYPE", value="redsi")
def test_flask_commands_print_a_refused_setting_as_one_line(tmp_path, variable, value):
    try:
        create_app(environ={"SECRET_KEY": "k" * 32, variable: value})
    except ConfigError as error:
        message = str(error)
    else:
        assume(False)  # accepted: nothing to show
    result = flask_command(tmp_path, "routes", **{variable: value})
    assert (result.returncode, result.stdout, result.stderr) == (1, "", f"Error: {message}\n")


def test_flask_run_prints_a_refused_setting_as_one_line(tmp_path):
    """The README's `flask run --debug`: one line and exit 1, before it listens or reloads."""
    result = flask_command(tmp_path, "run", "--debug", "--port", "0", CACHE_TYPE="redsi")
    with pytest.raises(ConfigError) as refused:
        create_app(environ={"SECRET_KEY": "k" * 32, "CACHE_TYPE": "redsi"})
    assert (result.returncode, result.stdout, result.stderr) == (1, "", f"Error: {refused.value}\n")


# A hosted server for each server backend's variables, as .env would name it.
HOSTED = {
    "REDIS_URL": "redis://cache.example.com:6379/0",
    "MEMCACHED_SERVERS": "cache.example.com:11211",
    "UPSTASH_REDIS_REST_URL": "https://eu1-example-12345.upstash.io",
    "UPSTASH_REDIS_REST_TOKEN": "AXtoken-0123456789",
}
# Each backend's settings that must be set (the optional ones, a login for instance, may not).
REQUIRED = {name: [v for v in b.variables if v not in b.optional] for name, b in BACKENDS.items()}
WITH_A_SERVER = [name for name, needed in REQUIRED.items() if needed and set(needed) <= set(HOSTED)]


def unset_servers():
    """.env's values for a server backend, each of its settings unset, empty, blank or set."""

    def draw(backend, choices):
        values = {"CACHE_TYPE": backend}
        for name, choice in zip(REQUIRED[backend], choices, strict=False):
            if choice is not None:
                values[name] = HOSTED[name] if choice == "set" else choice
        return values

    choice = st.sampled_from([None, "", " ", "\t", "\n ", "set"])
    return st.builds(draw, st.sampled_from(WITH_A_SERVER), st.lists(choice, min_size=2, max_size=2))


@PROPERTY
@given(values=unset_servers())
def test_a_server_not_set_yet_falls_back_in_development_only(caplog, values):
    """`flask run --debug` on a fresh upstash (or redis, memcached) bake starts on the simple
    cache with one warning naming what to set; the web app (no debug) refuses to start."""
    missing = [n for n in REQUIRED[values["CACHE_TYPE"]] if not values.get(n, "").strip()]
    assume(missing)
    environ = {"SECRET_KEY": "k" * 32, **values}
    with pytest.raises(ConfigError, match=rf"^{missing[0]} is not set but CACHE_TYPE="):
        create_app(environ=environ)
    caplog.clear()
    app = create_app({"DEBUG": True}, environ=environ)
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "\n" not in warnings[0]
    assert warnings[0].startswith(f"CACHE_TYPE={values['CACHE_TYPE']} but {' and '.join(missing)} ")
    assert "serving from the simple cache" in warnings[0] and "Set " in warnings[0]
    assert app.test_client().get("/health").get_json()["cache"]["active"] == "simple"
    with app.app_context():
        assert cache.set("key", 1) and cache.get("key") == 1


# A password with a character that ends a URL's user part early, written into REDIS_URL as is;
# MARK is in every one, so that a message showing the password shows it.
MARK = "S3cr3tZ"
PASSWORDS = st.builds(
    lambda before, after: before + MARK + after,
    *[st.text(st.sampled_from("aZ9-_.~!$&'()*+,;=:@/?#"), max_size=12)] * 2,
)


@MORE
@given(password=PASSWORDS.filter(lambda p: any(c in p for c in "/?#")))
def test_a_password_a_url_must_escape_is_refused_saying_how_and_works_escaped(password):
    url = f"redis://default:{password}@cache.example.com:6379/0"
    with pytest.raises(ConfigError) as refused:
        create_app({"SECRET_KEY": "x", "CACHE_TYPE": "redis", "REDIS_URL": url}, environ={})
    message = str(refused.value)
    assert message.startswith("REDIS_URL=") and "holds" in message and "percent-encode" in message
    assert all(f"{c} as {quote(c, safe='')}" in message for c in "/?#" if c in password)
    assert MARK not in message
    escaped = f"redis://default:{quote(password, safe='')}@cache.example.com:6379/0"
    app = create_app({"SECRET_KEY": "x", "CACHE_TYPE": "redis", "REDIS_URL": escaped}, environ={})
    assert parse_url(app.config["REDIS_URL"])["password"] == password  # as redis-py reads it
