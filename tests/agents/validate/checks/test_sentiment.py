"""text.sentiment: VADER score and label, the profile minimum, hostile input, a labelled corpus."""

from __future__ import annotations

import json
import socket
import time
from collections import Counter
from pathlib import Path

import pytest
from pydantic import ValidationError

from agents.policy import Policy
from agents.policy.rules import TextPolicy
from agents.validate.checks._base import Subject
from agents.validate.checks.image import ImageProber
from agents.validate.checks.sentiment import (
    MAX_SCORED_WORDS,
    TextSentiment,
    label_for,
    score_text,
    sentiment_of,
)
from agents.validate.gateway import build_checks
from schemas.records import AssetKind, CheckResult
from tests.support.assets import make_request

CORPUS = Path(__file__).resolve().parents[3] / "corpus" / "sentiment" / "marketing_en.jsonl"
#: Measured on the corpus below: 54 of 60 (0.90) with vaderSentiment 3.3.2.
CORPUS_FLOOR = 0.85


def subject(text: str | bytes) -> Subject:
    data = text.encode() if isinstance(text, str) else text
    return Subject(request=make_request(), data=data, media_type="text/plain")


@pytest.mark.parametrize(
    ("score", "label"),
    [(1.0, "positive"), (0.05, "positive"), (0.0499, "neutral"), (0.0, "neutral"),
     (-0.0499, "neutral"), (-0.05, "negative"), (-1.0, "negative")],
)  # fmt: skip
def test_labels_use_vaders_thresholds(score: float, label: str) -> None:
    assert label_for(score) == label


def test_positive_and_negative_copy_are_told_apart() -> None:
    happy = score_text("We love our customers: enjoy a wonderful, relaxing weekend!")
    sad = score_text("Terrible service, broken products and awful delays.")
    assert happy.label == "positive"
    assert 0.5 < happy.score <= 1.0
    assert sad.label == "negative"
    assert -1.0 <= sad.score < -0.5


def test_the_check_passes_without_a_minimum_and_measures_the_score() -> None:
    outcome = TextSentiment()(subject("Awful, terrible, horrible."))
    assert outcome.passed
    assert outcome.code == "text.sentiment"
    assert outcome.measured is not None
    assert float(outcome.measured) < -0.05
    assert "sentiment negative" in outcome.message


def test_below_the_profile_minimum_fails_repairably_with_score_and_threshold() -> None:
    outcome = TextSentiment(min_score=0.3)(subject("Our old checkout was slow and frustrating."))
    assert not outcome.passed
    assert outcome.repairable
    assert outcome.measured is not None
    assert outcome.measured in outcome.message
    assert "min_sentiment +0.30" in outcome.message
    assert "more positive tone" in outcome.message
    assert TextSentiment(min_score=0.3)(subject("A brilliant, delightful gift!")).passed


def test_min_sentiment_is_a_profile_field_in_range() -> None:
    assert TextPolicy(min_sentiment=0.2).min_sentiment == 0.2
    assert TextPolicy().min_sentiment is None
    with pytest.raises(ValidationError):
        TextPolicy(min_sentiment=1.5)
    with pytest.raises(ValueError, match="outside"):
        TextSentiment(min_score=-2)


def _sentiment_check(policy: Policy) -> TextSentiment:
    checks = build_checks(policy, ImageProber(), None)
    found = [c for c in checks if c.code == "text.sentiment" and AssetKind.TEXT in c.kinds]
    assert len(found) == 1
    assert isinstance(found[0], TextSentiment)
    return found[0]


def test_every_suite_scores_text_and_a_profile_sets_the_minimum() -> None:
    assert _sentiment_check(Policy(id="plain", label="plain")).min_score is None
    strict = Policy(id="strict", label="strict", text=TextPolicy(min_sentiment=0.1))
    check = _sentiment_check(strict)
    assert check.min_score == 0.1
    assert check.kinds == frozenset({AssetKind.TEXT})


# --- hostile input ------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "   \n\t ", "12345 !!! ???", "\u200b\u200d"])
def test_empty_or_wordless_text_is_neutral_zero(text: str) -> None:
    outcome = TextSentiment(min_score=-0.5)(subject(text))
    assert outcome.passed
    assert outcome.measured == "0.0000"


def test_invalid_utf8_is_a_repairable_failure() -> None:
    outcome = TextSentiment()(subject(b"caf\xe9 great"))
    assert not outcome.passed
    assert outcome.repairable
    assert "UTF-8" in outcome.message


@pytest.mark.parametrize(
    "text",
    [
        "Ce produit est magnifique et nous l'adorons.",
        "Dieses Produkt ist großartig.",
        "这是我们最好的产品",
        "هذا أفضل منتج لدينا",
    ],
)
def test_non_english_copy_scores_in_range_without_raising(text: str) -> None:
    found = score_text(text)
    assert -1.0 <= found.score <= 1.0
    assert found.label == label_for(found.score)


@pytest.mark.parametrize(
    "text",
    [
        "\U0001f600" * 30_000,  # emoji are read as their names: 60k words unbounded took minutes
        "not good but " * 20_000,
        "great " * 200_000,
        "a" * 2_000_000,
        " " * 1_000_000,
    ],
    ids=["emoji", "negations", "repeats", "one-long-word", "spaces"],
)
def test_huge_hostile_text_is_scored_fast_and_says_it_was_cut(text: str) -> None:
    start = time.perf_counter()
    outcome = TextSentiment()(subject(text))
    elapsed = time.perf_counter() - start
    assert outcome.passed
    assert outcome.measured is not None
    assert -1.0 <= float(outcome.measured) <= 1.0
    assert elapsed < 0.5, f"{elapsed:.3f} s"
    if text.strip() and len(text.split()) > MAX_SCORED_WORDS:
        assert f"first {MAX_SCORED_WORDS} words" in outcome.message


def test_scoring_needs_no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("text.sentiment tried the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    assert score_text("What a fantastic day!").label == "positive"


def test_sentiment_of_a_report_reads_the_measured_score_only() -> None:
    scored = CheckResult(code="text.sentiment", passed=True, message="ok", measured="-0.4")
    found = sentiment_of([CheckResult(code="text.not_empty", passed=True, message="ok"), scored])
    assert found is not None
    assert (found.score, found.label) == (-0.4, "negative")
    assert sentiment_of([]) is None
    for measured in ("nan", "1.5", "high", None):
        bad = CheckResult(code="text.sentiment", passed=True, message="ok", measured=measured)
        assert sentiment_of([bad]) is None


# --- the labelled corpus --------------------------------------------------------------------------


def test_accuracy_on_the_labelled_marketing_corpus() -> None:
    rows = [json.loads(line) for line in CORPUS.read_text().splitlines() if line.strip()]
    labels = Counter(row["label"] for row in rows)
    assert labels == {"positive": 20, "neutral": 20, "negative": 20}
    misses = [
        (row["label"], found.label, found.score, row["text"])
        for row in rows
        for found in (score_text(row["text"]),)
        if found.label != row["label"]
    ]
    accuracy = (len(rows) - len(misses)) / len(rows)
    print(f"\nsentiment corpus accuracy: {len(rows) - len(misses)}/{len(rows)} = {accuracy:.3f}")
    for expected, got, score, text in misses:
        print(f"  expected {expected}, got {got} ({score:+.4f}): {text}")
    assert accuracy >= CORPUS_FLOOR
