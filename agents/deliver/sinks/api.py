"""Upload to a content API (email platforms): a templated JSON or multipart body, mapped answer.

Email platforms do not take raw bytes at a URL: they take a JSON body with the file as base64
(Mailchimp's File Manager) or a multipart form (Klaviyo's image upload), and answer with their
own id and URL. Here the body is a template over the delivery's fields (:data:`FIELDS`), the
answer's JSON fields are mapped into the completion's ``location`` and ``external_ids``
(returned as a :class:`~agents.deliver.sinks._base.Located`), and the receiver is treated as
hostile: the URL passes the SSRF guard and is dialled only at the approved addresses, no
redirect is followed, the answer is read up to ``max_response_bytes`` within ``timeout_s``, and
the secret never reaches a log or an error. A 429 carries its ``Retry-After`` to the retry path.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import string
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from pathlib import PurePosixPath
from typing import Any, Literal, Self

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from agents.deliver.sinks._base import Located, SinkError
from agents.deliver.sinks.http import idempotency_key, render_url
from agents.egress.pinning import PIN_EXTENSION, PinnedTransport
from agents.egress.ssrf import Resolver, UnsafeDestination, check_destination, system_resolver
from schemas.records import utc_now
from streams.redaction import redact, redact_and_truncate

__all__ = ["FIELDS", "ApiAuth", "ApiSink", "ApiSinkConfig", "retry_after_s"]

#: Placeholders of body and form values; ``file_base64`` only in a JSON body.
FIELDS = frozenset(
    {
        "tenant",
        "campaign_id",
        "request_id",
        "name",
        "media_type",
        "sha256",
        "size",
        "file_base64",
    }
)
_EXCERPT_CHARS = 300
_EXCERPT_SCAN_CHARS = 16 * 1024


def _placeholders(value: str) -> set[str]:
    try:
        return {name for _, name, _, _ in string.Formatter().parse(value) if name is not None}
    except ValueError as exc:
        raise ValueError(f"template {value!r} does not parse: {exc}") from exc


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, Mapping):
        return [s for item in value.values() for s in _strings(item)]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    return []


class ApiAuth(BaseModel):
    """How the named secret is sent: HTTP Basic (``username`` + secret) or one header."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: Literal["basic", "header"] = "header"
    username: str = "anystring"
    header: str = "Authorization"
    #: Put before the secret in the header, e.g. ``"Bearer "`` or ``"Klaviyo-API-Key "``.
    prefix: str = ""


class ApiSinkConfig(BaseModel):
    """One content API; ``secret`` only ever goes into the auth it is configured for."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str
    method: Literal["POST", "PUT"] = "POST"
    body: Literal["json", "multipart"] = "json"
    #: JSON body (any JSON; strings are templates) or multipart form fields (strings).
    fields: dict[str, Any] = Field(default_factory=dict)
    #: The multipart form field carrying the file (``body: multipart`` only).
    file_field: str = "file"
    headers: dict[str, str] = Field(default_factory=dict)
    auth: ApiAuth | None = None
    secret: SecretStr | None = None
    #: Dotted path in the answer's JSON to the asset's URL (the completion's location).
    location: str | None = None
    #: external_ids name -> dotted path in the answer's JSON.
    external_ids: dict[str, str] = Field(default_factory=dict)
    #: Upload sidecars (JSON) too; platforms that take images would refuse them.
    sidecars: bool = False
    #: Hostnames, IPs or CIDRs the SSRF guard lets through although private (tests, on-prem).
    allow: tuple[str, ...] = ()
    timeout_s: float = Field(default=30.0, gt=0)
    max_response_bytes: int = Field(default=1024 * 1024, ge=1024)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        unknown = _placeholders(value) - {"tenant", "campaign_id", "request_id", "name"}
        if unknown:
            raise ValueError(f"unknown url placeholders {sorted(unknown)}")
        if not value.startswith(("http://", "https://")):
            raise ValueError("url must be an http(s) URL")
        return value

    @model_validator(mode="after")
    def _templates(self) -> Self:
        for text in _strings(self.fields):
            unknown = _placeholders(text) - FIELDS
            if unknown:
                raise ValueError(f"unknown placeholders {sorted(unknown)}; use {sorted(FIELDS)}")
        if self.body == "multipart":
            if any(not isinstance(v, str) for v in self.fields.values()):
                raise ValueError("multipart fields must be strings")
            if any("file_base64" in _placeholders(v) for v in self.fields.values()):
                raise ValueError("a multipart body sends the file as file_field, not base64")
        if (self.auth is None) != (self.secret is None):
            raise ValueError("auth and secret go together")
        return self


def retry_after_s(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - utc_now()).total_seconds())


def _pick(document: Any, dotted: str) -> Any:
    node = document
    for part in dotted.split("."):
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


class ApiSink:
    """One upload per asset; 2xx with the mapped fields is delivered, else a :class:`SinkError`."""

    def __init__(
        self,
        config: ApiSinkConfig,
        transport: PinnedTransport | None = None,
        resolver: Resolver = system_resolver,
    ) -> None:
        self.config = config
        self._transport = transport if transport is not None else PinnedTransport()
        self._resolver = resolver

    def __repr__(self) -> str:
        return f"ApiSink(method={self.config.method!r}, url={self.config.url!r})"

    async def create(self, path: PurePosixPath, data: bytes, media_type: str) -> str:
        """The platform names the upload, so there is no name to find taken: a plain upload."""
        return await self._upload(path, data, media_type)

    async def write(self, path: PurePosixPath, data: bytes, media_type: str) -> str:
        """Sidecars: uploaded only with ``sidecars: true``; else kept off the platform."""
        if not self.config.sidecars:
            return ""
        return await self._upload(path, data, media_type)

    def _values(self, path: PurePosixPath, data: bytes, media_type: str) -> dict[str, str]:
        tenant, campaign_id, name = path.parts
        return {
            "tenant": tenant,
            "campaign_id": campaign_id,
            "request_id": name.rsplit(".", 1)[0] if "." in name[1:] else name,
            "name": name,
            "media_type": media_type,
            "sha256": hashlib.sha256(data).hexdigest(),
            "size": str(len(data)),
        }

    def _json_body(self, values: dict[str, str], data: bytes) -> Any:
        encoded: str | None = None

        def render(node: Any) -> Any:
            nonlocal encoded
            if isinstance(node, str):
                if "file_base64" in _placeholders(node):
                    if encoded is None:
                        encoded = base64.b64encode(data).decode("ascii")
                    return node.format(**values, file_base64=encoded)
                return node.format(**values)
            if isinstance(node, Mapping):
                return {key: render(item) for key, item in node.items()}
            if isinstance(node, list):
                return [render(item) for item in node]
            return node

        return render(self.config.fields)

    def _auth_header(self) -> tuple[str, str] | None:
        auth, secret = self.config.auth, self.config.secret
        if auth is None or secret is None:
            return None
        if auth.type == "basic":
            pair = f"{auth.username}:{secret.get_secret_value()}".encode()
            return "Authorization", "Basic " + base64.b64encode(pair).decode("ascii")
        return auth.header, auth.prefix + secret.get_secret_value()

    def _headers(self) -> dict[str, str]:
        headers = dict(self.config.headers)
        auth = self._auth_header()
        if auth is not None:
            headers[auth[0]] = auth[1]
        return headers

    def _request(
        self, url: str, path: PurePosixPath, data: bytes, media_type: str
    ) -> httpx.Request:
        values = self._values(path, data, media_type)
        headers = self._headers()
        headers["Idempotency-Key"] = idempotency_key(path, data)
        if not any(key.lower() == "accept" for key in headers):
            headers["Accept"] = "application/json"
        headers["Accept-Encoding"] = "identity"  # the size cap counts what arrives, uncompressed
        timeout = httpx.Timeout(self.config.timeout_s).as_dict()
        if self.config.body == "json":
            body = json.dumps(self._json_body(values, data)).encode()
            headers["Content-Type"] = "application/json"
            return httpx.Request(
                self.config.method, url, content=body, headers=headers,
                extensions={"timeout": timeout},
            )  # fmt: skip
        form = {key: str(value).format(**values) for key, value in self.config.fields.items()}
        files = {self.config.file_field: (values["name"], data, media_type)}
        return httpx.Request(
            self.config.method, url, data=form, files=files, headers=headers,
            extensions={"timeout": timeout},
        )  # fmt: skip

    async def _upload(self, path: PurePosixPath, data: bytes, media_type: str) -> str:
        url = render_url(self.config.url, path)
        try:
            destination = await check_destination(url, self.config.allow, self._resolver)
        except UnsafeDestination as exc:
            raise SinkError(exc.code, f"refused {url}: {exc}", retryable=exc.retryable) from exc
        request = self._request(url, path, data, media_type)
        request.extensions[PIN_EXTENSION] = destination
        try:
            async with asyncio.timeout(self.config.timeout_s):
                status, headers, body = await self._send(request)
        except (TimeoutError, httpx.TimeoutException) as exc:
            raise SinkError(
                "sink.api.timeout",
                f"{request.method} {url} timed out after {self.config.timeout_s}s",
            ) from exc
        except httpx.TransportError as exc:
            raise SinkError(
                "sink.api.unreachable", f"{request.method} {url} failed: {type(exc).__name__}"
            ) from exc
        what = f"{request.method} {url}: HTTP {status}"
        if not 200 <= status < 300:
            raise self._status_error(status, headers, body, what)
        return self._located(body, what)

    async def _send(self, request: httpx.Request) -> tuple[int, httpx.Headers, bytes]:
        """Status, headers and at most ``max_response_bytes`` of the body (more is an error)."""
        response = await self._transport.handle_async_request(request)
        try:
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_raw():
                size += len(chunk)
                if size > self.config.max_response_bytes:
                    raise SinkError(
                        "sink.api.response_too_large",
                        f"{request.method} {request.url}: answer over "
                        f"{self.config.max_response_bytes} bytes",
                        retryable=False,
                    )
                chunks.append(chunk)
            return response.status_code, response.headers, b"".join(chunks)
        finally:
            await response.aclose()

    def _located(self, body: bytes, what: str) -> Located:
        try:
            document = json.loads(body) if body else {}
        except ValueError:
            raise SinkError(
                "sink.api.bad_response", f"{what}: answer is not JSON", retryable=False
            ) from None
        ids: dict[str, str] = {}
        for name, dotted in self.config.external_ids.items():
            value = _pick(document, dotted)
            if value is None or isinstance(value, Mapping | list):
                raise SinkError(
                    "sink.api.bad_response",
                    f"{what}: answer has no {dotted!r} for external id {name!r}",
                    retryable=False,
                )
            ids[name] = str(value)
        location = ""
        if self.config.location is not None:
            value = _pick(document, self.config.location)
            if not isinstance(value, str) or not value:
                raise SinkError(
                    "sink.api.bad_response",
                    f"{what}: answer has no {self.config.location!r} for the location",
                    retryable=False,
                )
            location = value
        return Located(location, ids)

    def _status_error(
        self, status: int, headers: httpx.Headers, body: bytes, what: str
    ) -> SinkError:
        excerpt = self._excerpt(body[:_EXCERPT_SCAN_CHARS].decode("utf-8", "replace"))
        if excerpt:
            what = f"{what}: {excerpt}"
        if status == 429:
            return SinkError(
                "sink.api.throttled",
                f"throttled: {what}",
                retry_after_s=retry_after_s(headers.get("Retry-After")),
            )
        if status == 408 or status >= 500:
            return SinkError("sink.api.unavailable", f"receiver unavailable: {what}")
        if 300 <= status < 400:
            return SinkError(
                "sink.api.redirected", f"redirect not followed: {what}", retryable=False
            )
        codes = {
            400: "sink.api.bad_request",
            401: "sink.api.unauthorized",
            403: "sink.api.forbidden",
            404: "sink.api.not_found",
            409: "sink.api.conflict",
            413: "sink.api.too_large",
            415: "sink.api.unsupported_media_type",
            422: "sink.api.invalid",
        }
        return SinkError(
            codes.get(status, "sink.api.rejected"), f"rejected: {what}", retryable=False
        )

    def _excerpt(self, text: str) -> str:
        """The start of an error body with the secret masked (raw, Basic-encoded), then cut."""
        secrets: list[str] = []
        if self.config.secret is not None and self.config.auth is not None:
            secret = self.config.secret.get_secret_value()
            pair = f"{self.config.auth.username}:{secret}".encode()
            # the longest first: the whole header value, then what it is made of
            header = self._auth_header()
            secrets = [header[1] if header else "", base64.b64encode(pair).decode("ascii"), secret]
            secrets = sorted({s for s in secrets if s}, key=len, reverse=True)
        return redact_and_truncate(" ".join(redact(text, secrets).split()), secrets, _EXCERPT_CHARS)
