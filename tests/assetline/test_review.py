"""assetline.review: the review table read back, listings, and refused decisions.

The broker calls are replaced by fakes here; the round trip through a line is in
``tests/integration/test_gateway.py``.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

import assetline.review as review
from schemas.records import ReviewAction, ReviewDecision, ReviewItem, ReviewStatus
from streams.codecs import Codecs
from streams.settings import Settings
from tests.support.assets import failed, make_request, make_validated, passed

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _item(
    request_id: str,
    *,
    minutes: int = 0,
    campaign: str = "spring",
    status: ReviewStatus = ReviewStatus.PENDING,
) -> ReviewItem:
    request = make_request(request_id=request_id, campaign_id=campaign)
    asset = make_validated([passed("size"), failed("brand", "off-palette")], request=request)
    decision = (
        None
        if status is ReviewStatus.PENDING
        else ReviewDecision(
            decision_id="d", request_id=request_id, action=ReviewAction.REJECT, reviewer="ana"
        )
    )
    return ReviewItem(
        request_id=request_id,
        status=status,
        asset=asset,
        queued_at=T0 + timedelta(minutes=minutes),
        decision=decision,
    )


@pytest.fixture(scope="module")
def codecs() -> Codecs:
    return Codecs.load()


@pytest.fixture
def settings() -> Settings:
    return Settings(kafka_bootstrap="localhost:1", topic_prefix="t13")


def _table(
    monkeypatch: pytest.MonkeyPatch, records: list[tuple[bytes | None, bytes | None]]
) -> None:
    async def read_to_end(bootstrap: str, topic: str) -> list[SimpleNamespace]:
        assert topic == "t13.review.items"
        return [SimpleNamespace(key=key, value=value) for key, value in records]

    monkeypatch.setattr(review, "read_to_end", read_to_end)


def test_load_items_keeps_the_latest_per_key_and_skips_tombstones_and_garbage(
    settings: Settings, codecs: Codecs, monkeypatch: pytest.MonkeyPatch
) -> None:
    encode = codecs.review_item.encode
    decided = _item("r-1", status=ReviewStatus.REJECTED)
    _table(
        monkeypatch,
        [
            (b"r-1", encode(_item("r-1"))),
            (b"r-2", encode(_item("r-2"))),
            (b"r-1", encode(decided)),
            (b"r-2", None),  # deleted
            (b"r-3", b"not avro"),
            (None, encode(_item("r-4"))),
        ],
    )
    items = asyncio.run(review.load_items(settings, codecs))
    assert list(items) == ["r-1"]
    assert items["r-1"].status is ReviewStatus.REJECTED


def ids(items: list[ReviewItem]) -> list[str]:
    return [item.request_id for item in items]


def test_listing_is_oldest_first_pending_only_unless_asked_and_by_campaign() -> None:
    items = [
        _item("late", minutes=5),
        _item("early", minutes=1),
        _item("done", minutes=0, status=ReviewStatus.APPROVED),
        _item("elsewhere", minutes=2, campaign="autumn"),
    ]
    assert ids(review.shown_items(items, include_decided=False, campaign=None)) == [
        "early",
        "elsewhere",
        "late",
    ]
    assert ids(review.shown_items(items, include_decided=True, campaign="spring")) == [
        "done",
        "early",
        "late",
    ]
    assert review.pending_count(items) == 3


def test_item_summary_names_the_failed_checks() -> None:
    summary = review.item_summary(_item("r-1"))
    assert summary["request_id"] == "r-1"
    assert summary["status"] == "PENDING"
    assert summary["campaign_id"] == "spring"
    assert summary["failed"] == ["brand: off-palette"]
    assert summary["queued_at"] == T0.isoformat()
    assert summary["decision"] is None


def test_item_for_an_unknown_request_is_refused() -> None:
    with pytest.raises(review.NoReviewItemError, match="no review item for request 'nope'"):
        review.item_for({}, "nope")


def test_a_decided_item_is_not_decided_again(
    settings: Settings, codecs: Codecs, monkeypatch: pytest.MonkeyPatch
) -> None:
    _table(
        monkeypatch,
        [(b"r-1", codecs.review_item.encode(_item("r-1", status=ReviewStatus.REJECTED)))],
    )
    decision = review.new_decision("r-1", ReviewAction.APPROVE, "bo", None)
    with pytest.raises(review.AlreadyDecidedError) as caught:
        asyncio.run(review.send_decision(settings, codecs, decision))
    assert str(caught.value) == "request 'r-1' was already rejected by ana"
    assert caught.value.code == "review.already_decided"
