"""The deliver stage: approved -> sink -> DELIVERED; rejected -> REJECTED/FAILED; once each."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from agents.deliver.completion import completion, status_for_unapproved
from agents.deliver.layout import UnsafeNameError, delivery_path
from agents.deliver.ledger import already_completed
from agents.deliver.sinks import FilesystemSink, Sink, SinkError
from streams.blobs import BlobError, LocalBlobStore
from streams.records import AssetCompleted, CompletionStatus, ValidatedAsset
from streams.stage import StageIO

if TYPE_CHECKING:
    from streams.app import Line

STAGE = "deliver"


async def deliver_approved(
    validated: ValidatedAsset, blobs: LocalBlobStore, sink: Sink
) -> AssetCompleted:
    """Write the asset to its place; any failure is a FAILED completion with the reason."""
    start = time.perf_counter()
    raw = validated.raw
    request = raw.request
    if raw.blob is None:  # cannot happen for an approved asset, but never trust the wire
        return completion(validated, CompletionStatus.FAILED, reasons=["deliver.no_blob"])
    try:
        path = delivery_path(
            request.tenant, request.campaign_id, request.request_id, raw.blob.media_type
        )
        location = await sink.write(path, blobs.get(raw.blob), raw.blob.media_type)
    except (UnsafeNameError, SinkError, BlobError) as exc:
        code = getattr(exc, "code", "deliver.failed")
        return completion(validated, CompletionStatus.FAILED, reasons=[f"{code}: {exc}"])
    return completion(
        validated,
        CompletionStatus.DELIVERED,
        location=location,
        deliver_ms=(time.perf_counter() - start) * 1000.0,
    )


def install(line: Line) -> None:
    io = StageIO(line, STAGE)
    codecs = line.codecs
    topics = line.topics
    sink = FilesystemSink(line.settings.delivery_dir)
    ledger = line.app.Table(
        "completions",
        changelog_topic=topics.completed,
        key_type=bytes,
        value_type=bytes,
        partitions=line.settings.topic_partitions,
    )
    sources = line.app.topic(
        topics.names.approved,
        topics.names.rejected,
        key_serializer="raw",
        value_serializer="raw",
    )

    @line.app.agent(sources, name=STAGE)
    async def deliver(stream: Any) -> None:
        async for event in stream.events():
            async with io.handling(event):
                validated = await io.decode(codecs.validated, event)
                if validated is None:
                    continue
                request = validated.raw.request
                key = request.request_id.encode("utf-8")
                if already_completed(ledger.get(key), request.attempt, codecs.completed.decode):
                    line.metrics.duplicates.labels(STAGE).inc()
                    continue
                if event.message.topic == topics.names.approved:
                    done = await deliver_approved(validated, line.blobs, sink)
                else:
                    done = completion(validated, status_for_unapproved(validated))
                ledger[key] = codecs.completed.encode(done)  # publishes to .completed
                line.metrics.completions.labels(done.status.value).inc()
                line.metrics.events_out.labels(STAGE, "completed").inc()
