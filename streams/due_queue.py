"""Items held until they are due, soonest first: what a consumer holds back from a topic whose
records come due later (notify's webhook retries, deliver's deferred deliveries).

Plain data, no clock of its own: the caller says what "now" is, so tests need no sleeping.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(order=True)
class _Slot(Generic[T]):
    due: float
    seq: int
    item: T = field(compare=False)


class DueQueue(Generic[T]):
    """Items ordered by due time (seconds since the epoch), first written first among equals."""

    def __init__(self) -> None:
        self._heap: list[_Slot[T]] = []
        self._seq = itertools.count()

    def push(self, due: float, item: T) -> None:
        heapq.heappush(self._heap, _Slot(due, next(self._seq), item))

    def next_due(self) -> float | None:
        return self._heap[0].due if self._heap else None

    def pop_due(self, now: float) -> list[T]:
        """Every item due at ``now`` or before, soonest first."""
        due: list[T] = []
        while self._heap and self._heap[0].due <= now:
            due.append(heapq.heappop(self._heap).item)
        return due

    def pop_next(self, now: float) -> T | None:
        """The soonest item if it is due at ``now``, else None."""
        if self._heap and self._heap[0].due <= now:
            return heapq.heappop(self._heap).item
        return None

    def remove(self, drop: Callable[[T], bool]) -> int:
        """Forget the items ``drop`` selects (a revoked partition's); returns how many."""
        kept = [slot for slot in self._heap if not drop(slot.item)]
        removed = len(self._heap) - len(kept)
        if removed:
            heapq.heapify(kept)
            self._heap = kept
        return removed

    def clear(self) -> list[T]:
        """Forget every item and return them (for a revocation), soonest first."""
        items = [slot.item for slot in sorted(self._heap)]
        self._heap = []
        return items

    def __len__(self) -> int:
        return len(self._heap)
