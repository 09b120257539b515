"""Review operations: read the items waiting for a person, and record a person's decision.

Pending items are read from the review table's changelog (``<prefix>.review.items``), so this
needs only the broker, not a running worker; a decision is an Avro ``ReviewDecision`` on
``<prefix>.review.decisions``, keyed by request id, which is exactly what any other tool (a
review UI, a chat bot) may publish instead. ``assetline review`` calls these and prints.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from assetline.client import LineClient
from schemas.errors import AssetlineError
from schemas.records import ReviewAction, ReviewDecision, ReviewItem, ReviewStatus
from streams.codecs import CodecError, Codecs
from streams.kafka import read_to_end
from streams.settings import Settings
from streams.topics import TopicNames


class ReviewError(AssetlineError):
    """A decision (or a look-up) the review table refuses; the message says why."""

    code = "review.refused"


class NoReviewItemError(ReviewError):
    """No item in the review table for that request id."""

    code = "review.no_item"


class AlreadyDecidedError(ReviewError):
    """The item was decided before; a decision is never overwritten."""

    code = "review.already_decided"


async def load_items(settings: Settings, codecs: Codecs) -> dict[str, ReviewItem]:
    """The latest item per request id; deleted (tombstoned) and undecodable entries skipped."""
    topic = TopicNames.with_prefix(settings.topic_prefix).review_items
    items: dict[str, ReviewItem] = {}
    for record in await read_to_end(settings, topic):
        if record.key is None:
            continue
        key = record.key.decode("utf-8", errors="replace")
        if record.value is None:
            items.pop(key, None)
            continue
        try:
            items[key] = codecs.review_item.decode(record.value)
        except CodecError:
            continue
    return items


def item_for(items: dict[str, ReviewItem], request_id: str) -> ReviewItem:
    """The item of ``request_id``, or :class:`NoReviewItemError`."""
    item = items.get(request_id)
    if item is None:
        raise NoReviewItemError(f"no review item for request {request_id!r}")
    return item


def shown_items(
    items: Iterable[ReviewItem], *, include_decided: bool, campaign: str | None
) -> list[ReviewItem]:
    """The items a listing shows, oldest first: pending ones (or all), of one campaign or all."""
    return sorted(
        (
            item
            for item in items
            if (include_decided or item.status is ReviewStatus.PENDING)
            and (campaign is None or item.asset.raw.request.campaign_id == campaign)
        ),
        key=lambda item: item.queued_at,
    )


async def waiting_for_review(
    settings: Settings, request_ids: Iterable[str], codecs: Codecs | None = None
) -> set[str]:
    """Which of ``request_ids`` wait for a person: held, not lost (no completion yet)."""
    items = await load_items(settings, codecs or Codecs.load())
    return {
        rid for rid in request_ids if rid in items and items[rid].status is ReviewStatus.PENDING
    }


def pending_count(items: Iterable[ReviewItem]) -> int:
    return sum(1 for item in items if item.status is ReviewStatus.PENDING)


def item_summary(item: ReviewItem) -> dict[str, object]:
    """One item as a flat JSON-ready dict: who, what, where, and which checks failed."""
    request = item.asset.raw.request
    blob = item.asset.raw.blob
    failed = [f"{c.code}: {c.message}" for c in item.asset.report.checks if not c.passed]
    return {
        "request_id": item.request_id,
        "status": item.status.value,
        "tenant": request.tenant,
        "campaign_id": request.campaign_id,
        "attempt": request.attempt,
        "profile": item.asset.report.profile,
        "queued_at": item.queued_at.isoformat(),
        "asset": blob.uri if blob is not None else None,
        "failed": failed,
        "decision": item.decision.model_dump(mode="json") if item.decision else None,
    }


def new_decision(
    request_id: str, action: ReviewAction, reviewer: str, note: str | None
) -> ReviewDecision:
    return ReviewDecision(
        decision_id=str(uuid.uuid4()),
        request_id=request_id,
        action=action,
        reviewer=reviewer,
        note=note,
    )


def check_pending(item: ReviewItem) -> None:
    """Raise :class:`AlreadyDecidedError` unless ``item`` still waits for a decision."""
    if item.status is not ReviewStatus.PENDING:
        by = item.decision.reviewer if item.decision else "someone"
        raise AlreadyDecidedError(
            f"request {item.request_id!r} was already {item.status.value.lower()} by {by}"
        )


async def publish_decision(client: LineClient, codecs: Codecs, decision: ReviewDecision) -> None:
    """Send ``decision`` on an open client, unchecked: for a caller that keeps the review table
    itself (the console follows ``.review.items`` live and calls :func:`check_pending`)."""
    await client.send_raw(
        client.topics.review_decisions,
        decision.request_id.encode("utf-8"),
        codecs.review_decision.encode(decision),
    )


async def send_decision(settings: Settings, codecs: Codecs, decision: ReviewDecision) -> None:
    """Publish ``decision`` if its item is still pending, else raise a :class:`ReviewError`."""
    check_pending(item_for(await load_items(settings, codecs), decision.request_id))
    async with LineClient(settings, codecs) as client:
        await publish_decision(client, codecs, decision)
