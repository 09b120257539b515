"""The completion ledger: one completion per (request, attempt), later attempts go through."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from faust.stores.memory import Store as MemoryStore
from faust.types import TP

from agents.deliver.ledger import LedgerTable, already_completed, ledger_storage
from schemas.records import AssetCompleted, AssetKind, CompletionStatus
from streams.acked_store import AckedRocksDBStore
from streams.app import create_faust_app
from streams.codecs import Codecs
from streams.settings import Settings

CODEC = Codecs.load().completed


def previous(attempt: int, status: CompletionStatus = CompletionStatus.DELIVERED) -> bytes:
    return CODEC.encode(
        AssetCompleted(
            request_id="req-1",
            idempotency_key="idem-1",
            tenant="acme",
            campaign_id="spring",
            kind=AssetKind.TEXT,
            attempt=attempt,
            status=status,
            completed_at=datetime(2024, 5, 17, tzinfo=UTC),
        )
    )


def test_nothing_recorded_is_not_completed() -> None:
    def must_not_decode(data: bytes) -> AssetCompleted:
        raise AssertionError("nothing to decode")

    assert already_completed(None, 1, must_not_decode) is False


def test_same_attempt_is_completed() -> None:
    assert already_completed(previous(1), 1, CODEC.decode) is True
    assert already_completed(previous(4), 4, CODEC.decode) is True


def test_later_attempt_recorded_means_this_one_is_a_stale_redelivery() -> None:
    assert already_completed(previous(3), 2, CODEC.decode) is True


@pytest.mark.parametrize(("recorded", "incoming"), [(1, 2), (2, 3), (1, 10)])
def test_lower_previous_attempt_is_not_completed(recorded: int, incoming: int) -> None:
    assert already_completed(previous(recorded), incoming, CODEC.decode) is False


@pytest.mark.parametrize("status", list(CompletionStatus))
def test_any_status_counts_as_completed(status: CompletionStatus) -> None:
    assert already_completed(previous(2, status), 2, CODEC.decode) is True


def test_decode_is_the_one_given() -> None:
    seen: list[bytes] = []

    def decode(data: bytes) -> AssetCompleted:
        seen.append(data)
        return CODEC.decode(data)

    data = previous(5)
    assert already_completed(data, 6, decode) is False
    assert seen == [data]


def ledger_on(store: str, data_dir: Path) -> LedgerTable:
    app = create_faust_app(Settings(kafka_bootstrap="127.0.0.1:1", data_dir=data_dir))
    return LedgerTable(
        app,
        name="completions",
        changelog_topic=app.topic("x.completed", key_serializer="raw", value_serializer="raw"),
        key_type=bytes,
        value_type=bytes,
        partitions=3,
        **ledger_storage(store),
    )


def test_rocksdb_ledger_is_on_disk_under_the_data_dir_and_writes_only_acked_values(
    tmp_path: Path,
) -> None:
    store = ledger_on("rocksdb", tmp_path).data
    assert isinstance(store, AckedRocksDBStore)
    assert store.partition_path(2).is_relative_to(tmp_path)
    assert store.partition_path(2).name == "completions-2.db"
    assert store.rocksdb_options.block_cache_size == 32 << 20  # not Faust's 2 GiB


def test_memory_ledger_is_faust_own_store(tmp_path: Path) -> None:
    store = ledger_on("memory", tmp_path).data
    assert type(store) is MemoryStore
    assert store.persisted_offset(TP("x.completed", 0)) is None  # every start re-reads it all
