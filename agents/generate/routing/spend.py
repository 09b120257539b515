"""The spend ledger as a Faust table, so budgets survive restarts.

Keys are ``<scope>|p<partition>``: only the worker that owns source partition *p* ever writes a
key ending in ``|p<p>``, so concurrent workers never overwrite each other's totals, and a
scope's spend is the sum over partitions. Faust writes each key's changelog entry to the
partition of the event being processed, which is exactly that *p*.

A worker sees the keys of the partitions it holds. With one worker (the default) budgets are
exact; with several, each enforces the ceiling on the spend booked on its own partitions
(see docs/architecture.md).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def spend_key(scope: str, partition: int) -> str:
    return f"{scope}|p{partition}"


class TableSpendBook:
    def __init__(self, table: Any, partitions: int, current_partition: Callable[[], int]) -> None:
        self._table = table
        self._partitions = partitions
        self._current_partition = current_partition

    def spent(self, scope: str) -> float:
        return float(
            sum(self._table.get(spend_key(scope, p), 0.0) for p in range(self._partitions))
        )

    def add(self, scope: str, amount: float) -> None:
        key = spend_key(scope, self._current_partition())
        self._table[key] = float(self._table.get(key, 0.0)) + amount
