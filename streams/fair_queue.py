"""Waiting work in the order a shared line owes it: higher priority first, then fair shares.

Within one priority, flows (tenants) share the service by weighted fair queuing: each item gets
a virtual finish tag ``max(V, the flow's last tag) + 1 / weight`` when it arrives, and items leave
in tag order (self-clocked fair queuing, Golestani 1994). A flow that queued 10,000 items has
tags far ahead of the clock ``V``, so a flow that arrives later is served next, and from then on
both are served in proportion to their weights; a flow alone is served in arrival order.

Plain data, no awaiting: the stage pool and the providers' in-flight limits both order their
waiters with it.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Generic, NamedTuple, TypeVar

T = TypeVar("T")

#: The weight of a flow the weights do not name.
DEFAULT_WEIGHT = 1.0


class _Entry(NamedTuple, Generic[T]):
    """A queued item: a tuple, so the heap compares ``(tag, seq)`` in C (``seq`` is unique,
    so ``item`` is never compared); a dataclass built two tuples per comparison and kept a
    ``__dict__`` per waiting item."""

    tag: float
    seq: int
    item: T
    flow: str


@dataclass
class _Lane(Generic[T]):
    """One priority: its heap and its virtual clock."""

    heap: list[_Entry[T]] = field(default_factory=list)
    clock: float = 0.0
    last_tag: dict[str, float] = field(default_factory=dict)
    #: Items per flow still queued, so a flow that emptied forgets its tag (no memory leak).
    queued: dict[str, int] = field(default_factory=dict)


class FairQueue(Generic[T]):
    """Priority classes, each a weighted fair queue across flows.

    ``weight(flow)`` gives a flow's share (> 0); unnamed flows weigh :data:`DEFAULT_WEIGHT`.
    """

    def __init__(self, weight: Callable[[str], float] | None = None) -> None:
        self._weight = weight or (lambda _flow: DEFAULT_WEIGHT)
        self._lanes: dict[int, _Lane[T]] = {}
        self._seq = itertools.count()
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def push(self, item: T, *, priority: int = 0, flow: str = "") -> None:
        lane = self._lanes.get(priority)
        if lane is None:
            lane = self._lanes[priority] = _Lane()
        weight = self._weight(flow)
        if not weight > 0:
            weight = DEFAULT_WEIGHT
        start = max(lane.clock, lane.last_tag.get(flow, 0.0))
        tag = start + 1.0 / weight
        lane.last_tag[flow] = tag
        lane.queued[flow] = lane.queued.get(flow, 0) + 1
        heapq.heappush(lane.heap, _Entry(tag, next(self._seq), item, flow))
        self._size += 1

    def pop(self) -> T:
        """The next item owed service; IndexError when empty."""
        for priority in sorted(self._lanes, reverse=True):
            lane = self._lanes[priority]
            if lane.heap:
                entry = heapq.heappop(lane.heap)
                lane.clock = entry.tag
                self._size -= 1
                self._forget(lane, entry.flow)
                return entry.item
        raise IndexError("pop from an empty FairQueue")

    def top_priority(self) -> int | None:
        """The priority of the item :meth:`pop` would return; None when empty."""
        return max((p for p, lane in self._lanes.items() if lane.heap), default=None)

    def pop_last(self, below: int) -> T | None:
        """Take out the item that would be served last among those of a priority under
        ``below``; None when there is none. For a bounded queue that must make room for a more
        urgent item (a destination's waiting deliveries, streams.stage_pool). Linear."""
        for priority in sorted(self._lanes):
            if priority >= below:
                break
            lane = self._lanes[priority]
            if lane.heap:
                last = max(range(len(lane.heap)), key=lambda i: lane.heap[i][:2])
                entry = lane.heap.pop(last)
                heapq.heapify(lane.heap)
                self._size -= 1
                self._forget(lane, entry.flow)
                return entry.item
        return None

    def remove_if(self, doomed: Callable[[T], bool]) -> list[T]:
        """Take out every item ``doomed`` picks (say, events of an older consumer generation);
        returns them. Linear, for rare events only."""
        removed: list[T] = []
        for lane in self._lanes.values():
            kept = []
            for entry in lane.heap:
                if doomed(entry.item):
                    removed.append(entry.item)
                    self._forget(lane, entry.flow)
                else:
                    kept.append(entry)
            if len(kept) != len(lane.heap):
                heapq.heapify(kept)
                lane.heap = kept
        self._size -= len(removed)
        return removed

    def __iter__(self) -> Iterator[T]:
        """Every queued item, in no particular order."""
        for lane in self._lanes.values():
            for entry in lane.heap:
                yield entry.item

    @staticmethod
    def _forget(lane: _Lane[T], flow: str) -> None:
        left = lane.queued.get(flow, 0) - 1
        if left > 0:
            lane.queued[flow] = left
        else:
            lane.queued.pop(flow, None)
            # Its tag is at or behind the clock now, or the flow was removed: a newcomer with
            # the same name starts at the clock like anyone else.
            lane.last_tag.pop(flow, None)
