"""Benchmarks: what a cache hit costs, what a Redis outage costs, what the near cache saves,
what a page costs in Upstash commands, and what a slow page's expiry costs under load.
One command, from the template's root:

    python3 -m benchmarks.run            # about 15 minutes; --rounds/--seconds to change
    python3 -m benchmarks.run --part near    # hits, signing, outage, near, upstash or stampede alone

Needs wrk, redis-server and memcached (apt-get install -y wrk redis-server memcached) and the
template's dev requirements. It bakes the default project, serves it with uWSGI as
PythonAnywhere does, and drives it with wrk over loopback. This machine is noisy, so every
comparison is measured interleaved (A B A B ...) in one run and reported as medians and ratios;
the near part runs 3 times and reports each figure's median and min-max over the runs. A hosted
Redis is played by relay.py, which delays every byte 10 ms each way. The upstash part counts
Upstash commands per 1,000 page views instead of timing anything (upstash_commands.py). The
stampede part (stampede.py) drives a view that takes 0.3 s, cached 2 s, with 8 clients on 4
workers, on redis and filesystem against plain Flask-Caching: regenerations and slow requests per
expiry, p50/p99 against a plain hit's (3 runs, median and min-max); and what a 304 saves on
/example. The hits and signing parts end with memcached's round trips per page request
(memcached_round_trips.py).
"""

import argparse
import http.client
import json
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from contextlib import ExitStack, contextmanager
from pathlib import Path

import redis
from cookiecutter.main import cookiecutter

from benchmarks.stampede import stampede
from tests import servers

TEMPLATE = Path(__file__).resolve().parent.parent
BENCH_WSGI = Path(__file__).resolve().parent / "bench_wsgi.py"
UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0}


def wrk(url: str, seconds: float, connections: int, timeout: str = "10s") -> dict:
    """Throughput from wrk (its latency percentiles are not used: they disagreed with its own counts)."""
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", timeout, url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    percentiles = {
        int(p): float(v) * UNITS[u]
        for p, v, u in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", out, flags=re.M)
    }
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "requests": int(re.search(r"(\d+) requests in", out).group(1)),
        "p50": percentiles[50],
        "p99": percentiles[99],
        "errors": (int(non_2xx.group(1)) if non_2xx else 0)
        + (sum(map(int, socket_errors.groups())) if socket_errors else 0),
    }


def load(url: str, seconds: float, connections: int) -> dict:
    """Exact per-request latencies: keep-alive connections, one thread each, for ``seconds``."""
    parts = urllib.parse.urlsplit(url)
    latencies: list[float] = []
    errors = 0
    deadline = time.monotonic() + seconds

    def client():
        nonlocal errors
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        while time.monotonic() < deadline:
            started = time.perf_counter()
            try:
                conn.request("GET", parts.path)
                response = conn.getresponse()
                response.read()
                ok = response.status < 500
            except OSError:
                ok = False
                conn.close()
                conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
            latencies.append(time.perf_counter() - started)
            errors += not ok
        conn.close()

    threads = [threading.Thread(target=client) for _ in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    return {"requests": len(latencies), "errors": errors, "p50": cuts[49], "p99": cuts[98]}


def median(values) -> float:
    return statistics.median(values)


class Bench:
    def __init__(self, project: Path, workdir: Path, args):
        self.project, self.workdir, self.args = project, workdir, args

    def env(self, mode: str, **settings) -> dict[str, str]:
        defaults = {"CACHE_DIR": str(self.workdir / "cache")}
        return servers.app_env(
            self.project,
            BENCH_MODE=mode,
            BENCH_PACKAGE=self.project.name,
            **{**defaults, **settings},
        )

    @contextmanager
    def serve(self, mode: str, processes: int, **settings):
        log = self.workdir / f"uwsgi-{len(list(self.workdir.glob('uwsgi-*.log')))}.log"
        with servers.uwsgi(BENCH_WSGI, self.env(mode, **settings), log, processes) as url:
            for _ in range(3):  # fill the cache in every worker
                urllib.request.urlopen(url + "/bench/cached").read()
            yield url


def hit_cost(bench: Bench, redis_url: str, memcached: str) -> None:
    rounds, seconds = bench.args.rounds, bench.args.seconds
    print("\n== Cache-hit cost: uWSGI, 1 worker, wrk 4 connections; bare view vs @cache.cached view")
    print(f"   {rounds} interleaved rounds of {seconds}s each; medians of req/s")
    settings = {"REDIS_URL": redis_url, "MEMCACHED_SERVERS": memcached}
    for backend in ("simple", "filesystem", "redis", "memcached"):
        bare, cached = [], []
        with bench.serve("ours", 1, CACHE_TYPE=backend, **settings) as url:
            for _ in range(rounds):
                bare.append(wrk(url + "/bench/bare", seconds, 4)["rps"])
                cached.append(wrk(url + "/bench/cached", seconds, 4)["rps"])
        print(
            f"   {backend:<11} bare {median(bare):8.0f} req/s   cached {median(cached):8.0f} req/s"
            f"   cached/bare {median(cached) / median(bare):.3f}x"
        )

    print("\n== Redis hit latency over HTTP: bare, cached and a raw redis-py GET, interleaved")
    print(f"   over one keep-alive connection, {bench.args.samples} of each; medians")
    client = redis.Redis.from_url(redis_url)
    client.set("bench:raw", b"x" * 1000)
    for mode, label in (("ours", "this template"), ("plain", "plain Flask-Caching")):
        with bench.serve(mode, 1, CACHE_TYPE="redis", REDIS_URL=redis_url) as url:
            bare, cached, raw = interleaved_latencies(url, client, bench.args.samples)
        extra = median(cached) - median(bare)
        print(
            f"   {label:<20} bare {median(bare) * 1e6:7.1f} us  cached {median(cached) * 1e6:7.1f} us"
            f"  extra {extra * 1e6:6.1f} us  raw GET {median(raw) * 1e6:6.1f} us"
            f"  extra/raw {extra / median(raw):.2f}x"
        )


def run_script(name: str, env: dict[str, str], samples: int) -> dict:
    """Run a measuring script of this folder in its own process; it prints JSON."""
    command = [sys.executable, str(Path(__file__).parent / name), str(samples)]
    return json.loads(subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout)


def in_process(bench: "Bench", redis_url: str) -> None:
    print("\n== Redis hit latency in one process (as FACTS.md measured): WSGI calls and raw GETs")
    print(f"   interleaved call by call, {bench.args.samples} of each; medians")
    for mode, label in (("ours", "this template"), ("plain", "plain Flask-Caching")):
        env = bench.env(mode, CACHE_TYPE="redis", REDIS_URL=redis_url)
        m = run_script("inprocess.py", env, bench.args.samples)
        extra = m["cached"] - m["bare"]
        print(
            f"   {label:<20} bare {m['bare'] * 1e6:7.1f} us  cached {m['cached'] * 1e6:7.1f} us"
            f"  extra {extra * 1e6:6.1f} us  raw GET {m['raw'] * 1e6:6.1f} us"
            f"  extra/raw {extra / m['raw']:.2f}x"
        )


def signing_cost(bench: "Bench", redis_url: str, memcached: str) -> None:
    rounds, seconds = bench.args.rounds, bench.args.seconds
    settings = {"REDIS_URL": redis_url, "MEMCACHED_SERVERS": memcached}
    print("\n== Signing's cost on a hit: @cache.cached view with signed vs unsigned entries")
    print(f"   uWSGI, 1 worker each, wrk 4 connections, {rounds} interleaved rounds; medians of req/s")
    # The unsigned app keeps its entries apart: read by the signed one, they would be misses.
    unsigned_apart = {
        "BENCH_UNSIGNED": "1",
        "CACHE_KEY_PREFIX": "unsigned:",
        "CACHE_DIR": str(bench.workdir / "cache-unsigned"),
    }
    for backend in ("filesystem", "redis", "memcached"):
        signed, unsigned = [], []
        with (
            bench.serve("ours", 1, CACHE_TYPE=backend, **settings) as signed_url,
            bench.serve("ours", 1, CACHE_TYPE=backend, **settings, **unsigned_apart) as plain_url,
        ):
            runs = [(unsigned, plain_url), (signed, signed_url)]
            for _ in range(rounds):
                runs.reverse()  # A B B A A B ...: neither goes first every time
                for results, url in runs:
                    results.append(wrk(url + "/bench/cached", seconds, 4)["rps"])
        print(
            f"   {backend:<11} unsigned {median(unsigned):8.0f} req/s   signed {median(signed):8.0f} req/s"
            f"   signed/unsigned {median(signed) / median(unsigned):.3f}x"
        )

    print("\n== Signed cache entries: a hit on the cached /example page, signed vs unsigned")
    print(f"   in one process, interleaved call by call, {bench.args.samples} of each; medians")
    env = bench.env("ours", REDIS_URL=redis_url, MEMCACHED_SERVERS=memcached)
    for backend, m in run_script("signing.py", env, bench.args.samples).items():
        print(
            f"   {backend:<11} unsigned {m['unsigned'] * 1e6:7.1f} us  signed {m['signed'] * 1e6:7.1f} us"
            f"  signed/unsigned {m['signed'] / m['unsigned']:.3f}x"
        )


MEMCACHED_HITS = 100  # hits counted by memcached_round_trips.py


def memcached_round_trips(bench: "Bench", memcached: str) -> None:
    print("\n== memcached round trips per request of the cached /example page, counted at a relay")
    print("   (tests/cache/relay.py): the baked app in process, two workers of one site")
    env = bench.env("ours", MEMCACHED_SERVERS=memcached)
    m = run_script("memcached_round_trips.py", env, MEMCACHED_HITS)
    print("   " + "   ".join(f"{kind} {count:.2f}" for kind, count in m.items()))


def interleaved_latencies(url: str, client, samples: int):
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)

    def timed_get(path: str) -> float:
        started = time.perf_counter()
        conn.request("GET", path)
        conn.getresponse().read()
        return time.perf_counter() - started

    bare, cached, raw = [], [], []
    for _ in range(samples):
        bare.append(timed_get("/bench/bare"))
        cached.append(timed_get("/bench/cached"))
        started = time.perf_counter()
        client.get("bench:raw")
        raw.append(time.perf_counter() - started)
    conn.close()
    return bare, cached, raw


def outage(bench: Bench) -> None:
    phase = bench.args.phase
    print(f"\n== Outage: uWSGI, 2 workers, 4 keep-alive connections, {phase}s per phase, @cache.cached view")
    print("   ours: CACHE_RETRY_AFTER=2, CACHE_SOCKET_TIMEOUT=0.5 (defaults: 30, 0.5);")
    print("   plain: Flask-Caching RedisCache with its default options")
    with bench.serve("ours", 2, CACHE_TYPE="simple") as url:
        simple = load(url + "/bench/cached", phase, 4)
    print(f"   healthy simple cache: p50 {fmt(simple['p50'])}  p99 {fmt(simple['p99'])}")
    print(f"   {'':<20}{'phase':<9}{'requests':>9}{'errors':>8}{'p50':>11}{'p99':>11}{'p99/simple p99':>16}")
    for mode, label in (("ours", "this template"), ("plain", "plain Flask-Caching")):
        port = servers.free_port()
        server = servers.start_server("redis", port)
        redis_url = f"redis://127.0.0.1:{port}/0"
        settings = {"CACHE_TYPE": "redis", "REDIS_URL": redis_url, "CACHE_RETRY_AFTER": "2"}
        try:
            with bench.serve(mode, 2, **settings) as url:
                report(label, "healthy", load(url + "/bench/cached", phase, 4), simple)
                server.send_signal(signal.SIGKILL)
                server.wait()
                report(label, "down", load(url + "/bench/cached", phase, 4), simple)
                server = servers.start_server("redis", port)
                report(label, "back", load(url + "/bench/cached", phase, 4), simple)
        finally:
            server.kill()
            server.wait()
        with servers.hung_server() as hung:
            settings["REDIS_URL"] = f"redis://127.0.0.1:{hung.port}/0"
            with bench.serve(mode, 2, **settings) as url:
                report(label, "hung", load(url + "/bench/cached", phase, 4), simple)


NEAR_RUNS = 3  # the near part is run this many times: median and min-max of each figure
RELAY_DELAY_MS = 10  # each way: a 20 ms round trip, as to a Redis hosted in another region


@contextmanager
def relay(target_url: str, delay_ms: int):
    """A redis:// URL reaching ``target_url``'s server through relay.py, ``delay_ms`` each way."""
    port = servers.free_port()
    target = urllib.parse.urlsplit(target_url)
    command = [sys.executable, str(Path(__file__).parent / "relay.py"), str(port), str(target.port)]
    process = subprocess.Popen([*command, str(delay_ms)], stdout=subprocess.PIPE, text=True)
    try:
        if process.stdout.readline().strip() != "ready":
            raise RuntimeError("relay.py did not start")
        yield f"redis://127.0.0.1:{port}{target.path}"
    finally:
        servers.stop(process)


def health(url: str) -> dict:
    with urllib.request.urlopen(url + "/health") as response:
        return json.load(response)["cache"]


def near_mode(url: str) -> str:
    return health(url)["near"]["mode"]


def breaker_opened(urls: dict[str, str], part: str) -> None:
    """Say so if a breaker opened at any time (its last_error stays): then the figures measured
    the in-process fallback, not Redis. On a loaded machine a call through the relay can exceed
    the socket timeout."""
    for name, url in urls.items():
        if health(url).get("last_error"):
            print(f"   WARNING: {part}, {name}: the breaker opened: {health(url)['last_error']}")


def near_once(bench: Bench, redis_url: str) -> tuple[dict[str, float], dict[str, str]]:
    """One run of the near part: every figure once, each comparison interleaved; and the near
    cache's mode in each app measured, to show that what was measured is what was meant."""
    rounds, seconds, figures = bench.args.rounds, bench.args.seconds, {}
    redis_settings = {"CACHE_TYPE": "redis", "REDIS_URL": redis_url}
    configs = {
        "simple": {"CACHE_TYPE": "simple"},
        "redis near": redis_settings,
        "redis no near": {**redis_settings, "CACHE_NEAR_TRACKING": "off"},
    }
    rps: dict[tuple[str, str], list[float]] = {}
    with ExitStack() as stack:
        urls = {name: stack.enter_context(bench.serve("ours", 1, **s)) for name, s in configs.items()}
        modes = {name: near_mode(url) for name, url in urls.items()}
        runs = [(name, view) for name in configs for view in ("bare", "cached")]
        for _ in range(rounds):
            for name, view in runs:
                rps.setdefault((name, view), []).append(wrk(f"{urls[name]}/bench/{view}", seconds, 4)["rps"])
            runs.reverse()  # A B C C B A ...: none goes first every time
        breaker_opened(urls, "hits")
    # Ratios round by round (a view's bare and cached runs are adjacent in time), then their
    # median: a load that comes and goes between rounds moves both sides of a ratio alike.
    ratios = {
        name: [c / b for c, b in zip(rps[name, "cached"], rps[name, "bare"], strict=True)] for name in configs
    }
    for name in configs:
        figures[f"{name}: cached ÷ bare"] = median(ratios[name])
    for name in ("redis near", "redis no near"):
        pairs = zip(ratios[name], ratios["simple"], strict=True)
        figures[f"{name} ÷ simple"] = median([r / simple for r, simple in pairs])
    # The same without the bare views (the same code on every server): fewer noisy runs in it.
    pairs = zip(rps["redis near", "cached"], rps["simple", "cached"], strict=True)
    figures["req/s cached, redis near ÷ simple"] = median([near / simple for near, simple in pairs])

    samples = max(bench.args.samples // 10, 50)
    # Patient with a loaded machine: a call that times out opens the breaker, which serves
    # from its in-process fallback (breaker_opened says so).
    far_settings = {"CACHE_TYPE": "redis", "CACHE_SOCKET_TIMEOUT": "5", "CACHE_RETRY_AFTER": "1"}
    with (
        relay(redis_url, RELAY_DELAY_MS) as far_url,
        bench.serve("ours", 1, **far_settings, REDIS_URL=far_url) as near_url,
        bench.serve("ours", 1, **far_settings, REDIS_URL=far_url, CACHE_NEAR_TRACKING="off") as far,
    ):
        modes["relay near"], modes["relay no near"] = near_mode(near_url), near_mode(far)
        urls = {"near": near_url, "no near": far}
        timings = keep_alive_latencies(urls, "/bench/cached", samples)
        breaker_opened(urls, "relay")
    for name, values in timings.items():
        cuts = statistics.quantiles(values, n=100, method="inclusive")
        figures[f"relay, {name}: p50 ms"], figures[f"relay, {name}: p99 ms"] = cuts[49] * 1e3, cuts[98] * 1e3

    with relay(redis_url, RELAY_DELAY_MS) as far_url:
        env = bench.env("ours", REDIS_URL=redis_url, FAR_REDIS_URL=far_url)
        measured = run_script("near_inprocess.py", env, bench.args.samples)
    writes, hits, lag = measured["writes"], measured["hits"], measured["lag"]
    modes["relay lag reader"] = lag["mode"]
    if lag["breaker opened"]:
        print("   WARNING: relay, after a write: the reader's breaker opened")
    for name in ("stale p50", "stale max", "fresh p50"):
        figures[f"relay, after a write: {name} ms"] = lag[name] * 1e3
    round_trip = 2 * RELAY_DELAY_MS / 1e3
    for name in ("on", "off"):
        figures[f"relay, a worker's first read, tracking {name}: round trips"] = (
            measured["start"][name] / round_trip
        )
    modes.update({f"sets {k}": v for k, v in writes["modes"].items()})
    modes.update({f"hits {k}": v for k, v in hits["modes"].items()})
    for name in ("off", "on", "on+1"):
        figures[f"sets/s, tracking {name}"] = writes[name]
    for name in ("on", "on+1"):
        figures[f"sets/s, tracking {name} ÷ off"] = writes[name] / writes["off"]
    for kind in ("get", "page"):
        for name, value in hits[kind].items():
            figures[f"{kind}: {name} us"] = value * 1e6
        figures[f"{kind}: near signed ÷ unsigned"] = hits[kind]["signed"] / hits[kind]["unsigned"]
        figures[f"{kind}: near signed ÷ simple"] = hits[kind]["signed"] / hits[kind]["simple"]
    return figures, modes


def num(value: float) -> str:
    return f"{value:,.0f}" if value >= 1000 else f"{value:.3g}"


def keep_alive_latencies(urls: dict[str, str], path: str, samples: int) -> dict[str, list[float]]:
    """Seconds per GET of ``path``, one keep-alive connection per URL, interleaved request by request."""
    conns = {}
    for name, url in urls.items():
        parts = urllib.parse.urlsplit(url)
        conns[name] = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    timings: dict[str, list[float]] = {name: [] for name in urls}
    order = list(urls)
    for _ in range(samples):
        order.reverse()  # A B B A ...
        for name in order:
            started = time.perf_counter()
            conns[name].request("GET", path)
            response = conns[name].getresponse()
            response.read()
            timings[name].append(time.perf_counter() - started)
            if response.status != 200:
                raise RuntimeError(f"{urls[name]}{path} answered {response.status}")
    for conn in conns.values():
        conn.close()
    return timings


def near_cache(bench: Bench, redis_url: str) -> None:
    args = bench.args
    print(f"\n== The near cache (issue 12): {NEAR_RUNS} runs; median and min-max of the runs")
    rounds = f"{args.rounds} interleaved rounds of {args.seconds}s"
    print(f"   1. uWSGI, 1 worker, wrk 4 connections, {rounds} per run:")
    print("      @cache.cached ÷ bare for simple, redis with the near cache, redis without it")
    print("      (each ratio taken round by round, then the median of the rounds)")
    print(f"   2. through relay.py ({RELAY_DELAY_MS} ms each way), a cached page over one keep-alive")
    samples = max(args.samples // 10, 50)
    print(f"      connection each, {samples} of each interleaved; the tracking connection too.")
    print(f"      After a write by a client next to Redis, {max(args.samples // 60, 10)} times: how long")
    print("      the reader's near cache (through the relay, re-reading) still served the old value")
    print("      (stale), and when it first served the new one (fresh), from the write's reply;")
    print("      and a new app's first read, which starts tracking, against one without: in round trips")
    print(f"   3. in process, sets of a 1 KiB value through the app's cache, {args.samples} per app,")
    print("      batches interleaved: tracking off, on, on with a second tracking client (a 2nd worker)")
    print(f"   4. in process, hits interleaved call by call, {args.samples} of each: cache.get of a")
    print("      1 KiB value and the cached /example page; near hit signed/unsigned, redis, simple")
    runs, seen = [], []
    for number in range(NEAR_RUNS):
        started = time.monotonic()
        figures, modes = near_once(bench, redis_url)
        runs.append(figures)
        seen.append(modes)
        print(f"   run {number + 1}/{NEAR_RUNS}: {time.monotonic() - started:.0f}s")
    modes = {key: "/".join(sorted({m[key] for m in seen})) for key in seen[0]}
    shown = [f"{key}: {mode}" for key, mode in modes.items()]
    print("   near cache mode in each app measured (its /health or status()):")
    for start in range(0, len(shown), 3):
        print("     " + ", ".join(shown[start : start + 3]))
    print(f"   {'figure':<38}{'median':>10}{'min':>10}{'max':>10}   runs")
    for figure in runs[0]:
        values = [run[figure] for run in runs]
        unit = "x" if "÷" in figure else ""
        print(
            f"   {figure:<38}{num(median(values)):>9}{unit:1}{num(min(values)):>9}{unit:1}"
            f"{num(max(values)):>9}{unit:1}   {'  '.join(num(v) for v in values)}"
        )
    near_ratio = median([run["redis near ÷ simple"] for run in runs])
    verdict = "meets" if near_ratio >= 0.9 else "misses"
    print(f"   redis near hit / simple hit (median): {near_ratio:.3f}x: {verdict} the 0.9x target")


UPSTASH_RUNS = 3  # the upstash part is run this many times: median and min-max of each count
UPSTASH_VIEWS = 1000
MONTH = 30 * 24 * 3600  # seconds
FREE_COMMANDS = 500_000  # Upstash's free tier, a month (upstash.com/docs/redis/overall/billing)


def upstash_runs(env: dict[str, str], views: int, runs: int) -> list[list[dict]]:
    """upstash_commands.py ``runs`` times, at once: its figures are counts, not times."""
    command = [sys.executable, str(Path(__file__).parent / "upstash_commands.py"), str(views)]
    processes = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True) for _ in range(runs)]
    outputs = [process.communicate()[0] for process in processes]
    if any(process.returncode for process in processes):
        raise RuntimeError("upstash_commands.py failed (its error is above)")
    return [json.loads(output) for output in outputs]


def upstash_cost(bench: Bench, redis_url: str) -> None:
    print(f"\n== Upstash commands (issue 17): {UPSTASH_RUNS} runs; median and min-max of the runs")
    print("   The baked app in process (1 web worker, as a free account has), CACHE_TYPE=upstash, through")
    print("   the project's stand-in for Upstash's REST API (tests/cache/upstash_server.py), which counts")
    print(f"   every command, in front of redis-server. {UPSTASH_VIEWS} views per row, one every `gap` s of")
    print("   SIMULATED time: one clock drives the breaker, the near cache and the keys' expiry at the")
    print("   stand-in. /example is cached 60 s; /health writes and reads one key per call.")
    print(f"   A month (30 days) at that rate, and its share of the free {FREE_COMMANDS:,} commands.")
    runs = upstash_runs(bench.env("ours", REDIS_URL=redis_url), UPSTASH_VIEWS, UPSTASH_RUNS)
    print(f"   {'page':<9}{'NEAR_TTL':>9}{'gap s':>7}{'mode':>6}{'commands/1,000 views':>22}"
          f"{'min':>7}{'max':>7}{'a month':>12}{'of free':>9}")  # fmt: skip
    for row, *others in zip(*runs, strict=True):
        counts = [r["commands"] * 1000 / r["views"] for r in (row, *others)]
        per_view = median(counts) / 1000
        month = f"{per_view * MONTH / row['gap']:,.0f}" if row["gap"] >= 1 else "-"
        share = f"{per_view * MONTH / row['gap'] / FREE_COMMANDS:.0%}" if row["gap"] >= 1 else "-"
        print(
            f"   {row['page']:<9}{row['near_ttl']:>9}{row['gap']:>7g}{row['near_mode']:>6}"
            f"{median(counts):>22,.0f}{min(counts):>7,.0f}{max(counts):>7,.0f}{month:>12}{share:>9}"
        )
        if any(r["breaker_opened"] for r in (row, *others)):
            print("      WARNING: a breaker opened in this row: it counted the fallback, not Upstash")
    print("   (a month: one view every `gap` s for 30 days; /health every 60 s is an uptime monitor)")


def fmt(seconds: float) -> str:
    return f"{seconds * 1e3:.2f} ms"


def report(label: str, phase: str, result: dict, simple: dict) -> None:
    print(
        f"   {label:<20}{phase:<9}{result['requests']:>9}{result['errors']:>8}"
        f"{fmt(result['p50']):>11}{fmt(result['p99']):>11}{result['p99'] / simple['p99']:>15.2f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds per comparison")
    parser.add_argument("--seconds", type=int, default=2, help="seconds per wrk run")
    parser.add_argument("--phase", type=float, default=6, help="seconds per outage phase")
    parser.add_argument("--samples", type=int, default=3000, help="requests of each kind, latency")
    parser.add_argument(
        "--part", choices=["all", "hits", "signing", "outage", "near", "upstash", "stampede"], default="all"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        project = Path(cookiecutter(str(TEMPLATE), no_input=True, output_dir=str(workdir)))
        with servers.redis_server() as redis_url, servers.memcached_server() as memcached:
            bench = Bench(project, workdir, args)
            if args.part in ("all", "hits"):
                hit_cost(bench, redis_url, memcached)
                in_process(bench, redis_url)
                signing_cost(bench, redis_url, memcached)
            if args.part == "signing":
                signing_cost(bench, redis_url, memcached)
            if args.part in ("all", "hits", "signing"):
                memcached_round_trips(bench, memcached)
            if args.part in ("all", "outage"):
                outage(bench)
            if args.part in ("all", "near"):
                near_cache(bench, redis_url)
            if args.part in ("all", "upstash"):
                upstash_cost(bench, redis_url)
            if args.part in ("all", "stampede"):
                stampede(bench, redis_url)


if __name__ == "__main__":
    main()
