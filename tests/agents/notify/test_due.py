"""The notify consumers' bookkeeping: due order, and commits only past finished jobs."""

from __future__ import annotations

import pytest

from agents.notify.due import (
    METADATA_LIMIT,
    DueQueue,
    PartitionProgress,
    decode_done,
    encode_done,
)


def test_nothing_moves_before_the_first_job_finishes() -> None:
    progress = PartitionProgress()
    assert progress.to_commit() is None  # nothing read
    assert progress.read(10)
    assert progress.read(11)
    assert progress.to_commit() == (10, "")  # where it started: harmless, never further
    progress.committed = (10, "")
    assert progress.to_commit() is None
    assert progress.pending == 2


def test_commit_stops_at_the_first_unfinished_job_and_names_the_finished_above() -> None:
    """A job far in the future holds the commit back, so a crash re-reads it (never loses it)."""
    progress = PartitionProgress()
    for offset in (10, 11, 12, 13):
        progress.read(offset)
    progress.finish(11)  # due soon, done; 10 waits for hours
    progress.finish(13)
    assert progress.to_commit() == (10, "done:1,3")
    progress.finish(10)
    assert progress.to_commit() == (12, "done:1")
    assert progress.pending == 2
    progress.finish(12)
    assert progress.to_commit() == (14, "")
    assert progress.pending == 0


def test_the_next_owner_skips_what_the_last_one_finished() -> None:
    """Without this, a rebalance re-ran every job finished out of order (a second call)."""
    first = PartitionProgress()
    for offset in (10, 11, 12):
        first.read(offset)
    first.finish(11)
    offset, metadata = first.to_commit() or (None, None)
    assert (offset, metadata) == (10, "done:1")
    assert offset is not None
    after = PartitionProgress(decode_done(offset, metadata))
    assert [after.read(o) for o in (10, 11, 12)] == [True, False, True]  # 11 is not run again
    assert after.to_commit() == (10, "done:1")  # carried on until the commit passes it
    after.finish(10)
    assert after.to_commit() == (12, "")


def test_finished_offsets_not_read_yet_are_handed_on() -> None:
    progress = PartitionProgress(decode_done(10, "done:5,6"))  # 15 and 16 were done
    assert progress.read(10)
    progress.finish(10)
    assert progress.to_commit() == (11, "done:4,5")  # a commit now must not forget them
    for offset in range(11, 15):
        assert progress.read(offset)
        progress.finish(offset)
    assert not progress.read(15)
    assert not progress.read(16)
    assert progress.to_commit() == (17, "")


def test_commits_only_move_forward() -> None:
    progress = PartitionProgress()
    progress.read(0)
    progress.finish(0)
    assert progress.to_commit() == (1, "")
    progress.committed = (1, "")
    assert progress.to_commit() is None
    progress.read(5)  # offsets may skip (compaction, transactions)
    progress.finish(5)
    assert progress.to_commit() == (6, "")


def test_an_offset_read_again_is_not_held_twice() -> None:
    progress = PartitionProgress()
    assert progress.read(3)
    assert not progress.read(3)
    assert not progress.read(2)
    progress.finish(3)
    assert progress.committable() == 4
    assert not progress.read(3)  # finished and gone from the pending list, still not again
    assert progress.read(4)


def test_done_metadata_round_trips_and_stays_under_the_broker_limit() -> None:
    assert encode_done(100, [101, 105, 99, 100]) == "done:1,5"
    assert decode_done(100, "done:1,5") == {101, 105}
    assert encode_done(100, []) == ""
    many = encode_done(0, range(1, 100_000))
    assert len(many) <= METADATA_LIMIT
    assert decode_done(0, many) == set(range(1, len(decode_done(0, many)) + 1))  # nearest kept


@pytest.mark.parametrize("metadata", [None, "", "someone else's", "done:", "done:1,x", "done:0"])
def test_metadata_not_ours_skips_nothing(metadata: str | None) -> None:
    assert decode_done(10, metadata) == frozenset()


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
