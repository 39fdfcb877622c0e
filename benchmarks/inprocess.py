"""Redis hit latency inside one process, as FACTS.md measured it: the bench app called as WSGI,
bare view, cached view and one raw redis-py GET interleaved call by call. Prints JSON medians.
Run by run.py with the bench app's environment (BENCH_MODE, PROJECT_HOME, REDIS_URL, ...)."""

import io
import json
import os
import statistics
import sys
import time

import redis

sys.path.insert(0, os.path.dirname(__file__))

from bench_wsgi import application  # noqa: E402


def call(path: str) -> None:
    environ = {
        "REQUEST_METHOD": "GET", "PATH_INFO": path, "QUERY_STRING": "", "SERVER_NAME": "bench",
        "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(), "wsgi.errors": sys.stderr,
    }  # fmt: skip
    b"".join(application(environ, lambda status, headers: None))


def main(samples: int) -> None:
    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    client.set("bench:raw", b"x" * 1000)
    call("/bench/cached")  # fill the cache
    timings: dict[str, list[float]] = {"bare": [], "cached": [], "raw": []}
    for _ in range(samples):
        for name, run in (
            ("bare", lambda: call("/bench/bare")),
            ("cached", lambda: call("/bench/cached")),
            ("raw", lambda: client.get("bench:raw")),
        ):
            started = time.perf_counter()
            run()
            timings[name].append(time.perf_counter() - started)
    print(json.dumps({name: statistics.median(values) for name, values in timings.items()}))


if __name__ == "__main__":
    main(int(sys.argv[1]))
