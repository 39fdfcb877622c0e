"""A local server that follows Upstash's REST contract and runs the commands on a real Redis.

The contract (upstash.com/docs/redis/features/restapi): `Authorization: Bearer <token>`; a
command is a JSON array POSTed to `/`, answered `{"result": ...}`; `/pipeline` takes an array of
commands and answers an array of `{"result": ...}` / `{"error": ...}`, one per command, the
others run whatever one of them answers (upstash.com/blog/pipeline); a failing command is HTTP
400 `{"error": "..."}`; a wrong token is 401. Replies are Redis's own (RESP2): "OK", "PONG",
integers, strings, arrays, null. With TEST_UPSTASH_TLS_CERT and TEST_UPSTASH_TLS_KEY set it
serves HTTPS, as Upstash does; the client then needs REQUESTS_CA_BUNDLE to trust it.

The monthly command quota (Quota): Upstash's free tier allows 500K commands a month
(upstash.com/docs/redis/overall/billing), and past it answers every command with
`ERR max requests limit exceeded. Limit: 500000, Usage: 500000. See
https://upstash.com/docs/redis/troubleshooting/max_requests_limit for details` (the form quoted
in DIYgod/RSSHub#20937; the troubleshooting page names the error). Here `quota` commands are
served, then each one is answered that error: over REST a 400 for `/` (the contract's form of a
failing command) and an `{"error"}` per command in a `/pipeline`. What counts is a command, so a
pipeline of N commands counts N: that is our reading of "monthly commands" (Upstash prices per
command and describes a pipeline as commands sent together; no source we read says a pipeline
counts once). `commands` counts every command received, refused ones included, so a test can say
what a client sent.
"""

import json
import os
import socket
import ssl
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import redis

TOKEN = "test-upstash-token"
QUOTA_ERROR = (
    "ERR max requests limit exceeded. Limit: {limit}, Usage: {usage}. "
    "See https://upstash.com/docs/redis/troubleshooting/max_requests_limit for details"
)
_servers: dict[str, "UpstashServer"] = {}


def upstash_url(redis_url: str) -> str:
    """The URL of a server in front of ``redis_url``, started on first use in this process."""
    if redis_url not in _servers:
        _servers[redis_url] = UpstashServer(redis_url)
    return _servers[redis_url].url


def _reply(value):
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, list):
        return [_reply(item) for item in value]
    return value


class Quota:
    """Upstash's command quota: ``limit`` commands are served (None: no limit), then every one is
    refused with Upstash's error, until new_month(). Shared by both stand-ins (upstash_redis.py is
    the Redis-protocol one); safe across their threads."""

    def __init__(self, limit: int | None = None):
        self.limit = limit
        self.commands = 0  # every command received, refused or not
        self.used = 0  # the commands served this month: Upstash's "Usage"
        self._lock = threading.Lock()

    def take(self) -> str | None:
        """Count one command: None if it may run, else the error to answer instead."""
        with self._lock:
            self.commands += 1
            if self.limit is not None and self.used >= self.limit:
                return QUOTA_ERROR.format(limit=self.limit, usage=self.used)
            self.used += 1
            return None

    def use_up(self, but: int = 0) -> None:
        """The month's quota is used up but for ``but`` more commands: then every one is refused."""
        with self._lock:
            self.limit = self.used + but

    def new_month(self, limit: int | None = None) -> None:
        """The quota resets, as at the start of a month: ``limit`` more commands are served."""
        with self._lock:
            self.used, self.limit = 0, limit


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # not 5: many test processes call it at once on a busy machine
    tls: ssl.SSLContext | None = None

    def finish_request(self, request, client_address):
        if self.tls is not None:  # the handshake in the connection's thread, not the accept loop
            request = self.tls.wrap_socket(request, server_side=True)
        super().finish_request(request, client_address)

    def handle_error(self, request, client_address):
        # A client that hangs up (or fails its TLS handshake) is no news; anything else is the
        # stand-in's own failure, said on stderr, which pytest shows with the failing test.
        error = sys.exc_info()[1]
        if not isinstance(error, ConnectionError | ssl.SSLError):
            print(f"upstash stand-in: {type(error).__name__}: {error}", file=sys.stderr)


class UpstashServer:
    def __init__(self, redis_url: str, quota: Quota | None = None):
        self.redis = redis.Redis.from_url(redis_url, protocol=2)
        self.redis.response_callbacks.clear()  # Redis's own replies, as Upstash passes them on
        self.requests = 0
        self.quota = quota or Quota()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out at once, as from Upstash

            def do_POST(self):
                server.requests += 1
                # ACK at once. urllib3 writes the headers, then the body; a proxy that relays
                # each write on its own with Nagle on (tinyproxy) holds the body until this end
                # ACKs the headers, which a delayed ACK puts off 40 ms: 40 ms a command, minutes
                # over the suite, and nothing the tests are about.
                if hasattr(socket, "TCP_QUICKACK"):  # Linux
                    self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    return self.answer(401, {"error": "Unauthorized"})
                try:
                    commands = json.loads(body)
                except ValueError:
                    return self.answer(400, {"error": "ERR invalid JSON"})
                if self.path == "/pipeline":
                    return self.answer(200, server.run_many(commands))
                if self.path != "/":
                    return self.answer(404, {"error": "Not Found"})
                answer = server.run(commands)
                return self.answer(400 if "error" in answer else 200, answer)

            def answer(self, status: int, content) -> None:
                data = json.dumps(content).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                # Headers and body in one write, for the same proxy as do_POST's ACK.
                self._headers_buffer.append(b"\r\n" + data)
                self.flush_headers()

            def log_message(self, *args):
                pass

        self.http = _Server(("127.0.0.1", 0), Handler)
        if os.environ.get("TEST_UPSTASH_TLS_CERT"):
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(
                os.environ["TEST_UPSTASH_TLS_CERT"], os.environ["TEST_UPSTASH_TLS_KEY"]
            )
            self.http.tls = context
        scheme = "https" if self.http.tls else "http"
        self.url = f"{scheme}://127.0.0.1:{self.http.server_address[1]}"
        # A short poll: close() waits for the loop to see it (a test's stand-in of its own).
        serve = {"poll_interval": 0.05}
        threading.Thread(target=self.http.serve_forever, kwargs=serve, daemon=True).start()

    @property
    def commands(self) -> int:
        """Every command received since the server started, refused ones included."""
        return self.quota.commands

    def close(self) -> None:
        self.http.shutdown()
        self.http.server_close()

    def run_many(self, commands: list) -> list[dict]:
        refusals = [self.quota.take() for _ in commands]
        pipeline = self.redis.pipeline(transaction=False)
        for command, refused in zip(commands, refusals, strict=True):
            if refused is None:
                pipeline.execute_command(*command)
        replies = iter(pipeline.execute(raise_on_error=False))
        answers = []
        for refused in refusals:
            if refused is not None:
                answers.append({"error": refused})
                continue
            reply = next(replies)
            answers.append(
                {"error": str(reply)} if isinstance(reply, Exception) else {"result": _reply(reply)}
            )
        return answers

    def run(self, command: list) -> dict:
        refused = self.quota.take()
        if refused is not None:
            return {"error": refused}
        try:
            return {"result": _reply(self.redis.execute_command(*command))}
        except redis.ResponseError as error:
            return {"error": str(error)}
