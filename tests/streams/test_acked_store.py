"""The acked RocksDB store: a value reaches disk only with the changelog offset Kafka gave it."""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Iterator
from pathlib import Path

import faust
import pytest
from faust.streams import _current_event
from faust.types import TP, Message

from streams.acked_store import AckedRocksDBStore
from tests.support.ledger import acked_table

TOPIC = "t.completed"


@contextlib.contextmanager
def in_event(table: faust.Table[bytes, bytes], partition: int) -> Iterator[None]:
    """What an agent's stream does: the current event names the partition a value goes to."""
    message = Message(TOPIC, partition, 0, 0.0, 0, [], b"k", b"v", None)
    event = faust.Event(table.app, b"k", b"v", [], message)
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)


@pytest.fixture
def table(tmp_path: Path) -> Iterator[faust.Table[bytes, bytes]]:
    table = acked_table(tmp_path, TOPIC)
    assign(table, 1)
    with in_event(table, 1):
        yield table


def assign(table: faust.Table[bytes, bytes], partition: int) -> None:
    """What Faust does when the partition is assigned: open its database."""
    table.data._db_for_partition(partition)


def store_of(table: faust.Table[bytes, bytes]) -> AckedRocksDBStore:
    store = table.data
    assert isinstance(store, AckedRocksDBStore)
    return store


def on_disk(store: AckedRocksDBStore, partition: int, key: bytes) -> bytes | None:
    value: bytes | None = store._db_for_partition(partition).get(key)
    return value


def test_a_set_value_is_read_back_before_it_is_on_disk(table: faust.Table[bytes, bytes]) -> None:
    store = store_of(table)
    store[b"r-1"] = b"done-1"
    assert store[b"r-1"] == b"done-1"
    assert b"r-1" in store
    assert on_disk(store, 1, b"r-1") is None
    assert store.persisted_offset(TP(TOPIC, 1)) is None
    assert store.unacknowledged() == 1


def test_acknowledged_value_goes_to_disk_with_its_offset(table: faust.Table[bytes, bytes]) -> None:
    store = store_of(table)
    store[b"r-1"] = b"done-1"
    store.acknowledge(1, b"r-1", b"done-1", 41)
    assert on_disk(store, 1, b"r-1") == b"done-1"
    assert store.persisted_offset(TP(TOPIC, 1)) == 41
    assert store.unacknowledged() == 0
    assert store[b"r-1"] == b"done-1"


def test_two_writes_in_flight_keep_the_latest_until_both_are_acked(
    table: faust.Table[bytes, bytes],
) -> None:
    store = store_of(table)
    store[b"r-1"] = b"attempt-1"
    store[b"r-1"] = b"attempt-2"
    store.acknowledge(1, b"r-1", b"attempt-1", 7)
    assert on_disk(store, 1, b"r-1") == b"attempt-1"  # what Kafka has at offset 7
    assert store[b"r-1"] == b"attempt-2"  # the ledger still sees the newer write
    store.acknowledge(1, b"r-1", b"attempt-2", 8)
    assert on_disk(store, 1, b"r-1") == b"attempt-2"
    assert store.unacknowledged() == 0


def test_a_crash_before_the_ack_leaves_nothing_on_disk(tmp_path: Path) -> None:
    """The lost completion case: a killed worker must not remember what Kafka never got."""
    first = acked_table(tmp_path, TOPIC)
    assign(first, 2)
    with in_event(first, 2):
        store = store_of(first)
        store[b"kept"] = b"acked"
        store.acknowledge(2, b"kept", b"acked", 3)
        store[b"lost"] = b"never-sent"
        # A revoke closes the database (Faust only drops it), so it can be opened again now.
        store.revoke_partitions(first, {TP(TOPIC, 2)})
    again = acked_table(tmp_path, TOPIC)
    with in_event(again, 2):
        reopened = store_of(again)
        assert reopened[b"kept"] == b"acked"
        assert b"lost" not in reopened
        assert reopened.persisted_offset(TP(TOPIC, 2)) == 3  # recovery resumes after it


def test_an_ack_for_a_revoked_partition_is_not_written(table: faust.Table[bytes, bytes]) -> None:
    store = store_of(table)
    store[b"r-1"] = b"done"
    store.revoke_partitions(table, {TP(TOPIC, 1)})
    store.acknowledge(1, b"r-1", b"done", 5)  # the next owner recovers it from Kafka
    assert store.unacknowledged() == 0
    assert 1 not in store._dbs


def test_setting_outside_an_event_is_refused(tmp_path: Path) -> None:
    store = store_of(acked_table(tmp_path, TOPIC))
    with pytest.raises(RuntimeError, match="partition"):
        store[b"r-1"] = b"x"
