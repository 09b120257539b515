"""Kafka helpers every layer shares: group-less readers of a whole topic, and topic probes.

One home for "read a topic to its end", "open a reader on every partition", "which partitions
has it" and "does it exist", so stages, the SDK and the operator tools do not each grow their
own loop.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from streams.kafka_security import client_kwargs, start_client

if TYPE_CHECKING:
    from streams.settings import Settings

Batch = dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]


async def read_to_end(kafka: Settings | str, topic: str) -> list[ConsumerRecord[bytes, bytes]]:
    """Every message of ``topic`` up to its end offsets when called, in partition order.

    Used to read a table's changelog (e.g. ``.review.items``) without asking a worker.
    ``kafka``: the line's settings (bootstrap and security), or a PLAINTEXT bootstrap string.
    """
    consumer = await open_topic_reader(kafka, topic)
    try:
        records: list[ConsumerRecord[bytes, bytes]] = []
        async for batch in batches_to_end(consumer):
            for messages in batch.values():
                records.extend(messages)
        return records
    finally:
        await consumer.stop()


async def batches_to_end(consumer: Any, *, timeout_ms: int = 1000) -> AsyncIterator[Batch]:
    """``getmany`` batches of ``consumer``'s assigned partitions up to their end offsets now.

    The loop behind :func:`read_to_end`, for a caller that must not hold a whole topic in
    memory or keeps following the topic afterwards on the same reader. Only partitions still
    behind are fetched; a batch may be empty (a poll that timed out). ``consumer`` is an
    assigned :class:`aiokafka.AIOKafkaConsumer` (or anything with its offset methods).
    """
    tps = list(consumer.assignment())
    ends = await consumer.end_offsets(tps)
    behind = set(tps)
    while True:
        for tp in list(behind):
            if await consumer.position(tp) >= ends[tp]:
                behind.discard(tp)
        if not behind:
            return
        batch: Batch = await consumer.getmany(*behind, timeout_ms=timeout_ms)
        yield batch


async def open_topic_reader(kafka: Settings | str, topic: str) -> AIOKafkaConsumer:
    """A group-less consumer on every partition of ``topic``, from the beginning."""
    consumer = AIOKafkaConsumer(
        **client_kwargs(kafka), enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await start_client(consumer, kafka)
    tps = [TopicPartition(topic, p) for p in await partitions_of(consumer, topic)]
    consumer.assign(tps)
    await consumer.seek_to_beginning(*tps)
    return consumer


async def partitions_of(consumer: Any, topic: str) -> list[int]:
    """Partition ids of ``topic``; a fresh consumer knows only the topics it has asked about."""
    partitions = consumer.partitions_for_topic(topic)
    if not partitions:
        await consumer._client.force_metadata_update()
        partitions = consumer.partitions_for_topic(topic) or set()
    return sorted(partitions)


async def topic_exists(kafka: Settings | str, topic: str) -> bool:
    """Whether the broker has ``topic``, asked by a short-lived consumer.

    Asked before reading or subscribing: a consumer of a missing topic waits (and warns) for
    it to appear instead of saying so.
    """
    consumer = AIOKafkaConsumer(**client_kwargs(kafka), enable_auto_commit=False)
    await start_client(consumer, kafka)
    try:
        return topic in await consumer.topics()
    finally:
        await consumer.stop()
