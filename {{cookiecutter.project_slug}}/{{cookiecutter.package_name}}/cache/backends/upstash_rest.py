"""Upstash Redis over its REST API, for accounts that can only make HTTP(S) requests.

Free PythonAnywhere accounts reach the internet only through an HTTP(S) proxy, so a rediss://
connection cannot get out; Upstash also serves each database over HTTPS
(upstash.com/docs/redis/features/restapi): a command is a JSON array POSTed to the database's
URL with `Authorization: Bearer <token>`, the answer `{"result": ...}` or `{"error": ...}`.

UpstashRedis offers the few redis-py calls that cachelib's RedisCache, our scoped clear, our
inc() and our lock() make, so the Redis backend is reused as it is. Unlike Upstash's own SDK, it
has connect and read timeouts, never sleeps to retry (the breaker decides when to try again) and is
bytes-safe: JSON carries text, so every value is stored base64-encoded, behind a marker.
requests keeps the connection alive and honours https_proxy/HTTPS_PROXY, as PythonAnywhere sets.
"""

import base64
import binascii
import http.client
import socket
import ssl
from collections.abc import Iterator, Sequence
from typing import Any

import requests
import urllib3

ENCODED = "b64:"  # marks a base64-encoded value (every value: the app's are signed, never digits)


class UpstashError(Exception):
    """Upstash cannot serve: unreachable, a refused token, or an answer that is not its API's."""


class UpstashConnectionLost(UpstashError):
    """The connection the request went on was closed or reset under it: a kept-alive one that
    the server or a firewall dropped while it was idle (upstash.Upstash.errors())."""


class UpstashCommandError(Exception):
    """Upstash answered the command with an error (a wrong type, a bad argument; its quota used
    up, which upstash.Upstash.errors() names): its message is Upstash's own."""


# What a connection closed or reset under a request raises, however urllib3 wraps it (through a
# proxy's tunnel it is a ProxyError around a RemoteDisconnected); a refused or timed-out
# connection is none of these.
_LOST = (
    urllib3.exceptions.ProtocolError,
    http.client.RemoteDisconnected,
    ConnectionResetError,
    BrokenPipeError,
    ssl.SSLEOFError,  # over TLS, a connection closed under the request
)


def _lost(error: BaseException) -> bool:
    """Whether ``error`` (a requests one) says its connection was closed or reset under it."""
    found: list[BaseException] = [error]
    for cause in found:
        if isinstance(cause, _LOST):
            return True
        for inner in (*cause.args, getattr(cause, "reason", None)):
            if isinstance(inner, BaseException) and len(found) < 10:
                found.append(inner)
    return False


def encode(value: Any) -> Any:
    if isinstance(value, bytes):
        return ENCODED + base64.b64encode(value).decode()
    return value  # keys (str), numbers: JSON carries them as they are


def decode(result: Any) -> Any:
    if isinstance(result, str):
        data = result.encode()
        if result.startswith(ENCODED):
            try:
                return base64.b64decode(data[len(ENCODED) :], validate=True)
            except binascii.Error:
                pass  # not written by this client: its signature check refuses it as it is
        return data
    if isinstance(result, list):
        return [decode(item) for item in result]
    return result


def encoded(command: Sequence[Any]) -> list[Any]:
    return [encode(part) for part in command]


def set_command(
    name: str, value: bytes, ex: int | None, nx: bool = False, px: int | None = None
) -> tuple[Any, ...]:
    expiry = ("EX", int(ex)) if ex else ("PX", int(px)) if px else ()
    return ("SET", name, value, *expiry, *(("NX",) if nx else ()))


class UpstashRedis:
    def __init__(self, url: str, token: str, timeout: float):
        self.url = url.rstrip("/")
        self.timeout = (timeout, timeout)  # connect, read
        self._token = token
        self.session = self._session()

    def _session(self) -> requests.Session:
        session = requests.Session()  # no retries: requests' adapters default to none
        session.mount("https://", _NoDelayAdapter())
        session.mount("http://", _NoDelayAdapter())
        session.headers["Authorization"] = f"Bearer {self._token}"
        return session

    def forked(self) -> None:
        """In a new process: its own keep-alive connections, never the parent's (two processes
        on one TLS connection garble it). The parent's are dropped here, not closed."""
        self.session = self._session()

    def _post(self, path: str, body: list[Any]) -> Any:
        try:
            response = self.session.post(self.url + path, json=body, timeout=self.timeout)
        except requests.RequestException as error:
            kind = UpstashConnectionLost if _lost(error) else UpstashError
            raise kind(f"{type(error).__name__}: {error}") from None
        if response.status_code == 401:
            raise UpstashError("Upstash refused the token (401): check UPSTASH_REDIS_REST_TOKEN")
        try:
            answer = response.json()
        except ValueError:
            raise UpstashError(f"{self.url} answered {response.status_code}, not JSON") from None
        if isinstance(answer, dict) and "error" in answer:
            if response.status_code >= 500:
                raise UpstashError(f"Upstash answered {response.status_code}: {answer['error']}")
            raise UpstashCommandError(answer["error"])
        return answer

    def execute(self, *command: Any) -> Any:
        return decode(self._post("", encoded(command))["result"])

    # The redis-py calls cachelib's RedisCache and our Redis backend make.
    def get(self, name: str) -> Any:
        return self.execute("GET", name)

    def mget(self, keys: list[str]) -> Any:
        return self.execute("MGET", *keys) if keys else []

    def set(
        self,
        name: str,
        value: bytes,
        ex: int | None = None,
        nx: bool = False,
        px: int | None = None,
    ) -> bool:
        # Not set (NX, and the key exists): Upstash answers {"result": null}, as Redis a nil.
        return bool(self.execute(*set_command(name, value, ex, nx, px)) == b"OK")

    def delete(self, *names: str) -> int:
        return int(self.execute("DEL", *names))

    def unlink(self, *names: str) -> int:
        return int(self.execute("UNLINK", *names))

    def exists(self, *names: str) -> int:
        return int(self.execute("EXISTS", *names))

    def eval(self, script: str, numkeys: int, *keys_and_args: Any) -> Any:
        """A Lua script, run atomically by the server (Upstash supports EVAL over REST)."""
        return self.execute("EVAL", script, numkeys, *keys_and_args)

    def scan_iter(self, match: str | None = None, count: int | None = None) -> Iterator[str]:
        cursor = "0"
        while True:
            options = [*(["MATCH", match] if match else []), *(["COUNT", count] if count else [])]
            # Keys as they are: only values carry the base64 marker.
            cursor, keys = self._post("", ["SCAN", cursor, *options])["result"]
            yield from keys
            if cursor == "0":
                return

    def pipeline(self, transaction: bool = False) -> "Pipeline":
        return Pipeline(self)


# urllib3 writes a request's headers, then its body. It turns Nagle off (TCP_NODELAY) on the
# connections it opens itself, but requests opens a proxy's with no socket options: there the
# body waits for the proxy to ACK the headers, which a delayed ACK puts off 40 ms. Measured
# through tinyproxy: 44 ms a command, 0.7 ms without it. Free PythonAnywhere accounts reach
# Upstash through a proxy.
NO_DELAY = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]


class _NoDelayAdapter(requests.adapters.HTTPAdapter):
    """requests' adapter, TCP_NODELAY on every connection, through a proxy too (both methods are
    requests' documented points to pass pool options)."""

    # types-requests before 2.32 leaves both untyped: ignored there, checked after.
    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        options = {**kwargs, "socket_options": NO_DELAY}
        super().init_poolmanager(*args, **options)  # type: ignore[no-untyped-call, unused-ignore]

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        options = {**proxy_kwargs, "socket_options": NO_DELAY}
        return super().proxy_manager_for(proxy, **options)  # type: ignore[no-untyped-call, unused-ignore]


class Pipeline:
    """Commands sent together to /pipeline, as set_many() uses them."""

    def __init__(self, client: UpstashRedis):
        self.client = client
        self.commands: list[list[Any]] = []

    def set(self, name: str, value: bytes, ex: int | None = None) -> None:
        self.commands.append(encoded(set_command(name, value, ex)))

    def execute(self) -> list[bool]:
        if not self.commands:
            return []
        answers = self.client._post("/pipeline", self.commands)
        self.commands = []
        # Each command's error comes in its own {"error": ...}: raised, the first one, as
        # redis-py's pipeline raises it (a quota used up refuses them all).
        for answer in answers:
            if isinstance(answer, dict) and "error" in answer:
                raise UpstashCommandError(answer["error"])
        return [decode(answer.get("result")) == b"OK" for answer in answers]
