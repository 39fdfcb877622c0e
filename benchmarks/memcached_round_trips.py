"""Round trips to memcached per request of the cached /example page, counted at a relay: the
baked project's own test relay (tests/cache/relay.py), which counts each time a client speaks
after the server has answered it, however many packets either took.

Two apps in this process play two web workers of one site (one CACHE_KEY_PREFIX), Flask
test-client requests. Counted: a hit; a miss (the page computed and stored, after this worker's
own clear()); and a worker's first request after the other one ran clear() (a miss as well).
Nothing is timed.

Prints JSON: round trips per request of each kind. argv[1] is the number of hits counted. Run by
run.py with the baked project's PROJECT_HOME, BENCH_PACKAGE and MEMCACHED_SERVERS set.
"""

import importlib.util
import json
import os
import sys
import uuid
from pathlib import Path

PROJECT = Path(os.environ["PROJECT_HOME"])
sys.path.insert(0, str(PROJECT))
package = __import__(os.environ["BENCH_PACKAGE"])
cache = __import__(f"{package.__name__}.cache", fromlist=["cache"]).cache


def load_relay():
    path = PROJECT / "tests" / "cache" / "relay.py"
    spec = importlib.util.spec_from_file_location("bench_relay", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.Relay


def main(hits: int) -> None:
    host, _, port = os.environ["MEMCACHED_SERVERS"].split(",")[0].rpartition(":")
    relay = load_relay()(host, int(port))
    settings = {
        "SECRET_KEY": "bench",
        "CACHE_TYPE": "memcached",
        "MEMCACHED_SERVERS": f"127.0.0.1:{relay.port}",
        "CACHE_KEY_PREFIX": f"bench-{uuid.uuid4().hex[:8]}:",
    }
    first, second = (package.create_app(settings, environ={}).test_client() for _ in range(2))

    def counted(client, requests: int = 1) -> float:
        before = relay.round_trips
        for _ in range(requests):
            if client.get("/example").status_code != 200:
                raise RuntimeError("/example did not answer 200")
        return (relay.round_trips - before) / requests

    counted(first, 2)  # connects, learns the generation, caches the page and hits it
    with first.application.test_request_context():
        cache.clear()  # its own: the next request is a plain miss
    figures = {"miss": counted(first), "hit": counted(first, hits)}
    counted(second, 2)  # the other worker, which then clears
    with second.application.test_request_context():
        cache.clear()
    figures["after another worker's clear()"] = counted(first)  # a miss too
    with first.application.app_context():
        if cache.cache.status()["last_error"]:
            raise RuntimeError(f"the breaker opened: {cache.cache.status()['last_error']}")
    relay.cut()
    print(json.dumps(figures))


if __name__ == "__main__":
    main(int(sys.argv[1]))
