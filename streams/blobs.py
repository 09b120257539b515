"""Content-addressed blob store: asset bytes live here, Kafka carries only a claim-check.

Blobs are addressed by SHA-256, written atomically (temporary file + rename) and never
rewritten, so a re-generation after a crash lands on the same file. A bounded in-memory cache
keeps recent blobs so a worker running several stages never re-reads what it just wrote.
"""

from __future__ import annotations

import hashlib
import re
from collections import OrderedDict
from pathlib import Path

from schemas.errors import AssetlineError
from schemas.records import BlobRef
from streams.atomic_file import write_atomic
from streams.limits import ASSET_TOO_LARGE

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


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


class LocalBlobStore:
    """Blobs under ``root/ab/cd/<sha256>``; reads resolve by hash only, never by the URI."""

    def __init__(self, root: Path, *, cache_bytes: int = 256 * 1024 * 1024) -> None:
        self.root = root.resolve()
        self._cache: OrderedDict[str, bytes] = OrderedDict()
        self._cache_bytes = cache_bytes
        self._cached = 0

    def path_for(self, sha256: str) -> Path:
        if not _SHA256.fullmatch(sha256):
            raise BlobMissingError(f"not a sha256 address: {sha256[:80]!r}")
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def put(self, data: bytes, media_type: str, *, max_bytes: int | None = None) -> BlobRef:
        """Store ``data``; over ``max_bytes`` (an asset kind's cap) raises BlobTooLargeError."""
        if max_bytes is not None and len(data) > max_bytes:
            raise BlobTooLargeError(
                f"{len(data)} bytes of {media_type} exceed the cap of {max_bytes} bytes"
            )
        sha256 = hashlib.sha256(data).hexdigest()
        path = self.path_for(sha256)
        if not path.exists():
            write_atomic(path, data)
        self._remember(sha256, data)
        return BlobRef(uri=path.as_uri(), sha256=sha256, size=len(data), media_type=media_type)

    def get(self, ref: BlobRef, *, max_bytes: int | None = None) -> bytes:
        """The blob's bytes, checked against its hash (a claim-check must not be trusted).

        Over ``max_bytes`` (by the file's size, so before reading it) raises BlobTooLargeError.
        """
        cached = self._cache.get(ref.sha256)
        if cached is not None:
            self._check_size(len(cached), max_bytes, ref)
            self._cache.move_to_end(ref.sha256)
            return cached
        path = self.path_for(ref.sha256)
        try:
            if max_bytes is not None:
                self._check_size(path.stat().st_size, max_bytes, ref)
            data = path.read_bytes()
        except FileNotFoundError:
            raise BlobMissingError(f"blob {ref.sha256} is not in {self.root}") from None
        if hashlib.sha256(data).hexdigest() != ref.sha256:
            raise BlobCorruptError(f"blob {ref.sha256} does not match its hash")
        self._remember(ref.sha256, data)
        return data

    @staticmethod
    def _check_size(size: int, max_bytes: int | None, ref: BlobRef) -> None:
        if max_bytes is not None and size > max_bytes:
            raise BlobTooLargeError(
                f"blob {ref.sha256} is {size} bytes, over the cap of {max_bytes} bytes"
            )

    def _remember(self, sha256: str, data: bytes) -> None:
        if len(data) > self._cache_bytes or sha256 in self._cache:
            return
        self._cache[sha256] = data
        self._cached += len(data)
        while self._cached > self._cache_bytes:
            _, evicted = self._cache.popitem(last=False)
            self._cached -= len(evicted)
