"""MemCachier's login, sent by pymemcache on every connection it opens.

MemCachier, the hosted memcached, wants a login on each connection. pymemcache has no SASL
(pinterest/pymemcache#175), and MemCachier's ASCII protocol has its own login (blog.memcachier.com,
2017-02-23, "ASCII Protocol Support"; MemCachier's docs, "Supported Protocols"): the first command
is ``set <username> 0 0 <length>`` with the password as its value, answered ``STORED``; a
connection that does not log in within a few seconds is closed. pymemcache opens a new connection
after any error, and every command calls ``_connect`` when it has none: the login goes there, as
in MemCachier's own Django backend (memcachier/django-ascii). What MemCachier answers a wrong
login is not documented: anything but ``STORED``, or a closed connection, is a refusal.

The password crosses only a checked connection (memcached.py refuses it without TLS):
pymemcache's ``_connect`` completes the TLS handshake, certificate and host name checked, before
the login is sent; a failed check raises ssl.SSLError, an OSError: an outage, like a refused
login. tests/cache/test_memcachier.py pins the private parts used: ``Client._connect``, ``sock``.
"""

import socket
from typing import Any

from pymemcache.client.base import Client

MAX_ANSWER = 512  # bytes of the answer to a login read at most: STORED is 8 with its CRLF


class MemcachedLoginError(OSError):
    """The server refused the login, or closed the connection instead of answering it."""


class LoginClient(Client):  # type: ignore[misc]  # pymemcache ships no type hints
    """pymemcache's client for one server, logging in as ``login`` (username, password) on each
    new connection."""

    def __init__(self, server: Any, *, login: tuple[str, str], **options: Any):
        super().__init__(server, **options)
        self.username, self.password = (part.encode("ascii") for part in login)

    def _connect(self) -> None:
        super()._connect()  # TCP, then the TLS handshake and its checks, if any
        sock: socket.socket = self.sock
        try:
            sock.settimeout(self.connect_timeout)  # "quickly": it is part of connecting
            length = len(self.password)
            sock.sendall(b"set %b 0 0 %d\r\n%b\r\n" % (self.username, length, self.password))
            answer = _first_line(sock)
            sock.settimeout(self.timeout)
            if answer != b"STORED\r\n":
                raise MemcachedLoginError(self._refusal(answer))
        except BaseException:
            self.close()
            raise

    def _refusal(self, answer: bytes) -> str:
        host, port = self.server if isinstance(self.server, tuple) else (self.server, "")
        # The password hidden before the line is cut: a cut could leave part of it.
        said = answer.partition(b"\r\n")[0].replace(self.password, b"***")[:80]
        how = f"answered {said!r}" if answer else "closed the connection without an answer"
        return (
            f"memcached at {host}:{port} refused the login of user "
            f"{self.username.decode()!r} ({how}): check MEMCACHED_USERNAME and MEMCACHED_PASSWORD"
        )


def _first_line(sock: socket.socket) -> bytes:
    """What the server sent up to and with its first CRLF: b"" if it closed the connection."""
    data = b""
    while b"\r\n" not in data and len(data) < MAX_ANSWER:
        chunk = sock.recv(MAX_ANSWER)
        if not chunk:
            break
        data += chunk
    return data
