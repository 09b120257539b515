"""Test helpers: one real aiohttp server on 127.0.0.1 speaking the three alert channel shapes.

* ``POST /slack``: a Slack incoming webhook: a JSON object with a non-empty ``text``; ``ok``.
* ``POST /v2/enqueue``: PagerDuty Events API v2: ``routing_key`` (32 chars here, like a real
  integration key), ``event_action`` trigger/acknowledge/resolve, a ``dedup_key``, and for a
  trigger a ``payload`` with ``summary`` (<= 1024), ``source`` and a known ``severity``;
  ``202 {"status":"success",...}`` or ``400 {"status":"invalid event"}`` like the real one.
* ``POST /hook``: a Standard Webhooks receiver: 401 unless the signature verifies.

Every call is recorded with whether it was valid; ``fail_next`` scripts error answers first.
It runs in a background thread so tests can drive it from any event loop.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from standardwebhooks import Webhook, WebhookVerificationError

HOOK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
ROUTING_KEY = "R0UT1NGKEYR0UT1NGKEYR0UT1NGKEY12"
SEVERITIES = ("critical", "error", "warning", "info")
ACTIONS = ("trigger", "acknowledge", "resolve")


@dataclass(frozen=True)
class Call:
    channel: str  # slack | pagerduty | hook
    body: Any  # the JSON, None if it was not JSON
    headers: dict[str, str]
    status: int
    valid: bool


class AlertReceivers:
    def __init__(self, hook_secret: str = HOOK_SECRET) -> None:
        self._secret = hook_secret
        self._lock = threading.Lock()
        self._calls: list[Call] = []
        self._fail: dict[str, list[int]] = {}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self.url = ""

    def calls(self, channel: str | None = None) -> list[Call]:
        with self._lock:
            return [c for c in self._calls if channel is None or c.channel == channel]

    def fail_next(self, channel: str, *statuses: int) -> None:
        with self._lock:
            self._fail.setdefault(channel, []).extend(statuses)

    def start(self) -> AlertReceivers:
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
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    async def _serve(self, sock: socket.socket) -> None:
        app = web.Application()
        app.router.add_post("/slack", self._slack)
        app.router.add_post("/v2/enqueue", self._pagerduty)
        app.router.add_post("/hook", self._hook)
        runner = web.AppRunner(app, shutdown_timeout=0.5)
        await runner.setup()
        await web.SockSite(runner, sock).start()
        self._runner = runner

    def _record(
        self, channel: str, body: Any, request: web.Request, status: int, valid: bool
    ) -> int:
        """Record the call; a scripted failure replaces the status of a valid call."""
        with self._lock:
            queue = self._fail.get(channel) or []
            if valid and queue:
                status = queue.pop(0)
            headers = {k.lower(): v for k, v in request.headers.items()}
            self._calls.append(Call(channel, body, headers, status, valid))
        return status

    @staticmethod
    async def _json(request: web.Request) -> Any:
        try:
            return json.loads(await request.read())
        except ValueError:
            return None

    async def _slack(self, request: web.Request) -> web.Response:
        body = await self._json(request)
        valid = isinstance(body, dict) and isinstance(body.get("text"), str) and bool(body["text"])
        status = self._record("slack", body, request, 200 if valid else 400, valid)
        return web.Response(status=status, text="ok" if status == 200 else "invalid_payload")

    async def _pagerduty(self, request: web.Request) -> web.Response:
        body = await self._json(request)
        valid = _valid_pagerduty(body)
        status = self._record("pagerduty", body, request, 202 if valid else 400, valid)
        if status == 202:
            key = body["dedup_key"]
            return web.json_response(
                {"status": "success", "message": "Event processed", "dedup_key": key}, status=202
            )
        return web.json_response({"status": "invalid event", "message": "bad"}, status=status)

    async def _hook(self, request: web.Request) -> web.Response:
        raw = await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        try:
            body = Webhook(self._secret).verify(raw, headers)
            valid = True
        except WebhookVerificationError:
            body, valid = None, False
        status = self._record("hook", body, request, 204 if valid else 401, valid)
        return web.Response(status=status)


def _valid_pagerduty(body: Any) -> bool:
    if not isinstance(body, dict) or body.get("routing_key") != ROUTING_KEY:
        return False
    if body.get("event_action") not in ACTIONS or not isinstance(body.get("dedup_key"), str):
        return False
    if len(body["dedup_key"]) > 255:
        return False
    if body["event_action"] != "trigger":
        return True
    payload = body.get("payload")
    return (
        isinstance(payload, dict)
        and isinstance(payload.get("summary"), str)
        and 0 < len(payload["summary"]) <= 1024
        and isinstance(payload.get("source"), str)
        and payload.get("severity") in SEVERITIES
    )
