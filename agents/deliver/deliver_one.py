"""Put an approved asset where it is used; every failure becomes a FAILED completion."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable

from agents.deliver.completion import completion, fallback_reasons
from agents.deliver.layout import UnsafeNameError, delivery_path, sidecar_path
from agents.deliver.metadata import MetadataError, Stamped
from agents.deliver.sinks import Sink, SinkError
from schemas.records import AssetCompleted, CompletionStatus, ValidatedAsset
from streams.blobs import BlobError, LocalBlobStore

Label = Callable[[ValidatedAsset, bytes], Stamped]


def unlabelled(validated: ValidatedAsset, data: bytes) -> Stamped:
    """Deliver the bytes as generated (tests, or a line with metadata switched off)."""
    return Stamped(data=data, sidecar=None)


async def deliver_approved(
    validated: ValidatedAsset, blobs: LocalBlobStore, sink: Sink, label: Label = unlabelled
) -> AssetCompleted:
    """Label the asset and write it to its place; any failure is a FAILED completion.

    An asset whose container cannot be labelled is not delivered unlabelled: provenance is
    part of what a delivery promises, so that is a failure with the reason, like a sink error.
    The completion's sha256 is of the delivered bytes, label included.
    """
    start = time.perf_counter()
    raw = validated.raw
    request = raw.request
    if raw.blob is None:  # cannot happen for an approved asset, but never trust the wire
        return completion(validated, CompletionStatus.FAILED, reasons=["deliver.no_blob"])
    try:
        path = delivery_path(
            request.tenant, request.campaign_id, request.request_id, raw.blob.media_type
        )
        labelled = label(validated, blobs.get(raw.blob))
        location = await sink.write(path, labelled.data, raw.blob.media_type)
        if labelled.sidecar is not None:
            await sink.write(sidecar_path(path), labelled.sidecar, "application/json")
    except MetadataError as exc:
        reason = f"deliver.metadata: {exc}"
        return completion(validated, CompletionStatus.FAILED, reasons=[reason])
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
        sha256=hashlib.sha256(labelled.data).hexdigest(),
        reasons=fallback_reasons(validated) if raw.fallback else [],
        deliver_ms=(time.perf_counter() - start) * 1000.0,
    )
