"""The review stage: ``.review`` items wait in a table until ``.review.decisions`` settles them.

Approve publishes the asset (with the reviewer recorded) to ``.approved``, reject to
``.rejected``; the deliver stage then emits the one completion either way. The table's
changelog is ``.review.items``, so pending items survive restarts and ``assetline review``
can list them without asking a worker.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from prometheus_client import Counter, Gauge

from agents.review.queue import Decided, crashed, decide, enqueue
from schemas.records import ReviewItem, ReviewStatus, ValidatedAsset
from streams.stage_io import CrashOutcome, StageIO
from streams.traced_table import TracedTable

if TYPE_CHECKING:
    from streams.app import Line

STAGE = "review"


def install(line: Line) -> None:
    io = StageIO(line, STAGE)
    codecs = line.codecs
    topics = line.topics
    # Its records carry the request's trace, which a decision's span then joins.
    items = TracedTable(
        line.app,
        name="review",
        beacon=line.app.tables.beacon,
        changelog_topic=topics.review_items,
        key_type=bytes,
        value_type=bytes,
        partitions=line.settings.topic_partitions,
    )
    line.app.tables.add(items)
    sources = line.app.topic(
        topics.names.review,
        topics.names.review_decisions,
        key_serializer="raw",
        value_serializer="raw",
    )
    decisions = Counter(
        "assetline_review_decisions",
        "Review decisions applied, by action (APPROVE, REJECT).",
        ["action"],
        registry=line.registry,
    )

    def stored(key: bytes) -> ReviewItem | None:
        value = items.get(key)
        return None if value is None else codecs.review_item.decode(value)

    def pending() -> int:
        count = 0
        for value in items.values():
            if codecs.review_item.decode(value).status is ReviewStatus.PENDING:
                count += 1
        return count

    Gauge(
        "assetline_review_pending",
        "Assets waiting for a review decision (in this worker's partitions).",
        registry=line.registry,
    ).set_function(pending)

    def ends_crashed(asset: ValidatedAsset) -> CrashOutcome:
        """A crash ends the request FAILED (``stage.crashed``) through deliver."""

        async def publish(message: str) -> bool:
            value = codecs.validated.encode(crashed(asset, message))
            await io.send(topics.rejected, asset.raw.request.request_id, value, "rejected")
            return True

        return publish

    @line.app.agent(sources, name=STAGE)
    async def review(stream: Any) -> None:
        async for event in stream.events():
            message = event.message
            settles = message.topic != topics.names.review and isinstance(message.key, bytes)
            trace = items.trace_of(message.key) if settles else None  # the request's trace
            async with io.handling(event, trace=trace) as crash:
                if event.message.topic == topics.names.review:
                    asset = await io.decode(codecs.validated, event)
                    if asset is None:
                        continue
                    crash.arm(ends_crashed(asset))
                    key = asset.raw.request.request_id.encode("utf-8")
                    item = enqueue(stored(key), asset)
                    if item is None:
                        line.metrics.duplicates.labels(STAGE).inc()
                        continue
                    items[key] = codecs.review_item.encode(item)
                    crash.disarm()  # queued: a person ends it now
                    line.metrics.events_out.labels(STAGE, "pending").inc()
                    continue
                decision = await io.decode(codecs.review_decision, event)
                if decision is None:
                    continue
                key = decision.request_id.encode("utf-8")
                if event.message.key != key:  # another key means another partition's table
                    await io.dead_letter(
                        event,
                        "review.wrong_key",
                        "a review decision must be keyed by its request_id "
                        f"({decision.request_id!r}), got {event.message.key!r}",
                    )
                    continue
                item = stored(key)
                if item is not None:  # no item, no request to end: dead letter only
                    crash.arm(ends_crashed(item.asset))
                outcome = decide(item, decision)
                if not isinstance(outcome, Decided):
                    await io.dead_letter(event, outcome.code, outcome.reason)
                    continue
                if not outcome.repeat:
                    items[key] = codecs.review_item.encode(outcome.item)
                    decisions.labels(decision.action.value).inc()
                output = topics.approved if outcome.output == "approved" else topics.rejected
                value = codecs.validated.encode(outcome.asset)
                await io.send(output, decision.request_id, value, outcome.output)
