"""The review queue's rules: what enters it and what a decision does, without Kafka."""

from __future__ import annotations

from agents.deliver.completion import completion, status_for_unapproved
from agents.review.queue import (
    ALREADY_DECIDED,
    NOT_PENDING,
    Decided,
    Refused,
    crashed,
    decide,
    enqueue,
    failed_checks,
)
from schemas.records import (
    CompletionStatus,
    Disposition,
    ReviewAction,
    ReviewDecision,
    ReviewItem,
    ReviewStatus,
    Verdict,
)
from streams.codecs import Codecs
from streams.stage_io import STAGE_CRASHED
from tests.support.assets import failed, make_request, make_validated


def item(attempt: int = 1) -> ReviewItem:
    asset = make_validated([failed("palette.brand", "too green")], request=make_request(attempt))
    asset = asset.model_copy(update={"disposition": Disposition.REVIEW})
    queued = enqueue(None, asset)
    assert queued is not None
    return queued


def decision(
    action: ReviewAction, decision_id: str = "d-1", reviewer: str = "ana"
) -> ReviewDecision:
    return ReviewDecision(
        decision_id=decision_id, request_id="r-1", action=action, reviewer=reviewer, note="ok"
    )


def test_enqueue_makes_a_pending_item() -> None:
    queued = item()
    assert queued.status is ReviewStatus.PENDING
    assert queued.request_id == "r-1"
    assert failed_checks(queued) == ["palette.brand: too green"]


def test_redelivered_review_event_does_not_reopen_a_decided_item() -> None:
    decided = decide(item(), decision(ReviewAction.APPROVE))
    assert isinstance(decided, Decided)
    assert enqueue(decided.item, item().asset) is None
    assert enqueue(item(), item().asset) is None  # same attempt while pending: ignored too


def test_a_later_attempt_replaces_an_older_item() -> None:
    replaced = enqueue(item(1), item(2).asset)
    assert replaced is not None
    assert replaced.asset.raw.request.attempt == 2


def test_approve_publishes_to_approved_with_the_reviewer() -> None:
    outcome = decide(item(), decision(ReviewAction.APPROVE))
    assert isinstance(outcome, Decided)
    assert outcome.output == "approved"
    assert not outcome.repeat
    assert outcome.asset.disposition is Disposition.APPROVED
    assert outcome.asset.review is not None
    assert outcome.asset.review.reviewer == "ana"
    assert outcome.item.status is ReviewStatus.APPROVED


def test_reject_publishes_to_rejected() -> None:
    outcome = decide(item(), decision(ReviewAction.REJECT))
    assert isinstance(outcome, Decided)
    assert outcome.output == "rejected"
    assert outcome.asset.disposition is Disposition.REJECTED
    assert outcome.item.status is ReviewStatus.REJECTED


def test_decision_for_nothing_pending_is_refused() -> None:
    outcome = decide(None, decision(ReviewAction.APPROVE))
    assert isinstance(outcome, Refused)
    assert outcome.code == NOT_PENDING
    assert "'r-1'" in outcome.reason


def test_repeated_decision_republishes_and_a_conflicting_one_is_refused() -> None:
    first = decide(item(), decision(ReviewAction.APPROVE))
    assert isinstance(first, Decided)
    again = decide(first.item, decision(ReviewAction.APPROVE))
    assert isinstance(again, Decided)
    assert again.repeat
    assert again.output == "approved"
    other = decide(first.item, decision(ReviewAction.REJECT, decision_id="d-2", reviewer="bo"))
    assert isinstance(other, Refused)
    assert other.code == ALREADY_DECIDED
    assert "approved by ana" in other.reason
    assert "REJECT by bo" in other.reason


def test_a_crashed_review_step_is_a_final_error_with_the_crash_first() -> None:
    """Issue 14 #1: the record review publishes to ``.rejected`` when its step crashed."""
    queued = item()
    asset = queued.asset.model_copy(update={"review": decision(ReviewAction.APPROVE)})
    ended = crashed(asset, "review: KeyError: 'x'")
    assert ended.disposition is Disposition.REJECTED
    assert ended.report.verdict is Verdict.ERROR
    assert ended.review is None  # no person decided this
    assert [c.code for c in ended.report.checks] == [STAGE_CRASHED, "palette.brand"]
    Codecs.load().validated.encode(ended)
    done = completion(ended, status_for_unapproved(ended))
    assert done.status is CompletionStatus.FAILED
    assert done.reasons[0] == "stage.crashed: review: KeyError: 'x'"
