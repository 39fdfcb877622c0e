"""Hostile values for the settings, and the rule start-up must keep for each one: refuse it with
one line that names the variable (and shows no secret), or build an app whose cache works."""

import logging
import uuid
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

from hypothesis import HealthCheck, currently_in_test_context, event, settings
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
# For values assembled from many parts, most of them refused: enough accepted ones too.
MORE = settings(PROPERTY, max_examples=80)

# Zeros of digit scripts other than ASCII: int() reads their digits, and "²".isdigit() is True.
OTHER_ZEROS = (0x660, 0x966, 0xFF10, 0x1D7CE)
# What a paste or a typo puts around a value: spaces, an invisible space, a NUL, a stray
# character of the URL or list syntax, a superscript.
JUNK = st.text(alphabet=" \t\n%[]@:,é²\x00\u200b\xa0", max_size=2)

NUMBERS = st.one_of(
    st.text(max_size=8),
    st.floats().map(str),  # inf, nan, 1e+300
    st.floats(min_value=0, max_value=10).map(str),
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
def assembled(draw: st.DrawFn, parts: dict[str, tuple[str, st.SearchStrategy[str]]]) -> str:
    """The parts joined in order, each one clean but for one hostile part (or, now and then, all
    of them): so that accepted values, not only refused ones, come up often."""
    hostile = draw(st.sampled_from([None, "all", *parts]))
    return "".join(
        draw(strategy) if hostile in (name, "all") else clean
        for name, (clean, strategy) in parts.items()
    )


def around(text: str) -> st.SearchStrategy[str]:
    return st.builds(lambda a, b: a + text + b, JUNK, JUNK)


QUERY_NAMES = st.sampled_from(
    ["db", "socket_timeout", "ssl_cert_reqs", "ssl_check_hostname", "protocol", "timeout",
     "max_connections", "health_check_interval", "client_name", "ssl_ca_certs", "x"]
) | st.text(max_size=4)  # fmt: skip
QUERIES = st.lists(
    st.tuples(QUERY_NAMES, NUMBERS | st.text(max_size=4)), min_size=1, max_size=2
).map(lambda options: "&".join(f"{name}={value}" for name, value in options))


def after(prefix: str, values: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return values.map(lambda value: prefix + value)


def schemes(*names: str) -> st.SearchStrategy[str]:
    return st.sampled_from(names).map(lambda name: f"{name}://")


def redis_urls(address: str) -> st.SearchStrategy[str]:
    """URLs of the Redis server at ``address`` with hostile parts (no credentials: the test
    server has no password, so a URL with one cannot work there). The query of ``address``
    (a TLS server's ssl_ca_certs) is kept."""
    parts = urlsplit(address)
    host, port = str(parts.hostname), parts.port or 6379
    paths = st.one_of(
        st.sampled_from(["", "/", "/15", "/16", "/99999", "/-1", "/abc", "/٣", "/0/1"]),
        st.integers(-3, 20).map(lambda n: f"/{n}"),
        st.text(max_size=4),
    )
    query = f"?{parts.query}" if parts.query else ""
    hostile_schemes = schemes(parts.scheme.upper(), "http", f"{parts.scheme}:", "rediss:/")
    return assembled(
        {
            "scheme": (f"{parts.scheme}://", hostile_schemes),
            "userinfo": ("", st.sampled_from(["@", ":@", "u@"])),
            "host": (host, around(host)),
            "port": (f":{port}", after(":", ports(port))),
            "path": ("/0", paths),
            "query": (query, after(f"{query}&" if query else "?", QUERIES)),
        }
    )


def with_tail(address: str, path: str, query: str = "") -> str:
    """The URL ``address`` with another path, and ``query`` added to its own."""
    parts = urlsplit(address)
    return urlunsplit(parts._replace(path=path, query="&".join(filter(None, [parts.query, query]))))


def memcached_lists(address: str) -> st.SearchStrategy[str]:
    """Lists of the memcached server at ``address``, written with hostile parts."""
    host, _, port = address.split(",")[0].rpartition(":")
    item = assembled(
        {"host": (host, around(host)), "port": (f":{port}", after(":", ports(int(port))))}
    )
    separators = st.sampled_from([",", ", ", ",,", ";"])
    return st.builds(str.join, separators, st.lists(item, min_size=1, max_size=3))


def upstash_urls(address: str) -> st.SearchStrategy[str]:
    """REST URLs of the Upstash stand-in at ``address``, built from hostile parts."""
    parts = urlsplit(address)
    host, port = str(parts.hostname), parts.port or 80
    tails = st.sampled_from(["/", "//", "/pipeline", "?x=1", "#top"]) | st.text(max_size=3)
    return assembled(
        {
            "scheme": (f"{parts.scheme}://", schemes(parts.scheme.upper(), "redis", "rediss")),
            "userinfo": ("", st.sampled_from(["@", "default:pw@"])),
            "host": (host, around(host)),
            "port": (f":{port}", after(":", ports(port))),
            "tail": ("", tails),
        }
    )


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


def note(outcome: str) -> None:
    if currently_in_test_context():  # --hypothesis-show-statistics counts each outcome
        event(outcome)


def start(tmp_path, variable: str, value: str, *, secrets: tuple[str, ...] = (), **settings):
    """The rule: start-up refuses ``variable=value`` cleanly (None), or the app it builds stores
    and reads back a value through its cache with nothing logged (the app)."""
    with warnings_logged() as records:
        try:
            app = make_app(tmp_path, **{**settings, variable: value})
        except ConfigError as error:
            check_refusal(error, variable, secrets)
            note("refused")
            return None
        note("accepted")
        with app.app_context():
            key, stored = f"view//hostile/{uuid.uuid4().hex}", {"n": [1, "x"]}
            assert cache.set(key, stored)
            if app.config["CACHE_TYPE"] != "null":  # which stores nothing, by design
                assert cache.get(key) == stored
            cache.delete(key)
            assert status()["breaker"] == "closed"
    # A server shared across runs may hold this prefix's memcached generation, signed by an
    # earlier version or key: refused once (a one-time clear), which is not a failing setting.
    failures = [r.getMessage() for r in records]
    failures = [line for line in failures if "failed its signature check" not in line]
    assert not failures, failures
    return app
