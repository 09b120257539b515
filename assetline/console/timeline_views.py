"""Request timelines and campaign progress, read from the one :class:`RequestIndex` the
console keeps (fed by one :class:`IndexFollower` on the console's loop: the index is not
thread-safe, and the handlers share that loop). A page never reads Kafka, so it answers in
the time of one dictionary look-up and one render, whatever the number of requests indexed.

The asset on a timeline is served by the console's asset routes (``/assets/{id}/{attempt}``)
by request id and attempt: this module hands them a look-up (:data:`assets.LOOKUPS_KEY`)
that finds the attempt's blob ref in the index, never a path from the request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote, urlencode

from aiohttp import web

from assetline.console import assets
from assetline.console._app import CONSOLE, Console, see_other
from assetline.timeline import (
    CampaignProgress,
    EventKind,
    IndexFollower,
    RequestIndex,
    RequestState,
    TimelineEntry,
    all_progress,
    bucket_of,
    campaign_progress,
    iso_ms,
    timeline_json,
)
from schemas.records import BlobRef, CompletionStatus
from streams.blobs import open_blob_store

INDEX_KEY: Final = "timeline.index"
FOLLOWER_KEY: Final = "timeline.follower"
TASK_KEY: Final = "timeline.task"
OWN_BLOBS_KEY: Final = "timeline.own_blobs"
RETRY_S: Final = 2.0
PROGRESS_KEY: Final = "timeline.progress"
PROGRESS_FRESH_S: Final = 2.0
PAGE_SIZE: Final = 100
#: Requests listed under the search box (the most recently touched).
RECENT: Final = 20
#: Completion statuses whose reason codes a campaign counts (as ``progress`` does).
FAILING: Final = (CompletionStatus.FAILED.value, CompletionStatus.REJECTED.value)
#: Allowed ``?refresh=`` periods (seconds) for a campaign page's meta refresh.
REFRESH_S: Final = (5, 10, 30)
#: Characters of a text asset shown on its timeline.
PREVIEW_CHARS: Final = 2_000
log = logging.getLogger(__name__)


def index_of(console: Console) -> RequestIndex:
    index: RequestIndex = console.state[INDEX_KEY]
    return index


def wants_json(request: web.Request) -> bool:
    """``?format=json``, or an Accept header that puts JSON before HTML (tools, curl)."""
    if request.query.get("format") == "json":
        return True
    accept = request.headers.get("Accept", "")
    at_json = accept.find("application/json")
    at_html = accept.find("text/html")
    return at_json >= 0 and (at_html < 0 or at_json < at_html)


def trace_link(console: Console, trace_id: str | None) -> str:
    template = console.settings.console_trace_url
    if not trace_id or not template:
        return ""
    return template.replace("{trace_id}", quote(trace_id, safe=""))


def blob_lookup(index: RequestIndex) -> assets.BlobLookup:
    """(request id, attempt) -> the blob ref its ``generated`` event recorded, if any."""

    def lookup(request_id: str, attempt: int) -> BlobRef | None:
        state = index.state(request_id)
        if state is None:
            return None
        for entry in reversed(state.entries):
            if entry.kind is EventKind.GENERATED and (entry.attempt or 0) == attempt:
                ref = _ref(entry)
                if ref is not None:
                    return ref
        return None

    return lookup


def _ref(entry: TimelineEntry) -> BlobRef | None:
    d = entry.details
    if not entry.asset or not d.get("sha256") or d.get("size") is None:
        return None
    return BlobRef(
        uri=entry.asset, sha256=d["sha256"], size=d["size"], media_type=d.get("media_type") or ""
    )


@dataclass(frozen=True)
class Shown:
    """The asset a timeline shows: the last attempt that produced one."""

    attempt: int
    media_type: str
    is_image: bool
    url: str
    thumb: str
    preview: str


def shown_asset(state: RequestState) -> Shown | None:
    generated = [e for e in state.entries if e.kind is EventKind.GENERATED and _ref(e)]
    if not generated:
        return None
    last = max(generated, key=TimelineEntry.sort_key)
    attempt = last.attempt or 0
    media = str(last.details.get("media_type") or "")
    url = f"/assets/{quote(state.request_id, safe='')}/{attempt}"
    is_image = media in assets.SAFE_IMAGES
    return Shown(attempt, media, is_image, url, url + "/thumb" if is_image else "", "")


async def _with_preview(app: web.Application, shown: Shown, state: RequestState) -> Shown:
    """A text asset's opening characters (an image is shown by its thumbnail)."""
    if shown.is_image:
        return shown
    ref = blob_lookup(index_of(app[CONSOLE]))(state.request_id, shown.attempt)
    if ref is None:
        return shown
    with contextlib.suppress(web.HTTPNotFound):
        data = await assets.blob_bytes(app, ref)
        text = data[: PREVIEW_CHARS * 4].decode("utf-8", errors="replace")[:PREVIEW_CHARS]
        return Shown(shown.attempt, shown.media_type, False, shown.url, "", text)
    return shown


@dataclass(frozen=True)
class Row:
    """One event as the timeline table shows it."""

    entry: TimelineEntry
    at: str
    since_s: float
    #: Extra lines under the summary: calls with provider/model/cost, failed checks, ...
    lines: list[str]
    link: str


def _lines(e: TimelineEntry) -> list[str]:
    d = e.details
    if e.kind is EventKind.GENERATED:
        return [
            f"{c['provider']}/{c['model']}: {c['code'] or 'ok'}, ${c['cost']:.4f}, "
            f"{c['latency_ms']:.0f} ms, {c['input_tokens']}+{c['output_tokens']} tokens"
            for c in d.get("calls", [])
        ]
    if e.kind in (EventKind.VALIDATED, EventKind.SENT_TO_REVIEW, EventKind.SHADOW):
        head = f"{d.get('verdict')}: {d.get('checks')} check(s), profile {d.get('profile') or '-'}"
        return [head] + [f"{f['code']}: {f['message']}" for f in d.get("failed", [])]
    if e.kind is EventKind.COMPLETED:
        return [str(r) for r in d.get("reasons", [])]
    if e.kind is EventKind.DEFERRED:
        return [f"destination {d.get('destination')} had its bound of deliveries waiting; "
                f"taken again when due"]  # fmt: skip
    if e.kind is EventKind.DEAD_LETTER:
        return [f"source {d.get('source_topic')}/{d.get('source_partition')}@"
                f"{d.get('source_offset')}"]  # fmt: skip
    return []


def _link(e: TimelineEntry) -> str:
    if e.kind is EventKind.DEAD_LETTER:
        return "/deadletters?" + urlencode({"key": e.request_id})
    if e.kind in (EventKind.SENT_TO_REVIEW, EventKind.REVIEW_ITEM, EventKind.DECIDED):
        return f"/review/item/{quote(e.request_id, safe='')}"
    return ""


def rows_of(entries: list[TimelineEntry]) -> list[Row]:
    first = entries[0].at_ms if entries else 0
    return [Row(e, iso_ms(e.at_ms), (e.at_ms - first) / 1000, _lines(e), _link(e)) for e in entries]


async def requests_page(request: web.Request) -> web.StreamResponse:
    """The search box's target: ``?id=`` goes to that request's timeline."""
    console = request.app[CONSOLE]
    wanted = request.query.get("id", "").strip()
    if wanted:
        return see_other(f"/requests/{quote(assets.checked_id(wanted), safe='')}")
    index = index_of(console)
    recent = [index.state(r) for r in list(index.request_ids())[-RECENT:][::-1]]
    return console.render(
        request, "requests.html", recent=recent, index=_status(console), iso=iso_ms
    )


def _status(console: Console) -> dict[str, Any]:
    index = index_of(console)
    follower: IndexFollower | None = console.state.get(FOLLOWER_KEY)
    return {
        "requests": len(index),
        "records": index.records,
        "evicted": index.evicted,
        "caught_up": follower is None or follower.caught_up.is_set(),
        "following": follower is not None,
    }


async def timeline_page(request: web.Request) -> web.StreamResponse:
    console = request.app[CONSOLE]
    request_id = assets.checked_id(request.match_info["request_id"])
    index = index_of(console)
    state = index.state(request_id)
    entries = state.timeline() if state is not None else []
    status = _status(console)
    if wants_json(request):
        body = timeline_json(request_id, entries, state)
        body["trace_url"] = trace_link(console, state.trace_id if state else None) or None
        shown = shown_asset(state) if state is not None else None
        body["asset_url"] = shown.url if shown else None
        body["index"] = status
        return web.json_response(body, status=200 if state is not None else 404)
    if state is None:
        return console.render(
            request, "timeline.html", status=404, request_id=request_id, state=None, rows=[],
            shown=None, bucket="", trace_url="", index=status, refresh=_refresh(request),
            refresh_choices=REFRESH_S,
        )  # fmt: skip
    shown = shown_asset(state)
    if shown is not None:
        shown = await _with_preview(request.app, shown, state)
    return console.render(
        request,
        "timeline.html",
        request_id=request_id,
        state=state,
        rows=rows_of(entries),
        shown=shown,
        bucket=bucket_of(state),
        trace_url=trace_link(console, state.trace_id),
        index=status,
        refresh=_refresh(request),
        refresh_choices=REFRESH_S,
    )


def _refresh(request: web.Request) -> int:
    try:
        wanted = int(request.query.get("refresh", "0"))
    except ValueError:
        return 0
    return wanted if wanted in REFRESH_S else 0


def _campaign_link(campaign_id: str, **query: str | int) -> str:
    path = f"/campaigns/{quote(campaign_id, safe='')}"
    kept = {k: v for k, v in query.items() if v not in ("", 0)}
    return path + ("?" + urlencode(kept) if kept else "")


def progress_now(console: Console) -> list[CampaignProgress]:
    """Every campaign's progress, computed at most once per :data:`PROGRESS_FRESH_S`: it
    walks every indexed request (~0.5 s at 100,000), and auto-refreshing pages add up."""
    cached: tuple[float, list[CampaignProgress]] | None = console.state.get(PROGRESS_KEY)
    now = time.monotonic()
    if cached is None or now - cached[0] > PROGRESS_FRESH_S:
        cached = (now, all_progress(index_of(console)))
        console.state[PROGRESS_KEY] = cached
    return cached[1]


async def campaigns_page(request: web.Request) -> web.StreamResponse:
    console = request.app[CONSOLE]
    progress = progress_now(console)
    if wants_json(request):
        return web.json_response(
            {"campaigns": [p.as_json() for p in progress], "index": _status(console)}
        )
    refresh = _refresh(request)
    return console.render(
        request,
        "campaigns.html",
        progress=progress,
        link=_campaign_link,
        refresh=refresh,
        refresh_choices=REFRESH_S,
        index=_status(console),
        eta=eta_text,
    )


def eta_text(p: CampaignProgress) -> str:
    if p.remaining == 0:
        return "done" if not p.waiting_in_review else "only review left"
    if p.eta_s is None:
        return "unknown (nothing completed in the window)"
    return f"~{_duration(p.eta_s)}"


def _duration(seconds: float) -> str:
    s = math.ceil(seconds)
    if s < 120:
        return f"{s} s"
    if s < 7200:
        return f"{s // 60} min"
    return f"{s // 3600} h {s % 3600 // 60} min"


async def campaign_page(request: web.Request) -> web.StreamResponse:
    console = request.app[CONSOLE]
    campaign_id = assets.checked_id(request.match_info["campaign_id"])
    index = index_of(console)
    states = index.campaign_states(campaign_id)
    if not states:
        if wants_json(request):
            return web.json_response({"campaign_id": campaign_id, "error": "unknown"}, status=404)
        raise web.HTTPNotFound(text=f"no indexed requests for campaign {campaign_id!r}")
    progress = campaign_progress(index, campaign_id)
    status = request.query.get("status", "")
    reason = request.query.get("reason", "")
    chosen = [
        s
        for s in states
        if (not status or bucket_of(s) == status)
        and (not reason or (s.status in FAILING and (s.reason_code or "unknown") == reason))
    ]
    chosen.sort(key=lambda s: s.last_ms, reverse=True)
    if wants_json(request):
        return web.json_response(
            progress.as_json()
            | {"requests_shown": [{"request_id": s.request_id, "status": bucket_of(s),
                                   "reason_code": s.reason_code, "cost": s.cost,
                                   "last_at": iso_ms(s.last_ms)} for s in chosen[:1000]]}
        )  # fmt: skip
    pages = max(1, math.ceil(len(chosen) / PAGE_SIZE))
    try:
        page = min(max(1, int(request.query.get("page", "1"))), pages)
    except ValueError:
        page = 1
    refresh = _refresh(request)

    def link(**changes: str | int) -> str:
        query: dict[str, str | int] = {"status": status, "reason": reason, "refresh": refresh}
        return _campaign_link(campaign_id, **(query | changes))

    return console.render(
        request,
        "campaign.html",
        p=progress,
        states=chosen[(page - 1) * PAGE_SIZE : page * PAGE_SIZE],
        matching=len(chosen),
        chosen_status=status,
        reason=reason,
        bucket=bucket_of,
        iso=iso_ms,
        link=link,
        page=page,
        pages=pages,
        refresh=refresh,
        refresh_choices=REFRESH_S,
        eta=eta_text(progress),
        index=_status(console),
    )


async def _follow(console: Console, follower: IndexFollower) -> None:
    """Start following; a broker that is not there yet is tried again every :data:`RETRY_S`
    (the console serves its other pages meanwhile; the timeline says it is still reading)."""
    while True:
        try:
            await follower.start()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("timeline: cannot follow the topics yet (%s); retrying", exc)
            with contextlib.suppress(Exception):
                await follower.stop()
            await asyncio.sleep(RETRY_S)
            continue
        console.state[FOLLOWER_KEY] = follower
        return


async def _start(app: web.Application) -> None:
    """One index and one follower for the console's lifetime. An index already in
    ``CONSOLE.state`` (a benchmark's, a test's) is used as it is, without a follower."""
    console = app[CONSOLE]
    if INDEX_KEY not in console.state:
        console.state[INDEX_KEY] = RequestIndex(console.codecs)
        follower = IndexFollower(console.settings, console.state[INDEX_KEY])
        console.state[TASK_KEY] = asyncio.create_task(_follow(console, follower))
    console.state.setdefault(assets.LOOKUPS_KEY, []).append(blob_lookup(index_of(console)))
    if assets.BLOBS_KEY not in console.state:  # no review page in this app
        console.state[assets.BLOBS_KEY] = open_blob_store(console.settings)
        console.state[assets.THUMBS_KEY] = assets.ThumbCache()
        console.state[OWN_BLOBS_KEY] = True


async def _stop(app: web.Application) -> None:
    console = app[CONSOLE]
    task: asyncio.Task[None] | None = console.state.pop(TASK_KEY, None)
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    follower: IndexFollower | None = console.state.pop(FOLLOWER_KEY, None)
    if follower is not None:
        await follower.stop()
    if console.state.pop(OWN_BLOBS_KEY, False):
        await console.state[assets.BLOBS_KEY].aclose()


def routes(app: web.Application) -> None:
    """The timeline pages (``/requests``); with :func:`campaign_routes`, the index's two
    pages. The asset routes come with the review page, or are added here without it."""
    app.on_startup.append(_start)
    app.on_cleanup.append(_stop)
    if not any(r.canonical.startswith("/assets/") for r in app.router.resources()):
        assets.routes(app)
    app.router.add_get("/requests", requests_page)
    app.router.add_get("/requests/{request_id}", timeline_page)


def campaign_routes(app: web.Application) -> None:
    app.router.add_get("/campaigns", campaigns_page)
    app.router.add_get("/campaigns/{campaign_id}", campaign_page)
