"""The sink interface: write bytes at a relative path, return where they are."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Protocol

from schemas.errors import AssetlineError


class SinkError(AssetlineError):
    """A destination refused or failed the write; ``code`` goes into the completion reasons."""

    code = "deliver.failed"

    def __init__(self, code: str, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.code = code
        self.retryable = retryable


class Sink(Protocol):
    """Writes must be idempotent: delivering the same bytes twice leaves one object."""

    async def write(self, path: PurePosixPath, data: bytes, media_type: str) -> str: ...
