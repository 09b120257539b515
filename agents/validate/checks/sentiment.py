"""``text.sentiment``: how positive copy reads, as a score in [-1, 1] and a label.

The score is VADER's compound score (vaderSentiment: a rule-based English lexicon that ships in
the wheel, so nothing is downloaded at run time and the same text always gets the same score).
Labels use VADER's usual thresholds: ``positive`` at 0.05 and above, ``negative`` at -0.05 and
below, ``neutral`` between. The check runs on every TEXT asset, so the score can be stamped into
the delivered file and carried on the completion; it fails only when the brand profile sets a
``min_sentiment`` the copy falls below, and that failure is repairable: its message (score and
threshold) becomes the feedback for the next generation.

An IMAGE is scored when it is made from a prompt's copy (see :func:`image_copy`): the request
names the words the image carries or goes with in its ``headline`` or ``copy`` variable. That
score is recorded (and so stamped into the image's XMP and carried on the completion) but never
enforced: the copy is the producer's input, which a new generation of the image cannot change.
An image without such a variable gets no score at all, not one made up from the prompt (whose
words describe a picture, not the copy's tone).

When the profile's judge is asked for sentiment too (``judge.sentiment: true``), a TEXT asset's
lexicon score is provisional: the check passes and leaves the minimum to
:mod:`agents.validate.judged_sentiment`, which settles it once the judge has answered (or not).

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

from agents.policy import Policy
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
from schemas.records import AssetKind, CheckResult, GenerationRequest

#: Copy longer than this is scored on its start: marketing copy is far shorter, VADER's
#: compound score saturates long before, and 300 repetitive words score in under 10 ms.
MAX_SCORED_WORDS: Final = 300
#: Request variables that hold an image's copy, in the order they are joined for scoring: the
#: offline provider draws ``headline`` on the image, and templates put either into the prompt.
COPY_VARIABLES: Final = ("headline", "copy")
#: What a result message says when the lexicon scored only the start of a long text.
CUT_NOTE: Final = f" (first {MAX_SCORED_WORDS} words scored)"
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
    #: The judge's score counts when it gives one: pass for now, settle after the judge.
    from_judge: bool = False
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
        _, cut = scored_words(decoded.text)
        scored = CUT_NOTE if cut else ""
        if self.from_judge:
            said = f"sentiment {found.label} {found.score:.4f} by the lexicon{scored}"
            return result(
                self.code, True, f"{said}, until the judge gives its own", f"{found.score:.4f}"
            )
        return sentiment_result(found.score, self.min_score, scored)


def sentiment_result(
    score: float, min_score: float | None, note: str = "", why: str = ""
) -> CheckResult:
    """The ``text.sentiment`` result for the score that counts: fails below ``min_score``.

    ``note`` follows the score in the message (where it came from, whether the text was cut);
    ``why``, when given, ends it (why that source is the one that counts).
    """
    measured = f"{score:.4f}"
    said = f"sentiment {label_for(score)} {measured}{note}"
    end = f"; {why}" if why else ""
    if min_score is not None and score < min_score:
        message = (
            f"{said} is below min_sentiment {min_score:+.2f} (scale -1 negative to "
            f"+1 positive): rewrite the copy in a more positive tone{end}"
        )
        return result(CODE, False, message, measured)
    floor = "" if min_score is None else f", min_sentiment {min_score:+.2f}"
    return result(CODE, True, f"{said}{floor}{end}", measured)


def image_copy(request: GenerationRequest) -> str | None:
    """The copy an IMAGE request is made from, or None when it names none.

    An image is "made from a prompt's copy" when its request sets a non-blank ``headline`` or
    ``copy`` variable (:data:`COPY_VARIABLES`): the words the image carries or goes with, which
    a template puts into the prompt as ``${headline}``/``${copy}`` (the offline provider draws
    the headline even when the template does not name it). Both set: headline, then copy. The
    prompt's other words are never scored: they describe a picture, not the copy's tone.
    """
    parts = [
        " ".join(value.split())
        for name in COPY_VARIABLES
        if (value := request.variables.get(name, "")).strip()
    ]
    return "\n".join(parts) or None


@dataclass(frozen=True)
class ImageCopySentiment:
    """``text.sentiment`` on an IMAGE: scores the copy it is made from; recorded, never failed.

    A below-minimum headline is the request's, not the image's: no new generation can repair
    it, so enforcing ``min_sentiment`` here would only re-generate (and pay) in vain.
    """

    code: ClassVar[str] = CODE
    kinds: ClassVar[frozenset[AssetKind]] = frozenset({AssetKind.IMAGE})

    def __call__(self, subject: Subject) -> CheckResult:
        copy = image_copy(subject.request)
        if copy is None:
            names = " or ".join(COPY_VARIABLES)
            return result(self.code, True, f"not scored: the request names no copy ({names})")
        found = score_text(copy)
        _, cut = scored_words(copy)
        names = "+".join(n for n in COPY_VARIABLES if subject.request.variables.get(n, "").strip())
        message = (
            f"sentiment {found.label} {found.score:.4f} of the image's copy ({names})"
            f"{CUT_NOTE if cut else ''}; recorded, not enforced: a new image cannot change "
            "its request's copy"
        )
        return result(self.code, True, message, f"{found.score:.4f}")


def sentiment_checks(policy: Policy) -> tuple[TextSentiment, ImageCopySentiment]:
    """The sentiment checks of a policy's suite: text (with its minimum) and image copy.

    Every suite has them, so every copy is scored and can be stamped; only a TEXT asset below
    the profile's ``text.min_sentiment`` fails. With ``judge.sentiment`` set, the text check
    leaves that minimum to the settling step after the judge.
    """
    minimum = policy.text.min_sentiment if policy.text is not None else None
    from_judge = policy.judge is not None and policy.judge.sentiment
    return TextSentiment(minimum, from_judge=from_judge), ImageCopySentiment()


__all__ = [
    "CODE",
    "COPY_VARIABLES",
    "CUT_NOTE",
    "MAX_SCORED_WORDS",
    "NEGATIVE_AT",
    "POSITIVE_AT",
    "ImageCopySentiment",
    "Sentiment",
    "TextSentiment",
    "image_copy",
    "label_for",
    "score_text",
    "scored_words",
    "sentiment_checks",
    "sentiment_of",
    "sentiment_result",
]
