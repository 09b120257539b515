"""The campaign summary: counts by status, cost, missing ids, and deadlines."""

from __future__ import annotations

import pytest

from assetline.campaign import CampaignSummary, parse_duration
from schemas.records import AssetCompleted, AssetKind, CompletionStatus


def done(
    rid: str, status: str = "DELIVERED", cost: float = 0.5, attempt: int = 1
) -> AssetCompleted:
    return AssetCompleted(
        request_id=rid,
        idempotency_key=rid,
        tenant="t",
        campaign_id="c",
        kind=AssetKind.TEXT,
        status=CompletionStatus(status),
        cost=cost,
        attempt=attempt,
    )


def test_counts_cost_and_missing() -> None:
    summary = CampaignSummary(["a", "b", "c", "d"])
    summary.add_all([done("a"), done("b", "REJECTED", 0.25), done("zzz", cost=100)])
    assert summary.done == 2
    assert not summary.complete
    assert summary.by_status() == {"DELIVERED": 1, "REJECTED": 1, "FAILED": 0, "FALLBACK": 0}
    assert summary.cost == pytest.approx(0.75)  # the foreign completion is ignored
    assert summary.missing() == ["c", "d"]
    report = summary.report(show_missing=1)
    assert (report["missing_count"], report["missing"]) == (2, ["c"])
    assert "2/4 done" in summary.line()
    assert "IN_REVIEW" not in summary.line()
    assert "MISSING     2" in summary.table()


def test_ids_waiting_in_review_are_in_review_not_missing() -> None:
    summary = CampaignSummary(["a", "b", "c", "d"])
    summary.add(done("a"))
    summary.mark_in_review(["a", "b", "c", "elsewhere"])  # a completed already: not in review
    assert summary.in_review == {"b", "c"}
    assert summary.missing() == ["d"]
    table = summary.table()
    assert "IN_REVIEW   2" in table
    assert "MISSING     1" in table
    report = summary.report()
    assert (report["in_review_count"], report["in_review"]) == (2, ["b", "c"])
    assert (report["missing_count"], report["missing"]) == (1, ["d"])
    assert "IN_REVIEW 2" in summary.line()  # the live line while waiting says so too
    summary.add(done("b", "REJECTED"))  # a reviewer decided: it completes
    assert summary.in_review == {"c"}
    assert summary.undelivered() == ["b"]
    assert "IN_REVIEW 1" in summary.line()


def test_a_repeated_completion_counts_once_and_a_later_attempt_replaces_it() -> None:
    summary = CampaignSummary(["a"])
    assert summary.add(done("a", "FAILED", cost=1.0))
    assert not summary.add(done("a", "FAILED", cost=1.0))  # redelivered: same attempt
    assert summary.add(done("a", "DELIVERED", cost=1.5, attempt=2))  # a replay's attempt
    assert not summary.add(done("a", "FAILED", cost=9.0))  # an older attempt arriving late
    assert summary.complete
    assert summary.by_status()["DELIVERED"] == 1
    assert summary.by_status()["FAILED"] == 0
    assert summary.cost == pytest.approx(1.5)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90.0), ("45s", 45.0), ("30m", 1800.0), ("1h30m", 5400.0), ("0.5s", 0.5)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "30x", "m30", "0", "-5", "1h 30m"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)
