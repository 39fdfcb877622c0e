"""The app's settings, read once from the environment (.env) when the app starts.

Add your own here. ``Env`` reads a value and checks it: a bad one stops the app at start with one
line naming the variable, instead of failing later. The cache reads its own settings (CACHE_*,
REDIS_URL, ...) the same way, in cache.init_app; .env.example documents every one.
"""

import secrets
from collections.abc import Mapping
from pathlib import Path

from .cache import ConfigError, Env

# Where pythonanywhere_wsgi.py loads the settings from (and `flask`, run in the project).
ENV_FILE = Path(__file__).resolve().parent.parent / ".env"


def from_env(environ: Mapping[str, object], *, debug: bool = False) -> dict[str, object]:
    """Flask config from ``environ``, parsed and checked."""
    env = Env(environ)
    testing = env.boolean("TESTING")
    return {
        "TESTING": testing,
        "SECRET_KEY": secret_key(env, allow_missing=debug or testing),
    }


def secret_key(env: Env, *, allow_missing: bool) -> str:
    """SECRET_KEY signs session cookies; the app does not start without one, except in debug mode
    and tests, where a throwaway key is made (sessions then end at each restart)."""
    value = env.text("SECRET_KEY")
    if value:
        return value
    if allow_missing:
        return secrets.token_hex(32)
    make_one = "python3 -c 'import secrets; print(secrets.token_hex(32))'"
    if not ENV_FILE.exists():
        raise ConfigError(
            f"SECRET_KEY is not set, and there is no .env in {ENV_FILE.parent}: make one with "
            f"`cp .env.example .env` there, and set SECRET_KEY to the output of {make_one}"
        )
    raise ConfigError(f"SECRET_KEY is not set: put in .env the output of {make_one}")


def missing_env_file() -> str:
    """What to say when the project has no .env: every setting then has its default (the simple
    cache), which is easy to take for the settings one meant."""
    if ENV_FILE.exists():
        return ""
    return (
        f"There is no .env in {ENV_FILE.parent}: every setting has its default "
        "(CACHE_TYPE=simple). Make one with `cp .env.example .env` there, and restart."
    )
