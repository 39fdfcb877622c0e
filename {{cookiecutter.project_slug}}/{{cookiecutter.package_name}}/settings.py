"""Settings read once from the environment and checked at start-up.

Every variable is documented in .env.example. A value the app cannot use raises ConfigError, whose
one-line message names the variable and what it accepts, so a typo in .env stops the app at start
instead of failing later inside a library.
"""

import os
import secrets
from collections.abc import Mapping
from urllib.parse import urlsplit

from .cache import BACKENDS, redact_url

REDIS_SCHEMES = ("redis", "rediss")


class ConfigError(ValueError):
    """A setting has a value the app cannot use."""


def from_env(
    env: Mapping[str, object], *, instance_path: str, default_key_prefix: str, debug: bool = False
) -> dict[str, object]:
    """Return the app's settings as Flask config, parsed and validated from ``env``."""
    testing = _bool(env, "TESTING")
    cache_type = _choice(env, "CACHE_TYPE", "simple", tuple(BACKENDS))
    config: dict[str, object] = {
        "TESTING": testing,
        "SECRET_KEY": _secret_key(env, allow_missing=debug or testing),
        "CACHE_SIGNING_KEY": _get(env, "CACHE_SIGNING_KEY"),
        "CACHE_TYPE": cache_type,
        "CACHE_DEFAULT_TIMEOUT": _number(env, "CACHE_DEFAULT_TIMEOUT", 300, int, minimum=0),
        "CACHE_KEY_PREFIX": _get(env, "CACHE_KEY_PREFIX") or default_key_prefix,
        "CACHE_DIR": _absolute_path(env, "CACHE_DIR", os.path.join(instance_path, "cache")),
        "CACHE_THRESHOLD": _number(env, "CACHE_THRESHOLD", 500, int, minimum=1),
        "CACHE_SOCKET_TIMEOUT": _number(env, "CACHE_SOCKET_TIMEOUT", 0.5, float, minimum=0.001),
        "CACHE_RETRY_AFTER": _number(env, "CACHE_RETRY_AFTER", 30.0, float, minimum=0),
        "REDIS_URL": _redis_url(env) if cache_type == "redis" else _get(env, "REDIS_URL"),
        "MEMCACHED_SERVERS": _memcached_servers(env) if cache_type == "memcached" else [],
        **(_upstash(env) if cache_type == "upstash" else {}),
    }
    return config


def _get(env: Mapping[str, object], name: str) -> str:
    """The stripped value of ``name``; unset and empty (``NAME=`` in .env) are the same."""
    value = env.get(name)
    return "" if value is None else str(value).strip()


def _bool(env: Mapping[str, object], name: str) -> bool:
    value = _get(env, name).lower()
    if value in ("", "0", "false", "no", "off"):
        return False
    if value in ("1", "true", "yes", "on"):
        return True
    raise ConfigError(f"{name}={value!r} is not valid: use 1/true/yes/on or 0/false/no/off")


def _choice(env: Mapping[str, object], name: str, default: str, allowed: tuple[str, ...]) -> str:
    value = _get(env, name).lower() or default
    if value not in allowed:
        raise ConfigError(f"{name}={value!r} is not valid: use one of {', '.join(allowed)}")
    return value


def _number(
    env: Mapping[str, object], name: str, default: float, kind: type, *, minimum: float
) -> float:
    raw = _get(env, name)
    if not raw:
        return default
    what = "a whole number" if kind is int else "a number"
    try:
        value = kind(raw)
    except ValueError:
        value = None
    if value is None or value != value or value < minimum:  # value != value: NaN
        raise ConfigError(f"{name}={raw!r} is not valid: use {what} >= {minimum}")
    return value


def _secret_key(env: Mapping[str, object], *, allow_missing: bool) -> str:
    value = _get(env, "SECRET_KEY")
    if value:
        return value
    if allow_missing:  # debug and tests: a throwaway key, sessions end at each restart
        return secrets.token_hex(32)
    raise ConfigError(
        "SECRET_KEY is not set: put a random value in .env, e.g. the output of "
        "python -c 'import secrets; print(secrets.token_hex(32))'"
    )


def _absolute_path(env: Mapping[str, object], name: str, default: str) -> str:
    value = _get(env, name)
    if not value:
        return default
    if not os.path.isabs(value):
        # A web app's working directory is not the project folder on PythonAnywhere.
        raise ConfigError(f"{name}={value!r} is not valid: use an absolute path")
    return value


def _redis_url(env: Mapping[str, object]) -> str:
    value = _get(env, "REDIS_URL")
    accepted = (
        "use redis://[:password@]host:port/db, or rediss://... for TLS (Upstash, Redis Cloud)"
    )
    if not value:
        raise ConfigError(f"REDIS_URL is not set but CACHE_TYPE=redis: {accepted}")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a bad port
        ok = parts.scheme in REDIS_SCHEMES and bool(parts.hostname)
        db = parts.path.strip("/")
        ok = ok and (not db or db.isdigit())
    except ValueError:
        ok = False
    if not ok:
        raise ConfigError(f"REDIS_URL={redact_url(value)!r} is not valid: {accepted}")
    return value


def _upstash(env: Mapping[str, object]) -> dict[str, str]:
    """Upstash's own names for its REST URL and token (the database page, REST API section)."""
    url, token = _get(env, "UPSTASH_REDIS_REST_URL"), _get(env, "UPSTASH_REDIS_REST_TOKEN")
    accepted = "use the database's REST URL, https://<name>.upstash.io"
    if not url:
        raise ConfigError(f"UPSTASH_REDIS_REST_URL is not set but CACHE_TYPE=upstash: {accepted}")
    try:
        parts = urlsplit(url)
        ok = parts.scheme in ("https", "http") and bool(parts.hostname) and not parts.password
    except ValueError:
        ok = False
    if not ok:
        raise ConfigError(f"UPSTASH_REDIS_REST_URL={redact_url(url)!r} is not valid: {accepted}")
    if not token:
        raise ConfigError(
            "UPSTASH_REDIS_REST_TOKEN is not set but CACHE_TYPE=upstash: copy the token from the "
            "database's REST API section on console.upstash.com"
        )
    return {"UPSTASH_REDIS_REST_URL": url, "UPSTASH_REDIS_REST_TOKEN": token}


def _memcached_servers(env: Mapping[str, object]) -> list[tuple[str, int]]:
    raw = _get(env, "MEMCACHED_SERVERS")
    accepted = "use comma-separated host:port pairs, e.g. 127.0.0.1:11211"
    if not raw:
        raise ConfigError(f"MEMCACHED_SERVERS is not set but CACHE_TYPE=memcached: {accepted}")
    servers = []
    for item in raw.split(","):
        host, _, port = item.strip().rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(f"MEMCACHED_SERVERS={raw!r} is not valid: {accepted}")
        servers.append((host.strip("[]"), int(port)))
    return servers
