"""A TCP relay in front of a real server, which a test can cut and restore: a real outage."""

import contextlib
import socket
import struct
import threading


class Relay:
    """``max_clients``: past that many open connections, a new one gets Redis's own refusal and
    is closed, as a server at its maxclients (a hosted plan's connection limit) answers it
    (redis/src/networking.c, acceptCommonHandler: "-ERR max number of clients reached").

    ``round_trips`` counts the times a client spoke after the server had answered it (or first,
    on a new connection): a request and its answer, however many packets either took."""

    MAX_CLIENTS_ERROR = b"-ERR max number of clients reached\r\n"

    def __init__(self, host: str, port: int, max_clients: int | None = None):
        self.target = (host, port)
        self.max_clients = max_clients
        self._open: set[socket.socket] = set()  # the clients' connections relayed now
        self.round_trips = 0
        self._answered: dict[socket.socket, bool] = {}  # a client's: has the server answered?
        self.port = 0
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._flowing = threading.Event()
        self._flowing.set()
        self.restore()

    def restore(self) -> None:
        """Listen (again, on the same port) and relay every connection to the server."""
        listener = socket.create_server(("127.0.0.1", self.port))
        self.port = listener.getsockname()[1]
        self._track(listener)
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self, reset: bool = False) -> None:
        """Refuse new connections and drop the open ones, as when the server dies; ``reset``:
        with a TCP reset instead of a close, as a firewall or NAT that forgot them answers."""
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            with contextlib.suppress(OSError):
                if reset and _connected(sock):  # closed with a reset: no linger
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                else:  # a listener, or a plain close: wakes the thread blocked on it
                    sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def freeze(self) -> None:
        """Hold every byte, closing nothing: a connection a NAT or firewall silently dropped."""
        self._flowing.clear()

    def thaw(self) -> None:
        """Deliver what was held, in order, and flow again."""
        self._flowing.set()

    def _track(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            if self.max_clients is not None and len(self._open) >= self.max_clients:
                with contextlib.suppress(OSError):
                    client.sendall(self.MAX_CLIENTS_ERROR)
                client.close()
                continue
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            self._track(client)
            self._track(server)
            with self._lock:
                self._open.add(client)
            for source, sink in ((client, server), (server, client)):
                pump = threading.Thread(target=self._pump, args=(source, sink, client), daemon=True)
                pump.start()

    def _pump(self, source: socket.socket, sink: socket.socket, client: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                self._flowing.wait()
                self._count(source is client, client)
                sink.sendall(data)
        except OSError:
            pass
        with self._lock:
            self._open.discard(client)
            self._answered.pop(client, None)
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def _count(self, asks: bool, client: socket.socket) -> None:
        """Before the data is passed on: an answer is marked before the client can read it, so
        the request it then sends is counted."""
        with self._lock:
            if asks and self._answered.get(client, True):
                self.round_trips += 1
            self._answered[client] = not asks


def _connected(sock: socket.socket) -> bool:
    try:
        sock.getpeername()
    except OSError:
        return False  # a listener
    return True
