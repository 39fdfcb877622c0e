"""The WSGI app the benchmarks serve: the baked app with extra views, or plain Flask-Caching.

BENCH_MODE=ours  : the baked project's create_app() (its cache.py, breaker and all), from .env
                   and the environment, as on PythonAnywhere.
BENCH_MODE=plain : Flask-Caching configured the usual way, default options: RedisCache on
                   REDIS_URL, or FileSystemCache in CACHE_DIR with CACHE_TYPE=filesystem; the
                   baseline the benchmarks compare against.
Both get /bench/bare and /bench/cached, the same view with and without @cache.cached; and the
stampede part's slow view (stampede.py): /bench/slow, cached 2 s, and /bench/slow-hit, the same
view cached an hour, each regeneration recorded in BENCH_REGEN_LOG.
BENCH_UNSIGNED=1 with BENCH_MODE=ours: entries stored unsigned, to measure what signing costs.
"""

import os
import sys

PROJECT = os.environ["PROJECT_HOME"]
sys.path.insert(0, PROJECT)
sys.path.append(os.path.dirname(__file__))  # this folder's modules, after the project

from dotenv import load_dotenv  # noqa: E402

load_dotenv(os.path.join(PROJECT, ".env"))

BODY = "<p>A small page, as a view might return it.</p>\n" * 20

if os.environ["BENCH_MODE"] == "ours":
    import importlib

    package = importlib.import_module(os.environ["BENCH_PACKAGE"])
    cache = importlib.import_module(f"{package.__name__}.cache").cache
    app = package.create_app()
    if os.environ.get("BENCH_UNSIGNED"):  # the same app with its cache entries unsigned
        from unsigned import unsign

        unsign(app, cache, app.config["CACHE_TYPE"])
else:
    from flask import Flask
    from flask_caching import Cache

    app = Flask(__name__)
    if os.environ.get("CACHE_TYPE") == "filesystem":
        config = {"CACHE_TYPE": "FileSystemCache", "CACHE_DIR": os.environ["CACHE_DIR"]}
    else:
        config = {"CACHE_TYPE": "RedisCache", "CACHE_REDIS_URL": os.environ["REDIS_URL"]}
    cache = Cache(app, config=config)

from stampede import REGENERATION_TIMEOUT, regenerate  # noqa: E402


@app.get("/bench/bare")
def bare():
    return BODY


@app.get("/bench/cached")
@cache.cached(timeout=3600)
def cached():
    return BODY


@app.get("/bench/slow")
@cache.cached(timeout=REGENERATION_TIMEOUT)
def slow():
    return regenerate("slow")


@app.get("/bench/slow-hit")
@cache.cached(timeout=3600)  # no expiry while a benchmark runs: a plain hit
def slow_hit():
    return regenerate("slow-hit")


application = app
