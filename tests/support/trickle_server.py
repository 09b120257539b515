"""A hostile HTTP server on 127.0.0.1 that answers one byte at a time, ``interval_s`` apart.

Each byte arrives well inside a per-read timeout, so only a deadline on the whole call ends it:
the test double for a receiver that keeps a webhook call (or any client call) alive for ever by
trickling its status line and headers. Plain sockets in a thread, so both sync tests and other
processes reach it.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator

#: A status line and headers that never end (no blank line), so the client waits for more.
ENDLESS_HEADERS = b"HTTP/1.1 200 OK\r\n" + b"x-slow: " + b"a" * 4096


class TrickleServer:
    """Accepts connections, reads each request's head, then sends ``response`` byte by byte."""

    def __init__(self, response: bytes = ENDLESS_HEADERS, interval_s: float = 0.5) -> None:
        self.response = response
        self.interval_s = interval_s
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen()
        self.port: int = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._accepted = 0
        self._threads: list[threading.Thread] = []

    @property
    def accepted(self) -> int:
        """Connections accepted so far."""
        with self._lock:
            return self._accepted

    def start(self) -> TrickleServer:
        thread = threading.Thread(target=self._accept, daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self._sock.close()
        for thread in self._threads:
            thread.join(timeout=5)

    def _accept(self) -> None:
        self._sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self._accepted += 1
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            head = b""
            with contextlib.suppress(OSError):
                while b"\r\n\r\n" not in head and len(head) < 65536:
                    chunk = conn.recv(4096)
                    if not chunk:
                        return
                    head += chunk
            for index in range(len(self.response)):
                if self._stop.wait(self.interval_s):
                    return
                try:
                    conn.sendall(self.response[index : index + 1])
                except OSError:  # the client gave up: what a deadline should make it do
                    return


@contextlib.contextmanager
def trickle_server(
    response: bytes = ENDLESS_HEADERS, interval_s: float = 0.5
) -> Iterator[TrickleServer]:
    server = TrickleServer(response, interval_s).start()
    try:
        yield server
    finally:
        server.stop()
