"""assetline.replay.plan: topics checked and offsets resolved against a (fake) cluster."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka import TopicPartition

import assetline.replay.plan as plan
from assetline.replay.ranges import OffsetBound, PartitionRange
from assetline.replay.topics import TopicChoiceError
from streams.topics import TopicNames

NAMES = TopicNames.with_prefix("p")


class FakeConsumer:
    """Two partitions of ``p.raw`` holding offsets 10..50 and 0..5."""

    instances: list[FakeConsumer] = []

    def __init__(self, **kwargs: Any) -> None:
        self.stopped = False
        FakeConsumer.instances.append(self)

    async def start(self) -> None: ...

    async def stop(self) -> None:
        self.stopped = True

    async def topics(self) -> set[str]:
        return {NAMES.raw, NAMES.deadletter}

    def partitions_for_topic(self, topic: str) -> set[int]:
        return {0, 1}

    async def beginning_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: (10 if tp.partition == 0 else 0) for tp in tps}

    async def end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: (50 if tp.partition == 0 else 5) for tp in tps}


@pytest.fixture(autouse=True)
def fake_cluster(monkeypatch: pytest.MonkeyPatch) -> None:
    FakeConsumer.instances.clear()
    monkeypatch.setattr(plan, "AIOKafkaConsumer", FakeConsumer)


def test_a_plan_has_the_checked_topics_and_the_clamped_ranges() -> None:
    result = asyncio.run(plan.plan_replay("b:9092", NAMES, "raw", "raw", OffsetBound(20), None))
    assert (result.topics.source, result.topics.target) == (NAMES.raw, NAMES.raw)
    assert result.ranges == [PartitionRange(0, 20, 50), PartitionRange(1, 5, 5)]
    assert FakeConsumer.instances[0].stopped


def test_one_partition_only() -> None:
    result = asyncio.run(
        plan.plan_replay("b:9092", NAMES, "raw", "raw", OffsetBound(0), OffsetBound(3), 1)
    )
    assert result.ranges == [PartitionRange(1, 0, 3)]


def test_a_refused_topic_closes_the_consumer() -> None:
    with pytest.raises(TopicChoiceError, match="dlq replay"):
        asyncio.run(plan.plan_replay("b:9092", NAMES, "deadletter", "raw", OffsetBound(0), None))
    assert FakeConsumer.instances[0].stopped
