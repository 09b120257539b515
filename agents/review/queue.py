"""The review queue's rules as pure functions: what enters it, and what a decision does.

The agent stores :class:`~schemas.records.ReviewItem` values in a table keyed by request id and
publishes whatever :func:`decide` returns; keeping decided items (instead of deleting them) is
what lets a repeated decision be told apart from a decision about something never queued.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal

from schemas.records import (
    CheckResult,
    Disposition,
    ReviewAction,
    ReviewDecision,
    ReviewItem,
    ReviewStatus,
    ValidatedAsset,
    Verdict,
    utc_now,
)
from streams.stage_io import STAGE_CRASHED

NOT_PENDING: Final = "review.not_pending"
ALREADY_DECIDED: Final = "review.already_decided"


def enqueue(
    existing: ReviewItem | None, asset: ValidatedAsset, now: datetime | None = None
) -> ReviewItem | None:
    """A new pending item, or None when the table already holds this attempt (or a later one).

    A redelivered review event must not reopen an item a person already decided.
    """
    attempt = asset.raw.request.attempt
    if existing is not None and existing.asset.raw.request.attempt >= attempt:
        return None
    return ReviewItem(
        request_id=asset.raw.request.request_id,
        status=ReviewStatus.PENDING,
        asset=asset,
        queued_at=now or utc_now(),
    )


@dataclass(frozen=True)
class Decided:
    """Store ``item``, publish ``asset`` to ``output``.

    ``repeat`` marks a decision seen before: the output is published again anyway, because
    the first publish may be what a crash lost; the completion ledger keeps it single.
    """

    item: ReviewItem
    asset: ValidatedAsset
    output: Literal["approved", "rejected"]
    repeat: bool = False


@dataclass(frozen=True)
class Refused:
    """A decision that cannot apply; it goes to the dead-letter topic with this reason."""

    code: str
    reason: str


def decide(existing: ReviewItem | None, decision: ReviewDecision) -> Decided | Refused:
    if existing is None:
        return Refused(
            NOT_PENDING, f"no asset of request {decision.request_id!r} is waiting for review"
        )
    if existing.status is not ReviewStatus.PENDING:
        earlier = existing.decision
        if earlier is not None and earlier.decision_id == decision.decision_id:
            return _apply(existing, earlier, repeat=True)
        by = f" by {earlier.reviewer}" if earlier is not None else ""
        return Refused(
            ALREADY_DECIDED,
            f"request {decision.request_id!r} was already {existing.status.value.lower()}{by}; "
            f"decision {decision.decision_id!r} ({decision.action.value} by "
            f"{decision.reviewer}) was not applied",
        )
    return _apply(existing, decision, repeat=False)


def _apply(item: ReviewItem, decision: ReviewDecision, *, repeat: bool) -> Decided:
    approve = decision.action is ReviewAction.APPROVE
    asset = item.asset.model_copy(
        update={
            "disposition": Disposition.APPROVED if approve else Disposition.REJECTED,
            "review": decision,
        }
    )
    status = ReviewStatus.APPROVED if approve else ReviewStatus.REJECTED
    stored = item.model_copy(update={"status": status, "decision": decision})
    return Decided(stored, asset, "approved" if approve else "rejected", repeat)


def crashed(asset: ValidatedAsset, message: str) -> ValidatedAsset:
    """The final record of an asset whose review step crashed: ERROR, disposition REJECTED.

    Published to ``.rejected`` so the deliver stage ends the request FAILED with
    ``stage.crashed`` as its first reason; the report's other results, costs and judge calls
    are kept, so the completion still says what the request cost. No reviewer is recorded.
    """
    check = CheckResult(code=STAGE_CRASHED, passed=False, message=message)
    report = asset.report.model_copy(
        update={"verdict": Verdict.ERROR, "checks": [check, *asset.report.checks]}
    )
    return asset.model_copy(
        update={"report": report, "disposition": Disposition.REJECTED, "review": None}
    )


def failed_checks(item: ReviewItem) -> list[str]:
    """What the reviewer is asked to overrule, as ``code: message`` lines."""
    return [f"{c.code}: {c.message}" for c in item.asset.report.checks if not c.passed]
