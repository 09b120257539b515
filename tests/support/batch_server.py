"""A local server speaking OpenAI's Batch API and Anthropic's Message Batches, for tests.

Real HTTP on 127.0.0.1 (aiohttp in a background thread, like ``provider_server``), with the
documented shapes: OpenAI's ``/v1/files`` (multipart, ``purpose=batch``), ``/v1/batches``,
``/v1/files/{id}/content``; Anthropic's ``/v1/messages/batches`` with its ``results_url``. It
checks what clients send the way the real APIs do (line shape, endpoint, window, unique
``custom_id``) and also answers the synchronous ``/v1/chat/completions`` and ``/v1/messages``,
so one server can play both rungs of an alias.

Knobs (set them on the object at any time):

- ``hold``: batches stay in progress until :meth:`release` (slow without a clock);
  ``end_after_s``: or until that many seconds after creation;
- ``terminal``: how a batch ends: ``completed`` (default), ``failed`` (OpenAI: validation
  failed, nothing ran; Anthropic has no such state, so the batch is refused with a 500),
  ``expired`` (nothing finished: OpenAI puts every line in the error file, Anthropic reports
  each result ``expired``) or ``cancelled``;
- ``errored_every`` / ``missing_every``: every n-th call of a batch errors / is left out of the
  results (partial batches);
- ``text``: what every call answers (default: ``copy for: `` and the user's prompt);
- ``create_status``: an OpenAI create answers this HTTP status instead of the batch, after
  making it (``create_makes``, default) or without (a gateway losing the answer, or failing
  before it got there); ``GET /v1/batches`` lists the batches newest first (``limit``,
  ``after``, ``has_more``) so a client can find one by its ``input_file_id``
  (:meth:`BatchServer.add_listed` makes others' batches; ``others_after_create`` that many
  right after each create, so a lookup pages past them);
- ``list_errors``: HTTP statuses the next ``GET /v1/batches`` answer, one each (a failing
  lookup);
- ``create_answer_delay_s``: an OpenAI create makes the batch at once and answers that much
  later (a worker can die between the two).

``requests`` records every request as ``(method, path)`` in the order they arrived;
:attr:`BatchServer.uploads` and :attr:`BatchServer.creates` count OpenAI's.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

__all__ = ["BatchServer", "batch_server"]

#: Usage each answered call reports, batched or not.
INPUT_TOKENS = 100
OUTPUT_TOKENS = 200


@dataclass
class _Batch:
    batch_id: str
    api: str  # "openai" | "anthropic"
    calls: list[tuple[str, dict[str, Any]]]  # (custom_id, body or params)
    created: float
    cancelled: bool = False
    output_file_id: str | None = None
    error_file_id: str | None = None
    results: bytes = b""
    ended: bool = False
    status_final: str = ""
    input_file_id: str = ""


@dataclass
class BatchServer:
    host: str = "127.0.0.1"
    hold: bool = False
    end_after_s: float = 0.0
    terminal: str = "completed"
    errored_every: int = 0
    missing_every: int = 0
    text: str | None = None
    create_status: int = 0
    create_makes: bool = True
    others_after_create: int = 0
    list_errors: list[int] = field(default_factory=list)
    create_answer_delay_s: float = 0.0
    url: str = ""
    files: dict[str, bytes] = field(default_factory=dict)
    batches: dict[str, _Batch] = field(default_factory=dict)
    sync_calls: int = 0
    polls: int = 0
    cancels: list[str] = field(default_factory=list)
    seen_auth: set[str] = field(default_factory=set)
    requests: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._released: set[str] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None

    # --- control -----------------------------------------------------------------------------

    def start(self) -> BatchServer:
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
            # handlers of requests their clients abandoned (a poll cut short by a closing
            # collector) end here, not as "Task was destroyed" when the loop is collected
            asyncio.run_coroutine_threadsafe(_drain(), self._loop).result(timeout=10)
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
        self._loop.close()

    def release(self) -> None:
        """Let every batch created so far end at its next poll."""
        with self._lock:
            self._released.update(self.batches)

    @property
    def uploads(self) -> int:
        return self.seen("POST", "/v1/files")

    @property
    def creates(self) -> int:
        return self.seen("POST", "/v1/batches")

    def seen(self, method: str, path: str) -> int:
        with self._lock:
            return self.requests.count((method, path))

    @property
    def batch_sizes(self) -> list[int]:
        with self._lock:
            return [len(b.calls) for b in self.batches.values()]

    # --- plumbing ----------------------------------------------------------------------------

    async def _serve(self, sock: socket.socket) -> None:
        app = web.Application(client_max_size=256 * 1024 * 1024, middlewares=[self._record])
        r = app.router
        r.add_post("/v1/files", self._upload)
        r.add_get("/v1/files/{id}/content", self._file_content)
        r.add_post("/v1/batches", self._openai_create)
        r.add_get("/v1/batches", self._openai_list)
        r.add_get("/v1/batches/{id}", self._openai_get)
        r.add_post("/v1/batches/{id}/cancel", self._cancel)
        r.add_post("/v1/messages/batches", self._anthropic_create)
        r.add_get("/v1/messages/batches/{id}", self._anthropic_get)
        r.add_get("/v1/messages/batches/{id}/results", self._anthropic_results)
        r.add_post("/v1/messages/batches/{id}/cancel", self._cancel)
        r.add_post("/v1/chat/completions", self._sync_openai)
        r.add_post("/v1/messages", self._sync_anthropic)
        runner = web.AppRunner(app, shutdown_timeout=0.5)
        await runner.setup()
        await web.SockSite(runner, sock).start()
        self._runner = runner

    @web.middleware
    async def _record(self, request: web.Request, handler: Any) -> web.StreamResponse:
        with self._lock:
            self.requests.append((request.method, request.path))
        response: web.StreamResponse = await handler(request)
        return response

    def _auth(self, request: web.Request) -> None:
        key = request.headers.get("Authorization") or request.headers.get("x-api-key") or ""
        with self._lock:
            self.seen_auth.add(key)

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids):06d}"

    # --- OpenAI ------------------------------------------------------------------------------

    async def _upload(self, request: web.Request) -> web.Response:
        self._auth(request)
        form = await request.post()
        purpose, upload = form.get("purpose"), form.get("file")
        if purpose != "batch" or not isinstance(upload, web.FileField):
            return _error(400, "purpose must be 'batch' and a file is required")
        file_id = self._new_id("file-")
        data = upload.file.read()
        with self._lock:
            self.files[file_id] = data
        return web.json_response(
            {
                "id": file_id,
                "object": "file",
                "bytes": len(data),
                "purpose": "batch",
                "filename": upload.filename,
                "created_at": int(time.time()),
            }
        )

    async def _openai_create(self, request: web.Request) -> web.Response:
        self._auth(request)
        body = await request.json()
        with self._lock:
            data = self.files.get(body.get("input_file_id", ""))
        if data is None:
            return _error(404, "no such file")
        if body.get("endpoint") != "/v1/chat/completions" or body.get("completion_window") != "24h":
            return _error(400, "endpoint must be /v1/chat/completions, completion_window 24h")
        calls, problem = _openai_lines(data)
        if self.create_status and not self.create_makes:
            return _error(self.create_status, "the create did not get there")
        batch = _Batch(self._new_id("batch_"), "openai", calls, time.monotonic())
        batch.input_file_id = body["input_file_id"]
        if problem or self.terminal == "failed":
            batch.ended, batch.status_final = True, "failed"
            batch.results = (problem or "the input file failed validation").encode()
        with self._lock:
            self.batches[batch.batch_id] = batch
        self.add_listed(self.others_after_create)  # other workers' creates meanwhile
        if self.create_answer_delay_s:
            await asyncio.sleep(self.create_answer_delay_s)
        if self.create_status:
            return _error(self.create_status, "the batch was made; this answer is lost")
        return web.json_response(self._openai_object(batch, body["input_file_id"]))

    async def _openai_list(self, request: web.Request) -> web.Response:
        """``GET /v1/batches``: newest first, ``limit`` (1-100, default 20) after ``after``."""
        self._auth(request)
        with self._lock:
            failing = self.list_errors.pop(0) if self.list_errors else 0
        if failing:
            return _error(failing, "the batch list failed")
        try:
            limit = min(100, max(1, int(request.query.get("limit", "20"))))
        except ValueError:
            return _error(400, "limit must be a number")
        with self._lock:
            newest = [b for b in reversed(self.batches.values()) if b.api == "openai"]
        after = request.query.get("after")
        if after:
            ids = [b.batch_id for b in newest]
            if after not in ids:
                return _error(400, "no such batch for 'after'")
            newest = newest[ids.index(after) + 1 :]
        page = newest[:limit]
        data = [self._openai_object(b, b.input_file_id) for b in page]
        return web.json_response(
            {
                "object": "list",
                "data": data,
                "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None,
                "has_more": len(newest) > limit,
            }
        )

    def add_listed(self, n: int) -> None:
        """Make ``n`` finished OpenAI batches of other input files (others' batches)."""
        with self._lock:
            for _ in range(n):
                batch = _Batch(self._new_id("batch_"), "openai", [], time.monotonic())
                batch.input_file_id = self._new_id("file-other-")
                batch.ended, batch.status_final = True, "completed"
                self.batches[batch.batch_id] = batch

    async def _openai_get(self, request: web.Request) -> web.Response:
        self._auth(request)
        batch = self._poll(request.match_info["id"])
        if batch is None:
            return _error(404, "no such batch")
        return web.json_response(self._openai_object(batch, batch.input_file_id or "file-input"))

    def _openai_object(self, batch: _Batch, input_file_id: str) -> dict[str, Any]:
        status = batch.status_final if batch.ended else "in_progress"
        if batch.cancelled and not batch.ended:
            status = "cancelling"
        total = len(batch.calls)
        errors = None
        if status == "failed":
            errors = {
                "object": "list",
                "data": [{"code": "invalid_request", "message": batch.results.decode(), "line": 1}],
            }
        return {
            "id": batch.batch_id,
            "object": "batch",
            "endpoint": "/v1/chat/completions",
            "errors": errors,
            "input_file_id": input_file_id,
            "completion_window": "24h",
            "status": status,
            "output_file_id": batch.output_file_id,
            "error_file_id": batch.error_file_id,
            "created_at": int(time.time()),
            "request_counts": {
                "total": total,
                "completed": total if batch.ended else 0,
                "failed": 0,
            },
            "metadata": None,
        }

    async def _file_content(self, request: web.Request) -> web.Response:
        self._auth(request)
        with self._lock:
            data = self.files.get(request.match_info["id"])
        if data is None:
            return _error(404, "no such file")
        return web.Response(body=data, content_type="application/octet-stream")

    # --- Anthropic ---------------------------------------------------------------------------

    async def _anthropic_create(self, request: web.Request) -> web.Response:
        self._auth(request)
        if "anthropic-version" not in request.headers:
            return _error(400, "anthropic-version header is required")
        body = await request.json()
        calls, problem = _anthropic_requests(body)
        if problem:
            return _error(400, problem)
        if self.terminal == "failed":
            return _error(500, "internal error creating the batch")
        batch = _Batch(self._new_id("msgbatch_"), "anthropic", calls, time.monotonic())
        with self._lock:
            self.batches[batch.batch_id] = batch
        return web.json_response(self._anthropic_object(batch))

    async def _anthropic_get(self, request: web.Request) -> web.Response:
        self._auth(request)
        batch = self._poll(request.match_info["id"])
        if batch is None:
            return _error(404, "no such batch")
        return web.json_response(self._anthropic_object(batch))

    def _anthropic_object(self, batch: _Batch) -> dict[str, Any]:
        status = "ended" if batch.ended else ("canceling" if batch.cancelled else "in_progress")
        return {
            "id": batch.batch_id,
            "type": "message_batch",
            "processing_status": status,
            "request_counts": {
                "processing": 0 if batch.ended else len(batch.calls),
                "succeeded": 0,
                "errored": 0,
                "canceled": 0,
                "expired": 0,
            },
            "ended_at": None,
            "created_at": "2026-12-03T00:00:00Z",
            "expires_at": "2026-12-04T00:00:00Z",
            "cancel_initiated_at": None,
            "results_url": f"{self.url}/v1/messages/batches/{batch.batch_id}/results"
            if batch.ended
            else None,
        }

    async def _anthropic_results(self, request: web.Request) -> web.Response:
        self._auth(request)
        with self._lock:
            batch = self.batches.get(request.match_info["id"])
        if batch is None or not batch.ended:
            return _error(404, "no results yet")
        return web.Response(body=batch.results, content_type="application/binary")

    # --- both --------------------------------------------------------------------------------

    async def _cancel(self, request: web.Request) -> web.Response:
        self._auth(request)
        batch_id = request.match_info["id"]
        with self._lock:
            batch = self.batches.get(batch_id)
            if batch is None:
                return _error(404, "no such batch")
            batch.cancelled = True
            self.cancels.append(batch_id)
        return web.json_response({"id": batch_id})

    def _poll(self, batch_id: str) -> _Batch | None:
        """The batch, ended now if its time has come (results written once)."""
        with self._lock:
            self.polls += 1
            batch = self.batches.get(batch_id)
            if batch is None or batch.ended:
                return batch
            due = batch_id in self._released or (
                not self.hold and time.monotonic() - batch.created >= self.end_after_s
            )
            if batch.cancelled:
                due, terminal = True, "cancelled"
            else:
                terminal = self.terminal
            if due:
                self._end(batch, terminal)
            return batch

    def _end(self, batch: _Batch, terminal: str) -> None:
        batch.ended, batch.status_final = True, terminal
        done, failed = [], []
        for index, (custom_id, body) in enumerate(batch.calls, start=1):
            if self.missing_every and index % self.missing_every == 0:
                continue
            if terminal != "completed":
                failed.append(_failed_line(batch.api, custom_id, terminal))
            elif self.errored_every and index % self.errored_every == 0:
                failed.append(_failed_line(batch.api, custom_id, "errored"))
            else:
                done.append(_done_line(batch.api, custom_id, body, self.text))
        if batch.api == "anthropic":
            batch.results = _lines(done + failed)
            return
        if done:
            batch.output_file_id = self._new_id("file-")
            self.files[batch.output_file_id] = _lines(done)
        if failed:
            batch.error_file_id = self._new_id("file-")
            self.files[batch.error_file_id] = _lines(failed)

    async def _sync_openai(self, request: web.Request) -> web.Response:
        self._auth(request)
        body = await request.json()
        with self._lock:
            self.sync_calls += 1
        return web.json_response(_chat_completion(body, self.text))

    async def _sync_anthropic(self, request: web.Request) -> web.Response:
        self._auth(request)
        body = await request.json()
        with self._lock:
            self.sync_calls += 1
        return web.json_response(_message(body, self.text))


async def _drain() -> None:
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def _openai_lines(data: bytes) -> tuple[list[tuple[str, dict[str, Any]]], str]:
    calls: list[tuple[str, dict[str, Any]]] = []
    seen: set[str] = set()
    for number, raw in enumerate(data.splitlines(), start=1):
        try:
            line = json.loads(raw)
        except ValueError:
            return calls, f"line {number} is not JSON"
        custom_id, body = line.get("custom_id"), line.get("body")
        if not isinstance(custom_id, str) or custom_id in seen:
            return calls, f"line {number}: custom_id missing or duplicated"
        if line.get("method") != "POST" or line.get("url") != "/v1/chat/completions":
            return calls, f"line {number}: method must be POST and url /v1/chat/completions"
        if not isinstance(body, dict) or "model" not in body or "messages" not in body:
            return calls, f"line {number}: body needs model and messages"
        seen.add(custom_id)
        calls.append((custom_id, body))
    return calls, "" if calls else "the file is empty"


def _anthropic_requests(body: Any) -> tuple[list[tuple[str, dict[str, Any]]], str]:
    requests = body.get("requests") if isinstance(body, dict) else None
    if not isinstance(requests, list) or not requests:
        return [], "requests: a non-empty list is required"
    calls: list[tuple[str, dict[str, Any]]] = []
    seen: set[str] = set()
    for item in requests:
        custom_id = item.get("custom_id") if isinstance(item, dict) else None
        params = item.get("params") if isinstance(item, dict) else None
        if not isinstance(custom_id, str) or custom_id in seen or not 1 <= len(custom_id) <= 64:
            return [], "custom_id missing, duplicated or too long"
        if not isinstance(params, dict) or not {"model", "max_tokens", "messages"} <= set(params):
            return [], "params need model, max_tokens and messages"
        seen.add(custom_id)
        calls.append((custom_id, params))
    return calls, ""


def _text_of(body: dict[str, Any], text: str | None = None) -> str:
    """The answer: ``text``, else the user's prompt echoed back, so tests can tell calls apart."""
    if text is not None:
        return text
    content = body["messages"][-1]["content"]
    return f"copy for: {content if isinstance(content, str) else 'attachments'}"


def _chat_completion(body: dict[str, Any], text: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-batch",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": body["model"],
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {"role": "assistant", "content": _text_of(body, text), "refusal": None},
            }
        ],
        "usage": {
            "prompt_tokens": INPUT_TOKENS,
            "completion_tokens": OUTPUT_TOKENS,
            "total_tokens": INPUT_TOKENS + OUTPUT_TOKENS,
        },
    }


def _message(body: dict[str, Any], text: str | None = None) -> dict[str, Any]:
    return {
        "id": "msg_batch",
        "type": "message",
        "role": "assistant",
        "model": body["model"],
        "content": [{"type": "text", "text": _text_of(body, text)}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": INPUT_TOKENS, "output_tokens": OUTPUT_TOKENS},
    }


def _done_line(api: str, custom_id: str, body: dict[str, Any], text: str | None) -> dict[str, Any]:
    if api == "anthropic":
        message = _message(body, text)
        return {"custom_id": custom_id, "result": {"type": "succeeded", "message": message}}
    return {
        "id": f"batch_req_{custom_id}",
        "custom_id": custom_id,
        "response": {
            "status_code": 200,
            "request_id": "req_1",
            "body": _chat_completion(body, text),
        },
        "error": None,
    }


def _failed_line(api: str, custom_id: str, why: str) -> dict[str, Any]:
    if api == "anthropic":
        if why == "errored":
            error = {
                "type": "error",
                "error": {"type": "invalid_request_error", "message": "bad params"},
            }
            return {"custom_id": custom_id, "result": {"type": "errored", "error": error}}
        kind = "canceled" if why == "cancelled" else "expired"
        return {"custom_id": custom_id, "result": {"type": kind}}
    if why == "errored":
        body = {"error": {"message": "bad params", "type": "invalid_request_error"}}
        return {
            "id": f"batch_req_{custom_id}",
            "custom_id": custom_id,
            "response": {"status_code": 400, "request_id": "req_2", "body": body},
            "error": None,
        }
    code = "batch_expired" if why == "expired" else "batch_cancelled"
    return {
        "id": f"batch_req_{custom_id}",
        "custom_id": custom_id,
        "response": None,
        "error": {"code": code, "message": f"This request was {why} before it ran."},
    }


def _lines(items: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(item).encode() + b"\n" for item in items)


def _error(status: int, message: str) -> web.Response:
    return web.json_response(
        {"type": "error", "error": {"type": "invalid_request_error", "message": message}},
        status=status,
    )


@contextlib.contextmanager
def batch_server(**knobs: Any) -> Iterator[BatchServer]:
    """A started server, stopped on exit; wrap it in a pytest fixture."""
    server = BatchServer(**knobs).start()
    try:
        yield server
    finally:
        server.stop()
