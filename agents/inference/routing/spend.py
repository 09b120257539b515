"""The spend ledger as a Faust table, so budgets survive restarts.

Keys are ``<scope>|p<partition>``: only the worker that owns source partition *p* ever writes a
key ending in ``|p<p>``, so concurrent workers never overwrite each other's totals, and a
scope's spend is the sum over partitions. Faust writes each key's changelog entry to the
partition of the event being processed, which is exactly that *p*.

Generation and the validate stage's judge each book into a lane of their own (keys
``<scope>|<lane>|p<partition>``, generation keeping the lane-less keys it always wrote), with a
table and changelog topic per lane: Faust assigns partitions alike only to topics the same
workers subscribe to, so a lane's changelog must be read exactly by the workers running its
stage (``.spend`` with ``.requests``, ``.spend.judge`` with ``.raw``), also when the stages run
in different workers. A budget counts every lane.

The table holds only the partitions this worker owns, so other workers' spend comes from a
:class:`SpendView`, which follows every partition of the changelog topic. Totals only grow, so
for each key the larger of the two readings is the freshest one.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

log = logging.getLogger(__name__)


#: Who booked the spend: generation (the keys older workers wrote) and the AI judge.
GENERATE_LANE: Final = ""
JUDGE_LANE: Final = "judge"
#: Shadow versions' generations (agents/generate/shadow.py): mirrors, paid for, never delivered.
SHADOW_LANE: Final = "shadow"
LANES: Final = (GENERATE_LANE, JUDGE_LANE, SHADOW_LANE)


def spend_key(scope: str, partition: int, lane: str = GENERATE_LANE) -> str:
    return f"{scope}|{lane}|p{partition}" if lane else f"{scope}|p{partition}"


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
    """Spend per scope over every lane and partition; writes go to the booking lane's table.

    ``tables`` maps a lane to its Faust table (only the lanes whose stage runs in this
    worker); the other lanes are read from ``view`` alone.
    """

    def __init__(
        self,
        tables: Mapping[str, Any],
        partitions: int,
        current_partition: Callable[[], int],
        view: Mapping[str, float] | None = None,
    ) -> None:
        self._tables = tables
        self._partitions = partitions
        self._current_partition = current_partition
        self._view = view if view is not None else {}

    def spent(self, scope: str) -> float:
        total = 0.0
        for lane in LANES:
            table = self._tables.get(lane, {})
            for p in range(self._partitions):
                key = spend_key(scope, p, lane)
                total += max(float(table.get(key, 0.0)), self._view.get(key, 0.0))
        return total

    def add(self, scope: str, amount: float, lane: str = GENERATE_LANE) -> None:
        table = self._tables.get(lane)
        if table is None:
            raise RuntimeError(f"no spend table for lane {lane!r} in this worker")
        key = spend_key(scope, self._current_partition(), lane)
        current = max(float(table.get(key, 0.0)), self._view.get(key, 0.0))
        table[key] = current + amount
