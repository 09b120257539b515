"""Clients of the two documented batch APIs: submit many calls at once, poll, read results.

- OpenAI Batch API: the calls go up as a JSONL file (``POST /files``, ``purpose=batch``; one
  line per call: ``custom_id``, ``method``, ``url``, ``body``), a batch is created on it
  (``POST /batches``: ``input_file_id``, ``endpoint``, ``completion_window`` "24h"), polled
  (``GET /batches/{id}``: ``status``, ``output_file_id``, ``error_file_id``) and its output
  and error files read (``GET /files/{id}/content``: JSONL lines of ``custom_id`` with
  ``response.status_code`` / ``response.body`` or ``error``). A create whose answer is lost (a
  timeout, a 5xx, an unusable body) may still have made the batch, which runs and is billed
  while its callers go to the synchronous price: the client looks it up by its
  ``input_file_id`` in the newest batches (``GET /batches``, :data:`LOOKUP_PAGES` pages) and
  follows it when found. The upload and the create are also offered apart
  (:class:`UploadFirst`), so the collector can record where the calls are going between them.
- Anthropic Message Batches: ``POST /v1/messages/batches`` with ``requests`` (``custom_id``,
  ``params``), polled (``GET /v1/messages/batches/{id}``: ``processing_status``,
  ``results_url``), results as JSONL (``result.type`` succeeded / errored / canceled /
  expired, ``result.message``).

Bodies are built and answers read by the synchronous adapters' own functions, so a batched
call asks exactly what the same call would ask synchronously. Every HTTP exchange goes through
:func:`agents.inference.providers._http.send` (bounded time and size, stable codes, secrets
scrubbed from messages). Ids a server hands back are checked before they go into a URL, and
Anthropic's ``results_url`` is only followed on the API's own origin (it is fetched with the
key).

Per-call failures are data: :meth:`BatchClient.results` maps each ``custom_id`` to a
:class:`Generated` or a :class:`ProviderError` (``provider.batch_error`` for a call the
provider errored, ``batch.expired`` / ``batch.canceled``, or the code its HTTP status means);
a call the results do not mention is absent.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, Protocol, runtime_checkable
from urllib.parse import urlsplit

import httpx

from agents.inference.providers._http import (
    bad_response,
    build_client,
    error_for_status,
    parse_json,
    send,
)
from agents.inference.providers.anthropic import (
    AnthropicConfig,
    message_generated,
    messages_body,
)
from agents.inference.providers.base import Generated, ProviderCall, ProviderError
from agents.inference.providers.openai import OpenAIConfig, chat_body, chat_generated
from schemas.records import AssetKind
from streams.redaction import redact_and_truncate

__all__ = [
    "AnthropicBatchClient",
    "BatchClient",
    "BatchItem",
    "BatchStatus",
    "OpenAIBatchClient",
    "UploadFirst",
    "upload_first",
]

#: OpenAI's documented ceiling for one batch input file.
MAX_UPLOAD_BYTES: Final = 200 * 1024 * 1024
#: Ids a server returns go into URL paths: only these characters are believed.
_ID: Final = re.compile(r"^[A-Za-z0-9_.-]{1,200}$")
#: Anthropic's rule for custom ids (OpenAI accepts anything; the collector uses this form).
CUSTOM_ID: Final = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_MESSAGE_CHARS: Final = 300
_OPENAI_ENDPOINT: Final = "/v1/chat/completions"
#: Pages of the newest batches (100 each) searched for a batch whose create lost its answer.
LOOKUP_PAGES: Final = 2
#: Create failures after which the batch may exist all the same (the request got there).
_MAY_HAVE_CREATED: Final = frozenset(
    {"provider.timeout", "provider.unavailable", "provider.connect", "provider.bad_response"}
)

log = logging.getLogger(__name__)

BatchState = Literal["running", "ended", "failed"]


@dataclass(frozen=True)
class BatchItem:
    """One call of a batch; ``custom_id`` matches it to its result."""

    custom_id: str
    call: ProviderCall


@dataclass(frozen=True)
class BatchStatus:
    """Where a batch is. ``running``: poll again; ``ended``: read :meth:`BatchClient.results`
    (calls not in them did not run: expired or cancelled); ``failed``: nothing ran.

    ``status`` is the provider's own word (``in_progress``, ``expired``...), ``detail`` a
    readable reason when it failed.
    """

    batch_id: str
    state: BatchState
    status: str
    output: str | None = None
    errors: str | None = None
    detail: str = ""


class BatchClient(Protocol):
    """One provider's batch API, bound to its endpoint and key."""

    name: str

    async def submit(self, items: Sequence[BatchItem]) -> str:
        """Create a batch of ``items``; its id."""
        ...

    async def status(self, batch_id: str) -> BatchStatus: ...

    async def results(
        self, status: BatchStatus, calls: Mapping[str, ProviderCall]
    ) -> dict[str, Generated | ProviderError]:
        """Each of ``calls`` (by ``custom_id``) the ended batch reports, with its asset or its
        error, read the way the synchronous adapter reads the same call's answer."""
        ...

    async def cancel(self, batch_id: str) -> None:
        """Ask the provider to stop the batch (best effort; what already ran is billed)."""
        ...

    async def aclose(self) -> None: ...


@runtime_checkable
class UploadFirst(Protocol):
    """A batch API that takes the calls as an uploaded file and then creates the batch on it
    (OpenAI's), offered in those two steps besides :meth:`BatchClient.submit`.

    Between them the collector records each call's *intent* (the file id): a crash after the
    create but before the batch's id is recorded then leaves a key the next owner can look the
    batch up by (:meth:`find`). Anthropic's create carries the calls itself and a batch there
    holds nothing the caller chose to find it by, so that client has no such steps.
    """

    async def upload(self, items: Sequence[BatchItem]) -> str:
        """Upload ``items`` as one batch input file; its id. Nothing runs yet."""
        ...

    async def create(self, input_file_id: str) -> str:
        """Create the batch on an uploaded file; its id."""
        ...

    async def find(self, input_file_id: str) -> str | None:
        """The batch made from ``input_file_id`` among the newest ones, or None."""
        ...


def upload_first(client: BatchClient) -> UploadFirst | None:
    """``client`` when it offers the upload and the create apart, else None."""
    return client if isinstance(client, UploadFirst) else None


class _BatchHttp:
    """What both clients share: the pooled client, timeouts, size cap and secrets."""

    def __init__(
        self,
        name: str,
        key: str,
        extra_headers: Mapping[str, str],
        client: httpx.AsyncClient | None,
        *,
        timeout_s: float,
        max_bytes: int,
    ) -> None:
        self.name = name
        self._client = client if client is not None else build_client()
        self._owns_client = client is None
        self._secrets = tuple(v for v in (key, *extra_headers.values()) if v)
        self._timeout_s = timeout_s
        self._max_bytes = max_bytes
        self._headers: dict[str, str] = {"Accept": "application/json", **extra_headers}

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    async def _send(
        self,
        method: str,
        url: str,
        *,
        json_body: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> bytes:
        result = await send(
            self._client,
            method,
            url,
            provider=self.name,
            timeout_s=self._timeout_s,
            headers={**self._headers, **(headers or {})},
            json_body=json_body,
            content=content,
            max_bytes=self._max_bytes,
            secrets=self._secrets,
        )
        return result.content

    async def _json(self, method: str, url: str, **kw: Any) -> dict[str, Any]:
        payload = parse_json(await self._send(method, url, **kw), self.name)
        if not isinstance(payload, dict):
            raise bad_response(self.name, "expected a JSON object")
        return payload

    def _id(self, payload: Mapping[str, Any], key: str) -> str:
        value = payload.get(key)
        if not isinstance(value, str) or not _ID.match(value):
            raise bad_response(self.name, f"no usable {key!r}")
        return value

    def _optional_id(self, payload: Mapping[str, Any], key: str) -> str | None:
        return self._id(payload, key) if payload.get(key) is not None else None

    def _message(self, text: Any) -> str:
        text = text if isinstance(text, str) and text else "no reason given"
        return f"{self.name}: " + redact_and_truncate(
            " ".join(text.split()), self._secrets, _MESSAGE_CHARS
        )


def _check_items(items: Sequence[BatchItem], provider: str) -> None:
    if not items:
        raise ValueError("a batch holds at least one call")
    for item in items:
        if not CUSTOM_ID.match(item.custom_id):
            raise ValueError(f"custom_id {item.custom_id!r} is not 1-64 of [A-Za-z0-9_-]")
        if item.call.request.kind is AssetKind.IMAGE:
            raise ProviderError("provider.unsupported", f"{provider}: no image calls in a batch")


def _jsonl(content: bytes, provider: str) -> list[dict[str, Any]]:
    """Every JSON object line; a broken line makes the whole file unusable (retryable)."""
    lines = []
    for raw in content.splitlines():
        if not raw.strip():
            continue
        line = parse_json(raw, provider)
        if not isinstance(line, dict):
            raise bad_response(provider, "a results line is not a JSON object")
        lines.append(line)
    return lines


class OpenAIBatchClient(_BatchHttp):
    """OpenAI's Batch API (``/v1/chat/completions`` calls) on an OpenAI-compatible endpoint."""

    def __init__(
        self,
        name: str,
        config: OpenAIConfig,
        api_key: str = "",
        client: httpx.AsyncClient | None = None,
        *,
        timeout_s: float = 60.0,
        completion_window: str = "24h",
    ) -> None:
        super().__init__(
            name,
            api_key,
            config.extra_headers,
            client,
            timeout_s=timeout_s,
            max_bytes=config.max_response_bytes,
        )
        self._base = config.base_url.rstrip("/")
        self._window = completion_window
        if config.organization:
            self._headers["OpenAI-Organization"] = config.organization
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"

    async def submit(self, items: Sequence[BatchItem]) -> str:
        return await self.create(await self.upload(items))

    async def upload(self, items: Sequence[BatchItem]) -> str:
        _check_items(items, self.name)
        lines = [
            json.dumps(
                {
                    "custom_id": item.custom_id,
                    "method": "POST",
                    "url": _OPENAI_ENDPOINT,
                    "body": chat_body(item.call, self.name),
                },
                separators=(",", ":"),
            ).encode("utf-8")
            for item in items
        ]
        data = b"\n".join(lines) + b"\n"
        if len(data) > MAX_UPLOAD_BYTES:
            raise ProviderError(
                "provider.too_large", f"{self.name}: batch file above {MAX_UPLOAD_BYTES} bytes"
            )
        body, content_type = _multipart(data)
        uploaded = await self._json(
            "POST", f"{self._base}/files", content=body, headers={"Content-Type": content_type}
        )
        return self._id(uploaded, "id")

    async def create(self, input_file_id: str) -> str:
        """The batch on ``input_file_id``; a create whose answer is lost but which may have
        made the batch is looked up (:meth:`find`) and, when found, followed."""
        try:
            created = await self._json(
                "POST",
                f"{self._base}/batches",
                json_body={
                    "input_file_id": input_file_id,
                    "endpoint": _OPENAI_ENDPOINT,
                    "completion_window": self._window,
                },
            )
            return self._id(created, "id")
        except ProviderError as exc:
            if exc.code not in _MAY_HAVE_CREATED:
                raise  # refused (4xx, 429): nothing was created
            try:
                found = await self.find(input_file_id)
            except ProviderError:
                found = None  # the lookup failed too: the create's error stands
            if found is None:
                raise
            log.warning(
                "%s: batch create failed (%s) but made %s: following it", self.name, exc.code, found
            )
            return found

    async def find(self, input_file_id: str) -> str | None:
        """The id of a batch made from ``input_file_id`` among the newest ones, or None.

        Each file is uploaded for one create, so at most one batch has it. Newest first: the
        create that lost its answer was moments ago.
        """
        after: str | None = None
        for _ in range(LOOKUP_PAGES):
            query = "limit=100" + (f"&after={_safe(after)}" if after else "")
            page = await self._json("GET", f"{self._base}/batches?{query}")
            data = page.get("data")
            if not isinstance(data, list):
                raise bad_response(self.name, "batch list has no 'data'")
            for batch in data:
                if isinstance(batch, dict) and batch.get("input_file_id") == input_file_id:
                    return self._id(batch, "id")
            if page.get("has_more") is not True or not data:
                return None
            last = data[-1]
            after = self._id(last, "id") if isinstance(last, dict) else None
            if after is None:
                return None
        return None

    async def status(self, batch_id: str) -> BatchStatus:
        payload = await self._json("GET", f"{self._base}/batches/{_safe(batch_id)}")
        status = payload.get("status")
        if not isinstance(status, str):
            raise bad_response(self.name, "batch has no 'status'")
        output = self._optional_id(payload, "output_file_id")
        errors = self._optional_id(payload, "error_file_id")
        if status == "failed":
            return BatchStatus(batch_id, "failed", status, detail=self._errors_text(payload))
        if status in ("completed", "expired", "cancelled"):
            return BatchStatus(batch_id, "ended", status, output, errors)
        return BatchStatus(batch_id, "running", status)  # validating, in_progress, finalizing...

    def _errors_text(self, payload: Mapping[str, Any]) -> str:
        errors = payload.get("errors")
        data = errors.get("data") if isinstance(errors, dict) else None
        if isinstance(data, list) and data and isinstance(data[0], dict):
            return self._message(data[0].get("message"))
        return self._message("batch failed validation")

    async def results(
        self, status: BatchStatus, calls: Mapping[str, ProviderCall]
    ) -> dict[str, Generated | ProviderError]:
        found: dict[str, Generated | ProviderError] = {}
        for file_id in (status.output, status.errors):
            if file_id is None:
                continue
            content = await self._send("GET", f"{self._base}/files/{_safe(file_id)}/content")
            for line in _jsonl(content, self.name):
                custom_id = line.get("custom_id")
                if isinstance(custom_id, str) and custom_id in calls:
                    found[custom_id] = self._line(line, calls[custom_id])
        return found

    def _line(self, line: Mapping[str, Any], call: ProviderCall) -> Generated | ProviderError:
        error = line.get("error")
        response = line.get("response")
        if isinstance(error, dict):
            code = error.get("code")
            detail = f"({code}) " if isinstance(code, str) else ""
            return ProviderError(
                "provider.batch_error", self._message(detail + str(error.get("message") or ""))
            )
        if not isinstance(response, dict):
            return bad_response(self.name, "results line without response")
        status_code = response.get("status_code")
        body = response.get("body")
        if not isinstance(status_code, int) or not 200 <= status_code < 300:
            inner = body.get("error") if isinstance(body, dict) else None
            text = inner.get("message") if isinstance(inner, dict) else None
            code = status_code if isinstance(status_code, int) else 500
            return error_for_status(
                self._message(f"HTTP {code}: {text or ''}"), code, httpx.Headers()
            )
        if not isinstance(body, dict):
            return bad_response(self.name, "results line without a body")
        try:
            return chat_generated(body, call, self.name, self._secrets)
        except ProviderError as exc:
            return exc

    async def cancel(self, batch_id: str) -> None:
        await self._send("POST", f"{self._base}/batches/{_safe(batch_id)}/cancel")


class AnthropicBatchClient(_BatchHttp):
    """Anthropic's Message Batches."""

    def __init__(
        self,
        name: str,
        config: AnthropicConfig,
        api_key: str = "",
        client: httpx.AsyncClient | None = None,
        *,
        timeout_s: float = 60.0,
    ) -> None:
        super().__init__(
            name,
            api_key,
            config.extra_headers,
            client,
            timeout_s=timeout_s,
            max_bytes=config.max_response_bytes,
        )
        self._base = config.base_url.rstrip("/")
        self._headers["anthropic-version"] = config.api_version
        if api_key:
            self._headers["x-api-key"] = api_key

    async def submit(self, items: Sequence[BatchItem]) -> str:
        """One exchange carries the calls and creates the batch, and the batch holds nothing
        the caller chose (no input file, no metadata) to find it again by: no intent can be
        recorded before it, so a crash between this create and the tickets still pays the
        calls again (see :mod:`agents.inference.batch._tickets`)."""
        _check_items(items, self.name)
        requests = [
            {"custom_id": item.custom_id, "params": messages_body(item.call, self.name)}
            for item in items
        ]
        created = await self._json(
            "POST", f"{self._base}/v1/messages/batches", json_body={"requests": requests}
        )
        return self._id(created, "id")

    async def status(self, batch_id: str) -> BatchStatus:
        payload = await self._json("GET", f"{self._base}/v1/messages/batches/{_safe(batch_id)}")
        status = payload.get("processing_status")
        if not isinstance(status, str):
            raise bad_response(self.name, "batch has no 'processing_status'")
        if status != "ended":
            return BatchStatus(batch_id, "running", status)  # in_progress, canceling
        url = payload.get("results_url")
        if not isinstance(url, str) or not _same_origin(url, self._base):
            raise bad_response(self.name, "results_url is missing or not on the API's origin")
        return BatchStatus(batch_id, "ended", status, output=url)

    async def results(
        self, status: BatchStatus, calls: Mapping[str, ProviderCall]
    ) -> dict[str, Generated | ProviderError]:
        if status.output is None or not _same_origin(status.output, self._base):
            raise bad_response(self.name, "results_url is missing or not on the API's origin")
        found: dict[str, Generated | ProviderError] = {}
        for line in _jsonl(await self._send("GET", status.output), self.name):
            custom_id = line.get("custom_id")
            result = line.get("result")
            if isinstance(custom_id, str) and custom_id in calls and isinstance(result, dict):
                found[custom_id] = self._result(result, calls[custom_id])
        return found

    def _result(self, result: Mapping[str, Any], call: ProviderCall) -> Generated | ProviderError:
        kind = result.get("type")
        if kind == "succeeded":
            message = result.get("message")
            if not isinstance(message, dict):
                return bad_response(self.name, "succeeded result without a message")
            try:
                return message_generated(message, call, self.name)
            except ProviderError as exc:
                return exc
        if kind == "errored":
            outer = result.get("error")
            inner = outer.get("error") if isinstance(outer, dict) else None
            inner = inner if isinstance(inner, dict) else {}
            kind_text = inner.get("type")
            detail = f"({kind_text}) " if isinstance(kind_text, str) else ""
            retryable = kind_text in ("api_error", "overloaded_error", "rate_limit_error")
            return ProviderError(
                "provider.batch_error",
                self._message(detail + str(inner.get("message") or "")),
                retryable=retryable,
            )
        if kind in ("canceled", "expired"):
            return ProviderError(f"batch.{kind}", self._message(f"call {kind} in the batch"))
        return bad_response(self.name, "result of unknown type")

    async def cancel(self, batch_id: str) -> None:
        await self._send("POST", f"{self._base}/v1/messages/batches/{_safe(batch_id)}/cancel")


def _multipart(data: bytes) -> tuple[bytes, str]:
    """A ``multipart/form-data`` body with ``purpose=batch`` and the JSONL ``file``."""
    boundary = uuid.uuid4().hex
    head = (
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="purpose"\r\n\r\n'
        "batch\r\n"
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="file"; filename="batch.jsonl"\r\n'
        "Content-Type: application/jsonl\r\n\r\n"
    ).encode("ascii")
    tail = f"\r\n--{boundary}--\r\n".encode("ascii")
    return head + data + tail, f"multipart/form-data; boundary={boundary}"


def _safe(identifier: str) -> str:
    if not _ID.match(identifier):
        raise ValueError(f"unsafe batch or file id {identifier!r}")
    return identifier


def _same_origin(url: str, base: str) -> bool:
    try:
        a, b = urlsplit(url), urlsplit(base)
        return (a.scheme, a.hostname, a.port) == (b.scheme, b.hostname, b.port) and a.scheme in (
            "http",
            "https",
        )
    except ValueError:
        return False
