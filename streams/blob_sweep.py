"""Blob retention: delete blobs no event can still reference, on either blob store.

A claim check travels in records of topics with a delete retention (the line topics, the
dead-letter topic with its longer retention, the finished-generations records), and in the
review table while a person has not decided. So a blob may go when

* its last write (file mtime, object LastModified; a re-put of the same bytes re-stamps it,
  streams/blobs.py) is older than the longest of those retentions plus ``blob_sweep_grace_s``,
* and no review item refers to it that is PENDING, or was decided within that horizon (its
  ``.approved`` event may still be on its way to the deliver stage).

The sweep is idempotent and cheap to repeat (a delete re-checks the blob's time first, and a
blob already gone is no error), so two workers sweeping at once do no harm; the timer
(:func:`install_blob_sweeper`) still runs only on the worker that holds partition 0 of
``<prefix>.requests``. ``assetline blobs sweep --dry-run`` lists what would go.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter

from schemas.records import ReviewStatus
from streams.blobs import BlobEntry, BlobError, BlobStore
from streams.codecs import CodecError, Codecs
from streams.kafka import batches_to_end, open_topic_reader
from streams.topics import TopicNames

if TYPE_CHECKING:
    from streams.settings import Settings

log = logging.getLogger(__name__)


def claim_check_horizon(settings: Settings) -> timedelta:
    """How long a blob may still be referenced by an event: the longest retention of the
    topics carrying claim checks, plus the grace."""
    longest_ms = max(
        settings.topic_retention_ms,
        settings.deadletter_retention_ms,
        settings.generation_record_retention_ms,
    )
    return timedelta(milliseconds=longest_ms) + timedelta(seconds=settings.blob_sweep_grace_s)


async def review_held_blobs(settings: Settings, codecs: Codecs, since: datetime) -> set[str]:
    """SHA-256s of blobs the review table still needs: items PENDING, or decided at or
    after ``since``; read from ``<prefix>.review.items`` (latest value per key)."""
    topic = TopicNames.with_prefix(settings.topic_prefix).review_items
    latest: dict[bytes, str | None] = {}
    consumer = await open_topic_reader(settings, topic)
    try:
        async for batch in batches_to_end(consumer):
            for messages in batch.values():
                for record in messages:
                    if record.key is None:
                        continue
                    if record.value is None:
                        latest.pop(record.key, None)
                        continue
                    try:
                        item = codecs.review_item.decode(record.value)
                    except CodecError:
                        continue
                    blob = item.asset.raw.blob
                    held = item.status is ReviewStatus.PENDING or (
                        item.decision is not None and _utc(item.decision.decided_at) >= since
                    )
                    latest[record.key] = blob.sha256 if blob is not None and held else None
    finally:
        await consumer.stop()
    return {sha256 for sha256 in latest.values() if sha256 is not None}


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass
class SweepReport:
    """What one sweep saw and did (``deleted`` = what would go, on a dry run)."""

    cutoff: datetime
    dry_run: bool
    examined: int = 0
    kept_recent: int = 0
    kept_for_review: int = 0
    deleted: list[BlobEntry] = field(default_factory=list)
    failed: int = 0

    @property
    def bytes_freed(self) -> int:
        return sum(entry.size for entry in self.deleted)


async def sweep(
    store: BlobStore,
    *,
    now: datetime,
    max_age: timedelta,
    keep: Collection[str] = (),
    dry_run: bool = False,
) -> SweepReport:
    """Delete (or, on a dry run, list) blobs last written before ``now - max_age`` and not
    in ``keep``. A blob that cannot be deleted is counted in ``failed`` and left for the
    next sweep."""
    cutoff = now - max_age
    report = SweepReport(cutoff=cutoff, dry_run=dry_run)
    async for entry in store.entries():
        report.examined += 1
        if entry.modified >= cutoff:
            report.kept_recent += 1
            continue
        if entry.sha256 in keep:
            report.kept_for_review += 1
            continue
        if dry_run:
            report.deleted.append(entry)
            continue
        try:
            deleted = await store.delete_if_older(entry.sha256, cutoff)
        except BlobError as exc:
            log.warning("blob sweep: cannot delete %s: %s", entry.sha256, exc)
            report.failed += 1
            continue
        if deleted is not None:
            report.deleted.append(deleted)
        else:
            report.kept_recent += 1  # re-stamped (or gone) since it was listed
    return report


async def sweep_line_blobs(
    settings: Settings,
    codecs: Codecs,
    store: BlobStore,
    *,
    now: datetime | None = None,
    dry_run: bool = False,
) -> SweepReport:
    """One sweep with the line's own rules (:func:`claim_check_horizon`, review items)."""
    moment = now or datetime.now(UTC)
    horizon = claim_check_horizon(settings)
    keep = await review_held_blobs(settings, codecs, moment - horizon)
    return await sweep(store, now=moment, max_age=horizon, keep=keep, dry_run=dry_run)


@dataclass(frozen=True)
class SweepMetrics:
    deleted: Counter
    bytes_freed: Counter

    @classmethod
    def build(cls, registry: CollectorRegistry) -> SweepMetrics:
        return cls(
            deleted=Counter(
                "assetline_blobs_deleted",
                "Blobs the retention sweep deleted.",
                registry=registry,
            ),
            bytes_freed=Counter(
                "assetline_blob_bytes_freed",
                "Bytes the retention sweep freed.",
                registry=registry,
            ),
        )

    def record(self, report: SweepReport) -> None:
        self.deleted.inc(len(report.deleted))
        self.bytes_freed.inc(report.bytes_freed)


def sweeps_here(app: Any, topic: str) -> bool:
    """Whether this worker holds partition 0 of ``topic`` (one sweeper per group, mostly)."""
    try:
        actives = app.assignor.assigned_actives()
    except Exception:  # not assigned yet
        return False
    return any(tp.topic == topic and tp.partition == 0 for tp in actives)


def install_blob_sweeper(
    app: Any,
    registry: CollectorRegistry,
    settings: Settings,
    codecs: Codecs,
    blobs: BlobStore,
) -> SweepMetrics:
    """A timer on ``app`` sweeping ``blobs`` every ``blob_sweep_interval_s`` (0 = never); the
    store's connections are closed when the worker shuts down."""
    metrics = SweepMetrics.build(registry)

    @app.on_before_shutdown.connect  # type: ignore[untyped-decorator]
    async def _close_store(app: Any, /, *args: Any, **kwargs: Any) -> None:
        await blobs.aclose()  # the S3 store's HTTP pools (a later call opens new ones)

    if settings.blob_sweep_interval_s <= 0:
        return metrics
    requests = TopicNames.with_prefix(settings.topic_prefix).requests

    @app.timer(interval=settings.blob_sweep_interval_s)  # type: ignore[untyped-decorator]
    async def sweep_blobs() -> None:
        if not sweeps_here(app, requests):
            return
        try:
            report = await sweep_line_blobs(settings, codecs, blobs)
        except Exception:
            log.exception("blob sweep failed; the next one tries again")
            return
        metrics.record(report)
        log.info(
            "blob sweep: %d examined, %d deleted (%d bytes), %d kept recent, "
            "%d kept for review, %d failed",
            report.examined,
            len(report.deleted),
            report.bytes_freed,
            report.kept_recent,
            report.kept_for_review,
            report.failed,
        )

    return metrics
