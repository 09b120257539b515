"""The bulk loader: a changelog read straight into an acked RocksDB store (issue 14, part 4).

Histories are written straight to a topic of the real broker; the loader reads them into the
store's RocksDB databases, which are then read back key by key with the stored offset.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from faust.types import TP

import streams.bulk_restore as bulk_restore
from assetline.dev.child_worker import WorkerProcess
from streams.acked_store import AckedRocksDBStore
from streams.bulk_restore import BulkRecovery, bulk_load, consumer_config
from streams.codecs import Codecs
from streams.settings import Settings
from streams.topics import TopicNames, ensure_topics, line_topic_specs
from tests.integration.test_ledger import completions, send_rejected
from tests.support.ledger import acked_table, past_completion

pytestmark = pytest.mark.integration

CODECS = Codecs.load()

History = list[tuple[bytes, bytes | None]]


def history(n: int) -> History:
    """n records over n // 3 keys: every key written three times, every fifth key then deleted."""
    keys = max(1, n // 3)
    records: History = [(f"r-{i % keys:05d}".encode(), f"v{i}".encode()) for i in range(n)]
    for i in range(0, keys, 5):
        records.append((f"r-{i:05d}".encode(), None))
    return records


def final_state(records: Iterable[tuple[bytes, bytes | None]]) -> dict[bytes, bytes | None]:
    state: dict[bytes, bytes | None] = {}
    for key, value in records:
        state[key] = value
    return state


async def write_history(
    bootstrap: str, topic: str, partition: int, records: History, *, create: bool = True
) -> None:
    if create:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
        finally:
            await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=10)
    await producer.start()
    try:
        sent = [
            await producer.send(topic, key=key, value=value, partition=partition)
            for key, value in records
        ]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


def make_store(data_dir: Path, bootstrap: str, topic: str) -> AckedRocksDBStore:
    """An acked store on a table whose changelog is ``topic``, as the ledger builds it."""
    store = acked_table(data_dir, topic, bootstrap=bootstrap, app_id="bulk")._data
    assert isinstance(store, AckedRocksDBStore)
    return store


def live_state(records: Iterable[tuple[bytes, bytes | None]]) -> dict[bytes, bytes | None]:
    """What a store holds after ``records``: each key's last value, tombstoned keys gone."""
    return {k: v for k, v in final_state(records).items() if v is not None}


def store_on(
    bootstrap: str,
    data_dir: Path,
    topic: str,
    partition: int,
    records: History,
    store_class: type[AckedRocksDBStore] | None = None,
) -> AckedRocksDBStore:
    """``records`` written to ``topic``'s ``partition``; a store (of ``store_class``) with
    that partition open, nothing loaded yet."""
    asyncio.run(write_history(bootstrap, topic, partition, records))
    store = make_store(data_dir, bootstrap, topic)
    if store_class is not None:
        store.__class__ = store_class
    store._db_for_partition(partition)
    return store


def recovery_of(store: AckedRocksDBStore, topic: str, partition: int) -> tuple[Any, TP]:
    """The store's app's (bulk) recovery, told the table of ``topic``'s ``partition``."""
    recovery = store.app.tables.recovery  # type: ignore[attr-defined]
    tp = TP(topic, partition)
    recovery.tp_to_table[tp] = store.table
    return recovery, tp


def on_disk(store: AckedRocksDBStore, partition: int) -> dict[bytes, bytes]:
    db = store._db_for_partition(partition)
    return {k: v for k, v in db.items() if k != store.offset_key}


@pytest.fixture
def topic() -> str:
    return f"bulk-{uuid.uuid4().hex[:12]}.completed"


def test_a_history_is_loaded_whole_with_its_last_offset(
    kafka_bootstrap: str, tmp_path: Path, topic: str
) -> None:
    records = history(3_000)
    store = store_on(kafka_bootstrap, tmp_path, topic, 1, records)
    config = consumer_config(store.app)

    loaded = asyncio.run(bulk_load(store, {TP(topic, 1)}, config, min_records=1, batch_records=700))

    load = loaded[TP(topic, 1)]
    assert load.complete
    assert (load.start, load.end, load.records) == (0, len(records), len(records))
    expected = live_state(records)
    assert on_disk(store, 1) == expected  # every key, tombstoned ones gone
    assert len(expected) < len(final_state(records))  # the history does delete some
    assert store.persisted_offset(TP(topic, 1)) == len(records) - 1


def test_a_short_tail_is_left_to_faust(kafka_bootstrap: str, tmp_path: Path, topic: str) -> None:
    store = store_on(kafka_bootstrap, tmp_path, topic, 0, history(30))
    config = consumer_config(store.app)
    loaded = asyncio.run(bulk_load(store, {TP(topic, 0)}, config, min_records=100))
    assert loaded == {}
    assert on_disk(store, 0) == {}
    assert store.persisted_offset(TP(topic, 0)) is None


class Killed(Exception):
    """The worker died."""


class CrashingStore(AckedRocksDBStore):
    """Dies (like a killed worker) when it is about to write its third batch."""

    batches = 0

    def restore_batch(self, *args, **kwargs) -> bool:  # type: ignore[no-untyped-def]
        self.batches += 1
        if self.batches == 3:
            raise Killed("killed mid-load")
        return bool(super().restore_batch(*args, **kwargs))


class RevokedStore(AckedRocksDBStore):
    """Loses its partitions (a rebalance) just before the first batch is written."""

    def restore_batch(self, partition: int, *args, **kwargs) -> bool:  # type: ignore[no-untyped-def]
        self.revoke_partitions(
            self.table, {TP(self.table.changelog_topic.get_topic_name(), partition)}
        )
        return bool(super().restore_batch(partition, *args, **kwargs))


def test_a_load_cut_short_leaves_a_prefix_and_the_next_one_resumes(
    kafka_bootstrap: str, tmp_path: Path, topic: str
) -> None:
    records = history(2_000)
    first = store_on(kafka_bootstrap, tmp_path, topic, 2, records, CrashingStore)
    config = consumer_config(first.app)
    with pytest.raises(Killed):
        asyncio.run(bulk_load(first, {TP(topic, 2)}, config, min_records=1, batch_records=500))

    # Two batches of (at least) 500 reached the disk, each with its offset: a prefix.
    stored = first.persisted_offset(TP(topic, 2))
    assert stored is not None
    assert 999 <= stored < len(records) - 1
    prefix = live_state(records[: stored + 1])
    assert on_disk(first, 2) == prefix
    first.revoke_partitions(first.table, {TP(topic, 2)})  # closes the database

    again = make_store(tmp_path, kafka_bootstrap, topic)
    again._db_for_partition(2)
    loaded = asyncio.run(bulk_load(again, {TP(topic, 2)}, config, min_records=1, batch_records=500))
    load = loaded[TP(topic, 2)]
    assert load.complete
    assert load.start == stored + 1
    assert load.records == len(records) - stored - 1
    expected = live_state(records)
    assert on_disk(again, 2) == expected
    assert again.persisted_offset(TP(topic, 2)) == len(records) - 1


def test_a_partition_revoked_during_the_load_is_not_written(
    kafka_bootstrap: str, tmp_path: Path, topic: str
) -> None:
    store = store_on(kafka_bootstrap, tmp_path, topic, 1, history(300), RevokedStore)
    config = consumer_config(store.app)
    loaded = asyncio.run(bulk_load(store, {TP(topic, 1)}, config, min_records=1, batch_records=50))
    assert loaded[TP(topic, 1)].records == 0
    assert not loaded[TP(topic, 1)].complete
    assert 1 not in store._dbs  # not opened again either
    assert on_disk(store, 1) == {}
    assert store.persisted_offset(TP(topic, 1)) is None


def test_recovery_starts_reading_where_the_bulk_load_ended(
    kafka_bootstrap: str, tmp_path: Path, topic: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the worker runs: the bulk load inside Faust's recovery, before reading starts."""
    records = history(900)
    store = store_on(kafka_bootstrap, tmp_path, topic, 0, records)
    recovery, tp = recovery_of(store, topic, 0)
    assert isinstance(recovery, BulkRecovery)
    destination: dict[TP, int | None] = {tp: None}  # no stored offset: Faust reads it all

    monkeypatch.setattr(bulk_restore, "MIN_RECORDS", 100)  # the worker's is 10,000
    asyncio.run(recovery._bulk_load({tp}, destination, "active"))

    assert destination[tp] == len(records) - 1
    assert store.persisted_offset(tp) == len(records) - 1
    assert not recovery.signal_recovery_start.is_set()  # done: no second round


def test_recovery_leaves_a_partition_few_records_behind_to_faust(
    kafka_bootstrap: str, tmp_path: Path, topic: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A warm restart: Faust's highwater is close to the stored offset, so no load at all."""
    store = store_on(kafka_bootstrap, tmp_path, topic, 0, history(900))
    recovery, tp = recovery_of(store, topic, 0)
    recovery.active_highwaters[tp] = 98  # what Faust read: 99 records to go from nothing
    destination: dict[TP, int | None] = {tp: None}
    monkeypatch.setattr(bulk_restore, "MIN_RECORDS", 100)
    asyncio.run(recovery._bulk_load({tp}, destination, "active"))
    assert destination[tp] is None
    assert store.persisted_offset(tp) is None
    assert on_disk(store, 0) == {}


def test_recovery_out_of_budget_starts_another_round_from_where_it_stopped(
    kafka_bootstrap: str, tmp_path: Path, topic: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The load stops at its budget (Faust's timeout would end recovery) and asks for a round."""
    records = history(900)
    store = store_on(kafka_bootstrap, tmp_path, topic, 0, records)
    recovery, tp = recovery_of(store, topic, 0)
    monkeypatch.setattr(bulk_restore, "MIN_RECORDS", 100)
    monkeypatch.setattr(bulk_restore, "BATCH_RECORDS", 100)

    written: list[int] = []
    restore_batch = store.restore_batch

    def counting(partition: int, batch: Any, offset: int) -> bool:
        written.append(offset)
        return restore_batch(partition, batch, offset)

    class Clock:
        """The budget is spent as soon as the first batch is on disk."""

        @staticmethod
        def monotonic() -> float:
            return 1e6 if written else 0.0

    monkeypatch.setattr(store, "restore_batch", counting)
    monkeypatch.setattr(bulk_restore, "time", Clock)
    destination: dict[TP, int | None] = {tp: None}
    asyncio.run(recovery._bulk_load({tp}, destination, "active"))

    stored = store.persisted_offset(tp)
    assert stored is not None
    assert destination[tp] == stored == written[-1]
    assert stored < len(records) - 1  # cut short
    assert recovery.signal_recovery_start.is_set()  # Faust starts the round again

    recovery.signal_recovery_start.clear()
    monkeypatch.setattr(bulk_restore, "time", time)
    asyncio.run(recovery._bulk_load({tp}, destination, "active"))
    assert destination[tp] == store.persisted_offset(tp) == len(records) - 1
    expected = live_state(records)
    assert on_disk(store, 0) == expected
    assert not recovery.signal_recovery_start.is_set()


def test_a_worker_with_empty_state_loads_a_long_ledger_in_bulk(
    line_settings: Settings, start_worker: Callable[[Settings], WorkerProcess]
) -> None:
    """The whole path in a worker: past completions loaded in bulk still stop a redelivery."""
    settings = line_settings.model_copy(update={"stages": ("deliver",), "topic_partitions": 1})
    asyncio.run(ensure_topics(settings.kafka_bootstrap, line_topic_specs(settings)))
    run = uuid.uuid4().hex[:6]
    n = bulk_restore.MIN_RECORDS + 2_000  # enough to be loaded in bulk, not by Faust
    topic = TopicNames.with_prefix(settings.topic_prefix).completed
    past: History = [
        (done.request_id.encode(), CODECS.completed.encode(done))
        for done in (past_completion(i, run) for i in range(n))
    ]
    asyncio.run(write_history(settings.kafka_bootstrap, topic, 0, past, create=False))
    old, probe = past[7][0].decode(), f"probe-{run}"

    worker = start_worker(settings)
    asyncio.run(send_rejected(settings, old, probe))  # a redelivery of a past one, then a new one
    got = completions(settings, old, probe)
    assert len(got.get(probe, [])) == 1, worker.log_tail(50)
    assert len(got[old]) == 1, "the redelivered event completed its request again"
    assert f"Bulk-loaded {n} active changelog records" in worker.log_tail(400)


def test_recovery_after_a_failed_load_starts_from_what_it_wrote(
    kafka_bootstrap: str, tmp_path: Path, topic: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An error mid-load: Faust reads the rest, from the last batch on disk, not from scratch."""
    records = history(900)
    # the third batch fails
    store = store_on(kafka_bootstrap, tmp_path, topic, 0, records, CrashingStore)
    recovery, tp = recovery_of(store, topic, 0)
    monkeypatch.setattr(bulk_restore, "MIN_RECORDS", 100)
    monkeypatch.setattr(bulk_restore, "BATCH_RECORDS", 100)
    destination: dict[TP, int | None] = {tp: None}
    asyncio.run(recovery._bulk_load({tp}, destination, "active"))
    stored = store.persisted_offset(tp)
    assert stored is not None
    assert 199 <= stored < len(records) - 1  # two batches of (at least) 100 records
    assert destination[tp] == stored
    assert not recovery.signal_recovery_start.is_set()  # no bulk retry: Faust reads the rest
