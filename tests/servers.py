"""Real redis-server, memcached and tinyproxy processes on free loopback ports, for the tests.

TEST_REDIS_URL, TEST_REDIS_TLS_URL, TEST_MEMCACHED_SERVERS and TEST_HTTPS_PROXY point the tests
at servers that already run instead. With CI=true a server that can be neither found nor started is a failure.
"""

import contextlib
import http.client
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

IN_CI = os.environ.get("CI", "").lower() == "true"


def app_env(project: Path | None, **settings: str) -> dict[str, str]:
    """The environment of the app deployed from ``project``: this process's, without any cache
    setting or secret (those come from the project's .env), plus ``settings``. With no project,
    the WSGI file must find the project itself, as on PythonAnywhere."""
    skip = ("CACHE_", "SECRET_KEY", "PROJECT_HOME")
    env = {k: v for k, v in os.environ.items() if not k.startswith(skip)}
    env.update(settings)
    if project is not None:
        env["PROJECT_HOME"] = str(project)
    return env


# The project's WSGI file, loaded as PythonAnywhere's uWSGI loads it, answering the paths given.
SERVE_PAGES = """
import json, runpy, sys
from werkzeug.test import Client
client = Client(runpy.run_path(sys.argv[1])["application"])
answers = {path: client.get(path) for path in sys.argv[2:]}
print(json.dumps({path: [r.status_code, r.get_data(as_text=True)] for path, r in answers.items()}))
"""


def served(project: Path, *paths: str, **settings: str) -> dict[str, list]:
    """``paths`` as the project's pythonanywhere_wsgi.py serves them (its .env loaded), with
    ``settings`` in the environment: {path: [status, body]}."""
    wsgi = str(project / "pythonanywhere_wsgi.py")
    result = subprocess.run(
        [sys.executable, "-c", SERVE_PAGES, wsgi, *paths],
        cwd=project, env=app_env(project, **settings), capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return json.loads(result.stdout)


def upstash_settings(project: Path, redis_url: str) -> dict[str, str]:
    """UPSTASH_REDIS_REST_URL and _TOKEN of the baked project's own stand-in for Upstash's REST
    API (its tests/cache/upstash_server.py), started in this process in front of ``redis_url``."""
    path = project / "tests" / "cache" / "upstash_server.py"
    spec = importlib.util.spec_from_file_location(f"upstash_server_{abs(hash(path))}", path)
    module = sys.modules.get(spec.name)
    if module is None:  # loaded by file: the baked tests package would clash with ours
        module = sys.modules[spec.name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return {
        "UPSTASH_REDIS_REST_URL": module.upstash_url(redis_url),
        "UPSTASH_REDIS_REST_TOKEN": module.TOKEN,
    }


def missing(what: str) -> None:
    """Skip on a laptop, fail under CI: a test that needs a server must not pass without one."""
    message = f"{what} is not available"
    if IN_CI:
        pytest.fail(f"{message} (CI=true: a missing server is a failure)")
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, name: str, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode} at start")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{name} did not listen on 127.0.0.1:{port} within {seconds}s")


@contextmanager
def running(command: list[str], port: int, name: str):
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for_port(port, process, name)
        yield
    finally:
        stop(process, seconds=10)


def stop(process: subprocess.Popen, seconds: float = 15) -> None:
    """SIGTERM, and SIGKILL if it is still there after ``seconds``."""
    process.terminate()
    try:
        process.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def redis_command(port: int, *extra: str) -> list[str]:
    return [
        "redis-server", "--bind", "127.0.0.1", "--port", str(port),
        "--save", "", "--appendonly", "no", *extra,
    ]  # fmt: skip


@contextmanager
def redis_server():
    """Yield a redis:// URL."""
    if os.environ.get("TEST_REDIS_URL"):
        yield os.environ["TEST_REDIS_URL"]
        return
    if not shutil.which("redis-server"):
        missing("redis-server (install it, or set TEST_REDIS_URL)")
    port = free_port()
    with running(redis_command(port), port, "redis-server"):
        yield f"redis://127.0.0.1:{port}/0"


@contextmanager
def redis_tls_server(workdir: Path):
    """Yield a rediss:// URL served with a self-signed CA, which the URL names (ssl_ca_certs)."""
    if os.environ.get("TEST_REDIS_TLS_URL"):
        yield os.environ["TEST_REDIS_TLS_URL"]
        return
    if not shutil.which("redis-server") or not shutil.which("openssl"):
        missing("redis-server with openssl (install both, or set TEST_REDIS_TLS_URL)")
    ca, key, cert = make_certificates(workdir)
    port = free_port()
    tls = [
        "--tls-port", str(port), "--tls-cert-file", str(cert),
        "--tls-key-file", str(key), "--tls-ca-cert-file", str(ca), "--tls-auth-clients", "no",
    ]  # fmt: skip
    with running(redis_command(0, *tls), port, "redis-server (TLS)"):
        yield f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={ca}"


def make_certificates(workdir: Path, names: str = "IP:127.0.0.1,DNS:localhost") -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for ``names`` (subjectAltName) signed by it."""
    ca, ca_key = workdir / "ca.crt", workdir / "ca.key"
    key, csr, cert = workdir / "server.key", workdir / "server.csr", workdir / "server.crt"
    ext = workdir / "san.ext"
    ext.write_text(f"subjectAltName={names}\n")

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key),
            "-out", str(ca), "-days", "2", "-subj", "/CN=test CA")  # fmt: skip
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr),
            "-subj", "/CN=localhost")  # fmt: skip
    openssl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
            "-CAcreateserial", "-out", str(cert), "-days", "2", "-extfile", str(ext))  # fmt: skip
    return ca, key, cert


def memcached_command(port: int) -> list[str]:
    command = ["memcached", "-l", "127.0.0.1", "-p", str(port), "-U", "0"]
    if os.geteuid() == 0:
        command += ["-u", "root"]  # memcached refuses to run as root without it
    return command


@contextmanager
def memcached_server():
    """Yield a host:port list for MEMCACHED_SERVERS."""
    if os.environ.get("TEST_MEMCACHED_SERVERS"):
        yield os.environ["TEST_MEMCACHED_SERVERS"]
        return
    if not shutil.which("memcached"):
        missing("memcached (install it, or set TEST_MEMCACHED_SERVERS)")
    port = free_port()
    with running(memcached_command(port), port, "memcached"):
        yield f"127.0.0.1:{port}"


@contextmanager
def tinyproxy(workdir: Path):
    """Yield (proxy URL, its log file): Debian's tinyproxy on loopback, a proxy like the one free
    PythonAnywhere accounts must use. TEST_HTTPS_PROXY names one that already runs instead."""
    if os.environ.get("TEST_HTTPS_PROXY"):
        yield os.environ["TEST_HTTPS_PROXY"], None
        return
    if not shutil.which("tinyproxy"):
        missing("tinyproxy (apt-get install tinyproxy, or set TEST_HTTPS_PROXY)")
    port, log, conf = free_port(), workdir / "tinyproxy.log", workdir / "tinyproxy.conf"
    conf.write_text(
        f'Port {port}\nListen 127.0.0.1\nTimeout 60\nLogFile "{log}"\nLogLevel Connect\n'
        "MaxClients 100\nAllow 127.0.0.1\n"  # no ConnectPort line: CONNECT to any port
    )
    with running(["tinyproxy", "-d", "-c", str(conf)], port, "tinyproxy"):
        yield f"http://127.0.0.1:{port}", log


def uwsgi_binary() -> str:
    found = shutil.which("uwsgi", path=os.path.dirname(sys.executable)) or shutil.which("uwsgi")
    if not found:
        missing("uWSGI (pip install pyuwsgi)")
    return found


@contextmanager
def uwsgi(
    wsgi_file: Path,
    env: dict[str, str],
    log: Path,
    processes: int = 2,
    threads: int = 1,
    limitable: bool = False,
    binary: str | None = None,
):
    """Serve ``wsgi_file`` as PythonAnywhere does (uWSGI, workers forked after import; threads
    only as elsewhere); yield its URL. ``binary``: another virtualenv's uwsgi (pyuwsgi), which
    runs that virtualenv's Python.

    limitable: a test may lower the server's file size limit (RLIMIT_FSIZE, with prlimit), as a
    full disk: SIGXFSZ is ignored, so writes fail with EFBIG instead of killing the process, and
    the log goes through a pipe to this process, since the limit would stop it too."""
    port = free_port()
    command = [
        binary or uwsgi_binary(), "--http11-socket", f"127.0.0.1:{port}", "--wsgi-file", str(wsgi_file),
        "--master", "--processes", str(processes), "--threads", str(threads), "--need-app",
        "--die-on-term", "--disable-logging",
    ]  # fmt: skip
    with log.open("w") as out:
        process = subprocess.Popen(
            command,
            cwd=wsgi_file.parent,
            env=env,
            stdout=subprocess.PIPE if limitable else out,
            stderr=subprocess.STDOUT,
            restore_signals=not limitable,  # keeps Python's SIG_IGN of SIGXFSZ (and SIGPIPE)
        )
    relay = None
    if limitable:
        relay = threading.Thread(target=copy_lines, args=(process.stdout, log), daemon=True)
        relay.start()
    try:
        wait_for_port(port, process, "uwsgi", seconds=20)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(process)
        if relay is not None:
            relay.join(timeout=5)


def copy_lines(source, log: Path) -> None:
    with source, log.open("ab") as out:
        for line in source:
            out.write(line)
            out.flush()


def start_server(kind: str, port: int, *extra: str) -> subprocess.Popen:
    """A redis-server or memcached on ``port`` that a test may kill and start again; ``extra``
    options go to redis-server (later ones win)."""
    command = redis_command(port, *extra) if kind == "redis" else memcached_command(port)
    if not shutil.which(command[0]):
        missing(command[0])
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_port(port, process, command[0])
    return process


class Hung:
    """A server that accepts connections and never answers; ``connections`` counts them, so a
    test counts the requests that paid a timeout instead of timing them."""

    def __init__(self, port: int, held: list[socket.socket]):
        self.port, self._held = port, held

    @property
    def connections(self) -> int:
        return len(self._held)


@contextmanager
def hung_server():
    """Yield a Hung server on a free loopback port."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept():
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield Hung(listener.getsockname()[1], held)
    finally:
        stop.set()
        thread.join()
        for sock in held:
            sock.close()
        listener.close()


class Workers:
    """One keep-alive HTTP connection held to each uWSGI worker process, so a test can say which
    worker answers: a TCP connection stays with the process that accepted it, and uWSGI's
    http11-socket keeps it open between requests. Connections are opened (each held, so the
    next goes elsewhere) until ``processes`` distinct pids answered /health; the extra ones are
    closed. While held, each kept connection ties up one thread of its worker."""

    def __init__(self, url: str, processes: int = 2, attempts: int = 10):
        address = urlsplit(url)
        self.conns: list = []
        self.pids: list[int] = []
        extra = []
        for _ in range(attempts):
            conn = http.client.HTTPConnection(address.hostname, address.port, timeout=10)
            pid = self._json(conn, "/health")[1]["worker"]
            if pid in self.pids:
                extra.append(conn)
            else:
                self.conns.append(conn)
                self.pids.append(pid)
            if len(self.pids) == processes:
                break
        for conn in extra:
            conn.close()
        if len(self.pids) < processes:
            self.close()
            raise AssertionError(f"{attempts} connections reached {len(self.pids)} worker(s)")

    @staticmethod
    def _json(conn, path: str) -> tuple[int, Any]:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, json.loads(response.read())

    def get(self, worker: int, path: str) -> tuple[int, Any, float]:
        """(status, JSON body, monotonic time the request was sent) from worker ``worker``."""
        sent = time.monotonic()
        status, body = self._json(self.conns[worker], path)
        if isinstance(body, dict) and ("pid" in body or "worker" in body):
            pid = body.get("pid", body.get("worker"))
            assert pid == self.pids[worker], f"worker {worker} is pid {self.pids[worker]}, {pid} answered"
        return status, body, sent

    def close(self) -> None:
        for conn in self.conns:
            conn.close()

    def __enter__(self) -> "Workers":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def socket_holders(port: int, pids=None) -> set[int]:
    """The processes among ``pids`` (None: all) that hold the TCP socket whose local port is ``port`` (a
    client's end of a loopback connection, as CLIENT LIST shows it in addr): one process for a
    connection it opened itself; a socket opened before a fork is held by parent and children."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[9] != "0":
                inodes.add(f"socket:[{fields[9]}]")
    if pids is None:
        pids = [int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit()]
    holders = set()
    for pid in pids:
        try:
            fds = list(Path(f"/proc/{pid}/fd").iterdir())
        except OSError:
            continue  # gone meanwhile
        for fd in fds:
            try:
                if os.readlink(fd) in inodes:
                    holders.add(pid)
                    break
            except OSError:
                continue  # closed meanwhile
    return holders


def parent_pid(pid: int) -> int:
    """The parent of ``pid`` (a uWSGI worker's is its master)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])  # after "(comm)": state, ppid


class TrackingHungRelay:
    """A relay in front of a redis-server that forwards every connection but the near cache's
    tracking one, which it holds unanswered from its first command that names it on: the
    connection's CLIENT SETNAME near-cache, or CLIENT TRACKING. redis-py 8 speaks RESP3 on every
    connection (HELLO 3 opens data connections too), so the name is what tells them apart.
    ``hung`` lists the local ports of the clients it held, and ``held_by`` the processes that
    held each one when it was caught."""

    NAMES = (b"near-cache", b"TRACKING")

    def __init__(self, target_port: int):
        self.target_port = target_port
        self.hung: list[int] = []
        self.held_by: list[set[int]] = []
        self.connections = 0
        self._sockets: list[socket.socket] = []
        self._stop = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, address = self._listener.accept()
                server = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                continue
            self.connections += 1
            for sock in (client, server):
                sock.settimeout(None)
                self._sockets.append(sock)
            threading.Thread(target=self._pump, args=(client, server, address[1]), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, None), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, client_port: int | None) -> None:
        try:
            while data := source.recv(65536):
                if client_port is not None and any(name in data for name in self.NAMES):
                    self.hung.append(client_port)
                    self.held_by.append(socket_holders(client_port))
                    return  # held: neither forwarded nor closed
                sink.sendall(data)
        except OSError:
            pass
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._stop.set()
        self._listener.close()
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.close()
