"""A loopback TCP proxy whose connections can all be cut at once: a real network drop."""

from __future__ import annotations

import contextlib
import socket
import threading


class DroppableProxy:
    """Forwards 127.0.0.1:`port` to an upstream port; `drop()` resets every open connection.

    Everything clients send is kept in `sent`, so a test can read the request headers a browser
    used (such as `Last-Event-ID` on an EventSource reconnect).
    """

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._sent = bytearray()
        threading.Thread(target=self._accept, name="proxy-accept", daemon=True).start()

    @property
    def url(self) -> str:
        """The proxy's base URL."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def sent(self) -> str:
        """Every byte clients sent so far, as text."""
        with self._lock:
            return self._sent.decode("latin-1")

    def drop(self) -> int:
        """Cut every open connection, as a network drop would; returns how many were open."""
        with self._lock:
            sockets, self._open = list(self._open), set()
        for sock in sockets:
            _close(sock)
        return len(sockets) // 2

    def close(self) -> None:
        """Stop accepting and cut everything."""
        _close(self._listener)
        self.drop()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            with self._lock:
                self._open.update((client, upstream))
            for source, target, record in ((client, upstream, True), (upstream, client, False)):
                threading.Thread(
                    target=self._pump, args=(source, target, record), daemon=True
                ).start()

    def _pump(self, source: socket.socket, target: socket.socket, record: bool) -> None:
        try:
            while data := source.recv(65536):
                if record:
                    with self._lock:
                        self._sent.extend(data)
                target.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                self._open.difference_update((source, target))
            _close(source)
            _close(target)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed by the other side
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
