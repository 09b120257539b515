"""Bookkeeping of the notify consumers: which jobs are due when, and which offsets may be committed.

A notify consumer never waits inside its poll loop. It reads jobs as they come, keeps them in a
:class:`DueQueue` until their ``due_at``, and runs each on its own; it commits a partition only
up to the first job that is not finished (delivered, dead-lettered, or written to a retry
topic), naming the finished ones above it in the commit metadata, as :class:`PartitionProgress`
tells. A crash or a rebalance therefore re-reads what was waiting or running, loses nothing,
and runs nothing twice that it knew was done. Plain data structures, tested without a broker.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from streams.due_queue import DueQueue

__all__ = ["METADATA_LIMIT", "DueQueue", "PartitionProgress", "decode_done", "encode_done"]


#: The most commit metadata carries (the broker's ``offset.metadata.max.bytes`` is 4096).
METADATA_LIMIT = 4000
_METADATA_PREFIX = "done:"


def encode_done(base: int, done: Iterable[int], limit: int = METADATA_LIMIT) -> str:
    """Commit metadata naming the offsets above ``base`` whose jobs are finished.

    Offsets are written as distances from ``base``; when they do not all fit, the nearest
    are kept (a job left out may run again after a rebalance, the at-least-once default).
    """
    text = _METADATA_PREFIX
    for offset in sorted(o for o in done if o > base):
        part = f"{offset - base}" if text == _METADATA_PREFIX else f",{offset - base}"
        if len(text) + len(part) > limit:
            break
        text += part
    return "" if text == _METADATA_PREFIX else text


def decode_done(base: int, metadata: str | None) -> frozenset[int]:
    """The finished offsets :func:`encode_done` wrote; nothing for metadata it did not write."""
    if not metadata or not metadata.startswith(_METADATA_PREFIX):
        return frozenset()
    done: set[int] = set()
    for part in metadata[len(_METADATA_PREFIX) :].split(","):
        if not (part.isascii() and part.isdigit()) or int(part) < 1:
            return frozenset()  # not ours, or damaged: run everything again
        done.add(base + int(part))
    return frozenset(done)


class PartitionProgress:
    """The offsets read from one partition, in order, and which of them are finished.

    The partition is committed at its first pending offset, with the finished ones above it
    in the commit metadata (:func:`encode_done`): whoever reads the partition next starts at
    that offset and skips those, so a job due soon that finished before one due later is not
    run again after a rebalance or a restart. ``finished_before`` are the offsets the
    previous owner committed as finished.
    """

    def __init__(self, finished_before: frozenset[int] = frozenset()) -> None:
        self._read: deque[int] = deque()
        self._done: set[int] = set()
        self._next: int | None = None
        self._finished_before = finished_before
        self.committed: tuple[int, str] | None = None

    def read(self, offset: int) -> bool:
        """Note ``offset``; True when its job must run (not held already, not done before)."""
        if (self._read and offset <= self._read[-1]) or (
            self._next is not None and offset < self._next
        ):
            return False
        self._read.append(offset)
        if offset in self._finished_before:
            self._done.add(offset)
            return False
        return True

    def finish(self, offset: int) -> None:
        self._done.add(offset)

    @property
    def pending(self) -> int:
        """Jobs read and not finished yet (waiting, running, or finished out of order)."""
        return len(self._read)

    def committable(self) -> int | None:
        """The first offset not finished (None before anything was read)."""
        while self._read and self._read[0] in self._done:
            offset = self._read.popleft()
            self._done.discard(offset)
            self._next = offset + 1
        return self._read[0] if self._read else self._next

    def to_commit(self) -> tuple[int, str] | None:
        """``(offset, metadata)`` to commit now, or None when it would change nothing."""
        offset = self.committable()
        if offset is None:
            return None
        # the previous owner's finished offsets not read yet must be handed on too
        point = (offset, encode_done(offset, self._done | self._finished_before))
        if self.committed is not None and (point[0] < self.committed[0] or point == self.committed):
            return None
        return point
