"""The deliver ledger's pieces for tests and benchmarks: its acked table, past completions."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import faust

from schemas.records import AssetCompleted, AssetKind, CompletionStatus
from streams.acked_store import AckedRocksDBStore
from streams.app import create_faust_app
from streams.settings import Settings


def acked_table(
    data_dir: Path, changelog_topic: str, *, bootstrap: str = "127.0.0.1:1", app_id: str = "acked"
) -> faust.Table[bytes, bytes]:
    """A table on an acked RocksDB store, as ``agents.deliver.ledger.LedgerTable`` builds it.

    Its store is ``table._data``; the app connects to nothing until started.
    """
    app = create_faust_app(Settings(kafka_bootstrap=bootstrap, app_id=app_id, data_dir=data_dir))
    table: faust.Table[bytes, bytes] = faust.Table(
        app,
        name="completions",
        changelog_topic=app.topic(changelog_topic, key_serializer="raw", value_serializer="raw"),
        key_type=bytes,
        value_type=bytes,
        partitions=3,
        options={"driver": "rocksdict", "block_cache_size": 1 << 20},
    )
    table._data = AckedRocksDBStore(
        "rocksdb://",
        app,
        table,
        table_name=table.name,
        key_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        value_type=bytes,
        options=table.options,
    )
    return table


def past_completion(i: int, run: str) -> AssetCompleted:
    """A DELIVERED completion about the size of a real one (location, digest, timings), as the
    ledger wrote it (keyed by its request id)."""
    rid = f"past-{run}-{i:07d}"
    return AssetCompleted(
        request_id=rid,
        idempotency_key=rid,
        tenant="acme",
        campaign_id="history",
        kind=AssetKind.IMAGE,
        attempt=1,
        status=CompletionStatus.DELIVERED,
        location=f"file:///var/out/acme/history/{rid}.png",
        sha256=f"{i:064x}",
        media_type="image/png",
        cost=0.04,
        timings_ms={"generate": 812.5, "validate": 40.25, "deliver": 3.5, "total": 860.0},
        completed_at=datetime(2025, 1, 1, tzinfo=UTC),
    )
