"""What signing cache entries adds to a cache hit, in one process: the baked app's cached /example
page on each signed backend, with signing (as shipped) and without (cachelib's and pymemcache's
own pickle serializers put back), WSGI calls interleaved call by call. Prints JSON medians.
Upstash is left out: its hit is an HTTPS round trip to Upstash, tens of milliseconds, which the
few microseconds of a MAC cannot move, and a local stand-in in this process would measure itself.

Run by run.py with the baked project on sys.path and REDIS_URL, MEMCACHED_SERVERS set.
"""

import io
import json
import os
import statistics
import sys
import tempfile
import time
import uuid

from unsigned import unsign

package_name = os.environ["BENCH_PACKAGE"]
sys.path.insert(0, os.environ["PROJECT_HOME"])
package = __import__(package_name)
cache = __import__(f"{package_name}.cache", fromlist=["cache"]).cache


def settings(backend: str) -> dict[str, str]:
    return {
        "SECRET_KEY": "bench",
        "CACHE_TYPE": backend,
        "CACHE_KEY_PREFIX": f"bench-{uuid.uuid4().hex[:8]}:",
        "CACHE_DIR": tempfile.mkdtemp(),
        "REDIS_URL": os.environ["REDIS_URL"],
        "MEMCACHED_SERVERS": os.environ["MEMCACHED_SERVERS"],
    }


def caller(app):
    def call() -> None:
        environ = {
            "REQUEST_METHOD": "GET", "PATH_INFO": "/example", "QUERY_STRING": "",
            "SERVER_NAME": "bench", "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1",
            "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(), "wsgi.errors": sys.stderr,
        }  # fmt: skip
        b"".join(app(environ, lambda status, headers: None))

    return call


def main(samples: int) -> None:
    results = {}
    for backend in ("filesystem", "redis", "memcached"):
        signed_app = package.create_app(settings(backend))
        plain_app = package.create_app(settings(backend))
        unsign(plain_app, cache, backend)
        calls = {"signed": caller(signed_app), "unsigned": caller(plain_app)}
        for call in calls.values():
            call()  # fill the cache
        timings: dict[str, list[float]] = {name: [] for name in calls}
        order = list(calls)
        for _ in range(samples):
            order.reverse()  # A B B A A B ...: neither goes first every time
            for name in order:
                started = time.perf_counter()
                calls[name]()
                timings[name].append(time.perf_counter() - started)
        results[backend] = {name: statistics.median(values) for name, values in timings.items()}
    print(json.dumps(results))


if __name__ == "__main__":
    main(int(sys.argv[1]))
