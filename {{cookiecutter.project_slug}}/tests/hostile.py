"""Hostile values for the settings, and the rule start-up must keep for each one: refuse it with
one line that names the variable (and shows no secret), or build an app whose cache works."""

import logging
import uuid
from contextlib import contextmanager
from urllib.parse import urlsplit

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from {{ cookiecutter.package_name }}.cache import ConfigError, cache, status

from .conftest import make_app

# Few examples, the same ones on every run: CI stays fast and stable.
PROPERTY = settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    database=None,  # derandomized: no failures to replay
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Zeros of digit scripts other than ASCII: int() reads their digits, and "²".isdigit() is True.
OTHER_ZEROS = (0x660, 0x966, 0xFF10, 0x1D7CE)
# What a paste or a typo puts around a value: spaces, an invisible space, a NUL, a stray
# character of the URL or list syntax, a superscript.
JUNK = st.text(alphabet=" \t\n%[]@:,é²\x00\u200b\xa0", max_size=2)

NUMBERS = st.one_of(
    st.text(max_size=8),
    st.floats().map(str),  # inf, nan, 1e+300
    st.integers().map(str),
    st.integers(min_value=-10, max_value=10**12).map(str),
    st.text(
        alphabet=st.sampled_from("0123456789.e-+_ ²") | st.characters(categories=["Nd", "No"]),
        min_size=1,
        max_size=8,
    ),
)


def other_digits(number: str, zero: int) -> str:
    return "".join(chr(zero + int(digit)) for digit in number)


def ports(port: int) -> st.SearchStrategy[str]:
    """The port as typed, with leading zeros, in another script's digits, or with junk around."""
    text = str(port)
    return st.one_of(
        st.just(text),
        st.just(f"0{text}"),
        st.sampled_from(OTHER_ZEROS).map(lambda zero: other_digits(text, zero)),
        st.builds(lambda a, b: a + text + b, JUNK, JUNK),
    )


@st.composite
def redis_urls(draw: st.DrawFn, address: str) -> str:
    """URLs of the Redis server at ``address`` built from hostile parts (no credentials: the
    test server has no password, so a URL with one cannot work there)."""
    parts = urlsplit(address)
    scheme = draw(st.sampled_from(["redis", "REDIS", "http", "redis:"]))
    userinfo = draw(st.sampled_from(["", "@", ":@"]))
    host = draw(JUNK.filter(lambda t: "\n" not in t)) + str(parts.hostname) + draw(JUNK)
    path = draw(
        st.one_of(
            st.sampled_from(["", "/", "/0", "/15", "/16", "/99999", "/-1", "/abc", "/٣"]),
            st.integers(min_value=-3, max_value=20).map(lambda n: f"/{n}"),
            st.text(max_size=4).map(lambda t: "/" + t),
        )
    )
    names = st.sampled_from(
        ["db", "socket_timeout", "ssl_cert_reqs", "ssl_check_hostname", "protocol", "timeout",
         "max_connections", "health_check_interval", "client_name", "retry_on_timeout", "x"]
    )  # fmt: skip
    options = draw(
        st.lists(st.tuples(names | st.text(max_size=4), NUMBERS | st.text(max_size=4)), max_size=2)
    )
    query = "?" + "&".join(f"{name}={value}" for name, value in options) if options else ""
    return f"{scheme}://{userinfo}{host}:{draw(ports(parts.port or 6379))}{path}{query}"


@st.composite
def memcached_lists(draw: st.DrawFn, address: str) -> str:
    """Lists of the memcached server at ``address``, written with hostile parts."""
    host, _, port = address.split(",")[0].rpartition(":")
    items = draw(
        st.lists(
            st.builds(lambda a, b, p: f"{a}{host}{b}:{p}", JUNK, JUNK, ports(int(port))),
            min_size=1,
            max_size=3,
        )
    )
    return draw(st.sampled_from([",", ", ", ",,", ";"])).join(items)


@st.composite
def upstash_urls(draw: st.DrawFn, address: str) -> str:
    """REST URLs of the Upstash stand-in at ``address``, built from hostile parts."""
    parts = urlsplit(address)
    scheme = draw(st.sampled_from([parts.scheme, parts.scheme.upper(), "redis", "rediss"]))
    userinfo = draw(st.sampled_from(["", "@", "default:pw@"]))
    host = draw(JUNK) + str(parts.hostname) + draw(JUNK)
    tail = draw(st.sampled_from(["", "/", "//", "/pipeline", "?x=1", "#top"]) | st.text(max_size=3))
    return f"{scheme}://{userinfo}{host}:{draw(ports(parts.port or 80))}{tail}"


def check_refusal(error: ConfigError, variable: str, secrets: tuple[str, ...] = ()) -> None:
    """One printable line that starts with the variable's name and shows none of ``secrets``."""
    message = str(error)
    assert message.isprintable(), message  # so one line: no \n, \r, \u2028...
    assert message.startswith(variable), message
    for secret in secrets:
        assert secret not in message, message


@contextmanager
def warnings_logged():
    """The app's log records at WARNING and above (the breaker's, the backends', init_app's)."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("{{ cookiecutter.package_name }}")
    logger.addHandler(handler)
    try:
        yield records
    finally:
        logger.removeHandler(handler)


def start(tmp_path, variable: str, value: str, *, secrets: tuple[str, ...] = (), **settings):
    """The rule: start-up refuses ``variable=value`` cleanly (None), or the app it builds stores
    and reads back a value through its cache with nothing logged (the app)."""
    with warnings_logged() as records:
        try:
            app = make_app(tmp_path, **{**settings, variable: value})
        except ConfigError as error:
            check_refusal(error, variable, secrets)
            return None
        with app.app_context():
            key, stored = f"view//hostile/{uuid.uuid4().hex}", {"n": [1, "x"]}
            assert cache.set(key, stored)
            if app.config["CACHE_TYPE"] != "null":  # which stores nothing, by design
                assert cache.get(key) == stored
            cache.delete(key)
            assert status()["breaker"] == "closed"
    assert not records, [record.getMessage() for record in records]
    return app
