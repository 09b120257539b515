"""Replay bounds (an offset or an ISO time) resolved to an offset range per partition.

Ranges are half-open, ``[start, stop)``, for offsets and times alike: a time bound means "the
first record written at or after it" (what ``offsets_for_times`` answers), so ``--from T1 --to
T2`` then ``--from T2 --to T3`` replay every record once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from aiokafka import TopicPartition

from schemas.errors import AssetlineError

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class RangeError(AssetlineError, ValueError):
    """A bound that cannot be understood, or a partition the topic does not have."""

    code = "replay.bad_range"


@dataclass(frozen=True)
class OffsetBound:
    offset: int


@dataclass(frozen=True)
class TimeBound:
    at: datetime

    @property
    def millis(self) -> int:
        """Exact integer milliseconds (float seconds * 1000 can land one below)."""
        return (self.at - _EPOCH) // timedelta(milliseconds=1)


Bound = OffsetBound | TimeBound


@dataclass(frozen=True)
class PartitionRange:
    """Offsets ``[start, stop)`` of one partition; empty when ``stop <= start``."""

    partition: int
    start: int
    stop: int

    @property
    def count(self) -> int:
        """Upper bound on records (gaps such as transaction markers make it exact or more)."""
        return max(0, self.stop - self.start)


def parse_bound(text: str) -> Bound:
    """``42`` is an offset; anything else must be an ISO-8601 time (naive means UTC)."""
    text = text.strip()
    if text.isdigit():
        return OffsetBound(int(text))
    if text.startswith("-") and text[1:].isdigit():
        raise RangeError(f"an offset cannot be negative: {text}")
    try:
        at = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    except ValueError:
        raise RangeError(
            f"not an offset or an ISO time: {text!r} (e.g. 120 or 2025-01-31T12:00:00Z)"
        ) from None
    return TimeBound(at if at.tzinfo is not None else at.replace(tzinfo=UTC))


def clamp_ranges(
    partitions: Iterable[int],
    beginnings: Mapping[int, int],
    ends: Mapping[int, int],
    starts: Mapping[int, int | None],
    stops: Mapping[int, int | None],
) -> list[PartitionRange]:
    """Pure core of :func:`resolve`: clamp wanted offsets into what each partition holds.

    ``None`` in ``starts``/``stops`` means "no record at or after that time", i.e. the end.
    A missing stop means the end offset when the ranges were resolved, so a replay into the
    same topic never chases its own output.
    """
    out = []
    for p in sorted(partitions):
        begin, end = beginnings[p], ends[p]
        start = starts.get(p, begin)
        stop = stops.get(p, end)
        start = end if start is None else min(max(start, begin), end)
        stop = end if stop is None else min(max(stop, begin), end)
        out.append(PartitionRange(p, start, max(start, stop)))
    return out


class OffsetLookup(Protocol):
    """The part of :class:`aiokafka.AIOKafkaConsumer` that resolution needs."""

    async def beginning_offsets(
        self, partitions: list[TopicPartition]
    ) -> dict[TopicPartition, int]: ...

    async def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]: ...

    async def offsets_for_times(
        self, timestamps: dict[TopicPartition, int]
    ) -> dict[TopicPartition, object | None]: ...


async def _wanted(
    lookup: OffsetLookup, tps: list[TopicPartition], bound: Bound | None
) -> dict[int, int | None]:
    if bound is None:
        return {}
    if isinstance(bound, OffsetBound):
        return {tp.partition: bound.offset for tp in tps}
    found = await lookup.offsets_for_times({tp: bound.millis for tp in tps})
    return {tp.partition: getattr(found.get(tp), "offset", None) for tp in tps}


async def resolve(
    lookup: OffsetLookup,
    topic: str,
    partitions: Iterable[int],
    start: Bound | None,
    stop: Bound | None,
    only: int | None = None,
) -> list[PartitionRange]:
    """Per-partition ranges of ``topic`` for the bounds (``None``: beginning / current end)."""
    known = sorted(partitions)
    if only is not None:
        if only not in known:
            raise RangeError(f"{topic} has no partition {only} (it has {len(known)})")
        known = [only]
    tps = [TopicPartition(topic, p) for p in known]
    beginnings = {tp.partition: o for tp, o in (await lookup.beginning_offsets(tps)).items()}
    ends = {tp.partition: o for tp, o in (await lookup.end_offsets(tps)).items()}
    starts = await _wanted(lookup, tps, start)
    stops = await _wanted(lookup, tps, stop)
    return clamp_ranges(known, beginnings, ends, starts, stops)
