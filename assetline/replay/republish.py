"""Copy a range of a topic into another, as new attempts, with one batched idempotent producer.

Throughput comes from never waiting per message: records are fetched in large ``getmany``
batches, appended to one producer batch per target partition, and the delivery futures are
gathered at the end. The producer is idempotent (``acks=all``), so its own retries never
duplicate a record; running the same replay twice does write twice, and the deliver ledger
drops the second copy because it carries the same (request, attempt).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.partitioner import DefaultPartitioner

from assetline.replay.ranges import PartitionRange
from assetline.replay.rewrite import RecordKind, Rewriter, replay_headers, resubmission_marks
from schemas.attempts import generation_of
from schemas.errors import AssetlineError
from streams.codecs import CodecError
from streams.kafka_security import client_kwargs, start_client
from streams.settings import Settings
from streams.signing import RequestMarker

#: A fetch returns up to this many records; the replay loop handles them as one batch.
FETCH_RECORDS = 10_000
#: Give up when a partition yields nothing for this long although its range is not done.
IDLE_TIMEOUT_S = 15.0


class ReplayStalledError(AssetlineError, KafkaError):  # type: ignore[misc]
    """The broker stopped returning records before the range end (say, retention deleted it)."""

    code = "replay.stalled"


@dataclass
class PartitionCounts:
    """What happened to the records of one source partition."""

    read: int = 0
    written: int = 0
    undecodable: int = 0
    superseded: int = 0
    #: Requests the line would not have admitted (forged attempt, unsigned): never re-marked.
    refused: int = 0


@dataclass
class ReplayReport:
    replay_id: str
    source: str
    target: str
    dry_run: bool
    partitions: dict[int, PartitionCounts] = field(default_factory=dict)
    seconds: float = 0.0

    def total(self) -> PartitionCounts:
        out = PartitionCounts()
        for c in self.partitions.values():
            out.read += c.read
            out.written += c.written
            out.undecodable += c.undecodable
            out.superseded += c.superseded
            out.refused += c.refused
        return out


def open_producer(kafka: Settings | str) -> AIOKafkaProducer:
    """Idempotent, and tuned for bulk: a short linger and 1 MiB batches.

    ``kafka``: the line's settings (bootstrap and security), or a PLAINTEXT bootstrap string.
    """
    return AIOKafkaProducer(
        **client_kwargs(kafka),
        acks="all",
        enable_idempotence=True,
        linger_ms=20,
        max_batch_size=1024 * 1024,
        max_request_size=8 * 1024 * 1024,
    )


class BatchSender:
    """Fills one producer batch per (topic, partition) and submits it when full or flushed.

    Partitions come from the key with Kafka's default (murmur2) partitioner, as the line's own
    producers do, so a replayed request lands where its other events are.
    """

    def __init__(self, producer: AIOKafkaProducer) -> None:
        self.producer = producer
        self._partitioner = DefaultPartitioner()
        self._partitions: dict[str, list[int]] = {}
        self._open: dict[tuple[str, int], Any] = {}
        self._futures: list[asyncio.Future[Any]] = []

    async def add(
        self, topic: str, key: bytes | None, value: bytes, headers: Sequence[tuple[str, bytes]]
    ) -> None:
        partitions = self._partitions.get(topic)
        if partitions is None:
            partitions = sorted(await self.producer.partitions_for(topic))
            self._partitions[topic] = partitions
        partition = self._partitioner(key, partitions, partitions)
        slot = (topic, partition)
        batch = self._open.get(slot) or self.producer.create_batch()
        if batch.append(key=key, value=value, timestamp=None, headers=list(headers)) is None:
            if batch.record_count():
                await self._submit(slot, batch)
            batch = self.producer.create_batch()
            if batch.append(key=key, value=value, timestamp=None, headers=list(headers)) is None:
                raise ValueError(f"a record of {len(value)} bytes does not fit in a batch")
        self._open[slot] = batch

    async def flush(self) -> None:
        """Submit every open batch (they are sent after the producer's linger)."""
        open_batches, self._open = self._open, {}
        for slot, batch in open_batches.items():
            if batch.record_count():
                await self._submit(slot, batch)

    async def wait(self) -> None:
        """Flush, then wait for every submitted batch to be acknowledged."""
        await self.flush()
        futures, self._futures = self._futures, []
        await asyncio.gather(*futures)

    async def _submit(self, slot: tuple[str, int], batch: Any) -> None:
        self._futures.append(await self.producer.send_batch(batch, slot[0], partition=slot[1]))


async def republish(
    kafka: Settings | str,
    source: str,
    kind: RecordKind,
    ranges: Sequence[PartitionRange],
    target: str,
    rewriter: Rewriter,
    *,
    generation: int | None = None,
    dry_run: bool = False,
    replay_id: str | None = None,
    marker: RequestMarker | None = None,
) -> ReplayReport:
    """Replay ``ranges`` of ``source`` into ``target``; a dry run reads and decodes only.

    Undecodable records are counted and skipped; so are records that already are at the
    wanted generation (``superseded``). Replayed requests carry ``marker``'s origin mark
    (without one, generate refuses them as forged attempts); a source request the line
    would not have admitted is counted as ``refused`` and skipped.
    """
    report = ReplayReport(replay_id or str(uuid.uuid4()), source, target, dry_run)
    report.partitions = {r.partition: PartitionCounts() for r in ranges}
    todo = {TopicPartition(source, r.partition): r for r in ranges if r.count}
    started = time.perf_counter()
    if not todo:
        return report
    consumer = AIOKafkaConsumer(
        **client_kwargs(kafka),
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=8 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
    )
    producer = None if dry_run else open_producer(kafka)
    await start_client(consumer, kafka)
    try:
        if producer is not None:
            await start_client(producer, kafka)
        sender = None if producer is None else BatchSender(producer)
        consumer.assign(list(todo))
        for tp, r in todo.items():
            consumer.seek(tp, r.start)
        idle_since = time.monotonic()
        while todo:
            batches = await consumer.getmany(*todo, timeout_ms=500, max_records=FETCH_RECORDS)
            for tp, messages in batches.items():
                r = todo[tp]
                counts = report.partitions[tp.partition]
                for m in messages:
                    if m.offset >= r.stop:
                        break
                    counts.read += 1
                    try:
                        out = rewriter.rewrite(kind, m.value or b"", generation)
                    except CodecError:
                        counts.undecodable += 1
                        continue
                    if out.superseded:
                        counts.superseded += 1
                        continue
                    marks = resubmission_marks(marker, kind, out, m.value or b"", m.headers)
                    if marks is None:
                        counts.refused += 1
                        continue
                    counts.written += 1
                    if sender is not None:
                        headers = replay_headers(
                            m.headers,
                            source_topic=source,
                            partition=m.partition,
                            offset=m.offset,
                            replay_id=report.replay_id,
                            generation=generation_of(out.new_attempt),
                        )
                        headers += marks
                        key = m.key if m.key is not None else out.request_id.encode("utf-8")
                        await sender.add(target, key, out.value, headers)
            if sender is not None:
                await sender.flush()
            progressed = bool(batches)
            for tp in list(todo):
                if await consumer.position(tp) >= todo[tp].stop:
                    del todo[tp]
            if progressed:
                idle_since = time.monotonic()
            elif time.monotonic() - idle_since > IDLE_TIMEOUT_S:
                left = ", ".join(f"{tp.partition}" for tp in todo)
                raise ReplayStalledError(
                    f"{source} partitions {left} returned nothing for "
                    f"{IDLE_TIMEOUT_S:.0f}s before the range end"
                )
        if sender is not None:
            await sender.wait()
    finally:
        await consumer.stop()
        if producer is not None:
            await producer.stop()
    report.seconds = time.perf_counter() - started
    return report


def report_table(report: ReplayReport, ranges: list[PartitionRange]) -> str:
    """Counts per source partition, then the totals."""
    by_partition = {r.partition: r for r in ranges}
    wrote = "would write" if report.dry_run else "written"
    rows: list[tuple[str, ...]] = [
        ("partition", "from", "to", "read", wrote, "undecodable", "superseded")
    ]
    for p, c in sorted(report.partitions.items()):
        r = by_partition[p]
        rows.append(
            tuple(
                str(v) for v in (p, r.start, r.stop, c.read, c.written, c.undecodable, c.superseded)
            )
        )
    t = report.total()
    rows.append(
        ("total", "", "", str(t.read), str(t.written), str(t.undecodable), str(t.superseded))
    )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in rows
    )
