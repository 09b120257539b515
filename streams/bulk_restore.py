"""Cold start of an on-disk table in bulk: the changelog read straight into RocksDB.

Faust recovers a table by reading its changelog through the worker's consumer and applying the
records in small batches of events, about 2,000 records a second here: a worker with empty
local state took 593 s to recover a ledger of 1,000,000 completions (issue 14, part 4). Most of
that is per-event work, not Kafka. So before Faust's recovery reads a changelog partition of an
:class:`~streams.acked_store.AckedRocksDBStore` table, :func:`bulk_load` reads it from the
stored offset to the end with a consumer of its own (assigned partitions, no group, no commits,
large fetches) and writes the raw key/value bytes in write batches of ``batch_records``, each
with the stored offset set to its last record (tombstones delete). Faust's recovery then finds
the stored offset at (or near) the end and reads only what came after.

Where it runs. Not in the store's ``on_rebalance``: aiokafka calls the rebalance listener with
the heartbeat task stopped, so a long load there would outlast the session timeout and get the
worker thrown out of the group. :class:`BulkRecovery` runs it inside Faust's recovery task, at
the step that decides where reading starts (``_build_offsets``), after the rebalance callback
has returned. That step runs under ``broker_request_timeout``, after which Faust's recovery
stops for good, so one load lasts at most :data:`BUDGET_SHARE` of it; a load cut short by the
budget restarts the recovery round (as a new rebalance would), and the next round goes on from
the offset written last.

Crash safety. Every batch is a prefix of the changelog with its own offset, as with the
store's acknowledged writes, so a crash or a rebalance mid-load leaves a consistent store that
the next load (or Faust) continues. A partition revoked during the load is left alone (its
database is closed).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import ConsumerRecord, TopicPartition
from faust.tables.manager import TableManager
from faust.tables.recovery import Recovery
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth, server_list
from faust.types import TP, AppT
from faust.types.transports import ConsumerT
from mode import get_logger

from streams.acked_store import AckedRocksDBStore

logger = get_logger(__name__)

#: Fewer records than this behind the end: Faust's own recovery reads them (a warm restart).
MIN_RECORDS = 10_000
#: Records per RocksDB write batch (the stored offset moves once per batch).
BATCH_RECORDS = 10_000
#: Share of ``broker_request_timeout`` one load may take (see the module docstring).
BUDGET_SHARE = 0.6
#: Fetch sizes of the loader's consumer: bounded memory, few round trips.
FETCH_MAX_BYTES = 16 << 20
PARTITION_FETCH_BYTES = 4 << 20


@dataclass
class Loaded:
    """What :func:`bulk_load` did for one changelog partition."""

    start: int  # first offset it asked for
    end: int  # the partition's end offset (next offset to be written) when it began
    records: int = 0  # records written to the store
    offset: int | None = None  # stored offset after the load (None: nothing written)
    complete: bool = False  # read up to ``end``
    last_read: int = -1  # offset of the last record read (written or in the pending batch)


def consumer_config(app: AppT) -> dict[str, Any]:
    """AIOKafkaConsumer arguments for the app's cluster, as Faust's own consumer connects."""
    conf = app.conf
    return {
        "bootstrap_servers": server_list(conf.broker, 9092),
        "client_id": f"{conf.broker_client_id}-bulk-restore",
        "request_timeout_ms": int(conf.broker_request_timeout * 1000.0),
        "check_crcs": conf.broker_check_crcs,
        "isolation_level": "read_committed" if app.in_transaction else "read_uncommitted",
        **credentials_to_aiokafka_auth(conf.broker_credentials, conf.ssl_context),
    }


async def bulk_load(
    store: AckedRocksDBStore,
    tps: set[TP],
    consumer_kwargs: dict[str, Any],
    *,
    min_records: int = MIN_RECORDS,
    batch_records: int = BATCH_RECORDS,
    deadline: float | None = None,
) -> dict[TP, Loaded]:
    """Read each changelog partition in ``tps`` from its stored offset to its end into ``store``.

    Partitions fewer than ``min_records`` behind are left out (empty result for them). Stops
    early, with every batch written so far intact, at ``deadline`` (``time.monotonic()``) or when
    a partition's database is closed under it. Memory: one fetch (``FETCH_MAX_BYTES``) plus one
    batch of ``batch_records`` per partition.
    """
    if not tps:
        return {}
    consumer = AIOKafkaConsumer(
        **consumer_kwargs,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_bytes=FETCH_MAX_BYTES,
        max_partition_fetch_bytes=PARTITION_FETCH_BYTES,
        fetch_max_wait_ms=200,
    )
    await consumer.start()
    try:
        return await _load(consumer, store, tps, min_records, batch_records, deadline)
    finally:
        await consumer.stop()


async def _load(
    consumer: AIOKafkaConsumer,
    store: AckedRocksDBStore,
    tps: set[TP],
    min_records: int,
    batch_records: int,
    deadline: float | None,
) -> dict[TP, Loaded]:
    kafka_tps = {TopicPartition(tp.topic, tp.partition): tp for tp in tps}
    ends = await consumer.end_offsets(list(kafka_tps))
    begins = await consumer.beginning_offsets(list(kafka_tps))
    loads: dict[TopicPartition, Loaded] = {}
    for ktp, tp in kafka_tps.items():
        stored = store.persisted_offset(tp)
        start = max(begins[ktp], stored + 1 if stored is not None else 0)
        if ends[ktp] - start >= min_records:
            loads[ktp] = Loaded(start=start, end=ends[ktp])
    if not loads:
        return {}
    consumer.assign(list(loads))
    for ktp, load in loads.items():
        consumer.seek(ktp, load.start)
    pending: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]] = {ktp: [] for ktp in loads}
    reading = set(loads)

    def flush(ktp: TopicPartition) -> None:
        records, load = pending[ktp], loads[ktp]
        if not records or ktp not in reading:
            return
        if store.restore_batch(ktp.partition, records, load.last_read):
            load.records += len(records)
            load.offset = load.last_read
        else:  # revoked under us: its next owner (or we, later) goes on from the stored offset
            reading.discard(ktp)
            consumer.pause(ktp)
        records.clear()

    while reading:
        if deadline is not None and time.monotonic() >= deadline:
            break
        fetched = await consumer.getmany(*reading, timeout_ms=1000, max_records=batch_records)
        for ktp, messages in fetched.items():
            if ktp not in reading:
                continue
            batch = pending[ktp]
            batch.extend(messages)
            if messages:
                loads[ktp].last_read = messages[-1].offset
            if len(batch) >= batch_records:
                flush(ktp)
        for ktp in list(reading):
            if await consumer.position(ktp) >= loads[ktp].end:
                flush(ktp)
                if ktp in reading:
                    loads[ktp].complete = True
                    reading.discard(ktp)
                    consumer.pause(ktp)
    for ktp in list(reading):
        flush(ktp)
    return {kafka_tps[ktp]: load for ktp, load in loads.items()}


def _far_behind(store: AckedRocksDBStore, tp: TP, highwaters: Any) -> bool:
    """At least ``MIN_RECORDS`` offsets between the stored offset and Faust's highwater."""
    highwater = highwaters.get(tp)
    if highwater is None:
        return True  # not known: the loader asks Kafka
    stored = store.persisted_offset(tp)
    return bool(highwater - (stored if stored is not None else -1) >= MIN_RECORDS)


class BulkRecovery(Recovery):
    """Faust's recovery, with :func:`bulk_load` first for tables on an acked RocksDB store."""

    async def _build_offsets(
        self, consumer: ConsumerT, tps: set[TP], destination: Any, title: str
    ) -> None:
        await self._bulk_load(tps, destination, title)
        await super()._build_offsets(consumer, tps, destination, title)

    async def _bulk_load(self, tps: set[TP], destination: Any, title: str) -> None:
        # Faust has just read the active partitions' highwaters: a warm restart, only a few
        # records behind, starts no consumer. (Standby highwaters come later, so not those.)
        highwaters = self.active_highwaters if title == "active" else {}
        by_store: dict[AckedRocksDBStore, set[TP]] = {}
        for tp in tps:
            table = self.tp_to_table.get(tp)
            store = getattr(table, "data", None)
            if isinstance(store, AckedRocksDBStore) and _far_behind(store, tp, highwaters):
                by_store.setdefault(store, set()).add(tp)
        if not by_store:
            return
        started = time.monotonic()
        deadline = started + BUDGET_SHARE * self.app.conf.broker_request_timeout
        kwargs = consumer_config(self.app)
        unfinished = False
        for store, store_tps in by_store.items():
            try:
                loaded = await bulk_load(
                    store,
                    store_tps,
                    kwargs,
                    min_records=MIN_RECORDS,
                    batch_records=BATCH_RECORDS,
                    deadline=deadline,
                )
            except Exception as exc:  # Faust's recovery reads the rest, from the stored offset
                self.log.warning("Bulk load of %s failed, recovering slowly: %r", title, exc)
                for tp in store_tps:  # the batches written before the error count
                    stored = store.persisted_offset(tp) if tp.partition in store._dbs else None
                    if stored is not None:
                        destination[tp] = stored
                continue
            for tp, load in loaded.items():
                if load.offset is not None:
                    destination[tp] = load.offset
                unfinished |= not load.complete and load.records > 0
            records = sum(load.records for load in loaded.values())
            if records:
                self.log.info(
                    "Bulk-loaded %d %s changelog records of %s in %.1f s",
                    records,
                    title,
                    store.table_name,
                    time.monotonic() - started,
                )
        if unfinished:
            # Out of budget with more to read: start the recovery round again, as a rebalance
            # does (Faust checks this signal before reading); the next round goes on from here.
            self.log.info("Bulk load of %s continues in a new recovery round", title)
            self.signal_recovery_start.set()


class LineTableManager(TableManager):
    """Faust's table manager, recovering with :class:`BulkRecovery`, started without Faust's
    fixed one-second wait."""

    async def on_start(self) -> None:
        """Faust's start without its ``sleep(1.0)`` first, which only gave late tables time to
        be added: the line adds every table while :func:`streams.app.create_line` builds it,
        before the worker starts (one added later still fails loudly: "Too late to add
        tables"). A second off every worker's start and restart, so off every crash's outage."""
        if not self.should_stop:
            await self._update_channels()
            await self.recovery.start()

    @property
    def recovery(self) -> Recovery:
        if self._recovery is None:
            self._recovery = BulkRecovery(self.app, self, beacon=self.beacon, loop=self.loop)
        return self._recovery
