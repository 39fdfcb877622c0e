"""The WSGI app the benchmarks serve: the baked app with two extra views, or plain Flask-Caching.

BENCH_MODE=ours  : the baked project's create_app() (its cache.py, breaker and all), from .env
                   and the environment, as on PythonAnywhere.
BENCH_MODE=plain : Flask-Caching configured the usual way (RedisCache, default options): the
                   baseline the outage benchmark compares against.
Both get /bench/bare and /bench/cached, the same view with and without @cache.cached.
BENCH_UNSIGNED=1 with BENCH_MODE=ours: entries stored unsigned, to measure what signing costs.
"""

import os
import sys

PROJECT = os.environ["PROJECT_HOME"]
sys.path.insert(0, PROJECT)

from dotenv import load_dotenv  # noqa: E402

load_dotenv(os.path.join(PROJECT, ".env"))

BODY = "<p>A small page, as a view might return it.</p>\n" * 20

if os.environ["BENCH_MODE"] == "ours":
    import importlib

    package = importlib.import_module(os.environ["BENCH_PACKAGE"])
    cache = importlib.import_module(f"{package.__name__}.cache").cache
    app = package.create_app()
    if os.environ.get("BENCH_UNSIGNED"):  # the same app with its cache entries unsigned
        sys.path.insert(0, os.path.dirname(__file__))
        from unsigned import unsign

        unsign(app, cache, app.config["CACHE_TYPE"])
else:
    from flask import Flask
    from flask_caching import Cache

    app = Flask(__name__)
    cache = Cache(app, config={"CACHE_TYPE": "RedisCache", "CACHE_REDIS_URL": os.environ["REDIS_URL"]})


@app.get("/bench/bare")
def bare():
    return BODY


@app.get("/bench/cached")
@cache.cached(timeout=3600)
def cached():
    return BODY


application = app
