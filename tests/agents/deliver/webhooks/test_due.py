"""The notify consumers' bookkeeping: due order, and commits only past finished jobs."""

from __future__ import annotations

from agents.deliver.webhooks.due import DueQueue, PartitionProgress


def test_nothing_is_committable_before_the_first_job_finishes() -> None:
    progress = PartitionProgress()
    progress.read(10)
    progress.read(11)
    assert progress.committable() is None
    assert progress.pending == 2


def test_commit_stops_at_the_first_unfinished_job() -> None:
    """A job far in the future holds the commit back, so a crash re-reads it (never loses it)."""
    progress = PartitionProgress()
    for offset in (10, 11, 12, 13):
        progress.read(offset)
    progress.finish(11)  # due soon, done; 10 waits for hours
    progress.finish(12)
    assert progress.committable() is None
    progress.finish(10)
    assert progress.committable() == 13
    assert progress.pending == 1
    progress.finish(13)
    assert progress.committable() == 14
    assert progress.pending == 0


def test_to_commit_only_moves_forward() -> None:
    progress = PartitionProgress()
    progress.read(0)
    progress.finish(0)
    assert progress.to_commit() == 1
    progress.committed = 1
    assert progress.to_commit() is None
    progress.read(5)  # offsets may skip (compaction, transactions)
    progress.finish(5)
    assert progress.to_commit() == 6


def test_an_offset_read_again_is_not_held_twice() -> None:
    progress = PartitionProgress()
    assert progress.read(3)
    assert not progress.read(3)
    assert not progress.read(2)
    progress.finish(3)
    assert progress.committable() == 4
    assert not progress.read(3)  # finished and gone from the pending list, still not again
    assert progress.read(4)


def test_due_queue_pops_what_is_due_soonest_first_and_equals_in_write_order() -> None:
    queue: DueQueue[str] = DueQueue()
    queue.push(330.0, "slow tenant")  # written first, due last
    queue.push(2.0, "b")
    queue.push(2.0, "c")
    queue.push(1.0, "a")
    assert queue.next_due() == 1.0
    assert queue.pop_due(0.5) == []
    assert queue.pop_due(2.0) == ["a", "b", "c"]
    assert len(queue) == 1
    assert queue.next_due() == 330.0


def test_due_queue_forgets_a_revoked_partitions_jobs() -> None:
    queue: DueQueue[tuple[int, str]] = DueQueue()
    for due, item in ((3.0, (0, "x")), (1.0, (1, "y")), (2.0, (0, "z"))):
        queue.push(due, item)
    assert queue.remove(lambda item: item[0] == 0) == 2
    assert queue.pop_due(10.0) == [(1, "y")]
    assert queue.next_due() is None
