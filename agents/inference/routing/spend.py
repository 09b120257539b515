"""The spend ledger as a Faust table, so budgets survive restarts.

Keys are ``<scope>|p<partition>``: only the worker that owns source partition *p* ever writes a
key ending in ``|p<p>``, so concurrent workers never overwrite each other's totals, and a
scope's spend is the sum over partitions. Faust writes each key's changelog entry to the
partition of the event being processed, which is exactly that *p*.

The table holds only the partitions this worker owns, so other workers' spend comes from a
:class:`SpendView`, which follows every partition of the changelog topic. Totals only grow, so
for each key the larger of the two readings is the freshest one.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

log = logging.getLogger(__name__)


def spend_key(scope: str, partition: int) -> str:
    return f"{scope}|p{partition}"


class SpendView:
    """Latest total per key from the changelog records of every worker."""

    def __init__(self) -> None:
        self.totals: dict[str, float] = {}

    def apply(self, records: Iterable[tuple[bytes | None, bytes | None]]) -> int:
        """Fold changelog records (JSON key, JSON value) in; unreadable ones are skipped."""
        applied = 0
        for key, value in records:
            try:
                name, total = json.loads(key or b""), float(json.loads(value or b""))
            except (ValueError, TypeError):
                log.warning("skipping unreadable spend record %r", key)
                continue
            if isinstance(name, str) and total > self.totals.get(name, 0.0):
                self.totals[name] = total
                applied += 1
        return applied


class TableSpendBook:
    def __init__(
        self,
        table: Any,
        partitions: int,
        current_partition: Callable[[], int],
        view: Mapping[str, float] | None = None,
    ) -> None:
        self._table = table
        self._partitions = partitions
        self._current_partition = current_partition
        self._view = view if view is not None else {}

    def spent(self, scope: str) -> float:
        total = 0.0
        for p in range(self._partitions):
            key = spend_key(scope, p)
            total += max(float(self._table.get(key, 0.0)), self._view.get(key, 0.0))
        return total

    def add(self, scope: str, amount: float) -> None:
        key = spend_key(scope, self._current_partition())
        current = max(float(self._table.get(key, 0.0)), self._view.get(key, 0.0))
        self._table[key] = current + amount
