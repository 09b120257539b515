"""Exactly one completion per (request, attempt), even when Kafka redelivers.

The ledger is a Faust table whose changelog *is* the ``.completed`` topic: writing a completion
into the table is what publishes it, and recovering the table after a crash re-reads exactly the
completions that reached Kafka. So a redelivered approved/rejected event finds its completion
already in the ledger, whether the crash came before or after the offset commit.

Durability (issue 14). The ledger has to outlive topic retention and must not make start-up
grow with history. Two changes do that, and neither adds a second write:

- ``.completed`` is compacted (``streams.topics``): the latest completion per request is kept
  forever, and ``min.compaction.lag.ms`` = the line's retention keeps every completion readable
  as an event stream for as long as delete retention used to. A separate compacted ledger topic
  was rejected: publishing would then be two sends (the completion and the ledger record), and
  a crash between them loses or doubles a completion.
- The table lives on disk (``ASSETLINE_LEDGER_STORE=rocksdb``, Faust's RocksDB store with the
  rocksdict driver, as :class:`streams.acked_store.AckedRocksDBStore`), with the changelog
  offset it holds: a restart reads only the completions written after that offset, whatever
  the history. Only a worker with empty local state (new machine, lost disk, a partition new to
  it after a rebalance) reads the whole compacted topic, and it does so in bulk: before Faust's
  recovery starts reading, ``streams.bulk_restore`` copies the partition's records from Kafka
  straight into RocksDB in large write batches, each with its offset, and Faust's recovery
  reads only what was written since (1,000,000 past completions: see
  ``bench/results/ledger_startup-rocksdb.json``). Values stay the full ``AssetCompleted``
  bytes, because they are the records of ``.completed``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import faust
from faust.types import FutureMessage

from schemas.records import AssetCompleted
from streams.acked_store import AckedRocksDBStore
from streams.codecs import CodecError
from streams.tracing import outgoing

#: RocksDB sizing for the ledger: small values looked up one key at a time. Faust's defaults
#: (2 GiB block cache, 3 x 64 MiB write buffers, per partition) suit big aggregation tables.
ROCKSDB_OPTIONS: dict[str, Any] = {
    "driver": "rocksdict",
    "write_buffer_size": 16 << 20,
    "max_write_buffer_number": 2,
    "target_file_size_base": 32 << 20,
    "block_cache_size": 32 << 20,
    "max_open_files": 256,
}


def ledger_storage(store: str) -> dict[str, Any]:
    """The ``store``/``options`` arguments of the ledger table for ``ASSETLINE_LEDGER_STORE``."""
    if store == "memory":
        return {"store": "memory://"}
    # A path, not "rocksdb://": an empty yarl URL is falsy, and Faust then takes the app's store.
    return {"store": "rocksdb:completions", "options": dict(ROCKSDB_OPTIONS)}


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

    def _new_store_by_url(self, url: Any) -> Any:
        """Faust's RocksDB store, but one that writes to disk only what Kafka acknowledged."""
        if str(url).startswith("rocksdb:"):
            return AckedRocksDBStore(
                url,
                self.app,
                self,
                table_name=self.name,
                key_type=self.key_type,
                key_serializer=self.key_serializer,
                value_serializer=self.value_serializer,
                value_type=self.value_type,
                loop=self.loop,
                options=self.options,
            )
        return super()._new_store_by_url(url)

    def _on_changelog_sent(self, fut: FutureMessage) -> None:
        """The completion is in ``.completed``: only now may it reach the disk store."""
        store = self.data
        if not isinstance(store, AckedRocksDBStore):
            super()._on_changelog_sent(fut)
            return
        stored = fut.result()
        message = fut.message
        partition = stored.topic_partition.partition
        store.acknowledge(partition, message.key, message.value, stored.offset)

    def publish(self, key: bytes, value: bytes, headers: list[tuple[str, bytes]]) -> None:
        """``self[key] = value``, with ``headers`` on the changelog record it writes, plus the
        trace context of the event being handled (streams/tracing.py)."""
        self._next_headers = outgoing(headers)
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
