"""A stand-in for MemCachier: TLS and MemCachier's ASCII login in front of a real memcached.

What it enforces, and where each rule comes from:
- TLS only, with a certificate for 127.0.0.1 and localhost signed by a CA of its own
  (make_certificates, with the openssl command). MemCachier: "If running over the Internet,
  you'll want to use our TLS support" (blog.memcachier.com, 2017-02-23, "ASCII Protocol
  Support"); its servers' certificates are signed by MemCachier's own root CA, which clients are
  to trust (MemCachier's docs, "Encrypted Connections (TLS)"; memcachier/memcachier-tls-buildpack,
  whose stunnel checks them against https://www.memcachier.com/MemCachierRootCA.pem).
  Stricter: MemCachier also takes plain connections (inside its data centres) and, in that
  buildpack, serves TLS on port 11219; this serves TLS only, on a free port.
- The first command on a connection is the login, ``set <username> 0 0 <length>`` followed by
  the password as the value, answered ``STORED`` (the blog post, and MemCachier's docs,
  "Supported Protocols: ASCII & Binary"). Stricter: flags and expiry must be 0, as in their only
  example; MemCachier may accept others.
- Anything else first is refused and the connection closed: another command, a wrong username,
  password or length. MemCachier does not document its answer, so this one is a guess, with
  two variants: ``refusal = "error"`` answers as memcached's own ASCII login does (memcached's
  proto_text.c: ``CLIENT_ERROR unauthenticated`` for another command, ``CLIENT_ERROR
  authentication failure`` for a bad login; memcached then keeps the connection, this closes
  it); ``refusal = "silent"`` closes without a word. A third, ``refusal = "echo"``, is no
  server's known behaviour: its error line quotes the login it got, password included, as a
  careless server might, so a test can check that the app never shows what a server says.
- A login not complete within ``login_within`` seconds of connecting (TLS handshake included)
  closes the connection: "You'll need to do this quickly! As we timeout connections that don't
  authenticate within a few seconds" (the docs). How many seconds is a guess (2 by default).
- After the login, every byte is relayed both ways to the real memcached.

It records each connection (``connections``): the bytes it received in clear before the TLS
handshake, whether the handshake succeeded, the bytes received before the login was accepted or
refused, and who logged in. So a test can assert that no byte of a password crossed a
connection whose certificate the client did not accept.
"""

import contextlib
import select
import shutil
import socket
import ssl
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

USERNAME = "test-user"
PASSWORD = "test-password-0f3a9c"  # MemCachier's are 32 hex digits; any printable ASCII works
LOGIN_WITHIN = 2.0
UNAUTHENTICATED = b"CLIENT_ERROR unauthenticated\r\n"
AUTH_FAILURE = b"CLIENT_ERROR authentication failure\r\n"
MAX_LINE = 2048  # a login line is at most "set " + 250 bytes of username + " 0 0 " + a length


@dataclass
class Connection:
    """One connection to the stand-in, as it saw it."""

    in_clear: bytes = b""  # the first bytes it received, before the TLS handshake
    handshake: bool = False  # the TLS handshake succeeded: the client accepted the certificate
    before_login: bytes = b""  # what it received over TLS until the login was accepted or refused
    user: str | None = None  # who logged in
    done: threading.Event = field(default_factory=threading.Event)  # the login phase is over

    def saw(self, secret: str) -> bool:
        return secret.encode() in self.in_clear + self.before_login


@dataclass
class Certificates:
    """A test CA and certificates: ``server`` for 127.0.0.1 and localhost and ``other_host`` for
    another name, both signed by ``ca``; ``stranger`` for 127.0.0.1, signed by another CA."""

    ca: Path
    server: tuple[Path, Path]
    other_host: tuple[Path, Path]
    stranger: tuple[Path, Path]


def make_certificates(workdir: Path) -> Certificates:
    """Certificates made with the openssl command (P-256 keys: quick to make and to use)."""
    command = shutil.which("openssl")
    if command is None:
        raise FileNotFoundError("openssl is not installed")

    def openssl(*args: str) -> None:
        subprocess.run([command, *args], check=True, capture_output=True, cwd=workdir)

    def ca(name: str) -> tuple[Path, Path]:
        cert, key = workdir / f"{name}.crt", workdir / f"{name}.key"
        openssl(
            *("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"),
            *("-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", f"/CN={name}"),
            *("-addext", "basicConstraints=critical,CA:TRUE"),
            *("-addext", "keyUsage=critical,keyCertSign,cRLSign"),
        )
        return cert, key

    def signed(name: str, by: tuple[Path, Path], names: str) -> tuple[Path, Path]:
        cert, key, request = (workdir / f"{name}.{ext}" for ext in ("crt", "key", "csr"))
        extensions = workdir / f"{name}.ext"
        extensions.write_text(
            f"subjectAltName={names}\nbasicConstraints=CA:FALSE\n"
            "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
            "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n"
        )
        openssl(
            *("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"),
            *("-keyout", str(key), "-out", str(request), "-subj", f"/CN={name}"),
        )
        openssl(
            *("x509", "-req", "-in", str(request), "-CA", str(by[0]), "-CAkey", str(by[1])),
            *("-CAcreateserial", "-out", str(cert), "-days", "2", "-extfile", str(extensions)),
        )
        return cert, key

    test_ca, stranger_ca = ca("test-ca"), ca("stranger-ca")
    return Certificates(
        ca=test_ca[0],
        server=signed("server", test_ca, "IP:127.0.0.1,DNS:localhost"),
        other_host=signed("other-host", test_ca, "DNS:memcachier.example"),
        stranger=signed("stranger", stranger_ca, "IP:127.0.0.1,DNS:localhost"),
    )


class MemCachier:
    """The stand-in, listening on 127.0.0.1:``port``, in front of the memcached at ``upstream``.
    A test may change ``accounts``, ``refusal``, ``login_within`` and the certificate (serve())."""

    def __init__(self, upstream: tuple[str, int], certificate: tuple[Path, Path]):
        self.upstream = upstream
        self.accounts = {USERNAME: PASSWORD}
        self.refusal = "error"
        self.login_within = LOGIN_WITHIN
        self.connections: list[Connection] = []
        self.serve(certificate)
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def serve(self, certificate: tuple[Path, Path]) -> None:
        """Present this certificate (and key) to new connections."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*certificate)
        self._context = context

    def logins(self, user: str) -> int:
        return sum(connection.user == user for connection in self.connections)

    def since(self, mark: int, wait: float = 5.0) -> list[Connection]:
        """The connections made after the first ``mark``, once each is past its login phase."""
        made = self.connections[mark:]
        for connection in made:
            assert connection.done.wait(wait), "a connection still in its login phase"
        return made

    def kill(self) -> None:
        """Drop every open connection, as a restart of MemCachier's server would."""
        with self._lock:
            sockets, self._open = self._open, set()
        for sock in sockets:
            with contextlib.suppress(OSError):
                socket.socket.shutdown(sock, socket.SHUT_RDWR)  # the socket's, TLS or not

    def close(self) -> None:
        self._listener.close()
        self.kill()

    def _track(self, sock: socket.socket) -> None:
        with self._lock:
            self._open.add(sock)

    def _accept(self) -> None:
        while True:
            try:
                raw, _ = self._listener.accept()
            except OSError:
                return  # closed
            connection = Connection()
            self.connections.append(connection)  # now: a test counts it before it is served
            threading.Thread(target=self._serve, args=(raw, connection), daemon=True).start()

    def _serve(self, raw: socket.socket, connection: Connection) -> None:
        self._track(raw)
        deadline = time.monotonic() + self.login_within
        tls: ssl.SSLSocket | None = None
        try:
            raw.settimeout(self.login_within)
            connection.in_clear = raw.recv(MAX_LINE, socket.MSG_PEEK)
            tls = self._context.wrap_socket(raw, server_side=True)
            connection.handshake = True
            self._track(tls)
            pending = self._login(tls, connection, deadline)
        except OSError:  # a refused certificate, a timeout, a reset: closed
            pending = None
        finally:
            connection.done.set()
        if pending is None:
            with contextlib.suppress(OSError):
                (tls or raw).close()
            return
        assert tls is not None
        self._relay(tls, pending)

    def _login(self, tls: ssl.SSLSocket, connection: Connection, deadline: float) -> bytes | None:
        """Read and check the login; what the client sent after it, or None when refused."""
        data = b""

        def receive() -> bool:
            nonlocal data
            tls.settimeout(max(deadline - time.monotonic(), 0.001))
            chunk = tls.recv(65536)
            data += chunk
            connection.before_login += chunk
            return bool(chunk)

        while b"\r\n" not in data:
            if len(data) > MAX_LINE or not receive():
                return self._refuse(tls, UNAUTHENTICATED, connection.before_login)
        line, _, data = data.partition(b"\r\n")
        words = line.split(b" ")
        if words[0] != b"set":
            return self._refuse(tls, UNAUTHENTICATED, connection.before_login)
        if len(words) != 5 or words[2:4] != [b"0", b"0"] or not words[4].isdigit():
            return self._refuse(tls, AUTH_FAILURE, connection.before_login)
        length = int(words[4])
        while len(data) < length + 2:
            if length > MAX_LINE or not receive():
                return self._refuse(tls, AUTH_FAILURE, connection.before_login)
        password, ending, data = data[:length], data[length : length + 2], data[length + 2 :]
        user = words[1].decode("ascii", "replace")
        if ending != b"\r\n" or password != self.accounts.get(user, "").encode() or not password:
            return self._refuse(tls, AUTH_FAILURE, connection.before_login)
        tls.settimeout(None)
        tls.sendall(b"STORED\r\n")
        connection.user = user
        return data

    def _refuse(self, tls: ssl.SSLSocket, answer: bytes, login: bytes = b"") -> None:
        if self.refusal == "echo":
            answer = b"CLIENT_ERROR bad login: " + login.replace(b"\r\n", b" ")[:200] + b"\r\n"
        if self.refusal in ("error", "echo"):
            tls.sendall(answer)
        with contextlib.suppress(OSError):
            socket.socket.shutdown(tls, socket.SHUT_RDWR)
        return None

    def _relay(self, tls: ssl.SSLSocket, pending: bytes) -> None:
        """Relay both ways in this one thread: an SSL socket is not to be used by two at once."""
        try:
            upstream = socket.create_connection(self.upstream, timeout=5)
        except OSError:
            tls.close()
            return
        upstream.settimeout(None)
        self._track(upstream)
        try:
            if pending:
                upstream.sendall(pending)
            while True:
                # Bytes already decrypted in the SSL socket do not wake select(): read them first.
                ready = [tls] if tls.pending() else select.select([tls, upstream], [], [])[0]
                for source in ready:
                    data = source.recv(65536)
                    if not data:
                        return
                    (upstream if source is tls else tls).sendall(data)
        except (OSError, ValueError):  # ValueError: select() on a socket closed meanwhile
            return
        finally:
            for sock in (tls, upstream):
                with contextlib.suppress(OSError):
                    sock.close()
