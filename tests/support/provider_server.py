"""A scriptable HTTP server on 127.0.0.1 that plays a model provider in tests.

It runs aiohttp in a background thread with its own event loop, so sync tests (which call
``asyncio.run`` themselves) and other processes (workers given ``server.url``) reach it over a
real socket: adapters are tested with real connections, timeouts, chunked bodies and headers.

Per route, tests queue :class:`Reply` objects; once a script runs out the route keeps repeating
its last reply, unless a handler is set, which then answers every further request.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from PIL import Image

__all__ = [
    "Call",
    "ProviderServer",
    "Reply",
    "SeenRequest",
    "anthropic_error",
    "anthropic_message",
    "openai_chat_response",
    "openai_error",
    "openai_image_response",
    "png_bytes",
    "provider_server",
]

_NO_JSON: Any = object()


@dataclass(frozen=True)
class Reply:
    """One scripted answer; ``json`` wins over ``body``.

    ``delay_s`` holds back the status line; ``chunked`` sends the body in ``chunk_size`` pieces
    without Content-Length, ``chunk_delay_s`` apart (a server that trickles).
    """

    status: int = 200
    json: Any = _NO_JSON
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    content_type: str | None = None
    delay_s: float = 0.0
    chunked: bool = False
    chunk_size: int = 64 * 1024
    chunk_delay_s: float = 0.0


@dataclass(frozen=True)
class SeenRequest:
    """A request as the server received it."""

    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]  # lower-cased names
    body: bytes
    json: Any  # None when the body is empty or not JSON


@dataclass(frozen=True)
class Call:
    """One request's whole life on the server (monotonic clock), for chaos checks.

    ``answered`` is False when the client was gone before the reply went out (a worker killed
    while waiting): such a call was in flight, not finished.
    """

    method: str
    path: str
    json: Any
    status: int
    started: float
    ended: float
    answered: bool


Handler = Callable[[Any], Reply]


class ProviderServer:
    """Start with :meth:`start` (or use :func:`provider_server`); ``url`` is the base URL."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host  # any of 127.0.0.0/8: a second "internal" host for SSRF tests
        self._lock = threading.Lock()
        self._scripts: dict[tuple[str, str], list[Reply]] = {}
        self._last: dict[tuple[str, str], Reply] = {}
        self._handlers: dict[tuple[str, str], Handler] = {}
        self._seen: list[SeenRequest] = []
        self._calls: list[Call] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self.url = ""

    def start(self) -> ProviderServer:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind((self.host, 0))
        self.url = f"http://{self.host}:{sock.getsockname()[1]}"
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

    def script(self, method: str, path: str, replies: Sequence[Reply]) -> None:
        """Queue ``replies`` for ``method path`` (appended to what is still queued)."""
        if not replies:
            raise ValueError("script at least one reply")
        with self._lock:
            self._scripts.setdefault((method.upper(), path), []).extend(replies)

    def handle(self, method: str, path: str, handler: Handler) -> None:
        """Answer ``method path`` with ``handler(request_json)`` once its script is used up."""
        with self._lock:
            self._handlers[(method.upper(), path)] = handler

    @property
    def requests(self) -> list[SeenRequest]:
        """Every request seen so far, oldest first."""
        with self._lock:
            return list(self._seen)

    @property
    def calls(self) -> list[Call]:
        """Every request that has been answered (or whose client left), in order of ending."""
        with self._lock:
            return list(self._calls)

    def requests_to(self, path: str) -> list[SeenRequest]:
        return [seen for seen in self.requests if seen.path == path]

    def reset(self) -> None:
        """Forget scripts, handlers and recorded requests."""
        with self._lock:
            self._scripts.clear()
            self._last.clear()
            self._handlers.clear()
            self._seen.clear()
            self._calls.clear()

    async def _serve(self, sock: socket.socket) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        runner = web.AppRunner(app, shutdown_timeout=0.5)
        await runner.setup()
        await web.SockSite(runner, sock).start()
        self._runner = runner

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        started = time.monotonic()
        body = await request.read()
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = None
        seen = SeenRequest(
            method=request.method,
            path=request.path,
            query=dict(request.query),
            headers={key.lower(): value for key, value in request.headers.items()},
            body=body,
            json=parsed,
        )
        key = (request.method, request.path)
        with self._lock:
            self._seen.append(seen)
            queue = self._scripts.get(key)
            handler = self._handlers.get(key)
            reply: Reply | None = None
            if queue:
                reply = queue.pop(0)
                self._last[key] = reply
            elif handler is None:
                reply = self._last.get(key)
        if reply is None and handler is not None:
            reply = handler(parsed)
        if reply is None:
            reply = Reply(status=404, json={"error": {"message": f"no script for {key}"}})
        response = await _respond(request, reply)
        transport = request.transport
        answered = transport is not None and not transport.is_closing()
        call = Call(request.method, request.path, parsed, reply.status, started,
                    time.monotonic(), answered)  # fmt: skip
        with self._lock:
            self._calls.append(call)
        return response


async def _respond(request: web.Request, reply: Reply) -> web.StreamResponse:
    if reply.delay_s:
        await asyncio.sleep(reply.delay_s)
    body, content_type = reply.body, reply.content_type
    if reply.json is not _NO_JSON:
        body = json.dumps(reply.json).encode()
        content_type = content_type or "application/json"
    headers = dict(reply.headers)
    if content_type is not None:
        headers["Content-Type"] = content_type
    if not reply.chunked:
        return web.Response(status=reply.status, body=body, headers=headers)
    response = web.StreamResponse(status=reply.status, headers=headers)
    response.enable_chunked_encoding()
    await response.prepare(request)
    for start in range(0, len(body), reply.chunk_size):
        if start and reply.chunk_delay_s:
            await asyncio.sleep(reply.chunk_delay_s)
        await response.write(body[start : start + reply.chunk_size])
    await response.write_eof()
    return response


@contextlib.contextmanager
def provider_server(host: str = "127.0.0.1") -> Iterator[ProviderServer]:
    """A started server, stopped on exit; wrap it in a pytest fixture."""
    server = ProviderServer(host).start()
    try:
        yield server
    finally:
        server.stop()


def png_bytes(
    width: int = 8, height: int = 8, color: tuple[int, int, int] = (200, 40, 40)
) -> bytes:
    """A real, decodable PNG."""
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, format="PNG")
    return buffer.getvalue()


def openai_chat_response(
    content: str | None,
    model: str = "gpt-4o-mini-2024-07-18",
    prompt_tokens: int = 12,
    completion_tokens: int = 34,
    refusal: str | None = None,
    finish_reason: str = "stop",
) -> dict[str, Any]:
    """A ``/chat/completions`` body as OpenAI returns it."""
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": refusal},
                "logprobs": None,
                "finish_reason": finish_reason,
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def openai_image_response(
    image: bytes | str,
    *,
    input_tokens: int | None = None,
    output_tokens: int | None = None,
) -> dict[str, Any]:
    """An ``/images/generations`` body: bytes become ``b64_json``, a str is a ``url``.

    Token counts add the ``usage`` block gpt-image-1 returns.
    """
    item = (
        {"b64_json": base64.b64encode(image).decode("ascii")}
        if isinstance(image, bytes)
        else {"url": image}
    )
    payload: dict[str, Any] = {"created": 1_700_000_000, "data": [item]}
    if input_tokens is not None or output_tokens is not None:
        payload["usage"] = {
            "input_tokens": input_tokens or 0,
            "output_tokens": output_tokens or 0,
            "total_tokens": (input_tokens or 0) + (output_tokens or 0),
        }
    return payload


def openai_error(
    message: str, type: str = "invalid_request_error", code: str | None = None
) -> dict[str, Any]:
    """An OpenAI error body."""
    return {"error": {"message": message, "type": type, "param": None, "code": code}}


def anthropic_message(
    text: str,
    model: str = "claude-sonnet-4-20250514",
    input_tokens: int = 21,
    output_tokens: int = 43,
    stop_reason: str = "end_turn",
) -> dict[str, Any]:
    """A Messages API body as Anthropic returns it."""
    return {
        "id": "msg_test",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": text}] if text else [],
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
    }


def anthropic_error(type: str, message: str) -> dict[str, Any]:
    """An Anthropic error body."""
    return {"type": "error", "error": {"type": type, "message": message}}


def local_routing_file(
    path: Path,
    base_url: str,
    *,
    model: str,
    timeout_s: float,
    max_retries: int,
    retry: str | None = None,
    latency_budget_ms: int = 120_000,
) -> Path:
    """A routing file with one OpenAI-shaped provider at ``base_url`` and a breaker that never
    opens: what benches and the chaos suite point a worker at. ``retry`` is the YAML flow
    mapping of the file's ``retry:`` section, if any. ``latency_budget_ms`` is the alias's
    budget, which is also the deadline (from created_at) of requests that set none."""
    retry_line = f"retry: {retry}\n" if retry is not None else ""
    path.write_text(
        f"""providers:
  local:
    type: openai
    base_url: {base_url}
    breaker: {{failure_threshold: 1000000, reset_after_s: 30}}
aliases:
  copy:
    latency_budget_ms: {latency_budget_ms}
    chain:
      - {{provider: local, model: {model}, version: {model}-1, timeout_s: {timeout_s:g},
         max_retries: {max_retries}, max_output_tokens: 64,
         price: {{input_per_1k: 0.00015, output_per_1k: 0.0006}}}}
default_alias: copy
{retry_line}"""
    )
    return path
