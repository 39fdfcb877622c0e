"""CACHE_TYPE=memcached the MemCachier way: TLS and a login on every connection, through a
stand-in for MemCachier (memcachier_server.py) in front of the real memcached
(TEST_MEMCACHED_SERVERS)."""

import json
import logging
import os
import shutil
import socket
import ssl
import uuid

import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st
from pymemcache.client.base import Client

from {{ cookiecutter.package_name }}.cache import ConfigError
from {{ cookiecutter.package_name }}.cache.backends import memcachier

from .common import ClearTests, CommonTests, OutageTests, SignedTests
from .conftest import cache_behind, host_and_port, make_app
from .hostile import PROPERTY, note, warnings_logged
from .memcachier_server import (
    AUTH_FAILURE,
    LOGIN_WITHIN,
    PASSWORD,
    UNAUTHENTICATED,
    USERNAME,
    MemCachier,
    make_certificates,
)
from .test_memcached import RawMemcached

pytestmark = pytest.mark.memcached


@pytest.fixture(scope="module")
def certificates(tmp_path_factory):
    if shutil.which("openssl") is None:
        message = "openssl is not installed: it makes the MemCachier stand-in's certificates"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{message} (CI=true: a missing tool is a failure)")
        pytest.skip(message)
    return make_certificates(tmp_path_factory.mktemp("memcachier"))


@pytest.fixture(scope="module")
def stand_in(memcached_servers, certificates):
    server = MemCachier(host_and_port(memcached_servers), certificates.server)
    yield server
    server.close()


@pytest.fixture(autouse=True)
def fresh_stand_in(stand_in, certificates):
    """Each test starts with the stand-in as the module made it."""
    yield
    stand_in.serve(certificates.server)
    stand_in.accounts = {USERNAME: PASSWORD}
    stand_in.refusal = "error"
    stand_in.login_within = LOGIN_WITHIN


@pytest.fixture
def login(certificates):
    """The .env settings of a MemCachier login, trusting the stand-in's CA."""
    return {
        "MEMCACHED_USERNAME": USERNAME,
        "MEMCACHED_PASSWORD": PASSWORD,
        "MEMCACHED_TLS": "on",
        "MEMCACHED_TLS_CA": str(certificates.ca),
    }


@pytest.fixture
def server_settings(stand_in, login):
    """As conftest's, for memcached through the stand-in (or 127.0.0.1:port in front of it)."""

    def server_settings(backend: str, port: int | None = None) -> dict[str, str]:
        assert backend == "memcached", backend
        servers = f"127.0.0.1:{port or stand_in.port}"
        return {"CACHE_TYPE": "memcached", "MEMCACHED_SERVERS": servers, **login}

    return server_settings


@pytest.fixture
def cache_factory(new_app_cache, server_settings):
    """As test_memcached.py's, and each cache it made must have been served by memcached through
    the stand-in: the in-process fallback would pass the common tests too."""
    made = []

    def cache_factory(**settings):
        made.append(new_app_cache(**{**server_settings("memcached"), **settings}))
        return made[-1]

    yield cache_factory
    for cache in made:
        assert (cache.status()["breaker"], cache.status()["last_error"]) == ("closed", None)


@pytest.fixture
def raw(memcached_servers):
    return RawMemcached(memcached_servers)  # the real memcached, past the stand-in


class TestMemCachier(CommonTests, ClearTests, SignedTests, OutageTests):
    backend = "memcached"


def secret_password() -> str:
    return f"wrong-{uuid.uuid4().hex}"


def shows(text: str, secret: str) -> bool:
    """Whether ``text`` shows ``secret``, or a part of it long enough to tell (a cut line)."""
    return any(secret[i : i + 10] in text for i in range(len(secret) - 9))


def tls_client(stand_in, certificates) -> ssl.SSLSocket:
    context = ssl.create_default_context(cafile=certificates.ca)
    sock = socket.create_connection(("127.0.0.1", stand_in.port), timeout=5)
    return context.wrap_socket(sock, server_hostname="127.0.0.1")


def received(sock) -> bytes:
    data = b""
    while chunk := sock.recv(4096):
        data += chunk
    return data


# The stand-in enforces MemCachier's rules: passing through it proves the login is right.
@pytest.mark.parametrize(
    "first, answer",
    [
        (b"get key\r\n", UNAUTHENTICATED),
        (f"set {USERNAME} 0 0 {len(PASSWORD)}\r\n{'x' * len(PASSWORD)}\r\n".encode(), AUTH_FAILURE),
        (f"set {USERNAME} 0 0 {len(PASSWORD) - 1}\r\n{PASSWORD}\r\n".encode(), AUTH_FAILURE),
        (f"set other-user 0 0 {len(PASSWORD)}\r\n{PASSWORD}\r\n".encode(), AUTH_FAILURE),
        (f"set {USERNAME} 1 0 {len(PASSWORD)}\r\n{PASSWORD}\r\n".encode(), AUTH_FAILURE),
        (f"set {USERNAME} 0 0 {len(PASSWORD)}\r\n{PASSWORD}\r\nversion\r\n".encode(), b"STORED"),
    ],
)
def test_the_stand_in_takes_only_memcachiers_login_first(stand_in, certificates, first, answer):
    with tls_client(stand_in, certificates) as sock:
        sock.sendall(first)
        if answer == b"STORED":
            data = b""
            while b"\r\nVERSION " not in data and (chunk := sock.recv(4096)):
                data += chunk
            assert data.startswith(b"STORED\r\nVERSION "), "then memcached's own answers"
            return
        assert received(sock) == answer, "an error line, then the connection is closed"


def test_the_stand_in_closes_a_connection_that_does_not_log_in_quickly(stand_in, certificates):
    stand_in.login_within = 0.2
    with tls_client(stand_in, certificates) as sock:
        assert received(sock) == b"", "closed without a word"


def test_each_new_connection_logs_in(stand_in, certificates):
    """Pins the private parts of pymemcache 4 that LoginClient relies on: a command with no
    connection calls Client._connect, which leaves the connected socket in self.sock."""
    assert callable(Client.__dict__["_connect"])
    tls = ssl.create_default_context(cafile=certificates.ca)
    client = memcachier.LoginClient(
        ("127.0.0.1", stand_in.port), login=(USERNAME, PASSWORD), tls_context=tls, timeout=5
    )
    before = stand_in.logins(USERNAME)
    assert client.sock is None
    assert client.set("pinned", b"value", noreply=False)
    assert isinstance(client.sock, ssl.SSLSocket)
    assert stand_in.logins(USERNAME) == before + 1
    client.close()
    assert client.get("pinned") == b"value"
    assert stand_in.logins(USERNAME) == before + 2, "a new connection, a new login"
    client.close()


def test_a_refused_login_is_an_error_that_never_quotes_the_password(stand_in, certificates):
    stand_in.refusal = "echo"  # the server quotes the password back
    password = secret_password()
    tls = ssl.create_default_context(cafile=certificates.ca)
    client = memcachier.LoginClient(
        ("127.0.0.1", stand_in.port), login=(USERNAME, password), tls_context=tls
    )
    with pytest.raises(memcachier.MemcachedLoginError) as refused:
        client.get("key")
    assert "answered b'CLIENT_ERROR bad login: set test-user 0 0 38 " in str(refused.value)
    assert not shows(str(refused.value), password)
    assert client.sock is None, "the refused connection is closed"


def test_after_the_server_drops_the_connection_the_next_one_logs_in_again(
    stand_in, new_app_cache, server_settings, clock, caplog
):
    cache = new_app_cache(**server_settings("memcached"))
    cache.clock = clock
    assert cache.set("key", "kept")
    before = stand_in.logins(USERNAME)
    stand_in.kill()  # as MemCachier's idle timeout: the server is still there
    assert cache.get("key") == "kept", "the call connected again, and logged in"
    assert stand_in.logins(USERNAME) == before + 1
    assert cache.status()["breaker"] == "closed"
    opened = [r for r in caplog.records if "serving from the in-process" in r.getMessage()]
    assert not opened, "a closed connection is not an outage"


@pytest.mark.parametrize("refusal", ["error", "silent", "echo"])
def test_a_wrong_password_is_an_outage_that_never_shows_it(
    stand_in, tmp_path, server_settings, caplog, refusal
):
    stand_in.refusal = refusal
    password = secret_password()
    before = stand_in.logins(USERNAME)
    app = make_app(tmp_path, **{**server_settings("memcached"), "MEMCACHED_PASSWORD": password})
    client = app.test_client()
    caplog.set_level(logging.WARNING)

    for path in ("/sample/plain", "/sample", "/sample/square/7"):
        assert client.get(path).status_code == 200, path
    health = client.get("/health")
    assert health.status_code == 200
    cache = health.get_json()["cache"]
    assert (cache["active"], cache["breaker"]) == ("simple", "open")
    assert cache["last_error"]["type"] == "MemcachedLoginError"
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, errors
    assert f"refused the login of user '{USERNAME}'" in errors[0]
    said = "closed the connection without" if refusal == "silent" else "answered b'CLIENT_ERROR"
    assert said in errors[0]
    assert not shows(caplog.text, password) and not shows(health.get_data(as_text=True), password)
    assert stand_in.logins(USERNAME) == before, "nobody logged in"


def runner(app):
    """The app's CLI runner, its stderr kept apart from stdout: Click 8.2 always does, 8.1 (the
    floor) when asked."""
    try:
        return app.test_cli_runner(mix_stderr=False)
    except TypeError:  # Click 8.2 has no mix_stderr
        return app.test_cli_runner()


@pytest.mark.parametrize("command", [["status"], ["clear"], ["bench", "-n", "5"]])
def test_cache_commands_say_a_login_failed_in_one_line_without_the_password(
    stand_in, tmp_path, server_settings, command
):
    stand_in.refusal = "echo"  # the server quotes the password back
    password = secret_password()
    app = make_app(tmp_path, **{**server_settings("memcached"), "MEMCACHED_PASSWORD": password})
    result = runner(app).invoke(args=["cache", *command])
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1, result.stderr
    assert f"MemcachedLoginError: memcached at 127.0.0.1:{stand_in.port} refused" in result.stderr
    assert not shows(result.output, password)


def test_any_error_that_quotes_the_password_shows_it_as_stars(
    tmp_path, server_settings, caplog, monkeypatch
):
    """The password is one of the backend's secrets: errors.format_error hides it."""
    password = secret_password()

    def refuse(self):
        raise ConnectionRefusedError(f"no entry for password {password}")

    monkeypatch.setattr(memcachier.LoginClient, "_connect", refuse)
    app = make_app(tmp_path, **{**server_settings("memcached"), "MEMCACHED_PASSWORD": password})
    caplog.set_level(logging.WARNING)
    health = app.test_client().get("/health")
    assert "ConnectionRefusedError: no entry for password ***" in caplog.text
    shown = [caplog.text, health.get_data(as_text=True)]
    for command in (["status"], ["clear"], ["bench", "-n", "5"]):
        result = runner(app).invoke(args=["cache", *command])
        assert "ConnectionRefusedError: no entry for password ***" in result.stderr, command
        shown.append(result.output)
    assert not any(shows(text, password) for text in shown)


def test_cache_status_shows_who_logs_in_where_never_the_password(
    tmp_path, server_settings, stand_in
):
    app = make_app(tmp_path, **server_settings("memcached"))
    result = app.test_cli_runner().invoke(args=["cache", "status"])
    assert result.exit_code == 0, result.output
    assert f"serving:    memcached ({USERNAME}@127.0.0.1:{stand_in.port} (TLS))" in result.output
    assert PASSWORD not in result.output


@pytest.mark.parametrize("served", ["other_host", "stranger", "no CA: the system's store"])
def test_no_password_crosses_a_connection_whose_certificate_failed(
    stand_in, certificates, tmp_path, server_settings, monkeypatch, served
):
    settings = server_settings("memcached")
    if served.startswith("no CA"):  # the test CA is in no system store
        for name in ("SSL_CERT_FILE", "SSL_CERT_DIR"):
            monkeypatch.delenv(name, raising=False)
        settings["MEMCACHED_TLS_CA"] = ""
    else:
        stand_in.serve(getattr(certificates, served))
    mark = len(stand_in.connections)
    cache = cache_behind(make_app(tmp_path, **settings))

    assert cache.set("key", 1) and cache.get("key") == 1  # served from the fallback
    status = cache.status()
    assert status["breaker"] == "open", "the certificate was accepted"
    assert status["last_error"]["type"] == "SSLCertVerificationError"
    tried = stand_in.since(mark)
    assert tried, "the app did try the stand-in"
    assert not any(connection.handshake for connection in tried)
    assert not any(connection.saw(PASSWORD) for connection in tried)


def test_the_stand_in_would_see_a_password_sent_in_clear(stand_in):
    """The control for the test above: a login without TLS reaches the stand-in's records."""
    mark = len(stand_in.connections)
    client = memcachier.LoginClient(
        ("127.0.0.1", stand_in.port), login=(USERNAME, PASSWORD), timeout=5
    )
    with pytest.raises(OSError):  # TLS was expected: no answer the client can read
        client.get("key")
    assert any(connection.saw(PASSWORD) for connection in stand_in.since(mark))


def test_the_systems_store_is_used_and_honours_ssl_cert_file(
    stand_in, certificates, tmp_path, server_settings, monkeypatch
):
    monkeypatch.setenv("SSL_CERT_FILE", str(certificates.ca))  # before the app is built
    before = stand_in.logins(USERNAME)
    cache = cache_behind(
        make_app(tmp_path, **{**server_settings("memcached"), "MEMCACHED_TLS_CA": ""})
    )
    assert cache.set("key", "value") and cache.get("key") == "value"
    assert cache.status()["breaker"] == "closed"
    assert stand_in.logins(USERNAME) == before + 1


def refusal(tmp_path, **settings) -> str:
    """The one-line message start-up refuses ``settings`` with."""
    with pytest.raises(ConfigError) as error:
        make_app(tmp_path, CACHE_TYPE="memcached", MEMCACHED_SERVERS="127.0.0.1:1", **settings)
    message = str(error.value)
    assert message.isprintable(), message  # one line
    return message


@pytest.mark.parametrize(
    "settings, starts",
    [
        (
            {"MEMCACHED_USERNAME": "u", "MEMCACHED_PASSWORD": "p4ss"},
            "MEMCACHED_PASSWORD is set but MEMCACHED_TLS is off",
        ),
        (
            {"MEMCACHED_USERNAME": "u", "MEMCACHED_PASSWORD": "p4ss", "MEMCACHED_TLS": "off"},
            "MEMCACHED_PASSWORD is set but MEMCACHED_TLS is off",
        ),
        ({"MEMCACHED_USERNAME": "u", "MEMCACHED_TLS": "on"}, "MEMCACHED_USERNAME is set but"),
        ({"MEMCACHED_PASSWORD": "p4ss", "MEMCACHED_TLS": "on"}, "MEMCACHED_PASSWORD is set but"),
        (
            {"MEMCACHED_USERNAME": "u v", "MEMCACHED_PASSWORD": "p4ss", "MEMCACHED_TLS": "on"},
            "MEMCACHED_USERNAME is not valid",
        ),
        (
            {"MEMCACHED_USERNAME": "u", "MEMCACHED_PASSWORD": "p4ss\u2019", "MEMCACHED_TLS": "on"},
            "MEMCACHED_PASSWORD is not valid",
        ),
        ({"MEMCACHED_TLS": "yes"}, "MEMCACHED_TLS='yes' is not valid: use one of on, off"),
        ({"MEMCACHED_TLS_CA": "/etc/hostname"}, "MEMCACHED_TLS_CA is set but MEMCACHED_TLS is off"),
        ({"MEMCACHED_TLS": "on", "MEMCACHED_TLS_CA": "ca.pem"}, "MEMCACHED_TLS_CA='ca.pem' is not"),
        (
            {"MEMCACHED_TLS": "on", "MEMCACHED_TLS_CA": os.path.abspath(__file__)},
            "MEMCACHED_TLS_CA=",
        ),
    ],
)
def test_a_login_the_app_cannot_use_stops_start_up_in_one_line(tmp_path, settings, starts):
    message = refusal(tmp_path, **settings)
    assert message.startswith(starts), message
    assert "p4ss" not in message
    if starts.startswith("MEMCACHED_PASSWORD is set but MEMCACHED_TLS"):
        assert "MemCachier over the internet needs TLS" in message


# What a user may paste as a username or password: MemCachier's form (printable ASCII), or what
# comes with a paste (spaces, curly quotes, invisible characters, line breaks, non-ASCII), or more
# than a memcached key holds.
CLEAN = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1)
PASTED = st.text(alphabet=" \t\r\n\x00\x7f\u2019\u200b\xa0é", max_size=2)
CREDENTIAL = CLEAN | st.one_of(
    st.builds(
        lambda a, text, b: a + text + b,
        PASTED,
        st.text(st.characters(codec="ascii", exclude_characters="\x00"), max_size=30),
        PASTED,
    ),
    st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=20),
    st.integers(240, 260).map(lambda n: "u" * n),
)
# A password always holds this mark, so that "the message does not show it" means something:
# a short one ("e") would be in any message.
PASSWORDS = st.builds(lambda a, b: f"{a}Zq9{b}", CREDENTIAL, CREDENTIAL)


@PROPERTY
@given(username=CREDENTIAL, password=PASSWORDS)
@example(username="15F38e", password="52353F9F1C4017CC16FD348B982ED47D")  # the blog's example
@example(username="u" * 251, password="pZq9")
@example(username="u", password="pZq9\u200b")
@example(username="u", password=" with spaces Zq9 inside\t")
def test_any_login_either_works_or_stops_start_up_without_showing_the_password(
    tmp_path, stand_in, server_settings, username, password
):
    # Env reads each value stripped of surrounding whitespace; the stand-in expects it so.
    assume(username.strip() and password.strip())
    stand_in.accounts = {username.strip(): password.strip()}
    settings = {**server_settings("memcached"), "MEMCACHED_USERNAME": username}
    with warnings_logged() as logged:
        try:
            app = make_app(tmp_path, **{**settings, "MEMCACHED_PASSWORD": password})
        except ConfigError as error:
            message = str(error)
            assert message.isprintable(), message
            assert message.startswith(("MEMCACHED_USERNAME ", "MEMCACHED_PASSWORD ")), message
            assert password.strip() not in message
            note("refused")
            return
        note("accepted")
        before = stand_in.logins(username.strip())
        cache = cache_behind(app)
        assert cache.set("key", [1, "x"]) and cache.get("key") == [1, "x"]
    assert not [r.getMessage() for r in logged]
    assert stand_in.logins(username.strip()) == before + 1
    assert json.dumps(cache.status())  # nothing in it that is not JSON (it is /health's)
