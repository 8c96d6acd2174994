"""A TCP proxy on loopback that trickles one direction of every connection, a byte a second.

In front of the moto S3 server it plays the endpoint that answers, but too slowly to ever trip
a per-socket read timeout: ``direction="down"`` trickles responses (slow reads), ``"up"``
trickles requests (a slow upload, so the server never receives a whole PUT body in time).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time


class TrickleProxy:
    """Forwards ``127.0.0.1:<port>`` to ``target_port``, one direction at ``rate`` bytes/s."""

    def __init__(self, target_port: int, direction: str = "down", rate: float = 1.0) -> None:
        if direction not in ("down", "up"):
            raise ValueError(f"direction must be 'down' or 'up'; got {direction!r}")
        self.target_port, self.direction, self.rate = target_port, direction, rate
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.closed = threading.Event()
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self.closed.set()
        for sock in [self.listener, *self.sockets]:
            with contextlib.suppress(OSError):
                sock.close()

    def _accept(self) -> None:
        while not self.closed.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.target_port))
            self.sockets += [client, server]
            slow_up = self.direction == "up"
            threading.Thread(target=self._pump, args=(client, server, slow_up), daemon=True).start()
            threading.Thread(
                target=self._pump, args=(server, client, not slow_up), daemon=True
            ).start()

    def _pump(self, source: socket.socket, sink: socket.socket, slow: bool) -> None:
        with contextlib.suppress(OSError):
            while not self.closed.is_set():
                data = source.recv(1 if slow else 65536)
                if not data:
                    break
                sink.sendall(data)
                if slow:
                    time.sleep(1.0 / self.rate)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)
