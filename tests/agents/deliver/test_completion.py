"""The one completion event of a request, built from the validated asset."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from agents.deliver.completion import (
    completion,
    crashed,
    ends_request,
    reasons_of,
    stage_timings,
    status_for_unapproved,
)
from schemas.records import (
    AssetKind,
    BlobRef,
    CheckResult,
    CompletionStatus,
    Disposition,
    GenerationError,
    GenerationRequest,
    ModelSpec,
    RawAsset,
    ReviewAction,
    ReviewDecision,
    ValidatedAsset,
    ValidationReport,
    Verdict,
)
from streams.codecs import Codecs
from tests.support.assets import failed, make_request, make_validated, passed

CREATED = datetime(2024, 5, 17, 9, 0, 0, tzinfo=UTC)
DONE = CREATED + timedelta(seconds=2, milliseconds=500)
SHA = "0f" * 32


def request(**overrides: object) -> GenerationRequest:
    fields: dict[str, object] = {
        "request_id": "req-1",
        "idempotency_key": "idem-1",
        "tenant": "acme",
        "campaign_id": "spring",
        "kind": AssetKind.IMAGE,
        "prompt_template": "a kettle",
        "model": ModelSpec(provider="offline", version="v9"),
        "attempt": 3,
        "created_at": CREATED,
    }
    fields.update(overrides)
    return GenerationRequest(**fields)  # type: ignore[arg-type]


def validated(
    verdict: Verdict = Verdict.PASS,
    checks: list[CheckResult] | None = None,
    *,
    with_blob: bool = True,
    error: GenerationError | None = None,
) -> ValidatedAsset:
    raw = RawAsset(
        request=request(),
        blob=BlobRef(uri=f"file:///b/{SHA}", sha256=SHA, size=9, media_type="image/png")
        if with_blob
        else None,
        error=error,
        provider="offline",
        model_version="offline-image-9",
        latency_ms=1234.56789,
        cost=0.25,
    )
    report = ValidationReport(verdict=verdict, checks=checks or [], duration_ms=12.3456)
    return ValidatedAsset(raw=raw, report=report)


PASSED = CheckResult(code="image.size", passed=True, message="640x480 as asked")
FAILED_FORMAT = CheckResult(code="image.format", passed=False, message="got jpeg, want png")
FAILED_SIZE = CheckResult(code="image.size", passed=False, message="320x200, want 640x480")


def test_delivered_carries_location_sha256_and_media_type() -> None:
    done = completion(
        validated(checks=[PASSED]),
        CompletionStatus.DELIVERED,
        location="file:///delivery/acme/spring/req-1.png",
        deliver_ms=4.25,
        completed_at=DONE,
    )
    assert done.status is CompletionStatus.DELIVERED
    assert done.location == "file:///delivery/acme/spring/req-1.png"
    assert done.sha256 == SHA
    assert done.media_type == "image/png"
    assert done.reasons == []
    assert done.completed_at == DONE


def test_completion_copies_the_request_identity() -> None:
    done = completion(validated(), CompletionStatus.DELIVERED, location="x", completed_at=DONE)
    assert done.request_id == "req-1"
    assert done.idempotency_key == "idem-1"
    assert done.tenant == "acme"
    assert done.campaign_id == "spring"
    assert done.kind is AssetKind.IMAGE
    assert done.attempt == 3
    assert done.provider == "offline"
    assert done.model_version == "offline-image-9"
    assert done.cost == 0.25


def test_rejected_reasons_are_code_colon_message_of_failed_checks_in_order() -> None:
    asset = validated(Verdict.FAIL, [FAILED_FORMAT, PASSED, FAILED_SIZE])
    assert reasons_of(asset) == [
        "image.format: got jpeg, want png",
        "image.size: 320x200, want 640x480",
    ]
    done = completion(asset, status_for_unapproved(asset), completed_at=DONE)
    assert done.status is CompletionStatus.REJECTED
    assert done.reasons == reasons_of(asset)


def test_not_delivered_carries_no_location_sha_or_media_type() -> None:
    asset = validated(Verdict.FAIL, [FAILED_FORMAT])
    done = completion(asset, CompletionStatus.REJECTED, completed_at=DONE)
    assert done.location is None
    assert done.sha256 is None
    assert done.media_type is None


def test_error_verdict_is_failed() -> None:
    error = GenerationError(code="provider.timeout", message="no answer", retryable=True)
    asset = validated(
        Verdict.ERROR,
        [CheckResult(code="provider.timeout", passed=False, message="no answer")],
        with_blob=False,
        error=error,
    )
    status = status_for_unapproved(asset)
    assert status is CompletionStatus.FAILED
    done = completion(asset, status, completed_at=DONE)
    assert done.status is CompletionStatus.FAILED
    assert done.reasons == ["provider.timeout: no answer"]
    assert done.sha256 is None


@pytest.mark.parametrize(
    ("verdict", "status"),
    [(Verdict.FAIL, CompletionStatus.REJECTED), (Verdict.ERROR, CompletionStatus.FAILED)],
)
def test_status_for_unapproved(verdict: Verdict, status: CompletionStatus) -> None:
    assert status_for_unapproved(validated(verdict, [FAILED_FORMAT])) is status


def test_explicit_reasons_replace_the_check_reasons() -> None:
    asset = validated(Verdict.PASS, [PASSED])
    done = completion(
        asset, CompletionStatus.FAILED, reasons=["blob.missing: gone"], completed_at=DONE
    )
    assert done.reasons == ["blob.missing: gone"]
    assert completion(asset, CompletionStatus.FAILED, reasons=[], completed_at=DONE).reasons == []


def test_timings_have_generate_validate_deliver_and_total() -> None:
    done = completion(
        validated(), CompletionStatus.DELIVERED, location="x", deliver_ms=4.56789, completed_at=DONE
    )
    assert done.timings_ms == {
        "generate": 1234.568,
        "validate": 12.346,
        "deliver": 4.568,
        "total": 2500.0,
    }


def test_stage_timings_total_runs_from_created_to_completed() -> None:
    timings = stage_timings(validated(), 0.0, CREATED + timedelta(minutes=1, microseconds=1500))
    assert timings["total"] == 60001.5
    assert timings["deliver"] == 0.0
    assert set(timings) == {"generate", "validate", "deliver", "total"}


def test_default_completed_at_is_now() -> None:
    before = datetime.now(UTC) - timedelta(milliseconds=1)
    done = completion(validated(), CompletionStatus.DELIVERED, location="x")
    assert before <= done.completed_at <= datetime.now(UTC)
    assert done.timings_ms["total"] > 0


def test_empty_provider_and_model_version_become_null() -> None:
    asset = validated()
    raw = asset.raw.model_copy(update={"provider": "", "model_version": ""})
    done = completion(
        asset.model_copy(update={"raw": raw}), CompletionStatus.FAILED, completed_at=DONE
    )
    assert done.provider is None
    assert done.model_version is None


def test_completion_round_trips_through_its_codec() -> None:
    codec = Codecs.load().completed
    done = completion(
        validated(Verdict.FAIL, [FAILED_FORMAT]), CompletionStatus.REJECTED, completed_at=DONE
    )
    assert codec.decode(codec.encode(done)) == done


# -- the validation gateway's detours -------------------------------------------------------


def test_detours_do_not_end_a_request_but_final_dispositions_do() -> None:
    asset = make_validated([failed("palette.brand")])
    assert ends_request(asset)  # no disposition: written before the gateway, final
    for disposition, final in [
        (Disposition.REGENERATE, False),
        (Disposition.REVIEW, False),
        (Disposition.REJECTED, True),
        (Disposition.APPROVED, True),
    ]:
        assert ends_request(asset.model_copy(update={"disposition": disposition})) is final


def test_cost_sums_earlier_attempts_generation_and_judge() -> None:
    request = make_request(attempt=2, prior_cost=0.25)
    asset = make_validated([passed("x")], request=request, raw_cost=0.5, judge_cost=0.125)
    done = completion(asset, CompletionStatus.DELIVERED)
    assert done.cost == 0.875
    assert [a.purpose for a in done.attempts] == ["generate", "judge"]
    assert done.attempt == 2


def test_reviewer_rejection_leads_the_reasons_and_is_recorded() -> None:
    decision = ReviewDecision(
        decision_id="d", request_id="r-1", action=ReviewAction.REJECT, reviewer="bo", note="no"
    )
    asset = make_validated([failed("text.prohibited", "found 'free'")])
    asset = asset.model_copy(update={"review": decision})
    done = completion(asset, CompletionStatus.REJECTED)
    assert done.reasons == ["review.rejected: by bo: no", "text.prohibited: found 'free'"]
    assert done.review == decision


def test_a_crashed_delivery_is_failed_with_the_crash_as_its_reason() -> None:
    """Issue 14 #1: an approved asset whose deliver step crashed still ends its request."""
    done = crashed(validated(checks=[PASSED]), "deliver: KeyError: 'bucket'")
    assert done.status is CompletionStatus.FAILED
    assert done.reasons == ["stage.crashed: deliver: KeyError: 'bucket'"]
    assert (done.location, done.sha256, done.media_type) == (None, None, None)
    assert done.attempt == 3
    assert done.cost == 0.25
    Codecs.load().completed.encode(done)
