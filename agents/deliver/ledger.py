"""Exactly one completion per (request, attempt), even when Kafka redelivers.

The ledger is a Faust table whose changelog *is* the ``.completed`` topic: writing a completion
into the table is what publishes it, and recovering the table after a crash re-reads exactly the
completions that reached Kafka. So a redelivered approved/rejected event finds its completion
already in the ledger, whether the crash came before or after the offset commit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import faust

from schemas.records import AssetCompleted
from streams.codecs import CodecError


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


class LedgerTable(faust.Table[bytes, bytes]):
    """The completions table, whose changelog records can carry headers.

    Faust writes a table's changelog itself and has no way to pass headers, so :meth:`publish`
    hands them to the one method that sends. Setting an item calls ``send_changelog``
    synchronously, so the headers cannot be picked up by another write in between.
    """

    _next_headers: list[tuple[str, bytes]] | None = None

    def publish(self, key: bytes, value: bytes, headers: list[tuple[str, bytes]]) -> None:
        """``self[key] = value``, with ``headers`` on the changelog record it writes."""
        self._next_headers = headers
        try:
            self[key] = value
        finally:
            self._next_headers = None

    def send_changelog(
        self,
        partition: int | None,
        key: Any,
        value: Any,
        key_serializer: Any = None,
        value_serializer: Any = None,
    ) -> Any:
        headers, self._next_headers = self._next_headers, None
        return self.changelog_topic.send_soon(
            key=key,
            value=value,
            partition=partition,
            headers=headers,
            key_serializer=key_serializer or self.key_serializer,
            value_serializer=value_serializer or self.value_serializer,
            callback=self._on_changelog_sent,
            eager_partitioning=True,  # the partition is known when the callback runs
        )
