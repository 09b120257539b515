"""assetline.timeline.index: records applied in any order, read back in time order, bounded."""

from __future__ import annotations

import random

import pytest

from assetline.timeline import EventKind, RequestIndex, TopicKind
from schemas.records import ReviewAction
from streams.codecs import Codecs
from tests.support.request_events import (
    Record,
    dead_letter,
    decision,
    delivered_story,
    review_story,
)


@pytest.fixture(scope="module")
def codecs() -> Codecs:
    return Codecs.load()


def _apply(index: RequestIndex, records: list[Record]) -> None:
    for r in records:
        index.apply(r.topic, r.key, r.value, r.headers, r.timestamp)


def test_timeline_is_in_time_order_whatever_the_arrival_order(codecs: Codecs) -> None:
    story = [*delivered_story(codecs, "r1", 1000), dead_letter("r1", 1005)]
    random.Random(7).shuffle(story)  # topics are read in parallel: any interleaving
    index = RequestIndex(codecs)
    _apply(index, story)
    kinds = [e.kind for e in index.timeline("r1")]
    assert kinds == [
        EventKind.REQUESTED,
        EventKind.DEAD_LETTER,
        EventKind.GENERATED,
        EventKind.VALIDATED,
        EventKind.DELIVERED,
        EventKind.COMPLETED,
        EventKind.WEBHOOK,
    ]
    state = index.state("r1")
    assert state is not None
    assert state.status == "DELIVERED"
    assert state.campaign_id == "spring"
    assert state.trace_id is not None
    assert state.cost == pytest.approx(0.02)
    assert index.timeline("unknown") == []


def test_review_state_follows_the_decision(codecs: Codecs) -> None:
    index = RequestIndex(codecs)
    _apply(index, review_story(codecs, "r2", 2_000))
    state = index.state("r2")
    assert state is not None
    assert state.in_review
    assert state.status is None
    value = codecs.review_decision.encode(decision("r2", ReviewAction.APPROVE))
    index.apply(TopicKind.REVIEW_DECISIONS, b"r2", value, None, 3_000)
    assert not state.in_review
    assert index.timeline("r2")[-1].kind is EventKind.DECIDED


def test_the_least_recently_touched_request_is_evicted(codecs: Codecs) -> None:
    index = RequestIndex(codecs, max_requests=2)
    _apply(index, delivered_story(codecs, "a", 1_000, campaign="c1")[:1])
    _apply(index, delivered_story(codecs, "b", 2_000, campaign="c2")[:1])
    _apply(index, delivered_story(codecs, "a", 1_000, campaign="c1")[1:2])  # touches a
    _apply(index, delivered_story(codecs, "c", 3_000, campaign="c1")[:1])
    assert len(index) == 2
    assert "b" not in index
    assert "a" in index
    assert "c" in index
    assert index.evicted == 1
    assert index.campaigns() == ["c1"]  # c2 had only b
    assert len(index.timeline("a")) == 2


def test_only_indexes_the_requests_asked_for(codecs: Codecs) -> None:
    index = RequestIndex(codecs, only={"wanted"})
    _apply(index, delivered_story(codecs, "wanted", 1_000))
    _apply(index, delivered_story(codecs, "other", 1_000))
    assert list(index.request_ids()) == ["wanted"]
    assert index.records == 10


def test_max_requests_must_be_positive(codecs: Codecs) -> None:
    with pytest.raises(ValueError, match="max_requests"):
        RequestIndex(codecs, max_requests=0)


def test_review_state_is_decided_by_time_not_by_arrival(codecs: Codecs) -> None:
    """The decision's topic may be read before the review topic's partition."""
    index = RequestIndex(codecs)
    value = codecs.review_decision.encode(decision("r3", ReviewAction.REJECT))
    index.apply(TopicKind.REVIEW_DECISIONS, b"r3", value, None, 5_000)
    _apply(index, review_story(codecs, "r3", 2_000))  # sent to review at 2,020
    state = index.state("r3")
    assert state is not None
    assert not state.in_review


def test_a_dead_letter_counts_until_the_request_moves_on(codecs: Codecs) -> None:
    index = RequestIndex(codecs)
    _apply(index, [dead_letter("r4", 1_000)])  # an undecodable request: nothing else
    state = index.state("r4")
    assert state is not None
    assert state.dead_lettered
    _apply(index, delivered_story(codecs, "r4", 2_000)[:2])  # re-driven: generated since
    assert not state.dead_lettered
