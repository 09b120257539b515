"""Blob retention: the sweep keeps recent and review-held blobs and deletes old ones, on the
local store (file mtimes) and the S3 store (moto's LastModified), with a clock set by the test.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from click.testing import CliRunner
from faust.types import TP
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from assetline.cli import cli
from schemas.records import BlobRef, ReviewAction, ReviewDecision, ReviewItem, ReviewStatus
from streams.blob_sweep import (
    SweepMetrics,
    SweepReport,
    claim_check_horizon,
    review_held_blobs,
    sweep,
    sweep_line_blobs,
    sweeps_here,
)
from streams.blobs import BlobStore, LocalBlobStore, S3BlobConfig, S3BlobStore
from streams.kafka_security import client_kwargs
from streams.registry import codecs_for_settings
from streams.settings import Settings, settings_env
from streams.topics import TopicNames, ensure_topics, line_topic_specs
from tests.support.assets import failed, make_request, make_validated, passed
from tests.support.s3_server import ACCESS_KEY_ID, SECRET_ACCESS_KEY, moto_s3

DAY = timedelta(days=1)


def age(store: LocalBlobStore, ref: BlobRef, when: datetime) -> None:
    stamp = when.timestamp()
    os.utime(store.path_for(ref.sha256), (stamp, stamp))


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_the_horizon_is_the_longest_claim_check_retention_plus_the_grace() -> None:
    settings = Settings(
        topic_retention_ms=7 * 86_400_000,
        deadletter_retention_ms=30 * 86_400_000,
        generation_record_retention_ms=86_400_000,
        blob_sweep_grace_s=3600,
    )
    assert claim_check_horizon(settings) == timedelta(days=30, hours=1)
    longer_topics = Settings(
        topic_retention_ms=40 * 86_400_000,
        deadletter_retention_ms=30 * 86_400_000,
        blob_sweep_grace_s=0,
    )
    assert claim_check_horizon(longer_topics) == timedelta(days=40)


def test_local_sweep_keeps_recent_and_held_blobs_and_deletes_old_ones(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    now = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
    recent = store.put(b"recent", "text/plain")
    held = store.put(b"held by review", "text/plain")
    old = store.put(b"old and unreferenced", "text/plain")
    age(store, recent, now - 9 * DAY)
    age(store, held, now - 40 * DAY)
    age(store, old, now - 11 * DAY)
    (store.root / old.sha256[:2] / old.sha256[2:4] / ".tmp-x").write_bytes(b"half written")

    dry = run(sweep(store, now=now, max_age=10 * DAY, keep={held.sha256}, dry_run=True))
    assert [e.sha256 for e in dry.deleted] == [old.sha256]
    assert dry.bytes_freed == len(b"old and unreferenced")
    assert store.path_for(old.sha256).exists()  # a dry run deletes nothing

    report = run(sweep(store, now=now, max_age=10 * DAY, keep={held.sha256}))
    assert [e.sha256 for e in report.deleted] == [old.sha256]
    assert (report.examined, report.kept_recent, report.kept_for_review) == (3, 1, 1)
    assert report.bytes_freed == len(b"old and unreferenced")
    assert not store.path_for(old.sha256).exists()
    assert store.path_for(recent.sha256).exists()
    assert store.path_for(held.sha256).exists()
    assert (store.root / old.sha256[:2] / old.sha256[2:4] / ".tmp-x").exists()
    again = run(sweep(store, now=now, max_age=10 * DAY, keep={held.sha256}))
    assert again.deleted == []  # idempotent


def test_a_blob_put_again_after_listing_survives_the_sweep(tmp_path: Path) -> None:
    now = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
    store = LocalBlobStore(tmp_path / "blobs", refresh_after_s=DAY.total_seconds())
    ref = store.put(b"regenerated", "text/plain")
    age(store, ref, now - 30 * DAY)

    class PutDuringListing:
        """The store, with a worker writing the same bytes while the sweep lists."""

        def __init__(self, inner: LocalBlobStore) -> None:
            self.inner = inner

        async def entries(self) -> Any:
            async for entry in self.inner.entries():
                LocalBlobStore(self.inner.root, clock=lambda: now).put(b"regenerated", "x/y")
                yield entry

        async def delete_if_older(self, sha256: str, cutoff: datetime) -> Any:
            return await self.inner.delete_if_older(sha256, cutoff)

    report = run(sweep(PutDuringListing(store), now=now, max_age=10 * DAY))  # type: ignore[arg-type]
    assert report.deleted == []
    assert report.kept_recent == 1
    assert store.get(ref) == b"regenerated"


def test_metrics_count_deleted_blobs_and_bytes(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    metrics = SweepMetrics.build(registry)
    store = LocalBlobStore(tmp_path / "blobs")
    now = datetime(2026, 12, 3, tzinfo=UTC)
    for data in (b"a" * 10, b"b" * 32):
        age(store, store.put(data, "text/plain"), now - 20 * DAY)
    metrics.record(run(sweep(store, now=now, max_age=10 * DAY)))
    assert registry.get_sample_value("assetline_blobs_deleted_total") == 2
    assert registry.get_sample_value("assetline_blob_bytes_freed_total") == 42


@pytest.fixture(scope="module")
def s3() -> Iterator[tuple[str, Any]]:
    with moto_s3(f"sweep-{uuid.uuid4().hex[:8]}") as server:
        yield server


def s3_store(s3: tuple[str, Any]) -> S3BlobStore:
    endpoint, admin = s3
    bucket = f"sweep-{uuid.uuid4().hex[:12]}"
    admin.create_bucket(Bucket=bucket)
    config = S3BlobConfig(
        endpoint_url=endpoint,
        bucket=bucket,
        access_key_id=ACCESS_KEY_ID,
        secret_access_key=SecretStr(SECRET_ACCESS_KEY),
        timeout_s=5.0,
    )
    return S3BlobStore(config)


def test_s3_sweep_keeps_recent_and_held_blobs_and_deletes_old_ones(
    s3: tuple[str, Any],
) -> None:
    store = s3_store(s3)

    async def scenario() -> tuple[SweepReport, SweepReport, SweepReport, list[str]]:
        try:
            old = await store.put_async(b"old", "text/plain")
            held = await store.put_async(b"held", "text/plain")
            # Written an hour ago by the store's clock, as seen 11 days later.
            later = datetime.now(UTC) + 11 * DAY
            keep = {held.sha256}
            dry = await sweep(store, now=later, max_age=10 * DAY, keep=keep, dry_run=True)
            done = await sweep(store, now=later, max_age=10 * DAY, keep=keep)
            recent = await sweep(store, now=datetime.now(UTC), max_age=10 * DAY)
            left = sorted([e.sha256 async for e in store.entries()])
            assert [e.sha256 for e in done.deleted] == [old.sha256]
            return dry, done, recent, left
        finally:
            await store.aclose()

    dry, done, recent, left = run(scenario())
    assert len(dry.deleted) == 1
    assert done.bytes_freed == 3
    assert (done.examined, done.kept_for_review) == (2, 1)
    assert recent.deleted == []
    assert recent.kept_recent == 1
    assert len(left) == 1


# -- with a broker: which blobs the review table holds ------------------------------------


def review_item(
    request_id: str, blob: BlobRef, status: ReviewStatus, decided_at: datetime | None = None
) -> ReviewItem:
    request = make_request(request_id=request_id)
    asset = make_validated([passed("size"), failed("brand", "off-palette")], request=request)
    asset = asset.model_copy(update={"raw": asset.raw.model_copy(update={"blob": blob})})
    decision = (
        None
        if decided_at is None
        else ReviewDecision(
            decision_id=f"d-{request_id}",
            request_id=request_id,
            action=ReviewAction.APPROVE,
            reviewer="ana",
            decided_at=decided_at,
        )
    )
    return ReviewItem(request_id=request_id, status=status, asset=asset, decision=decision)


async def publish(settings: Settings, records: list[tuple[str, bytes | None]]) -> None:
    topic = TopicNames.with_prefix(settings.topic_prefix).review_items
    producer = AIOKafkaProducer(**client_kwargs(settings))
    await producer.start()
    try:
        for key, value in records:
            await producer.send_and_wait(topic, key=key.encode(), value=value)
    finally:
        await producer.stop()


@pytest.mark.integration
def test_pending_and_recently_decided_review_items_hold_their_blobs(
    line_settings: Settings, tmp_path: Path
) -> None:
    settings = line_settings.model_copy(
        update={
            "topic_retention_ms": 7 * 86_400_000,
            "deadletter_retention_ms": 7 * 86_400_000,
            "generation_record_retention_ms": 86_400_000,
            "blob_sweep_grace_s": 0.0,
        }
    )
    run(ensure_topics(settings, line_topic_specs(settings)))
    codecs = codecs_for_settings(settings)
    store = LocalBlobStore(settings.blob_dir)
    now = datetime.now(UTC)
    refs = {name: store.put(name.encode(), "text/plain") for name in "ABCDEF"}
    for ref in refs.values():
        age(store, ref, now - 30 * DAY)  # every blob is past the 7-day horizon
    item = codecs.review_item.encode
    run(
        publish(
            settings,
            [
                ("a", item(review_item("a", refs["A"], ReviewStatus.PENDING))),
                ("b", item(review_item("b", refs["B"], ReviewStatus.APPROVED, now - 20 * DAY))),
                ("c", item(review_item("c", refs["C"], ReviewStatus.APPROVED, now - DAY))),
                ("d", item(review_item("d", refs["D"], ReviewStatus.PENDING))),
                ("d", None),  # tombstoned: holds nothing
                ("e", item(review_item("e", refs["E"], ReviewStatus.PENDING))),
                ("e", item(review_item("e", refs["E"], ReviewStatus.REJECTED, now - 9 * DAY))),
                ("x", b"not a review item"),
            ],
        )
    )
    held = run(review_held_blobs(settings, codecs, now - claim_check_horizon(settings)))
    assert held == {refs["A"].sha256, refs["C"].sha256}

    env = settings_env(settings)
    result = CliRunner().invoke(cli, ["blobs", "sweep", "--dry-run"], env=env)
    assert result.exit_code == 0, result.output
    listed = [json.loads(line) for line in result.stdout.splitlines()]
    would = {line["sha256"] for line in listed}
    assert would == {refs[name].sha256 for name in "BDEF"}
    assert {line["action"] for line in listed} == {"would_delete"}
    assert all(store.path_for(ref.sha256).exists() for ref in refs.values())

    report = run(sweep_line_blobs(settings, codecs, store, now=now))
    assert {e.sha256 for e in report.deleted} == would
    assert report.kept_for_review == 2
    assert store.get(refs["A"]) == b"A"
    kept: BlobStore = LocalBlobStore(settings.blob_dir, cache_bytes=0)
    assert kept.get(refs["C"]) == b"C"
    assert not store.path_for(refs["B"].sha256).exists()


def test_only_the_worker_holding_partition_0_of_requests_sweeps() -> None:
    def app(*tps: TP) -> Any:
        return SimpleNamespace(assignor=SimpleNamespace(assigned_actives=lambda: set(tps)))

    assert sweeps_here(app(TP("p.requests", 0), TP("p.raw", 0)), "p.requests")
    assert not sweeps_here(app(TP("p.requests", 1), TP("p.raw", 0)), "p.requests")
    assert not sweeps_here(app(), "p.requests")

    def unassigned() -> set[TP]:
        raise RuntimeError("no assignment yet")

    assert not sweeps_here(
        SimpleNamespace(assignor=SimpleNamespace(assigned_actives=unassigned)), "p.requests"
    )
