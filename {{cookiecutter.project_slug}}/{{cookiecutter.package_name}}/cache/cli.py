"""`flask cache status|clear|bench`: for a console, to see, clear and measure the backend itself.

The commands talk to the backend past the breaker, so its errors show (exit status 1, one line,
no password) instead of being served around. A backend that cannot be used at all (its client
library missing, or its server not set yet in development: init_app serves from the simple cache
instead) fails them the same way: the simple cache is not what .env asks for.
"""

import statistics
import sys
import time
import uuid
from typing import Any, NoReturn

import click
from flask import current_app
from flask.cli import AppGroup
from flask_caching.backends.base import BaseCache

from .backends import Backend
from .backends.simple import Null
from .breaker import Breaker
from .errors import advised, format_error
from .extension import cache
from .near import Near

BENCH_MAX = 10_000  # round trips: a minute at most over a slow network, never an endless run


def _printable(message: str) -> str:
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in message)


class _OneLineErrors(click.Command):
    """click repeats an unknown option or an extra argument as typed, control characters and
    line breaks included: they are escaped, so a usage error stays on its one line."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as error:
            raise click.UsageError(_printable(error.format_message()), error.ctx) from None


class _CacheGroup(AppGroup):
    command_class = _OneLineErrors

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        try:
            return super().resolve_command(ctx, args)
        except click.UsageError as error:  # No such command '...'
            raise click.UsageError(_printable(error.format_message()), error.ctx) from None


cli = _CacheGroup("cache", help="See, clear and measure the cache backend.")


def _backend() -> BaseCache:
    """The backend itself: past the breaker, and past the near cache (a console's own memory)."""
    serving: BaseCache = cache.cache
    return serving.server if isinstance(serving, Breaker) else serving


def _near() -> str:
    """Whether the web app's workers keep hits in memory, and why (redis: asks the server now)."""
    serving: Any = cache.cache
    if isinstance(serving, Breaker) and isinstance(serving.guarded, Near):
        serving.guarded.check()
    state = serving.status()["near"]
    return f"{state['mode']}: {state['why']}"


def _describe(backend: BaseCache) -> str:
    if not isinstance(backend, Backend):
        return type(backend).__name__
    return f"{backend.name} ({backend.describe(current_app.config)})"


def _error(backend: BaseCache, error: BaseException) -> str:
    if not isinstance(backend, Backend):
        return format_error(error, [])
    return advised(format_error(error, backend.secrets(current_app.config)), backend.advice(error))


def _fail(message: str) -> NoReturn:
    click.echo(message, err=True)
    sys.exit(1)


@cli.command("status")
def status_command() -> None:
    """Show the configured and serving backend, and ping it."""
    backend = _backend()
    click.echo(f"configured: {current_app.config['CACHE_TYPE']}")
    click.echo(f"serving:    {_describe(backend)}")
    if unusable := current_app.config.get("CACHE_FALLBACK"):
        _fail(f"ping:       FAILED (not sent: {unusable})")
    key = f"ping-{uuid.uuid4().hex}"
    try:
        started = time.perf_counter()
        backend.set(key, 1, timeout=10)
        backend.get(key)
        elapsed = (time.perf_counter() - started) * 1000
        backend.delete(key)
    except Exception as error:
        _fail(f"ping:       FAILED ({_error(backend, error)})")
    click.echo(f"ping:       ok, set+get in {elapsed:.2f} ms")
    click.echo(f"near cache: {_near()}")


@cli.command("clear")
def clear_command() -> None:
    """Delete this app's cache entries (and no one else's)."""
    backend = _backend()
    if unusable := current_app.config.get("CACHE_FALLBACK"):
        _fail(f"could not clear: {unusable}")
    if isinstance(backend, Backend) and not backend.shared:
        click.echo(_not_clearable_here(backend))
        return  # nothing failed: exit status 0
    try:
        backend.clear()
    except Exception as error:
        _fail(f"could not clear {_describe(backend)}: {_error(backend, error)}")
    click.echo(f"cleared this app's entries in {_describe(backend)}")


def _not_clearable_here(backend: Backend) -> str:
    if isinstance(backend, Null):
        return "nothing to clear: CACHE_TYPE=null caches nothing"
    return (
        f"nothing cleared: CACHE_TYPE={backend.name} keeps entries in each web worker's own "
        "memory, which this console cannot reach. To empty it, reload the web app (on "
        "PythonAnywhere: the Reload button on the Web tab, python3 deploy.py, or the API's "
        "reload); each worker starts empty."
    )


@cli.command("bench")
@click.option(
    "-n",
    "--count",
    default=200,
    show_default=True,
    type=click.IntRange(min=2, max=BENCH_MAX),
    help="round trips",
)
def bench_command(count: int) -> None:
    """Time N set and N get round trips against the backend: p50/p99 in ms."""
    backend, key, value = _backend(), f"bench-{uuid.uuid4().hex}", "x" * 1024
    if unusable := current_app.config.get("CACHE_FALLBACK"):
        _fail(f"bench failed: {unusable}")
    timings: dict[str, list[float]] = {"set": [], "get": []}
    try:
        for _ in range(count):
            started = time.perf_counter()
            backend.set(key, value)
            middle = time.perf_counter()
            backend.get(key)
            timings["set"].append((middle - started) * 1000)
            timings["get"].append((time.perf_counter() - middle) * 1000)
        backend.delete(key)
    except Exception as error:
        _fail(f"bench failed on {_describe(backend)}: {_error(backend, error)}")
    click.echo(f"{_describe(backend)}, {count} round trips of a 1 KiB value:")
    for name, samples in timings.items():
        cuts = statistics.quantiles(samples, n=100, method="inclusive")
        click.echo(f"  {name}: p50 {cuts[49]:.3f} ms, p99 {cuts[98]:.3f} ms")
