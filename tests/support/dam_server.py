"""A small DAM on 127.0.0.1 for HTTP delivery tests: stores every PUT by path, like a real one.

It behaves as RFC 9110 and the IETF Idempotency-Key draft describe a careful receiver: a PUT
with ``If-None-Match: *`` to a path that already holds something is refused with 412, unless
its ``Idempotency-Key`` is the one that stored it (a retry), which gets the first answer again.
Runs aiohttp in a background thread, so sync tests and worker processes reach it over a socket.
``delay_s`` makes it a slow DAM: each PUT is answered that long after it arrived (PUTs overlap),
and ``peak_in_flight`` says how many it held at once. ``fail_status`` (e.g. 503) makes it a
down DAM: every PUT is answered with that status and nothing is stored (recorded in ``uploads``).
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

from aiohttp import web

__all__ = ["Dam", "Upload", "dam_server"]


@dataclass(frozen=True)
class Upload:
    """One request the DAM received, and the status it answered."""

    method: str
    path: str
    headers: Mapping[str, str]  # lower-cased names
    body: bytes
    status: int


class Dam:
    """``objects`` maps each stored path to its bytes; ``uploads`` lists every request."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self.fail_status: int | None = None
        self._in_flight = 0
        self.peak_in_flight = 0
        self._lock = threading.Lock()
        self._objects: dict[str, tuple[bytes, str | None]] = {}
        self._uploads: list[Upload] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self.url = ""

    @property
    def objects(self) -> dict[str, bytes]:
        with self._lock:
            return {path: data for path, (data, _) in self._objects.items()}

    @property
    def uploads(self) -> list[Upload]:
        with self._lock:
            return list(self._uploads)

    def start(self) -> Dam:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._serve(sock), self._loop).result(timeout=10)
        return self

    def stop(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            asyncio.run_coroutine_threadsafe(runner.cleanup(), self._loop).result(timeout=10)
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
        self._loop.close()

    async def _serve(self, sock: socket.socket) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("PUT", "/{tail:.*}", self._put)
        runner = web.AppRunner(app, shutdown_timeout=0.5)
        await runner.setup()
        await web.SockSite(runner, sock).start()
        self._runner = runner

    async def _put(self, request: web.Request) -> web.Response:
        self._in_flight += 1  # on the server's own loop: no lock needed
        self.peak_in_flight = max(self.peak_in_flight, self._in_flight)
        try:
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            return await self._store(request)
        finally:
            self._in_flight -= 1

    async def _store(self, request: web.Request) -> web.Response:
        body = await request.read()
        headers = {key.lower(): value for key, value in request.headers.items()}
        key = headers.get("idempotency-key")
        with self._lock:
            failing = self.fail_status
            if failing is not None:
                self._uploads.append(Upload(request.method, request.path, headers, body, failing))
                return web.Response(status=failing)
            held = self._objects.get(request.path)
            if held is not None and key is not None and held[1] == key:
                status = 201  # a retry of the call that stored it: the same answer
            elif held is not None and headers.get("if-none-match") == "*":
                status = 412
            else:
                self._objects[request.path] = (body, key)
                status = 201
            self._uploads.append(Upload(request.method, request.path, headers, body, status))
        return web.Response(status=status)


@contextmanager
def dam_server(delay_s: float = 0.0) -> Iterator[Dam]:
    dam = Dam(delay_s).start()
    try:
        yield dam
    finally:
        dam.stop()
