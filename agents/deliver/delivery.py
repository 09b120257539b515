"""Put an approved asset where it is used; every failure becomes a FAILED completion."""

from __future__ import annotations

import time

from agents.deliver.completion import completion, fallback_reasons
from agents.deliver.layout import UnsafeNameError, delivery_path
from agents.deliver.sinks import Sink, SinkError
from streams.blobs import BlobError, LocalBlobStore
from streams.records import AssetCompleted, CompletionStatus, ValidatedAsset


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
    # A fallback asset is delivered like any other, but says so: downstream systems must know
    # the asset is a stand-in, not what the model would have made.
    status = CompletionStatus.FALLBACK if raw.fallback else CompletionStatus.DELIVERED
    return completion(
        validated,
        status,
        location=location,
        reasons=fallback_reasons(validated) if raw.fallback else [],
        deliver_ms=(time.perf_counter() - start) * 1000.0,
    )
