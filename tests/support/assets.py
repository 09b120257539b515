"""Records for unit tests of the gateway, review and delivery: built, never mocked."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from schemas.records import (
    AssetKind,
    BlobRef,
    CheckResult,
    Constraints,
    GenerationRequest,
    ModelSpec,
    ProviderAttempt,
    RawAsset,
    ValidatedAsset,
    ValidationReport,
    Verdict,
)


def make_request(attempt: int = 1, **fields: object) -> GenerationRequest:
    values: dict[str, object] = {
        "request_id": "r-1",
        "idempotency_key": "k-1",
        "tenant": "acme",
        "campaign_id": "spring",
        "kind": AssetKind.TEXT,
        "prompt_template": "Write copy for ${persona}",
        "variables": {"persona": "runner"},
        "attempt": attempt,
    }
    values.update(fields)
    return GenerationRequest.model_validate(values)


def make_validated(
    checks: list[CheckResult],
    *,
    verdict: Verdict | None = None,
    request: GenerationRequest | None = None,
    raw_cost: float = 0.0,
    judge_cost: float = 0.0,
) -> ValidatedAsset:
    data = b"copy"
    digest = hashlib.sha256(data).hexdigest()
    raw = RawAsset(
        request=request or make_request(),
        blob=BlobRef(uri=f"file:///b/{digest}", sha256=digest, size=4, media_type="text/plain"),
        provider="offline",
        model_version="offline-1",
        latency_ms=1.0,
        cost=raw_cost,
        attempts=[ProviderAttempt(provider="offline", model="offline-1", cost=raw_cost)],
    )
    if verdict is None:
        verdict = Verdict.PASS if all(c.passed for c in checks) else Verdict.FAIL
    judge = (
        [ProviderAttempt(provider="judge", model="small", cost=judge_cost, purpose="judge")]
        if judge_cost
        else []
    )
    report = ValidationReport(verdict=verdict, checks=checks, cost=judge_cost, attempts=judge)
    return ValidatedAsset(raw=raw, report=report)


def failed(code: str, message: str = "bad", *, repairable: bool = True) -> CheckResult:
    return CheckResult(code=code, passed=False, message=message, repairable=repairable)


def passed(code: str) -> CheckResult:
    return CheckResult(code=code, passed=True, message="ok")


def varied_request(i: int, prefix: str = "r") -> GenerationRequest:
    """The i-th of a family of requests that exercise every kind of field (for codec tests).

    Fixed ``created_at``: two encodings of the same request must be byte-identical.
    """
    return GenerationRequest(
        request_id=f"{prefix}-{i}",
        idempotency_key=f"k-{i}",
        tenant="acme",
        campaign_id="spring",
        kind=AssetKind.IMAGE if i % 2 else AssetKind.TEXT,
        prompt_template="Banner for ${persona}",
        variables={"persona": f"p{i}", "locale": "en-GB"},
        model=ModelSpec(provider="offline"),
        constraints=Constraints(width=256, height=192, format="png"),
        metadata={"trace": "abc"},
        created_at=datetime(2024, 5, 17, 9, 30, 15, 123000, tzinfo=UTC),
        feedback=["too dark"] if i % 3 == 0 else [],
    )
