"""Test helpers: a real webhook receiver on 127.0.0.1 that verifies Standard Webhooks signatures.

It runs aiohttp in a background thread (tests call ``asyncio.run`` themselves), answers with
scripted replies, and records every request with whether its signature verified.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from standardwebhooks import Webhook, WebhookVerificationError

from schemas.records import AssetCompleted, AssetKind, CompletionStatus

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@dataclass(frozen=True)
class Answer:
    status: int = 204
    headers: Mapping[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


@dataclass(frozen=True)
class Received:
    path: str
    headers: Mapping[str, str]  # lower-cased names
    body: bytes
    verified: bool
    payload: Any  # the verified JSON, None when verification failed
    status: int = 0  # what the receiver answered


class Receiver:
    """Answers every path from a queue of :class:`Answer`; 204 once the queue is empty."""

    def __init__(
        self, secret: str = SECRET, port: int = 0, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        self._secret = secret
        self._port = port
        self._ssl_context = ssl_context
        self._lock = threading.Lock()
        self._answers: list[Answer] = []
        self._seen: list[Received] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self.port = port
        self.url = f"http://127.0.0.1:{port}"

    def script(self, *answers: Answer) -> None:
        with self._lock:
            self._answers.extend(answers)

    @property
    def received(self) -> list[Received]:
        with self._lock:
            return list(self._seen)

    def start(self) -> Receiver:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self._port))
        self.port = sock.getsockname()[1]
        scheme = "https" if self._ssl_context is not None else "http"
        self.url = f"{scheme}://127.0.0.1:{self.port}"
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
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        runner = web.AppRunner(app, shutdown_timeout=0.5)
        await runner.setup()
        await web.SockSite(runner, sock, ssl_context=self._ssl_context).start()
        self._runner = runner

    async def _dispatch(self, request: web.Request) -> web.Response:
        body = await request.read()
        headers = {key.lower(): value for key, value in request.headers.items()}
        try:
            payload = Webhook(self._secret).verify(body, headers)
            verified = True
        except WebhookVerificationError:
            payload, verified = None, False
        with self._lock:
            answer = self._answers.pop(0) if self._answers else Answer()
            status = answer.status if verified else 401
            self._seen.append(Received(request.path, headers, body, verified, payload, status))
        if not verified:
            return web.Response(status=401, text="bad signature")
        if answer.delay_s:
            await asyncio.sleep(answer.delay_s)
        return web.Response(status=answer.status, headers=dict(answer.headers))


def make_completion(**overrides: Any) -> AssetCompleted:
    fields: dict[str, Any] = {
        "request_id": "req-1",
        "idempotency_key": "idem-1",
        "tenant": "acme",
        "campaign_id": "spring",
        "kind": AssetKind.IMAGE,
        "attempt": 1,
        "status": CompletionStatus.DELIVERED,
        "location": "file:///var/out/acme/spring/req-1.png",
        "sha256": "ab" * 32,
        "media_type": "image/png",
        "completed_at": datetime(2025, 5, 1, 12, 0, 0, 123000, tzinfo=UTC),
    }
    fields.update(overrides)
    return AssetCompleted(**fields)
