"""Dead-letter pages: the list (counts by stage and code, filters, keys), one letter inspected,
and re-drive of the selected ones to their source (a CSRF-protected POST, like every POST).

Everything shown comes from :class:`assetline.dead_letter_view.DeadLetterView`, which masks
credentials and marks in headers and scrubs the line's secrets from every text; re-driving goes
through :func:`assetline.redrive.redrive`, so a letter re-driven twice (two operators, a double
click) still ends in one completion per (request, attempt).

The topic is read to its end per page load (a dead-letter topic is small, and what an operator
wants is now); reads within :data:`FRESH_S` of each other share one.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import urlencode

from aiohttp import web
from aiokafka.errors import KafkaError

from agents.tenants import Gatekeeper
from assetline.console._app import CONSOLE, Console, session_of
from assetline.dead_letter_view import (
    DeadLetterRow,
    DeadLetterView,
    Position,
    groups,
    parse_position,
    position_of,
)
from assetline.redrive import DeadLetter, Redriven
from schemas.errors import AssetlineError
from streams.redaction import redact

VIEW_KEY: Final = "deadletters.view"
CACHE_KEY: Final = "deadletters.cache"
PAGE_SIZE: Final = 100
#: At most this many letters per re-drive POST (a page's worth, with room to spare).
MAX_REDRIVE: Final = 500
FRESH_S: Final = 1.0
FILTERS: Final = ("stage", "code", "key")
log = logging.getLogger(__name__)


@dataclass
class _Cache:
    """The last read of the topic, shared by requests that arrive together."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    at: float = -math.inf
    letters: list[DeadLetter] = field(default_factory=list)


def view_of(console: Console) -> DeadLetterView:
    if VIEW_KEY not in console.state:
        console.state[VIEW_KEY] = DeadLetterView(console.settings, codecs=console.codecs)
        console.state[CACHE_KEY] = _Cache()
    view: DeadLetterView = console.state[VIEW_KEY]
    return view


async def letters_of(console: Console) -> list[DeadLetter]:
    """Every dead letter now on the topic (one read per :data:`FRESH_S` at most)."""
    view = view_of(console)
    cache: _Cache = console.state[CACHE_KEY]
    async with cache.lock:
        if time.monotonic() - cache.at > FRESH_S:
            try:
                cache.letters = await view.read()
            except (KafkaError, OSError) as exc:
                raise _unavailable(view, "cannot read the dead letters", exc) from None
            cache.at = time.monotonic()
        return cache.letters


def _unavailable(view: DeadLetterView, what: str, exc: BaseException) -> web.HTTPException:
    """A 503 saying why in one line (the broker is down, say), scrubbed of secrets."""
    text = redact(" ".join(str(exc).split()) or type(exc).__name__, view.secrets)
    return web.HTTPServiceUnavailable(text=f"{what}: {text}")


def _chosen(request: web.Request) -> dict[str, str]:
    return {name: request.query[name].strip() for name in FILTERS if request.query.get(name)}


async def list_page(request: web.Request) -> web.Response:
    console = request.app[CONSOLE]
    view = view_of(console)
    letters = await letters_of(console)
    chosen = _chosen(request)
    every = view.rows(letters, newest_first=True)
    rows = [
        r
        for r in every
        if r.stage == chosen.get("stage", r.stage)
        and r.code == chosen.get("code", r.code)
        and chosen.get("key", "") in r.key
    ]
    pages = max(1, math.ceil(len(rows) / PAGE_SIZE))
    try:
        page = min(max(1, int(request.query.get("page", "1"))), pages)
    except ValueError:
        page = 1

    def link(**changes: str | int) -> str:
        query = {**chosen, **changes}
        return "/deadletters?" + urlencode({k: v for k, v in query.items() if v != ""})

    return console.render(
        request,
        "dead_letters.html",
        rows=rows[(page - 1) * PAGE_SIZE : page * PAGE_SIZE],
        groups=[(g, link(stage=g.stage, code=g.code, page="")) for g in groups(every)],
        stages=sorted({r.stage for r in every}),
        codes=sorted({r.code for r in every}),
        chosen=chosen,
        total=len(every),
        matching=len(rows),
        page=page,
        pages=pages,
        prev_link=link(page=page - 1) if page > 1 else "",
        next_link=link(page=page + 1) if page < pages else "",
        select_all=request.query.get("all") == "1",
        all_link=link(page=page, all=1),
        back=request.path_qs,
        topic=view.names.deadletter,
    )


def _position(request: web.Request) -> Position:
    try:
        return parse_position(f"{request.match_info['partition']}:{request.match_info['offset']}")
    except ValueError:
        raise web.HTTPNotFound(text="no such dead letter") from None


async def detail_page(request: web.Request) -> web.Response:
    console = request.app[CONSOLE]
    view = view_of(console)
    position = _position(request)
    letter = view.find(await letters_of(console), position)
    if letter is None:
        raise web.HTTPNotFound(text=f"no dead letter at {position}")
    return console.render(request, "dead_letter.html", d=view.detail(letter))


_SENT: Final = ("redriven", "verbatim")


def _said(item: Redriven) -> str:
    """What became of one letter, in the words of ``dlq replay``'s report."""
    if item.outcome == "redriven":
        return f"sent to {item.target} as request {item.request_id} attempt {item.attempt}"
    if item.outcome == "verbatim":
        return f"sent to {item.target} as is (no request to re-attempt)"
    if item.outcome == "undecodable":
        return f"skipped: still not a valid record for {item.target}"
    if item.outcome == "parked":
        return "skipped: its value is parked in a blob store this console cannot read"
    if item.outcome == "refused":
        return (
            f"skipped: request {item.request_id} is not admissible (forged attempt or "
            "unsigned); the producer must send it again"
        )
    return "skipped: no source topic in its headers"


@dataclass(frozen=True)
class Outcome:
    """One line of a re-drive's result page."""

    position: str
    row: DeadLetterRow | None
    text: str
    sent: bool


async def redrive_post(request: web.Request) -> web.Response:
    """Re-drive the letters at the form's ``position`` fields (``PARTITION:OFFSET`` each)."""
    console = request.app[CONSOLE]
    view = view_of(console)
    user = session_of(request).user
    form = await request.post()
    try:
        positions = list(dict.fromkeys(parse_position(str(v)) for v in form.getall("position", [])))
    except ValueError as exc:
        raise web.HTTPBadRequest(text=str(exc)) from None
    if not positions:
        raise web.HTTPBadRequest(text="no dead letter selected")
    if len(positions) > MAX_REDRIVE:
        raise web.HTTPBadRequest(text=f"at most {MAX_REDRIVE} dead letters at a time")
    letters = await letters_of(console)
    try:
        marker = Gatekeeper.from_settings(console.settings)
        result = await view.redrive(letters, positions, marker=marker)
    except (AssetlineError, KafkaError, OSError) as exc:  # a bad tenants file, Kafka down
        raise _unavailable(
            view, "cannot re-drive (trying the same ones again is safe)", exc
        ) from None
    log.info(
        "console: %s re-drove %d of %d dead letter(s) (replay id %s)",
        user,
        result.sent,
        len(positions),
        result.report.replay_id,
    )
    outcomes = [
        Outcome(str(position_of(i.letter)), view.row(i.letter), _said(i), i.outcome in _SENT)
        for i in result.report.items
    ]
    outcomes += [
        Outcome(str(p), None, "no dead letter at that position", False) for p in result.missing
    ]
    back = str(form.get("back", "/deadletters"))
    if not back.startswith("/deadletters") or back.startswith("//"):
        back = "/deadletters"
    return console.render(
        request,
        "dead_letters_redriven.html",
        outcomes=outcomes,
        sent=result.sent,
        replay_id=result.report.replay_id,
        back=back,
    )


def routes(app: web.Application) -> None:
    app.router.add_get("/deadletters", list_page)
    app.router.add_get(r"/deadletters/{partition:\d+}/{offset:\d+}", detail_page)
    app.router.add_post("/deadletters/redrive", redrive_post)
