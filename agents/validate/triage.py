"""Where a judged asset goes next: approved, re-generated with feedback, a person, or rejected.

Pure functions of the report and the policy, so the whole loop is unit-testable; the validate
agent only publishes what :func:`triage` decides.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from agents.policy import Policy
from schemas.attempts import attempt_in_generation
from schemas.records import (
    CheckResult,
    Disposition,
    GenerationRequest,
    ValidatedAsset,
    Verdict,
)

#: Feedback lines are prompt text sent to a model: long check messages are cut to this.
MAX_FEEDBACK_CHARS: Final = 400


@dataclass(frozen=True)
class Triage:
    """The decision, and for REGENERATE the request of the next attempt."""

    disposition: Disposition
    retry: GenerationRequest | None = None


def failures(validated: ValidatedAsset) -> list[CheckResult]:
    return [check for check in validated.report.checks if not check.passed]


def disposition_for(validated: ValidatedAsset, policy: Policy) -> Disposition:
    """PASS is approved; ERROR (nothing to judge) is final; FAIL is repaired while it can be.

    A failure is re-generated only when *every* failed check is repairable: re-generating an
    asset whose request is itself broken (say, an invalid JSON schema) would only burn money.
    """
    report = validated.report
    if report.verdict is Verdict.PASS:
        return Disposition.APPROVED
    if report.verdict is Verdict.ERROR:
        return Disposition.REJECTED
    failed = failures(validated)
    # A replay moves the attempt into a band of its own (1001, 2001, ...): it gets the same
    # number of repairs as the original did.
    attempt = attempt_in_generation(validated.raw.request.attempt)
    if failed and all(check.repairable for check in failed) and attempt < policy.max_attempts:
        return Disposition.REGENERATE
    return Disposition.REVIEW if policy.review else Disposition.REJECTED


def feedback_lines(validated: ValidatedAsset) -> list[str]:
    """One line per failed check, in the words a model can act on."""
    lines = []
    for check in failures(validated):
        message = " ".join(check.message.split())
        if len(message) > MAX_FEEDBACK_CHARS:
            message = message[: MAX_FEEDBACK_CHARS - 1] + "…"
        lines.append(f"{check.code}: {message}")
    return lines


def next_attempt(validated: ValidatedAsset) -> GenerationRequest:
    """The same request (same id and idempotency key) as attempt + 1, carrying the feedback.

    Feedback accumulates across attempts so the model does not re-introduce a problem an
    earlier attempt was told about; the cost so far travels along so the completion reports
    what the whole request cost.
    """
    raw = validated.raw
    request = raw.request
    spent = request.prior_cost + raw.cost + validated.report.cost
    return request.model_copy(
        update={
            "attempt": request.attempt + 1,
            "feedback": [*request.feedback, *feedback_lines(validated)],
            "prior_cost": round(spent, 10),
        }
    )


def triage(validated: ValidatedAsset, policy: Policy) -> Triage:
    disposition = disposition_for(validated, policy)
    retry = next_attempt(validated) if disposition is Disposition.REGENERATE else None
    return Triage(disposition, retry)
