"""Exactly one completion per (request, attempt), even when Kafka redelivers.

The ledger is a Faust table whose changelog *is* the ``.completed`` topic: writing a completion
into the table is what publishes it, and recovering the table after a crash re-reads exactly the
completions that reached Kafka. So a redelivered approved/rejected event finds its completion
already in the ledger, whether the crash came before or after the offset commit.
"""

from __future__ import annotations

from collections.abc import Callable

from streams.codecs import CodecError
from streams.records import AssetCompleted


def already_completed(
    previous: bytes | None, attempt: int, decode: Callable[[bytes], AssetCompleted]
) -> bool:
    """True when a completion for this attempt (or a later one) was already published.

    An entry this worker cannot decode (say, written by a newer version during a rolling
    upgrade) still proves a completion exists, so it counts as completed: a second completion
    would break the promise downstream systems rely on.
    """
    if previous is None:
        return False
    try:
        return decode(previous).attempt >= attempt
    except CodecError:
        return True
