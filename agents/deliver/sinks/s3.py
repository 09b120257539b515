"""S3 (and S3-compatible) delivery: SigV4-signed PUTs sent with httpx, idempotent by content.

botocore only signs; httpx carries the bytes, so the sink shares the project's HTTP client and
its timeouts. Every PUT carries Content-MD5 and an SHA-256 checksum so the store refuses bytes
that changed on the way, and the object's ``x-amz-meta-sha256`` lets a repeated delivery of the
same bytes end at a HEAD instead of a second upload.

Assets go through :meth:`S3Sink.create`, which never replaces an object holding other bytes
(bucket versioning is not something the line can count on): the HEAD tells, and the PUT
carries ``If-None-Match: *`` so a store that supports conditional writes refuses a racing
writer too (412), after which the HEAD decides again.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Mapping
from pathlib import PurePosixPath
from types import MappingProxyType
from typing import Literal
from urllib.parse import quote, urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from agents.deliver.sinks._base import SinkError, path_taken
from streams import s3_signing

__all__ = [
    "S3Config",
    "S3Sink",
    "metadata_headers",
    "object_key",
    "object_url",
    "put_headers",
    "sign",
]

SHA256_META = "sha256"
MAX_METADATA_BYTES = 2048  # S3's limit for all user metadata of one object
_NO_METADATA: Mapping[str, str] = MappingProxyType({})
_META_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
# Printable ASCII except '%' stays as is; '%', controls and non-ASCII are percent-encoded
# (UTF-8), so urllib.parse.unquote gives the original value back.
_META_SAFE = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) not in "%")
_S3_CODE = re.compile(rb"<Code>([^<]{1,100})</Code>")


class S3Config(BaseModel):
    """Where objects go; ``secret_access_key`` never leaves the signer."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    endpoint_url: str
    bucket: str
    region: str = "us-east-1"
    prefix: str = ""
    access_key_id: str = Field(min_length=1)
    secret_access_key: SecretStr
    addressing: Literal["path", "virtual"] = "path"
    timeout_s: float = Field(default=30.0, gt=0)

    @field_validator("endpoint_url")
    @classmethod
    def _http_endpoint(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("endpoint_url must be an http(s) URL with a host")
        if parts.query or parts.fragment or parts.path not in ("", "/"):
            raise ValueError("endpoint_url must not carry a path, query or fragment")
        return f"{parts.scheme}://{parts.netloc}"

    @field_validator("bucket")
    @classmethod
    def _bucket_name(cls, value: str) -> str:
        if not _BUCKET.match(value) or ".." in value:
            raise ValueError(f"invalid bucket name {value!r}")
        return value

    @field_validator("prefix")
    @classmethod
    def _clean_prefix(cls, value: str) -> str:
        parts = [part for part in value.split("/") if part]
        if any(part in (".", "..") for part in parts):
            raise ValueError("prefix must not contain '.' or '..' segments")
        return "/".join(parts)


def object_key(config: S3Config, path: PurePosixPath) -> str:
    """The key of ``path`` below the configured prefix; refuses paths that could climb out."""
    if path.is_absolute() or not path.parts or any(p in ("", ".", "..") for p in path.parts):
        raise SinkError("deliver.unsafe_path", f"refusing path {str(path)!r}", retryable=False)
    key = "/".join(path.parts)
    return f"{config.prefix}/{key}" if config.prefix else key


def object_url(config: S3Config, key: str) -> str:
    """The request URL of ``key``: path-style ``endpoint/bucket/key`` or virtual-hosted."""
    return s3_signing.object_url(config.endpoint_url, config.bucket, key, config.addressing)


def metadata_headers(metadata: Mapping[str, str]) -> dict[str, str]:
    """``x-amz-meta-*`` headers; values are made ASCII-safe by percent-encoding.

    Names are refused rather than rewritten: two names that rewrite to one would lose data.
    """
    headers: dict[str, str] = {}
    for name, value in metadata.items():
        lowered = name.lower()
        if not _META_NAME.match(lowered):
            raise SinkError(
                "sink.s3.bad_metadata",
                f"metadata name {name!r} must be ASCII letters, digits, '-' or '_'",
                retryable=False,
            )
        if lowered == SHA256_META:
            raise SinkError(
                "sink.s3.bad_metadata",
                f"metadata name {name!r} is reserved for the content checksum",
                retryable=False,
            )
        header = f"x-amz-meta-{lowered}"
        if header in headers:
            raise SinkError(
                "sink.s3.bad_metadata", f"metadata name {name!r} given twice", retryable=False
            )
        headers[header] = quote(value, safe=_META_SAFE)
    size = sum(len(name) - len("x-amz-meta-") + len(value) for name, value in headers.items())
    if size > MAX_METADATA_BYTES:
        raise SinkError(
            "sink.s3.bad_metadata",
            f"metadata is {size} bytes, S3 allows {MAX_METADATA_BYTES}",
            retryable=False,
        )
    return headers


def put_headers(data: bytes, media_type: str, metadata: Mapping[str, str]) -> dict[str, str]:
    """The unsigned headers of a PUT: type, integrity checksums and metadata."""
    sha256 = hashlib.sha256(data)
    headers = metadata_headers(metadata)
    headers.update(
        {
            "Content-Type": media_type,
            "Content-MD5": base64.b64encode(
                hashlib.md5(data, usedforsecurity=False).digest()
            ).decode("ascii"),
            "x-amz-sdk-checksum-algorithm": "SHA256",
            "x-amz-checksum-sha256": base64.b64encode(sha256.digest()).decode("ascii"),
            f"x-amz-meta-{SHA256_META}": sha256.hexdigest(),
        }
    )
    return headers


def sign(
    config: S3Config, method: str, url: str, headers: Mapping[str, str], body: bytes
) -> dict[str, str]:
    """``headers`` plus SigV4's (streams/s3_signing.py signs every header given)."""
    return s3_signing.sign_request(
        config.access_key_id,
        config.secret_access_key,
        config.region,
        method,
        url,
        headers,
        body,
    )


class S3Sink:
    """Writes objects to one bucket; the location is ``s3://bucket/key``."""

    def __init__(self, config: S3Config, client: httpx.AsyncClient | None = None) -> None:
        self.config = config
        self._client = client

    def __repr__(self) -> str:
        return f"S3Sink(endpoint={self.config.endpoint_url!r}, bucket={self.config.bucket!r})"

    async def write(
        self,
        path: PurePosixPath,
        data: bytes,
        media_type: str,
        metadata: Mapping[str, str] = _NO_METADATA,
    ) -> str:
        return await self._deliver(path, data, media_type, metadata, exclusive=False)

    async def create(
        self,
        path: PurePosixPath,
        data: bytes,
        media_type: str,
        metadata: Mapping[str, str] = _NO_METADATA,
    ) -> str:
        """Like :meth:`write`, but an object with other bytes at the key is left alone."""
        return await self._deliver(path, data, media_type, metadata, exclusive=True)

    async def _deliver(
        self,
        path: PurePosixPath,
        data: bytes,
        media_type: str,
        metadata: Mapping[str, str],
        *,
        exclusive: bool,
    ) -> str:
        key = object_key(self.config, path)
        headers = put_headers(data, media_type, metadata)
        if exclusive:
            headers["If-None-Match"] = "*"
        url = object_url(self.config, key)
        if self._client is not None:
            await self._put_unless_present(self._client, url, path, key, data, headers)
        else:
            async with httpx.AsyncClient() as client:
                await self._put_unless_present(client, url, path, key, data, headers)
        return f"s3://{self.config.bucket}/{key}"

    async def _put_unless_present(
        self,
        client: httpx.AsyncClient,
        url: str,
        path: PurePosixPath,
        key: str,
        data: bytes,
        headers: Mapping[str, str],
    ) -> None:
        exclusive = "If-None-Match" in headers
        held = await self._held(client, url, key, headers)
        if held == "same":
            return
        if held == "other" and exclusive:
            raise path_taken(path)
        put = await self._send(client, "PUT", url, key, headers, data)
        if exclusive and put.status_code == 412:  # a writer got there between HEAD and PUT
            if await self._held(client, url, key, headers) == "same":
                return
            raise path_taken(path)
        if not put.is_success:
            raise _status_error(put, key)

    async def _held(
        self, client: httpx.AsyncClient, url: str, key: str, headers: Mapping[str, str]
    ) -> Literal["same", "other", "none"]:
        """What the key holds: these bytes (by their ``x-amz-meta-sha256``), others, nothing."""
        head = await self._send(client, "HEAD", url, key, {}, b"")
        if head.status_code == 404:
            return "none"
        if head.status_code != 200:
            raise _status_error(head, key)
        wanted = headers[f"x-amz-meta-{SHA256_META}"]
        return "same" if head.headers.get(f"x-amz-meta-{SHA256_META}") == wanted else "other"

    async def _send(
        self,
        client: httpx.AsyncClient,
        method: str,
        url: str,
        key: str,
        headers: Mapping[str, str],
        body: bytes,
    ) -> httpx.Response:
        signed = sign(self.config, method, url, headers, body)
        try:
            return await client.request(
                method, url, headers=signed, content=body, timeout=self.config.timeout_s
            )
        except httpx.TimeoutException as exc:
            raise SinkError(
                "sink.s3.timeout",
                f"{method} {self.config.bucket}/{key} timed out after {self.config.timeout_s}s",
            ) from exc
        except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
            raise SinkError(
                "sink.s3.bad_endpoint",
                f"cannot send to {self.config.endpoint_url}: {type(exc).__name__}",
                retryable=False,
            ) from exc
        except httpx.TransportError as exc:
            raise SinkError(
                "sink.s3.unreachable",
                f"{method} {self.config.bucket}/{key} to {self.config.endpoint_url} failed: "
                f"{type(exc).__name__}",
            ) from exc


def _status_error(response: httpx.Response, key: str) -> SinkError:
    """A stable code for an S3 answer; the message names the S3 error code, never a secret."""
    status = response.status_code
    found = _S3_CODE.search(response.content)
    s3_code = found.group(1).decode("ascii", "replace") if found else ""
    what = f"{response.request.method} {key}: HTTP {status}" + (f" {s3_code}" if s3_code else "")
    if status in (401, 403):
        return SinkError("sink.s3.denied", f"access denied: {what}", retryable=False)
    if status == 429 or s3_code == "SlowDown":
        return SinkError("sink.s3.throttled", f"throttled: {what}")
    if status == 408 or status >= 500:
        return SinkError("sink.s3.unavailable", f"store unavailable: {what}")
    if s3_code == "NoSuchBucket":
        return SinkError("sink.s3.no_bucket", f"no such bucket: {what}", retryable=False)
    if s3_code in ("BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch"):
        return SinkError("sink.s3.bad_digest", f"checksum refused: {what}")
    return SinkError("sink.s3.rejected", f"request rejected: {what}", retryable=False)
