"""A blob store whose put waits until the test lets it finish: a slow remote store, made
deterministic. If a caller blocked the event loop on it, nothing could ever let it finish."""

from __future__ import annotations

import asyncio
from pathlib import Path

from schemas.records import BlobRef
from streams.blobs import LocalBlobStore


class GatedBlobStore(LocalBlobStore):
    """``put_async`` records ``put started``, waits for :meth:`release`, then stores.

    The synchronous ``put`` (the blocking path an async caller must not take) raises, so a
    caller that uses it is caught even when it survives the error.
    """

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.steps: list[str] = []
        self.started = asyncio.Event()
        self._gate = asyncio.Event()

    def release(self, by: str) -> None:
        self.steps.append(by)
        self._gate.set()

    def put(self, data: bytes, media_type: str, *, max_bytes: int | None = None) -> BlobRef:
        raise AssertionError("the blocking put was called on the event loop")

    async def put_async(
        self, data: bytes, media_type: str, *, max_bytes: int | None = None
    ) -> BlobRef:
        self.steps.append("put started")
        self.started.set()
        await self._gate.wait()
        ref = super().put(data, media_type, max_bytes=max_bytes)
        self.steps.append("put done")
        return ref


async def release_when_started(store: GatedBlobStore) -> None:
    """Another coroutine: runs only if the loop keeps running while the put is under way."""
    await store.started.wait()
    store.release("another coroutine ran")
