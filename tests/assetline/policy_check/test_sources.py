"""Decoding past records into assets: raw records, completions, and their join to .approved."""

from __future__ import annotations

from assetline.policy_check.sources import (
    GENERATION_ERROR,
    SOURCE_MISSING,
    UNDECODABLE,
    Delivered,
    completions,
    joined,
    raw_assets,
)
from schemas.records import (
    AssetCompleted,
    AssetKind,
    BlobRef,
    CompletionStatus,
    GenerationError,
    GenerationRequest,
    RawAsset,
    ValidatedAsset,
    ValidationReport,
    Verdict,
)
from streams.codecs import Codecs

CODECS = Codecs.load()
BLOB = BlobRef(uri="file:///b", sha256="a" * 64, size=3, media_type="text/plain")


def _raw(rid: str, attempt: int = 1, *, error: bool = False) -> RawAsset:
    request = GenerationRequest(
        request_id=rid,
        idempotency_key=rid,
        tenant="t",
        campaign_id="c",
        kind=AssetKind.TEXT,
        prompt_template="Copy",
        attempt=attempt,
    )
    failure = GenerationError(code="provider.down", message="down") if error else None
    return RawAsset(
        request=request,
        blob=None if error else BLOB,
        error=failure,
        provider="offline",
        model_version="1",
        latency_ms=1.0,
    )


def _done(rid: str, status: CompletionStatus, attempt: int = 1) -> bytes:
    event = AssetCompleted(
        request_id=rid,
        idempotency_key=rid,
        tenant="t",
        campaign_id="c",
        kind=AssetKind.TEXT,
        attempt=attempt,
        status=status,
    )
    return CODECS.completed.encode(event)


def test_raw_records_become_assets_and_errors_are_skipped() -> None:
    values = [CODECS.raw.encode(_raw("a")), CODECS.raw.encode(_raw("b", error=True)), b"junk"]
    found = raw_assets(CODECS, values)
    assert [(a.request_id, a.blob, a.skipped) for a in found] == [
        ("a", BLOB, None),
        ("b", None, GENERATION_ERROR),
        ("?", None, UNDECODABLE),
    ]


def test_only_delivered_completions_are_joined_others_skipped_by_status() -> None:
    values = [
        _done("a", CompletionStatus.DELIVERED, 2),
        _done("b", CompletionStatus.REJECTED),
        _done("c", CompletionStatus.DELIVERED),
    ]
    delivered, skipped = completions(CODECS, values)
    assert delivered == [Delivered("a", 2), Delivered("c", 1)]
    assert [(s.request_id, s.skipped) for s in skipped] == [("b", "completion.rejected")]
    report = ValidationReport(verdict=Verdict.PASS)
    approved = {("a", 2): ValidatedAsset(raw=_raw("a", 2), report=report)}
    # c's approved record is gone (retention): skipped, not failed; a's first attempt is not a's
    assets = joined(delivered, approved)
    assert [(x.request_id, x.attempt, x.blob, x.skipped) for x in assets] == [
        ("a", 2, BLOB, None),
        ("c", 1, None, SOURCE_MISSING),
    ]
    assert assets[0].request is not None
    assert assets[0].request.attempt == 2
