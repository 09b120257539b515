"""The records one request leaves on the line's topics, encoded as the line encodes them.

For the timeline's unit tests and ``bench/timeline.py``: real Avro values through
:class:`streams.codecs.Codecs`, with the headers and keys the stages write, no broker.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from assetline.timeline import TopicKind
from schemas.records import (
    AssetCompleted,
    AssetKind,
    BlobRef,
    CheckResult,
    CompletionStatus,
    Disposition,
    GenerationRequest,
    ProviderAttempt,
    RawAsset,
    ReviewAction,
    ReviewDecision,
    ValidatedAsset,
    ValidationReport,
    Verdict,
    WebhookJob,
)
from streams.codecs import Codecs
from streams.dead_letters import deadletter_headers

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01".encode()


@dataclass(frozen=True)
class Record:
    """What a consumer record hands :meth:`RequestIndex.apply`."""

    topic: TopicKind
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]
    timestamp: int


def request(
    rid: str, campaign: str = "spring", attempt: int = 1, **kw: object
) -> GenerationRequest:
    fields: dict[str, object] = {
        "request_id": rid,
        "idempotency_key": rid,
        "tenant": "acme",
        "campaign_id": campaign,
        "kind": AssetKind.IMAGE,
        "prompt_template": "Banner for ${persona}",
        "variables": {"persona": "p"},
        "attempt": attempt,
        "created_at": datetime(2026, 12, 3, 12, 0, tzinfo=UTC),
    }
    fields.update(kw)
    return GenerationRequest(**fields)  # type: ignore[arg-type]


def raw(req: GenerationRequest, cost: float = 0.02) -> RawAsset:
    return RawAsset(
        request=req,
        blob=BlobRef(
            uri=f"file:///var/blobs/aa/bb/{req.request_id}",
            sha256="0" * 64,
            size=1234,
            media_type="image/png",
        ),
        provider="offline",
        model_version="offline-image-1",
        latency_ms=12.5,
        cost=cost,
        alias="image-default",
        rung="primary",
        attempts=[ProviderAttempt(provider="offline", model="offline-image-1", cost=cost)],
    )


def validated(
    asset: RawAsset,
    verdict: Verdict = Verdict.PASS,
    disposition: Disposition = Disposition.APPROVED,
    failed: tuple[str, ...] = (),
    review: ReviewDecision | None = None,
) -> ValidatedAsset:
    checks = [CheckResult(code="image.size", passed=True, message="ok")]
    checks += [CheckResult(code=code, passed=False, message=f"{code} failed") for code in failed]
    return ValidatedAsset(
        raw=asset,
        report=ValidationReport(verdict=verdict, checks=checks, profile="brand"),
        disposition=disposition,
        review=review,
    )


def completed(
    req: GenerationRequest,
    status: CompletionStatus = CompletionStatus.DELIVERED,
    reasons: tuple[str, ...] = (),
    cost: float = 0.02,
) -> AssetCompleted:
    delivered = status in (CompletionStatus.DELIVERED, CompletionStatus.FALLBACK)
    return AssetCompleted(
        request_id=req.request_id,
        idempotency_key=req.idempotency_key,
        tenant=req.tenant,
        campaign_id=req.campaign_id,
        kind=req.kind,
        attempt=req.attempt,
        status=status,
        location=f"file:///deliveries/acme/{req.request_id}.png" if delivered else None,
        sha256="1" * 64 if delivered else None,
        media_type="image/png" if delivered else None,
        reasons=list(reasons),
        provider="offline",
        model_version="offline-image-1",
        cost=cost,
    )


def decision(rid: str, action: ReviewAction, reviewer: str = "ana") -> ReviewDecision:
    return ReviewDecision(
        decision_id=f"d-{rid}", request_id=rid, action=action, reviewer=reviewer, note="fine"
    )


def webhook(done: AssetCompleted, attempt: int = 1) -> WebhookJob:
    return WebhookJob(
        webhook_id=f"w-{done.request_id}",
        url="https://hooks.example/assets",
        delivery_attempt=attempt,
        due_at=datetime(2026, 12, 3, 12, 0, 5, tzinfo=UTC),
        completion=done,
    )


def delivered_story(
    codecs: Codecs, rid: str, start_ms: int, campaign: str = "spring", *, traced: bool = True
) -> list[Record]:
    """requested -> generated -> approved -> completed (DELIVERED) -> webhook, 10 ms apart."""
    headers = [("traceparent", TRACEPARENT)] if traced else []
    key = rid.encode()
    req = request(rid, campaign)
    asset = raw(req)
    done = completed(req)
    return [
        Record(TopicKind.REQUESTS, key, codecs.request.encode(req), headers, start_ms),
        Record(TopicKind.RAW, key, codecs.raw.encode(asset), headers, start_ms + 10),
        Record(TopicKind.APPROVED, key, codecs.validated.encode(validated(asset)), headers,
               start_ms + 20),
        Record(TopicKind.COMPLETED, key, codecs.completed.encode(done), headers, start_ms + 30),
        Record(TopicKind.WEBHOOKS, key, codecs.webhook_job.encode(webhook(done)), headers,
               start_ms + 40),
    ]  # fmt: skip


def review_story(codecs: Codecs, rid: str, start_ms: int, campaign: str = "spring") -> list[Record]:
    """requested -> generated -> sent to review (no decision yet)."""
    key = rid.encode()
    req = request(rid, campaign)
    asset = raw(req)
    held = validated(asset, Verdict.FAIL, Disposition.REVIEW, failed=("brand.palette",))
    value = codecs.validated.encode(held)
    return [
        Record(TopicKind.REQUESTS, key, codecs.request.encode(req), [], start_ms),
        Record(TopicKind.RAW, key, codecs.raw.encode(asset), [], start_ms + 10),
        Record(TopicKind.REJECTED, key, value, [], start_ms + 20),
        Record(TopicKind.REVIEW, key, value, [], start_ms + 20),
    ]


def failed_story(
    codecs: Codecs, rid: str, start_ms: int, reason: str, campaign: str = "spring"
) -> list[Record]:
    """requested -> completed FAILED with ``reason`` (``code: message``)."""
    key = rid.encode()
    req = request(rid, campaign)
    done = completed(req, CompletionStatus.FAILED, reasons=(reason,), cost=0.0)
    return [
        Record(TopicKind.REQUESTS, key, codecs.request.encode(req), [], start_ms),
        Record(TopicKind.COMPLETED, key, codecs.completed.encode(done), [], start_ms + 5),
    ]


def dead_letter(rid: str, at_ms: int) -> Record:
    headers = deadletter_headers(
        stage="generate",
        code="codec.malformed",
        reason="not Avro",
        topic="line.requests",
        partition=0,
        offset=7,
    )
    return Record(TopicKind.DEADLETTER, rid.encode(), b"\x00garbage", headers, at_ms)
