"""``text.sentiment``: how positive copy reads, as a score in [-1, 1] and a label.

The score is VADER's compound score (vaderSentiment: a rule-based English lexicon that ships in
the wheel, so nothing is downloaded at run time and the same text always gets the same score).
Labels use VADER's usual thresholds: ``positive`` at 0.05 and above, ``negative`` at -0.05 and
below, ``neutral`` between. The check runs on every TEXT asset, so the score can be stamped into
the delivered file and carried on the completion; it fails only when the brand profile sets a
``min_sentiment`` the copy falls below, and that failure is repairable: its message (score and
threshold) becomes the feedback for the next generation.

VADER knows English only: copy in another language mostly scores near 0 (neutral). Long texts
are scored on their first :data:`MAX_SCORED_WORDS` words (emoji counted as the words of their
names, as VADER reads them): VADER's cost grows faster than the square of the word count on
repetitive text (2,000 repeated emoji took 3.4 s, 20,000 took minutes), and checks run on
threads under a deadline. The message says when a text was cut.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache
from typing import Any, ClassVar, Final

from agents.policy.sentiment import (
    CODE,
    NEGATIVE_AT,
    POSITIVE_AT,
    Sentiment,
    label_for,
    sentiment_of,
)
from agents.validate.checks._base import Subject, result
from agents.validate.checks.text import decode_utf8
from schemas.records import AssetKind, CheckResult

#: Copy longer than this is scored on its start: marketing copy is far shorter, VADER's
#: compound score saturates long before, and 300 repetitive words score in under 10 ms.
MAX_SCORED_WORDS: Final = 300
#: Only this much of a text is read to find those words (a huge asset is never copied whole).
_MAX_READ_CHARS: Final = 40 * MAX_SCORED_WORDS


@cache
def _analyzer() -> Any:
    """The VADER analyzer; reads its bundled lexicon files once (~20 ms), never the network."""
    from vaderSentiment.vaderSentiment import (  # type: ignore[import-untyped]
        SentimentIntensityAnalyzer,
    )

    return SentimentIntensityAnalyzer()


def _words(text: str) -> list[str]:
    """Words as VADER reads them: each emoji replaced by its name (``grinning face``)."""
    emojis: dict[str, str] = _analyzer().emojis
    spelled = "".join(f" {emojis[char]} " if char in emojis else char for char in text)
    return spelled.split()


def scored_words(text: str) -> tuple[list[str], bool]:
    """The words scored (at most :data:`MAX_SCORED_WORDS`) and whether the text was cut."""
    words = _words(text[:_MAX_READ_CHARS])
    cut = len(text) > _MAX_READ_CHARS or len(words) > MAX_SCORED_WORDS
    return words[:MAX_SCORED_WORDS], cut


def score_text(text: str) -> Sentiment:
    """The sentiment of ``text`` (its first :data:`MAX_SCORED_WORDS` words)."""
    words, _ = scored_words(text)
    if not words:
        return Sentiment(0.0, "neutral")
    compound = float(_analyzer().polarity_scores(" ".join(words))["compound"])
    if not math.isfinite(compound):  # never seen; a NaN must not reach a record or a profile
        compound = 0.0
    score = round(max(-1.0, min(1.0, compound)), 4)
    return Sentiment(score, label_for(score))


@dataclass(frozen=True)
class TextSentiment:
    """``text.sentiment``: scores the copy; fails below the profile's ``min_sentiment``."""

    min_score: float | None = None
    code: ClassVar[str] = CODE
    kinds: ClassVar[frozenset[AssetKind]] = frozenset({AssetKind.TEXT})

    def __post_init__(self) -> None:
        if self.min_score is not None and not -1.0 <= self.min_score <= 1.0:
            raise ValueError(f"min_sentiment {self.min_score} is outside [-1, 1]")

    def __call__(self, subject: Subject) -> CheckResult:
        decoded = decode_utf8(subject.data)
        if decoded.text is None:
            return result(self.code, False, str(decoded.problem))
        found = score_text(decoded.text)
        measured = f"{found.score:.4f}"
        _, cut = scored_words(decoded.text)
        scored = f" (first {MAX_SCORED_WORDS} words scored)" if cut else ""
        said = f"sentiment {found.label} {measured}{scored}"
        if self.min_score is not None and found.score < self.min_score:
            message = (
                f"{said} is below min_sentiment {self.min_score:+.2f} (scale -1 negative to "
                "+1 positive): rewrite the copy in a more positive tone"
            )
            return result(self.code, False, message, measured)
        floor = "" if self.min_score is None else f", min_sentiment {self.min_score:+.2f}"
        return result(self.code, True, f"{said}{floor}", measured)


__all__ = [
    "CODE",
    "MAX_SCORED_WORDS",
    "NEGATIVE_AT",
    "POSITIVE_AT",
    "Sentiment",
    "TextSentiment",
    "label_for",
    "score_text",
    "scored_words",
    "sentiment_of",
]
