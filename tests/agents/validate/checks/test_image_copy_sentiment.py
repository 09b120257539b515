"""text.sentiment on images: the copy an image is made from is scored, recorded, never enforced."""

from __future__ import annotations

import asyncio
import hashlib
import io

import pytest
from PIL import Image

from agents.policy import Policy, ProfileBook
from agents.policy.rules import TextPolicy
from agents.validate.checks._base import Subject
from agents.validate.checks.image import ImageProber
from agents.validate.checks.sentiment import (
    ImageCopySentiment,
    image_copy,
    score_text,
    sentiment_of,
)
from agents.validate.gateway import Gateway, build_checks
from agents.validate.suite import run_suite
from schemas.records import AssetKind, BlobRef, RawAsset, Verdict
from tests.support.assets import make_request

GLOOMY = "Another awful, broken winter of terrible delays"
BRIGHT = "Enjoy the brightest, happiest spring yet!"


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 24), (200, 120, 40)).save(buffer, "PNG")
    return buffer.getvalue()


def image_subject(variables: dict[str, str], template: str = "A poster for ${persona}") -> Subject:
    request = make_request(kind=AssetKind.IMAGE, prompt_template=template, variables=variables)
    return Subject(request=request, data=png(), media_type="image/png")


@pytest.mark.parametrize(
    ("variables", "copy"),
    [
        ({"headline": BRIGHT}, BRIGHT),
        ({"copy": GLOOMY}, GLOOMY),
        ({"copy": GLOOMY, "headline": BRIGHT}, f"{BRIGHT}\n{GLOOMY}"),  # headline first
        ({"headline": "  Spring\n  is   here  "}, "Spring is here"),
        ({"headline": "   ", "copy": ""}, None),
        ({"persona": "runner", "product": "wonderful shoes"}, None),
    ],
)
def test_the_copy_is_the_headline_and_copy_variables(
    variables: dict[str, str], copy: str | None
) -> None:
    request = make_request(kind=AssetKind.IMAGE, variables=variables)
    assert image_copy(request) == copy


def test_an_images_copy_is_scored_like_text() -> None:
    outcome = ImageCopySentiment()(image_subject({"headline": BRIGHT, "persona": "runner"}))
    expected = score_text(BRIGHT)
    assert expected.label == "positive"
    assert outcome.code == "text.sentiment"
    assert outcome.passed
    assert outcome.measured == f"{expected.score:.4f}"
    assert "(headline)" in outcome.message
    found = sentiment_of([outcome])
    assert found is not None
    assert (found.score, found.label) == (expected.score, "positive")


def test_gloomy_copy_is_recorded_not_failed() -> None:
    """The headline is the request's: a new image cannot change it, so it never fails."""
    outcome = ImageCopySentiment()(image_subject({"copy": GLOOMY}))
    assert outcome.passed
    assert outcome.repairable is False
    assert outcome.measured is not None
    assert float(outcome.measured) < -0.05
    assert "not enforced" in outcome.message


def test_an_image_without_copy_gets_no_sentiment_not_the_prompts() -> None:
    """The prompt describes a picture: its words are never scored as copy."""
    subject = image_subject({"persona": "mourner"}, "A funeral: grief, tears, an awful storm")
    outcome = ImageCopySentiment()(subject)
    assert outcome.passed
    assert outcome.measured is None
    assert sentiment_of([outcome]) is None
    assert "names no copy" in outcome.message


def test_every_suite_scores_image_copy_and_only_images() -> None:
    strict = Policy(id="strict", label="strict", text=TextPolicy(min_sentiment=0.5))
    checks = build_checks(strict, ImageProber(), None)
    on_images = [c for c in checks if c.code == "text.sentiment" and AssetKind.IMAGE in c.kinds]
    assert len(on_images) == 1
    assert on_images[0].kinds == frozenset({AssetKind.IMAGE})
    results = run_suite(image_subject({"headline": GLOOMY}), checks)
    (scored,) = [r for r in results if r.code == "text.sentiment"]
    assert scored.passed  # min_sentiment is a rule for TEXT assets
    assert scored.measured == f"{score_text(GLOOMY).score:.4f}"


def test_the_gateway_reports_an_images_copy_sentiment_under_a_minimum() -> None:
    policy = Policy(id="acme", label="acme", text=TextPolicy(min_sentiment=0.3))
    gateway = Gateway(ProfileBook({("acme", None): policy}), None)
    data = png()
    digest = hashlib.sha256(data).hexdigest()
    request = make_request(
        kind=AssetKind.IMAGE, brand_profile_id="acme", variables={"headline": GLOOMY}
    )
    blob = BlobRef(uri=f"file:///b/{digest}", sha256=digest, size=len(data), media_type="image/png")
    raw = RawAsset(
        request=request, blob=blob, provider="offline", model_version="offline-1", latency_ms=1.0
    )
    validated, _ = asyncio.run(gateway.assess(raw, lambda ref: data))
    assert validated.report.verdict is Verdict.PASS
    found = sentiment_of(validated.report.checks)
    assert found is not None
    assert found.score == score_text(GLOOMY).score
    assert found.label == "negative"
