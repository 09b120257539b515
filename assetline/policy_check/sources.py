"""The past assets of a topic range: each with the request it answered and its blob ref.

``raw``: every ``RawAsset`` in the range is one asset (its blob ref is on the record).

``completed``: a completion carries the delivered file's location and hash but not the
request (its constraints, kind and brand profile, which the checks need) nor a blob ref; and
the delivered file was stamped with provenance after validation, so its bytes are not the
ones validation judged. So each ``DELIVERED`` completion is joined to its ``.approved`` record
(same request id and attempt; a person's approval is published there too), which embeds the
raw asset: the request and the claim check of the bytes validation judged. ``.approved`` is
read from its beginning to its end now (approval precedes completion, possibly by days of
review); a completion whose ``.approved`` record is gone (retention) is skipped as
``source.missing``. Completions that delivered nothing (REJECTED, FAILED) or a fallback are
skipped by status.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition

from assetline.replay.ranges import PartitionRange
from schemas.records import BlobRef, CompletionStatus, GenerationRequest, ValidatedAsset
from streams.codecs import CodecError, Codecs
from streams.kafka import batches_to_end, open_topic_reader
from streams.kafka_security import client_kwargs, start_client
from streams.settings import Settings

#: Give up on a range when the broker returns nothing for this long (retention deleted it).
IDLE_TIMEOUT_S = 15.0

UNDECODABLE = "record.undecodable"
GENERATION_ERROR = "generation.error"
SOURCE_MISSING = "source.missing"


@dataclass(frozen=True)
class PastAsset:
    """One asset to re-check, or the reason it cannot be (``skipped``)."""

    request_id: str
    attempt: int
    request: GenerationRequest | None
    blob: BlobRef | None
    skipped: str | None = None


async def read_ranges(
    kafka: Settings | str, topic: str, ranges: Sequence[PartitionRange]
) -> AsyncIterator[list[bytes]]:
    """Values of ``topic`` in ``ranges``, a fetched batch at a time; reads, never commits."""
    todo = {TopicPartition(topic, r.partition): r for r in ranges if r.count}
    if not todo:
        return
    consumer = AIOKafkaConsumer(
        **client_kwargs(kafka),
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=8 * 1024 * 1024,
    )
    await start_client(consumer, kafka)
    try:
        consumer.assign(list(todo))
        for tp, r in todo.items():
            consumer.seek(tp, r.start)
        idle_since = time.monotonic()
        while todo:
            batches = await consumer.getmany(*todo, timeout_ms=500, max_records=5_000)
            values: list[bytes] = []
            for tp, messages in batches.items():
                r = todo[tp]
                for m in messages:
                    if m.offset >= r.stop:
                        break
                    values.append(m.value or b"")
                if messages:
                    idle_since = time.monotonic()
                if await consumer.position(tp) >= r.stop:
                    del todo[tp]
            if values:
                yield values
            elif time.monotonic() - idle_since > IDLE_TIMEOUT_S:
                return  # the rest of the range is gone; what was read is reported
    finally:
        await consumer.stop()


def raw_assets(codecs: Codecs, values: Sequence[bytes]) -> list[PastAsset]:
    """``RawAsset`` records as past assets; a generation error had no asset to check."""
    out = []
    for value in values:
        try:
            raw = codecs.raw.decode(value)
        except CodecError:
            out.append(PastAsset("?", 0, None, None, UNDECODABLE))
            continue
        request = raw.request
        skipped = GENERATION_ERROR if raw.error is not None or raw.blob is None else None
        out.append(PastAsset(request.request_id, request.attempt, request, raw.blob, skipped))
    return out


@dataclass(frozen=True)
class Delivered:
    """A completion to re-check: which attempt was delivered."""

    request_id: str
    attempt: int


def completions(codecs: Codecs, values: Sequence[bytes]) -> tuple[list[Delivered], list[PastAsset]]:
    """Delivered completions to join, and the skipped rest (by status)."""
    delivered, skipped = [], []
    for value in values:
        try:
            done = codecs.completed.decode(value)
        except CodecError:
            skipped.append(PastAsset("?", 0, None, None, UNDECODABLE))
            continue
        if done.status is CompletionStatus.DELIVERED:
            delivered.append(Delivered(done.request_id, done.attempt))
        else:
            reason = f"completion.{done.status.value.lower()}"
            skipped.append(PastAsset(done.request_id, done.attempt, None, None, reason))
    return delivered, skipped


async def approved_records(
    kafka: Settings | str, codecs: Codecs, topic: str, wanted: set[tuple[str, int]]
) -> dict[tuple[str, int], ValidatedAsset]:
    """The last ``.approved`` record of each wanted (request id, attempt), read to the end now."""
    found: dict[tuple[str, int], ValidatedAsset] = {}
    if not wanted:
        return found
    consumer = await open_topic_reader(kafka, topic)
    try:
        async for batch in batches_to_end(consumer):
            for messages in batch.values():
                for m in messages:
                    try:
                        validated = codecs.validated.decode(m.value or b"")
                    except CodecError:
                        continue
                    request = validated.raw.request
                    key = (request.request_id, request.attempt)
                    if key in wanted:
                        found[key] = validated
    finally:
        await consumer.stop()
    return found


def joined(
    delivered: Sequence[Delivered], approved: dict[tuple[str, int], ValidatedAsset]
) -> list[PastAsset]:
    """Each delivered completion with the request and blob of its approved record."""
    out = []
    for done in delivered:
        validated = approved.get((done.request_id, done.attempt))
        if validated is None or validated.raw.blob is None:
            out.append(PastAsset(done.request_id, done.attempt, None, None, SOURCE_MISSING))
            continue
        raw = validated.raw
        out.append(PastAsset(done.request_id, done.attempt, raw.request, raw.blob))
    return out
