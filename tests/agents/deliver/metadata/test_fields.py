"""provenance_for: what a delivered asset says about itself, taken from the validated record."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone

from agents.deliver.metadata import DIGITAL_SOURCE_TYPE, provenance_for
from agents.deliver.metadata.fields import iso_utc
from agents.inference.prompt import render_prompt
from schemas.records import (
    AssetKind,
    BlobRef,
    GenerationRequest,
    RawAsset,
    ReviewAction,
    ReviewDecision,
    ValidatedAsset,
    ValidationReport,
    Verdict,
)


def _validated(
    *, review: ReviewDecision | None = None, verdict: Verdict = Verdict.PASS
) -> ValidatedAsset:
    request = GenerationRequest(
        request_id="req-1",
        idempotency_key="idem-1",
        tenant="acme",
        campaign_id="spring",
        kind=AssetKind.IMAGE,
        prompt_template="Banner for ${persona}",
        variables={"persona": "runners"},
        metadata={"channel": "social", "secret": "do-not-leak", "locale": "en-GB"},
        attempt=3,
        feedback=["too dark"],
    )
    raw = RawAsset(
        request=request,
        blob=BlobRef(uri="file:///x", sha256="0" * 64, size=1, media_type="image/png"),
        provider="offline",
        model_version="offline-1.0",
        latency_ms=1.0,
        generated_at=datetime(2026, 3, 1, 13, 0, 0, 123000, tzinfo=timezone(timedelta(hours=1))),
    )
    return ValidatedAsset(
        raw=raw, report=ValidationReport(verdict=verdict, profile="brand-a"), review=review
    )


def test_fields_come_from_the_record() -> None:
    validated = _validated()
    p = provenance_for(validated, copyright="© ACME", creator="ACME Studio")
    assert (p.copyright, p.creator) == ("© ACME", "ACME Studio")
    assert (p.campaign_id, p.request_id, p.tenant) == ("spring", "req-1", "acme")
    assert (p.provider, p.model_version, p.attempt) == ("offline", "offline-1.0", 3)
    assert p.verdict == "PASS"
    assert p.generated_at == "2026-03-01T12:00:00.123Z"


def test_prompt_is_hashed_not_embedded_by_default() -> None:
    validated = _validated()
    rendered = render_prompt(validated.raw.request)
    assert "runners" in rendered
    assert "too dark" in rendered
    p = provenance_for(validated, copyright=None, creator=None)
    assert p.prompt_sha256 == hashlib.sha256(rendered.encode()).hexdigest()
    assert p.prompt is None
    assert "prompt" not in dict(p.assetline_fields())


def test_prompt_included_on_request() -> None:
    validated = _validated()
    p = provenance_for(validated, copyright=None, creator=None, include_prompt=True)
    assert p.prompt == render_prompt(validated.raw.request)
    assert dict(p.assetline_fields())["prompt"] == p.prompt


def test_only_allowed_metadata_keys_and_sorted() -> None:
    p = provenance_for(
        _validated(), copyright=None, creator=None, allowed_metadata=["locale", "channel", "nope"]
    )
    assert p.metadata == (("channel", "social"), ("locale", "en-GB"))
    assert provenance_for(_validated(), copyright=None, creator=None).metadata == ()


def test_verdict_names_the_reviewer() -> None:
    review = ReviewDecision(
        decision_id="d1", request_id="req-1", action=ReviewAction.APPROVE, reviewer="alice"
    )
    p = provenance_for(
        _validated(review=review, verdict=Verdict.FAIL), copyright=None, creator=None
    )
    assert p.verdict == "FAIL; approved by alice"


def test_naive_time_is_taken_as_utc() -> None:
    assert iso_utc(datetime(2026, 1, 2, 3, 4, 5)) == "2026-01-02T03:04:05.000Z"


def test_digital_source_type_is_the_iptc_code() -> None:
    assert DIGITAL_SOURCE_TYPE.endswith("/digitalsourcetype/trainedAlgorithmicMedia")
