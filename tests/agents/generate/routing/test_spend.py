"""The spend ledger's key scheme: one writer per key, totals summed over partitions."""

from __future__ import annotations

import pytest

from agents.generate.routing.spend import TableSpendBook, spend_key


def test_spend_is_booked_under_the_current_partition_and_summed_over_all() -> None:
    table: dict[str, float] = {}
    partition = 0
    book = TableSpendBook(table, partitions=3, current_partition=lambda: partition)
    book.add("campaign:spring", 0.5)
    partition = 2
    book.add("campaign:spring", 0.25)
    book.add("campaign:spring", 0.25)
    assert table == {spend_key("campaign:spring", 0): 0.5, spend_key("campaign:spring", 2): 0.5}
    assert book.spent("campaign:spring") == pytest.approx(1.0)
    assert book.spent("campaign:other") == 0.0


def test_keys_of_partitions_beyond_the_count_are_not_read() -> None:
    table = {spend_key("tenant:acme", 5): 9.0, spend_key("tenant:acme", 1): 1.0}
    book = TableSpendBook(table, partitions=3, current_partition=lambda: 0)
    assert book.spent("tenant:acme") == pytest.approx(1.0)
