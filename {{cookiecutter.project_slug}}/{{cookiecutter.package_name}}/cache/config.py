"""Reading settings from the environment: each value parsed and checked at start-up.

A value the app cannot use raises ConfigError, whose one-line message names the variable and what
it accepts, so a typo in .env stops the app at start instead of failing later inside a library.
The rule: a value accepted here works, and every other one stops start-up (and deploy.py). An
unset variable and an empty one (``NAME=`` in .env) are the same: the default.
"""

import ipaddress
import math
import os
import re
from collections.abc import Mapping
from urllib.parse import SplitResult, quote, unquote, urlsplit

import click


class ConfigError(click.ClickException, ValueError):
    """A setting has a value the app cannot use. A ClickException: `flask run` (and every `flask`
    command, which builds the app first) prints "Error: <message>" and exits 1, no traceback."""


class NotSet(ConfigError):
    """A setting the chosen backend needs is not set: in development the cache falls back to
    simple (cache.from_env); anywhere else it stops the app like any ConfigError."""


# Plain ASCII numbers only: int() and float() also read "١٢", "1_000" and "inf".
_WHOLE = re.compile(r"[+-]?[0-9]+\Z")
_DECIMAL = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?\Z")


class Env:
    """Typed, checked reads of a mapping of settings (os.environ, or .env's values)."""

    def __init__(self, values: Mapping[str, object]):
        self.values = values

    def text(self, name: str) -> str:
        value = self.values.get(name)
        text = "" if value is None else str(value).strip()
        try:
            text.encode()
        except UnicodeEncodeError:  # os.environ keeps undecodable bytes as lone surrogates
            raise ConfigError(f"{name} is not valid: it is not UTF-8 text; type it again") from None
        return text

    def required(self, name: str, needed_by: str, accepted: str) -> str:
        value = self.text(name)
        if not value:
            raise NotSet(f"{name} is not set but {needed_by}: {accepted}")
        return value

    def boolean(self, name: str) -> bool:
        value = self.text(name).lower()
        if value in ("", "0", "false", "no", "off"):
            return False
        if value in ("1", "true", "yes", "on"):
            return True
        raise ConfigError(f"{name}={value!r} is not valid: use 1/true/yes/on or 0/false/no/off")

    def choice(self, name: str, default: str, allowed: tuple[str, ...]) -> str:
        value = self.text(name).lower() or default
        if value not in allowed:
            raise ConfigError(f"{name}={value!r} is not valid: use one of {', '.join(allowed)}")
        return value

    def integer(self, name: str, default: int, *, minimum: int, maximum: float = math.inf) -> int:
        raw = self.text(name)
        if not raw:
            return default
        try:
            value = int(raw) if _WHOLE.match(raw) else None
        except ValueError:  # more digits than int() reads
            value = None
        if value is None or not minimum <= value <= maximum:
            raise ConfigError(
                f"{name}={raw!r} is not valid: use a whole number {_range(minimum, maximum)}"
            )
        return value

    def number(
        self, name: str, default: float, *, minimum: float, maximum: float = math.inf
    ) -> float:
        raw = self.text(name)
        if not raw:
            return default
        value = float(raw) if _DECIMAL.match(raw) else math.nan  # "1e999" reads as inf
        if not (math.isfinite(value) and minimum <= value <= maximum):  # NaN compares false
            raise ConfigError(
                f"{name}={raw!r} is not valid: use a number {_range(minimum, maximum)}"
            )
        return value

    def directory(self, name: str) -> str | None:
        """An absolute path to a folder the app can write to, made if missing; None: unset."""
        value = self.text(name)
        if not value:
            return None
        if not os.path.isabs(value):
            # A web app's working directory is not the project folder on PythonAnywhere.
            raise ConfigError(f"{name}={value!r} is not valid: use an absolute path")
        if os.path.lexists(value) and not os.path.isdir(value):
            raise ConfigError(f"{name}={value!r} is not valid: it is a file, not a folder")
        try:
            os.makedirs(value, exist_ok=True)
            usable = os.path.isdir(value) and os.access(value, os.W_OK | os.X_OK)
        except (OSError, ValueError) as error:  # ValueError: a NUL in the path
            problem = getattr(error, "strerror", None) or "not a path"
            raise ConfigError(
                f"{name}={value!r} is not valid: cannot create it ({problem})"
            ) from None
        if not usable:
            raise ConfigError(f"{name}={value!r} is not valid: use a folder this app can write to")
        return value

    def url(self, name: str, needed_by: str, *, schemes: tuple[str, ...], accepted: str) -> str:
        """A URL with one of ``schemes``, a host and maybe a port; shown without its password."""
        value = self.required(name, needed_by, accepted)
        try:
            parts = split_url(value)
            ok = parts.scheme in schemes
        except ValueError:
            ok = False
        problem = unescaped_userinfo(value) or ("" if ok else accepted)
        if problem:
            raise ConfigError(f"{name}={redact_url(value)!r} is not valid: {problem}")
        return value


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _range(minimum: float, maximum: float) -> str:
    return f">= {minimum}" if maximum == math.inf else f"from {minimum} to {maximum}"


def split_url(url: str) -> SplitResult:
    """``url`` split as urllib (and so redis-py and requests) reads it; ValueError unless its host
    is a DNS name or an IP address and its port, if any, ASCII digits from 1 to 65535, and it has
    no control character: urllib drops a tab or line break silently, requests refuses it."""
    if _CONTROL.search(url):
        raise ValueError(url)
    parts = urlsplit(url)
    host, port = split_address(parts.netloc.rpartition("@")[2])
    if port == "":  # "host:" is read as no port
        port = None
    if not is_host(unquote(host)) or (port is not None and not is_port(port)):
        raise ValueError(url)
    return parts


def split_address(address: str) -> tuple[str, str | None]:
    """host[:port], an IPv6 host in brackets: (host, port text or None)."""
    if address.startswith("["):
        host, bracket, tail = address[1:].partition("]")
        if not bracket or (tail and not tail.startswith(":")):
            raise ValueError(address)
        return host, tail[1:] if tail else None
    host, colon, port = address.rpartition(":")
    if not colon:
        return address, None
    if ":" in host:  # an IPv6 address with a port needs its brackets
        raise ValueError(address)
    return host, port


def is_port(text: str) -> bool:
    return text.isascii() and text.isdigit() and 0 < int(text) < 65536  # "²".isdigit() too


_LABEL = re.compile(r"(?!-)[A-Za-z0-9_-]{1,63}(?<!-)\Z")


def is_host(host: str) -> bool:
    """An IP address, or a DNS name of ASCII letters, digits, '-' and '_' (what resolvers take)."""
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    labels = host.removesuffix(".").split(".")
    # A name ending in digits only is a mistyped IP address, not a name.
    return len(host) <= 253 and all(map(_LABEL.match, labels)) and not labels[-1].isdigit()


# Query options that carry a secret (redis-py reads `password` from the query too).
_SECRET_OPTION = re.compile(r"pass|pwd|secret|token|auth|key|cred", re.IGNORECASE)


# What ends a URL's user and password early, as urllib (so redis-py and requests) reads them:
# "redis://default:pa#ss@host" is host "default", port...
URL_DELIMITERS = "/?#"


def unescaped_userinfo(url: str) -> str:
    """What is wrong when the text before ``url``'s last @ (its user and password) holds a
    character that ends them early ("" when nothing is): a message for a URL whose masked form
    looks right."""
    userinfo = url.partition("://")[2].rpartition("@")[0]
    found = [char for char in URL_DELIMITERS if char in userinfo]
    if not found:
        return ""
    codes = ", ".join(f"{char} as {quote(char, safe='')}" for char in found)
    return (
        f"the part before its last @ (user:password) holds {' '.join(found)}, which a URL must "
        f"percent-encode ({codes}; an @ after the host as %40)"
    )


def redact_url(url: str) -> str:
    """The URL as it may appear in a message or log: its userinfo's password and every secret
    query option replaced by ***. When the URL is too mangled to tell, more is hidden."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    head, question, query = rest.partition("?")
    if "@" in query:
        # The '?' may be in a password, or the '@' in a query value: hide all but the scheme.
        return f"{scheme}{sep}***"
    userinfo, at, hostpart = head.rpartition("@")
    if at:
        user, colon, _ = userinfo.partition(":")
        # A lone userinfo may be a password mistyped without its colon.
        head = f"{user}:***@{hostpart}" if colon else f"***@{hostpart}"
    if question:
        options: list[str] = []
        for option in query.split("&"):
            key, equals, _ = option.partition("=")
            if not equals and option:  # no name: it may be a value cut off by a '&'
                options.append("***")
            elif _SECRET_OPTION.search(unquote(key.replace("+", " "))):
                options.append(f"{key}=***")  # and the rest, where a raw '&' may have cut it
                break
            else:
                options.append(option)
        query = "&".join(options)
    return f"{scheme}{sep}{head}{question}{query}"
