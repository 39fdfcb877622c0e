"""The near cache in one process: what tracking costs writes, and what signing costs a near hit.

writes: sets of a 1 KiB value through the app's cache (breaker, near cache, signing, SET), in
        batches, interleaved batch by batch between three apps on one Redis, each under its own
        key prefix (a BCAST tracking connection hears its prefix only):
          off      CACHE_NEAR_TRACKING=off (no near cache: the backend as it was)
          on       the near cache with tracking (the default): one tracking client
          on+1     the same, and a second app tracking that prefix, as a second worker would
        The trackers' invalidations are read (a get) between batches, outside the timing.
lag:    with FAR_REDIS_URL (a relay), how long after a write near the server the reader's near
        cache still serves the old value, and when it first serves the new one.
start:  with FAR_REDIS_URL, a new app's first read (a worker's first request), which also starts
        tracking, against one with tracking off, interleaved: what starting costs that call.
hits:   cache.get of the same value, and the cached /example page as a WSGI call, interleaved
        call by call: a near hit on the signed app (as shipped), a near hit on the same app with
        its entries unsigned (unsigned.py), a hit on redis without the near cache, and a hit on
        the simple cache.

Prints JSON: medians (seconds per call; sets per second). Run by run.py with the baked project
and REDIS_URL in the environment; argv[1] is the number of calls of each kind.
"""

import json
import os
import random
import statistics
import sys
import time
import uuid

from signing import caller as wsgi_get  # the cached /example page, as a WSGI call
from unsigned import unsign

package_name = os.environ["BENCH_PACKAGE"]
sys.path.insert(0, os.environ["PROJECT_HOME"])
package = __import__(package_name)
cache_package = __import__(f"{package_name}.cache", fromlist=["cache"])
cache = cache_package.cache

VALUE = "x" * 1024
BATCH = 200  # sets per timed batch
shuffle = random.Random(12).shuffle  # seeded: the same orders every run


def make(backend: str = "redis", prefix: str = "", **settings: str):
    return package.create_app(
        {
            "SECRET_KEY": "bench",
            "CACHE_TYPE": backend,
            "CACHE_KEY_PREFIX": prefix or f"bench-{uuid.uuid4().hex[:8]}:",
            "REDIS_URL": os.environ["REDIS_URL"],
            **settings,
        }
    )


def status(app) -> dict:
    with app.app_context():
        return cache_package.status()


def near_mode(app) -> str:
    with app.app_context():
        cache.get("warm")  # the first read starts tracking
    return status(app)["near"]["mode"]


def writes(samples: int) -> dict:
    shared = f"bench-{uuid.uuid4().hex[:8]}:"
    apps = {"off": make(CACHE_NEAR_TRACKING="off"), "on": make(), "on+1": make(prefix=shared)}
    trackers = [apps["on"], apps["on+1"], make(prefix=shared)]  # the last: the second worker
    modes = {name: near_mode(app) for name, app in apps.items()}
    modes["second worker"] = near_mode(trackers[-1])
    rates: dict[str, list[float]] = {name: [] for name in apps}
    order = list(apps)
    for _ in range(max(samples // BATCH, 3)):
        shuffle(order)  # a new order each batch: none goes first, or after another, every time
        for name in order:
            with apps[name].app_context():
                set_ = cache.set
                started = time.perf_counter()
                for i in range(BATCH):
                    set_(f"k{i}", VALUE)
                rates[name].append(BATCH / (time.perf_counter() - started))
        for app in trackers:  # read what the trackers were sent, outside the timing
            with app.app_context():
                cache.get("k0")
    return {"modes": modes, **{name: statistics.median(values) for name, values in rates.items()}}


def cache_get(app):
    def call() -> None:
        with app.app_context():
            cache.get("page")

    return call


def hits(samples: int) -> dict:
    apps = {
        "signed": make(),
        "unsigned": make(),
        "redis without near": make(CACHE_NEAR_TRACKING="off"),
        "simple": make("simple"),
    }
    unsign(apps["unsigned"], cache, "redis")
    modes = {name: near_mode(app) for name, app in apps.items()}
    results = {}
    for kind, caller in (("get", cache_get), ("page", wsgi_get)):
        calls = {name: caller(app) for name, app in apps.items()}
        for name, app in apps.items():
            with app.app_context():
                cache.set("page", VALUE)
            calls[name]()  # fills the near cache (and the page's entry)
        timings: dict[str, list[float]] = {name: [] for name in calls}
        order = list(calls)
        for _ in range(samples):
            shuffle(order)
            for name in order:
                started = time.perf_counter()
                calls[name]()
                timings[name].append(time.perf_counter() - started)
        results[kind] = {name: statistics.median(values) for name, values in timings.items()}
    return {"modes": modes, **results}


def lag(rounds: int) -> dict:
    """How long after another client's write the near cache still serves the old value, when its
    server is FAR_REDIS_URL (relay.py) and the writer sits next to the server: the invalidation's
    one-way trip. Then the fresh value costs a round trip more."""
    prefix = f"bench-{uuid.uuid4().hex[:8]}:"
    far = {"REDIS_URL": os.environ["FAR_REDIS_URL"], "CACHE_SOCKET_TIMEOUT": "5"}
    reader = make(prefix=prefix, **far)
    writer = make(prefix=prefix, CACHE_NEAR_TRACKING="off")
    mode = near_mode(reader)
    stale, fresh = [], []
    for i in range(rounds):
        with writer.app_context():
            cache.set("lag", i)
        with reader.app_context():
            while cache.get("lag") != i:  # until it is in the reader's memory
                pass
            cache.get("lag")
        with writer.app_context():
            cache.set("lag", i + 1)
        acked = last_stale = time.perf_counter()
        with reader.app_context():
            while cache.get("lag") != i + 1:
                last_stale = time.perf_counter()
                time.sleep(0.0002)  # as requests come, not a spin that starves the relay
        stale.append(last_stale - acked)
        fresh.append(time.perf_counter() - acked)
    return {
        "mode": mode,
        "stale p50": statistics.median(stale),
        "stale max": max(stale),
        "fresh p50": statistics.median(fresh),
        "breaker opened": bool(status(reader)["last_error"]),
    }


def start(rounds: int) -> dict:
    """A new app's first cache.get through FAR_REDIS_URL, with tracking (on) and without (off),
    interleaved: seconds, the medians."""
    far = {"REDIS_URL": os.environ["FAR_REDIS_URL"], "CACHE_SOCKET_TIMEOUT": "5"}
    timings: dict[str, list[float]] = {"on": [], "off": []}
    for _ in range(rounds):
        for name in ("on", "off"):
            app = make(**far, CACHE_NEAR_TRACKING=name)
            with app.app_context():
                started = time.perf_counter()
                cache.get("first")
                timings[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in timings.items()}


def main(samples: int) -> None:
    results = {"writes": writes(samples), "hits": hits(samples)}
    if os.environ.get("FAR_REDIS_URL"):
        results["lag"] = lag(max(samples // 60, 10))
        results["start"] = start(10)
    print(json.dumps(results))


if __name__ == "__main__":
    main(int(sys.argv[1]))
