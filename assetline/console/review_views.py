"""Review pages: the queue (grid, filters, paging), one item's detail with every attempt side
by side, decisions (one or many, a reason required to reject) and live updates (SSE)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import math
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlencode

from aiohttp import web

from agents.policy.loader import ProfileBook, load_profiles
from assetline.client import LineClient
from assetline.console import assets
from assetline.console._app import CONSOLE, Console, see_other, session_of
from assetline.console.explain import PREVIEW_CHARS, Explained, explain, highlight
from assetline.console.review_index import Change, ReviewIndex
from assetline.console.review_memory import COOKIE as MEMORY_COOKIE
from assetline.console.review_memory import MAX_AGE_S as MEMORY_MAX_AGE_S
from assetline.console.review_memory import QueueMemory, Where
from assetline.console.review_nav import chosen_in, item_link, next_waiting, queue_link
from assetline.review import (
    ReviewError,
    check_pending,
    item_for,
    new_decision,
    publish_decision,
)
from schemas.errors import AssetlineError
from schemas.records import ReviewAction, ReviewItem, ValidatedAsset
from streams.blobs import open_blob_store

CLIENT_KEY: Final = "review.client"
PAGE_SIZE: Final = 48
FILTERS: Final = ("tenant", "campaign", "profile", "check")
#: How long the first page load waits for the index's first read of the topics.
READY_WAIT_S: Final = 10.0
SSE_PING_S: Final = 15.0


def failed_codes(item: ReviewItem) -> list[str]:
    return [c.code for c in item.asset.report.checks if not c.passed]


def _value(item: ReviewItem, name: str) -> list[str]:
    request = item.asset.raw.request
    if name == "tenant":
        return [request.tenant]
    if name == "campaign":
        return [request.campaign_id]
    if name == "profile":
        return [item.asset.report.profile or ""]
    return failed_codes(item)


def matches(item: ReviewItem, chosen: dict[str, str]) -> bool:
    return all(value in _value(item, name) for name, value in chosen.items())


def facets(items: Iterable[ReviewItem]) -> dict[str, list[str]]:
    seen: dict[str, set[str]] = {name: set() for name in FILTERS}
    for item in items:
        for name in FILTERS:
            seen[name].update(v for v in _value(item, name) if v)
    return {name: sorted(values) for name, values in seen.items()}


@dataclass(frozen=True)
class Card:
    """One grid cell."""

    request_id: str
    attempt: int
    kind: str
    tenant: str
    campaign: str
    profile: str
    failed: list[str]
    queued_at: str
    is_image: bool
    snippet: str


SNIPPET_CHARS: Final = 240
SNIPPETS_KEY: Final = "review.snippets"


async def snippets(console: Console, app: web.Application, items: list[ReviewItem]) -> None:
    """Read the opening text of the non-image assets in ``items`` into the snippet cache
    (by blob hash, bounded like the thumbnails), so text cards preview the asset itself."""
    cache: assets.ThumbCache = console.state[SNIPPETS_KEY]

    async def one(item: ReviewItem) -> None:
        blob = item.asset.raw.blob
        if blob is None or blob.media_type in assets.SAFE_IMAGES or cache.get(blob.sha256):
            return
        with contextlib.suppress(web.HTTPNotFound):
            data = await assets.asset_bytes(app, item.asset)
            text = data[: SNIPPET_CHARS * 4].decode("utf-8", errors="replace")[:SNIPPET_CHARS]
            cache.put(blob.sha256, text.encode("utf-8"))

    await asyncio.gather(*(one(item) for item in items))


def card(item: ReviewItem, snippet_cache: assets.ThumbCache | None = None) -> Card:
    raw = item.asset.raw
    blob = raw.blob
    is_image = blob is not None and blob.media_type in assets.SAFE_IMAGES
    return Card(
        request_id=item.request_id,
        attempt=raw.request.attempt,
        kind=raw.request.kind.value,
        tenant=raw.request.tenant,
        campaign=raw.request.campaign_id,
        profile=item.asset.report.profile or "",
        failed=failed_codes(item),
        queued_at=item.queued_at.strftime("%Y-%m-%d %H:%M:%S"),
        is_image=is_image,
        snippet="" if is_image else _snippet(item, snippet_cache),
    )


def _cached_facets(console: Console, index: ReviewIndex) -> dict[str, list[str]]:
    """The filter choices, computed once per change of the queue."""
    cached = console.state.get("review.facets")
    if cached is None or cached[0] != index.version:
        cached = (index.version, facets(index.pending()))
        console.state["review.facets"] = cached
    choices: dict[str, list[str]] = cached[1]
    return choices


def _snippet(item: ReviewItem, cache: assets.ThumbCache | None) -> str:
    blob = item.asset.raw.blob
    found = cache.get(blob.sha256) if cache is not None and blob is not None else None
    if found is not None:
        return found.decode("utf-8")
    return item.asset.raw.request.prompt_template[:SNIPPET_CHARS]  # no asset to show


def index_of(request: web.Request) -> ReviewIndex:
    index: ReviewIndex = request.app[CONSOLE].state[assets.INDEX_KEY]
    return index


def _chosen(values: Mapping[str, object]) -> dict[str, str]:
    return chosen_in(values, FILTERS)


def _memory(console: Console) -> QueueMemory:
    return QueueMemory(console.signer.secret, FILTERS)


def _remember(request: web.Request, response: web.Response, where: Where) -> None:
    """Keep ``where`` in the user's review cookie (only when it changed)."""
    console = request.app[CONSOLE]
    memory, user = _memory(console), session_of(request).user
    if memory.load(user, request.cookies.get(MEMORY_COOKIE)) == where:
        return
    response.set_cookie(
        MEMORY_COOKIE,
        memory.dump(user, where),
        max_age=MEMORY_MAX_AGE_S,
        httponly=True,
        samesite="Strict",
        secure=console.settings.console_cookie_secure,
        path="/review",
    )


async def queue(request: web.Request) -> web.Response:
    """The queue; ``/review`` with no query at all resumes at the user's last filters and page."""
    console = request.app[CONSOLE]
    if not request.query_string:
        user = session_of(request).user
        last = _memory(console).load(user, request.cookies.get(MEMORY_COOKIE))
        if last is not None and (last.chosen or last.page > 1):
            return see_other(queue_link(last.chosen, last.page))
    index = index_of(request)
    await index.wait_ready(READY_WAIT_S)
    chosen = _chosen(request.query)
    pending = index.pending()
    shown = [item for item in pending if matches(item, chosen)]
    pages = max(1, math.ceil(len(shown) / PAGE_SIZE))
    try:
        page = min(max(1, int(request.query.get("page", "1"))), pages)
    except ValueError:
        page = 1
    window = shown[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
    await snippets(console, request.app, window)
    cache = console.state[SNIPPETS_KEY]

    def link(to: int) -> str:
        return queue_link(chosen, to)

    response = console.render(
        request,
        "review_queue.html",
        cards=[card(item, cache) for item in window],
        facets=_cached_facets(console, index),
        chosen=chosen,
        total=len(pending),
        matching=len(shown),
        page=page,
        pages=pages,
        prev_link=link(page - 1) if page > 1 else "",
        next_link=link(page + 1) if page < pages else "",
        filter_query=urlencode(chosen),
        clear_link=queue_link({}) if chosen else "",
        ready=index.ready.is_set(),
    )
    _remember(request, response, Where(chosen, page))
    return response


async def card_fragment(request: web.Request) -> web.Response:
    """One card's HTML, for a live update; 204 when it is not pending or not in the filter."""
    index = index_of(request)
    request_id = assets.checked_id(request.match_info["request_id"])
    item = index.items.get(request_id)
    chosen = _chosen(request.query)
    if item is None or not index.is_pending(request_id) or not matches(item, chosen):
        return web.Response(status=204)
    console = request.app[CONSOLE]
    await snippets(console, request.app, [item])
    html = console.templates.get_template("_card.html").render(
        c=card(item, console.state[SNIPPETS_KEY]), filter_query=urlencode(chosen)
    )
    return web.Response(text=html, content_type="text/html")


@dataclass
class AttemptView:
    attempt: int
    asset: ValidatedAsset
    is_image: bool
    explained: list[Explained]
    segments: list[tuple[str, bool]]
    truncated: bool
    brand: list[str]


async def _attempt_view(
    console: Console, app: web.Application, asset: ValidatedAsset
) -> AttemptView:
    explained = [explain(check) for check in asset.report.checks]
    blob = asset.raw.blob
    is_image = blob is not None and blob.media_type in assets.SAFE_IMAGES
    segments: list[tuple[str, bool]] = []
    truncated = False
    if blob is not None and not is_image:
        with contextlib.suppress(web.HTTPNotFound):
            text = (await assets.asset_bytes(app, asset)).decode("utf-8", errors="replace")
            if blob.media_type == "application/json":
                with contextlib.suppress(ValueError):
                    text = json.dumps(json.loads(text), indent=2, ensure_ascii=False)
                    # re-indenting moves the positions the terms check recorded: keep the
                    # original when there are hits to show
                    if any(e.hits for e in explained):
                        text = (await assets.asset_bytes(app, asset)).decode("utf-8", "replace")
            truncated = len(text) > PREVIEW_CHARS
            hits = [hit for e in explained for hit in e.hits]
            segments = highlight(text[:PREVIEW_CHARS], hits)
    return AttemptView(
        attempt=asset.raw.request.attempt,
        asset=asset,
        is_image=is_image,
        explained=explained,
        segments=segments,
        truncated=truncated,
        brand=_brand_palette(console, asset),
    )


def _brand_palette(console: Console, asset: ValidatedAsset) -> list[str]:
    """The profile's palette when the console can load its profiles, else []."""
    if not any(c.code.startswith("palette") and not c.passed for c in asset.report.checks):
        return []
    if "review.profiles" not in console.state:
        book: ProfileBook | None
        try:
            book = load_profiles(console.settings.profiles_dir)
        except AssetlineError:  # a broken profiles folder must not break the review page
            book = None
        console.state["review.profiles"] = book
    book = console.state["review.profiles"]
    if book is None:
        return []
    policy = book.resolve(asset.report.profile, asset.raw.request.campaign_id)
    palette = getattr(policy, "palette", None)
    return list(palette.colors) if palette is not None else []


async def detail(request: web.Request) -> web.Response:
    console = request.app[CONSOLE]
    index = index_of(request)
    await index.wait_ready(READY_WAIT_S)
    request_id = assets.checked_id(request.match_info["request_id"])
    try:
        item = item_for(index.items, request_id)
    except ReviewError:
        raise web.HTTPNotFound(text="no review item for that request") from None
    attempts = [*index.earlier_attempts(request_id), item.asset]
    views = [await _attempt_view(console, request.app, asset) for asset in attempts]
    chosen = _chosen(request.query)
    ids = _order(index, chosen)
    at = ids.index(request_id) if request_id in ids else -1
    return console.render(
        request,
        "review_detail.html",
        item=item,
        pending=index.is_pending(request_id),
        sent=index.sent.get(request_id),
        views=views,
        chosen=chosen,
        prev_link=item_link(ids[at - 1], chosen) if at > 0 else "",
        next_link=item_link(ids[at + 1], chosen) if 0 <= at < len(ids) - 1 else "",
        queue_link=queue_link(chosen, at // PAGE_SIZE + 1 if at >= 0 else 1),
    )


def _order(index: ReviewIndex, chosen: dict[str, str]) -> list[str]:
    """The waiting items of a filter, in the queue's order (oldest first)."""
    return [item.request_id for item in index.pending() if matches(item, chosen)]


async def decide(request: web.Request) -> web.StreamResponse:
    """Approve or reject one or many items (form fields ``id`` ..., ``action``, ``note``).

    Then, for a form: ``then=next`` (an item's page) goes on to the next waiting item of the
    filter named by the form's filter fields, or to that filtered queue when none is left;
    otherwise to ``back`` (a /review path)."""
    console = request.app[CONSOLE]
    index = index_of(request)
    session = session_of(request)
    form = await request.post()
    try:
        action = ReviewAction(str(form.get("action", "")).upper())
    except ValueError:
        raise web.HTTPBadRequest(text="action must be approve or reject") from None
    note = str(form.get("note", "")).strip() or None
    if action is ReviewAction.REJECT and note is None:
        raise web.HTTPBadRequest(text="a reason is required to reject")
    ids = [assets.checked_id(str(v)) for v in form.getall("id", [])]
    if not ids:
        raise web.HTTPBadRequest(text="no item chosen")
    go_next = form.get("then") == "next" and len(ids) == 1
    chosen = _chosen(form) if go_next else {}
    order = _order(index, chosen) if go_next else []  # before the decision hides the item
    client: LineClient = console.state[CLIENT_KEY]
    refused: dict[str, str] = {}

    async def one(request_id: str) -> str | None:
        try:
            item = item_for(index.items, request_id)
            check_pending(item)
            if request_id in index.sent:
                raise ReviewError(f"request {request_id!r} was just decided here")
        except ReviewError as exc:
            refused[request_id] = str(exc)
            return None
        decision = new_decision(request_id, action, session.user, note)
        index.note_sending(decision)  # hidden at once; a second click cannot send it twice
        try:
            await publish_decision(client, console.codecs, decision)
        except Exception as exc:  # any send failure: the item is shown again, the reason too
            index.unsend(request_id)
            refused[request_id] = f"not sent: {exc}"
            return None
        index.note_sent(decision)
        return request_id

    decided = [r for r in await asyncio.gather(*(one(i) for i in dict.fromkeys(ids))) if r]
    if request.headers.get("Accept", "").startswith("application/json"):
        status = 200 if decided or not refused else 409
        return web.json_response({"decided": decided, "refused": refused}, status=status)
    if go_next:
        after = next_waiting(order, ids[0], index.is_pending)
        return see_other(item_link(after, chosen) if after else queue_link(chosen))
    back = str(form.get("back", "/review"))
    location = back if back.startswith("/review") and not back.startswith("//") else "/review"
    return see_other(location)


async def events(request: web.Request) -> web.StreamResponse:
    """Server-Sent Events: ``added`` / ``decided`` with the request id, as they happen."""
    index = index_of(request)
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-store",
            "X-Accel-Buffering": "no",
        }
    )
    await response.prepare(request)
    queue = index.subscribe()
    try:
        async for chunk in _sse(queue):
            await response.write(chunk)
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        index.unsubscribe(queue)
    return response


async def _sse(queue: asyncio.Queue[Change]) -> AsyncIterator[bytes]:
    yield b"retry: 2000\n\n"
    while True:
        try:
            change = await asyncio.wait_for(queue.get(), SSE_PING_S)
        except TimeoutError:
            yield b": ping\n\n"
            continue
        data = json.dumps(dataclasses.asdict(change))
        yield f"event: {change.kind}\ndata: {data}\n\n".encode()


async def _start(app: web.Application) -> None:
    console = app[CONSOLE]
    index = ReviewIndex(console.settings, console.codecs)
    console.state[assets.INDEX_KEY] = index
    console.state[assets.BLOBS_KEY] = open_blob_store(console.settings)
    console.state[assets.THUMBS_KEY] = assets.ThumbCache()
    console.state[SNIPPETS_KEY] = assets.ThumbCache(4 * 1024 * 1024)
    client = LineClient(console.settings, console.codecs, linger_ms=0)
    console.state[CLIENT_KEY] = await client.__aenter__()
    await index.start()


async def _stop(app: web.Application) -> None:
    console = app[CONSOLE]
    await console.state[assets.INDEX_KEY].stop()
    await console.state[CLIENT_KEY].__aexit__(None, None, None)
    await console.state[assets.BLOBS_KEY].aclose()


def routes(app: web.Application) -> None:
    app.on_startup.append(_start)
    app.on_cleanup.append(_stop)
    app.router.add_get("/review", queue)
    app.router.add_get("/review/events", events)
    app.router.add_post("/review/decide", decide)
    app.router.add_get("/review/card/{request_id}", card_fragment)
    app.router.add_get("/review/item/{request_id}", detail)
    assets.routes(app)
