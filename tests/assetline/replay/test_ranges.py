"""Replay bounds: parsing, clamping into what a partition holds, and time lookups."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

import pytest
from aiokafka import TopicPartition

from assetline.replay.ranges import (
    OffsetBound,
    PartitionRange,
    RangeError,
    TimeBound,
    clamp_ranges,
    parse_bound,
    resolve,
)


def test_digits_are_an_offset() -> None:
    assert parse_bound("120") == OffsetBound(120)
    assert parse_bound(" 0 ") == OffsetBound(0)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-01-31T12:00:00Z", datetime(2025, 1, 31, 12, tzinfo=UTC)),
        ("2025-01-31T12:00:00", datetime(2025, 1, 31, 12, tzinfo=UTC)),  # naive means UTC
        ("2025-01-31T13:00:00+01:00", datetime(2025, 1, 31, 12, tzinfo=UTC)),
        ("2025-01-31", datetime(2025, 1, 31, tzinfo=UTC)),
    ],
)
def test_iso_times(text: str, expected: datetime) -> None:
    bound = parse_bound(text)
    assert isinstance(bound, TimeBound)
    assert bound.at == expected
    assert bound.millis == round(expected.timestamp() * 1000)


@pytest.mark.parametrize("text", ["-3", "yesterday", "", "12:00"])
def test_rejects_what_is_neither(text: str) -> None:
    with pytest.raises(RangeError):
        parse_bound(text)


def test_offset_with_zone_keeps_the_instant() -> None:
    bound = parse_bound("2025-01-31T12:00:00.250-02:00")
    assert isinstance(bound, TimeBound)
    assert bound.at.astimezone(timezone(timedelta(0))) == datetime(
        2025, 1, 31, 14, 0, 0, 250000, tzinfo=UTC
    )


def test_clamp_defaults_to_everything_up_to_the_end_now() -> None:
    out = clamp_ranges([1, 0], {0: 0, 1: 5}, {0: 10, 1: 7}, {}, {})
    assert out == [PartitionRange(0, 0, 10), PartitionRange(1, 5, 7)]
    assert [r.count for r in out] == [10, 2]


def test_clamp_keeps_offsets_inside_the_log() -> None:
    # Offset 3 is below partition 1's log start (deleted by retention); 50 is past every end.
    out = clamp_ranges([0, 1], {0: 0, 1: 5}, {0: 10, 1: 7}, {0: 3, 1: 3}, {0: 50, 1: 50})
    assert out == [PartitionRange(0, 3, 10), PartitionRange(1, 5, 7)]


def test_no_record_after_a_time_means_the_end() -> None:
    out = clamp_ranges([0], {0: 2}, {0: 9}, {0: None}, {0: None})
    assert out == [PartitionRange(0, 9, 9)]
    assert out[0].count == 0


def test_stop_before_start_is_empty_not_negative() -> None:
    (r,) = clamp_ranges([0], {0: 0}, {0: 9}, {0: 6}, {0: 4})
    assert (r.start, r.stop, r.count) == (6, 6, 0)


@dataclass
class _Found:
    offset: int


class FakeLookup:
    """Partition 0: offsets 0..9 at t=1000..1009 ms; partition 1: 4..6 at t=1005..1007."""

    times = {0: {o: 1000 + o for o in range(10)}, 1: {4: 1005, 5: 1006, 6: 1007}}

    async def beginning_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: min(self.times[tp.partition]) for tp in tps}

    async def end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: max(self.times[tp.partition]) + 1 for tp in tps}

    async def offsets_for_times(
        self, timestamps: dict[TopicPartition, int]
    ) -> dict[TopicPartition, object | None]:
        out: dict[TopicPartition, object | None] = {}
        for tp, ms in timestamps.items():
            hits = [o for o, t in sorted(self.times[tp.partition].items()) if t >= ms]
            out[tp] = _Found(hits[0]) if hits else None
        return out


def _at(ms: int) -> TimeBound:
    return TimeBound(datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms))


def test_millis_are_exact() -> None:
    assert _at(1007).millis == 1007
    assert parse_bound("2025-01-31T12:00:00.007Z").millis % 1000 == 7


def test_resolve_times_per_partition_half_open() -> None:
    out = asyncio.run(resolve(FakeLookup(), "t", [0, 1], _at(1006), _at(1008)))
    assert out == [PartitionRange(0, 6, 8), PartitionRange(1, 5, 7)]


def test_resolve_time_after_everything_is_empty() -> None:
    out = asyncio.run(resolve(FakeLookup(), "t", [0, 1], _at(5000), None))
    assert [r.count for r in out] == [0, 0]


def test_resolve_mixes_an_offset_and_a_time() -> None:
    out = asyncio.run(resolve(FakeLookup(), "t", [0, 1], OffsetBound(5), _at(1007)))
    assert out == [PartitionRange(0, 5, 7), PartitionRange(1, 5, 6)]


def test_resolve_one_partition_and_refuse_a_missing_one() -> None:
    out = asyncio.run(resolve(FakeLookup(), "t", [0, 1], OffsetBound(0), None, only=1))
    assert out == [PartitionRange(1, 4, 7)]
    with pytest.raises(RangeError, match="no partition 2"):
        asyncio.run(resolve(FakeLookup(), "t", [0, 1], OffsetBound(0), None, only=2))
