"""judge.sentiment through the gateway: the judge's score counts, the lexicon's when it has none."""

from __future__ import annotations

import asyncio
import hashlib
import json
from typing import Any

from prometheus_client import CollectorRegistry

from agents.deliver.completion import completion
from agents.inference.providers.base import Generated, ProviderError, Usage
from agents.policy import Policy, ProfileBook
from agents.validate.checks.sentiment import score_text
from agents.validate.gateway import Gateway
from agents.validate.judged import JudgeRecords, judgement_metrics
from agents.validate.settle_sentiment import settle_sentiment
from schemas.records import (
    AssetKind,
    BlobRef,
    CheckResult,
    CompletionStatus,
    Disposition,
    RawAsset,
    ValidatedAsset,
    ValidationReport,
    Verdict,
)
from tests.agents.validate.test_judged import DictStore
from tests.support.assets import make_request
from tests.support.scripted_provider import ScriptedProvider

GLOOMY = b"Tired of slow internet that ruins every call? Stop wasting money."
BRIGHT = b"Enjoy a wonderful weekend with the people you love."


def policy(minimum: float | None = 0.3, **judge: Any) -> Policy:
    fields: dict[str, Any] = {
        "provider": "judge",
        "model": "judge-mini",
        "rubric": "On brand?",
        "sentiment": True,
        **judge,
    }
    text = {"min_sentiment": minimum} if minimum is not None else {"prohibited": ["free"]}
    return Policy.model_validate({"id": "acme", "label": "acme", "text": text, "judge": fields})


def answer(sentiment: object = None, verdict: str = "pass") -> Generated:
    body: dict[str, Any] = {"verdict": verdict, "score": 0.9, "reasons": []}
    if sentiment is not None:
        body["sentiment"] = sentiment
    return Generated(
        json.dumps(body).encode(), "application/json", "judge", "judge-mini", Usage(9, 9)
    )


def text_raw(data: bytes) -> RawAsset:
    digest = hashlib.sha256(data).hexdigest()
    request = make_request(kind=AssetKind.TEXT, brand_profile_id="acme")
    blob = BlobRef(
        uri=f"file:///b/{digest}", sha256=digest, size=len(data), media_type="text/plain"
    )
    return RawAsset(
        request=request, blob=blob, provider="offline", model_version="offline-1", latency_ms=1.0
    )


def assess(
    judged: Policy,
    data: bytes,
    *script: Generated | ProviderError,
    records: JudgeRecords | None = None,
    raw: RawAsset | None = None,
) -> tuple[ValidatedAsset, ScriptedProvider]:
    judge = ScriptedProvider("judge", list(script))
    book = ProfileBook({("acme", None): judged})
    gateway = Gateway(book, {"judge": judge}, judgements=records)
    validated, _ = asyncio.run(gateway.assess(raw or text_raw(data), lambda ref: data))
    return validated, judge


def sentiment_check(validated: ValidatedAsset) -> CheckResult:
    (check,) = [c for c in validated.report.checks if c.code == "text.sentiment"]
    return check


def test_the_judges_score_replaces_the_lexicons_and_meets_the_minimum() -> None:
    lexicon = score_text(GLOOMY.decode()).score
    assert lexicon < 0.3  # the lexicon alone would send this copy back
    validated, judge = assess(policy(), GLOOMY, answer(0.7))
    assert len(judge.calls) == 1  # asked although the lexicon found the copy gloomy
    check = sentiment_check(validated)
    assert (check.passed, check.measured) == (True, "0.7000")
    assert f"from the judge (lexicon {lexicon:.4f})" in check.message
    assert validated.report.verdict is Verdict.PASS
    done = completion(validated, CompletionStatus.DELIVERED)
    assert (done.sentiment, done.sentiment_label) == (0.7, "positive")


def test_a_judge_finding_the_copy_gloomy_sends_it_back_with_feedback() -> None:
    assert score_text(BRIGHT.decode()).score >= 0.3
    validated, _ = assess(policy(), BRIGHT, answer(-0.4))
    check = sentiment_check(validated)
    assert (check.passed, check.repairable, check.measured) == (False, True, "-0.4000")
    assert "below min_sentiment +0.30" in check.message
    assert validated.report.verdict is Verdict.FAIL
    assert validated.disposition is Disposition.REGENERATE


def test_no_sentiment_from_the_judge_falls_back_to_the_lexicon_and_says_so() -> None:
    lexicon = score_text(GLOOMY.decode()).score
    validated, _ = assess(policy(), GLOOMY, answer(None))
    check = sentiment_check(validated)
    assert (check.passed, check.measured) == (False, f"{lexicon:.4f}")
    assert "from the lexicon" in check.message
    assert "the lexicon's score counts as the judge gave none" in check.message


def test_a_failed_judge_falls_back_to_the_lexicon_and_says_why() -> None:
    broken = ProviderError("provider.bad_request", "nope", retryable=False)
    validated, _ = assess(policy(), BRIGHT, broken)
    check = sentiment_check(validated)
    lexicon = score_text(BRIGHT.decode()).score
    assert (check.passed, check.measured) == (True, f"{lexicon:.4f}")
    assert "as the judge failed (judge.error)" in check.message


def test_a_judge_not_asked_leaves_the_lexicon_in_charge() -> None:
    """With when: if_passed the judge skips copy another rule failed; the minimum still holds."""
    strict = policy()
    strict = strict.model_copy(
        update={"text": strict.text.model_copy(update={"prohibited": ["internet"]})}  # type: ignore[union-attr]
    )
    validated, judge = assess(strict, GLOOMY, answer(0.9))
    assert judge.calls == []
    check = sentiment_check(validated)
    assert check.passed is False
    assert "the judge was not asked (it judges only assets that passed every check)" in (
        check.message
    )


def test_without_a_minimum_the_judges_score_is_still_the_one_stamped() -> None:
    validated, _ = assess(policy(minimum=None), BRIGHT, answer(-0.25))
    check = sentiment_check(validated)
    assert (check.passed, check.measured) == (True, "-0.2500")
    assert completion(validated, CompletionStatus.DELIVERED).sentiment_label == "negative"


def test_a_copy_of_the_event_reuses_the_recorded_verdict_and_its_sentiment() -> None:
    """agents.validate.judged records the judge's result: the sentiment travels inside it."""
    records = JudgeRecords(DictStore(), judgement_metrics(CollectorRegistry()))
    asset = text_raw(GLOOMY)
    first, judge = assess(policy(), GLOOMY, answer(0.7), records=records, raw=asset)
    again, second_judge = assess(policy(), GLOOMY, answer(-0.9), records=records, raw=asset)
    assert (len(judge.calls), second_judge.calls) == (1, [])
    assert sentiment_check(again) == sentiment_check(first)
    assert sentiment_check(again).measured == "0.7000"


def test_a_recorded_verdict_settles_the_same_way() -> None:
    """Copies of an event reuse the judge's recorded result: the sentiment is inside it."""
    validated, _ = assess(policy(), GLOOMY, answer(0.7))
    (verdict,) = [c for c in validated.report.checks if c.code == "judge.verdict"]
    recorded = CheckResult.model_validate(json.loads(json.dumps(verdict.model_dump(mode="json"))))
    provisional = CheckResult(
        code="text.sentiment", passed=True, message="provisional", measured="-0.3000"
    )
    report = ValidationReport(verdict=Verdict.PASS, checks=[provisional, recorded])
    settled = settle_sentiment(report, policy())
    assert settled.checks[0].measured == "0.7000"
    assert settled.verdict is Verdict.PASS


def test_profiles_without_judge_sentiment_are_left_alone() -> None:
    scored = CheckResult(code="text.sentiment", passed=True, message="ok", measured="-0.9")
    report = ValidationReport(verdict=Verdict.PASS, checks=[scored])
    assert settle_sentiment(report, policy(sentiment=False)) is report
    error = ValidationReport(verdict=Verdict.ERROR, checks=[scored])
    assert settle_sentiment(error, policy()) is error
