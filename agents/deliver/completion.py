"""Build the one completion event of a request from what the line learned about it."""

from __future__ import annotations

from datetime import datetime

from agents.policy.sentiment import sentiment_of
from schemas.records import (
    AssetCompleted,
    CompletionStatus,
    Disposition,
    ReviewAction,
    ValidatedAsset,
    Verdict,
    utc_now,
)
from streams.stage_io import STAGE_CRASHED


def reasons_of(validated: ValidatedAsset) -> list[str]:
    """Failed checks as ``code: message`` lines, the form downstream systems show people.

    A reviewer's rejection comes first: it is the reason the request ended.
    """
    reasons = [f"{c.code}: {c.message}" for c in validated.report.checks if not c.passed]
    review = validated.review
    if review is not None and review.action is ReviewAction.REJECT:
        note = f": {review.note}" if review.note else ""
        reasons.insert(0, f"review.rejected: by {review.reviewer}{note}")
    return reasons


def fallback_reasons(validated: ValidatedAsset) -> list[str]:
    """Why the fallback was used: each failed provider attempt as ``provider/model: code``."""
    return [
        f"{a.provider}/{a.model}: {a.code}: {a.message or ''}".rstrip(": ")
        for a in validated.raw.attempts
        if a.code is not None
    ]


def stage_timings(
    validated: ValidatedAsset, deliver_ms: float, completed_at: datetime
) -> dict[str, float]:
    request = validated.raw.request
    total = (completed_at - request.created_at).total_seconds() * 1000.0
    return {
        "generate": round(validated.raw.latency_ms, 3),
        "validate": round(validated.report.duration_ms, 3),
        "deliver": round(deliver_ms, 3),
        "total": round(total, 3),
    }


def completion(
    validated: ValidatedAsset,
    status: CompletionStatus,
    *,
    location: str | None = None,
    sha256: str | None = None,
    reasons: list[str] | None = None,
    deliver_ms: float = 0.0,
    completed_at: datetime | None = None,
    external_ids: dict[str, str] | None = None,
) -> AssetCompleted:
    raw = validated.raw
    request = raw.request
    done = completed_at or utc_now()
    delivered = status in (CompletionStatus.DELIVERED, CompletionStatus.FALLBACK)
    # Measured on every text, delivered or not: a rejected copy's tone is worth seeing too.
    sentiment = sentiment_of(validated.report.checks)
    return AssetCompleted(
        request_id=request.request_id,
        idempotency_key=request.idempotency_key,
        tenant=request.tenant,
        campaign_id=request.campaign_id,
        kind=request.kind,
        attempt=request.attempt,
        status=status,
        location=location,
        sha256=(sha256 or raw.blob.sha256) if delivered and raw.blob else None,
        media_type=raw.blob.media_type if delivered and raw.blob else None,
        reasons=reasons if reasons is not None else reasons_of(validated),
        provider=raw.provider or None,
        model_version=raw.model_version or None,
        # Every attempt of the request is paid for: earlier generations and judge calls too.
        cost=round(request.prior_cost + raw.cost + validated.report.cost, 10),
        alias=raw.alias,
        attempts=[*raw.attempts, *validated.report.attempts],
        timings_ms=stage_timings(validated, deliver_ms, done),
        completed_at=done,
        review=validated.review,
        rung=raw.rung,
        external_ids=external_ids or {},
        sentiment=sentiment.score if sentiment is not None else None,
        sentiment_label=sentiment.label if sentiment is not None else None,
    )


def crashed(validated: ValidatedAsset, message: str) -> AssetCompleted:
    """The FAILED completion of a request whose deliver step crashed (reason ``stage.crashed``).

    Nothing was delivered as far as the line knows, so no location or hash is claimed.
    """
    return completion(validated, CompletionStatus.FAILED, reasons=[f"{STAGE_CRASHED}: {message}"])


def ends_request(validated: ValidatedAsset) -> bool:
    """Only final dispositions complete a request: a re-generation or a review is a detour.

    Records without a disposition predate the gateway, when every rejection was final.
    """
    return validated.disposition not in (Disposition.REGENERATE, Disposition.REVIEW)


def status_for_unapproved(validated: ValidatedAsset) -> CompletionStatus:
    """A judged-and-failed asset is REJECTED; no asset at all (ERROR) is FAILED."""
    if validated.report.verdict is Verdict.ERROR:
        return CompletionStatus.FAILED
    return CompletionStatus.REJECTED
