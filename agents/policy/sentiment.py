"""Sentiment as the line records it: a score in [-1, 1], its label, and how to read a report.

Shared by validation (which scores copy in ``text.sentiment``) and delivery (which stamps the
score into the file and the completion); stages do not import each other, so it lives here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from schemas.records import CheckResult

CODE: Final = "text.sentiment"
#: VADER's customary label thresholds on the compound score.
POSITIVE_AT: Final = 0.05
NEGATIVE_AT: Final = -0.05


@dataclass(frozen=True, slots=True)
class Sentiment:
    """A score in [-1, 1] and its label."""

    score: float
    label: str


def label_for(score: float) -> str:
    """``negative`` / ``neutral`` / ``positive`` by VADER's ±0.05 thresholds."""
    if score >= POSITIVE_AT:
        return "positive"
    if score <= NEGATIVE_AT:
        return "negative"
    return "neutral"


def sentiment_of(checks: Sequence[CheckResult]) -> Sentiment | None:
    """The sentiment a validation report measured, or None when it has no usable one.

    ``text.sentiment`` writes the score as text in ``measured``; anything else (an older or
    foreign report, a value out of range) is None rather than a guess.
    """
    for check in checks:
        if check.code != CODE or check.measured is None:
            continue
        try:
            score = float(check.measured)
        except ValueError:
            return None
        if not math.isfinite(score) or not -1.0 <= score <= 1.0:
            return None
        return Sentiment(score, label_for(score))
    return None


__all__ = ["CODE", "NEGATIVE_AT", "POSITIVE_AT", "Sentiment", "label_for", "sentiment_of"]
