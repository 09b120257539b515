"""Bookkeeping of the notify consumers: which jobs are due when, and which offsets may be committed.

A notify consumer never waits inside its poll loop. It reads jobs as they come, keeps them in a
:class:`DueQueue` until their ``due_at``, and runs each on its own; it commits a partition only
up to the first job that is not finished (delivered, dead-lettered, or written to a retry
topic), as :class:`PartitionProgress` tells. A crash or a rebalance therefore re-reads what was
waiting or running, and loses nothing. Both are plain data structures, tested without a broker.
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")


class PartitionProgress:
    """The offsets read from one partition, in order, and which of them are finished.

    :meth:`committable` is the offset to commit: the first one still pending, or one past the
    last finished when nothing is pending; None until the first job finishes.
    """

    def __init__(self) -> None:
        self._read: deque[int] = deque()
        self._done: set[int] = set()
        self._next: int | None = None
        self.committed: int | None = None

    def read(self, offset: int) -> bool:
        """Note ``offset`` as pending; False when it is not past the last one (read again)."""
        if (self._read and offset <= self._read[-1]) or (
            self._next is not None and offset < self._next
        ):
            return False
        self._read.append(offset)
        return True

    def finish(self, offset: int) -> None:
        self._done.add(offset)

    @property
    def pending(self) -> int:
        """Jobs read and not finished yet (waiting, running, or finished out of order)."""
        return len(self._read)

    def committable(self) -> int | None:
        while self._read and self._read[0] in self._done:
            offset = self._read.popleft()
            self._done.discard(offset)
            self._next = offset + 1
        return self._next

    def to_commit(self) -> int | None:
        """The offset to commit now, or None when it would not move the committed one."""
        offset = self.committable()
        if offset is None or (self.committed is not None and offset <= self.committed):
            return None
        return offset


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

    def remove(self, drop: Callable[[T], bool]) -> int:
        """Forget the items ``drop`` selects (a revoked partition's); returns how many."""
        kept = [slot for slot in self._heap if not drop(slot.item)]
        removed = len(self._heap) - len(kept)
        if removed:
            heapq.heapify(kept)
            self._heap = kept
        return removed

    def __len__(self) -> int:
        return len(self._heap)
