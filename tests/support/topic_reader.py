"""Test helpers: a fake assigned, group-less topic reader (the part of ``AIOKafkaConsumer``
that ``streams.kafka.batches_to_end`` and the readers built on it use)."""

from __future__ import annotations

from typing import Any

from aiokafka import TopicPartition


class FakeReader:
    """Partitions holding fixed records: ``getmany`` hands out one record of the first lagging
    partition asked for; with ``idle_polls``, every other call is an empty (timed-out) poll."""

    def __init__(self, records: dict[TopicPartition, list[Any]], *, idle_polls: bool = False):
        self.records = records
        self.positions = dict.fromkeys(records, 0)
        self.asked: list[tuple[TopicPartition, ...]] = []
        self.stopped = False
        self.idle_polls = idle_polls
        self._idle = False

    def assignment(self) -> set[TopicPartition]:
        return set(self.records)

    async def end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: len(self.records[tp]) for tp in tps}

    async def position(self, tp: TopicPartition) -> int:
        return self.positions[tp]

    async def getmany(self, *tps: TopicPartition, timeout_ms: int = 0) -> dict[Any, list[Any]]:
        self.asked.append(tps)
        if self.idle_polls:
            self._idle = not self._idle
            if self._idle:
                return {}
        for tp in sorted(tps or self.records):
            at = self.positions[tp]
            if at < len(self.records[tp]):
                self.positions[tp] = at + 1
                return {tp: [self.records[tp][at]]}
        return {}

    async def stop(self) -> None:
        self.stopped = True
