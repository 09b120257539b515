"""validate(): the validate stage's verdicts, without Kafka (triage() decides where they go)."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from PIL import Image
from pydantic import ValidationError

from agents.deliver.completion import completion, ends_request, status_for_unapproved
from agents.validate.checks import default_checks
from agents.validate.checks._base import Subject
from agents.validate.validate_one import (
    MAX_CHECK_TEXT,
    bounded,
    crashed,
    unreadable,
    validate,
)
from schemas.records import (
    AssetKind,
    BlobRef,
    CheckResult,
    CompletionStatus,
    Constraints,
    Disposition,
    GenerationError,
    GenerationRequest,
    RawAsset,
    ValidatedAsset,
    Verdict,
)
from streams.codecs import Codecs
from streams.stage_io import STAGE_CRASHED


def request(kind: AssetKind, **constraints: object) -> GenerationRequest:
    return GenerationRequest(
        request_id="r-1",
        idempotency_key="k-1",
        tenant="acme",
        campaign_id="c-1",
        kind=kind,
        prompt_template="anything",
        constraints=Constraints.model_validate(constraints),
    )


def raw_with(data: bytes, kind: AssetKind, media_type: str, **constraints: object) -> RawAsset:
    digest = hashlib.sha256(data).hexdigest()
    blob = BlobRef(
        uri=f"file:///blobs/{digest}", sha256=digest, size=len(data), media_type=media_type
    )
    return RawAsset(
        request=request(kind, **constraints),
        blob=blob,
        provider="offline",
        model_version="offline-1",
        latency_ms=3.0,
    )


def failed_raw() -> RawAsset:
    return RawAsset(
        request=request(AssetKind.IMAGE),
        error=GenerationError(code="provider.timeout", message="no answer in 30s", retryable=True),
        provider="openai",
        model_version="gpt-image-1",
        latency_ms=30_000.0,
    )


def png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), "navy").save(buffer, "PNG")
    return buffer.getvalue()


def fake_clock(*readings: float) -> Iterator[float]:
    return iter(readings)


def test_good_image_passes_and_is_approved() -> None:
    data = png(64, 64)
    raw = raw_with(data, AssetKind.IMAGE, "image/png", format="png", width=64, height=64)

    validated = validate(raw, data, default_checks())

    assert validated.raw == raw
    assert validated.report.verdict is Verdict.PASS
    assert [c.code for c in validated.report.checks] == [
        "image.decodes",
        "image.format",
        "image.size",
        "image.container",
        "image.animated",
    ]


def test_wrong_size_fails() -> None:
    data = png(64, 32)
    raw = raw_with(data, AssetKind.IMAGE, "image/png", width=64, height=64)

    validated = validate(raw, data, default_checks())

    assert validated.report.verdict is Verdict.FAIL
    failed = [c for c in validated.report.checks if not c.passed]
    assert [(c.code, c.measured) for c in failed] == [("image.size", "64x32")]


def test_text_over_budget_fails() -> None:
    data = b"Fresh deals every day!"
    raw = raw_with(data, AssetKind.TEXT, "text/plain", max_chars=10)
    validated = validate(raw, data, default_checks())
    assert validated.report.verdict is Verdict.FAIL
    assert validated.report.checks[1].message == "22 chars exceeds max_chars 10 by 12"


def test_generation_error_is_an_error_verdict_carrying_the_reason() -> None:
    validated = validate(failed_raw(), None, default_checks())
    assert validated.report.verdict is Verdict.ERROR
    assert validated.report.checks == [
        CheckResult(code="provider.timeout", passed=False, message="no answer in 30s")
    ]


def test_missing_bytes_for_a_blob_is_an_error_not_a_crash() -> None:
    raw = raw_with(b"hello", AssetKind.TEXT, "text/plain")
    validated = validate(raw, None, default_checks())
    assert validated.report.verdict is Verdict.ERROR
    (result,) = validated.report.checks
    assert result.code == "validate.missing_data"
    assert raw.blob is not None
    assert raw.blob.uri in result.message


def test_the_contract_refuses_an_asset_without_blob_or_error() -> None:
    with pytest.raises(ValidationError, match="exactly one of 'blob' and 'error'"):
        RawAsset(
            request=request(AssetKind.TEXT), provider="offline", model_version="1", latency_ms=1.0
        )


def test_duration_is_measured_with_the_given_clock() -> None:
    data = b"hello"
    raw = raw_with(data, AssetKind.TEXT, "text/plain")
    readings = fake_clock(10.0, 10.25)
    validated = validate(raw, data, default_checks(), clock=lambda: next(readings))
    assert validated.report.duration_ms == 250.0

    errors = fake_clock(5.0, 5.002)
    errored = validate(failed_raw(), None, default_checks(), clock=lambda: next(errors))
    assert abs(errored.report.duration_ms - 2.0) < 1e-9


@dataclass(frozen=True)
class Explodes:
    code: str = "stub.explodes"
    kinds: frozenset[AssetKind] = frozenset(AssetKind)

    def __call__(self, subject: Subject) -> CheckResult:
        raise KeyError("missing")


def test_a_crashing_check_rejects_instead_of_raising() -> None:
    data = b"hello"
    raw = raw_with(data, AssetKind.TEXT, "text/plain")
    validated = validate(raw, data, [*default_checks(), Explodes()])
    assert validated.report.verdict is Verdict.FAIL
    assert validated.report.checks[-1].message == "check crashed: KeyError: 'missing'"


def test_unreadable_blob_is_an_error_verdict() -> None:
    raw = raw_with(b"x", AssetKind.TEXT, "text/plain")
    validated = unreadable(raw, "blob.missing", "no blob at that address")
    assert validated.report.verdict is Verdict.ERROR
    assert validated.report.checks == [
        CheckResult(code="blob.missing", passed=False, message="no blob at that address")
    ]


def test_validated_asset_round_trips_through_json() -> None:
    data = png(8, 8)
    raw = raw_with(data, AssetKind.IMAGE, "image/png", format="webp")
    validated = validate(raw, data, default_checks())
    assert ValidatedAsset.model_validate_json(validated.model_dump_json()) == validated
    assert ValidatedAsset.model_validate_json(validated.model_dump_json()) == validated


def test_a_check_quoting_the_whole_asset_is_cut_so_the_record_stays_small() -> None:
    """Issue 12 #2: jsonschema's ``not`` error reprs the instance; a 1 MB document made a
    1 MB message, and the validated record outgrew the producer's limit (no completion)."""
    schema = {"type": "array", "items": {"type": "string"}, "not": {}}
    document = json.dumps(["x" * 1000] * 1000).encode()  # 1 MB, under the 2 MiB JSON cap
    raw = raw_with(document, AssetKind.JSON, "application/json", json_schema=json.dumps(schema))
    validated = validate(raw, document, default_checks())
    (failed,) = [c for c in validated.report.checks if not c.passed]
    assert failed.code == "json.schema"
    assert len(failed.message) <= MAX_CHECK_TEXT + 40
    assert failed.message.endswith("characters)")
    assert len(Codecs.load().validated.encode(validated)) < 64 * 1024
    short = CheckResult(code="c", passed=False, message="m", measured="1")
    assert bounded(short) is short


def test_a_crashed_validation_is_a_final_error_that_deliver_completes_failed() -> None:
    """Issue 14 #1: the record validate publishes to ``.rejected`` when its step crashed."""
    raw = raw_with(b"copy", AssetKind.TEXT, "text/plain").model_copy(update={"cost": 0.5})
    asset = crashed(raw, "validate: OverflowError: int too large to convert to float")
    assert asset.raw == raw
    assert asset.disposition is Disposition.REJECTED
    assert asset.report.verdict is Verdict.ERROR
    (check,) = asset.report.checks
    assert (check.code, check.passed) == (STAGE_CRASHED, False)
    Codecs.load().validated.encode(asset)
    assert ends_request(asset)
    done = completion(asset, status_for_unapproved(asset))
    assert done.status is CompletionStatus.FAILED
    assert done.sha256 is None  # nothing was delivered
    assert done.reasons == [
        "stage.crashed: validate: OverflowError: int too large to convert to float"
    ]
    assert done.cost == 0.5
