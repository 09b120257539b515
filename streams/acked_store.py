"""A RocksDB table store whose disk holds only what Kafka acknowledged.

Faust's RocksDB store (``faust.stores.rocksdb``, driver ``rocksdict``) writes a table value to
disk as soon as it is set, and the changelog record for it is sent afterwards. A worker killed
in between restarts with a value on disk that never reached Kafka: for the completion ledger
that is a request marked completed whose completion was never published, and the redelivered
event would be dropped as a duplicate. The request would never complete.

This store keeps a set value in memory until its changelog record is acknowledged, and only
then writes it to disk in one batch with the changelog offset it got. So the disk always holds
a prefix of the changelog (up to the stored offset), recovery after a restart reads only the
changelog after that offset, and a crash loses exactly the writes Kafka lost as well.

A worker with empty local state fills the store in bulk rather than through Faust's recovery,
one event at a time: ``streams.bulk_restore`` reads the changelog partition from the stored
offset to its end with a consumer of its own and hands the records to
:meth:`AckedRocksDBStore.restore_batch`, which writes them with their last offset in one batch
as well, so the disk holds a changelog prefix at every moment of the load too.

The table must call :meth:`AckedRocksDBStore.acknowledge` from its changelog callback (see
``agents.deliver.ledger.LedgerTable``). Iterating the table (keys, items, len) sees the
acknowledged values only; the ledger only gets single keys.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import suppress
from dataclasses import dataclass
from typing import Any, Protocol

import rocksdict
from faust.stores import rocksdb
from faust.streams import current_event
from faust.types import TP, CollectionT


class ChangelogRecord(Protocol):
    """A changelog record as read from Kafka (aiokafka's ``ConsumerRecord`` is one)."""

    @property
    def key(self) -> bytes | None: ...

    @property
    def value(self) -> bytes | None: ...


@dataclass
class _Unacked:
    """The latest value set for a key, and how many of its changelog records are in flight."""

    partition: int
    value: bytes | None
    in_flight: int


class AckedRocksDBStore(rocksdb.Store):
    """Faust's RocksDB store, writing a value to disk only once its changelog record is acked."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._unacked: dict[bytes, _Unacked] = {}

    def _set(self, key: bytes, value: bytes | None) -> None:
        event = current_event()
        if event is None:
            raise RuntimeError("a table value is set from an agent's event (its partition)")
        partition = event.message.partition
        pending = self._unacked.get(key)
        if pending is None:
            self._unacked[key] = _Unacked(partition, value, 1)
        else:
            pending.partition, pending.value = partition, value
            pending.in_flight += 1
        self._key_index[key] = partition

    def _del(self, key: bytes) -> None:
        self._set(key, None)

    def _get(self, key: bytes) -> bytes | None:
        pending = self._unacked.get(key)
        if pending is not None:
            return pending.value
        value: bytes | None = super()._get(key)
        return value

    def _contains(self, key: bytes) -> bool:
        pending = self._unacked.get(key)
        if pending is not None:
            return pending.value is not None
        return bool(super()._contains(key))

    def unacknowledged(self) -> int:
        """Keys whose latest value is not on disk yet (its changelog record is in flight)."""
        return len(self._unacked)

    def acknowledge(self, partition: int, key: Any, value: Any, offset: int) -> None:
        """Kafka stored ``key = value`` at ``offset`` of the changelog's ``partition``.

        The value and the offset go to disk in one write batch, so the stored offset never
        names a record whose value is missing, nor the other way round. A partition that is
        no longer ours is not written: its next owner (or this worker, if it comes back)
        recovers the record from the changelog after the stored offset.
        """
        key_bytes = self._encode_key(key)
        value_bytes = None if value is None else self._encode_value(value)
        pending = self._unacked.get(key_bytes)
        if pending is not None:
            pending.in_flight -= 1
            if pending.in_flight <= 0:
                del self._unacked[key_bytes]
        db = self._dbs.get(partition)
        if db is None:
            return
        batch = self._write_batch()
        if value_bytes is None:
            batch.delete(key_bytes)
        else:
            batch.put(key_bytes, value_bytes)
        batch.put(self.offset_key, str(offset).encode())
        db.write(batch)

    def restore_batch(
        self, partition: int, records: Iterable[ChangelogRecord], offset: int
    ) -> bool:
        """Changelog records read straight from Kafka, up to ``offset``, in one write batch.

        The bulk loader (``streams.bulk_restore``) calls this with records in changelog order:
        a value is put, a tombstone (``None``) deletes its key, and the stored offset becomes
        ``offset`` in the same batch, so a load cut short leaves a prefix of the changelog
        with the offset it ends at. False (nothing written) when the partition's database is
        not open, as after a revoke.
        """
        db = self._dbs.get(partition)
        if db is None:
            return False
        batch = self._write_batch()
        put, delete = batch.put, batch.delete
        for record in records:
            key, value = record.key, record.value
            if key is None:  # the ledger never writes one; Faust's recovery would skip it too
                continue
            if value is None:
                delete(key)
            else:
                put(key, value)
        batch.put(self.offset_key, str(offset).encode())
        db.write(batch)
        return True

    def _write_batch(self) -> Any:
        if not self.use_rocksdict:  # python-rocksdb (RocksDB 6) is not a dependency
            raise RuntimeError("the acked store needs the rocksdict driver")
        return rocksdict.WriteBatch(raw_mode=True)

    def revoke_partitions(self, table: CollectionT, tps: set[TP]) -> None:
        """Close the databases of revoked partitions (Faust only drops them).

        Closing releases RocksDB's lock at once, so another worker sharing the data dir can
        open the partition it was just given without waiting for garbage collection.
        """
        closing = [
            self._dbs.get(tp.partition) for tp in tps if tp.topic in table.changelog_topic.topics
        ]
        super().revoke_partitions(table, tps)
        for db in closing:
            if db is not None and self.use_rocksdict:
                with suppress(Exception):
                    db.close()
