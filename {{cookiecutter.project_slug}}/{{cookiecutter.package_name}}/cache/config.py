"""Reading settings from the environment: each value parsed and checked at start-up.

A value the app cannot use raises ConfigError, whose one-line message names the variable and what
it accepts, so a typo in .env stops the app at start instead of failing later inside a library.
An unset variable and an empty one (``NAME=`` in .env) are the same: the default.
"""

import math
import os
from collections.abc import Mapping
from urllib.parse import urlsplit


class ConfigError(ValueError):
    """A setting has a value the app cannot use."""


class Env:
    """Typed, checked reads of a mapping of settings (os.environ, or .env's values)."""

    def __init__(self, values: Mapping[str, object]):
        self.values = values

    def text(self, name: str) -> str:
        value = self.values.get(name)
        return "" if value is None else str(value).strip()

    def required(self, name: str, needed_by: str, accepted: str) -> str:
        value = self.text(name)
        if not value:
            raise ConfigError(f"{name} is not set but {needed_by}: {accepted}")
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

    def integer(self, name: str, default: int, *, minimum: int) -> int:
        return int(self._number(name, default, minimum, int, "a whole number"))

    def number(self, name: str, default: float, *, minimum: float) -> float:
        return self._number(name, default, minimum, float, "a number")

    def _number(
        self, name: str, default: float, minimum: float, kind: type[float], what: str
    ) -> float:
        raw = self.text(name)
        if not raw:
            return default
        try:
            value = kind(raw)
        except ValueError:
            value = math.nan
        if not value >= minimum:  # NaN compares false
            raise ConfigError(f"{name}={raw!r} is not valid: use {what} >= {minimum}")
        return value

    def absolute_path(self, name: str) -> str | None:
        value = self.text(name)
        if value and not os.path.isabs(value):
            # A web app's working directory is not the project folder on PythonAnywhere.
            raise ConfigError(f"{name}={value!r} is not valid: use an absolute path")
        return value or None

    def url(self, name: str, needed_by: str, *, schemes: tuple[str, ...], accepted: str) -> str:
        """A URL with one of ``schemes`` and a host; a bad one is shown without its password."""
        value = self.required(name, needed_by, accepted)
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 - raises ValueError on a bad port
            ok = parts.scheme in schemes and bool(parts.hostname)
        except ValueError:
            ok = False
        if not ok:
            raise ConfigError(f"{name}={redact_url(value)!r} is not valid: {accepted}")
        return value


def redact_url(url: str) -> str:
    """The URL as it may appear in a message or log: any password replaced by ***."""
    scheme, sep, rest = url.partition("://")
    userinfo, at, hostpart = rest.rpartition("@")
    if not at:
        return url
    user, colon, _ = userinfo.partition(":")
    hidden = f"{user}:***" if colon else "***"  # a lone userinfo is a password to redis-py
    return f"{scheme}{sep}{hidden}@{hostpart}"
