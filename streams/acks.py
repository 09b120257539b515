"""Waiting for the broker's acknowledgement of a Faust send without cancelling the send.

Faust answers each send with an asyncio future (``FutureMessage``) whose result it sets when
the broker acknowledges the record. Awaited directly by a task that is then cancelled (a
rebalance, a stop, a timeout around the wait) that future is cancelled too: the broker's
answer then fails to be set on it (an ``InvalidStateError`` from Faust's callback) and the
message's own callback is skipped, which for a changelog write is the table's bookkeeping
(``streams.acked_store`` writes a value to disk only from it). The record is written either
way; only the wait should end.
"""

from __future__ import annotations

import asyncio
from typing import TypeVar

__all__ = ["acknowledged"]

T = TypeVar("T")


async def acknowledged(delivery: asyncio.Future[T]) -> T:
    """``delivery``'s result (the broker's acknowledgement); cancelling the caller leaves it be."""
    return await asyncio.shield(delivery)
