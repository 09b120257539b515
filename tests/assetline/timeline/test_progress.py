"""assetline.timeline.progress: a campaign's counts, review, failures, cost, rate and ETA."""

from __future__ import annotations

import pytest

from assetline.timeline import RequestIndex, all_progress, campaign_progress, progress_text
from streams.codecs import Codecs
from tests.support.request_events import (
    Record,
    dead_letter,
    delivered_story,
    failed_story,
    review_story,
)

NOW = 1_800_000_000_000


@pytest.fixture(scope="module")
def codecs() -> Codecs:
    return Codecs.load()


def _apply(index: RequestIndex, records: list[Record]) -> None:
    for r in records:
        index.apply(r.topic, r.key, r.value, r.headers, r.timestamp)


@pytest.fixture
def index(codecs: Codecs) -> RequestIndex:
    """spring: 6 delivered (the last 3 within the last minute), 2 in review, 2 failed,
    1 dead-lettered, 2 in flight; autumn: 1 delivered."""
    index = RequestIndex(codecs)
    for i in range(6):
        start = NOW - (600_000 if i < 3 else 30_000) + i
        _apply(index, delivered_story(codecs, f"d{i}", start))
    for i in range(2):
        _apply(index, review_story(codecs, f"v{i}", NOW - 20_000))
    _apply(index, failed_story(codecs, "f0", NOW - 10_000, "routing.unknown_provider: x"))
    _apply(index, failed_story(codecs, "f1", NOW - 10_000, "routing.unknown_provider: y"))
    _apply(index, [*delivered_story(codecs, "x0", NOW - 5000)[:2], dead_letter("x0", NOW)])
    for i in range(2):
        _apply(index, delivered_story(codecs, f"i{i}", NOW - 1_000)[:2])
    _apply(index, delivered_story(codecs, "other", NOW - 1_000, campaign="autumn"))
    return index


def test_waiting_in_review_is_not_missing(index: RequestIndex) -> None:
    p = campaign_progress(index, "spring", now_ms=NOW, window_s=60)
    assert p.requests == 13
    assert p.by_status == {
        "DELIVERED": 6,
        "REJECTED": 0,
        "FAILED": 2,
        "FALLBACK": 0,
        "IN_REVIEW": 2,
        "DEAD_LETTER": 1,
        "IN_FLIGHT": 2,
    }
    assert p.waiting_in_review == 2
    assert p.completed == 8
    assert p.failed_by_reason == {"routing.unknown_provider": 2}


def test_cost_rate_and_time_left(index: RequestIndex) -> None:
    p = campaign_progress(index, "spring", now_ms=NOW, window_s=60)
    # 6 delivered at 0.02, 2 in review and 3 generated-only at 0.02 each; failed cost nothing
    assert p.cost == pytest.approx(0.02 * 11)
    assert p.rate_per_s == pytest.approx(5 / 60)  # 3 delivered + 2 failed in the window
    assert p.remaining == 2
    assert p.eta_s == pytest.approx(2 / (5 / 60))


def test_expected_size_counts_unseen_requests_as_remaining(index: RequestIndex) -> None:
    p = campaign_progress(index, "spring", now_ms=NOW, window_s=60, expected=20)
    assert p.requests == 20
    assert p.remaining == 9


def test_no_recent_completion_means_no_estimate(index: RequestIndex) -> None:
    p = campaign_progress(index, "spring", now_ms=NOW + 3_600_000, window_s=60)
    assert p.rate_per_s == 0
    assert p.eta_s is None
    assert p.as_json()["eta_s"] is None


def test_every_campaign_is_listed(index: RequestIndex) -> None:
    progress = all_progress(index, now_ms=NOW)
    assert [p.campaign_id for p in progress] == ["autumn", "spring"]
    assert progress[0].by_status["DELIVERED"] == 1
    assert progress[0].eta_s == 0.0


def test_progress_as_text(index: RequestIndex) -> None:
    text = progress_text(campaign_progress(index, "spring", now_ms=NOW, window_s=60))
    lines = text.splitlines()
    assert lines[1].split() == ["requests", "8/13", "completed"]
    rows = [line.split() for line in lines]
    assert ["IN_REVIEW", "2"] in rows
    assert ["routing.unknown_provider", "2"] in rows  # indented under FAILED
    assert lines[-1].endswith("  2 in flight, ~24s (+2 waiting in review)")
