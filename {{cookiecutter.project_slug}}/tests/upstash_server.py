"""A local server that follows Upstash's REST contract and runs the commands on a real Redis.

The contract (upstash.com/docs/redis/features/restapi): `Authorization: Bearer <token>`; a
command is a JSON array POSTed to `/`, answered `{"result": ...}`; `/pipeline` takes an array of
commands and answers an array of `{"result": ...}` / `{"error": ...}`; a failing command is HTTP
400 `{"error": "..."}`; a wrong token is 401. Replies are Redis's own (RESP2): "OK", "PONG",
integers, strings, arrays, null. With TEST_UPSTASH_TLS_CERT and TEST_UPSTASH_TLS_KEY set it
serves HTTPS, as Upstash does; the client then needs REQUESTS_CA_BUNDLE to trust it.
"""

import json
import os
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import redis

TOKEN = "test-upstash-token"
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


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    tls: ssl.SSLContext | None = None

    def finish_request(self, request, client_address):
        if self.tls is not None:  # the handshake in the connection's thread, not the accept loop
            request = self.tls.wrap_socket(request, server_side=True)
        super().finish_request(request, client_address)

    def handle_error(self, request, client_address):
        pass


class UpstashServer:
    def __init__(self, redis_url: str):
        self.redis = redis.Redis.from_url(redis_url, protocol=2)
        self.redis.response_callbacks.clear()  # Redis's own replies, as Upstash passes them on
        self.requests = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out at once, as from Upstash

            def do_POST(self):
                server.requests += 1
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
                self.end_headers()
                self.wfile.write(data)

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
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def run_many(self, commands: list) -> list[dict]:
        pipeline = self.redis.pipeline(transaction=False)
        for command in commands:
            pipeline.execute_command(*command)
        return [
            {"error": str(reply)} if isinstance(reply, Exception) else {"result": _reply(reply)}
            for reply in pipeline.execute(raise_on_error=False)
        ]

    def run(self, command: list) -> dict:
        try:
            return {"result": _reply(self.redis.execute_command(*command))}
        except redis.ResponseError as error:
            return {"error": str(error)}
