"""A brand's min_sentiment through the gateway: gloomy copy goes back for re-generation."""

from __future__ import annotations

import asyncio
import hashlib

from agents.policy import Policy, ProfileBook
from agents.policy.rules import TextPolicy
from agents.validate.gateway import Gateway
from schemas.records import AssetKind, BlobRef, Disposition, GenerationRequest, RawAsset
from tests.support.assets import make_request


def book() -> ProfileBook:
    policy = Policy(id="acme", label="acme", text=TextPolicy(min_sentiment=0.3))
    return ProfileBook({("acme", None): policy})


def raw(kind: AssetKind, data: bytes, media_type: str) -> RawAsset:
    digest = hashlib.sha256(data).hexdigest()
    request: GenerationRequest = make_request(kind=kind, brand_profile_id="acme")
    blob = BlobRef(uri=f"file:///b/{digest}", sha256=digest, size=len(data), media_type=media_type)
    return RawAsset(
        request=request, blob=blob, provider="offline", model_version="offline-1", latency_ms=1.0
    )


def test_copy_below_the_brand_minimum_is_regenerated_with_the_score_as_feedback() -> None:
    gateway = Gateway(book(), None)
    data = b"Tired of slow internet that ruins every call? Stop wasting money."
    validated, decision = asyncio.run(
        gateway.assess(raw(AssetKind.TEXT, data, "text/plain"), lambda blob: data)
    )
    assert validated.disposition is Disposition.REGENERATE
    assert decision.retry is not None
    (feedback,) = [line for line in decision.retry.feedback if line.startswith("text.sentiment")]
    assert "below min_sentiment +0.30" in feedback
    assert "more positive tone" in feedback


def test_copy_above_the_brand_minimum_passes_with_its_score_in_the_report() -> None:
    gateway = Gateway(book(), None)
    data = b"Enjoy a wonderful weekend with the people you love."
    validated, _ = asyncio.run(
        gateway.assess(raw(AssetKind.TEXT, data, "text/plain"), lambda blob: data)
    )
    (check,) = [c for c in validated.report.checks if c.code == "text.sentiment"]
    assert check.passed
    assert check.measured is not None
    assert float(check.measured) >= 0.3
    assert validated.disposition is not Disposition.REGENERATE
