"""Kafka helpers every layer shares: group-less readers of a whole topic.

One home for "read a topic to its end" and "open a reader on every partition", so stages, the
SDK and the operator tools do not each grow their own loop.
"""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition


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
