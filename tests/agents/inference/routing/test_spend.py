"""The spend ledger's key scheme: one writer per key, totals summed over partitions."""

from __future__ import annotations

import json

import pytest

from agents.inference.routing.spend import JUDGE_LANE, SpendView, TableSpendBook, spend_key


def test_spend_is_booked_under_the_current_partition_and_summed_over_all() -> None:
    table: dict[str, float] = {}
    partition = 0
    book = TableSpendBook({"": table}, partitions=3, current_partition=lambda: partition)
    book.add("campaign:spring", 0.5)
    partition = 2
    book.add("campaign:spring", 0.25)
    book.add("campaign:spring", 0.25)
    assert table == {spend_key("campaign:spring", 0): 0.5, spend_key("campaign:spring", 2): 0.5}
    assert book.spent("campaign:spring") == pytest.approx(1.0)
    assert book.spent("campaign:other") == 0.0


def test_keys_of_partitions_beyond_the_count_are_not_read() -> None:
    table = {spend_key("tenant:acme", 5): 9.0, spend_key("tenant:acme", 1): 1.0}
    book = TableSpendBook({"": table}, partitions=3, current_partition=lambda: 0)
    assert book.spent("tenant:acme") == pytest.approx(1.0)


def test_the_view_keeps_the_largest_total_and_skips_garbage() -> None:
    view = SpendView()
    applied = view.apply(
        [
            (b'"campaign:spring|p1"', b"0.5"),
            (b'"campaign:spring|p1"', b"0.25"),  # an older record replayed late
            (b"not json", b"1.0"),
            (b'"campaign:spring|p2"', None),
        ]
    )
    assert applied == 1
    assert view.totals == {"campaign:spring|p1": 0.5}


def test_other_workers_spend_counts_and_own_writes_continue_from_the_freshest() -> None:
    table: dict[str, float] = {spend_key("campaign:spring", 0): 1.0}
    view = SpendView()
    view.apply(
        [
            (json.dumps(spend_key("campaign:spring", 1)).encode(), b"2.0"),  # another worker
            (json.dumps(spend_key("campaign:spring", 0)).encode(), b"0.5"),  # our older total
        ]
    )
    book = TableSpendBook({"": table}, 3, current_partition=lambda: 1, view=view.totals)
    assert book.spent("campaign:spring") == pytest.approx(3.0)
    book.add("campaign:spring", 0.25)  # partition 1 just moved to us: continue from 2.0
    assert table[spend_key("campaign:spring", 1)] == pytest.approx(2.25)


def test_lanes_have_keys_of_their_own_and_a_budget_counts_every_lane() -> None:
    """Generation keeps its lane-less keys; the judge books under ``|judge|`` keys."""
    assert spend_key("campaign:spring", 2) == "campaign:spring|p2"
    assert spend_key("campaign:spring", 2, JUDGE_LANE) == "campaign:spring|judge|p2"
    generated: dict[str, float] = {}
    judged: dict[str, float] = {}
    book = TableSpendBook({"": generated, JUDGE_LANE: judged}, 3, current_partition=lambda: 2)
    book.add("campaign:spring", 1.0)
    book.add("campaign:spring", 0.25, JUDGE_LANE)
    book.add("campaign:spring", 0.25, JUDGE_LANE)
    assert generated == {"campaign:spring|p2": 1.0}
    assert judged == {"campaign:spring|judge|p2": 0.5}
    assert book.spent("campaign:spring") == pytest.approx(1.5)


def test_a_lane_whose_stage_runs_elsewhere_is_read_from_the_view() -> None:
    """A generate-only worker has no judge table: the judge's spend comes from the follower."""
    view = SpendView()
    view.apply([(json.dumps(spend_key("tenant:acme", 0, JUDGE_LANE)).encode(), b"0.75")])
    book = TableSpendBook({"": {}}, 3, current_partition=lambda: 0, view=view.totals)
    book.add("tenant:acme", 1.0)
    assert book.spent("tenant:acme") == pytest.approx(1.75)
    with pytest.raises(RuntimeError, match="no spend table for lane 'judge'"):
        book.add("tenant:acme", 0.1, JUDGE_LANE)
