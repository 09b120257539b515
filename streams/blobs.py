"""Content-addressed blob store: asset bytes live here, Kafka carries only a claim-check.

Blobs are addressed by SHA-256, written once and never rewritten with other bytes, so a
re-generation after a crash lands on the same blob. Two stores share one interface
(:class:`BlobStore`), chosen by ``settings.blob_store`` (:func:`open_blob_store`):

* :class:`LocalBlobStore`: files under ``root/ab/cd/<sha256>`` (temporary file + rename), for
  one host or a shared filesystem;
* :class:`S3BlobStore`: objects ``<prefix>/ab/cd/<sha256>`` in an S3-compatible bucket, signed
  with SigV4 (streams/s3_signing.py) and sent with httpx, so workers on several hosts read
  each other's claim checks (a partition that moved is read by the worker that took it).

Reads resolve by hash only, never by the URI, and check the bytes against the hash
(``blob.corrupt``); an absent blob is ``blob.missing``. A bounded in-memory cache keeps recent
blobs so a worker running several stages never re-reads what it just wrote.

Retention (streams/blob_sweep.py) deletes blobs by their last write time, so writing a blob
that is already stored refreshes that time once it is older than ``refresh_after_s``: a new
claim check for old bytes keeps them alive as long as a fresh one would.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import re
import time
import xml.etree.ElementTree as ET
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Generator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypeVar, runtime_checkable
from urllib.parse import quote, urlencode, urlsplit

import httpx
from pydantic import SecretStr

from schemas.errors import AssetlineError
from schemas.records import BlobRef
from streams.atomic_file import write_atomic
from streams.limits import ASSET_TOO_LARGE
from streams.s3_signing import Addressing, object_url, sign_request

if TYPE_CHECKING:
    from streams.settings import Settings

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_S3_CODE = re.compile(rb"<Code>([^<]{1,100})</Code>")
_CHUNK = 256 * 1024
#: A blob written again is re-stamped once its last write is older than this (see module doc).
DEFAULT_REFRESH_AFTER_S = 24 * 3600.0

Clock = Callable[[], datetime]


def _utc_now() -> datetime:
    return datetime.now(UTC)


class BlobError(AssetlineError):
    """A blob cannot be read back as it was written."""

    code = "blob.error"


class BlobMissingError(BlobError):
    code = "blob.missing"


class BlobCorruptError(BlobError):
    code = "blob.corrupt"


class BlobTooLargeError(BlobError):
    """Over the caller's cap: refused before anything is hashed, written or read."""

    code = ASSET_TOO_LARGE


class BlobUnavailableError(BlobError):
    """The store did not answer (in time, or at all) after its retries, or refused the call."""

    code = "blob.unavailable"


@dataclass(frozen=True)
class BlobEntry:
    """One stored blob as a sweep sees it: its address, size and last write (UTC)."""

    sha256: str
    size: int
    modified: datetime


@runtime_checkable
class BlobStore(Protocol):
    """What the line needs of a claim-check store.

    Stages await ``put_async``/``get_async`` (never blocking the event loop on the network);
    ``put``/``get`` are for synchronous callers (tools, tests); dead letters are parked with
    ``put_async`` too (:func:`streams.dead_letters.park_value`).
    """

    def put(self, data: bytes, media_type: str, *, max_bytes: int | None = None) -> BlobRef: ...

    def get(self, ref: BlobRef, *, max_bytes: int | None = None) -> bytes: ...

    async def put_async(
        self, data: bytes, media_type: str, *, max_bytes: int | None = None
    ) -> BlobRef: ...

    async def get_async(self, ref: BlobRef, *, max_bytes: int | None = None) -> bytes: ...

    def entries(self) -> AsyncIterator[BlobEntry]: ...

    async def delete_if_older(self, sha256: str, cutoff: datetime) -> BlobEntry | None: ...

    async def aclose(self) -> None: ...


def _check_address(sha256: str) -> None:
    if not _SHA256.fullmatch(sha256):
        raise BlobMissingError(f"not a sha256 address: {sha256[:80]!r}")


def _refuse_put(data: bytes, media_type: str, max_bytes: int | None) -> None:
    if max_bytes is not None and len(data) > max_bytes:
        raise BlobTooLargeError(
            f"{len(data)} bytes of {media_type} exceed the cap of {max_bytes} bytes"
        )


def _check_size(size: int, max_bytes: int | None, ref: BlobRef) -> None:
    if max_bytes is not None and size > max_bytes:
        raise BlobTooLargeError(
            f"blob {ref.sha256} is {size} bytes, over the cap of {max_bytes} bytes"
        )


def _check_hash(data: bytes, ref: BlobRef) -> None:
    if hashlib.sha256(data).hexdigest() != ref.sha256:
        raise BlobCorruptError(f"blob {ref.sha256} does not match its hash")


class _Cache:
    """Recent blobs by sha256, bounded by their total size (least recently used goes first)."""

    def __init__(self, limit: int) -> None:
        self._blobs: OrderedDict[str, bytes] = OrderedDict()
        self._limit = limit
        self._held = 0

    def get(self, sha256: str) -> bytes | None:
        data = self._blobs.get(sha256)
        if data is not None:
            self._blobs.move_to_end(sha256)
        return data

    def remember(self, sha256: str, data: bytes) -> None:
        if len(data) > self._limit or sha256 in self._blobs:
            return
        self._blobs[sha256] = data
        self._held += len(data)
        while self._held > self._limit:
            _, evicted = self._blobs.popitem(last=False)
            self._held -= len(evicted)

    @property
    def held(self) -> int:
        return self._held

    def forget(self, sha256: str) -> None:
        data = self._blobs.pop(sha256, None)
        if data is not None:
            self._held -= len(data)


class LocalBlobStore:
    """Blobs under ``root/ab/cd/<sha256>``; reads resolve by hash only, never by the URI."""

    def __init__(
        self,
        root: Path,
        *,
        cache_bytes: int = 256 * 1024 * 1024,
        refresh_after_s: float = DEFAULT_REFRESH_AFTER_S,
        clock: Clock = _utc_now,
    ) -> None:
        self.root = root.resolve()
        self._cache = _Cache(cache_bytes)
        self._refresh_after_s = refresh_after_s
        self._clock = clock

    def __repr__(self) -> str:
        return f"LocalBlobStore({str(self.root)!r})"

    @property
    def cached_bytes(self) -> int:
        """Bytes the in-memory cache holds now (bounded by ``cache_bytes``)."""
        return self._cache.held

    def path_for(self, sha256: str) -> Path:
        _check_address(sha256)
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def put(self, data: bytes, media_type: str, *, max_bytes: int | None = None) -> BlobRef:
        """Store ``data``; over ``max_bytes`` (an asset kind's cap) raises BlobTooLargeError."""
        _refuse_put(data, media_type, max_bytes)
        sha256 = hashlib.sha256(data).hexdigest()
        path = self.path_for(sha256)
        if not self._refresh(path):
            write_atomic(path, data)
        self._cache.remember(sha256, data)
        return BlobRef(uri=path.as_uri(), sha256=sha256, size=len(data), media_type=media_type)

    def _refresh(self, path: Path) -> bool:
        """Whether ``path`` exists; its time is re-stamped if older than refresh_after_s."""
        try:
            modified = path.stat().st_mtime
        except FileNotFoundError:
            return False
        now = self._clock().timestamp()
        if now - modified > self._refresh_after_s:
            try:
                os.utime(path, (now, now))
            except FileNotFoundError:  # swept in between: write it again
                return False
        return True

    def get(self, ref: BlobRef, *, max_bytes: int | None = None) -> bytes:
        """The blob's bytes, checked against its hash (a claim-check must not be trusted).

        Over ``max_bytes`` (by the file's size, so before reading it) raises BlobTooLargeError.
        """
        cached = self._cache.get(ref.sha256)
        if cached is not None:
            _check_size(len(cached), max_bytes, ref)
            return cached
        path = self.path_for(ref.sha256)
        try:
            if max_bytes is not None:
                _check_size(path.stat().st_size, max_bytes, ref)
            data = path.read_bytes()
        except FileNotFoundError:
            raise BlobMissingError(f"blob {ref.sha256} is not in {self.root}") from None
        _check_hash(data, ref)
        self._cache.remember(ref.sha256, data)
        return data

    async def put_async(
        self, data: bytes, media_type: str, *, max_bytes: int | None = None
    ) -> BlobRef:
        return self.put(data, media_type, max_bytes=max_bytes)

    async def get_async(self, ref: BlobRef, *, max_bytes: int | None = None) -> bytes:
        return self.get(ref, max_bytes=max_bytes)

    async def entries(self) -> AsyncIterator[BlobEntry]:
        """Every blob, one top-level folder at a time (scanned off the event loop)."""
        if not self.root.is_dir():
            return
        tops = await asyncio.to_thread(_folders, self.root)
        for top in tops:
            for entry in await asyncio.to_thread(_scan_top, top):
                yield entry

    async def delete_if_older(self, sha256: str, cutoff: datetime) -> BlobEntry | None:
        """Delete the blob if its last write is before ``cutoff``; the entry deleted, or None."""
        path = self.path_for(sha256)
        try:
            stat = path.stat()
            modified = datetime.fromtimestamp(stat.st_mtime, UTC)
            if modified >= cutoff:
                return None
            path.unlink()
        except FileNotFoundError:
            return None
        self._cache.forget(sha256)
        return BlobEntry(sha256, stat.st_size, modified)

    async def aclose(self) -> None:
        return None


def _folders(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if len(p.name) == 2 and p.is_dir())


def _scan_top(top: Path) -> list[BlobEntry]:
    found: list[BlobEntry] = []
    for middle in sorted(top.iterdir()):
        if len(middle.name) != 2 or not middle.is_dir():
            continue
        for path in middle.iterdir():
            name = path.name
            if not (_SHA256.fullmatch(name) and name[:2] == top.name and name[2:4] == middle.name):
                continue  # temporary files of a write in progress, strangers
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue
            modified = datetime.fromtimestamp(stat.st_mtime, UTC)
            found.append(BlobEntry(name, stat.st_size, modified))
    return found


@dataclass(frozen=True)
class S3BlobConfig:
    """Where the S3 blob store keeps blobs; ``secret_access_key`` never leaves the signer."""

    endpoint_url: str
    bucket: str
    access_key_id: str
    secret_access_key: SecretStr
    region: str = "us-east-1"
    prefix: str = "blobs"
    addressing: Addressing = "path"
    #: Bound of one HTTP call, body included; a call is tried ``attempts`` times at most.
    timeout_s: float = 30.0
    attempts: int = 3

    def __repr__(self) -> str:
        return (
            f"S3BlobConfig(endpoint_url={self.endpoint_url!r}, bucket={self.bucket!r}, "
            f"prefix={self.prefix!r})"
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> S3BlobConfig:
        endpoint = settings.blob_s3_endpoint_url or (
            f"https://s3.{settings.blob_s3_region}.amazonaws.com"
        )
        parts = urlsplit(endpoint)
        prefix = "/".join(part for part in settings.blob_s3_prefix.split("/") if part)
        return cls(
            endpoint_url=f"{parts.scheme}://{parts.netloc}",
            bucket=settings.blob_s3_bucket,
            access_key_id=settings.blob_s3_access_key_id,
            secret_access_key=settings.blob_s3_secret_access_key,
            region=settings.blob_s3_region,
            prefix=prefix,
            addressing=settings.blob_s3_addressing,
            timeout_s=settings.blob_s3_timeout_s,
        )

    def key_for(self, sha256: str) -> str:
        _check_address(sha256)
        key = f"{sha256[:2]}/{sha256[2:4]}/{sha256}"
        return f"{self.prefix}/{key}" if self.prefix else key

    def bucket_url(self) -> str:
        if self.addressing == "path":
            return f"{self.endpoint_url}/{self.bucket}"
        parts = urlsplit(self.endpoint_url)
        return f"{parts.scheme}://{self.bucket}.{parts.netloc}/"


_T = TypeVar("_T")
#: A call's answer: (status, headers, body read up to the call's limit).
_Answer = tuple[int, httpx.Headers, bytes]


@dataclass(frozen=True)
class _Call:
    """One S3 request an operation's steps ask for."""

    method: str
    url: str
    headers: dict[str, str] | None = None
    body: bytes = b""
    limit: int | None = None
    what: str = ""

    @property
    def args(self) -> tuple[str, str, dict[str, str] | None, bytes]:
        return self.method, self.url, self.headers, self.body


class S3BlobStore:
    """Blobs as objects ``<prefix>/ab/cd/<sha256>`` in one bucket; the URI is ``s3://``.

    Written once: a HEAD tells whether the object is there (then only an old one is written
    again, to re-stamp it), and the PUT carries ``If-None-Match: *`` plus the SHA-256 checksum,
    so the store refuses bytes changed on the way; content addressing makes a racing writer
    harmless. Every call is bounded (``timeout_s`` per attempt, body included) and retried
    on timeouts, transport errors, 5xx and throttling; reads are bounded by the claim check's
    own size and the caller's cap, and checked against the hash.
    """

    def __init__(
        self,
        config: S3BlobConfig,
        *,
        cache_bytes: int = 256 * 1024 * 1024,
        refresh_after_s: float = DEFAULT_REFRESH_AFTER_S,
        clock: Clock = _utc_now,
    ) -> None:
        self.config = config
        self._cache = _Cache(cache_bytes)
        self._refresh_after_s = refresh_after_s
        self._clock = clock
        self._client: httpx.AsyncClient | None = None
        self._client_loop: asyncio.AbstractEventLoop | None = None
        self._sync_client: httpx.Client | None = None

    def __repr__(self) -> str:
        return f"S3BlobStore({self.config!r})"

    @property
    def cached_bytes(self) -> int:
        """Bytes the in-memory cache holds now (bounded by ``cache_bytes``)."""
        return self._cache.held

    def uri_for(self, sha256: str) -> str:
        return f"s3://{self.config.bucket}/{self.config.key_for(sha256)}"

    # -- requests ------------------------------------------------------------------------

    def _request(
        self, method: str, url: str, headers: dict[str, str] | None = None, body: bytes = b""
    ) -> tuple[str, dict[str, str]]:
        signed = sign_request(
            self.config.access_key_id,
            self.config.secret_access_key,
            self.config.region,
            method,
            url,
            headers or {},
            body,
        )
        return url, signed

    def _aclient(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        if self._client is None or self._client_loop is not loop:
            self._client = httpx.AsyncClient(timeout=self.config.timeout_s)
            self._client_loop = loop
        return self._client

    def _sclient(self) -> httpx.Client:
        if self._sync_client is None:
            self._sync_client = httpx.Client(timeout=self.config.timeout_s)
        return self._sync_client

    async def _call(
        self,
        method: str,
        url: str,
        headers: dict[str, str] | None = None,
        body: bytes = b"",
        *,
        limit: int | None = None,
        what: str,
    ) -> tuple[int, httpx.Headers, bytes]:
        """``(status, headers, body)``; the body is read only up to ``limit`` + 1 bytes."""
        delay = 0.2
        for attempt in range(1, self.config.attempts + 1):
            _, signed = self._request(method, url, headers, body)
            try:
                async with asyncio.timeout(self.config.timeout_s):
                    async with self._aclient().stream(
                        method, url, headers=signed, content=body
                    ) as response:
                        data = bytearray()
                        if limit is None or _within(response.headers, limit):
                            async for chunk in response.aiter_bytes(_CHUNK):
                                data += chunk
                                if limit is not None and len(data) > limit:
                                    break
                        status = response.status_code
                        _retry_on(status, what)
                        return status, response.headers, bytes(data)
            except (TimeoutError, httpx.TransportError, BlobUnavailableError) as exc:
                if attempt == self.config.attempts:
                    raise self._unavailable(what, exc) from exc
            await asyncio.sleep(delay)
            delay *= 2
        raise AssertionError("unreachable")

    def _call_sync(
        self,
        method: str,
        url: str,
        headers: dict[str, str] | None = None,
        body: bytes = b"",
        *,
        limit: int | None = None,
        what: str,
    ) -> tuple[int, httpx.Headers, bytes]:
        delay = 0.2
        for attempt in range(1, self.config.attempts + 1):
            _, signed = self._request(method, url, headers, body)
            started = time.monotonic()
            try:
                with self._sclient().stream(method, url, headers=signed, content=body) as response:
                    data = bytearray()
                    if limit is None or _within(response.headers, limit):
                        for chunk in response.iter_bytes(_CHUNK):
                            data += chunk
                            if limit is not None and len(data) > limit:
                                break
                            if time.monotonic() - started > self.config.timeout_s:
                                raise TimeoutError(f"{what}: body not read in time")
                    status = response.status_code
                    _retry_on(status, what)
                    return status, response.headers, bytes(data)
            except (TimeoutError, httpx.TransportError, BlobUnavailableError) as exc:
                if attempt == self.config.attempts:
                    raise self._unavailable(what, exc) from exc
            time.sleep(delay)
            delay *= 2
        raise AssertionError("unreachable")

    def _unavailable(self, what: str, exc: BaseException) -> BlobUnavailableError:
        reason = str(exc) if isinstance(exc, BlobUnavailableError) else type(exc).__name__
        return BlobUnavailableError(
            f"{what} at {self.config.endpoint_url} failed after {self.config.attempts} "
            f"attempts: {reason}"
        )

    async def _run_async(self, steps: Generator[_Call, _Answer, _T]) -> _T:
        """Make each call ``steps`` asks for (asynchronously); what it returns."""
        try:
            call = next(steps)
            while True:
                call = steps.send(await self._call(*call.args, limit=call.limit, what=call.what))
        except StopIteration as done:
            result: _T = done.value
            return result

    def _run_sync(self, steps: Generator[_Call, _Answer, _T]) -> _T:
        """Make each call ``steps`` asks for (blocking); what it returns."""
        try:
            call = next(steps)
            while True:
                call = steps.send(self._call_sync(*call.args, limit=call.limit, what=call.what))
        except StopIteration as done:
            result: _T = done.value
            return result

    # -- put -----------------------------------------------------------------------------

    def _put_headers(self, data: bytes, sha256: str, media_type: str) -> dict[str, str]:
        return {
            "Content-Type": media_type,
            "Content-MD5": base64.b64encode(
                hashlib.md5(data, usedforsecurity=False).digest()
            ).decode("ascii"),
            "x-amz-sdk-checksum-algorithm": "SHA256",
            "x-amz-checksum-sha256": base64.b64encode(bytes.fromhex(sha256)).decode("ascii"),
            "x-amz-meta-sha256": sha256,
        }

    def _needs_write(self, status: int, headers: httpx.Headers, key: str) -> bool | None:
        """From a HEAD: False = there and fresh, True = write again (old), None = absent."""
        if status == 404:
            return None
        if status != 200:
            raise _status_error(status, b"", f"HEAD {key}")
        modified = _last_modified(headers)
        age = (self._clock() - modified).total_seconds() if modified else 0.0
        return age > self._refresh_after_s

    def _ref(self, sha256: str, data: bytes, media_type: str) -> BlobRef:
        self._cache.remember(sha256, data)
        return BlobRef(
            uri=self.uri_for(sha256), sha256=sha256, size=len(data), media_type=media_type
        )

    def _put_steps(
        self, data: bytes, media_type: str, max_bytes: int | None
    ) -> Generator[_Call, _Answer, BlobRef]:
        """A put as the calls it makes; :meth:`put_async` and :meth:`put` carry them out."""
        _refuse_put(data, media_type, max_bytes)
        sha256 = hashlib.sha256(data).hexdigest()
        key = self.config.key_for(sha256)
        url = object_url(self.config.endpoint_url, self.config.bucket, key, self.config.addressing)
        status, headers, _ = yield _Call("HEAD", url, limit=0, what=f"HEAD {key}")
        write = self._needs_write(status, headers, key)
        if write is False:
            return self._ref(sha256, data, media_type)
        put_headers = self._put_headers(data, sha256, media_type)
        if write is None:
            put_headers["If-None-Match"] = "*"
        status, _, body = yield _Call(
            "PUT", url, put_headers, data, limit=64 * 1024, what=f"PUT {key}"
        )
        if status not in (200, 201, 204, 412):  # 412: a racing writer stored the same bytes
            raise _status_error(status, body, f"PUT {key}")
        return self._ref(sha256, data, media_type)

    async def put_async(
        self, data: bytes, media_type: str, *, max_bytes: int | None = None
    ) -> BlobRef:
        """Store ``data``; over ``max_bytes`` (an asset kind's cap) raises BlobTooLargeError."""
        return await self._run_async(self._put_steps(data, media_type, max_bytes))

    def put(self, data: bytes, media_type: str, *, max_bytes: int | None = None) -> BlobRef:
        """:meth:`put_async` for synchronous callers (blocks for at most the call bounds)."""
        return self._run_sync(self._put_steps(data, media_type, max_bytes))

    # -- get -----------------------------------------------------------------------------

    def _get_steps(self, ref: BlobRef, max_bytes: int | None) -> Generator[_Call, _Answer, bytes]:
        """A get as the calls it makes (none when cached); :meth:`get_async` and :meth:`get`
        carry them out."""
        cached = self._cache.get(ref.sha256)
        if cached is not None:
            _check_size(len(cached), max_bytes, ref)
            return cached
        key = self.config.key_for(ref.sha256)
        url = object_url(self.config.endpoint_url, self.config.bucket, key, self.config.addressing)
        # Never read more than the claim check says (+1 to tell a longer object) or the cap.
        _check_size(ref.size, max_bytes, ref)
        status, headers, body = yield _Call("GET", url, limit=ref.size, what=f"GET {key}")
        if status == 404:
            raise BlobMissingError(f"blob {ref.sha256} is not in s3://{self.config.bucket}/")
        if status != 200:
            raise _status_error(status, body, f"GET {key}")
        length = headers.get("content-length")
        if length is not None and length.isdigit():
            _check_size(int(length), max_bytes, ref)
            if int(length) != ref.size:
                raise BlobCorruptError(
                    f"blob {ref.sha256} is {length} bytes, its claim check says {ref.size}"
                )
        _check_size(len(body), max_bytes, ref)
        _check_hash(body, ref)
        self._cache.remember(ref.sha256, body)
        return body

    async def get_async(self, ref: BlobRef, *, max_bytes: int | None = None) -> bytes:
        """The blob's bytes, checked against its hash; bounded by its size and ``max_bytes``."""
        return await self._run_async(self._get_steps(ref, max_bytes))

    def get(self, ref: BlobRef, *, max_bytes: int | None = None) -> bytes:
        """:meth:`get_async` for synchronous callers (blocks for at most the call bounds)."""
        return self._run_sync(self._get_steps(ref, max_bytes))

    # -- retention -----------------------------------------------------------------------

    async def entries(self) -> AsyncIterator[BlobEntry]:
        """Every blob under the prefix (ListObjectsV2, a page at a time); strangers skipped."""
        prefix = f"{self.config.prefix}/" if self.config.prefix else ""
        token: str | None = None
        while True:
            query = {"list-type": "2", "prefix": prefix, "max-keys": "1000"}
            if token:
                query["continuation-token"] = token
            url = f"{self.config.bucket_url()}?{urlencode(query, quote_via=quote)}"
            status, _, body = await self._call("GET", url, limit=16 * 1024 * 1024, what="LIST")
            if status != 200:
                raise _status_error(status, body, f"LIST {prefix}")
            listed, token = _parse_listing(body)
            for key, size, modified in listed:
                sha256 = key.rsplit("/", 1)[-1]
                if _SHA256.fullmatch(sha256) and key == self.config.key_for(sha256):
                    yield BlobEntry(sha256, size, modified)
            if not token:
                return

    async def delete_if_older(self, sha256: str, cutoff: datetime) -> BlobEntry | None:
        """Delete the object if its last write (by a fresh HEAD) is before ``cutoff``."""
        key = self.config.key_for(sha256)
        url = object_url(self.config.endpoint_url, self.config.bucket, key, self.config.addressing)
        status, headers, _ = await self._call("HEAD", url, limit=0, what=f"HEAD {key}")
        if status == 404:
            return None
        if status != 200:
            raise _status_error(status, b"", f"HEAD {key}")
        modified = _last_modified(headers)
        if modified is None or modified >= cutoff:
            return None
        status, _, body = await self._call("DELETE", url, limit=64 * 1024, what=f"DELETE {key}")
        if status not in (200, 204, 404):
            raise _status_error(status, body, f"DELETE {key}")
        self._cache.forget(sha256)
        size = int(headers.get("content-length", "0") or 0)
        return BlobEntry(sha256, size, modified)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        if self._sync_client is not None:
            self._sync_client.close()
            self._sync_client = None


def _within(headers: httpx.Headers, limit: int) -> bool:
    """Whether the announced body fits ``limit`` (unknown length: read up to limit + 1)."""
    length = headers.get("content-length")
    return not (length is not None and length.isdigit() and int(length) > limit)


def _retry_on(status: int, what: str) -> None:
    """A status another attempt may not get (5xx, 408, 429): raised to the retry loop."""
    if status >= 500 or status in (408, 429):
        raise BlobUnavailableError(f"{what}: HTTP {status}")


def _status_error(status: int, body: bytes, what: str) -> BlobError:
    found = _S3_CODE.search(body)
    s3_code = found.group(1).decode("ascii", "replace") if found else ""
    return BlobUnavailableError(f"{what}: HTTP {status}" + (f" {s3_code}" if s3_code else ""))


def _last_modified(headers: httpx.Headers) -> datetime | None:
    value = headers.get("last-modified")
    if not value:
        return None
    try:
        return parsedate_to_datetime(value).astimezone(UTC)
    except (TypeError, ValueError):
        return None


def _parse_listing(body: bytes) -> tuple[list[tuple[str, int, datetime]], str | None]:
    """``([(key, size, last modified)], next continuation token)`` of a ListObjectsV2 page."""
    try:
        root = ET.fromstring(body)  # noqa: S314 - the configured store's own answer
    except ET.ParseError as exc:
        raise BlobUnavailableError(f"unreadable bucket listing: {exc}") from None

    def child(node: ET.Element, name: str) -> str | None:
        for element in node:
            if element.tag.rsplit("}", 1)[-1] == name:
                return element.text
        return None

    listed: list[tuple[str, int, datetime]] = []
    for node in root:
        if node.tag.rsplit("}", 1)[-1] != "Contents":
            continue
        key, size, modified = child(node, "Key"), child(node, "Size"), child(node, "LastModified")
        if key is None or size is None or modified is None:
            continue
        when = datetime.fromisoformat(modified)
        listed.append((key, int(size), when if when.tzinfo else when.replace(tzinfo=UTC)))
    truncated = (child(root, "IsTruncated") or "").lower() == "true"
    return listed, child(root, "NextContinuationToken") if truncated else None


def open_blob_store(settings: Settings) -> LocalBlobStore | S3BlobStore:
    """The blob store ``settings.blob_store`` names."""
    refresh = settings.blob_sweep_grace_s
    if settings.blob_store == "s3":
        return S3BlobStore(
            S3BlobConfig.from_settings(settings),
            cache_bytes=settings.blob_cache_bytes,
            refresh_after_s=refresh,
        )
    return LocalBlobStore(
        settings.blob_dir, cache_bytes=settings.blob_cache_bytes, refresh_after_s=refresh
    )
