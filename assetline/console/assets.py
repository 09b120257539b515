"""Asset bytes and thumbnails, for signed-in users only, from the blob store by blob ref.

A URL names a request id and an attempt, never a path: both are looked up in the review
index (then in other pages' look-ups, :data:`LOOKUPS_KEY`: the timeline's index of every
request), and the bytes come from the record's own ``BlobRef`` (the store reads by hash
and checks it). Ids that could be a path (``/``, ``\\``, ``..``, control characters) are
refused with 400 before any look-up; unknown ones are 404. Only raster images are served as
images; anything else goes out as plain text or a download, with a sandboxing CSP, so an
asset can never run script in the console's origin.
"""

from __future__ import annotations

import asyncio
import io
import re
from collections import OrderedDict
from collections.abc import Callable
from typing import Final

from aiohttp import web
from PIL import Image

from assetline.console._app import CONSOLE
from assetline.console.review_index import ReviewIndex
from schemas.records import BlobRef, ValidatedAsset
from streams.blobs import BlobError, BlobStore

INDEX_KEY: Final = "review.index"
BLOBS_KEY: Final = "review.blobs"
THUMBS_KEY: Final = "review.thumbs"
#: ``list[BlobLookup]`` in ``CONSOLE.state``: other pages' (request id, attempt) -> blob ref,
#: asked when the review index does not know the asset (a request that was never reviewed).
LOOKUPS_KEY: Final = "assets.lookups"
BlobLookup = Callable[[str, int], BlobRef | None]
_BAD_ID: Final = re.compile(r"[/\\\x00-\x1f\x7f]|\.\.")
SAFE_IMAGES: Final = frozenset({"image/png", "image/jpeg", "image/webp", "image/gif"})
THUMB_SIDE: Final = 320
#: Thumbnails kept in memory (WebP, ~10-30 KB each): 1,000 pages' worth is a few MB.
THUMB_CACHE_BYTES: Final = 32 * 1024 * 1024
#: Largest asset read for a preview or download.
MAX_ASSET_BYTES: Final = 64 * 1024 * 1024


class ThumbCache:
    """Bounded LRU of thumbnails by blob hash (a hash's bytes never change)."""

    def __init__(self, max_bytes: int = THUMB_CACHE_BYTES) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[str, bytes] = OrderedDict()
        self._size = 0
        self._locks: dict[str, asyncio.Lock] = {}

    def get(self, key: str) -> bytes | None:
        data = self._entries.get(key)
        if data is not None:
            self._entries.move_to_end(key)
        return data

    def put(self, key: str, data: bytes) -> None:
        if key in self._entries or len(data) > self.max_bytes:
            return
        self._entries[key] = data
        self._size += len(data)
        while self._size > self.max_bytes:
            _, old = self._entries.popitem(last=False)
            self._size -= len(old)

    def lock(self, key: str) -> asyncio.Lock:
        return self._locks.setdefault(key, asyncio.Lock())

    def release(self, key: str) -> None:
        self._locks.pop(key, None)


def checked_id(request_id: str) -> str:
    if not request_id or len(request_id) > 512 or _BAD_ID.search(request_id):
        raise web.HTTPBadRequest(text="not a request id")
    return request_id


def asset_of(index: ReviewIndex, request_id: str, attempt: int) -> ValidatedAsset:
    """The validated asset of ``request_id``'s ``attempt`` that the index knows, or 404."""
    item = index.items.get(checked_id(request_id))
    if item is not None and item.asset.raw.request.attempt == attempt:
        return item.asset
    earlier = index.attempts.get(request_id, {}).get(attempt)
    if earlier is None:
        raise web.HTTPNotFound(text="no such asset")
    return earlier


def blob_of(app: web.Application, request_id: str, attempt: int) -> BlobRef:
    """The blob ref of ``request_id``'s ``attempt``: the review index's, else a look-up's."""
    state = app[CONSOLE].state
    index: ReviewIndex | None = state.get(INDEX_KEY)
    request_id = checked_id(request_id)
    found = None
    if index is not None:
        try:
            found = asset_of(index, request_id, attempt)
        except web.HTTPNotFound:
            found = None
    if found is not None:
        if found.raw.blob is None:
            raise web.HTTPNotFound(text="this attempt produced no asset")
        return found.raw.blob
    lookups: list[BlobLookup] = state.get(LOOKUPS_KEY, [])
    for lookup in lookups:
        ref = lookup(request_id, attempt)
        if ref is not None:
            return ref
    raise web.HTTPNotFound(text="no such asset")


async def asset_bytes(app: web.Application, asset: ValidatedAsset) -> bytes:
    ref = asset.raw.blob
    if ref is None:
        raise web.HTTPNotFound(text="this attempt produced no asset")
    return await blob_bytes(app, ref)


async def blob_bytes(app: web.Application, ref: BlobRef) -> bytes:
    store: BlobStore = app[CONSOLE].state[BLOBS_KEY]
    try:
        return await store.get_async(ref, max_bytes=MAX_ASSET_BYTES)
    except BlobError as exc:
        raise web.HTTPNotFound(text=f"asset unavailable: {exc.code}") from None


def _attempt(request: web.Request) -> int:
    try:
        return int(request.match_info["attempt"])
    except ValueError:
        raise web.HTTPBadRequest(text="attempt must be a number") from None


async def asset(request: web.Request) -> web.StreamResponse:
    ref = blob_of(request.app, request.match_info["request_id"], _attempt(request))
    data = await blob_bytes(request.app, ref)
    media = ref.media_type
    headers = {"Content-Security-Policy": "default-src 'none'; sandbox"}
    if media in SAFE_IMAGES:
        return web.Response(body=data, content_type=media, headers=headers)
    if media.startswith("text/") or media in ("application/json", "application/x-python"):
        return web.Response(body=data, content_type="text/plain", charset="utf-8", headers=headers)
    headers["Content-Disposition"] = "attachment"
    return web.Response(body=data, content_type="application/octet-stream", headers=headers)


def make_thumbnail(data: bytes, side: int = THUMB_SIDE) -> bytes:
    """A WebP at most ``side`` px on its longer side (Pillow; run off the event loop)."""
    Image.MAX_IMAGE_PIXELS = 64_000_000
    with Image.open(io.BytesIO(data)) as image:
        image.draft("RGB", (side, side))  # JPEG: decode at a reduced scale
        image.thumbnail((side, side))
        out = io.BytesIO()
        image.convert("RGBA").save(out, format="WEBP", quality=80, method=2)
        return out.getvalue()


async def thumbnail(request: web.Request) -> web.StreamResponse:
    console = request.app[CONSOLE]
    ref = blob_of(request.app, request.match_info["request_id"], _attempt(request))
    if ref.media_type not in SAFE_IMAGES:
        raise web.HTTPNotFound(text="no image")
    cache: ThumbCache = console.state[THUMBS_KEY]
    thumb = cache.get(ref.sha256)
    if thumb is None:
        async with cache.lock(ref.sha256):
            thumb = cache.get(ref.sha256)
            if thumb is None:
                data = await blob_bytes(request.app, ref)
                try:
                    thumb = await asyncio.to_thread(make_thumbnail, data)
                except (OSError, ValueError, Image.DecompressionBombError):
                    raise web.HTTPNotFound(text="not a readable image") from None
                cache.put(ref.sha256, thumb)
        cache.release(ref.sha256)
    return web.Response(
        body=thumb,
        content_type="image/webp",
        headers={"Cache-Control": "private, max-age=86400"},
    )


def routes(app: web.Application) -> None:
    app.router.add_get("/assets/{request_id}/{attempt}", asset)
    app.router.add_get("/assets/{request_id}/{attempt}/thumb", thumbnail)
