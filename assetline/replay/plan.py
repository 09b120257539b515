"""What a replay will copy: the checked source and target topics, and the offsets per partition.

Asks the cluster (which topics exist, which partitions and offsets they have) and nothing
else; :func:`assetline.replay.republish.republish` then copies the plan.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer

from assetline.replay.ranges import Bound, PartitionRange, resolve
from assetline.replay.topics import ReplayTopics, choose
from streams.kafka import partitions_of
from streams.kafka_security import client_kwargs, start_client
from streams.settings import Settings
from streams.topics import TopicNames


@dataclass(frozen=True)
class ReplayPlan:
    topics: ReplayTopics
    ranges: list[PartitionRange]


async def plan_replay(
    kafka: Settings | str,
    names: TopicNames,
    topic: str,
    into: str | None,
    start: Bound,
    stop: Bound | None,
    partition: int | None = None,
) -> ReplayPlan:
    """Resolve ``topic``/``into`` against the cluster and ``start``/``stop`` to offsets.

    Raises :class:`~assetline.replay.topics.TopicChoiceError` for a topic a replay must not
    use and :class:`~assetline.replay.ranges.RangeError` for a partition the topic lacks.
    """
    consumer = AIOKafkaConsumer(**client_kwargs(kafka))
    await start_client(consumer, kafka)
    try:
        existing = await consumer.topics()
        chosen = choose(names, topic, into, existing)
        partitions = await partitions_of(consumer, chosen.source)
        ranges = await resolve(consumer, chosen.source, partitions, start, stop, partition)
    finally:
        await consumer.stop()
    return ReplayPlan(chosen, ranges)
