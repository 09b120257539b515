"""Following every line topic from the beginning into a :class:`RequestIndex`.

A group-less consumer (nothing committed: the index is rebuilt from the topics at each start)
assigned every partition of the line's topics; topics created later (a console started
before its first worker) are picked up every ``refresh_s``. ``caught_up`` is set once the
records present at start (or at a topic's discovery) are all indexed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from assetline.timeline.entry import TimelineEntry, TopicKind, topic_kinds
from assetline.timeline.index import RequestIndex
from streams.kafka import partitions_of
from streams.kafka_security import client_kwargs, start_client
from streams.settings import Settings
from streams.topics import TopicNames

log = logging.getLogger(__name__)


def line_topic_kinds(settings: Settings) -> dict[str, TopicKind]:
    """Every topic the timeline reads for this line, by full name."""
    names = TopicNames.with_prefix(settings.topic_prefix)
    return topic_kinds(names, retry_tiers=max(0, len(settings.webhook_schedule_s) - 1))


class IndexFollower:
    """Feeds ``index`` from the line's topics until :meth:`stop`.

    Use ``await follower.start()`` (returns at once; ``await follower.wait_caught_up()`` to
    wait for the history), or ``async with IndexFollower(...)``.
    """

    def __init__(
        self,
        settings: Settings,
        index: RequestIndex,
        *,
        refresh_s: float = 5.0,
        poll_ms: int = 200,
        on_entries: Callable[[tuple[TimelineEntry, ...]], None] | None = None,
    ) -> None:
        self.settings = settings
        self.index = index
        self.refresh_s = refresh_s
        self.poll_ms = poll_ms
        #: Called (on the loop) with each record's new entries: a page's live updates.
        self.on_entries = on_entries
        self.kinds = line_topic_kinds(settings)
        self.caught_up = asyncio.Event()
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._ends: dict[TopicPartition, int] = {}

    async def __aenter__(self) -> IndexFollower:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        consumer = AIOKafkaConsumer(
            **client_kwargs(self.settings), enable_auto_commit=False, auto_offset_reset="earliest"
        )
        await start_client(consumer, self.settings)
        self._consumer = consumer
        await self._assign()
        self._task = asyncio.create_task(self._run(), name="timeline-follower")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

    async def wait_caught_up(self, timeout: float | None = None) -> bool:
        """True once the history is indexed; False when ``timeout`` passed first."""
        try:
            await asyncio.wait_for(self.caught_up.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def _assign(self) -> None:
        """Assign every partition of every line topic that exists; new ones from the start."""
        consumer = self._consumer
        assert consumer is not None
        existing = await consumer.topics()
        wanted = set(consumer.assignment())
        for name in self.kinds:
            if name in existing:
                wanted.update(TopicPartition(name, p) for p in await partitions_of(consumer, name))
        new = wanted - set(consumer.assignment())
        if not new:
            await self._positions_check()  # no topic yet counts as caught up
            return
        kept = {tp: await consumer.position(tp) for tp in consumer.assignment()}
        consumer.assign(sorted(wanted))
        for tp, offset in kept.items():
            consumer.seek(tp, offset)
        await consumer.seek_to_beginning(*new)
        self._ends.update(await consumer.end_offsets(list(new)))
        await self._positions_check()

    async def _run(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        loop = asyncio.get_running_loop()
        next_refresh = loop.time() + self.refresh_s
        while True:
            try:
                if consumer.assignment():
                    batch = await consumer.getmany(timeout_ms=self.poll_ms)
                else:  # no line topic exists yet: wait for the next refresh
                    batch = {}
                    await asyncio.sleep(self.poll_ms / 1000)
            except KafkaError as exc:  # the broker went away: keep the index, try again
                log.warning("timeline: fetching failed: %s", exc)
                await asyncio.sleep(1.0)
                continue
            for tp, messages in batch.items():
                kind = self.kinds[tp.topic]
                for m in messages:
                    self._apply(kind, m)
            if not self.caught_up.is_set():
                await self._positions_check()
            if loop.time() >= next_refresh:
                next_refresh = loop.time() + self.refresh_s
                try:
                    await self._assign()
                except Exception as exc:  # a broker hiccup must not end the follower
                    log.warning("timeline: could not refresh topics: %s", exc)

    def _apply(self, kind: TopicKind, m: Any) -> None:
        try:
            entries = self.index.apply(kind, m.key, m.value, m.headers, m.timestamp)
            if entries and self.on_entries is not None:
                self.on_entries(entries)
        except Exception:  # one odd record must not stop the index; it is logged
            log.exception("timeline: could not index %s/%s@%s", m.topic, m.partition, m.offset)

    async def _positions_check(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        for tp, end in list(self._ends.items()):
            if await consumer.position(tp) >= end:
                del self._ends[tp]
        if not self._ends:
            self.caught_up.set()


async def read_once(settings: Settings, index: RequestIndex, *, timeout: float = 60.0) -> bool:
    """Read the line's topics once, up to their end now, into ``index`` (built with
    ``only={request_id}`` it decodes just that request's records). False when ``timeout``
    passed first (the index then holds what was read)."""
    async with IndexFollower(settings, index, refresh_s=3600.0) as follower:
        return await follower.wait_caught_up(timeout)
