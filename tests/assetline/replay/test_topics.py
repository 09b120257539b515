"""Choosing a replay's source and target: short names, and clear refusals."""

from __future__ import annotations

import pytest

from assetline.replay.rewrite import RecordKind
from assetline.replay.topics import ReplayTopics, TopicChoiceError, choose, full_name
from streams.topics import TopicNames

NAMES = TopicNames.with_prefix("p")
EXISTING = {*NAMES.all(), "scratch"}


def test_short_and_full_names() -> None:
    assert full_name(NAMES, "raw") == "p.raw"
    assert full_name(NAMES, "p.raw") == "p.raw"
    assert full_name(NAMES, "scratch") == "scratch"


def test_short_names_resolve_with_the_prefix() -> None:
    assert choose(NAMES, "raw", "raw", EXISTING) == ReplayTopics("p.raw", RecordKind.RAW, "p.raw")
    chosen = choose(NAMES, "p.requests", "scratch", EXISTING)
    assert chosen == ReplayTopics("p.requests", RecordKind.REQUEST, "scratch")


def test_the_urgent_intake_is_replayable_like_requests() -> None:
    chosen = choose(NAMES, "requests_urgent", "requests_urgent", EXISTING)
    assert chosen == ReplayTopics("p.requests.urgent", RecordKind.REQUEST, "p.requests.urgent")
    assert choose(NAMES, "requests_urgent", "requests", EXISTING).target == "p.requests"


def test_approved_may_go_to_rejected_as_both_hold_validated_assets() -> None:
    assert choose(NAMES, "approved", "rejected", EXISTING).target == "p.rejected"


def test_into_itself_needs_an_explicit_into() -> None:
    with pytest.raises(TopicChoiceError, match="--into raw"):
        choose(NAMES, "raw", None, EXISTING)


@pytest.mark.parametrize(
    ("topic", "into", "message"),
    [
        ("paintings", "raw", "unknown topic 'paintings'"),
        ("q.requests", "requests", "unknown topic 'q.requests'"),
        ("completed", "completed", "carry no request"),
        ("deadletter", "requests", "dlq replay"),
        ("deliver_deferred", "approved", "replay approved"),
        ("raw", "deliver_deferred", "into p.deliver.deferred \\(no request records\\)"),
        ("raw", "requests", "cannot replay p.raw \\(raw records\\) into p.requests"),
        ("raw", "completed", "into p.completed \\(no request records\\)"),
        ("raw", "nowhere", "unknown topic 'nowhere'"),
    ],
)
def test_refusals(topic: str, into: str, message: str) -> None:
    with pytest.raises(TopicChoiceError, match=message):
        choose(NAMES, topic, into, EXISTING)


def test_a_line_topic_missing_on_the_cluster_is_refused() -> None:
    with pytest.raises(TopicChoiceError, match="does not exist"):
        choose(NAMES, "raw", "raw", {"p.requests"})
