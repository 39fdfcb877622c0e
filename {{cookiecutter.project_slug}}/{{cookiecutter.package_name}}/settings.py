"""The app's settings, read once from the environment (.env) when the app starts.

Add your own here. ``Env`` reads a value and checks it: a bad one stops the app at start with one
line naming the variable, instead of failing later. The cache reads its own settings (CACHE_*,
REDIS_URL, ...) the same way; .env.example documents every one.
"""

import secrets
from collections.abc import Mapping

from . import cache
from .cache import ConfigError, Env


def from_env(environ: Mapping[str, object], *, debug: bool = False) -> dict[str, object]:
    """Flask config from ``environ``, parsed and checked."""
    env = Env(environ)
    testing = env.boolean("TESTING")
    return {
        "TESTING": testing,
        "SECRET_KEY": secret_key(env, allow_missing=debug or testing),
        **cache.from_env(env, debug=debug),
    }


def secret_key(env: Env, *, allow_missing: bool) -> str:
    """SECRET_KEY signs session cookies; the app does not start without one, except in debug mode
    and tests, where a throwaway key is made (sessions then end at each restart)."""
    value = env.text("SECRET_KEY")
    if value:
        return value
    if allow_missing:
        return secrets.token_hex(32)
    raise ConfigError(
        "SECRET_KEY is not set: put a random value in .env, e.g. the output of "
        "python -c 'import secrets; print(secrets.token_hex(32))'"
    )
