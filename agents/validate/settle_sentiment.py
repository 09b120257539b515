"""Which sentiment counts when the judge is asked for one: the judge's, else the lexicon's.

With ``judge.sentiment: true`` a TEXT asset's ``text.sentiment`` check passes provisionally
with the lexicon's score (so a ``when: if_passed`` judge is still asked about copy the lexicon
finds gloomy). Once the judge has answered, or was not asked, :func:`settle_sentiment` writes
the result that counts: the judge's score when its verdict has a usable one, else the lexicon's
with the reason in the message; ``text.min_sentiment`` is checked against that score, and the
report's verdict is folded again. The score in ``measured`` is the one delivery stamps and the
completion carries.
"""

from __future__ import annotations

from typing import Final

from agents.policy import Policy
from agents.policy.sentiment import CODE
from agents.validate.checks.sentiment import CUT_NOTE, sentiment_result
from agents.validate.judge import CODE_VERDICT, JudgedSentiment, judged_sentiment
from agents.validate.suite import verdict
from schemas.records import CheckResult, ValidationReport, Verdict

#: The judge's own words in a fallback reason are cut to this many characters.
_WHY_CHARS: Final = 200


def settle_sentiment(report: ValidationReport, policy: Policy) -> ValidationReport:
    """``report`` with its provisional ``text.sentiment`` settled; unchanged when there is none.

    Nothing changes unless the policy's judge is asked for sentiment and the report holds a
    lexicon score (a TEXT asset whose bytes decoded): an ERROR report or an image is left as is.
    """
    judge = policy.judge
    if judge is None or not judge.sentiment or report.verdict is Verdict.ERROR:
        return report
    checks = list(report.checks)
    index = next((i for i, check in enumerate(checks) if check.code == CODE), None)
    measured = checks[index].measured if index is not None else None
    if index is None or measured is None:
        return report
    lexicon = float(measured)
    minimum = policy.text.min_sentiment if policy.text is not None else None
    judged = next((c for c in reversed(checks) if c.code.startswith("judge.")), None)
    said = judged_sentiment(judged) if judged is not None else None
    if said is not None and said.score is not None:
        note = f" from the judge (lexicon {lexicon:.4f})"
        settled = sentiment_result(said.score, minimum, note)
    else:
        cut = CUT_NOTE if CUT_NOTE in checks[index].message else ""
        why = f"the lexicon's score counts as {_why_not(judged, judge.when, said)}"
        settled = sentiment_result(lexicon, minimum, f" from the lexicon{cut}", why)
    checks[index] = settled
    return report.model_copy(update={"checks": checks, "verdict": verdict(checks)})


def _why_not(judged: CheckResult | None, when: str, said: JudgedSentiment | None) -> str:
    """Why the judge's sentiment is not the one that counts, for the check's message."""
    if judged is None:
        if when == "if_passed":
            return "the judge was not asked (it judges only assets that passed every check)"
        return "the judge was not asked"
    if said is not None:
        return _clip(said.problem or "the judge gave none")
    if judged.code == CODE_VERDICT:
        return "the judge's verdict holds no sentiment"
    return f"the judge failed ({judged.code}): {_clip(judged.message)}"


def _clip(text: str) -> str:
    return text if len(text) <= _WHY_CHARS else text[: _WHY_CHARS - 1] + "…"


__all__ = ["settle_sentiment"]
