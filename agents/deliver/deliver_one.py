"""Put an approved asset where it is used; every failure becomes a FAILED completion."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from enum import StrEnum
from pathlib import PurePosixPath

from agents.deliver.completion import completion, fallback_reasons
from agents.deliver.layout import (
    UnsafeNameError,
    candidate_paths,
    delivery_path,
    sidecar_path,
)
from agents.deliver.metadata import MetadataError, Stamped
from agents.deliver.sinks import PATH_TAKEN, Sink, SinkError
from schemas.records import AssetCompleted, CompletionStatus, ValidatedAsset
from streams.blobs import BlobError, BlobStore
from streams.codecs import CodecError

Label = Callable[[ValidatedAsset, bytes], Stamped]


class Verdict(StrEnum):
    """What one delivery says about its destination (for its circuit breaker)."""

    #: The destination answered: the asset was stored, or refused for the asset's own sake.
    ANSWERED = "answered"
    #: The destination failed: a retryable error the retries did not get past.
    FAILED = "failed"
    #: Nothing learnt: the destination was not reached (the asset failed before the write).
    NONE = "none"


def verdict_of(exc: BaseException | None) -> Verdict:
    """The destination's verdict of a delivery that ended with ``exc`` (None: it succeeded).

    A retryable :class:`SinkError` (timeout, connection error, 5xx, 429), raised only once
    :class:`~agents.deliver.sinks.retry.RetryingSink` gave up, is the destination's failure; a
    non-retryable one (a 4xx: the asset refused, a path taken) is an answer. A metadata, blob
    or name error happens before the destination is called, and anything else (a cancel, a
    bug) is no verdict.
    """
    if exc is None:
        return Verdict.ANSWERED
    if isinstance(exc, SinkError):
        return Verdict.FAILED if exc.retryable else Verdict.ANSWERED
    return Verdict.NONE


def unlabelled(validated: ValidatedAsset, data: bytes) -> Stamped:
    """Deliver the bytes as generated (tests, or a line with metadata switched off)."""
    return Stamped(data=data, sidecar=None)


def earlier_completion(
    entry: bytes | None, decode: Callable[[bytes], AssetCompleted]
) -> AssetCompleted | None:
    """The request's completion in the ledger, or None (none yet, or not decodable here)."""
    if entry is None:
        return None
    try:
        return decode(entry)
    except CodecError:
        return None


async def write_version(
    sink: Sink,
    asset: PurePosixPath,
    data: bytes,
    media_type: str,
    earlier: AssetCompleted | None = None,
) -> tuple[PurePosixPath, str]:
    """Put ``data`` at the asset's name, or at its version when that name holds other bytes.

    Returns the path used and the sink's location. ``earlier`` (the request's last completion
    in the ledger) steers the choice for destinations that cannot tell what they hold; see
    :func:`agents.deliver.layout.candidate_paths`. Only a 2**-64 accident (two assets of one
    request sharing a version name) leaves no name free, and that is a ``deliver.path_taken``
    failure, never an overwrite.
    """
    sha256 = hashlib.sha256(data).hexdigest()
    delivered = earlier if earlier is not None and earlier.sha256 is not None else None
    paths = candidate_paths(
        asset,
        sha256,
        delivered.sha256 if delivered else None,
        delivered.location if delivered else None,
    )
    for path in paths[:-1]:
        try:
            return path, await sink.create(path, data, media_type)
        except SinkError as exc:
            if exc.code != PATH_TAKEN:
                raise
    return paths[-1], await sink.create(paths[-1], data, media_type)


async def deliver_approved(
    validated: ValidatedAsset,
    blobs: BlobStore,
    sink: Sink,
    label: Label = unlabelled,
    earlier: AssetCompleted | None = None,
    on_verdict: Callable[[Verdict], None] | None = None,
) -> AssetCompleted:
    """Label the asset and write it to its place; any failure is a FAILED completion.

    ``on_verdict``, when given, is told what the delivery says about the destination
    (:func:`verdict_of`) before the completion is returned; not at all when an exception (a
    cancel) leaves this function. The completion is the same either way.

    An asset whose container cannot be labelled is not delivered unlabelled: provenance is
    part of what a delivery promises, so that is a failure with the reason, like a sink error.
    The completion's sha256 is of the delivered bytes, label included, and its location is the
    exact version holding them: other bytes for the same request (a replay, a re-drive) go to
    a version (:func:`write_version`) and never replace what an earlier completion describes.
    The sidecar goes beside the version it describes. A destination that names the asset
    itself (a content API) returns a :class:`~agents.deliver.sinks.Located`, whose ids go into
    the completion's ``external_ids``.
    """
    start = time.perf_counter()
    raw = validated.raw
    request = raw.request
    report = on_verdict or _ignore
    if raw.blob is None:  # cannot happen for an approved asset, but never trust the wire
        report(Verdict.NONE)
        return completion(validated, CompletionStatus.FAILED, reasons=["deliver.no_blob"])
    try:
        path = delivery_path(
            request.tenant, request.campaign_id, request.request_id, raw.blob.media_type
        )
        labelled = label(validated, await blobs.get_async(raw.blob))
        path, location = await write_version(
            sink, path, labelled.data, raw.blob.media_type, earlier
        )
        if labelled.sidecar is not None:
            await sink.write(sidecar_path(path), labelled.sidecar, "application/json")
    except MetadataError as exc:
        report(verdict_of(exc))
        reason = f"deliver.metadata: {exc}"
        return completion(validated, CompletionStatus.FAILED, reasons=[reason])
    except (UnsafeNameError, SinkError, BlobError) as exc:
        report(verdict_of(exc))
        code = getattr(exc, "code", "deliver.failed")
        return completion(validated, CompletionStatus.FAILED, reasons=[f"{code}: {exc}"])
    report(Verdict.ANSWERED)
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
        external_ids=getattr(location, "external_ids", None),
    )


def _ignore(verdict: Verdict) -> None:
    pass
