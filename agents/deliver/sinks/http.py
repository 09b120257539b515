"""HTTP delivery: PUT or POST the bytes to a URL built from the delivery path.

The URL placeholders carry the delivery layout's safe names (the same names the file and
object-key sinks use), percent-encoded once more for the URL: a receiver that decodes its path
once sees exactly those names, which hold no '/' and never start with '.', so no producer-chosen
name can climb out of the template's path.

The ``Idempotency-Key`` is per content: the hex SHA-256 of ``<path>\n<hex sha256 of the bytes>``
(:func:`idempotency_key`). A retry of the same bytes keeps its key, so a receiver can fold it
into the first call; different bytes for the same name never reuse a key. An asset is PUT with
``If-None-Match: *`` (RFC 9110): a receiver that honours it answers 412 when the name already
holds something, and the asset goes to its version name instead of replacing it.
"""

from __future__ import annotations

import hashlib
import string
from pathlib import PurePosixPath
from typing import Literal, Self
from urllib.parse import quote, urljoin, urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from agents.deliver.sinks._base import SinkError, path_taken
from streams.redaction import redact, redact_and_truncate

__all__ = ["PLACEHOLDERS", "HttpSink", "HttpSinkConfig", "idempotency_key", "render_url"]

PLACEHOLDERS = frozenset({"tenant", "campaign_id", "request_id", "name"})
_EXCERPT_CHARS = 200
#: Only this much of an error body is looked at: the excerpt needs 200 characters, and a
#: secret straddling the cut is still whole here, so it is masked before the cut.
_EXCERPT_SCAN_CHARS = 16 * 1024


class HttpSinkConfig(BaseModel):
    """A receiving endpoint; ``auth_value`` only ever goes into its own request header."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str
    method: Literal["PUT", "POST"] = "PUT"
    auth_header: str | None = None
    auth_value: SecretStr | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    timeout_s: float = Field(default=30.0, gt=0)

    @field_validator("url")
    @classmethod
    def _url_template(cls, value: str) -> str:
        try:
            fields = {name for _, name, _, _ in string.Formatter().parse(value) if name is not None}
        except ValueError as exc:
            raise ValueError(f"url template does not parse: {exc}") from exc
        unknown = fields - PLACEHOLDERS
        if unknown:
            raise ValueError(
                f"unknown url placeholders {sorted(unknown)}; use {sorted(PLACEHOLDERS)}"
            )
        parts = urlsplit(value.format(**dict.fromkeys(PLACEHOLDERS, "x")))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("url must be an http(s) URL with a host")
        if parts.netloc != urlsplit(value.format(**dict.fromkeys(PLACEHOLDERS, "y"))).netloc:
            raise ValueError("placeholders may not appear in the url's host")
        return value

    @model_validator(mode="after")
    def _auth_pair(self) -> Self:
        if (self.auth_header is None) != (self.auth_value is None):
            raise ValueError("auth_header and auth_value go together")
        if self.auth_header is not None and self.auth_header.lower() in {
            name.lower() for name in self.headers
        }:
            raise ValueError("the auth header must not also be among the extra headers")
        return self


def render_url(template: str, path: PurePosixPath) -> str:
    """The URL for a ``tenant/campaign/request_id.ext`` delivery path.

    ``{request_id}`` is the name without its last extension: a version's
    (``r.<sha256[:16]>.png``) keeps its content mark, so a template without ``{name}`` still
    never sends two versions (or an asset and its sidecar) to one URL.
    """
    parts = path.parts
    if path.is_absolute() or len(parts) != 3 or any(p in ("", ".", "..") for p in parts):
        raise SinkError(
            "deliver.unsafe_path",
            f"expected tenant/campaign/file, got {str(path)!r}",
            retryable=False,
        )
    tenant, campaign_id, name = parts
    request_id = name.rsplit(".", 1)[0] if "." in name[1:] else name
    values = {
        "tenant": tenant,
        "campaign_id": campaign_id,
        "request_id": request_id,
        "name": name,
    }
    return template.format(**{key: quote(value, safe="") for key, value in values.items()})


def idempotency_key(path: PurePosixPath, data: bytes) -> str:
    """One key per (delivery path, content): a retry keeps it, other bytes never share it.

    Hashed so its length is bounded whatever the names: receivers commonly cap keys (255).
    """
    content = hashlib.sha256(data).hexdigest()
    return hashlib.sha256(f"{path}\n{content}".encode()).hexdigest()


class HttpSink:
    """Sends each asset in one request; 2xx is delivered, anything else a :class:`SinkError`."""

    def __init__(self, config: HttpSinkConfig, client: httpx.AsyncClient | None = None) -> None:
        self.config = config
        self._client = client

    def __repr__(self) -> str:
        return f"HttpSink(method={self.config.method!r}, url={self.config.url!r})"

    async def write(self, path: PurePosixPath, data: bytes, media_type: str) -> str:
        return await self._deliver(path, data, media_type, exclusive=False)

    async def create(self, path: PurePosixPath, data: bytes, media_type: str) -> str:
        """A PUT with ``If-None-Match: *``; 412 means the name is taken (see the module).

        A POST names nothing (the receiver does), so it is sent as :meth:`write` sends it.
        """
        return await self._deliver(path, data, media_type, exclusive=self.config.method == "PUT")

    async def _deliver(
        self, path: PurePosixPath, data: bytes, media_type: str, *, exclusive: bool
    ) -> str:
        url = render_url(self.config.url, path)
        headers = dict(self.config.headers)
        headers["Content-Type"] = media_type
        headers["Idempotency-Key"] = idempotency_key(path, data)
        if exclusive:
            headers["If-None-Match"] = "*"
        if self.config.auth_header is not None and self.config.auth_value is not None:
            headers[self.config.auth_header] = self.config.auth_value.get_secret_value()
        if self._client is not None:
            response = await self._send(self._client, url, headers, data)
        else:
            async with httpx.AsyncClient() as client:
                response = await self._send(client, url, headers, data)
        if exclusive and response.status_code == 412:
            raise path_taken(path)
        if not response.is_success:
            raise self._status_error(response)
        final = str(response.url)
        location = response.headers.get("Location")
        return urljoin(final, location) if location else final

    async def _send(
        self, client: httpx.AsyncClient, url: str, headers: dict[str, str], data: bytes
    ) -> httpx.Response:
        method = self.config.method
        try:
            return await client.request(
                method, url, headers=headers, content=data, timeout=self.config.timeout_s
            )
        except httpx.TimeoutException as exc:
            raise SinkError(
                "sink.http.timeout", f"{method} {url} timed out after {self.config.timeout_s}s"
            ) from exc
        except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
            raise SinkError(
                "sink.http.bad_url", f"cannot send to {url}: {type(exc).__name__}", retryable=False
            ) from exc
        except httpx.TransportError as exc:
            raise SinkError(
                "sink.http.unreachable", f"{method} {url} failed: {type(exc).__name__}"
            ) from exc

    def _status_error(self, response: httpx.Response) -> SinkError:
        status = response.status_code
        what = f"{response.request.method} {response.url}: HTTP {status}"
        excerpt = self._excerpt(response.text[:_EXCERPT_SCAN_CHARS])
        if excerpt:
            what = f"{what}: {excerpt}"
        if status == 429:
            return SinkError("sink.http.throttled", f"throttled: {what}")
        if status == 408 or status >= 500:
            return SinkError("sink.http.unavailable", f"receiver unavailable: {what}")
        if status in (401, 403):
            return SinkError("sink.http.denied", f"access denied: {what}", retryable=False)
        return SinkError("sink.http.rejected", f"delivery rejected: {what}", retryable=False)

    def _excerpt(self, text: str) -> str:
        """The start of an error body, with the auth value masked in every form, then cut.

        Receivers that echo the request must not leak the auth value into our errors; masking
        after the cut would miss one cut in half.
        """
        secrets = []
        if self.config.auth_value is not None:
            secret = self.config.auth_value.get_secret_value()
            # "Bearer tok..." echoed as just the token is still the secret
            secrets = [secret, *secret.split(None, 1)[1:]]
        return redact_and_truncate(" ".join(redact(text, secrets).split()), secrets, _EXCERPT_CHARS)
