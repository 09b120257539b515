"""Submit requests to the line and wait for their completions (used by the CLI, demo, bench)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from types import TracebackType

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition

from streams.codecs import CodecError, Codecs
from streams.records import AssetCompleted, GenerationRequest
from streams.settings import Settings
from streams.topics import TopicNames


class LineClient:
    """A producer of requests and a reader of completions for one line."""

    def __init__(self, settings: Settings, codecs: Codecs | None = None) -> None:
        self.settings = settings
        self.codecs = codecs or Codecs.load()
        self.topics = TopicNames.with_prefix(settings.topic_prefix)
        self._producer = AIOKafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap,
            linger_ms=5,
            max_batch_size=256 * 1024,
            acks="all",
            enable_idempotence=True,
        )

    async def __aenter__(self) -> LineClient:
        await self._producer.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._producer.stop()

    async def submit(self, requests: Iterable[GenerationRequest]) -> int:
        """Publish requests keyed by request_id; returns how many were acknowledged."""
        pending = [
            await self._producer.send(
                self.topics.requests,
                key=r.request_id.encode("utf-8"),
                value=self.codecs.request.encode(r),
            )
            for r in requests
        ]
        await asyncio.gather(*pending)
        return len(pending)

    async def send_raw(self, topic: str, key: bytes | None, value: bytes) -> None:
        """Publish arbitrary bytes (replays, tests of bad input)."""
        await self._producer.send_and_wait(topic, key=key, value=value)


async def await_completions(
    settings: Settings,
    request_ids: Iterable[str],
    *,
    timeout: float,
    codecs: Codecs | None = None,
    on_completion: Callable[[AssetCompleted], None] | None = None,
    consumer: AIOKafkaConsumer | None = None,
) -> dict[str, list[AssetCompleted]]:
    """Read ``.completed`` from the beginning until every id has a completion or time runs out.

    Returns every completion seen per wanted id (a list, so callers can prove there is one).
    """
    codecs = codecs or Codecs.load()
    wanted = set(request_ids)
    seen: dict[str, list[AssetCompleted]] = {}
    own = consumer is None
    consumer = consumer or await open_completion_reader(settings)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and not wanted.issubset(seen):
            batches = await consumer.getmany(timeout_ms=500)
            for messages in batches.values():
                for message in messages:
                    try:
                        done = codecs.completed.decode(message.value)
                    except CodecError:
                        continue
                    if done.request_id in wanted:
                        seen.setdefault(done.request_id, []).append(done)
                        if on_completion is not None:
                            on_completion(done)
    finally:
        if own:
            await consumer.stop()
    return seen


async def open_completion_reader(settings: Settings) -> AIOKafkaConsumer:
    """A group-less consumer on every partition of ``.completed``, from the beginning."""
    topic = TopicNames.with_prefix(settings.topic_prefix).completed
    return await open_topic_reader(settings.kafka_bootstrap, topic)


async def read_to_end(bootstrap: str, topic: str) -> list[ConsumerRecord[bytes, bytes]]:
    """Every message of ``topic`` up to its end offsets when called, in partition order.

    Used to read a table's changelog (e.g. ``.review.items``) without asking a worker.
    """
    consumer = await open_topic_reader(bootstrap, topic)
    try:
        tps = list(consumer.assignment())
        ends = await consumer.end_offsets(tps)
        records: list[ConsumerRecord[bytes, bytes]] = []
        left = {tp for tp in tps if ends[tp] > await consumer.position(tp)}
        while left:
            batches = await consumer.getmany(*left, timeout_ms=1000)
            for messages in batches.values():
                records.extend(messages)
            for tp in list(left):
                if await consumer.position(tp) >= ends[tp]:
                    left.discard(tp)
        return records
    finally:
        await consumer.stop()


async def open_topic_reader(bootstrap: str, topic: str) -> AIOKafkaConsumer:
    """A group-less consumer on every partition of ``topic``, from the beginning."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    partitions = consumer.partitions_for_topic(topic)
    if not partitions:
        await consumer._client.force_metadata_update()
        partitions = consumer.partitions_for_topic(topic) or set()
    tps = [TopicPartition(topic, p) for p in sorted(partitions)]
    consumer.assign(tps)
    await consumer.seek_to_beginning(*tps)
    return consumer
