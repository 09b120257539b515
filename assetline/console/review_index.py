"""The review queue, kept live: follows ``<prefix>.review.items`` (the review table's
changelog, as :func:`assetline.review.load_items` reads it) and the earlier attempts of each
request from ``<prefix>.rejected`` (validated assets sent back for re-generation).

Read once from the beginning when the console starts, then followed: a page never re-reads a
topic. Every change is pushed to subscribers (the pages' Server-Sent Events streams).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from schemas.records import Disposition, ReviewDecision, ReviewItem, ReviewStatus, ValidatedAsset
from streams.codecs import CodecError, Codecs
from streams.kafka import batches_to_end, partitions_of
from streams.kafka_security import client_kwargs, start_client
from streams.settings import Settings
from streams.topics import TopicNames, ensure_topics, line_topic_specs

log = logging.getLogger(__name__)

#: Requests whose earlier attempts are kept (oldest forgotten first): a few KB each. Attempts
#: are recorded before anyone knows which requests will end in review, so this is a window.
MAX_ATTEMPT_REQUESTS: Final = 20_000
#: Decided items kept (newest), so a late second decision is told who decided; a few KB each.
MAX_DECIDED: Final = 10_000
#: Events a slow subscriber may have waiting before it is dropped (its page reconnects).
SUBSCRIBER_QUEUE: Final = 1000
RETRY_S: Final = 2.0


@dataclass(frozen=True)
class Change:
    """One change of the queue: an item ``added`` (pending) or ``decided``."""

    kind: str
    request_id: str
    status: str
    reviewer: str | None = None


class ReviewIndex:
    """Every review item by request id, and the earlier attempts of each request."""

    def __init__(self, settings: Settings, codecs: Codecs) -> None:
        self.settings = settings
        self.codecs = codecs
        self.topics = TopicNames.with_prefix(settings.topic_prefix)
        #: every pending item, and the newest MAX_DECIDED decided ones
        self.items: dict[str, ReviewItem] = {}
        self._decided: OrderedDict[str, None] = OrderedDict()
        #: request id -> attempt number -> the validated asset sent back for re-generation
        self.attempts: OrderedDict[str, dict[int, ValidatedAsset]] = OrderedDict()
        #: decisions sent from this console that the table has not shown yet
        self.sent: dict[str, ReviewDecision] = {}
        self.ready = asyncio.Event()
        #: bumped on every change of ``items`` or ``sent``: what pages cache by
        self.version = 0
        self._pending: tuple[int, list[ReviewItem]] = (-1, [])
        self._subscribers: set[asyncio.Queue[Change]] = set()
        self._task: asyncio.Task[None] | None = None

    # --- reading -------------------------------------------------------------------------

    def pending(self) -> list[ReviewItem]:
        """Items waiting for a person, oldest first (sent-but-unconfirmed ones left out);
        sorted once per change, not per page view. Do not modify the list."""
        if self._pending[0] != self.version:
            waiting = [
                item
                for item in self.items.values()
                if item.status is ReviewStatus.PENDING and item.request_id not in self.sent
            ]
            waiting.sort(key=lambda item: item.queued_at)
            self._pending = (self.version, waiting)
        return self._pending[1]

    def is_pending(self, request_id: str) -> bool:
        item = self.items.get(request_id)
        return (
            item is not None and item.status is ReviewStatus.PENDING and request_id not in self.sent
        )

    def earlier_attempts(self, request_id: str) -> list[ValidatedAsset]:
        return [v for _, v in sorted(self.attempts.get(request_id, {}).items())]

    # --- following -----------------------------------------------------------------------

    async def start(self) -> None:
        self._task = asyncio.create_task(self._follow(), name="console-review-index")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def wait_ready(self, timeout: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.ready.wait(), timeout)
        return self.ready.is_set()

    async def _follow(self) -> None:
        """Follow the topics; when the broker goes away, read them again from the beginning
        (applying a record twice changes nothing: the latest value per key wins)."""
        while True:
            try:
                await self._follow_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # any Kafka or decode trouble: say so, then start over
                log.exception("review index: following the topics failed; retrying in 2 s")
                await asyncio.sleep(RETRY_S)

    async def _follow_once(self) -> None:
        await ensure_topics(self.settings, line_topic_specs(self.settings))
        consumer = AIOKafkaConsumer(
            **client_kwargs(self.settings), enable_auto_commit=False, auto_offset_reset="earliest"
        )
        await start_client(consumer, self.settings)
        try:
            tps = [
                TopicPartition(topic, p)
                for topic in (self.topics.review_items, self.topics.rejected)
                for p in await partitions_of(consumer, topic)
            ]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            async for batch in batches_to_end(consumer):
                self._apply(r for records in batch.values() for r in records)
            self.ready.set()
            log.info(
                "review index ready: %d items, %d pending", len(self.items), len(self.pending())
            )
            while True:
                batch = await consumer.getmany(timeout_ms=1000)
                self._apply(r for records in batch.values() for r in records)
        finally:
            await consumer.stop()

    def _apply(self, records: Iterable[ConsumerRecord[bytes, bytes]]) -> None:
        for record in records:
            if record.key is None:
                continue
            key = record.key.decode("utf-8", errors="replace")
            if record.topic == self.topics.rejected:
                self._attempt(key, record.value)
            else:
                self._item(key, record.value)

    def _attempt(self, key: str, value: bytes | None) -> None:
        if value is None:
            return
        try:
            asset = self.codecs.validated.decode(value)
        except CodecError:
            return
        if asset.disposition is not Disposition.REGENERATE:
            return
        self.attempts.setdefault(key, {})[asset.raw.request.attempt] = asset
        self.attempts.move_to_end(key)
        while len(self.attempts) > MAX_ATTEMPT_REQUESTS:
            self.attempts.popitem(last=False)

    def _item(self, key: str, value: bytes | None) -> None:
        self.version += 1
        before = self.items.get(key)
        if value is None:
            self.items.pop(key, None)
            self.sent.pop(key, None)
            self._decided.pop(key, None)
            if before is not None:
                self._publish(Change("decided", key, "GONE"))
            return
        try:
            item = self.codecs.review_item.decode(value)
        except CodecError:
            return
        self.items[key] = item
        self._keep_decided(key, item)
        if item.status is ReviewStatus.PENDING:
            if before is None or before.status is not ReviewStatus.PENDING:
                self._publish(Change("added", key, item.status.value))
        else:
            self.sent.pop(key, None)
            if before is None or before.status is ReviewStatus.PENDING:
                reviewer = item.decision.reviewer if item.decision else None
                self._publish(Change("decided", key, item.status.value, reviewer))

    def _keep_decided(self, key: str, item: ReviewItem) -> None:
        if item.status is ReviewStatus.PENDING:
            self._decided.pop(key, None)
            return
        self._decided[key] = None
        self._decided.move_to_end(key)
        while len(self._decided) > MAX_DECIDED:
            oldest, _ = self._decided.popitem(last=False)
            self.items.pop(oldest, None)

    def note_sending(self, decision: ReviewDecision) -> None:
        """A decision this console is sending: hidden from now on, so it is sent once."""
        self.sent[decision.request_id] = decision
        self.version += 1

    def unsend(self, request_id: str) -> None:
        """The send failed: the item waits again."""
        self.sent.pop(request_id, None)
        self.version += 1

    def note_sent(self, decision: ReviewDecision) -> None:
        """The decision is on Kafka: every open page drops the item (before the review stage
        confirms it on ``.review.items``)."""
        status = "APPROVED" if decision.action.value == "APPROVE" else "REJECTED"
        self._publish(Change("decided", decision.request_id, status, decision.reviewer))

    # --- live updates --------------------------------------------------------------------

    def subscribe(self) -> asyncio.Queue[Change]:
        queue: asyncio.Queue[Change] = asyncio.Queue(SUBSCRIBER_QUEUE)
        self._subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[Change]) -> None:
        self._subscribers.discard(queue)

    def _publish(self, change: Change) -> None:
        if not self.ready.is_set():
            return  # the first read builds the queue; pages load it whole
        for queue in list(self._subscribers):
            try:
                queue.put_nowait(change)
            except asyncio.QueueFull:
                self._subscribers.discard(queue)
