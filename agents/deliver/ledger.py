"""Exactly one completion per (request, attempt), even when Kafka redelivers.

The ledger is a Faust table whose changelog *is* the ``.completed`` topic: writing a completion
into the table is what publishes it, and recovering the table after a crash re-reads exactly the
completions that reached Kafka. So a redelivered approved/rejected event finds its completion
already in the ledger, whether the crash came before or after the offset commit.
"""

from __future__ import annotations

from collections.abc import Callable

from streams.records import AssetCompleted


def already_completed(
    previous: bytes | None, attempt: int, decode: Callable[[bytes], AssetCompleted]
) -> bool:
    """True when a completion for this attempt (or a later one) was already published."""
    if previous is None:
        return False
    return decode(previous).attempt >= attempt
