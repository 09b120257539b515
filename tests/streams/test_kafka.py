"""The shared Kafka helpers: read to the end offsets, partitions of a topic, topic exists.

A fake consumer stands in for aiokafka's; the broker round trips are exercised by the
integration tests (webhooks, replay, campaign, sizes).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka import ConsumerRecord, TopicPartition

from streams import kafka
from streams.kafka import batches_to_end, partitions_of, read_to_end, topic_exists
from tests.support.topic_reader import FakeReader

P0, P1 = TopicPartition("t", 0), TopicPartition("t", 1)


def rec(tp: TopicPartition, offset: int) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        tp.topic, tp.partition, offset, 0, 0, None, b"v%d" % offset, None, 0, 0, ()
    )


async def _collect(reader: FakeReader) -> list[dict[Any, list[Any]]]:
    return [batch async for batch in batches_to_end(reader)]


def test_batches_stop_at_the_end_offsets_as_of_the_call_and_fetch_only_what_lags() -> None:
    reader = FakeReader({P0: [rec(P0, 0)], P1: [rec(P1, 0), rec(P1, 1)]}, idle_polls=True)
    batches = asyncio.run(_collect(reader))
    got = [r.offset for batch in batches for rs in batch.values() for r in rs]
    assert sorted(got) == [0, 0, 1]
    assert {} in batches  # an empty poll is handed on, not taken for the end
    assert reader.asked[-1] == (P1,)  # p0 was done: no longer fetched
    assert reader.positions == {P0: 1, P1: 2}


def test_an_empty_topic_yields_nothing_and_fetches_nothing() -> None:
    reader = FakeReader({P0: [], P1: []})
    assert asyncio.run(_collect(reader)) == []
    assert reader.asked == []


def test_read_to_end_returns_every_record_and_stops_the_reader(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reader = FakeReader({P0: [rec(P0, 0), rec(P0, 1)], P1: [rec(P1, 0)]})

    async def open_reader(bootstrap: str, topic: str) -> FakeReader:
        assert (bootstrap, topic) == ("b:9092", "t")
        return reader

    monkeypatch.setattr(kafka, "open_topic_reader", open_reader)
    records = asyncio.run(read_to_end("b:9092", "t"))
    assert sorted((r.partition, r.offset) for r in records) == [(0, 0), (0, 1), (1, 0)]
    assert reader.stopped


class FakeMetadata:
    """``partitions_for_topic`` knows a topic only after a metadata refresh."""

    def __init__(self, partitions: set[int] | None) -> None:
        self.partitions = partitions
        self.refreshed = False
        self._client = self

    async def force_metadata_update(self) -> None:
        self.refreshed = True

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        return self.partitions if self.refreshed else None


def test_partitions_of_refreshes_metadata_a_fresh_consumer_lacks() -> None:
    consumer = FakeMetadata({2, 0, 1})
    assert asyncio.run(partitions_of(consumer, "t")) == [0, 1, 2]
    assert consumer.refreshed


def test_partitions_of_a_missing_topic_is_empty() -> None:
    assert asyncio.run(partitions_of(FakeMetadata(None), "nope")) == []


class FakeProbe:
    instances: list[FakeProbe] = []

    def __init__(self, **config: Any) -> None:
        self.config = config
        self.stopped = False
        FakeProbe.instances.append(self)

    async def start(self) -> None: ...

    async def topics(self) -> set[str]:
        return {"line.webhooks.disabled", "line.requests"}

    async def stop(self) -> None:
        self.stopped = True


def test_topic_exists_asks_a_short_lived_consumer_that_commits_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(kafka, "AIOKafkaConsumer", FakeProbe)
    FakeProbe.instances.clear()
    assert asyncio.run(topic_exists("b:9092", "line.webhooks.disabled"))
    assert not asyncio.run(topic_exists("b:9092", "line.webhooks.disabledx"))
    assert [p.stopped for p in FakeProbe.instances] == [True, True]
    assert FakeProbe.instances[0].config == {
        "bootstrap_servers": "b:9092",
        "enable_auto_commit": False,
    }
