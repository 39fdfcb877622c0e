"""What a page costs in Upstash commands: the quota a free database counts (500K a month).

The baked app with CACHE_TYPE=upstash, in this process (one web worker, as a free account has:
a stand-in `uwsgi` module says so, as PythonAnywhere's uWSGI would, so the lock that makes one
regeneration per expiry is the worker's own, as there), through the project's own stand-in for
Upstash's REST API (tests/cache/upstash_server.py, which counts every command, a pipeline's one
by one) in front of a real Redis (REDIS_URL). Views are Flask test-client requests of /example
(cached 60 s) or /health.

Time is simulated, so that 1,000 views one a minute take seconds, not 17 hours: one clock drives
the breaker, the near cache (CACHE_NEAR_TTL), the entries' freshness (regenerate.clock) and the
expiry of keys at the stand-in, which notes a SET's EX (or an EXPIRE) on that clock and deletes
the key, past its counter, once that time has come. Views come exactly ``gap`` simulated seconds
apart; nothing else is simulated (the commands are real, to a real Redis).

Prints JSON: a row per (page, CACHE_NEAR_TTL, gap) with the views made and the commands they
cost, and whether a breaker ever opened (then the row measured the fallback, not Upstash).
argv[1] is the number of views per row. Run by run.py (--part upstash) with the baked project's
PROJECT_HOME, BENCH_PACKAGE and REDIS_URL set.
"""

import importlib.util
import json
import os
import sys
import time
import types
import uuid
from pathlib import Path

PROJECT = Path(os.environ["PROJECT_HOME"])
sys.path.insert(0, str(PROJECT))
package = __import__(os.environ["BENCH_PACKAGE"])
cache_package = __import__(f"{package.__name__}.cache", fromlist=["cache"])
near = __import__(f"{package.__name__}.cache.near", fromlist=["Near"])
regenerate = __import__(f"{package.__name__}.cache.regenerate", fromlist=["clock"])
sys.modules["uwsgi"] = types.SimpleNamespace(numproc=1, opt={})  # one worker, as on a free account

# The rows: CACHE_NEAR_TTL values, and the simulated seconds between two views (1,000 views in a
# second; one a second; one every 10 s; one a minute, as an uptime monitor calls /health).
NEAR_TTLS = (0, 1, 5, 10, 30)
GAPS = (0.001, 1.0, 10.0, 60.0)
HEALTH_GAP = 60.0


def load_stand_in():
    path = PROJECT / "tests" / "cache" / "upstash_server.py"
    spec = importlib.util.spec_from_file_location("bench_upstash_server", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


stand_in = load_stand_in()


class Clock:
    """Simulated seconds, from this machine's monotonic time (other code may have read it)."""

    def __init__(self) -> None:
        self.now = time.monotonic()

    def __call__(self) -> float:
        return self.now


class SimulatedExpiry(stand_in.UpstashServer):
    """The stand-in, its keys expiring on ``clock``: an EX or EXPIRE is noted and kept out of
    Redis, and an expired key is deleted before the next command is counted and run."""

    def __init__(self, redis_url: str, clock: Clock):
        super().__init__(redis_url)
        self.clock, self.expires = clock, {}

    def run(self, command: list) -> dict:
        self._expire()
        return super().run(self._noted(command))

    def run_many(self, commands: list) -> list[dict]:
        self._expire()
        return super().run_many([self._noted(command) for command in commands])

    def _expire(self) -> None:
        due = [key for key, when in self.expires.items() if when <= self.clock()]
        for key in due:
            del self.expires[key]
        if due:
            self.redis.delete(*due)  # past the counter: Upstash expires keys itself

    def _noted(self, command: list) -> list:
        name = str(command[0]).upper()
        if name == "SET":
            words = [str(part).upper() for part in command]
            self.expires.pop(command[1], None)
            if "EX" in words[3:]:
                at = words.index("EX", 3)
                self.expires[command[1]] = self.clock() + float(command[at + 1])
                return [*command[:at], *command[at + 2 :]]
        elif name == "EXPIRE":
            self.expires[command[1]] = self.clock() + float(command[2])
            return ["EXISTS", command[1]]  # answers 1 for a key that exists, as EXPIRE does
        elif name in ("DEL", "UNLINK"):
            for key in command[1:]:
                self.expires.pop(key, None)
        return command


def views(server: SimulatedExpiry, page: str, near_ttl: float, gap: float, count: int) -> dict:
    """``count`` views of ``page``, ``gap`` simulated seconds apart, by a new app (its own key
    prefix: nothing cached yet) on ``server``: the commands they cost."""
    clock = server.clock
    app = package.create_app(
        {
            "SECRET_KEY": "bench",
            "CACHE_TYPE": "upstash",
            "UPSTASH_REDIS_REST_URL": server.url,
            "UPSTASH_REDIS_REST_TOKEN": stand_in.TOKEN,
            "CACHE_KEY_PREFIX": f"bench-{uuid.uuid4().hex[:8]}:",
            "CACHE_NEAR_TTL": str(near_ttl),
            "CACHE_SOCKET_TIMEOUT": "5",  # patient: a slow answer here must not open the breaker
        },
        environ={},
    )
    regenerate.clock = clock
    with app.app_context():  # the clock in before the first cache call
        breaker = cache_package.cache.cache
        breaker.clock = clock
        if isinstance(breaker.guarded, near.Near):
            breaker.guarded.clock = clock
        mode = cache_package.status()["near"]["mode"]
    client = app.test_client()
    before = server.commands
    for _ in range(count):
        response = client.get(page)
        if response.status_code != 200:
            raise RuntimeError(f"{page} answered {response.status_code}")
        clock.now += gap
    with app.app_context():
        opened = cache_package.status()["last_error"] is not None
    return {
        "page": page,
        "near_ttl": near_ttl,
        "gap": gap,
        "near_mode": mode,
        "views": count,
        "commands": server.commands - before,
        "breaker_opened": opened,
    }


def main(count: int) -> None:
    server = SimulatedExpiry(os.environ["REDIS_URL"], Clock())
    rows = [views(server, "/example", near_ttl, gap, count) for near_ttl in NEAR_TTLS for gap in GAPS]
    rows += [views(server, "/health", near_ttl, HEALTH_GAP, count) for near_ttl in (0, 5)]
    print(json.dumps(rows))


if __name__ == "__main__":
    main(int(sys.argv[1]))
