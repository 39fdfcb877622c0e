"""benchmarks --part stampede (issue 20): what the expiry of a slow cached page costs when four
single-threaded workers (a paid plan's shape) serve eight busy clients, this template against
plain Flask-Caching; and what a 304 saves on /example.

The slow view (bench_wsgi.py's /bench/slow, @cache.cached(timeout=2)) takes 0.3 s to make its
page, and appends a line per regeneration to a log every worker writes; the benchmark reads it.
This module is stdlib only: bench_wsgi.py imports the view's work from it in every worker.

The clients send each request over a connection of its own, as PythonAnywhere's front end hands
each request to whichever worker is free: a kept-alive connection ties a single-threaded uWSGI
worker to one client (measured: 8 keep-alive clients on 4 workers, 4 of them waited the whole
run). HTTP/1.0, because uWSGI closes the connection after the response then; an HTTP/1.1 request
with "Connection: close" kept the worker until the client closed (measured). The TIME_WAIT is
then on the server's side, and no client port waits.
"""

import collections
import json
import math
import os
import socket
import statistics
import threading
import time
import urllib.parse
import urllib.request
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

REGENERATION_SECONDS = 0.3  # what the slow view takes to make its page
REGENERATION_TIMEOUT = 2  # seconds the slow view is cached
SLOW_PATH, HIT_PATH = "/bench/slow", "/bench/slow-hit"  # the same view, cached 2 s and an hour
PROCESSES = 4  # uWSGI workers, one thread each
CLIENTS = 8
DRIVE_SECONDS = 12.0  # the slow view, per side and backend, each run
HIT_SECONDS = 6.0  # then the same view cached an hour: a plain hit's latency, the reference
RUNS = 3
SLOW = 0.25  # seconds: a request that took longer paid for (or waited on) a regeneration
# Regenerations of one expiry: each starts less than EXPIRY_GAP after the latest end in its group.
# A page written lives at least 1 s (2 s timeout; cachelib's filesystem cache rounds the expiry
# down to a whole second), so the next expiry's first regeneration starts later than that.
EXPIRY_GAP = 0.5
SERVERS = [("redis", "ours"), ("redis", "plain"), ("filesystem", "ours"), ("filesystem", "plain")]
LABELS = {"ours": "this template", "plain": "plain Flask-Caching"}
GOALS = {"regenerations / expiry": 1.2, "requests > 250 ms / expiry": 1.5, "p99 ÷ plain-hit p99": 2.0}
PAGE = "<p>A page that takes a while to make.</p>\n" * 20


def regenerate(view: str) -> str:
    """The slow view's work: REGENERATION_SECONDS, then one line in BENCH_REGEN_LOG."""
    started = time.monotonic()  # one clock for every process of the machine
    time.sleep(REGENERATION_SECONDS)
    ended = time.monotonic()
    log = os.environ.get("BENCH_REGEN_LOG")
    if log:
        record(Path(log), view, started, ended)
    return PAGE + f"<p>Made by process {os.getpid()} at {started:.6f}.</p>\n"


def record(log: Path, view: str, started: float, ended: float) -> None:
    # O_APPEND: each worker's line lands whole at the end, whatever the others write meanwhile.
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, f"{view} {started:.6f} {ended:.6f} {os.getpid()}\n".encode())
    finally:
        os.close(fd)


def regenerations(log: Path, view: str, since: float) -> list[tuple[float, float]]:
    """(start, end) of each regeneration of ``view`` logged that started at ``since`` or later."""
    if not log.exists():
        return []
    found = []
    for line in log.read_text().splitlines():
        name, started, ended, _pid = line.split()
        if name == view and float(started) >= since:
            found.append((float(started), float(ended)))
    return found


def expiries(regens: list[tuple[float, float]]) -> int:
    """How many expiries ``regens`` answered: in order of start, a regeneration that starts
    within EXPIRY_GAP of the latest end so far is one more regeneration of the same expiry."""
    count, latest_end = 0, -math.inf
    for started, ended in sorted(regens):
        if started > latest_end + EXPIRY_GAP:
            count += 1
        latest_end = max(latest_end, ended)
    return count


@dataclass
class Reply:
    status: int
    headers: dict[str, str]  # names in lower case
    body: bytes
    received: int  # bytes of the response: status line, headers and body
    sent: int  # bytes of the request
    seconds: float  # from connecting to the server's close


def parse(raw: bytes, sent: int = 0, seconds: float = 0.0) -> Reply:
    """A whole HTTP response as read until the server closed; ValueError if it is not one."""
    head, found, body = raw.partition(b"\r\n\r\n")
    status_line, *fields = head.decode("latin-1").split("\r\n")
    version, _, rest = status_line.partition(" ")
    code = rest[:3]
    if not found or not version.startswith("HTTP/") or not code.isdigit():
        raise ValueError(f"not an HTTP response: {raw[:60]!r}")
    headers = {}
    for field in fields:
        name, _, value = field.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = headers.get("content-length", str(len(body)))
    if length != str(len(body)):
        raise ValueError(f"a body of {len(body)} bytes, Content-Length {length}")
    return Reply(int(code), headers, body, len(raw), sent, seconds)


def address(url: str) -> tuple[str, int]:
    parts = urllib.parse.urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 80


def get(server: tuple[str, int], path: str, headers: dict[str, str] | None = None) -> Reply:
    """GET ``path`` over a connection of its own (HTTP/1.0: the server closes it after the response)."""
    lines = [f"GET {path} HTTP/1.0", f"Host: {server[0]}:{server[1]}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    started = time.perf_counter()
    with socket.create_connection(server, timeout=30) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return parse(b"".join(chunks), len(request), time.perf_counter() - started)


def drive(url: str, path: str, seconds: float, clients: int = CLIENTS) -> dict:
    """``clients`` threads GET ``path`` back to back for ``seconds``: each request's latency,
    the errors (not a 200, or no whole response), and when it started (time.monotonic())."""
    server = address(url)
    done: list[list[tuple[float, bool]]] = [[] for _ in range(clients)]
    started = time.monotonic()
    deadline = started + seconds

    def client(mine: list[tuple[float, bool]]) -> None:
        while time.monotonic() < deadline:
            sent = time.perf_counter()
            try:
                ok = get(server, path).status == 200
            except (OSError, ValueError):
                ok = False
            mine.append((time.perf_counter() - sent, ok))

    threads = [threading.Thread(target=client, args=(mine,)) for mine in done]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    results = [result for mine in done for result in mine]
    return {
        "started": started,
        "latencies": [latency for latency, _ in results],
        "errors": sum(not ok for _, ok in results),
    }


def percentile(latencies: list[float], p: int) -> float:
    return statistics.quantiles(latencies, n=100, method="inclusive")[p - 1]


def figures(slow: dict, hit: dict, regens: list[tuple[float, float]]) -> dict[str, float]:
    """One side's figures from one run: ``slow`` and ``hit`` are drive()'s results on the
    expiring view and on the plain hit, ``regens`` the regenerations during ``slow``."""
    count = expiries(regens)

    def per_expiry(value: int) -> float:
        return value / count if count else math.nan

    p99, hit_p99 = percentile(slow["latencies"], 99), percentile(hit["latencies"], 99)
    return {
        "expiries": count,
        "regenerations": len(regens),
        "regenerations / expiry": per_expiry(len(regens)),
        "requests > 250 ms / expiry": per_expiry(sum(t > SLOW for t in slow["latencies"])),
        "p50 ms": percentile(slow["latencies"], 50) * 1e3,
        "p99 ms": p99 * 1e3,
        "max ms": max(slow["latencies"]) * 1e3,
        "plain-hit p99 ms": hit_p99 * 1e3,
        "p99 ÷ plain-hit p99": p99 / hit_p99,
        "plain hit: requests > 250 ms": sum(t > SLOW for t in hit["latencies"]),
        "requests": len(slow["latencies"]),
        "errors": slow["errors"] + hit["errors"],
    }


def spread(values: list[float]) -> tuple[float, float, float]:
    """Median, min and max of the runs that have a value (NaN: no expiry in that run)."""
    known = [v for v in values if not math.isnan(v)]
    if not known:
        return math.nan, math.nan, math.nan
    return statistics.median(known), min(known), max(known)


def num(value: float) -> str:
    if math.isnan(value):
        return "-"
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"


def cell(values: list[float], unit: str = "") -> str:
    middle, low, high = spread(values)
    return f"{num(middle)}{unit} ({num(low)}-{num(high)}{unit})"


def table(results: dict[tuple[str, str], list[dict[str, float]]]) -> list[str]:
    """The figures side by side, median (min-max) of the runs; then this template against the goals."""
    lines = [f"   {'median (min-max) of the runs':<34}{LABELS['ours']:<26}{LABELS['plain']}"]
    backends = list(dict.fromkeys(backend for backend, _ in results))
    for backend in backends:
        lines.append(f"   {backend}")
        for name in results[backend, "ours"][0]:
            unit = "x" if "÷" in name else ""
            ours, plain = ([run[name] for run in results[backend, side]] for side in ("ours", "plain"))
            lines.append(f"     {name:<32}{cell(ours, unit):<26}{cell(plain, unit)}")
    lines.append(f"   {'goals for this template (medians)':<38}" + "".join(f"{b:<20}" for b in backends))
    for name, goal in GOALS.items():
        unit = "x" if "÷" in name else ""
        verdicts = []
        for backend in backends:
            middle = spread([run[name] for run in results[backend, "ours"]])[0]
            verdict = "-" if math.isnan(middle) else ("meets" if middle <= goal else "misses")
            verdicts.append(f"{num(middle)}{unit}: {verdict}")
        lines.append(f"     {f'{name} <= {goal:g}{unit}':<36}" + "".join(f"{v:<20}" for v in verdicts))
    return lines


def health(url: str) -> dict:
    with urllib.request.urlopen(url + "/health") as response:
        return json.load(response)["cache"]


def stampede(bench, redis_url: str) -> None:
    """The part: ``bench`` is run.py's Bench (serve() starts uWSGI with the bench app)."""
    view = f"@cache.cached(timeout={REGENERATION_TIMEOUT})"
    print(f"""
== Stampede (issue 20): {RUNS} runs; median and min-max of the runs
   uWSGI, {PROCESSES} workers of 1 thread; {CLIENTS} clients back to back, a new connection per request
   (HTTP/1.0: uWSGI hands each to a free worker, as PythonAnywhere's front end does). The view
   takes {REGENERATION_SECONDS} s, {view}, driven {DRIVE_SECONDS:g} s; then the same view cached
   an hour (a plain hit: no expiry), {HIT_SECONDS:g} s. Each run: ours and plain on redis, then on
   filesystem (the next run in reverse order). Ours: the baked project's `cache`; plain:
   flask_caching.Cache, RedisCache on the same Redis, or FileSystemCache.
   Before each drive, one request makes the page afresh: the drive meets its expiries only.
   regenerations: the view's runs, as each worker logged them. An expiry: a group of regenerations,
   each starting within {EXPIRY_GAP} s of the latest end in its group (a page written lives at least
   1 s, so the next expiry's regenerations start later). requests > 250 ms: as the clients timed
   them; p50/p99: of every request of the {DRIVE_SECONDS:g} s.""")
    results: dict[tuple[str, str], list[dict[str, float]]] = {}
    with ExitStack() as stack:
        servers: dict[tuple[str, str], tuple[str, Path]] = {}
        for backend, side in SERVERS:
            log = bench.workdir / f"regenerations-{side}-{backend}.log"
            settings = {
                "CACHE_TYPE": backend,
                "REDIS_URL": redis_url,
                "CACHE_DIR": str(bench.workdir / f"cache-stampede-{side}-{backend}"),
                "BENCH_REGEN_LOG": str(log),
            }
            servers[backend, side] = stack.enter_context(bench.serve(side, PROCESSES, **settings)), log
        for url, _ in servers.values():  # every worker warm, both pages made once
            drive(url, SLOW_PATH, 1)
            drive(url, HIT_PATH, 1)
        order = list(SERVERS)
        for number in range(RUNS):
            started = time.monotonic()
            for key in order:
                url, log = servers[key]
                # The page made afresh first: what the drive meets is expiries, not a cache the
                # other servers' drives left cold (the entry's grace may have passed meanwhile).
                urllib.request.urlopen(url + SLOW_PATH).read()
                slow = drive(url, SLOW_PATH, DRIVE_SECONDS)
                hit = drive(url, HIT_PATH, HIT_SECONDS)
                regens = regenerations(log, "slow", slow["started"])
                results.setdefault(key, []).append(figures(slow, hit, regens))
            order.reverse()  # A B C D D C B A ...: none goes first every time
            print(f"   run {number + 1}/{RUNS}: {time.monotonic() - started:.0f}s")
        caches = {backend: health(servers[backend, "ours"][0]) for backend, side in SERVERS if side == "ours"}
        said = [
            f"{name}: {cache.get('active')}, near {cache.get('near', {}).get('mode')}"
            for name, cache in caches.items()
        ]
        print("   this template's cache as each server's /health says: " + "; ".join(said))
        for backend, cache in caches.items():
            if cache.get("last_error"):
                print(f"   WARNING: {backend}: the breaker opened: {cache['last_error']}")
        for line in table(results):
            print(line)
        not_modified(servers["redis", "ours"][0], max(bench.args.samples // 3, 100))


def not_modified(url: str, samples: int) -> None:
    """What a 304 saves on /example: a GET with the ETag of a first response against a full GET."""
    print("\n== What a 304 saves (issue 20): /example of the default bake (cached 60 s), this template,")
    print(f"   redis, uWSGI {PROCESSES} workers; {samples} full GETs and {samples} conditional GETs")
    print("   (If-None-Match: the ETag of the latest 200), interleaved, a connection per request.")
    print("   Bytes: the HTTP response as received (status line, headers, body); time: from connecting")
    print("   to the server's close; medians")
    server = address(url)
    first = get(server, "/example")
    etag = first.headers.get("etag")
    print(f"   first response: {first.status}, ETag: {etag or '-'}, "
          f"Cache-Control: {first.headers.get('cache-control', '-')}")  # fmt: skip
    full: list[Reply] = []
    conditional: list[Reply] = []
    for number in range(samples):
        if not etag:
            full.append(get(server, "/example"))
            continue
        for kind in ("full", "conditional") if number % 2 else ("conditional", "full"):
            if kind == "full":
                full.append(get(server, "/example"))
                continue
            reply = get(server, "/example", {"If-None-Match": etag})
            conditional.append(reply)
            if reply.status == 200:  # the page changed (it expired): ask with its new ETag
                etag = reply.headers.get("etag", etag)

    def row(label: str, replies: list[Reply]) -> str:
        received = statistics.median(r.received for r in replies)
        sent = statistics.median(r.sent for r in replies)
        seconds = statistics.median(r.seconds for r in replies)
        return f"   {label:<22}{received:>8,.0f} bytes  (request {sent:,.0f} bytes)  {seconds * 1e3:7.3f} ms"

    print(row(f"full 200 ({len(full)})", full))
    if any(r.status != 200 for r in full):
        print(f"   WARNING: full GETs answered {sorted({r.status for r in full})}, not only 200")
    if not etag:
        print("   no ETag: 304 not supported")
        return
    statuses = collections.Counter(r.status for r in conditional)
    print(row(f"conditional ({len(conditional)})", conditional))
    print("   conditional answers: " + ", ".join(f"{n} x {status}" for status, n in sorted(statuses.items())))
    if not statuses[304]:
        print("   ETag given, but If-None-Match never answered 304: 304 not supported")
        return
    not_modified_replies = [r for r in conditional if r.status == 304]
    full_bytes = statistics.median(r.received for r in full)
    saved_bytes = full_bytes - statistics.median(r.received for r in not_modified_replies)
    full_time = statistics.median(r.seconds for r in full)
    saved_time = full_time - statistics.median(r.seconds for r in not_modified_replies)
    print(
        f"   a 304 saves {saved_bytes:,.0f} bytes ({saved_bytes / full_bytes:.0%}) and "
        f"{saved_time * 1e3:.3f} ms ({saved_time / full_time:.0%}) of a full 200 (medians of the 304s)"
    )
