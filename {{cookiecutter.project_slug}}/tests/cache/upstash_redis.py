"""A stand-in for Upstash's Redis-protocol endpoint (what CACHE_TYPE=redis with REDIS_URL=rediss://
...upstash.io reaches): a relay to a real Redis that reads each command, counts it against a
Quota (upstash_server.py), and answers as Upstash does where it differs from Redis:

- past the quota, every command is answered `-ERR max requests limit exceeded. Limit: ...,
  Usage: .... See https://upstash.com/docs/redis/troubleshooting/max_requests_limit for
  details` instead of being run: the error ioredis raised over Upstash's Redis protocol in
  DIYgod/RSSHub#20937 (a ReplyError, ioredis's class for an error reply);
- `CLIENT TRACKING` is refused with an error: it is not among Upstash's supported commands
  (upstash.com/docs/redis/overall/rediscompatibility); the wording of the refusal is ours.

Commands are relayed one at a time, each answer read whole before the next command goes, so a
refusal is answered in its place in a pipeline. The client speaks plain redis:// to it; the
relay reaches the server as TEST_REDIS_URL says (rediss:// with its ssl_ca_certs, a password).
"""

import contextlib
import socket
import ssl
import threading
from urllib.parse import parse_qsl, unquote, urlsplit, urlunsplit

from .upstash_server import Quota

TRACKING_REFUSED = b"-ERR unknown subcommand 'TRACKING' (this server has no CLIENT TRACKING)\r\n"


def read_command(stream) -> tuple[list[bytes], bytes] | None:
    """The next command a client sent (RESP: an array of bulk strings) and its bytes as sent;
    None when the client closed the connection."""
    head = stream.readline()
    if not head:
        return None
    if not head.startswith(b"*"):
        raise ValueError(f"not a RESP command: {head[:40]!r}")
    raw, parts = [head], []
    for _ in range(int(head[1:])):
        size_line = stream.readline()
        data = stream.read(int(size_line[1:]) + 2)
        raw += [size_line, data]
        parts.append(data[:-2])
    return parts, b"".join(raw)


def read_reply(stream) -> bytes:
    """One whole reply of the server (RESP2 or RESP3), as sent."""
    line = stream.readline()
    if not line:
        raise ConnectionError("the server closed the connection")
    kind, size = line[:1], line[1:-2]
    if kind in b"$=!":  # bulk string, verbatim string, bulk error: a length, then the data
        length = int(size)
        return line + (stream.read(length + 2) if length >= 0 else b"")
    if kind in b"*~>":  # array, set, push
        return line + b"".join(read_reply(stream) for _ in range(max(int(size), 0)))
    if kind == b"%":  # map: key, value pairs
        return line + b"".join(read_reply(stream) for _ in range(2 * int(size)))
    return line  # simple string, error, integer, null, double, boolean, big number


class UpstashRedis:
    def __init__(self, redis_url: str, quota: Quota | None = None):
        self.target = urlsplit(redis_url)
        self.quota = quota or Quota()
        self.listener = socket.create_server(("127.0.0.1", 0))
        port = self.listener.getsockname()[1]
        # The client's URL: plain, this relay's port, the same database.
        self.url = urlunsplit(("redis", f"127.0.0.1:{port}", self.target.path, "", ""))
        self._connections: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def commands(self) -> int:
        return self.quota.commands

    def close(self) -> None:
        self.listener.close()
        for sock in self._connections:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _upstream(self) -> socket.socket:
        target = self.target
        sock = socket.create_connection((target.hostname, target.port or 6379), timeout=10)
        if target.scheme == "rediss":
            options = dict(parse_qsl(target.query))
            context = ssl.create_default_context(cafile=options.get("ssl_ca_certs"))
            sock = context.wrap_socket(sock, server_hostname=target.hostname)
        if target.password:
            user, password = unquote(target.username or "default"), unquote(target.password)
            auth = [b"AUTH", user.encode(), password.encode()]
            sock.sendall(b"*3\r\n" + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in auth))
            sock.recv(1024)  # +OK
        return sock

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # closed
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            server = self._upstream()
        except OSError:
            client.close()
            return
        self._connections += [client, server]
        for sock in (client, server):  # each answer goes at once, not held for the last one's ACK
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        requests, replies = client.makefile("rb"), server.makefile("rb")
        try:
            while (command := read_command(requests)) is not None:
                parts, raw = command
                refused = self.quota.take()
                if refused is not None:
                    client.sendall(b"-" + refused.encode() + b"\r\n")
                elif [part.upper() for part in parts[:2]] == [b"CLIENT", b"TRACKING"]:
                    client.sendall(TRACKING_REFUSED)
                else:
                    server.sendall(raw)
                    client.sendall(read_reply(replies))
        except (OSError, ValueError, ConnectionError):
            pass
        finally:
            for sock in (client, server):
                with contextlib.suppress(OSError):
                    sock.close()
