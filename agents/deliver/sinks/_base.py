"""The sink interface: write bytes at a relative path, return where they are."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Protocol

from schemas.errors import AssetlineError

#: The :class:`SinkError` code of :meth:`Sink.create` finding other bytes at the path.
PATH_TAKEN = "deliver.path_taken"


class SinkError(AssetlineError):
    """A destination refused or failed the write; ``code`` goes into the completion reasons."""

    code = "deliver.failed"

    def __init__(
        self,
        code: str,
        message: str,
        *,
        retryable: bool = True,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.retryable = retryable
        #: The receiver's ``Retry-After``: the retry waits at least this long (up to its cap).
        self.retry_after_s = retry_after_s


class Located(str):
    """A location that also carries the ids the destination gave the asset (``external_ids``).

    A ``str``, so every sink wrapper and caller that passes a location on keeps working; the
    deliver stage reads :attr:`external_ids` into the completion.
    """

    external_ids: dict[str, str]

    def __new__(cls, location: str, external_ids: Mapping[str, str] | None = None) -> Located:
        self = super().__new__(cls, location)
        self.external_ids = dict(external_ids or {})
        return self


def path_taken(path: PurePosixPath) -> SinkError:
    """The error of a :meth:`Sink.create` whose path already holds different bytes."""
    return SinkError(PATH_TAKEN, f"{path} already holds different bytes", retryable=False)


class Sink(Protocol):
    """Writes must be idempotent: delivering the same bytes twice leaves one object."""

    async def write(self, path: PurePosixPath, data: bytes, media_type: str) -> str:
        """Put ``data`` at ``path``, replacing what is there (sidecars); return the location."""
        ...

    async def create(self, path: PurePosixPath, data: bytes, media_type: str) -> str:
        """Like :meth:`write`, but never replace different bytes: raise :data:`PATH_TAKEN`.

        Assets go through here, so the file an earlier completion's sha256 describes stays
        what it describes; the same bytes again are a success at the same location.
        """
        ...
